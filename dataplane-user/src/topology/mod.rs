//! `dataplane show topology`: the datapath at a glance. Networks with their
//! subnets, ports (addresses, pairs, drops; remote ports with their host),
//! groups of ports sharing an address with the active member, and routers
//! with their interfaces; as text, JSON, or Graphviz DOT (`--dot`, render
//! with `dot -Tsvg`). Read from the maps (what packets see) and the names
//! the agent publishes.

mod dot;

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

pub use dot::render_dot;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    facts::Facts,
    show::{self, ChassisView, GroupView, PortView, RemotePortView},
};

#[derive(Debug, Serialize)]
pub struct TopologyView {
    pub instance: String,
    pub generation: u64,
    pub networks: Vec<NetworkNode>,
    pub routers: Vec<RouterNode>,
    /// The hosts this one knows (empty on a file source).
    pub chassis: Vec<ChassisView>,
}

#[derive(Debug, Default, Serialize)]
pub struct NetworkNode {
    pub id: String,
    pub name: String,
    /// "cidr" or "cidr, gateway IP", with the subnet's name.
    pub subnets: Vec<String>,
    pub ports: Vec<PortNode>,
    pub groups: Vec<GroupNode>,
}

#[derive(Debug, Serialize)]
pub struct PortNode {
    pub id: String,
    pub name: String,
    pub tap: String,
    pub mac: String,
    pub fixed_ips: Vec<String>,
    pub pairs: Vec<String>,
    /// Frames dropped, every reason.
    pub drops: u64,
    /// The host of a port on another chassis (None: a local port).
    pub chassis: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupNode {
    /// The shared address or MAC.
    pub address: String,
    pub members: Vec<String>,
    pub active: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouterNode {
    pub id: String,
    pub name: String,
    /// (network id, subnet label) of each interface.
    pub interfaces: Vec<(String, String)>,
}

/// The topology of the instance in `dir`.
pub fn view(dir: &Path) -> Result<TopologyView> {
    let instance = show::instance_of(dir);
    let facts = Facts::read(&instance).with_context(|| {
        format!("no agent publishes the names of instance {instance}: is `dataplane run` running?")
    })?;
    let ports = show::ports(dir)?;
    let mut networks: BTreeMap<String, NetworkNode> = BTreeMap::new();
    for s in facts.subnets.values() {
        let gw = s
            .gateway_ip
            .map(|g| format!(", gateway {g}"))
            .unwrap_or_default();
        let name = if s.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.name)
        };
        entry(&mut networks, &facts, &s.network_id)
            .subnets
            .push(format!("{}{gw}{name}", s.cidr));
    }
    for p in &ports.ports {
        if let Some(f) = facts.ports.get(&p.id) {
            entry(&mut networks, &facts, &f.network_id)
                .ports
                .push(local_port(p, &f.name));
        }
    }
    for r in &ports.remote {
        if let Some(f) = facts.ports.get(&r.id) {
            entry(&mut networks, &facts, &f.network_id)
                .ports
                .push(remote_port(r, &f.name));
        }
    }
    for g in show::groups(dir)? {
        if let Some((net, node)) = group(&g, facts.networks.keys()) {
            entry(&mut networks, &facts, &net).groups.push(node);
        }
    }
    Ok(TopologyView {
        instance,
        generation: ports.generation,
        routers: routers(&facts),
        networks: networks.into_values().collect(),
        chassis: show::chassis(dir).unwrap_or_default(),
    })
}

/// The network `id`'s node, made on first use.
fn entry<'a>(
    networks: &'a mut BTreeMap<String, NetworkNode>,
    facts: &Facts,
    id: &str,
) -> &'a mut NetworkNode {
    networks
        .entry(id.to_string())
        .or_insert_with(|| NetworkNode {
            id: id.to_string(),
            name: facts.networks.get(id).cloned().unwrap_or_default(),
            ..NetworkNode::default()
        })
}

fn local_port(p: &PortView, name: &str) -> PortNode {
    let with = |kind: &str| {
        let mut v: Vec<String> = p
            .addresses
            .iter()
            .filter(|a| a.kind.split('+').any(|k| k == kind))
            .map(|a| host(&a.address))
            .collect();
        v.dedup();
        v
    };
    PortNode {
        id: p.id.clone(),
        name: name.to_string(),
        tap: p.tap.clone(),
        mac: p.mac.clone(),
        fixed_ips: with("fixed"),
        pairs: with("pair"),
        drops: p.stats.drops.values().sum(),
        chassis: None,
    }
}

fn remote_port(r: &RemotePortView, name: &str) -> PortNode {
    PortNode {
        id: r.id.clone(),
        name: name.to_string(),
        tap: String::new(),
        mac: r.mac.clone(),
        fixed_ips: Vec::new(),
        pairs: Vec::new(),
        drops: 0,
        chassis: Some(format!("{} ({})", r.chassis, r.chassis_ip)),
    }
}

/// A group's network and node: its name is "<network id> <address>".
fn group<'a>(
    g: &GroupView,
    mut networks: impl Iterator<Item = &'a String>,
) -> Option<(String, GroupNode)> {
    let net = networks.find(|n| g.name.starts_with(&format!("{n} ")))?;
    let node = GroupNode {
        address: host(&g.name[net.len() + 1..]),
        members: g.members.iter().map(|m| m.port.clone()).collect(),
        active: g.active.clone(),
    };
    Some((net.clone(), node))
}

fn routers(facts: &Facts) -> Vec<RouterNode> {
    let mut out: BTreeMap<String, RouterNode> = BTreeMap::new();
    for p in facts.ports.values() {
        let Some(r) = &p.router else { continue };
        let node = out.entry(r.clone()).or_insert_with(|| RouterNode {
            id: r.clone(),
            name: facts.routers.get(r).cloned().unwrap_or_default(),
            interfaces: Vec::new(),
        });
        for s in &p.subnets {
            let cidr = facts.subnets.get(s).map(|f| f.cidr.to_string());
            node.interfaces
                .push((p.network_id.clone(), cidr.unwrap_or_else(|| s.clone())));
        }
    }
    out.into_values().collect()
}

/// A host prefix as the address alone (the maps hold prefixes).
fn host(a: &str) -> String {
    a.strip_suffix("/32")
        .or_else(|| a.strip_suffix("/128"))
        .unwrap_or(a)
        .to_string()
}

/// "name" or the id when it has none.
fn label(name: &str, id: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}

/// A member's label: its port's name where the network knows it.
fn port_label(net: &NetworkNode, id: &str) -> String {
    net.ports
        .iter()
        .find(|p| p.id == id)
        .map(|p| label(&p.name, &p.id))
        .unwrap_or_else(|| id.to_string())
}

pub fn render(v: &TopologyView) -> String {
    let mut s = format!("instance {}, generation {}\n", v.instance, v.generation);
    for n in &v.networks {
        let title = match label(&n.name, &n.id) {
            l if l == n.id => l,
            l => format!("{l} ({})", n.id),
        };
        let _ = writeln!(s, "network {title}");
        for sub in &n.subnets {
            let _ = writeln!(s, "  subnet {sub}");
        }
        for p in &n.ports {
            let _ = write!(s, "  port {}  {}", label(&p.name, &p.id), p.mac);
            match &p.chassis {
                Some(c) => {
                    let _ = writeln!(s, "  on {c}");
                }
                None => {
                    let pairs = if p.pairs.is_empty() {
                        String::new()
                    } else {
                        format!("  pairs {}", p.pairs.join(" "))
                    };
                    let _ = writeln!(
                        s,
                        "  {}  {}{pairs}  drops {}",
                        p.tap,
                        p.fixed_ips.join(" "),
                        p.drops
                    );
                }
            }
        }
        for g in &n.groups {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| {
                    let active = if g.active.as_deref() == Some(m) {
                        " (active)"
                    } else {
                        ""
                    };
                    format!("{}{active}", port_label(n, m))
                })
                .collect();
            let _ = writeln!(s, "  shared {}: {}", g.address, members.join(", "));
        }
    }
    for r in &v.routers {
        let ifaces: Vec<String> = r.interfaces.iter().map(|(_, sub)| sub.clone()).collect();
        let _ = writeln!(s, "router {}: {}", label(&r.name, &r.id), ifaces.join(", "));
    }
    for c in &v.chassis {
        let _ = writeln!(s, "host {} ({})", c.name, c.underlay_ip);
    }
    s
}

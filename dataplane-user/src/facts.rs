//! What the running agent publishes for the readers (`trace`, `monitor`,
//! `show`) beside its control socket, in `/run/dataplane/<instance>.json`:
//! who runs the instance and the names the pinned maps do not hold (the
//! maps know ports by index, id and tap only): port names, security
//! groups, subnets with their gateways, routers. Only the holder of the
//! instance's lock writes it (atomically: written aside, then renamed).
//!
//! The file describes the configuration the agent applied last. It stays
//! when the agent exits leaving the datapath running (the names still
//! describe the pinned state), and goes with `dataplane stop`. Readers use
//! it for names and explanations only; verdicts and counters come from
//! the maps.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use dataplane_config::Store;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::lock::RUN_DIR;

pub fn path(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.json"))
}

/// The agent and its configuration, as readers need them. A status view
/// would read (and extend) this too.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Facts {
    pub instance: String,
    /// The agent that wrote this.
    pub pid: u32,
    /// Where its configuration comes from.
    pub source: String,
    /// Generation of the configuration described.
    pub generation: u64,
    /// Ports by id.
    pub ports: BTreeMap<String, PortFacts>,
    /// Subnets by id.
    pub subnets: BTreeMap<String, SubnetFacts>,
    /// Security groups: id -> name.
    pub security_groups: BTreeMap<String, String>,
    /// Routers: id -> name.
    pub routers: BTreeMap<String, String>,
    /// Networks: id -> name (`show topology`; absent from an older agent's
    /// facts).
    #[serde(default)]
    pub networks: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PortFacts {
    pub name: String,
    pub tap: String,
    pub network_id: String,
    pub mac: String,
    /// Subnet ids of its fixed IPs.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub port_security: bool,
    /// For a router interface: its router's id.
    pub router: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubnetFacts {
    pub name: String,
    pub network_id: String,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
}

impl Facts {
    /// The facts of a configuration.
    pub fn of(store: &Store) -> Facts {
        let ports = store
            .ports()
            .values()
            .map(|p| {
                let mut subnets: Vec<String> =
                    p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
                subnets.dedup();
                let facts = PortFacts {
                    name: p.spec.name.clone(),
                    tap: p.spec.tap.clone(),
                    network_id: p.spec.network_id.clone(),
                    mac: p.spec.mac.to_string(),
                    subnets,
                    security_groups: p.security_groups.clone(),
                    port_security: p.port_security_enabled,
                    router: p.spec.router.clone(),
                };
                (p.id().to_string(), facts)
            })
            .collect();
        let subnets = store
            .subnets()
            .values()
            .map(|s| {
                let facts = SubnetFacts {
                    name: s.name.clone(),
                    network_id: s.network_id.clone(),
                    cidr: s.cidr,
                    gateway_ip: s.gateway_ip,
                };
                (s.id.clone(), facts)
            })
            .collect();
        Facts {
            ports,
            subnets,
            security_groups: store
                .security_groups()
                .values()
                .map(|g| (g.id.clone(), g.name.clone()))
                .collect(),
            routers: store
                .routers()
                .values()
                .map(|r| (r.id.clone(), r.name.clone()))
                .collect(),
            networks: store
                .networks()
                .values()
                .map(|n| (n.id.clone(), n.name.clone()))
                .collect(),
            ..Facts::default()
        }
    }

    /// Writes the facts for `instance` (aside, then renamed into place).
    pub fn write(&self, instance: &str) -> Result<()> {
        let path = path(instance);
        let tmp = path.with_extension("json.tmp");
        std::fs::create_dir_all(RUN_DIR)?;
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The facts an agent published for `instance`, if any.
    pub fn read(instance: &str) -> Option<Facts> {
        let text = std::fs::read(path(instance)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Removes the published facts (the datapath was removed).
    pub fn remove(instance: &str) {
        let _ = std::fs::remove_file(path(instance));
    }

    /// A group's label: "name (id)", or the id when it has no name.
    pub fn security_group_label(&self, id: &str) -> String {
        label(id, self.security_groups.get(id))
    }

    /// A router's label: "name (id)", or the id.
    pub fn router_label(&self, id: &str) -> String {
        label(id, self.routers.get(id))
    }

    /// The port's name, if it has one.
    pub fn port_name(&self, id: &str) -> Option<&str> {
        self.ports
            .get(id)
            .map(|p| p.name.as_str())
            .filter(|n| !n.is_empty())
    }
}

fn label(id: &str, name: Option<&String>) -> String {
    match name {
        Some(n) if !n.is_empty() && n != id => format!("{n} ({id})"),
        _ => id.to_string(),
    }
}

/// Keeps the published facts in step with the agent's configuration:
/// marked stale by each applied change, written at most once a tick
/// (building them reads every port: too slow for every change of a large
/// configuration).
pub struct Publisher {
    instance: String,
    source: String,
    stale: bool,
}

impl Publisher {
    pub fn new(instance: &str, source: String) -> Publisher {
        Publisher {
            instance: instance.to_string(),
            source,
            stale: true,
        }
    }

    /// A change was applied.
    pub fn changed(&mut self) {
        self.stale = true;
    }

    /// Writes the facts if a change made them stale.
    pub fn publish(&mut self, store: &Store, generation: u64) {
        if !self.stale {
            return;
        }
        let facts = Facts {
            instance: self.instance.clone(),
            pid: std::process::id(),
            source: self.source.clone(),
            generation,
            ..Facts::of(store)
        };
        match facts.write(&self.instance) {
            Ok(()) => self.stale = false,
            Err(e) => tracing::warn!("publishing names for readers: {e:#}"),
        }
    }
}

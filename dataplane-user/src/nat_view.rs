//! `dataplane show nat`: the external gateways as the datapath holds them
//! (the live slot's gateways and floating IPs), their SNAT connections,
//! the neighbours learned on the external networks, and the counters, read
//! from the pinned maps.

use std::{fmt::Write as _, net::Ipv4Addr, path::Path};

use anyhow::Result;
use aya::maps::{HashMap, MapData, PerCpuArray};
use common::{
    EXT_FLOATING, ExtAddr, ExtAddrKey, ExtNeigh, ExtNeighKey, GATEWAY_F_SNAT, Gateway, GatewayKey,
    NAT_IN, NAT_OUT, NatEntry, NatKey, NatStats,
    proto::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
};
use serde::Serialize;

use dataplane_config::MacAddr;

use crate::{datapath::pinned, show::clock_ns};

#[derive(Debug, Clone, Serialize)]
pub struct NatView {
    /// Summed over CPUs.
    #[serde(serialize_with = "by_name")]
    pub stats: NatStats,
    pub gateways: Vec<GatewayView>,
    pub floating_ips: Vec<FloatingView>,
    /// SNAT connections, as they leave.
    pub connections: Vec<NatConnView>,
    /// Neighbours learned on external networks.
    pub neighbours: Vec<NeighView>,
}

/// The counters as a JSON object, by name.
fn by_name<S: serde::Serializer>(stats: &NatStats, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_map(stats.named())
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayView {
    /// The router's index in the datapath (`show topology` names it).
    pub router: u32,
    pub network: u32,
    pub address: String,
    pub mac: String,
    pub snat: bool,
    /// The uplink's interface index; 0: no uplink on this host.
    pub uplink: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloatingView {
    pub router: u32,
    pub network: u32,
    pub floating_ip: String,
    pub fixed_ip: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NatConnView {
    pub router: u32,
    pub protocol: String,
    /// The VM's address and port (ICMP: echo identifier).
    pub inside: String,
    /// What it leaves as.
    pub outside: String,
    /// The peer.
    pub remote: String,
    /// Whether the reply direction is in place.
    pub reply_mapped: bool,
    pub idle_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NeighView {
    pub network: u32,
    pub address: String,
    /// None while an ARP request is out.
    pub mac: Option<String>,
    pub age_secs: f64,
}

fn v4(a: [u8; 4]) -> String {
    Ipv4Addr::from(a).to_string()
}

fn proto(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        n => n.to_string(),
    }
}

/// The NAT counters, summed over CPUs.
pub fn stats(dir: &Path) -> Result<NatStats> {
    let mut stats = NatStats::default();
    let per_cpu: PerCpuArray<MapData, NatStats> = pinned::NAT_STATS(dir)?;
    for s in per_cpu.get(&0, 0)?.iter() {
        stats.add(s);
    }
    Ok(stats)
}

/// SNAT connections in the table (the leaving direction of each).
pub fn connections(dir: &Path) -> Result<u64> {
    let nat: HashMap<MapData, NatKey, NatEntry> = pinned::NAT(dir)?;
    let mut n = 0;
    for k in nat.keys() {
        if k?.dir == NAT_OUT {
            n += 1;
        }
    }
    Ok(n)
}

pub fn view(dir: &Path) -> Result<NatView> {
    let slot = pinned::CONFIG(dir)?.get(&0, 0)?.active_slot;
    let now = clock_ns(libc::CLOCK_MONOTONIC);
    let stats = stats(dir)?;
    let gws: HashMap<MapData, GatewayKey, Gateway> = pinned::GATEWAYS(dir)?;
    let mut gateways = Vec::new();
    for item in gws.iter() {
        let (k, g) = item?;
        if k.slot == slot {
            gateways.push(GatewayView {
                router: k.router,
                network: g.network,
                address: v4(g.addr),
                mac: MacAddr(g.mac).to_string(),
                snat: g.flags & GATEWAY_F_SNAT != 0,
                uplink: g.ifindex,
            });
        }
    }
    gateways.sort_by_key(|g| g.router);
    let addrs: HashMap<MapData, ExtAddrKey, ExtAddr> = pinned::EXT_ADDRS(dir)?;
    let mut floating_ips = Vec::new();
    for item in addrs.iter() {
        let (k, a) = item?;
        if k.slot == slot && a.kind == EXT_FLOATING {
            floating_ips.push(FloatingView {
                router: a.router,
                network: k.network,
                floating_ip: v4(k.addr),
                fixed_ip: v4(a.fixed),
            });
        }
    }
    floating_ips.sort_by(|a, b| a.floating_ip.cmp(&b.floating_ip));
    let nat: HashMap<MapData, NatKey, NatEntry> = pinned::NAT(dir)?;
    let entries: Vec<(NatKey, NatEntry)> = nat.iter().filter_map(|i| i.ok()).collect();
    let mut connections = Vec::new();
    for (k, e) in entries.iter().filter(|(k, _)| k.dir == NAT_OUT) {
        let port = |p: [u8; 2]| u16::from_be_bytes(p);
        let reply = NatKey {
            dir: NAT_IN,
            local: e.addr,
            local_port: e.port,
            ..*k
        };
        let reply_mapped = entries
            .iter()
            .any(|(rk, re)| *rk == reply && re.addr == k.local && re.port == k.local_port);
        connections.push(NatConnView {
            router: k.router,
            protocol: proto(k.proto),
            inside: format!("{}:{}", v4(k.local), port(k.local_port)),
            outside: format!("{}:{}", v4(e.addr), port(e.port)),
            remote: format!("{}:{}", v4(k.remote), port(k.remote_port)),
            reply_mapped,
            idle_secs: now.saturating_sub(e.last_ns) as f64 / 1e9,
        });
    }
    connections.sort_by(|a, b| (&a.inside, &a.remote).cmp(&(&b.inside, &b.remote)));
    let neigh: HashMap<MapData, ExtNeighKey, ExtNeigh> = pinned::EXT_NEIGH(dir)?;
    let mut neighbours = Vec::new();
    for item in neigh.iter() {
        let (k, n) = item?;
        neighbours.push(NeighView {
            network: k.network,
            address: v4(k.addr),
            mac: (n.mac != [0; 6]).then(|| MacAddr(n.mac).to_string()),
            age_secs: now.saturating_sub(n.seen_ns) as f64 / 1e9,
        });
    }
    neighbours.sort_by(|a, b| (a.network, &a.address).cmp(&(b.network, &b.address)));
    Ok(NatView {
        stats,
        gateways,
        floating_ips,
        connections,
        neighbours,
    })
}

pub fn render(v: &NatView) -> String {
    let mut s = String::new();
    for g in &v.gateways {
        let uplink = if g.uplink == 0 {
            "no uplink on this host".to_string()
        } else {
            format!("uplink ifindex {}", g.uplink)
        };
        let _ = writeln!(
            s,
            "router #{}: gateway {} ({}) on network #{}, SNAT {}, {uplink}",
            g.router,
            g.address,
            g.mac,
            g.network,
            if g.snat { "on" } else { "off" },
        );
    }
    for f in &v.floating_ips {
        let _ = writeln!(
            s,
            "floating IP {} -> {} (router #{})",
            f.floating_ip, f.fixed_ip, f.router
        );
    }
    let _ = writeln!(s, "{} SNAT connection(s)", v.connections.len());
    for c in &v.connections {
        let _ = writeln!(
            s,
            "  {} {} as {} -> {}{} (idle {:.0} s)",
            c.protocol,
            c.inside,
            c.outside,
            c.remote,
            if c.reply_mapped {
                ""
            } else {
                ", reply not mapped"
            },
            c.idle_secs
        );
    }
    let _ = writeln!(s, "{} external neighbour(s)", v.neighbours.len());
    for n in &v.neighbours {
        let _ = writeln!(
            s,
            "  network #{} {} {} (seen {:.0} s ago)",
            n.network,
            n.address,
            n.mac.as_deref().unwrap_or("(resolving)"),
            n.age_secs
        );
    }
    let t = &v.stats;
    let _ = writeln!(
        s,
        "packets: floating in {} out {}; SNAT out {} in {} ({} connections opened); \
         ICMP errors translated back {}; untranslated out {}; hairpinned {}; ARP answered {}, asked {}; neighbours learned {}; \
         left to the host {}",
        t.floating_in,
        t.floating_out,
        t.snat_out,
        t.snat_in,
        t.snat_new,
        t.icmp_in,
        t.routed_out,
        t.hairpin,
        t.arp_replies,
        t.arp_requests,
        t.neigh_learned,
        t.passed
    );
    s
}

//! `dataplane show`: reads what the datapath holds straight from its pinned
//! maps, so it shows what packets see, not what the loader believes.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::Result;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use common::{
    ADDR_F_FIXED, ADDR_F_LINK_LOCAL, ADDR_F_PAIR, DpConfig, DropReason, PORT_ADDR_PREFIX_BITS,
    PORT_F_SECURITY, PortAddr, PortAddrV4Key, PortAddrV6Key, PortInfo, PortKey, PortMeta,
    PortStats,
};
use serde::Serialize;

use dataplane_config::MacAddr;

use crate::{
    agent_status::{AgentRecord, Attempt},
    datapath::{maps::open_pinned, pinned, pins::c_str},
    facts::Facts,
    link_health::{Inspector, LinkHealth},
};

#[derive(Debug, Clone, Serialize)]
pub struct AddressView {
    pub address: String,
    pub mac: String,
    /// fixed, pair or link-local.
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsView {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub forwarded: u64,
    pub flooded: u64,
    pub group_flooded: u64,
    pub routed: u64,
    pub arp_replies: u64,
    pub nd_replies: u64,
    pub echo_replies: u64,
    pub icmp_errors: u64,
    pub icmp_limited: u64,
    pub ra_replies: u64,
    pub claims: u64,
    /// Frames forwarded through the flow cache (also in `forwarded`).
    pub fast_path: u64,
    /// Drop counters that are not zero, by reason name.
    pub drops: BTreeMap<String, u64>,
}

impl From<&PortStats> for StatsView {
    fn from(s: &PortStats) -> Self {
        StatsView {
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            forwarded: s.forwarded,
            flooded: s.flooded,
            group_flooded: s.group_flooded,
            routed: s.routed,
            arp_replies: s.arp_replies,
            nd_replies: s.nd_replies,
            echo_replies: s.echo_replies,
            icmp_errors: s.icmp_errors,
            icmp_limited: s.icmp_limited,
            ra_replies: s.ra_replies,
            claims: s.claims,
            fast_path: s.fast_path,
            drops: DropReason::ALL
                .iter()
                .filter(|r| s.drops.get(**r) != 0)
                .map(|r| (r.name().to_string(), s.drops.get(*r)))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    pub id: String,
    /// The port's name in the configuration ("" if it has none, or if the
    /// agent published no names: see [`named_ports`]).
    pub name: String,
    pub tap: String,
    pub ifindex: u32,
    pub index: u32,
    pub network: u32,
    /// Security-group policy and identity (indexes, as `POLICY` keys hold them).
    pub policy: u32,
    pub identity: u32,
    pub mac: String,
    pub port_security: bool,
    pub macs: Vec<String>,
    pub addresses: Vec<AddressView>,
    pub stats: StatsView,
    /// What the kernel does with the frames the datapath sends it: lost
    /// frames that no counter of the datapath sees (see `link_health`;
    /// filled by [`with_interfaces`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<LinkHealth>,
}

/// A port of the configuration waiting for its tap: nothing reaches it
/// and nothing of its passes until the tap exists and the agent has
/// attached the datapath to it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub id: String,
    pub name: String,
    pub tap: String,
    /// Since when (seconds since the Unix epoch), and how long.
    pub since: f64,
    pub waiting_secs: f64,
}

/// A port on another chassis, as this host reaches it.
#[derive(Debug, Clone, Serialize)]
pub struct RemotePortView {
    pub id: String,
    pub index: u32,
    pub network: u32,
    pub mac: String,
    pub chassis: String,
    pub chassis_ip: String,
    pub vni: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortsView {
    pub active_slot: u32,
    pub generation: u64,
    /// The ports on this host.
    pub ports: Vec<PortView>,
    /// Ports on other chassis this host reaches through its tunnel.
    pub remote: Vec<RemotePortView>,
    /// Drops on interfaces that were not (or no longer) a port.
    pub unattributed: StatsView,
    /// Ports of the configuration waiting for their tap (from the agent's
    /// status: see [`named_ports`]).
    pub pending: Vec<PendingView>,
    /// The configuration the agent was last given, when it was refused:
    /// what its source holds is not what runs (see [`named_ports`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Attempt>,
}

impl PortsView {
    /// The port `name` designates: its id, its tap, or its name (which
    /// must then be unique).
    pub fn find(&self, name: &str) -> Result<&PortView> {
        if let Some(p) = self.ports.iter().find(|p| p.id == name || p.tap == name) {
            return Ok(p);
        }
        let named: Vec<&PortView> = self.ports.iter().filter(|p| p.name == name).collect();
        match named.as_slice() {
            [one] => Ok(one),
            [] => anyhow::bail!("no port with id, name or tap {name:?} in the live configuration"),
            many => anyhow::bail!(
                "{} ports are named {name:?} ({}): give the id or the tap",
                many.len(),
                many.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The port of index `index`, if it is in the live configuration.
    pub fn by_index(&self, index: u32) -> Option<&PortView> {
        self.ports.iter().find(|p| p.index == index)
    }
}

/// The instance name of an instance directory (/sys/fs/bpf/NAME).
pub fn instance_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn kind(flags: u32) -> String {
    let mut kinds = Vec::new();
    if flags & ADDR_F_FIXED != 0 {
        kinds.push("fixed");
    }
    if flags & ADDR_F_PAIR != 0 {
        kinds.push("pair");
    }
    if flags & ADDR_F_LINK_LOCAL != 0 {
        kinds.push("link-local");
    }
    if flags & common::ADDR_F_SHARED != 0 {
        kinds.push("shared");
    }
    kinds.join("+")
}

fn sum_stats(stats: &PerCpuArray<MapData, PortStats>, index: u32) -> PortStats {
    let mut total = PortStats::default();
    if let Ok(values) = stats.get(&index, 0) {
        for v in values.iter() {
            total.add(v);
        }
    }
    total
}

/// [`ports`] with each port's name, from what the agent published (see
/// `facts`), and what the agent says of ports waiting for their tap and
/// of a configuration it refused (see `agent_status`): for people and for
/// finding ports by name. (Metrics and other frequent readers skip the
/// names: the file lists every port.)
pub fn named_ports(dir: &Path) -> Result<PortsView> {
    let mut view = ports(dir)?;
    let instance = instance_of(dir);
    if let Some(facts) = Facts::read(&instance) {
        for p in &mut view.ports {
            p.name = facts.port_name(&p.id).unwrap_or_default().to_string();
        }
    }
    if let Some(record) = AgentRecord::read(&instance) {
        view.pending = pending(&record);
        view.refused = record.refused_now().cloned();
    }
    Ok(view)
}

/// The ports the agent's record says wait for their tap.
pub fn pending(record: &AgentRecord) -> Vec<PendingView> {
    let now = crate::agent_status::now();
    record
        .pending
        .iter()
        .map(|(id, p)| PendingView {
            id: id.clone(),
            name: p.name.clone(),
            tap: p.tap.clone(),
            since: p.since,
            waiting_secs: (now - p.since).max(0.0),
        })
        .collect()
}

/// Fills in what the kernel does with each local port's frames (see
/// `link_health`): it asks the kernel about every tap.
pub fn with_interfaces(view: &mut PortsView) {
    let mut inspector = Inspector::default();
    for p in &mut view.ports {
        if !p.tap.is_empty() && p.id != dataplane_config::compile::TUNNEL_PORT_ID {
            p.interface = inspector.check(&p.tap);
        }
    }
}

/// Reads every port of the live slot with its addresses and counters
/// (names left empty: see [`named_ports`]).
pub fn ports(dir: &Path) -> Result<PortsView> {
    let config: Array<MapData, DpConfig> = pinned::CONFIG(dir)?;
    let cfg = config.get(&0, 0)?;
    let slot = cfg.active_slot;
    let ports: HashMap<MapData, PortKey, PortInfo> = pinned::PORTS(dir)?;
    let meta: Array<MapData, PortMeta> = pinned::PORT_META(dir)?;
    let stats: PerCpuArray<MapData, PortStats> = pinned::PORT_STATS(dir)?;
    let macs: HashMap<MapData, common::PortMacKey, common::PortMac> = pinned::PORT_MACS(dir)?;
    let v4: LpmTrie<MapData, PortAddrV4Key, PortAddr> = pinned::PORT_ADDRS_V4(dir)?;
    let v6: LpmTrie<MapData, PortAddrV6Key, PortAddr> = pinned::PORT_ADDRS_V6(dir)?;

    let mut port_macs: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for item in macs.iter() {
        let (k, _) = item?;
        if k.slot == slot {
            port_macs
                .entry(k.port)
                .or_default()
                .push(MacAddr(k.mac).to_string());
        }
    }
    let mut addrs: BTreeMap<u32, Vec<AddressView>> = BTreeMap::new();
    for item in v4.iter() {
        let (k, v) = item?;
        let d = k.data();
        if d.slot == slot {
            let plen = k.prefix_len() - PORT_ADDR_PREFIX_BITS;
            addrs.entry(d.port).or_default().push(AddressView {
                address: format!("{}/{plen}", Ipv4Addr::from(d.addr)),
                mac: MacAddr(d.mac).to_string(),
                kind: kind(v.flags),
            });
        }
    }
    for item in v6.iter() {
        let (k, v) = item?;
        let d = k.data();
        if d.slot == slot {
            let plen = k.prefix_len() - PORT_ADDR_PREFIX_BITS;
            addrs.entry(d.port).or_default().push(AddressView {
                address: format!("{}/{plen}", Ipv6Addr::from(d.addr)),
                mac: MacAddr(d.mac).to_string(),
                kind: kind(v.flags),
            });
        }
    }

    let mut out = Vec::new();
    for item in ports.iter() {
        let (k, info) = item?;
        if k.slot != slot {
            continue;
        }
        let m = meta.get(&info.index, 0).unwrap_or_default();
        out.push(PortView {
            id: c_str(&m.id),
            name: String::new(),
            tap: c_str(&m.tap),
            ifindex: info.ifindex,
            index: info.index,
            network: info.network,
            policy: info.policy,
            identity: info.identity,
            mac: MacAddr(info.mac).to_string(),
            port_security: info.flags & PORT_F_SECURITY != 0,
            macs: port_macs.remove(&info.index).unwrap_or_default(),
            addresses: addrs.remove(&info.index).unwrap_or_default(),
            stats: (&sum_stats(&stats, info.index)).into(),
            interface: None,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    let remote = remote_ports(dir, slot, &meta)?;
    Ok(PortsView {
        active_slot: slot,
        generation: cfg.generation,
        ports: out,
        remote,
        unattributed: (&sum_stats(&stats, 0)).into(),
        pending: Vec::new(),
        refused: None,
    })
}

/// Ports on other chassis in the live slot.
fn remote_ports(
    dir: &Path,
    slot: u32,
    meta: &Array<MapData, PortMeta>,
) -> Result<Vec<RemotePortView>> {
    let names: BTreeMap<u32, String> = chassis(dir)?
        .into_iter()
        .map(|c| (c.index, c.name))
        .collect();
    let mut out = Vec::new();
    for item in pinned::REMOTE_PORTS(dir)?.iter() {
        let (k, r) = item?;
        if k.slot != slot {
            continue;
        }
        let m = meta.get(&k.port, 0).unwrap_or_default();
        out.push(RemotePortView {
            id: c_str(&m.id),
            index: k.port,
            network: r.info.network,
            mac: MacAddr(r.info.mac).to_string(),
            chassis: names.get(&r.chassis).cloned().unwrap_or_default(),
            chassis_ip: Ipv4Addr::from(r.chassis_ip).to_string(),
            vni: r.vni,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A host this one knows.
#[derive(Debug, Clone, Serialize)]
pub struct ChassisView {
    pub name: String,
    pub underlay_ip: String,
    pub index: u32,
}

/// The live chassis this host accepts tunnelled frames from.
pub fn chassis(dir: &Path) -> Result<Vec<ChassisView>> {
    let slot = pinned::CONFIG(dir)?.get(&0, 0)?.active_slot;
    let mut out = Vec::new();
    for item in pinned::CHASSIS(dir)?.iter() {
        let (k, c) = item?;
        if k.slot == slot {
            out.push(ChassisView {
                name: c_str(&c.name),
                underlay_ip: Ipv4Addr::from(k.ip).to_string(),
                index: c.index,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn render_chassis(view: &[ChassisView]) -> String {
    let mut s = String::new();
    if view.is_empty() {
        s.push_str("no chassis (one host, or the tunnel's database not read yet)\n");
    }
    for c in view {
        let _ = writeln!(s, "{:<24} {}", c.name, c.underlay_ip);
    }
    s
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_pending(s: &mut String, pending: &[PendingView]) {
    if pending.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "{} port(s) waiting for their tap (nothing reaches them, nothing of theirs passes):",
        pending.len()
    );
    for p in pending {
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.name)
        };
        let _ = writeln!(
            s,
            "  {}{name}: tap {} does not exist (waiting for {:.0} s)",
            p.id, p.tap, p.waiting_secs
        );
    }
}

fn render_interface(s: &mut String, i: &LinkHealth) {
    for p in &i.problems {
        let _ = writeln!(s, "  interface LOSES FRAMES: {} (fix: {})", p.detail, p.fix);
    }
    if i.rx_dropped != 0 || i.tx_dropped != 0 {
        let _ = writeln!(
            s,
            "  interface counters (frames the kernel dropped after the datapath's decision): \
             rx_dropped {}, tx_dropped {}",
            i.rx_dropped, i.tx_dropped
        );
    }
}

fn stats_line(s: &StatsView) -> String {
    let mut line = format!(
        "rx {} pkts / {} bytes, tx {} pkts / {} bytes",
        s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes
    );
    for (name, value) in [
        ("forwarded", s.forwarded),
        ("flooded", s.flooded),
        ("group-flooded", s.group_flooded),
        ("routed", s.routed),
        ("arp-replies", s.arp_replies),
        ("nd-replies", s.nd_replies),
        ("echo-replies", s.echo_replies),
        ("icmp-errors", s.icmp_errors),
        ("icmp-limited", s.icmp_limited),
        ("ra-replies", s.ra_replies),
        ("claims", s.claims),
        ("fast-path", s.fast_path),
    ] {
        if value != 0 {
            let _ = write!(line, ", {name} {value}");
        }
    }
    line
}

/// Human-readable form of [`ports`].
pub fn render_ports(view: &PortsView) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "slot {} generation {}: {} port(s)",
        view.active_slot,
        view.generation,
        view.ports.len()
    );
    if let Some(a) = &view.refused {
        let _ = writeln!(
            s,
            "the configuration given last ({}, {}) was refused: generation {} stays in force\n{}",
            a.trigger,
            crate::monitor::rfc3339((a.at * 1e9) as u64),
            view.generation,
            indent(a.error.as_deref().unwrap_or_default())
        );
    }
    render_pending(&mut s, &view.pending);
    for p in &view.ports {
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.name)
        };
        let _ = writeln!(
            s,
            "\nport {}{name}\n  tap {} (ifindex {}), index {}, network {}, mac {}, port security {}",
            p.id,
            p.tap,
            p.ifindex,
            p.index,
            p.network,
            p.mac,
            if p.port_security { "on" } else { "off" }
        );
        let _ = writeln!(s, "  macs: {}", p.macs.join(", "));
        for a in &p.addresses {
            let _ = writeln!(s, "  {:<44} {} {}", a.address, a.mac, a.kind);
        }
        let _ = writeln!(s, "  {}", stats_line(&p.stats));
        if let Some(i) = &p.interface {
            render_interface(&mut s, i);
        }
        for (reason, n) in &p.stats.drops {
            let desc = DropReason::ALL
                .iter()
                .find(|r| r.name() == reason)
                .map(|r| r.description())
                .unwrap_or("");
            let _ = writeln!(s, "  dropped {n:>8} {reason}: {desc}");
        }
    }
    if !view.unattributed.drops.is_empty() {
        let _ = writeln!(s, "\nnot tied to a port:");
        for (reason, n) in &view.unattributed.drops {
            let _ = writeln!(s, "  dropped {n:>8} {reason}");
        }
    }
    if !view.remote.is_empty() {
        let _ = writeln!(s, "\n{} port(s) on other chassis:", view.remote.len());
        for r in &view.remote {
            let _ = writeln!(
                s,
                "  {:<40} {} on {} ({}), vni {}",
                r.id, r.mac, r.chassis, r.chassis_ip, r.vni
            );
        }
    }
    s
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupMemberView {
    pub port: String,
    pub index: u32,
    /// The MAC this member uses for the shared address.
    pub mac: String,
    /// Whether the member's tap is there (its device-map entry): a member
    /// without one receives nothing.
    pub has_tap: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub index: u32,
    /// "<network id> <address>" or "<network id> <MAC>".
    pub name: String,
    pub members: Vec<GroupMemberView>,
    /// Port id of the active member: the one frames for the group go to.
    /// None while no member has claimed the address, or when the one that
    /// did can no longer receive (see `lost_active`): frames then go to
    /// every member.
    pub active: Option<String>,
    /// The member the datapath still records as active although its tap is
    /// gone: the next frame for the group finds it unreachable, forgets
    /// it and goes to every member.
    pub lost_active: Option<String>,
    /// Seconds since the active member last changed (claimed, or forgotten).
    pub changed_secs_ago: Option<f64>,
    pub changes: u64,
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// A clock's time in nanoseconds.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; bpf_ktime_get_ns uses CLOCK_MONOTONIC.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Every group of the live slot with its members and active member.
pub fn groups(dir: &Path) -> Result<Vec<GroupView>> {
    let config: Array<MapData, DpConfig> = pinned::CONFIG(dir)?;
    let slot = config.get(&0, 0)?.active_slot;
    let members: HashMap<MapData, common::GroupMemberKey, common::GroupMember> =
        pinned::GROUP_MEMBERS(dir)?;
    let state: Array<MapData, common::GroupState> = pinned::GROUP_STATE(dir)?;
    let names: Array<MapData, common::GroupMeta> = pinned::GROUP_META(dir)?;
    let meta: Array<MapData, PortMeta> = pinned::PORT_META(dir)?;
    // What `forward` sends to: the kernel removes a tap's entry when the
    // tap goes.
    let tx_ports = pinned::TX_PORTS(dir)?;
    let port_id = |index: u32| {
        meta.get(&index, 0)
            .map(|m| c_str(&m.id))
            .unwrap_or_else(|_| format!("#{index}"))
    };
    let mut by_group: BTreeMap<u32, Vec<GroupMemberView>> = BTreeMap::new();
    for item in members.iter() {
        let (k, v) = item?;
        if k.slot == slot {
            by_group.entry(k.group).or_default().push(GroupMemberView {
                port: port_id(k.port),
                index: k.port,
                mac: MacAddr(v.mac).to_string(),
                has_tap: tx_ports.get(k.port, 0).is_ok(),
            });
        }
    }
    let now = monotonic_ns();
    let mut out = Vec::new();
    for (g, mut members) in by_group {
        members.sort_by_key(|m| m.index);
        let st = state.get(&g, 0).unwrap_or_default();
        // As `groups::active_member` and `forward` decide: a recorded
        // member of this slot, whose tap can take the frame.
        let recorded = members
            .iter()
            .find(|m| m.index == st.active && st.active != 0);
        let (active, lost_active) = match recorded {
            Some(m) if m.has_tap => (Some(m.port.clone()), None),
            Some(m) => (None, Some(m.port.clone())),
            None => (None, None),
        };
        out.push(GroupView {
            index: g,
            name: names.get(&g, 0).map(|m| c_str(&m.name)).unwrap_or_default(),
            active,
            lost_active,
            changed_secs_ago: (st.changed_ns != 0)
                .then(|| now.saturating_sub(st.changed_ns) as f64 / 1e9),
            changes: st.changes,
            members,
        });
    }
    Ok(out)
}

pub fn render_groups(groups: &[GroupView]) -> String {
    let mut s = String::new();
    if groups.is_empty() {
        s.push_str("no shared addresses\n");
    }
    for g in groups {
        let _ = writeln!(s, "group {} ({})", g.index, g.name);
        for m in &g.members {
            let mark = if g.active.as_deref() == Some(m.port.as_str()) {
                " * active"
            } else if !m.has_tap {
                " (no tap: receives nothing)"
            } else {
                ""
            };
            let _ = writeln!(s, "  {} {}{mark}", m.port, m.mac);
        }
        let last = match g.changed_secs_ago {
            Some(ago) => format!("last change {ago:.1}s ago, {} change(s)", g.changes),
            None => "never claimed".into(),
        };
        match (&g.active, &g.lost_active) {
            (Some(_), _) => {
                let ago = g.changed_secs_ago.unwrap_or_default();
                let _ = writeln!(s, "  active since {ago:.1}s ago, {} change(s)", g.changes);
            }
            (None, Some(lost)) => {
                let _ = writeln!(
                    s,
                    "  no active member: {lost} claimed the address but its tap is gone \
                     (the next frame for the group forgets it); traffic goes to every member ({last})"
                );
            }
            (None, None) => {
                let _ = writeln!(
                    s,
                    "  no active member: traffic goes to every member ({last})"
                );
            }
        }
    }
    s
}

/// One tracked connection, as its zone's port sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnView {
    /// The port the connection belongs to (its zone).
    pub port: String,
    /// "egress" if the port opened it, "ingress" if it accepted it.
    pub direction: String,
    pub protocol: u8,
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    pub state: String,
    pub expires_in_secs: f64,
    pub packets: u64,
}

/// The connection-tracking table as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct CtTableView {
    /// Entries the table holds (`dataplane run --max-connections`).
    pub capacity: u32,
    /// Entries in it, dead ones not yet overwritten or evicted included.
    pub entries: u64,
    /// Connections not expired.
    pub live: u64,
    /// New entries ever inserted.
    pub created: u64,
    /// Entries removed on purpose: rules that no longer allow them, or
    /// their port gone.
    pub removed: u64,
    /// Entries the full table evicted to make room (least recently used):
    /// created - removed - entries.
    pub evicted: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConntrackView {
    pub table: CtTableView,
    /// Every live connection.
    pub connections: Vec<ConnView>,
}

/// The connection-tracking table's counts, without listing its entries
/// (what the metrics need).
pub fn conntrack_table(dir: &Path) -> Result<CtTableView> {
    walk_conntrack(dir, |_, _, _| Ok(()))
}

/// The connection-tracking table: its counts and every live entry.
pub fn conntrack(dir: &Path) -> Result<ConntrackView> {
    let meta: Array<MapData, PortMeta> = pinned::PORT_META(dir)?;
    let mut out = Vec::new();
    let table = walk_conntrack(dir, |k, e, now| {
        let port = meta
            .get(&k.zone, 0)
            .map(|m| c_str(&m.id))
            .unwrap_or_else(|_| format!("#{}", k.zone));
        let addr = |a: [u8; 16]| {
            if k.ipv6 != 0 {
                Ipv6Addr::from(a).to_string()
            } else {
                Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
            }
        };
        out.push(ConnView {
            port,
            direction: if e.dir == common::POLICY_DIR_EGRESS {
                "egress".into()
            } else {
                "ingress".into()
            },
            protocol: k.proto,
            src: addr(k.src),
            dst: addr(k.dst),
            sport: u16::from_be_bytes(k.sport),
            dport: u16::from_be_bytes(k.dport),
            state: match e.state {
                common::CT_OPENING => "opening",
                common::CT_ESTABLISHED => "established",
                common::CT_CLOSING => "closing",
                common::CT_CLOSED => "closed",
                _ => "new",
            }
            .into(),
            expires_in_secs: (e.expires_ns - now) as f64 / 1e9,
            packets: e.packets,
        });
        Ok(())
    })?;
    out.sort_by(|a, b| (&a.port, &a.src, &a.dst).cmp(&(&b.port, &b.src, &b.dst)));
    Ok(ConntrackView {
        table,
        connections: out,
    })
}

/// Reads the table's counters, then walks its entries once, handing each
/// live one (and the time it was judged live at) to `each`.
fn walk_conntrack(
    dir: &Path,
    mut each: impl FnMut(&common::CtKey, &common::CtEntry, u64) -> Result<()>,
) -> Result<CtTableView> {
    // Counters before entries: a connection made meanwhile can only make
    // the eviction count lower for this reading, never invent one.
    let stats: PerCpuArray<MapData, common::CtStats> = pinned::CT_STATS(dir)?;
    let (mut created, mut removed) = (0u64, 0u64);
    for index in [common::CT_STATS_DATAPATH, common::CT_STATS_AGENT] {
        for s in stats.get(&index, 0)?.iter() {
            created += s.created;
            removed += s.removed;
        }
    }
    let data = open_pinned(dir, common::names::CONNTRACK)?;
    let capacity = data.info()?.max_entries();
    let ct: HashMap<MapData, common::CtKey, common::CtEntry> =
        Map::from_map_data(data)?.try_into()?;
    let now = monotonic_ns();
    let (mut entries, mut live) = (0u64, 0u64);
    for item in ct.iter() {
        let (k, e) = item?;
        entries += 1;
        if e.expires_ns >= now {
            live += 1;
            each(&k, &e, now)?;
        }
    }
    Ok(CtTableView {
        capacity,
        entries,
        live,
        created,
        removed,
        evicted: created.saturating_sub(removed).saturating_sub(entries),
    })
}

pub fn render_conntrack(view: &ConntrackView) -> String {
    let t = &view.table;
    let mut s = format!(
        "{} connection(s); table: {} of {} entries, {} created, {} removed, {} evicted when full\n",
        t.live, t.entries, t.capacity, t.created, t.removed, t.evicted
    );
    if t.entries >= u64::from(t.capacity) {
        s += "  the table is full: each new connection evicts the least recently used one\n";
    }
    for c in &view.connections {
        let _ = writeln!(
            s,
            "  {} {:<7} proto {:<3} {}:{} -> {}:{} {} ({} packets, expires in {:.0} s)",
            c.port,
            c.direction,
            c.protocol,
            c.src,
            c.sport,
            c.dst,
            c.dport,
            c.state,
            c.packets,
            c.expires_in_secs
        );
    }
    s
}

/// A security group's counters.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityGroupView {
    pub id: String,
    /// Connections its rules let in and out.
    pub ingress_allowed: u64,
    pub egress_allowed: u64,
}

/// Every security group of the live configuration with its counters.
pub fn security_groups(dir: &Path) -> Result<Vec<SecurityGroupView>> {
    let meta: Array<MapData, common::SgMeta> = pinned::SG_META(dir)?;
    let stats: PerCpuArray<MapData, common::SgStats> = pinned::SG_STATS(dir)?;
    let mut out = Vec::new();
    for i in 1..meta.len() {
        let id = c_str(&meta.get(&i, 0)?.id);
        if id.is_empty() {
            continue;
        }
        let (mut ingress, mut egress) = (0, 0);
        for s in stats.get(&i, 0)?.iter() {
            ingress += s.ingress_allowed;
            egress += s.egress_allowed;
        }
        out.push(SecurityGroupView {
            id,
            ingress_allowed: ingress,
            egress_allowed: egress,
        });
    }
    Ok(out)
}

pub fn render_security_groups(view: &[SecurityGroupView]) -> String {
    let mut s = format!("{} security group(s)\n", view.len());
    for g in view {
        let _ = writeln!(
            s,
            "  {}: connections allowed in {}, out {}",
            g.id, g.ingress_allowed, g.egress_allowed
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: u64, capacity: u32) -> ConntrackView {
        ConntrackView {
            table: CtTableView {
                capacity,
                entries,
                live: entries,
                created: entries + 5,
                removed: 5,
                evicted: 0,
            },
            connections: Vec::new(),
        }
    }

    #[test]
    fn conntrack_says_the_table_is_full_only_when_it_is() {
        let text = render_conntrack(&table(3, 131072));
        assert!(text.contains("3 of 131072 entries"), "{text}");
        assert!(
            !text.contains("full)") && !text.contains("is full"),
            "{text}"
        );
        let text = render_conntrack(&table(128, 128));
        assert!(text.contains("the table is full"), "{text}");
    }

    #[test]
    fn groups_without_an_active_member_say_so() {
        let member = |port: &str, has_tap| GroupMemberView {
            port: port.into(),
            index: 1,
            mac: "00:00:5e:00:01:01".into(),
            has_tap,
        };
        let group = |active: Option<&str>, lost: Option<&str>| GroupView {
            index: 1,
            name: "net 10.0.0.100".into(),
            members: vec![member("m1", lost.is_none()), member("m2", true)],
            active: active.map(Into::into),
            lost_active: lost.map(Into::into),
            changed_secs_ago: Some(7.0),
            changes: 2,
        };
        let text = render_groups(&[group(None, None)]);
        assert!(!text.contains("active since"), "{text}");
        assert!(text.contains("no active member: traffic goes to every member"));
        let text = render_groups(&[group(None, Some("m1"))]);
        assert!(!text.contains("* active"), "{text}");
        assert!(text.contains("m1 claimed the address but its tap is gone"));
        let text = render_groups(&[group(Some("m2"), None)]);
        assert!(text.contains("active since 7.0s ago"), "{text}");
    }
}

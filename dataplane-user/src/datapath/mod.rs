//! The running datapath: the loaded programs, their pinned maps and the
//! interfaces they are attached to.
//!
//! [`Datapath::apply`] writes what the compiler's journal says changed into
//! the inactive slot of every configuration map (plus the unslotted maps a
//! change needs before it is live: new ports' counters and taps, groups'
//! state, flood sets), attaches the program to new taps, then makes the
//! slot live with one update of `CONFIG`. What must wait until no packet
//! can use the old slot (detaching taps that left, their device-map
//! entries, their connections) is done after the switch or, when it needs
//! the grace period, by [`Datapath::housekeeping`]. A change that does not
//! fit is refused before any map is touched.

mod flood;
mod links;
pub mod maps;
pub mod pins;
mod slots;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuValues,
    programs::{ProgramFd, Xdp},
    util::nr_cpus,
};
use common::{
    CT_STATS_AGENT, CtStats, DpConfig, GroupMeta, GroupState, JUMP_ADVERT, JUMP_ICMP_V4,
    JUMP_ICMP_V6, JUMP_ROUTE_V4, JUMP_ROUTE_V6, JUMP_TO_EXTERNAL, JUMP_TO_ROUTER, Limits, PortMeta,
    PortStats, SgMeta, SgStats, TunnelConfig,
};
use dataplane_config::desired::Desired;
use tracing::{debug, info};

pub use maps::{MapSpec, Maps, pinned};
pub use pins::instance_dir;
pub use slots::SyncStats;

/// The eBPF object built from `dataplane-ebpf` (see build.rs).
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dataplane-ebpf.o"));

/// Name of the XDP program run on frames a VM sends.
pub const PROG_FROM_VM: &str = "from_vm";
/// Name of the device-map program run for each port a frame is sent to.
pub const PROG_TO_VM: &str = "to_vm";
/// The device-map program of entries for other chassis (the tunnel veth).
pub const PROG_TO_TUNNEL: &str = "to_tunnel";
/// `to_vm` as a plain XDP program, for BPF_PROG_TEST_RUN (trace, bench).
pub const PROG_TO_VM_TRACE: &str = "to_vm_trace";
/// The programs `dataplane trace` runs, pinned under `programs/` so that
/// it runs this run's very programs, with the maps and tail calls they use.
pub const TRACED_PROGRAMS: [&str; 3] = [PROG_FROM_VM, PROG_TO_VM_TRACE, PROG_FROM_UPLINK];
/// XDP on the underlay interface: frames from other chassis.
pub const PROG_FROM_UNDERLAY: &str = "from_underlay";
/// XDP on an uplink: frames from an external network.
pub const PROG_FROM_UPLINK: &str = "from_uplink";
/// XDP_PASS, on the tunnel veth's far end (a veth delivers redirected
/// frames only to a peer with an XDP program or GRO).
pub const PROG_PASS: &str = "pass";
/// TC on the tunnel veth's far end: encapsulation to other chassis.
pub const PROG_TUNNEL_TX: &str = "tunnel_tx";
/// The routing programs `from_vm` tail-calls into, by `JUMP` slot.
const ROUTING_PROGRAMS: [(&str, u32); 7] = [
    ("to_external", JUMP_TO_EXTERNAL),
    ("router_advert", JUMP_ADVERT),
    ("route_v4", JUMP_ROUTE_V4),
    ("route_v6", JUMP_ROUTE_V6),
    ("to_router", JUMP_TO_ROUTER),
    ("icmp_v4", JUMP_ICMP_V4),
    ("icmp_v6", JUMP_ICMP_V6),
];

/// How long after a slot switch the old slot may still be read by packets
/// that started before it. XDP programs run to completion within
/// microseconds under RCU; this is a wide margin.
const SLOT_GRACE: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct Options {
    /// Name of the bpffs directory: `/sys/fs/bpf/<instance>`.
    pub instance: String,
    /// Ports this datapath can hold.
    pub max_ports: u32,
    /// Connections the tracking table holds before it evicts the least
    /// recently used.
    pub max_connections: u32,
    /// Attach the programs to the ports' taps. Off only for tests that drive
    /// the programs with BPF_PROG_TEST_RUN.
    pub attach: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            instance: "dataplane".into(),
            max_ports: 4096,
            max_connections: common::MAX_CONNTRACK,
            attach: true,
        }
    }
}

impl Options {
    pub fn limits(&self) -> Limits {
        Limits {
            max_ports: self.max_ports,
            max_connections: self.max_connections,
        }
    }
}

/// Fault injection for the crash-consistency tests: an agent whose
/// environment has `DATAPLANE_FAILPOINT=NAME` aborts when it reaches the
/// point NAME, as a crash would (no unwinding, no cleanup). Points:
/// `apply-staged` (the new slot written, new taps attached, the live slot
/// not switched yet) and `apply-switched` (the new slot live, nothing of
/// the old one cleaned up yet).
fn failpoint(name: &str) {
    if std::env::var_os("DATAPLANE_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("DATAPLANE_FAILPOINT={name}: aborting here");
        std::process::abort();
    }
}

/// The programs of device-map entries: `to_vm` on a port's tap,
/// `to_tunnel` on the tunnel interface (other chassis).
pub struct DevmapPrograms {
    to_vm: ProgramFd,
    to_tunnel: ProgramFd,
    tunnel_ifindex: Option<u32>,
}

impl DevmapPrograms {
    fn for_ifindex(&self, ifindex: u32) -> &ProgramFd {
        if Some(ifindex) == self.tunnel_ifindex {
            &self.to_tunnel
        } else {
            &self.to_vm
        }
    }
}

/// What an apply changed.
#[derive(Clone, Debug, Default)]
pub struct ApplySummary {
    pub slot: u32,
    pub generation: u64,
    pub entries: SyncStats,
    pub attached: Vec<u32>,
    pub detached: Vec<u32>,
    pub elapsed: Duration,
}

/// What the previous run left: indexes to keep, and ports whose state was
/// never cleaned up (it crashed) and must be before their index is reused.
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    pub ports: Vec<(String, u32)>,
    pub groups: Vec<(String, u32)>,
    pub security_groups: Vec<(String, u32)>,
    pub stale_ports: Vec<u32>,
}

/// The meta entries the kernel holds, as written: a new object whose meta
/// differs from its index's gets its state (counters, active member) reset.
#[derive(Default)]
struct Written {
    ports: BTreeMap<u32, PortMeta>,
    groups: BTreeMap<u32, GroupMeta>,
    sgs: BTreeMap<u32, SgMeta>,
    /// TX_PORTS: port index -> ifindex (0: written by a previous run).
    tx: BTreeMap<u32, u32>,
}

/// Port state to clean once no packet of the old slot can use it.
struct Retired {
    since: Instant,
    port: u32,
}

pub struct Datapath {
    ebpf: Ebpf,
    attach: bool,
    dir: PathBuf,
    maps: Maps,
    current: DpConfig,
    last_switch: Instant,
    progs: DevmapPrograms,
    flood: flood::FloodSets,
    links: links::Links,
    tunnel_links: links::NamedLinks,
    /// `from_uplink` on each uplink, by physical network.
    uplink_links: links::NamedLinks,
    written: Written,
    retired: Vec<Retired>,
    /// The first apply compares every desired entry, not just the changed
    /// ones (a previous run's state may differ anywhere).
    first: bool,
    adopted: Adopted,
}

impl Datapath {
    /// Loads the programs, creating the pinned maps or reusing the ones a
    /// previous run left, and reads back what they hold.
    pub fn open(opts: Options) -> Result<Datapath> {
        if BPF_OBJECT.is_empty() {
            bail!(
                "this binary was built without its eBPF programs (DATAPLANE_BPF_OBJECT=stub); \
                 build it with `cargo build -p dataplane-user` after `cargo xtask setup`"
            );
        }
        pins::ensure_bpffs()?;
        let dir = instance_dir(&opts.instance);
        let fresh = !dir.exists();
        let opened = Self::open_in(opts, dir.clone());
        if opened.is_err() && fresh {
            // Nothing ran from this state yet: leave no half-made instance.
            let _ = pins::remove(&dir);
        }
        opened
    }

    fn open_in(opts: Options, dir: PathBuf) -> Result<Datapath> {
        let limits = opts.limits();
        let specs = maps::specs(limits);
        pins::prepare(&dir, &specs)?;
        let mut ebpf = load(&dir, &specs)?;
        let mut maps = Maps::take(&mut ebpf, limits)?;
        let progs = load_programs(&mut ebpf, &dir, &mut maps.jump)?;
        let current = maps.config.get(&0, 0)?;
        let flood = flood::FloodSets::open(&maps.flood, dir.clone());
        let mut dp = Datapath {
            ebpf,
            attach: opts.attach,
            links: links::Links::new(&dir),
            tunnel_links: links::NamedLinks::new(&dir, "tunnel"),
            uplink_links: links::NamedLinks::new(&dir, "uplink"),
            dir,
            maps,
            current,
            // A previous run may have switched slots just now.
            last_switch: Instant::now(),
            progs,
            flood,
            written: Written::default(),
            retired: Vec::new(),
            first: true,
            adopted: Adopted::default(),
        };
        dp.read_back()?;
        Ok(dp)
    }

    /// Reads what a previous run left: the meta of live ports, groups and
    /// security groups (their indexes, counters and active members go on),
    /// and the taps in `TX_PORTS` (rewritten with this run's `to_vm`).
    fn read_back(&mut self) -> Result<()> {
        let slot = self.current.active_slot;
        // Live: ports of the live slot, here or on other chassis.
        let live: BTreeSet<u32> = self
            .maps
            .ports
            .contents(slot)
            .values()
            .map(|p| p.index)
            .chain(self.maps.remote_ports.contents(slot).keys().map(|k| k.port))
            .collect();
        for i in 1..self.maps.port_meta.len() {
            let meta = self.maps.port_meta.get(&i, 0)?;
            let id = pins::c_str(&meta.id);
            if id.is_empty() {
                continue;
            }
            self.written.ports.insert(i, meta);
            if live.contains(&i) {
                self.adopted.ports.push((id, i));
            } else {
                self.adopted.stale_ports.push(i);
            }
        }
        let live_groups: BTreeSet<u32> = self
            .maps
            .group_members
            .contents(slot)
            .keys()
            .map(|k| k.group)
            .collect();
        for &g in &live_groups {
            let meta = self.maps.group_meta.get(&g, 0)?;
            let name = pins::c_str(&meta.name);
            if !name.is_empty() {
                self.written.groups.insert(g, meta);
                self.adopted.groups.push((name, g));
            }
        }
        for i in 1..self.maps.sg_meta.len() {
            let meta = self.maps.sg_meta.get(&i, 0)?;
            let id = pins::c_str(&meta.id);
            if !id.is_empty() {
                self.written.sgs.insert(i, meta);
                self.adopted.security_groups.push((id, i));
            }
        }
        for entry in self.maps.tx_ports.iter() {
            let (index, _) = entry?;
            self.written.tx.insert(index, 0);
        }
        for &port in &self.adopted.stale_ports {
            self.retired.push(Retired {
                since: Instant::now(),
                port,
            });
        }
        if !self.adopted.ports.is_empty() {
            info!(
                ports = self.adopted.ports.len(),
                slot,
                generation = self.current.generation,
                "adopted pinned datapath state"
            );
        }
        Ok(())
    }

    /// Attaches the tunnel's programs to its interfaces (taking over a
    /// previous run's links) and tells the programs about them; `port` is
    /// the index of the tunnel pseudo port (its counters).
    pub fn attach_tunnel(&mut self, dev: &crate::tunnel::Devices, port: u32) -> Result<()> {
        let xdp: &mut Xdp = self
            .ebpf
            .program_mut(PROG_FROM_UNDERLAY)
            .context("program from_underlay missing")?
            .try_into()?;
        self.tunnel_links.xdp("underlay", xdp, dev.underlay)?;
        let pass: &mut Xdp = self
            .ebpf
            .program_mut(PROG_PASS)
            .context("program pass missing")?
            .try_into()?;
        self.tunnel_links.xdp("rx", pass, dev.rx)?;
        let tc: &mut aya::programs::SchedClassifier = self
            .ebpf
            .program_mut(PROG_TUNNEL_TX)
            .context("program tunnel_tx missing")?
            .try_into()?;
        self.tunnel_links
            .tc_ingress("tx", tc, crate::tunnel::RX_DEV)?;
        let config = TunnelConfig {
            tx_ifindex: dev.tx,
            vxlan_ifindex: dev.vxlan,
            local_ip: dev.underlay_ip.octets(),
            port,
        };
        self.maps.tunnel.set(0, config, 0)?;
        self.progs.tunnel_ifindex = Some(dev.tx);
        Ok(())
    }

    /// Attaches `from_uplink` to the interface carrying the external
    /// networks of `physnet` (taking over a previous run's link).
    /// Without `Options::attach` (tests driving the programs themselves),
    /// nothing is attached.
    pub fn attach_uplink(&mut self, physnet: &str, ifindex: u32) -> Result<()> {
        if !self.attach {
            return Ok(());
        }
        let xdp: &mut Xdp = self
            .ebpf
            .program_mut(PROG_FROM_UPLINK)
            .context("program from_uplink missing")?
            .try_into()?;
        self.uplink_links.xdp(physnet, xdp, ifindex)
    }

    /// A group's runtime state (its active member, its count of changes).
    pub fn group_state(&self, group: u32) -> Option<GroupState> {
        self.maps.group_state.get(&group, 0).ok()
    }

    /// What the previous run left (indexes to keep, ports to clean up).
    pub fn adopted(&self) -> &Adopted {
        &self.adopted
    }

    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn active_slot(&self) -> u32 {
        self.current.active_slot
    }

    pub fn generation(&self) -> u64 {
        self.current.generation
    }

    /// Makes what `desired`'s journal says changed live. On an error the
    /// live slot is untouched and every changed key stays pending, so the
    /// caller can roll the change back and the next apply still converges.
    pub fn apply(&mut self, desired: &Desired) -> Result<ApplySummary> {
        let started = Instant::now();
        self.maps.check_capacity(&desired.slotted)?;
        flood::FloodSets::check_capacity(desired)?;
        let since = self.last_switch.elapsed();
        if since < SLOT_GRACE {
            std::thread::sleep(SLOT_GRACE - since);
        }
        self.maps.mark(&desired.slotted);
        self.flood.mark(desired);
        let target = 1 - self.current.active_slot;
        let (entries, attached) = self.stage(target, desired)?;
        failpoint("apply-staged");
        let next = DpConfig {
            active_slot: target,
            flags: self.current.flags,
            generation: self.current.generation + 1,
        };
        self.maps
            .config
            .set(0, next, 0)
            .context("switching the live slot")?;
        failpoint("apply-switched");
        self.current = next;
        self.last_switch = Instant::now();
        let detached = self.after_switch(desired)?;
        self.first = false;
        let summary = ApplySummary {
            slot: target,
            generation: next.generation,
            entries,
            attached,
            detached,
            elapsed: started.elapsed(),
        };
        debug!(?summary, "configuration applied");
        Ok(summary)
    }

    /// Everything before the switch: the target slot, the state of new
    /// objects, new taps.
    fn stage(&mut self, target: u32, d: &Desired) -> Result<(SyncStats, Vec<u32>)> {
        self.new_objects(d)?;
        let entries = self.maps.sync(target, &d.slotted)?;
        self.sync_tx_ports(d)?;
        self.flood
            .sync(&mut self.maps.flood, target, d, &self.progs)?;
        let mut attached = Vec::new();
        if self.attach {
            let wanted: Vec<u32> = if self.first {
                d.slotted.ports.keys().map(|k| k.ifindex).collect()
            } else {
                d.slotted.ports.changed().map(|k| k.ifindex).collect()
            };
            for ifindex in wanted {
                let key = common::PortKey { slot: 0, ifindex };
                if d.slotted.ports.contains_key(&key) && !self.links.contains(ifindex) {
                    let xdp = from_vm(&mut self.ebpf)?;
                    self.links.attach(xdp, ifindex)?;
                    attached.push(ifindex);
                }
            }
        }
        Ok((entries, attached))
    }

    /// Ports, groups and security groups new at an index (or whose meta
    /// changed) start with clean state; their meta is written.
    fn new_objects(&mut self, d: &Desired) -> Result<()> {
        let cpus = nr_cpus().map_err(|(_, e)| e)?;
        for &i in d.port_meta.changed() {
            let Some(meta) = d.port_meta.get(&i) else {
                continue;
            };
            if self.written.ports.get(&i) != Some(meta) {
                let zeros = PerCpuValues::try_from(vec![PortStats::default(); cpus])?;
                self.maps.port_stats.set(i, zeros, 0)?;
                self.maps.port_meta.set(i, meta, 0)?;
                self.written.ports.insert(i, *meta);
            }
        }
        for &g in d.group_meta.changed() {
            let Some(meta) = d.group_meta.get(&g) else {
                continue;
            };
            if self.written.groups.get(&g) != Some(meta) {
                self.maps.group_state.set(g, GroupState::default(), 0)?;
                self.maps.group_meta.set(g, meta, 0)?;
                self.written.groups.insert(g, *meta);
            }
        }
        for &i in d.sg_meta.changed() {
            let Some(meta) = d.sg_meta.get(&i) else {
                continue;
            };
            if self.written.sgs.get(&i) != Some(meta) {
                let zeros = PerCpuValues::try_from(vec![SgStats::default(); cpus])?;
                self.maps.sg_stats.set(i, zeros, 0)?;
                self.maps.sg_meta.set(i, meta, 0)?;
                self.written.sgs.insert(i, *meta);
            }
        }
        Ok(())
    }

    /// Port index -> tap, with `to_vm` on each entry. Not slotted: indexes
    /// are stable, so entries are only added or repointed here; removals
    /// wait for the grace period.
    fn sync_tx_ports(&mut self, d: &Desired) -> Result<()> {
        let keys: Vec<u32> = if self.first {
            d.tx_ports.keys().copied().collect()
        } else {
            d.tx_ports.changed().copied().collect()
        };
        for index in keys {
            let Some(&ifindex) = d.tx_ports.get(&index) else {
                continue;
            };
            if self.written.tx.get(&index) != Some(&ifindex) {
                self.maps
                    .tx_ports
                    .insert(index, ifindex, Some(self.progs.for_ifindex(ifindex)), 0)
                    .with_context(|| format!("TX_PORTS entry of port {index}"))?;
                self.written.tx.insert(index, ifindex);
            }
        }
        Ok(())
    }

    /// After the switch: taps that left are detached, meta of what left is
    /// cleared, and ports that left are retired (their device-map entries
    /// and connections go once the old slot is unused).
    fn after_switch(&mut self, d: &Desired) -> Result<Vec<u32>> {
        let mut detached = Vec::new();
        let stale: Vec<u32> = self
            .links
            .ifindexes()
            .into_iter()
            .filter(|&i| {
                !d.slotted.ports.contains_key(&common::PortKey {
                    slot: 0,
                    ifindex: i,
                })
            })
            .collect();
        for ifindex in stale {
            let xdp = from_vm(&mut self.ebpf)?;
            self.links.detach(xdp, ifindex);
            detached.push(ifindex);
        }
        for &i in d.port_meta.changed() {
            if d.port_meta.get(&i).is_none() && self.written.ports.remove(&i).is_some() {
                self.maps.port_meta.set(i, PortMeta::default(), 0)?;
                self.retired.push(Retired {
                    since: Instant::now(),
                    port: i,
                });
            }
        }
        self.active_members(d)?;
        for &g in d.group_meta.changed() {
            if d.group_meta.get(&g).is_none() && self.written.groups.remove(&g).is_some() {
                self.maps.group_meta.set(g, GroupMeta::default(), 0)?;
            }
        }
        for &i in d.sg_meta.changed() {
            if d.sg_meta.get(&i).is_none() && self.written.sgs.remove(&i).is_some() {
                self.maps.sg_meta.set(i, SgMeta::default(), 0)?;
            }
        }
        // A port whose tap went (but that stays) loses its device-map entry
        // once the old slot is unused, like a port that left.
        for &i in d.tx_ports.changed() {
            if d.tx_ports.get(&i).is_none() && d.port_meta.get(&i).is_some() {
                self.retired.push(Retired {
                    since: Instant::now(),
                    port: i,
                });
            }
        }
        Ok(detached)
    }

    /// The active members the database named: written once per change of
    /// the record (the datapath's own learning goes on from there); a
    /// record that went takes the member with it.
    fn active_members(&mut self, d: &Desired) -> Result<()> {
        for &g in d.group_active.changed() {
            let Ok(mut state) = self.maps.group_state.get(&g, 0) else {
                continue;
            };
            let want = d.group_active.get(&g).copied();
            let now = match want {
                Some(p) => p,
                // The record went: only a member it named stops being active.
                None if d.group_active_before(g) == Some(state.active) => 0,
                None => continue,
            };
            if state.active != now {
                state.active = now;
                state.changed_ns = monotonic_ns();
                state.changes += 1;
                self.maps.group_state.set(g, state, 0)?;
            }
        }
        Ok(())
    }

    /// Cleans up after ports that left, once no packet can use the old slot:
    /// their device-map entries and their connections (a port that later
    /// reuses the index must not inherit them). Returns the indexes of the
    /// ports that are gone and clean: the compiler may hand them out again.
    pub fn housekeeping(&mut self, desired: &Desired) -> Result<Vec<u32>> {
        let ready: Vec<u32> = self
            .retired
            .iter()
            .filter(|r| r.since.elapsed() >= SLOT_GRACE)
            .map(|r| r.port)
            .collect();
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        self.retired.retain(|r| r.since.elapsed() < SLOT_GRACE);
        let mut gone = BTreeSet::new();
        for port in ready {
            if desired.tx_ports.get(&port).is_none() && self.written.tx.remove(&port).is_some() {
                let _ = self.maps.tx_ports.remove(port);
            }
            if desired.port_meta.get(&port).is_none() {
                gone.insert(port);
            }
        }
        if !gone.is_empty() {
            self.flush_connections(&gone)?;
        }
        Ok(gone.into_iter().collect())
    }

    /// Removes the connections of the zones of `ports`.
    fn flush_connections(&mut self, ports: &BTreeSet<u32>) -> Result<()> {
        let stale: Vec<common::CtKey> = self
            .maps
            .conntrack
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| ports.contains(&k.zone))
            .collect();
        let removed = stale
            .iter()
            .filter(|key| self.maps.conntrack.remove(key).is_ok())
            .count();
        self.count_agent_removals(removed as u64)
    }

    /// Whether retired ports are waiting for their cleanup.
    pub fn has_retired(&self) -> bool {
        !self.retired.is_empty()
    }

    /// Adds `n` to the agent's count of connections it removed (see
    /// `CtStats`), on CPU 0's copy: the agent is its entry's only writer.
    fn count_agent_removals(&mut self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut values: Vec<CtStats> = self.maps.ct_stats.get(&CT_STATS_AGENT, 0)?.to_vec();
        values[0].removed += n;
        self.maps
            .ct_stats
            .set(CT_STATS_AGENT, PerCpuValues::try_from(values)?, 0)?;
        Ok(())
    }

    /// Takes over the links a previous run pinned.
    pub fn adopt_links(&mut self) -> Result<usize> {
        let xdp = from_vm(&mut self.ebpf)?;
        self.links.adopt(xdp)
    }

    /// What of this instance's pinned state is gone although this run did
    /// not remove it (the datapath cannot outlive the agent without it):
    /// the maps directory, or links of this run.
    pub fn missing_pins(&self) -> Vec<PathBuf> {
        let maps = self.dir.join("maps");
        let mut missing = if maps.exists() { vec![] } else { vec![maps] };
        missing.extend(self.links.missing_pins());
        missing
    }

    /// With `remove`, detaches from every interface and removes the pinned
    /// maps and links so nothing of this instance stays in the kernel;
    /// without, leaves the datapath running on its pinned links and maps
    /// for the next run to adopt.
    pub fn shutdown(mut self, remove: bool) -> Result<()> {
        if remove {
            let xdp = from_vm(&mut self.ebpf)?;
            self.links.detach_all(xdp);
            self.tunnel_links.detach_all();
            self.uplink_links.detach_all();
            if self.progs.tunnel_ifindex.is_some() {
                crate::tunnel::remove();
            }
        }
        let dir = self.dir.clone();
        drop(self);
        if remove {
            pins::remove(&dir)?;
        }
        Ok(())
    }
}

/// CLOCK_MONOTONIC in ns, as the programs' `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn from_vm(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    Ok(ebpf
        .program_mut(PROG_FROM_VM)
        .context("program from_vm missing")?
        .try_into()?)
}

/// Loads the object with every map sized and pinned as `specs` say.
fn load(dir: &std::path::Path, specs: &[MapSpec]) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    let map_dir = dir.join("maps");
    let paths: Vec<(&str, PathBuf)> = specs
        .iter()
        .map(|s| (s.name, map_dir.join(s.name)))
        .collect();
    for spec in specs {
        loader.map_max_entries(spec.name, spec.max_entries);
    }
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(BPF_OBJECT).context("loading the eBPF object")
}

/// Loads every program through the verifier, pins the traced ones, fills
/// the tail-call table; returns `to_vm`'s fd for the device maps.
fn load_programs(
    ebpf: &mut Ebpf,
    dir: &std::path::Path,
    jump: &mut aya::maps::ProgramArray<aya::maps::MapData>,
) -> Result<DevmapPrograms> {
    for name in [
        PROG_FROM_VM,
        PROG_TO_VM,
        PROG_TO_VM_TRACE,
        PROG_TO_TUNNEL,
        PROG_FROM_UNDERLAY,
        PROG_FROM_UPLINK,
        PROG_PASS,
    ] {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("the verifier rejected {name}"))?;
    }
    let tunnel_tx: &mut aya::programs::SchedClassifier = ebpf
        .program_mut(PROG_TUNNEL_TX)
        .context("program tunnel_tx missing")?
        .try_into()?;
    tunnel_tx
        .load()
        .context("the verifier rejected tunnel_tx")?;
    let fd = |ebpf: &mut Ebpf, name: &str| -> Result<ProgramFd> {
        let prog: &mut Xdp = ebpf.program_mut(name).expect("loaded").try_into()?;
        Ok(prog.fd()?.try_clone()?)
    };
    let progs = DevmapPrograms {
        to_vm: fd(ebpf, PROG_TO_VM)?,
        to_tunnel: fd(ebpf, PROG_TO_TUNNEL)?,
        tunnel_ifindex: None,
    };
    for (name, slot) in ROUTING_PROGRAMS {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("the verifier rejected {name}"))?;
        jump.set(slot, prog.fd()?, 0)
            .with_context(|| format!("installing {name} in JUMP"))?;
    }
    pin_programs(ebpf, dir)?;
    Ok(progs)
}

/// Pins every program this run loaded under `programs/<name>`, replacing
/// a previous run's: `dataplane trace` runs the traced ones
/// ([`TRACED_PROGRAMS`]), `dataplane show programs` reads the kernel's
/// statistics of all of them.
fn pin_programs(ebpf: &mut Ebpf, dir: &std::path::Path) -> Result<()> {
    let programs = dir.join("programs");
    std::fs::create_dir_all(&programs)?;
    for (name, prog) in ebpf.programs_mut() {
        if prog.fd().is_err() {
            // Not loaded by the agent (the bench's own programs).
            continue;
        }
        let path = programs.join(name);
        let _ = std::fs::remove_file(&path);
        prog.pin(&path)
            .with_context(|| format!("pinning {}", path.display()))?;
    }
    Ok(())
}

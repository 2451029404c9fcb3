//! The running datapath: the loaded programs, their pinned maps and the
//! interfaces they are attached to.
//!
//! Applying a configuration writes it into the inactive slot of every
//! configuration map, attaches the program to new taps, then makes the slot
//! live with one update of `CONFIG`; taps that left the configuration are
//! detached after that. A configuration that cannot be compiled or does not
//! fit is refused before any map is touched.

mod keys;
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
    maps::{Array, DevMapHash, HashOfMaps, Map, MapData, PerCpuArray, PerCpuValues, ProgramArray},
    programs::{
        ProgramFd, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
    util::nr_cpus,
};
use common::{
    CT_STATS_AGENT, CtEntry, CtKey, CtStats, DpConfig, FdbEntry, FdbKey, FloodKey, GroupMember,
    GroupMemberKey, GroupMeta, GroupState, JUMP_ROUTE_V4, JUMP_ROUTE_V6, MAX_FLOOD_MEMBERS, Neigh,
    NeighV4Key, NeighV6Key, PolicyEntry, PolicyKey, PortAddr, PortAddrV4Key, PortAddrV6Key,
    PortInfo, PortKey, PortMac, PortMacKey, PortMeta, PortStats, RemoteIdentity, RemoteV4Key,
    RemoteV6Key, Route, RouteV4Key, RouteV6Key, SgMeta, SgStats,
};
use tracing::{debug, info};

use dataplane_config::{
    compile::{self, Desired, Indexes},
    config::Topology,
};
pub use pins::{MapSpec, instance_dir};
use slots::{SlotHash, SlotLpm, SlotStore, SlottedMap, SyncStats};

/// The eBPF object built from `dataplane-ebpf` (see build.rs).
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dataplane-ebpf.o"));

/// Name of the XDP program run on frames a VM sends.
pub const PROG_FROM_VM: &str = "from_vm";
/// Name of the device-map program run for each port a frame is sent to.
pub const PROG_TO_VM: &str = "to_vm";

/// `to_vm` as a plain XDP program, for BPF_PROG_TEST_RUN (trace, bench).
pub const PROG_TO_VM_TRACE: &str = "to_vm_trace";
/// The programs `dataplane trace` runs, pinned under `programs/` so that
/// it runs this run's very programs, with the maps and tail calls they use.
pub const TRACED_PROGRAMS: [&str; 2] = [PROG_FROM_VM, PROG_TO_VM_TRACE];

/// Pins the programs `dataplane trace` runs, replacing a previous run's.
fn pin_programs(ebpf: &mut Ebpf, dir: &std::path::Path) -> Result<()> {
    let programs = dir.join("programs");
    std::fs::create_dir_all(&programs)?;
    for name in TRACED_PROGRAMS {
        let path = programs.join(name);
        let _ = std::fs::remove_file(&path);
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.pin(&path)
            .with_context(|| format!("pinning {}", path.display()))?;
    }
    Ok(())
}

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

pub struct Datapath {
    ebpf: Ebpf,
    attach: bool,
    dir: PathBuf,
    config: Array<MapData, DpConfig>,
    current: DpConfig,
    last_switch: Instant,
    ports: SlottedMap<SlotHash<PortKey, PortInfo>>,
    port_macs: SlottedMap<SlotHash<PortMacKey, PortMac>>,
    addrs_v4: SlottedMap<SlotLpm<PortAddrV4Key, PortAddr>>,
    addrs_v6: SlottedMap<SlotLpm<PortAddrV6Key, PortAddr>>,
    port_meta: Array<MapData, PortMeta>,
    port_stats: PerCpuArray<MapData, PortStats>,
    fdb: SlottedMap<SlotHash<FdbKey, FdbEntry>>,
    neigh_v4: SlottedMap<SlotLpm<NeighV4Key, Neigh>>,
    neigh_v6: SlottedMap<SlotLpm<NeighV6Key, Neigh>>,
    routes_v4: SlottedMap<SlotLpm<RouteV4Key, Route>>,
    routes_v6: SlottedMap<SlotLpm<RouteV6Key, Route>>,
    policy: SlottedMap<SlotLpm<PolicyKey, PolicyEntry>>,
    remote_v4: SlottedMap<SlotLpm<RemoteV4Key, RemoteIdentity>>,
    remote_v6: SlottedMap<SlotLpm<RemoteV6Key, RemoteIdentity>>,
    group_members: SlottedMap<SlotHash<GroupMemberKey, GroupMember>>,
    group_state: Array<MapData, GroupState>,
    group_meta: Array<MapData, GroupMeta>,
    tx_ports: DevMapHash<MapData>,
    /// What TX_PORTS holds: port index -> ifindex.
    tx_contents: BTreeMap<u32, u32>,
    flood: HashOfMaps<MapData, FloodKey, DevMapHash<MapData>>,
    to_vm_fd: ProgramFd,
    port_ix: Indexes,
    network_ix: Indexes,
    group_ix: Indexes,
    router_ix: Indexes,
    sg_ix: Indexes,
    sg_stats: PerCpuArray<MapData, SgStats>,
    /// Written only at `CT_STATS_AGENT`: connections the agent removes.
    ct_stats: PerCpuArray<MapData, CtStats>,
    sg_meta: Array<MapData, SgMeta>,
    conntrack: aya::maps::HashMap<MapData, CtKey, CtEntry>,
    /// What this run wrote into each slot's flood sets (domain -> (port,
    /// ifindex)): unchanged sets are left alone on the next apply.
    flood_contents: [BTreeMap<u32, BTreeSet<(u32, u32)>>; 2],
    /// XDP attachments by ifindex.
    links: BTreeMap<u32, Attachment>,
}

/// How `from_vm` is attached to a tap.
enum Attachment {
    /// A BPF link pinned under `links/<ifindex>`: it outlives this process,
    /// so the datapath keeps running while the agent restarts.
    Pinned { link: FdLink, pin: PathBuf },
    /// A netlink attachment (kernels without XDP links): ends with us.
    Owned(XdpLinkId),
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<T> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
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
        let specs = pins::map_specs(&opts);
        pins::prepare(&dir, &specs)?;

        let mut loader = EbpfLoader::new();
        let map_dir = dir.join("maps");
        let paths: Vec<(&str, PathBuf)> = specs
            .iter()
            .map(|s| (s.name, map_dir.join(s.name)))
            .collect();
        for spec in &specs {
            loader.map_max_entries(spec.name, spec.max_entries);
        }
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(BPF_OBJECT).context("loading the eBPF object")?;

        let prog: &mut Xdp = ebpf
            .program_mut(PROG_FROM_VM)
            .context("program from_vm missing")?
            .try_into()?;
        prog.load().context("the verifier rejected from_vm")?;
        let to_vm: &mut Xdp = ebpf
            .program_mut(PROG_TO_VM)
            .context("program to_vm missing")?
            .try_into()?;
        to_vm.load().context("the verifier rejected to_vm")?;
        let to_vm_fd = to_vm.fd()?.try_clone()?;
        let to_vm_trace: &mut Xdp = ebpf
            .program_mut(PROG_TO_VM_TRACE)
            .context("program to_vm_trace missing")?
            .try_into()?;
        to_vm_trace
            .load()
            .context("the verifier rejected to_vm_trace")?;
        pin_programs(&mut ebpf, &dir)?;
        // The routing programs from_vm tail-calls into.
        let mut jump: ProgramArray<MapData> = take(&mut ebpf, "JUMP")?;
        for (name, slot) in [("route_v4", JUMP_ROUTE_V4), ("route_v6", JUMP_ROUTE_V6)] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("the verifier rejected {name}"))?;
            jump.set(slot, prog.fd()?, 0)
                .with_context(|| format!("installing {name} in JUMP"))?;
        }

        let config: Array<MapData, DpConfig> = take(&mut ebpf, "CONFIG")?;
        let current = config.get(&0, 0)?;
        let cap = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.max_entries as usize / 2)
                .unwrap_or(0)
        };
        let ports: SlottedMap<SlotHash<PortKey, PortInfo>> =
            SlottedMap::open("PORTS", SlotHash(take(&mut ebpf, "PORTS")?), cap("PORTS"))?;
        let port_macs: SlottedMap<SlotHash<PortMacKey, PortMac>> = SlottedMap::open(
            "PORT_MACS",
            SlotHash(take(&mut ebpf, "PORT_MACS")?),
            cap("PORT_MACS"),
        )?;
        let addrs_v4: SlottedMap<SlotLpm<PortAddrV4Key, PortAddr>> = SlottedMap::open(
            "PORT_ADDRS_V4",
            SlotLpm(take(&mut ebpf, "PORT_ADDRS_V4")?),
            cap("PORT_ADDRS_V4"),
        )?;
        let addrs_v6: SlottedMap<SlotLpm<PortAddrV6Key, PortAddr>> = SlottedMap::open(
            "PORT_ADDRS_V6",
            SlotLpm(take(&mut ebpf, "PORT_ADDRS_V6")?),
            cap("PORT_ADDRS_V6"),
        )?;
        let port_meta: Array<MapData, PortMeta> = take(&mut ebpf, "PORT_META")?;
        let port_stats: PerCpuArray<MapData, PortStats> = take(&mut ebpf, "PORT_STATS")?;
        let fdb = SlottedMap::open("FDB", SlotHash(take(&mut ebpf, "FDB")?), cap("FDB"))?;
        let neigh_v4 = SlottedMap::open(
            "NEIGH_V4",
            SlotLpm(take(&mut ebpf, "NEIGH_V4")?),
            cap("NEIGH_V4"),
        )?;
        let neigh_v6 = SlottedMap::open(
            "NEIGH_V6",
            SlotLpm(take(&mut ebpf, "NEIGH_V6")?),
            cap("NEIGH_V6"),
        )?;
        let routes_v4 = SlottedMap::open(
            "ROUTES_V4",
            SlotLpm(take(&mut ebpf, "ROUTES_V4")?),
            cap("ROUTES_V4"),
        )?;
        let routes_v6 = SlottedMap::open(
            "ROUTES_V6",
            SlotLpm(take(&mut ebpf, "ROUTES_V6")?),
            cap("ROUTES_V6"),
        )?;
        let policy =
            SlottedMap::open("POLICY", SlotLpm(take(&mut ebpf, "POLICY")?), cap("POLICY"))?;
        let remote_v4 = SlottedMap::open(
            "REMOTE_V4",
            SlotLpm(take(&mut ebpf, "REMOTE_V4")?),
            cap("REMOTE_V4"),
        )?;
        let remote_v6 = SlottedMap::open(
            "REMOTE_V6",
            SlotLpm(take(&mut ebpf, "REMOTE_V6")?),
            cap("REMOTE_V6"),
        )?;
        let sg_stats: PerCpuArray<MapData, SgStats> = take(&mut ebpf, "SG_STATS")?;
        let ct_stats: PerCpuArray<MapData, CtStats> = take(&mut ebpf, "CT_STATS")?;
        let sg_meta: Array<MapData, SgMeta> = take(&mut ebpf, "SG_META")?;
        let conntrack: aya::maps::HashMap<MapData, CtKey, CtEntry> = take(&mut ebpf, "CONNTRACK")?;
        let group_members = SlottedMap::open(
            "GROUP_MEMBERS",
            SlotHash(take(&mut ebpf, "GROUP_MEMBERS")?),
            cap("GROUP_MEMBERS"),
        )?;
        let group_state: Array<MapData, GroupState> = take(&mut ebpf, "GROUP_STATE")?;
        let group_meta: Array<MapData, GroupMeta> = take(&mut ebpf, "GROUP_META")?;
        let tx_ports: DevMapHash<MapData> = take(&mut ebpf, "TX_PORTS")?;
        let mut tx_contents = BTreeMap::new();
        for entry in tx_ports.iter() {
            let (index, _) = entry?;
            // Interface 0 never matches: every entry is rewritten with this
            // run's to_vm on the first apply.
            tx_contents.insert(index, 0);
        }
        let flood: HashOfMaps<MapData, FloodKey, DevMapHash<MapData>> = take(&mut ebpf, "FLOOD")?;

        // Adopt the indexes of the ports a previous run left live.
        let mut port_ix = Indexes::new(opts.max_ports);
        for info in ports.contents(current.active_slot).values() {
            if let Ok(meta) = port_meta.get(&info.index, 0) {
                let id = pins::c_str(&meta.id);
                if !id.is_empty() {
                    port_ix.by_id.insert(id, info.index);
                }
            }
        }
        // And the security groups' (their counters go on).
        let mut sg_ix = Indexes::new(common::MAX_SECURITY_GROUPS - 1);
        for i in 1..sg_meta.len() {
            let id = pins::c_str(&sg_meta.get(&i, 0)?.id);
            if !id.is_empty() {
                sg_ix.by_id.insert(id, i);
            }
        }
        // And the groups' (their active members stay known).
        let mut group_ix = Indexes::new(common::MAX_GROUPS - 1);
        for (group, _) in group_members.contents(current.active_slot).keys() {
            if let Ok(meta) = group_meta.get(group, 0) {
                let name = pins::c_str(&meta.name);
                if !name.is_empty() {
                    group_ix.by_id.insert(name, *group);
                }
            }
        }
        if !port_ix.by_id.is_empty() {
            info!(
                ports = port_ix.by_id.len(),
                slot = current.active_slot,
                generation = current.generation,
                "adopted pinned datapath state"
            );
        }

        Ok(Datapath {
            ebpf,
            attach: opts.attach,
            network_ix: Indexes::new(u32::MAX - 1),
            port_ix,
            dir,
            config,
            current,
            // A previous run may have switched slots just now.
            last_switch: Instant::now(),
            ports,
            port_macs,
            addrs_v4,
            addrs_v6,
            port_meta,
            port_stats,
            fdb,
            neigh_v4,
            neigh_v6,
            routes_v4,
            routes_v6,
            policy,
            remote_v4,
            remote_v6,
            group_members,
            group_state,
            group_meta,
            tx_ports,
            tx_contents,
            flood,
            to_vm_fd,
            group_ix,
            router_ix: Indexes::new(common::MAX_ROUTER_INTERFACES),
            sg_ix,
            sg_stats,
            ct_stats,
            sg_meta,
            conntrack,
            flood_contents: Default::default(),
            links: BTreeMap::new(),
        })
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

    /// Makes `topology` the live configuration; `ifindexes` are the ports'
    /// taps, in `topology.ports` order.
    pub fn apply(&mut self, topology: &Topology, ifindexes: &[u32]) -> Result<ApplySummary> {
        let started = Instant::now();
        let active = self.current.active_slot;
        let target = 1 - active;

        // Everything that can fail on the configuration itself happens
        // before the first map write.
        let live: BTreeSet<u32> = self
            .ports
            .contents(active)
            .values()
            .map(|p| p.index)
            .collect();
        let port_ix =
            self.port_ix
                .assign("ports", topology.ports.iter().map(|p| p.id.as_str()), &live)?;
        let network_ix = self.network_ix.assign(
            "networks",
            topology.networks.iter().map(|n| n.id.as_str()),
            &BTreeSet::new(),
        )?;
        let router_ix = self.router_ix.assign(
            "routers",
            topology.routers.iter().map(|r| r.id.as_str()),
            &BTreeSet::new(),
        )?;
        let sg_ix = self.sg_ix.assign(
            "security groups",
            topology.security_groups.iter().map(|g| g.id.as_str()),
            &BTreeSet::new(),
        )?;
        let desired = compile::compile(
            topology,
            &compile::AllIndexes {
                ports: &port_ix,
                networks: &network_ix,
                groups: &self.group_ix,
                routers: &router_ix,
                security_groups: &sg_ix,
            },
            ifindexes,
        )?;
        self.check_capacity(&desired)?;

        let since = self.last_switch.elapsed();
        if since < SLOT_GRACE {
            std::thread::sleep(SLOT_GRACE - since);
        }

        // Ports new to the live configuration start with clean counters.
        for (&index, meta) in &desired.port_meta {
            if !live.contains(&index) {
                self.reset_port_state(index)?;
                self.port_meta.set(index, meta, 0)?;
            }
        }

        let mut entries = SyncStats::default();
        entries += self.ports.sync(target, &desired.ports)?;
        entries += self.port_macs.sync(target, &desired.port_macs)?;
        entries += self.addrs_v4.sync(target, &desired.addrs_v4)?;
        entries += self.addrs_v6.sync(target, &desired.addrs_v6)?;
        entries += self.fdb.sync(target, &desired.fdb)?;
        entries += self.neigh_v4.sync(target, &desired.neigh_v4)?;
        entries += self.neigh_v6.sync(target, &desired.neigh_v6)?;
        entries += self.routes_v4.sync(target, &desired.routes_v4)?;
        entries += self.routes_v6.sync(target, &desired.routes_v6)?;
        entries += self.policy.sync(target, &desired.policy)?;
        entries += self.remote_v4.sync(target, &desired.remote_v4)?;
        entries += self.remote_v6.sync(target, &desired.remote_v6)?;
        entries += self.group_members.sync(target, &desired.group_members)?;
        // Groups new to the live configuration start with no active member.
        for (name, &g) in &desired.groups.by_id {
            if !self.group_ix.by_id.contains_key(name) {
                self.group_state.set(g, GroupState::default(), 0)?;
                self.group_meta.set(
                    g,
                    GroupMeta {
                        name: compile::copy_str(name),
                    },
                    0,
                )?;
            }
        }
        // Security groups new here start with clean counters and get their
        // id written for inspection (an index keeps its id while it lives).
        for (id, &i) in &sg_ix.by_id {
            if !self.sg_ix.by_id.contains_key(id) {
                let zeros = PerCpuValues::try_from(vec![
                    SgStats::default();
                    nr_cpus().map_err(|(_, e)| e)?
                ])?;
                self.sg_stats.set(i, zeros, 0)?;
                self.sg_meta.set(
                    i,
                    SgMeta {
                        id: compile::copy_str(id),
                    },
                    0,
                )?;
            }
        }
        self.sync_tx_ports(&desired)?;
        self.sync_flood(target, &desired)?;

        let mut attached = Vec::new();
        for &ifindex in desired.ports.keys() {
            if self.attach && !self.links.contains_key(&ifindex) {
                self.attach(ifindex)?;
                attached.push(ifindex);
            }
        }

        failpoint("apply-staged");

        let next = DpConfig {
            active_slot: target,
            flags: self.current.flags,
            generation: self.current.generation + 1,
        };
        self.config
            .set(0, next, 0)
            .context("switching the live slot")?;
        failpoint("apply-switched");
        self.current = next;
        self.last_switch = Instant::now();
        self.port_ix = port_ix;
        self.network_ix = network_ix;
        self.router_ix = router_ix;
        for (id, &i) in &self.sg_ix.by_id {
            if !sg_ix.by_id.contains_key(id) {
                self.sg_meta.set(i, SgMeta::default(), 0)?;
            }
        }
        self.sg_ix = sg_ix;
        self.group_ix = desired.groups.clone();

        let mut detached = Vec::new();
        let stale: Vec<u32> = self
            .links
            .keys()
            .filter(|i| !desired.ports.contains_key(*i))
            .copied()
            .collect();
        for ifindex in stale {
            self.detach(ifindex)?;
            detached.push(ifindex);
        }
        let left: BTreeSet<u32> = live
            .into_iter()
            .filter(|index| !desired.port_meta.contains_key(index))
            .collect();
        for &index in &left {
            self.port_meta.set(index, PortMeta::default(), 0)?;
        }
        // Their connections go too: a port that later reuses the index
        // must not inherit them.
        if !left.is_empty() {
            let stale: Vec<CtKey> = self
                .conntrack
                .keys()
                .filter_map(|k| k.ok())
                .filter(|k| left.contains(&k.zone))
                .collect();
            let removed = stale
                .iter()
                .filter(|key| self.conntrack.remove(key).is_ok())
                .count();
            self.count_agent_removals(removed as u64)?;
        }
        // Ports that left: their device-map entries go once no packet of the
        // old slot can use them.
        let gone: Vec<u32> = self
            .tx_contents
            .keys()
            .filter(|i| !desired.port_meta.contains_key(*i))
            .copied()
            .collect();
        if !gone.is_empty() {
            std::thread::sleep(SLOT_GRACE);
            for index in gone {
                let _ = self.tx_ports.remove(index);
                self.tx_contents.remove(&index);
            }
        }

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

    /// Adds `n` to the agent's count of connections it removed (see
    /// `CtStats`), on CPU 0's copy: the agent is its entry's only writer.
    fn count_agent_removals(&mut self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut values: Vec<CtStats> = self.ct_stats.get(&CT_STATS_AGENT, 0)?.to_vec();
        values[0].removed += n;
        self.ct_stats
            .set(CT_STATS_AGENT, PerCpuValues::try_from(values)?, 0)?;
        Ok(())
    }

    fn check_capacity(&self, d: &Desired) -> Result<()> {
        fn check<S: SlotStore>(m: &SlottedMap<S>, n: usize) -> Result<()> {
            if n > m.capacity {
                bail!(
                    "configuration needs {n} entries in map {} but it holds {} per slot (raise --max-ports)",
                    m.name,
                    m.capacity
                );
            }
            Ok(())
        }
        check(&self.ports, d.ports.len())?;
        check(&self.port_macs, d.port_macs.len())?;
        check(&self.addrs_v4, d.addrs_v4.len())?;
        check(&self.addrs_v6, d.addrs_v6.len())?;
        check(&self.fdb, d.fdb.len())?;
        check(&self.neigh_v4, d.neigh_v4.len())?;
        check(&self.neigh_v6, d.neigh_v6.len())?;
        check(&self.routes_v4, d.routes_v4.len())?;
        check(&self.routes_v6, d.routes_v6.len())?;
        check(&self.policy, d.policy.len())?;
        check(&self.remote_v4, d.remote_v4.len())?;
        check(&self.remote_v6, d.remote_v6.len())?;
        check(&self.group_members, d.group_members.len())?;
        if let Some((&domain, members)) = d
            .flood
            .iter()
            .find(|(_, m)| m.len() > MAX_FLOOD_MEMBERS as usize)
        {
            bail!(
                "flood domain {domain:#x} has {} ports; a network or group holds at most {MAX_FLOOD_MEMBERS} on one host",
                members.len()
            );
        }
        Ok(())
    }

    /// Port index -> tap, with `to_vm` on each entry. Not slotted: indexes
    /// are stable, so entries are only added or repointed here.
    fn sync_tx_ports(&mut self, d: &Desired) -> Result<()> {
        for info in d.ports.values() {
            if self.tx_contents.get(&info.index) != Some(&info.ifindex) {
                self.tx_ports
                    .insert(info.index, info.ifindex, Some(&self.to_vm_fd), 0)
                    .with_context(|| format!("TX_PORTS entry of port {}", info.index))?;
                self.tx_contents.insert(info.index, info.ifindex);
            }
        }
        Ok(())
    }

    /// Rebuilds the flood sets of `slot`: one device map per network and per
    /// group, holding its ports with `to_vm` on each entry.
    fn sync_flood(&mut self, slot: u32, d: &Desired) -> Result<()> {
        // What each flood set of the slot should hold: (port, ifindex).
        let want: BTreeMap<u32, BTreeSet<(u32, u32)>> = d
            .flood
            .iter()
            .map(|(&domain, members)| {
                let set = members
                    .iter()
                    .map(|&port| (port, self.tx_contents[&port]))
                    .collect();
                (domain, set)
            })
            .collect();
        let known = &mut self.flood_contents[slot as usize];
        // Sets this run has not written (all of them after a restart: their
        // entries carry the previous run's to_vm) count as different.
        let stale: Vec<FloodKey> = self
            .flood
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| {
                k.slot == slot
                    && (!want.contains_key(&k.domain)
                        || want.get(&k.domain) != known.get(&k.domain))
            })
            .collect();
        for key in stale {
            self.flood.remove(&key)?;
            known.remove(&key.domain);
        }
        for (&domain, members) in &want {
            if known.get(&domain) == Some(members) {
                continue;
            }
            let obj = aya_obj::Map::new_from_params(
                aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
                4,
                8,
                MAX_FLOOD_MEMBERS,
                0,
            );
            let mut set = DevMapHash::try_from(Map::DevMapHash(
                MapData::create(obj, "flood_set", None).context("creating a flood set")?,
            ))?;
            for &(port, ifindex) in members {
                set.insert(port, ifindex, Some(&self.to_vm_fd), 0)?;
            }
            self.flood
                .insert(FloodKey { slot, domain }, &set, 0)
                .with_context(|| format!("FLOOD entry of domain {domain:#x}"))?;
            known.insert(domain, members.clone());
        }
        Ok(())
    }

    fn reset_port_state(&mut self, index: u32) -> Result<()> {
        let zeros =
            PerCpuValues::try_from(vec![PortStats::default(); nr_cpus().map_err(|(_, e)| e)?])?;
        self.port_stats.set(index, zeros, 0)?;
        Ok(())
    }

    fn xdp(&mut self) -> Result<&mut Xdp> {
        Ok(self
            .ebpf
            .program_mut(PROG_FROM_VM)
            .context("program from_vm missing")?
            .try_into()?)
    }

    fn link_pin(&self, ifindex: u32) -> PathBuf {
        self.dir.join("links").join(ifindex.to_string())
    }

    fn attach(&mut self, ifindex: u32) -> Result<()> {
        let pin = self.link_pin(ifindex);
        let xdp = self.xdp()?;
        let id = xdp
            .attach_to_if_index(ifindex, XdpMode::default())
            .with_context(|| format!("attaching XDP to interface {ifindex}"))?;
        let link = xdp.take_link(id)?;
        let attachment = match FdLink::try_from(link) {
            Ok(fd_link) => {
                std::fs::create_dir_all(pin.parent().expect("links dir"))?;
                let pinned = fd_link
                    .pin(&pin)
                    .with_context(|| format!("pinning the XDP link at {}", pin.display()))?;
                Attachment::Pinned {
                    link: FdLink::from(pinned),
                    pin,
                }
            }
            Err(e) => {
                // A netlink attachment (the conversion dropped it): attach
                // again, owned by this process.
                debug!(ifindex, error = %e, "no XDP link; attaching through netlink");
                let id = self
                    .xdp()?
                    .attach_to_if_index(ifindex, XdpMode::default())
                    .with_context(|| format!("attaching XDP to interface {ifindex}"))?;
                Attachment::Owned(id)
            }
        };
        self.links.insert(ifindex, attachment);
        Ok(())
    }

    /// Takes over the links a previous run pinned: each gets this run's
    /// `from_vm` atomically (no packet meets a detached tap). Links of
    /// interfaces that are gone are removed.
    pub fn adopt_links(&mut self) -> Result<usize> {
        let dir = self.dir.join("links");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut adopted = 0;
        for entry in entries {
            let pin = entry?.path();
            let Some(ifindex) = pin
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let replaced = PinnedLink::from_pin(&pin)
                .map_err(anyhow::Error::from)
                .and_then(|pinned| {
                    let link = XdpLink::try_from(FdLink::from(pinned))?;
                    let xdp = self.xdp()?;
                    let id = xdp.attach_to_link(link)?;
                    Ok(FdLink::try_from(xdp.take_link(id)?)?)
                });
            match replaced {
                Ok(link) => {
                    self.links.insert(ifindex, Attachment::Pinned { link, pin });
                    adopted += 1;
                }
                Err(e) => {
                    info!(ifindex, error = %e, "dropping a pinned XDP link that cannot be adopted");
                    let _ = std::fs::remove_file(&pin);
                }
            }
        }
        Ok(adopted)
    }

    fn detach(&mut self, ifindex: u32) -> Result<()> {
        match self.links.remove(&ifindex) {
            // Removing the pin and closing our fd ends the link.
            Some(Attachment::Pinned { link, pin }) => {
                let _ = std::fs::remove_file(&pin);
                drop(link);
            }
            Some(Attachment::Owned(id)) => {
                // The interface may already be gone, and its XDP with it.
                if let Err(e) = self.xdp()?.detach(id) {
                    debug!(ifindex, error = %e, "detach");
                }
            }
            None => {}
        }
        Ok(())
    }

    /// With `remove`, detaches from every interface and removes the pinned
    /// maps and links so nothing of this instance stays in the kernel;
    /// without, leaves the datapath running on its pinned links and maps
    /// for the next run to adopt.
    pub fn shutdown(mut self, remove: bool) -> Result<()> {
        if remove {
            let ifindexes: Vec<u32> = self.links.keys().copied().collect();
            for ifindex in ifindexes {
                self.detach(ifindex)?;
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

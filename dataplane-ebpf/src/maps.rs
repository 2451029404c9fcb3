//! Map definitions. All maps are BTF-defined so that `bpftool map dump` on
//! the pinned maps shows key and value fields by name. Sizes here are the
//! compiled defaults; the loader sizes the maps for the configured limits.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{
        Array, DevMapHash, HashMap, HashOfMaps, LpmTrie, LruHashMap, PerCpuArray, ProgramArray,
        RingBuf,
    },
    macros::btf_map,
};
use common::{
    CT_STATS_ENTRIES, CtEntry, CtKey, CtStats, DpConfig, DropEvent, EVENTS_RING_BYTES, EventBudget,
    FdbEntry, FdbKey, FloodKey, GroupMember, GroupMemberKey, GroupMeta, GroupState, Hop,
    JUMP_SLOTS, MAX_CONNTRACK, MAX_FLOOD_DOMAINS, MAX_FLOOD_MEMBERS, MAX_GROUPS, MAX_POLICY_RULES,
    MAX_PORTS, MAX_REMOTE_PREFIXES, MAX_ROUTER_INTERFACES, MAX_SECURITY_GROUPS, Neigh, NeighV4Key,
    NeighV6Key, PolicyEntry, PolicyKey, PortAddr, PortAddrV4Key, PortAddrV6Key, PortInfo, PortKey,
    PortMac, PortMacKey, PortMeta, PortStats, RemoteIdentity, RemoteV4Key, RemoteV6Key, Route,
    RouteV4Key, RouteV6Key, SgMeta, SgStats,
};

const NO_PREALLOC: usize = BPF_F_NO_PREALLOC as usize;
/// Configuration maps hold every entry twice (one per slot).
const PORT_SLOTS: usize = 2 * MAX_PORTS as usize;
/// Room for a port's own addresses plus Neutron's default of 10 pairs, per slot.
const ADDR_SLOTS: usize = PORT_SLOTS * 16;
/// Router interfaces (subnets attached to routers), per slot.
const ROUTE_SLOTS: usize = 2 * MAX_ROUTER_INTERFACES as usize;

#[btf_map]
pub static CONFIG: Array<DpConfig, 1> = Array::new();

#[btf_map]
pub static PORTS: HashMap<PortKey, PortInfo, PORT_SLOTS, NO_PREALLOC> = HashMap::new();

#[btf_map]
pub static PORT_MACS: HashMap<PortMacKey, PortMac, ADDR_SLOTS, NO_PREALLOC> = HashMap::new();

#[btf_map]
pub static PORT_ADDRS_V4: LpmTrie<PortAddrV4Key, PortAddr, ADDR_SLOTS> = LpmTrie::new();

#[btf_map]
pub static PORT_ADDRS_V6: LpmTrie<PortAddrV6Key, PortAddr, ADDR_SLOTS> = LpmTrie::new();

#[btf_map]
pub static PORT_STATS: PerCpuArray<PortStats, { MAX_PORTS as usize }> = PerCpuArray::new();

#[btf_map]
pub static PORT_META: Array<PortMeta, { MAX_PORTS as usize }> = Array::new();

// ---------------------------------------------------------------------------
// Forwarding

/// Flood sets are device maps of at most this many ports; the loader
/// creates inner maps of exactly this size (hash-of-maps requires it).
pub const FLOOD_SET_SIZE: usize = MAX_FLOOD_MEMBERS as usize;

#[btf_map]
pub static FDB: HashMap<FdbKey, FdbEntry, ADDR_SLOTS, NO_PREALLOC> = HashMap::new();

#[btf_map]
pub static NEIGH_V4: LpmTrie<NeighV4Key, Neigh, ADDR_SLOTS> = LpmTrie::new();

#[btf_map]
pub static NEIGH_V6: LpmTrie<NeighV6Key, Neigh, ADDR_SLOTS> = LpmTrie::new();

#[btf_map]
pub static GROUP_MEMBERS: HashMap<GroupMemberKey, GroupMember, ADDR_SLOTS, NO_PREALLOC> =
    HashMap::new();

#[btf_map]
pub static GROUP_STATE: Array<GroupState, { MAX_GROUPS as usize }> = Array::new();

/// Group names, for inspection only.
#[btf_map]
pub static GROUP_META: Array<GroupMeta, { MAX_GROUPS as usize }> = Array::new();

/// Port index to its tap, with `to_vm` attached to each entry.
#[btf_map]
pub static TX_PORTS: DevMapHash<{ MAX_PORTS as usize }> = DevMapHash::new();

/// Flood sets: one device map per network and per group, per slot.
#[btf_map]
pub static FLOOD: HashOfMaps<FloodKey, DevMapHash<FLOOD_SET_SIZE>, { MAX_FLOOD_DOMAINS as usize }> =
    HashOfMaps::new();

/// Each router's connected subnets, per slot.
#[btf_map]
pub static ROUTES_V4: LpmTrie<RouteV4Key, Route, ROUTE_SLOTS> = LpmTrie::new();

#[btf_map]
pub static ROUTES_V6: LpmTrie<RouteV6Key, Route, ROUTE_SLOTS> = LpmTrie::new();

/// Programs `from_vm` tail-calls into (`JUMP_*` slots).
#[btf_map]
pub static JUMP: ProgramArray<{ JUMP_SLOTS as usize }> = ProgramArray::new();

/// The hand-over from `from_vm` to the program it tail-calls (per CPU: a
/// packet is processed start to end on one CPU).
#[btf_map]
pub static HOP: PerCpuArray<Hop, 1> = PerCpuArray::new();

// ---------------------------------------------------------------------------
// Security groups

#[btf_map]
pub static POLICY: LpmTrie<PolicyKey, PolicyEntry, { MAX_POLICY_RULES as usize }> = LpmTrie::new();

#[btf_map]
pub static REMOTE_V4: LpmTrie<RemoteV4Key, RemoteIdentity, { MAX_REMOTE_PREFIXES as usize }> =
    LpmTrie::new();

#[btf_map]
pub static REMOTE_V6: LpmTrie<RemoteV6Key, RemoteIdentity, { MAX_REMOTE_PREFIXES as usize }> =
    LpmTrie::new();

/// Connections by zone (port) and tuple; the least recently used go first
/// when it is full.
#[btf_map]
pub static CONNTRACK: LruHashMap<CtKey, CtEntry, { MAX_CONNTRACK as usize }> = LruHashMap::new();

/// What came into and went out of `CONNTRACK`, so that evictions can be
/// counted (see `CtStats`).
#[btf_map]
pub static CT_STATS: PerCpuArray<CtStats, { CT_STATS_ENTRIES as usize }> = PerCpuArray::new();

/// Scratch space for the packet's flow while security groups are applied
/// (per CPU: a packet is processed start to end on one CPU).
#[btf_map]
pub static FLOW: PerCpuArray<crate::sg::Flow, 1> = PerCpuArray::new();

#[btf_map]
pub static SG_STATS: PerCpuArray<SgStats, { MAX_SECURITY_GROUPS as usize }> = PerCpuArray::new();

/// Security-group ids by index, for inspection only.
#[btf_map]
pub static SG_META: Array<SgMeta, { MAX_SECURITY_GROUPS as usize }> = Array::new();

/// Drop events for `dataplane monitor` (see `events`).
#[btf_map]
pub static EVENTS: RingBuf<DropEvent, { EVENTS_RING_BYTES as usize }> = RingBuf::new();

#[btf_map]
pub static EVENT_BUDGET: PerCpuArray<EventBudget, 1> = PerCpuArray::new();

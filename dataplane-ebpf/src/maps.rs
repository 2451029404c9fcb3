//! Map definitions. The pinned maps come from `common::pinned_maps!`, the
//! one list both sides expand; here they become BTF-defined maps, so that
//! `bpftool map dump` on the pins shows key and value fields by name. Sizes
//! are the compiled defaults; the agent sizes the maps for its limits when
//! it loads the object. The per-CPU scratch maps below are the programs'
//! own and are not pinned.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{
        Array, DevMapHash, HashMap, HashOfMaps, LpmTrie, LruHashMap, PerCpuArray, ProgramArray,
        RingBuf,
    },
    macros::btf_map,
};
use common::{EventBudget, FlowKey, IcmpBudget, MAX_FLOOD_MEMBERS, MAX_PORTS};

use crate::flow::Flow;

const NO_PREALLOC: usize = BPF_F_NO_PREALLOC as usize;

/// Flood sets are device maps of at most this many ports; the agent
/// creates inner maps of exactly this size (hash-of-maps requires it).
pub const FLOOD_SET_SIZE: usize = MAX_FLOOD_MEMBERS as usize;

/// One pinned map's definition, by kind.
macro_rules! ebpf_map {
    ($(#[$doc:meta])* $name:ident array $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: Array<$v, { $n }> = Array::new();
    };
    ($(#[$doc:meta])* $name:ident percpu_array $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: PerCpuArray<$v, { $n }> = PerCpuArray::new();
    };
    ($(#[$doc:meta])* $name:ident slot_hash $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: HashMap<$k, $v, { $n }, NO_PREALLOC> = HashMap::new();
    };
    ($(#[$doc:meta])* $name:ident slot_lpm $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: LpmTrie<$k, $v, { $n }> = LpmTrie::new();
    };
    ($(#[$doc:meta])* $name:ident lru_hash $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: LruHashMap<$k, $v, { $n }> = LruHashMap::new();
    };
    ($(#[$doc:meta])* $name:ident devmap_hash $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: DevMapHash<{ $n }> = DevMapHash::new();
    };
    ($(#[$doc:meta])* $name:ident hash_of_devmaps $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map]
        pub static $name: HashOfMaps<$k, DevMapHash<FLOOD_SET_SIZE>, { $n }> = HashOfMaps::new();
    };
    ($(#[$doc:meta])* $name:ident prog_array $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: ProgramArray<{ $n }> = ProgramArray::new();
    };
    ($(#[$doc:meta])* $name:ident ringbuf $k:ty, $v:ty, $n:expr) => {
        $(#[$doc])* #[btf_map] pub static $name: RingBuf<$v, { $n }> = RingBuf::new();
    };
}

macro_rules! ebpf_maps {
    ($( $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; )*) => {
        $( ebpf_map!($(#[$doc])* $name $kind $k, $v, $size.compiled()); )*
    };
}

common::pinned_maps!(ebpf_maps);

/// Scratch space for the packet's flow while security groups are applied
/// (per CPU: a packet is processed start to end on one CPU).
#[btf_map]
pub static FLOW: PerCpuArray<Flow, 1> = PerCpuArray::new();

/// Scratch space for the flow cache's key (per CPU, as [`FLOW`]): the
/// programs' stacks have no room for it.
#[btf_map]
pub static FLOW_KEY: PerCpuArray<FlowKey, 1> = PerCpuArray::new();

/// Per-CPU state of the drop events' rate limit.
#[btf_map]
pub static EVENT_BUDGET: PerCpuArray<EventBudget, 1> = PerCpuArray::new();

/// Per-CPU budget of the ICMP errors sent to each port, by port index.
#[btf_map]
pub static ICMP_BUDGET: PerCpuArray<IcmpBudget, { MAX_PORTS as usize + 1 }> = PerCpuArray::new();

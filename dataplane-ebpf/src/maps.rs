//! Map definitions. All maps are BTF-defined so that `bpftool map dump` on
//! the pinned maps shows key and value fields by name. Sizes here are the
//! compiled defaults; the loader sizes the maps for the configured limits.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    btf_maps::{Array, HashMap, LpmTrie, PerCpuArray},
    macros::btf_map,
};
use common::{
    DpConfig, MAX_PORTS, PortAddr, PortAddrV4Key, PortAddrV6Key, PortInfo, PortKey, PortMac,
    PortMacKey, PortMeta, PortStats,
};

const NO_PREALLOC: usize = BPF_F_NO_PREALLOC as usize;
/// Configuration maps hold every entry twice (one per slot).
const PORT_SLOTS: usize = 2 * MAX_PORTS as usize;
/// Room for a port's own addresses plus Neutron's default of 10 pairs, per slot.
const ADDR_SLOTS: usize = PORT_SLOTS * 16;

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

//! The flow cache (`FLOW_CACHE`): the whole verdict for a packet of an
//! established connection switched between two ports of this host, so
//! that its next packets take one lookup instead of the port-security,
//! L2 and connection-tracking lookups of both ports.
//!
//! Written by `to_vm` only, for a frame `from_vm` marked as one it may
//! cache ([`TX_F_CACHEABLE`]: TCP or UDP, not a fragment, no SYN, FIN or
//! RST, a source that is neither a shared address nor a shared MAC, sent
//! to one port by its MAC) once the frame passed every check and the
//! security groups of both ports let it through as part of a connection
//! they already track (the first packet of a connection never creates an
//! entry: a flood of new connections writes none). Read by `from_vm`: an
//! entry is used only under the configuration generation it was made in
//! and until [`FLOW_REFRESH_NS`] after it was made; then the packet takes
//! the full path again, which refreshes the connections' timeouts (and adds
//! the packets the entry let through to their counts) and the entry.
//!
//! The key holds every field the verdict depends on: the sending port
//! (by its interface), both MACs (port security binds addresses to MACs; the destination MAC
//! chooses the receiver), the addresses, the protocol and both ports.

use bytemuck::{Pod, Zeroable};

/// How long an entry is used before the packet takes the full path again:
/// the connections' timeouts (10 s and more) are refreshed at least this
/// often while packets flow, so an entry never outlives its connections,
/// and a connection expires at most this much earlier than it would
/// without the cache (its last refresh may be this old).
pub const FLOW_REFRESH_NS: u64 = 1_000_000_000;

/// `FLOW_CACHE` key: a packet's sender, MACs and connection tuple.
/// Aligned to 8 bytes with every field at its natural alignment, so that
/// the programs build it with word stores (LLVM's BPF backend splits what
/// it cannot prove aligned into single bytes).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    /// The interface the sender's frames enter by (its tap): `from_vm`
    /// knows it before any lookup.
    pub ifindex: u32,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub src_mac: [u8; 6],
    pub proto: u8,
    pub ipv6: u8,
    pub dst_mac: [u8; 6],
    pub _pad: [u8; 2],
    /// IPv4 addresses take the first 4 bytes of the 16.
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// `FLOW_CACHE` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowEntry {
    /// `DpConfig::generation` the verdict was made under.
    pub generation: u64,
    /// `bpf_ktime_get_coarse_ns()` until which the entry may be used.
    pub refresh_ns: u64,
    /// Packets forwarded through the entry since it was made (added to
    /// the connections' counts when the packet takes the full path again).
    pub hits: u64,
    /// Port index of the sender (its counters).
    pub sender: u32,
    /// Port index of the receiver.
    pub target: u32,
}

/// `TxMeta::flags`: `from_vm` may cache this frame's verdict (see the
/// module's conditions); `to_vm` makes an entry if the rest holds.
pub const TX_F_CACHEABLE: u32 = 1 << 18;
/// `TxMeta::flags`: `from_vm` decided in slot 1 (clear: slot 0). Every
/// configuration change switches the slot, and switches are at least the
/// agent's grace apart, so `to_vm` seeing another live slot knows the
/// configuration changed in between and caches nothing.
pub const TX_F_SLOT1: u32 = 1 << 19;
/// `TxMeta::flags`: `from_vm` forwarded the frame from the flow cache;
/// `to_vm` only counts it.
pub const TX_F_CACHED: u32 = 1 << 20;
/// `TxMeta::flags`: `from_vm` found an entry it could not use (too old, or
/// from another generation); `to_vm` adds its hits to the connections.
pub const TX_F_STALE: u32 = 1 << 21;

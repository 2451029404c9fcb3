//! A packet's connection as security groups and connection tracking see
//! it: kept in per-CPU scratch space (`maps::FLOW`), not on the stack.

/// What the policy and conntrack need of a packet.
///
/// Aligned to 8 bytes, as [`Tuple`]: with byte arrays alone the struct's
/// alignment is 1, and LLVM's BPF backend then zeroes and copies its
/// fields through out-of-line byte-at-a-time `memset`/`memcpy` loops
/// (eight calls per IPv4 packet in the parser); aligned, it uses 8-byte
/// stores.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct Flow {
    /// Addresses, ports and protocol. Ports of an ICMP echo: the
    /// identifier as source (request) or destination (reply) port, so that
    /// a reply reverses its request.
    pub t: Tuple,
    /// What the policy matches: the destination port, or ICMP [type, code].
    pub policy_port: [u8; 2],
    pub ipv6: u8,
    pub tcp_flags: u8,
    /// An ICMP error about a packet of `inner`.
    pub related: u8,
    /// Which zones' rules applied and how (`sg`'s ZONE_* bits): in the
    /// scratch entry, not on the stack, which has no room left.
    pub seen: u8,
    /// An ICMP error (whether or not `related`): it passes only as part of
    /// a tracked connection.
    pub icmp_error: u8,
    pub _pad: u8,
    /// The packet an ICMP error refers to (as it was sent).
    pub inner: Tuple,
    /// The packet's time (`bpf_ktime_get_coarse_ns`), read once for both zones.
    pub now: u64,
    /// The configuration's generation, read once for both zones.
    pub generation: u64,
    /// Packets of the connection the flow cache forwarded since its entry
    /// was last renewed (see `fastpath::take_hits`), counted with this one.
    pub hits: u64,
}

/// A connection's addresses, ports and protocol, as one packet carries them.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub _pad: [u8; 3],
}

//! Keys and values of the datapath's maps.
//!
//! # Slots
//! Every configuration map key starts with `slot` (0 or 1). The datapath
//! reads [`DpConfig::active_slot`] once per packet and looks only at entries
//! of that slot, so the loader can write a whole new configuration into the
//! other slot and switch to it with one map update: no packet ever sees half
//! of a change. State that outlives a configuration (counters, connection
//! tracking, active group members) is not slotted.
//!
//! # Indexes
//! Ports, networks, routers and groups are referred to by small integer
//! indexes that the loader assigns and keeps stable for the life of the
//! object, because counters and state are keyed by them. Index 0 is never
//! assigned: counters at index 0 collect what cannot be tied to a port.

use bytemuck::{Pod, Zeroable};

use crate::reason::DropCounters;

/// Upper bounds compiled into the programs; the loader may size maps lower.
pub const MAX_PORTS: u32 = 16384;
/// Entries in a network's flood set (ports of one network on this host).
pub const MAX_FLOOD_MEMBERS: u32 = 4096;
/// Flood domains: networks plus groups of ports sharing an address.
pub const MAX_FLOOD_DOMAINS: u32 = 65536;

/// Flood domain ids at or above this value belong to address groups; below
/// it they are network indexes.
pub const FLOOD_DOMAIN_GROUP_BASE: u32 = 0x8000_0000;

// ---------------------------------------------------------------------------
// Global configuration: `CONFIG[0]`.

/// The single entry of the `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DpConfig {
    /// Slot whose configuration entries are live.
    pub active_slot: u32,
    /// Flags: none is defined (always 0); the field keeps the layout.
    pub flags: u32,
    /// Bumped on every applied configuration; connections tracked under an
    /// older generation are re-checked against the current rules.
    pub generation: u64,
}

// ---------------------------------------------------------------------------
// Ports: `PORTS` maps (slot, ifindex) to the port bound to that interface.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct PortKey {
    pub slot: u32,
    pub ifindex: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortInfo {
    /// Stable port index: counters, connection tracking zone, group members.
    pub index: u32,
    /// Stable index of the port's network.
    pub network: u32,
    /// Interface the port's traffic enters and leaves by (the tap).
    pub ifindex: u32,
    /// Security-group policy shared by ports with the same set of groups.
    pub policy: u32,
    pub mac: [u8; 6],
    /// `PORT_F_*` flags.
    pub flags: u16,
    /// The port's identity as a remote: its set of security groups (the
    /// same number as `policy`), so that rules naming a remote group match
    /// whatever source port security let this port use (fixed IPs and
    /// pairs, bound to their MACs) and nothing else.
    pub identity: u32,
}

/// Port security is enabled: source checks, ingress MAC filter, security groups.
pub const PORT_F_SECURITY: u16 = 1 << 0;

// ---------------------------------------------------------------------------
// Port security.

/// `PORT_MACS`: the MACs a port may send from and receive on (its own MAC
/// and its pairs' MACs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct PortMacKey {
    pub slot: u32,
    pub port: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortMac {
    /// `ADDR_F_*` flags: where the MAC comes from.
    pub flags: u32,
}

/// The address is the port's own (`mac_address` or a fixed IP).
pub const ADDR_F_FIXED: u32 = 1 << 0;
/// The address comes from an allowed address pair.
pub const ADDR_F_PAIR: u32 = 1 << 1;
/// IPv6 link-local address derived (EUI-64) from an allowed MAC.
pub const ADDR_F_LINK_LOCAL: u32 = 1 << 2;
/// The address (or MAC, in `PortMac::flags`) is also used by other ports:
/// packets sourced from it are claims for its group's active member.
pub const ADDR_F_SHARED: u32 = 1 << 3;

/// `PORT_ADDRS_V4` (LPM trie): the (MAC, IPv4 prefix) pairs a port may send
/// from. The MAC is part of the key before the address, so a lookup with the
/// packet's (port, source MAC, source IP) matches only a pair that binds both:
/// a `0.0.0.0/0` pair still pins its MAC.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct PortAddrV4Key {
    pub slot: u32,
    pub port: u32,
    pub mac: [u8; 6],
    pub addr: [u8; 4],
    pub _pad: [u8; 2],
}

/// `PORT_ADDRS_V6` (LPM trie): as [`PortAddrV4Key`] for IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct PortAddrV6Key {
    pub slot: u32,
    pub port: u32,
    pub mac: [u8; 6],
    pub addr: [u8; 16],
    pub _pad: [u8; 2],
}

/// Bits of an address-key prefix taken by (slot, port, mac).
pub const PORT_ADDR_PREFIX_BITS: u32 = (4 + 4 + 6) * 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortAddr {
    /// `ADDR_F_*` flags.
    pub flags: u32,
}

// ---------------------------------------------------------------------------
// Counters: `PORT_STATS` (per CPU), indexed by port index.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortStats {
    /// Frames the VM sent (seen by the port's XDP program).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames delivered to the VM.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Unicast frames redirected to one port (switched or routed).
    pub forwarded: u64,
    /// Broadcast, multicast and unknown-unicast frames flooded to the network.
    pub flooded: u64,
    /// Frames sent to every member of a shared address without an active member.
    pub group_flooded: u64,
    /// Packets routed to another subnet.
    pub routed: u64,
    /// ARP requests answered by the datapath.
    pub arp_replies: u64,
    /// Neighbour solicitations answered by the datapath.
    pub nd_replies: u64,
    /// Echo requests to a router address answered by the datapath.
    pub echo_replies: u64,
    /// ICMP errors the router sent to the port (time exceeded,
    /// unreachable, packet too big).
    pub icmp_errors: u64,
    /// ICMP errors not sent: over the port's budget.
    pub icmp_limited: u64,
    /// Router solicitations answered by the datapath.
    pub ra_replies: u64,
    /// Times this port became the active member of a shared address.
    pub claims: u64,
    /// Frames forwarded through the flow cache (also in `forwarded`).
    pub fast_path: u64,
    /// Frames dropped, by reason.
    pub drops: DropCounters,
}

impl PortStats {
    pub fn add(&mut self, other: &PortStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.forwarded += other.forwarded;
        self.flooded += other.flooded;
        self.group_flooded += other.group_flooded;
        self.routed += other.routed;
        self.arp_replies += other.arp_replies;
        self.nd_replies += other.nd_replies;
        self.echo_replies += other.echo_replies;
        self.icmp_errors += other.icmp_errors;
        self.icmp_limited += other.icmp_limited;
        self.ra_replies += other.ra_replies;
        self.claims += other.claims;
        self.fast_path += other.fast_path;
        self.drops.add(&other.drops);
    }
}

/// Offset, in `u64`s, of [`PortStats::drops`]: the datapath adds a reason's
/// discriminant to it to find the reason's counter.
pub const PORT_STATS_DROPS_OFFSET: usize = core::mem::offset_of!(PortStats, drops) / 8;

/// Metadata about a port index: written by the loader so that counters and
/// state in the pinned maps can be tied back to Neutron's port ids, by
/// `dataplane show` and by a restarted loader adopting the pinned state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PortMeta {
    /// The port's `id`, NUL-padded.
    pub id: [u8; 64],
    /// The tap interface name, NUL-padded.
    pub tap: [u8; 16],
}

impl Default for PortMeta {
    fn default() -> Self {
        PortMeta {
            id: [0; 64],
            tap: [0; 16],
        }
    }
}

// ---------------------------------------------------------------------------
// Forwarding

/// What an L2 or L3 entry delivers to.
pub const TARGET_PORT: u32 = 1;
/// A group of ports sharing an address: the active member, or all of them.
pub const TARGET_GROUP: u32 = 2;
/// A router interface: the frame is routed.
pub const TARGET_ROUTER: u32 = 3;

/// L2 table: (network, MAC) to a port, a group (a MAC shared by several
/// ports, such as keepalived's use_vmac) or a router interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct FdbKey {
    pub slot: u32,
    pub network: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FdbEntry {
    /// TARGET_PORT, TARGET_GROUP or TARGET_ROUTER.
    pub kind: u32,
    /// Port, group or router index.
    pub target: u32,
}

/// L3 table of a network: which port, group or router interface owns an
/// address (fixed IPs, pairs and their prefixes, gateway addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct NeighV4Key {
    pub slot: u32,
    pub network: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct NeighV6Key {
    pub slot: u32,
    pub network: u32,
    pub addr: [u8; 16],
}

/// Bits of a neighbour key before the address.
pub const NEIGH_PREFIX_BITS: u32 = 8 * 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Neigh {
    /// TARGET_PORT, TARGET_GROUP or TARGET_ROUTER.
    pub kind: u32,
    pub target: u32,
    /// The MAC bound to the address (a port's or pair's MAC, or the router
    /// interface's); unused for groups, whose members may differ.
    pub mac: [u8; 6],
    pub flags: u16,
}

/// The entry is a single address (/32, /128), not a prefix: only those are
/// answered by the ARP/ND responder.
pub const NEIGH_F_HOST: u16 = 1 << 0;

/// A port's membership in a group, with the MAC it uses for the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct GroupMemberKey {
    pub slot: u32,
    pub group: u32,
    pub port: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupMember {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Runtime state of a group (not slotted): which member last proved it owns
/// the address. Written by the datapath, reset by the loader for new groups.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupState {
    /// Port index of the active member; 0 while none is known.
    pub active: u32,
    pub _pad: u32,
    /// bpf_ktime_get_ns() of the last change of `active`.
    pub changed_ns: u64,
    /// Changes of `active` since the group was created.
    pub changes: u64,
}

pub const MAX_GROUPS: u32 = 16384;

/// A group's name ("<network id> <address or MAC>"), for inspection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GroupMeta {
    pub name: [u8; 96],
}

impl Default for GroupMeta {
    fn default() -> Self {
        GroupMeta { name: [0; 96] }
    }
}

// ---------------------------------------------------------------------------
// Security groups

/// `POLICY` (LPM trie): one entry per allowed (policy, remote identity,
/// direction and IP version, protocol, port prefix). Any entry that matches
/// allows, so the longest-prefix lookup answers "is anything allowing this"
/// in one step however many rules there are; a port range is a handful of
/// prefixes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct PolicyKey {
    pub slot: u32,
    pub policy: u32,
    /// A port's identity, a CIDR identity (`IDENTITY_CIDR` set), or 0 for
    /// rules without a remote.
    pub identity: u32,
    /// `POLICY_DIR_*` | `POLICY_V6`.
    pub dir: u8,
    /// IP protocol (beyond the prefix when the rule is for any protocol).
    pub proto: u8,
    /// Destination port, or ICMP [type, code], big-endian (prefix-matched).
    pub port: [u8; 2],
}

/// Bits of a policy key (slot included) up to and including `dir`; + 8
/// with the protocol,
/// + up to 16 more with the port.
pub const POLICY_PREFIX_BITS: u32 = (4 + 4 + 4 + 1) * 8;
pub const POLICY_DIR_INGRESS: u8 = 1;
pub const POLICY_DIR_EGRESS: u8 = 2;
pub const POLICY_V6: u8 = 4;
/// Identities of remote prefixes have this bit set.
pub const IDENTITY_CIDR: u32 = 1 << 31;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PolicyEntry {
    /// Stable index of the rule's security group: its `SG_STATS` counters.
    pub group: u32,
}

/// Security groups on this host (stable indexes, 0 unused).
pub const MAX_SECURITY_GROUPS: u32 = 16384;

/// `SG_STATS` (per CPU, by security-group index): connections a group's
/// rules let open. (Drops are counted per port and reason: a denied
/// connection is one that no group allowed.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SgStats {
    pub ingress_allowed: u64,
    pub egress_allowed: u64,
}

/// `SG_META` (by security-group index): the group's id, for `show`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SgMeta {
    pub id: [u8; 64],
}

impl Default for SgMeta {
    fn default() -> Self {
        SgMeta { id: [0; 64] }
    }
}

/// `REMOTE_V4` / `REMOTE_V6` (LPM tries): every remote_ip_prefix of every
/// rule, each with its CIDR identity. A longest match gives the most
/// specific rule prefix holding an address; the rules of every wider prefix
/// were compiled for it too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct RemoteV4Key {
    pub slot: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct RemoteV6Key {
    pub slot: u32,
    pub addr: [u8; 16],
}

pub const REMOTE_PREFIX_BITS: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RemoteIdentity {
    pub identity: u32,
}

/// `CONNTRACK` (LRU hash): connections by the zone (port index) they belong
/// to and their tuple in the direction of the first packet. IPv4 addresses
/// take the first 4 bytes of the 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct CtKey {
    pub zone: u32,
    pub proto: u8,
    pub ipv6: u8,
    /// Source and destination ports (ICMP echo: the identifier and 0).
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub _pad: [u8; 2],
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct CtEntry {
    /// bpf_ktime_get_coarse_ns() after which the entry is dead.
    pub expires_ns: u64,
    /// `DpConfig::generation` of the rules that last allowed it.
    pub generation: u64,
    pub packets: u64,
    /// `CT_*` state.
    pub state: u8,
    /// `POLICY_DIR_*`: whether the zone's port opened it (egress) or
    /// accepted it (ingress).
    pub dir: u8,
    pub _pad: [u8; 6],
}

/// TCP SYN seen, no reply yet; UDP/ICMP/other without a reply yet.
pub const CT_OPENING: u8 = 1;
/// A reply was seen.
pub const CT_ESTABLISHED: u8 = 2;
/// TCP FIN seen.
pub const CT_CLOSING: u8 = 3;
/// TCP RST seen.
pub const CT_CLOSED: u8 = 4;

/// Default size of `CONNTRACK` (`dataplane run --max-connections`).
pub const MAX_CONNTRACK: u32 = 131072;

/// `CT_STATS` (per-CPU array): how the connection table's entries came and
/// went. Entry [`CT_STATS_DATAPATH`] is the datapath's, [`CT_STATS_AGENT`]
/// the agent's (it removes the connections of ports that leave). Entries
/// the LRU table evicted when full are the rest:
/// `created - removed - entries present`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct CtStats {
    /// New keys inserted (a dead entry overwritten in place is not one).
    pub created: u64,
    /// Entries deleted on purpose: rules no longer allowing them, or their
    /// port gone.
    pub removed: u64,
}

pub const CT_STATS_DATAPATH: u32 = 0;
pub const CT_STATS_AGENT: u32 = 1;
pub const CT_STATS_ENTRIES: u32 = 2;
/// Compiled policy entries, both slots together.
pub const MAX_POLICY_RULES: u32 = 2 * 262144;
/// Distinct remote_ip_prefix values, both slots together.
pub const MAX_REMOTE_PREFIXES: u32 = 2 * 16384;

/// Routes of a router: `ROUTES_V4` / `ROUTES_V6` (LPM tries keyed by
/// router and destination prefix) give where a destination is: a connected
/// subnet (deliver to the destination's owner in that network) or a static
/// route's next hop (deliver to the next hop's owner), with the router's
/// own MAC in the egress network.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct RouteV4Key {
    pub slot: u32,
    pub router: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct RouteV6Key {
    pub slot: u32,
    pub router: u32,
    pub addr: [u8; 16],
}

/// Subnets attached to routers, on this host (per slot).
pub const MAX_ROUTER_INTERFACES: u32 = 4096;

/// Bits of a route key before the address.
pub const ROUTE_PREFIX_BITS: u32 = 8 * 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Route {
    /// Network of the router interface the destination is behind.
    pub network: u32,
    /// The router interface's MAC: the source of routed frames.
    pub mac: [u8; 6],
    /// The egress network's MTU; 0 when unknown (not enforced).
    pub mtu: u16,
    /// `ROUTE_CONNECTED` or `ROUTE_NEXTHOP`.
    pub kind: u8,
    /// Prefix length of the route's destination.
    pub prefix_len: u8,
    pub _pad: [u8; 2],
    /// Connected: the router's own address on the subnet (the source of
    /// the ICMP errors it sends there). Next hop: the next hop's address.
    /// IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
}

/// A subnet the router has an interface on.
pub const ROUTE_CONNECTED: u8 = 1;
/// A static route (`routes` of a Neutron router): via a next hop on a
/// connected subnet.
pub const ROUTE_NEXTHOP: u8 = 2;

/// `ADVERTS`: what the router on a network advertises (IPv6 router
/// advertisements), by network: the datapath answers a router
/// solicitation with it, the agent sends it periodically.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct AdvertKey {
    pub slot: u32,
    pub network: u32,
}

/// Longest advertisement (ICMPv6 message) the datapath sends: the answer
/// to a solicitation is written over it, grown at the front, and must fit
/// the frame's headroom.
pub const ADVERT_MAX: usize = 200;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Advert {
    /// The advertising router's index.
    pub router: u32,
    /// Bytes of `message` in use (a multiple of 8).
    pub len: u16,
    /// The router interface's MAC; its link-local address is the source.
    pub mac: [u8; 6],
    /// The ICMPv6 router advertisement, checksum zero.
    pub message: [u8; ADVERT_MAX],
}

impl Default for Advert {
    fn default() -> Self {
        Advert {
            router: 0,
            len: 0,
            mac: [0; 6],
            message: [0; ADVERT_MAX],
        }
    }
}

/// `EVENTS` (ring buffer): one record per dropped frame a VM sent, at most
/// `EVENTS_PER_SECOND` per CPU (a flood of spoofed frames cannot flood the
/// agent); `dataplane monitor` streams them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DropEvent {
    /// bpf_ktime_get_ns() of the drop.
    pub ns: u64,
    /// Port index of the sender.
    pub port: u32,
    /// A `DropReason`.
    pub reason: u32,
    pub ethertype: u16,
    /// IP protocol (0 for ARP and others).
    pub proto: u8,
    pub _pad: u8,
    pub src_mac: [u8; 6],
    /// Source and destination (IPv4 in the first 4 bytes; ARP: sender and
    /// target IP).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Up to the 8-byte alignment `ns` gives the struct: explicit, so
    /// every byte of an event is written.
    pub _pad2: [u8; 6],
}

pub const EVENTS_PER_SECOND: u32 = 1000;
/// Bytes of the ring buffer (a power of two, a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 256 * 1024;

/// Per-CPU state of the event rate limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EventBudget {
    pub window_ns: u64,
    pub sent: u32,
    pub suppressed: u32,
}

/// `JUMP` (program array) slots: the routing programs `from_vm` tail-calls
/// into, and the router's own ICMP the routing programs tail-call into,
/// so that each starts with a stack and a verifier budget of its own.
pub const JUMP_ROUTE_V4: u32 = 0;
pub const JUMP_ROUTE_V6: u32 = 1;
pub const JUMP_ICMP_V4: u32 = 2;
pub const JUMP_ICMP_V6: u32 = 3;
/// The sender's egress rules for a packet the router answers itself.
pub const JUMP_TO_ROUTER: u32 = 4;
/// The answer to a router solicitation.
pub const JUMP_ADVERT: u32 = 5;
/// A routed packet leaving through the router's external gateway, after
/// the sender's egress rules (`to_router`): NAT, the next hop, the uplink.
pub const JUMP_TO_EXTERNAL: u32 = 6;
pub const JUMP_SLOTS: u32 = 7;

/// What `from_vm` hands a routing program, and a routing program the
/// router's ICMP program (`HOP`, per CPU, one entry): a tail call keeps
/// the packet but not the caller's variables.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Hop {
    pub slot: u32,
    pub router: u32,
    /// The sending port.
    pub port: PortInfo,
    /// For the ICMP program: the message to answer with, ICMP (or ICMPv6)
    /// type << 8 | code; an echo reply answers an echo request. It names
    /// the drop an error stands for too (counted whether or not the error
    /// can be sent).
    pub answer: u32,
    /// For "fragmentation needed" and "packet too big": the MTU to report.
    pub mtu: u32,
    /// Where `to_router` goes after the sender's egress rules: 0 for the
    /// router's ICMP program of the packet's family, or a `JUMP_*` slot
    /// (`JUMP_TO_EXTERNAL`).
    pub then: u32,
    /// For `to_external`: the IPv4 next hop outside (the route's, or the
    /// destination itself on link), as the routing program found it.
    pub via: [u8; 4],
}

/// Per-CPU budget of the ICMP errors sent to one port (by port index, not
/// pinned): at most `ICMP_ERRORS_PER_SECOND` in each one-second window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct IcmpBudget {
    pub window_ns: u64,
    pub sent: u32,
    pub _pad: u32,
}

/// ICMP errors the router sends to one port per second and CPU (RFC 1812
/// 4.3.2.8 and RFC 4443 2.4(f) require a limit; traceroute needs three
/// per hop, tracepath one at a time).
pub const ICMP_ERRORS_PER_SECOND: u32 = 50;

/// What every frame `from_vm` or a routing program redirects carries to
/// `to_vm` in the XDP metadata area: the sending port (for security groups)
/// and, for a routed frame to a group without an active member, the group
/// (each member gets the frame addressed to the MAC it binds the address to).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TxMeta {
    pub magic: u32,
    /// Port index of the sender.
    pub sender: u32,
    /// The sender's policy and identity (`PortInfo`).
    pub policy: u32,
    pub identity: u32,
    /// The sender's `PORT_F_*` flags.
    pub flags: u32,
    /// A group to readdress for, or 0.
    pub group: u32,
    /// What the program decided (`OUT_*`) and its detail: the port or
    /// flood domain a frame was redirected to, or the drop reason. Written
    /// for every redirect, and for drops of frames that carry metadata
    /// (`dataplane trace`'s), so a trace reads the datapath's own decision.
    pub out_kind: u32,
    pub out: u32,
}

// The kernel allows at most 32 bytes of XDP metadata, in 4-byte units.
const _: () = assert!(size_of::<TxMeta>() <= 32 && size_of::<TxMeta>().is_multiple_of(4));

pub const TX_META_MAGIC: u32 = 0x6161_7072;
/// `TxMeta::flags` bit of a frame run by `dataplane trace`: the programs
/// decide as for any frame but change no state other packets depend on
/// (no group claim, no connection tracked, no drop event).
pub const TX_F_TRACE: u32 = 1 << 16;
/// `TxMeta::out_kind` values.
pub const OUT_NONE: u32 = 0;
/// Dropped; `out` is the `DropReason`.
pub const OUT_DROP: u32 = 1;
/// Redirected to one port; `out` is its index.
pub const OUT_PORT: u32 = 2;
/// Flooded; `out` is the flood domain (a network, or a group from
/// `FLOOD_DOMAIN_GROUP_BASE`).
pub const OUT_FLOOD: u32 = 3;
/// Answered (ARP/ND, an echo request to the router) and sent back to the
/// sender; `out` is its index.
pub const OUT_REPLY: u32 = 4;
/// Dropped, and answered with an ICMP error sent back to the sender; `out`
/// is the `DropReason`.
pub const OUT_ICMP_ERROR: u32 = 5;
/// Sent out of an uplink to an external network (translated as the
/// router's gateway does); `out` is the uplink's interface index.
pub const OUT_EXTERNAL: u32 = 6;

/// Key of the flood maps (outer map of per-domain device maps).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct FloodKey {
    pub slot: u32,
    /// A network index, or FLOOD_DOMAIN_GROUP_BASE + group index.
    pub domain: u32,
}

/// The map types the loader reads and writes through aya. `aya::Pod`
/// promises what `bytemuck::Pod` does (no padding, any bit pattern is a
/// value); each type derives `bytemuck::Pod`, whose derive refuses a
/// `#[repr(C)]` struct with implicit padding, and this list asserts the
/// derive is there, so a type with padding (which would leave uninitialised
/// bytes in map keys and values) does not compile.
#[cfg(feature = "user")]
mod pod {
    use super::*;

    const fn assert_pod<T: bytemuck::Pod>() {}

    macro_rules! pod {
        ($($t:ty),* $(,)?) => {
            $(
                const _: () = assert_pod::<$t>();
                // SAFETY: bytemuck::Pod, asserted above.
                unsafe impl aya::Pod for $t {}
            )*
        };
    }

    pod!(
        DpConfig,
        PortKey,
        PortInfo,
        PortMacKey,
        PortMac,
        PortAddrV4Key,
        PortAddrV6Key,
        PortAddr,
        PortStats,
        PortMeta,
        FdbKey,
        FdbEntry,
        NeighV4Key,
        NeighV6Key,
        Neigh,
        GroupMemberKey,
        GroupMember,
        GroupState,
        GroupMeta,
        FloodKey,
        RouteV4Key,
        RouteV6Key,
        Route,
        Hop,
        IcmpBudget,
        AdvertKey,
        Advert,
        DropEvent,
        EventBudget,
        PolicyKey,
        PolicyEntry,
        RemoteV4Key,
        RemoteV6Key,
        RemoteIdentity,
        CtKey,
        CtEntry,
        SgStats,
        CtStats,
        SgMeta,
        crate::fastpath::FlowKey,
        crate::fastpath::FlowEntry,
        crate::nat::GatewayKey,
        crate::nat::Gateway,
        crate::nat::FloatingKey,
        crate::nat::Floating,
        crate::nat::ExtAddrKey,
        crate::nat::ExtAddr,
        crate::nat::UplinkKey,
        crate::nat::Uplink,
        crate::nat::ExtNeighKey,
        crate::nat::ExtNeigh,
        crate::nat::NatKey,
        crate::nat::NatEntry,
        crate::nat::NatStats,
    );
}

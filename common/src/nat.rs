//! External networks, router gateways and floating IPs (IPv4): what the
//! routing programs and `from_uplink` need to reach the outside world
//! through a host interface (the uplink), and to translate addresses on
//! the way (Neutron's SNAT and floating IPs).
//!
//! The configuration (slotted, compiled from Neutron's `routers`
//! `external_gateway_info` and `floatingips`):
//! - `ROUTES_V4` entries of kind [`ROUTE_EXTERNAL`] for each router with a
//!   gateway: the external subnet (on link) and, when that subnet has a
//!   `gateway_ip`, the default route through it;
//! - `GATEWAYS`: each router's gateway (its external address, MAC, network,
//!   the uplink's interface on this host, whether it does SNAT);
//! - `FLOATING`: (router, fixed IP) -> floating IP, for packets leaving;
//! - `EXT_ADDRS`: (external network, address) -> what it is (a router's
//!   gateway address or a floating IP), for packets arriving and for ARP;
//! - `UPLINKS`: (interface) -> the external network it carries.
//!
//! The state (not slotted, written by the datapath, pinned so that it
//! survives agent restarts): `EXT_NEIGH` (neighbours learned on the
//! external network), `NAT` (SNAT connections, both directions).

use bytemuck::{Pod, Zeroable};

/// A `Route::kind`: reached through the router's external gateway. `addr`
/// is the next hop (the external subnet's `gateway_ip`), or zero for the
/// external subnet itself (the destination is on link); `network` is the
/// external network and `mac` the gateway port's MAC.
pub const ROUTE_EXTERNAL: u8 = 3;

/// `GATEWAYS` key: a router.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct GatewayKey {
    pub slot: u32,
    pub router: u32,
}

/// A router's external gateway (`external_gateway_info`), IPv4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Gateway {
    /// The external network's index.
    pub network: u32,
    /// The uplink carrying that network on this host; 0 when this host
    /// has none (packets to the outside are then dropped `no_uplink`).
    pub ifindex: u32,
    /// The router's address on the external network (the SNAT source).
    pub addr: [u8; 4],
    /// The gateway port's MAC.
    pub mac: [u8; 6],
    /// `GATEWAY_F_*`.
    pub flags: u16,
}

/// `enable_snat`: sources without a floating IP leave as the gateway's
/// address; without it they leave untranslated.
pub const GATEWAY_F_SNAT: u16 = 1 << 0;

/// `FLOATING` key: a fixed IP behind a router.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct FloatingKey {
    pub slot: u32,
    pub router: u32,
    pub fixed: [u8; 4],
}

/// The floating IP a fixed IP leaves as.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Floating {
    pub addr: [u8; 4],
}

/// `EXT_ADDRS` key: an address on an external network.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct ExtAddrKey {
    pub slot: u32,
    pub network: u32,
    pub addr: [u8; 4],
}

/// What an address on an external network is: the datapath answers ARP
/// for it with `mac`, and translates what arrives for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ExtAddr {
    /// [`EXT_GATEWAY`] or [`EXT_FLOATING`].
    pub kind: u32,
    pub router: u32,
    /// A floating IP's fixed IP (zero for a gateway).
    pub fixed: [u8; 4],
    /// The router's gateway port MAC.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// A router's own address on the external network: arriving packets
/// are replies of SNAT connections.
pub const EXT_GATEWAY: u32 = 1;
/// A floating IP: arriving packets go to its fixed IP.
pub const EXT_FLOATING: u32 = 2;

/// `UPLINKS` key: an interface of this host.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct UplinkKey {
    pub slot: u32,
    pub ifindex: u32,
}

/// The external network an uplink carries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Uplink {
    pub network: u32,
}

/// `EXT_NEIGH` key: an address on an external network.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct ExtNeighKey {
    pub network: u32,
    pub addr: [u8; 4],
}

/// A neighbour on an external network, learned from ARP on the uplink.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ExtNeigh {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// bpf_ktime_get_ns() when last confirmed.
    pub seen_ns: u64,
}

/// Floating IPs on this host's routers (per slot).
pub const MAX_FLOATING_IPS: u32 = 16384;

/// Uplinks of one host (per slot).
pub const MAX_UPLINKS: u32 = 64;

/// Neighbours learned on external networks (LRU).
pub const MAX_EXT_NEIGHBOURS: u32 = 4096;

/// `NAT` key: one direction of a SNAT connection. Leaving
/// ([`NAT_OUT`]): `local` is the VM's address and port, `remote` the
/// outside peer's. Arriving ([`NAT_IN`]): `local` is the gateway's address
/// and the port it chose.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Pod, Zeroable)]
pub struct NatKey {
    pub router: u32,
    pub proto: u8,
    /// [`NAT_OUT`] or [`NAT_IN`].
    pub dir: u8,
    /// TCP/UDP port, or the ICMP echo identifier.
    pub local_port: [u8; 2],
    pub local: [u8; 4],
    pub remote: [u8; 4],
    pub remote_port: [u8; 2],
    pub _pad: [u8; 2],
}

pub const NAT_OUT: u8 = 1;
pub const NAT_IN: u8 = 2;

/// The other side of a [`NatKey`]: leaving, the gateway's address and
/// port; arriving, the VM's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NatEntry {
    pub addr: [u8; 4],
    pub port: [u8; 2],
    pub _pad: [u8; 2],
    /// bpf_ktime_get_ns() of the last packet either way.
    pub last_ns: u64,
}

/// A SNAT port whose connection saw no packet for this long may be given
/// to a new connection to the same peer.
pub const NAT_IDLE_NS: u64 = 300_000_000_000;

/// The ports SNAT chooses from (as Linux's default for masquerading
/// stays above the well-known ones).
pub const NAT_PORT_MIN: u16 = 1024;

/// Candidate ports tried for a new SNAT connection before giving up
/// (`nat_exhausted`): a bounded loop.
pub const NAT_PORT_TRIES: u32 = 16;

/// `NAT_STATS` (per CPU, one entry): what the external gateway did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NatStats {
    /// Packets to a floating IP, sent on to its fixed IP.
    pub floating_in: u64,
    /// Packets from a fixed IP with a floating IP, leaving as it.
    pub floating_out: u64,
    /// Packets leaving as the gateway's address (SNAT).
    pub snat_out: u64,
    /// Replies to SNAT connections, sent on to the VM.
    pub snat_in: u64,
    /// ICMP errors from outside about a packet the gateway translated
    /// (SNAT or a floating IP), translated back and sent on to the VM.
    pub icmp_in: u64,
    /// SNAT connections opened.
    pub snat_new: u64,
    /// Packets leaving untranslated (`enable_snat` false, no floating IP).
    pub routed_out: u64,
    /// Packets from inside to a floating IP, or back to the gateway's
    /// address (their replies), translated and routed back in (hairpin).
    pub hairpin: u64,
    /// ARP requests answered for gateway and floating addresses.
    pub arp_replies: u64,
    /// ARP requests sent for an unknown next hop (the packet that needed
    /// it is dropped `ext_resolving`).
    pub arp_requests: u64,
    /// Neighbours learned or refreshed from ARP on the uplink.
    pub neigh_learned: u64,
    /// Frames on the uplink not for a gateway or floating address: left to
    /// the host's stack.
    pub passed: u64,
}

impl NatStats {
    /// Sums another CPU's counters in.
    pub fn add(&mut self, o: &NatStats) {
        self.floating_in += o.floating_in;
        self.floating_out += o.floating_out;
        self.snat_out += o.snat_out;
        self.snat_in += o.snat_in;
        self.icmp_in += o.icmp_in;
        self.snat_new += o.snat_new;
        self.routed_out += o.routed_out;
        self.hairpin += o.hairpin;
        self.arp_replies += o.arp_replies;
        self.arp_requests += o.arp_requests;
        self.neigh_learned += o.neigh_learned;
        self.passed += o.passed;
    }

    /// Every counter with its name (as `show nat` and the metrics name
    /// them).
    pub fn named(&self) -> [(&'static str, u64); 12] {
        [
            ("floating_in", self.floating_in),
            ("floating_out", self.floating_out),
            ("snat_out", self.snat_out),
            ("snat_in", self.snat_in),
            ("icmp_in", self.icmp_in),
            ("snat_new", self.snat_new),
            ("routed_out", self.routed_out),
            ("hairpin", self.hairpin),
            ("arp_replies", self.arp_replies),
            ("arp_requests", self.arp_requests),
            ("neigh_learned", self.neigh_learned),
            ("passed", self.passed),
        ]
    }
}

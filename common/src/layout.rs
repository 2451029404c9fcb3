//! Every pinned map of the datapath, described once.
//!
//! [`pinned_maps!`] lists each map's name, kind, key and value types and
//! sizing. Each side expands the list with a macro of its own:
//! `dataplane-ebpf` into the BTF map definitions, the agent into its typed
//! map handles (pinning, opening, adoption, sync, capacity checks, and the
//! readers behind `show`, `trace`, `monitor` and the metrics), and
//! `dataplane-config` into the desired contents of every slotted map.
//! Adding a map is a line here and the code that fills or reads it.
//!
//! Kinds: `array`, `percpu_array`, `slot_hash` and `slot_lpm` (configuration
//! maps whose keys start with the slot, see [`Slotted`]), `lru_hash`,
//! `devmap_hash`, `hash_of_devmaps` (outer map of device maps), `prog_array`
//! and `ringbuf`.

use crate::maps::{MAX_CONNTRACK, MAX_PORTS};

/// Address entries (MACs, fixed IPs, pairs, link-local addresses) one port
/// may need, on average, in each address map.
pub const ADDRESSES_PER_PORT: u32 = 32;

/// How many entries a map holds, as a function of the limits the agent is
/// started with (`--max-ports`, `--max-connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizing {
    /// The same whatever the limits.
    Fixed(u32),
    /// `per_port` entries for each port, plus `extra`.
    PerPort { per_port: u32, extra: u32 },
    /// The connection-tracking table's size.
    Connections,
}

/// The limits a datapath is sized for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_ports: u32,
    pub max_connections: u32,
}

impl Limits {
    /// What the eBPF object is compiled with; the agent resizes every map
    /// to its own limits when it loads the object.
    pub const COMPILED: Limits = Limits {
        max_ports: MAX_PORTS,
        max_connections: MAX_CONNTRACK,
    };
}

impl Sizing {
    pub const fn entries(self, limits: Limits) -> u32 {
        match self {
            Sizing::Fixed(n) => n,
            Sizing::PerPort { per_port, extra } => limits.max_ports * per_port + extra,
            Sizing::Connections => limits.max_connections,
        }
    }

    /// Entries in the compiled object (a const-generic argument).
    pub const fn compiled(self) -> usize {
        self.entries(Limits::COMPILED) as usize
    }
}

/// Configuration maps hold every entry twice: one per slot.
const SLOTTED: u32 = 2;

/// Entries per port of the slotted address maps (MACs, fixed IPs, pairs,
/// link-local addresses, and the L2/L3 tables built from them).
pub const PER_PORT_ADDRESSES: Sizing = Sizing::PerPort {
    per_port: SLOTTED * ADDRESSES_PER_PORT,
    extra: 0,
};

/// An LPM-trie key: the prefix length in bits, then the data (the kernel's
/// `struct bpf_lpm_trie_key` layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LpmKey<K> {
    pub prefix_len: u32,
    pub data: K,
}

/// A configuration-map key: it starts with the slot it belongs to.
pub trait Slotted: Copy + Ord {
    fn slot(&self) -> u32;
    fn set_slot(&mut self, slot: u32);

    /// The key in `slot`.
    fn in_slot(mut self, slot: u32) -> Self {
        self.set_slot(slot);
        self
    }
}

impl<K: Slotted> Slotted for LpmKey<K> {
    fn slot(&self) -> u32 {
        self.data.slot()
    }
    fn set_slot(&mut self, slot: u32) {
        self.data.set_slot(slot)
    }
}

/// Calls `$consumer! { ... }` with every pinned map, one per line:
/// `NAME field: kind<Key, Value> = sizing;` (`NAME` is the map's name in the
/// object and under `maps/`, `field` the name of its handle).
#[macro_export]
macro_rules! pinned_maps {
    ($consumer:ident) => {
        $consumer! {
            /// The live slot, flags and configuration generation (`CONFIG[0]`).
            CONFIG config: array<u32, $crate::DpConfig> = $crate::Sizing::Fixed(1);
            /// (slot, ifindex) -> the port bound to that interface.
            PORTS ports: slot_hash<$crate::PortKey, $crate::PortInfo> =
                $crate::Sizing::PerPort { per_port: 2, extra: 0 };
            /// The MACs a port may send from and receive on.
            PORT_MACS port_macs: slot_hash<$crate::PortMacKey, $crate::PortMac> =
                $crate::PER_PORT_ADDRESSES;
            /// The (MAC, IPv4 prefix) pairs a port may send from.
            PORT_ADDRS_V4 addrs_v4: slot_lpm<$crate::PortAddrV4Key, $crate::PortAddr> =
                $crate::PER_PORT_ADDRESSES;
            /// The (MAC, IPv6 prefix) pairs a port may send from.
            PORT_ADDRS_V6 addrs_v6: slot_lpm<$crate::PortAddrV6Key, $crate::PortAddr> =
                $crate::PER_PORT_ADDRESSES;
            /// Counters by port index (index 0: frames of no port).
            PORT_STATS port_stats: percpu_array<u32, $crate::PortStats> =
                $crate::Sizing::PerPort { per_port: 1, extra: 1 };
            /// Port ids and taps by port index, for inspection and adoption.
            PORT_META port_meta: array<u32, $crate::PortMeta> =
                $crate::Sizing::PerPort { per_port: 1, extra: 1 };
            /// L2 table: (network, MAC) -> port, group or router.
            FDB fdb: slot_hash<$crate::FdbKey, $crate::FdbEntry> = $crate::PER_PORT_ADDRESSES;
            /// L3 table of each network: who owns an IPv4 address or prefix.
            NEIGH_V4 neigh_v4: slot_lpm<$crate::NeighV4Key, $crate::Neigh> =
                $crate::PER_PORT_ADDRESSES;
            /// L3 table of each network: who owns an IPv6 address or prefix.
            NEIGH_V6 neigh_v6: slot_lpm<$crate::NeighV6Key, $crate::Neigh> =
                $crate::PER_PORT_ADDRESSES;
            /// Members of each group of ports sharing an address or MAC.
            GROUP_MEMBERS group_members: slot_hash<$crate::GroupMemberKey, $crate::GroupMember> =
                $crate::PER_PORT_ADDRESSES;
            /// Each router's connected IPv4 subnets.
            ROUTES_V4 routes_v4: slot_lpm<$crate::RouteV4Key, $crate::Route> =
                $crate::Sizing::Fixed(2 * $crate::MAX_ROUTER_INTERFACES);
            /// Each router's connected IPv6 subnets.
            ROUTES_V6 routes_v6: slot_lpm<$crate::RouteV6Key, $crate::Route> =
                $crate::Sizing::Fixed(2 * $crate::MAX_ROUTER_INTERFACES);
            /// The router advertisement of each network with a router on
            /// an IPv6 subnet.
            ADVERTS adverts: slot_hash<$crate::AdvertKey, $crate::Advert> =
                $crate::Sizing::Fixed(2 * $crate::MAX_ROUTER_INTERFACES);
            /// A group's active member (written by the datapath).
            GROUP_STATE group_state: array<u32, $crate::GroupState> =
                $crate::Sizing::Fixed($crate::MAX_GROUPS);
            /// Group names, for inspection.
            GROUP_META group_meta: array<u32, $crate::GroupMeta> =
                $crate::Sizing::Fixed($crate::MAX_GROUPS);
            /// Port index -> its tap, with `to_vm` on each entry.
            TX_PORTS tx_ports: devmap_hash<u32, [u32; 2]> =
                $crate::Sizing::PerPort { per_port: 1, extra: 1 };
            /// Flood sets: one device map per network and per group, per slot.
            FLOOD flood: hash_of_devmaps<$crate::FloodKey, u32> =
                $crate::Sizing::Fixed($crate::MAX_FLOOD_DOMAINS);
            /// The routing programs `from_vm` tail-calls into.
            JUMP jump: prog_array<u32, u32> = $crate::Sizing::Fixed($crate::JUMP_SLOTS);
            /// The hand-over of a tail call (per CPU). Pinned, so that it
            /// is one map for every run's programs: `JUMP` is, and while a
            /// restarted agent has put its programs there but not yet
            /// taken over the links, the previous run's `from_vm` calls
            /// them (with a map of its own, they read a stale hand-over).
            HOP hop: percpu_array<u32, $crate::Hop> = $crate::Sizing::Fixed(1);
            /// Drop events for `dataplane monitor` (size in bytes).
            EVENTS events: ringbuf<(), $crate::DropEvent> =
                $crate::Sizing::Fixed($crate::EVENTS_RING_BYTES);
            /// Compiled security-group rules.
            POLICY policy: slot_lpm<$crate::PolicyKey, $crate::PolicyEntry> =
                $crate::Sizing::Fixed($crate::MAX_POLICY_RULES);
            /// IPv4 remote prefixes of rules -> their CIDR identity.
            REMOTE_V4 remote_v4: slot_lpm<$crate::RemoteV4Key, $crate::RemoteIdentity> =
                $crate::Sizing::Fixed($crate::MAX_REMOTE_PREFIXES);
            /// IPv6 remote prefixes of rules -> their CIDR identity.
            REMOTE_V6 remote_v6: slot_lpm<$crate::RemoteV6Key, $crate::RemoteIdentity> =
                $crate::Sizing::Fixed($crate::MAX_REMOTE_PREFIXES);
            /// Tracked connections by zone (port) and tuple.
            CONNTRACK conntrack: lru_hash<$crate::CtKey, $crate::CtEntry> =
                $crate::Sizing::Connections;
            /// The flow cache: established connections' whole verdicts.
            FLOW_CACHE flow_cache: lru_hash<$crate::FlowKey, $crate::FlowEntry> =
                $crate::Sizing::Connections;
            /// How connection-table entries came and went (evictions).
            CT_STATS ct_stats: percpu_array<u32, $crate::CtStats> =
                $crate::Sizing::Fixed($crate::CT_STATS_ENTRIES);
            /// Connections each security group allowed, by direction.
            SG_STATS sg_stats: percpu_array<u32, $crate::SgStats> =
                $crate::Sizing::Fixed($crate::MAX_SECURITY_GROUPS);
            /// Security-group ids by index, for inspection.
            SG_META sg_meta: array<u32, $crate::SgMeta> =
                $crate::Sizing::Fixed($crate::MAX_SECURITY_GROUPS);
            /// This host's tunnel endpoints (`TUNNEL[0]`; zero: one host).
            TUNNEL tunnel: array<u32, $crate::TunnelConfig> = $crate::Sizing::Fixed(1);
            /// Ports on other chassis: where they are, and who they are.
            REMOTE_PORTS remote_ports: slot_hash<$crate::RemotePortKey, $crate::RemotePort> =
                $crate::Sizing::PerPort { per_port: 2, extra: 0 };
            /// The chassis each flood domain is replicated to.
            REMOTE_FLOOD remote_flood: slot_hash<$crate::FloodKey, $crate::RemoteFlood> =
                $crate::Sizing::Fixed($crate::MAX_FLOOD_DOMAINS);
            /// Live chassis by underlay address.
            CHASSIS chassis: slot_hash<$crate::ChassisKey, $crate::Chassis> =
                $crate::Sizing::Fixed(2 * $crate::MAX_CHASSIS);
            /// Networks by VNI.
            VNIS vnis: slot_hash<$crate::VniKey, $crate::VniNetwork> =
                $crate::Sizing::Fixed(2 * $crate::MAX_VNIS);
            /// Each router's external gateway.
            GATEWAYS gateways: slot_hash<$crate::GatewayKey, $crate::Gateway> =
                $crate::Sizing::Fixed(2 * $crate::MAX_ROUTER_INTERFACES);
            /// (router, fixed IP) -> the floating IP it leaves as.
            FLOATING floating: slot_hash<$crate::FloatingKey, $crate::Floating> =
                $crate::Sizing::Fixed(2 * $crate::MAX_FLOATING_IPS);
            /// Gateway and floating addresses on external networks.
            EXT_ADDRS ext_addrs: slot_hash<$crate::ExtAddrKey, $crate::ExtAddr> =
                $crate::Sizing::Fixed(2 * ($crate::MAX_FLOATING_IPS + $crate::MAX_ROUTER_INTERFACES));
            /// This host's uplinks: interface -> external network.
            UPLINKS uplinks: slot_hash<$crate::UplinkKey, $crate::Uplink> =
                $crate::Sizing::Fixed(2 * $crate::MAX_UPLINKS);
            /// Neighbours learned on external networks.
            EXT_NEIGH ext_neigh: lru_hash<$crate::ExtNeighKey, $crate::ExtNeigh> =
                $crate::Sizing::Fixed($crate::MAX_EXT_NEIGHBOURS);
            /// SNAT connections, both directions.
            NAT nat: lru_hash<$crate::NatKey, $crate::NatEntry> = $crate::Sizing::Connections;
            /// What the external gateways did.
            NAT_STATS nat_stats: percpu_array<u32, $crate::NatStats> = $crate::Sizing::Fixed(1);
        }
    };
}

/// The maps' names, as constants for readers.
pub mod names {
    macro_rules! names {
        ($( $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; )*) => {
            $( $(#[$doc])* pub const $name: &str = stringify!($name); )*
            /// Every pinned map's name.
            pub const ALL: &[&str] = &[ $( stringify!($name) ),* ];
        };
    }
    crate::pinned_maps!(names);
}

// The slotted key types: their slot is their first field.
macro_rules! slotted_keys {
    ($( $(#[$doc:meta])* $name:ident $field:ident : $kind:ident < $k:ty, $v:ty > = $size:expr ; )*) => {
        $( slotted_keys!(@one $kind $k); )*
    };
    (@one slot_hash $k:ty) => { slotted_keys!(@impl $k); };
    (@one slot_lpm $k:ty) => { slotted_keys!(@impl $k); };
    (@one $other:ident $k:ty) => {};
    (@impl $k:ty) => {
        impl Slotted for $k {
            fn slot(&self) -> u32 {
                self.slot
            }
            fn set_slot(&mut self, slot: u32) {
                self.slot = slot;
            }
        }
    };
}
pinned_maps!(slotted_keys);

//! Validated Neutron resources, as the store keeps them: each checked on
//! its own (`check`), referring to other objects by id. What needs the
//! other objects (the port's network exists, its fixed IPs are in their
//! subnets, no two ports share a MAC, ...) is checked by the store, which
//! also resolves each port ([`Port`]).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::{errors::label, neutron::MacAddr};

/// Neutron's default for `max_allowed_address_pair`.
pub const DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS: usize = 10;

/// Neutron's default for `max_dns_nameservers`.
pub const DEFAULT_MAX_DNS_NAMESERVERS: usize = 5;

/// Settings of this datapath (the `dataplane` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub max_allowed_address_pairs: usize,
    pub max_dns_nameservers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_allowed_address_pairs: DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS,
            max_dns_nameservers: DEFAULT_MAX_DNS_NAMESERVERS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// Default of `port_security_enabled` for the network's ports.
    pub port_security_enabled: bool,
    /// The VXLAN network identifier, for a network that spans hosts.
    pub vni: Option<u32>,
    /// The largest IP packet the network carries; 0 when not given (no
    /// limit is enforced).
    pub mtu: u32,
    /// `router:external`: routers may have their gateway on it, floating
    /// IPs come from its subnets.
    pub external: bool,
    /// `provider:network_type` (`flat`, `vlan`, `vxlan`, ...), when given:
    /// an uplink carries an external network untagged, so a router's
    /// gateway may only be on a flat one.
    pub network_type: Option<String>,
    /// `provider:physical_network`: which of the host's uplinks
    /// (`dataplane run --uplink PHYSNET=IFNAME`) carries an external
    /// network.
    pub physical_network: Option<String>,
}

/// The smallest MTU an IPv4 subnet allows (Neutron's `IPV4_MIN_MTU`).
pub const IPV4_MIN_MTU: u32 = 68;
/// The smallest MTU an IPv6 subnet allows (Neutron's `IPV6_MIN_MTU`).
pub const IPV6_MIN_MTU: u32 = 1280;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
    /// How a router attached to the subnet advertises it (IPv6).
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    /// How its hosts get addresses (IPv6).
    pub ipv6_address_mode: Option<Ipv6Mode>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<IpAddr>,
}

/// Neutron's IPv6 modes (`ipv6_ra_mode`, `ipv6_address_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ipv6Mode {
    Slaac,
    Dhcpv6Stateless,
    Dhcpv6Stateful,
}

impl Ipv6Mode {
    /// As Neutron writes it.
    pub fn name(self) -> &'static str {
        match self {
            Ipv6Mode::Slaac => "slaac",
            Ipv6Mode::Dhcpv6Stateless => "dhcpv6-stateless",
            Ipv6Mode::Dhcpv6Stateful => "dhcpv6-stateful",
        }
    }

    /// Hosts make their own addresses from the prefix (SLAAC, with or
    /// without DHCPv6 for the rest): Neutron's "auto address" modes.
    pub fn automatic(self) -> bool {
        matches!(self, Ipv6Mode::Slaac | Ipv6Mode::Dhcpv6Stateless)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    pub id: String,
    pub name: String,
    /// Static routes, in the order given.
    pub routes: Vec<StaticRoute>,
    /// `external_gateway_info`; None when null or absent.
    pub gateway: Option<ExternalGateway>,
}

/// A router's `external_gateway_info` as written: its gateway port (a
/// port with `device_owner` `network:router_gateway`) must hold exactly
/// these addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalGateway {
    pub network_id: String,
    /// Neutron's default (`enable_snat_by_default`) is true.
    pub enable_snat: bool,
    /// Each address as Neutron allocated it (a file must give it); the
    /// subnet may be left for the store to find.
    pub external_fixed_ips: Vec<FixedIpSpec>,
}

/// A floating IP (`floatingips`), checked on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: Ipv4Addr,
    pub floating_network_id: String,
    /// None: not associated (kept, does nothing).
    pub port_id: Option<String>,
    /// As written; Neutron's choice (the port's only IPv4 address) when
    /// absent.
    pub fixed_ip_address: Option<Ipv4Addr>,
    /// As written (Neutron fills it in when it associates).
    pub router_id: Option<String>,
    /// What the store resolved, for an associated floating IP.
    pub association: Option<Association>,
}

/// A floating IP's fixed IP and the router that translates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Association {
    pub port_id: String,
    pub fixed: Ipv4Addr,
    /// The fixed IP's subnet.
    pub subnet_id: String,
    pub router: String,
}

impl FloatingIp {
    pub fn label(&self) -> String {
        label(
            "floating IP",
            &self.id,
            &self.floating_ip_address.to_string(),
        )
    }
}

/// One of a router's `routes`: `destination` through `nexthop`, an
/// address on one of the router's subnets (a port's, or an allowed address
/// pair's such as a VRRP VIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    pub destination: IpNet,
    pub nexthop: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub direction: Direction,
    /// IPv6 (`ethertype = "IPv6"`) or IPv4.
    pub ipv6: bool,
    /// IP protocol number; None for any.
    pub protocol: Option<u8>,
    pub ports: PortMatch,
    pub remote: Remote,
}

/// What a rule matches beyond the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMatch {
    Any,
    /// Destination port range (TCP, UDP, SCTP, UDP-Lite, DCCP), inclusive.
    Range(u16, u16),
    /// ICMP type, and code if given.
    Icmp(u8, Option<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Any,
    Prefix(IpNet),
    /// A security group's id.
    Group(String),
}

/// `device_owner` values of ports Neutron lets hold an IPv6 subnet's
/// network (subnet-router anycast) address (`ROUTER_PORT_OWNERS`; a port
/// without an owner may too).
pub const ROUTER_PORT_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
    "network:router_centralized_snat",
    "network:router_gateway",
];

/// `device_owner` values of router interface ports.
pub const ROUTER_INTERFACE_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
];

/// A port as written, checked on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub mac: MacAddr,
    /// As written (`compute:nova`, `network:dhcp`, ...; empty when none).
    pub device_owner: String,
    pub fixed_ips: Vec<FixedIpSpec>,
    /// One entry per pair the datapath enforces: pairs Neutron keeps apart
    /// but that mean the same (10.0.0.1 and 10.0.0.1/32) are merged.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// How many pairs the port lists, as Neutron counts them against
    /// `max_allowed_address_pair`.
    pub pairs_written: usize,
    /// As written; the network's default applies when absent.
    pub port_security_enabled: Option<bool>,
    /// Security group ids as written (the store sorts and dedups them).
    pub security_groups: Vec<String>,
    /// Host interface carrying the port's traffic (none for a router
    /// interface: the datapath is the router).
    pub tap: String,
    /// For a router interface or gateway port: the router's id.
    pub router: Option<String>,
    /// A router's gateway port (`network:router_gateway`): `router` is the
    /// router, but the port is not one of its interfaces (no connected
    /// route, no neighbour entries: its address and MAC are the
    /// gateway's, in `GATEWAYS` and `EXT_ADDRS`).
    pub router_gateway: bool,
    /// The host (chassis) the port is bound to (`binding:host_id`).
    pub host: Option<String>,
}

/// A fixed IP as written: the subnet may be left for the store to find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIpSpec {
    pub subnet_id: Option<String>,
    pub ip: IpAddr,
}

/// A fixed IP on its subnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPair {
    /// As configured: a host address is a /32 or /128; host bits of a
    /// prefix are kept as written (Neutron accepts them) and ignored.
    pub ip: IpNet,
    /// The pair's MAC, or the port's MAC when the pair names none.
    pub mac: MacAddr,
    /// Whether the pair named its own MAC.
    pub explicit_mac: bool,
}

/// A port checked against the rest of the configuration: what the
/// compiler reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub spec: PortSpec,
    /// `port_security_enabled`, or the network's default.
    pub port_security_enabled: bool,
    /// Each fixed IP on its subnet.
    pub fixed_ips: Vec<FixedIp>,
    /// Sorted, without duplicates.
    pub security_groups: Vec<String>,
}

impl PortSpec {
    pub fn label(&self) -> String {
        label("port", &self.id, &self.name)
    }

    pub fn is_router_interface(&self) -> bool {
        self.router.is_some() && !self.router_gateway
    }
}

impl Port {
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn label(&self) -> String {
        self.spec.label()
    }
}

/// Neutron's tap naming: "tap" followed by the first 11 characters of the
/// port id, which fits Linux's 15-byte interface names.
pub fn default_tap_name(port_id: &str) -> String {
    let prefix: String = port_id.chars().take(11).collect();
    format!("tap{prefix}")
}

/// A host's agent, as it published itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chassis {
    pub name: String,
    pub underlay_ip: std::net::Ipv4Addr,
}

/// The active member of a shared address, as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    /// The group's name as the compiler names it: "<network id>
    /// <address>/<prefix length>" or "<network id> <MAC>".
    pub group: String,
    pub port: String,
    pub chassis: String,
}

/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

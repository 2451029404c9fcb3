//! The validated configuration: typed, cross-referenced by position, and
//! guaranteed consistent (see `validate`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::mac::MacAddr;

/// Neutron's default for `max_allowed_address_pair`.
pub const DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS: usize = 10;

#[derive(Debug, Clone)]
pub struct Topology {
    pub max_allowed_address_pairs: usize,
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    pub routers: Vec<Router>,
    pub security_groups: Vec<SecurityGroup>,
}

#[derive(Debug, Clone)]
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
    /// Index into [`Topology::security_groups`].
    Group(usize),
}

/// A router and its interfaces (one per attached subnet).
#[derive(Debug, Clone)]
pub struct Router {
    pub id: String,
    pub name: String,
    pub interfaces: Vec<RouterInterface>,
}

/// One address of a router interface port on one subnet.
#[derive(Debug, Clone)]
pub struct RouterInterface {
    /// The Neutron port id of the interface.
    pub port_id: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    /// Index into [`Topology::subnets`].
    pub subnet: usize,
    pub mac: MacAddr,
    pub ip: IpAddr,
}

/// `device_owner` values of router interface ports.
pub const ROUTER_INTERFACE_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
];

#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub id: String,
    pub name: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    pub mac: MacAddr,
    pub fixed_ips: Vec<FixedIp>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub port_security_enabled: bool,
    /// Indexes into [`Topology::security_groups`], sorted, no duplicates.
    pub security_groups: Vec<usize>,
    /// Host interface carrying the port's traffic.
    pub tap: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    /// Index into [`Topology::subnets`].
    pub subnet: usize,
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

impl Port {
    /// How errors and the CLI name the port.
    pub fn label(&self) -> String {
        label("port", &self.id, &self.name)
    }
}

pub(crate) fn label(kind: &str, id: &str, name: &str) -> String {
    if name.is_empty() || name == id {
        format!("{kind} {id}")
    } else {
        format!("{kind} {id} ({name})")
    }
}

/// Neutron's tap naming: "tap" followed by the first 11 characters of the
/// port id, which fits Linux's 15-byte interface names.
pub fn default_tap_name(port_id: &str) -> String {
    let prefix: String = port_id.chars().take(11).collect();
    format!("tap{prefix}")
}

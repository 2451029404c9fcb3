//! Neutron's resources as written: Neutron's resources and field names,
//! every field optional so that validation, not the parser, reports what is
//! missing or wrong, naming the object and field.

use std::collections::BTreeMap;

use serde::{Deserialize, de::IgnoredAny};
use serde_json::Value;

/// Fields accepted and ignored by `check::unknown_fields`, for objects
/// without a list of their own. Neutron's resources each have theirs,
/// exactly what Neutron returns for them ([`super::fields`]).
pub const IGNORED_FIELDS: &[&str] = &[
    "description",
    "project_id",
    "tenant_id",
    "admin_state_up",
    "status",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    // networks
    "shared",
    "mtu",
    "subnets",
    "router:external",
    "availability_zone_hints",
    "availability_zones",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    // subnets
    "enable_dhcp",
    "dns_nameservers",
    "allocation_pools",
    "host_routes",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "subnetpool_id",
    "segment_id",
    "service_types",
    "dns_publish_fixed_ip",
    // routers
    "distributed",
    "ha",
    "flavor_id",
    "enable_ndp_proxy",
    // security groups and rules
    "normalized_cidr",
    "belongs_to_default_sg",
    "shared",
    "security_group_id",
    // ports
    "binding:host_id",
    "binding:vif_type",
    "binding:vnic_type",
    "binding:profile",
    "binding:vif_details",
    "dns_name",
    "dns_assignment",
    "extra_dhcp_opts",
    "qos_policy_id",
];

/// Unknown fields of one object, collected for validation.
pub type Extra = BTreeMap<String, IgnoredAny>;

/// A field whose absence and `null` mean different things to Neutron (a
/// subnet without `gateway_ip` gets the default gateway, one with `null`
/// has none; a pair without `mac_address` takes the port's, one with
/// `null` is refused). Use with `#[serde(default)]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Given<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Given::Null, Given::Value))
    }
}

/// A Neutron security group with its rules nested, as `openstack security
/// group show` and the API's GET return them.
#[derive(Debug, Default, Deserialize)]
pub struct RawSecurityGroup {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Stateless groups are refused until they are supported. A boolean
    /// as Neutron's `convert_to_boolean` reads it.
    #[serde(default)]
    pub stateful: Given<Value>,
    /// `null` is no rules.
    pub security_group_rules: Option<Vec<RawRule>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRule {
    pub id: Option<String>,
    pub direction: Option<String>,
    /// IPv4 when absent; `null` is refused, as Neutron does.
    #[serde(default)]
    pub ethertype: Given<String>,
    /// A name (tcp, udp, icmp, ipv6-icmp, any, ...) or a number, as a
    /// number or a string; `null` is any protocol.
    pub protocol: Option<Value>,
    /// Numbers or numeric strings (Neutron's `convert_validate_port_value`).
    pub port_range_min: Option<Value>,
    pub port_range_max: Option<Value>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    /// Address groups are refused until they are supported.
    pub remote_address_group_id: Option<String>,
    /// The group the rule belongs to: its own group, when given.
    pub security_group_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Neutron router. Its interfaces are ports whose `device_owner` is a
/// router interface and whose `device_id` is the router's id, as Neutron
/// lists them.
#[derive(Debug, Default, Deserialize)]
pub struct RawRouter {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Static routes (`[{destination, nexthop}]`); `null`, none.
    pub routes: Option<Value>,
    /// External gateway (SNAT, floating IPs): `null`, or an object with
    /// `network_id`, `enable_snat`, `external_fixed_ips`.
    pub external_gateway_info: Option<Value>,
    /// The same for several gateways (`external-gateway-multihoming`):
    /// left out with a notice when it agrees with `external_gateway_info`
    /// (see `forms::skip`), refused when it is still here.
    pub external_gateways: Option<Vec<IgnoredAny>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Settings of this datapath (not a Neutron resource).
#[derive(Debug, Default, Deserialize)]
pub struct RawSettings {
    /// Neutron's `max_allowed_address_pair` option (default 10).
    pub max_allowed_address_pair: Option<i64>,
    /// Neutron's `max_dns_nameservers` option (default 5).
    pub max_dns_nameservers: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawNetwork {
    pub id: Option<String>,
    pub name: Option<String>,
    /// Default of `port_security_enabled` for the network's ports.
    #[serde(default)]
    pub port_security_enabled: Given<Value>,
    /// `vxlan` networks span hosts (their VNI is the segmentation id).
    #[serde(rename = "provider:network_type")]
    pub network_type: Option<String>,
    /// The VNI of a `vxlan` network.
    #[serde(rename = "provider:segmentation_id")]
    pub segmentation_id: Option<i64>,
    /// The network's MTU (`convert_to_int`; `null` is refused, as Neutron
    /// does); absent, unknown.
    #[serde(default)]
    pub mtu: Given<Value>,
    /// `convert_to_boolean`; absent, false; `null` refused.
    #[serde(rename = "router:external", default)]
    pub router_external: Given<Value>,
    /// The physical network an external network is reached through.
    #[serde(rename = "provider:physical_network")]
    pub physical_network: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSubnet {
    pub id: Option<String>,
    pub name: Option<String>,
    pub network_id: Option<String>,
    pub cidr: Option<String>,
    /// Absent: Neutron's default gateway; `null`: none.
    #[serde(default)]
    pub gateway_ip: Given<String>,
    /// 4 or 6, as a number or a numeric string (`convert_to_int`).
    pub ip_version: Option<Value>,
    /// `slaac`, `dhcpv6-stateful`, `dhcpv6-stateless`; absent or `null`,
    /// none.
    pub ipv6_ra_mode: Option<Value>,
    pub ipv6_address_mode: Option<Value>,
    /// `convert_to_boolean`; absent, true; `null` refused.
    #[serde(default)]
    pub enable_dhcp: Given<Value>,
    /// A list of addresses; `null`, none.
    pub dns_nameservers: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPort {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The host (chassis) the port is bound to.
    #[serde(rename = "binding:host_id")]
    pub host_id: Option<String>,
    pub network_id: Option<String>,
    pub mac_address: Option<String>,
    /// `null` is refused, as Neutron does.
    #[serde(default)]
    pub fixed_ips: Given<Vec<RawFixedIp>>,
    /// `null` is no pairs.
    pub allowed_address_pairs: Option<Vec<RawAddressPair>>,
    /// A boolean as Neutron's `convert_to_boolean` reads it; `null` is
    /// refused.
    #[serde(default)]
    pub port_security_enabled: Given<Value>,
    /// `null` is no groups.
    pub security_groups: Option<Vec<String>>,
    /// The host interface of the port; defaults to Neutron's
    /// "tap" + the first 11 characters of the port id.
    pub tap_name: Option<String>,
    /// `network:router_interface` (and the distributed and HA variants)
    /// make the port a router interface; any other value is a VM's port.
    pub device_owner: Option<String>,
    /// For a router interface: the router's id.
    pub device_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawFixedIp {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAddressPair {
    #[serde(default)]
    pub ip_address: Given<String>,
    /// Absent: the port's MAC; `null` is refused, as Neutron does.
    #[serde(default)]
    pub mac_address: Given<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Neutron floating IP (the L3 service plugin's `floatingips`).
#[derive(Debug, Default, Deserialize)]
pub struct RawFloatingIp {
    pub id: Option<String>,
    pub floating_ip_address: Option<String>,
    pub floating_network_id: Option<String>,
    /// `null`: not associated.
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A chassis record (published by each host's agent): its name is its id.
#[derive(Debug, Default, Deserialize)]
pub struct RawChassis {
    /// Its key in a document (its name, as in the database's key).
    pub id: Option<String>,
    pub name: Option<String>,
    pub underlay_ip: Option<String>,
    pub tunnel_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The active member of a shared address (published by the host that saw
/// the claim): its id is "<network id>/<address>/<prefix length>" or
/// "<network id>/<MAC>".
#[derive(Debug, Default, Deserialize)]
pub struct RawActive {
    /// Its key in a document.
    pub id: Option<String>,
    pub port: Option<String>,
    pub chassis: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

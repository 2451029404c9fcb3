//! Settings, networks, subnets and routers on their own.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use serde_json::Value;

use super::{
    addressing, gateway, optional, raw, required, routes, unknown_fields, unknown_fields_in,
};
use crate::{
    errors::Errors,
    neutron::{
        Object, fields,
        raw::{Given, RawActive, RawChassis, RawNetwork, RawRouter, RawSettings, RawSubnet},
        syntax,
    },
    objects::{
        Active, Chassis, DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS, DEFAULT_MAX_DNS_NAMESERVERS, MAX_VNI,
        Network, Router, Settings, Subnet,
    },
};

pub fn settings(errors: &mut Errors, label: &str, value: &Value) -> Option<Settings> {
    let s: RawSettings = raw(errors, label, value)?;
    unknown_fields(errors, label, "", &s.extra);
    let mut count = |field: &str, given: Option<i64>, default: usize| match given {
        Some(n) if n < 0 => {
            errors.push(label, field, format!("{n} is negative"));
            default
        }
        Some(n) => n as usize,
        None => default,
    };
    Some(Settings {
        max_allowed_address_pairs: count(
            "max_allowed_address_pair",
            s.max_allowed_address_pair,
            DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS,
        ),
        max_dns_nameservers: count(
            "max_dns_nameservers",
            s.max_dns_nameservers,
            DEFAULT_MAX_DNS_NAMESERVERS,
        ),
    })
}

pub fn network(errors: &mut Errors, label: &str, object: &Object) -> Option<Network> {
    let n: RawNetwork = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &n.extra, fields::NETWORK);
    let vni = vni(errors, label, &n);
    let port_security_enabled = match &n.port_security_enabled {
        Given::Absent => true,
        Given::Null => {
            errors.push(
                label,
                "port_security_enabled",
                "null cannot be converted to boolean",
            );
            true
        }
        Given::Value(v) => syntax::boolean(v)
            .map_err(|e| errors.push(label, "port_security_enabled", e))
            .unwrap_or(true),
    };
    let mtu = mtu(errors, label, &n.mtu);
    let external = match &n.router_external {
        Given::Absent => false,
        Given::Null => {
            errors.push(
                label,
                "router:external",
                "null cannot be converted to boolean",
            );
            false
        }
        Given::Value(v) => syntax::boolean(v)
            .map_err(|e| errors.push(label, "router:external", e))
            .unwrap_or(false),
    };
    let physical_network = optional(&n.physical_network).map(str::to_string);
    Some(Network {
        id: object.id.clone(),
        name: n.name.unwrap_or_default(),
        port_security_enabled,
        vni,
        mtu,
        external,
        network_type: optional(&n.network_type).map(str::to_string),
        physical_network,
    })
}

/// `mtu` as Neutron reads it (`convert_to_int`, then `non_negative`);
/// absent, 0 (unknown). Booleans and fractions are refused (Neutron's
/// `int()` would truncate them). Larger than a 32-bit column holds,
/// refused as Neutron's database refuses it.
fn mtu(errors: &mut Errors, label: &str, value: &Given<Value>) -> u32 {
    let n = match value {
        Given::Absent => return 0,
        Given::Null => None,
        Given::Value(Value::Number(n)) => n.as_i64(),
        Given::Value(Value::String(s)) => syntax::python_int(s),
        Given::Value(_) => None,
    };
    match n {
        Some(m) if m < 0 => {
            errors.push(label, "mtu", format!("'{m}' should be non-negative"));
            0
        }
        Some(m) => u32::try_from(m)
            .ok()
            .filter(|m| *m <= i32::MAX as u32)
            .unwrap_or_else(|| {
                errors.push(label, "mtu", format!("{m} is out of range"));
                0
            }),
        None => {
            let shown = match value {
                Given::Value(v) => v.to_string(),
                _ => "None".into(),
            };
            errors.push(label, "mtu", format!("'{shown}' is not an integer"));
            0
        }
    }
}

/// The VNI of a `vxlan` network; other types stay on one host.
fn vni(errors: &mut Errors, label: &str, n: &RawNetwork) -> Option<u32> {
    let kind = n.network_type.as_deref().map(str::trim).unwrap_or("");
    match (kind, n.segmentation_id) {
        ("vxlan", Some(id)) if (1..=i64::from(MAX_VNI)).contains(&id) => Some(id as u32),
        ("vxlan", Some(id)) => {
            errors.push(
                label,
                "provider:segmentation_id",
                format!("{id} is not a VXLAN network identifier (1-{MAX_VNI})"),
            );
            None
        }
        ("vxlan", None) => {
            errors.push(
                label,
                "provider:segmentation_id",
                "missing: a vxlan network needs its VNI",
            );
            None
        }
        // A network without a type (the file mode's) stays on this host,
        // as do flat, vlan and local networks: only VXLAN is tunnelled.
        _ => None,
    }
}

pub fn chassis(errors: &mut Errors, label: &str, object: &Object) -> Option<Chassis> {
    let c: RawChassis = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &c.extra);
    if let Some(name) = optional(&c.name) {
        if name != object.id {
            errors.push(
                label,
                "name",
                format!("{name:?} differs from its key {:?}", object.id),
            );
        }
    }
    match optional(&c.tunnel_type) {
        None | Some("vxlan") => {}
        Some(other) => errors.push(
            label,
            "tunnel_type",
            format!("{other:?} is not supported (only vxlan)"),
        ),
    }
    let ip = required(errors, label, "underlay_ip", &c.underlay_ip)?;
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => Some(Chassis {
            name: object.id.clone(),
            underlay_ip: v4,
        }),
        Ok(_) => {
            errors.push(
                label,
                "underlay_ip",
                "an IPv6 underlay is not supported yet",
            );
            None
        }
        Err(_) => {
            errors.push(label, "underlay_ip", format!("{ip:?} is not an IP address"));
            None
        }
    }
}

pub fn active(errors: &mut Errors, label: &str, object: &Object) -> Option<Active> {
    let a: RawActive = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &a.extra);
    let Some((network, address)) = object.id.split_once('/') else {
        errors.push(label, "", "the key is not <network id>/<address or MAC>");
        return None;
    };
    let port = required(errors, label, "port", &a.port)?;
    let chassis = required(errors, label, "chassis", &a.chassis)?;
    Some(Active {
        group: format!("{network} {address}"),
        port: port.to_string(),
        chassis: chassis.to_string(),
    })
}

/// A subnet as Neutron takes it: `cidr` as `validate_subnet` reads it, host
/// bits dropped (Neutron stores 10.0.0.5/24 as 10.0.0.0/24), never the
/// IPv6 `::` prefix; `ip_version` 4 or 6 and the cidr's (may be left out
/// here); `gateway_ip` of that version, anywhere (Neutron allows a gateway
/// outside the subnet) but an IPv4 subnet's network or broadcast address;
/// absent, Neutron's default, `null`, none.
pub fn subnet(errors: &mut Errors, label: &str, object: &Object) -> Option<Subnet> {
    let s: RawSubnet = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &s.extra, fields::SUBNET);
    let network_id = required(errors, label, "network_id", &s.network_id);
    let cidr = match &s.cidr {
        None => {
            errors.push(label, "cidr", "missing (required)");
            None
        }
        Some(c) => match syntax::subnet(c) {
            Ok(net) if net.trunc().addr() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
                errors.push(label, "cidr", "IPv6 subnet '::' is not supported");
                None
            }
            Ok(net) => Some(net.trunc()),
            Err(e) => {
                errors.push(
                    label,
                    "cidr",
                    format!("{e} (expected a CIDR such as 10.0.0.0/24)"),
                );
                None
            }
        },
    };
    let version = s
        .ip_version
        .as_ref()
        .and_then(|v| ip_version(errors, label, v));
    if let (Some(v), Some(net)) = (version, cidr) {
        let actual = if net.addr().is_ipv4() { 4 } else { 6 };
        if v != actual {
            errors.push(
                label,
                "ip_version",
                format!("cidr '{net}' does not match the ip_version '{v}'"),
            );
        }
    }
    let gateway_ip = gateway(errors, label, &s.gateway_ip, cidr);
    let written = addressing::Written {
        ra_mode: &s.ipv6_ra_mode,
        address_mode: &s.ipv6_address_mode,
        enable_dhcp: &s.enable_dhcp,
        dns_nameservers: &s.dns_nameservers,
    };
    let a = addressing::check(errors, label, &written, cidr);
    Some(Subnet {
        id: object.id.clone(),
        name: s.name.unwrap_or_default(),
        network_id: network_id?.to_string(),
        cidr: cidr?,
        gateway_ip,
        ipv6_ra_mode: a.ra_mode,
        ipv6_address_mode: a.address_mode,
        enable_dhcp: a.enable_dhcp,
        dns_nameservers: a.dns_nameservers,
    })
}

/// `convert_to_int`, then one of 4 and 6.
fn ip_version(errors: &mut Errors, label: &str, value: &Value) -> Option<i64> {
    let n = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => syntax::python_int(s),
        _ => None,
    };
    match n {
        Some(v @ (4 | 6)) => Some(v),
        Some(v) => {
            errors.push(label, "ip_version", format!("{v} is not in [4, 6]"));
            None
        }
        None => {
            errors.push(
                label,
                "ip_version",
                format!("{value} is not an integer (4 or 6)"),
            );
            None
        }
    }
}

fn gateway(
    errors: &mut Errors,
    label: &str,
    value: &Given<String>,
    cidr: Option<IpNet>,
) -> Option<IpAddr> {
    let g = match value {
        Given::Null => return None,
        // Neutron's default (`_gateway_ip_str`): the first address after
        // the network address for IPv4, the network (subnet-router anycast)
        // address itself for IPv6.
        Given::Absent => {
            return cidr.and_then(|net| match net {
                IpNet::V4(n) => u32::from(n.network())
                    .checked_add(1)
                    .map(|a| IpAddr::V4(a.into())),
                IpNet::V6(n) => Some(IpAddr::V6(n.network())),
            });
        }
        Given::Value(g) => g,
    };
    let ip = match syntax::ip_address(g) {
        Ok(ip) => ip,
        Err(e) => {
            errors.push(label, "gateway_ip", e);
            return None;
        }
    };
    if let Some(net) = cidr {
        if ip.is_ipv4() != net.addr().is_ipv4() {
            let v = if net.addr().is_ipv4() { 4 } else { 6 };
            errors.push(
                label,
                "gateway_ip",
                format!("gateway_ip '{g}' does not match the ip_version '{v}'"),
            );
        } else if let IpNet::V4(n) = net {
            if IpAddr::V4(n.network()) == ip || IpAddr::V4(n.broadcast()) == ip {
                errors.push(
                    label,
                    "gateway_ip",
                    format!("Gateway is not valid on subnet: {ip} is the network or broadcast address of {net}"),
                );
            }
        }
    }
    Some(ip)
}

pub fn router(errors: &mut Errors, label: &str, object: &Object) -> Option<Router> {
    let r: RawRouter = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &r.extra, fields::ROUTER);
    let routes = routes::routes(errors, label, &r.routes);
    let gateway = gateway::info(errors, label, r.external_gateway_info.as_ref());
    if r.external_gateways.as_ref().is_some_and(|v| !v.is_empty()) {
        // A file source leaves it out when its first gateway is
        // external_gateway_info (forms::skip); here it says otherwise.
        errors.push(
            label,
            "external_gateways",
            "its first gateway differs from external_gateway_info (Neutron keeps them the \
             same); several gateways (external-gateway-multihoming) are not supported",
        );
    }
    Some(Router {
        id: object.id.clone(),
        name: r.name.unwrap_or_default(),
        routes,
        gateway,
    })
}

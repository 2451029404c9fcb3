//! Settings, networks, subnets and routers on their own.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::{optional, raw, required, unknown_fields};
use crate::{
    errors::Errors,
    neutron::{
        Object,
        raw::{RawActive, RawChassis, RawNetwork, RawRouter, RawSettings, RawSubnet},
    },
    objects::{
        Active, Chassis, DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS, MAX_VNI, Network, Router, Settings,
        Subnet,
    },
};

pub fn settings(errors: &mut Errors, label: &str, value: &Value) -> Option<Settings> {
    let s: RawSettings = raw(errors, label, value)?;
    unknown_fields(errors, label, "", &s.extra);
    let mut max = DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS;
    if let Some(n) = s.max_allowed_address_pair {
        if n < 0 {
            errors.push(
                label,
                "max_allowed_address_pair",
                format!("{n} is negative"),
            );
        } else {
            max = n as usize;
        }
    }
    Some(Settings {
        max_allowed_address_pairs: max,
    })
}

pub fn network(errors: &mut Errors, label: &str, object: &Object) -> Option<Network> {
    let n: RawNetwork = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &n.extra);
    let vni = vni(errors, label, &n);
    Some(Network {
        id: object.id.clone(),
        name: n.name.unwrap_or_default(),
        port_security_enabled: n.port_security_enabled.unwrap_or(true),
        vni,
    })
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

pub fn subnet(errors: &mut Errors, label: &str, object: &Object) -> Option<Subnet> {
    let s: RawSubnet = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &s.extra);
    let network_id = required(errors, label, "network_id", &s.network_id);
    let cidr = required(errors, label, "cidr", &s.cidr).and_then(|c| match c.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => {
            errors.push(
                label,
                "cidr",
                format!("{c:?} has host bits set; did you mean {}?", net.trunc()),
            );
            None
        }
        Ok(net) => Some(net),
        Err(_) => {
            errors.push(
                label,
                "cidr",
                format!("{c:?} is not a CIDR such as 10.0.0.0/24"),
            );
            None
        }
    });
    if let (Some(v), Some(net)) = (s.ip_version, cidr) {
        let actual = if net.addr().is_ipv4() { 4 } else { 6 };
        if v != 4 && v != 6 {
            errors.push(label, "ip_version", format!("{v} is neither 4 nor 6"));
        } else if v != actual {
            errors.push(
                label,
                "ip_version",
                format!("{v} does not match cidr {net} (IPv{actual})"),
            );
        }
    }
    let gateway_ip = gateway(errors, label, &s.gateway_ip, cidr);
    Some(Subnet {
        id: object.id.clone(),
        name: s.name.unwrap_or_default(),
        network_id: network_id?.to_string(),
        cidr: cidr?,
        gateway_ip,
    })
}

fn gateway(
    errors: &mut Errors,
    label: &str,
    value: &Option<String>,
    cidr: Option<IpNet>,
) -> Option<IpAddr> {
    let g = optional(value)?;
    let Ok(ip) = g.parse::<IpAddr>() else {
        errors.push(label, "gateway_ip", format!("{g:?} is not an IP address"));
        return None;
    };
    if let Some(net) = cidr {
        if !net.contains(&ip) {
            errors.push(label, "gateway_ip", format!("{ip} is outside cidr {net}"));
        } else if ip == net.network() {
            errors.push(
                label,
                "gateway_ip",
                format!("{ip} is the network address of {net}"),
            );
        }
    }
    Some(ip)
}

pub fn router(errors: &mut Errors, label: &str, object: &Object) -> Option<Router> {
    let r: RawRouter = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &r.extra);
    if !r.routes.is_empty() {
        errors.push(
            label,
            "routes",
            "static routes are not supported yet (only connected subnets are routed)",
        );
    }
    if r.external_gateway_info.is_some() {
        errors.push(
            label,
            "external_gateway_info",
            "external gateways (SNAT, floating IPs) are not supported",
        );
    }
    Some(Router {
        id: object.id.clone(),
        name: r.name.unwrap_or_default(),
    })
}

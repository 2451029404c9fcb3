//! A port on its own: its MAC, fixed IPs as written, allowed address pairs,
//! security group ids and tap. The store checks it against its network,
//! subnets, groups and the other ports.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{optional, raw, required, unknown_fields};
use crate::{
    errors::Errors,
    neutron::{
        MacAddr, Object,
        raw::{RawAddressPair, RawPort},
    },
    objects::{AddressPair, FixedIpSpec, PortSpec, ROUTER_INTERFACE_OWNERS, default_tap_name},
};

pub fn check(errors: &mut Errors, label: &str, object: &Object) -> Option<PortSpec> {
    let p: RawPort = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &p.extra);
    let owner = p.device_owner.as_deref().map(str::trim).unwrap_or("");
    let router_iface = ROUTER_INTERFACE_OWNERS.contains(&owner);
    if owner == "network:router_gateway" {
        errors.push(
            label,
            "device_owner",
            "router gateway ports (external networks, SNAT) are not supported",
        );
    }
    let router = if router_iface {
        required(errors, label, "device_id", &p.device_id).map(str::to_string)
    } else {
        None
    };
    let network_id = required(errors, label, "network_id", &p.network_id);
    let mac = required(errors, label, "mac_address", &p.mac_address)
        .and_then(|m| mac_address(errors, label, "mac_address", m));
    let fixed_ips = fixed_ips(errors, label, &p);
    // Checked even without a valid MAC, so that every error shows at once.
    let pairs = pairs(
        errors,
        label,
        &p.allowed_address_pairs,
        mac.unwrap_or_default(),
    );
    if router_iface {
        router_interface(errors, label, &p);
    }
    let tap = match optional(&p.tap_name) {
        Some(t) => t.to_string(),
        None if router_iface => String::new(),
        None => default_tap_name(&object.id),
    };
    if !router_iface && !is_valid_ifname(&tap) {
        errors.push(
            label,
            "tap_name",
            format!("{tap:?} is not a valid interface name (1-15 characters, no '/' or spaces)"),
        );
    }
    Some(PortSpec {
        id: object.id.clone(),
        name: p.name.unwrap_or_default(),
        network_id: network_id?.to_string(),
        mac: mac?,
        fixed_ips,
        allowed_address_pairs: pairs,
        port_security_enabled: p.port_security_enabled,
        security_groups: p
            .security_groups
            .iter()
            .map(|g| g.trim().to_string())
            .collect(),
        tap: if router_iface { String::new() } else { tap },
        router,
        host: optional(&p.host_id).map(str::to_string),
    })
}

/// A unicast, non-zero MAC.
fn mac_address(errors: &mut Errors, label: &str, field: &str, text: &str) -> Option<MacAddr> {
    match text.parse::<MacAddr>() {
        Ok(mac) if mac.is_multicast() => {
            errors.push(label, field, format!("{mac} is a multicast address"));
            None
        }
        Ok(mac) if mac.is_zero() => {
            errors.push(label, field, "00:00:00:00:00:00 is not a usable address");
            None
        }
        Ok(mac) => Some(mac),
        Err(e) => {
            errors.push(label, field, format!("{text:?}: {e}"));
            None
        }
    }
}

fn fixed_ips(errors: &mut Errors, label: &str, p: &RawPort) -> Vec<FixedIpSpec> {
    let mut out = Vec::new();
    for (j, f) in p.fixed_ips.iter().enumerate() {
        let field = format!("fixed_ips[{j}]");
        unknown_fields(errors, label, &format!("{field}."), &f.extra);
        let ip_field = format!("{field}.ip_address");
        let Some(text) = required(errors, label, &ip_field, &f.ip_address) else {
            continue;
        };
        let Ok(ip) = text.parse::<IpAddr>() else {
            errors.push(label, ip_field, format!("{text:?} is not an IP address"));
            continue;
        };
        out.push(FixedIpSpec {
            subnet_id: optional(&f.subnet_id).map(str::to_string),
            ip,
        });
    }
    out
}

/// Parses an address or prefix as Neutron writes pairs and remote
/// prefixes: host bits of a prefix are allowed.
pub fn parse_prefix(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

fn pairs(
    errors: &mut Errors,
    label: &str,
    raw: &[RawAddressPair],
    port_mac: MacAddr,
) -> Vec<AddressPair> {
    let mut pairs: Vec<AddressPair> = Vec::new();
    for (j, a) in raw.iter().enumerate() {
        let field = format!("allowed_address_pairs[{j}]");
        unknown_fields(errors, label, &format!("{field}."), &a.extra);
        let ip_field = format!("{field}.ip_address");
        let ip =
            required(errors, label, &ip_field, &a.ip_address).and_then(|s| match parse_prefix(s) {
                Some(net) if net.addr().is_multicast() => {
                    errors.push(label, &ip_field, format!("{s} is a multicast address"));
                    None
                }
                Some(net) => Some(net),
                None => {
                    errors.push(
                        label,
                        &ip_field,
                        format!("{s:?} is not an IP address or CIDR"),
                    );
                    None
                }
            });
        let pair_mac = match optional(&a.mac_address) {
            None => None,
            Some(m) => match mac_address(errors, label, &format!("{field}.mac_address"), m) {
                Some(mac) => Some(mac),
                None => continue,
            },
        };
        let Some(ip) = ip else { continue };
        let pair = AddressPair {
            ip,
            mac: pair_mac.unwrap_or(port_mac),
            explicit_mac: pair_mac.is_some(),
        };
        // {ip} and {port MAC, ip} are the same pair; so are two ways of
        // writing one prefix.
        if let Some(k) = pairs
            .iter()
            .position(|q| q.ip.trunc() == pair.ip.trunc() && q.mac == pair.mac)
        {
            errors.push(
                label,
                field,
                format!(
                    "duplicate of allowed_address_pairs[{k}] ({} with MAC {})",
                    pair.ip.trunc(),
                    pair.mac
                ),
            );
            continue;
        }
        pairs.push(pair);
    }
    pairs
}

fn router_interface(errors: &mut Errors, label: &str, p: &RawPort) {
    if !p.allowed_address_pairs.is_empty() {
        errors.push(
            label,
            "allowed_address_pairs",
            "a router interface has no allowed address pairs",
        );
    }
    if p.fixed_ips.is_empty() {
        errors.push(
            label,
            "fixed_ips",
            "a router interface needs an address on the subnet it attaches to",
        );
    }
    if optional(&p.tap_name).is_some() {
        errors.push(
            label,
            "tap_name",
            "a router interface has no tap: the datapath implements it",
        );
    }
}

fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

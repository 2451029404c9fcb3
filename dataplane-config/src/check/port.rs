//! A port on its own: its MAC, fixed IPs as written, allowed address pairs,
//! security group ids and tap. The store checks it against its network,
//! subnets, groups and the other ports.
//!
//! Addresses follow neutron-lib's validators (`validate_mac_address`,
//! `validate_ip_address`, `validate_fixed_ips`, `validate_uuid_list`'s
//! duplicate check, and `_validate_allowed_address_pairs` with the
//! database's uniqueness of a port's pairs); see [`crate::neutron::syntax`].

use ipnet::IpNet;

use super::{no_other_fields, optional, raw, required, unknown_fields_in};
use crate::{
    errors::Errors,
    neutron::{
        MacAddr, Object, fields,
        raw::{Given, RawAddressPair, RawPort},
        syntax,
    },
    objects::{AddressPair, FixedIpSpec, PortSpec, ROUTER_INTERFACE_OWNERS, default_tap_name},
};

pub fn check(errors: &mut Errors, label: &str, object: &Object) -> Option<PortSpec> {
    let p: RawPort = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &p.extra, fields::PORT);
    let owner = p.device_owner.as_deref().map(str::trim).unwrap_or("");
    // A gateway port is the router's too (no tap), but not an interface.
    let router_gateway = owner == "network:router_gateway";
    let router_iface = ROUTER_INTERFACE_OWNERS.contains(&owner) || router_gateway;
    let router = if router_iface {
        required(errors, label, "device_id", &p.device_id).map(str::to_string)
    } else {
        None
    };
    let network_id = required(errors, label, "network_id", &p.network_id);
    let mac = match &p.mac_address {
        None => {
            errors.push(label, "mac_address", "missing (required)");
            None
        }
        Some(m) => port_mac(errors, label, m),
    };
    let fixed_ips = fixed_ips(errors, label, &p);
    // Checked even without a valid MAC, so that every error shows at once.
    let raw_pairs = p.allowed_address_pairs.as_deref().unwrap_or_default();
    let pairs = pairs(errors, label, raw_pairs, mac.unwrap_or_default());
    let port_security_enabled = match &p.port_security_enabled {
        Given::Absent => None,
        Given::Null => {
            errors.push(
                label,
                "port_security_enabled",
                "null cannot be converted to boolean",
            );
            None
        }
        Given::Value(v) => syntax::boolean(v)
            .map_err(|e| errors.push(label, "port_security_enabled", e))
            .ok(),
    };
    let security_groups = security_groups(errors, label, p.security_groups.as_deref());
    if router_iface {
        router_interface(errors, label, &p, raw_pairs);
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
        device_owner: owner.to_string(),
        fixed_ips,
        pairs_written: raw_pairs.len(),
        allowed_address_pairs: pairs,
        port_security_enabled,
        security_groups,
        tap: if router_iface { String::new() } else { tap },
        router,
        router_gateway,
        host: optional(&p.host_id).map(str::to_string),
    })
}

/// A MAC as `validate_mac_address` reads it (any netaddr spelling, not
/// 00:00:00:00:00:00 or ff:ff:ff:ff:ff:ff).
fn neutron_mac(text: &str) -> Result<MacAddr, String> {
    match text.parse::<MacAddr>() {
        Ok(mac) if !mac.is_zero() && mac.0 != [0xff; 6] => Ok(mac),
        Ok(_) => Err(format!(
            "{text} is not a valid MAC address (Neutron refuses 00:00:00:00:00:00 and \
             ff:ff:ff:ff:ff:ff)"
        )),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// The port's own MAC. Neutron accepts a multicast one; the datapath
/// cannot: it floods frames to group addresses instead of delivering them
/// to a port, and uses the MAC as the port's own in its tables.
fn port_mac(errors: &mut Errors, label: &str, text: &str) -> Option<MacAddr> {
    match neutron_mac(text) {
        Ok(mac) if mac.is_multicast() => {
            errors.push(
                label,
                "mac_address",
                format!(
                    "{mac} is a multicast address (Neutron accepts it; the datapath cannot \
                     deliver to a group MAC as a port's own)"
                ),
            );
            None
        }
        Ok(mac) => Some(mac),
        Err(e) => {
            errors.push(label, "mac_address", e);
            None
        }
    }
}

/// `validate_fixed_ips`: a list, each `ip_address` an IP address, no
/// address twice. (Neutron can allocate an address when none is given;
/// a file must give it.)
fn fixed_ips(errors: &mut Errors, label: &str, p: &RawPort) -> Vec<FixedIpSpec> {
    let list = match &p.fixed_ips {
        Given::Absent => return Vec::new(),
        Given::Null => {
            errors.push(
                label,
                "fixed_ips",
                "null is not a list of fixed IPs (Neutron: Invalid data format for fixed IP)",
            );
            return Vec::new();
        }
        Given::Value(list) => list,
    };
    let mut out: Vec<FixedIpSpec> = Vec::new();
    for (j, f) in list.iter().enumerate() {
        let field = format!("fixed_ips[{j}]");
        no_other_fields(errors, label, &format!("{field}."), &f.extra);
        let ip_field = format!("{field}.ip_address");
        let Some(text) = &f.ip_address else {
            errors.push(label, ip_field, "missing (required)");
            continue;
        };
        let ip = match syntax::ip_address(text) {
            Ok(ip) => ip,
            Err(e) => {
                errors.push(label, ip_field, e);
                continue;
            }
        };
        if let Some(k) = out.iter().position(|o| o.ip == ip) {
            errors.push(
                label,
                ip_field,
                format!("Duplicate IP address '{text}' (as fixed_ips[{k}])"),
            );
            continue;
        }
        out.push(FixedIpSpec {
            subnet_id: optional(&f.subnet_id).map(str::to_string),
            ip,
        });
    }
    out
}

/// `validate_uuid_list` refuses an id listed twice. (It also wants UUIDs;
/// ids here are any non-empty strings, so that hand-written files can use
/// names.)
fn security_groups(errors: &mut Errors, label: &str, ids: Option<&[String]>) -> Vec<String> {
    let ids: Vec<String> = ids
        .unwrap_or_default()
        .iter()
        .map(|g| g.trim().to_string())
        .collect();
    for (j, g) in ids.iter().enumerate() {
        if ids[..j].contains(g) {
            errors.push(
                label,
                format!("security_groups[{j}]"),
                format!("Duplicate items in the list: '{g}'"),
            );
        }
    }
    ids
}

/// Allowed address pairs as `_validate_allowed_address_pairs` and the
/// database take them; pairs Neutron keeps apart that mean the same entry
/// to the datapath are merged (see [`same_entry`]).
fn pairs(
    errors: &mut Errors,
    label: &str,
    raw: &[RawAddressPair],
    port_mac: MacAddr,
) -> Vec<AddressPair> {
    // What Neutron stores for each pair: its mac_address as written (the
    // port's, as Neutron prints it, when absent) and ip_address as written.
    let mut stored: Vec<(usize, String, String)> = Vec::new();
    let mut pairs: Vec<AddressPair> = Vec::new();
    for (j, a) in raw.iter().enumerate() {
        let field = format!("allowed_address_pairs[{j}]");
        no_other_fields(errors, label, &format!("{field}."), &a.extra);
        let mac_field = format!("{field}.mac_address");
        let mac = match &a.mac_address {
            Given::Absent => Ok(None),
            Given::Null => Err(
                "null is not a MAC address (leave mac_address out to use the \
                                port's)"
                    .to_string(),
            ),
            Given::Value(m) => match neutron_mac(m) {
                Ok(mac) if mac.is_multicast() => Err(format!(
                    "MAC address {m} is a multicast address, which is not supported."
                )),
                Ok(mac) => Ok(Some((m.as_str(), mac))),
                Err(e) => Err(e),
            },
        };
        let mac = mac.map_err(|e| errors.push(label, &mac_field, e));
        let ip = pair_ip(errors, label, &format!("{field}.ip_address"), &a.ip_address);
        let (Ok(mac), Some((text, ip))) = (mac, ip) else {
            continue;
        };
        let written_mac = mac.map_or_else(|| port_mac.to_string(), |(m, _)| m.to_string());
        // The database's primary key is (port, mac_address, ip_address) as
        // strings, compared without regard to case (MySQL/MariaDB
        // collation): {ip} and {ip, the port's MAC} are one pair, and so
        // are fd00::1 and FD00::1; 10.0.0.1 and 10.0.0.1/32 are two.
        let key = (written_mac.to_ascii_lowercase(), text.to_ascii_lowercase());
        if let Some((k, _, _)) = stored.iter().find(|(_, m, i)| (m, i) == (&key.0, &key.1)) {
            errors.push(
                label,
                field,
                format!(
                    "duplicate of allowed_address_pairs[{k}]: Neutron refuses a pair with the \
                     same ip_address ({text}) and mac_address ({written_mac}) as written (a pair \
                     without mac_address has the port's)"
                ),
            );
            continue;
        }
        stored.push((j, key.0, key.1));
        let pair = AddressPair {
            ip,
            mac: mac.map_or(port_mac, |(_, m)| m),
            explicit_mac: mac.is_some(),
        };
        if !pairs.iter().any(|q| same_entry(q, &pair)) {
            pairs.push(pair);
        }
    }
    pairs
}

/// Pairs Neutron keeps apart (written differently) that are one entry in
/// the datapath: 10.0.0.1 and 10.0.0.1/32, 10.9.0.0/24 and 10.9.0.77/24,
/// a MAC in two spellings.
fn same_entry(a: &AddressPair, b: &AddressPair) -> bool {
    a.ip.trunc() == b.ip.trunc() && a.mac == b.mac
}

/// A pair's `ip_address`: with a `/` a prefix (`validate_subnet`), else an
/// address (`validate_ip_address`), neither touching a multicast range.
fn pair_ip<'a>(
    errors: &mut Errors,
    label: &str,
    field: &str,
    value: &'a Given<String>,
) -> Option<(&'a str, IpNet)> {
    let text = match value {
        Given::Absent => {
            errors.push(label, field, "missing (required)");
            return None;
        }
        Given::Null => {
            errors.push(label, field, "null is not an IP address");
            return None;
        }
        Given::Value(t) => t.as_str(),
    };
    let net = if text.contains('/') {
        let not_cidr = |e: String| e.replace("is not a CIDR", "is not an IP address or CIDR");
        syntax::subnet(text).map_err(not_cidr).and_then(|net| {
            if syntax::overlaps_multicast(net) {
                let range = if net.addr().is_ipv4() {
                    "224.0.0.0/4"
                } else {
                    "ff00::/8"
                };
                Err(format!(
                    "Subnet {net} overlaps with multicast range {range}, which is not supported."
                ))
            } else {
                Ok(net)
            }
        })
    } else {
        syntax::ip_address(text).and_then(|ip| {
            if ip.is_multicast() {
                Err(format!(
                    "IP {text} is a multicast address, which is not supported."
                ))
            } else {
                Ok(IpNet::from(ip))
            }
        })
    };
    net.map(|n| (text, n))
        .map_err(|e| errors.push(label, field, e))
        .ok()
}

fn router_interface(errors: &mut Errors, label: &str, p: &RawPort, pairs: &[RawAddressPair]) {
    if !pairs.is_empty() {
        errors.push(
            label,
            "allowed_address_pairs",
            "a router interface has no allowed address pairs",
        );
    }
    if !matches!(&p.fixed_ips, Given::Value(list) if !list.is_empty()) {
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

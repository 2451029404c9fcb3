//! How a subnet's hosts get their addresses and what routers advertise to
//! them: `ipv6_ra_mode`, `ipv6_address_mode`, `enable_dhcp` and
//! `dns_nameservers`, read and checked as Neutron does (neutron-lib's
//! `type:values` and `type:nameservers`, and `_validate_subnet` /
//! `_validate_ipv6_attributes` in `db_base_plugin_v2`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::{
    errors::Errors,
    neutron::{raw::Given, syntax},
    objects::Ipv6Mode,
};

/// What the addressing fields of a subnet say, once checked.
pub struct Addressing {
    pub ra_mode: Option<Ipv6Mode>,
    pub address_mode: Option<Ipv6Mode>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<IpAddr>,
}

/// The fields as written.
pub struct Written<'a> {
    pub ra_mode: &'a Option<Value>,
    pub address_mode: &'a Option<Value>,
    pub enable_dhcp: &'a Given<Value>,
    pub dns_nameservers: &'a Option<Value>,
}

/// Reads and checks a subnet's addressing fields; `cidr` is the subnet's,
/// if it could be read.
pub fn check(errors: &mut Errors, label: &str, w: &Written, cidr: Option<IpNet>) -> Addressing {
    let ra_mode = mode(errors, label, "ipv6_ra_mode", w.ra_mode);
    let address_mode = mode(errors, label, "ipv6_address_mode", w.address_mode);
    let enable_dhcp = match w.enable_dhcp {
        Given::Absent => true,
        Given::Null => {
            errors.push(label, "enable_dhcp", "None cannot be converted to boolean");
            true
        }
        Given::Value(v) => syntax::boolean(v)
            .map_err(|e| errors.push(label, "enable_dhcp", e))
            .unwrap_or(true),
    };
    let a = Addressing {
        ra_mode,
        address_mode,
        enable_dhcp,
        dns_nameservers: nameservers(errors, label, w.dns_nameservers, cidr),
    };
    if let Some(net) = cidr {
        modes_fit(errors, label, &a, net);
    }
    a
}

/// One of Neutron's `IPV6_MODES`, or none (absent or `null`).
fn mode(errors: &mut Errors, label: &str, field: &str, v: &Option<Value>) -> Option<Ipv6Mode> {
    let text = match v {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            errors.push(label, field, not_a_mode(&other.to_string()));
            return None;
        }
    };
    match text {
        "slaac" => Some(Ipv6Mode::Slaac),
        "dhcpv6-stateful" => Some(Ipv6Mode::Dhcpv6Stateful),
        "dhcpv6-stateless" => Some(Ipv6Mode::Dhcpv6Stateless),
        other => {
            errors.push(label, field, not_a_mode(other));
            None
        }
    }
}

fn not_a_mode(shown: &str) -> String {
    format!("{shown} is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac', None]")
}

/// The modes against the subnet's version, DHCP and prefix length.
fn modes_fit(errors: &mut Errors, label: &str, a: &Addressing, net: IpNet) {
    let (ra, address) = (a.ra_mode, a.address_mode);
    if net.addr().is_ipv4() {
        for (field, set) in [("ipv6_ra_mode", ra), ("ipv6_address_mode", address)] {
            if set.is_some() {
                errors.push(
                    label,
                    field,
                    format!("{field} is not valid when ip_version is 4"),
                );
            }
        }
        return;
    }
    if (ra.is_some() || address.is_some()) && !a.enable_dhcp {
        errors.push(
            label,
            "enable_dhcp",
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False",
        );
    }
    if let (Some(r), Some(m)) = (ra, address) {
        if r != m {
            errors.push(
                label,
                "ipv6_address_mode",
                format!(
                    "ipv6_ra_mode set to '{}' with ipv6_address_mode set to '{}' is not valid. \
                     If both attributes are set, they must be the same value",
                    r.name(),
                    m.name()
                ),
            );
        }
    }
    let auto = [ra, address].into_iter().flatten().any(Ipv6Mode::automatic);
    if auto && net.prefix_len() != 64 {
        errors.push(
            label,
            "cidr",
            format!(
                "Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address \
                 format, which requires the prefix to be /64"
            ),
        );
    }
}

/// `dns_nameservers`: a list (`null` is none) of addresses as
/// `validate_ip_address` reads them, without duplicates (as written), of
/// the subnet's version.
fn nameservers(
    errors: &mut Errors,
    label: &str,
    v: &Option<Value>,
    cidr: Option<IpNet>,
) -> Vec<IpAddr> {
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let msg = format!("Invalid data format for nameserver: '{other}'");
            errors.push(label, "dns_nameservers", msg);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("dns_nameservers[{i}]");
        let Some(text) = item.as_str() else {
            errors.push(label, &field, format!("'{item}' is not a valid nameserver"));
            continue;
        };
        let ip = match syntax::ip_address(text) {
            Ok(ip) => ip,
            Err(e) => {
                errors.push(
                    label,
                    &field,
                    format!("'{text}' is not a valid nameserver. {e}"),
                );
                continue;
            }
        };
        if seen.contains(&text) {
            errors.push(label, &field, format!("Duplicate nameserver '{text}'"));
            continue;
        }
        seen.push(text);
        if let Some(net) = cidr {
            if ip.is_ipv4() != net.addr().is_ipv4() {
                let v = if net.addr().is_ipv4() { 4 } else { 6 };
                let msg = format!("dns_nameserver '{text}' does not match the ip_version '{v}'");
                errors.push(label, &field, msg);
                continue;
            }
        }
        out.push(ip);
    }
    out
}

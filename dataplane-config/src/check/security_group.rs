//! A security group and its rules on their own.

use super::{optional, raw, unknown_fields};
use crate::{
    errors::Errors,
    neutron::{
        Object,
        raw::{RawProtocol, RawRule, RawSecurityGroup},
    },
    objects::{Direction, PortMatch, Remote, Rule, SecurityGroup},
};

pub fn check(errors: &mut Errors, label: &str, object: &Object) -> Option<SecurityGroup> {
    let g: RawSecurityGroup = raw(errors, label, &object.value)?;
    unknown_fields(errors, label, "", &g.extra);
    if g.stateful == Some(false) {
        errors.push(
            label,
            "stateful",
            "stateless security groups are not supported yet",
        );
    }
    let rules = g
        .security_group_rules
        .iter()
        .enumerate()
        .filter_map(|(j, r)| rule(errors, label, j, r))
        .collect();
    Some(SecurityGroup {
        id: object.id.clone(),
        name: g.name.unwrap_or_default(),
        rules,
    })
}

fn rule(errors: &mut Errors, label: &str, j: usize, r: &RawRule) -> Option<Rule> {
    let field = |f: &str| format!("security_group_rules[{j}].{f}");
    let before = errors.len();
    unknown_fields(
        errors,
        label,
        &format!("security_group_rules[{j}]."),
        &r.extra,
    );
    let direction = match r.direction.as_deref().map(str::trim) {
        Some("ingress") => Some(Direction::Ingress),
        Some("egress") => Some(Direction::Egress),
        Some(d) => {
            errors.push(
                label,
                field("direction"),
                format!("{d:?} is neither ingress nor egress"),
            );
            None
        }
        None => {
            errors.push(label, field("direction"), "missing (required)");
            None
        }
    };
    let ipv6 = match r.ethertype.as_deref().map(str::trim) {
        None | Some("IPv4") => false,
        Some("IPv6") => true,
        Some(e) => {
            errors.push(
                label,
                field("ethertype"),
                format!("{e:?} is neither IPv4 nor IPv6"),
            );
            false
        }
    };
    let protocol = protocol(errors, label, &field("protocol"), &r.protocol, ipv6);
    if protocol == Some(1) && ipv6 || protocol == Some(58) && !ipv6 {
        errors.push(
            label,
            field("protocol"),
            "ICMP version does not match the ethertype",
        );
    }
    let ports = ports(errors, label, &field, protocol, r);
    if optional(&r.remote_address_group_id).is_some() {
        errors.push(
            label,
            field("remote_address_group_id"),
            "address groups are not supported yet",
        );
    }
    let remote = remote(errors, label, &field, r, ipv6);
    let direction = direction?;
    if errors.len() != before {
        return None;
    }
    Some(Rule {
        direction,
        ipv6,
        protocol,
        ports,
        remote,
    })
}

fn protocol(
    errors: &mut Errors,
    label: &str,
    field: &str,
    value: &Option<RawProtocol>,
    ipv6: bool,
) -> Option<u8> {
    let number = |errors: &mut Errors, v: i64| {
        if (0..=255).contains(&v) {
            Some(v as u8)
        } else {
            errors.push(
                label,
                field,
                format!("{v} is not an IP protocol number (0-255)"),
            );
            None
        }
    };
    match value {
        None => None,
        Some(RawProtocol::Name(n)) if matches!(n.trim(), "" | "any") => None,
        Some(RawProtocol::Name(n)) => match n.trim().parse::<i64>() {
            Ok(v) => number(errors, v),
            Err(_) => match protocol_number(&n.trim().to_ascii_lowercase(), ipv6) {
                Some(p) => Some(p),
                None => {
                    errors.push(label, field, format!("unknown protocol {n:?}"));
                    None
                }
            },
        },
        Some(RawProtocol::Number(v)) => number(errors, *v),
    }
}

/// IP protocol numbers of the names Neutron accepts.
fn protocol_number(name: &str, ipv6: bool) -> Option<u8> {
    Some(match name {
        "icmp" if ipv6 => 58,
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "egp" => 8,
        "udp" => 17,
        "dccp" => 33,
        "ipv6-encap" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

/// Protocols whose rules may name a destination port range.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

fn ports(
    errors: &mut Errors,
    label: &str,
    field: &dyn Fn(&str) -> String,
    protocol: Option<u8>,
    r: &RawRule,
) -> PortMatch {
    let (min, max) = (r.port_range_min, r.port_range_max);
    match (protocol, min, max) {
        (_, None, None) => PortMatch::Any,
        (None, _, _) => {
            errors.push(
                label,
                field("port_range_min"),
                "a port range needs a protocol",
            );
            PortMatch::Any
        }
        (Some(1 | 58), Some(t), code) => {
            if !(0..=255).contains(&t) {
                errors.push(
                    label,
                    field("port_range_min"),
                    format!("ICMP type {t} is not 0-255"),
                );
            }
            if let Some(c) = code {
                if !(0..=255).contains(&c) {
                    errors.push(
                        label,
                        field("port_range_max"),
                        format!("ICMP code {c} is not 0-255"),
                    );
                }
            }
            PortMatch::Icmp(t as u8, code.map(|c| c as u8))
        }
        (Some(1 | 58), None, Some(_)) => {
            errors.push(
                label,
                field("port_range_max"),
                "an ICMP code needs an ICMP type (port_range_min)",
            );
            PortMatch::Any
        }
        (Some(p), lo, hi) if has_ports(p) => {
            let lo = lo.or(hi).unwrap_or(1);
            let hi = hi.or(Some(lo)).unwrap_or(lo);
            if !(1..=65535).contains(&lo) || !(1..=65535).contains(&hi) {
                errors.push(
                    label,
                    field("port_range_min"),
                    format!("ports {lo}-{hi} are not within 1-65535"),
                );
            } else if lo > hi {
                errors.push(
                    label,
                    field("port_range_max"),
                    format!("{hi} is below port_range_min {lo}"),
                );
            }
            PortMatch::Range(lo as u16, hi as u16)
        }
        (Some(p), _, _) => {
            errors.push(
                label,
                field("port_range_min"),
                format!("protocol {p} has no ports"),
            );
            PortMatch::Any
        }
    }
}

fn remote(
    errors: &mut Errors,
    label: &str,
    field: &dyn Fn(&str) -> String,
    r: &RawRule,
    ipv6: bool,
) -> Remote {
    match (optional(&r.remote_ip_prefix), optional(&r.remote_group_id)) {
        (Some(_), Some(_)) => {
            errors.push(
                label,
                field("remote_group_id"),
                "give remote_ip_prefix or remote_group_id, not both",
            );
            Remote::Any
        }
        (Some(p), None) => match super::port::parse_prefix(p) {
            Some(net) if net.addr().is_ipv6() != ipv6 => {
                errors.push(
                    label,
                    field("remote_ip_prefix"),
                    format!(
                        "{p} does not match ethertype {}",
                        if ipv6 { "IPv6" } else { "IPv4" }
                    ),
                );
                Remote::Any
            }
            // Neutron normalises host bits away; so do we.
            Some(net) => Remote::Prefix(net.trunc()),
            None => {
                errors.push(
                    label,
                    field("remote_ip_prefix"),
                    format!("{p:?} is not an IP address or CIDR"),
                );
                Remote::Any
            }
        },
        (None, Some(g)) => Remote::Group(g.to_string()),
        (None, None) => Remote::Any,
    }
}

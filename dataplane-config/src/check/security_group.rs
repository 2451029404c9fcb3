//! A security group and its rules on their own.
//!
//! Rules are read as Neutron's API converters (`convert_protocol`,
//! `convert_ethertype_to_case_insensitive`, `convert_validate_port_value`,
//! `convert_ip_prefix_to_cidr` in neutron/extensions/securitygroup.py) and
//! its database layer (`securitygroups_db.py`: `_make_canonical_ipv6_icmp_
//! protocol`, `_make_canonical_port_range`, `_validate_port_range`,
//! `_validate_ip_prefix`, `_validate_ethertype_and_protocol`,
//! `_validate_multiple_remote_entites`, `_rule_to_key`) read them.

use serde_json::Value;

use super::{optional, raw, unknown_fields_in};
use crate::{
    errors::Errors,
    neutron::{
        Object, fields,
        raw::{Given, RawRule, RawSecurityGroup},
        syntax,
    },
    objects::{Direction, PortMatch, Remote, Rule, SecurityGroup},
};

pub fn check(errors: &mut Errors, label: &str, object: &Object) -> Option<SecurityGroup> {
    let g: RawSecurityGroup = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &g.extra, fields::SECURITY_GROUP);
    let stateful = match &g.stateful {
        Given::Absent => Ok(true),
        Given::Null => Err("null cannot be converted to boolean".to_string()),
        Given::Value(v) => syntax::boolean(v),
    };
    match stateful {
        Ok(true) => {}
        Ok(false) => errors.push(
            label,
            "stateful",
            "stateless security groups are not supported yet",
        ),
        Err(e) => errors.push(label, "stateful", e),
    }
    let mut keys: Vec<(usize, String)> = Vec::new();
    let mut rules = Vec::new();
    for (j, r) in g.security_group_rules.iter().flatten().enumerate() {
        let Some((rule, key)) = rule(errors, label, &object.id, j, r) else {
            continue;
        };
        if let Some((k, _)) = keys.iter().find(|(_, other)| *other == key) {
            errors.push(
                label,
                format!("security_group_rules[{j}]"),
                format!(
                    "duplicate of security_group_rules[{k}] (Neutron: security group rule \
                     already exists)"
                ),
            );
            continue;
        }
        keys.push((j, key));
        rules.push(rule);
    }
    Some(SecurityGroup {
        id: object.id.clone(),
        name: g.name.unwrap_or_default(),
        rules,
    })
}

/// A rule as Neutron takes it, and its identity (Neutron's `_rule_to_key`:
/// two rules with one key are one rule written twice).
fn rule(
    errors: &mut Errors,
    label: &str,
    group: &str,
    j: usize,
    r: &RawRule,
) -> Option<(Rule, String)> {
    let field = |f: &str| format!("security_group_rules[{j}].{f}");
    let before = errors.len();
    unknown_fields_in(
        errors,
        label,
        &format!("security_group_rules[{j}]."),
        &r.extra,
        fields::RULE,
    );
    if let Some(owner) = optional(&r.security_group_id) {
        if owner != group {
            errors.push(
                label,
                field("security_group_id"),
                format!("{owner} is another group's id: the rule belongs to {group}"),
            );
        }
    }
    let direction = direction(errors, label, &field("direction"), r.direction.as_deref());
    let ipv6 = ethertype(errors, label, &field("ethertype"), &r.ethertype);
    let protocol = protocol(errors, label, &field("protocol"), r.protocol.as_ref(), ipv6);
    let number = protocol.as_ref().and_then(|p| p.number);
    let ports = ports(errors, label, &field, number, r);
    let remote = remote(errors, label, &field, r, ipv6);
    let direction = direction?;
    if errors.len() != before {
        return None;
    }
    let (remote, prefix_key) = remote;
    let key = format!(
        "{direction:?}_{ipv6}_{ports:?}_{}_{}_{}",
        protocol.map_or_else(|| "+".to_string(), |p| p.key),
        r.remote_group_id.as_deref().unwrap_or("+"),
        prefix_key,
    );
    Some((
        Rule {
            direction,
            ipv6,
            protocol: number,
            ports,
            remote,
        },
        key,
    ))
}

/// `validate_values(['ingress', 'egress'])`.
fn direction(errors: &mut Errors, label: &str, field: &str, d: Option<&str>) -> Option<Direction> {
    match d {
        Some("ingress") => Some(Direction::Ingress),
        Some("egress") => Some(Direction::Egress),
        Some(d) => {
            errors.push(label, field, format!("{d:?} is neither ingress nor egress"));
            None
        }
        None => {
            errors.push(label, field, "missing (required)");
            None
        }
    }
}

/// `convert_ethertype_to_case_insensitive`: IPv6 or not; absent is IPv4.
fn ethertype(errors: &mut Errors, label: &str, field: &str, e: &Given<String>) -> bool {
    match e {
        Given::Absent => false,
        Given::Value(e) if e.eq_ignore_ascii_case("IPv4") => false,
        Given::Value(e) if e.eq_ignore_ascii_case("IPv6") => true,
        other => {
            let shown = match other {
                Given::Value(e) => format!("{e:?}"),
                _ => "null".to_string(),
            };
            errors.push(
                label,
                field,
                format!("{shown} is neither IPv4 nor IPv6 (in any case)"),
            );
            false
        }
    }
}

/// A rule's protocol after Neutron's conversion: its number (none for a
/// name Neutron knows but no IP protocol, such as "ANY" spelt in
/// capitals), and what `_rule_to_key` compares.
struct Protocol {
    number: Option<u8>,
    key: String,
}

/// `convert_protocol`: absent, `null` and `"any"` are any protocol; a name
/// Neutron knows in any case; a number 0-255, as a JSON number or written
/// in decimal. Then `_make_canonical_ipv6_icmp_protocol` (an IPv6 rule's
/// icmp, icmpv6 and 1 mean ipv6-icmp) and `_validate_ethertype_and_protocol`
/// (an IPv4 rule cannot name an IPv6 protocol).
fn protocol(
    errors: &mut Errors,
    label: &str,
    field: &str,
    value: Option<&Value>,
    ipv6: bool,
) -> Option<Protocol> {
    let unsupported = |errors: &mut Errors, shown: String| {
        errors.push(
            label,
            field,
            format!(
                "unknown protocol {shown} (Neutron takes one of {} in any case, or a number \
                 0-255)",
                NAMES.join(", ")
            ),
        );
        None
    };
    let (written, number) = match value? {
        Value::Null => return None,
        Value::String(s) if s == "any" => return None,
        Value::String(s) if s.eq_ignore_ascii_case("any") => {
            // Neutron keeps "ANY" as the string "any", which its firewall
            // drivers read as any protocol but `_rule_to_key` tells apart
            // from none.
            return Some(Protocol {
                number: None,
                key: "None".to_string(),
            });
        }
        // Python's int() reads more ("006", " 6"), but Neutron then fails
        // on them (an internal error): only plain decimal is taken.
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
            match s.parse::<u16>() {
                Ok(n) if n <= 255 && (s == "0" || !s.starts_with('0')) => (s.clone(), n as u8),
                _ => return unsupported(errors, format!("{s:?}")),
            }
        }
        Value::String(s) => match protocol_number(&s.to_ascii_lowercase()) {
            Some(n) => (s.to_ascii_lowercase(), n),
            None => return unsupported(errors, format!("{s:?}")),
        },
        Value::Number(n) => match n.as_u64() {
            Some(v) if v <= 255 => (v.to_string(), v as u8),
            _ => {
                errors.push(
                    label,
                    field,
                    format!("{n} is not an IP protocol number (0-255)"),
                );
                return None;
            }
        },
        other => return unsupported(errors, other.to_string()),
    };
    let number = match (ipv6, written.as_str()) {
        (true, "icmp" | "icmpv6" | "1") => 58,
        _ => number,
    };
    if !ipv6 && matches!(number, 41 | 43 | 44 | 58 | 59 | 60) {
        errors.push(
            label,
            field,
            format!("{written} is an IPv6 protocol but ethertype is IPv4"),
        );
    }
    Some(Protocol {
        number: Some(number),
        key: number.to_string(),
    })
}

/// The protocol names Neutron accepts (`sg_supported_protocols`: "any" and
/// the keys of neutron-lib's `IP_PROTOCOL_MAP`).
const NAMES: [&str; 26] = [
    "any",
    "ah",
    "dccp",
    "egp",
    "esp",
    "gre",
    "hopopt",
    "icmp",
    "igmp",
    "ip",
    "ipip",
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "icmpv6",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "ospf",
    "pgm",
    "rsvp",
    "sctp",
    "tcp",
    "udp",
    "udplite",
    "vrrp",
];

/// neutron-lib's `IP_PROTOCOL_MAP`.
fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "hopopt" | "ip" => 0,
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
        "vrrp" => 112,
        "pgm" => 113,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

/// Protocols whose rules may name a destination port range
/// (`SG_PORT_PROTO_NUMS`).
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

/// `convert_validate_port_value`: a number 0-65535 (a JSON integer, or a
/// string Python's int() reads).
fn port_value(errors: &mut Errors, label: &str, field: &str, value: Option<&Value>) -> Option<i64> {
    let v = value?;
    let n = match v {
        Value::Null => return None,
        Value::Number(n) => n.as_i64(),
        Value::String(s) => syntax::python_int(s),
        _ => None,
    };
    match n {
        Some(n) if (0..=65535).contains(&n) => Some(n),
        _ => {
            errors.push(label, field, format!("{v} is not a port number (0-65535)"));
            None
        }
    }
}

/// `_make_canonical_port_range` (1-65535 is no range, whatever the
/// protocol) and `_validate_port_range`.
fn ports(
    errors: &mut Errors,
    label: &str,
    field: &dyn Fn(&str) -> String,
    protocol: Option<u8>,
    r: &RawRule,
) -> PortMatch {
    let fields = [field("port_range_min"), field("port_range_max")];
    let min = port_value(errors, label, &fields[0], r.port_range_min.as_ref());
    let max = port_value(errors, label, &fields[1], r.port_range_max.as_ref());
    let [min_field, max_field] = fields;
    match (protocol, min, max) {
        (_, None, None) | (_, Some(1), Some(65535)) => PortMatch::Any,
        (None, _, _) => {
            errors.push(label, min_field, "a port range needs a protocol");
            PortMatch::Any
        }
        (Some(p), lo, hi) if has_ports(p) => {
            port_range(p, lo, hi).unwrap_or_else(|(at_max, message)| {
                errors.push(label, if at_max { max_field } else { min_field }, message);
                PortMatch::Any
            })
        }
        (Some(1 | 58), t, c) => icmp(t, c).unwrap_or_else(|(at_max, message)| {
            errors.push(label, if at_max { max_field } else { min_field }, message);
            PortMatch::Any
        }),
        (Some(p), _, _) => {
            errors.push(
                label,
                min_field,
                format!(
                    "protocol {p} has no ports (only TCP, UDP, SCTP, DCCP and UDP-Lite rules \
                     take a port range)"
                ),
            );
            PortMatch::Any
        }
    }
}

/// A TCP, UDP, SCTP, DCCP or UDP-Lite range: both ends, neither 0, min <=
/// max. An error says whether it is port_range_max's.
fn port_range(p: u8, lo: Option<i64>, hi: Option<i64>) -> Result<PortMatch, (bool, String)> {
    if lo == Some(0) || hi == Some(0) {
        return Err((lo != Some(0), "port 0 is not within 1-65535".into()));
    }
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Ok(PortMatch::Range(lo as u16, hi as u16)),
        (Some(lo), Some(hi)) => Err((true, format!("{hi} is below port_range_min {lo}"))),
        (lo, _) => Err((
            lo.is_some(),
            format!(
                "missing: protocol {p} needs both port_range_min and port_range_max (a single \
                 port is min = max)"
            ),
        )),
    }
}

/// An ICMP type and optional code, each 0-255; a code needs a type.
fn icmp(t: Option<i64>, c: Option<i64>) -> Result<PortMatch, (bool, String)> {
    for (value, at_max, what) in [(t, false, "type"), (c, true, "code")] {
        if let Some(v) = value.filter(|v| *v > 255) {
            let attr = if at_max {
                "port_range_max"
            } else {
                "port_range_min"
            };
            return Err((at_max, format!("ICMP {what} ({attr}) {v} is not 0-255")));
        }
    }
    match (t, c) {
        (Some(t), c) => Ok(PortMatch::Icmp(t as u8, c.map(|c| c as u8))),
        (None, Some(c)) => Err((
            true,
            format!("an ICMP code ({c}) needs an ICMP type (port_range_min)"),
        )),
        (None, None) => Ok(PortMatch::Any),
    }
}

/// The remote: `remote_ip_prefix` as `netaddr.IPNetwork` reads it, of the
/// rule's ethertype (`_validate_ip_prefix`), or `remote_group_id`, not both
/// (`_validate_multiple_remote_entites`); and the prefix as `_rule_to_key`
/// compares it (0.0.0.0/0 and ::/0 are no prefix).
fn remote(
    errors: &mut Errors,
    label: &str,
    field: &dyn Fn(&str) -> String,
    r: &RawRule,
    ipv6: bool,
) -> (Remote, String) {
    let prefix = r.remote_ip_prefix.as_deref().filter(|p| !p.is_empty());
    let group = optional(&r.remote_group_id);
    let address_group = optional(&r.remote_address_group_id);
    let given = [prefix.is_some(), group.is_some(), address_group.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        errors.push(
            label,
            field(if prefix.is_some() && group.is_some() {
                "remote_group_id"
            } else {
                "remote_address_group_id"
            }),
            "give remote_ip_prefix, remote_group_id or remote_address_group_id, not both",
        );
        return (Remote::Any, String::new());
    }
    if address_group.is_some() {
        errors.push(
            label,
            field("remote_address_group_id"),
            "address groups are not supported yet",
        );
        return (Remote::Any, String::new());
    }
    match (prefix, group) {
        (Some(p), _) => match syntax::ip_network(p) {
            Some(net) if net.addr().is_ipv6() != ipv6 => {
                errors.push(
                    label,
                    field("remote_ip_prefix"),
                    format!(
                        "{p} does not match ethertype {}",
                        if ipv6 { "IPv6" } else { "IPv4" }
                    ),
                );
                (Remote::Any, String::new())
            }
            // Host bits are kept by Neutron (and shown without them as
            // normalized_cidr); they do not matter to the match.
            // Neutron takes 0.0.0.0/0 and ::/0 as no prefix (_rule_to_key;
            // `openstack security group rule list` shows them for none).
            Some(net) if matches!(net.to_string().as_str(), "0.0.0.0/0" | "::/0") => {
                (Remote::Any, "+".to_string())
            }
            Some(net) => (Remote::Prefix(net.trunc()), net.to_string()),
            None => {
                errors.push(
                    label,
                    field("remote_ip_prefix"),
                    format!("{p:?} is not an IP address or CIDR"),
                );
                (Remote::Any, String::new())
            }
        },
        (None, Some(g)) => (Remote::Group(g.to_string()), "+".to_string()),
        (None, None) => (Remote::Any, "+".to_string()),
    }
}

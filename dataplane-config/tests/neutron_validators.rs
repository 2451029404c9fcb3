//! Neutron's validation, case by case: what neutron-lib 5.0 / neutron 29
//! accept is accepted and what they refuse is refused, each case citing the
//! validator or database rule it comes from. Every case was run through
//! those functions (and, where the database decides, a Neutron 29 API on
//! MariaDB). The few places where the datapath must differ say so.

use dataplane_config::{ConfigErrors, Format, Topology};
use serde_json::{Value, json};

const PORT: &str = "p1";
const MAC: &str = "fa:16:3e:00:00:01";

fn base() -> Value {
    json!({
        "networks": [{ "id": "net" }],
        "subnets": [
            { "id": "v4", "network_id": "net", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4 },
            { "id": "v6", "network_id": "net", "cidr": "fd00::/64", "ip_version": 6 },
        ],
        "ports": [{
            "id": PORT, "network_id": "net", "mac_address": MAC,
            "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.5" }],
        }],
    })
}

fn check(doc: &Value) -> Result<Topology, ConfigErrors> {
    dataplane_config::topology(&doc.to_string(), Format::Json)
}

fn with_port(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = base();
    edit(&mut doc["ports"][0]);
    doc
}

fn ok(doc: &Value) -> Topology {
    check(doc).unwrap_or_else(|e| panic!("must be accepted:\n{e}\n{doc}"))
}

/// Refused with an error on `field` (exactly) whose message contains
/// `needle`.
fn refused(doc: &Value, field: &str, needle: &str) {
    match check(doc) {
        Ok(_) => panic!("must be refused ({field}): {doc}"),
        Err(e) => assert!(
            e.0.iter()
                .any(|e| e.field == field && e.message.contains(needle)),
            "expected {field}: ...{needle}..., got:\n{e}"
        ),
    }
}

fn pairs(list: Value) -> Value {
    with_port(|p| p["allowed_address_pairs"] = list)
}

// --- validate_mac_address (netaddr.valid_mac; not 00:00:00:00:00:00 or
// ff:ff:ff:ff:ff:ff), for a port's MAC and a pair's.

#[test]
fn mac_spellings_netaddr_accepts() {
    for spelling in [
        "FA:16:3E:00:00:01",
        "fa-16-3e-00-00-01",
        "fa163e000001",
        "fa16.3e00.0001",
        "fa16:3e00:0001",
        "fa163e-000001",
        "fa:16:3e:0:0:1",
    ] {
        let t = ok(&with_port(|p| p["mac_address"] = json!(spelling)));
        assert_eq!(t.ports[0].mac.to_string(), MAC, "{spelling}");
        let t = ok(&pairs(
            json!([{ "ip_address": "10.0.0.9", "mac_address": spelling }]),
        ));
        let pair = &t.ports[0].allowed_address_pairs[0];
        assert_eq!(
            (pair.mac.to_string().as_str(), pair.explicit_mac),
            (MAC, true)
        );
    }
}

#[test]
fn macs_neutron_refuses() {
    for (bad, needle) in [
        ("00:00:00:00:00:00", "not a valid MAC address"),
        ("ff:ff:ff:ff:ff:ff", "not a valid MAC address"),
        ("FF-FF-FF-FF-FF-FF", "not a valid MAC address"),
        (" fa:16:3e:00:00:01", "not a MAC address"), // validate_no_whitespace
        ("fa:16:3e:00:00:01\n", "not a MAC address"),
        ("fa:16:3e-00:00:01", "not a MAC address"),
        ("fa.16.3e.00.00.01", "not a MAC address"),
        ("fa:16:3e:00:00:001", "not a MAC address"),
        ("", "not a MAC address"),
    ] {
        refused(
            &with_port(|p| p["mac_address"] = json!(bad)),
            "mac_address",
            needle,
        );
        refused(
            &pairs(json!([{ "ip_address": "10.0.0.9", "mac_address": bad }])),
            "allowed_address_pairs[0].mac_address",
            needle,
        );
    }
}

#[test]
fn multicast_macs() {
    // validate_mac_address_not_multicast, for pairs.
    refused(
        &pairs(json!([{ "ip_address": "10.0.0.9", "mac_address": "0100.5e00.0001" }])),
        "allowed_address_pairs[0].mac_address",
        "is a multicast address",
    );
    // Difference: Neutron accepts a multicast MAC as a port's own; the
    // datapath cannot deliver to a group MAC as a port's.
    refused(
        &with_port(|p| p["mac_address"] = json!("01:00:5e:00:00:05")),
        "mac_address",
        "Neutron accepts it",
    );
}

// --- validate_ip_address: canonical IPv4, IPv6 as inet_pton reads it, no
// whitespace, no prefix, no zone.

#[test]
fn ip_addresses() {
    for (bad, needle) in [
        ("010.0.0.5", "write 10.0.0.5"),
        ("10.0.0.05", "write 10.0.0.5"),
        ("10.0.0.5 ", "is not an IP address"),
        (" 10.0.0.5", "is not an IP address"),
        ("10.5", "is not an IP address"),
        ("167772165", "is not an IP address"),
        ("10.0.0.5/32", "is not an IP address"),
        ("fd00::5%eth0", "is not an IP address"),
        ("fd00::00005", "is not an IP address"),
    ] {
        refused(
            &with_port(|p| p["fixed_ips"][0]["ip_address"] = json!(bad)),
            "fixed_ips[0].ip_address",
            needle,
        );
    }
    // Any IPv6 form inet_pton reads.
    for good in ["FD00::5", "fd00:0:0:0:0:0:0:5", "fd00::0005"] {
        ok(&with_port(|p| {
            p["fixed_ips"][0] = json!({ "subnet_id": "v6", "ip_address": good })
        }));
    }
    ok(&pairs(json!([{ "ip_address": "::ffff:10.0.0.9" }])));
}

// --- _validate_allowed_address_pairs: validate_subnet with a '/',
// validate_ip_address without; then validate_subnet_not_multicast /
// validate_ip_not_multicast.

#[test]
fn pair_prefixes() {
    for good in [
        "10.0.0.77/24",
        "0.0.0.0/0",
        "fd00::/064",
        "fd00::1/64",
        "fd00::/ffff::",
    ] {
        ok(&pairs(json!([{ "ip_address": good }])));
    }
    let t = ok(&pairs(json!([{ "ip_address": "fd00::/ffff::" }])));
    assert_eq!(
        t.ports[0].allowed_address_pairs[0].ip.to_string(),
        "fd00::/16"
    );
    for bad in [
        "10.0.0.0/024",
        "10.0.0.0/255.255.255.0",
        "10.0.0.0/33",
        "010.0.0.0/24",
        "10.0.0/24",
        "10.0.0.0/",
        "fd00::/129",
    ] {
        refused(
            &pairs(json!([{ "ip_address": bad }])),
            "allowed_address_pairs[0].ip_address",
            "is not an IP address or CIDR",
        );
    }
}

#[test]
fn pairs_overlapping_multicast() {
    for bad in [
        "224.0.0.18",
        "239.255.255.250",
        "224.0.0.0/4",
        "224.0.0.18/32",
        "128.0.0.0/1",
        "192.0.0.0/2",
        "224.0.0.0/3",
        "ff02::12",
        "ff00::/8",
        "fe00::/7",
        "8000::/1",
        // Neutron excepts 0.0.0.0/0 only: ::/0 overlaps ff00::/8.
        "::/0",
    ] {
        refused(
            &pairs(json!([{ "ip_address": bad }])),
            "allowed_address_pairs[0].ip_address",
            "multicast",
        );
    }
    for good in [
        "0.0.0.0/0",
        "0.0.0.0/1",
        "128.0.0.0/2",
        "192.0.0.0/3",
        "240.0.0.0/4",
        "255.255.255.255",
        "::/1",
        "fd00::/8",
    ] {
        ok(&pairs(json!([{ "ip_address": good }])));
    }
}

#[test]
fn pair_duplicates_as_neutron_compares_them() {
    // The validator's (mac_address or None, ip_address) as written, then
    // the database's key (port, mac_address, ip_address) with the port's
    // MAC for a pair without one, compared without case (MariaDB's
    // collation): checked against a Neutron 29 API on MariaDB.
    for (list, k) in [
        (
            json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9" }]),
            0,
        ),
        (
            json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9", "mac_address": MAC }]),
            0,
        ),
        (
            json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9", "mac_address": "FA:16:3E:00:00:01" }]),
            0,
        ),
        (
            json!([{ "ip_address": "10.0.0.9", "mac_address": "00:00:5e:00:01:0a" },
                   { "ip_address": "10.0.0.9", "mac_address": "00:00:5E:00:01:0A" }]),
            0,
        ),
        (
            json!([{ "ip_address": "fd00::9" }, { "ip_address": "FD00::9" }]),
            0,
        ),
        (
            json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9/32" }, { "ip_address": "10.0.0.9/32" }]),
            1,
        ),
    ] {
        refused(
            &pairs(list),
            if k == 0 {
                "allowed_address_pairs[1]"
            } else {
                "allowed_address_pairs[2]"
            },
            &format!("duplicate of allowed_address_pairs[{k}]"),
        );
    }
    // Written differently, they are two pairs to Neutron; the datapath
    // merges what means the same.
    for list in [
        json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9/32" }]),
        json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9", "mac_address": "fa-16-3e-00-00-01" }]),
        json!([{ "ip_address": "fd00::9" }, { "ip_address": "fd00:0::9" }]),
        json!([{ "ip_address": "10.9.0.0/24" }, { "ip_address": "10.9.0.77/24" }]),
    ] {
        let t = ok(&pairs(list));
        assert_eq!(t.ports[0].allowed_address_pairs.len(), 1);
    }
    // One address with two MACs is two pairs.
    let t = ok(&pairs(
        json!([{ "ip_address": "10.0.0.9" }, { "ip_address": "10.0.0.9", "mac_address": "00:00:5e:00:01:01" }]),
    ));
    assert_eq!(t.ports[0].allowed_address_pairs.len(), 2);
}

#[test]
fn pair_fields_and_nulls() {
    // mac_address given must be a MAC: null is refused
    // (validate_mac_address(None)); absent is the port's.
    refused(
        &pairs(json!([{ "ip_address": "10.0.0.9", "mac_address": null }])),
        "allowed_address_pairs[0].mac_address",
        "null is not a MAC address",
    );
    // AllowedAddressPairsMissingIP; a null or empty ip_address fails
    // validation.
    refused(
        &pairs(json!([{ "mac_address": MAC }])),
        "allowed_address_pairs[0].ip_address",
        "missing",
    );
    refused(
        &pairs(json!([{ "ip_address": null }])),
        "allowed_address_pairs[0].ip_address",
        "null",
    );
    refused(
        &pairs(json!([{ "ip_address": "" }])),
        "allowed_address_pairs[0].ip_address",
        "is not an IP address",
    );
    // "Unrecognized attribute(s)"
    refused(
        &pairs(json!([{ "ip_address": "10.0.0.9", "extra": 1 }])),
        "allowed_address_pairs[0].extra",
        "unknown field",
    );
    // convert_none_to_empty_list
    let t = ok(&pairs(Value::Null));
    assert!(t.ports[0].allowed_address_pairs.is_empty());
}

#[test]
fn pair_maximum_counts_pairs_as_written() {
    // AllowedAddressPairExhausted: len(list) > max_allowed_address_pair,
    // merged or not.
    let mut list: Vec<Value> = (0..9)
        .map(|i| json!({ "ip_address": format!("10.0.0.{}", 100 + i) }))
        .collect();
    list.push(json!({ "ip_address": "10.0.0.100/32" }));
    ok(&pairs(json!(list)));
    list.push(json!({ "ip_address": "10.0.0.200" }));
    refused(
        &pairs(json!(list)),
        "allowed_address_pairs",
        "11 pairs exceed max_allowed_address_pair = 10",
    );
}

// --- validate_fixed_ips and ipam.utils.check_subnet_ip.

#[test]
fn fixed_ips() {
    // "Duplicate IP address"; also when written differently (the IPAM
    // then finds it allocated).
    refused(
        &with_port(|p| {
            p["fixed_ips"] = json!([
                { "subnet_id": "v6", "ip_address": "fd00::5" },
                { "subnet_id": "v6", "ip_address": "fd00:0::5" },
            ])
        }),
        "fixed_ips[1].ip_address",
        "Duplicate IP address",
    );
    // validate_fixed_ips(None)
    refused(
        &with_port(|p| p["fixed_ips"] = Value::Null),
        "fixed_ips",
        "null is not a list",
    );
    // Two addresses of one subnet are fine.
    ok(&with_port(|p| {
        p["fixed_ips"] = json!([
            { "subnet_id": "v4", "ip_address": "10.0.0.5" },
            { "subnet_id": "v4", "ip_address": "10.0.0.6" },
        ])
    }));
}

#[test]
fn addresses_a_subnet_reserves() {
    let mut doc = base();
    doc["subnets"] = json!([
        { "id": "s31", "network_id": "net", "cidr": "10.1.0.0/31", "gateway_ip": null },
        { "id": "s32", "network_id": "net", "cidr": "10.2.0.7/32", "gateway_ip": null },
        { "id": "v6", "network_id": "net", "cidr": "fd00::/64" },
    ]);
    let on = |doc: &Value, owner: &str, sub: &str, ip: &str| {
        let mut d = doc.clone();
        d["ports"][0]["device_owner"] = json!(owner);
        d["ports"][0]["fixed_ips"] = json!([{ "subnet_id": sub, "ip_address": ip }]);
        if owner.starts_with("network:router") {
            d["routers"] = json!([{ "id": "r" }]);
            d["ports"][0]["device_id"] = json!("r");
        }
        d
    };
    // IPv4: the network address always (a /31 has no broadcast address; a
    // /32's one address is its network address).
    refused(
        &on(&doc, "compute:nova", "s31", "10.1.0.0"),
        "fixed_ips[0].ip_address",
        "network or broadcast",
    );
    ok(&on(&doc, "compute:nova", "s31", "10.1.0.1"));
    refused(
        &on(&doc, "compute:nova", "s32", "10.2.0.7"),
        "fixed_ips[0].ip_address",
        "network or broadcast",
    );
    // IPv6: the network (subnet-router anycast) address only for a router's
    // port or a port without owner; Neutron's default IPv6 gateway is
    // that address.
    refused(
        &on(&doc, "compute:nova", "v6", "fd00::"),
        "fixed_ips[0].ip_address",
        "subnet-router anycast",
    );
    ok(&on(&doc, "", "v6", "fd00::"));
    let t = ok(&on(&doc, "network:router_interface", "v6", "fd00::"));
    assert_eq!(t.routers[0].interfaces[0].ip.to_string(), "fd00::");
    assert_eq!(t.subnets[2].gateway_ip.unwrap().to_string(), "fd00::");
}

// --- convert_to_boolean (oslo bool_from_string, strict).

#[test]
fn port_security_enabled_values() {
    for (v, on) in [
        (json!(false), false),
        (json!("false"), false),
        (json!("No"), false),
        (json!(0), false),
        (json!("True"), true),
        (json!("1"), true),
        (json!(1), true),
    ] {
        let t = ok(&with_port(|p| p["port_security_enabled"] = v.clone()));
        assert_eq!(t.ports[0].port_security_enabled, on, "{v}");
    }
    for v in [json!(null), json!("maybe"), json!(2), json!([])] {
        refused(
            &with_port(|p| p["port_security_enabled"] = v),
            "port_security_enabled",
            "cannot be converted to boolean",
        );
    }
}

#[test]
fn security_group_ids() {
    // validate_uuid_list: "Duplicate items in the list"; null is none
    // (convert_none_to_empty_list).
    let mut doc = with_port(|p| p["security_groups"] = json!(["g", "g"]));
    doc["security_groups"] = json!([{ "id": "g" }]);
    refused(
        &doc,
        "security_groups[1]",
        "Duplicate items in the list: 'g'",
    );
    ok(&with_port(|p| p["security_groups"] = Value::Null));
}

// --- Subnets: validate_subnet for cidr, convert_to_int for ip_version,
// check_gateway_invalid_in_subnet, _gateway_ip_str for the default.

#[test]
fn subnets() {
    let sub = |edit: &dyn Fn(&mut Value)| {
        let mut doc = base();
        edit(&mut doc["subnets"][0]);
        doc
    };
    // Neutron stores 10.0.0.5/24 as 10.0.0.0/24.
    let t = ok(&sub(&|s| s["cidr"] = json!("10.0.0.5/24")));
    assert_eq!(t.subnets[0].cidr.to_string(), "10.0.0.0/24");
    refused(
        &sub(&|s| s["cidr"] = json!("10.0.0.0/024")),
        "cidr",
        "not a CIDR",
    );
    refused(
        &sub(&|s| s["cidr"] = json!("10.0.0.0")),
        "cidr",
        "not a CIDR",
    );
    // "IPv6 subnet '::' is not supported"
    let mut doc = base();
    doc["subnets"][1]["cidr"] = json!("::/64");
    refused(&doc, "cidr", "IPv6 subnet '::' is not supported");
    ok(&sub(&|s| s["ip_version"] = json!("4")));
    refused(
        &sub(&|s| s["ip_version"] = json!(5)),
        "ip_version",
        "5 is not in [4, 6]",
    );
    refused(
        &sub(&|s| s["ip_version"] = json!(6)),
        "ip_version",
        "does not match the ip_version '6'",
    );
    // A gateway outside the subnet is on the link; not the IPv4 network
    // or broadcast address; of the subnet's version.
    ok(&sub(&|s| s["gateway_ip"] = json!("10.9.9.9")));
    refused(
        &sub(&|s| s["gateway_ip"] = json!("10.0.0.0")),
        "gateway_ip",
        "Gateway is not valid on subnet",
    );
    refused(
        &sub(&|s| s["gateway_ip"] = json!("10.0.0.255")),
        "gateway_ip",
        "Gateway is not valid on subnet",
    );
    refused(
        &sub(&|s| s["gateway_ip"] = json!("fd00::1")),
        "gateway_ip",
        "does not match the ip_version '4'",
    );
    refused(
        &sub(&|s| s["gateway_ip"] = json!("10.0.0.01")),
        "gateway_ip",
        "write 10.0.0.1",
    );
    // Absent: Neutron's default (first address; IPv6: the network
    // address). null: none.
    let t = ok(&sub(&|s| {
        s.as_object_mut().unwrap().remove("gateway_ip");
    }));
    assert_eq!(t.subnets[0].gateway_ip.unwrap().to_string(), "10.0.0.1");
    assert_eq!(t.subnets[1].gateway_ip.unwrap().to_string(), "fd00::");
    let t = ok(&sub(&|s| s["gateway_ip"] = Value::Null));
    assert_eq!(t.subnets[0].gateway_ip, None);
    // A VM port may hold the gateway address (no router interface does).
    ok(&with_port(|p| {
        p["fixed_ips"][0]["ip_address"] = json!("10.0.0.1")
    }));
}

// --- Security group rules: the API's converters and securitygroups_db.

fn group(rules: Value) -> Value {
    let mut doc = base();
    doc["security_groups"] = json!([{ "id": "g", "security_group_rules": rules }]);
    doc["ports"][0]["security_groups"] = json!(["g"]);
    doc
}

fn rule_ok(rule: Value) -> dataplane_config::topology::Rule {
    ok(&group(json!([rule]))).security_groups[0].rules[0].clone()
}

fn rule_refused(rule: Value, field: &str, needle: &str) {
    refused(
        &group(json!([rule])),
        &format!("security_group_rules[0].{field}"),
        needle,
    );
}

#[test]
fn rule_protocols() {
    // convert_protocol: names in any case, "any" (and "ANY"), numbers.
    for (p, n) in [
        (json!("TCP"), Some(6)),
        (json!("6"), Some(6)),
        (json!(6), Some(6)),
        (json!("any"), None),
        (json!("ANY"), None),
        (json!(null), None),
        (json!("ip"), Some(0)),
        (json!("hopopt"), Some(0)),
        (json!(0), Some(0)),
        (json!("pgm"), Some(113)),
        (json!("vrrp"), Some(112)),
        (json!("255"), Some(255)),
    ] {
        assert_eq!(
            rule_ok(json!({ "direction": "ingress", "protocol": p })).protocol,
            n,
            "{p}"
        );
    }
    for (p, needle) in [
        (json!(""), "unknown protocol"),
        (json!("pim"), "unknown protocol"),
        (json!("tcpp"), "unknown protocol"),
        (json!(256), "0-255"),
        (json!(-1), "0-255"),
        (json!("256"), "unknown protocol"),
        // Python's int() reads these, then Neutron fails on them (HTTP 500).
        (json!("006"), "unknown protocol"),
        (json!(" 6"), "unknown protocol"),
        (json!(true), "unknown protocol"),
    ] {
        rule_refused(
            json!({ "direction": "ingress", "protocol": p }),
            "protocol",
            needle,
        );
    }
}

#[test]
fn rule_icmp_and_ethertypes() {
    // _make_canonical_ipv6_icmp_protocol: an IPv6 rule's icmp, icmpv6 and
    // 1 are ipv6-icmp.
    for p in [
        json!("icmp"),
        json!("icmpv6"),
        json!(1),
        json!("1"),
        json!("ipv6-icmp"),
    ] {
        let r = rule_ok(json!({ "direction": "ingress", "ethertype": "IPv6", "protocol": p }));
        assert_eq!(r.protocol, Some(58), "{p}");
    }
    // _validate_ethertype_and_protocol: no IPv6 protocol on IPv4.
    for p in [
        json!("icmpv6"),
        json!("ipv6-icmp"),
        json!(58),
        json!("ipv6-route"),
        json!("41"),
    ] {
        rule_refused(
            json!({ "direction": "ingress", "protocol": p }),
            "protocol",
            "is an IPv6 protocol but ethertype is IPv4",
        );
    }
    // convert_ethertype_to_case_insensitive; null is refused.
    assert!(rule_ok(json!({ "direction": "egress", "ethertype": "ipv6" })).ipv6);
    assert!(!rule_ok(json!({ "direction": "egress", "ethertype": "IPV4" })).ipv6);
    rule_refused(
        json!({ "direction": "egress", "ethertype": null }),
        "ethertype",
        "neither IPv4 nor IPv6",
    );
    // validate_values: direction exactly.
    rule_refused(
        json!({ "direction": "Ingress" }),
        "direction",
        "neither ingress nor egress",
    );
    rule_refused(json!({ "direction": null }), "direction", "missing");
    // ICMP type and code 0-255; a code needs a type.
    let r = rule_ok(
        json!({ "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0 }),
    );
    assert_eq!(format!("{:?}", r.ports), "Icmp(8, Some(0))");
    rule_refused(
        json!({ "direction": "ingress", "protocol": "icmp", "port_range_max": 0 }),
        "port_range_max",
        "needs an ICMP type",
    );
    rule_refused(
        json!({ "direction": "ingress", "protocol": "icmp", "port_range_min": 256 }),
        "port_range_min",
        "is not 0-255",
    );
    rule_refused(
        json!({ "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 300 }),
        "port_range_max",
        "is not 0-255",
    );
}

#[test]
fn rule_port_ranges() {
    let tcp = |min: Value, max: Value| json!({ "direction": "ingress", "protocol": "tcp", "port_range_min": min, "port_range_max": max });
    assert_eq!(
        format!("{:?}", rule_ok(tcp(json!(22), json!(22))).ports),
        "Range(22, 22)"
    );
    // convert_validate_port_value takes numeric strings.
    assert_eq!(
        format!("{:?}", rule_ok(tcp(json!("80"), json!("81"))).ports),
        "Range(80, 81)"
    );
    // _make_canonical_port_range: 1-65535 is no range, for any protocol,
    // or none.
    assert_eq!(
        format!("{:?}", rule_ok(tcp(json!(1), json!(65535))).ports),
        "Any"
    );
    rule_ok(
        json!({ "direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 65535 }),
    );
    rule_ok(json!({ "direction": "ingress", "port_range_min": 1, "port_range_max": 65535 }));
    // _validate_port_range: both ends, min <= max, no 0.
    rule_refused(tcp(json!(80), Value::Null), "port_range_max", "needs both");
    rule_refused(tcp(Value::Null, json!(80)), "port_range_min", "needs both");
    rule_refused(
        tcp(json!(90), json!(80)),
        "port_range_max",
        "below port_range_min",
    );
    rule_refused(tcp(json!(0), json!(80)), "port_range_min", "1-65535");
    rule_refused(
        tcp(json!(80), json!(70000)),
        "port_range_max",
        "not a port number",
    );
    rule_refused(
        json!({ "direction": "ingress", "port_range_min": 22, "port_range_max": 22 }),
        "port_range_min",
        "needs a protocol",
    );
    rule_refused(
        json!({ "direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 2 }),
        "port_range_min",
        "has no ports",
    );
    // Difference: Python's int() truncates 80.9 and reads true as 1;
    // those are refused here.
    rule_refused(
        tcp(json!(80.9), json!(81)),
        "port_range_min",
        "not a port number",
    );
    rule_refused(
        tcp(json!(true), json!(true)),
        "port_range_min",
        "not a port number",
    );
}

#[test]
fn rule_remotes() {
    use dataplane_config::topology::Remote;
    let prefix = |p: &str| {
        let r = rule_ok(json!({ "direction": "ingress", "remote_ip_prefix": p }));
        match r.remote {
            Remote::Prefix(net) => net.to_string(),
            other => format!("{other:?}"),
        }
    };
    // convert_ip_prefix_to_cidr reads it with netaddr.IPNetwork.
    assert_eq!(prefix("10.0.0.5"), "10.0.0.5/32");
    assert_eq!(prefix("10.0.0.5/24"), "10.0.0.0/24");
    assert_eq!(prefix("10.0.0.0/255.0.0.0"), "10.0.0.0/8");
    assert_eq!(prefix("10.0.0.0/08"), "10.0.0.0/8");
    assert_eq!(prefix("0.0.0.0/0"), "Any");
    assert_eq!(prefix(""), "Any");
    rule_refused(
        json!({ "direction": "ingress", "remote_ip_prefix": "010.0.0.0/8" }),
        "remote_ip_prefix",
        "is not an IP address or CIDR",
    );
    // _validate_ip_prefix
    rule_refused(
        json!({ "direction": "ingress", "remote_ip_prefix": "fd00::/8" }),
        "remote_ip_prefix",
        "does not match ethertype IPv4",
    );
    // _validate_multiple_remote_entites: an empty prefix is none.
    rule_ok(json!({ "direction": "ingress", "remote_ip_prefix": "", "remote_group_id": "g" }));
    rule_refused(
        json!({ "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "g" }),
        "remote_group_id",
        "not both",
    );
}

#[test]
fn duplicate_rules() {
    // _rule_to_key: protocol by name and number, 0.0.0.0/0 as none, the
    // prefix as written (host bits kept).
    for (a, b) in [
        (
            json!({ "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22 }),
            json!({ "direction": "ingress", "protocol": "6", "port_range_min": 22, "port_range_max": 22 }),
        ),
        (
            json!({ "direction": "egress" }),
            json!({ "direction": "egress", "remote_ip_prefix": "0.0.0.0/0", "ethertype": "ipv4" }),
        ),
        (
            json!({ "direction": "ingress", "ethertype": "IPv6", "protocol": "icmp" }),
            json!({ "direction": "ingress", "ethertype": "IPv6", "protocol": 58 }),
        ),
        (
            json!({ "direction": "ingress", "protocol": "udp", "port_range_min": 1, "port_range_max": 65535 }),
            json!({ "direction": "ingress", "protocol": "udp" }),
        ),
    ] {
        refused(
            &group(json!([a, b])),
            "security_group_rules[1]",
            "duplicate of security_group_rules[0]",
        );
    }
    let t = ok(&group(json!([
        { "direction": "ingress", "remote_ip_prefix": "10.0.0.5/24" },
        { "direction": "ingress", "remote_ip_prefix": "10.0.0.0/24" },
    ])));
    assert_eq!(t.security_groups[0].rules.len(), 2);
}

#[test]
fn groups_and_their_rules() {
    // stateful: convert_to_boolean; stateless groups are not supported.
    let mut doc = group(json!([]));
    doc["security_groups"][0]["stateful"] = json!("true");
    ok(&doc);
    doc["security_groups"][0]["stateful"] = json!("False");
    refused(
        &doc,
        "stateful",
        "stateless security groups are not supported",
    );
    // A nested rule belongs to its group.
    refused(
        &group(json!([{ "direction": "ingress", "security_group_id": "other" }])),
        "security_group_rules[0].security_group_id",
        "another group's id",
    );
    // null rules are none.
    let mut doc = group(Value::Null);
    doc["security_groups"][0]["security_group_rules"] = Value::Null;
    ok(&doc);
}

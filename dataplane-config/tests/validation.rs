//! Configuration validation: every bad input is refused with an error that
//! names the object and the field; what Neutron accepts is accepted.

use dataplane_config::{ConfigErrors, Format, Topology};
use serde_json::{Value, json};

const PORT: &str = "5e1c0a2b-0000-4000-8000-000000000001";

fn base() -> Value {
    json!({
        "networks": [{ "id": "net1", "name": "tenant" }, { "id": "net2" }],
        "subnets": [
            { "id": "sub1", "network_id": "net1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4 },
            { "id": "sub6", "network_id": "net1", "cidr": "fd00::/64", "ip_version": 6 },
            { "id": "sub2", "network_id": "net2", "cidr": "10.1.0.0/24", "ip_version": 4 },
        ],
        "ports": [{
            "id": PORT, "name": "web-1", "network_id": "net1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.5" }],
        }],
    })
}

fn check(doc: &Value) -> Result<Topology, ConfigErrors> {
    dataplane_config::topology(&doc.to_string(), Format::Json)
}

/// Applies `edit` to the base document's first port and expects exactly one
/// error on `field` whose message contains `needle`.
fn rejects(edit: impl FnOnce(&mut Value), field: &str, needle: &str) {
    let mut doc = base();
    edit(&mut doc["ports"][0]);
    let errors = check(&doc).expect_err("must be rejected");
    let text = errors.to_string();
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field == field && e.object.contains(PORT) && e.message.contains(needle)),
        "expected an error on {field} naming the port and saying {needle:?}, got:\n{text}"
    );
    assert!(text.contains("web-1"), "the port's name is shown: {text}");
}

fn accepts(edit: impl FnOnce(&mut Value)) -> Topology {
    let mut doc = base();
    edit(&mut doc["ports"][0]);
    check(&doc).unwrap_or_else(|e| panic!("must be accepted:\n{e}"))
}

#[test]
fn base_is_valid() {
    let t = accepts(|_| {});
    assert_eq!(t.ports[0].tap, "tap5e1c0a2b-00", "Neutron tap naming");
    assert!(
        t.ports[0].port_security_enabled,
        "port security defaults on"
    );
}

#[test]
fn unknown_network() {
    rejects(
        |p| p["network_id"] = json!("nope"),
        "network_id",
        "unknown network \"nope\"",
    );
}

#[test]
fn unknown_subnet() {
    rejects(
        |p| p["fixed_ips"][0]["subnet_id"] = json!("nope"),
        "fixed_ips[0].subnet_id",
        "unknown subnet",
    );
}

#[test]
fn subnet_of_another_network() {
    rejects(
        |p| p["fixed_ips"][0] = json!({ "subnet_id": "sub2", "ip_address": "10.1.0.5" }),
        "fixed_ips[0].subnet_id",
        "belongs to another network",
    );
}

#[test]
fn fixed_ip_outside_its_subnet() {
    rejects(
        |p| p["fixed_ips"][0]["ip_address"] = json!("10.0.9.5"),
        "fixed_ips[0].ip_address",
        "outside subnet sub1",
    );
}

#[test]
fn fixed_ip_on_network_or_gateway_address() {
    rejects(
        |p| p["fixed_ips"][0]["ip_address"] = json!("10.0.0.0"),
        "fixed_ips[0].ip_address",
        "network or broadcast",
    );
    rejects(
        |p| p["fixed_ips"][0]["ip_address"] = json!("10.0.0.255"),
        "fixed_ips[0].ip_address",
        "network or broadcast",
    );
    // Neutron lets any port hold the subnet's gateway_ip when no router
    // interface does (a VM that is the subnet's gateway; its IPAM only
    // checks check_subnet_ip), so a VM port may.
    accepts(|p| p["fixed_ips"][0]["ip_address"] = json!("10.0.0.1"));
}

#[test]
fn duplicate_mac_in_a_network() {
    let mut doc = base();
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "other", "network_id": "net1", "mac_address": "FA:16:3E:00:00:01",
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.6" }],
    }));
    let e = check(&doc).expect_err("duplicate MAC");
    assert!(
        e.0.iter().any(|e| e.object == "port other"
            && e.field == "mac_address"
            && e.message.contains("already used by port 5e1c")),
        "{e}"
    );
    // The same MAC on another network is fine.
    doc["ports"][1]["network_id"] = json!("net2");
    doc["ports"][1]["fixed_ips"] = json!([{ "subnet_id": "sub2", "ip_address": "10.1.0.6" }]);
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn duplicate_fixed_ip_in_a_network() {
    let mut doc = base();
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "other", "network_id": "net1", "mac_address": "fa:16:3e:00:00:02",
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.5" }],
    }));
    let e = check(&doc).expect_err("duplicate IP");
    assert!(
        e.0.iter()
            .any(|e| e.field == "fixed_ips" && e.message.contains("10.0.0.5 is already used")),
        "{e}"
    );
}

#[test]
fn malformed_addresses() {
    rejects(
        |p| p["fixed_ips"][0]["ip_address"] = json!("10.0.0.300"),
        "fixed_ips[0].ip_address",
        "not an IP address",
    );
    rejects(
        |p| p["mac_address"] = json!("fa:16:3e:00:01"),
        "mac_address",
        "not a MAC address",
    );
    rejects(
        |p| p["mac_address"] = json!("fa:16:3e:00:00:zz"),
        "mac_address",
        "not a MAC address",
    );
    rejects(
        |p| p["allowed_address_pairs"] = json!([{ "ip_address": "10.0.0.0/33" }]),
        "allowed_address_pairs[0].ip_address",
        "not an IP address or CIDR",
    );
    rejects(
        |p| {
            p["allowed_address_pairs"] =
                json!([{ "ip_address": "10.0.0.9", "mac_address": "nope" }])
        },
        "allowed_address_pairs[0].mac_address",
        "not a MAC address",
    );
    let mut doc = base();
    doc["subnets"][0]["cidr"] = json!("10.0.0/24");
    let e = check(&doc).expect_err("bad CIDR");
    assert!(
        e.0.iter()
            .any(|e| e.object == "subnet sub1" && e.field == "cidr"),
        "{e}"
    );
}

#[test]
fn multicast_port_mac() {
    rejects(
        |p| p["mac_address"] = json!("01:00:5e:00:00:01"),
        "mac_address",
        "multicast",
    );
}

#[test]
fn pairs_need_port_security() {
    rejects(
        |p| {
            p["port_security_enabled"] = json!(false);
            p["allowed_address_pairs"] = json!([{ "ip_address": "10.0.0.100" }]);
        },
        "allowed_address_pairs",
        "port_security_enabled is false",
    );
}

#[test]
fn security_groups_need_port_security() {
    rejects(
        |p| {
            p["port_security_enabled"] = json!(false);
            p["security_groups"] = json!(["default"]);
        },
        "security_groups",
        "port_security_enabled is false",
    );
}

#[test]
fn more_pairs_than_the_maximum() {
    let pairs: Vec<Value> = (0..11)
        .map(|i| json!({ "ip_address": format!("10.0.0.{}", 100 + i) }))
        .collect();
    rejects(
        |p| p["allowed_address_pairs"] = json!(pairs),
        "allowed_address_pairs",
        "exceed max_allowed_address_pair = 10",
    );
    // Ten is Neutron's default maximum and is fine.
    accepts(|p| p["allowed_address_pairs"] = json!(pairs[..10]));
    // The maximum is configurable.
    let mut doc = base();
    doc["dataplane"] = json!({ "max_allowed_address_pair": 2 });
    doc["ports"][0]["allowed_address_pairs"] = json!(pairs[..3]);
    let e = check(&doc).expect_err("over a lowered maximum");
    assert!(
        e.to_string().contains("max_allowed_address_pair = 2"),
        "{e}"
    );
}

#[test]
fn duplicate_pairs() {
    rejects(
        |p| p["allowed_address_pairs"] = json!([{ "ip_address": "10.0.0.100" }, { "ip_address": "10.0.0.100", "mac_address": "fa:16:3e:00:00:01" }]),
        "allowed_address_pairs[1]",
        "duplicate of allowed_address_pairs[0]",
    );
    // Neutron compares pairs as written: 10.9.0.0/24 and 10.9.0.77/24 are
    // two pairs to it (and to its database). They are one entry in the
    // datapath.
    let t = accepts(|p| {
        p["allowed_address_pairs"] =
            json!([{ "ip_address": "10.9.0.0/24" }, { "ip_address": "10.9.0.77/24" }])
    });
    assert_eq!(t.ports[0].allowed_address_pairs.len(), 1, "merged");
    // The same IP with two different MACs is two pairs.
    accepts(
        |p| p["allowed_address_pairs"] = json!([{ "ip_address": "10.0.0.100" }, { "ip_address": "10.0.0.100", "mac_address": "00:00:5e:00:01:01" }]),
    );
}

#[test]
fn multicast_in_pairs() {
    rejects(
        |p| p["allowed_address_pairs"] = json!([{ "ip_address": "224.0.0.18" }]),
        "allowed_address_pairs[0].ip_address",
        "multicast",
    );
    rejects(
        |p| p["allowed_address_pairs"] = json!([{ "ip_address": "ff02::12" }]),
        "allowed_address_pairs[0].ip_address",
        "multicast",
    );
    rejects(
        |p| {
            p["allowed_address_pairs"] =
                json!([{ "ip_address": "10.0.0.100", "mac_address": "01:00:5e:00:00:12" }])
        },
        "allowed_address_pairs[0].mac_address",
        "multicast",
    );
}

#[test]
fn what_neutron_accepts() {
    let t = accepts(|p| {
        p["allowed_address_pairs"] = json!([
            { "ip_address": "10.0.0.5" },
            { "ip_address": "10.0.0.77/24" },
            { "ip_address": "0.0.0.0/0", "mac_address": "fa:16:3e:00:00:99" },
            { "ip_address": "::/1" },
            { "ip_address": "fd00::10" },
        ])
    });
    let pairs = &t.ports[0].allowed_address_pairs;
    assert_eq!(pairs.len(), 5);
    assert_eq!(
        pairs[1].ip.to_string(),
        "10.0.0.77/24",
        "host bits kept as written"
    );
    assert!(
        !pairs[0].explicit_mac && pairs[0].mac.to_string() == "fa:16:3e:00:00:01",
        "pair without MAC uses the port's"
    );
    assert!(pairs[2].explicit_mac);
}

#[test]
fn misspelt_fields_are_refused() {
    rejects(
        |p| p["alowed_address_pairs"] = json!([]),
        "alowed_address_pairs",
        "unknown field",
    );
    // Fields of a real Neutron dump that this datapath ignores are fine.
    accepts(|p| {
        p["device_owner"] = json!("compute:nova");
        p["binding:host_id"] = json!("hv1");
        p["status"] = json!("ACTIVE");
    });
}

#[test]
fn subnet_errors() {
    let mut doc = base();
    doc["subnets"][0]["gateway_ip"] = json!("10.0.0.255");
    doc["subnets"][1]["ip_version"] = json!(4);
    doc["subnets"][2]["gateway_ip"] = json!("fd00::1");
    let e = check(&doc).expect_err("bad subnets").to_string();
    assert!(
        e.contains("subnet sub1: gateway_ip: Gateway is not valid on subnet: 10.0.0.255 is the network or broadcast address of 10.0.0.0/24"),
        "{e}"
    );
    assert!(
        e.contains("subnet sub6: ip_version: cidr 'fd00::/64' does not match the ip_version '4'"),
        "{e}"
    );
    assert!(
        e.contains(
            "subnet sub2: gateway_ip: gateway_ip 'fd00::1' does not match the ip_version '4'"
        ),
        "{e}"
    );
    // Neutron takes a cidr with host bits (and stores it without them) and
    // a gateway outside the subnet (reached on the link).
    let mut doc = base();
    doc["subnets"][0]["cidr"] = json!("10.0.0.5/24");
    doc["subnets"][2]["gateway_ip"] = json!("10.9.9.9");
    let t = check(&doc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.subnets[0].cidr.to_string(), "10.0.0.0/24");
}

#[test]
fn every_error_is_reported_at_once() {
    let mut doc = base();
    doc["ports"][0]["mac_address"] = json!("bad");
    doc["ports"][0]["fixed_ips"][0]["ip_address"] = json!("bad");
    doc["ports"][0]["allowed_address_pairs"] = json!([{ "ip_address": "bad" }]);
    let e = check(&doc).expect_err("three errors");
    assert_eq!(e.0.len(), 3, "{e}");
}

#[test]
fn toml_and_json_are_the_same_configuration() {
    let toml_text = r#"
[[networks]]
id = "net1"
[[subnets]]
id = "sub1"
network_id = "net1"
cidr = "10.0.0.0/24"
gateway_ip = "10.0.0.1"
ip_version = 4
[[ports]]
id = "5e1c0a2b-0000-4000-8000-000000000001"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [{ ip_address = "10.0.0.100" }]
"#;
    let t = dataplane_config::topology(toml_text, Format::Toml).unwrap();
    assert_eq!(
        t.ports[0].allowed_address_pairs[0].ip.to_string(),
        "10.0.0.100/32"
    );
}

/// The base document plus router r1 with an interface on sub1 (the gateway)
/// and one on sub2.
fn with_router() -> Value {
    let mut doc = base();
    doc["routers"] = json!([{ "id": "r1", "name": "edge", "routes": [] }]);
    let ports = doc["ports"].as_array_mut().unwrap();
    for (i, (net, sub, ip)) in [("net1", "sub1", "10.0.0.1"), ("net2", "sub2", "10.1.0.1")]
        .iter()
        .enumerate()
    {
        ports.push(json!({
            "id": format!("r1-if{i}"), "network_id": net, "mac_address": format!("fa:16:3e:00:01:0{i}"),
            "device_owner": "network:router_interface", "device_id": "r1",
            "fixed_ips": [{ "subnet_id": sub, "ip_address": ip }],
        }));
    }
    doc
}

/// Expects one error on `object`'s `field` saying `needle`.
fn rejects_doc(doc: &Value, object: &str, field: &str, needle: &str) {
    let errors = check(doc).expect_err("must be rejected");
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field == field && e.object.contains(object) && e.message.contains(needle)),
        "expected an error on {object} {field} saying {needle:?}, got:\n{errors}"
    );
}

#[test]
fn routers_and_their_interfaces() {
    let t = check(&with_router()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.ports.len(), 1, "router interfaces are not VM ports");
    assert_eq!(t.routers[0].interfaces.len(), 2);

    let mut doc = with_router();
    doc["ports"][1]["device_id"] = json!("r9");
    rejects_doc(&doc, "r1-if0", "device_id", "unknown router \"r9\"");

    let mut doc = with_router();
    doc["ports"][1]["device_id"] = Value::Null;
    rejects_doc(&doc, "r1-if0", "device_id", "missing");

    // Static routes: accepted through a nexthop on one of the router's
    // subnets (a port's address or not: Neutron does not look), refused
    // as Neutron's `_validate_routes` refuses them.
    let mut doc = with_router();
    doc["routers"][0]["routes"] = json!([
        { "destination": "0.0.0.0/0", "nexthop": "10.0.0.9" },
        { "destination": "192.168.0.0/16", "nexthop": "10.1.0.50" },
    ]);
    let t = check(&doc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.routers[0].routes.len(), 2);
    for (hop, says) in [
        ("10.7.0.9", "the nexthop is not connected with router"),
        ("10.1.0.1", "the nexthop is used by router"),
    ] {
        let mut doc = with_router();
        doc["routers"][0]["routes"] = json!([{ "destination": "10.9.0.0/16", "nexthop": hop }]);
        rejects_doc(&doc, "r1", "routes[0].nexthop", says);
    }
    let mut doc = with_router();
    doc["routers"][0]["routes"] = json!([{ "destination": "10.9.0.1/16", "nexthop": "10.0.0.9" }]);
    rejects_doc(&doc, "r1", "routes[0].destination", "not a valid CIDR");
    // Two nexthops for one destination: ECMP in Neutron, refused here.
    let mut doc = with_router();
    doc["routers"][0]["routes"] = json!([
        { "destination": "10.9.0.0/16", "nexthop": "10.0.0.9" },
        { "destination": "10.9.0.0/16", "nexthop": "10.1.0.9" },
    ]);
    rejects_doc(&doc, "r1", "routes[1].nexthop", "ECMP");
    // Removing the interface a nexthop is on takes the route's nexthop
    // off the router's subnets (Neutron: RouterInterfaceInUseByRoute).
    let mut doc = with_router();
    doc["routers"][0]["routes"] = json!([{ "destination": "10.9.0.0/16", "nexthop": "10.1.0.9" }]);
    let ports = doc["ports"].as_array_mut().unwrap();
    ports.retain(|p| p["id"] != "r1-if1");
    rejects_doc(&doc, "r1", "routes[0].nexthop", "not connected");

    // External gateways and their ports: tests/external.rs.

    // A second interface of r1 on sub1.
    let mut doc = with_router();
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "r1-if9", "network_id": "net1", "mac_address": "fa:16:3e:00:01:09",
        "device_owner": "network:router_interface", "device_id": "r1",
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.2" }],
    }));
    rejects_doc(&doc, "r1-if9", "fixed_ips[0]", "already has an interface");

    let mut doc = with_router();
    doc["ports"][1]["allowed_address_pairs"] = json!([{ "ip_address": "10.0.0.99" }]);
    rejects_doc(&doc, "r1-if0", "allowed_address_pairs", "router interface");

    let mut doc = with_router();
    doc["ports"][1]["tap_name"] = json!("tapr1");
    rejects_doc(&doc, "r1-if0", "tap_name", "no tap");

    // The interface takes the gateway address; a VM port cannot while the
    // interface holds it (Neutron: "IP address 10.0.0.1 already allocated").
    let mut doc = with_router();
    doc["ports"][0]["fixed_ips"][0]["ip_address"] = json!("10.0.0.1");
    rejects_doc(
        &doc,
        "r1-if0",
        "fixed_ips",
        "10.0.0.1 is already used by port 5e1c0a2b",
    );

    let mut doc = with_router();
    doc["routers"][0]["ha"] = json!(true);
    doc["routers"][0]["colour"] = json!("red");
    rejects_doc(&doc, "r1", "colour", "unknown field");
}

#[test]
fn security_groups_and_rules() {
    let with_rules = |rules: Value| {
        let mut doc = base();
        doc["security_groups"] =
            json!([{ "id": "sg1", "name": "web", "security_group_rules": rules }]);
        doc["ports"][0]["security_groups"] = json!(["sg1"]);
        doc
    };
    let ok = with_rules(json!([
        { "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 443, "remote_group_id": "sg1" },
        { "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp", "port_range_min": 128 },
        { "direction": "egress", "protocol": 17, "remote_ip_prefix": "10.9.0.7/16" },
        { "direction": "egress", "protocol": "any" },
    ]));
    let t = check(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.ports[0].security_groups, vec![0]);
    assert_eq!(t.security_groups[0].rules.len(), 4);

    let bad = |rule: Value, field: &str, needle: &str| {
        rejects_doc(
            &with_rules(json!([rule])),
            "sg1",
            &format!("security_group_rules[0].{field}"),
            needle,
        )
    };
    bad(
        json!({ "direction": "sideways" }),
        "direction",
        "neither ingress nor egress",
    );
    bad(json!({}), "direction", "missing");
    bad(
        json!({ "direction": "ingress", "ethertype": "IPX" }),
        "ethertype",
        "neither IPv4 nor IPv6",
    );
    bad(
        json!({ "direction": "ingress", "protocol": "tcpp" }),
        "protocol",
        "unknown protocol",
    );
    bad(
        json!({ "direction": "ingress", "protocol": 300 }),
        "protocol",
        "0-255",
    );
    bad(
        json!({ "direction": "ingress", "port_range_min": 22 }),
        "port_range_min",
        "needs a protocol",
    );
    bad(
        json!({ "direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80 }),
        "port_range_max",
        "below port_range_min",
    );
    bad(
        json!({ "direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 70000 }),
        "port_range_min",
        "1-65535",
    );
    bad(
        json!({ "direction": "ingress", "protocol": "icmp", "port_range_max": 0 }),
        "port_range_max",
        "needs an ICMP type",
    );
    bad(
        json!({ "direction": "ingress", "protocol": "gre", "port_range_min": 1 }),
        "port_range_min",
        "has no ports",
    );
    bad(
        json!({ "direction": "ingress", "remote_ip_prefix": "fd00::/8" }),
        "remote_ip_prefix",
        "does not match ethertype",
    );
    bad(
        json!({ "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "sg1" }),
        "remote_group_id",
        "not both",
    );
    bad(
        json!({ "direction": "ingress", "remote_group_id": "nope" }),
        "remote_group_id",
        "unknown security group",
    );

    let mut doc = base();
    doc["ports"][0]["security_groups"] = json!(["missing"]);
    rejects_doc(&doc, PORT, "security_groups[0]", "unknown security group");

    let mut doc = with_rules(json!([]));
    doc["security_groups"][0]["stateful"] = json!(false);
    rejects_doc(&doc, "sg1", "stateful", "not supported");
}

#[test]
fn vxlan_networks_need_a_unique_vni_and_chassis_an_ipv4_underlay() {
    let mut doc = base();
    doc["networks"][0]["provider:network_type"] = json!("vxlan");
    doc["networks"][0]["provider:segmentation_id"] = json!(100);
    doc["networks"][1]["provider:network_type"] = json!("vxlan");
    doc["networks"][1]["provider:segmentation_id"] = json!(100);
    rejects_doc(
        &doc,
        "net2",
        "provider:segmentation_id",
        "already network net1",
    );
    doc["networks"][1]["provider:segmentation_id"] = json!(16777216);
    rejects_doc(&doc, "net2", "provider:segmentation_id", "1-16777215");
    doc["networks"][1]["provider:segmentation_id"] = json!(101);
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
    doc["chassis"] = json!([{ "id": "h1", "underlay_ip": "fd00::1" }]);
    rejects_doc(&doc, "h1", "underlay_ip", "IPv6 underlay");
    doc["chassis"] = json!([{ "id": "h1", "underlay_ip": "192.168.1.1", "tunnel_type": "geneve" }]);
    rejects_doc(&doc, "h1", "tunnel_type", "only vxlan");
    doc["chassis"] = json!([{ "id": "h1", "underlay_ip": "192.168.1.1" }]);
    doc["ports"][0]["binding:host_id"] = json!("h1");
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_error_names_its_object_as_kind_and_id() {
    let mut doc = base();
    doc["ports"][0]["mac_address"] = json!("bad");
    let e = check(&doc).expect_err("a bad MAC");
    assert_eq!(
        e.0[0].subject(),
        Some((dataplane_config::Kind::Port, PORT.to_string()))
    );
    doc = base();
    doc["security_groups"] = json!([{ "id": "sg1", "name": "web", "stateful": false }]);
    let e = check(&doc).expect_err("stateless");
    assert_eq!(
        e.0[0].subject(),
        Some((dataplane_config::Kind::SecurityGroup, "sg1".to_string()))
    );
}

/// The errors of `doc` on `object`'s `field`, one message a line.
fn errors_on(doc: &Value, object: &str, field: &str) -> String {
    match check(doc) {
        Ok(_) => String::new(),
        Err(errors) => errors
            .0
            .iter()
            .filter(|e| e.object.contains(object) && e.field == field)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn network_mtu_as_neutron_reads_it() {
    // net1 has an IPv6 subnet: at least 1280; net2 only IPv4: at least 68.
    for (net, mtu, needle) in [
        (0, json!(-1), "'-1' should be non-negative"),
        (0, json!(null), "'None' is not an integer"),
        (0, json!("a lot"), "is not an integer"),
        (0, json!(1500.5), "is not an integer"),
        (0, json!(true), "is not an integer"),
        (0, json!(1279), "subnet requires a minimum of 1280"),
        (1, json!(67), "subnet requires a minimum of 68"),
    ] {
        let mut doc = base();
        doc["networks"][net]["mtu"] = mtu.clone();
        let id = doc["networks"][net]["id"].as_str().unwrap().to_string();
        let found = errors_on(&doc, &id, "mtu");
        assert!(found.contains(needle), "mtu {mtu}: {found:?}");
    }
    for (net, mtu) in [
        (0, json!(1280)),
        (0, json!("1450")),
        (1, json!(68)),
        (0, json!(0)),
    ] {
        let mut doc = base();
        doc["networks"][net]["mtu"] = mtu.clone();
        let t = check(&doc).unwrap_or_else(|e| panic!("mtu {mtu} must be accepted:\n{e}"));
        let want = mtu.as_u64().or_else(|| mtu.as_str()?.parse().ok()).unwrap();
        assert_eq!(u64::from(t.networks[net].mtu), want);
    }
    // A subnet added to a network whose MTU is too small for it.
    let mut doc = base();
    doc["networks"][1]["mtu"] = json!(1000);
    doc["subnets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "sub26", "network_id": "net2", "cidr": "fd01::/64", "ip_version": 6 }));
    let found = errors_on(&doc, "net2", "mtu");
    assert!(found.contains("a minimum of 1280"), "{found:?}");
}

/// `base()` with sub6 given `edit`, and the errors on `field` of `object`.
fn subnet6_errors(edit: impl FnOnce(&mut Value), object: &str, field: &str) -> String {
    let mut doc = base();
    edit(&mut doc["subnets"][1]);
    errors_on(&doc, object, field)
}

#[test]
fn ipv6_modes_as_neutron_reads_them() {
    let mode = |ra: Value, address: Value| {
        move |s: &mut Value| {
            s["ipv6_ra_mode"] = ra;
            s["ipv6_address_mode"] = address;
        }
    };
    for (edit_ra, edit_addr, field, needle) in [
        (
            json!("SLAAC"),
            json!(null),
            "ipv6_ra_mode",
            "SLAAC is not in",
        ),
        (json!(5), json!(null), "ipv6_ra_mode", "5 is not in"),
        (
            json!(null),
            json!("dhcp"),
            "ipv6_address_mode",
            "dhcp is not in",
        ),
        (
            json!("slaac"),
            json!("dhcpv6-stateful"),
            "ipv6_address_mode",
            "they must be the same value",
        ),
    ] {
        let found = subnet6_errors(mode(edit_ra, edit_addr), "sub6", field);
        assert!(found.contains(needle), "{field}: {found:?}");
    }
    // Only on IPv6 subnets, only with DHCP on, automatic modes on /64s.
    let mut doc = base();
    doc["subnets"][0]["ipv6_ra_mode"] = json!("slaac");
    let found = errors_on(&doc, "sub1", "ipv6_ra_mode");
    assert!(
        found.contains("not valid when ip_version is 4"),
        "{found:?}"
    );
    let found = subnet6_errors(
        |s| {
            s["ipv6_address_mode"] = json!("dhcpv6-stateful");
            s["enable_dhcp"] = json!(false);
        },
        "sub6",
        "enable_dhcp",
    );
    assert!(
        found.contains("cannot be set when enable_dhcp"),
        "{found:?}"
    );
    let found = subnet6_errors(
        |s| {
            s["cidr"] = json!("fd00::/56");
            s["ipv6_ra_mode"] = json!("dhcpv6-stateless");
        },
        "sub6",
        "cidr",
    );
    assert!(found.contains("requires the prefix to be /64"), "{found:?}");
    // Stateful addresses need no /64.
    let mut doc = base();
    doc["subnets"][1]["cidr"] = json!("fd00::/56");
    doc["subnets"][1]["ipv6_ra_mode"] = json!("dhcpv6-stateful");
    doc["subnets"][1]["ipv6_address_mode"] = json!("dhcpv6-stateful");
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn ports_on_automatic_subnets_hold_their_eui64_address() {
    let mut doc = base();
    doc["subnets"][1]["ipv6_address_mode"] = json!("slaac");
    doc["subnets"][1]["ipv6_ra_mode"] = json!("slaac");
    let fixed = |ip: &str| json!([{ "subnet_id": "sub6", "ip_address": ip }]);
    doc["ports"][0]["fixed_ips"] = fixed("fd00::5");
    let found = errors_on(&doc, PORT, "fixed_ips[0].ip_address");
    assert!(
        found.contains("Neutron gives this port fd00::f816:3eff:fe00:1"),
        "{found:?}"
    );
    doc["ports"][0]["fixed_ips"] = fixed("fd00::f816:3eff:fe00:1");
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn dns_nameservers_as_neutron_reads_them() {
    for (servers, field, needle) in [
        (json!("fd00::53"), "dns_nameservers", "Invalid data format"),
        (
            json!(["fd00::53", "fd00::53"]),
            "dns_nameservers[1]",
            "Duplicate nameserver",
        ),
        (
            json!(["fd00::5x"]),
            "dns_nameservers[0]",
            "is not a valid nameserver",
        ),
        (
            json!(["10.0.0.53"]),
            "dns_nameservers[0]",
            "does not match the ip_version '6'",
        ),
        (
            json!([
                "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6"
            ]),
            "dns_nameservers",
            "exceeds the limit 5",
        ),
    ] {
        let found = subnet6_errors(|s| s["dns_nameservers"] = servers.clone(), "sub6", field);
        assert!(found.contains(needle), "{servers}: {found:?}");
    }
    let mut doc = base();
    doc["dataplane"] = json!({ "max_dns_nameservers": 6 });
    doc["subnets"][1]["dns_nameservers"] = json!([
        "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6"
    ]);
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

/// A router interface: (id, router, network, [(subnet, address)]).
type Interface<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

/// `base()` with routers `r1` and `r2`, and `interfaces`.
fn with_interfaces(interfaces: &[Interface]) -> Value {
    let mut doc = base();
    doc["routers"] = json!([{ "id": "r1" }, { "id": "r2" }]);
    for (i, (id, router, net, ips)) in interfaces.iter().enumerate() {
        let fixed: Vec<Value> = ips
            .iter()
            .map(|(s, ip)| json!({ "subnet_id": s, "ip_address": ip }))
            .collect();
        doc["ports"].as_array_mut().unwrap().push(json!({
            "id": id, "network_id": net, "device_owner": "network:router_interface",
            "device_id": router, "mac_address": format!("fa:16:3e:00:01:{:02x}", i + 1),
            "fixed_ips": fixed,
        }));
    }
    doc
}

#[test]
fn router_interfaces_on_ipv6_subnets_as_neutron_allows_them() {
    // A subnet whose hosts take an external router's advertisements.
    let mut doc = with_interfaces(&[("ri1", "r1", "net1", &[("sub6", "fd00::1")])]);
    doc["subnets"][1]["ipv6_address_mode"] = json!("slaac");
    let found = errors_on(&doc, "ri1", "fixed_ips[0]");
    assert!(
        found.contains("configured to receive RAs from an external router"),
        "{found:?}"
    );
    doc["subnets"][1]["ipv6_ra_mode"] = json!("slaac");
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
    // A second IPv6 port of one router on a network.
    let doc = with_interfaces(&[
        ("ri1", "r1", "net1", &[("sub6", "fd00::1")]),
        ("ri2", "r1", "net1", &[("sub6", "fd00::2")]),
    ]);
    let found = errors_on(&doc, "ri2", "fixed_ips");
    assert!(found.contains("Only one IPv6 port"), "{found:?}");
    // Two routers advertising on one network: the datapath's limit.
    let doc = with_interfaces(&[
        ("ri1", "r1", "net1", &[("sub6", "fd00::1")]),
        ("ri2", "r2", "net1", &[("sub6", "fd00::2")]),
    ]);
    let found = errors_on(&doc, "ri2", "fixed_ips");
    assert!(
        found.contains("already advertises IPv6 on network net1"),
        "{found:?}"
    );
    // IPv4 interfaces of two routers on one network are fine.
    let doc = with_interfaces(&[
        ("ri1", "r1", "net1", &[("sub1", "10.0.0.1")]),
        ("ri2", "r2", "net1", &[("sub1", "10.0.0.2")]),
    ]);
    check(&doc).unwrap_or_else(|e| panic!("{e}"));
}

//! External networks, router gateways and floating IPs: what Neutron
//! accepts is accepted, and every refusal names the object and the field,
//! with Neutron's message where it has one (`l3_db._validate_gw_info`,
//! `_internal_fip_assoc_data`, `get_router_for_floatingip`,
//! `_check_and_get_fip_assoc`, the core plugin's IPAM).

use dataplane_config::{Change, ConfigErrors, Document, Format, Kind, Store};
use serde_json::{Value, json};

/// A tenant network behind router r1, whose gateway is on the external
/// network `ext`; a VM port, a VIP port (no VM: two VRRP ports carry its
/// address as an allowed address pair) and three floating IPs: f1 on the
/// VM, f2 on the VIP, f3 not associated.
fn base() -> Value {
    json!({
        "networks": [
            { "id": "net1", "name": "tenant" },
            { "id": "ext", "name": "public", "router:external": true,
              "provider:network_type": "flat", "provider:physical_network": "physnet1", "mtu": 1500 },
        ],
        "subnets": [
            { "id": "sub1", "network_id": "net1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1" },
            { "id": "ext-v4", "network_id": "ext", "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1" },
            { "id": "ext-v6", "network_id": "ext", "cidr": "2001:db8::/64", "ip_version": 6 },
        ],
        "routers": [{
            "id": "r1", "name": "edge",
            "external_gateway_info": {
                "network_id": "ext", "enable_snat": true,
                "external_fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "203.0.113.10" }],
            },
        }],
        "ports": [
            { "id": "r1-if", "network_id": "net1", "mac_address": "fa:16:3e:00:01:00",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.1" }] },
            { "id": "r1-gw", "network_id": "ext", "mac_address": "fa:16:3e:00:02:00",
              "device_owner": "network:router_gateway", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "203.0.113.10" }] },
            { "id": "vm1", "network_id": "net1", "mac_address": "fa:16:3e:00:00:01",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.5" }] },
            { "id": "vip", "network_id": "net1", "mac_address": "fa:16:3e:00:00:64",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.100" }] },
            { "id": "vrrp-a", "network_id": "net1", "mac_address": "fa:16:3e:00:00:0a",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.10" }],
              "allowed_address_pairs": [{ "ip_address": "10.0.0.100" }] },
            { "id": "vrrp-b", "network_id": "net1", "mac_address": "fa:16:3e:00:00:0b",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.11" }],
              "allowed_address_pairs": [{ "ip_address": "10.0.0.100" }] },
            { "id": "dhcp", "network_id": "net1", "mac_address": "fa:16:3e:00:00:02",
              "device_owner": "network:dhcp",
              "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.2" }] },
        ],
        "floatingips": [
            { "id": "f1", "floating_ip_address": "203.0.113.20", "floating_network_id": "ext",
              "port_id": "vm1", "fixed_ip_address": "10.0.0.5", "router_id": "r1" },
            { "id": "f2", "floating_ip_address": "203.0.113.21", "floating_network_id": "ext",
              "port_id": "vip" },
            { "id": "f3", "floating_ip_address": "203.0.113.22", "floating_network_id": "ext",
              "port_id": null, "fixed_ip_address": null, "router_id": null },
        ],
    })
}

fn load(doc: &Value) -> Result<Store, ConfigErrors> {
    let d = Document::parse(&doc.to_string(), Format::Json)?;
    dataplane_config::validate(&d)
}

fn ok(doc: &Value) -> Store {
    load(doc).unwrap_or_else(|e| panic!("must be accepted:\n{e}"))
}

/// Expects an error on `object`'s `field` saying `needle`.
fn refused(doc: &Value, object: &str, field: &str, needle: &str) {
    let e = load(doc).expect_err("must be refused");
    assert!(
        e.0.iter()
            .any(|e| e.object.contains(object) && e.field == field && e.message.contains(needle)),
        "expected {object}: {field}: …{needle}…, got:\n{e}"
    );
}

fn port_index(doc: &Value, id: &str) -> usize {
    doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["id"] == id)
        .unwrap()
}

fn notices(doc: &Value) -> String {
    let d = Document::parse(&doc.to_string(), Format::Json).unwrap_or_else(|e| panic!("{e}"));
    d.skipped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_base_is_accepted_and_resolved() {
    let store = ok(&base());
    let ext = &store.networks()["ext"];
    assert!(ext.external);
    assert_eq!(ext.physical_network.as_deref(), Some("physnet1"));
    assert!(!store.networks()["net1"].external);
    let g = store.routers()["r1"].gateway.clone().unwrap();
    assert_eq!(g.network_id, "ext");
    assert!(g.enable_snat);
    let gw = store.gateway_port(&"r1".to_string()).unwrap();
    assert_eq!(gw.id(), "r1-gw");
    let a = |id: &str| store.floating_ips()[id].association.clone();
    let f1 = a("f1").unwrap();
    assert_eq!(
        (
            f1.port_id.as_str(),
            f1.fixed.to_string(),
            f1.router.as_str()
        ),
        ("vm1", "10.0.0.5".into(), "r1")
    );
    // The VIP: its port has no VM, other ports carry it as a pair.
    let f2 = a("f2").unwrap();
    assert_eq!(
        (f2.fixed.to_string(), f2.router.as_str()),
        ("10.0.0.100".into(), "r1")
    );
    assert_eq!(a("f3"), None, "not associated: kept, does nothing");
    assert_eq!(
        store
            .external_network_on(&"physnet1".to_string())
            .map(String::as_str),
        Some("ext")
    );
}

#[test]
fn network_fields() {
    let mut doc = base();
    doc["networks"][0]["router:external"] = json!("False");
    doc["networks"][0]["provider:physical_network"] = Value::Null;
    ok(&doc);
    doc["networks"][0]["router:external"] = json!("maybe");
    refused(
        &doc,
        "network net1",
        "router:external",
        "cannot be converted to boolean",
    );
    doc["networks"][0]["router:external"] = Value::Null;
    refused(
        &doc,
        "network net1",
        "router:external",
        "null cannot be converted",
    );
    // A gateway needs the only external network of its physical network
    // (an uplink carries one, untagged), and a flat one; the networks
    // themselves are accepted.
    let mut doc = base();
    doc["networks"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "ext2",
        "router:external": true, "provider:network_type": "flat",
        "provider:physical_network": "physnet1" }));
    refused(
        &doc,
        "router r1",
        "external_gateway_info.network_id",
        "physnet1 carries external networks ext and ext2",
    );
    let mut store = ok(&base());
    let e = store
        .apply(&[Change {
            kind: Kind::Network,
            id: "ext2".into(),
            value: Some(doc["networks"][2].clone()),
        }])
        .expect_err("the router on ext is checked again");
    assert!(e.to_string().contains("carries external networks"), "{e}");
    doc["routers"][0]["external_gateway_info"] = Value::Null;
    let gw = port_index(&doc, "r1-gw");
    doc["ports"].as_array_mut().unwrap().remove(gw);
    doc["floatingips"] = json!([]);
    ok(&doc);
    let mut doc = base();
    doc["networks"][1]["provider:network_type"] = json!("vlan");
    doc["networks"][1]["provider:segmentation_id"] = json!(100);
    refused(
        &doc,
        "router r1",
        "external_gateway_info.network_id",
        "network ext is of type vlan: the datapath reaches an external network through an uplink, untagged",
    );
}

/// `edit` applied to router r1's `external_gateway_info`.
fn gateway(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = base();
    edit(&mut doc["routers"][0]["external_gateway_info"]);
    doc
}

#[test]
fn a_gateway_as_neutron_validates_it() {
    let info = "external_gateway_info";
    let ip0 = "external_gateway_info.external_fixed_ips[0]";
    for (doc, field, says) in [
        (
            gateway(|g| g["network_id"] = json!("nope")),
            format!("{info}.network_id"),
            "Network nope could not be found.",
        ),
        (
            gateway(|g| g["network_id"] = json!("net1")),
            format!("{info}.network_id"),
            "Network net1 is not an external network",
        ),
        (
            gateway(|g| g["external_fixed_ips"][0]["subnet_id"] = json!("nope")),
            format!("{ip0}.subnet_id"),
            "Subnet nope could not be found.",
        ),
        (
            gateway(|g| g["external_fixed_ips"][0]["subnet_id"] = json!("sub1")),
            format!("{ip0}.subnet_id"),
            "Failed to create port on network ext, because fixed_ips included invalid subnet sub1",
        ),
        (
            gateway(|g| g["external_fixed_ips"][0]["ip_address"] = json!("198.51.100.7")),
            format!("{ip0}.ip_address"),
            "IP address 198.51.100.7 is not a valid IP for the specified subnet",
        ),
        (
            gateway(|g| g["external_fixed_ips"] = json!([{ "ip_address": "198.51.100.7" }])),
            format!("{ip0}.ip_address"),
            "is not a valid IP for any of the subnets on the specified network",
        ),
        (
            gateway(|g| g["external_fixed_ips"][0]["ip_address"] = json!("203.0.113.1")),
            format!("{ip0}.ip_address"),
            "External IP 203.0.113.1 is the same as the gateway IP",
        ),
        (
            gateway(|g| g["external_fixed_ips"][0]["ip_address"] = json!("203.0.113.11")),
            format!("{info}.external_fixed_ips"),
            "differ from the fixed IPs of its gateway port r1-gw",
        ),
        (
            gateway(|g| g["external_fixed_ips"] = json!([{ "ip_address": "2001:db8::10" }])),
            format!("{info}.external_fixed_ips"),
            "no IPv4 address",
        ),
    ] {
        refused(&doc, "router r1 (edge)", &field, says);
    }
    // null: no gateway; then its port has no business here.
    let doc = gateway(|g| *g = Value::Null);
    refused(
        &doc,
        "port r1-gw",
        "device_id",
        "router r1 has no external_gateway_info",
    );
    let mut doc = base();
    let gw = port_index(&doc, "r1-gw");
    doc["ports"].as_array_mut().unwrap().remove(gw);
    refused(
        &doc,
        "router r1 (edge)",
        info,
        "gateway port (device_owner network:router_gateway",
    );
    // A second gateway port, or one on another network.
    let mut doc = base();
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "r1-gw2", "network_id": "ext", "mac_address": "fa:16:3e:00:02:01",
        "device_owner": "network:router_gateway", "device_id": "r1",
        "fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "203.0.113.12" }] }));
    refused(
        &doc,
        "port r1-gw2",
        "device_id",
        "router r1 already has gateway port r1-gw",
    );
    let mut doc = base();
    doc["ports"][gw]["network_id"] = json!("net1");
    doc["ports"][gw]["fixed_ips"] = json!([{ "subnet_id": "sub1", "ip_address": "10.0.0.9" }]);
    refused(
        &doc,
        "port r1-gw",
        "network_id",
        "is not the network of router r1",
    );
    // The gateway port's own address checks (network address).
    let mut doc = base();
    doc["ports"][gw]["fixed_ips"][0]["ip_address"] = json!("203.0.113.0");
    refused(
        &doc,
        "port r1-gw",
        "fixed_ips[0].ip_address",
        "network or broadcast",
    );
    // Its subnet overlapping one of the router's interfaces.
    let mut doc = base();
    doc["subnets"][1]["cidr"] = json!("10.0.0.0/16");
    doc["subnets"][1]["gateway_ip"] = json!("10.0.200.1");
    doc["routers"][0]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"] =
        json!("10.0.200.10");
    doc["ports"][gw]["fixed_ips"][0]["ip_address"] = json!("10.0.200.10");
    doc["floatingips"] = json!([]);
    let e = load(&doc).expect_err("overlap");
    assert!(e.to_string().contains("already has an interface"), "{e}");
}

#[test]
fn what_a_gateway_may_hold_and_what_is_left_out() {
    // enable_snat absent: Neutron's default, true.
    let doc = gateway(|g| {
        g.as_object_mut().unwrap().remove("enable_snat");
    });
    assert!(
        ok(&doc).routers()["r1"]
            .gateway
            .as_ref()
            .unwrap()
            .enable_snat
    );
    let doc = gateway(|g| g["enable_snat"] = json!(false));
    assert!(
        !ok(&doc).routers()["r1"]
            .gateway
            .as_ref()
            .unwrap()
            .enable_snat
    );
    // An IPv6 address too: accepted (the gateway port holds it), noted.
    let mut doc = gateway(|g| {
        g["external_fixed_ips"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "subnet_id": "ext-v6", "ip_address": "2001:db8::10" }))
    });
    let gw = port_index(&doc, "r1-gw");
    doc["ports"][gw]["fixed_ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "subnet_id": "ext-v6", "ip_address": "2001:db8::10" }));
    ok(&doc);
    let n = notices(&doc);
    assert!(
        n.contains(
            "router r1 (edge): external_gateway_info.external_fixed_ips[1]: IPv6 address left out"
        ),
        "{n}"
    );
    // external_gateways: left out when it repeats the gateway, refused
    // when it says otherwise.
    let mut doc = base();
    let info = doc["routers"][0]["external_gateway_info"].clone();
    doc["routers"][0]["external_gateways"] = json!([info]);
    ok(&doc);
    assert!(notices(&doc).contains("external_gateways: ignored: it repeats"));
    let mut other = info.clone();
    other["enable_snat"] = json!(false);
    doc["routers"][0]["external_gateways"] = json!([info, other]);
    ok(&doc);
    assert!(notices(&doc).contains("the 1 other(s) (external-gateway-multihoming) are not"));
    doc["routers"][0]["external_gateways"] = json!([other]);
    refused(
        &doc,
        "router r1 (edge)",
        "external_gateways",
        "differs from external_gateway_info",
    );
    // A router down: its gateway port and floating IPs go with it.
    let mut doc = base();
    doc["routers"][0]["admin_state_up"] = json!(false);
    let n = notices(&doc);
    assert!(
        n.contains("port r1-gw: device_id: skipped: a port of a router"),
        "{n}"
    );
    assert!(
        n.contains("floating IP f1 (203.0.113.20): router_id: skipped"),
        "{n}"
    );
}

#[test]
fn static_routes_through_the_gateway() {
    // Neutron counts the gateway's subnet as connected.
    let mut doc = base();
    doc["routers"][0]["routes"] =
        json!([{ "destination": "198.51.100.0/24", "nexthop": "203.0.113.254" }]);
    ok(&doc);
    doc["routers"][0]["routes"] =
        json!([{ "destination": "198.51.100.0/24", "nexthop": "203.0.113.10" }]);
    refused(
        &doc,
        "router r1",
        "routes[0].nexthop",
        "the nexthop is used by router",
    );
    // Through the gateway's IPv6 subnet, which the datapath leaves out.
    let mut doc = gateway(|g| {
        g["external_fixed_ips"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "subnet_id": "ext-v6", "ip_address": "2001:db8::10" }))
    });
    let gw = port_index(&doc, "r1-gw");
    doc["ports"][gw]["fixed_ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "subnet_id": "ext-v6", "ip_address": "2001:db8::10" }));
    doc["routers"][0]["routes"] =
        json!([{ "destination": "2001:db8:9::/48", "nexthop": "2001:db8::1" }]);
    refused(
        &doc,
        "router r1",
        "routes[0].nexthop",
        "gateway IPv6 subnet, which the datapath leaves out",
    );
}

/// `edit` applied to floating IP `i` of the base.
fn floating(i: usize, edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = base();
    edit(&mut doc["floatingips"][i]);
    doc
}

#[test]
fn a_floating_ip_as_neutron_validates_it() {
    let f1 = "floating IP f1 ";
    for (doc, field, says) in [
        (
            floating(0, |f| f["floating_network_id"] = json!("nope")),
            "floating_network_id",
            "Network nope could not be found.",
        ),
        (
            floating(0, |f| f["floating_network_id"] = json!("net1")),
            "floating_network_id",
            "Network net1 is not a valid external network",
        ),
        (
            floating(0, |f| f["floating_ip_address"] = json!("198.51.100.20")),
            "floating_ip_address",
            "is not a valid IP for any of the subnets on the specified network.",
        ),
        (
            floating(0, |f| f["floating_ip_address"] = json!("203.0.113.255")),
            "floating_ip_address",
            "is not a valid IP for the specified subnet (the network or broadcast address",
        ),
        (
            floating(0, |f| f["floating_ip_address"] = json!("203.0.113.1")),
            "floating_ip_address",
            "is the gateway_ip of subnet ext-v4",
        ),
        (
            floating(0, |f| f["floating_ip_address"] = json!("203.0.113.10")),
            "floating_ip_address",
            "IP address 203.0.113.10 already allocated in subnet ext-v4 (port r1-gw)",
        ),
        (
            floating(0, |f| f["port_id"] = json!("nope")),
            "port_id",
            "Port nope could not be found.",
        ),
        (
            floating(0, |f| {
                f["port_id"] = json!("dhcp");
                f["fixed_ip_address"] = Value::Null;
            }),
            "port_id",
            "Port dhcp is unable to be assigned a floating IP",
        ),
        (
            floating(0, |f| {
                f["port_id"] = json!("r1-if");
                f["fixed_ip_address"] = Value::Null;
            }),
            "port_id",
            "a router's own port",
        ),
        (
            floating(0, |f| f["fixed_ip_address"] = json!("10.0.0.6")),
            "fixed_ip_address",
            "Port vm1 does not have fixed ip 10.0.0.6",
        ),
        (
            floating(0, |f| f["router_id"] = json!("r9")),
            "router_id",
            "router r9 has no interface on subnet sub1 with its gateway on network ext",
        ),
    ] {
        refused(&doc, f1, field, says);
    }
    // A second floating IP on the same address, or the same fixed IP.
    let mut doc = base();
    doc["floatingips"][2]["floating_ip_address"] = json!("203.0.113.20");
    refused(
        &doc,
        "floating IP f3",
        "floating_ip_address",
        "already allocated in subnet ext-v4 (floating IP f1)",
    );
    let mut doc = base();
    doc["floatingips"][2]["port_id"] = json!("vm1");
    refused(
        &doc,
        "floating IP f3",
        "port_id",
        "Cannot associate floating IP 203.0.113.22 (f3) with port vm1 using fixed IP 10.0.0.5, as \
         that fixed IP already has a floating IP on external network ext",
    );
    // A port that comes to hold a floating IP's address.
    let mut doc = base();
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "squatter", "network_id": "ext", "mac_address": "fa:16:3e:00:03:00",
        "fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "203.0.113.22" }] }));
    refused(
        &doc,
        "floating IP f3",
        "floating_ip_address",
        "(port squatter)",
    );
}

#[test]
fn which_fixed_ip_and_which_router() {
    // No fixed_ip_address: the port's only IPv4 address (IPv6 ones do not
    // count), or Neutron's refusal.
    let mut doc = base();
    doc["subnets"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "sub6", "network_id": "net1", "cidr": "fd00::/64", "ip_version": 6 }));
    let vm = port_index(&doc, "vm1");
    doc["ports"][vm]["fixed_ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "subnet_id": "sub6", "ip_address": "fd00::5" }));
    doc["floatingips"][0]["fixed_ip_address"] = Value::Null;
    ok(&doc);
    doc["ports"][vm]["fixed_ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "subnet_id": "sub1", "ip_address": "10.0.0.6" }));
    refused(
        &doc,
        "floating IP f1",
        "fixed_ip_address",
        "Port vm1 has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address",
    );
    doc["ports"][vm]["fixed_ips"] = json!([{ "subnet_id": "sub6", "ip_address": "fd00::5" }]);
    refused(
        &doc,
        "floating IP f1",
        "port_id",
        "that has no fixed IPv4 addresses",
    );
    // No router with an interface on the fixed IP's subnet and its
    // gateway on the floating network.
    let mut doc = base();
    doc["routers"][0]["external_gateway_info"] = Value::Null;
    let gw = port_index(&doc, "r1-gw");
    doc["ports"].as_array_mut().unwrap().remove(gw);
    refused(
        &doc,
        "floating IP f1",
        "port_id",
        "External network ext is not reachable from subnet sub1.  Therefore, cannot associate \
         Port vm1 with a Floating IP.",
    );
    // Two routers: the one on the subnet's gateway_ip is Neutron's pick.
    let mut doc = base();
    doc["routers"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "r2",
        "external_gateway_info": { "network_id": "ext",
            "external_fixed_ips": [{ "ip_address": "203.0.113.30" }] } }));
    let ports = doc["ports"].as_array_mut().unwrap();
    ports.push(
        json!({ "id": "r2-if", "network_id": "net1", "mac_address": "fa:16:3e:00:01:02",
        "device_owner": "network:router_interface", "device_id": "r2",
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.3" }] }),
    );
    ports.push(
        json!({ "id": "r2-gw", "network_id": "ext", "mac_address": "fa:16:3e:00:02:02",
        "device_owner": "network:router_gateway", "device_id": "r2",
        "fixed_ips": [{ "ip_address": "203.0.113.30" }] }),
    );
    let store = ok(&doc);
    let f2 = store.floating_ips()["f2"].association.clone().unwrap();
    assert_eq!(f2.router, "r1", "the router on sub1's gateway_ip");
    doc["floatingips"][0]["router_id"] = json!("r2");
    refused(
        &doc,
        "floating IP f1",
        "router_id",
        "Neutron associates it with router r1",
    );
}

fn change(kind: Kind, id: &str, value: Option<Value>) -> Change {
    Change {
        kind,
        id: id.into(),
        value,
    }
}

#[test]
fn changes_that_would_strand_a_floating_ip_or_a_gateway_are_refused() {
    let mut store = ok(&base());
    let deletions = [
        (
            change(Kind::Port, "vm1", None),
            "port vm1",
            "still in use by floating IP f1 (its port_id)",
        ),
        (
            change(Kind::Network, "ext", None),
            "network ext",
            "router r1's gateway",
        ),
    ];
    for (c, object, says) in deletions {
        let e = store.apply(&[c]).expect_err("refused");
        assert!(
            e.0.iter()
                .any(|e| e.object.contains(object) && e.message.contains(says)),
            "{e}"
        );
    }
    // The network no longer external: the gateway and floating IPs fail.
    let mut ext = base()["networks"][1].clone();
    ext["router:external"] = json!(false);
    let e = store
        .apply(&[change(Kind::Network, "ext", Some(ext))])
        .expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("Network ext is not an external network"),
        "{text}"
    );
    assert!(
        text.contains("Network ext is not a valid external network"),
        "{text}"
    );
    // The router's interface goes: its floating IPs are refused.
    let e = store
        .apply(&[change(Kind::Port, "r1-if", None)])
        .expect_err("refused");
    assert!(
        e.to_string().contains("is not reachable from subnet sub1"),
        "{e}"
    );
    // A port written later with a floating IP's address.
    let squatter = json!({ "id": "squatter", "network_id": "ext", "mac_address": "fa:16:3e:00:03:00",
        "fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "203.0.113.22" }] });
    let e = store
        .apply(&[change(Kind::Port, "squatter", Some(squatter))])
        .expect_err("refused");
    assert!(
        e.0.iter().any(|e| e.object == "port squatter"
            && e.field == "fixed_ips"
            && e.message == "203.0.113.22 is already used by floating IP f3 on the same network"),
        "{e}"
    );
    // Disassociated with the port's deletion: accepted.
    let mut f1 = base()["floatingips"][0].clone();
    f1["port_id"] = Value::Null;
    f1["fixed_ip_address"] = Value::Null;
    f1["router_id"] = Value::Null;
    store
        .apply(&[
            change(Kind::FloatingIp, "f1", Some(f1)),
            change(Kind::Port, "vm1", None),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    store.commit();
    assert_eq!(store.floating_ips()["f1"].association, None);
}

#[test]
fn floating_ips_in_every_form() {
    // TOML, as the README shows it.
    let text = r#"
[[networks]]
id = "ext"
"router:external" = true
"provider:physical_network" = "physnet1"
[[subnets]]
id = "ext-v4"
network_id = "ext"
cidr = "203.0.113.0/24"
[[floatingips]]
id = "f1"
floating_ip_address = "203.0.113.20"
floating_network_id = "ext"
"#;
    let d = Document::parse(text, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    let store = dataplane_config::validate(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.floating_ips().len(), 1);
    // The API's bodies, one and many, and a bare list named by its file.
    let one = json!({ "floatingip": base()["floatingips"][2] }).to_string();
    let d = Document::parse(&one, Format::Json).unwrap();
    assert_eq!(d.of(Kind::FloatingIp).count(), 1);
    let bare = base()["floatingips"].to_string();
    let d = Document::parse_named(&bare, Format::Json, Some("floatingips.json")).unwrap();
    assert_eq!(d.of(Kind::FloatingIp).count(), 3);
    // Unknown fields are refused; Neutron's own are accepted.
    let mut doc = base();
    doc["floatingips"][0]["port_details"] = json!({ "name": "vm1" });
    doc["floatingips"][0]["status"] = json!("ACTIVE");
    ok(&doc);
    doc["floatingips"][0]["fixed_port"] = json!("vm1");
    refused(&doc, "floating IP f1", "fixed_port", "unknown field");
}

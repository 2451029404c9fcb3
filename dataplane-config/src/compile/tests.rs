//! The compiler's translation rules, and its central property: whatever
//! sequence of changes led to a configuration, the entries it holds are
//! those a compilation of that configuration from nothing gives (with the
//! same stable indexes).

use std::collections::{BTreeMap, BTreeSet};

use common::{
    ADDR_F_FIXED, ADDR_F_LINK_LOCAL, ADDR_F_PAIR, ADDR_F_SHARED, AdvertKey,
    FLOOD_DOMAIN_GROUP_BASE, FdbEntry, FdbKey, GroupMemberKey, LpmKey, NEIGH_F_HOST,
    NEIGH_PREFIX_BITS, NeighV4Key, NeighV6Key, PORT_F_SECURITY, PortKey, ROUTE_CONNECTED,
    ROUTE_NEXTHOP, ROUTE_PREFIX_BITS, Route, RouteV4Key, TARGET_GROUP, TARGET_PORT, TARGET_ROUTER,
};
use serde_json::{Value, json};

use super::{
    Engine,
    entries::{mac_key, v4_key, v6_key},
};
use crate::{Document, Format, store::Store};

pub(super) const BASE: &str = r#"
[[networks]]
id = "net1"
[[subnets]]
id = "sub1"
network_id = "net1"
cidr = "10.0.0.0/24"
ip_version = 4
[[subnets]]
id = "sub6"
network_id = "net1"
cidr = "fd00::/64"
ip_version = 6
"#;

/// Taps get interface indexes from 100 up, in the order they are asked.
pub(super) struct Taps(std::cell::RefCell<BTreeMap<String, u32>>);

impl Taps {
    pub(super) fn new() -> Taps {
        Taps(Default::default())
    }
    pub(super) fn get(&self, tap: &str) -> Option<u32> {
        let mut m = self.0.borrow_mut();
        let n = 100 + m.len() as u32;
        Some(*m.entry(tap.to_string()).or_insert(n))
    }
}

pub(super) fn apply(store: &mut Store, engine: &mut Engine, doc: &Document, taps: &Taps) {
    let changes = store.diff(doc);
    let touched = store.apply(&changes).unwrap_or_else(|e| panic!("{e}"));
    engine.compile(store, &touched, &|t| taps.get(t)).unwrap();
    store.commit();
    engine.commit();
}

fn compiled(ports: &str) -> Engine {
    let doc = Document::parse(&format!("{BASE}{ports}"), Format::Toml).unwrap();
    let (mut store, mut engine) = (Store::default(), Engine::new(1000));
    apply(&mut store, &mut engine, &doc, &Taps::new());
    engine
}

const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];

fn v4(e: &Engine, port: u32, mac: [u8; 6], addr: [u8; 4], plen: u8) -> Option<u32> {
    let d = &e.desired().slotted;
    d.addrs_v4
        .get(&v4_key(port, (mac, addr, plen)))
        .map(|a| a.flags)
}

fn neigh4(e: &Engine, net: u32, addr: [u8; 4]) -> common::Neigh {
    let key = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + 32,
        data: NeighV4Key {
            slot: 0,
            network: net,
            addr,
        },
    };
    *e.desired()
        .slotted
        .neigh_v4
        .get(&key)
        .expect("a neighbour entry")
}

fn fdb(e: &Engine, net: u32, mac: [u8; 6]) -> FdbEntry {
    let key = FdbKey {
        slot: 0,
        network: net,
        mac,
        _pad: [0; 2],
    };
    *e.desired().slotted.fdb.get(&key).expect("an FDB entry")
}

#[test]
fn fixed_ip_and_pairs() {
    let e = compiled(
        r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.1.77/24", mac_address = "00:00:5e:00:01:01" },
  { ip_address = "10.0.0.5" },
]
"#,
    );
    let d = &e.desired().slotted;
    let info = d
        .ports
        .get(&PortKey {
            slot: 0,
            ifindex: 100,
        })
        .unwrap();
    assert_eq!((info.index, info.flags), (1, PORT_F_SECURITY));
    // Fixed IP and the pair naming the same address share one entry.
    assert_eq!(
        v4(&e, 1, MAC, [10, 0, 0, 5], 32),
        Some(ADDR_F_FIXED | ADDR_F_PAIR)
    );
    assert_eq!(v4(&e, 1, MAC, [10, 0, 0, 100], 32), Some(ADDR_F_PAIR));
    // Host bits of a prefix pair are dropped; its MAC is bound to it.
    let vmac = [0, 0, 0x5e, 0, 1, 1];
    assert_eq!(v4(&e, 1, vmac, [10, 0, 1, 0], 24), Some(ADDR_F_PAIR));
    assert_eq!(v4(&e, 1, MAC, [10, 0, 1, 0], 24), None);
    assert_eq!(
        d.port_macs.get(&mac_key(1, MAC)).unwrap().flags,
        ADDR_F_FIXED | ADDR_F_PAIR
    );
    assert_eq!(
        d.port_macs.get(&mac_key(1, vmac)).unwrap().flags,
        ADDR_F_PAIR
    );
    // Link-local addresses of both MACs.
    assert_eq!(d.addrs_v6.len(), 2);
    let ll: std::net::Ipv6Addr = "fe80::f816:3eff:fe00:1".parse().unwrap();
    let key = v6_key(1, (MAC, ll.octets(), 128));
    assert_eq!(d.addrs_v6.get(&key).unwrap().flags, ADDR_F_LINK_LOCAL);
}

#[test]
fn zero_prefix_pair_keeps_its_mac() {
    let e = compiled(
        r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
allowed_address_pairs = [{ ip_address = "0.0.0.0/0", mac_address = "fa:16:3e:00:00:99" }]
"#,
    );
    let other = [0xfa, 0x16, 0x3e, 0, 0, 0x99];
    assert!(v4(&e, 1, other, [0; 4], 0).is_some());
    assert!(v4(&e, 1, MAC, [0; 4], 0).is_none());
}

#[test]
fn port_security_off_clears_the_flag() {
    let e = compiled(
        r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
port_security_enabled = false
"#,
    );
    let d = &e.desired().slotted;
    assert_eq!(
        d.ports
            .get(&PortKey {
                slot: 0,
                ifindex: 100
            })
            .unwrap()
            .flags,
        0
    );
}

const SHARED: &str = r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.0.200", mac_address = "00:00:5e:00:01:07" },
]
[[ports]]
id = "p2"
network_id = "net1"
mac_address = "fa:16:3e:00:00:02"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.6" }]
allowed_address_pairs = [
  { ip_address = "10.0.0.100" },
  { ip_address = "10.0.0.200", mac_address = "00:00:5e:00:01:07" },
]
"#;

#[test]
fn shared_addresses_and_macs_form_groups() {
    let e = compiled(SHARED);
    let d = &e.desired().slotted;
    let mac2 = [0xfa, 0x16, 0x3e, 0, 0, 2];
    let vmac = [0, 0, 0x5e, 0, 1, 7];
    // A unique fixed IP: owned by its port, answerable.
    let n = neigh4(&e, 1, [10, 0, 0, 5]);
    assert_eq!(
        (n.kind, n.target, n.mac, n.flags),
        (TARGET_PORT, 1, MAC, NEIGH_F_HOST)
    );
    // The shared VIP: a group of both ports, each with its own MAC.
    let n = neigh4(&e, 1, [10, 0, 0, 100]);
    assert_eq!(n.kind, TARGET_GROUP);
    let g = n.target;
    let member = |p| {
        d.group_members
            .get(&GroupMemberKey {
                slot: 0,
                group: g,
                port: p,
            })
            .unwrap()
            .mac
    };
    assert_eq!((member(1), member(2)), (MAC, mac2));
    let flood: BTreeSet<u32> = e
        .desired()
        .flood_members(FLOOD_DOMAIN_GROUP_BASE + g)
        .collect();
    assert_eq!(flood, BTreeSet::from([1, 2]));
    assert_ne!(
        v4(&e, 1, MAC, [10, 0, 0, 100], 32).unwrap() & ADDR_F_SHARED,
        0
    );
    assert_ne!(
        v4(&e, 2, mac2, [10, 0, 0, 100], 32).unwrap() & ADDR_F_SHARED,
        0
    );
    assert_eq!(
        v4(&e, 1, MAC, [10, 0, 0, 5], 32).unwrap() & ADDR_F_SHARED,
        0
    );
    // The shared virtual MAC: its own group, and the MAC marked shared.
    let entry = fdb(&e, 1, vmac);
    assert_eq!(entry.kind, TARGET_GROUP);
    assert_ne!(entry.target, g);
    assert_ne!(
        d.port_macs.get(&mac_key(1, vmac)).unwrap().flags & ADDR_F_SHARED,
        0
    );
    assert_eq!(fdb(&e, 1, MAC).kind, TARGET_PORT);
    let names: Vec<String> = e.indexes().groups.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"net1 10.0.0.100/32".to_string()));
    assert!(names.contains(&"net1 00:00:5e:00:01:07".to_string()));
}

#[test]
fn the_fixed_binding_answers_for_an_address_also_paired_with_another_mac() {
    // Neutron accepts a pair equal to the port's own fixed IP; with
    // another MAC it must not change which MAC ARP answers with.
    let e = compiled(
        r#"
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
allowed_address_pairs = [{ ip_address = "10.0.0.5", mac_address = "00:00:5e:00:01:07" }]
"#,
    );
    let n = neigh4(&e, 1, [10, 0, 0, 5]);
    assert_eq!((n.kind, n.target, n.mac), (TARGET_PORT, 1, MAC));
}

#[test]
fn router_interfaces_route_their_subnets_and_own_the_gateways() {
    let e = compiled(
        r#"
[[networks]]
id = "net2"
[[subnets]]
id = "sub2"
network_id = "net2"
cidr = "10.0.2.0/24"
gateway_ip = "10.0.2.1"
[[routers]]
id = "r1"
[[ports]]
id = "ri1"
network_id = "net1"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.1" }, { subnet_id = "sub6", ip_address = "fd00::1" }]
[[ports]]
id = "ri2"
network_id = "net2"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:02"
fixed_ips = [{ subnet_id = "sub2", ip_address = "10.0.2.1" }]
[[ports]]
id = "p1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
"#,
    );
    let d = &e.desired().slotted;
    assert_eq!(d.ports.len(), 1, "router interfaces are not VM ports");
    let (r1_mac1, r1_mac2) = ([0xfa, 0x16, 0x3e, 0, 1, 1], [0xfa, 0x16, 0x3e, 0, 1, 2]);
    let net2 = e.indexes().networks.get("net2").unwrap();
    assert_eq!(
        fdb(&e, 1, r1_mac1),
        FdbEntry {
            kind: TARGET_ROUTER,
            target: 1
        }
    );
    assert_eq!(fdb(&e, net2, r1_mac2).kind, TARGET_ROUTER);
    let gw = neigh4(&e, 1, [10, 0, 0, 1]);
    assert_eq!(
        (gw.kind, gw.mac, gw.flags),
        (TARGET_ROUTER, r1_mac1, NEIGH_F_HOST)
    );
    let key6 = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + 128,
        data: NeighV6Key {
            slot: 0,
            network: 1,
            addr: "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        },
    };
    assert_eq!(d.neigh_v6.get(&key6).unwrap().kind, TARGET_ROUTER);
    let route = |addr, plen| {
        *d.routes_v4
            .get(&LpmKey {
                prefix_len: ROUTE_PREFIX_BITS + plen,
                data: RouteV4Key {
                    slot: 0,
                    router: 1,
                    addr,
                },
            })
            .unwrap()
    };
    assert_eq!(
        route([10, 0, 2, 0], 24),
        Route {
            network: net2,
            mac: r1_mac2,
            mtu: 0,
            kind: ROUTE_CONNECTED,
            prefix_len: 24,
            _pad: [0; 2],
            addr: [10, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        },
        "the router's own address on the subnet sources its ICMP errors there"
    );
    assert_eq!(route([10, 0, 0, 0], 24).mac, r1_mac1);
    assert_eq!(d.routes_v6.len(), 1);
    // The interface on an IPv6 subnet advertises (no mode: no prefix), and
    // its link-local address is the router's; the IPv4-only one neither.
    let ad = d
        .adverts
        .get(&AdvertKey {
            slot: 0,
            network: 1,
        })
        .expect("an advertisement on net1");
    assert_eq!((ad.router, ad.len, ad.mac), (1, 24, r1_mac1));
    assert_eq!(&ad.message[..8], &[134, 0, 0, 0, 64, 0, 1, 44]);
    assert_eq!(d.adverts.len(), 1);
    let ll = crate::neutron::MacAddr(r1_mac1).ipv6_link_local().octets();
    let key_ll = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + 128,
        data: NeighV6Key {
            slot: 0,
            network: 1,
            addr: ll,
        },
    };
    assert_eq!(d.neigh_v6.get(&key_ll).unwrap().kind, TARGET_ROUTER);
}

#[test]
fn security_groups_compile_to_identities_and_nested_cidr_identities() {
    let e = compiled(
        r#"
[[security_groups]]
id = "web"
security_group_rules = [
  { direction = "ingress", protocol = "tcp", port_range_min = 80, port_range_max = 80, remote_group_id = "clients" },
  { direction = "ingress", protocol = "icmp", port_range_min = 8, remote_ip_prefix = "10.0.0.0/8" },
]
[[security_groups]]
id = "clients"
security_group_rules = [{ direction = "egress" }]
[[security_groups]]
id = "narrow"
security_group_rules = [{ direction = "ingress", remote_ip_prefix = "10.1.0.0/16" }]
[[ports]]
id = "w"
network_id = "net1"
mac_address = "fa:16:3e:00:00:01"
security_groups = ["web"]
[[ports]]
id = "c1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:02"
security_groups = ["clients"]
[[ports]]
id = "c2"
network_id = "net1"
mac_address = "fa:16:3e:00:00:03"
security_groups = ["clients", "narrow"]
"#,
    );
    let policy = |id: &str| e.port(id).unwrap().info.policy;
    let (web, c1, c2) = (policy("w"), policy("c1"), policy("c2"));
    assert_ne!(c1, c2);
    let d = &e.desired().slotted;
    let tcp80 = |identity| {
        d.policy.keys().any(|k| {
            let p = k.data;
            (p.policy, p.identity, p.dir, p.proto, p.port, k.prefix_len)
                == (
                    web,
                    identity,
                    common::POLICY_DIR_INGRESS,
                    6,
                    80u16.to_be_bytes(),
                    common::POLICY_PREFIX_BITS + 24,
                )
        })
    };
    // Both identities holding "clients" match the remote-group rule.
    assert!(tcp80(c1) && tcp80(c2));
    assert!(!tcp80(web));
    // 10.0.0.0/8 and 10.1.0.0/16 are rule prefixes; the /8 rule is compiled
    // for both CIDR identities (the /16 lies inside it).
    assert_eq!(d.remote_v4.len(), 2);
    let icmp_ids: BTreeSet<u32> = d
        .policy
        .keys()
        .filter(|k| k.data.policy == web && k.data.proto == 1)
        .map(|k| k.data.identity)
        .collect();
    let cidrs: BTreeSet<u32> = d.remote_v4.values().map(|r| r.identity).collect();
    assert_eq!(icmp_ids, cidrs);
}

// ---------------------------------------------------------------------------
// Incremental == from scratch.

use fastrand::Rng;

/// True one time in `n`.
fn one_in(rng: &mut Rng, n: usize) -> bool {
    rng.usize(..n) == 0
}

fn base_doc() -> Value {
    json!({
        "networks": [
            { "id": "n1" }, { "id": "n2", "port_security_enabled": true },
            { "id": "ext", "router:external": true, "provider:physical_network": "physnet1" },
        ],
        "subnets": [
            { "id": "s1", "network_id": "n1", "cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.1" },
            { "id": "s6", "network_id": "n1", "cidr": "fd01::/64" },
            { "id": "s2", "network_id": "n2", "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.1" },
            { "id": "s-ext", "network_id": "ext", "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1" },
        ],
        "security_groups": [
            { "id": "default", "security_group_rules": [
                { "direction": "egress" },
                { "direction": "ingress", "remote_group_id": "default" },
            ]},
            { "id": "web", "security_group_rules": [
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 90 },
            ]},
            { "id": "db", "security_group_rules": [] },
        ],
        "routers": [{ "id": "r1" }],
        "ports": [],
        "floatingips": [],
    })
}

/// A random change of the document: ports come and go, change MACs,
/// pairs (shared VIPs, shared virtual MACs, prefixes), groups and port
/// security; rules change; router interfaces and static routes come and
/// go; the router's gateway and floating IPs come, go and move.
// One arm per kind of change: a table of mutations, read top to bottom.
fn mutate(rng: &mut Rng, doc: &mut Value, serial: &mut u32) {
    if one_in(rng, 6) {
        return external(rng, doc, serial);
    }
    let ports = doc["ports"].as_array_mut().unwrap();
    let net = |r: &mut Rng| if one_in(r, 4) { "n2" } else { "n1" };
    match rng.usize(..10) {
        0..=2 if ports.len() < 24 => {
            *serial += 1;
            let n = net(rng);
            let (sub, prefix) = if n == "n1" {
                ("s1", "10.1.0")
            } else {
                ("s2", "10.2.0")
            };
            ports.push(json!({
                "id": format!("p{serial}"),
                "network_id": n,
                "mac_address": format!("fa:16:3e:00:{:02x}:{:02x}", *serial / 256, *serial % 256),
                "fixed_ips": [{ "subnet_id": sub, "ip_address": format!("{prefix}.{}", 10 + *serial % 200) }],
                "security_groups": ["default"],
            }));
        }
        3 if !ports.is_empty() => {
            let i = rng.usize(..ports.len());
            ports.remove(i);
        }
        4..=5 if !ports.is_empty() => {
            let i = rng.usize(..ports.len());
            let prefix = if ports[i]["network_id"] == "n1" {
                "10.1.0"
            } else {
                "10.2.0"
            };
            let choices = [
                json!({ "ip_address": format!("{prefix}.200") }),
                json!({ "ip_address": format!("{prefix}.201"), "mac_address": "00:00:5e:00:01:01" }),
                json!({ "ip_address": format!("{prefix}.128/25") }),
                json!({ "ip_address": "10.9.0.0/16" }),
                json!({ "ip_address": "fd01::100" }),
            ];
            let pairs: Vec<Value> = choices.iter().filter(|_| one_in(rng, 2)).cloned().collect();
            ports[i]["allowed_address_pairs"] = json!(pairs);
            if !pairs.is_empty() {
                ports[i]["port_security_enabled"] = json!(true);
            }
        }
        6 if !ports.is_empty() => {
            let i = rng.usize(..ports.len());
            let sets = [
                json!([]),
                json!(["default"]),
                json!(["default", "web"]),
                json!(["web", "db"]),
            ];
            ports[i]["security_groups"] = sets[rng.usize(..sets.len())].clone();
        }
        7 if !ports.is_empty() => {
            let i = rng.usize(..ports.len());
            if one_in(rng, 2) {
                ports[i]["port_security_enabled"] = json!(false);
                ports[i]["allowed_address_pairs"] = json!([]);
                ports[i]["security_groups"] = json!([]);
            } else {
                ports[i]["port_security_enabled"] = json!(true);
            }
        }
        8 => {
            let rules = [
                json!({ "direction": "ingress", "protocol": "udp", "port_range_min": 53 }),
                json!({ "direction": "ingress", "remote_ip_prefix": "10.1.0.0/25" }),
                json!({ "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8" }),
                json!({ "direction": "egress", "remote_group_id": "web" }),
                json!({ "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp" }),
            ];
            let g = 1 + rng.usize(..2);
            let chosen: Vec<Value> = rules.iter().filter(|_| one_in(rng, 2)).cloned().collect();
            doc["security_groups"][g]["security_group_rules"] = json!(chosen);
        }
        9 if one_in(rng, 2) => {
            // Static routes through the interface on s2 (refused while it
            // is gone): via a pair's address, via nobody's, one to the
            // connected subnet itself.
            let sets = [
                json!([]),
                json!([{ "destination": "10.9.0.0/16", "nexthop": "10.2.0.200" }]),
                json!([
                    { "destination": "0.0.0.0/0", "nexthop": "10.2.0.77" },
                    { "destination": "10.2.0.0/24", "nexthop": "10.2.0.77" },
                    { "destination": "10.1.0.0/24", "nexthop": "10.2.0.201" },
                ]),
            ];
            doc["routers"][0]["routes"] = sets[rng.usize(..sets.len())].clone();
        }
        _ => {
            *serial += 1;
            let ports = doc["ports"].as_array_mut().unwrap();
            let has = ports
                .iter()
                .position(|p| p["device_owner"] == "network:router_interface");
            match has {
                Some(i) => {
                    ports.remove(i);
                }
                None => ports.push(json!({
                    "id": format!("ri{serial}"),
                    "network_id": "n2",
                    "device_owner": "network:router_interface",
                    "device_id": "r1",
                    "mac_address": "fa:16:3e:ff:00:02",
                    "fixed_ips": [{ "subnet_id": "s2", "ip_address": "10.2.0.1" }],
                })),
            }
        }
    }
}

/// The external side: r1's gateway (its port, SNAT, its address, static
/// routes through it) and floating IPs on ports of n2 (behind r1 while it
/// has its interface there), associated, moved, disassociated, deleted.
fn external(rng: &mut Rng, doc: &mut Value, serial: &mut u32) {
    *serial += 1;
    let ports = doc["ports"].as_array_mut().unwrap();
    let gateway = ports
        .iter()
        .position(|p| p["device_owner"] == "network:router_gateway");
    let on_n2: Vec<Value> = ports
        .iter()
        .filter(|p| p["network_id"] == "n2" && p["device_owner"].is_null())
        .map(|p| p["id"].clone())
        .collect();
    match rng.usize(..5) {
        0 => {
            if let Some(i) = gateway {
                ports.remove(i);
            }
            doc["routers"][0]["external_gateway_info"] = Value::Null;
        }
        1 => {
            let ip = format!("203.0.113.{}", 10 + rng.usize(..2));
            if let Some(i) = gateway {
                ports.remove(i);
            }
            ports.push(json!({
                "id": "gw", "network_id": "ext", "device_owner": "network:router_gateway",
                "device_id": "r1", "mac_address": format!("fa:16:3e:ee:00:{:02x}", rng.u8(..4)),
                "fixed_ips": [{ "subnet_id": "s-ext", "ip_address": ip }],
            }));
            doc["routers"][0]["external_gateway_info"] = json!({
                "network_id": "ext", "enable_snat": one_in(rng, 2),
                "external_fixed_ips": [{ "subnet_id": "s-ext", "ip_address": ip }],
            });
        }
        2 => {
            let sets = [
                json!([]),
                json!([{ "destination": "198.51.100.0/24", "nexthop": "203.0.113.254" }]),
                json!([{ "destination": "0.0.0.0/0", "nexthop": "203.0.113.254" }]),
            ];
            doc["routers"][0]["routes"] = sets[rng.usize(..sets.len())].clone();
        }
        3 => {
            let fips = doc["floatingips"].as_array_mut().unwrap();
            if !fips.is_empty() && one_in(rng, 2) {
                fips.remove(rng.usize(..fips.len()));
            } else if fips.len() < 6 {
                let port = on_n2.get(rng.usize(..on_n2.len().max(1))).cloned();
                fips.push(json!({
                    "id": format!("f{serial}"), "floating_network_id": "ext",
                    "floating_ip_address": format!("203.0.113.{}", 100 + *serial % 100),
                    "port_id": port.unwrap_or(Value::Null),
                }));
            }
        }
        _ => {
            let fips = doc["floatingips"].as_array_mut().unwrap();
            if !fips.is_empty() {
                let i = rng.usize(..fips.len());
                let port = on_n2.get(rng.usize(..on_n2.len().max(1))).cloned();
                fips[i]["port_id"] = port.unwrap_or(Value::Null);
            }
        }
    }
}

/// A compilation from nothing, with `e`'s indexes.
pub(super) fn from_scratch(e: &Engine, store: &Store, taps: &Taps) -> Engine {
    let mut fresh = Engine::new(1000);
    for (kind, from, to) in [
        ("chassis", &e.ix.chassis, &mut fresh.ix.chassis),
        ("ports", &e.ix.ports, &mut fresh.ix.ports),
        ("networks", &e.ix.networks, &mut fresh.ix.networks),
        ("routers", &e.ix.routers, &mut fresh.ix.routers),
        ("sgs", &e.ix.security_groups, &mut fresh.ix.security_groups),
        ("groups", &e.ix.groups, &mut fresh.ix.groups),
        ("policies", &e.ix.policies, &mut fresh.ix.policies),
        ("cidrs", &e.ix.cidrs, &mut fresh.ix.cidrs),
    ] {
        let _ = kind;
        for (id, i) in from.iter() {
            to.adopt(id, i);
        }
    }
    fresh
        .set_locality(store, e.locality().clone(), &|t| taps.get(t))
        .unwrap();
    fresh
        .compile(store, &crate::store::Touched::all(store), &|t| taps.get(t))
        .unwrap();
    fresh.commit();
    fresh
}

/// Applies 400 random changes (`mutate`, and `hosts` on a multi-host
/// configuration) and checks every ten that the result is a compilation
/// from nothing.
fn property(seed: u64, multi_host: bool) {
    let mut rng = Rng::with_seed(seed);
    let (mut store, mut engine, taps) = (Store::default(), Engine::new(1000), Taps::new());
    let mut doc = base_doc();
    let mut here = super::Locality {
        uplinks: [("physnet1".to_string(), 7)].into(),
        ..super::Locality::default()
    };
    if multi_host {
        to_multi_host(&mut doc);
        here.chassis = Some("h1".into());
        here.tunnel_ifindex = Some(999);
    }
    engine.set_locality(&store, here, &|t| taps.get(t)).unwrap();
    engine.commit();
    let mut serial = 0;
    let mut accepted = 0;
    // Floating IPs compiled at some step (the external side is exercised).
    let mut floating_seen = 0;
    for step in 0..400 {
        let before = doc.clone();
        if multi_host && one_in(&mut rng, 3) {
            hosts(&mut rng, &mut doc);
        } else {
            mutate(&mut rng, &mut doc, &mut serial);
        }
        let parsed = Document::from_value(doc.clone()).unwrap();
        let changes = store.diff(&parsed);
        let dump_before = engine.desired().dump();
        match store.apply(&changes) {
            Ok(touched) => {
                engine.compile(&store, &touched, &|t| taps.get(t)).unwrap();
                store.commit();
                engine.commit();
                accepted += 1;
                floating_seen += engine.desired().slotted.floating.len();
            }
            Err(_) => {
                // Refused (a duplicate address, say): nothing changed.
                assert_eq!(engine.desired().dump(), dump_before);
                doc = before;
                let again = Document::from_value(doc.clone()).unwrap();
                let left = store.diff(&again);
                assert!(left.is_empty(), "seed {seed} step {step}: {left:?}");
                continue;
            }
        }
        if step % 10 == 0 || step == 399 {
            let fresh = from_scratch(&engine, &store, &taps);
            let (a, b) = (engine.desired().dump(), fresh.desired().dump());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "seed {seed} step {step}");
            }
        }
    }
    assert!(
        accepted > 200,
        "seed {seed}: only {accepted} changes accepted"
    );
    assert!(floating_seen > 0, "seed {seed}: no floating IP compiled");
}

#[test]
fn incremental_changes_compile_to_what_a_compilation_from_nothing_gives() {
    for seed in [1u64, 7, 42, 2024] {
        property(seed, false);
    }
}

#[test]
fn on_many_hosts_too() {
    for seed in [3u64, 11, 99] {
        property(seed, true);
    }
}

/// Networks with VNIs (but the external one), three chassis, ports bound
/// to them.
fn to_multi_host(doc: &mut Value) {
    for (i, n) in doc["networks"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        // The external network stays flat: it is reached by an uplink.
        if n["router:external"] == true {
            continue;
        }
        n["provider:network_type"] = json!("vxlan");
        n["provider:segmentation_id"] = json!(100 + i);
    }
    doc["chassis"] = json!([
        { "id": "h1", "underlay_ip": "192.168.0.1" },
        { "id": "h2", "underlay_ip": "192.168.0.2" },
        { "id": "h3", "underlay_ip": "192.168.0.3" },
    ]);
    doc["active"] = json!([]);
}

/// A random change of where things are: a chassis goes or comes back, a
/// port moves to another host (or to none), an active member is named.
fn hosts(rng: &mut Rng, doc: &mut Value) {
    match rng.usize(..3) {
        0 => {
            let name = ["h2", "h3"][rng.usize(..2)];
            let chassis = doc["chassis"].as_array_mut().unwrap();
            match chassis.iter().position(|c| c["id"] == name) {
                Some(i) => {
                    chassis.remove(i);
                }
                None => chassis.push(json!({
                    "id": name,
                    "underlay_ip": format!("192.168.0.{}", &name[1..]),
                })),
            }
        }
        1 => {
            let ports = doc["ports"].as_array_mut().unwrap();
            if let Some(p) = ports
                .iter_mut()
                .filter(|p| p["device_owner"].is_null())
                .nth(rng.usize(..4))
            {
                p["binding:host_id"] =
                    [json!("h1"), json!("h2"), json!("h3"), Value::Null][rng.usize(..4)].clone();
            }
        }
        _ => {
            let ports: Vec<String> = doc["ports"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["network_id"] == "n1")
                .map(|p| p["id"].as_str().unwrap().to_string())
                .collect();
            let active = doc["active"].as_array_mut().unwrap();
            active.clear();
            if !ports.is_empty() && !one_in(rng, 4) {
                let port = &ports[rng.usize(..ports.len())];
                active.push(json!({ "id": "n1/10.1.0.200/32", "port": port, "chassis": "h2" }));
            }
        }
    }
}

#[test]
fn a_change_rolled_back_leaves_nothing_behind() {
    let doc = Document::parse(&format!("{BASE}{SHARED}"), Format::Toml).unwrap();
    let (mut store, mut engine, taps) = (Store::default(), Engine::new(1000), Taps::new());
    apply(&mut store, &mut engine, &doc, &taps);
    let before = engine.desired().dump();
    let mut v = toml::from_str::<Value>(&format!("{BASE}{SHARED}")).unwrap();
    v["ports"][1]["allowed_address_pairs"] = json!([]);
    v["ports"].as_array_mut().unwrap().remove(0);
    let changes = store.diff(&Document::from_value(v).unwrap());
    let touched = store.apply(&changes).unwrap();
    engine.compile(&store, &touched, &|t| taps.get(t)).unwrap();
    assert_ne!(engine.desired().dump(), before);
    engine.rollback();
    store.rollback();
    assert_eq!(engine.desired().dump(), before);
    assert!(store.diff(&doc).is_empty());
}

#[test]
fn static_routes_go_through_the_nexthop_s_interface() {
    let e = compiled(
        r#"
[[networks]]
id = "net2"
mtu = 1400
[[subnets]]
id = "sub2"
network_id = "net2"
cidr = "10.0.2.0/24"
gateway_ip = "10.0.2.1"
[[routers]]
id = "r1"
routes = [
  { destination = "10.9.0.0/16", nexthop = "10.0.2.100" },
  { destination = "0.0.0.0/0", nexthop = "10.0.0.7" },
  { destination = "10.0.2.0/24", nexthop = "10.0.0.7" },
]
[[ports]]
id = "ri1"
network_id = "net1"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.1" }]
[[ports]]
id = "ri2"
network_id = "net2"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:02"
fixed_ips = [{ subnet_id = "sub2", ip_address = "10.0.2.1" }]
"#,
    );
    let d = &e.desired().slotted;
    let net2 = e.indexes().networks.get("net2").unwrap();
    let route = |addr, plen| {
        d.routes_v4
            .get(&LpmKey {
                prefix_len: ROUTE_PREFIX_BITS + plen,
                data: RouteV4Key {
                    slot: 0,
                    router: 1,
                    addr,
                },
            })
            .copied()
    };
    let r = route([10, 9, 0, 0], 16).expect("the static route");
    assert_eq!(
        (r.kind, r.network, r.mac, r.mtu, r.prefix_len),
        (ROUTE_NEXTHOP, net2, [0xfa, 0x16, 0x3e, 0, 1, 2], 1400, 16)
    );
    assert_eq!(&r.addr[..4], &[10, 0, 2, 100], "the nexthop");
    let default = route([0, 0, 0, 0], 0).expect("a default route");
    assert_eq!(
        (default.network, &default.addr[..4]),
        (1, &[10, 0, 0, 7][..])
    );
    // A route to a connected subnet leaves the subnet connected.
    assert_eq!(route([10, 0, 2, 0], 24).unwrap().kind, ROUTE_CONNECTED);
    assert_eq!(d.routes_v4.len(), 4);
}

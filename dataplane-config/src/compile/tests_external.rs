//! The external network's entries (`compile::external`): every entry a
//! gateway, a floating IP and an uplink compile to, and what a change
//! rewrites, each step checked against a compilation from nothing.

use common::{
    EXT_FLOATING, EXT_GATEWAY, ExtAddr, ExtAddrKey, FdbKey, Floating, FloatingKey, GATEWAY_F_SNAT,
    Gateway, GatewayKey, LpmKey, NEIGH_PREFIX_BITS, NeighV4Key, ROUTE_CONNECTED, ROUTE_EXTERNAL,
    ROUTE_NEXTHOP, ROUTE_PREFIX_BITS, Route, RouteV4Key, Uplink, UplinkKey,
};
use serde_json::{Value, json};

use super::{
    Engine, Locality,
    tests::{BASE, Taps, apply, from_scratch},
};
use crate::{Document, store::Store};

const EXTERNAL: &str = r#"
[[networks]]
id = "ext"
"router:external" = true
"provider:physical_network" = "physnet1"
mtu = 1500
[[subnets]]
id = "ext-v4"
network_id = "ext"
cidr = "203.0.113.0/24"
gateway_ip = "203.0.113.1"
[[routers]]
id = "r1"
routes = [{ destination = "198.51.100.0/24", nexthop = "203.0.113.254" }]
[routers.external_gateway_info]
network_id = "ext"
enable_snat = true
external_fixed_ips = [{ subnet_id = "ext-v4", ip_address = "203.0.113.10" }]
[[ports]]
id = "ri1"
network_id = "net1"
device_owner = "network:router_interface"
device_id = "r1"
mac_address = "fa:16:3e:00:01:01"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.1" }]
[[ports]]
id = "gw1"
network_id = "ext"
device_owner = "network:router_gateway"
device_id = "r1"
mac_address = "fa:16:3e:00:02:00"
fixed_ips = [{ subnet_id = "ext-v4", ip_address = "203.0.113.10" }]
[[ports]]
id = "vm1"
network_id = "net1"
mac_address = "fa:16:3e:00:00:05"
fixed_ips = [{ subnet_id = "sub1", ip_address = "10.0.0.5" }]
[[floatingips]]
id = "f1"
floating_ip_address = "203.0.113.20"
floating_network_id = "ext"
port_id = "vm1"
"#;

const GW_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 2, 0];
const UPLINK: u32 = 7;

/// The configuration as JSON, to edit.
fn doc() -> Value {
    toml::from_str(&format!("{BASE}{EXTERNAL}")).unwrap()
}

struct Host {
    store: Store,
    engine: Engine,
    taps: Taps,
}

impl Host {
    /// `doc` compiled on a host whose uplink for physnet1 is `UPLINK`.
    fn new(doc: &Value) -> Host {
        let (store, mut engine, taps) = (Store::default(), Engine::new(1000), Taps::new());
        let here = Locality {
            uplinks: [("physnet1".to_string(), UPLINK)].into(),
            ..Locality::default()
        };
        engine.set_locality(&store, here, &|t| taps.get(t)).unwrap();
        engine.commit();
        let mut host = Host {
            store,
            engine,
            taps,
        };
        host.apply(doc);
        host
    }

    /// Applies `doc` as a change, and checks the result is what a
    /// compilation from nothing gives.
    fn apply(&mut self, doc: &Value) {
        let d = Document::from_value(doc.clone()).unwrap();
        apply(&mut self.store, &mut self.engine, &d, &self.taps);
        self.same_as_from_scratch();
    }

    fn same_as_from_scratch(&self) {
        let fresh = from_scratch(&self.engine, &self.store, &self.taps);
        assert_eq!(self.engine.desired().dump(), fresh.desired().dump());
    }

    fn ix(&self, kind: &str, id: &str) -> u32 {
        let ix = self.engine.indexes();
        match kind {
            "network" => ix.networks.get(id),
            _ => ix.routers.get(id),
        }
        .unwrap()
    }

    fn route(&self, addr: [u8; 4], plen: u32) -> Option<Route> {
        let key = LpmKey {
            prefix_len: ROUTE_PREFIX_BITS + plen,
            data: RouteV4Key {
                slot: 0,
                router: self.ix("router", "r1"),
                addr,
            },
        };
        self.engine.desired().slotted.routes_v4.get(&key).copied()
    }

    fn gateway(&self) -> Option<Gateway> {
        let key = GatewayKey {
            slot: 0,
            router: self.ix("router", "r1"),
        };
        self.engine.desired().slotted.gateways.get(&key).copied()
    }

    fn ext_addr(&self, addr: [u8; 4]) -> Option<ExtAddr> {
        let key = ExtAddrKey {
            slot: 0,
            network: self.ix("network", "ext"),
            addr,
        };
        self.engine.desired().slotted.ext_addrs.get(&key).copied()
    }

    fn floating(&self, fixed: [u8; 4]) -> Option<Floating> {
        let key = FloatingKey {
            slot: 0,
            router: self.ix("router", "r1"),
            fixed,
        };
        self.engine.desired().slotted.floating.get(&key).copied()
    }
}

#[test]
fn a_gateway_and_a_floating_ip_compile_to_their_entries() {
    let h = Host::new(&doc());
    let (ext, r1) = (h.ix("network", "ext"), h.ix("router", "r1"));
    let external = |prefix_len, addr: [u8; 4]| {
        let mut a = [0; 16];
        a[..4].copy_from_slice(&addr);
        Route {
            network: ext,
            mac: GW_MAC,
            mtu: 1500,
            kind: ROUTE_EXTERNAL,
            prefix_len,
            _pad: [0; 2],
            addr: a,
        }
    };
    // The external subnet on link, the default route through its
    // gateway_ip, a static route through a nexthop on it.
    assert_eq!(h.route([203, 0, 113, 0], 24), Some(external(24, [0; 4])));
    assert_eq!(h.route([0; 4], 0), Some(external(0, [203, 0, 113, 1])));
    assert_eq!(
        h.route([198, 51, 100, 0], 24),
        Some(external(24, [203, 0, 113, 254]))
    );
    assert_eq!(h.route([10, 0, 0, 0], 24).unwrap().kind, ROUTE_CONNECTED);
    assert_eq!(h.engine.desired().slotted.routes_v4.len(), 4);
    assert_eq!(
        h.gateway(),
        Some(Gateway {
            network: ext,
            ifindex: UPLINK,
            addr: [203, 0, 113, 10],
            mac: GW_MAC,
            flags: GATEWAY_F_SNAT,
        })
    );
    let gateway_addr = ExtAddr {
        kind: EXT_GATEWAY,
        router: r1,
        fixed: [0; 4],
        mac: GW_MAC,
        _pad: [0; 2],
    };
    assert_eq!(h.ext_addr([203, 0, 113, 10]), Some(gateway_addr));
    assert_eq!(
        h.ext_addr([203, 0, 113, 20]),
        Some(ExtAddr {
            kind: EXT_FLOATING,
            fixed: [10, 0, 0, 5],
            ..gateway_addr
        })
    );
    assert_eq!(
        h.floating([10, 0, 0, 5]),
        Some(Floating {
            addr: [203, 0, 113, 20]
        })
    );
    let uplinks = &h.engine.desired().slotted.uplinks;
    assert_eq!(
        uplinks.map().iter().collect::<Vec<_>>(),
        [(
            &UplinkKey {
                slot: 0,
                ifindex: UPLINK
            },
            &Uplink { network: ext }
        )]
    );
    // The gateway port is not an interface: no neighbour or FDB entry of
    // the router on the external network (EXT_ADDRS answers for it).
    let d = &h.engine.desired().slotted;
    let neigh = LpmKey {
        prefix_len: NEIGH_PREFIX_BITS + 32,
        data: NeighV4Key {
            slot: 0,
            network: ext,
            addr: [203, 0, 113, 10],
        },
    };
    assert!(d.neigh_v4.get(&neigh).is_none());
    let fdb = FdbKey {
        slot: 0,
        network: ext,
        mac: GW_MAC,
        _pad: [0; 2],
    };
    assert!(d.fdb.get(&fdb).is_none());
    assert!(h.engine.port("gw1").is_none(), "not compiled as a VM port");
}

fn port(doc: &mut Value, id: &str) -> usize {
    doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["id"] == id)
        .unwrap()
}

#[test]
fn changes_rewrite_what_they_touch() {
    let mut doc = doc();
    let mut h = Host::new(&doc);
    // The gateway port's MAC: the gateway's and the floating IP's.
    let gw = port(&mut doc, "gw1");
    doc["ports"][gw]["mac_address"] = json!("fa:16:3e:00:02:09");
    h.apply(&doc);
    let mac = [0xfa, 0x16, 0x3e, 0, 2, 9];
    assert_eq!(h.gateway().unwrap().mac, mac);
    assert_eq!(h.ext_addr([203, 0, 113, 20]).unwrap().mac, mac);
    assert_eq!(h.route([0; 4], 0).unwrap().mac, mac);
    // SNAT off.
    doc["routers"][0]["external_gateway_info"]["enable_snat"] = json!(false);
    h.apply(&doc);
    assert_eq!(h.gateway().unwrap().flags, 0);
    // A static default route replaces the gateway's.
    doc["routers"][0]["routes"] = json!([{ "destination": "0.0.0.0/0", "nexthop": "10.0.0.7" }]);
    h.apply(&doc);
    let default = h.route([0; 4], 0).unwrap();
    assert_eq!(
        (default.kind, &default.addr[..4]),
        (ROUTE_NEXTHOP, &[10, 0, 0, 7][..])
    );
    // The floating IP moves to another fixed IP, then is disassociated.
    doc["ports"].as_array_mut().unwrap().push(json!({
        "id": "vm2", "network_id": "net1", "mac_address": "fa:16:3e:00:00:06",
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.0.0.6" }] }));
    doc["floatingips"][0]["port_id"] = json!("vm2");
    h.apply(&doc);
    assert_eq!(h.floating([10, 0, 0, 5]), None);
    assert!(h.floating([10, 0, 0, 6]).is_some());
    assert_eq!(h.ext_addr([203, 0, 113, 20]).unwrap().fixed, [10, 0, 0, 6]);
    doc["floatingips"][0]["port_id"] = Value::Null;
    h.apply(&doc);
    assert!(h.engine.desired().slotted.floating.is_empty());
    assert_eq!(h.ext_addr([203, 0, 113, 20]), None);
    assert!(h.ext_addr([203, 0, 113, 10]).is_some(), "the gateway stays");
    // The external network on another physical network: no uplink here.
    doc["networks"][1]["provider:physical_network"] = json!("physnet2");
    h.apply(&doc);
    assert_eq!(h.gateway().unwrap().ifindex, 0, "dropped no_uplink");
    assert!(h.engine.desired().slotted.uplinks.is_empty());
    doc["networks"][1]["provider:physical_network"] = json!("physnet1");
    h.apply(&doc);
    assert_eq!(h.gateway().unwrap().ifindex, UPLINK);
    // The gateway goes (with its port and the floating IP).
    doc["routers"][0]["external_gateway_info"] = Value::Null;
    doc["routers"][0]["routes"] = json!([]);
    doc["ports"].as_array_mut().unwrap().remove(gw);
    doc["floatingips"] = json!([]);
    h.apply(&doc);
    let d = &h.engine.desired().slotted;
    assert!(d.gateways.is_empty() && d.ext_addrs.is_empty() && d.floating.is_empty());
    assert_eq!(d.routes_v4.len(), 1, "the connected subnet only");
}

#[test]
fn a_new_uplink_rewrites_the_gateways() {
    let mut h = Host::new(&doc());
    let here = Locality {
        uplinks: [("physnet1".to_string(), 9)].into(),
        ..Locality::default()
    };
    h.engine
        .set_locality(&h.store, here, &|t| h.taps.get(t))
        .unwrap();
    h.engine.commit();
    assert_eq!(h.gateway().unwrap().ifindex, 9);
    let uplinks = &h.engine.desired().slotted.uplinks;
    assert_eq!(uplinks.len(), 1);
    assert!(
        uplinks
            .get(&UplinkKey {
                slot: 0,
                ifindex: 9
            })
            .is_some()
    );
    h.same_as_from_scratch();
    h.engine
        .set_locality(&h.store, Locality::default(), &|t| h.taps.get(t))
        .unwrap();
    assert_eq!(h.gateway().unwrap().ifindex, 0);
    assert!(h.engine.desired().slotted.uplinks.is_empty());
}

#[test]
fn several_gateway_addresses_and_an_ipv6_one() {
    // A second IPv4 subnet on the external network, and an IPv6 one.
    let mut doc = doc();
    let subnets = doc["subnets"].as_array_mut().unwrap();
    subnets.push(
        json!({ "id": "ext-b", "network_id": "ext", "cidr": "198.51.100.0/24",
        "gateway_ip": "198.51.100.1" }),
    );
    subnets.push(json!({ "id": "ext-v6", "network_id": "ext", "cidr": "2001:db8::/64" }));
    doc["routers"][0]["routes"] = json!([]);
    let ips = json!([
        { "subnet_id": "ext-v6", "ip_address": "2001:db8::10" },
        { "subnet_id": "ext-v4", "ip_address": "203.0.113.10" },
        { "subnet_id": "ext-b", "ip_address": "198.51.100.10" },
    ]);
    doc["routers"][0]["external_gateway_info"]["external_fixed_ips"] = ips.clone();
    let gw = port(&mut doc, "gw1");
    doc["ports"][gw]["fixed_ips"] = ips;
    let h = Host::new(&doc);
    // The first IPv4 address is the gateway's (SNAT's); both are answered
    // for and their subnets on link; the default route is the first's.
    assert_eq!(h.gateway().unwrap().addr, [203, 0, 113, 10]);
    assert_eq!(h.ext_addr([198, 51, 100, 10]).unwrap().kind, EXT_GATEWAY);
    assert_eq!(h.route([198, 51, 100, 0], 24).unwrap().kind, ROUTE_EXTERNAL);
    assert_eq!(&h.route([0; 4], 0).unwrap().addr[..4], &[203, 0, 113, 1]);
    // The IPv6 address compiles to nothing.
    let d = &h.engine.desired().slotted;
    assert_eq!(
        d.ext_addrs.len(),
        3,
        "two gateway addresses, one floating IP"
    );
    assert!(d.routes_v6.is_empty());
    assert_eq!(
        d.routes_v4.len(),
        4,
        "the connected subnet, two on link, the default"
    );
}

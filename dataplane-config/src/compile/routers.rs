//! A router's entries: its interfaces' MACs and addresses (link-local ones
//! included) in the L2 and L3 tables (they override the ports': the
//! gateway is the router's), its connected subnets and static routes, and
//! what it advertises on networks where it has IPv6 subnets.

use std::net::IpAddr;

use common::{
    ADVERT_MAX, Advert, AdvertKey, ExtAddrKey, FdbEntry, GatewayKey, LpmKey, NEIGH_F_HOST, Neigh,
    ROUTE_CONNECTED, ROUTE_EXTERNAL, ROUTE_NEXTHOP, ROUTE_PREFIX_BITS, Route, RouteV4Key,
    RouteV6Key, TARGET_ROUTER,
};
use ipnet::IpNet;

use super::{Engine, external, neighbours::NetAddr};
use crate::{adverts, neutron::MacAddr, objects::StaticRoute, store::Store};

/// What a router compiled to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterRecord {
    macs: Vec<(u32, [u8; 6])>,
    v4: Vec<NetAddr<4>>,
    v6: Vec<NetAddr<16>>,
    pub(super) routes_v4: Vec<LpmKey<RouteV4Key>>,
    routes_v6: Vec<LpmKey<RouteV6Key>>,
    adverts: Vec<AdvertKey>,
    pub(super) gateways: Vec<GatewayKey>,
    pub(super) ext_addrs: Vec<ExtAddrKey>,
}

/// Compiles router `id` again from its interface ports.
pub fn recompile(e: &mut Engine, store: &Store, id: &String) {
    if let Some(old) = e.routers.remove(id) {
        take_back(e, old);
    }
    let Some(r) =
        e.ix.routers
            .get(id)
            .filter(|_| store.routers().contains_key(id))
    else {
        return;
    };
    let mut record = RouterRecord::default();
    let mut connected: Vec<(IpNet, Interface)> = Vec::new();
    for port_id in store.interfaces_of_router(id) {
        // The gateway port is compiled with the gateway, below.
        let Some(port) = store.port(port_id).filter(|p| !p.spec.router_gateway) else {
            continue;
        };
        let Some(net) = e.ix.networks.get(&port.spec.network_id) else {
            continue;
        };
        let mac = port.spec.mac.octets();
        let mtu = store
            .networks()
            .get(&port.spec.network_id)
            .map_or(0, |n| n.mtu);
        let fdb = FdbEntry {
            kind: TARGET_ROUTER,
            target: r,
        };
        e.owners.set_router_mac((net, mac), Some(fdb));
        record.macs.push((net, mac));
        let iface = Interface {
            r,
            net,
            mac,
            mtu,
            external: false,
        };
        for f in &port.fixed_ips {
            if let Some(cidr) = store.subnets().get(&f.subnet_id).map(|s| s.cidr) {
                interface_address(e, &mut record, &iface, f.ip, cidr);
                connected.push((cidr.trunc(), iface));
            }
        }
        link_local(e, &mut record, &iface, port.spec.mac);
        advert(e, store, &mut record, &iface, port);
    }
    let gateway = external::gateway(e, store, &mut record, id, r);
    connected.extend(gateway.on_link.iter().copied());
    if let Some(router) = store.routers().get(id) {
        for route in &router.routes {
            static_route(e, &mut record, &connected, route);
        }
    }
    // After the static routes: one to 0.0.0.0/0 replaces the gateway's
    // default route, as it does in the L3 agent's namespace.
    if let Some((hop, iface)) = gateway.default {
        let route = StaticRoute {
            destination: IpNet::V4(ipnet::Ipv4Net::default()),
            nexthop: IpAddr::V4(hop),
        };
        add_route(e, &mut record, &iface, &route);
    }
    e.routers.insert(id.clone(), record);
}

/// A static route: to the interface whose subnet holds the nexthop
/// (validation makes sure there is one). The datapath resolves the
/// nexthop in that network's neighbour table per packet, so a nexthop
/// that is a shared address (a VRRP VIP) follows its active member. A
/// route to exactly a connected subnet is left out: the subnet stays
/// reached directly (Neutron's L3 agent would replace the kernel's
/// connected route with it).
fn static_route(
    e: &mut Engine,
    record: &mut RouterRecord,
    connected: &[(IpNet, Interface)],
    route: &StaticRoute,
) {
    let dest = route.destination.trunc();
    if connected.iter().any(|(c, _)| *c == dest) {
        return;
    }
    let Some((_, iface)) = connected.iter().find(|(c, _)| c.contains(&route.nexthop)) else {
        return;
    };
    add_route(e, record, iface, route);
}

/// A route through `iface` to `route.nexthop` (the first route to a
/// destination wins).
fn add_route(e: &mut Engine, record: &mut RouterRecord, iface: &Interface, route: &StaticRoute) {
    let dest = route.destination.trunc();
    let value = Route {
        network: iface.net,
        mac: iface.mac,
        mtu: route_mtu(iface.mtu),
        // Through the gateway's subnet, a route leaves by the uplink.
        kind: if iface.external {
            ROUTE_EXTERNAL
        } else {
            ROUTE_NEXTHOP
        },
        prefix_len: dest.prefix_len(),
        _pad: [0; 2],
        addr: route_addr(route.nexthop),
    };
    let prefix_len = ROUTE_PREFIX_BITS + u32::from(dest.prefix_len());
    match dest {
        IpNet::V4(d) => {
            let data = RouteV4Key {
                slot: 0,
                router: iface.r,
                addr: d.network().octets(),
            };
            let k = LpmKey { prefix_len, data };
            // The first route to a destination wins (validation refuses a
            // second, as long as ECMP is not done).
            if !record.routes_v4.contains(&k) {
                e.desired.slotted.routes_v4.insert(k, value);
                record.routes_v4.push(k);
            }
        }
        IpNet::V6(d) => {
            let data = RouteV6Key {
                slot: 0,
                router: iface.r,
                addr: d.network().octets(),
            };
            let k = LpmKey { prefix_len, data };
            if !record.routes_v6.contains(&k) {
                e.desired.slotted.routes_v6.insert(k, value);
                record.routes_v6.push(k);
            }
        }
    }
}

/// The interface's link-local address, the router's like the others: the
/// source of its advertisements, and the default route hosts learn.
fn link_local(e: &mut Engine, record: &mut RouterRecord, iface: &Interface, mac: MacAddr) {
    let neigh = Neigh {
        kind: TARGET_ROUTER,
        target: iface.r,
        mac: iface.mac,
        flags: NEIGH_F_HOST,
    };
    let key = (iface.net, mac.ipv6_link_local().octets(), 128);
    e.owners.v6.set_router(key, Some(neigh));
    record.v6.push(key);
}

/// What the interface advertises, if it is on an IPv6 subnet (see
/// `crate::adverts`; validation keeps it within `ADVERT_MAX`).
fn advert(
    e: &mut Engine,
    store: &Store,
    record: &mut RouterRecord,
    iface: &Interface,
    port: &crate::objects::Port,
) {
    let subnets: Vec<&crate::objects::Subnet> = port
        .fixed_ips
        .iter()
        .filter_map(|f| store.subnets().get(&f.subnet_id))
        .filter(|s| s.cidr.addr().is_ipv6())
        .collect();
    if subnets.is_empty() {
        return;
    }
    let message = adverts::message(port.spec.mac, iface.mtu, &subnets);
    let mut value = Advert {
        router: iface.r,
        len: message.len().min(ADVERT_MAX) as u16,
        mac: iface.mac,
        ..Advert::default()
    };
    let n = usize::from(value.len);
    value.message[..n].copy_from_slice(&message[..n]);
    let key = AdvertKey {
        slot: 0,
        network: iface.net,
    };
    e.desired.slotted.adverts.insert(key, value);
    record.adverts.push(key);
}

fn take_back(e: &mut Engine, old: RouterRecord) {
    for key in old.macs {
        e.owners.set_router_mac(key, None);
    }
    for key in old.v4 {
        e.owners.v4.set_router(key, None);
    }
    for key in old.v6 {
        e.owners.v6.set_router(key, None);
    }
    for key in old.routes_v4 {
        e.desired.slotted.routes_v4.remove(&key);
    }
    for key in old.routes_v6 {
        e.desired.slotted.routes_v6.remove(&key);
    }
    for key in old.adverts {
        e.desired.slotted.adverts.remove(&key);
    }
    for key in old.gateways {
        e.desired.slotted.gateways.remove(&key);
    }
    for key in old.ext_addrs {
        e.desired.slotted.ext_addrs.remove(&key);
    }
}

/// A router interface port (or its gateway port), as its routes need it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Interface {
    /// The router's index.
    pub r: u32,
    /// The network's index.
    pub net: u32,
    pub mac: [u8; 6],
    /// The network's MTU (0: unknown).
    pub mtu: u32,
    /// The gateway port on an external network: routes through it are
    /// `ROUTE_EXTERNAL`.
    pub external: bool,
}

/// A network's MTU as routes carry it: 0 (not enforced) when unknown or
/// larger than any packet.
pub(super) fn route_mtu(mtu: u32) -> u16 {
    u16::try_from(mtu).unwrap_or(0)
}

/// An address as a route's `addr` (IPv4 in the first 4 bytes).
pub(super) fn route_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut out = [0; 16];
            out[..4].copy_from_slice(&a.octets());
            out
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// One address of an interface: the router owns it in the network's L3
/// table, and routes the subnet it is on (the address is where the
/// router's ICMP errors to that subnet come from).
fn interface_address(
    e: &mut Engine,
    record: &mut RouterRecord,
    iface: &Interface,
    ip: IpAddr,
    cidr: IpNet,
) {
    let Interface {
        r, net, mac, mtu, ..
    } = *iface;
    let neigh = Neigh {
        kind: TARGET_ROUTER,
        target: r,
        mac,
        flags: NEIGH_F_HOST,
    };
    let route = Route {
        network: net,
        mac,
        mtu: route_mtu(mtu),
        kind: ROUTE_CONNECTED,
        prefix_len: cidr.prefix_len(),
        _pad: [0; 2],
        addr: route_addr(ip),
    };
    let prefix_len = ROUTE_PREFIX_BITS + u32::from(cidr.prefix_len());
    match (ip, cidr) {
        (IpAddr::V4(ip), IpNet::V4(c)) => {
            let key = (net, ip.octets(), 32);
            e.owners.v4.set_router(key, Some(neigh));
            record.v4.push(key);
            let data = RouteV4Key {
                slot: 0,
                router: r,
                addr: c.network().octets(),
            };
            let k = LpmKey { prefix_len, data };
            e.desired.slotted.routes_v4.insert(k, route);
            record.routes_v4.push(k);
        }
        (IpAddr::V6(ip), IpNet::V6(c)) => {
            let key = (net, ip.octets(), 128);
            e.owners.v6.set_router(key, Some(neigh));
            record.v6.push(key);
            let data = RouteV6Key {
                slot: 0,
                router: r,
                addr: c.network().octets(),
            };
            let k = LpmKey { prefix_len, data };
            e.desired.slotted.routes_v6.insert(k, route);
            record.routes_v6.push(k);
        }
        // The store keeps every address inside its subnet.
        _ => {}
    }
}

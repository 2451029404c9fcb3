//! The external network's entries (see `common::nat`): each router's
//! gateway (its routes through the external subnet, `GATEWAYS`, its
//! addresses in `EXT_ADDRS`), each associated floating IP (`FLOATING`,
//! `EXT_ADDRS`), and this host's uplinks (`UPLINKS`). IPv4 only: a
//! gateway's IPv6 addresses are left out.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use common::{
    EXT_FLOATING, EXT_GATEWAY, ExtAddr, ExtAddrKey, Floating, FloatingKey, GATEWAY_F_SNAT, Gateway,
    GatewayKey, LpmKey, ROUTE_EXTERNAL, ROUTE_PREFIX_BITS, Route, RouteV4Key, Uplink, UplinkKey,
};
use ipnet::IpNet;

use super::{
    Engine,
    entries::put,
    routers::{Interface, RouterRecord, route_mtu},
};
use crate::store::Store;

/// What a router's gateway adds to its routes: the external subnets (on
/// link, for static routes through them) and the default route's next hop
/// (the first external subnet's `gateway_ip`), added after the static
/// routes.
#[derive(Default)]
pub struct Gatewayed {
    pub on_link: Vec<(IpNet, Interface)>,
    pub default: Option<(Ipv4Addr, Interface)>,
}

/// Compiles router `id`'s gateway (index `r`) into `record`.
pub fn gateway(
    e: &mut Engine,
    store: &Store,
    record: &mut RouterRecord,
    id: &String,
    r: u32,
) -> Gatewayed {
    let mut out = Gatewayed::default();
    let Some(g) = store.routers().get(id).and_then(|x| x.gateway.as_ref()) else {
        return out;
    };
    let (Some(port), Some(net)) = (store.gateway_port(id), e.ix.networks.get(&g.network_id)) else {
        return out;
    };
    let network = store.networks().get(&g.network_id);
    let iface = Interface {
        r,
        net,
        mac: port.spec.mac.octets(),
        mtu: network.map_or(0, |n| n.mtu),
        external: true,
    };
    let mut first = None;
    // In the order external_gateway_info gives them: the first IPv4
    // address is the one SNAT uses.
    for f in &g.external_fixed_ips {
        let IpAddr::V4(addr) = f.ip else {
            continue;
        };
        let Some(s) = port
            .fixed_ips
            .iter()
            .find(|x| x.ip == f.ip)
            .and_then(|x| store.subnets().get(&x.subnet_id))
        else {
            continue;
        };
        on_link(e, record, &iface, s.cidr);
        out.on_link.push((s.cidr.trunc(), iface));
        ext_addr(e, record, net, addr, gateway_addr(r, iface.mac));
        if first.is_none() {
            first = Some(addr);
        }
        if let (None, Some(IpAddr::V4(hop))) = (out.default, s.gateway_ip) {
            out.default = Some((hop, iface));
        }
    }
    let Some(addr) = first else {
        return out;
    };
    let ifindex = network
        .and_then(|n| n.physical_network.as_ref())
        .and_then(|p| e.locality.uplinks.get(p))
        .copied()
        .unwrap_or(0);
    let key = GatewayKey { slot: 0, router: r };
    let value = Gateway {
        network: net,
        ifindex,
        addr: addr.octets(),
        mac: iface.mac,
        flags: if g.enable_snat { GATEWAY_F_SNAT } else { 0 },
    };
    e.desired.slotted.gateways.insert(key, value);
    record.gateways.push(key);
    out
}

fn gateway_addr(router: u32, mac: [u8; 6]) -> ExtAddr {
    ExtAddr {
        kind: EXT_GATEWAY,
        router,
        fixed: [0; 4],
        mac,
        _pad: [0; 2],
    }
}

/// The external subnet itself: reached on link through the gateway.
fn on_link(e: &mut Engine, record: &mut RouterRecord, iface: &Interface, cidr: IpNet) {
    let IpNet::V4(c) = cidr else {
        return;
    };
    let key = LpmKey {
        prefix_len: ROUTE_PREFIX_BITS + u32::from(c.prefix_len()),
        data: RouteV4Key {
            slot: 0,
            router: iface.r,
            addr: c.network().octets(),
        },
    };
    let value = Route {
        network: iface.net,
        mac: iface.mac,
        mtu: route_mtu(iface.mtu),
        kind: ROUTE_EXTERNAL,
        prefix_len: c.prefix_len(),
        _pad: [0; 2],
        addr: [0; 16],
    };
    if !record.routes_v4.contains(&key) {
        e.desired.slotted.routes_v4.insert(key, value);
        record.routes_v4.push(key);
    }
}

fn ext_addr(e: &mut Engine, record: &mut RouterRecord, net: u32, addr: Ipv4Addr, v: ExtAddr) {
    let key = ExtAddrKey {
        slot: 0,
        network: net,
        addr: addr.octets(),
    };
    e.desired.slotted.ext_addrs.insert(key, v);
    record.ext_addrs.push(key);
}

/// What a floating IP compiled to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloatingRecord {
    floating: Option<FloatingKey>,
    ext_addr: Option<ExtAddrKey>,
}

/// Compiles floating IP `id` again (nothing while it is not associated).
pub fn floating(e: &mut Engine, store: &Store, id: &String) {
    if let Some(old) = e.floating.remove(id) {
        if let Some(k) = old.floating {
            e.desired.slotted.floating.remove(&k);
        }
        if let Some(k) = old.ext_addr {
            e.desired.slotted.ext_addrs.remove(&k);
        }
    }
    let Some(f) = store.floating_ips().get(id) else {
        return;
    };
    let Some(a) = &f.association else {
        return;
    };
    let (Some(r), Some(net), Some(gw)) = (
        e.ix.routers.get(&a.router),
        e.ix.networks.get(&f.floating_network_id),
        store.gateway_port(&a.router),
    ) else {
        return;
    };
    let floating = FloatingKey {
        slot: 0,
        router: r,
        fixed: a.fixed.octets(),
    };
    let addr = f.floating_ip_address.octets();
    e.desired
        .slotted
        .floating
        .insert(floating, Floating { addr });
    let ext = ExtAddrKey {
        slot: 0,
        network: net,
        addr,
    };
    let value = ExtAddr {
        kind: EXT_FLOATING,
        router: r,
        fixed: a.fixed.octets(),
        mac: gw.spec.mac.octets(),
        _pad: [0; 2],
    };
    e.desired.slotted.ext_addrs.insert(ext, value);
    let record = FloatingRecord {
        floating: Some(floating),
        ext_addr: Some(ext),
    };
    e.floating.insert(id.clone(), record);
}

/// `UPLINKS`: each uplink of this host that carries an external network
/// of the configuration. Recomputed whole (a host has a few uplinks).
pub fn uplinks(e: &mut Engine, store: &Store) {
    let want: BTreeMap<UplinkKey, Uplink> = e
        .locality
        .uplinks
        .iter()
        .filter_map(|(physnet, &ifindex)| {
            let network = e.ix.networks.get(store.external_network_on(physnet)?)?;
            Some((UplinkKey { slot: 0, ifindex }, Uplink { network }))
        })
        .collect();
    let stale: Vec<UplinkKey> = e
        .desired
        .slotted
        .uplinks
        .keys()
        .filter(|k| !want.contains_key(k))
        .copied()
        .collect();
    for k in stale {
        e.desired.slotted.uplinks.remove(&k);
    }
    for (k, v) in want {
        put(&mut e.desired.slotted.uplinks, k, Some(v));
    }
}

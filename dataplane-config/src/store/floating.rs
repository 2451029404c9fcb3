//! Floating IPs against the rest, as Neutron's `l3_db` associates them
//! (`_internal_fip_assoc_data`, `get_router_for_floatingip`,
//! `_check_and_get_fip_assoc`, with their messages): the floating network
//! exists and is external, the address is on one of its subnets and no one
//! else's; an associated floating IP's port exists and holds the fixed IP
//! (its only IPv4 one when none is named), a router has its gateway on the
//! floating network and an interface on the fixed IP's subnet, and no
//! other floating IP on that network has the same fixed IP.
//!
//! The fixed IP may be a VIP that other ports carry as an allowed address
//! pair (a VRRP address on a "VIP port" without a VM): that is the main
//! use, and nothing here treats it differently.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use ipnet::IpNet;

use super::{Store, Touched};
use crate::{
    errors::Errors,
    journal::members,
    neutron::Kind,
    objects::{Association, FixedIp, FloatingIp, Port},
};

/// Floating IPs that depend on what a change touched: their port, their
/// network (or its subnets), their router, and those behind a router that
/// changed (it may now be the router Neutron picks for them).
pub fn expand(store: &Store, touched: &mut Touched) {
    let mut more: BTreeSet<String> = BTreeSet::new();
    for p in &touched.ports {
        more.extend(members(&store.ix.floating_of_port, p).cloned());
    }
    let mut networks: BTreeSet<&String> = touched.networks.iter().collect();
    networks.extend(
        touched
            .subnets
            .iter()
            .filter_map(|s| store.subnets.get(s))
            .map(|s| &s.network_id),
    );
    for n in networks {
        more.extend(members(&store.ix.floating_of_network, n).cloned());
    }
    for r in &touched.routers {
        more.extend(members(&store.ix.floating_of_router, r).cloned());
        let interfaces = members(&store.ix.interfaces_of_router, r)
            .filter_map(|p| store.ports.get(p))
            .filter(|p| !p.spec.router_gateway);
        for iface in interfaces {
            for f in &iface.fixed_ips {
                for q in members(&store.ix.ports_of_subnet, &f.subnet_id) {
                    more.extend(members(&store.ix.floating_of_port, q).cloned());
                }
            }
        }
    }
    touched.floating_ips.extend(more);
}

/// Resolves every touched floating IP, then checks what must be unique.
pub fn resolve(store: &mut Store, errors: &mut Errors, touched: &Touched) {
    for id in &touched.floating_ips {
        let Some(old) = store.floating_ips.get(id).cloned() else {
            continue;
        };
        store.ix.visit_floating_ip(&old, false);
        let association = associate(store, errors, &old);
        let f = FloatingIp { association, ..old };
        store.ix.visit_floating_ip(&f, true);
        store.floating_ips.insert(id.clone(), f);
    }
    for id in &touched.floating_ips {
        if let Some(f) = store.floating_ips.get(id) {
            unique(store, errors, touched, f);
        }
    }
    ports_on_floating_addresses(store, errors, touched);
}

/// A floating IP's association, or None (not associated, or refused: the
/// error is in `errors`).
fn associate(store: &Store, errors: &mut Errors, f: &FloatingIp) -> Option<Association> {
    let label = f.label();
    let net = &f.floating_network_id;
    match store.networks.get(net) {
        None => {
            let msg = format!("Network {net} could not be found.");
            errors.push(&label, "floating_network_id", msg);
            return None;
        }
        Some(n) if !n.external => {
            let msg = format!("Network {net} is not a valid external network");
            errors.push(&label, "floating_network_id", msg);
            return None;
        }
        Some(_) => {}
    }
    address(store, errors, &label, f);
    let port_id = f.port_id.as_ref()?;
    let Some(port) = store.ports.get(port_id) else {
        let msg = format!("Port {port_id} could not be found.");
        errors.push(&label, "port_id", msg);
        return None;
    };
    let unable = if port.spec.device_owner == "network:dhcp" {
        Some(String::new())
    } else if port.spec.router.is_some() {
        Some(" (a router's own port: the datapath translates to a port behind a router)".into())
    } else {
        None
    };
    if let Some(why) = unable {
        let msg = format!("Port {port_id} is unable to be assigned a floating IP{why}");
        errors.push(&label, "port_id", msg);
        return None;
    }
    let (fixed, subnet_id) = fixed_ip(errors, &label, f, port)?;
    let router = router_for(store, errors, &label, f, port, &subnet_id)?;
    Some(Association {
        port_id: port_id.clone(),
        fixed,
        subnet_id,
        router,
    })
}

/// The floating address: on a subnet of its network, not that subnet's
/// network or broadcast address, nor its `gateway_ip` (the outside
/// router's address: answering for it would take the external network's
/// traffic).
fn address(store: &Store, errors: &mut Errors, label: &str, f: &FloatingIp) {
    let ip = IpAddr::V4(f.floating_ip_address);
    let subnet = members(&store.ix.subnets_of_network, &f.floating_network_id)
        .filter_map(|s| store.subnets.get(s))
        .find(|s| s.cidr.contains(&ip));
    let problem = match subnet {
        None => Some(format!(
            "IP address {ip} is not a valid IP for any of the subnets on the specified network."
        )),
        Some(s) => match s.cidr {
            IpNet::V4(n)
                if n.network() == f.floating_ip_address
                    || n.prefix_len() < 31 && n.broadcast() == f.floating_ip_address =>
            {
                Some(format!(
                    "IP address {ip} is not a valid IP for the specified subnet (the network or \
                     broadcast address of {})",
                    s.cidr
                ))
            }
            _ if s.gateway_ip == Some(ip) => Some(format!(
                "{ip} is the gateway_ip of subnet {}: the outside router's address cannot be a \
                 floating IP",
                s.id
            )),
            _ => None,
        },
    };
    if let Some(message) = problem {
        errors.push(label, "floating_ip_address", message);
    }
}

/// The fixed IP (`_internal_fip_assoc_data`): the one named, which the
/// port must hold, or the port's only IPv4 address.
fn fixed_ip(
    errors: &mut Errors,
    label: &str,
    f: &FloatingIp,
    port: &Port,
) -> Option<(Ipv4Addr, String)> {
    let v4 = |x: &FixedIp| match x.ip {
        IpAddr::V4(ip) => Some((ip, x.subnet_id.clone())),
        IpAddr::V6(_) => None,
    };
    if let Some(want) = f.fixed_ip_address {
        let found = port
            .fixed_ips
            .iter()
            .filter_map(v4)
            .find(|(ip, _)| *ip == want);
        if found.is_none() {
            let msg = format!("Port {} does not have fixed ip {want}", port.id());
            errors.push(label, "fixed_ip_address", msg);
        }
        return found;
    }
    let all: Vec<(Ipv4Addr, String)> = port.fixed_ips.iter().filter_map(v4).collect();
    match all.as_slice() {
        [one] => Some(one.clone()),
        [] => {
            let msg = format!(
                "Cannot add floating IP to port {} that has no fixed IPv4 addresses",
                port.id()
            );
            errors.push(label, "port_id", msg);
            None
        }
        _ => {
            let msg = format!(
                "Port {} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 \
                 address when assigning a floating IP",
                port.id()
            );
            errors.push(label, "fixed_ip_address", msg);
            None
        }
    }
}

/// The router that translates the floating IP (`get_router_for_floatingip`):
/// one with an interface on the fixed IP's subnet and its gateway on the
/// floating network; the one whose interface is the subnet's `gateway_ip`
/// if there is one, else the first (by id). A `router_id` given must be
/// one Neutron could have picked.
fn router_for(
    store: &Store,
    errors: &mut Errors,
    label: &str,
    f: &FloatingIp,
    port: &Port,
    subnet_id: &String,
) -> Option<String> {
    let net = &f.floating_network_id;
    let gateway_ip = store.subnets.get(subnet_id).and_then(|s| s.gateway_ip);
    let mut candidates: BTreeSet<&String> = BTreeSet::new();
    let mut preferred = None;
    for q in members(&store.ix.ports_of_subnet, subnet_id).filter_map(|q| store.ports.get(q)) {
        let Some(r) = q
            .spec
            .router
            .as_ref()
            .filter(|_| q.spec.is_router_interface())
        else {
            continue;
        };
        let gatewayed = store
            .routers
            .get(r)
            .and_then(|router| router.gateway.as_ref())
            .is_some_and(|g| &g.network_id == net);
        if !gatewayed {
            continue;
        }
        candidates.insert(r);
        let at_gateway = q
            .fixed_ips
            .iter()
            .any(|x| &x.subnet_id == subnet_id && Some(x.ip) == gateway_ip);
        if at_gateway && preferred.is_none() {
            preferred = Some(r);
        }
    }
    let Some(&first) = candidates.first() else {
        let msg = format!(
            "External network {net} is not reachable from subnet {subnet_id}.  Therefore, cannot \
             associate Port {} with a Floating IP.",
            port.id()
        );
        errors.push(label, "port_id", msg);
        return None;
    };
    let picked = preferred.unwrap_or(first);
    let Some(given) = &f.router_id else {
        return Some(picked.clone());
    };
    let why = if !candidates.contains(given) {
        format!(
            "router {given} has no interface on subnet {subnet_id} with its gateway on network \
             {net}; router {picked} has"
        )
    } else if preferred.is_some_and(|p| p != given) {
        format!(
            "Neutron associates it with router {picked}, whose interface is subnet \
             {subnet_id}'s gateway_ip, not with {given}"
        )
    } else {
        return Some(given.clone());
    };
    errors.push(label, "router_id", why);
    None
}

/// Whether `other` came before `id` in this change, or was there before:
/// the error then belongs to `id`.
fn earlier(store: &Store, touched: &Touched, id: &str, other: &str) -> bool {
    !touched.floating_ips.contains(other)
        || store.seq(Kind::FloatingIp, other) < store.seq(Kind::FloatingIp, id)
}

/// The floating address is no port's and no earlier floating IP's; one
/// floating IP per fixed IP on a floating network.
fn unique(store: &Store, errors: &mut Errors, touched: &Touched, f: &FloatingIp) {
    let label = f.label();
    let net = &f.floating_network_id;
    let ip = IpAddr::V4(f.floating_ip_address);
    let key = (net.clone(), ip);
    let taken = members(&store.ix.ips, &key)
        .map(|p| format!("port {p}"))
        .chain(
            members(&store.ix.floating_addrs, &key)
                .filter(|o| *o != &f.id && earlier(store, touched, &f.id, o))
                .map(|o| format!("floating IP {o}")),
        )
        .next();
    if let Some(owner) = taken {
        let subnet = members(&store.ix.subnets_of_network, net)
            .find(|s| store.subnets.get(*s).is_some_and(|s| s.cidr.contains(&ip)))
            .cloned()
            .unwrap_or_default();
        let msg = format!("IP address {ip} already allocated in subnet {subnet} ({owner})");
        errors.push(&label, "floating_ip_address", msg);
    }
    let Some(a) = &f.association else {
        return;
    };
    let fixed = (a.port_id.clone(), IpAddr::V4(a.fixed), net.clone());
    let other = members(&store.ix.floating_of_fixed, &fixed)
        .find(|o| *o != &f.id && earlier(store, touched, &f.id, o));
    if let Some(o) = other {
        errors.push(
            &label,
            "port_id",
            format!(
                "Cannot associate floating IP {} ({}) with port {} using fixed IP {}, as that \
                 fixed IP already has a floating IP on external network {net} (floating IP {o}).",
                f.floating_ip_address, f.id, a.port_id, a.fixed
            ),
        );
    }
}

/// A port written with a floating IP's address as a fixed IP (the
/// floating IP itself reports the clash when it is written too).
fn ports_on_floating_addresses(store: &Store, errors: &mut Errors, touched: &Touched) {
    for id in &touched.ports {
        let Some(port) = store.ports.get(id) else {
            continue;
        };
        for x in &port.fixed_ips {
            let key = (port.spec.network_id.clone(), x.ip);
            let fip = members(&store.ix.floating_addrs, &key)
                .find(|f| !touched.floating_ips.contains(*f));
            if let Some(fip) = fip {
                errors.push(
                    &port.label(),
                    "fixed_ips",
                    format!(
                        "{} is already used by floating IP {fip} on the same network",
                        x.ip
                    ),
                );
            }
        }
    }
}

//! The checks that span objects, for what a change touched: each port
//! against its network, subnets, groups and router, uniqueness of MACs,
//! fixed IPs and taps, subnets that overlap in a network, and a router's
//! interfaces.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Store, Touched};
use crate::{
    errors::Errors,
    journal::members,
    neutron::Kind,
    objects::{
        FixedIp, IPV4_MIN_MTU, IPV6_MIN_MTU, Ipv6Mode, Port, PortSpec, ROUTER_INTERFACE_OWNERS,
        ROUTER_PORT_OWNERS,
    },
};

/// Resolves every touched port (written, or depending on something that
/// changed) and puts it back into the store; then checks uniqueness.
pub fn ports(
    store: &mut Store,
    errors: &mut Errors,
    mut written: super::stage::WrittenPorts,
    touched: &mut Touched,
) {
    let ids: Vec<String> = touched.ports.iter().cloned().collect();
    for id in &ids {
        let spec = match written.remove(id) {
            Some(spec) => spec,
            None => match store.ports.remove(id) {
                Some(old) => {
                    store.ix.unindex_port(&old);
                    old.spec
                }
                None => continue,
            },
        };
        if let Some(port) = resolve(store, errors, spec) {
            if let Some(r) = &port.spec.router {
                touched.routers.insert(r.clone());
            }
            store.ix.index_port(&port);
            store.ports.insert(id.clone(), port);
        }
    }
    for id in &ids {
        if let Some(port) = store.ports.get(id) {
            unique(store, errors, port, touched);
        }
    }
}

/// A port against the objects it names.
fn resolve(store: &Store, errors: &mut Errors, spec: PortSpec) -> Option<Port> {
    let label = spec.label();
    let before = errors.len();
    let network = store.networks.get(&spec.network_id);
    if network.is_none() {
        errors.push(
            &label,
            "network_id",
            format!("unknown network {:?}", spec.network_id),
        );
    }
    let security = spec
        .port_security_enabled
        .unwrap_or_else(|| network.is_none_or(|n| n.port_security_enabled));
    if !spec.allowed_address_pairs.is_empty() && !security {
        errors.push(
            &label,
            "allowed_address_pairs",
            "not allowed while port_security_enabled is false (Neutron refuses this too)",
        );
    }
    let max = store.settings.get().max_allowed_address_pairs;
    if spec.pairs_written > max {
        errors.push(
            &label,
            "allowed_address_pairs",
            format!(
                "{} pairs exceed max_allowed_address_pair = {max}",
                spec.pairs_written
            ),
        );
    }
    let fixed_ips = fixed_ips(store, errors, &label, &spec);
    let groups = security_groups(store, errors, &label, &spec, security);
    if let Some(r) = &spec.router {
        if !store.routers.contains_key(r) {
            errors.push(
                &label,
                "device_id",
                format!("unknown router {r:?} (not in routers)"),
            );
        }
    }
    if errors.len() != before || network.is_none() {
        return None;
    }
    Some(Port {
        spec,
        port_security_enabled: security,
        fixed_ips,
        security_groups: groups,
    })
}

fn fixed_ips(store: &Store, errors: &mut Errors, label: &str, spec: &PortSpec) -> Vec<FixedIp> {
    let mut out = Vec::new();
    for (j, f) in spec.fixed_ips.iter().enumerate() {
        let field = format!("fixed_ips[{j}]");
        let subnet_id = match &f.subnet_id {
            Some(sid) => {
                if !store.subnets.contains_key(sid) {
                    errors.push(
                        label,
                        format!("{field}.subnet_id"),
                        format!("unknown subnet {sid:?}"),
                    );
                    continue;
                }
                sid.clone()
            }
            // Neutron picks the subnet that contains the address.
            None => {
                let found = members(&store.ix.subnets_of_network, &spec.network_id).find(|s| {
                    store
                        .subnets
                        .get(*s)
                        .is_some_and(|s| s.cidr.contains(&f.ip))
                });
                match found {
                    Some(s) => s.clone(),
                    None => {
                        errors.push(
                            label,
                            format!("{field}.ip_address"),
                            format!("{} is in no subnet of the port's network", f.ip),
                        );
                        continue;
                    }
                }
            }
        };
        if let Some(message) = address_problem(store, spec, &subnet_id, f.ip) {
            let at = if message.contains("another network") {
                "subnet_id"
            } else {
                "ip_address"
            };
            errors.push(label, format!("{field}.{at}"), message);
            continue;
        }
        out.push(FixedIp {
            subnet_id,
            ip: f.ip,
        });
    }
    out
}

/// What is wrong with `ip` as a fixed IP of the port on `subnet_id`
/// (Neutron's `ipam.utils.check_subnet_ip`: inside the subnet; not an IPv4
/// subnet's network or broadcast address (a /31 has no broadcast address,
/// a /32's only address is its network address); not an IPv6 subnet's
/// network address unless the port is a router's or has no owner). A port
/// may hold the subnet's `gateway_ip`: Neutron lets an admin give it to any
/// port (a VM that is the subnet's gateway), and only router interfaces
/// take part in routing.
fn address_problem(
    store: &Store,
    spec: &PortSpec,
    subnet_id: &String,
    ip: IpAddr,
) -> Option<String> {
    let s = store.subnets.get(subnet_id)?;
    if s.network_id != spec.network_id {
        return Some(format!("subnet {} belongs to another network", s.id));
    }
    if !s.cidr.contains(&ip) {
        return Some(format!("{ip} is outside subnet {} ({})", s.id, s.cidr));
    }
    match s.cidr {
        IpNet::V4(net)
            if IpAddr::V4(net.network()) == ip
                || net.prefix_len() < 31 && IpAddr::V4(net.broadcast()) == ip =>
        {
            Some(format!(
                "{ip} is the network or broadcast address of {}",
                s.cidr
            ))
        }
        IpNet::V6(_)
            if s.cidr.network() == ip
                && !spec.device_owner.is_empty()
                && !ROUTER_PORT_OWNERS.contains(&spec.device_owner.as_str()) =>
        {
            Some(format!(
                "{ip} is the subnet-router anycast address of {} (only a router's port or a \
                 port without device_owner may hold it)",
                s.cidr
            ))
        }
        IpNet::V6(net) => automatic_address(s, spec, net, ip),
        _ => None,
    }
}

/// On a subnet with automatic addresses (SLAAC, DHCPv6-stateless), Neutron
/// gives a port other than a router interface the EUI-64 address of its
/// MAC and refuses any other (`AllocationOnAutoAddressSubnet`).
fn automatic_address(
    s: &crate::objects::Subnet,
    spec: &PortSpec,
    net: ipnet::Ipv6Net,
    ip: IpAddr,
) -> Option<String> {
    let auto = [s.ipv6_ra_mode, s.ipv6_address_mode]
        .into_iter()
        .flatten()
        .any(Ipv6Mode::automatic);
    if !auto || ROUTER_INTERFACE_OWNERS.contains(&spec.device_owner.as_str()) {
        return None;
    }
    let mut eui64 = net.network().octets();
    eui64[8..].copy_from_slice(&spec.mac.ipv6_link_local().octets()[8..]);
    let eui64 = IpAddr::from(eui64);
    (ip != eui64).then(|| {
        format!(
            "{ip} cannot be assigned on subnet {} (automatic addresses: Neutron gives this port \
             {eui64}, the EUI-64 address of its MAC)",
            s.id
        )
    })
}

fn security_groups(
    store: &Store,
    errors: &mut Errors,
    label: &str,
    spec: &PortSpec,
    security: bool,
) -> Vec<String> {
    let mut groups = Vec::new();
    for (j, g) in spec.security_groups.iter().enumerate() {
        if store.security_groups.contains_key(g) {
            groups.push(g.clone());
        } else {
            errors.push(
                label,
                format!("security_groups[{j}]"),
                format!("unknown security group {g:?} (not in security_groups)"),
            );
        }
    }
    groups.sort_unstable();
    groups.dedup();
    if !spec.security_groups.is_empty() && !security {
        errors.push(
            label,
            "security_groups",
            "not allowed while port_security_enabled is false (Neutron refuses this too)",
        );
    }
    groups
}

/// Whether `other` came before `port` in this change, or was there before
/// it: the error then belongs to `port`.
fn earlier(store: &Store, touched: &Touched, port: &str, other: &str) -> bool {
    !touched.ports.contains(other) || store.seq(Kind::Port, other) < store.seq(Kind::Port, port)
}

/// A MAC or fixed IP used twice in a network, or a tap by two ports.
fn unique(store: &Store, errors: &mut Errors, port: &Port, touched: &Touched) {
    let (id, spec) = (&port.spec.id, &port.spec);
    let label = port.label();
    let other_label = |o: &String| {
        store
            .ports
            .get(o)
            .map(Port::label)
            .unwrap_or_else(|| format!("port {o}"))
    };
    let clash = |owner: &dyn Fn(&String) -> bool, others: Vec<&String>| {
        others
            .into_iter()
            .find(|o| *o != id && owner(o) && earlier(store, touched, id, o))
            .cloned()
    };
    let key = (spec.network_id.clone(), spec.mac);
    let macs: Vec<&String> = members(&store.ix.macs, &key).collect();
    if let Some(o) = clash(&|_| true, macs) {
        errors.push(
            &label,
            "mac_address",
            format!(
                "{} is already used by {} on the same network",
                spec.mac,
                other_label(&o)
            ),
        );
    }
    for f in &port.fixed_ips {
        let key = (spec.network_id.clone(), f.ip);
        let users: Vec<&String> = members(&store.ix.ips, &key).collect();
        if let Some(o) = clash(&|_| true, users) {
            errors.push(
                &label,
                "fixed_ips",
                format!(
                    "{} is already used by {} on the same network",
                    f.ip,
                    other_label(&o)
                ),
            );
        }
    }
    if spec.router.is_none() {
        let users: Vec<&String> = members(&store.ix.taps, &spec.tap).collect();
        if let Some(o) = clash(&|_| true, users) {
            errors.push(
                &label,
                "tap_name",
                format!(
                    "interface {} is already used by {}",
                    spec.tap,
                    other_label(&o)
                ),
            );
        }
    }
}

/// A rule's remote group must exist.
pub fn remote_groups(store: &Store, errors: &mut Errors, touched: &Touched) {
    for id in &touched.security_groups {
        let Some(g) = store.security_groups.get(id) else {
            continue;
        };
        for (j, rule) in g.rules.iter().enumerate() {
            if let crate::objects::Remote::Group(x) = &rule.remote {
                if !store.security_groups.contains_key(x) {
                    errors.push(
                        &crate::errors::label("security group", id, &g.name),
                        format!("security_group_rules[{j}].remote_group_id"),
                        format!("unknown security group {x:?}"),
                    );
                }
            }
        }
    }
}

/// Two networks cannot share a VNI: tunnelled frames would reach both.
pub fn vnis(store: &Store, errors: &mut Errors, touched: &Touched) {
    for id in &touched.networks {
        let Some(n) = store.networks.get(id) else {
            continue;
        };
        let Some(vni) = n.vni else { continue };
        let other = store.networks.values().find(|o| {
            o.id != n.id
                && o.vni == Some(vni)
                && (!touched.networks.contains(&o.id)
                    || store.seq(Kind::Network, &o.id) < store.seq(Kind::Network, id))
        });
        if let Some(o) = other {
            errors.push(
                &crate::errors::label("network", id, &n.name),
                "provider:segmentation_id",
                format!("VNI {vni} is already network {}'s", o.id),
            );
        }
    }
}

/// A network's MTU must carry its subnets' packets: at least 68 with any
/// subnet, 1280 with an IPv6 one (Neutron's `NetworkMTUSubnetConflict`,
/// raised whether the network or the subnet changes).
pub fn network_mtus(store: &Store, errors: &mut Errors, touched: &Touched) {
    let mut networks: std::collections::BTreeSet<&String> = touched.networks.iter().collect();
    networks.extend(
        touched
            .subnets
            .iter()
            .filter_map(|s| store.subnets.get(s))
            .map(|s| &s.network_id),
    );
    for id in networks {
        let Some(n) = store.networks.get(id) else {
            continue;
        };
        if n.mtu == 0 || n.mtu >= IPV6_MIN_MTU {
            continue;
        }
        let subnets: Vec<&crate::objects::Subnet> = members(&store.ix.subnets_of_network, id)
            .filter_map(|s| store.subnets.get(s))
            .collect();
        let needed = if subnets.iter().any(|s| s.cidr.addr().is_ipv6()) {
            IPV6_MIN_MTU
        } else if !subnets.is_empty() {
            IPV4_MIN_MTU
        } else {
            0
        };
        if n.mtu < needed {
            errors.push(
                &crate::errors::label("network", id, &n.name),
                "mtu",
                format!(
                    "MTU of {id} is not valid, subnet requires a minimum of {needed} (the network \
                     has {} subnets)",
                    if needed == IPV6_MIN_MTU {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                ),
            );
        }
    }
}

/// Subnets of one network must not overlap, and name no more DNS servers
/// than `max_dns_nameservers` (Neutron's `DNSNameServersExhausted`).
pub fn subnets(store: &Store, errors: &mut Errors, touched: &Touched) {
    let max_dns = store.settings.get().max_dns_nameservers;
    let checked: Vec<&String> = if touched.settings {
        store.subnets.keys().collect()
    } else {
        touched.subnets.iter().collect()
    };
    for id in checked {
        let Some(s) = store.subnets.get(id) else {
            continue;
        };
        if s.dns_nameservers.len() > max_dns {
            errors.push(
                &crate::errors::label("subnet", id, &s.name),
                "dns_nameservers",
                format!(
                    "Unable to complete operation for {id}. The number of DNS nameservers \
                     exceeds the limit {max_dns}."
                ),
            );
        }
    }
    for id in &touched.subnets {
        let Some(s) = store.subnets.get(id) else {
            continue;
        };
        let other = members(&store.ix.subnets_of_network, &s.network_id)
            .filter(|o| *o != id)
            .filter_map(|o| store.subnets.get(o))
            .find(|o| {
                (o.cidr.contains(&s.cidr.network()) || s.cidr.contains(&o.cidr.network()))
                    && (!touched.subnets.contains(&o.id)
                        || store.seq(Kind::Subnet, &o.id) < store.seq(Kind::Subnet, id))
            });
        if let Some(o) = other {
            errors.push(
                &crate::errors::label("subnet", id, &s.name),
                "cidr",
                format!(
                    "{} overlaps subnet {} ({}) on the same network",
                    s.cidr, o.id, o.cidr
                ),
            );
        }
    }
}

/// A router has one interface per subnet, on subnets that do not overlap
/// (Neutron refuses more: routes would be ambiguous).
pub fn routers(store: &Store, errors: &mut Errors, touched: &Touched) {
    for r in &touched.routers {
        if !store.routers.contains_key(r) {
            continue;
        }
        let mut ifaces: Vec<&Port> = members(&store.ix.interfaces_of_router, r)
            .filter_map(|p| store.ports.get(p))
            .collect();
        ifaces.sort_by_key(|p| store.seq(Kind::Port, p.id()));
        let mut seen: Vec<(&Port, &str, IpNet)> = Vec::new();
        for port in ifaces {
            for (j, f) in port.fixed_ips.iter().enumerate() {
                let Some(cidr) = store.subnets.get(&f.subnet_id).map(|s| s.cidr) else {
                    continue;
                };
                let clash = seen.iter().find(|(_, sid, other)| {
                    *sid == f.subnet_id
                        || other.contains(&cidr.network())
                        || cidr.contains(&other.network())
                });
                if let Some((o, _, other)) = clash {
                    errors.push(
                        &port.label(),
                        format!("fixed_ips[{j}]"),
                        format!(
                            "router {r} already has an interface ({}) on {other} which overlaps {cidr}",
                            o.id()
                        ),
                    );
                    continue;
                }
                seen.push((port, &f.subnet_id, cidr));
            }
        }
        router_ipv6(store, errors, r);
        static_routes(store, errors, r);
    }
}

/// A router's static routes against its interfaces, as Neutron's
/// `_validate_routes` checks them: each nexthop on a subnet the router has
/// an interface on, and none of the router's own addresses. The datapath
/// adds one refusal: one nexthop per destination (Neutron's L3 agent
/// makes several an ECMP route, which the datapath does not do).
fn static_routes(store: &Store, errors: &mut Errors, r: &String) {
    let Some(router) = store.routers.get(r) else {
        return;
    };
    let mut cidrs = Vec::new();
    let mut ips = Vec::new();
    // The gateway's IPv6 subnets count for Neutron, but the datapath
    // leaves them out (its external gateway is IPv4).
    let mut left_out = Vec::new();
    for port in members(&store.ix.interfaces_of_router, r).filter_map(|p| store.ports.get(p)) {
        for f in &port.fixed_ips {
            if let Some(s) = store.subnets.get(&f.subnet_id) {
                if port.spec.router_gateway && s.cidr.addr().is_ipv6() {
                    left_out.push(s.cidr);
                } else {
                    cidrs.push(s.cidr);
                }
            }
            ips.push(f.ip);
        }
    }
    let label = crate::errors::label("router", r, &router.name);
    for (i, route) in router.routes.iter().enumerate() {
        let field = format!("routes[{i}].nexthop");
        let hop = route.nexthop;
        let problem = if left_out.iter().any(|c| c.contains(&hop)) {
            Some(
                "the nexthop is on the router's gateway IPv6 subnet, which the datapath leaves \
                 out (its external gateway is IPv4)",
            )
        } else if !cidrs.iter().any(|c| c.contains(&hop)) {
            Some("the nexthop is not connected with router")
        } else if ips.contains(&hop) {
            Some("the nexthop is used by router")
        } else {
            None
        };
        if let Some(reason) = problem {
            let msg = format!(
                "Invalid format for routes: {}/{hop}, {reason}",
                route.destination
            );
            errors.push(&label, field, msg);
            continue;
        }
        let earlier = router.routes[..i]
            .iter()
            .find(|o| o.destination == route.destination);
        if let Some(o) = earlier {
            errors.push(
                &label,
                field,
                format!(
                    "{} already goes through {}: several nexthops for one destination (ECMP) \
                     are not supported",
                    route.destination, o.nexthop
                ),
            );
        }
    }
}

/// A router's IPv6 interfaces as Neutron's L3 plugin allows them: not on a
/// subnet whose hosts expect an external router's advertisements
/// (`ipv6_address_mode` without `ipv6_ra_mode`), one port per network
/// (all of a network's IPv6 subnets on it); and, the datapath's limit, no
/// second router advertising on the same network (a solicitation gets one
/// router's answer).
fn router_ipv6(store: &Store, errors: &mut Errors, r: &String) {
    // The gateway port advertises nothing: its IPv6 addresses are left out.
    let ports: Vec<&Port> = members(&store.ix.interfaces_of_router, r)
        .filter_map(|p| store.ports.get(p))
        .filter(|p| !p.spec.router_gateway)
        .collect();
    for port in &ports {
        let mut v6 = false;
        for (j, f) in port.fixed_ips.iter().enumerate() {
            let Some(s) = store.subnets.get(&f.subnet_id) else {
                continue;
            };
            if s.cidr.addr().is_ipv4() {
                continue;
            }
            v6 = true;
            if s.ipv6_ra_mode.is_none() && s.ipv6_address_mode.is_some() {
                errors.push(
                    &port.label(),
                    format!("fixed_ips[{j}]"),
                    format!(
                        "IPv6 subnet {} configured to receive RAs from an external router \
                         cannot be added to Neutron Router.",
                        s.id
                    ),
                );
            }
        }
        if !v6 {
            continue;
        }
        advert_fits(store, errors, port);
        let net = &port.spec.network_id;
        let earlier = members(&store.ix.ports_of_network, net)
            .filter(|o| *o != port.id())
            .filter_map(|o| store.ports.get(o))
            .filter(|o| o.spec.is_router_interface() && has_ipv6(store, o))
            .find(|o| store.seq(Kind::Port, o.id()) < store.seq(Kind::Port, port.id()));
        let Some(o) = earlier else {
            continue;
        };
        let msg = if o.spec.router.as_ref() == Some(r) {
            format!(
                "Router already contains IPv6 port {} belonging to network id {net}. Only one \
                 IPv6 port from the same network subnet can be connected to a router.",
                o.id()
            )
        } else {
            format!(
                "router {} already advertises IPv6 on network {net} (port {}): the datapath \
                 sends one router's advertisements per network",
                o.spec.router.as_deref().unwrap_or(""),
                o.id()
            )
        };
        errors.push(&port.label(), "fixed_ips", msg);
    }
}

/// The interface's advertisement must fit what the datapath sends.
fn advert_fits(store: &Store, errors: &mut Errors, port: &Port) {
    let subnets: Vec<&crate::objects::Subnet> = port
        .fixed_ips
        .iter()
        .filter_map(|f| store.subnets.get(&f.subnet_id))
        .filter(|s| s.cidr.addr().is_ipv6())
        .collect();
    let mtu = store
        .networks
        .get(&port.spec.network_id)
        .map_or(0, |n| n.mtu);
    let len = crate::adverts::message(port.spec.mac, mtu, &subnets).len();
    if len > common::ADVERT_MAX {
        errors.push(
            &port.label(),
            "fixed_ips",
            format!(
                "the router advertisement of these IPv6 subnets (their prefixes and DNS servers) \
                 takes {len} bytes; the datapath sends at most {} (fewer IPv6 subnets per \
                 router interface, or fewer DNS servers)",
                common::ADVERT_MAX
            ),
        );
    }
}

fn has_ipv6(store: &Store, port: &Port) -> bool {
    port.fixed_ips.iter().any(|f| {
        store
            .subnets
            .get(&f.subnet_id)
            .is_some_and(|s| s.cidr.addr().is_ipv6())
    })
}

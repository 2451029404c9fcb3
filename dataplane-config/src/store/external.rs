//! Routers' external gateways against the rest, as Neutron's `l3_db`
//! checks them (`_validate_gw_info`, and the gateway port's fixed IPs as
//! the core plugin's IPAM takes them): the network exists and is external,
//! each external fixed IP is on a subnet of it and inside it, not that
//! subnet's `gateway_ip`; the router's gateway port is in the
//! configuration (its MAC is the gateway's) and holds exactly those
//! addresses. And the datapath's limits: an uplink carries its external
//! network untagged, so a gateway's network must be flat and the only
//! external network on its physical network (the networks themselves are
//! accepted: ports on them are served as on any network).

use std::{collections::BTreeSet, net::IpAddr};

use super::{Store, Touched};
use crate::{
    errors::{Errors, label},
    journal::members,
    objects::{ExternalGateway, FixedIpSpec, Network, Port, Subnet},
};

const INFO: &str = "external_gateway_info";

/// Routers whose gateway is on a network a change touched (directly,
/// through one of its subnets, or through another external network on its
/// physical network) are checked and compiled again.
pub fn expand(store: &Store, touched: &mut Touched) {
    let mut networks: BTreeSet<&String> = touched.networks.iter().collect();
    networks.extend(
        touched
            .subnets
            .iter()
            .filter_map(|s| store.subnets.get(s))
            .map(|s| &s.network_id),
    );
    let physnets: Vec<&String> = touched
        .networks
        .iter()
        .filter_map(|n| store.networks.get(n))
        .filter_map(|n| n.physical_network.as_ref())
        .collect();
    for p in physnets {
        networks.extend(members(&store.ix.external_of_physnet, p));
    }
    let routers: Vec<String> = networks
        .into_iter()
        .flat_map(|n| members(&store.ix.gateways_of_network, n))
        .cloned()
        .collect();
    touched.routers.extend(routers);
}

/// Checks the gateways of the touched routers.
pub fn check(store: &Store, errors: &mut Errors, touched: &Touched) {
    for r in &touched.routers {
        gateway(store, errors, r);
    }
}

fn gateway(store: &Store, errors: &mut Errors, r: &String) {
    let Some(router) = store.routers.get(r) else {
        return;
    };
    let gateway_ports: Vec<&Port> = members(&store.ix.interfaces_of_router, r)
        .filter_map(|p| store.ports.get(p))
        .filter(|p| p.spec.router_gateway)
        .collect();
    let Some(g) = &router.gateway else {
        for p in gateway_ports {
            errors.push(
                &p.label(),
                "device_id",
                format!(
                    "router {r} has no external_gateway_info: a gateway port belongs to a \
                     router's external gateway (Neutron creates and deletes it with it)"
                ),
            );
        }
        return;
    };
    let label = label("router", r, &router.name);
    let network_field = format!("{INFO}.network_id");
    match store.networks.get(&g.network_id) {
        None => {
            let msg = format!("Network {} could not be found.", g.network_id);
            errors.push(&label, network_field, msg);
            return;
        }
        Some(n) if !n.external => {
            let msg = format!("Network {} is not an external network", g.network_id);
            errors.push(&label, network_field, msg);
        }
        Some(n) => {
            if let Some(why) = uplink_problem(store, n) {
                errors.push(&label, network_field, why);
            }
        }
    }
    for (i, f) in g.external_fixed_ips.iter().enumerate() {
        if let Err((at, message)) = external_subnet(store, &g.network_id, f) {
            let field = format!("{INFO}.external_fixed_ips[{i}].{at}");
            errors.push(&label, field, message);
        }
    }
    gateway_port(errors, r, &label, g, &gateway_ports);
}

/// The subnet of the external network an external fixed IP is on, or
/// which of its fields is wrong and why (Neutron's messages).
pub fn external_subnet<'a>(
    store: &'a Store,
    network_id: &str,
    f: &FixedIpSpec,
) -> Result<&'a Subnet, (&'static str, String)> {
    let ip = f.ip;
    let subnet = match &f.subnet_id {
        Some(sid) => {
            let Some(s) = store.subnets.get(sid) else {
                return Err(("subnet_id", format!("Subnet {sid} could not be found.")));
            };
            if s.network_id != network_id {
                return Err((
                    "subnet_id",
                    format!(
                        "Failed to create port on network {network_id}, because fixed_ips \
                         included invalid subnet {sid}"
                    ),
                ));
            }
            if !s.cidr.contains(&ip) {
                return Err((
                    "ip_address",
                    format!(
                        "IP address {ip} is not a valid IP for the specified subnet ({} is {})",
                        s.id, s.cidr
                    ),
                ));
            }
            s
        }
        None => members(&store.ix.subnets_of_network, &network_id.to_string())
            .filter_map(|s| store.subnets.get(s))
            .find(|s| s.cidr.contains(&ip))
            .ok_or_else(|| {
                (
                    "ip_address",
                    format!(
                        "IP address {ip} is not a valid IP for any of the subnets on the \
                         specified network."
                    ),
                )
            })?,
    };
    if subnet.gateway_ip == Some(ip) {
        let msg = format!("External IP {ip} is the same as the gateway IP");
        return Err(("ip_address", msg));
    }
    Ok(subnet)
}

/// The router's gateway port: there, one, on the gateway's network, with
/// exactly its addresses.
fn gateway_port(errors: &mut Errors, r: &str, label: &str, g: &ExternalGateway, ports: &[&Port]) {
    let port = match ports {
        [] => {
            errors.push(
                label,
                INFO,
                format!(
                    "the router's gateway port (device_owner network:router_gateway, device_id \
                     {r}) is not in the configuration: its MAC is the gateway's and cannot be \
                     known otherwise (Neutron lists it to admins: `openstack port list \
                     --device-owner network:router_gateway --router {r}`)"
                ),
            );
            return;
        }
        [port] => port,
        [first, rest @ ..] => {
            for p in rest {
                let msg = format!("router {r} already has gateway port {}", first.id());
                errors.push(&p.label(), "device_id", msg);
            }
            return;
        }
    };
    if port.spec.network_id != g.network_id {
        errors.push(
            &port.label(),
            "network_id",
            format!(
                "{} is not the network of router {r}'s external_gateway_info ({})",
                port.spec.network_id, g.network_id
            ),
        );
        return;
    }
    let held: BTreeSet<IpAddr> = port.fixed_ips.iter().map(|f| f.ip).collect();
    let given: BTreeSet<IpAddr> = g.external_fixed_ips.iter().map(|f| f.ip).collect();
    if held != given {
        errors.push(
            label,
            format!("{INFO}.external_fixed_ips"),
            format!(
                "{given:?} differ from the fixed IPs of its gateway port {} ({held:?}); Neutron \
                 keeps them the same",
                port.id()
            ),
        );
    }
}

/// Why the datapath cannot reach external network `n` through an uplink:
/// the uplink carries it untagged, so it must be flat (or of no type, as
/// in a hand-written file) and alone on its physical network (`UPLINKS`
/// maps an interface to one network).
fn uplink_problem(store: &Store, n: &Network) -> Option<String> {
    let id = &n.id;
    match n.network_type.as_deref() {
        None | Some("flat") => {}
        Some(other) => {
            return Some(format!(
                "network {id} is of type {other}: the datapath reaches an external network \
                 through an uplink, untagged, so a gateway needs a flat one"
            ));
        }
    }
    let physnet = n.physical_network.as_ref()?;
    let other = members(&store.ix.external_of_physnet, physnet).find(|o| *o != id)?;
    Some(format!(
        "{physnet} carries external networks {id} and {other}: an uplink carries one, untagged, \
         so a gateway needs the only external network of its physical network"
    ))
}

//! Routers' external gateways against the rest, as Neutron's `l3_db`
//! checks them (`_validate_gw_info`, and the gateway port's fixed IPs as
//! the core plugin's IPAM takes them): the network exists and is external,
//! each external fixed IP is on a subnet of it and inside it, not that
//! subnet's `gateway_ip`; the router's gateway port is in the
//! configuration (its MAC is the gateway's) and holds exactly those
//! addresses. And the datapath's limit: one external network per physical
//! network (an uplink carries one, untagged).

use std::{collections::BTreeSet, net::IpAddr};

use super::{Store, Touched};
use crate::{
    errors::{Errors, label},
    journal::members,
    neutron::Kind,
    objects::{ExternalGateway, FixedIpSpec, Port, Subnet},
};

const INFO: &str = "external_gateway_info";

/// Routers whose gateway is on a network a change touched (directly or
/// through one of its subnets) are checked and compiled again.
pub fn expand(store: &Store, touched: &mut Touched) {
    let mut networks: BTreeSet<&String> = touched.networks.iter().collect();
    networks.extend(
        touched
            .subnets
            .iter()
            .filter_map(|s| store.subnets.get(s))
            .map(|s| &s.network_id),
    );
    let routers: Vec<String> = networks
        .into_iter()
        .flat_map(|n| members(&store.ix.gateways_of_network, n))
        .cloned()
        .collect();
    touched.routers.extend(routers);
}

/// Checks the gateways of the touched routers and the physical networks
/// of the touched external networks.
pub fn check(store: &Store, errors: &mut Errors, touched: &Touched) {
    for r in &touched.routers {
        gateway(store, errors, r);
    }
    for id in &touched.networks {
        physnet(store, errors, touched, id);
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
        Some(_) => {}
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

/// One external network per physical network: the uplink carries it
/// untagged, and `UPLINKS` maps an interface to one network.
fn physnet(store: &Store, errors: &mut Errors, touched: &Touched, id: &String) {
    let Some(n) = store.networks.get(id) else {
        return;
    };
    let (true, Some(physnet)) = (n.external, &n.physical_network) else {
        return;
    };
    let other = members(&store.ix.external_of_physnet, physnet).find(|o| {
        *o != id
            && (!touched.networks.contains(*o)
                || store.seq(Kind::Network, o) < store.seq(Kind::Network, id))
    });
    if let Some(o) = other {
        errors.push(
            &label("network", id, &n.name),
            "provider:physical_network",
            format!(
                "{physnet} already carries external network {o}: an uplink carries one \
                 external network (untagged), so the datapath serves one per physical network"
            ),
        );
    }
}

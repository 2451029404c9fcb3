//! A snapshot of the store with objects cross-referenced by position, in
//! the order they came: what `dataplane check` reports on and what the
//! tests' reference model reads. The datapath itself compiles from the
//! store.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;

pub use crate::objects::{AddressPair, Direction, Ipv6Mode, PortMatch, StaticRoute};
use crate::{errors::label, neutron::Kind, neutron::MacAddr, objects, store::Store};

#[derive(Debug, Clone)]
pub struct Topology {
    pub max_allowed_address_pairs: usize,
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    /// VM ports (router interfaces are in `routers`).
    pub ports: Vec<Port>,
    pub routers: Vec<Router>,
    pub security_groups: Vec<SecurityGroup>,
    /// Associated floating IPs (one not associated does nothing).
    pub floating_ips: Vec<FloatingIp>,
}

#[derive(Debug, Clone)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub direction: Direction,
    /// IPv6 (`ethertype = "IPv6"`) or IPv4.
    pub ipv6: bool,
    /// IP protocol number; None for any.
    pub protocol: Option<u8>,
    pub ports: PortMatch,
    pub remote: Remote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Any,
    Prefix(IpNet),
    /// Index into [`Topology::security_groups`].
    Group(usize),
}

/// A router and its interfaces (one per attached subnet).
#[derive(Debug, Clone)]
pub struct Router {
    pub id: String,
    pub name: String,
    pub interfaces: Vec<RouterInterface>,
    /// Static routes, as given.
    pub routes: Vec<StaticRoute>,
    /// `external_gateway_info`, once its gateway port is there.
    pub gateway: Option<Gateway>,
}

/// A router's gateway on an external network.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Index into [`Topology::networks`].
    pub network: usize,
    /// The gateway port's MAC.
    pub mac: MacAddr,
    /// `external_fixed_ips` in the order given: (index into
    /// [`Topology::subnets`], address).
    pub addresses: Vec<(usize, IpAddr)>,
    pub enable_snat: bool,
}

/// A floating IP associated with a fixed IP behind a router.
#[derive(Debug, Clone)]
pub struct FloatingIp {
    pub id: String,
    pub address: std::net::Ipv4Addr,
    /// Index into [`Topology::networks`] (the floating network).
    pub network: usize,
    /// Index into [`Topology::ports`]: the port holding the fixed IP.
    pub port: usize,
    pub fixed: std::net::Ipv4Addr,
    /// Index into [`Topology::routers`].
    pub router: usize,
}

/// One address of a router interface port on one subnet.
#[derive(Debug, Clone)]
pub struct RouterInterface {
    /// The Neutron port id of the interface.
    pub port_id: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    /// Index into [`Topology::subnets`].
    pub subnet: usize,
    pub mac: MacAddr,
    pub ip: IpAddr,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// The network's MTU; 0 when not given.
    pub mtu: u32,
    /// `router:external`.
    pub external: bool,
    /// `provider:physical_network`: which uplink of a host carries it.
    pub physical_network: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    pub ipv6_address_mode: Option<Ipv6Mode>,
    pub dns_nameservers: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Port {
    pub id: String,
    pub name: String,
    /// Index into [`Topology::networks`].
    pub network: usize,
    pub mac: MacAddr,
    pub fixed_ips: Vec<FixedIp>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub port_security_enabled: bool,
    /// Indexes into [`Topology::security_groups`], sorted, no duplicates.
    pub security_groups: Vec<usize>,
    /// Host interface carrying the port's traffic.
    pub tap: String,
    /// The chassis the port is bound to (`binding:host_id`), if any.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    /// Index into [`Topology::subnets`].
    pub subnet: usize,
    pub ip: IpAddr,
}

impl Port {
    /// How errors and the CLI name the port.
    pub fn label(&self) -> String {
        label("port", &self.id, &self.name)
    }
}

/// Ids of `kind` in the order they came, with their positions.
fn ordered<'a, T>(
    store: &Store,
    kind: Kind,
    objects: impl Iterator<Item = (&'a String, &'a T)>,
) -> (Vec<&'a T>, BTreeMap<String, usize>)
where
    T: 'a,
{
    let mut all: Vec<(&String, &T)> = objects.collect();
    all.sort_by_key(|(id, _)| store.seq(kind, id));
    let positions = all
        .iter()
        .enumerate()
        .map(|(i, (id, _))| ((*id).clone(), i))
        .collect();
    (all.into_iter().map(|(_, t)| t).collect(), positions)
}

impl Topology {
    /// The store's objects, in the order they came.
    pub fn of(store: &Store) -> Topology {
        let (networks, net_ix) = ordered(store, Kind::Network, store.networks().iter());
        let (subnets, sub_ix) = ordered(store, Kind::Subnet, store.subnets().iter());
        let (groups, sg_ix) = ordered(store, Kind::SecurityGroup, store.security_groups().iter());
        let (routers, router_ix) = ordered(store, Kind::Router, store.routers().iter());
        let (ports, _) = ordered(store, Kind::Port, store.ports().iter());
        let mut t = Topology {
            max_allowed_address_pairs: store.settings().max_allowed_address_pairs,
            networks: networks
                .iter()
                .map(|n| Network {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    mtu: n.mtu,
                    external: n.external,
                    physical_network: n.physical_network.clone(),
                })
                .collect(),
            subnets: subnets
                .iter()
                .map(|s| Subnet {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    network: net_ix[&s.network_id],
                    cidr: s.cidr,
                    gateway_ip: s.gateway_ip,
                    ipv6_ra_mode: s.ipv6_ra_mode,
                    ipv6_address_mode: s.ipv6_address_mode,
                    dns_nameservers: s.dns_nameservers.clone(),
                })
                .collect(),
            ports: Vec::new(),
            routers: routers
                .iter()
                .map(|r| Router {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    interfaces: Vec::new(),
                    routes: r.routes.clone(),
                    gateway: None,
                })
                .collect(),
            security_groups: groups
                .iter()
                .map(|g| SecurityGroup {
                    id: g.id.clone(),
                    name: g.name.clone(),
                    rules: g.rules.iter().map(|r| rule(r, &sg_ix)).collect(),
                })
                .collect(),
            floating_ips: Vec::new(),
        };
        for p in ports {
            t.add_port(
                p,
                &Positions {
                    networks: &net_ix,
                    subnets: &sub_ix,
                    groups: &sg_ix,
                    routers: &router_ix,
                },
            );
        }
        t.gateways(store, &net_ix, &router_ix);
        t.floating_ips(store, &net_ix, &router_ix);
        t
    }

    /// Each router's `external_gateway_info` with its gateway port's MAC;
    /// an address's subnet is the gateway network's subnet holding it.
    fn gateways(
        &mut self,
        store: &Store,
        net_ix: &BTreeMap<String, usize>,
        router_ix: &BTreeMap<String, usize>,
    ) {
        for (id, r) in store.routers() {
            let (Some(g), Some(port)) = (&r.gateway, store.gateway_port(id)) else {
                continue;
            };
            let Some(&network) = net_ix.get(&g.network_id) else {
                continue;
            };
            let addresses = g
                .external_fixed_ips
                .iter()
                .filter_map(|f| {
                    let s = self
                        .subnets
                        .iter()
                        .position(|s| s.network == network && s.cidr.contains(&f.ip))?;
                    Some((s, f.ip))
                })
                .collect();
            self.routers[router_ix[id]].gateway = Some(Gateway {
                network,
                mac: port.spec.mac,
                addresses,
                enable_snat: g.enable_snat,
            });
        }
    }

    /// The associated floating IPs, in the order they came.
    fn floating_ips(
        &mut self,
        store: &Store,
        net_ix: &BTreeMap<String, usize>,
        router_ix: &BTreeMap<String, usize>,
    ) {
        let (all, _) = ordered(store, Kind::FloatingIp, store.floating_ips().iter());
        for f in all {
            let Some(a) = &f.association else {
                continue;
            };
            let (Some(&network), Some(&router), Some(port)) = (
                net_ix.get(&f.floating_network_id),
                router_ix.get(&a.router),
                self.ports.iter().position(|p| p.id == a.port_id),
            ) else {
                continue;
            };
            self.floating_ips.push(FloatingIp {
                id: f.id.clone(),
                address: f.floating_ip_address,
                network,
                port,
                fixed: a.fixed,
                router,
            });
        }
    }
}

/// Positions of objects by id.
struct Positions<'a> {
    networks: &'a BTreeMap<String, usize>,
    subnets: &'a BTreeMap<String, usize>,
    groups: &'a BTreeMap<String, usize>,
    routers: &'a BTreeMap<String, usize>,
}

impl Topology {
    /// A VM port, or a router interface into its router.
    fn add_port(&mut self, p: &objects::Port, at: &Positions) {
        let network = at.networks[&p.spec.network_id];
        let fixed_ips: Vec<FixedIp> = p
            .fixed_ips
            .iter()
            .map(|f| FixedIp {
                subnet: at.subnets[&f.subnet_id],
                ip: f.ip,
            })
            .collect();
        // A router's gateway port is not one of its interfaces (the
        // external network is the gateway's, see `compile::external`).
        if p.spec.router_gateway {
            return;
        }
        if let Some(r) = &p.spec.router {
            self.routers[at.routers[r]]
                .interfaces
                .extend(fixed_ips.iter().map(|f| RouterInterface {
                    port_id: p.spec.id.clone(),
                    network,
                    subnet: f.subnet,
                    mac: p.spec.mac,
                    ip: f.ip,
                }));
            return;
        }
        let mut security_groups: Vec<usize> =
            p.security_groups.iter().map(|g| at.groups[g]).collect();
        security_groups.sort_unstable();
        self.ports.push(Port {
            id: p.spec.id.clone(),
            name: p.spec.name.clone(),
            network,
            mac: p.spec.mac,
            fixed_ips,
            allowed_address_pairs: p.spec.allowed_address_pairs.clone(),
            port_security_enabled: p.port_security_enabled,
            security_groups,
            tap: p.spec.tap.clone(),
            host: p.spec.host.clone(),
        });
    }
}

fn rule(r: &objects::Rule, sg_ix: &BTreeMap<String, usize>) -> Rule {
    Rule {
        direction: r.direction,
        ipv6: r.ipv6,
        protocol: r.protocol,
        ports: r.ports,
        remote: match &r.remote {
            objects::Remote::Any => Remote::Any,
            objects::Remote::Prefix(p) => Remote::Prefix(*p),
            objects::Remote::Group(g) => Remote::Group(sg_ix[g]),
        },
    }
}

//! Reverse indexes of the store: which objects refer to which, and which
//! ports use a MAC, an address or a tap. Each is a set of (owner, member)
//! pairs, journaled like the objects, so that they roll back with them.

use std::net::IpAddr;

use super::Pairs;
use crate::{
    journal::JSet,
    neutron::MacAddr,
    objects::{FloatingIp, Network, Port, Remote, Router, SecurityGroup, Subnet},
};

#[derive(Debug, Default)]
pub struct Indexes {
    /// (network, subnet)
    pub subnets_of_network: Pairs,
    /// (network, port): VM ports and router interfaces.
    pub ports_of_network: Pairs,
    /// (subnet, port): ports with a fixed IP on the subnet.
    pub ports_of_subnet: Pairs,
    /// (security group, port): the port names the group.
    pub ports_of_group: Pairs,
    /// (remote group, security group): a rule of the group names the remote.
    pub groups_naming: Pairs,
    /// (router, interface port)
    pub interfaces_of_router: Pairs,
    /// ((network, MAC), port)
    pub macs: JSet<((String, MacAddr), String)>,
    /// ((network, fixed IP), port)
    pub ips: JSet<((String, IpAddr), String)>,
    /// (tap, VM port)
    pub taps: Pairs,
    /// (host, port): ports bound to a chassis.
    pub ports_of_host: Pairs,
    /// (external network, router): the router's gateway is on it.
    pub gateways_of_network: Pairs,
    /// (physical network, external network)
    pub external_of_physnet: Pairs,
    /// (port, floating IP): the floating IP names the port.
    pub floating_of_port: Pairs,
    /// (floating network, floating IP)
    pub floating_of_network: Pairs,
    /// (router, floating IP): resolved, associated floating IPs.
    pub floating_of_router: Pairs,
    /// ((floating network, address), floating IP)
    pub floating_addrs: JSet<((String, IpAddr), String)>,
    /// ((port, fixed IP, floating network), floating IP): resolved.
    pub floating_of_fixed: JSet<((String, IpAddr, String), String)>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

fn put<K: Ord + Clone>(set: &mut JSet<K>, key: K, add: bool) {
    if add {
        set.add(key);
    } else {
        set.remove(&key);
    }
}

impl Indexes {
    pub fn index_subnet(&mut self, s: &Subnet) {
        self.subnets_of_network.add(pair(&s.network_id, &s.id));
    }

    pub fn unindex_subnet(&mut self, s: &Subnet) {
        self.subnets_of_network.remove(&pair(&s.network_id, &s.id));
    }

    fn remotes(g: &SecurityGroup) -> impl Iterator<Item = &String> {
        g.rules.iter().filter_map(|r| match &r.remote {
            Remote::Group(x) => Some(x),
            _ => None,
        })
    }

    pub fn index_group(&mut self, g: &SecurityGroup) {
        for x in Self::remotes(g) {
            self.groups_naming.add(pair(x, &g.id));
        }
    }

    pub fn unindex_group(&mut self, g: &SecurityGroup) {
        for x in Self::remotes(g) {
            self.groups_naming.remove(&pair(x, &g.id));
        }
    }

    pub fn visit_network(&mut self, n: &Network, add: bool) {
        if let (true, Some(physnet)) = (n.external, &n.physical_network) {
            put(&mut self.external_of_physnet, pair(physnet, &n.id), add);
        }
    }

    pub fn visit_router(&mut self, r: &Router, add: bool) {
        if let Some(g) = &r.gateway {
            put(
                &mut self.gateways_of_network,
                pair(&g.network_id, &r.id),
                add,
            );
        }
    }

    /// A floating IP's entries: what it names, and what it resolved to.
    pub fn visit_floating_ip(&mut self, f: &FloatingIp, add: bool) {
        let network = &f.floating_network_id;
        put(&mut self.floating_of_network, pair(network, &f.id), add);
        let addr = (network.clone(), IpAddr::V4(f.floating_ip_address));
        put(&mut self.floating_addrs, (addr, f.id.clone()), add);
        if let Some(p) = &f.port_id {
            put(&mut self.floating_of_port, pair(p, &f.id), add);
        }
        if let Some(a) = &f.association {
            put(&mut self.floating_of_router, pair(&a.router, &f.id), add);
            let fixed = (a.port_id.clone(), IpAddr::V4(a.fixed), network.clone());
            put(&mut self.floating_of_fixed, (fixed, f.id.clone()), add);
        }
    }

    pub fn index_port(&mut self, p: &Port) {
        self.visit_port(p, true);
    }

    pub fn unindex_port(&mut self, p: &Port) {
        self.visit_port(p, false);
    }

    fn visit_port(&mut self, p: &Port, add: bool) {
        let (id, spec) = (&p.spec.id, &p.spec);
        put(&mut self.ports_of_network, pair(&spec.network_id, id), add);
        put(
            &mut self.macs,
            ((spec.network_id.clone(), spec.mac), id.clone()),
            add,
        );
        for f in &p.fixed_ips {
            put(&mut self.ports_of_subnet, pair(&f.subnet_id, id), add);
            put(
                &mut self.ips,
                ((spec.network_id.clone(), f.ip), id.clone()),
                add,
            );
        }
        for g in &p.security_groups {
            put(&mut self.ports_of_group, pair(g, id), add);
        }
        match &spec.router {
            Some(r) => put(&mut self.interfaces_of_router, pair(r, id), add),
            None => put(&mut self.taps, pair(&spec.tap, id), add),
        }
        if let Some(h) = &spec.host {
            put(&mut self.ports_of_host, pair(h, id), add);
        }
    }

    pub fn commit(&mut self) {
        self.subnets_of_network.commit();
        self.ports_of_network.commit();
        self.ports_of_subnet.commit();
        self.ports_of_group.commit();
        self.groups_naming.commit();
        self.interfaces_of_router.commit();
        self.macs.commit();
        self.ips.commit();
        self.taps.commit();
        self.ports_of_host.commit();
        self.gateways_of_network.commit();
        self.external_of_physnet.commit();
        self.floating_of_port.commit();
        self.floating_of_network.commit();
        self.floating_of_router.commit();
        self.floating_addrs.commit();
        self.floating_of_fixed.commit();
    }

    pub fn rollback(&mut self) {
        self.subnets_of_network.rollback();
        self.ports_of_network.rollback();
        self.ports_of_subnet.rollback();
        self.ports_of_group.rollback();
        self.groups_naming.rollback();
        self.interfaces_of_router.rollback();
        self.macs.rollback();
        self.ips.rollback();
        self.taps.rollback();
        self.ports_of_host.rollback();
        self.gateways_of_network.rollback();
        self.external_of_physnet.rollback();
        self.floating_of_port.rollback();
        self.floating_of_network.rollback();
        self.floating_of_router.rollback();
        self.floating_addrs.rollback();
        self.floating_of_fixed.rollback();
    }
}

//! Compiles the store into the map entries the datapath needs
//! ([`Desired`]), change by change.
//!
//! Each object's contribution is recorded when it is compiled, so that a
//! change removes exactly what the object added before and adds what it
//! adds now. What depends on several objects is recomputed only for the
//! keys a change touched: an address or MAC owned by two ports becomes a
//! group (`neighbours`), a router's interfaces override the ports' entries
//! (`routers`), and the security groups of a set of ports compile into
//! one policy (`policy`). A one-port change costs the port's addresses,
//! not the configuration's size.
//!
//! Like the store, the compiler stages a change until [`Engine::commit`]
//! or [`Engine::rollback`].

mod entries;
mod external;
mod indexes;
mod neighbours;
mod placement;
mod policy;
mod ports;
mod routers;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_external;

use common::{IDENTITY_CIDR, MAX_GROUPS, MAX_ROUTER_INTERFACES, MAX_SECURITY_GROUPS, SgMeta};
pub use indexes::{Exhausted, Indexes};
pub use placement::{Locality, Place, TUNNEL_PORT_ID};
pub use policy::port_prefixes;
pub use ports::PortRecord;

use crate::{
    desired::Desired,
    journal::Journaled,
    store::{Store, Touched},
};

/// The stable indexes of every kind of object the maps refer to.
#[derive(Debug)]
pub struct AllIndexes {
    pub ports: Indexes,
    pub networks: Indexes,
    pub routers: Indexes,
    pub security_groups: Indexes,
    /// Groups of ports sharing an address or MAC, by name
    /// ("<network id> <address>/<prefix>" or "<network id> <MAC>").
    pub groups: Indexes,
    /// Policies (= identities), by set of security groups.
    pub policies: Indexes,
    /// CIDR identities of rule prefixes.
    pub cidrs: Indexes,
    /// Chassis (other hosts), by name.
    pub chassis: Indexes,
}

impl AllIndexes {
    fn each(&mut self) -> [&mut Indexes; 8] {
        [
            &mut self.chassis,
            &mut self.ports,
            &mut self.networks,
            &mut self.routers,
            &mut self.security_groups,
            &mut self.groups,
            &mut self.policies,
            &mut self.cidrs,
        ]
    }
}

/// The compiled configuration and what it was compiled from.
#[derive(Debug)]
pub struct Engine {
    desired: Desired,
    ix: AllIndexes,
    ports: Journaled<String, PortRecord>,
    routers: Journaled<String, routers::RouterRecord>,
    floating: Journaled<String, external::FloatingRecord>,
    owners: neighbours::Owners,
    policy: policy::Policies,
    locality: Locality,
    /// Every port of each flood domain, wherever it is (the physical
    /// flood sets in `desired` hold the local ones and the tunnel).
    members: crate::desired::Flood,
    /// Domains whose members changed place in this change.
    dirty_domains: std::collections::BTreeSet<u32>,
    /// Underlay address of each chassis, as compiled.
    chassis_ips: Journaled<String, [u8; 4]>,
    /// VNI of each network index, as compiled.
    net_vni: Journaled<u32, u32>,
}

/// Why a change could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    #[error("{domain} spans {chassis} chassis; a flood domain reaches at most {max} from one host", max = common::MAX_FLOOD_CHASSIS)]
    TooManyChassis { domain: String, chassis: usize },
}

impl Engine {
    /// An empty configuration for a datapath sized for `max_ports`.
    pub fn new(max_ports: u32) -> Engine {
        Engine {
            desired: Desired::default(),
            ix: AllIndexes {
                ports: Indexes::new("ports", max_ports),
                networks: Indexes::new("networks", common::FLOOD_DOMAIN_GROUP_BASE - 1),
                routers: Indexes::new("routers", MAX_ROUTER_INTERFACES),
                security_groups: Indexes::new("security groups", MAX_SECURITY_GROUPS - 1),
                groups: Indexes::new("address groups", MAX_GROUPS - 1),
                policies: Indexes::new("security-group policies", IDENTITY_CIDR - 1),
                cidrs: Indexes::tagged("remote prefixes", IDENTITY_CIDR - 1, IDENTITY_CIDR),
                chassis: Indexes::new("chassis", common::MAX_CHASSIS),
            },
            ports: Journaled::default(),
            routers: Journaled::default(),
            floating: Journaled::default(),
            owners: neighbours::Owners::default(),
            policy: policy::Policies::default(),
            locality: Locality::default(),
            members: Default::default(),
            dirty_domains: Default::default(),
            chassis_ips: Journaled::default(),
            net_vni: Journaled::default(),
        }
    }

    /// Sets what this host is (its chassis name, its tunnel); every port
    /// is placed again. For the start, before the first change.
    pub fn set_locality(
        &mut self,
        store: &Store,
        locality: Locality,
        tap: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<(), CompileError> {
        if self.locality == locality {
            return Ok(());
        }
        self.locality = locality;
        placement::tunnel_port(self)?;
        let ports: Vec<String> = self.ports.keys().cloned().collect();
        for id in &ports {
            ports::recompile(self, store, id, tap)?;
        }
        // Gateways name their uplink's interface.
        let routers: Vec<String> = self.routers.keys().cloned().collect();
        for id in &routers {
            routers::recompile(self, store, id);
        }
        external::uplinks(self, store);
        self.settle(store, &Touched::default())
    }

    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    pub fn indexes(&self) -> &AllIndexes {
        &self.ix
    }

    /// What a port compiled to, by port id.
    pub fn port(&self, id: &str) -> Option<&PortRecord> {
        self.ports.get(&id.to_string())
    }

    /// Compiles what `touched` says changed in `store`; `tap` gives the
    /// interface index of a port's tap, or None while it does not exist.
    pub fn compile(
        &mut self,
        store: &Store,
        touched: &Touched,
        tap: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<(), CompileError> {
        for id in &touched.networks {
            if store.networks().contains_key(id) {
                self.ix.networks.assign(id)?;
            }
        }
        placement::chassis_and_vnis(self, store, touched)?;
        for id in &touched.security_groups {
            self.security_group(store, id)?;
        }
        for id in &touched.routers {
            if store.routers().contains_key(id) {
                self.ix.routers.assign(id)?;
            }
        }
        for id in touched.ports.iter().chain(&touched.placed) {
            ports::recompile(self, store, id, tap)?;
        }
        for id in &touched.routers {
            routers::recompile(self, store, id);
        }
        for id in &touched.floating_ips {
            external::floating(self, store, id);
        }
        if !touched.networks.is_empty() {
            external::uplinks(self, store);
        }
        self.settle(store, touched)?;
        for id in &touched.routers {
            if !store.routers().contains_key(id) {
                self.ix.routers.unassign(id);
            }
        }
        for id in &touched.networks {
            if !store.networks().contains_key(id) {
                self.ix.networks.unassign(id);
            }
        }
        Ok(())
    }

    /// What follows from the keys a change touched: groups and tables,
    /// policies, physical flood sets, active members.
    fn settle(&mut self, store: &Store, touched: &Touched) -> Result<(), CompileError> {
        neighbours::settle(self)?;
        policy::settle(self, store, touched)?;
        placement::flood_sets(self)?;
        placement::active_members(self, store, touched);
        Ok(())
    }

    /// The port's tap came, went or changed (a VM rebooted): only its
    /// entries are compiled again.
    pub fn reattach(
        &mut self,
        store: &Store,
        port: &str,
        ifindex: Option<u32>,
    ) -> Result<(), CompileError> {
        ports::recompile(self, store, &port.to_string(), &|_| ifindex)?;
        self.settle(store, &Touched::default())
    }

    fn security_group(&mut self, store: &Store, id: &String) -> Result<(), CompileError> {
        if store.security_groups().contains_key(id) {
            let i = self.ix.security_groups.assign(id)?;
            let meta = SgMeta { id: copy_str(id) };
            if self.desired.sg_meta.get(&i) != Some(&meta) {
                self.desired.sg_meta.insert(i, meta);
            }
        } else if let Some(i) = self.ix.security_groups.unassign(id) {
            self.desired.sg_meta.remove(&i);
        }
        Ok(())
    }

    /// Takes over the index a previous run gave a port (restart).
    pub fn adopt_port(&mut self, id: &str, index: u32) {
        self.ix.ports.adopt(id, index);
    }

    /// Takes over the index a previous run gave a group of ports.
    pub fn adopt_group(&mut self, name: &str, index: u32) {
        self.ix.groups.adopt(name, index);
    }

    /// Takes over the index a previous run gave a security group.
    pub fn adopt_security_group(&mut self, id: &str, index: u32) {
        self.ix.security_groups.adopt(id, index);
    }

    /// Holds a port index back until [`release_port`](Engine::release_port):
    /// a previous run left state under it.
    pub fn reserve_port(&mut self, index: u32) {
        self.ix.ports.reserve(index);
        self.ix.ports.commit();
    }

    /// Port indexes given up by removed ports and not reusable yet.
    pub fn quarantined_ports(&self) -> Vec<u32> {
        self.ix.ports.quarantined().collect()
    }

    /// Makes a removed port's index reusable: nothing in the kernel refers
    /// to it any more (its connections are flushed).
    pub fn release_port(&mut self, index: u32) {
        self.ix.ports.release(index);
        self.ix.ports.commit();
    }

    /// Makes the staged change final. Indexes of removed objects other than
    /// ports are reusable from now on (nothing outlives them in the
    /// kernel that a newcomer could inherit but a group's active member and
    /// a security group's counters, both reset for a newcomer).
    pub fn commit(&mut self) {
        self.desired.commit();
        for ix in [
            &mut self.ix.networks,
            &mut self.ix.routers,
            &mut self.ix.security_groups,
            &mut self.ix.groups,
            &mut self.ix.policies,
            &mut self.ix.cidrs,
            &mut self.ix.chassis,
        ] {
            let q: Vec<u32> = ix.quarantined().collect();
            for i in q {
                ix.release(i);
            }
        }
        for ix in self.ix.each() {
            ix.commit();
        }
        self.ports.commit();
        self.routers.commit();
        self.floating.commit();
        self.owners.commit();
        self.policy.commit();
        self.members.commit();
        self.dirty_domains.clear();
        self.chassis_ips.commit();
        self.net_vni.commit();
    }

    pub fn rollback(&mut self) {
        self.desired.rollback();
        for ix in self.ix.each() {
            ix.rollback();
        }
        self.ports.rollback();
        self.routers.rollback();
        self.floating.rollback();
        self.owners.rollback();
        self.policy.rollback();
        self.members.rollback();
        self.dirty_domains.clear();
        self.chassis_ips.rollback();
        self.net_vni.rollback();
    }
}

/// A string in a NUL-padded fixed-size field (ids in the meta maps).
pub fn copy_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

//! The configuration in force: every validated object by kind and id,
//! reverse indexes for the checks that span objects, and the way changes
//! come in.
//!
//! A change ([`Change`]: an object written or deleted) is checked on its
//! own, staged, then checked against everything it touches: references
//! (a port's network, subnets, groups and router), uniqueness (a MAC or a
//! fixed IP in a network, a tap), objects still in use (a network with
//! ports), a router's interfaces. The work is proportional to the change:
//! the indexes say which other objects a change can affect. A refused
//! change is rolled back and changes nothing; an accepted one stays staged
//! until [`Store::commit`] (the datapath has written it) or
//! [`Store::rollback`] (it could not).

mod external;
mod floating;
mod index;
mod resolve;
mod stage;

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{DefaultHasher, Hash, Hasher},
};

use serde_json::Value;

use crate::{
    check::{self, Checked},
    errors::{ConfigErrors, Errors},
    journal::{JCell, JSet, Journaled},
    neutron::{Document, Kind, Object},
    objects::{
        Active, Chassis, FloatingIp, Network, Port, Router, SecurityGroup, Settings, Subnet,
    },
};

/// One object written (its new value) or deleted (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub value: Option<Value>,
}

/// What a source delivers: some objects changed, or a whole configuration
/// (everything not in it is deleted).
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Changes(Vec<Change>),
    Snapshot(Document),
}

/// What an accepted change touched, for the compiler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub settings: bool,
    pub networks: BTreeSet<String>,
    pub subnets: BTreeSet<String>,
    pub security_groups: BTreeSet<String>,
    pub routers: BTreeSet<String>,
    /// Ports written, deleted, or resolved again because something they
    /// depend on changed (present or not in the store now).
    pub ports: BTreeSet<String>,
    /// Ports to compile again without a change of their own (their
    /// chassis came or went).
    pub placed: BTreeSet<String>,
    pub chassis: BTreeSet<String>,
    /// Active-member records written or deleted.
    pub actives: BTreeSet<String>,
    /// Floating IPs written, deleted, or resolved again (their port,
    /// network or router changed).
    pub floating_ips: BTreeSet<String>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        *self == Touched::default()
    }

    /// Everything in `store`: compiles it from nothing.
    pub fn all(store: &Store) -> Touched {
        Touched {
            settings: true,
            networks: store.networks().keys().cloned().collect(),
            subnets: store.subnets().keys().cloned().collect(),
            security_groups: store.security_groups().keys().cloned().collect(),
            routers: store.routers().keys().cloned().collect(),
            ports: store.ports().keys().cloned().collect(),
            placed: BTreeSet::new(),
            chassis: store.chassis().keys().cloned().collect(),
            actives: store.actives().keys().cloned().collect(),
            floating_ips: store.floating_ips().keys().cloned().collect(),
        }
    }
}

/// How an object was written: a digest of its value (to tell a rewrite
/// from a change) and when it first came (document order for snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Written {
    digest: u64,
    seq: u64,
}

/// The validated configuration.
#[derive(Debug, Default)]
pub struct Store {
    settings: JCell<Settings>,
    networks: Journaled<String, Network>,
    subnets: Journaled<String, Subnet>,
    security_groups: Journaled<String, SecurityGroup>,
    routers: Journaled<String, Router>,
    ports: Journaled<String, Port>,
    chassis: Journaled<String, Chassis>,
    actives: Journaled<String, Active>,
    floating_ips: Journaled<String, FloatingIp>,
    written: Journaled<(Kind, String), Written>,
    next_seq: JCell<u64>,
    ix: index::Indexes,
}

fn digest(value: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

impl Store {
    pub fn settings(&self) -> &Settings {
        self.settings.get()
    }

    pub fn networks(&self) -> &BTreeMap<String, Network> {
        self.networks.map()
    }

    pub fn subnets(&self) -> &BTreeMap<String, Subnet> {
        self.subnets.map()
    }

    pub fn security_groups(&self) -> &BTreeMap<String, SecurityGroup> {
        self.security_groups.map()
    }

    pub fn routers(&self) -> &BTreeMap<String, Router> {
        self.routers.map()
    }

    pub fn ports(&self) -> &BTreeMap<String, Port> {
        self.ports.map()
    }

    pub fn port(&self, id: &str) -> Option<&Port> {
        self.ports.get(&id.to_string())
    }

    pub fn chassis(&self) -> &BTreeMap<String, Chassis> {
        self.chassis.map()
    }

    pub fn actives(&self) -> &BTreeMap<String, Active> {
        self.actives.map()
    }

    pub fn floating_ips(&self) -> &BTreeMap<String, FloatingIp> {
        self.floating_ips.map()
    }

    /// A router's gateway port (`network:router_gateway`), when it has one.
    pub fn gateway_port(&self, router: &String) -> Option<&Port> {
        self.interfaces_of_router(router)
            .filter_map(|p| self.port(p))
            .find(|p| p.spec.router_gateway)
    }

    /// The external network whose `provider:physical_network` is
    /// `physnet`, if it is the only one (an uplink carries one, untagged;
    /// validation refuses a gateway on one that shares its physical
    /// network).
    pub fn external_network_on<'a>(&'a self, physnet: &'a String) -> Option<&'a String> {
        let mut on = crate::journal::members(&self.ix.external_of_physnet, physnet);
        let first = on.next();
        on.next().is_none().then_some(first).flatten()
    }

    /// Ids of the ports bound to `host`.
    pub fn ports_of_host<'a>(&'a self, host: &'a String) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.ports_of_host, host)
    }

    /// The order objects of `kind` first came in.
    pub fn seq(&self, kind: Kind, id: &str) -> u64 {
        self.written
            .get(&(kind, id.to_string()))
            .map(|w| w.seq)
            .unwrap_or(u64::MAX)
    }

    /// Ids of the ports (router interfaces too) of a network.
    pub fn ports_of_network<'a>(&'a self, network: &'a String) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.ports_of_network, network)
    }

    /// Ids of the VM ports whose tap is `tap` (one, the store sees to it;
    /// none for a name no port uses).
    pub fn ports_with_tap<'a>(&'a self, tap: &'a String) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.taps, tap)
    }

    /// Ids of the interface ports of a router.
    pub fn interfaces_of_router<'a>(
        &'a self,
        router: &'a String,
    ) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.interfaces_of_router, router)
    }

    /// Ids of the ports whose `security_groups` name `group`.
    pub fn members_of_group<'a>(&'a self, group: &'a String) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.ports_of_group, group)
    }

    /// Ids of the security groups with a rule naming `group` as remote.
    pub fn groups_naming<'a>(&'a self, group: &'a String) -> impl Iterator<Item = &'a String> {
        crate::journal::members(&self.ix.groups_naming, group)
    }

    /// The changes that turn this configuration into `document`: objects
    /// new or written differently, and objects it no longer holds.
    pub fn diff(&self, document: &Document) -> Vec<Change> {
        let mut seen = BTreeSet::new();
        let mut changes = Vec::new();
        for o in &document.objects {
            let key = (o.kind, o.id.clone());
            if self.written.get(&key).map(|w| w.digest) != Some(digest(&o.value)) {
                changes.push(Change {
                    kind: o.kind,
                    id: o.id.clone(),
                    value: Some(o.value.clone()),
                });
            }
            seen.insert(key);
        }
        for (kind, id) in self.written.keys() {
            if !seen.contains(&(*kind, id.clone())) {
                changes.push(Change {
                    kind: *kind,
                    id: id.clone(),
                    value: None,
                });
            }
        }
        changes
    }

    /// Applies `changes` if the configuration they make is valid; what
    /// they touched is staged until [`commit`](Store::commit) or
    /// [`rollback`](Store::rollback). Refused: nothing changes.
    pub fn apply(&mut self, changes: &[Change]) -> Result<Touched, ConfigErrors> {
        let checked = check_each(changes)?;
        let mut touched = Touched::default();
        let mut written_ports = stage::WrittenPorts::new();
        for (change, checked) in changes.iter().zip(checked) {
            stage::one(self, change, checked, &mut touched, &mut written_ports);
        }
        let mut errors = Errors::default();
        self.still_used(&mut errors, changes);
        resolve::ports(self, &mut errors, written_ports, &mut touched);
        resolve::subnets(self, &mut errors, &touched);
        resolve::network_mtus(self, &mut errors, &touched);
        resolve::remote_groups(self, &mut errors, &touched);
        resolve::vnis(self, &mut errors, &touched);
        external::expand(self, &mut touched);
        resolve::routers(self, &mut errors, &touched);
        external::check(self, &mut errors, &touched);
        floating::expand(self, &mut touched);
        floating::resolve(self, &mut errors, &touched);
        if !errors.is_empty() {
            self.rollback();
            return Err(ConfigErrors(errors.0));
        }
        Ok(touched)
    }

    /// Makes staged changes final.
    pub fn commit(&mut self) {
        self.settings.commit();
        self.networks.commit();
        self.subnets.commit();
        self.security_groups.commit();
        self.routers.commit();
        self.ports.commit();
        self.chassis.commit();
        self.actives.commit();
        self.floating_ips.commit();
        self.written.commit();
        self.next_seq.commit();
        self.ix.commit();
    }

    /// Undoes staged changes.
    pub fn rollback(&mut self) {
        self.settings.rollback();
        self.networks.rollback();
        self.subnets.rollback();
        self.security_groups.rollback();
        self.routers.rollback();
        self.ports.rollback();
        self.chassis.rollback();
        self.actives.rollback();
        self.floating_ips.rollback();
        self.written.rollback();
        self.next_seq.rollback();
        self.ix.rollback();
    }

    /// A deleted object that something still refers to is refused, as
    /// Neutron refuses it ("in use").
    fn still_used(&self, errors: &mut Errors, changes: &[Change]) {
        for c in changes.iter().filter(|c| c.value.is_none()) {
            let id = &c.id;
            let label = crate::errors::label(c.kind.noun(), id, "");
            let users: Vec<String> = match c.kind {
                Kind::Network if !self.networks.contains_key(id) => self
                    .ports_of_network(id)
                    .map(|p| format!("port {p}"))
                    .chain(
                        crate::journal::members(&self.ix.subnets_of_network, id)
                            .map(|s| format!("subnet {s}")),
                    )
                    .chain(
                        crate::journal::members(&self.ix.gateways_of_network, id)
                            .map(|r| format!("router {r}'s gateway")),
                    )
                    .chain(
                        crate::journal::members(&self.ix.floating_of_network, id)
                            .map(|f| format!("floating IP {f}")),
                    )
                    .collect(),
                // Neutron disassociates the port's floating IPs; a
                // configuration must say so (port_id null).
                Kind::Port if !self.ports.contains_key(id) => {
                    crate::journal::members(&self.ix.floating_of_port, id)
                        .map(|f| format!("floating IP {f} (its port_id)"))
                        .collect()
                }
                Kind::Subnet if !self.subnets.contains_key(id) => {
                    crate::journal::members(&self.ix.ports_of_subnet, id)
                        .map(|p| format!("port {p}"))
                        .collect()
                }
                Kind::SecurityGroup if !self.security_groups.contains_key(id) => self
                    .members_of_group(id)
                    .map(|p| format!("port {p}"))
                    .chain(
                        crate::journal::members(&self.ix.groups_naming, id)
                            .filter(|g| *g != id)
                            .map(|g| format!("security group {g}")),
                    )
                    .collect(),
                Kind::Router if !self.routers.contains_key(id) => self
                    .interfaces_of_router(id)
                    .map(|p| format!("port {p}"))
                    .collect(),
                _ => Vec::new(),
            };
            if !users.is_empty() {
                let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
                errors.push(
                    &label,
                    "",
                    format!(
                        "cannot be deleted: still in use by {}{}",
                        shown.join(", "),
                        if users.len() > 5 {
                            format!(" and {} more", users.len() - 5)
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
    }
}

/// Checks every written object on its own; all errors or none.
fn check_each(changes: &[Change]) -> Result<Vec<Option<Checked>>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match &c.value {
            None => out.push(None),
            Some(value) => {
                let object = Object {
                    kind: c.kind,
                    id: c.id.clone(),
                    value: value.clone(),
                };
                match check::check(&object) {
                    Ok(checked) => out.push(Some(checked)),
                    Err(e) => {
                        errors.extend(e);
                        out.push(None);
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Sets of (owner, member) pairs for each reverse index.
pub(crate) type Pairs = JSet<(String, String)>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn port(id: &str, mac: &str, ip: &str) -> Change {
        Change {
            kind: Kind::Port,
            id: id.into(),
            value: Some(json!({
                "id": id, "network_id": "n", "mac_address": mac,
                "fixed_ips": [{ "subnet_id": "s", "ip_address": ip }],
            })),
        }
    }

    #[test]
    fn a_port_written_twice_in_one_batch_is_its_last_write() {
        let mut store = Store::default();
        let mut changes = vec![
            Change {
                kind: Kind::Network,
                id: "n".into(),
                value: Some(json!({ "id": "n" })),
            },
            Change {
                kind: Kind::Subnet,
                id: "s".into(),
                value: Some(json!({ "id": "s", "network_id": "n", "cidr": "10.0.0.0/24" })),
            },
            port("a", "fa:16:3e:00:00:01", "10.0.0.5"),
            port("b", "fa:16:3e:00:00:02", "10.0.0.6"),
            // a again, with b's old address: no clash, b moves too.
            port("a", "fa:16:3e:00:00:03", "10.0.0.6"),
            port("b", "fa:16:3e:00:00:04", "10.0.0.7"),
            port("c", "fa:16:3e:00:00:05", "10.0.0.8"),
        ];
        changes.push(Change {
            kind: Kind::Port,
            id: "c".into(),
            value: None,
        });
        store.apply(&changes).unwrap_or_else(|e| panic!("{e}"));
        store.commit();
        let mac = |id: &str| store.port(id).map(|p| p.spec.mac.to_string());
        assert_eq!(mac("a").as_deref(), Some("fa:16:3e:00:00:03"));
        assert_eq!(mac("b").as_deref(), Some("fa:16:3e:00:00:04"));
        assert_eq!(mac("c"), None, "written then deleted in the batch");
        assert_eq!(store.ports().len(), 2);
    }
}

//! What the running agent publishes for the readers (`trace`, `monitor`,
//! `show`) beside its control socket, in `/run/dataplane/<instance>.json`:
//! who runs the instance and the names the pinned maps do not hold (the
//! maps know ports by index, id and tap only): port names, security
//! groups, subnets with their gateways, routers. Only the holder of the
//! instance's lock writes it (atomically: written aside, then renamed).
//!
//! The file describes the configuration the agent applied last. It stays
//! when the agent exits leaving the datapath running (the names still
//! describe the pinned state), and goes with `dataplane stop`. Readers use
//! it for names and explanations only; verdicts and counters come from
//! the maps.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
};

use anyhow::{Context, Result};
use dataplane_config::{Store, Touched};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::lock::RUN_DIR;

pub fn path(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.json"))
}

/// The agent and its configuration, as readers need them. A status view
/// would read (and extend) this too.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Facts {
    pub instance: String,
    /// The agent that wrote this.
    pub pid: u32,
    /// Where its configuration comes from.
    pub source: String,
    /// Generation of the configuration described.
    pub generation: u64,
    /// Ports by id.
    pub ports: BTreeMap<String, PortFacts>,
    /// Subnets by id.
    pub subnets: BTreeMap<String, SubnetFacts>,
    /// Security groups: id -> name.
    pub security_groups: BTreeMap<String, String>,
    /// Routers: id -> name.
    pub routers: BTreeMap<String, String>,
    /// Networks: id -> name (`show topology`; absent from an older agent's
    /// facts).
    #[serde(default)]
    pub networks: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PortFacts {
    pub name: String,
    pub tap: String,
    pub network_id: String,
    pub mac: String,
    /// Subnet ids of its fixed IPs.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub port_security: bool,
    /// For a router interface: its router's id.
    pub router: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubnetFacts {
    pub name: String,
    pub network_id: String,
    pub cidr: IpNet,
    pub gateway_ip: Option<IpAddr>,
}

impl Facts {
    /// The facts of a configuration.
    pub fn of(store: &Store) -> Facts {
        let mut facts = Facts::default();
        facts.refresh(store, &Touched::all(store));
        facts
    }

    /// Brings the objects `touched` names up to date with `store` (added,
    /// changed or gone): the cost of a change, not of the configuration.
    pub fn refresh(&mut self, store: &Store, touched: &Touched) {
        for id in &touched.ports {
            match store.port(id) {
                Some(p) => {
                    let mut subnets: Vec<String> =
                        p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
                    subnets.dedup();
                    let facts = PortFacts {
                        name: p.spec.name.clone(),
                        tap: p.spec.tap.clone(),
                        network_id: p.spec.network_id.clone(),
                        mac: p.spec.mac.to_string(),
                        subnets,
                        security_groups: p.security_groups.clone(),
                        port_security: p.port_security_enabled,
                        router: p.spec.router.clone(),
                    };
                    self.ports.insert(id.clone(), facts);
                }
                None => {
                    self.ports.remove(id);
                }
            }
        }
        for id in &touched.subnets {
            match store.subnets().get(id) {
                Some(s) => {
                    let facts = SubnetFacts {
                        name: s.name.clone(),
                        network_id: s.network_id.clone(),
                        cidr: s.cidr,
                        gateway_ip: s.gateway_ip,
                    };
                    self.subnets.insert(id.clone(), facts);
                }
                None => {
                    self.subnets.remove(id);
                }
            }
        }
        let names = |into: &mut BTreeMap<String, String>,
                     ids: &BTreeSet<String>,
                     of: &dyn Fn(&str) -> Option<String>| {
            for id in ids {
                match of(id) {
                    Some(name) => into.insert(id.clone(), name),
                    None => into.remove(id),
                };
            }
        };
        names(&mut self.security_groups, &touched.security_groups, &|id| {
            store.security_groups().get(id).map(|g| g.name.clone())
        });
        names(&mut self.routers, &touched.routers, &|id| {
            store.routers().get(id).map(|r| r.name.clone())
        });
        names(&mut self.networks, &touched.networks, &|id| {
            store.networks().get(id).map(|n| n.name.clone())
        });
    }

    /// Writes the facts for `instance` (aside, then renamed into place).
    pub fn write(&self, instance: &str) -> Result<()> {
        let path = path(instance);
        let tmp = path.with_extension("json.tmp");
        std::fs::create_dir_all(RUN_DIR)?;
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The facts an agent published for `instance`, if any.
    pub fn read(instance: &str) -> Option<Facts> {
        let text = std::fs::read(path(instance)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Removes the published facts (the datapath was removed).
    pub fn remove(instance: &str) {
        let _ = std::fs::remove_file(path(instance));
    }

    /// A group's label: "name (id)", or the id when it has no name.
    pub fn security_group_label(&self, id: &str) -> String {
        label(id, self.security_groups.get(id))
    }

    /// A router's label: "name (id)", or the id.
    pub fn router_label(&self, id: &str) -> String {
        label(id, self.routers.get(id))
    }

    /// The port's name, if it has one.
    pub fn port_name(&self, id: &str) -> Option<&str> {
        self.ports
            .get(id)
            .map(|p| p.name.as_str())
            .filter(|n| !n.is_empty())
    }
}

fn label(id: &str, name: Option<&String>) -> String {
    match name {
        Some(n) if !n.is_empty() && n != id => format!("{n} ({id})"),
        _ => id.to_string(),
    }
}

/// Keeps the published facts in step with the agent's configuration:
/// each applied change names the objects it touched, and at most once a
/// tick those objects are brought up to date and the whole file is written
/// again, on a thread of its own, so that the agent's loop never waits for
/// the serialisation of a large configuration (it was the slowest part of
/// a one-port change at 100,000 ports). While a write is under way, changes
/// gather for the next one.
pub struct Publisher {
    instance: String,
    source: String,
    facts: Arc<Facts>,
    /// Objects changed since the facts were last brought up to date; None:
    /// build them from the whole store (the first time).
    dirty: Option<Touched>,
    stale: bool,
    writer: Option<JoinHandle<Result<()>>>,
}

impl Publisher {
    pub fn new(instance: &str, source: String) -> Publisher {
        Publisher {
            instance: instance.to_string(),
            source,
            facts: Arc::default(),
            dirty: None,
            stale: true,
            writer: None,
        }
    }

    /// A change that touched `touched` was applied.
    pub fn changed(&mut self, touched: &Touched) {
        self.stale = true;
        if let Some(dirty) = &mut self.dirty {
            for (into, from) in [
                (&mut dirty.ports, &touched.ports),
                (&mut dirty.subnets, &touched.subnets),
                (&mut dirty.networks, &touched.networks),
                (&mut dirty.routers, &touched.routers),
                (&mut dirty.security_groups, &touched.security_groups),
            ] {
                into.extend(from.iter().cloned());
            }
        }
    }

    /// Starts writing the facts if a change made them stale and no write
    /// is under way.
    pub fn publish(&mut self, store: &Store, generation: u64) {
        if self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        self.wait();
        if !self.stale {
            return;
        }
        // The writer is done with its snapshot: no copy is made here.
        let facts = Arc::make_mut(&mut self.facts);
        match self.dirty.replace(Touched::default()) {
            Some(touched) => facts.refresh(store, &touched),
            None => *facts = Facts::of(store),
        }
        facts.instance = self.instance.clone();
        facts.pid = std::process::id();
        facts.source = self.source.clone();
        facts.generation = generation;
        let (snapshot, instance) = (Arc::clone(&self.facts), self.instance.clone());
        self.stale = false;
        self.writer = Some(std::thread::spawn(move || snapshot.write(&instance)));
    }

    /// Waits for the write under way, if any (before the facts are
    /// removed, and before exiting); a failed write is tried again.
    pub fn wait(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let failed = match writer.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some("the writer panicked".to_string()),
        };
        if let Some(e) = failed {
            tracing::warn!("publishing names for readers: {e}");
            self.stale = true;
        }
    }
}

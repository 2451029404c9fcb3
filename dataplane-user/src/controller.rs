//! One change, all or nothing: the store validates it, the compiler turns
//! it into map entries, the datapath writes them and makes them live. If
//! any step refuses, the others roll back and the running configuration is
//! what it was.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use dataplane_config::{
    Change, Engine, Store, Touched, Update,
    compile::{Locality, Place, TUNNEL_PORT_ID},
};
use tracing::debug;

use crate::{
    datapath::{ApplySummary, Datapath, Options},
    source::HostReport,
};

/// This host as one chassis of many.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Its chassis name: ports whose `binding:host_id` it is are local.
    pub chassis: String,
    /// The interface and address of the underlay (tunnels run over it).
    pub underlay_dev: String,
    pub underlay_ip: std::net::Ipv4Addr,
}

/// What an applied change did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub generation: u64,
    /// Objects the change wrote or deleted.
    pub changes: usize,
    /// Ports in the configuration.
    pub ports: usize,
    pub summary: ApplySummary,
    /// The objects the change touched (none for a re-attached tap).
    pub touched: Touched,
}

/// The configuration in force, compiled, and the datapath running it.
pub struct Controller {
    store: Store,
    engine: Engine,
    datapath: Datapath,
    /// Local VM ports whose tap does not exist: accepted, and compiled
    /// without their tap (everything but their own `PORTS` and device-map
    /// entries, so that nothing reaches them and nothing of theirs is
    /// forwarded) until it comes. Kept as changes go, not recomputed.
    pending: BTreeSet<String>,
    /// Local VM ports whose tap is attached: port id -> tap (the report's
    /// `attached`). Kept as changes go, like `pending`.
    attached: BTreeMap<String, String>,
    /// The groups each port index is a member of, from the compiled
    /// `GROUP_MEMBERS` as each change commits: the report looks up the
    /// local ports' groups without walking every member of every group.
    groups_of: BTreeMap<u32, BTreeSet<u32>>,
}

impl Controller {
    /// Opens (or adopts) the datapath; the compiler keeps the indexes a
    /// previous run gave its ports, groups and security groups. With
    /// `host`, this host is one chassis of many: its tunnel is set up, and
    /// ports bound to other chassis are reached through it.
    pub fn open(opts: Options, host: Option<&HostOptions>) -> Result<Controller> {
        let max_ports = opts.max_ports;
        let datapath = Datapath::open(opts)?;
        let mut engine = Engine::new(max_ports);
        let adopted = datapath.adopted().clone();
        for (id, i) in &adopted.ports {
            engine.adopt_port(id, *i);
        }
        for (name, i) in &adopted.groups {
            engine.adopt_group(name, *i);
        }
        for (id, i) in &adopted.security_groups {
            engine.adopt_security_group(id, *i);
        }
        for &i in &adopted.stale_ports {
            engine.reserve_port(i);
        }
        let mut ctl = Controller {
            store: Store::default(),
            engine,
            datapath,
            pending: BTreeSet::new(),
            attached: BTreeMap::new(),
            groups_of: BTreeMap::new(),
        };
        if let Some(host) = host {
            ctl.join(host)?;
        }
        Ok(ctl)
    }

    /// Sets up the tunnel and places ports from this chassis's view. The
    /// compiler's change (the tunnel pseudo port) is written with the
    /// first configuration.
    fn join(&mut self, host: &HostOptions) -> Result<()> {
        let dev = crate::tunnel::ensure(&host.underlay_dev, host.underlay_ip)
            .context("setting up the tunnel")?;
        let here = Locality {
            chassis: Some(host.chassis.clone()),
            tunnel_ifindex: Some(dev.tx),
            ..self.engine.locality().clone()
        };
        self.engine
            .set_locality(&self.store, here, &crate::interfaces::ifindex)?;
        let port = self
            .engine
            .indexes()
            .ports
            .get(TUNNEL_PORT_ID)
            .context("the tunnel port has no index")?;
        self.datapath.attach_tunnel(&dev, port)
    }

    /// This host's uplinks (`--uplink`): external networks on these
    /// physical networks are reached through these interfaces, which get
    /// `from_uplink` (taking over a previous run's link). Written with the
    /// first configuration, like the tunnel.
    pub fn set_uplinks(&mut self, uplinks: &std::collections::BTreeMap<String, u32>) -> Result<()> {
        let here = Locality {
            uplinks: uplinks.clone(),
            ..self.engine.locality().clone()
        };
        self.engine
            .set_locality(&self.store, here, &crate::interfaces::ifindex)?;
        for (physnet, &ifindex) in uplinks {
            self.datapath
                .attach_uplink(physnet, ifindex)
                .with_context(|| format!("--uplink {physnet}: attaching from_uplink"))?;
        }
        Ok(())
    }

    /// What this host knows that the others need (see `source::HostReport`).
    /// Costs the local ports and their groups, whatever the configuration's
    /// size: it runs every publish tick.
    pub fn report(&self) -> HostReport {
        let mut report = HostReport {
            attached: self.attached.clone(),
            ..HostReport::default()
        };
        let ix = self.engine.indexes();
        let local = |index: u32| {
            ix.ports
                .id_of(index)
                .filter(|id| self.attached.contains_key(*id))
                .cloned()
        };
        let groups: BTreeSet<u32> = self
            .attached
            .keys()
            .filter_map(|id| ix.ports.get(id))
            .filter_map(|index| self.groups_of.get(&index))
            .flatten()
            .copied()
            .collect();
        for g in groups {
            let (Some(state), Some(name)) = (self.datapath.group_state(g), ix.groups.id_of(g))
            else {
                continue;
            };
            if let Some(port) = local(state.active) {
                report
                    .claims
                    .insert(name.replacen(' ', "/", 1), (port, state.changes));
            }
        }
        report
    }

    /// Takes the group memberships the change about to be committed made
    /// or removed into `groups_of` (the journal holds exactly those).
    fn index_groups(&mut self) {
        let members = &self.engine.desired().slotted.group_members;
        for k in members.changed() {
            if members.contains_key(k) {
                self.groups_of.entry(k.port).or_default().insert(k.group);
            } else if let Some(set) = self.groups_of.get_mut(&k.port) {
                set.remove(&k.group);
                if set.is_empty() {
                    self.groups_of.remove(&k.port);
                }
            }
        }
    }

    /// Local VM ports waiting for their tap, by id.
    pub fn pending(&self) -> &BTreeSet<String> {
        &self.pending
    }

    /// Notes whether each of `ports` waits for its tap, or has it
    /// attached, as compiled now.
    fn track_pending<'a>(&mut self, ports: impl Iterator<Item = &'a String>) {
        for id in ports {
            let place = self.engine.port(id).map(|r| r.place);
            if place == Some(Place::Local(None)) {
                self.pending.insert(id.clone());
            } else {
                self.pending.remove(id);
            }
            match (place, self.store.port(id)) {
                (Some(Place::Local(Some(_))), Some(p)) => {
                    self.attached.insert(id.clone(), p.spec.tap.clone());
                }
                _ => {
                    self.attached.remove(id);
                }
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn datapath(&self) -> &Datapath {
        &self.datapath
    }

    pub fn datapath_mut(&mut self) -> &mut Datapath {
        &mut self.datapath
    }

    /// Applies `update`; `tap` resolves a tap name to its interface index.
    /// Configuration errors come back as [`ConfigErrors`] (downcast).
    pub fn apply(&mut self, update: &Update, tap: &dyn Fn(&str) -> Option<u32>) -> Result<Applied> {
        let changes = self.changes(update);
        self.apply_changes(&changes, tap)
    }

    /// The changes `update` makes to the configuration in force.
    pub fn changes(&self, update: &Update) -> Vec<Change> {
        match update {
            Update::Changes(c) => c.clone(),
            Update::Snapshot(doc) => self.store.diff(doc),
        }
    }

    /// Applies `changes`, all or nothing.
    pub fn apply_changes(
        &mut self,
        changes: &[Change],
        tap: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Applied> {
        let touched = self.store.apply(changes)?;
        if let Err(e) = self.engine.compile(&self.store, &touched, tap) {
            self.engine.rollback();
            self.store.rollback();
            return Err(e.into());
        }
        match self.datapath.apply(self.engine.desired()) {
            Ok(summary) => {
                self.index_groups();
                self.engine.commit();
                self.store.commit();
                self.track_pending(touched.ports.iter().chain(&touched.placed));
                Ok(Applied {
                    generation: summary.generation,
                    changes: changes.len(),
                    ports: self.store.ports().len(),
                    summary,
                    touched,
                })
            }
            Err(e) => {
                self.engine.rollback();
                self.store.rollback();
                Err(e)
            }
        }
    }

    /// A port's tap was re-created (a VM rebooted) or went away: only its
    /// entries change.
    pub fn reattach(&mut self, port: &str, ifindex: Option<u32>) -> Result<Applied> {
        if let Err(e) = self.engine.reattach(&self.store, port, ifindex) {
            self.engine.rollback();
            return Err(e.into());
        }
        match self.datapath.apply(self.engine.desired()) {
            Ok(summary) => {
                self.index_groups();
                self.engine.commit();
                self.track_pending(std::iter::once(&port.to_string()));
                Ok(Applied {
                    generation: summary.generation,
                    changes: 0,
                    ports: self.store.ports().len(),
                    summary,
                    touched: Touched::default(),
                })
            }
            Err(e) => {
                self.engine.rollback();
                Err(e).context("re-attaching a re-created tap")
            }
        }
    }

    /// Local VM ports whose tap now has another interface index than the
    /// one they are attached to, or none (`ids`: those to look at; None:
    /// every port).
    pub fn moved_taps(
        &self,
        ids: Option<&BTreeSet<String>>,
        tap: &dyn Fn(&str) -> Option<u32>,
    ) -> Vec<(String, Option<u32>)> {
        let moved = |p: &dataplane_config::objects::Port| {
            let record = self.engine.port(p.id())?;
            if !matches!(record.place, Place::Local(_)) {
                return None;
            }
            let now = tap(&p.spec.tap);
            (now != record.ifindex).then(|| (p.id().to_string(), now))
        };
        match ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.store.port(id))
                .filter_map(moved)
                .collect(),
            None => self.store.ports().values().filter_map(moved).collect(),
        }
    }

    /// The ports a link event may concern: the port whose tap is named
    /// `name`, and the port attached to `ifindex` (a tap renamed away).
    pub fn ports_of_link(&self, ifindex: u32, name: &str) -> BTreeSet<String> {
        let name = name.to_string();
        let mut ids: BTreeSet<String> = self.store.ports_with_tap(&name).cloned().collect();
        let key = common::PortKey { slot: 0, ifindex };
        if let Some(info) = self.engine.desired().slotted.ports.get(&key) {
            if let Some(id) = self.engine.indexes().ports.id_of(info.index) {
                ids.insert(id.clone());
            }
        }
        ids
    }

    /// Cleans up after removed ports (see `Datapath::housekeeping`) and
    /// lets the compiler reuse their indexes.
    pub fn housekeeping(&mut self) -> Result<()> {
        let released = self.datapath.housekeeping(self.engine.desired())?;
        for index in released {
            debug!(index, "port index released");
            self.engine.release_port(index);
        }
        Ok(())
    }

    /// Whether removed ports wait for their cleanup.
    pub fn has_retired(&self) -> bool {
        self.datapath.has_retired()
    }

    /// Stops; with `remove`, detaches and unpins everything.
    pub fn shutdown(self, remove: bool) -> Result<()> {
        self.datapath.shutdown(remove)
    }
}

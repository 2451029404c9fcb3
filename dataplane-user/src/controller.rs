//! One change, all or nothing: the store validates it, the compiler turns
//! it into map entries, the datapath writes them and makes them live. If
//! any step refuses, the others roll back and the running configuration is
//! what it was.

use anyhow::{Context, Result};
use dataplane_config::{
    Change, ConfigError, ConfigErrors, Engine, Store, Touched, Update,
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
}

/// The configuration in force, compiled, and the datapath running it.
pub struct Controller {
    store: Store,
    engine: Engine,
    datapath: Datapath,
    /// A VM port whose tap does not exist is refused (else it is compiled
    /// without its tap: everything but its own `PORTS` and device-map
    /// entries, until the tap comes).
    require_taps: bool,
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
            require_taps: true,
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

    /// What this host knows that the others need (see `source::HostReport`).
    pub fn report(&self) -> HostReport {
        let mut report = HostReport::default();
        for port in self.store.ports().values() {
            if let Some(r) = self.engine.port(port.id()) {
                if matches!(r.place, Place::Local(Some(_))) {
                    report
                        .attached
                        .insert(port.id().to_string(), port.spec.tap.clone());
                }
            }
        }
        let local = |index: u32| {
            self.engine
                .indexes()
                .ports
                .id_of(index)
                .filter(|id| report.attached.contains_key(*id))
                .cloned()
        };
        let groups: std::collections::BTreeSet<u32> = self
            .engine
            .desired()
            .slotted
            .group_members
            .keys()
            .filter(|k| local(k.port).is_some())
            .map(|k| k.group)
            .collect();
        for g in groups {
            let (Some(state), Some(name)) = (
                self.datapath.group_state(g),
                self.engine.indexes().groups.id_of(g),
            ) else {
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

    /// Whether a port whose tap does not exist is refused (the default).
    pub fn set_require_taps(&mut self, require: bool) {
        self.require_taps = require;
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
        if self.require_taps {
            let here = self.engine.locality().chassis.clone();
            if let Err(e) = missing_taps(&self.store, &touched, here.as_deref(), tap) {
                self.store.rollback();
                return Err(e.into());
            }
        }
        if let Err(e) = self.engine.compile(&self.store, &touched, tap) {
            self.engine.rollback();
            self.store.rollback();
            return Err(e.into());
        }
        match self.datapath.apply(self.engine.desired()) {
            Ok(summary) => {
                self.engine.commit();
                self.store.commit();
                Ok(Applied {
                    generation: summary.generation,
                    changes: changes.len(),
                    ports: self.store.ports().len(),
                    summary,
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
                self.engine.commit();
                Ok(Applied {
                    generation: summary.generation,
                    changes: 0,
                    ports: self.store.ports().len(),
                    summary,
                })
            }
            Err(e) => {
                self.engine.rollback();
                Err(e).context("re-attaching a re-created tap")
            }
        }
    }

    /// Ports whose tap now has another interface index than the one they
    /// are attached to (or none).
    pub fn moved_taps(&self, tap: &dyn Fn(&str) -> Option<u32>) -> Vec<(String, Option<u32>)> {
        self.store
            .ports()
            .values()
            .filter(|p| p.spec.router.is_none())
            .filter_map(|p| {
                let now = tap(&p.spec.tap);
                let before = self.engine.port(p.id()).and_then(|r| r.ifindex);
                (now != before).then(|| (p.id().to_string(), now))
            })
            .collect()
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

/// Every local VM port a change touched must have its tap (`here`: this
/// host's chassis; ports bound to others have their taps there).
fn missing_taps(
    store: &Store,
    touched: &Touched,
    here: Option<&str>,
    tap: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for id in &touched.ports {
        let Some(port) = store.port(id) else {
            continue;
        };
        let local = here.is_none() || port.spec.host.as_deref() == here;
        if local && port.spec.router.is_none() && tap(&port.spec.tap).is_none() {
            errors.push(ConfigError {
                object: port.label(),
                field: "tap_name".into(),
                message: format!("interface {} does not exist", port.spec.tap),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

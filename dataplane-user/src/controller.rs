//! One change, all or nothing: the store validates it, the compiler turns
//! it into map entries, the datapath writes them and makes them live. If
//! any step refuses, the others roll back and the running configuration is
//! what it was.

use anyhow::{Context, Result};
use dataplane_config::{Change, ConfigError, ConfigErrors, Engine, Store, Touched, Update};
use tracing::debug;

use crate::datapath::{ApplySummary, Datapath, Options};

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
    /// previous run gave its ports, groups and security groups.
    pub fn open(opts: Options) -> Result<Controller> {
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
        Ok(Controller {
            store: Store::default(),
            engine,
            datapath,
            require_taps: true,
        })
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
        let changes: Vec<Change> = match update {
            Update::Changes(c) => c.clone(),
            Update::Snapshot(doc) => self.store.diff(doc),
        };
        let touched = self.store.apply(&changes)?;
        if self.require_taps {
            if let Err(e) = missing_taps(&self.store, &touched, tap) {
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

/// Every VM port a change touched must have its tap.
fn missing_taps(
    store: &Store,
    touched: &Touched,
    tap: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for id in &touched.ports {
        let Some(port) = store.port(id) else {
            continue;
        };
        if port.spec.router.is_none() && tap(&port.spec.tap).is_none() {
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

//! How an instance ends, whatever the order of `dataplane stop`, SIGTERM,
//! SIGKILL and restarts: the datapath is either fully enforcing (pinned
//! links and maps that the next agent adopts) or fully removed on purpose.
//!
//! - An agent that exits on SIGINT/SIGTERM leaves its pinned state, unless
//!   `--cleanup`; it says the datapath keeps running only if its pins are
//!   all there (if someone removed them, its links end with it: it then
//!   removes the rest and says so).
//! - `dataplane stop` with an agent running asks it (control socket) to
//!   detach and remove everything and exit, and returns once it has;
//!   without one, it removes what is pinned, holding the instance's lock
//!   so that no agent starts meanwhile. An instance with neither is an
//!   error.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use tracing::{info, warn};

use crate::{
    agent_status::AgentRecord,
    control::{self, NoAgent, Pending, Request},
    controller::Controller,
    datapath::{self, pins},
    facts::Facts,
    lock::{self, InstanceLock},
};

/// Why the agent's loop ended.
pub enum Exit {
    /// SIGINT or SIGTERM: leave the datapath running unless `--cleanup`.
    Signal,
    /// `dataplane stop`: remove everything, then answer.
    Stop(Pending),
}

/// The agent's last steps (it still holds the instance's lock): the
/// control socket goes, then the datapath stays or goes as `exit` and
/// `cleanup` say, then a `dataplane stop` gets its answer.
pub async fn finish(ctl: Controller, instance: &str, cleanup: bool, exit: Exit) -> Result<()> {
    control::remove_socket(instance);
    let (mut remove, stop) = match exit {
        Exit::Signal => (cleanup, None),
        Exit::Stop(pending) => (true, Some(pending)),
    };
    if !remove {
        let missing = ctl.datapath().missing_pins();
        if !missing.is_empty() {
            let missing: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
            warn!(
                missing = missing.join(", "),
                "this instance's pinned state was removed while the agent ran (not by \
                 `dataplane stop`): the datapath cannot outlive the agent, so it is removed now"
            );
            remove = true;
        }
    }
    let result = ctl.shutdown(remove);
    match (&result, remove) {
        (Ok(()), true) => {
            Facts::remove(instance);
            AgentRecord::remove(instance);
            info!("detached and unpinned: the datapath is removed");
        }
        (Ok(()), false) => info!(
            "exiting; the datapath keeps running on its pinned links and maps \
             (`dataplane stop` removes it)"
        ),
        (Err(e), _) => warn!("shutting down: {e:#}"),
    }
    if let Some(pending) = stop {
        let answer = match &result {
            Ok(()) => "ok stopped".to_string(),
            Err(e) => format!("error {e:#}"),
        };
        pending.answer(answer).await;
    }
    result
}

/// What `dataplane stop` did.
#[derive(Debug)]
pub enum Stopped {
    /// The running agent removed the datapath and exited.
    Agent { pid: Option<u32>, dir: PathBuf },
    /// No agent ran: the pinned state was removed, `links` detached.
    Pins { dir: PathBuf, links: usize },
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Stopped::Agent { pid, dir } => {
                let pid = pid.map(|p| format!(" (PID {p})")).unwrap_or_default();
                write!(
                    f,
                    "stopped the agent{pid}: it detached the datapath and removed {}",
                    dir.display()
                )
            }
            Stopped::Pins { dir, links } => write!(
                f,
                "no agent was running: detached {links} XDP link(s) and removed {}",
                dir.display()
            ),
        }
    }
}

/// How long `stop` waits for an agent that holds the lock to answer (it
/// may be starting: its socket comes once its first configuration is
/// applied) and then to exit.
const AGENT_WAIT: Duration = Duration::from_secs(30);

/// `dataplane stop`.
pub fn stop(instance: &str) -> Result<Stopped> {
    let dir = datapath::instance_dir(instance);
    let deadline = std::time::Instant::now() + AGENT_WAIT;
    loop {
        let held = match InstanceLock::try_acquire(instance)? {
            Ok(lock) => return remove_unattended(instance, lock),
            Err(held) => held,
        };
        match control::request(instance, &Request::Stop, AGENT_WAIT) {
            Ok(reply) if reply.trim() == "ok stopped" => {
                if !lock::wait_released(instance, AGENT_WAIT)? {
                    bail!(
                        "the agent{} removed the datapath but has not exited after {AGENT_WAIT:?}",
                        held.pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
                    );
                }
                if dir.exists() {
                    bail!(
                        "the agent said it stopped, but {} is still there",
                        dir.display()
                    );
                }
                return Ok(Stopped::Agent { pid: held.pid, dir });
            }
            Ok(reply) => bail!(
                "the agent{} did not stop: {}",
                held.pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
                reply.trim()
            ),
            Err(e) if e.downcast_ref::<NoAgent>().is_some() => {
                // Its socket is not there yet (starting), or it has just
                // exited: look again.
                if std::time::Instant::now() > deadline {
                    return Err(e).with_context(|| {
                        format!(
                            "{} holds instance {instance} but does not answer on its control \
                             socket: stop it with SIGTERM, then run `dataplane stop` again",
                            held.pid
                                .map(|p| format!("the agent with PID {p}"))
                                .unwrap_or_else(|| "a process".into())
                        )
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// No agent runs the instance (we hold its lock): removes what is pinned.
fn remove_unattended(instance: &str, lock: InstanceLock) -> Result<Stopped> {
    let dir = datapath::instance_dir(instance);
    if !is_instance(&dir) {
        drop(lock);
        bail!(NoInstance {
            instance: instance.to_string(),
            dir,
            known: known_instances(),
        });
    }
    let tunnel = dir.join("links").join("tunnel").exists();
    let links = pins::remove(&dir)?;
    if tunnel {
        // The killed agent's tunnel interfaces (one tunnel per host).
        crate::tunnel::remove();
    }
    // A killed agent's leftovers, ours to remove while we hold the lock.
    control::remove_socket(instance);
    Facts::remove(instance);
    AgentRecord::remove(instance);
    drop(lock);
    Ok(Stopped::Pins { dir, links })
}

/// `stop` (or another command) named an instance that does not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "no instance {instance}: no agent runs it and nothing is pinned at {} ({})",
    .dir.display(),
    known_list(.known)
)]
pub struct NoInstance {
    pub instance: String,
    pub dir: PathBuf,
    pub known: Vec<String>,
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "there is no instance on this host".into()
    } else {
        format!("instances on this host: {}", known.join(", "))
    }
}

/// Whether `dir` holds an instance's pinned state (not, say, another
/// program's pins on bpffs).
fn is_instance(dir: &std::path::Path) -> bool {
    ["maps", "links", "programs"]
        .iter()
        .any(|d| dir.join(d).is_dir())
}

/// Instances with pinned state on this host.
pub fn known_instances() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pins::BPFFS) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| is_instance(&e.path()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

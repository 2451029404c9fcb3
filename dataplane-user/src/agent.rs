//! The agent: keeps the datapath in step with a configuration [`Source`],
//! follows taps that are re-created, answers the control socket, serves
//! metrics, and leaves the datapath running (or removes it) when it stops.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};

use dataplane_config::{Change, ConfigErrors, Kind, Update};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    control::{self, Request},
    controller::{Applied, Controller, HostOptions},
    datapath::{self, Options},
    facts::Publisher,
    interfaces,
    lifecycle::{self, Exit},
    lock::InstanceLock,
    source::Source,
};

/// How the agent runs, beyond the datapath's own options.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub datapath: Options,
    /// One chassis of many (tunnels to the others); None: one host.
    pub host: Option<HostOptions>,
    /// On SIGINT/SIGTERM, detach and remove everything.
    pub cleanup: bool,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
}

/// How often taps are checked for re-creation, and retired ports cleaned.
const TICK: Duration = Duration::from_secs(1);
/// How often what this host knows is published (claims, attached taps).
const PUBLISH: Duration = Duration::from_millis(200);
/// How soon after a change that retired ports their cleanup runs (past the
/// datapath's grace period).
const CLEANUP_DELAY: Duration = Duration::from_millis(60);

fn tap(name: &str) -> Option<u32> {
    interfaces::ifindex(name)
}

/// Runs the agent on `source` until SIGINT or SIGTERM. The first update
/// must apply: a configuration error then comes back as [`ConfigErrors`].
pub async fn run<S: Source>(opts: RunOptions, mut source: S) -> Result<()> {
    let instance = opts.datapath.instance.clone();
    // One agent per instance, for the agent's whole life (see lock.rs).
    let _lock = InstanceLock::acquire(&instance)?;
    let first = source
        .next()
        .await
        .with_context(|| format!("reading {}", source.describe()))?;
    let fresh = !datapath::instance_dir(&instance).exists();
    let mut ctl = Controller::open(opts.datapath.clone(), opts.host.as_ref())?;
    // A database's ports exist before their VMs are plugged in: such a
    // port waits for its tap (attached within a tick of it appearing).
    ctl.set_require_taps(!source.partial());
    forward_ebpf_logs(&mut ctl);
    let adopted = ctl.datapath_mut().adopt_links()?;
    if adopted > 0 {
        info!(
            links = adopted,
            "took over the XDP links of the previous run"
        );
    }
    let mut deferred = Deferred::new();
    let applied = match apply_update(&mut ctl, &first, source.partial(), &mut deferred) {
        Ok(a) => a,
        Err(e) => {
            // Leave nothing behind that this run created.
            ctl.shutdown(fresh).ok();
            return Err(e).context("applying the configuration");
        }
    };
    let status = Arc::new(Mutex::new(AgentStatus {
        source: source.describe(),
        ..AgentStatus::default()
    }));
    update_status(&status, &source, applied.generation);
    if let Some(addr) = opts.metrics {
        crate::metrics::serve(addr, ctl.datapath().dir().clone(), status.clone()).await?;
    }
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut requests = control::listen(&instance)?;
    let mut tick = tokio::time::interval(TICK);
    let mut publish = tokio::time::interval(PUBLISH);
    let mut names = Publisher::new(&instance, source.describe());
    names.publish(ctl.store(), applied.generation);
    let _adverts = crate::adverts::spawn(ctl.datapath().dir().clone());
    // Ready only now: signals, the source's watch and the control socket
    // are in place (the test harness and operators take this line as the
    // agent being ready).
    info!(
        instance,
        source = source.describe(),
        ports = applied.ports,
        generation = applied.generation,
        pins = %ctl.datapath().dir().display(),
        "datapath ready"
    );
    let exit = loop {
        let cleanup = tokio::time::sleep(CLEANUP_DELAY);
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT"); break Exit::Signal }
            _ = sigterm.recv() => { info!("SIGTERM"); break Exit::Signal }
            update = source.next() => {
                match update {
                    Ok(u) => {
                        if let Ok(a) = apply(&mut ctl, &u, "reload", source.partial(), &mut deferred) {
                            update_status(&status, &source, a.generation);
                            names.changed();
                        }
                    }
                    Err(e) => report("reload", &e),
                }
            }
            _ = publish.tick() => {
                source.publish(&ctl.report()).await;
                let generation = ctl.datapath().generation();
                update_status(&status, &source, generation);
            }
            _ = tick.tick() => {
                follow_taps(&mut ctl);
                housekeeping(&mut ctl);
                names.publish(ctl.store(), ctl.datapath().generation());
            }
            _ = cleanup, if ctl.has_retired() => housekeeping(&mut ctl),
            Some(pending) = requests.recv() => match &pending.request {
                Request::Apply(path) => {
                    let answer = apply_request(&mut ctl, &mut source, path);
                    if answer.starts_with("ok") {
                        names.changed();
                    }
                    pending.answer(answer).await;
                }
                Request::Stop => {
                    info!("`dataplane stop`: removing the datapath");
                    break Exit::Stop(pending);
                }
            },
        }
    };
    lifecycle::finish(ctl, &instance, opts.cleanup, exit).await
}

/// Applies an update; logs the outcome. A refused update changes nothing:
/// the last good configuration stays live.
fn apply(
    ctl: &mut Controller,
    update: &Update,
    why: &str,
    partial: bool,
    deferred: &mut Deferred,
) -> Result<Applied> {
    match apply_update(ctl, update, partial, deferred) {
        Ok(applied) => {
            info!(
                ports = applied.ports,
                changes = applied.changes,
                generation = applied.generation,
                elapsed_us = applied.summary.elapsed.as_micros() as u64,
                "{why}: configuration applied"
            );
            Ok(applied)
        }
        Err(e) => {
            report(why, &e);
            Err(e)
        }
    }
}

fn report(why: &str, e: &anyhow::Error) {
    if let Some(errors) = e.downcast_ref::<ConfigErrors>() {
        error!("{why}: {errors}; keeping the running configuration");
    } else {
        error!("{why}: {e:#}; keeping the running configuration");
    }
}

/// Changes a partial source delivered that were refused, by object:
/// tried again with every later update (the objects they need may come
/// later: a database's writers do not order their writes for us).
pub type Deferred = BTreeMap<(Kind, String), Change>;

/// Applies an update all or nothing; with `partial` (a database whose
/// objects come from many writers), the objects the errors name are set
/// aside in `deferred` (and logged) and the rest applies, so that one bad
/// object does not hold back every other change.
fn apply_update(
    ctl: &mut Controller,
    update: &Update,
    partial: bool,
    deferred: &mut Deferred,
) -> Result<Applied> {
    let mut changes = ctl.changes(update);
    if partial {
        if matches!(update, Update::Snapshot(_)) {
            // A full read is the whole truth: older refusals are moot.
            deferred.clear();
        }
        let newer: BTreeSet<(Kind, String)> =
            changes.iter().map(|c| (c.kind, c.id.clone())).collect();
        let mut all: Vec<Change> = std::mem::take(deferred)
            .into_iter()
            .filter(|(k, _)| !newer.contains(k))
            .map(|(_, c)| c)
            .collect();
        all.append(&mut changes);
        changes = all;
    }
    loop {
        match ctl.apply_changes(&changes, &tap) {
            Ok(a) => return Ok(a),
            Err(e) if partial => {
                let Some(errors) = e.downcast_ref::<ConfigErrors>() else {
                    return Err(e);
                };
                let refused: BTreeSet<(Kind, String)> =
                    errors.0.iter().filter_map(|x| x.subject()).collect();
                let (aside, rest): (Vec<Change>, Vec<Change>) = changes
                    .into_iter()
                    .partition(|c| refused.contains(&(c.kind, c.id.clone())));
                if aside.is_empty() {
                    return Err(e);
                }
                error!("{errors}; these objects wait, the others apply");
                deferred.extend(aside.into_iter().map(|c| ((c.kind, c.id.clone()), c)));
                changes = rest;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the agent reports of itself (metrics).
#[derive(Clone, Debug, Default)]
pub struct AgentStatus {
    pub source: String,
    pub generation: u64,
    pub source_status: crate::source::SourceStatus,
}

fn update_status<S: Source>(status: &Arc<Mutex<AgentStatus>>, source: &S, generation: u64) {
    if let Ok(mut s) = status.lock() {
        s.generation = generation;
        s.source_status = source.status();
    }
}

/// `dataplane apply FILE`: the source loads FILE; once applied, FILE is the
/// configuration from then on.
fn apply_request<S: Source>(ctl: &mut Controller, source: &mut S, path: &Path) -> String {
    let Some(loaded) = source.load(path) else {
        return format!(
            "error this agent's configuration comes from {}, not from files",
            source.describe()
        );
    };
    let result = loaded.and_then(|u| apply(ctl, &u, "apply", false, &mut Deferred::new()));
    match result {
        Ok(applied) => {
            source.loaded(path);
            format!("ok {}", applied.generation)
        }
        Err(e) if crate::commands::is_config_error(&e) => format!("invalid {e:#}"),
        Err(e) => format!("error {e:#}"),
    }
}

/// A VM that reboots gets a new tap (same name, new ifindex): its port is
/// attached again. A tap that is missing meanwhile leaves its port idle.
fn follow_taps(ctl: &mut Controller) {
    for (port, ifindex) in ctl.moved_taps(&tap) {
        let Some(ifindex) = ifindex else {
            continue;
        };
        match ctl.reattach(&port, Some(ifindex)) {
            Ok(a) => info!(
                port,
                generation = a.generation,
                "a tap was re-created: its port is attached again"
            ),
            Err(e) => warn!(port, "re-attaching a re-created tap: {e:#}"),
        }
    }
}

fn housekeeping(ctl: &mut Controller) {
    if let Err(e) = ctl.housekeeping() {
        warn!("cleaning up after removed ports: {e:#}");
    }
}

/// Forwards aya-log records from the programs to this process's log.
fn forward_ebpf_logs(ctl: &mut Controller) {
    let logger = match aya_log::EbpfLogger::init(ctl.datapath_mut().ebpf_mut()) {
        Ok(l) => l,
        Err(e) => {
            warn!("eBPF logs unavailable: {e}");
            return;
        }
    };
    // SAFETY: the logger owns the ring buffer's fd, which stays open and
    // unchanged for as long as the AsyncFd owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            warn!("eBPF logs unavailable: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

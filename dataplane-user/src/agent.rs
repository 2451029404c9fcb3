//! The agent: keeps the datapath in step with a configuration [`Source`],
//! attaches ports as their taps appear and detaches them as they go (link
//! events), answers the control socket, tells its status, serves metrics,
//! and leaves the datapath running (or removes it) when it stops.

use std::{net::SocketAddr, path::Path, time::Duration};

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
    netlink::{LinkEvent, LinkEvents},
    source::Source,
    status_keeper::Status,
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
    /// The interface index reaching each physical network
    /// (`--uplink PHYSNET=IFNAME`): external networks' uplinks.
    pub uplinks: std::collections::BTreeMap<String, u32>,
}

/// How often retired ports are cleaned and names published.
const TICK: Duration = Duration::from_secs(1);
/// How often what this host knows is published (claims, attached taps,
/// the agent's status).
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
    let fresh = !datapath::instance_dir(&instance).exists();
    let mut status = Status::start(&instance, &mut source, fresh);
    // Before the first configuration is read: a tap that appears while it
    // is applied is told, not missed.
    let mut links = LinkEvents::subscribe()?;
    let first = source
        .next()
        .await
        .with_context(|| format!("reading {}", source.describe()))?;
    let mut ctl = Controller::open(opts.datapath.clone(), opts.host.as_ref())?;
    ctl.set_uplinks(&opts.uplinks)?;
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
        Ok((a, waiting)) => {
            status.attempt(&source.trigger(), &Ok(a.generation), &waiting);
            a
        }
        Err(e) => {
            // Leave nothing behind that this run created.
            ctl.shutdown(fresh).ok();
            return Err(e).context("applying the configuration");
        }
    };
    status.pending(&ctl);
    status.source(&source);
    status.flush();
    if let Some(addr) = opts.metrics {
        crate::metrics::serve(addr, ctl.datapath().dir().clone(), status.shared()).await?;
    }
    let mut names = Publisher::new(&instance, source.describe());
    names.publish(ctl.store(), applied.generation);
    let mut agent = Agent {
        ctl,
        source,
        deferred,
        status,
        names,
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut requests = control::listen(&instance)?;
    // Unsolicited router advertisements, until this run ends.
    let _adverts = crate::adverts::spawn(agent.ctl.datapath().dir().clone());
    // Ready only now: signals, the source's watch, link events and the
    // control socket are in place (the test harness and operators take
    // this line as the agent being ready).
    info!(
        instance,
        source = agent.source.describe(),
        ports = applied.ports,
        pending = agent.ctl.pending().len(),
        generation = applied.generation,
        pins = %agent.ctl.datapath().dir().display(),
        "datapath ready"
    );
    let exit = agent
        .serve(&mut links, &mut requests, &mut sigint, &mut sigterm)
        .await;
    // A write still under way must not outlive `dataplane stop`'s removal.
    agent.names.wait();
    lifecycle::finish(agent.ctl, &instance, opts.cleanup, exit).await
}

/// The running agent: its datapath, its source and what it tells.
struct Agent<S: Source> {
    ctl: Controller,
    source: S,
    deferred: Deferred,
    status: Status,
    names: Publisher,
}

impl<S: Source> Agent<S> {
    /// Serves updates, link events, requests and timers until told to stop.
    async fn serve(
        &mut self,
        links: &mut LinkEvents,
        requests: &mut tokio::sync::mpsc::Receiver<control::Pending>,
        sigint: &mut tokio::signal::unix::Signal,
        sigterm: &mut tokio::signal::unix::Signal,
    ) -> Exit {
        let mut tick = tokio::time::interval(TICK);
        let mut publish = tokio::time::interval(PUBLISH);
        loop {
            let cleanup = tokio::time::sleep(CLEANUP_DELAY);
            tokio::select! {
                _ = sigint.recv() => { info!("SIGINT"); return Exit::Signal }
                _ = sigterm.recv() => { info!("SIGTERM"); return Exit::Signal }
                update = self.source.next() => self.update(update),
                event = links.next() => self.link_event(event, links).await,
                _ = publish.tick() => {
                    self.source.publish(&self.ctl.report()).await;
                    self.status.source(&self.source);
                    self.status.flush();
                }
                _ = tick.tick() => {
                    housekeeping(&mut self.ctl);
                    self.names.publish(self.ctl.store(), self.ctl.datapath().generation());
                }
                _ = cleanup, if self.ctl.has_retired() => housekeeping(&mut self.ctl),
                Some(pending) = requests.recv() => match &pending.request {
                    Request::Apply(path) => {
                        let answer = self.apply_request(path);
                        pending.answer(answer).await;
                    }
                    Request::Stop => {
                        info!("`dataplane stop`: removing the datapath");
                        return Exit::Stop(pending);
                    }
                },
            }
        }
    }

    /// A configuration the source delivered (or could not read).
    fn update(&mut self, update: Result<Update>) {
        let trigger = self.source.trigger();
        let partial = self.source.partial();
        let outcome = match update {
            Ok(u) => apply(&mut self.ctl, &u, "reload", partial, &mut self.deferred),
            Err(e) => {
                report("reload", &e);
                Err(e)
            }
        };
        match &outcome {
            Ok((a, waiting)) => {
                self.status.attempt(&trigger, &Ok(a.generation), waiting);
                self.names.changed(&a.touched);
            }
            Err(e) => self.status.attempt(&trigger, &Err(verbatim(e)), &[]),
        }
        self.status.pending(&self.ctl);
        // At once: whoever sent SIGHUP or wrote the file may ask next.
        self.status.flush();
    }

    /// A link appeared, changed or went: the ports it concerns follow it.
    async fn link_event(&mut self, event: Result<LinkEvent>, links: &mut LinkEvents) {
        let ids = match event {
            Ok(LinkEvent::New { ifindex, name }) | Ok(LinkEvent::Gone { ifindex, name }) => {
                Some(self.ctl.ports_of_link(ifindex, &name))
            }
            Ok(LinkEvent::Lost) => {
                warn!("link events were lost (too many at once): looking at every tap");
                None
            }
            Err(e) => {
                warn!("link events: {e:#}; subscribing again and looking at every tap");
                // Not in a loop: a socket that keeps failing is retried
                // once a second.
                tokio::time::sleep(Duration::from_secs(1)).await;
                match LinkEvents::subscribe() {
                    Ok(l) => *links = l,
                    Err(e) => warn!("link events: {e:#}"),
                }
                None
            }
        };
        if ids.as_ref().is_some_and(|i| i.is_empty()) {
            return;
        }
        follow_taps(&mut self.ctl, ids.as_ref());
        self.status.pending(&self.ctl);
        // At once, as after a reload: `show ports` and `status` agree.
        self.status.flush();
    }

    /// `dataplane apply FILE`: the source loads FILE; once applied, FILE is
    /// the configuration from then on, also across restarts (see
    /// `agent_status::file_to_run`).
    fn apply_request(&mut self, path: &Path) -> String {
        let Some(loaded) = self.source.load(path) else {
            return format!(
                "error this agent's configuration comes from {}, not from files",
                self.source.describe()
            );
        };
        let trigger = format!("dataplane apply {}", path.display());
        let result =
            loaded.and_then(|u| apply(&mut self.ctl, &u, "apply", false, &mut Deferred::new()));
        let answer = match &result {
            Ok((applied, _)) => {
                self.source.loaded(path);
                self.status.attempt(&trigger, &Ok(applied.generation), &[]);
                self.status.applied_file(&self.source);
                self.names.changed(&applied.touched);
                format!("ok {}", applied.generation)
            }
            Err(e) => {
                // The watched file is still what runs: an error, not an
                // attempt of the configuration in force.
                self.status.error(&trigger, verbatim(e));
                if crate::commands::is_config_error(e) {
                    format!("invalid {e:#}")
                } else {
                    format!("error {e:#}")
                }
            }
        };
        self.status.pending(&self.ctl);
        self.status.flush();
        answer
    }
}

/// An error's text as the agent logs it.
fn verbatim(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ConfigErrors>() {
        Some(errors) => errors.to_string(),
        None => format!("{e:#}"),
    }
}

/// Applies an update; logs the outcome. A refused update changes nothing:
/// the last good configuration stays live.
fn apply(
    ctl: &mut Controller,
    update: &Update,
    why: &str,
    partial: bool,
    deferred: &mut Deferred,
) -> Result<(Applied, Vec<String>)> {
    match apply_update(ctl, update, partial, deferred) {
        Ok((applied, waiting)) => {
            info!(
                ports = applied.ports,
                pending = ctl.pending().len(),
                changes = applied.changes,
                generation = applied.generation,
                elapsed_us = applied.summary.elapsed.as_micros() as u64,
                "{why}: configuration applied"
            );
            Ok((applied, waiting))
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
) -> Result<(Applied, Vec<String>)> {
    let mut changes = ctl.changes(update);
    let mut waiting = Vec::new();
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
            Ok(a) => return Ok((a, waiting)),
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
                waiting.push(errors.to_string());
                deferred.extend(aside.into_iter().map(|c| ((c.kind, c.id.clone()), c)));
                changes = rest;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Ports whose tap appeared, went, or came back with a new interface
/// index (a VM rebooted) follow it: attached to the new tap, or waiting
/// (nothing reaches them, nothing of theirs passes) until one comes.
/// `ids`: the ports an event concerns (None: every port).
fn follow_taps(ctl: &mut Controller, ids: Option<&BTreeSet<String>>) {
    for (port, ifindex) in ctl.moved_taps(ids, &tap) {
        let before = ctl.engine().port(&port).and_then(|r| r.ifindex);
        match ctl.reattach(&port, ifindex) {
            Ok(a) => match (before, ifindex) {
                (None, Some(i)) => info!(
                    port,
                    ifindex = i,
                    generation = a.generation,
                    "its tap appeared: the port is attached"
                ),
                (Some(_), Some(i)) => info!(
                    port,
                    ifindex = i,
                    generation = a.generation,
                    "its tap was re-created: the port is attached again"
                ),
                _ => info!(
                    port,
                    generation = a.generation,
                    "its tap went: the port waits for it"
                ),
            },
            Err(e) => warn!(port, "following its tap: {e:#}"),
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

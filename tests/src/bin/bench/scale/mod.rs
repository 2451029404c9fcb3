//! Cloud scale: etcd holding a synthetic cloud of 1,000 chassis and
//! 100,000 ports (`lab::synthetic`, in the ML2 driver's layout); one
//! agent's full read and apply (its resync) with its memory, a one-port
//! change at that scale, then ten agents (ten chassis) starting at once on
//! that etcd and a change's propagation to all ten. Everything real:
//! Debian's etcd (started here, data in a temporary directory, stopped by
//! PID), the agent binary in host namespaces on an underlay, each with its
//! own bpffs instance. `BENCH_SCALE_PORTS` shrinks the cloud (100 ports a
//! chassis) to try the section quickly.

mod agent;
mod db;
mod report;

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use lab::{
    cloud::{Cloud, PREFIX},
    synthetic::{self, Shape},
};
use serde_json::json;

use agent::{APPLIED, Agent, READ, READY, epoch, wait_all};
use db::Db;
use report::{Change, Resync};

/// Agents on the same etcd in the second part (chassis 0..AGENTS).
const AGENTS: usize = 10;
/// Full reads of the lone agent (median reported).
const RESYNCS: usize = 3;
/// One-port changes measured in each part (median reported).
const CHANGES: usize = 15;
/// Between changes: past the datapath's 50 ms grace after a slot switch,
/// which a change arriving sooner waits out (measured apart).
const SPACING: Duration = Duration::from_millis(100);
/// The longest a resync may take before the section fails.
const RESYNC_LIMIT: Duration = Duration::from_secs(900);

/// The cloud of the goal (100,000 ports; 2,000 in a smoke run), or
/// `BENCH_SCALE_PORTS` ports.
fn shape() -> Shape {
    let ports = std::env::var("BENCH_SCALE_PORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(crate::pick(100_000usize, 2_000));
    Shape {
        chassis: (ports / 100).max(AGENTS),
        ports,
        ports_per_network: 50,
        networks_per_project: 4,
    }
}

/// Port indexes the agents are sized for: every port (VM ports and
/// router interfaces) takes one, wherever it is bound.
fn max_ports(shape: &Shape) -> u32 {
    (shape.ports + shape.networks() + 1024) as u32
}

/// Runs `f` on a thread inside the underlay namespace, where etcd is (the
/// benchmark's client must reach it); agents run in their own namespaces.
fn inside<R: Send>(cloud: &Cloud, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    let path = cloud.underlay.path();
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd as _;
            let file = std::fs::File::open(&path)?;
            // SAFETY: setns on a valid namespace fd, for this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                anyhow::bail!("setns: {}", std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("scale benchmark thread panicked"))?
    })
}

pub fn run() -> Result<String> {
    let shape = shape();
    eprintln!("bench: scale, {AGENTS} hosts and etcd");
    let cloud = Cloud::new(AGENTS)?;
    inside(&cloud, || measure(&cloud, &shape))
}

fn measure(cloud: &Cloud, shape: &Shape) -> Result<String> {
    let mut db = Db::connect(&cloud.etcd.url)?;
    let load = load(&mut db, shape)?;
    let mut logs = tempfile::tempdir()?;
    // BENCH_KEEP_LOGS: the agents' logs stay, for a look at a slow run.
    if std::env::var_os("BENCH_KEEP_LOGS").is_some() {
        logs.disable_cleanup(true);
        eprintln!(
            "bench: scale, the agents' logs stay in {}",
            logs.path().display()
        );
    }
    let mut alone = Vec::new();
    for i in 0..RESYNCS {
        eprintln!("bench: scale, one agent's full read {}/{RESYNCS}", i + 1);
        let mut a = start(cloud, logs.path(), shape, &[0])?;
        let r = Resync::of(&a[0])?;
        eprintln!(
            "bench: scale, read {:.1} s, live {:.1} s, CPU {:.1} s, peak {:.0} MiB",
            r.read, r.ready, r.cpu, r.peak_mib
        );
        alone.push(r);
        if i + 1 == RESYNCS {
            eprintln!("bench: scale, {CHANGES} one-port changes, one agent");
            let lone = changes(&db, shape, &mut a)?;
            a[0].stop()?;
            return ten(
                cloud,
                &db,
                shape,
                logs.path(),
                report::Parts { load, alone, lone },
            );
        }
        a[0].stop()?;
    }
    unreachable!("the last resync goes on to the changes")
}

/// The second part: ten agents at once, then changes seen by all ten.
fn ten(cloud: &Cloud, db: &Db, shape: &Shape, logs: &Path, parts: report::Parts) -> Result<String> {
    let peak = parts.alone.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
    let available = available_mib();
    if AGENTS as f64 * peak * 1.2 > available {
        eprintln!("bench: scale, {AGENTS} agents would not fit in memory: not started");
        let why = format!(
            "not run: {AGENTS} agents of {peak:.0} MiB each do not fit in the {available:.0} MiB \
             this machine has available"
        );
        return report::markdown(shape, &parts, Err(why));
    }
    eprintln!("bench: scale, {AGENTS} agents starting at once");
    let all: Vec<usize> = (0..AGENTS).collect();
    let mut agents = start(cloud, logs, shape, &all)?;
    let resyncs = agents.iter().map(Resync::of).collect::<Result<Vec<_>>>()?;
    eprintln!("bench: scale, {CHANGES} one-port changes, {AGENTS} agents");
    let spread = changes(db, shape, &mut agents)?;
    for a in &mut agents {
        a.stop()?;
    }
    report::markdown(shape, &parts, Ok((&resyncs, &spread)))
}

/// MemAvailable, in MiB.
fn available_mib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Writes the synthetic cloud; (seconds, bytes) it took.
fn load(db: &mut Db, shape: &Shape) -> Result<(f64, usize)> {
    eprintln!(
        "bench: scale, writing {} chassis and {} ports into etcd",
        shape.chassis, shape.ports
    );
    let started = SystemTime::now();
    // The agents' own chassis publish their records themselves.
    let lease = db.lease()?;
    let records = (AGENTS..shape.chassis).map(|c| {
        (
            format!("chassis/{}", synthetic::chassis_name(c)),
            synthetic::chassis(c),
        )
    });
    let mut bytes = db.put_all(PREFIX, records, Some(lease))?;
    bytes += db.put_all(PREFIX, synthetic::neutron_objects(shape), None)?;
    let took = started.elapsed()?.as_secs_f64();
    eprintln!(
        "bench: scale, {} MB written in {took:.1} s",
        bytes / 1_000_000
    );
    Ok((took, bytes))
}

/// Starts the agents of hosts `hosts` (host i is chassis i) at once and
/// waits until each is ready.
fn start(cloud: &Cloud, logs: &Path, shape: &Shape, hosts: &[usize]) -> Result<Vec<Agent>> {
    let mut agents = Vec::new();
    for &i in hosts {
        let host = &cloud.hosts[i];
        let chassis = synthetic::chassis_name(i);
        agents.push(Agent::start(
            &host.lab,
            logs,
            &cloud.etcd.url,
            &chassis,
            &host.ip,
            max_ports(shape),
        )?);
    }
    let once = vec![1; agents.len()];
    wait_all(&mut agents, READY, &once, RESYNC_LIMIT).context("the agents' first read")?;
    Ok(agents)
}

/// `CHANGES` one-port changes (a pair added to, then removed from, VM
/// port 0, bound to chassis 0): from before each write until each agent
/// logged it applied.
fn changes(db: &Db, shape: &Shape, agents: &mut [Agent]) -> Result<Vec<Change>> {
    let mut port = synthetic::vm_port(shape, 0);
    let key = format!(
        "{PREFIX}/neutron/ports/{}",
        port["id"].as_str().context("port id")?
    );
    let pairs = port["allowed_address_pairs"].clone();
    let mut out = Vec::new();
    for k in 0..CHANGES {
        port["allowed_address_pairs"] = if k % 2 == 0 {
            let mut more = pairs.clone();
            more.as_array_mut()
                .context("pairs")?
                .push(json!({ "ip_address": "10.0.0.200" }));
            more
        } else {
            pairs.clone()
        };
        let before: Vec<usize> = agents.iter().map(|a| a.times(APPLIED).len()).collect();
        let written = epoch(SystemTime::now());
        db.put(&key, &port)?;
        let want: Vec<usize> = before.iter().map(|n| n + 1).collect();
        // The first change after a full read writes every flood set of
        // the other slot (as long as a resync): the same limit.
        wait_all(agents, APPLIED, &want, RESYNC_LIMIT)?;
        let seen = agents
            .iter()
            .zip(&before)
            .map(|(a, &n)| a.times(APPLIED)[n] - written)
            .collect();
        out.push(Change { seen });
        std::thread::sleep(SPACING);
    }
    Ok(out)
}

impl Resync {
    /// What agent `a`'s first read took: from its log and /proc.
    fn of(a: &Agent) -> Result<Resync> {
        let (_, peak) = a.memory();
        Ok(Resync {
            read: a.since_spawn(READ).context("no full read in the log")?,
            ready: a.since_spawn(READY).context("not ready")?,
            cpu: a.cpu().as_secs_f64(),
            peak_mib: peak,
        })
    }
}

//! The scale section's tables, against the goals.

use std::fmt::Write as _;

use anyhow::Result;
use lab::synthetic::Shape;

use super::{AGENTS, CHANGES, RESYNCS};
use crate::median_of;

/// Goals (issue 16: resync and memory at 1,000 chassis and 100,000
/// ports; issue 15: a one-port change at 100,000 ports).
const GOAL_RESYNC_S: f64 = 5.0;
const GOAL_MEMORY_MIB: f64 = 200.0;
const GOAL_CHANGE_MS: f64 = 2.0;

/// One agent's first read, from its spawn.
pub struct Resync {
    /// Until etcd's snapshot was read and parsed (seconds).
    pub read: f64,
    /// Until the configuration was live ("datapath ready").
    pub ready: f64,
    /// CPU time it used meanwhile (seconds).
    pub cpu: f64,
    /// Its peak resident memory (VmHWM).
    pub peak_mib: f64,
}

/// One change: seconds from before the write until each agent logged it
/// applied.
pub struct Change {
    pub seen: Vec<f64>,
}

/// The lone agent's part.
pub struct Parts {
    /// (seconds, bytes) of writing the cloud into etcd.
    pub load: (f64, usize),
    pub alone: Vec<Resync>,
    pub lone: Vec<Change>,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// The ten agents' resyncs and changes, or why they were not run.
pub type Ten<'a> = std::result::Result<(&'a [Resync], &'a [Change]), String>;

pub fn markdown(shape: &Shape, parts: &Parts, ten: Ten) -> Result<String> {
    let mut md = String::new();
    writeln!(md, "## Cloud scale\n")?;
    writeln!(
        md,
        "etcd (Debian's 3.4) holds a synthetic cloud: {} chassis, {} VM ports ({} per \
         network, two of each sharing a VIP as an allowed address pair), {} networks with \
         an IPv4 and an IPv6 subnet and a router interface each, {} projects with a router \
         and two security groups (one with remote-group rules); every object as Neutron's \
         API returns it ({:.0} MB of JSON, written in {:.0} s in transactions of 64 puts). \
         Agents run as chassis 0-{} in host namespaces, each with its own bpffs instance; \
         times come from the agent's log timestamps, memory from /proc/PID/status (VmHWM: \
         the agent's peak resident memory; BPF maps are kernel memory, not in it). The \
         machine's 2 CPUs are shared with other work: numbers are noisy.\n",
        shape.chassis,
        shape.ports,
        shape.ports_per_network,
        shape.networks(),
        shape.projects(),
        parts.load.1 as f64 / 1e6,
        parts.load.0,
        AGENTS - 1,
    )?;
    let (resyncs, spread) = match &ten {
        Ok((r, s)) => (Some(*r), Some(*s)),
        Err(_) => (None, None),
    };
    resync_table(&mut md, &parts.alone, resyncs)?;
    change_table(&mut md, &parts.lone, spread)?;
    if let Err(why) = &ten {
        writeln!(md, "{AGENTS} agents at once: {why}.\n")?;
    }
    Ok(md)
}

fn resync_table(md: &mut String, alone: &[Resync], ten: Option<&[Resync]>) -> Result<()> {
    let med = |v: &[Resync], f: fn(&Resync) -> f64| median_of(v.iter().map(f).collect());
    let max = |v: &[Resync], f: fn(&Resync) -> f64| v.iter().map(f).fold(0.0, f64::max);
    writeln!(
        md,
        "A full read (resync), from the agent's start to its configuration live: one agent \
         alone (median of {RESYNCS} starts), then {AGENTS} agents started at once (median \
         and slowest):\n"
    )?;
    writeln!(
        md,
        "| agents | etcd read and parsed | configuration live | CPU | peak memory | goal: < {GOAL_RESYNC_S} s, < {GOAL_MEMORY_MIB} MiB |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---|")?;
    let (ready, peak) = (med(alone, |r| r.ready), max(alone, |r| r.peak_mib));
    writeln!(
        md,
        "| one | {:.1} s | {ready:.1} s | {:.1} s | {peak:.0} MiB | time {}, memory {} |",
        med(alone, |r| r.read),
        med(alone, |r| r.cpu),
        verdict(ready < GOAL_RESYNC_S),
        verdict(peak < GOAL_MEMORY_MIB),
    )?;
    let Some(ten) = ten else {
        return Ok(writeln!(md)?);
    };
    let (slowest, peak) = (max(ten, |r| r.ready), max(ten, |r| r.peak_mib));
    writeln!(
        md,
        "| {AGENTS} at once | {:.1} s (slowest {:.1} s) | {:.1} s (slowest {slowest:.1} s) | {:.1} s each | {peak:.0} MiB (largest) | time {}, memory {} |\n",
        med(ten, |r| r.read),
        max(ten, |r| r.read),
        med(ten, |r| r.ready),
        med(ten, |r| r.cpu),
        verdict(slowest < GOAL_RESYNC_S),
        verdict(peak < GOAL_MEMORY_MIB),
    )?;
    Ok(())
}

fn change_table(md: &mut String, lone: &[Change], spread: Option<&[Change]>) -> Result<()> {
    let ms = |v: Vec<f64>| median_of(v) * 1000.0;
    let first = |v: &[Change]| ms(v.iter().map(|c| c.seen[0]).collect());
    let last = |v: &[Change]| {
        ms(v.iter()
            .map(|c| c.seen.iter().copied().fold(0.0, f64::max))
            .collect())
    };
    let worst = |v: &[Change]| {
        1000.0
            * v.iter()
                .flat_map(|c| c.seen.iter().copied())
                .fold(0.0, f64::max)
    };
    writeln!(
        md,
        "A one-port change at that scale (a pair added to or removed from a port of \
         chassis 0, {CHANGES} times): from before the etcd write until the agent logged \
         it applied (write, watch, validation, compile, map writes; median, and the \
         slowest of all: the first change after a full read, which writes every flood \
         set of the datapath's other slot):\n"
    )?;
    writeln!(
        md,
        "| agents | chassis 0 (port local) | all agents | slowest | goal: ≤ {GOAL_CHANGE_MS} ms |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---|")?;
    writeln!(
        md,
        "| one | {:.2} ms | | {:.2} ms | {} |",
        first(lone),
        worst(lone),
        verdict(first(lone) <= GOAL_CHANGE_MS),
    )?;
    let Some(spread) = spread else {
        return Ok(writeln!(md)?);
    };
    writeln!(
        md,
        "| {AGENTS} | {:.2} ms | {:.2} ms | {:.2} ms | {} |\n",
        first(spread),
        last(spread),
        worst(spread),
        verdict(last(spread) <= GOAL_CHANGE_MS),
    )?;
    Ok(())
}

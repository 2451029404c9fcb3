//! The kernel's run-time statistics of BPF programs (run count and time
//! spent, per program), for the programs one agent loaded.
//!
//! Statistics are switched on with BPF_ENABLE_STATS, not by writing the
//! `kernel.bpf_stats_enabled` sysctl: the fd-based switch is counted, so
//! it neither turns off statistics someone else on this shared machine
//! turned on, nor stays on if the benchmark dies. It costs two clock reads
//! per program run, so the runs that measure throughput and CPU time are
//! made without it.

use std::{collections::BTreeMap, os::fd::OwnedFd};

use anyhow::{Context, Result};

/// Statistics are collected while this lives.
pub struct Enabled {
    _fd: OwnedFd,
}

pub fn enable() -> Result<Enabled> {
    let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    Ok(Enabled { _fd: fd })
}

/// One program's counters at one moment.
#[derive(Clone, Debug)]
pub struct Counter {
    pub name: String,
    pub runs: u64,
    pub ns: u64,
}

/// The ids of the programs process `pid` holds open (an agent holds every
/// program it loaded: attached ones, device-map ones, tail-call targets).
pub fn programs_of(pid: u32) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).with_context(|| dir.clone())? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Counters of the programs `ids`, by id.
pub fn read(ids: &[u32]) -> Result<BTreeMap<u32, Counter>> {
    let mut out = BTreeMap::new();
    for info in aya::programs::loaded_programs() {
        let Ok(info) = info else { continue };
        if ids.contains(&info.id()) {
            out.insert(
                info.id(),
                Counter {
                    name: info.name_as_str().unwrap_or("?").to_string(),
                    runs: info.run_count(),
                    ns: info.run_time().as_nanos() as u64,
                },
            );
        }
    }
    Ok(out)
}

/// What each program did between two readings: (name, runs, ns), the
/// programs that did not run left out.
pub fn delta(before: &BTreeMap<u32, Counter>, after: &BTreeMap<u32, Counter>) -> Vec<Counter> {
    after
        .iter()
        .filter_map(|(id, a)| {
            let b = before.get(id)?;
            (a.runs > b.runs).then(|| Counter {
                name: a.name.clone(),
                runs: a.runs - b.runs,
                ns: a.ns - b.ns,
            })
        })
        .collect()
}

//! `dataplane show programs`: what each of the instance's programs costs
//! under the traffic it sees now, from the kernel's own run-time
//! statistics (`bpf_prog_info.run_cnt` / `run_time_ns`).
//!
//! The kernel counts only while run-time statistics are on, and counting
//! has a cost of its own (two clock reads per run), so they are switched
//! on (BPF_ENABLE_STATS, which ends with its file descriptor) only for the
//! sample and the counts are read at its start and end: what a program
//! did before, or while no one asked, is not in them. The switch is the
//! kernel's, for every program on the host, for as long as the sample
//! lasts (`kernel.bpf_stats_enabled` set by hand stays as it is).

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use aya::{
    programs::ProgramInfo,
    sys::{Stats, enable_stats},
};
use serde::Serialize;

/// One program over the sample.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramCost {
    pub name: String,
    pub id: u32,
    pub runs: u64,
    pub runs_per_second: f64,
    /// Mean time per run, in nanoseconds (None: it did not run).
    pub ns_per_run: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramsView {
    pub sample_ms: u64,
    pub programs: Vec<ProgramCost>,
}

/// The counts of every program pinned under the instance's `programs/`.
fn read(dir: &Path) -> Result<Vec<(String, ProgramInfo)>> {
    let programs = dir.join("programs");
    let entries = std::fs::read_dir(&programs)
        .with_context(|| format!("{}: is the datapath running?", programs.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info =
            ProgramInfo::from_pin(&path).with_context(|| format!("reading {}", path.display()))?;
        out.push((name, info));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Samples the instance's programs for `sample`.
pub fn sample(dir: &Path, sample: Duration) -> Result<ProgramsView> {
    let stats = enable_stats(Stats::RunTime).context("switching on run-time statistics")?;
    let before = read(dir)?;
    std::thread::sleep(sample);
    let after = read(dir)?;
    drop(stats);
    let secs = sample.as_secs_f64().max(f64::EPSILON);
    let programs = after
        .iter()
        .map(|(name, now)| {
            // A program replaced meanwhile (an agent restarted) counts from 0.
            let then = before
                .iter()
                .find(|(n, i)| n == name && i.id() == now.id())
                .map(|(_, i)| (i.run_count(), i.run_time()));
            let (runs0, time0) = then.unwrap_or((0, Duration::ZERO));
            let runs = now.run_count().saturating_sub(runs0);
            let time = now.run_time().saturating_sub(time0);
            ProgramCost {
                name: name.clone(),
                id: now.id(),
                runs,
                runs_per_second: runs as f64 / secs,
                ns_per_run: (runs > 0).then(|| time.as_nanos() as f64 / runs as f64),
            }
        })
        .collect();
    Ok(ProgramsView {
        sample_ms: sample.as_millis() as u64,
        programs,
    })
}

pub fn render(v: &ProgramsView) -> String {
    let mut out = format!(
        "over {:.1} s (kernel run-time statistics, on for the sample only):\n",
        v.sample_ms as f64 / 1000.0
    );
    out += &format!(
        "{:<16} {:>8} {:>12} {:>14} {:>10}\n",
        "program", "id", "runs", "runs/s", "ns/run"
    );
    for p in &v.programs {
        let ns = p
            .ns_per_run
            .map(|n| format!("{n:.0}"))
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "{:<16} {:>8} {:>12} {:>14.0} {:>10}\n",
            p.name, p.id, p.runs, p.runs_per_second, ns
        );
    }
    out
}

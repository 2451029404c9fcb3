//! An agent of the scale benchmark: `dataplane run --etcd` as a process in
//! a host namespace (its own chassis name and bpffs instance), watched
//! from outside: its log (timestamps of what it did), its memory and CPU
//! time (/proc).

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use lab::lab::{Lab, parse_utc};

/// The line the agent logs once its first configuration is live.
pub const READY: &str = "datapath ready";
/// The line it logs once the full read of etcd is done (with the revision).
pub const READ: &str = "etcd: read everything";
/// The line it logs for each later change applied.
pub const APPLIED: &str = "reload: configuration applied";

pub struct Agent {
    pub chassis: String,
    child: Child,
    log: PathBuf,
    /// When it was spawned (wall clock, as its log's timestamps).
    pub spawned: SystemTime,
}

impl Agent {
    /// Starts the agent of `lab` (its namespace and instance) as chassis
    /// `chassis` with underlay address `ip`, on etcd at `url`; it logs to
    /// a file in `logs`.
    pub fn start(
        lab: &Lab,
        logs: &Path,
        url: &str,
        chassis: &str,
        ip: &str,
        max_ports: u32,
    ) -> Result<Agent> {
        // One file per start: a restarted agent's log does not overwrite
        // the last one's.
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = logs.join(format!("{chassis}-{}-{n}.log", lab.instance));
        let file = std::fs::File::create(&log)?;
        let max_ports = max_ports.to_string();
        let spawned = SystemTime::now();
        let child = lab
            .dataplane(&[
                "run",
                "--etcd",
                url,
                "--chassis",
                chassis,
                "--underlay-dev",
                "ul0",
                "--underlay-ip",
                ip,
                "--max-ports",
                &max_ports,
                "--cleanup",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting the agent")?;
        Ok(Agent {
            chassis: chassis.to_string(),
            child,
            log,
            spawned,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// When the agent logged each line holding `needle` (seconds since the
    /// Unix epoch), in order.
    pub fn times(&self, needle: &str) -> Vec<f64> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| parse_utc(l.split_whitespace().next()?))
            .collect()
    }

    /// Seconds from its spawn to the first line holding `needle`.
    pub fn since_spawn(&self, needle: &str) -> Option<f64> {
        let t = *self.times(needle).first()?;
        Some(t - epoch(self.spawned))
    }

    /// Whether the log holds `needle` at least `n` times; fails if the
    /// agent exited.
    pub fn logged(&mut self, needle: &str, n: usize) -> Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "agent {} exited ({status}):\n{}",
                self.chassis,
                tail(&self.log())
            );
        }
        Ok(self.log().matches(needle).count() >= n)
    }

    /// (resident, peak resident) memory in MiB, from /proc/PID/status.
    pub fn memory(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    /// User and system CPU time the agent used so far (/proc/PID/stat).
    pub fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The command (field 2) may hold spaces; the fields after it
        // start with the state (field 3): utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |k: usize| {
            fields
                .get(k - 3)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis((field(14) + field(15)) * 1000 / hz)
    }

    /// Stops the agent (SIGINT: with --cleanup it removes what it pinned)
    /// and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if lab::process::stop(&mut self.child, libc::SIGINT, Duration::from_secs(60)) {
            return Ok(());
        }
        bail!("agent {} did not stop within 60 s of SIGINT", self.chassis)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
    }
}

/// Waits until every agent logged `needle` `n` times (`n[i]` for agent i).
pub fn wait_all(agents: &mut [Agent], needle: &str, n: &[usize], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let mut all = true;
        for (a, &k) in agents.iter_mut().zip(n) {
            all &= a.logged(needle, k)?;
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            let late: Vec<&str> = agents
                .iter()
                .zip(n)
                .filter(|(a, k)| a.log().matches(needle).count() < **k)
                .map(|(a, _)| a.chassis.as_str())
                .collect();
            bail!("no {needle:?} from {late:?} after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seconds since the Unix epoch.
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The end of a log, for errors.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

//! A real Prometheus (Debian's package) started by a test inside one of
//! its namespaces, scraping agents every second, queried through its HTTP
//! API; and promtool's lint of an exposition. Stopped by its PID on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::netns::{Netns, run};

/// Where it listens, inside its own namespace (nothing else binds there).
const LISTEN: &str = "127.0.0.1:9090";

pub struct Prometheus {
    child: Child,
    ns: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus in `ns` scraping `targets` (host:port) as job
    /// `dataplane`, and waits until it is ready.
    pub fn start(ns: &Netns, targets: &[String]) -> Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: dataplane\n    static_configs:\n      \
                 - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        run(Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(&config))?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = ns
            .command("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={LISTEN}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let p = Prometheus {
            child,
            ns: ns.name.clone(),
            dir,
        };
        crate::lab::wait_for(Duration::from_secs(30), "prometheus ready", || {
            p.get("/-/ready").is_ok_and(|b| b.contains("Ready"))
        })
        .with_context(|| p.log())?;
        Ok(p)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    fn curl(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).args([
            "--",
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
        ]);
        c
    }

    fn get(&self, path: &str) -> Result<String> {
        let out = run(self.curl().arg(format!("http://{LISTEN}{path}")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An instant query through /api/v1/query; the `data` object, or an
    /// error with Prometheus's own message (a PromQL syntax error, say).
    pub fn query(&self, expr: &str) -> Result<Value> {
        let out = self
            .curl()
            .arg(format!("http://{LISTEN}/api/v1/query"))
            .arg("--data-urlencode")
            .arg(format!("query={expr}"))
            .stdin(Stdio::null())
            .output()?;
        // --fail hides the body of a 400; read it without --fail's verdict.
        let v: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("query {expr}: {}", String::from_utf8_lossy(&out.stderr)))?;
        if v["status"] != "success" {
            bail!("query {expr}: {v}");
        }
        Ok(v["data"].clone())
    }

    /// The samples of an instant vector: (labels, value).
    pub fn samples(&self, expr: &str) -> Result<Vec<(Value, f64)>> {
        let data = self.query(expr)?;
        Ok(data["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let v = s["value"][1].as_str().and_then(|v| v.parse().ok());
                        (s["metric"].clone(), v.unwrap_or(f64::NAN))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits until `expr` returns `n` samples, each satisfying `ok`.
    pub fn wait_samples(&self, expr: &str, n: usize, ok: impl Fn(f64) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.samples(expr)?;
            if s.len() == n && s.iter().all(|(_, v)| ok(*v)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{expr}: {s:?} after 30 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` of an exposition: its complaints, if any
/// (promtool exits non-zero and prints them for any lint problem).
pub fn check_metrics(exposition: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The metric families an exposition declares (`# TYPE NAME kind`).
pub fn families(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

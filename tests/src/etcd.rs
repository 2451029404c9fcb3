//! A real etcd (Debian's `etcd-server`) for the tests: started with its data
//! in a temporary directory, inside a network namespace (so that agents in
//! other namespaces reach it over the test's underlay) or on loopback,
//! stopped by PID. It can be killed and started again on the same data, as
//! an outage would.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

pub struct Etcd {
    /// Where clients reach it: `http://IP:PORT`.
    pub url: String,
    ip: String,
    port: u16,
    /// Its member name, unique: `wait_ready` checks that the etcd answering
    /// is this one (another test's on the same port would answer too).
    name: String,
    data: tempfile::TempDir,
    log: PathBuf,
    /// The namespace it runs in (None: this one).
    ns: Option<String>,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd listening on `ip:port` inside `ns` (or here), and waits
    /// until it answers. Port 0 (here only): two free ports, for clients
    /// and peers, kept across restarts.
    pub fn start(ns: Option<&Netns>, ip: &str, port: u16) -> Result<Etcd> {
        let port = match (port, ns) {
            (0, None) => free_port_pair(ip)?,
            (0, Some(_)) => bail!("etcd in a namespace needs its port"),
            (p, _) => p,
        };
        let data = tempfile::tempdir()?;
        let log = data.path().join("etcd.log");
        let mut e = Etcd {
            url: format!("http://{ip}:{port}"),
            ip: ip.to_string(),
            port,
            name: crate::netns::unique("etcd"),
            data,
            log,
            ns: ns.map(|n| n.name.clone()),
            child: None,
        };
        e.spawn()?;
        Ok(e)
    }

    fn command(&self, program: &str) -> Command {
        match &self.ns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let peer = self.port + 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .command("etcd")
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.data.path().join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &format!("http://{}:{peer}", self.ip)])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{}:{peer}", self.ip),
            ])
            .args([
                "--initial-cluster",
                &format!("{}=http://{}:{peer}", self.name, self.ip),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd (is etcd-server installed? `cargo xtask setup`)")?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20))
    }

    /// Waits until etcd answers a read.
    fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    bail!("etcd exited ({status}):\n{}", self.log());
                }
            }
            let ok = self
                .etcdctl(&["member", "list"])
                .map(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains(&self.name)
                })
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd not ready after {within:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs etcdctl against this etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(self
            .command("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url, "--command-timeout=3s"])
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let out = self.etcdctl(&["get", key, "--print-value-only"])?;
        if !out.status.success() {
            bail!(
                "etcdctl get {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        Ok((!v.is_empty()).then_some(v))
    }

    /// Keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let out = self.etcdctl(&["get", prefix, "--prefix", "--keys-only"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn put(&self, key: &str, value: &str) -> Result<()> {
        let out = self.etcdctl(&["put", key, value])?;
        if !out.status.success() {
            bail!(
                "etcdctl put {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The client port (chosen at start if 0 was asked).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills etcd (SIGKILL), as a crash would; its data stays.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// What etcd printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::process::stop(&mut c, libc::SIGTERM, Duration::from_secs(5));
        }
    }
}

/// A port `p` such that `p` and `p + 1` are free on `ip` now (etcd's client
/// and peer ports): tests running at once do not share an etcd.
fn free_port_pair(ip: &str) -> Result<u16> {
    for _ in 0..100 {
        let client = std::net::TcpListener::bind((ip, 0))?;
        let port = client.local_addr()?.port();
        if port < u16::MAX && std::net::TcpListener::bind((ip, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no two free consecutive ports on {ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_survives_a_kill_and_stops() {
        crate::require_root!();
        let mut e = Etcd::start(None, "127.0.0.1", 0).unwrap();
        e.put("/t/a", "1").unwrap();
        assert_eq!(e.get("/t/a").unwrap().as_deref(), Some("1"));
        e.restart().unwrap();
        assert_eq!(e.get("/t/a").unwrap().as_deref(), Some("1"), "data kept");
        let pid = e.pid().unwrap();
        drop(e);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true)
            }
        );
    }
}

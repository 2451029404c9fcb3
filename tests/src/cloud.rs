//! Many hypervisors on one machine: each host is a namespace (a [`Lab`]:
//! its VMs behind taps, its own agent and bpffs instance) with an underlay
//! interface `ul0` on a bridge in an underlay namespace, where a real etcd
//! runs as the hosts' database. Everything goes away on drop, agents first.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{etcd::Etcd, lab::Lab, netns::Netns};

/// The underlay's subnet: host i is .(i+1), etcd is .250.
pub const UNDERLAY_PREFIX: &str = "192.168.100";
/// Underlay MTU: VM frames (1500) plus VXLAN's 50 bytes fit.
const UNDERLAY_MTU: &str = "1600";
/// The layout's prefix in etcd.
pub const PREFIX: &str = "/aap";
/// The port each host's agent serves metrics on, at its underlay address
/// (inside the host's namespace, so every host can use the same one, and
/// a Prometheus on the underlay reaches them all).
pub const METRICS_PORT: u16 = 9464;

pub struct Host {
    pub name: String,
    pub ip: String,
    pub lab: Lab,
}

pub struct Cloud {
    // Dropped first: agents stop before etcd and the underlay go.
    pub hosts: Vec<Host>,
    pub etcd: Etcd,
    pub underlay: Netns,
    dir: tempfile::TempDir,
}

impl Cloud {
    /// `n` hosts named h1..hn on an underlay, and etcd, all started.
    pub fn new(n: usize) -> Result<Cloud> {
        let underlay = underlay()?;
        let etcd = Etcd::start(Some(&underlay), &format!("{UNDERLAY_PREFIX}.250"), 2379)?;
        let mut hosts = Vec::new();
        for i in 0..n {
            let lab = Lab::new(false)?;
            hosts.push(join_underlay(&underlay, lab, i)?);
        }
        Ok(Cloud {
            hosts,
            etcd,
            underlay,
            dir: tempfile::tempdir()?,
        })
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("no such host")
    }

    pub fn host_mut(&mut self, name: &str) -> &mut Host {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .expect("no such host")
    }

    /// Writes `config` into etcd with `dataplane publish` (run in the
    /// underlay namespace, where etcd is).
    pub fn publish(&self, config: &Value) -> Result<()> {
        let path = self.dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(config)?)?;
        self.publish_file(&path).map(drop)
    }

    /// `dataplane publish FILE` into this cloud's etcd; its output.
    pub fn publish_file(&self, path: &std::path::Path) -> Result<String> {
        let out = self
            .underlay
            .command(crate::lab::dataplane_bin().to_str().unwrap())
            .arg("publish")
            .arg(path)
            .args(["--etcd", &self.etcd.url])
            .output()?;
        if !out.status.success() {
            bail!(
                "dataplane publish failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts host `name`'s agent on etcd; waits until it is ready with
    /// `expected` local ports.
    pub fn start(&mut self, name: &str, expected: usize) -> Result<()> {
        let url = self.etcd.url.clone();
        let host = self.host_mut(name);
        let (chassis, ip) = (host.name.clone(), host.ip.clone());
        let metrics = format!("{ip}:{METRICS_PORT}");
        host.lab.start_with(
            &[
                "run",
                "--etcd",
                &url,
                "--chassis",
                &chassis,
                "--underlay-dev",
                "ul0",
                "--underlay-ip",
                &ip,
                "--lease-ttl",
                "4",
                "--metrics",
                &metrics,
            ],
            expected,
        )
    }

    /// Host `name`'s agent's metrics (Prometheus text), or "" if it does
    /// not answer.
    pub fn metrics(&self, name: &str) -> String {
        let host = self.host(name);
        let addr = format!("{}:{METRICS_PORT}", host.ip);
        host.lab
            .hv
            .run_inside(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(addr.as_str())?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .unwrap_or_default()
    }

    /// One series' value in host `name`'s metrics (the first line that
    /// starts with `series`).
    pub fn metric(&self, name: &str, series: &str) -> Option<f64> {
        self.metrics(name)
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until every running agent sees `want` chassis.
    pub fn wait_chassis(&self, host: &str, want: &[&str], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let lab = &self.host(host).lab;
        loop {
            let seen: Vec<String> = lab
                .show("chassis")
                .ok()
                .and_then(|v| {
                    v.as_array().map(|a| {
                        a.iter()
                            .filter_map(|c| c["name"].as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            w.sort();
            if seen == w {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{host} sees chassis {seen:?}, not {w:?}:\n{}",
                    lab.agent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until host `name` sees `n` ports on other chassis.
    pub fn wait_remote_ports(&self, name: &str, n: usize, within: Duration) -> Result<()> {
        let lab = &self.host(name).lab;
        crate::lab::wait_for(within, &format!("{name} sees {n} remote ports"), || {
            lab.show_ports()
                .ok()
                .and_then(|v| v["remote"].as_array().map(|a| a.len()))
                == Some(n)
        })
        .with_context(|| lab.agent_log())
    }
}

/// The underlay: a namespace holding the bridge `ulbr` that every host's
/// `ul0` joins, with `UNDERLAY_PREFIX.250` (etcd's address).
pub fn underlay() -> Result<Netns> {
    let underlay = Netns::new("dpu")?;
    underlay.ip(&["link", "add", "ulbr", "type", "bridge"])?;
    underlay.ip(&["link", "set", "ulbr", "mtu", UNDERLAY_MTU])?;
    underlay.ip(&[
        "addr",
        "add",
        &format!("{UNDERLAY_PREFIX}.250/24"),
        "dev",
        "ulbr",
    ])?;
    underlay.ip(&["link", "set", "ulbr", "up"])?;
    Ok(underlay)
}

/// Makes `lab` host number `i` (named h<i+1>, address `UNDERLAY_PREFIX`.<i+1>)
/// on `underlay`: its `ul0` is a veth whose other end is on the bridge.
/// Baselines without this datapath (a Linux bridge and a vxlan device per
/// host) are built on the same underlay.
pub fn join_underlay(underlay: &Netns, lab: Lab, i: usize) -> Result<Host> {
    let name = format!("h{}", i + 1);
    let ip = format!("{UNDERLAY_PREFIX}.{}", i + 1);
    let peer = format!("uh{}", i + 1);
    lab.hv.ip(&[
        "link",
        "add",
        "ul0",
        "mtu",
        UNDERLAY_MTU,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        &underlay.name,
    ])?;
    underlay.ip(&[
        "link",
        "set",
        &peer,
        "mtu",
        UNDERLAY_MTU,
        "master",
        "ulbr",
        "up",
    ])?;
    lab.hv
        .ip(&["addr", "add", &format!("{ip}/24"), "dev", "ul0"])?;
    lab.hv.ip(&["link", "set", "ul0", "up"])?;
    Ok(Host { name, ip, lab })
}

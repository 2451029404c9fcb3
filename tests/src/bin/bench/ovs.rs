//! Open vSwitch as a benchmark peer: a private ovsdb-server and
//! ovs-vswitchd (Debian's openvswitch-switch 3.1), started in a
//! hypervisor namespace with their database, sockets, pid and log files in
//! a temporary folder, and stopped by PID when dropped, also when the
//! bench fails. Debian's own service is never used. This kernel has no
//! openvswitch module, so the bridge uses the userspace datapath
//! (`datapath_type=netdev`): ovs-vswitchd reads and writes the ports
//! through packet sockets and switches in its own threads.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use lab::{
    lab::wait_for,
    netns::{Netns, run},
};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// Neutron's integration bridge.
pub const BRIDGE: &str = "br-int";

pub struct Ovs {
    /// The hypervisor namespace the daemons (and their tap devices) live in.
    ns_path: String,
    ns_name: String,
    dir: tempfile::TempDir,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl Ovs {
    /// Starts ovsdb-server on a new database and ovs-vswitchd in `ns`, and
    /// creates br-int on the userspace datapath with Neutron's settings
    /// (secure fail mode: nothing is forwarded without flows).
    pub fn start(ns: &Netns) -> Result<Ovs> {
        ensure!(
            Path::new(SCHEMA).exists(),
            "{SCHEMA} missing: install openvswitch-switch (cargo xtask setup)"
        );
        let dir = tempfile::Builder::new().prefix("ovs").tempdir()?;
        let mut ovs = Ovs {
            ns_path: ns.path(),
            ns_name: ns.name.clone(),
            dir,
            ovsdb: None,
            vswitchd: None,
        };
        let db = ovs.path("conf.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA))?;
        let sock = ovs.path("db.sock");
        ovs.ovsdb = Some(ovs.daemon(
            "ovsdb-server",
            &[
                db.to_str().unwrap_or_default(),
                &format!("--remote=punix:{}", sock.display()),
            ],
        )?);
        wait_for(Duration::from_secs(10), "ovsdb-server's socket", || {
            sock.exists()
        })?;
        ovs.vsctl(&["--no-wait", "init"])?;
        let remote = format!("unix:{}", sock.display());
        ovs.vswitchd = Some(ovs.daemon("ovs-vswitchd", &[&remote])?);
        // ovs-vsctl waits until ovs-vswitchd has applied the change.
        ovs.vsctl(&[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow10,OpenFlow13",
        ])?;
        Ok(ovs)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `program` in the namespace (nsenter execs it: the child's PID
    /// is the daemon's), its files in the temporary folder.
    fn daemon(&self, program: &str, args: &[&str]) -> Result<Child> {
        let name = program.trim_start_matches("ovs-");
        let err = std::fs::File::create(self.path(&format!("{name}.stderr")))?;
        Command::new("nsenter")
            .arg(format!("--net={}", self.ns_path))
            .arg("--")
            .arg(program)
            .args(args)
            .arg(format!(
                "--pidfile={}",
                self.path(&format!("{name}.pid")).display()
            ))
            .arg(format!(
                "--unixctl={}",
                self.path(&format!("{name}.ctl")).display()
            ))
            .arg(format!(
                "--log-file={}",
                self.path(&format!("{name}.log")).display()
            ))
            .args(["--no-chdir", "-vconsole:off"])
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {program}"))
    }

    /// The run, database and log folders: the bridge's management socket
    /// (what ovs-ofctl talks to) is made in the run folder.
    fn env(&self) -> [(&'static str, PathBuf); 3] {
        let d = self.dir.path().to_path_buf();
        [
            ("OVS_RUNDIR", d.clone()),
            ("OVS_DBDIR", d.clone()),
            ("OVS_LOGDIR", d),
        ]
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.path("db.sock").display()))
            .arg("--timeout=20")
            .args(args)
            .envs(self.env()))
    }

    pub fn ofctl(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13"])
            .args(args)
            .envs(self.env()))
    }

    /// Adds the VMs' taps to br-int as Neutron's agent plugs them: access
    /// ports on the network's local VLAN, each with the OpenFlow port
    /// number asked for; one transaction for all.
    pub fn add_ports(&self, taps: &[(&str, u32)], vlan: u32) -> Result<()> {
        let mut args: Vec<String> = Vec::new();
        for (tap, ofport) in taps {
            args.extend(
                [
                    "--",
                    "add-port",
                    BRIDGE,
                    tap,
                    &format!("tag={vlan}"),
                    "--",
                    "set",
                    "Interface",
                    tap,
                    &format!("ofport_request={ofport}"),
                ]
                .map(String::from),
            );
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.vsctl(&args)?;
        Ok(())
    }

    /// Writes `flows` to a file and loads it with `ovs-ofctl add-flows`;
    /// returns the file's path (kept until the peer goes).
    pub fn add_flows(&self, flows: &str) -> Result<PathBuf> {
        let file = self.path("flows.txt");
        std::fs::write(&file, flows)?;
        self.ofctl(&["add-flows", BRIDGE, file.to_str().unwrap_or_default()])
            .context("ovs-ofctl add-flows")?;
        Ok(file)
    }

    /// Packets that matched the flows `ovs-ofctl dump-flows` selects with
    /// `filter` (e.g. `table=71,in_port=1`) whose description holds every
    /// one of `needles`. The userspace datapath hands its counts to the
    /// OpenFlow rules in the background: poll, don't read once.
    pub fn flow_packets(&self, filter: &str, needles: &[&str]) -> Result<u64> {
        let out = self.ofctl(&["dump-flows", BRIDGE, filter])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut total = 0;
        for line in text
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
        {
            let n = line
                .split([',', ' '])
                .find_map(|f| f.trim().strip_prefix("n_packets="))
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("no n_packets in {line}"))?;
            total += n;
        }
        Ok(total)
    }

    /// Packets the userspace datapath has read from its ports so far (every
    /// polling thread's count): what reached Open vSwitch, as opposed to
    /// what was lost at its sockets before it read them.
    pub fn packets_received(&self) -> Result<u64> {
        let ctl = self.path("vswitchd.ctl");
        let out = run(Command::new("ovs-appctl")
            .arg("-t")
            .arg(&ctl)
            .arg("dpif-netdev/pmd-stats-show"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let counts: Vec<u64> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("packets received:"))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        ensure!(
            !counts.is_empty(),
            "no packet counts in pmd-stats-show:\n{text}"
        );
        Ok(counts.iter().sum())
    }

    /// ovs-vswitchd's log, for errors.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("vswitchd.log")).unwrap_or_default()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // ovs-vsctl waits for ovs-vswitchd to apply a change: only ask a
        // running one.
        if let Some(v) = &mut self.vswitchd {
            if v.try_wait().is_ok_and(|s| s.is_none()) {
                let _ = self.vsctl(&["--if-exists", "del-br", BRIDGE]);
            }
        }
        for child in [self.vswitchd.take(), self.ovsdb.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            if !lab::process::stop(&mut child, libc::SIGTERM, Duration::from_secs(5)) {
                eprintln!(
                    "bench: stopping Open vSwitch: pid {} did not exit on SIGTERM, killed",
                    child.id()
                );
            }
        }
        // The userspace datapath's tap devices outlive ovs-vswitchd.
        for dev in ["ovs-netdev", BRIDGE] {
            let _ = Command::new("ip")
                .args(["-n", &self.ns_name, "link", "del", dev])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

//! A test topology: a hypervisor namespace holding the VMs' taps, VM
//! namespaces behind them, and the datapath agent running in the hypervisor
//! namespace. Everything is removed on drop, agent first.
//!
//! VMs are network namespaces, so each "tap" is the host end of a veth pair
//! named as Neutron names taps; the datapath cannot tell the difference.

use std::{
    fs::File,
    io::Read as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{
    capture::Capture,
    netns::{Netns, run},
};

/// The `dataplane` binary under test: `DATAPLANE_BIN`, or the one cargo
/// built next to the test executable.
pub fn dataplane_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DATAPLANE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/dataplane
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("dataplane"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not built: run `cargo xtask test` (or cargo build -p dataplane-user)",
        bin.display()
    );
    bin
}

static PORT_COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long a test waits for something that should happen promptly (the
/// agent's reaction, a reply once the VM's ARP resolves) before it fails.
/// Only a failing test waits this long: conditions are polled.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `cond` every 50 ms until it holds; fails naming `what` if it still
/// does not after `within`.
pub fn wait_for(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not so after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Vm {
    pub name: String,
    pub ns: Netns,
    pub port_id: String,
    pub tap: String,
    pub mac: String,
}

impl Vm {
    pub fn capture(&self) -> Result<Capture> {
        Capture::open(&self.ns, "eth0")
    }

    pub fn sh(&self, script: &str) -> Result<std::process::Output> {
        self.ns.sh(script)
    }

    /// Pings `dst` `count` times (0.2 s apart); true if any reply came back.
    /// For checks that traffic does *not* get through; that it does, check
    /// with [`Vm::reaches`]: a few pings right after a change can fail
    /// for reasons that are not the datapath's (see there).
    pub fn ping(&self, dst: &str, count: u32) -> bool {
        self.ping_from(dst, None, count)
    }

    pub fn ping_from(&self, dst: &str, src: Option<&str>, count: u32) -> bool {
        let count = count.to_string();
        let mut args = vec!["ping", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "1"];
        if let Some(src) = src {
            args.extend(["-I", src]);
        }
        args.push(dst);
        self.ns
            .try_exec(&args)
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Succeeds once `dst` answers a ping, trying again (one ping, 1 s for its
    /// reply) until `within` has passed; the error has the last ping's
    /// output and the VM's neighbour table.
    ///
    /// Why not a few pings once: after a check that traffic was refused,
    /// the VM's ARP entry for `dst` is INCOMPLETE, and it turns FAILED 3 s
    /// after that attempt (3 unanswered probes, 1 s apart) whatever the
    /// datapath does by then. Pings sent meanwhile wait in that entry and
    /// are answered "Destination Host Unreachable" when it fails; the next
    /// ping starts a new resolution, which succeeds.
    pub fn reaches(&self, dst: &str, within: Duration) -> Result<()> {
        self.reaches_from(dst, None, within)
    }

    /// [`Vm::reaches`] with the source address `src`.
    pub fn reaches_from(&self, dst: &str, src: Option<&str>, within: Duration) -> Result<()> {
        let mut args = vec!["ping", "-n", "-c", "1", "-W", "1"];
        if let Some(src) = src {
            args.extend(["-I", src]);
        }
        args.push(dst);
        let deadline = Instant::now() + within;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let out = self.ns.try_exec(&args)?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let neigh = self
                    .ns
                    .try_exec(&["ip", "neigh", "show"])
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                bail!(
                    "{} ({}) got no reply from {dst} in {attempts} pings over {within:?}; \
                     the last one said:\n{}{}neighbours:\n{neigh}",
                    self.name,
                    src.unwrap_or("its address"),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                );
            }
            // An error (unreachable) returns at once: do not spin.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a TCP server in the VM answering every connection to each of
    /// `ports` (IPv4 and IPv6) with "hello-<port>"; returns once all of
    /// them listen.
    pub fn serve_tcp(&self, ports: &[u16]) -> Result<()> {
        let script = format!(
            "import socket, threading\n\
             def serve(family, port):\n\
             \x20   s = socket.socket(family, socket.SOCK_STREAM)\n\
             \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             \x20   if family == socket.AF_INET6:\n\
             \x20       s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
             \x20   s.bind(('', port))\n\
             \x20   s.listen(64)\n\
             \x20   while True:\n\
             \x20       c, _ = s.accept()\n\
             \x20       threading.Thread(target=talk, args=(c, port)).start()\n\
             def talk(c, port):\n\
             \x20   c.sendall(b'hello-%d\\n' % port)\n\
             \x20   while c.recv(4096):\n\
             \x20       pass\n\
             \x20   c.close()\n\
             ts = [threading.Thread(target=serve, args=(f, p)) for p in {ports:?} for f in (socket.AF_INET, socket.AF_INET6)]\n\
             [t.start() for t in ts]\n"
        );
        let mut child = self
            .ns
            .command("/usr/bin/python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        // Reaped in the background: it lives as long as the namespace.
        std::thread::spawn(move || child.wait());
        wait_for(
            WAIT,
            &format!("{} to listen on {ports:?}", self.name),
            || ports.iter().all(|p| self.listening(*p) >= 2),
        )
    }

    /// Whether a TCP socket in the VM listens on `port`.
    pub fn listens(&self, port: u16) -> bool {
        self.listening(port) > 0
    }

    /// How many TCP sockets in the VM listen on `port` (IPv4, IPv6).
    fn listening(&self, port: u16) -> usize {
        let out = self.ns.try_exec(&["ss", "-Hltn"]);
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        text.unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!(":{port} ")))
            .count()
    }

    /// Connects to `dst`:`port` (optionally from `src`); true if the
    /// greeting of [`Vm::serve_tcp`] came back.
    pub fn connects(&self, dst: &str, port: u16, src: Option<&str>) -> bool {
        let src = src.map(|s| format!("-s {s}")).unwrap_or_default();
        self.ns
            .try_exec(&[
                "sh",
                "-c",
                &format!("timeout 3 nc -N -w 2 {src} {dst} {port} </dev/null"),
            ])
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("hello-{port}")))
    }

    /// Runs a scapy script in the VM with the layers imported, `IFACE`
    /// ("eth0") and `MAC` (this VM's MAC) defined.
    pub fn scapy(&self, body: &str) -> Result<std::process::Output> {
        let script = format!(
            "from scapy.config import conf\nconf.verb = 0\n\
             from scapy.layers.l2 import Ether, ARP, Dot1Q\n\
             from scapy.layers.inet import IP, UDP, TCP, ICMP\n\
             from scapy.layers.inet6 import IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6ND_RA, ICMPv6ND_RS, \
             ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, ICMPv6EchoRequest, IPv6ExtHdrFragment, ICMPv6MLReport2\n\
             from scapy.layers.dhcp import BOOTP, DHCP\n\
             from scapy.layers.dhcp6 import DHCP6_Advertise, DHCP6_Solicit\n\
             from scapy.packet import Raw\n\
             from scapy.sendrecv import sendp\n\
             IFACE = 'eth0'\nMAC = '{}'\n{body}\n",
            self.mac
        );
        run(self.ns.command("/usr/bin/python3").arg("-c").arg(script))
    }
}

struct Agent {
    child: Child,
    log: PathBuf,
}

pub struct Lab {
    // Dropped first: the agent must stop before its namespace goes.
    agent: Option<Agent>,
    pub instance: String,
    pub hv: Netns,
    pub vms: Vec<Vm>,
    bridge: Option<String>,
    pub dir: tempfile::TempDir,
    /// More arguments for `dataplane run`.
    pub run_args: Vec<String>,
}

impl Lab {
    /// A hypervisor namespace; with `bridge`, the taps sit on a Linux
    /// bridge (the datapath then only filters, the kernel forwards).
    pub fn new(bridge: bool) -> Result<Lab> {
        let hv = Netns::new("dph")?;
        let bridge = if bridge {
            hv.ip(&["link", "add", "br0", "type", "bridge"])?;
            hv.ip(&["link", "set", "br0", "up"])?;
            Some("br0".to_string())
        } else {
            None
        };
        Ok(Lab {
            agent: None,
            instance: crate::netns::unique("dpt"),
            hv,
            vms: Vec::new(),
            bridge,
            dir: tempfile::tempdir()?,
            run_args: Vec::new(),
        })
    }

    /// Adds a VM whose eth0 has `mac`; returns its index in `vms`.
    pub fn add_vm(&mut self, name: &str, mac: &str) -> Result<usize> {
        let n = PORT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // The counter leads: taps are named after the first 11 characters.
        let port_id = format!(
            "{n:04x}{:04x}-0000-4000-8000-{:012x}",
            pid & 0xffff,
            n as u64 * 7919 + 17
        );
        let tap = format!("tap{}", &port_id[..11]);
        self.add_vm_for_port(name, mac, &port_id, &tap)
    }

    /// Adds a VM whose tap does not exist yet (a port Nova has not plugged
    /// in): [`Lab::plug_vm`] creates it.
    pub fn add_unplugged_vm(&mut self, name: &str, mac: &str) -> Result<usize> {
        let i = self.add_vm(name, mac)?;
        self.hv.ip(&["link", "del", &self.vms[i].tap])?;
        Ok(i)
    }

    /// Creates the tap of a VM added with [`Lab::add_unplugged_vm`] (or
    /// whose tap was deleted), with its eth0 set up as [`Lab::add_vm`] does;
    /// its addresses are to be set again.
    pub fn plug_vm(&self, name: &str) -> Result<()> {
        let vm = self.vm(name);
        self.plug(&vm.ns, &vm.tap, &vm.mac)
    }

    /// Adds a VM behind the tap of an existing port (the demo's config).
    pub fn add_vm_for_port(
        &mut self,
        name: &str,
        mac: &str,
        port_id: &str,
        tap: &str,
    ) -> Result<usize> {
        let (port_id, tap) = (port_id.to_string(), tap.to_string());
        let ns = Netns::new("dpv")?;
        self.plug(&ns, &tap, mac)?;
        self.vms.push(Vm {
            name: name.to_string(),
            ns,
            port_id,
            tap,
            mac: mac.to_string(),
        });
        Ok(self.vms.len() - 1)
    }

    /// Creates the VM's tap (the host end of a veth) and its eth0 in `ns`.
    fn plug(&self, ns: &Netns, tap: &str, mac: &str) -> Result<()> {
        self.hv.ip(&[
            "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        if let Some(br) = &self.bridge {
            self.hv.ip(&["link", "set", tap, "master", br])?;
        }
        self.hv.ip(&["link", "set", tap, "up"])?;
        ns.ip(&["link", "set", "eth0", "address", mac])?;
        // No duplicate address detection delay.
        ns.sh(
            "sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
             net.ipv6.conf.eth0.addr_gen_mode=0",
        )?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        // A veth delivers XDP_REDIRECT frames only through NAPI, which it
        // enables when GRO is switched on while the link is up. Checksums
        // are computed by the sender: a frame redirected by XDP loses the
        // skb's note that its checksum is still to be filled in.
        ns.sh("ethtool -K eth0 gro off && ethtool -K eth0 gro on && ethtool -K eth0 tx off >/dev/null")?;
        Ok(())
    }

    /// The outside world on an uplink: a namespace on the far end of a
    /// veth whose host end, `uplink`, is in the hypervisor namespace (give
    /// the agent `--uplink PHYSNET=<uplink>`). Its eth0 has `mac` and the
    /// first of `addrs` (CIDR) and the rest on its loopback (hosts behind
    /// it); returned as a VM-like handle (ping, nc, captures).
    pub fn add_outside(&self, uplink: &str, mac: &str, addrs: &[&str]) -> Result<Vm> {
        let ns = Netns::new("dpo")?;
        self.hv.ip(&[
            "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        self.hv.ip(&["link", "set", uplink, "up"])?;
        let (first, behind) = addrs.split_first().context("an address for the outside")?;
        let mut script = format!(
            "ip link set eth0 address {mac} && ip link set eth0 up && ip link set lo up && \
             ip addr add {first} dev eth0"
        );
        for a in behind {
            script += &format!(" && ip addr add {a} dev lo");
        }
        // As the VMs' veths (see `plug`): NAPI for redirected frames,
        // checksums filled by the sender.
        script += " && ethtool -K eth0 gro off && ethtool -K eth0 gro on && \
                   ethtool -K eth0 tx off >/dev/null";
        ns.sh(&script)?;
        Ok(Vm {
            name: "outside".into(),
            ns,
            port_id: String::new(),
            tap: String::new(),
            mac: mac.into(),
        })
    }

    /// A VM reboot as the host sees it: the tap disappears and a new one
    /// with the same name (and a new ifindex) comes back. The VM's eth0 is
    /// new too: its addresses must be set again.
    pub fn replug(&self, name: &str) -> Result<()> {
        let vm = self.vm(name);
        self.hv.ip(&["link", "del", &vm.tap])?;
        std::thread::sleep(Duration::from_millis(300));
        self.plug(&vm.ns, &vm.tap, &vm.mac)
    }

    pub fn vm(&self, name: &str) -> &Vm {
        self.vms
            .iter()
            .find(|v| v.name == name)
            .expect("no such VM")
    }

    /// Writes `config` (JSON) and returns its path. The file is replaced
    /// in one step (written aside, then renamed), as config management
    /// does: the agent watching it never reads half a file.
    pub fn write_config(&self, name: &str, config: &Value) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(config)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Runs `dataplane` with this lab's instance in the hypervisor namespace.
    pub fn dataplane(&self, args: &[&str]) -> Command {
        let mut c = self.hv.command(dataplane_bin().to_str().unwrap());
        c.arg("--instance").arg(&self.instance).args(args);
        c
    }

    /// Starts the agent on `config` and waits until every port whose tap
    /// exists is live (the others wait for their tap).
    pub fn start(&mut self, config: &Value) -> Result<()> {
        let path = self.write_config("config.json", config)?;
        // Router interfaces are ports in the config but have no tap.
        let expected = config["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| {
                        !p["device_owner"]
                            .as_str()
                            .is_some_and(|o| o.starts_with("network:router"))
                    })
                    .filter(|p| {
                        p["tap_name"]
                            .as_str()
                            .is_none_or(|t| self.hv.ifindex(t).is_ok())
                    })
                    .count()
            })
            .unwrap_or(0);
        self.start_file(&path, expected)
    }

    /// Starts the agent on a config file holding `expected` ports, and waits
    /// until it applied its configuration (a new generation is live: after
    /// a restart the previous run's state is visible at once) and says it is
    /// ready. The generation alone is not enough: it goes live before the
    /// agent detaches taps that left the configuration, and before it
    /// handles SIGHUP, watches the file and listens for `apply`.
    pub fn start_file(&mut self, path: &std::path::Path, expected: usize) -> Result<()> {
        self.start_with(&["run", "--config", path.to_str().unwrap()], expected)
    }

    /// Starts the agent with `args` (`run` and its source) and waits until
    /// it is ready with a new generation holding `expected` local ports.
    pub fn start_with(&mut self, args: &[&str], expected: usize) -> Result<()> {
        let before = self
            .show_ports()
            .ok()
            .and_then(|v| v["generation"].as_u64())
            .unwrap_or(0);
        let ready_before = self.log_count(READY);
        let log = self.dir.path().join("agent.log");
        let child = self
            .dataplane(args)
            .args(
                (!self.run_args.iter().any(|a| a == "--max-ports"))
                    .then_some(["--max-ports", "64"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.run_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(append(&log)?)
            .stderr(append(&self.dir.path().join("agent.err"))?)
            .spawn()
            .context("spawning the agent")?;
        self.agent = Some(Agent { child, log });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(agent) = &mut self.agent {
                if let Some(status) = agent.child.try_wait()? {
                    bail!("agent exited ({status}):\n{}", self.agent_log());
                }
            }
            if self.log_count(READY) > ready_before {
                let v = self.show_ports()?;
                if v["generation"].as_u64().unwrap_or(0) > before
                    && v["ports"].as_array().map(|a| a.len()) == Some(expected)
                {
                    return Ok(());
                }
                bail!(
                    "agent ready without a new generation of {expected} ports:\n{v:#}\n{}",
                    self.agent_log()
                );
            }
            if Instant::now() > deadline {
                bail!("agent not ready after 30 s:\n{}", self.agent_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many times `needle` occurs in what the agents printed so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.agent_log().matches(needle).count()
    }

    /// What the agent printed so far.
    pub fn agent_log(&self) -> String {
        let mut s = String::new();
        for name in ["agent.log", "agent.err"] {
            if let Ok(mut f) = File::open(self.dir.path().join(name)) {
                let _ = f.read_to_string(&mut s);
            }
        }
        s
    }

    /// `dataplane show WHAT --json` (ports, groups, conntrack,
    /// security-groups) for this lab's instance.
    pub fn show(&self, what: &str) -> Result<Value> {
        let out = run(&mut self.dataplane(&["show", what, "--json"]))?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    pub fn show_ports(&self) -> Result<Value> {
        self.show("ports")
    }

    /// `dataplane status --json` and its exit status.
    pub fn status(&self) -> Result<(Value, i32)> {
        let out = self.dataplane(&["status", "--json"]).output()?;
        let view = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "status printed no JSON ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((view, out.status.code().unwrap_or(-1)))
    }

    /// When the agent logged the first line containing `needle` (seconds
    /// since the Unix epoch, from the log's UTC timestamp).
    pub fn log_time(&self, needle: &str) -> Option<f64> {
        let log = self.agent_log();
        let line = log.lines().find(|l| l.contains(needle))?;
        parse_utc(line.split_whitespace().next()?)
    }

    /// The port id of the active member of the group whose name contains
    /// `name` (an address or MAC), if it has one.
    pub fn active_member(&self, name: &str) -> Option<String> {
        let groups = self.show("groups").ok()?;
        groups
            .as_array()?
            .iter()
            .find(|g| g["name"].as_str().is_some_and(|n| n.contains(name)))?["active"]
            .as_str()
            .map(str::to_string)
    }

    /// The port's view in `show ports`.
    pub fn port(&self, vm: &Vm) -> Result<Value> {
        let v = self.show_ports()?;
        v["ports"]
            .as_array()
            .and_then(|ports| {
                ports
                    .iter()
                    .find(|p| p["id"] == vm.port_id.as_str())
                    .cloned()
            })
            .with_context(|| format!("port {} not in show ports", vm.port_id))
    }

    /// A drop counter of the VM's port.
    pub fn drops(&self, vm: &Vm, reason: &str) -> u64 {
        self.port(vm)
            .ok()
            .and_then(|p| p["stats"]["drops"][reason].as_u64())
            .unwrap_or(0)
    }

    /// Starts `count` pings from `vm` to `dst` every 20 ms in the
    /// background; returns the file their summary goes to (read it with
    /// [`ping_result`]).
    pub fn ping_in_background(&self, vm: &Vm, dst: &str, count: u32) -> PathBuf {
        let out = self.dir.path().join(format!("ping-{}.out", vm.name));
        vm.sh(&format!(
            "ping -n -i 0.02 -c {count} -W 1 {dst} > {} 2>&1 &",
            out.display()
        ))
        .expect("starting ping");
        out
    }

    /// Rewrites the agent's configuration file with `config` and sends it
    /// SIGHUP ([`Lab::sighup`]); fails with the agent's log unless that made
    /// a new generation live.
    pub fn reload(&self, config: &Value) -> Result<()> {
        let before = self.show_ports()?["generation"].as_u64().unwrap_or(0);
        self.sighup(config)?;
        if self.show_ports()?["generation"].as_u64().unwrap_or(0) <= before {
            bail!(
                "configuration not applied after SIGHUP:\n{}",
                self.agent_log()
            );
        }
        Ok(())
    }

    /// Rewrites the agent's configuration file and sends it SIGHUP; returns
    /// once the agent has dealt with both, whatever the outcome (check it
    /// in `show` or the log). Both: the agent watches the file too, so the
    /// rewrite makes it read the file again about 0.2 s after the signal
    /// did; returning before that would let this change bump the
    /// generation, or apply the next file, in the middle of the caller's
    /// next step. (Only for the file the agent was started on: after
    /// `dataplane apply` it watches another one.)
    pub fn sighup(&self, config: &Value) -> Result<()> {
        let changed_before = self.log_count(FILE_CHANGED);
        let outcomes_before = self.reload_outcomes();
        self.write_config("config.json", config)?;
        let agent = self.agent.as_ref().context("no agent running")?;
        // SAFETY: signalling a child we own.
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) };
        // Each trigger (the signal, each noticed change) ends in one
        // outcome, logged after the apply finished.
        wait_for(
            WAIT,
            "the agent handled the SIGHUP and the file change",
            || {
                let changed = self.log_count(FILE_CHANGED) - changed_before;
                changed >= 1 && self.reload_outcomes() - outcomes_before > changed
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}:\n{}", self.agent_log()))
    }

    /// Reloads the agent finished, applied or refused.
    fn reload_outcomes(&self) -> usize {
        self.log_count("reload: configuration applied")
            + self.log_count("keeping the running configuration")
    }

    /// Kills the agent with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill_agent(&mut self) -> Result<()> {
        if let Some(mut agent) = self.agent.take() {
            agent.child.kill()?;
            agent.child.wait()?;
        }
        Ok(())
    }

    /// The running agent's PID.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(|a| a.child.id())
    }

    /// Waits (up to `within`) for the agent to exit by itself (after
    /// `dataplane stop`, say); returns how it exited.
    pub fn wait_agent_exit(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let agent = self.agent.as_mut().context("no agent running")?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = agent.child.try_wait()? {
                self.agent = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the agent did not exit within {within:?}:\n{}",
                    self.agent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the agent with SIGINT and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut agent) = self.agent.take() {
            stop_agent(&mut agent)?;
        }
        Ok(())
    }
}

/// What the agent logs once it runs and handles signals, file changes and
/// `apply`.
const READY: &str = "datapath ready";
/// What the agent logs when it noticed that its configuration file changed.
const FILE_CHANGED: &str = "configuration file changed";

/// Opens a log for appending: restarted agents add to it.
fn append(path: &std::path::Path) -> Result<File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?)
}

fn stop_agent(agent: &mut Agent) -> Result<()> {
    if crate::process::stop(&mut agent.child, libc::SIGINT, Duration::from_secs(10)) {
        return Ok(());
    }
    bail!(
        "agent did not stop on SIGINT; log at {}",
        agent.log.display()
    )
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = stop_agent(&mut agent);
        }
        // Whatever the agent left pinned goes too, and what it published.
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/{}", self.instance));
        for ext in ["json", "sock", "status.json"] {
            let _ = std::fs::remove_file(format!("/run/dataplane/{}.{ext}", self.instance));
        }
    }
}

/// How many replies a background ping ([`Lab::ping_in_background`]) has
/// had so far.
pub fn ping_replies(out: &std::path::Path) -> usize {
    std::fs::read_to_string(out)
        .map(|t| crate::probe::answered(&t).len())
        .unwrap_or(0)
}

/// "2026-12-01T03:57:31.405772Z" as seconds since the Unix epoch.
pub fn parse_utc(t: &str) -> Option<f64> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h[0] * 3600 + h[1] * 60 + h[2];
    Some(secs as f64 + format!("0.{frac}").parse::<f64>().ok()?)
}

/// (sent, received) of a background ping ([`Lab::ping_in_background`]),
/// once it has finished (waits up to 30 s).
pub fn ping_result(out: &std::path::Path) -> (u32, u32) {
    for _ in 0..300 {
        if let Some(result) = std::fs::read_to_string(out)
            .ok()
            .and_then(|t| crate::probe::summary(&t))
        {
            return result;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ping did not finish");
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps_read_as_unix_time() {
        assert_eq!(super::parse_utc("1970-01-01T00:00:01.5Z"), Some(1.5));
        let t = super::parse_utc("2023-11-14T22:13:20.123456Z").unwrap();
        assert!((t - 1_700_000_000.123456).abs() < 1e-6, "{t}");
        let leap = super::parse_utc("2000-02-29T00:00:00.000000Z").unwrap();
        assert_eq!(leap, 951_782_400.0);
    }
}

//! Forwarding between real interfaces. Two VMs (network namespaces on
//! veth pairs) and one traffic generator, trafgen, sending from the first
//! VM's eth0 to the second, through three hypervisors built side by side:
//!
//! - this datapath, on the host ends of the veths;
//! - a Linux bridge with what a Neutron linuxbridge deployment installs for
//!   the same ports: the agent's ebtables MAC and ARP anti-spoofing chains,
//!   and the iptables firewall driver's chains (physdev match, conntrack
//!   zone, spoofing chain, RELATED/ESTABLISHED, the ports' security-group
//!   rules, INVALID drop, fallback drop), loaded with iptables-nft and
//!   ebtables-nft, so nf_tables runs them. Native nft cannot express it on
//!   this kernel: bridge-family conntrack (nf_conntrack_bridge) is not
//!   built, so connection tracking needs br_netfilter and the inet hooks,
//!   and only the xt physdev match sees the bridge port there;
//! - the same bridge without any rule (no port security at all): the
//!   kernel's own forwarding, for reference;
//! - Open vSwitch with the flows Neutron's OVS agent and its `openvswitch`
//!   firewall driver install for the same ports ([`ovs_fw`]), on the
//!   userspace (netdev) datapath: this kernel has no openvswitch module
//!   ([`ovs`]).
//!
//! Every stage of a packet's trip (trafgen's send, the veth, the switch,
//! the receiving veth) runs on the sending CPU, so packets per second and
//! CPU time per packet describe the same cost from two sides (not for
//! Open vSwitch: ovs-vswitchd switches in its own thread, so trafgen's pace
//! and the switch's are separate, and frames it cannot take in time are
//! lost at its socket). CPU time is the whole machine's busy time from
//! /proc/stat (user, system, irq and softirq: the generator's share is the
//! same in every setup) divided by the packets delivered, or sent for
//! dropped traffic.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};

use super::{
    median_of,
    neutron_fw::{self, FwPort},
    ovs::Ovs,
    ovs_fw::{self, OfPort, Rule},
};
use lab::{
    lab::{Lab, Vm, wait_for},
    netns::Netns,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

pub const SRC_MAC: &str = "fa:16:3e:f0:00:01";
pub const DST_MAC: &str = "fa:16:3e:f0:00:02";
pub const SRC_IP: &str = "10.30.0.1";
pub const DST_IP: &str = "10.30.0.2";
/// The source port's allowed address pairs: a VIP and a prefix.
const PAIRS: [&str; 2] = ["10.30.0.100", "172.16.30.0/24"];
/// The destination's security group admits UDP to these ports; each
/// round of new connections uses the next one, so that its flows are new.
pub const DPORT_MIN: u16 = 2000;
pub const DPORT_MAX: u16 = 2009;
pub const ROUNDS: usize = 3;

/// Rounds of a section (one in a smoke run).
pub fn rounds() -> usize {
    crate::pick(ROUNDS, 1)
}
/// Packets per run of a single flow or of spoofed traffic.
pub const PACKETS: u64 = 1_000_000;

/// [`PACKETS`], or a few in a smoke run.
pub fn packets() -> u64 {
    crate::pick(PACKETS, 20_000)
}
/// Source ports per run of new connections: every packet opens one.
const NEW_FLOWS: u64 = 60_000;

fn new_flows() -> u64 {
    crate::pick(NEW_FLOWS, 2_000)
}

#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    OneFlow,
    NewFlows,
    Spoofed,
}

impl Traffic {
    const ALL: [Traffic; 3] = [Traffic::OneFlow, Traffic::NewFlows, Traffic::Spoofed];

    fn title(self) -> &'static str {
        match self {
            Traffic::OneFlow => "one UDP flow, allowed",
            Traffic::NewFlows => "a new UDP connection per packet, allowed",
            Traffic::Spoofed => "spoofed source address, dropped",
        }
    }

    /// trafgen's packet description: 64-byte frames (60 without the FCS).
    fn trafgen(self, round: usize) -> (String, u64) {
        let dport = DPORT_MIN as usize + round;
        let (saddr, sport, n) = match self {
            Traffic::OneFlow => (SRC_IP, "1000".to_string(), packets()),
            Traffic::NewFlows => (
                SRC_IP,
                format!("dinc(1024, {})", 1024 + new_flows() - 1),
                new_flows(),
            ),
            Traffic::Spoofed => ("10.66.0.1", "1000".to_string(), packets()),
        };
        (
            format!(
                "{{ eth(da={DST_MAC}, sa={SRC_MAC}), ipv4(saddr={saddr}, daddr={DST_IP}, ttl=64), \
                 udp(sp={sport}, dp={dport}), fill(0, 18) }}\n"
            ),
            n,
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Datapath,
    /// The datapath with port security off on both ports: forwarding
    /// alone, to set beside the bare bridge.
    DatapathOpen,
    /// Neutron's rules with iptables-nft (nf_tables, xt matches through
    /// nft_compat): what current distributions install.
    BridgeNft,
    /// The same rules with iptables-legacy (x_tables), as older
    /// deployments run them.
    BridgeLegacy,
    BridgeBare,
    /// Open vSwitch with Neutron's OVS firewall flows, userspace datapath.
    Ovs,
}

impl Switch {
    fn title(self) -> &'static str {
        match self {
            Switch::Datapath => "this datapath (XDP)",
            Switch::DatapathOpen => "this datapath, port security off (no filtering)",
            Switch::BridgeNft => "Linux bridge + ebtables + iptables-nft conntrack",
            Switch::BridgeLegacy => "Linux bridge + ebtables + iptables-legacy conntrack",
            Switch::BridgeBare => "Linux bridge, no rules (no port security)",
            Switch::Ovs => "Open vSwitch 3.1 + Neutron OVS firewall flows (userspace datapath)",
        }
    }
}

/// Ports on the hypervisor besides the two that exchange traffic, in the
/// second pair of setups: Neutron's chains grow with every port on the
/// bridge, the datapath's lookups should not.
const OTHER_PORTS: usize = 100;

fn other_ports() -> usize {
    crate::pick(OTHER_PORTS, 3)
}

struct Hypervisor {
    switch: Switch,
    /// Open vSwitch's daemons, stopped before the namespaces go.
    ovs: Option<Ovs>,
    /// Other ports, with their taps and rules, that carry no traffic.
    others: usize,
    lab: Lab,
}

impl Hypervisor {
    fn build(switch: Switch, others: usize) -> Result<Hypervisor> {
        let bridge = matches!(
            switch,
            Switch::BridgeNft | Switch::BridgeLegacy | Switch::BridgeBare
        );
        let mut lab = Lab::new(bridge)?;
        lab.add_vm("src", SRC_MAC)?;
        lab.add_vm("dst", DST_MAC)?;
        for i in 0..others {
            lab.add_vm(&format!("other{i}"), &format!("fa:16:3e:f1:00:{i:02x}"))?;
        }
        let (src, dst) = (&lab.vms[0], &lab.vms[1]);
        src.sh(&format!("ip addr add {SRC_IP}/24 dev eth0"))?;
        dst.sh(&format!("ip addr add {DST_IP}/24 dev eth0"))?;
        sink(dst)?;
        let mut ovs = None;
        match switch {
            Switch::Datapath | Switch::DatapathOpen => {
                // Room for every round's connections (two zones each), so
                // that no run measures evictions.
                lab.run_args = ["--max-connections", "524288", "--max-ports", "256"]
                    .map(String::from)
                    .to_vec();
                lab.start(&datapath_config(&lab.vms, switch == Switch::Datapath))?;
            }
            Switch::BridgeNft => neutron_rules(&lab, "iptables-nft-restore")?,
            Switch::BridgeLegacy => neutron_rules(&lab, "iptables-legacy-restore")?,
            Switch::BridgeBare => {
                lab.hv
                    .sh("sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
                     net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0")?;
            }
            Switch::Ovs => ovs = Some(ovs_peer(&lab)?),
        }
        // The way back works (the destination's group admits no ICMP in),
        // and a bridge learns where both MACs are.
        let (src, dst) = (&lab.vms[0], &lab.vms[1]);
        ensure!(
            dst.ping(SRC_IP, 1),
            "{}: no ping from dst to src",
            switch.title()
        );
        ensure!(
            !filters(switch) || !src.ping(DST_IP, 1),
            "{}: the destination's group admits ICMP",
            switch.title()
        );
        if let Some(ovs) = &ovs {
            ovs_enforces(&lab, ovs).context("Open vSwitch does not enforce: no numbers")?;
        }
        Ok(Hypervisor {
            switch,
            ovs,
            others,
            lab,
        })
    }

    fn src(&self) -> &Vm {
        &self.lab.vms[0]
    }

    fn dst(&self) -> &Vm {
        &self.lab.vms[1]
    }

    fn title(&self) -> String {
        match self.others {
            0 => self.switch.title().to_string(),
            n => format!("{}, {n} more ports", self.switch.title()),
        }
    }

    /// The traffic this setup is measured with: without port security
    /// there is nothing to drop; the bigger setups only forward.
    fn carries(&self, traffic: Traffic) -> bool {
        match traffic {
            Traffic::OneFlow => true,
            Traffic::NewFlows => self.others == 0,
            Traffic::Spoofed => self.others == 0 && filters(self.switch),
        }
    }
}

/// Whether the setup enforces port security and security groups.
fn filters(switch: Switch) -> bool {
    !matches!(switch, Switch::BridgeBare | Switch::DatapathOpen)
}

/// A port's address: the two that exchange traffic, then the others.
fn address(i: usize) -> String {
    match i {
        0 => SRC_IP.to_string(),
        1 => DST_IP.to_string(),
        n => format!("10.30.0.{}", 148 + n),
    }
}

/// The same ports for the datapath: the source with its pairs and an open
/// group, the destination (and the others) admitting only UDP to the
/// benchmark's ports; or, not `secure`, port security off everywhere.
pub fn datapath_config(vms: &[Vm], secure: bool) -> Value {
    let ports = vms
        .iter()
        .enumerate()
        .map(|(i, vm)| {
            let mut p = port(vm, "net", &[("v4", &address(i))]);
            if !secure {
                p["port_security_enabled"] = json!(false);
            } else if i == 0 {
                p["allowed_address_pairs"] = PAIRS.iter().map(|ip| pair(ip, None)).collect();
            } else {
                p["security_groups"] = json!(["bench-dst"]);
            }
            p
        })
        .collect();
    let mut cfg = config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.30.0.0/24", None)],
        ports,
    );
    cfg["security_groups"]
        .as_array_mut()
        .expect("groups")
        .push(dst_group());
    cfg
}

/// The receivers' security group, `bench-dst`: all egress, and in only UDP
/// to the benchmark's ports.
pub fn dst_group() -> Value {
    json!({
        "id": "bench-dst",
        "security_group_rules": [
            { "direction": "egress", "ethertype": "IPv4" },
            { "direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
              "port_range_min": DPORT_MIN, "port_range_max": DPORT_MAX },
        ],
    })
}

/// The same group as Neutron's iptables driver writes it.
pub fn dst_ingress() -> String {
    format!("-p udp --dport {DPORT_MIN}:{DPORT_MAX} -j RETURN")
}

/// The receiver's first hook discards the benchmark's frames: no socket,
/// no ICMP error travelling back. The same in every setup.
pub fn sink(vm: &Vm) -> Result<()> {
    vm.sh(&format!(
        "nft -f - <<'EOF'\ntable ip sink {{\n  chain pre {{\n    type filter hook prerouting priority -300;\n    \
         udp dport {DPORT_MIN}-{DPORT_MAX} counter drop\n  }}\n}}\nEOF"
    ))?;
    Ok(())
}

/// Neutron's rules for the ports ([`neutron_fw`]). The other ports come
/// first, as when the two measured VMs booted last.
pub fn neutron_rules(lab: &Lab, restore: &str) -> Result<()> {
    let udp_in = dst_ingress();
    let mut ports: Vec<FwPort> = lab
        .vms
        .iter()
        .enumerate()
        .map(|(i, vm)| FwPort {
            tap: vm.tap.clone(),
            mac: vm.mac.clone(),
            ip: address(i),
            pairs: match i {
                0 => PAIRS.map(String::from).to_vec(),
                _ => Vec::new(),
            },
            ingress: match i {
                0 => vec!["-j RETURN".to_string()],
                _ => vec![udp_in.clone()],
            },
        })
        .collect();
    ports.rotate_left(2);
    neutron_fw::install(&lab.hv, lab.dir.path(), restore, &ports, &[])
}

/// Open vSwitch in the hypervisor namespace, the VMs' taps on br-int
/// (OpenFlow port i + 1 for VM i), and the flows Neutron's OVS agent and
/// firewall driver install for the same ports and groups as
/// [`datapath_config`] and [`neutron_rules`]: the source with its pairs
/// and the open group (everything in and out, IPv4 and IPv6), the others
/// with `bench-dst` (all IPv4 out, UDP to the benchmark's ports in).
pub fn ovs_peer(lab: &Lab) -> Result<Ovs> {
    let ovs = Ovs::start(&lab.hv)?;
    let taps: Vec<(&str, u32)> = (lab.vms.iter())
        .zip(1..)
        .map(|(vm, n)| (vm.tap.as_str(), n))
        .collect();
    ovs.add_ports(&taps, ovs_fw::LOCAL_VLAN)?;
    let macs: Vec<&str> = lab.vms.iter().map(|vm| vm.mac.as_str()).collect();
    ovs.add_flows(&ovs_fw::flows(&of_ports(&macs)))?;
    Ok(ovs)
}

/// The ports as the OVS firewall driver sees them, VM i on OpenFlow port
/// i + 1 with MAC `macs[i]`.
fn of_ports(macs: &[&str]) -> Vec<OfPort> {
    let open = vec![Rule::Any { v6: false }, Rule::Any { v6: true }];
    (macs.iter().enumerate())
        .map(|(i, mac)| OfPort {
            ofport: i as u32 + 1,
            mac: mac.to_string(),
            ipv4: vec![address(i)],
            pairs: match i {
                0 => PAIRS.map(String::from).to_vec(),
                _ => Vec::new(),
            },
            ingress: match i {
                0 => open.clone(),
                _ => vec![Rule::Udp {
                    min: DPORT_MIN,
                    max: DPORT_MAX,
                }],
            },
            egress: match i {
                0 => open.clone(),
                _ => vec![Rule::Any { v6: false }],
            },
        })
        .collect()
}

/// Before any number is taken: a spoofed source from the sending port
/// (OpenFlow port 1) is dropped by the driver's flows (the port's
/// catch-all drop flow counts every frame, none reaches the receiver),
/// and the allowed flow passes the receiver's rule (the rule commits its
/// connection, the frames arrive). Counted at the receiver's sink, which
/// sees only the benchmark's UDP.
fn ovs_enforces(lab: &Lab, ovs: &Ovs) -> Result<()> {
    // A burst well within a packet socket's default buffer (a few hundred
    // small frames), so that a descheduled ovs-vswitchd loses little of
    // it; 9 in 10 must pass.
    const N: u64 = 100;
    let (src, dst) = (Iface::eth0(&lab.vms[0]), Iface::eth0(&lab.vms[1]));
    // A port no measured run uses: these connections stay out of them.
    let desc = |saddr: &str| {
        format!(
            "{{ eth(da={DST_MAC}, sa={SRC_MAC}), ipv4(saddr={saddr}, daddr={DST_IP}, ttl=64), \
             udp(sp=999, dp={DPORT_MAX}), fill(0, 18) }}\n"
        )
    };
    let within = Duration::from_secs(10);
    let spoof_drops = || ovs.flow_packets("table=71,in_port=1", &["priority=10,"]);
    let (drops0, sunk0) = (spoof_drops()?, sink_packets(&lab.vms[1])?);
    trafgen(src, dst, lab.dir.path(), &desc("10.66.0.1"), N)?;
    wait_for(
        within,
        "spoofed frames counted by the port's drop flow",
        || spoof_drops().is_ok_and(|d| d >= drops0 + N * 9 / 10),
    )?;
    let sunk = sink_packets(&lab.vms[1])? - sunk0;
    ensure!(
        sunk == 0,
        "{sunk} of {N} spoofed frames reached the receiver"
    );
    let commits = || ovs.flow_packets("table=82,reg5=2", &["+new-est", "ct(commit"]);
    let commits0 = commits()?;
    trafgen(src, dst, lab.dir.path(), &desc(SRC_IP), N)?;
    wait_for(within, "allowed frames at the receiver (9 in 10)", || {
        sink_packets(&lab.vms[1]).is_ok_and(|p| p >= sunk0 + N * 9 / 10)
    })?;
    wait_for(
        within,
        "the receiver's rule committing the connection",
        || commits().is_ok_and(|c| c > commits0),
    )
    .with_context(|| ovs.log())?;
    Ok(())
}

/// Frames the receiver's [`sink`] has discarded: the benchmark's UDP only.
fn sink_packets(vm: &Vm) -> Result<u64> {
    let out = vm.sh("nft list table ip sink")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no counter in {text}"))
}

/// Busy CPU time of the whole machine, in clock ticks.
pub fn busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    ensure!(v.len() >= 8, "short /proc/stat line: {line}");
    // user nice system idle iowait irq softirq steal: idle, iowait and
    // steal (time the hypervisor gave to others) are not ours.
    Ok(v[0] + v[1] + v[2] + v[5] + v[6])
}

/// An interface in a namespace: where trafgen sends, where packets are
/// counted.
#[derive(Clone, Copy)]
pub struct Iface<'a> {
    pub ns: &'a Netns,
    pub dev: &'a str,
}

impl<'a> Iface<'a> {
    pub fn eth0(vm: &'a Vm) -> Iface<'a> {
        Iface {
            ns: &vm.ns,
            dev: "eth0",
        }
    }

    fn packets(self, dir: &str) -> Result<u64> {
        let out = self.ns.ip(&["-j", "-s", "link", "show", self.dev])?;
        let v: Value = serde_json::from_slice(&out.stdout)?;
        v[0]["stats64"][dir]["packets"]
            .as_u64()
            .with_context(|| format!("no {dir} packet count for {} in {}", self.dev, self.ns.name))
    }
}

pub struct Sample {
    pub sent: u64,
    pub delivered: u64,
    pub secs: f64,
    pub busy_secs: f64,
    /// CPU time of the trafgen process (and the shell starting it) and of
    /// the kernel's softirq threads: where every stage of the frames' trip
    /// is charged (see [`path_cpu_secs`]), without other work on the
    /// machine.
    pub path_secs: f64,
    /// Frames the switch itself read, where it says (Open vSwitch's
    /// userspace datapath: the rest was lost at its sockets).
    pub read: Option<u64>,
}

fn run_once(h: &Hypervisor, traffic: Traffic, round: usize) -> Result<Sample> {
    let (desc, n) = traffic.trafgen(round);
    // The slowest setups are the bigger ones: fewer frames keep runs short.
    let n = if h.others > 0 { n / 4 } else { n };
    let (src, dst) = (Iface::eth0(h.src()), Iface::eth0(h.dst()));
    trafgen(src, dst, h.lab.dir.path(), &desc, n)
}

/// Sends `n` frames described by `desc` (trafgen's syntax) from `from` as
/// fast as one trafgen process can, and counts what `to` received. A
/// trafgen that fails is run once more (the whole measurement): on a
/// shared machine it has failed now and then, and then ran fine.
pub fn trafgen(from: Iface, to: Iface, dir: &Path, desc: &str, n: u64) -> Result<Sample> {
    trafgen_once(from, to, dir, desc, n).or_else(|e| {
        eprintln!("bench: trafgen failed, once more: {e:#}");
        trafgen_once(from, to, dir, desc, n)
    })
}

fn trafgen_once(from: Iface, to: Iface, dir: &Path, desc: &str, n: u64) -> Result<Sample> {
    let cfg = dir.join("trafgen.cfg");
    std::fs::write(&cfg, desc)?;
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (sent0, got0) = (from.packets("tx")?, to.packets("rx")?);
    let busy0 = busy_ticks()?;
    let path0 = path_cpu_secs()?;
    let t = Instant::now();
    from.ns
        .sh(&format!(
            "trafgen -o {} -i {} -n {n} -P 1 -C >/dev/null",
            from.dev,
            cfg.display()
        ))
        .context("trafgen")?;
    let secs = t.elapsed().as_secs_f64();
    let path1 = path_cpu_secs()?;
    let busy1 = busy_ticks()?;
    let (sent1, got1) = (from.packets("tx")?, to.packets("rx")?);
    Ok(Sample {
        sent: sent1 - sent0,
        delivered: got1 - got0,
        secs,
        busy_secs: (busy1 - busy0) as f64 / ticks_per_sec,
        path_secs: path1 - path0,
        read: None,
    })
}

/// CPU seconds of this process's finished children (a trafgen run and
/// the shell that started it, once waited for) and of the ksoftirqd
/// threads. The kernel here charges softirq time (tick accounting, no
/// IRQ_TIME_ACCOUNTING) to the task it interrupted: the frames' trip
/// through veths, XDP or bridges, tunnels and the receiver's stack runs in
/// softirq on the sending CPU, in trafgen's context or, when the kernel
/// defers it, ksoftirqd's. Unlike the machine's busy time, it leaves out
/// what other work a shared machine runs meanwhile (but for the softirq
/// threads' share of that).
fn path_cpu_secs() -> Result<f64> {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        ensure!(
            libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut ru) == 0,
            "getrusage: {}",
            std::io::Error::last_os_error()
        );
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime) + ksoftirqd_secs()?)
}

/// utime + stime of every ksoftirqd thread, in seconds.
fn ksoftirqd_secs() -> Result<f64> {
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0u64;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ksoftirqd/") {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the
        // 3rd field of the line, utime the 14th and stime the 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        ticks += f.iter().sum::<u64>();
    }
    Ok(ticks as f64 / ticks_per_sec)
}

/// One measured cell: medians over the rounds.
struct Cell {
    sent_pps: f64,
    delivered_pps: f64,
    /// CPU time per packet delivered (or sent, for dropped traffic).
    cpu_ns: f64,
}

/// Runs every traffic through every setup, `ROUNDS` times interleaved (so
/// that a noisy neighbour's burst spreads over all setups), and returns
/// the markdown section.
pub fn run() -> Result<String> {
    let setups = [
        (Switch::Datapath, 0),
        (Switch::DatapathOpen, 0),
        (Switch::BridgeNft, 0),
        (Switch::BridgeLegacy, 0),
        (Switch::BridgeBare, 0),
        (Switch::Ovs, 0),
        (Switch::Datapath, other_ports()),
        (Switch::BridgeNft, other_ports()),
        (Switch::BridgeLegacy, other_ports()),
        (Switch::Ovs, other_ports()),
    ];
    let mut hvs = Vec::new();
    for (switch, others) in setups {
        eprintln!(
            "bench: forwarding, building {} (+{others} ports)",
            switch.title()
        );
        hvs.push(Hypervisor::build(switch, others).with_context(|| switch.title())?);
    }
    let mut samples: Vec<Vec<Vec<Sample>>> = (0..Traffic::ALL.len())
        .map(|_| (0..hvs.len()).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds() {
        for (t, &traffic) in Traffic::ALL.iter().enumerate() {
            for (i, h) in hvs.iter().enumerate() {
                if !h.carries(traffic) {
                    continue;
                }
                eprintln!(
                    "bench: forwarding, round {round}, {}, {}",
                    traffic.title(),
                    h.title()
                );
                let read0 = h.ovs.as_ref().map(Ovs::packets_received).transpose()?;
                let mut s = run_once(h, traffic, round)?;
                if let (Some(ovs), Some(read0)) = (&h.ovs, read0) {
                    s.read = Some(ovs.packets_received()? - read0);
                }
                if traffic == Traffic::Spoofed {
                    // Background frames (ND, MLD) may reach the receiver;
                    // no spoofed frame may.
                    ensure!(
                        s.delivered < 10,
                        "{}: {} of {} spoofed frames delivered",
                        h.title(),
                        s.delivered,
                        s.sent
                    );
                }
                samples[t][i].push(s);
            }
        }
    }
    report(&hvs, &samples)
}

/// Medians over the rounds of each setup's samples for `traffic`.
fn cells(traffic: Traffic, samples: &[Vec<Sample>]) -> Vec<Option<Cell>> {
    samples
        .iter()
        .map(|ss| {
            (!ss.is_empty()).then(|| {
                let per = |s: &Sample| {
                    if traffic == Traffic::Spoofed {
                        s.sent
                    } else {
                        s.delivered
                    }
                    .max(1) as f64
                };
                Cell {
                    sent_pps: median_of(ss.iter().map(|s| s.sent as f64 / s.secs).collect()),
                    delivered_pps: median_of(
                        ss.iter().map(|s| s.delivered as f64 / s.secs).collect(),
                    ),
                    cpu_ns: median_of(ss.iter().map(|s| s.busy_secs * 1e9 / per(s)).collect()),
                }
            })
        })
        .collect()
}

/// For dropped traffic, throughput is what the switch absorbs.
fn pps(traffic: Traffic, c: &Cell) -> f64 {
    if traffic == Traffic::Spoofed {
        c.sent_pps
    } else {
        c.delivered_pps
    }
}

fn report(hvs: &[Hypervisor], samples: &[Vec<Vec<Sample>>]) -> Result<String> {
    let mut md = String::new();
    md += "## Forwarding between real interfaces\n\n";
    md += &format!(
        "Two VMs (namespaces on veth pairs); trafgen on the first VM's eth0 (one process, \
         64-byte frames, as fast as it can) sends to the second, which discards them in its \
         first netfilter hook. Median of {} interleaved rounds; {} frames a run \
         ({} with more ports), {} for new connections (each frame a new source \
         port). The bridge rows hold what Neutron's linuxbridge agent and iptables firewall \
         driver install for the same ports (ebtables MAC/ARP chains; physdev, conntrack \
         zone, spoofing chain, RELATED/ESTABLISHED, the security-group rules, INVALID and \
         fallback drop), loaded with ebtables-nft and either iptables-nft (nf_tables running \
         the xt matches through nft_compat, what current distributions install) or \
         iptables-legacy. \"{} more ports\": the same with {} \
         more VMs on the hypervisor, with their taps and rules, carrying no traffic. Every \
         stage runs on the sending CPU, so a faster switch shows as more packets per second \
         and as less CPU per packet; CPU per packet is the machine's busy time (generator \
         included, the same for all) over packets delivered (over packets sent for dropped \
         traffic). Ratios compare the datapath with the same number of ports to each row.\n\n",
        rounds(),
        packets(),
        packets() / 4,
        new_flows(),
        other_ports(),
        other_ports(),
    );
    md += OVS_NOTE;
    md += "| traffic | switch | sent, kpps | delivered, kpps | CPU per packet | datapath / this, pps | datapath / this, CPU |\n";
    md += "|---|---|---:|---:|---:|---:|---:|\n";
    let all: Vec<Vec<Option<Cell>>> = (Traffic::ALL.iter().zip(samples))
        .map(|(&t, ss)| cells(t, ss))
        .collect();
    for (&traffic, cells) in Traffic::ALL.iter().zip(&all) {
        for (h, cell) in hvs.iter().zip(cells) {
            let Some(c) = cell else { continue };
            let dp = hvs
                .iter()
                .zip(cells)
                .find(|(d, _)| d.switch == Switch::Datapath && d.others == h.others)
                .and_then(|(_, c)| c.as_ref())
                .context("no datapath run to compare with")?;
            md += &format!(
                "| {} | {} | {:.0} | {:.0} | {:.2} µs | {} | {} |\n",
                traffic.title(),
                h.title(),
                c.sent_pps / 1e3,
                c.delivered_pps / 1e3,
                c.cpu_ns / 1e3,
                crate::ratio(pps(traffic, dp), pps(traffic, c)),
                crate::ratio(dp.cpu_ns, c.cpu_ns),
            );
        }
    }
    md += "\n";
    md += &ovs_against_peers(hvs, &all);
    md += &ovs_read(hvs, samples);
    Ok(md)
}

/// Said next to the Open vSwitch rows.
const OVS_NOTE: &str = "The Open vSwitch rows run Debian's Open vSwitch 3.1 with the flows \
    Neutron's OVS agent and `openvswitch` firewall driver install for the same ports \
    (per-port MAC/IP and ARP spoofing checks, conntrack in the network's zone with \
    +trk/+new/+est/+rel/+inv handling and commit, the groups' rules, NORMAL/output \
    forwarding; see `tests/src/bin/bench/ovs_fw.rs`), on its **userspace (netdev) \
    datapath**: this kernel has no openvswitch module. One ovs-vswitchd thread reads \
    the taps through packet sockets, switches and tracks connections in userspace and \
    writes the frames out again. Unlike the other rows, that work does not run on the \
    sending CPU at trafgen's pace: what the thread cannot take in time is lost at its \
    socket (sent minus delivered; the table after the next says where). Production OVS runs the kernel datapath (a flow cache in \
    the kernel, kernel conntrack, no trip through userspace but for a flow's first \
    packet), which should forward more packets for less CPU (not measured here: no \
    module): these rows most likely understate what a production OVS does, and say \
    nothing about OVS-DPDK. The rules were checked before \
    any run: a spoofed source is counted by the sending port's drop flow and never \
    arrives, the allowed flow is committed by the receiver's rule and arrives.\n\n";

/// Open vSwitch's rows against every other setup with the same number of
/// ports, traffic by traffic.
fn ovs_against_peers(hvs: &[Hypervisor], all: &[Vec<Option<Cell>>]) -> String {
    let mut md = String::from(
        "Open vSwitch (userspace datapath) against each setup, same run, same ports:\n\n\
         | traffic | setup | this / OVS, pps | OVS / this, CPU per packet |\n|---|---|---:|---:|\n",
    );
    for (&traffic, cells) in Traffic::ALL.iter().zip(all) {
        let ovs = (hvs.iter().zip(cells)).filter(|(h, _)| h.switch == Switch::Ovs);
        for (oh, o) in ovs {
            let Some(o) = o else { continue };
            for (h, cell) in hvs.iter().zip(cells) {
                let Some(c) = cell else { continue };
                if h.switch == Switch::Ovs || h.others != oh.others {
                    continue;
                }
                md += &format!(
                    "| {} | {} | {} | {} |\n",
                    traffic.title(),
                    h.title(),
                    crate::ratio(pps(traffic, c), pps(traffic, o)),
                    crate::ratio(o.cpu_ns, c.cpu_ns),
                );
            }
        }
    }
    md + "\n"
}

/// What ovs-vswitchd read of what was sent, and delivered of what it read:
/// where Open vSwitch's frames are lost.
fn ovs_read(hvs: &[Hypervisor], samples: &[Vec<Vec<Sample>>]) -> String {
    let mut md = String::from(
        "Where Open vSwitch loses frames (median of the rounds): sent by trafgen, read \
         by ovs-vswitchd from the sending port's socket (its datapath's `packets received`; \
         what the socket could not hold was lost before), delivered to the receiver.\n\n\
         | traffic | setup | sent, kpps | read by ovs-vswitchd, kpps | delivered, kpps |\n\
         |---|---|---:|---:|---:|\n",
    );
    for (&traffic, per_setup) in Traffic::ALL.iter().zip(samples) {
        for (h, ss) in hvs.iter().zip(per_setup) {
            let read: Vec<f64> = ss
                .iter()
                .filter_map(|s| s.read.map(|r| r as f64 / s.secs))
                .collect();
            if read.is_empty() {
                continue;
            }
            let rate = |f: fn(&Sample) -> u64| {
                median_of(ss.iter().map(|s| f(s) as f64 / s.secs).collect()) / 1e3
            };
            md += &format!(
                "| {} | {} | {:.0} | {:.0} | {:.0} |\n",
                traffic.title(),
                h.title(),
                rate(|s| s.sent),
                median_of(read) / 1e3,
                rate(|s| s.delivered),
            );
        }
    }
    md + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// results/ovs-flows.txt, for readers to set beside Neutron's driver,
    /// is what the forwarding section loads for its two VMs.
    /// `OVS_FLOWS_WRITE=1 cargo test -p tests --bin bench` rewrites it.
    #[test]
    fn committed_flow_file_is_what_the_bench_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/ovs-flows.txt");
        let flows = ovs_fw::flows(&of_ports(&[SRC_MAC, DST_MAC]));
        if std::env::var_os("OVS_FLOWS_WRITE").is_some() {
            std::fs::write(path, &flows).expect("writing results/ovs-flows.txt");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == flows,
            "{path} differs from the flows the bench loads: \
             OVS_FLOWS_WRITE=1 cargo test -p tests --bin bench"
        );
    }
}

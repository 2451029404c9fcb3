//! Cross-host against same-host forwarding: the forwarding section's
//! single 64-byte UDP flow, from a VM on host h1 to a VM on the same host
//! and to a VM on h2 over VXLAN, through this datapath (one agent per host
//! on a real etcd) and through the baseline a Neutron linuxbridge
//! deployment builds (a bridge and a vxlan device per host, l2population's
//! forwarding entries, the linuxbridge agent's ebtables and the iptables
//! firewall driver's rules for the same ports).
//!
//! A third path is the floor of the tunnel's cost: the cross-host frames
//! already encapsulated, sent by trafgen from h1's underlay interface, so
//! that only the underlay and the receiving host work. What the cross-host
//! path costs beyond it is the sending host's share: its switch and the
//! encapsulation.
//!
//! Besides throughput and the machine's CPU time per packet, the
//! datapath's runs are repeated with the kernel's BPF run-time statistics
//! on, which say how much of that time each program takes.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use lab::{cloud::Cloud, lab::WAIT, netns::Netns, topo};
use serde_json::{Value, json};

use super::{
    bridges::{BridgeCloud, VNI, VXLAN_DEV},
    stats,
};
use crate::{
    forwarding::{self, DPORT_MIN, Iface, Sample, packets, rounds},
    median_of,
    neutron_fw::{self, FwPort},
};

const SRC_MAC: &str = "fa:16:3e:f2:00:01";
const NEAR_MAC: &str = "fa:16:3e:f2:00:02";
const FAR_MAC: &str = "fa:16:3e:f2:00:03";
const SRC_IP: &str = "10.32.0.1";
const NEAR_IP: &str = "10.32.0.2";
const FAR_IP: &str = "10.32.0.3";
const PAIRS: [&str; 2] = ["10.32.0.100", "172.16.32.0/24"];
/// Frames a run: half the forwarding section's, as nine runs a round
/// (statistics runs included) on a busy machine take long enough.
fn frames() -> u64 {
    packets() / 2
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    SameHost,
    CrossHost,
    UnderlayIn,
}

impl Path {
    const ALL: [Path; 3] = [Path::SameHost, Path::CrossHost, Path::UnderlayIn];

    fn title(self) -> &'static str {
        match self {
            Path::SameHost => "same host: VM to VM on h1",
            Path::CrossHost => "across hosts: VM on h1 to VM on h2, VXLAN",
            Path::UnderlayIn => "floor: the same, encapsulated, sent from h1's underlay",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Datapath,
    Bridge,
}

impl Switch {
    fn title(self) -> &'static str {
        match self {
            Switch::Datapath => "this datapath",
            Switch::Bridge => "bridge + vxlan + ebtables + iptables-nft",
        }
    }
}

/// One measured combination: where trafgen sends and what it sends.
struct Setup<'a> {
    switch: Switch,
    path: Path,
    from: Iface<'a>,
    to: Iface<'a>,
    desc: String,
    dir: &'a std::path::Path,
}

/// What the rounds gave for one setup.
#[derive(Default)]
struct Results {
    plain: Vec<Sample>,
    /// With BPF statistics on: packets delivered, per-program counters
    /// (host, program) over the run.
    with_stats: Vec<(u64, Vec<(String, stats::Counter)>)>,
}

pub fn run() -> Result<String> {
    eprintln!("bench: hosts-forwarding, building the datapath's hosts");
    let dp = datapath_hosts()?;
    eprintln!("bench: hosts-forwarding, building the bridge baseline's hosts");
    let br = bridge_hosts()?;
    let mut setups = Vec::new();
    for path in Path::ALL {
        setups.push(setup(Switch::Datapath, path, &dp.hosts[0], &dp.hosts[1])?);
        setups.push(setup(Switch::Bridge, path, &br.hosts[0], &br.hosts[1])?);
    }
    let agents: Vec<(String, u32)> = dp
        .hosts
        .iter()
        .map(|h| Ok((h.name.clone(), h.lab.agent_pid().context("no agent")?)))
        .collect::<Result<_>>()?;
    let mut results: Vec<Results> = setups.iter().map(|_| Results::default()).collect();
    for round in 0..rounds() {
        for (s, r) in setups.iter().zip(&mut results) {
            eprintln!(
                "bench: hosts-forwarding, round {round}, {}, {}",
                s.path.title(),
                s.switch.title()
            );
            r.plain.push(checked(s)?);
            if s.switch == Switch::Datapath {
                r.with_stats.push(with_stats(s, &agents)?);
            }
        }
    }
    Ok(report(&setups, &results))
}

/// A run whose frames must mostly arrive: a path that drops them measures
/// nothing worth reporting.
fn checked(s: &Setup) -> Result<Sample> {
    let sample = forwarding::trafgen(s.from, s.to, s.dir, &s.desc, frames())?;
    ensure!(
        sample.delivered * 10 >= sample.sent * 9,
        "{}, {}: {} of {} frames delivered",
        s.path.title(),
        s.switch.title(),
        sample.delivered,
        sample.sent
    );
    Ok(sample)
}

/// The same run with BPF statistics on; the counters of every agent's
/// programs over it.
fn with_stats(s: &Setup, agents: &[(String, u32)]) -> Result<(u64, Vec<(String, stats::Counter)>)> {
    let ids: Vec<(String, Vec<u32>)> = agents
        .iter()
        .map(|(host, pid)| Ok((host.clone(), stats::programs_of(*pid)?)))
        .collect::<Result<_>>()?;
    let all: Vec<u32> = ids.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let on = stats::enable()?;
    let before = stats::read(&all)?;
    // The statistics' clock reads slow every program, so more of the
    // flood is lost on the slowest path than in the plain run; the time
    // is still divided by frames delivered (an upper bound), so only a
    // path that loses most of them is refused.
    let sample = forwarding::trafgen(s.from, s.to, s.dir, &s.desc, frames())?;
    ensure!(
        sample.delivered * 2 >= sample.sent,
        "{}, with BPF statistics: {} of {} frames delivered",
        s.path.title(),
        sample.delivered,
        sample.sent
    );
    let after = stats::read(&all)?;
    drop(on);
    let mut counters = Vec::new();
    for (host, host_ids) in &ids {
        let pick = |m: &BTreeMap<u32, stats::Counter>| -> BTreeMap<u32, stats::Counter> {
            m.iter()
                .filter(|(id, _)| host_ids.contains(id))
                .map(|(id, c)| (*id, c.clone()))
                .collect()
        };
        for c in stats::delta(&pick(&before), &pick(&after)) {
            counters.push((host.clone(), c));
        }
    }
    Ok((sample.delivered, counters))
}

/// The trafgen run of `path` through `switch`, h1 sending.
fn setup<'a>(
    switch: Switch,
    path: Path,
    h1: &'a lab::cloud::Host,
    h2: &'a lab::cloud::Host,
) -> Result<Setup<'a>> {
    let src = h1.lab.vm("src");
    let (from, to, desc) = match path {
        Path::SameHost => (
            Iface::eth0(src),
            Iface::eth0(h1.lab.vm("near")),
            vm_flow(NEAR_MAC, NEAR_IP),
        ),
        Path::CrossHost => (
            Iface::eth0(src),
            Iface::eth0(h2.lab.vm("far")),
            vm_flow(FAR_MAC, FAR_IP),
        ),
        Path::UnderlayIn => (
            Iface {
                ns: &h1.lab.hv,
                dev: "ul0",
            },
            Iface::eth0(h2.lab.vm("far")),
            encapsulated(h1, h2)?,
        ),
    };
    Ok(Setup {
        switch,
        path,
        from,
        to,
        desc,
        dir: h1.lab.dir.path(),
    })
}

/// The forwarding section's flow, to another VM.
fn vm_flow(mac: &str, ip: &str) -> String {
    format!(
        "{{ eth(da={mac}, sa={SRC_MAC}), ipv4(saddr={SRC_IP}, daddr={ip}, ttl=64), \
         udp(sp=1000, dp={DPORT_MIN}), fill(0, 18) }}\n"
    )
}

/// The cross-host flow as it leaves h1: VXLAN (VNI, UDP checksum 0, as a
/// vxlan device sends it) from h1's underlay address to h2's, as bytes.
fn encapsulated(h1: &lab::cloud::Host, h2: &lab::cloud::Host) -> Result<String> {
    use lab::pkt::{mac, v4};
    let inner = etherparse::PacketBuilder::ethernet2(mac(SRC_MAC), mac(FAR_MAC))
        .ipv4(v4(SRC_IP), v4(FAR_IP), 64)
        .udp(1000, DPORT_MIN);
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&(VNI << 8).to_be_bytes());
    inner.write(&mut payload, &[0u8; 18])?;
    let outer = etherparse::PacketBuilder::ethernet2(
        mac(&link_mac(&h1.lab.hv, "ul0")?),
        mac(&link_mac(&h2.lab.hv, "ul0")?),
    )
    .ipv4(v4(&h1.ip), v4(&h2.ip), 64)
    .udp(49152, 4789);
    let mut frame = Vec::new();
    outer.write(&mut frame, &payload)?;
    // The UDP checksum (after Ethernet and a 20-byte IPv4 header): none.
    frame[40] = 0;
    frame[41] = 0;
    let bytes: Vec<String> = frame.iter().map(|b| format!("0x{b:02x}")).collect();
    Ok(format!("{{ {} }}\n", bytes.join(", ")))
}

fn link_mac(ns: &Netns, dev: &str) -> Result<String> {
    let out = ns.ip(&["-j", "link", "show", dev])?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no MAC for {dev}"))
}

/// VMs src and near on h1, far on h2, with their addresses; the
/// receivers discard the benchmark's frames.
fn add_vms(add: &mut dyn FnMut(usize, &str, &str, &str) -> Result<()>) -> Result<()> {
    add(0, "src", SRC_MAC, SRC_IP)?;
    add(0, "near", NEAR_MAC, NEAR_IP)?;
    add(1, "far", FAR_MAC, FAR_IP)
}

/// Two hosts with this datapath, one agent each on a real etcd.
fn datapath_hosts() -> Result<Cloud> {
    let mut cloud = Cloud::new(2)?;
    let mut ports = Vec::new();
    add_vms(&mut |h, name, mac, ip| {
        let host = &mut cloud.hosts[h];
        let i = host.lab.add_vm(name, mac)?;
        let vm = &host.lab.vms[i];
        vm.sh(&format!("ip addr add {ip}/24 dev eth0"))?;
        let mut p = topo::port_on(vm, &host.name, "net", &[("v4", ip)]);
        if name == "src" {
            p["allowed_address_pairs"] = PAIRS.iter().map(|a| topo::pair(a, None)).collect();
        } else {
            p["security_groups"] = json!(["bench-dst"]);
        }
        ports.push(p);
        Ok(())
    })?;
    let mut cfg = topo::config(
        vec![topo::vxlan_network("net", VNI)],
        vec![topo::subnet("v4", "net", "10.32.0.0/24", None)],
        ports,
    );
    cfg["security_groups"]
        .as_array_mut()
        .expect("groups")
        .push(forwarding::dst_group());
    cloud.publish(&cfg)?;
    cloud.start("h1", 2)?;
    cloud.start("h2", 1)?;
    for h in ["h1", "h2"] {
        cloud.wait_chassis(h, &["h1", "h2"], WAIT)?;
    }
    cloud.wait_remote_ports("h1", 1, WAIT)?;
    cloud.wait_remote_ports("h2", 2, WAIT)?;
    ready(cloud.hosts[0].lab.vm("near"), cloud.hosts[1].lab.vm("far"))?;
    Ok(cloud)
}

/// The receivers discard the flow, and reach the sender (the way back
/// works, a bridge has learnt where they are).
fn ready(near: &lab::lab::Vm, far: &lab::lab::Vm) -> Result<()> {
    for vm in [near, far] {
        forwarding::sink(vm)?;
        vm.reaches(SRC_IP, WAIT)?;
    }
    Ok(())
}

/// The baseline: two hosts with a bridge, a vxlan device, l2population's
/// entries and Neutron's rules for their own ports.
fn bridge_hosts() -> Result<BridgeCloud> {
    let mut cloud = BridgeCloud::new(2)?;
    add_vms(&mut |h, name, mac, ip| cloud.add_vm(h, name, mac, ip))?;
    cloud.l2pop()?;
    for host in &cloud.hosts {
        let ports: Vec<FwPort> = host
            .lab
            .vms
            .iter()
            .map(|vm| {
                let src = vm.name == "src";
                FwPort {
                    tap: vm.tap.clone(),
                    mac: vm.mac.clone(),
                    ip: address(&vm.name).to_string(),
                    pairs: match src {
                        true => PAIRS.map(String::from).to_vec(),
                        false => Vec::new(),
                    },
                    ingress: match src {
                        true => vec!["-j RETURN".to_string()],
                        false => vec![forwarding::dst_ingress()],
                    },
                }
            })
            .collect();
        neutron_fw::install(
            &host.lab.hv,
            host.lab.dir.path(),
            "iptables-nft-restore",
            &ports,
            &[VXLAN_DEV],
        )?;
    }
    ready(cloud.vm(0, "near"), cloud.vm(1, "far"))?;
    Ok(cloud)
}

fn address(vm: &str) -> &'static str {
    match vm {
        "src" => SRC_IP,
        "near" => NEAR_IP,
        _ => FAR_IP,
    }
}

/// Medians over the rounds of one setup: (sent pps, delivered pps, CPU ns
/// per delivered packet).
fn medians(r: &Results) -> (f64, f64, f64) {
    let m = |f: &dyn Fn(&Sample) -> f64| median_of(r.plain.iter().map(f).collect());
    (
        m(&|s| s.sent as f64 / s.secs),
        m(&|s| s.delivered as f64 / s.secs),
        m(&|s| s.path_secs * 1e9 / s.delivered.max(1) as f64),
    )
}

/// Median over the statistics runs of each program's ns (and runs) per
/// delivered packet, keyed "host program".
fn per_program(r: &Results) -> BTreeMap<String, (f64, f64)> {
    let mut all: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (delivered, counters) in &r.with_stats {
        let d = (*delivered).max(1) as f64;
        let mut run: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (host, c) in counters {
            let e = run.entry(format!("{host} {}", c.name)).or_default();
            e.0 += c.ns as f64 / d;
            e.1 += c.runs as f64 / d;
        }
        for (k, (ns, runs)) in run {
            let e = all.entry(k).or_default();
            e.0.push(ns);
            e.1.push(runs);
        }
    }
    all.into_iter()
        .map(|(k, (ns, runs))| (k, (median_of(ns), median_of(runs))))
        .collect()
}

fn report(setups: &[Setup], results: &[Results]) -> String {
    let find = |sw: Switch, p: Path| {
        setups
            .iter()
            .position(|s| s.switch == sw && s.path == p)
            .map(|i| (medians(&results[i]), &results[i]))
            .expect("every setup measured")
    };
    let mut md = String::from("## Forwarding across hosts\n\n");
    md += &format!(
        "One UDP flow of 64-byte frames (trafgen, one process, as fast as it can, {} \
         frames a run, median of {} interleaved rounds) from a VM on host h1 to a VM on \
         the same host, and to a VM on host h2 over VXLAN (hosts are namespaces on an \
         underlay bridge; veth everywhere). This datapath: one agent per host on a real etcd. \
         Baseline: what a Neutron linuxbridge deployment builds per host (a bridge, the \
         network's `{VXLAN_DEV}` device, l2population's static forwarding entries, the \
         linuxbridge agent's ebtables and the iptables firewall driver's rules for the \
         host's ports through iptables-nft, the vxlan port in the network's conntrack zone). \
         Floor: the cross-host frames, already encapsulated, sent from h1's underlay \
         interface: only the underlay and h2 work, so the cross-host row's CPU beyond the \
         floor is what the sending host spends, its switch and the encapsulation. CPU per \
         packet: CPU time of trafgen and of the kernel's softirq threads over packets \
         delivered (the kernel charges each stage of the trip, all in softirq on the sending \
         CPU, to the task it interrupted: trafgen or ksoftirqd), which leaves out the other \
         work this shared machine runs meanwhile. BPF \
         per packet: the datapath's programs (all hosts) from the kernel's run-time \
         statistics, in separate runs with statistics on (they add two clock reads per \
         program run).\n\n",
        frames(),
        rounds(),
    );
    md += "| path | switch | sent, kpps | delivered, kpps | CPU per packet | BPF per packet | CPU / same host's | datapath / bridge, pps | datapath / bridge, CPU |\n";
    md += "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for p in Path::ALL {
        for sw in [Switch::Datapath, Switch::Bridge] {
            let ((sent, got, cpu), r) = find(sw, p);
            let ((_, _, same_cpu), _) = find(sw, Path::SameHost);
            let ((_, dp_got, dp_cpu), _) = find(Switch::Datapath, p);
            let bpf = match sw {
                Switch::Datapath => format!(
                    "{:.0} ns",
                    per_program(r).values().map(|(ns, _)| ns).sum::<f64>()
                ),
                Switch::Bridge => "–".to_string(),
            };
            md += &format!(
                "| {} | {} | {:.0} | {:.0} | {:.2} µs | {bpf} | {} | {} | {} |\n",
                p.title(),
                sw.title(),
                sent / 1e3,
                got / 1e3,
                cpu / 1e3,
                crate::ratio(cpu, same_cpu),
                crate::ratio(dp_got, got),
                crate::ratio(dp_cpu, cpu),
            );
        }
    }
    let dp: Vec<&Results> = Path::ALL
        .iter()
        .map(|&p| find(Switch::Datapath, p).1)
        .collect();
    md += &programs_table(&dp);
    md
}

/// The datapath's programs, per path (`results` in the order of
/// `Path::ALL`): ns and runs per delivered packet.
fn programs_table(results: &[&Results]) -> String {
    let tables: Vec<BTreeMap<String, (f64, f64)>> =
        results.iter().map(|r| per_program(r)).collect();
    // Programs that ran for background traffic only (the agents' etcd
    // connections on the underlay) are left out.
    let ran = |(_, (_, runs)): &(&String, &(f64, f64))| *runs >= 0.01;
    let mut names: Vec<&String> = tables
        .iter()
        .flat_map(|t| t.iter().filter(ran).map(|(k, _)| k))
        .collect();
    names.sort();
    names.dedup();
    let mut md = String::from(
        "\nThe datapath's programs, ns per delivered packet (runs per delivered packet), \
         median of the statistics runs (a frame lost on the way still cost its sender's \
         programs, so where the statistics runs lose more, these are upper bounds):\n\n\
         | host, program |",
    );
    for p in Path::ALL {
        md += &format!(" {} |", p.title());
    }
    md += "\n|---|---:|---:|---:|\n";
    for name in names {
        md += &format!("| {name} |");
        for t in &tables {
            md += &match t.get(name) {
                Some((ns, runs)) if *runs >= 0.01 => format!(" {ns:.0} ({runs:.2}) |"),
                _ => " – |".to_string(),
            };
        }
        md += "\n";
    }
    md + "\n"
}

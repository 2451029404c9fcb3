//! Forwarding between real taps fed as QEMU without vhost feeds them: the
//! sending VM is a thread writing frames into its tap's file descriptor,
//! the receiving VM a thread reading its own tap's descriptor. On a tap,
//! XDP runs on the written frame before any skb exists (tun_build_skb),
//! where a veth has already built one: the rows beside the veth ones of
//! [`super::forwarding`]. The same ports, addresses and rules as there.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use lab::{
    lab::{Lab, Vm, wait_for},
    netns::Netns,
    pkt::{self, mac, v4},
};

use super::{
    forwarding::{
        DPORT_MAX, DPORT_MIN, DST_IP, DST_MAC, SRC_IP, SRC_MAC, busy_ticks, datapath_config,
        neutron_rules, ovs_peer, rounds,
    },
    median_of,
    ovs::Ovs,
    pick,
};

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Datapath,
    BridgeNft,
    BridgeBare,
    /// Open vSwitch with Neutron's OVS firewall flows, userspace datapath.
    Ovs,
}

impl Switch {
    const ALL: [Switch; 4] = [
        Switch::Datapath,
        Switch::BridgeNft,
        Switch::BridgeBare,
        Switch::Ovs,
    ];

    fn title(self) -> &'static str {
        match self {
            Switch::Datapath => "this datapath (XDP), taps",
            Switch::BridgeNft => "Linux bridge + ebtables + iptables-nft conntrack, taps",
            Switch::BridgeBare => "Linux bridge, no rules (no port security), taps",
            Switch::Ovs => {
                "Open vSwitch 3.1 + Neutron OVS firewall flows (userspace datapath), taps"
            }
        }
    }
}

/// Whether every frame opens a connection (a new source port each).
const TRAFFIC: [(bool, &str); 2] = [
    (false, "one UDP flow, allowed"),
    (true, "a new UDP connection per packet, allowed"),
];

fn frames() -> u64 {
    pick(300_000, 5_000)
}

/// A hypervisor whose two VMs are taps with a process (here, a thread)
/// on each descriptor.
struct Hypervisor {
    switch: Switch,
    /// Open vSwitch's daemons, stopped before the namespaces go.
    ovs: Option<Ovs>,
    /// Holds the namespaces, taps and agent while the descriptors are used.
    _lab: Lab,
    src: File,
    dst: File,
}

static TAP_COUNTER: AtomicU32 = AtomicU32::new(0);

fn build(switch: Switch) -> Result<Hypervisor> {
    let bridge = matches!(switch, Switch::BridgeNft | Switch::BridgeBare);
    let mut lab = Lab::new(bridge)?;
    for (name, m) in [("src", SRC_MAC), ("dst", DST_MAC)] {
        let n = TAP_COUNTER.fetch_add(1, Ordering::Relaxed);
        // As `Lab::add_vm` names them, with a prefix of its own: taps are
        // named after the port id's first 11 characters.
        let port_id = format!(
            "7a{n:02x}{:04x}-0000-4000-8000-{:012x}",
            std::process::id() & 0xffff,
            n
        );
        let tap = format!("tap{}", &port_id[..11]);
        lab.hv.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        if bridge {
            lab.hv.ip(&["link", "set", &tap, "master", "br0"])?;
        }
        // A deep queue towards the reader (the default 500 frames overflow
        // while the reading thread is descheduled), the same in every setup.
        lab.hv
            .ip(&["link", "set", &tap, "txqueuelen", "10000", "up"])?;
        lab.vms.push(Vm {
            name: name.to_string(),
            // The VM is a thread here; its namespace stays empty.
            ns: Netns::new("dpq")?,
            port_id,
            tap,
            mac: m.to_string(),
        });
    }
    let src = open_tap(&lab.hv, &lab.vms[0].tap)?;
    let dst = open_tap(&lab.hv, &lab.vms[1].tap)?;
    let mut ovs = None;
    match switch {
        Switch::Datapath => {
            lab.run_args = ["--max-connections", "524288"].map(String::from).to_vec();
            lab.start(&datapath_config(&lab.vms, true))?;
        }
        Switch::BridgeNft => neutron_rules(&lab, "iptables-nft-restore")?,
        Switch::BridgeBare => {
            lab.hv
                .sh("sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
                 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0")?;
        }
        Switch::Ovs => ovs = Some(ovs_peer(&lab)?),
    }
    // The daemons go with the hypervisor, before its namespace, also when
    // the check fails.
    let h = Hypervisor {
        switch,
        ovs,
        _lab: lab,
        src,
        dst,
    };
    if let Some(ovs) = &h.ovs {
        ovs_enforces(&h, ovs).context("Open vSwitch does not enforce: no numbers")?;
    }
    Ok(h)
}

/// As the forwarding section checks it on veth: a spoofed source written
/// into the source tap is counted by that port's drop flow and never read
/// from the destination tap; the allowed flow is committed by the
/// receiver's rule and read there.
fn ovs_enforces(h: &Hypervisor, ovs: &Ovs) -> Result<()> {
    // A burst well within a packet socket's default buffer (a few hundred
    // small frames), so that a descheduled ovs-vswitchd loses little of
    // it; 9 in 10 must pass.
    const N: u64 = 100;
    let within = Duration::from_secs(10);
    let spoof_drops = || ovs.flow_packets("table=71,in_port=1", &["priority=10,"]);
    let drops0 = spoof_drops()?;
    let s = run_frames(h, v4("10.66.0.1"), false, DPORT_MAX, N)?;
    ensure!(
        s.delivered == 0,
        "{} of {N} spoofed frames delivered",
        s.delivered
    );
    wait_for(
        within,
        "spoofed frames counted by the port's drop flow",
        || spoof_drops().is_ok_and(|d| d >= drops0 + N * 9 / 10),
    )?;
    let commits = || ovs.flow_packets("table=82,reg5=2", &["+new-est", "ct(commit"]);
    let commits0 = commits()?;
    let s = run_frames(h, v4(SRC_IP), false, DPORT_MAX, N)?;
    ensure!(
        s.delivered * 10 >= N * 9,
        "{} of {N} allowed frames delivered",
        s.delivered
    );
    wait_for(
        within,
        "the receiver's rule committing the connection",
        || commits().is_ok_and(|c| c > commits0),
    )
}

/// The tap's queue, as QEMU opens it: /dev/net/tun, TUNSETIFF with the
/// tap's name (IFF_TAP | IFF_NO_PI), from inside the tap's namespace.
fn open_tap(ns: &Netns, name: &str) -> Result<File> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TAP: u16 = 0x0002;
    const IFF_NO_PI: u16 = 0x1000;
    let name = name.to_string();
    ns.run_inside(move || {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("/dev/net/tun")?;
        let mut ifr = [0u8; 40];
        let n = name.len().min(15);
        ifr[..n].copy_from_slice(&name.as_bytes()[..n]);
        ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads (and writes) an ifreq, which ifr holds.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, ifr.as_mut_ptr()) };
        ensure!(
            r == 0,
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        );
        Ok(f)
    })
}

struct Sample {
    sent: u64,
    /// What Open vSwitch's datapath read from its ports meanwhile.
    read: Option<u64>,
    delivered: u64,
    secs: f64,
    busy_secs: f64,
}

/// Writes `n` frames into the source tap as fast as one thread can while
/// another reads the destination tap, until it has them all or nothing
/// came for a while.
fn run_once(h: &Hypervisor, new_flows: bool, round: usize) -> Result<Sample> {
    run_frames(h, v4(SRC_IP), new_flows, DPORT_MIN + round as u16, frames())
}

/// Writes `n` frames from `saddr` to `dport` (see [`run_once`]).
fn run_frames(
    h: &Hypervisor,
    saddr: [u8; 4],
    new_flows: bool,
    dport: u16,
    n: u64,
) -> Result<Sample> {
    let mut reader = h.dst.try_clone()?;
    // The time of the last frame read ends the run: when frames were
    // lost, the reader's wait for more is not the switch's time.
    let receiver = std::thread::spawn(move || -> Result<(u64, Option<Instant>)> {
        let mut buf = [0u8; 2048];
        let (mut got, mut last) = (0u64, None);
        while got < n && readable(&reader, Duration::from_millis(300))? {
            let len = reader.read(&mut buf)?;
            // Only the benchmark's frames: UDP to its port.
            if len >= 38 && buf[12..14] == [8, 0] && buf[36..38] == dport.to_be_bytes() {
                got += 1;
                last = Some(Instant::now());
            }
        }
        Ok((got, last))
    });
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let busy0 = busy_ticks()?;
    let t = Instant::now();
    let (s, d) = (mac(SRC_MAC), mac(DST_MAC));
    let mut frame = pkt::udp4(s, d, saddr, v4(DST_IP), 1000, dport);
    let mut writer = h.src.try_clone()?;
    let mut sent = 0u64;
    for i in 0..n {
        if new_flows {
            // A new source port each frame (UDP checksum 0: not checked).
            let sport = 1024 + (i % 60_000) as u16;
            frame[34..36].copy_from_slice(&sport.to_be_bytes());
            frame[40..42].copy_from_slice(&[0, 0]);
        }
        if writer.write(&frame).is_ok() {
            sent += 1;
        }
    }
    let written = Instant::now();
    let (delivered, last) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let secs = last
        .map_or(written, |l| l.max(written))
        .duration_since(t)
        .as_secs_f64();
    let busy1 = busy_ticks()?;
    Ok(Sample {
        sent,
        read: None,
        delivered,
        secs,
        busy_secs: (busy1 - busy0) as f64 / ticks_per_sec,
    })
}

/// Whether `f` has a frame to read within `wait`.
fn readable(f: &File, wait: Duration) -> Result<bool> {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&raw mut p, 1, wait.as_millis() as i32) };
    ensure!(r >= 0, "poll: {}", std::io::Error::last_os_error());
    Ok(r > 0)
}

pub fn run() -> Result<String> {
    let mut hvs = Vec::new();
    for switch in Switch::ALL {
        eprintln!("bench: taps, building {}", switch.title());
        hvs.push(build(switch).with_context(|| switch.title())?);
    }
    // [traffic][setup] -> samples
    let mut samples: Vec<Vec<Vec<Sample>>> = TRAFFIC
        .iter()
        .map(|_| hvs.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds() {
        for (t, &(new_flows, title)) in TRAFFIC.iter().enumerate() {
            for (i, h) in hvs.iter().enumerate() {
                eprintln!("bench: taps, round {round}, {title}, {}", h.switch.title());
                let read0 = h.ovs.as_ref().map(Ovs::packets_received).transpose()?;
                let mut s = run_once(h, new_flows, round)?;
                if let (Some(ovs), Some(read0)) = (&h.ovs, read0) {
                    s.read = Some(ovs.packets_received()? - read0);
                }
                // Open vSwitch's userspace datapath loses what its thread
                // cannot take in time: reported, not refused.
                ensure!(
                    h.switch == Switch::Ovs || s.delivered * 10 >= s.sent * 9,
                    "{}, {title}: {} of {} frames delivered",
                    h.switch.title(),
                    s.delivered,
                    s.sent
                );
                samples[t][i].push(s);
            }
        }
    }
    Ok(report(&hvs, &samples))
}

/// (sent, delivered) per second and CPU ns per delivered frame: medians
/// over the rounds.
fn cell(ss: &[Sample]) -> (f64, f64, f64) {
    (
        median_of(ss.iter().map(|s| s.sent as f64 / s.secs).collect()),
        median_of(ss.iter().map(|s| s.delivered as f64 / s.secs).collect()),
        median_of(
            ss.iter()
                .map(|s| s.busy_secs * 1e9 / s.delivered.max(1) as f64)
                .collect(),
        ),
    )
}

fn report(hvs: &[Hypervisor], samples: &[Vec<Vec<Sample>>]) -> String {
    let mut md = String::from("## Forwarding between real taps\n\n");
    md += &format!(
        "The two VMs of the section above as taps fed the way QEMU without vhost feeds \
         them: one thread writes {} 60-byte frames into the source tap's descriptor as fast \
         as it can, another reads the destination tap's descriptor (the receiving VM). The \
         same ports, addresses and rules as above. Median of {} rounds. CPU per packet: the \
         machine's busy time (writer and reader included, the same for all) over frames \
         read. Open vSwitch: the flows and the userspace datapath of the section above \
         (no openvswitch module in this kernel; see the note there), ovs-vswitchd reading \
         the source tap through a packet socket; what its thread cannot take in time is \
         lost (sent minus delivered).\n\n",
        frames(),
        rounds()
    );
    md += "| traffic | switch | sent, kpps | delivered, kpps | CPU per packet | datapath / this, pps | datapath / this, CPU |\n";
    md += "|---|---|---:|---:|---:|---:|---:|\n";
    for (t, &(_, title)) in TRAFFIC.iter().enumerate() {
        let (_, dp_pps, dp_cpu) = cell(&samples[t][0]);
        for (i, h) in hvs.iter().enumerate() {
            let (sent, got, cpu) = cell(&samples[t][i]);
            md += &format!(
                "| {title} | {} | {:.0} | {:.0} | {:.2} µs | {} | {} |\n",
                h.switch.title(),
                sent / 1e3,
                got / 1e3,
                cpu / 1e3,
                crate::ratio(dp_pps, got),
                crate::ratio(dp_cpu, cpu),
            );
        }
    }
    md += "\nOpen vSwitch (userspace datapath, taps) against each setup, same run:\n\n\
           | traffic | setup | this / OVS, pps | OVS / this, CPU per packet |\n|---|---|---:|---:|\n";
    let Some(o) = hvs.iter().position(|h| h.switch == Switch::Ovs) else {
        return md;
    };
    for (t, &(_, title)) in TRAFFIC.iter().enumerate() {
        let (_, ovs_pps, ovs_cpu) = cell(&samples[t][o]);
        for (i, h) in hvs.iter().enumerate().filter(|&(i, _)| i != o) {
            let (_, got, cpu) = cell(&samples[t][i]);
            md += &format!(
                "| {title} | {} | {} | {} |\n",
                h.switch.title(),
                crate::ratio(got, ovs_pps),
                crate::ratio(ovs_cpu, cpu),
            );
        }
    }
    md += "\nWhere Open vSwitch loses frames on taps (medians): sent, read by ovs-vswitchd \
           (its datapath's `packets received`), delivered.\n\n\
           | traffic | sent, kpps | read by ovs-vswitchd, kpps | delivered, kpps |\n|---|---:|---:|---:|\n";
    for (t, &(_, title)) in TRAFFIC.iter().enumerate() {
        let ss = &samples[t][o];
        let (sent, got, _) = cell(ss);
        let read = median_of(
            ss.iter()
                .map(|s| s.read.unwrap_or(0) as f64 / s.secs)
                .collect(),
        );
        md += &format!(
            "| {title} | {:.0} | {:.0} | {:.0} |\n",
            sent / 1e3,
            read / 1e3,
            got / 1e3
        );
    }
    md += "\n";
    md
}

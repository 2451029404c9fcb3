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
    lab::{Lab, Vm},
    netns::Netns,
    pkt::{self, mac, v4},
};

use super::{
    forwarding::{
        DPORT_MIN, DST_IP, DST_MAC, SRC_IP, SRC_MAC, busy_ticks, datapath_config, neutron_rules,
        rounds,
    },
    median_of, pick,
};

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Datapath,
    BridgeNft,
    BridgeBare,
}

impl Switch {
    const ALL: [Switch; 3] = [Switch::Datapath, Switch::BridgeNft, Switch::BridgeBare];

    fn title(self) -> &'static str {
        match self {
            Switch::Datapath => "this datapath (XDP), taps",
            Switch::BridgeNft => "Linux bridge + ebtables + iptables-nft conntrack, taps",
            Switch::BridgeBare => "Linux bridge, no rules (no port security), taps",
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
    /// Holds the namespaces, taps and agent while the descriptors are used.
    _lab: Lab,
    src: File,
    dst: File,
}

static TAP_COUNTER: AtomicU32 = AtomicU32::new(0);

fn build(switch: Switch) -> Result<Hypervisor> {
    let mut lab = Lab::new(switch != Switch::Datapath)?;
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
        if switch != Switch::Datapath {
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
    }
    Ok(Hypervisor {
        switch,
        _lab: lab,
        src,
        dst,
    })
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
    delivered: u64,
    secs: f64,
    busy_secs: f64,
}

/// Writes `n` frames into the source tap as fast as one thread can while
/// another reads the destination tap, until it has them all or nothing
/// came for a while.
fn run_once(h: &Hypervisor, new_flows: bool, round: usize) -> Result<Sample> {
    let n = frames();
    let dport = DPORT_MIN + round as u16;
    let mut reader = h.dst.try_clone()?;
    let receiver = std::thread::spawn(move || -> Result<u64> {
        let mut buf = [0u8; 2048];
        let mut got = 0u64;
        while got < n && readable(&reader, Duration::from_millis(300))? {
            let len = reader.read(&mut buf)?;
            // Only the benchmark's frames: UDP to its port.
            if len >= 38 && buf[12..14] == [8, 0] && buf[36..38] == dport.to_be_bytes() {
                got += 1;
            }
        }
        Ok(got)
    });
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let busy0 = busy_ticks()?;
    let t = Instant::now();
    let (s, d) = (mac(SRC_MAC), mac(DST_MAC));
    let mut frame = pkt::udp4(s, d, v4(SRC_IP), v4(DST_IP), 1000, dport);
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
    let delivered = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    let busy1 = busy_ticks()?;
    Ok(Sample {
        sent,
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
                let s = run_once(h, new_flows, round)?;
                ensure!(
                    s.delivered * 10 >= s.sent * 9,
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

fn report(hvs: &[Hypervisor], samples: &[Vec<Vec<Sample>>]) -> String {
    let mut md = String::from("## Forwarding between real taps\n\n");
    md += &format!(
        "The two VMs of the section above as taps fed the way QEMU without vhost feeds \
         them: one thread writes {} 60-byte frames into the source tap's descriptor as fast \
         as it can, another reads the destination tap's descriptor (the receiving VM). The \
         same ports, addresses and rules as above. Median of {} rounds. CPU per packet: the \
         machine's busy time (writer and reader included, the same for all) over frames \
         read.\n\n",
        frames(),
        rounds()
    );
    md += "| traffic | switch | sent, kpps | delivered, kpps | CPU per packet | datapath / this, pps | datapath / this, CPU |\n";
    md += "|---|---|---:|---:|---:|---:|---:|\n";
    for (t, &(_, title)) in TRAFFIC.iter().enumerate() {
        let cell = |i: usize| {
            let ss = &samples[t][i];
            (
                median_of(ss.iter().map(|s| s.sent as f64 / s.secs).collect()),
                median_of(ss.iter().map(|s| s.delivered as f64 / s.secs).collect()),
                median_of(
                    ss.iter()
                        .map(|s| s.busy_secs * 1e9 / s.delivered.max(1) as f64)
                        .collect(),
                ),
            )
        };
        let (_, dp_pps, dp_cpu) = cell(0);
        for (i, h) in hvs.iter().enumerate() {
            let (sent, got, cpu) = cell(i);
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
    md += "\n";
    md
}

//! Real keepalived in two VMs sharing a virtual IP through allowed address
//! pairs, and a client pinging the VIP across the master's failure, wired
//! by the datapath or by a plain Linux bridge. `tests/failover_netns.rs`
//! checks the outcome; `cargo xtask bench` reports both losses side by
//! side.
//!
//! Two variants: keepalived without use_vmac (each member answers for the
//! VIP with its own MAC) and with use_vmac (a shared virtual MAC, a pair
//! with its own MAC). With use_vmac, `vmac_xmit_base` makes keepalived send
//! its adverts from the base interface: adverts carry the member's fixed
//! IP, which port security binds to the port's MAC, not the virtual one.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::json;

use crate::{
    lab::{Lab, Vm},
    topo::{config, network, pair, port, subnet},
};

pub const MAC_M1: &str = "fa:16:3e:40:00:01";
pub const MAC_M2: &str = "fa:16:3e:40:00:02";
pub const MAC_C: &str = "fa:16:3e:40:00:0c";
pub const VIP: &str = "10.4.0.100";
/// VRRP's virtual MAC for IPv4 virtual router 51.
pub const VRRP_MAC: &str = "00:00:5e:00:01:33";

/// Pings sent at 0.1 s intervals for the whole scenario.
pub const PINGS: u32 = 120;
/// When the master fails: once this many of the client's pings (0.1 s
/// apart) have been answered.
pub const FAIL_AFTER_REPLIES: usize = 30;

pub struct Outcome {
    pub sent: u32,
    pub received: u32,
    /// Highest icmp_seq answered: the service was back at the end.
    pub last_reply: u32,
}

impl Outcome {
    pub fn lost(&self) -> u32 {
        self.sent - self.received
    }
}

/// Starts keepalived in `vm` (VRRP only, no fork; its files in `dir`) for
/// `vip`/24 on virtual router `vrid` with `priority`; with `vmac`, on a
/// shared virtual MAC, adverts sent from the base interface.
pub fn keepalived(
    dir: &Path,
    vm: &Vm,
    vrid: u8,
    priority: u32,
    vip: &str,
    vmac: bool,
) -> Result<()> {
    let name = &vm.name;
    let vmac_opts = if vmac {
        "use_vmac\n    vmac_xmit_base"
    } else {
        ""
    };
    let conf = format!(
        "global_defs {{\n  router_id {name}\n  vrrp_garp_master_delay 1\n  vrrp_garp_master_repeat 3\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {vrid}\n    \
         priority {priority}\n    advert_int 1\n    {vmac_opts}\n    \
         virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n"
    );
    let path = dir.join(format!("{name}.keepalived.conf"));
    std::fs::write(&path, conf)?;
    vm.sh(&format!(
        "keepalived --dont-fork --vrrp --use-file={conf} --pid={d}/{name}.pid \
         --vrrp_pid={d}/{name}.vrrp.pid --log-console > {d}/{name}.keepalived.log 2>&1 &",
        conf = path.display(),
        d = dir.display(),
    ))?;
    Ok(())
}

/// Sends `signal` to the keepalived processes [`keepalived`] started in
/// `vm` (files in `dir`), by the PIDs they wrote; a PID that is no longer
/// keepalived's is left alone.
pub fn signal_keepalived(dir: &Path, vm: &Vm, signal: i32) {
    for file in [format!("{}.vrrp.pid", vm.name), format!("{}.pid", vm.name)] {
        let Some(pid) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "keepalived" {
            // SAFETY: signalling a process this harness started.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// Whether `vm` holds `vip` (on eth0 or on keepalived's vmac interface).
pub fn holds(vm: &Vm, vip: &str) -> bool {
    vm.sh("ip -4 -o addr show")
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {vip}/")))
        .unwrap_or(false)
}

/// Polls `f` every 0.1 s until it holds; false after `timeout`.
fn wait_until_ok(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) -> Result<()> {
    if !wait_until_ok(timeout, f) {
        bail!("timed out waiting for {what}");
    }
    Ok(())
}

/// Three VMs (m1, m2 sharing the VIP, client c) on one network, wired by
/// the datapath (`bridge` false) or by a Linux bridge without any datapath.
/// The client pings the VIP every 0.1 s; m1's link goes down (as when a VM
/// dies) after `FAIL_AFTER_REPLIES` answered pings, and m2 must take over. Returns the lab (the
/// datapath's state can be inspected) and the ping's outcome.
pub fn scenario(bridge: bool, vmac: bool) -> Result<(Lab, Outcome)> {
    let mut lab = Lab::new(bridge)?;
    for (name, mac) in [("m1", MAC_M1), ("m2", MAC_M2), ("c", MAC_C)] {
        lab.add_vm(name, mac)?;
    }
    let (m1, m2, c) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    // With use_vmac the VIP lives on keepalived's macvlan, but the kernel
    // still sends some VIP-sourced packets (replies, their ARP) through the
    // base interface with the port's own MAC, which port security (here as
    // in Neutron) refuses unless the VIP is paired with both MACs.
    let vip_pairs = if vmac {
        json!([pair(VIP, Some(VRRP_MAC)), pair(VIP, None)])
    } else {
        json!([pair(VIP, None)])
    };
    let mut p1 = port(m1, "net", &[("v4", "10.4.0.11")]);
    p1["allowed_address_pairs"] = vip_pairs.clone();
    let mut p2 = port(m2, "net", &[("v4", "10.4.0.12")]);
    p2["allowed_address_pairs"] = vip_pairs;
    let pc = port(c, "net", &[("v4", "10.4.0.20")]);
    let cfg = config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.4.0.0/24", Some("10.4.0.1"))],
        vec![p1, p2, pc],
    );
    for (vm, ip) in [(m1, "10.4.0.11"), (m2, "10.4.0.12"), (c, "10.4.0.20")] {
        vm.sh(&format!("ip addr add {ip}/24 dev eth0"))?;
    }
    if !bridge {
        lab.start(&cfg)?;
    }
    let (m1, m2, c) = (lab.vm("m1"), lab.vm("m2"), lab.vm("c"));
    keepalived(lab.dir.path(), m1, 51, 200, VIP, vmac)?;
    keepalived(lab.dir.path(), m2, 51, 100, VIP, vmac)?;
    wait_until("m1 to become master", Duration::from_secs(15), || {
        holds(m1, VIP)
    })?;
    if !wait_until_ok(Duration::from_secs(10), || c.ping(VIP, 1)) {
        let diag = m1.sh("ip -d addr; ip neigh; sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.eth0.arp_ignore")?;
        let cdiag = c.sh("ip neigh")?;
        bail!(
            "the VIP does not answer (bridge: {bridge})\nm1:\n{}\nc:\n{}\n{}\n{}",
            String::from_utf8_lossy(&diag.stdout),
            String::from_utf8_lossy(&cdiag.stdout),
            std::fs::read_to_string(lab.dir.path().join("m1.keepalived.log")).unwrap_or_default(),
            if bridge {
                String::new()
            } else {
                serde_json::to_string_pretty(&lab.show_ports()?)?
            }
        );
    }

    let out = lab.dir.path().join("ping.out");
    c.sh(&format!(
        "ping -n -i 0.1 -c {PINGS} -W 1 {VIP} > {} 2>&1 &",
        out.display()
    ))?;
    wait_until(
        "the client's pings to be answered",
        Duration::from_secs(30),
        || crate::lab::ping_replies(&out) >= FAIL_AFTER_REPLIES,
    )?;
    m1.sh("ip link set eth0 down")?;
    wait_until("m2 to become master", Duration::from_secs(15), || {
        holds(m2, VIP)
    })?;
    wait_until(
        "the client's ping to finish",
        Duration::from_secs(30),
        || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("packets transmitted")),
    )?;
    let text = std::fs::read_to_string(&out)?;
    let outcome = parse_ping(&text)?;
    Ok((lab, outcome))
}

/// A ping's summary and the last sequence answered.
pub fn parse_ping(text: &str) -> Result<Outcome> {
    let Some((sent, received)) = crate::probe::summary(text) else {
        bail!("no ping summary in:\n{text}");
    };
    Ok(Outcome {
        sent,
        received,
        last_reply: crate::probe::answered(text).into_iter().max().unwrap_or(0),
    })
}

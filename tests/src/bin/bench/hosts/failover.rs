//! A VIP failing over between hosts: real keepalived in VMs m1 (priority
//! 200, master) and m2 (100), sharing the VIP as an allowed address pair;
//! a client c on a third host pings it every 0.1 s. The master fails, m2
//! takes over (failover); later the master comes back and, preempting,
//! takes the VIP back (failback). Pings lost are counted for each.
//!
//! Cases: m1 and m2 on two hosts, m1's link going down (the VM's tap
//! loses carrier) or m1's host dying (its agent killed, its underlay link
//! down, m1's keepalived killed and its addresses gone with the VM); and m1
//! and m2 on one host, m1's link going down. Each through this datapath
//! (an agent per host on a real etcd) and through Linux bridges with a
//! vxlan device per host and l2population's entries (no filtering: a
//! bridge adds nothing to VRRP's timing; the datapath's rules are open).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use lab::{
    cloud::{Cloud, Host},
    lab::{Vm, WAIT, wait_for},
    topo, vrrp,
};
use serde_json::json;

use super::bridges::{BridgeCloud, VNI};

const VIP: &str = "10.34.0.100";
/// Pings at 0.1 s: the whole scenario.
const PINGS: u32 = 300;
/// When the master fails and comes back, from the first ping.
const FAIL_AT: Duration = Duration::from_secs(3);
const RESTORE_AT: Duration = Duration::from_secs(13);

/// [`PINGS`] and [`RESTORE_AT`], shorter in a smoke run (still past a
/// takeover each way).
fn pings() -> u32 {
    crate::pick(PINGS, 130)
}

fn restore_at() -> Duration {
    crate::pick(RESTORE_AT, Duration::from_secs(8))
}
/// keepalived's virtual router id.
const VRID: u8 = 61;

#[derive(Clone, Copy, PartialEq)]
enum Failure {
    LinkDown,
    HostDies,
}

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Datapath,
    Bridge,
}

/// (members on two hosts, failure)
const CASES: [(bool, Failure); 3] = [
    (true, Failure::LinkDown),
    (true, Failure::HostDies),
    (false, Failure::LinkDown),
];

fn title(two_hosts: bool, failure: Failure) -> &'static str {
    match (two_hosts, failure) {
        (true, Failure::LinkDown) => "m1 on h1, m2 on h2: m1's link down, then up",
        (true, Failure::HostDies) => "m1 on h1, m2 on h2: h1 dies, then comes back",
        (false, _) => "m1 and m2 on h1: m1's link down, then up",
    }
}

/// Pings lost while failing over and while failing back, of those sent.
struct Lost {
    failover: u32,
    failback: u32,
    sent: u32,
}

/// The hosts of one scenario, either kind.
enum World {
    Datapath(Cloud),
    Bridge(BridgeCloud),
}

impl World {
    fn hosts(&self) -> &[Host] {
        match self {
            World::Datapath(c) => &c.hosts,
            World::Bridge(c) => &c.hosts,
        }
    }

    fn vm(&self, name: &str) -> (&Path, &Vm) {
        let host = self
            .hosts()
            .iter()
            .find(|h| h.lab.vms.iter().any(|v| v.name == name))
            .expect("no such VM");
        (host.lab.dir.path(), host.lab.vm(name))
    }

    fn keepalived(&self, name: &str, priority: u32) -> Result<()> {
        let (dir, vm) = self.vm(name);
        vrrp::keepalived(dir, vm, VRID, priority, VIP, false)
    }

    fn holds(&self, name: &str) -> bool {
        vrrp::holds(self.vm(name).1, VIP)
    }
}

pub fn run() -> Result<String> {
    let mut md = String::from("## VIP failover across hosts\n\n");
    md += &format!(
        "keepalived (advert_int 1 s, preemption on) in VMs m1 (priority 200) and m2 (100), \
         sharing the VIP as an allowed address pair; client c on host h3 pings the VIP every \
         0.1 s ({} pings). {} s in, the master fails and m2 takes over (failover); {} s \
         in, the master comes back and takes the VIP back (failback). Pings lost in each, \
         split at the last ping answered before the master came back. \"h1 dies\": h1's \
         agent is killed (SIGKILL), its underlay link goes down, m1's keepalived is killed \
         and the VIP removed from m1 (the VM died with its host); it comes back: link up, a \
         new agent (the others must see its chassis again), keepalived started in m1. \
         Baseline: a Linux bridge per host with a vxlan device and l2population's \
         forwarding entries (no rules). One run each.\n\n",
        pings(),
        FAIL_AT.as_secs(),
        restore_at().as_secs()
    );
    md += "| members, failure | datapath: failover | datapath: failback | bridge + vxlan: failover | bridge + vxlan: failback | datapath / bridge, failover |\n";
    md += "|---|---:|---:|---:|---:|---:|\n";
    // One case in a smoke run: each is seconds of keepalived takeovers.
    for (two_hosts, failure) in crate::pick(&CASES[..], &CASES[..1]).iter().copied() {
        let mut lost = Vec::new();
        for switch in [Switch::Bridge, Switch::Datapath] {
            eprintln!(
                "bench: hosts-failover, {}, {}",
                title(two_hosts, failure),
                match switch {
                    Switch::Datapath => "datapath",
                    Switch::Bridge => "bridge + vxlan",
                }
            );
            let mut world = build(switch, two_hosts)?;
            let result = scenario(&mut world, failure);
            for m in ["m1", "m2"] {
                let (dir, vm) = world.vm(m);
                vrrp::signal_keepalived(dir, vm, libc::SIGTERM);
            }
            lost.push(result.with_context(|| title(two_hosts, failure))?);
        }
        let (br, dp) = (&lost[0], &lost[1]);
        let ratio = match br.failover {
            0 => "–".to_string(),
            n => format!("{:.2}", dp.failover as f64 / n as f64),
        };
        md += &format!(
            "| {} | {} of {} | {} | {} of {} | {} | {ratio} |\n",
            title(two_hosts, failure),
            dp.failover,
            dp.sent,
            dp.failback,
            br.failover,
            br.sent,
            br.failback,
        );
    }
    Ok(md + "\n")
}

/// m1 on h1, m2 on h2 (or h1), c on h3, wired by `switch`.
fn build(switch: Switch, two_hosts: bool) -> Result<World> {
    let placement = [
        (0, "m1", vrrp::MAC_M1, "10.34.0.11"),
        (
            if two_hosts { 1 } else { 0 },
            "m2",
            vrrp::MAC_M2,
            "10.34.0.12",
        ),
        (2, "c", vrrp::MAC_C, "10.34.0.20"),
    ];
    match switch {
        Switch::Bridge => {
            let mut cloud = BridgeCloud::new(3)?;
            for (h, name, mac, ip) in placement {
                cloud.add_vm(h, name, mac, ip)?;
            }
            cloud.l2pop()?;
            Ok(World::Bridge(cloud))
        }
        Switch::Datapath => {
            let mut cloud = Cloud::new(3)?;
            let mut ports = Vec::new();
            for (h, name, mac, ip) in placement {
                let host = &mut cloud.hosts[h];
                let i = host.lab.add_vm(name, mac)?;
                let vm = &host.lab.vms[i];
                vm.sh(&format!("ip addr add {ip}/24 dev eth0"))?;
                let mut p = topo::port_on(vm, &host.name, "net", &[("v4", ip)]);
                if name != "c" {
                    p["allowed_address_pairs"] = json!([topo::pair(VIP, None)]);
                }
                ports.push(p);
            }
            let cfg = topo::config(
                vec![topo::vxlan_network("net", VNI)],
                vec![topo::subnet("v4", "net", "10.34.0.0/24", None)],
                ports,
            );
            cloud.publish(&cfg)?;
            for i in 0..3 {
                let (name, local) = (cloud.hosts[i].name.clone(), cloud.hosts[i].lab.vms.len());
                if local > 0 {
                    cloud.start(&name, local)?;
                }
            }
            wait_all_chassis(&cloud)?;
            Ok(World::Datapath(cloud))
        }
    }
}

/// Every host with an agent sees every such host.
fn wait_all_chassis(cloud: &Cloud) -> Result<()> {
    let live: Vec<&str> = cloud
        .hosts
        .iter()
        .filter(|h| h.lab.agent_pid().is_some())
        .map(|h| h.name.as_str())
        .collect();
    for h in &live {
        cloud.wait_chassis(h, &live, WAIT)?;
    }
    Ok(())
}

fn scenario(world: &mut World, failure: Failure) -> Result<Lost> {
    world.keepalived("m1", 200)?;
    world.keepalived("m2", 100)?;
    wait_for(Duration::from_secs(20), "m1 to become master", || {
        world.holds("m1")
    })?;
    let (dir, c) = world.vm("c");
    c.reaches(VIP, WAIT)?;
    let out = dir.join("vip-ping.out");
    c.sh(&format!(
        "ping -n -i 0.1 -c {} -W 1 {VIP} > {} 2>&1 &",
        pings(),
        out.display()
    ))?;
    let start = Instant::now();
    sleep_until(start + FAIL_AT);
    fail(world, failure)?;
    wait_for(Duration::from_secs(20), "m2 to take over", || {
        world.holds("m2")
    })?;
    sleep_until(start + restore_at());
    let split = last_answered(&std::fs::read_to_string(&out)?);
    restore(world, failure)?;
    wait_for(Duration::from_secs(30), "m1 to take the VIP back", || {
        world.holds("m1")
    })?;
    wait_for(
        Duration::from_secs(40),
        "the client's ping to finish",
        || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("packets transmitted")),
    )?;
    let text = std::fs::read_to_string(&out)?;
    let outcome = vrrp::parse_ping(&text)?;
    let answered = lab::probe::answered(&text);
    let lost = |range: std::ops::RangeInclusive<u32>| {
        range.filter(|s| !answered.contains(s)).count() as u32
    };
    if outcome.last_reply + 10 < outcome.sent {
        bail!("the VIP did not answer at the end:\n{text}");
    }
    Ok(Lost {
        failover: lost(1..=split),
        failback: lost(split + 1..=outcome.sent),
        sent: outcome.sent,
    })
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

fn last_answered(text: &str) -> u32 {
    lab::probe::answered(text).into_iter().max().unwrap_or(0)
}

fn fail(world: &mut World, failure: Failure) -> Result<()> {
    let (dir, m1) = world.vm("m1");
    match failure {
        Failure::LinkDown => {
            m1.sh("ip link set eth0 down")?;
        }
        Failure::HostDies => {
            vrrp::signal_keepalived(dir, m1, libc::SIGKILL);
            m1.sh(&format!("ip addr del {VIP}/24 dev eth0 2>/dev/null; true"))?;
            if let World::Datapath(cloud) = world {
                cloud.hosts[0].lab.kill_agent()?;
            }
            world.hosts()[0]
                .lab
                .hv
                .ip(&["link", "set", "ul0", "down"])?;
        }
    }
    Ok(())
}

fn restore(world: &mut World, failure: Failure) -> Result<()> {
    match failure {
        Failure::LinkDown => {
            world.vm("m1").1.sh("ip link set eth0 up")?;
        }
        Failure::HostDies => {
            world.hosts()[0].lab.hv.ip(&["link", "set", "ul0", "up"])?;
            if let World::Datapath(cloud) = world {
                cloud.start("h1", 1)?;
                wait_all_chassis(cloud)?;
            }
            world.keepalived("m1", 200)?;
        }
    }
    Ok(())
}

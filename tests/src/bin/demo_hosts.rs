//! The demo behind `cargo xtask run --hosts`: three hypervisors (network
//! namespaces h1, h2, h3 on an underlay bridge) with one agent each on a
//! real etcd, VMs of demo/hosts.toml behind taps on the host their port is
//! bound to, VXLAN between the hosts, keepalived moving a virtual IP from a
//! VM on h1 to one on h2 when h1 dies. Everything is removed on exit,
//! including on Ctrl-C.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use lab::{
    cloud::{Cloud, PREFIX},
    demo::{self, show, step},
    lab::{Vm, wait_for},
    vrrp,
};

fn reaches(vm: &Vm, dst: &str) -> bool {
    vm.reaches(dst, Duration::from_secs(20)).is_ok()
}

fn vm<'a>(cloud: &'a Cloud, host: &str, name: &str) -> &'a Vm {
    cloud.host(host).lab.vm(name)
}

/// Whether etcd's record of the active member at `key` names `who`'s port.
fn names_active(cloud: &Cloud, key: &str, who: &Vm) -> bool {
    cloud
        .etcd
        .get(key)
        .ok()
        .flatten()
        .is_some_and(|v| v.contains(&who.port_id))
}

fn print_cmd(title: &str, out: std::process::Output) {
    println!("   $ {title}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("     {line}");
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hold = args.iter().any(|a| a == "--hold");
    let config = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/hosts.toml"))
        });
    let topology = dataplane_config::Topology::of(&dataplane_config::load(&config)?);
    demo::catch_signals();

    step("Three hypervisors on an underlay, etcd as their database")?;
    let mut cloud = Cloud::new(3)?;
    for h in &cloud.hosts {
        println!(
            "   {}  namespace {:<12} underlay ul0 {}",
            h.name, h.lab.hv.name, h.ip
        );
    }
    println!(
        "   etcd  {} (in namespace {})",
        cloud.etcd.url, cloud.underlay.name
    );

    step(&format!(
        "VMs of {}, each on its port's host",
        config.display()
    ))?;
    for port in &topology.ports {
        let host = port
            .host
            .as_deref()
            .with_context(|| format!("{} has no binding:host_id", port.label()))?;
        let lab = &mut cloud.host_mut(host).lab;
        let i = lab.add_vm_for_port(&port.name, &port.mac.to_string(), &port.id, &port.tap)?;
        let vm = &lab.vms[i];
        for fixed in &port.fixed_ips {
            let prefix = topology.subnets[fixed.subnet].cidr.prefix_len();
            vm.sh(&format!("ip addr add {}/{prefix} dev eth0 nodad", fixed.ip))?;
        }
        let fixed: Vec<String> = port.fixed_ips.iter().map(|f| f.ip.to_string()).collect();
        let pairs: Vec<String> = port
            .allowed_address_pairs
            .iter()
            .map(|p| p.ip.to_string())
            .collect();
        println!(
            "   {:<8} on {host}  tap {}  mac {}  fixed {}  pairs [{}]",
            port.name,
            port.tap,
            port.mac,
            fixed.join(", "),
            pairs.join(", ")
        );
    }

    step("dataplane publish demo/hosts.toml (what Neutron's ML2 driver does)")?;
    print!("   {}", cloud.publish_file(&config)?);

    step(
        "An agent per host: dataplane run --etcd URL --chassis hN --underlay-dev ul0 --underlay-ip IP",
    )?;
    for name in ["h1", "h2", "h3"] {
        let local = topology
            .ports
            .iter()
            .filter(|p| p.host.as_deref() == Some(name))
            .count();
        cloud.start(name, local)?;
    }
    for name in ["h1", "h2", "h3"] {
        cloud.wait_chassis(name, &["h1", "h2", "h3"], Duration::from_secs(20))?;
        cloud.wait_remote_ports(name, 2, Duration::from_secs(20))?;
    }
    print_cmd(
        "dataplane show chassis   (on h3)",
        cloud
            .host("h3")
            .lab
            .dataplane(&["show", "chassis"])
            .output()?,
    );

    let vip = "10.20.0.100";
    let (a, b, client) = (
        vm(&cloud, "h1", "vrrp-a"),
        vm(&cloud, "h2", "vrrp-b"),
        vm(&cloud, "h3", "client"),
    );

    step("Across hosts over VXLAN, from fixed addresses (IPv4 and IPv6)")?;
    for dst in ["10.20.0.10", "10.20.0.11", "fd00:20::10", "fd00:20::11"] {
        show(client, &format!("ping {dst}"), reaches(client, dst), true)?;
    }

    step(&format!(
        "keepalived in vrrp-a (h1, priority 200) and vrrp-b (h2, priority 100) for {vip}"
    ))?;
    vrrp::keepalived(cloud.host("h1").lab.dir.path(), a, 20, 200, vip, false)?;
    vrrp::keepalived(cloud.host("h2").lab.dir.path(), b, 20, 100, vip, false)?;
    wait_for(Duration::from_secs(20), "vrrp-a to become master", || {
        vrrp::holds(a, vip)
    })?;
    println!("   vrrp-a is master");
    show(client, &format!("ping {vip}"), reaches(client, vip), true)?;
    let active_key = format!("{PREFIX}/active/{}/{vip}/32", topology.networks[0].id);
    wait_for(
        Duration::from_secs(20),
        "etcd to name vrrp-a active",
        || names_active(&cloud, &active_key, a),
    )?;
    println!(
        "   etcd {active_key}: {}",
        cloud.etcd.get(&active_key)?.unwrap_or_default()
    );

    step("h1 dies: its agent is killed and its underlay link goes down")?;
    let died = Instant::now();
    let pid = cloud.hosts[0].lab.agent_pid();
    cloud.hosts[0].lab.kill_agent()?;
    cloud.hosts[0].lab.hv.ip(&["link", "set", "ul0", "down"])?;
    println!("   killed the agent of h1 (PID {pid:?})");
    cloud.wait_chassis("h3", &["h2", "h3"], Duration::from_secs(30))?;
    println!(
        "   h3 forgot h1 and its ports {:.1} s later (its lease expired)",
        died.elapsed().as_secs_f64()
    );
    let (b, client) = (vm(&cloud, "h2", "vrrp-b"), vm(&cloud, "h3", "client"));
    wait_for(Duration::from_secs(20), "vrrp-b to become master", || {
        vrrp::holds(b, vip)
    })?;
    println!(
        "   vrrp-b is master {:.1} s after h1 died",
        died.elapsed().as_secs_f64()
    );
    show(client, &format!("ping {vip}"), reaches(client, vip), true)?;
    wait_for(
        Duration::from_secs(20),
        "etcd to name vrrp-b active",
        || names_active(&cloud, &active_key, b),
    )?;
    println!(
        "   etcd {active_key}: {}",
        cloud.etcd.get(&active_key)?.unwrap_or_default()
    );

    step(&format!(
        "Spoofing: client sends from {vip}, which is not among its addresses or pairs"
    ))?;
    let h3 = &cloud.host("h3").lab;
    let before = h3.drops(client, "ipv4_src");
    client.sh(&format!(
        "ip addr add {vip}/32 dev eth0 && ip neigh replace 10.20.0.11 lladdr {} dev eth0",
        b.mac
    ))?;
    show(
        client,
        &format!("ping -I {vip} 10.20.0.11"),
        client.ping_from("10.20.0.11", Some(vip), 3),
        false,
    )?;
    let after = h3.drops(client, "ipv4_src");
    println!("   dropped on h3, before the tunnel: counter ipv4_src of client {before} -> {after}");
    if after <= before {
        bail!("the spoofed packets were not counted");
    }

    step("dataplane show ports   (on h3: its port, and the remote one on h2)")?;
    print_cmd(
        "dataplane show ports",
        h3.dataplane(&["show", "ports"]).output()?,
    );

    if hold {
        println!(
            "\n   Holding until Ctrl-C. Meanwhile, from another shell:\n\
             \x20    ip netns exec {0} etcdctl --endpoints {1} get --prefix {PREFIX}/ --keys-only\n\
             \x20    target/debug/dataplane --instance {2} show chassis\n\
             \x20    ip netns exec {3} ping {vip}",
            cloud.underlay.name, cloud.etcd.url, h3.instance, client.ns.name
        );
        demo::hold();
    } else {
        println!("\n   (cargo xtask run --hosts --hold keeps the hosts up for a look)");
    }
    step("Stopping the agents, etcd, and removing the namespaces")?;
    drop(cloud);
    println!("   done");
    Ok(())
}

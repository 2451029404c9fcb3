//! The demo behind `cargo xtask run`: builds the VM namespaces of
//! demo/demo.toml, runs the datapath on that file, and shows port security
//! with allowed address pairs at work. Everything is removed on exit,
//! including on Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lab::{
    demo::{self, show, step},
    lab::Lab,
};

/// The floating IP of the VIP, and a host beyond the upstream router.
const FIP: &str = "203.0.113.50";
const FAR: &str = "198.51.100.7";

/// Whether `vm` gets replies from `dst` within a few seconds (the first
/// packets through a router may go to resolving its next hop).
fn reaches(vm: &lab::lab::Vm, dst: &str) -> bool {
    vm.reaches(dst, std::time::Duration::from_secs(10)).is_ok()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hold = args.iter().any(|a| a == "--hold");
    let config = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/demo.toml"))
        });
    let topology = dataplane_config::Topology::of(&dataplane_config::load(&config)?);
    demo::catch_signals();

    step(&format!("Topology from {}", config.display()))?;
    let mut lab = Lab::new(false)?;
    // A port whose fixed IPs are all addresses other ports carry as pairs
    // is a VIP port: it only holds the address (a floating IP's target),
    // no VM is behind it.
    let pairs: std::collections::BTreeSet<std::net::IpAddr> = topology
        .ports
        .iter()
        .flat_map(|p| p.allowed_address_pairs.iter().map(|a| a.ip.addr()))
        .collect();
    let holds_only_pairs = |p: &dataplane_config::topology::Port| {
        !p.fixed_ips.is_empty() && p.fixed_ips.iter().all(|f| pairs.contains(&f.ip))
    };
    let mut vms = 0;
    for port in &topology.ports {
        if holds_only_pairs(port) {
            println!(
                "   {:<8} holds {} for a floating IP: no VM",
                port.name,
                port.fixed_ips
                    .iter()
                    .map(|f| f.ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            continue;
        }
        vms += 1;
        let i = lab.add_vm_for_port(&port.name, &port.mac.to_string(), &port.id, &port.tap)?;
        let vm = &lab.vms[i];
        for fixed in &port.fixed_ips {
            let subnet = &topology.subnets[fixed.subnet];
            let prefix = subnet.cidr.prefix_len();
            vm.sh(&format!("ip addr add {}/{prefix} dev eth0 nodad", fixed.ip))?;
            if let (Some(gw), std::net::IpAddr::V4(_)) = (subnet.gateway_ip, fixed.ip) {
                vm.sh(&format!("ip route add default via {gw}"))?;
            }
        }
        let pairs: Vec<String> = port
            .allowed_address_pairs
            .iter()
            .map(|p| p.ip.to_string())
            .collect();
        println!(
            "   {:<8} namespace {:<12} tap {}  mac {}  fixed {}  pairs [{}]",
            port.name,
            vm.ns.name,
            port.tap,
            port.mac,
            port.fixed_ips
                .iter()
                .map(|f| f.ip.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            pairs.join(", ")
        );
    }
    println!("   no bridge: the datapath (XDP) checks what each VM sends and forwards it");
    // The outside world on the uplink: the upstream router 203.0.113.1 and
    // a far host behind it.
    let outside = lab.add_outside(
        "upl0",
        "fa:16:3e:99:00:01",
        &["203.0.113.1/24", &format!("{FAR}/32")],
    )?;
    println!(
        "   outside  namespace {:<12} on uplink upl0: the upstream router 203.0.113.1, a far host {FAR}",
        outside.ns.name
    );

    step("Starting the datapath: dataplane run --config demo/demo.toml --uplink public=upl0")?;
    lab.run_args = vec!["--uplink".into(), "public=upl0".into()];
    lab.start_file(&config, vms)?;
    println!(
        "   attached to {vms} taps and the uplink; state pinned under /sys/fs/bpf/{}",
        lab.instance
    );

    let vip = "10.20.0.100";
    let (a, b, client) = (lab.vm("vrrp-a"), lab.vm("vrrp-b"), lab.vm("client"));

    step("Legitimate traffic from fixed addresses (IPv4 and IPv6)")?;
    show(
        client,
        "ping 10.20.0.10",
        client.ping("10.20.0.10", 3),
        true,
    )?;
    show(
        client,
        "ping -6 fd00:20::11",
        client.ping("fd00:20::11", 3),
        true,
    )?;

    step(&format!(
        "vrrp-a holds the virtual IP {vip} (an allowed address pair) and announces it"
    ))?;
    a.sh(&format!(
        "ip addr add {vip}/24 dev eth0 && {{ arping -q -U -c 1 -I eth0 -S {vip} {vip}; true; }}"
    ))?;
    show(client, &format!("ping {vip}"), client.ping(vip, 3), true)?;
    show(
        &outside,
        &format!("ping {FIP} (the floating IP of {vip}, from outside)"),
        reaches(&outside, FIP),
        true,
    )?;

    step(&format!(
        "Failover: vrrp-b takes {vip} over (gratuitous ARP) and answers"
    ))?;
    a.sh(&format!("ip addr del {vip}/24 dev eth0"))?;
    b.sh(&format!(
        "ip addr add {vip}/24 dev eth0 && {{ arping -q -U -c 2 -I eth0 -S {vip} {vip}; true; }}"
    ))?;
    show(client, &format!("ping {vip}"), client.ping(vip, 3), true)?;
    show(
        &outside,
        &format!("ping {FIP} (the floating IP follows {vip} to vrrp-b)"),
        reaches(&outside, FIP),
        true,
    )?;

    step("The outside through the router's SNAT: client reaches a far host")?;
    show(
        client,
        &format!("ping {FAR} (leaves as the gateway's 203.0.113.10)"),
        reaches(client, FAR),
        true,
    )?;
    let nat = lab.show("nat")?;
    for c in nat["connections"].as_array().into_iter().flatten() {
        println!(
            "   show nat: {} {} leaves as {} to {}",
            c["protocol"].as_str().unwrap_or(""),
            c["inside"].as_str().unwrap_or(""),
            c["outside"].as_str().unwrap_or(""),
            c["remote"].as_str().unwrap_or("")
        );
    }

    step(&format!(
        "Spoofing: client sends from {vip}, which is not among its addresses or pairs"
    ))?;
    let before = lab.drops(client, "ipv4_src");
    let b_mac = &b.mac;
    client.sh(&format!(
        "ip addr add {vip}/32 dev eth0 && ip neigh replace 10.20.0.11 lladdr {b_mac} dev eth0"
    ))?;
    show(
        client,
        &format!("ping -I {vip} 10.20.0.11"),
        client.ping_from("10.20.0.11", Some(vip), 3),
        false,
    )?;
    let after = lab.drops(client, "ipv4_src");
    println!("   drop counter ipv4_src of client: {before} -> {after}");
    if after <= before {
        bail!("the spoofed packets were not counted");
    }
    let garp_before = lab.drops(client, "arp_spa");
    client.sh(&format!("arping -q -U -c 2 -I eth0 -S {vip} {vip}; true"))?;
    println!(
        "   client's gratuitous ARP for {vip}: dropped, counter arp_spa {garp_before} -> {}",
        lab.drops(client, "arp_spa")
    );

    step("dataplane show ports")?;
    let out = lab
        .dataplane(&["show", "ports"])
        .output()
        .context("dataplane show ports")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if hold {
        println!(
            "\n   Holding until Ctrl-C. Meanwhile, from another shell:\n\
             \x20    bpftool map dump pinned /sys/fs/bpf/{0}/maps/PORTS\n\
             \x20    target/debug/dataplane --instance {0} show ports\n\
             \x20    ip netns exec {1} ping 10.20.0.100",
            lab.instance, client.ns.name
        );
        demo::hold();
    } else {
        println!(
            "\n   (cargo xtask run --hold keeps the topology up for bpftool and dataplane show)"
        );
    }

    step("Stopping the datapath and removing the namespaces")?;
    lab.stop()?;
    drop(lab);
    println!("   done");
    Ok(())
}

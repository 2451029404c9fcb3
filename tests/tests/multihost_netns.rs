//! Many hypervisors: host namespaces on an underlay bridge, each with its
//! own agent on a real etcd (in the underlay namespace), VMs behind taps on
//! each; traffic between hosts goes over VXLAN. L2 and routing across
//! hosts, ARP answered locally for remote addresses, a remote group with a
//! member on another host, keepalived failing over between hosts, etcd
//! dying or cut off, an agent killed, a host dying, and what must still be
//! refused.

use std::time::{Duration, Instant};

use lab::{
    capture::{Capture, frame},
    cloud::{Cloud, Host},
    lab::{Vm, WAIT, ping_replies, ping_result, wait_for},
    require_root,
    topo::{config, pair, port_on, router, subnet, vxlan_network},
    vrrp,
};
use serde_json::{Value, json};

/// A VM named `name` on `host` with `ip` (/24) on `network`; its port.
fn vm(cloud: &mut Cloud, host: &str, name: &str, mac: &str, ip: &str, subnet: &str) -> Value {
    let lab = &mut cloud.host_mut(host).lab;
    let i = lab.add_vm(name, mac).unwrap();
    let vm = &lab.vms[i];
    vm.sh(&format!("ip addr add {ip}/24 dev eth0")).unwrap();
    let network = if subnet == "sub2" { "net2" } else { "net1" };
    port_on(vm, host, network, &[(subnet, ip)])
}

/// Borrows only the hosts, so that etcd can be killed meanwhile.
fn vm_of<'a>(hosts: &'a [Host], host: &str, name: &str) -> &'a Vm {
    hosts
        .iter()
        .find(|h| h.name == host)
        .expect("no such host")
        .lab
        .vm(name)
}

/// Publishes `cfg`, starts the agents (with their local port counts) and
/// waits until every host sees every chassis and `remote` ports elsewhere.
fn start(cloud: &mut Cloud, cfg: &Value, hosts: &[(&str, usize, usize)]) {
    cloud.publish(cfg).unwrap();
    for (name, local, _) in hosts {
        cloud.start(name, *local).unwrap();
    }
    let names: Vec<&str> = hosts.iter().map(|(n, _, _)| *n).collect();
    for (name, _, remote) in hosts {
        cloud.wait_chassis(name, &names, WAIT).unwrap();
        cloud.wait_remote_ports(name, *remote, WAIT).unwrap();
    }
}

fn networks() -> (Vec<Value>, Vec<Value>) {
    (
        vec![vxlan_network("net1", 3001), vxlan_network("net2", 3002)],
        vec![
            subnet("sub1", "net1", "10.30.0.0/24", Some("10.30.0.1")),
            subnet("sub2", "net2", "10.31.0.0/24", Some("10.31.0.1")),
        ],
    )
}

/// vm1 on h1, vm2 on h2, vm3 on h3 (net1); vm4 on h2 (net2); router r1
/// between the two networks.
fn three_hosts() -> (Cloud, Value) {
    let mut cloud = Cloud::new(3).unwrap();
    let vms = [
        ("h1", "vm1", "fa:16:3e:30:00:01", "10.30.0.11", "sub1"),
        ("h2", "vm2", "fa:16:3e:30:00:02", "10.30.0.12", "sub1"),
        ("h3", "vm3", "fa:16:3e:30:00:03", "10.30.0.13", "sub1"),
        ("h2", "vm4", "fa:16:3e:31:00:04", "10.31.0.14", "sub2"),
    ];
    let mut ports: Vec<Value> = vms
        .iter()
        .map(|(host, name, mac, ip, sub)| vm(&mut cloud, host, name, mac, ip, sub))
        .collect();
    vm_of(&cloud.hosts, "h1", "vm1")
        .sh("ip route add 10.31.0.0/24 via 10.30.0.1")
        .unwrap();
    vm_of(&cloud.hosts, "h2", "vm4")
        .sh("ip route add 10.30.0.0/24 via 10.31.0.1")
        .unwrap();
    let (r, interfaces) = router(
        "r1",
        &[
            ("net1", "fa:16:3e:30:ff:01", &[("sub1", "10.30.0.1")]),
            ("net2", "fa:16:3e:31:ff:01", &[("sub2", "10.31.0.1")]),
        ],
    );
    ports.extend(interfaces);
    let (nets, subnets) = networks();
    let mut cfg = config(nets, subnets, ports);
    cfg["routers"] = json!([r]);
    start(
        &mut cloud,
        &cfg,
        &[("h1", 1, 3), ("h2", 2, 2), ("h3", 1, 3)],
    );
    (cloud, cfg)
}

/// ARP requests for `addr` in what `cap` sees within `window`.
fn arp_requests_for(cap: &Capture, addr: [u8; 4], window: Duration) -> usize {
    cap.count(window, |f| {
        frame::arp(f).is_some_and(|a| a.0 == 1 && a.3 == addr)
    })
}

#[test]
fn l2_routing_and_arp_between_hosts() {
    require_root!();
    let (cloud, _) = three_hosts();
    let (vm1, vm2, vm3) = (
        vm_of(&cloud.hosts, "h1", "vm1"),
        vm_of(&cloud.hosts, "h2", "vm2"),
        vm_of(&cloud.hosts, "h3", "vm3"),
    );
    // ARP for a remote port's unique address: h1 answers it; vm2 on h2
    // never sees the request.
    let cap = vm2.capture().unwrap();
    cap.drain();
    let out = vm1.sh("arping -c 2 -w 2 -I eth0 10.30.0.12; true").unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        text.contains("fa:16:3e:30:00:02"),
        "answered with vm2's MAC: {text}"
    );
    assert_eq!(
        arp_requests_for(&cap, [10, 30, 0, 12], Duration::from_millis(500)),
        0
    );
    let answered = cloud.host("h1").lab.port(vm1).unwrap()["stats"]["arp_replies"]
        .as_u64()
        .unwrap();
    assert!(answered >= 2, "answered on h1: {answered}");
    // L2 across hosts, both ways, and from the third.
    vm1.reaches("10.30.0.12", WAIT).unwrap();
    vm1.reaches("10.30.0.13", WAIT).unwrap();
    vm3.reaches("10.30.0.12", WAIT).unwrap();
    // Routed across hosts: vm1 (h1, net1) to vm4 (h2, net2) through r1,
    // which every host's datapath is.
    vm1.reaches("10.31.0.14", WAIT).unwrap();
    let out = vm1.sh("ping -n -c 1 -W 2 10.31.0.14").unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ttl=63"),
        "one routed hop: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_remote_group_covers_its_members_on_other_hosts_fixed_ips_and_pairs() {
    require_root!();
    let mut cloud = Cloud::new(3).unwrap();
    let mut web = vm(
        &mut cloud,
        "h2",
        "web",
        "fa:16:3e:32:00:02",
        "10.30.0.20",
        "sub1",
    );
    let mut client = vm(
        &mut cloud,
        "h1",
        "client",
        "fa:16:3e:32:00:01",
        "10.30.0.21",
        "sub1",
    );
    let mut other = vm(
        &mut cloud,
        "h3",
        "other",
        "fa:16:3e:32:00:03",
        "10.30.0.22",
        "sub1",
    );
    web["security_groups"] = json!(["web"]);
    client["security_groups"] = json!(["clients"]);
    client["allowed_address_pairs"] = json!([pair("10.30.0.100", None)]);
    other["security_groups"] = json!(["others"]);
    let (nets, subnets) = networks();
    let mut cfg = config(nets, subnets, vec![web, client, other]);
    let open_out = json!({ "direction": "egress" });
    cfg["security_groups"] = json!([
        { "id": "web", "security_group_rules": [
            open_out,
            { "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
              "port_range_max": 80, "remote_group_id": "clients" },
        ]},
        { "id": "clients", "security_group_rules": [open_out] },
        { "id": "others", "security_group_rules": [open_out] },
    ]);
    start(
        &mut cloud,
        &cfg,
        &[("h1", 1, 2), ("h2", 1, 2), ("h3", 1, 2)],
    );
    let (web, client, other) = (
        vm_of(&cloud.hosts, "h2", "web"),
        vm_of(&cloud.hosts, "h1", "client"),
        vm_of(&cloud.hosts, "h3", "other"),
    );
    client.sh("ip addr add 10.30.0.100/32 dev eth0").unwrap();
    web.serve_tcp(&[80]).unwrap();
    wait_for(WAIT, "the member on h1 connects by its fixed IP", || {
        client.connects("10.30.0.20", 80, None)
    })
    .unwrap();
    assert!(
        client.connects("10.30.0.20", 80, Some("10.30.0.100")),
        "by its allowed address pair"
    );
    let refused = |h: &str| {
        cloud.host(h).lab.port(web).unwrap()["stats"]["drops"]["sg_ingress"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = refused("h2");
    assert!(!other.connects("10.30.0.20", 80, None), "not a member");
    assert!(
        refused("h2") > before,
        "refused by web's ingress rules on h2"
    );
}

#[test]
fn routed_between_hosts_the_sender_keeps_its_remote_group() {
    require_root!();
    let mut cloud = Cloud::new(2).unwrap();
    let mut client = vm(
        &mut cloud,
        "h1",
        "client",
        "fa:16:3e:34:00:01",
        "10.30.0.21",
        "sub1",
    );
    let mut other = vm(
        &mut cloud,
        "h1",
        "other",
        "fa:16:3e:34:00:02",
        "10.30.0.22",
        "sub1",
    );
    let mut web = vm(
        &mut cloud,
        "h2",
        "web",
        "fa:16:3e:34:00:03",
        "10.31.0.20",
        "sub2",
    );
    web["security_groups"] = json!(["web"]);
    client["security_groups"] = json!(["clients"]);
    other["security_groups"] = json!(["others"]);
    let (r, interfaces) = router(
        "r1",
        &[
            ("net1", "fa:16:3e:30:ff:01", &[("sub1", "10.30.0.1")]),
            ("net2", "fa:16:3e:31:ff:01", &[("sub2", "10.31.0.1")]),
        ],
    );
    let (nets, subnets) = networks();
    let mut ports = vec![web, client, other];
    ports.extend(interfaces);
    let mut cfg = config(nets, subnets, ports);
    cfg["routers"] = json!([r]);
    let open_out = json!({ "direction": "egress" });
    cfg["security_groups"] = json!([
        { "id": "web", "security_group_rules": [
            open_out,
            { "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
              "port_range_max": 80, "remote_group_id": "clients" },
        ]},
        { "id": "clients", "security_group_rules": [open_out] },
        { "id": "others", "security_group_rules": [open_out] },
    ]);
    start(&mut cloud, &cfg, &[("h1", 2, 1), ("h2", 1, 2)]);
    let (web, client, other) = (
        vm_of(&cloud.hosts, "h2", "web"),
        vm_of(&cloud.hosts, "h1", "client"),
        vm_of(&cloud.hosts, "h1", "other"),
    );
    for vm in [client, other] {
        vm.sh("ip route add 10.31.0.0/24 via 10.30.0.1").unwrap();
    }
    web.sh("ip route add 10.30.0.0/24 via 10.31.0.1").unwrap();
    web.serve_tcp(&[80]).unwrap();
    // h1 routes, so web's host sees the router's MAC: it finds the sender
    // by its source address on the router's other network.
    wait_for(
        WAIT,
        "a member of clients connects across the router",
        || client.connects("10.31.0.20", 80, None),
    )
    .unwrap();
    let refused = || {
        cloud.host("h2").lab.port(web).unwrap()["stats"]["drops"]["sg_ingress"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = refused();
    assert!(!other.connects("10.31.0.20", 80, None), "not a member");
    assert!(refused() > before, "refused by web's ingress rules on h2");
}

/// The VIP both tests of a VIP across hosts share.
const VIP: &str = "10.30.0.100";

/// m1 on h1 and m2 on h2, both with the pair `VIP`, and a client c on h3
/// (MACs and last address bytes from `macs`/`ips`, on net1); the agents
/// started, keepalived not yet.
fn vip_across_hosts(macs: [&str; 3], ips: [&str; 3]) -> Cloud {
    let mut cloud = Cloud::new(3).unwrap();
    let mut ports = Vec::new();
    for (i, (host, name)) in [("h1", "m1"), ("h2", "m2"), ("h3", "c")]
        .into_iter()
        .enumerate()
    {
        let mut p = vm(&mut cloud, host, name, macs[i], ips[i], "sub1");
        if name != "c" {
            p["allowed_address_pairs"] = json!([pair(VIP, None)]);
        }
        ports.push(p);
    }
    let (nets, subnets) = networks();
    let cfg = config(nets, subnets, ports);
    start(
        &mut cloud,
        &cfg,
        &[("h1", 1, 2), ("h2", 1, 2), ("h3", 1, 2)],
    );
    cloud
}

#[test]
fn keepalived_fails_over_between_vms_on_two_hosts() {
    require_root!();
    let cloud = vip_across_hosts(
        [vrrp::MAC_M1, vrrp::MAC_M2, vrrp::MAC_C],
        ["10.30.0.41", "10.30.0.42", "10.30.0.40"],
    );
    let vip = VIP;
    let (m1, m2, c) = (
        vm_of(&cloud.hosts, "h1", "m1"),
        vm_of(&cloud.hosts, "h2", "m2"),
        vm_of(&cloud.hosts, "h3", "c"),
    );
    for (host, vm, prio) in [("h1", m1, 200), ("h2", m2, 100)] {
        keepalived_for(&cloud, host, vm, prio, vip);
    }
    wait_for(Duration::from_secs(20), "m1 to become master", || {
        vrrp::holds(m1, vip)
    })
    .unwrap();
    c.reaches(vip, WAIT).unwrap();
    let out = cloud.host("h3").lab.dir.path().join("vip-ping.out");
    let started = Instant::now();
    let ping = c
        .sh(&format!(
            "ping -n -i 0.1 -c 600 -W 1 {vip} > {} 2>&1 & echo $!",
            out.display()
        ))
        .unwrap();
    let ping = String::from_utf8_lossy(&ping.stdout).trim().to_string();
    let replied = |seq: u32| {
        std::fs::read_to_string(&out).is_ok_and(|t| {
            t.lines()
                .any(|l| l.contains(" bytes from ") && l.contains(&format!("icmp_seq={seq} ")))
        })
    };
    wait_for(WAIT, "the client's pings to be answered", || replied(20)).unwrap();
    // Over: m1's VM loses its link; m2 (on h2) takes the VIP.
    let over = started.elapsed();
    m1.sh("ip link set eth0 down").unwrap();
    wait_for(Duration::from_secs(20), "m2 to become master", || {
        vrrp::holds(m2, vip)
    })
    .unwrap();
    // h3's datapath learns the new master from its gratuitous ARP, which
    // h2 replicated to it.
    let (m1_port, m2_port) = (m1.port_id.clone(), m2.port_id.clone());
    let h3 = &cloud.host("h3").lab;
    wait_for(WAIT, "h3 sends the VIP to m2", || {
        h3.active_member(vip).as_deref() == Some(m2_port.as_str())
    })
    .unwrap();
    // And h2 told the others: etcd's record names m2.
    wait_for(WAIT, "etcd's active member to be m2", || {
        cloud
            .etcd
            .get(&format!("/aap/active/net1/{vip}/32"))
            .ok()
            .flatten()
            .is_some_and(|r| r.contains(&m2_port))
    })
    .unwrap();
    // And back: m1 returns and, with the higher priority, takes it again.
    let seq = |at: Duration| (at.as_millis() / 100) as u32;
    wait_for(WAIT, "pings answered by m2", || {
        replied(seq(started.elapsed()).saturating_sub(5))
    })
    .unwrap();
    let back = started.elapsed();
    m1.sh("ip link set eth0 up").unwrap();
    wait_for(Duration::from_secs(20), "m1 to become master again", || {
        vrrp::holds(m1, vip) && h3.active_member(vip).as_deref() == Some(m1_port.as_str())
    })
    .unwrap();
    wait_for(WAIT, "pings answered by m1 again", || {
        replied(seq(started.elapsed()).saturating_sub(5))
    })
    .unwrap();
    // SIGINT: ping prints its summary and exits.
    nix_kill(&ping, "INT");
    let (sent, received) = ping_result(&out);
    let text = std::fs::read_to_string(&out).unwrap();
    let answered: std::collections::BTreeSet<u32> = text
        .lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let lost = |from: u32, to: u32| (from..to).filter(|s| !answered.contains(s)).count();
    eprintln!(
        "VIP across hosts: {} of {sent} pings lost; failing over h1 -> h2: {}, back h2 -> h1: {}",
        sent - received,
        lost(seq(over), seq(back)),
        lost(seq(back), sent + 1)
    );
    let last = vrrp::parse_ping(&text).unwrap().last_reply;
    assert!(received > 0 && last + 10 >= sent, "service resumed: {text}");
}

/// Sends signal `sig` to process `pid` (a background command's `$!`).
fn nix_kill(pid: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

/// keepalived in `vm` for `vip` (virtual router 61).
fn keepalived_for(cloud: &Cloud, host: &str, vm: &Vm, priority: u32, vip: &str) {
    vrrp::keepalived(
        cloud.host(host).lab.dir.path(),
        vm,
        61,
        priority,
        vip,
        false,
    )
    .unwrap();
}

/// Blocks (true) or lets through (false) the hosts' connections to etcd,
/// in the underlay namespace; tunnels are not touched.
fn cut_etcd(cloud: &Cloud, cut: bool) {
    // Both ways: a watch stream already open pushes from etcd without the
    // client sending anything.
    let script = if cut {
        "nft add table inet cut; \
         nft add chain inet cut in '{ type filter hook input priority 0; }'; \
         nft add chain inet cut out '{ type filter hook output priority 0; }'; \
         nft add rule inet cut in ip saddr 192.168.100.1-192.168.100.249 tcp dport 2379 drop; \
         nft add rule inet cut out ip daddr 192.168.100.1-192.168.100.249 tcp sport 2379 drop"
    } else {
        "nft delete table inet cut"
    };
    cloud.underlay.sh(script).unwrap();
}

#[test]
fn with_etcd_gone_traffic_flows_and_changes_converge_when_it_is_back() {
    require_root!();
    let (mut cloud, mut cfg) = three_hosts();
    let (vm1, vm2, vm3) = (
        vm_of(&cloud.hosts, "h1", "vm1"),
        vm_of(&cloud.hosts, "h2", "vm2"),
        vm_of(&cloud.hosts, "h3", "vm3"),
    );
    vm1.reaches("10.30.0.12", WAIT).unwrap();
    vm3.reaches("10.30.0.12", WAIT).unwrap();
    assert_eq!(cloud.metric("h1", "dataplane_source_connected"), Some(1.0));
    let revision = cloud
        .metric("h1", "dataplane_source_revision")
        .unwrap_or(0.0);
    assert!(revision > 0.0, "the revision applied is shown");
    // etcd dies during traffic: established and new flows to known ports
    // go on.
    let pinged = cloud
        .host("h1")
        .lab
        .ping_in_background(vm1, "10.30.0.12", 150);
    wait_for(WAIT, "pings answered", || ping_replies(&pinged) >= 10).unwrap();
    cloud.etcd.kill().unwrap();
    wait_for(WAIT, "h1's metrics to show etcd lost", || {
        cloud.metric("h1", "dataplane_source_connected") == Some(0.0)
    })
    .unwrap();
    vm2.serve_tcp(&[8080]).unwrap();
    wait_for(WAIT, "a new connection with etcd gone", || {
        vm3.connects("10.30.0.12", 8080, None)
    })
    .unwrap();
    let (sent, received) = ping_result(&pinged);
    assert_eq!(sent, received, "no ping lost with etcd gone");
    cloud.etcd.restart().unwrap();
    for h in ["h1", "h2", "h3"] {
        cloud.wait_chassis(h, &["h1", "h2", "h3"], WAIT).unwrap();
    }
    wait_for(WAIT, "h1's metrics to show etcd back", || {
        cloud.metric("h1", "dataplane_source_connected") == Some(1.0)
            && cloud.metric("h1", "dataplane_source_revision") > Some(revision)
    })
    .unwrap();
    // The hosts are cut off from etcd; a change is written meanwhile (a
    // pair for vm1); once they reach etcd again, it is enforced.
    cut_etcd(&cloud, true);
    let vm1_port = vm1.port_id.clone();
    for p in cfg["ports"].as_array_mut().unwrap() {
        if p["id"] == vm1_port.as_str() {
            p["allowed_address_pairs"] = json!([pair("10.30.0.150", None)]);
        }
    }
    cloud.publish(&cfg).unwrap();
    vm1.sh("ip addr add 10.30.0.150/32 dev eth0").unwrap();
    assert!(
        !vm1.ping_from("10.30.0.12", Some("10.30.0.150"), 2),
        "not enforced while h1 cannot read it"
    );
    cut_etcd(&cloud, false);
    vm1.reaches_from("10.30.0.12", Some("10.30.0.150"), Duration::from_secs(30))
        .unwrap();
}

#[test]
fn an_agent_killed_loses_no_packet() {
    require_root!();
    let (mut cloud, _) = three_hosts();
    let vm1 = vm_of(&cloud.hosts, "h1", "vm1");
    vm1.reaches("10.30.0.12", WAIT).unwrap();
    let pinged = cloud
        .host("h1")
        .lab
        .ping_in_background(vm1, "10.30.0.12", 200);
    wait_for(WAIT, "pings answered", || ping_replies(&pinged) >= 10).unwrap();
    cloud.host_mut("h1").lab.kill_agent().unwrap();
    cloud.host_mut("h2").lab.kill_agent().unwrap();
    cloud.start("h1", 1).unwrap();
    cloud.start("h2", 2).unwrap();
    let (sent, received) = ping_result(&pinged);
    assert_eq!(sent, received, "no ping lost while the agents restarted");
}

#[test]
fn a_dead_host_loses_its_addresses_within_the_lease() {
    require_root!();
    let mut cloud = vip_across_hosts(
        [
            "fa:16:3e:33:00:01",
            "fa:16:3e:33:00:02",
            "fa:16:3e:33:00:03",
        ],
        ["10.30.0.51", "10.30.0.52", "10.30.0.50"],
    );
    let vip = VIP;
    let (m1, m2, c) = (
        vm_of(&cloud.hosts, "h1", "m1"),
        vm_of(&cloud.hosts, "h2", "m2"),
        vm_of(&cloud.hosts, "h3", "c"),
    );
    keepalived_for(&cloud, "h1", m1, 200, vip);
    keepalived_for(&cloud, "h2", m2, 100, vip);
    wait_for(Duration::from_secs(20), "m1 to become master", || {
        vrrp::holds(m1, vip)
    })
    .unwrap();
    c.reaches(vip, WAIT).unwrap();
    let m1_port = m1.port_id.clone();
    wait_for(WAIT, "h3 sends the VIP to m1", || {
        cloud.host("h3").lab.active_member(vip).as_deref() == Some(m1_port.as_str())
    })
    .unwrap();
    // h1 dies: its agent is killed and its underlay link goes down.
    let died = Instant::now();
    cloud.hosts[0].lab.kill_agent().unwrap();
    let (m2, c) = (
        vm_of(&cloud.hosts, "h2", "m2"),
        vm_of(&cloud.hosts, "h3", "c"),
    );
    cloud
        .host("h1")
        .lab
        .hv
        .ip(&["link", "set", "ul0", "down"])
        .unwrap();
    // Within the lease (4 s) the others forget h1 and its ports.
    cloud
        .wait_chassis("h3", &["h2", "h3"], Duration::from_secs(15))
        .unwrap();
    eprintln!("h1 gone from h3's view after {:?}", died.elapsed());
    cloud.wait_remote_ports("h3", 1, WAIT).unwrap();
    // m2 took the VIP over (m1's adverts stopped reaching it) and the
    // client reaches it there.
    wait_for(Duration::from_secs(20), "m2 to become master", || {
        vrrp::holds(m2, vip)
    })
    .unwrap();
    c.reaches(vip, WAIT).unwrap();
    let m2_port = m2.port_id.clone();
    assert_eq!(
        cloud.host("h3").lab.active_member(vip).as_deref(),
        Some(m2_port.as_str())
    );
}

#[test]
fn spoofing_is_dropped_at_its_host_and_foreign_tunnels_are_refused() {
    require_root!();
    let (cloud, _) = three_hosts();
    let (vm1, vm2) = (
        vm_of(&cloud.hosts, "h1", "vm1"),
        vm_of(&cloud.hosts, "h2", "vm2"),
    );
    vm1.reaches("10.30.0.12", WAIT).unwrap();
    let cap = vm2.capture().unwrap();
    cap.drain();
    // A VM spoofing its source is stopped by its own host.
    vm1.scapy(
        "sendp([Ether(src=MAC, dst='fa:16:3e:30:00:02')/IP(src='10.30.0.77', dst='10.30.0.12')/ICMP()] * 5, iface=IFACE)",
    )
    .unwrap();
    let h1 = &cloud.host("h1").lab;
    wait_for(WAIT, "h1 counts the spoofed source", || {
        h1.drops(vm1, "ipv4_src") >= 5
    })
    .unwrap();
    // A VXLAN frame from an underlay address that is no chassis.
    let script = "from scapy.all import Ether, IP, UDP, ICMP, sendp\n\
        from scapy.layers.vxlan import VXLAN\n\
        inner = Ether(src='fa:16:3e:30:00:01', dst='fa:16:3e:30:00:02')/IP(src='10.30.0.11', dst='10.30.0.12')/ICMP()\n\
        sendp([Ether(dst='ff:ff:ff:ff:ff:ff')/IP(src='192.168.100.250', dst='192.168.100.2')/UDP(sport=40000, dport=4789)/VXLAN(vni=3001)/inner] * 5, iface='ulbr', verbose=0)\n";
    let out = cloud
        .underlay
        .command("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h2 = &cloud.host("h2").lab;
    wait_for(WAIT, "h2 refuses the foreign tunnel", || {
        h2.show_ports()
            .ok()
            .and_then(|v| v["unattributed"]["drops"]["tunnel_source"].as_u64())
            >= Some(5)
    })
    .unwrap();
    let leaked = cap.count(Duration::from_millis(500), |f| {
        frame::ipv4(f).is_some_and(|(src, _, _)| src == [10, 30, 0, 77] || src == [10, 30, 0, 11])
    });
    assert_eq!(leaked, 0, "neither reached vm2");
}

#[test]
fn a_port_bound_here_waits_for_its_tap_and_is_bound_as_it_appears() {
    require_root!();
    let mut cloud = Cloud::new(1).unwrap();
    let p1 = vm(
        &mut cloud,
        "h1",
        "vm1",
        "fa:16:3e:30:00:01",
        "10.30.0.11",
        "sub1",
    );
    let lab = &mut cloud.host_mut("h1").lab;
    lab.add_unplugged_vm("vm2", "fa:16:3e:30:00:02").unwrap();
    let p2 = port_on(lab.vm("vm2"), "h1", "net1", &[("sub1", "10.30.0.12")]);
    let id = lab.vm("vm2").port_id.clone();
    let (nets, subnets) = networks();
    cloud.publish(&config(nets, subnets, vec![p1, p2])).unwrap();
    cloud.start("h1", 1).unwrap();
    let binding = format!("{}/bindings/{id}", lab::cloud::PREFIX);
    let lab = &cloud.host("h1").lab;
    let (status, _) = lab.status().unwrap();
    assert_eq!(status["pending"][0]["id"], id.as_str(), "{status:#}");
    assert_eq!(cloud.etcd.get(&binding).unwrap(), None);

    // Nova plugs the VIF: attached at once (a link event, not a poll),
    // and bound in etcd.
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    lab.plug_vm("vm2").unwrap();
    wait_for(WAIT, "the port attached", || {
        lab.log_count("its tap appeared") > 0
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.agent_log()));
    let delay = lab.log_time("its tap appeared").unwrap() - created;
    assert!(delay < 1.0, "attached {delay:.3} s after the tap appeared");
    wait_for(WAIT, "the binding written", || {
        cloud.etcd.get(&binding).ok().flatten().is_some()
    })
    .unwrap();
    lab.vm("vm2")
        .sh("ip addr add 10.30.0.12/24 dev eth0")
        .unwrap();
    lab.vm("vm1").reaches("10.30.0.12", WAIT).unwrap();
    let (status, _) = lab.status().unwrap();
    assert_eq!(status["pending"], json!([]), "{status:#}");
}

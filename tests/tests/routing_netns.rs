//! Routing by the datapath between two networks attached to one router:
//! real VMs (namespaces) with default routes via their gateways, no bridge
//! and no Linux router anywhere.

use std::time::Duration;

use lab::{
    capture::frame,
    lab::Lab,
    require_root,
    topo::{config, network, pair, port, router, subnet},
};
use serde_json::json;

const MAC_A: &str = "fa:16:3e:30:00:0a";
const MAC_B: &str = "fa:16:3e:30:00:0b";
const MAC_C: &str = "fa:16:3e:30:00:0c";
const MAC_D: &str = "fa:16:3e:30:00:0d";
const GW1_MAC: &str = "fa:16:3e:30:01:01";
const GW2_MAC: &str = "fa:16:3e:30:01:02";

/// net1 (10.3.1.0/24, fd03:1::/64) holds a; net2 (10.3.2.0/24, fd03:2::/64)
/// holds b, and c and d which share the pair 10.3.2.100 (each with its own
/// MAC, as keepalived without use_vmac). Router r1 joins the two.
fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("a", MAC_A), ("b", MAC_B), ("c", MAC_C), ("d", MAC_D)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, b, c, d) = (&lab.vms[0], &lab.vms[1], &lab.vms[2], &lab.vms[3]);
    let pa = port(a, "net1", &[("s1", "10.3.1.10"), ("s1v6", "fd03:1::10")]);
    let pb = port(b, "net2", &[("s2", "10.3.2.10"), ("s2v6", "fd03:2::10")]);
    let mut pc = port(c, "net2", &[("s2", "10.3.2.11")]);
    pc["allowed_address_pairs"] = json!([pair("10.3.2.100", None)]);
    let mut pd = port(d, "net2", &[("s2", "10.3.2.12")]);
    pd["allowed_address_pairs"] = json!([pair("10.3.2.100", None)]);
    let (r1, r1_ports) = router(
        "r1",
        &[
            (
                "net1",
                GW1_MAC,
                &[("s1", "10.3.1.1"), ("s1v6", "fd03:1::1")],
            ),
            (
                "net2",
                GW2_MAC,
                &[("s2", "10.3.2.1"), ("s2v6", "fd03:2::1")],
            ),
        ],
    );
    let mut ports = vec![pa, pb, pc, pd];
    ports.extend(r1_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.3.1.0/24", Some("10.3.1.1")),
            subnet("s1v6", "net1", "fd03:1::/64", Some("fd03:1::1")),
            subnet("s2", "net2", "10.3.2.0/24", Some("10.3.2.1")),
            subnet("s2v6", "net2", "fd03:2::/64", Some("fd03:2::1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    for (vm, v4, v6, gw4, gw6) in [
        (a, "10.3.1.10", Some("fd03:1::10"), "10.3.1.1", "fd03:1::1"),
        (b, "10.3.2.10", Some("fd03:2::10"), "10.3.2.1", "fd03:2::1"),
        (c, "10.3.2.11", None, "10.3.2.1", "fd03:2::1"),
        (d, "10.3.2.12", None, "10.3.2.1", "fd03:2::1"),
    ] {
        vm.sh(&format!(
            "ip addr add {v4}/24 dev eth0 && ip route add default via {gw4}"
        ))
        .unwrap();
        if let Some(v6) = v6 {
            vm.sh(&format!(
                "ip -6 addr add {v6}/64 dev eth0 nodad && ip -6 route add default via {gw6}"
            ))
            .unwrap();
        }
    }
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn ping_and_tcp_across_a_router_ipv4_and_ipv6() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let ok4 = a.ping("10.3.2.10", 5);
    let ok6 = a.ping("fd03:2::10", 5);
    assert!(
        ok4 && ok6,
        "v4 {ok4} v6 {ok6}\n{}",
        serde_json::to_string_pretty(&lab.show_ports().unwrap()).unwrap()
    );
    // The gateway was resolved to the router interface's MAC.
    let neigh = a
        .sh("ip neigh show 10.3.1.1; ip -6 neigh show fd03:1::1")
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert_eq!(neigh.matches(GW1_MAC).count(), 2, "{neigh}");

    // What b receives came from the router's MAC with the TTL one lower.
    let cap = b.capture().unwrap();
    cap.drain();
    a.sh("ping -n -c 1 -W 1 -t 9 -p 726f757465 10.3.2.10 >/dev/null; true")
        .unwrap();
    let f = cap
        .wait_for(Duration::from_secs(2), |f| {
            frame::ipv4(f).is_some_and(|(s, _, _)| s == [10, 3, 1, 10])
        })
        .expect("the echo request reached b");
    assert_eq!(frame::src_mac(&f), lab::pkt::mac(GW2_MAC));
    assert_eq!(&f[0..6], &lab::pkt::mac(MAC_B));
    assert_eq!(f[22], 8, "TTL 9 decremented once");

    // TCP both ways through the router.
    let out = lab.dir.path().join("nc.out");
    b.sh(&format!(
        "timeout 10 nc -l -p 7001 > {} 2>/dev/null & true",
        out.display()
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    a.sh("echo routed-by-xdp | timeout 5 nc -N 10.3.2.10 7001")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default().trim(),
        "routed-by-xdp"
    );
    let routed = lab.port(a).unwrap()["stats"]["routed"].as_u64().unwrap();
    assert!(routed >= 10, "routed counter of a: {routed}");
}

#[test]
fn expired_ttl_and_unknown_destinations_are_dropped_with_a_reason() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    let before = lab.drops(a, "ttl_exceeded");
    a.sh("ping -n -c 2 -i 0.2 -W 1 -t 1 10.3.2.10 >/dev/null; true")
        .unwrap();
    a.sh("ping -6 -n -c 2 -i 0.2 -W 1 -t 1 fd03:2::10 >/dev/null; true")
        .unwrap();
    assert_eq!(lab.drops(a, "ttl_exceeded") - before, 4);
    // Nobody owns 10.3.2.99; a subnet no interface attaches goes nowhere.
    let before = lab.drops(a, "no_route");
    a.sh("ping -n -c 2 -i 0.2 -W 1 10.3.2.99 >/dev/null; ping -n -c 2 -i 0.2 -W 1 192.0.2.1 >/dev/null; true")
        .unwrap();
    assert_eq!(lab.drops(a, "no_route") - before, 4);
}

#[test]
fn routed_traffic_to_a_shared_address_goes_to_every_member_then_the_active_one() {
    require_root!();
    let lab = lab();
    let (a, c, d) = (lab.vm("a"), lab.vm("c"), lab.vm("d"));
    // Both members hold the VIP but neither has announced it yet.
    for vm in [c, d] {
        vm.sh("ip addr add 10.3.2.100/32 dev eth0").unwrap();
    }
    let echo_to_vip = |f: &[u8]| {
        frame::ipv4(f)
            .is_some_and(|(s, dst, p)| s == [10, 3, 1, 10] && dst == [10, 3, 2, 100] && p == 1)
    };
    let (cap_c, cap_d) = (c.capture().unwrap(), d.capture().unwrap());
    a.sh("ping -n -c 1 -W 1 10.3.2.100 >/dev/null; true")
        .unwrap();
    let fc = cap_c.wait_for(Duration::from_secs(2), echo_to_vip);
    let fd = cap_d.wait_for(Duration::from_secs(2), echo_to_vip);
    let (fc, fd) = (fc.expect("c got the VIP's packet"), fd.expect("d got it"));
    // Each member gets it addressed to the MAC it binds the VIP to.
    assert_eq!(&fc[0..6], &lab::pkt::mac(MAC_C));
    assert_eq!(&fd[0..6], &lab::pkt::mac(MAC_D));

    // d announces the VIP (as a new VRRP master does): only d gets it now.
    d.sh("arping -U -c 1 -w 1 -I eth0 -S 10.3.2.100 10.3.2.100; true")
        .unwrap();
    cap_c.drain();
    cap_d.drain();
    assert!(a.ping("10.3.2.100", 3), "VIP answers through the router");
    // The captures kept what arrived during the pings.
    assert!(cap_d.count(Duration::from_millis(300), echo_to_vip) >= 3);
    assert_eq!(
        cap_c.count(Duration::from_millis(300), echo_to_vip),
        0,
        "the backup still receives the VIP's traffic"
    );
}

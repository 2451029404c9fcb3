//! Forwarding by the datapath itself (no bridge anywhere): L2 delivery by
//! MAC through device maps, the ARP/ND responder, TCP across it.

use std::time::Duration;

use lab::{
    capture::frame,
    lab::{Lab, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};

const MAC_A: &str = "fa:16:3e:10:00:0a";
const MAC_B: &str = "fa:16:3e:10:00:0b";
const MAC_C: &str = "fa:16:3e:10:00:0c";

/// Three VMs on one network, no bridge; a and b share 10.1.0.100.
fn three_vms() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("a", MAC_A), ("b", MAC_B), ("c", MAC_C)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, b, c) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let mut pa = port(a, "net", &[("v4", "10.1.0.10"), ("v6", "fd01::10")]);
    pa["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", None)]);
    let mut pb = port(b, "net", &[("v4", "10.1.0.11"), ("v6", "fd01::11")]);
    pb["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", None)]);
    let pc = port(c, "net", &[("v4", "10.1.0.12"), ("v6", "fd01::12")]);
    let cfg = config(
        vec![network("net")],
        vec![
            subnet("v4", "net", "10.1.0.0/24", Some("10.1.0.1")),
            subnet("v6", "net", "fd01::/64", None),
        ],
        vec![pa, pb, pc],
    );
    for (vm, v4, v6) in [
        (a, "10.1.0.10", "fd01::10"),
        (b, "10.1.0.11", "fd01::11"),
        (c, "10.1.0.12", "fd01::12"),
    ] {
        vm.sh(&format!(
            "ip addr add {v4}/24 dev eth0 && ip -6 addr add {v6}/64 dev eth0 nodad"
        ))
        .unwrap();
    }
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn ping_and_tcp_between_vms_without_a_bridge() {
    require_root!();
    let lab = three_vms();
    let (a, c) = (lab.vm("a"), lab.vm("c"));
    let ok4 = c.ping("10.1.0.10", 8);
    let ok6 = c.ping("fd01::10", 8);
    assert!(
        ok4 && ok6,
        "v4 {ok4} v6 {ok6}\n{}\n{}",
        serde_json::to_string_pretty(&lab.show_ports().unwrap()).unwrap(),
        lab.agent_log()
    );
    // TCP: a listens, c connects and sends a line, which must arrive.
    let out = lab.dir.path().join("nc.out");
    a.sh(&format!(
        "timeout 10 nc -l -p 7000 > {} 2>/dev/null & true",
        out.display()
    ))
    .unwrap();
    wait_for(WAIT, "a to listen on 7000", || a.listens(7000)).unwrap();
    c.sh("echo hello-over-xdp | timeout 5 nc -N 10.1.0.10 7000")
        .unwrap();
    wait_for(WAIT, "the line to arrive", || {
        std::fs::read_to_string(&out).is_ok_and(|got| got.trim() == "hello-over-xdp")
    })
    .unwrap();
    let port_a = lab.port(a).unwrap();
    assert!(port_a["stats"]["tx_packets"].as_u64().unwrap() > 0);
}

/// ARP frames with this target seen by `cap` within `window`.
fn arp_requests_for(cap: &lab::capture::Capture, tpa: [u8; 4], window: Duration) -> usize {
    cap.count(window, |f| {
        frame::arp(f).is_some_and(|frame::ArpFields(op, _, _, t)| op == 1 && t == tpa)
    })
}

#[test]
fn arp_for_a_unique_address_is_answered_and_for_a_shared_one_flooded() {
    require_root!();
    let lab = three_vms();
    let (a, b, c) = (lab.vm("a"), lab.vm("b"), lab.vm("c"));
    let (cap_a, cap_b) = (a.capture().unwrap(), b.capture().unwrap());
    cap_a.drain();
    cap_b.drain();
    // a's fixed IP: the datapath answers with a's MAC; nobody sees the request.
    let out = c.sh("arping -c 2 -w 2 -I eth0 10.1.0.10; true").unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains(MAC_A), "arping got a's MAC: {text}");
    assert_eq!(
        arp_requests_for(&cap_a, [10, 1, 0, 10], Duration::from_millis(300)),
        0
    );
    assert_eq!(
        arp_requests_for(&cap_b, [10, 1, 0, 10], Duration::from_millis(300)),
        0
    );
    let answered = lab.port(c).unwrap()["stats"]["arp_replies"]
        .as_u64()
        .unwrap();
    assert!(answered >= 2, "arp_replies of c: {answered}");

    // The shared VIP: both members see the request, so the real owner answers.
    c.sh("arping -c 1 -w 1 -I eth0 10.1.0.100; true").unwrap();
    assert_eq!(
        arp_requests_for(&cap_a, [10, 1, 0, 100], Duration::from_millis(500)),
        1
    );
    assert_eq!(
        arp_requests_for(&cap_b, [10, 1, 0, 100], Duration::from_millis(500)),
        1
    );
}

#[test]
fn networks_are_isolated_even_with_the_same_addresses_and_macs() {
    require_root!();
    let mut lab = Lab::new(false).unwrap();
    // x and y on net1, and their twins with the same MACs and IPs on net2.
    for (name, mac) in [("x1", MAC_A), ("y1", MAC_B), ("x2", MAC_A), ("y2", MAC_B)] {
        lab.add_vm(name, mac).unwrap();
    }
    let ports = lab
        .vms
        .iter()
        .map(|vm| {
            let net = if vm.name.ends_with('1') {
                "net1"
            } else {
                "net2"
            };
            let sub = if net == "net1" { "s1" } else { "s2" };
            let ip = if vm.name.starts_with('x') {
                "10.5.0.10"
            } else {
                "10.5.0.11"
            };
            vm.sh(&format!("ip addr add {ip}/24 dev eth0")).unwrap();
            port(vm, net, &[(sub, ip)])
        })
        .collect();
    let cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.5.0.0/24", None),
            subnet("s2", "net2", "10.5.0.0/24", None),
        ],
        ports,
    );
    lab.start(&cfg).unwrap();
    let (x1, y1, x2, y2) = (lab.vm("x1"), lab.vm("y1"), lab.vm("x2"), lab.vm("y2"));
    let (cap_x1, cap_x2, cap_y2) = (
        x1.capture().unwrap(),
        x2.capture().unwrap(),
        y2.capture().unwrap(),
    );
    for cap in [&cap_x1, &cap_x2, &cap_y2] {
        cap.drain();
    }
    // Tagged pings within net1, and a flooded ARP request for nobody.
    let marker = b"\x6e\x65\x74\x31"; // "net1"
    assert!(
        y1.sh("ping -n -c 3 -i 0.2 -W 1 -p 6e657431 10.5.0.10 >/dev/null")
            .is_ok()
    );
    y1.sh("arping -c 1 -w 1 -I eth0 10.5.0.99; true").unwrap();
    assert!(cap_x1.count(Duration::from_millis(300), |f| frame::contains(f, marker)) >= 3);
    for (name, cap) in [("x2", &cap_x2), ("y2", &cap_y2)] {
        let leaked = cap.count(Duration::from_millis(300), |f| {
            frame::contains(f, marker)
                || frame::arp(f).is_some_and(|frame::ArpFields(_, _, _, t)| t == [10, 5, 0, 99])
        });
        assert_eq!(leaked, 0, "net1 traffic reached {name}");
    }
    // The same addresses work in net2, on their own.
    assert!(y2.ping("10.5.0.10", 3));
}

#[test]
fn a_member_whose_tap_goes_away_stops_being_active() {
    require_root!();
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("m1", MAC_A), ("m2", MAC_B), ("c", MAC_C)] {
        lab.add_vm(name, mac).unwrap();
    }
    let vmac = "00:00:5e:00:01:07";
    let (m1, m2, c) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let mut p1 = port(m1, "net", &[("v4", "10.1.0.10")]);
    p1["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", Some(vmac))]);
    let mut p2 = port(m2, "net", &[("v4", "10.1.0.11")]);
    p2["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", Some(vmac))]);
    let pc = port(c, "net", &[("v4", "10.1.0.12")]);
    let cfg = config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.1.0.0/24", None)],
        vec![p1, p2, pc],
    );
    lab.start(&cfg).unwrap();
    let (m1, m2, c) = (lab.vm("m1"), lab.vm("m2"), lab.vm("c"));
    // m1 announces the VIP from the shared MAC: it is active.
    m1.scapy(&format!(
        "sendp(Ether(src='{vmac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{vmac}', psrc='10.1.0.100', pdst='10.1.0.100'), iface=IFACE)"
    ))
    .unwrap();
    assert_eq!(
        lab.active_member(vmac).as_deref(),
        Some(m1.port_id.as_str())
    );

    // m1's VM goes away with its tap. Frames for the shared MAC now reach
    // the remaining member, and m1 is no longer active.
    lab.hv.ip(&["link", "del", &m1.tap]).unwrap();
    let cap = m2.capture().unwrap();
    cap.drain();
    c.scapy(&format!(
        "sendp(Ether(src=MAC, dst='{vmac}')/IP(src='10.1.0.12', dst='10.1.0.100')/UDP(sport=9, dport=9)/Raw(b'after-m1-left'), iface=IFACE)"
    ))
    .unwrap();
    assert!(
        cap.wait_for(Duration::from_secs(2), |f| frame::contains(
            f,
            b"after-m1-left"
        ))
        .is_some(),
        "the remaining member did not get the shared MAC's traffic"
    );
    assert_eq!(
        lab.active_member(vmac),
        None,
        "the gone member is still active"
    );
}

#[test]
fn unknown_unicast_is_flooded_but_a_vm_receives_only_its_own_macs() {
    require_root!();
    let lab = three_vms();
    let (a, b, c) = (lab.vm("a"), lab.vm("b"), lab.vm("c"));
    let (cap_a, cap_b) = (a.capture().unwrap(), b.capture().unwrap());
    cap_a.drain();
    cap_b.drain();
    let before = (lab.drops(a, "ingress_mac"), lab.drops(b, "ingress_mac"));
    c.scapy(
        "sendp(Ether(src=MAC, dst='fa:16:3e:99:99:99')/IP(src='10.1.0.12', dst='10.1.0.99')\
         /UDP(sport=9, dport=9)/Raw(b'not-for-you'), iface=IFACE)",
    )
    .unwrap();
    for cap in [&cap_a, &cap_b] {
        assert_eq!(
            cap.count(Duration::from_millis(500), |f| frame::contains(
                f,
                b"not-for-you"
            )),
            0,
            "a VM received a frame for another MAC"
        );
    }
    // It was flooded to both, and each port's own view refused it.
    assert_eq!(lab.drops(a, "ingress_mac"), before.0 + 1);
    assert_eq!(lab.drops(b, "ingress_mac"), before.1 + 1);
}

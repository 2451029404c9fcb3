//! Routing by the datapath between two networks attached to one router:
//! real VMs (namespaces) with default routes via their gateways, no bridge
//! and no Linux router anywhere. The router's own answers (echo replies,
//! ICMP errors) are checked with the tools people use: ping, traceroute,
//! tracepath, whose kernels drop anything with a wrong checksum.

use std::time::Duration;

use lab::{
    capture::frame,
    lab::{Lab, Vm, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, router, subnet},
};
use serde_json::json;

const MAC_A: &str = "fa:16:3e:30:00:0a";
const MAC_B: &str = "fa:16:3e:30:00:0b";
const MAC_C: &str = "fa:16:3e:30:00:0c";
const MAC_D: &str = "fa:16:3e:30:00:0d";
const MAC_E: &str = "fa:16:3e:30:00:0e";
const MAC_F: &str = "fa:16:3e:30:00:0f";
const GW1_MAC: &str = "fa:16:3e:30:01:01";
const GW2_MAC: &str = "fa:16:3e:30:01:02";

/// The MTUs of net1 and net2 (None: not given).
type Mtus = (Option<u32>, Option<u32>);

/// net1 (10.3.1.0/24, fd03:1::/64) holds a; net2 (10.3.2.0/24, fd03:2::/64)
/// holds b, and c and d which share the pair 10.3.2.100 (each with its own
/// MAC, as keepalived without use_vmac). Router r1 joins the two.
fn lab() -> Lab {
    lab_with((None, None))
}

/// [`lab`] with MTUs on the networks, and two more VMs on net1 whose
/// security groups are not open: e may send anything and receive nothing
/// it did not ask for (egress rules only); f may only open TCP
/// connections.
fn lab_with(mtus: Mtus) -> Lab {
    let mut lab = Lab::new(false).unwrap();
    let vms = [
        ("a", MAC_A),
        ("b", MAC_B),
        ("c", MAC_C),
        ("d", MAC_D),
        ("e", MAC_E),
        ("f", MAC_F),
    ];
    for (name, mac) in vms {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, b, c, d) = (&lab.vms[0], &lab.vms[1], &lab.vms[2], &lab.vms[3]);
    let (e, f) = (&lab.vms[4], &lab.vms[5]);
    let mut pe = port(e, "net1", &[("s1", "10.3.1.20"), ("s1v6", "fd03:1::20")]);
    pe["security_groups"] = json!(["egress-only"]);
    let mut pf = port(f, "net1", &[("s1", "10.3.1.21"), ("s1v6", "fd03:1::21")]);
    pf["security_groups"] = json!(["tcp-out"]);
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
    let mut ports = vec![pa, pb, pc, pd, pe, pf];
    ports.extend(r1_ports);
    let mut networks = vec![network("net1"), network("net2")];
    for (n, mtu) in networks.iter_mut().zip([mtus.0, mtus.1]) {
        if let Some(mtu) = mtu {
            n["mtu"] = json!(mtu);
        }
    }
    let mut cfg = config(
        networks,
        vec![
            subnet("s1", "net1", "10.3.1.0/24", Some("10.3.1.1")),
            subnet("s1v6", "net1", "fd03:1::/64", Some("fd03:1::1")),
            subnet("s2", "net2", "10.3.2.0/24", Some("10.3.2.1")),
            subnet("s2v6", "net2", "fd03:2::/64", Some("fd03:2::1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    let groups = cfg["security_groups"].as_array_mut().unwrap();
    groups.push(json!({ "id": "egress-only", "security_group_rules": [
        { "direction": "egress", "ethertype": "IPv4" },
        { "direction": "egress", "ethertype": "IPv6" },
    ]}));
    groups.push(json!({ "id": "tcp-out", "security_group_rules": [
        { "direction": "egress", "ethertype": "IPv4", "protocol": "tcp" },
        { "direction": "egress", "ethertype": "IPv6", "protocol": "tcp" },
    ]}));
    for (vm, v4, v6, gw4, gw6) in [
        (a, "10.3.1.10", Some("fd03:1::10"), "10.3.1.1", "fd03:1::1"),
        (b, "10.3.2.10", Some("fd03:2::10"), "10.3.2.1", "fd03:2::1"),
        (c, "10.3.2.11", None, "10.3.2.1", "fd03:2::1"),
        (d, "10.3.2.12", None, "10.3.2.1", "fd03:2::1"),
        (e, "10.3.1.20", Some("fd03:1::20"), "10.3.1.1", "fd03:1::1"),
        (f, "10.3.1.21", Some("fd03:1::21"), "10.3.1.1", "fd03:1::1"),
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

/// A counter of the VM's port (`stats` in `show ports`).
fn stat(lab: &Lab, vm: &Vm, name: &str) -> u64 {
    lab.port(vm).unwrap()["stats"][name].as_u64().unwrap_or(0)
}

/// What a command printed (stdout and stderr), whatever its exit status.
fn output(vm: &Vm, script: &str) -> String {
    let out = vm.ns.try_exec(&["sh", "-c", script]).unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn expired_ttl_and_unknown_destinations_are_dropped_with_a_reason_and_an_error() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    a.reaches("10.3.2.10", WAIT).unwrap();
    a.sh("ping -6 -n -c 1 -W 2 fd03:2::10").unwrap();
    let (drops, errors) = (lab.drops(a, "ttl_exceeded"), stat(&lab, a, "icmp_errors"));
    let v4 = output(a, "ping -n -c 2 -i 0.2 -W 1 -t 1 10.3.2.10");
    let v6 = output(a, "ping -6 -n -c 2 -i 0.2 -W 1 -t 1 fd03:2::10");
    assert_eq!(lab.drops(a, "ttl_exceeded") - drops, 4);
    assert_eq!(stat(&lab, a, "icmp_errors") - errors, 4);
    // From the router's address on a's own subnet (RFC 1812 4.3.2.4).
    assert_eq!(v4.matches("From 10.3.1.1 icmp_seq=").count(), 2, "{v4}");
    assert!(v4.contains("Time to live exceeded"), "{v4}");
    assert_eq!(v6.matches("From fd03:1::1 icmp_seq=").count(), 2, "{v6}");
    assert!(v6.contains("Time exceeded: Hop limit"), "{v6}");
    // Nobody owns 10.3.2.99; a subnet no interface attaches goes nowhere.
    let before = lab.drops(a, "no_route");
    let host = output(a, "ping -n -c 2 -i 0.2 -W 1 10.3.2.99");
    let net = output(a, "ping -n -c 2 -i 0.2 -W 1 192.0.2.1");
    assert_eq!(lab.drops(a, "no_route") - before, 4);
    assert!(
        host.contains("From 10.3.1.1 icmp_seq=1 Destination Host Unreachable"),
        "{host}"
    );
    assert!(
        net.contains("From 10.3.1.1 icmp_seq=1 Destination Net Unreachable"),
        "{net}"
    );
    let host6 = output(a, "ping -6 -n -c 1 -W 1 fd03:2::99");
    let net6 = output(a, "ping -6 -n -c 1 -W 1 2001:db8::1");
    assert!(
        host6.contains("Destination unreachable: Address unreachable"),
        "{host6}"
    );
    assert!(net6.contains("Destination unreachable: No route"), "{net6}");
    // Neither a directed broadcast nor a multicast gets an error.
    let errors = stat(&lab, a, "icmp_errors");
    a.sh("ping -n -b -c 1 -W 1 10.3.2.255 >/dev/null 2>&1; true")
        .unwrap();
    assert_eq!(stat(&lab, a, "icmp_errors"), errors);
}

#[test]
fn the_gateway_answers_pings_to_every_router_address() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let before = stat(&lab, a, "echo_replies");
    // The gateway of a's subnet and the router's other interface, in both
    // families; answered by the datapath (the hypervisor has no address).
    for addr in ["10.3.1.1", "10.3.2.1", "fd03:1::1", "fd03:2::1"] {
        a.reaches(addr, WAIT).unwrap();
    }
    b.reaches("10.3.1.1", WAIT).unwrap();
    let text = output(a, "ping -n -c 3 -i 0.2 -W 1 10.3.2.1");
    assert!(
        text.contains("3 received") && text.contains("ttl=64"),
        "{text}"
    );
    // A full-size echo: the reply's checksum covers all of it.
    let text = output(
        a,
        "ping -n -c 1 -W 2 -s 1400 10.3.1.1; ping -6 -n -c 1 -W 2 -s 1400 fd03:2::1",
    );
    assert_eq!(text.matches("1 received").count(), 2, "{text}");
    assert!(stat(&lab, a, "echo_replies") - before >= 9);
    // The reply comes back from the gateway's MAC.
    let cap = a.capture().unwrap();
    cap.drain();
    a.sh("ping -n -c 1 -W 1 -p 67617465 10.3.2.1 >/dev/null")
        .unwrap();
    let reply = cap
        .wait_for(Duration::from_secs(2), |f| {
            frame::ipv4(f)
                .is_some_and(|(s, d, p)| s == [10, 3, 2, 1] && d == [10, 3, 1, 10] && p == 1)
        })
        .expect("the echo reply");
    assert_eq!(frame::src_mac(&reply), lab::pkt::mac(GW1_MAC));
    assert_eq!(reply[34], 0, "an echo reply");
    // Nothing else of the router's own answers: TCP is dropped and counted.
    let before = lab.drops(a, "to_router");
    a.sh("timeout 3 nc -z -w 1 10.3.1.1 22; true").unwrap();
    assert!(lab.drops(a, "to_router") > before);
}

#[test]
fn the_sender_s_security_groups_see_what_the_router_answers() {
    require_root!();
    let lab = lab();
    let (e, f) = (lab.vm("e"), lab.vm("f"));
    // e allows any egress and no ingress: the router's replies and errors
    // come back because e's connection tracking knows what they answer.
    e.reaches("10.3.1.1", WAIT).unwrap();
    e.reaches("fd03:2::1", WAIT).unwrap();
    let ttl = output(e, "ping -n -c 1 -W 1 -t 1 10.3.2.10");
    assert!(ttl.contains("Time to live exceeded"), "{ttl}");
    let unreachable = output(e, "ping -6 -n -c 1 -W 1 fd03:2::99");
    assert!(unreachable.contains("Address unreachable"), "{unreachable}");
    // f may only open TCP: its pings are refused on the way to the
    // router, which answers nothing.
    let (refused, replies) = (lab.drops(f, "sg_egress"), stat(&lab, f, "echo_replies"));
    assert!(!f.ping("10.3.1.1", 2));
    assert!(!f.ping("fd03:1::1", 2));
    let ttl = output(f, "ping -n -c 1 -W 1 -t 1 10.3.2.10");
    assert!(!ttl.contains("Time to live exceeded"), "{ttl}");
    assert_eq!(stat(&lab, f, "echo_replies"), replies);
    assert_eq!(lab.drops(f, "sg_egress") - refused, 5);
}

/// The hop lines of traceroute's or tracepath's output: (hop, first
/// address on it).
fn hops(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let hop = words.next()?.trim_end_matches(':').parse().ok()?;
            let addr = words.find(|w| w.contains('.') || w.contains(':'))?;
            Some((hop, addr.to_string()))
        })
        .collect()
}

#[test]
fn traceroute_and_tracepath_see_the_router_then_the_destination() {
    require_root!();
    let lab = lab();
    let (a, e) = (lab.vm("a"), lab.vm("e"));
    a.reaches("10.3.2.10", WAIT).unwrap();
    // UDP probes: time exceeded from the router, port unreachable from b.
    let text = output(a, "traceroute -n -q 1 -w 2 -m 4 10.3.2.10");
    let seen = hops(&text);
    assert!(seen.contains(&(1, "10.3.1.1".into())), "{text}");
    assert!(seen.contains(&(2, "10.3.2.10".into())), "{text}");
    // ICMP probes, and the router's own address as the destination (UDP
    // to the router: port unreachable).
    let text = output(a, "traceroute -I -n -q 1 -w 2 -m 4 10.3.2.10");
    assert!(hops(&text).contains(&(1, "10.3.1.1".into())), "{text}");
    let text = output(a, "traceroute -n -q 1 -w 2 -m 4 10.3.2.1");
    assert_eq!(hops(&text), vec![(1, "10.3.2.1".to_string())], "{text}");
    let text = output(a, "tracepath -n -m 4 10.3.2.10");
    assert!(hops(&text).contains(&(1, "10.3.1.1".into())), "{text}");
    assert!(text.contains("reached"), "{text}");
    let text = output(a, "tracepath -6 -n -m 4 fd03:2::10");
    assert!(hops(&text).contains(&(1, "fd03:1::1".into())), "{text}");
    assert!(text.contains("reached"), "{text}");
    // From a port whose groups let nothing in unasked, too.
    let text = output(e, "traceroute -n -q 1 -w 2 -m 4 10.3.2.10");
    assert!(hops(&text).contains(&(1, "10.3.1.1".into())), "{text}");
}

#[test]
fn icmp_errors_to_a_port_are_rate_limited() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    a.reaches("10.3.2.10", WAIT).unwrap();
    let (drops, errors, limited) = (
        lab.drops(a, "ttl_exceeded"),
        stat(&lab, a, "icmp_errors"),
        stat(&lab, a, "icmp_limited"),
    );
    let cap = a.capture().unwrap();
    cap.drain();
    // 400 UDP probes with TTL 1 in a fraction of a second.
    a.scapy(
        "pkts = [Ether(src=MAC, dst='fa:16:3e:30:01:01')/IP(src='10.3.1.10', dst='10.3.2.10', ttl=1)\
         /UDP(sport=40000, dport=33434 + i) for i in range(400)]\nsendp(pkts, iface=IFACE)",
    )
    .unwrap();
    wait_for(WAIT, "every probe dropped", || {
        lab.drops(a, "ttl_exceeded") - drops == 400
    })
    .unwrap();
    let sent = stat(&lab, a, "icmp_errors") - errors;
    let held = stat(&lab, a, "icmp_limited") - limited;
    assert_eq!(sent + held, 400, "each probe is answered or held back");
    assert!(
        held > 0,
        "400 errors in well under a second went out unlimited"
    );
    // At most a window's worth per CPU, twice if the run crossed a window.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let most = 2 * u64::from(common::ICMP_ERRORS_PER_SECOND) * cpus;
    assert!(sent <= most, "{sent} errors sent, at most {most} allowed");
    // Every error counted arrived, with a checksum the kernel accepted
    // (the capture sees them before the stack; the count is what arrived).
    let arrived = cap.count(Duration::from_millis(500), |f| {
        frame::ipv4(f).is_some_and(|(s, _, p)| s == [10, 3, 1, 1] && p == 1) && f[34] == 11
    });
    assert_eq!(arrived as u64, sent);
}

#[test]
fn a_packet_larger_than_the_next_network_s_mtu_gets_frag_needed_or_packet_too_big() {
    require_root!();
    let lab = lab_with((Some(1500), Some(1280)));
    let a = lab.vm("a");
    a.reaches("10.3.2.10", WAIT).unwrap();
    // IPv4 with DF: "fragmentation needed" with net2's MTU; the sender's
    // kernel then knows the path's MTU.
    let before = lab.drops(a, "mtu_exceeded");
    let text = output(a, "ping -n -c 1 -W 1 -M do -s 1400 10.3.2.10");
    assert!(text.contains("mtu = 1280"), "{text}");
    let route = output(a, "ip route get 10.3.2.10");
    assert!(route.contains("mtu 1280"), "{route}");
    // Without DF the datapath would have to fragment, which it does not.
    a.sh("ip route flush cache").unwrap();
    let lost = output(a, "ping -n -c 1 -W 1 -M dont -s 1400 10.3.2.10");
    assert!(lost.contains("0 received"), "{lost}");
    assert_eq!(lab.drops(a, "mtu_exceeded") - before, 2);
    // IPv6: "packet too big"; the sender fragments from then on and gets
    // through.
    let text = output(a, "ping -6 -n -c 3 -i 0.3 -W 1 -s 1400 fd03:2::10");
    assert!(text.contains("Packet too big: mtu=1280"), "{text}");
    assert!(!text.contains(" 0 received"), "{text}");
    // What fits passes untouched.
    a.reaches("10.3.2.10", WAIT).unwrap();
    let fits = output(a, "ping -n -c 1 -W 2 -M do -s 1200 10.3.2.10");
    assert!(fits.contains("1 received"), "{fits}");
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

const MAC_S: &str = "fa:16:3e:31:00:0a";
const MAC_T: &str = "fa:16:3e:31:00:0b";
const MAC_U: &str = "fa:16:3e:31:00:0c";
const MAC_W: &str = "fa:16:3e:31:00:0d";
const GW6_MAC: &str = "fa:16:3e:31:01:01";

/// The EUI-64 address of `mac` in the /64 `prefix` (what Neutron gives a
/// port on a SLAAC subnet, and what the VM makes itself).
fn eui64(prefix: &str, mac: &str) -> String {
    let mut a = lab::pkt::v6(prefix);
    a[8..].copy_from_slice(&lab::pkt::link_local(lab::pkt::mac(mac))[8..]);
    std::net::Ipv6Addr::from(a).to_string()
}

/// Router r6 on four networks, one VM on each, none of them configured by
/// hand: slaac (fd07:1::/64, MTU 1450, a DNS server; VM s), slaac again
/// (fd07:2::/64; VM t, to reach), dhcpv6-stateful (fd07:3::/64; VM u) and
/// dhcpv6-stateless (fd07:4::/64; VM w). Neutron gives the VMs on the
/// automatic subnets their EUI-64 addresses; u's is whatever DHCPv6 would
/// hand out.
fn slaac_lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("s", MAC_S), ("t", MAC_T), ("u", MAC_U), ("w", MAC_W)] {
        lab.add_vm(name, mac).unwrap();
    }
    let nets = [
        ("n1", "fd07:1::", "slaac", MAC_S, 0),
        ("n2", "fd07:2::", "slaac", MAC_T, 1),
        ("n3", "fd07:3::", "dhcpv6-stateful", MAC_U, 2),
        ("n4", "fd07:4::", "dhcpv6-stateless", MAC_W, 3),
    ];
    let mut networks = Vec::new();
    let mut subnets = Vec::new();
    let mut ports = Vec::new();
    let mut interfaces = Vec::new();
    for (i, (net, prefix, mode, mac, vm)) in nets.iter().enumerate() {
        let mut n = network(net);
        if i == 0 {
            n["mtu"] = json!(1450);
        }
        networks.push(n);
        let sub = format!("{net}v6");
        let mut s = subnet(
            &sub,
            net,
            &format!("{prefix}/64"),
            Some(&format!("{prefix}1")),
        );
        s["ipv6_ra_mode"] = json!(mode);
        s["ipv6_address_mode"] = json!(mode);
        if i == 0 {
            s["dns_nameservers"] = json!(["fd07:1::53"]);
        }
        subnets.push(s);
        let ip = if *mode == "dhcpv6-stateful" {
            format!("{prefix}99")
        } else {
            eui64(prefix, mac)
        };
        ports.push(port(&lab.vms[*vm], net, &[(&sub, &ip)]));
        interfaces.push(json!({
            "id": format!("r6-if{i}"), "network_id": net,
            "device_owner": "network:router_interface", "device_id": "r6",
            "mac_address": format!("fa:16:3e:31:01:0{}", i + 1),
            "fixed_ips": [{ "subnet_id": sub, "ip_address": format!("{prefix}1") }],
        }));
    }
    ports.extend(interfaces);
    let mut cfg = config(networks, subnets, ports);
    cfg["routers"] = json!([{ "id": "r6", "name": "r6" }]);
    // The VMs accept advertisements (no forwarding) and make EUI-64
    // addresses (the lab's default); nothing is configured by hand.
    lab.start(&cfg).unwrap();
    lab
}

/// The VM's default IPv6 route, as `ip -6 route` prints it.
fn default_route6(vm: &Vm) -> String {
    output(vm, "ip -6 route show default")
}

#[test]
fn a_slaac_vm_gets_its_address_and_default_route_from_the_router() {
    require_root!();
    let lab = slaac_lab();
    let (s, t) = (lab.vm("s"), lab.vm("t"));
    // The link came up before the datapath was there: bring it up again
    // so that the VM solicits (the datapath answers), as at boot.
    for vm in [s, t] {
        vm.sh("ip link set eth0 down && ip link set eth0 up && ethtool -K eth0 gro off && ethtool -K eth0 gro on")
            .unwrap();
    }
    let (addr_s, addr_t) = (eui64("fd07:1::", MAC_S), eui64("fd07:2::", MAC_T));
    let ll = |mac: &str| std::net::Ipv6Addr::from(lab::pkt::link_local(lab::pkt::mac(mac)));
    let (ll_s, ll_t) = (ll(GW6_MAC), ll("fa:16:3e:31:01:02"));
    for (vm, addr, gw) in [(s, &addr_s, ll_s), (t, &addr_t, ll_t)] {
        wait_for(WAIT, "the SLAAC address and the default route", || {
            output(vm, "ip -6 addr show dev eth0").contains(&format!("{addr}/64"))
                && default_route6(vm).contains(&format!("via {gw} dev eth0 proto ra"))
        })
        .unwrap_or_else(|e| panic!("{e}: {}{}", output(vm, "ip -6 addr"), default_route6(vm)));
    }
    assert!(stat(&lab, s, "ra_replies") >= 1, "answered by the datapath");
    // Routed through the router the advertisement named, both ways.
    s.reaches(&addr_t, WAIT).unwrap();
    // The router's link-local address answers too.
    s.reaches(&format!("{ll_s}%eth0"), WAIT).unwrap();
    // The MTU and DNS server of the advertisement reached the VM's kernel.
    let mtu = output(s, "cat /proc/sys/net/ipv6/conf/eth0/mtu");
    assert_eq!(mtu.trim(), "1450");
}

#[test]
fn advertisements_say_what_neutron_s_radvd_would() {
    require_root!();
    let lab = slaac_lab();
    let (s, u, w) = (lab.vm("s"), lab.vm("u"), lab.vm("w"));
    // rdisc6 solicits and prints the advertisement it gets back (its
    // kernel checked the checksum); compared with spaces squeezed.
    let rdisc6 = |vm: &Vm| {
        output(vm, "rdisc6 -1 -w 2000 eth0")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = rdisc6(s);
    let router_ll = std::net::Ipv6Addr::from(lab::pkt::link_local(lab::pkt::mac(GW6_MAC)));
    for line in [
        "Hop limit : 64",
        "Stateful address conf. : No",
        "Stateful other conf. : No",
        "Router lifetime : 300",
        "Prefix : fd07:1::/64 On-link : Yes Autonomous address conf.: Yes \
         Valid time : 86400 (0x00015180) seconds Pref. time : 14400",
        "Recursive DNS server : fd07:1::53 DNS server lifetime : 100",
        "MTU : 1450 bytes",
        "Source link-layer address: FA:16:3E:31:01:01",
        &format!("from {router_ll}"),
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    // dhcpv6-stateful: M set, the prefix not autonomous; no MTU given,
    // none announced; its DNS servers are DHCPv6's to give.
    let text = rdisc6(u);
    assert!(text.contains("Stateful address conf. : Yes"), "{text}");
    assert!(text.contains("Stateful other conf. : No"), "{text}");
    assert!(
        text.contains("Prefix : fd07:3::/64 On-link : Yes Autonomous address conf.: No"),
        "{text}"
    );
    assert!(!text.contains("MTU") && !text.contains("DNS"), "{text}");
    // dhcpv6-stateless: O set, the prefix autonomous.
    let text = rdisc6(w);
    assert!(text.contains("Stateful address conf. : No"), "{text}");
    assert!(text.contains("Stateful other conf. : Yes"), "{text}");
    assert!(
        text.contains("Prefix : fd07:4::/64 On-link : Yes Autonomous address conf.: Yes"),
        "{text}"
    );
}

#[test]
fn the_agent_advertises_unasked_to_every_port() {
    require_root!();
    let lab = slaac_lab();
    let t = lab.vm("t");
    // t sends no solicitation: what it hears is unsolicited, to all nodes.
    t.sh("sysctl -qw net.ipv6.conf.default.router_solicitations=0")
        .unwrap();
    let from_router = |f: &[u8]| {
        frame::ipv6(f).is_some_and(|(_, dst, next)| next == 58 && dst == lab::pkt::v6("ff02::1"))
            && f.get(54) == Some(&134)
            && frame::src_mac(f) == lab::pkt::mac("fa:16:3e:31:01:02")
    };
    // A port that appears (here its tap is re-created, as when its VM
    // reboots) gets an advertisement at once and another 16 s later (the
    // initial ones); later ones follow every 30 to 100 s.
    lab.replug("t").unwrap();
    let cap = t.capture().unwrap();
    cap.wait_for(WAIT, from_router)
        .expect("an advertisement as the port came back");
    let second = cap.wait_for(Duration::from_secs(25), from_router);
    assert!(
        second.is_some(),
        "the next initial advertisement; ports: {}\nagent:\n{}",
        lab.show_ports().map(|v| v.to_string()).unwrap_or_default(),
        lab.agent_log()
    );
}

const MAC_M1: &str = "fa:16:3e:32:00:0b";
const MAC_M2: &str = "fa:16:3e:32:00:0c";
const MAC_K: &str = "fa:16:3e:32:00:0a";
/// The VRRP address m1 and m2 share, the router's nexthop for `BEHIND`.
const NEXTHOP_VIP: &str = "10.32.2.100";
/// An address inside the prefix behind the VIP (each member holds it).
const BEHIND: &str = "10.99.0.1";

/// A classic HA pattern: router r2 routes 10.99.0.0/24 through the VIP
/// that m1 and m2 (net2, 10.32.2.0/24) share; client k is on net1
/// (10.32.1.0/24). Both members serve the prefix (BEHIND on their
/// loopback, the prefix as a pair so that they may answer from it).
fn static_route_lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("k", MAC_K), ("m1", MAC_M1), ("m2", MAC_M2)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (k, m1, m2) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let pk = port(k, "net1", &[("s1", "10.32.1.10")]);
    let mut p1 = port(m1, "net2", &[("s2", "10.32.2.11")]);
    let mut p2 = port(m2, "net2", &[("s2", "10.32.2.12")]);
    for p in [&mut p1, &mut p2] {
        p["allowed_address_pairs"] = json!([pair(NEXTHOP_VIP, None), pair("10.99.0.0/24", None)]);
    }
    let (mut r2, r2_ports) = router(
        "r2",
        &[
            ("net1", "fa:16:3e:32:01:01", &[("s1", "10.32.1.1")]),
            ("net2", "fa:16:3e:32:01:02", &[("s2", "10.32.2.1")]),
        ],
    );
    r2["routes"] = json!([{ "destination": "10.99.0.0/24", "nexthop": NEXTHOP_VIP }]);
    let mut ports = vec![pk, p1, p2];
    ports.extend(r2_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.32.1.0/24", Some("10.32.1.1")),
            subnet("s2", "net2", "10.32.2.0/24", Some("10.32.2.1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r2]);
    k.sh("ip addr add 10.32.1.10/24 dev eth0 && ip route add default via 10.32.1.1")
        .unwrap();
    for (vm, ip) in [(m1, "10.32.2.11"), (m2, "10.32.2.12")] {
        // ARP from the interface's own address, not from BEHIND.
        vm.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip route add default via 10.32.2.1 && \
             ip addr add {BEHIND}/32 dev lo && sysctl -qw net.ipv4.conf.all.arp_announce=2"
        ))
        .unwrap();
    }
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn a_static_route_through_a_vip_follows_the_active_member_across_a_failover() {
    require_root!();
    let lab = static_route_lab();
    let (k, m1, m2) = (lab.vm("k"), lab.vm("m1"), lab.vm("m2"));
    let to_behind = |f: &[u8]| {
        frame::ipv4(f)
            .is_some_and(|(s, d, p)| s == [10, 32, 1, 10] && d == [10, 99, 0, 1] && p == 1)
    };
    let (cap1, cap2) = (m1.capture().unwrap(), m2.capture().unwrap());
    // Nobody has claimed the VIP yet: routed to every member, each
    // addressed to its own MAC, like other shared-address traffic.
    k.sh(&format!("ping -n -c 1 -W 1 {BEHIND} >/dev/null; true"))
        .unwrap();
    let f1 = cap1.wait_for(Duration::from_secs(2), to_behind);
    let f2 = cap2.wait_for(Duration::from_secs(2), to_behind);
    let (f1, f2) = (f1.expect("m1 got it"), f2.expect("m2 got it"));
    assert_eq!(&f1[0..6], &lab::pkt::mac(MAC_M1));
    assert_eq!(&f2[0..6], &lab::pkt::mac(MAC_M2));
    assert_eq!(f1[22], 63, "TTL decremented by the router");
    // `dataplane trace` names the static route and where its nexthop is.
    let out = lab
        .dataplane(&["trace", "k", "--dst", BEHIND, "--json"])
        .output()
        .unwrap();
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["route"]["via"], "10.99.0.0/24 via 10.32.2.100", "{t}");
    assert!(
        t["route"]["to"].as_str().unwrap().contains("10.32.2.0/24"),
        "{t}"
    );
    assert_eq!(
        t["deliveries"].as_array().unwrap().len(),
        2,
        "both members: {t}"
    );
    let out = lab
        .dataplane(&["trace", "k", "--dst", BEHIND])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("route: router r2: 10.99.0.0/24 via 10.32.2.100 -> subnet s2"),
        "{text}"
    );

    // Real keepalived: m1 (priority 200) becomes master and announces the
    // VIP; the route's traffic goes to m1 alone.
    let dir = lab.dir.path();
    lab::vrrp::keepalived(dir, m1, 52, 200, NEXTHOP_VIP, false).unwrap();
    lab::vrrp::keepalived(dir, m2, 52, 100, NEXTHOP_VIP, false).unwrap();
    let active = |vm: &Vm| lab.active_member(NEXTHOP_VIP).as_deref() == Some(vm.port_id.as_str());
    wait_for(
        Duration::from_secs(20),
        "m1 as the VIP's active member",
        || lab::vrrp::holds(m1, NEXTHOP_VIP) && active(m1),
    )
    .unwrap();
    let only = |to: &Vm| {
        cap1.drain();
        cap2.drain();
        k.reaches(BEHIND, WAIT).unwrap();
        assert!(k.ping(BEHIND, 3), "the prefix behind the VIP answers");
        let (n1, n2) = (
            cap1.count(Duration::from_millis(300), to_behind),
            cap2.count(Duration::from_millis(300), to_behind),
        );
        let (want, other) = if to.name == "m1" { (n1, n2) } else { (n2, n1) };
        assert!(
            want >= 3 && other == 0,
            "m1 got {n1}, m2 got {n2}; {} expected",
            to.name
        );
    };
    only(m1);

    // m1's keepalived stops (by its PID): m2 takes the VIP over, its
    // gratuitous ARP moves the active member, and the route follows.
    let pid = std::fs::read_to_string(dir.join("m1.pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(
        Duration::from_secs(20),
        "m2 as the VIP's active member",
        || lab::vrrp::holds(m2, NEXTHOP_VIP) && active(m2),
    )
    .unwrap();
    only(m2);
}

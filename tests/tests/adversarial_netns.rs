//! A tenant attacking its neighbours from its own VM, with real tools
//! (scapy, arping, hping3): each attack is dropped and counted with its reason, and
//! the legitimate traffic of the other VMs running meanwhile is untouched.
//!
//! `m1` and `m2` share the VIP 10.12.0.100 (a pair, as keepalived);
//! `x` is the attacker, an ordinary port on the same network.

use std::time::Duration;

use lab::{
    lab::{Lab, WAIT, ping_result, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::json;

const MAC_M1: &str = "fa:16:3e:a0:00:01";
const MAC_M2: &str = "fa:16:3e:a0:00:02";
const MAC_X: &str = "fa:16:3e:a0:00:0f";

fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac, ip) in [
        ("m1", MAC_M1, "10.12.0.11"),
        ("m2", MAC_M2, "10.12.0.12"),
        ("x", MAC_X, "10.12.0.66"),
    ] {
        lab.add_vm(name, mac).unwrap();
        lab.vm(name)
            .sh(&format!("ip addr add {ip}/24 dev eth0"))
            .unwrap();
    }
    let (m1, m2, x) = (lab.vm("m1"), lab.vm("m2"), lab.vm("x"));
    let mut p1 = port(m1, "net", &[("v4", "10.12.0.11")]);
    p1["allowed_address_pairs"] = json!([pair("10.12.0.100", None)]);
    let mut p2 = port(m2, "net", &[("v4", "10.12.0.12")]);
    p2["allowed_address_pairs"] = json!([pair("10.12.0.100", None)]);
    let px = port(x, "net", &[("v4", "10.12.0.66")]);
    let cfg = config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.12.0.0/24", None)],
        vec![p1, p2, px],
    );
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn a_non_member_cannot_take_a_shared_address() {
    require_root!();
    let lab = lab();
    let (m1, x) = (lab.vm("m1"), lab.vm("x"));
    m1.sh("arping -U -c 1 -w 1 -I eth0 -S 10.12.0.100 10.12.0.100; true")
        .unwrap();
    assert_eq!(
        lab.active_member("10.12.0.100").as_deref(),
        Some(m1.port_id.as_str())
    );
    // x announces the VIP every way it can: gratuitous ARP, ARP reply,
    // traffic from it. None of it leaves x's port, and m1 stays active.
    let before = lab.drops(x, "arp_spa") + lab.drops(x, "ipv4_src");
    x.sh("arping -U -c 1 -w 1 -I eth0 -S 10.12.0.100 10.12.0.100; true")
        .unwrap();
    x.scapy(&format!(
        "sendp([Ether(src=MAC, dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc=MAC, psrc='10.12.0.100', pdst='10.12.0.100')] * 2, iface=IFACE)\n\
         sendp(Ether(src=MAC, dst='{MAC_M1}')/ARP(op=2, hwsrc=MAC, psrc='10.12.0.100', hwdst='{MAC_M1}', pdst='10.12.0.11'), iface=IFACE)\n\
         sendp(Ether(src=MAC, dst='ff:ff:ff:ff:ff:ff')/IP(src='10.12.0.100', dst='10.12.0.255')/UDP(sport=1, dport=2), iface=IFACE)"
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let after = lab.drops(x, "arp_spa") + lab.drops(x, "ipv4_src");
    assert_eq!(after - before, 5, "every claim dropped and counted");
    assert_eq!(
        lab.active_member("10.12.0.100").as_deref(),
        Some(m1.port_id.as_str())
    );
}

#[test]
fn mac_flooding_and_arp_poisoning_disturb_nobody() {
    require_root!();
    let lab = lab();
    let (m1, m2, x) = (lab.vm("m1"), lab.vm("m2"), lab.vm("x"));
    // m1 pings m2 every 20 ms while x attacks.
    let out = lab.ping_in_background(m1, "10.12.0.12", 150);
    // 2000 frames from random source MACs (a switch's table would fill;
    // here nothing is learned from traffic), and forged ARP replies telling
    // m1 that m2's address is at x's MAC.
    x.scapy(
        "from scapy.volatile import RandMAC\n\
         frames = [Ether(src=str(RandMAC()), dst='ff:ff:ff:ff:ff:ff')/IP(src='10.12.0.66', dst='10.12.0.255')/UDP() for _ in range(2000)]\n\
         sendp(frames, iface=IFACE)",
    )
    .unwrap();
    x.scapy(&format!(
        "sendp([Ether(src=MAC, dst='{MAC_M1}')/ARP(op=2, hwsrc=MAC, psrc='10.12.0.12', hwdst='{MAC_M1}', pdst='10.12.0.11')] * 20, iface=IFACE)"
    ))
    .unwrap();
    assert_eq!(ping_result(&out), (150, 150), "m1's pings suffered");
    // RandMAC can produce x's own MAC or a multicast one only by a 2^-47
    // chance; every frame is a src_mac drop.
    assert!(
        lab.drops(x, "src_mac") >= 1990,
        "{}",
        lab.drops(x, "src_mac")
    );
    assert_eq!(lab.drops(x, "arp_spa"), 20);
    let neigh = m1.sh("ip neigh show 10.12.0.12").unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
    assert!(!neigh.contains(MAC_X), "m1 was poisoned: {neigh}");
    let _ = m2;
}

#[test]
fn tiny_first_fragments_cannot_hide_the_transport_header() {
    require_root!();
    let lab = lab();
    let (m1, x) = (lab.vm("m1"), lab.vm("x"));
    // A UDP first fragment too short for the ports (which port security
    // needs for DHCP) is dropped at the sender's port.
    let before = lab.drops(x, "ip_fragment");
    x.scapy(&format!(
        "p = IP(src='10.12.0.66', dst='10.12.0.11', flags='MF', frag=0, proto=17)/Raw(b'\\x00\\x43')\n\
         sendp(Ether(src=MAC, dst='{MAC_M1}')/p, iface=IFACE)"
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.drops(x, "ip_fragment"), before + 1);
    // A TCP first fragment of 8 bytes holds the ports but not the flags
    // (the tiny-fragment attack of RFC 1858): security groups cannot judge
    // it, so it is dropped before delivery, as malformed.
    let before = lab.drops(m1, "malformed");
    x.scapy(&format!(
        "p = IP(src='10.12.0.66', dst='10.12.0.11', flags='MF', frag=0, proto=6)/Raw(b'\\x00\\x50\\x00\\x50\\x00\\x00\\x00\\x00')\n\
         sendp(Ether(src=MAC, dst='{MAC_M1}')/p, iface=IFACE)"
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.drops(m1, "malformed"), before + 1);
}

#[test]
fn hping3_spoofing_dhcp_and_tiny_fragments_are_counted_and_harm_nobody() {
    require_root!();
    let lab = lab();
    let (m1, x) = (lab.vm("m1"), lab.vm("x"));
    let out = lab.ping_in_background(m1, "10.12.0.12", 150);
    let m2 = lab.vm("m2");
    // Resolved first, so that x's kernel queues nothing while asking.
    assert!(x.ping("10.12.0.12", 1));
    let (src0, dhcp0, frag0) = (
        lab.drops(x, "ipv4_src"),
        lab.drops(x, "dhcp_server"),
        lab.drops(m2, "malformed"),
    );
    // ICMP from random sources, SYNs from m1's address, a DHCP server's
    // offers, SYNs cut into 8-byte fragments (the first carries the ports
    // but not the TCP flags: RFC 1858's tiny fragment, which security
    // groups cannot judge: dropped before m2, as malformed).
    for cmd in [
        "hping3 -1 --rand-source -c 300 -i u2000 10.12.0.12",
        "hping3 -S -a 10.12.0.11 -p 80 -c 100 -i u2000 10.12.0.12",
        "hping3 --udp -s 67 -k -p 68 -c 50 -i u2000 10.12.0.255",
        "hping3 -S -p 80 -f --mtu 8 -c 20 -i u5000 10.12.0.12",
    ] {
        let r = x.sh(&format!("{cmd} 2>&1; true")).unwrap();
        assert!(
            !String::from_utf8_lossy(&r.stdout).contains("command not found"),
            "hping3 missing"
        );
    }
    // The senders have returned; the counters may trail them a little.
    wait_for(WAIT, "every spoofed source counted", || {
        lab.drops(x, "ipv4_src") - src0 >= 400
    })
    .unwrap();
    assert_eq!(lab.drops(x, "ipv4_src") - src0, 400, "spoofed sources");
    assert_eq!(lab.drops(x, "dhcp_server") - dhcp0, 50, "DHCP offers");
    assert_eq!(
        lab.drops(m2, "malformed") - frag0,
        20,
        "tiny first fragments: {}",
        lab.port(m2).unwrap()
    );
    assert_eq!(ping_result(&out), (150, 150), "m1's pings suffered");
}

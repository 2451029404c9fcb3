//! Port security with real tools: VMs are namespaces behind veth "taps",
//! the datapath carries their traffic (no bridge), and each rule is tried
//! with a legitimate packet that must arrive and a spoofed one that must
//! not, observed on the receiving VM and in the sender's drop counters.
//!
//! Topology (one network, 10.2.0.0/24 and fd02::/64):
//! - `a`: port security on; fixed 10.2.0.10 and fd02::10; pairs 10.2.0.100
//!   (no MAC), 10.2.1.0/28 (a prefix, no MAC), 10.2.0.200 with its own MAC
//!   VMAC, and fd02::100 (no MAC).
//! - `r`: the receiver; port security off so that it sees whatever the
//!   datapath lets through; fixed 10.2.0.20 and fd02::20.
//! - `o`: port security off; used as a sender that may spoof.

use std::time::Duration;

use lab::{
    capture::{Capture, frame},
    lab::{Lab, Vm},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::json;

const MAC_A: &str = "fa:16:3e:20:00:0a";
const MAC_R: &str = "fa:16:3e:20:00:20";
const MAC_O: &str = "fa:16:3e:20:00:30";
/// The pair 10.2.0.200's own MAC (keepalived's use_vmac style).
const VMAC: &str = "fa:16:3e:20:00:99";
/// A MAC no port may use.
const FOREIGN: &str = "fa:16:3e:66:66:66";

/// How long to watch the receiver for a packet that must not arrive.
const QUIET: Duration = Duration::from_millis(1500);
const ARRIVE: Duration = Duration::from_secs(3);

fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("a", MAC_A), ("r", MAC_R), ("o", MAC_O)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, r, o) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let mut pa = port(a, "net", &[("v4", "10.2.0.10"), ("v6", "fd02::10")]);
    pa["allowed_address_pairs"] = json!([
        pair("10.2.0.100", None),
        pair("10.2.1.0/28", None),
        pair("10.2.0.200", Some(VMAC)),
        pair("fd02::100", None),
    ]);
    let mut pr = port(r, "net", &[("v4", "10.2.0.20"), ("v6", "fd02::20")]);
    pr["port_security_enabled"] = json!(false);
    let mut po = port(o, "net", &[("v4", "10.2.0.30")]);
    po["port_security_enabled"] = json!(false);
    let cfg = config(
        vec![network("net")],
        vec![
            subnet("v4", "net", "10.2.0.0/24", Some("10.2.0.1")),
            subnet("v6", "net", "fd02::/64", None),
        ],
        vec![pa, pr, po],
    );
    r.sh(
        "ip addr add 10.2.0.20/24 dev eth0 && ip -6 addr add fd02::20/64 dev eth0 nodad \
         && ip route add 10.2.1.0/24 dev eth0",
    )
    .unwrap();
    lab.start(&cfg).unwrap();
    lab
}

/// Drop counters of `vm` for `reason`, read before and after `f`.
fn drops_during(lab: &Lab, vm: &Vm, reason: &str, f: impl FnOnce()) -> u64 {
    let before = lab.drops(vm, reason);
    f();
    lab.drops(vm, reason) - before
}

fn ipv4_src_is(f: &[u8], src: [u8; 4]) -> bool {
    frame::ipv4(f).is_some_and(|(s, _, _)| s == src)
}

fn ipv6_src_is(f: &[u8], src: [u8; 16]) -> bool {
    frame::ipv6(f).is_some_and(|(s, _, _)| s == src)
}

fn v4(s: &str) -> [u8; 4] {
    lab::pkt::v4(s)
}

fn v6(s: &str) -> [u8; 16] {
    lab::pkt::v6(s)
}

/// ICMPv6 (type, target) of a neighbour solicitation or advertisement.
fn nd(f: &[u8]) -> Option<(u8, [u8; 16])> {
    let (_, _, next) = frame::ipv6(f)?;
    if next != 58 || f.len() < 78 {
        return None;
    }
    Some((f[54], f[62..78].try_into().ok()?))
}

/// Sends one frame from `vm` with scapy; `pkt` is a scapy expression.
fn send(vm: &Vm, pkt: &str) {
    vm.scapy(&format!("sendp({pkt}, iface=IFACE)")).unwrap();
}

fn watch(lab: &Lab, name: &str) -> Capture {
    let c = lab.vm(name).capture().unwrap();
    c.drain();
    c
}

#[test]
fn ipv4_from_fixed_ips_and_pairs_arrives_and_spoofed_sources_do_not() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    a.sh("ip addr add 10.2.0.10/24 dev eth0").unwrap();
    assert!(a.ping("10.2.0.20", 3), "ping from the fixed IP");

    a.sh("ip addr add 10.2.0.100/32 dev eth0").unwrap();
    assert!(
        a.ping_from("10.2.0.20", Some("10.2.0.100"), 3),
        "ping from a pair without MAC"
    );
    a.sh("ip addr add 10.2.1.5/32 dev eth0 && ip addr add 10.2.1.15/32 dev eth0")
        .unwrap();
    assert!(
        a.ping_from("10.2.0.20", Some("10.2.1.5"), 3),
        "ping from inside the prefix pair 10.2.1.0/28"
    );
    assert!(
        a.ping_from("10.2.0.20", Some("10.2.1.15"), 3),
        "ping from the last address of the prefix pair"
    );

    // Spoofed sources: the VM knows the receiver's MAC so that the IP
    // packets themselves go out (no ARP needed), and must never arrive.
    a.sh(
        "ip neigh replace 10.2.0.20 lladdr fa:16:3e:20:00:20 dev eth0 nud permanent \
         && ip addr add 10.2.0.99/32 dev eth0 && ip addr add 10.2.1.16/32 dev eth0",
    )
    .unwrap();
    let cap = watch(&lab, "r");
    for spoofed in ["10.2.0.99", "10.2.1.16"] {
        let dropped = drops_during(&lab, a, "ipv4_src", || {
            assert!(
                !a.ping_from("10.2.0.20", Some(spoofed), 3),
                "ping from {spoofed} got a reply"
            );
        });
        assert!(dropped >= 3, "{spoofed}: {dropped} ipv4_src drops");
        assert_eq!(
            cap.count(QUIET, |f| ipv4_src_is(f, v4(spoofed))),
            0,
            "a packet from {spoofed} reached the receiver"
        );
    }
}

#[test]
fn a_pair_with_its_own_mac_binds_ip_and_mac_together() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    // As keepalived does with use_vmac: a macvlan carrying the pair's MAC.
    a.sh(&format!(
        "ip addr add 10.2.0.10/24 dev eth0 \
         && ip link add link eth0 name vmac address {VMAC} type macvlan mode private \
         && ip addr add 10.2.0.200/32 dev vmac && ip link set vmac up"
    ))
    .unwrap();
    assert!(
        a.ping_from("10.2.0.20", Some("vmac"), 3),
        "ping from the pair's IP and MAC through a macvlan"
    );

    let cap = watch(&lab, "r");
    let udp = |mac: &str, src: &str, tag: &str| {
        format!(
            "Ether(src='{mac}', dst='{MAC_R}')/IP(src='{src}', dst='10.2.0.20')\
             /UDP(sport=4000, dport=4000)/Raw(b'{tag}')"
        )
    };
    send(a, &udp(VMAC, "10.2.0.200", "pair-ok"));
    assert!(
        cap.wait_for(ARRIVE, |f| frame::contains(f, b"pair-ok"))
            .is_some(),
        "the pair's (IP, MAC) did not arrive"
    );
    let dropped = drops_during(&lab, a, "ipv4_src", || {
        send(a, &udp(MAC_A, "10.2.0.200", "pair-port-mac"));
        send(a, &udp(VMAC, "10.2.0.10", "fixed-vmac"));
    });
    assert_eq!(
        dropped, 2,
        "pair IP with the port MAC, fixed IP with the pair MAC"
    );
    assert_eq!(
        cap.count(QUIET, |f| frame::contains(f, b"pair-port-mac")
            || frame::contains(f, b"fixed-vmac")),
        0,
        "a mismatched (IP, MAC) reached the receiver"
    );
}

#[test]
fn ethernet_source_and_ethertype() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    a.sh("ip addr add 10.2.0.10/24 dev eth0").unwrap();
    assert!(a.ping("10.2.0.20", 2));

    let cap = watch(&lab, "r");
    // The VM changes its own MAC: every frame it sends is dropped.
    a.sh(&format!("ip link set eth0 address {FOREIGN}"))
        .unwrap();
    let dropped = drops_during(&lab, a, "src_mac", || {
        assert!(!a.ping("10.2.0.20", 3), "reply despite a foreign MAC");
    });
    assert!(dropped >= 1, "{dropped} src_mac drops");
    assert_eq!(
        cap.count(QUIET, |f| frame::src_mac(f) == lab::pkt::mac(FOREIGN)),
        0,
        "a frame from the foreign MAC reached the receiver"
    );
    a.sh(&format!("ip link set eth0 address {MAC_A}")).unwrap();

    // Another port's MAC is foreign too.
    let dropped = drops_during(&lab, a, "src_mac", || {
        send(
            a,
            &format!(
                "Ether(src='{MAC_O}', dst='{MAC_R}')/IP(src='10.2.0.10', dst='10.2.0.20')\
                 /UDP(sport=1, dport=2)/Raw(b'other-port-mac')"
            ),
        );
    });
    assert_eq!(dropped, 1);

    // Only IPv4, ARP and IPv6 pass; VLAN tags and anything else do not.
    let dropped = drops_during(&lab, a, "ethertype", || {
        send(
            a,
            &format!("Ether(src=MAC, dst='{MAC_R}', type=0x88b5)/Raw(b'local-experimental')"),
        );
        send(
            a,
            &format!(
                "Ether(src=MAC, dst='{MAC_R}')/Dot1Q(vlan=5)/IP(src='10.2.0.10', dst='10.2.0.20')\
                 /UDP(sport=1, dport=2)/Raw(b'vlan-tagged')"
            ),
        );
    });
    assert_eq!(dropped, 2);
    assert_eq!(
        cap.count(QUIET, |f| [
            "other-port-mac",
            "local-experimental",
            "vlan-tagged"
        ]
        .iter()
        .any(|m| frame::contains(f, m.as_bytes()))),
        0
    );
}

#[test]
fn arp_sender_must_be_allowed() {
    require_root!();
    let lab = lab();
    let (a, r) = (lab.vm("a"), lab.vm("r"));
    a.sh("ip addr add 10.2.0.10/24 dev eth0").unwrap();
    let cap = watch(&lab, "r");
    let arp_from = |spa: &str, tpa: &str| {
        let (spa, tpa) = (v4(spa), v4(tpa));
        move |f: &[u8]| {
            frame::arp(f).is_some_and(|frame::ArpFields(_, _, s, t)| s == spa && t == tpa)
        }
    };
    // Requests for an address nobody owns are flooded, so the receiver sees
    // every ARP request the datapath lets through.
    a.sh("arping -c 1 -w 1 -I eth0 10.2.0.77; true").unwrap();
    assert!(
        cap.wait_for(ARRIVE, arp_from("10.2.0.10", "10.2.0.77"))
            .is_some(),
        "ARP request from the fixed IP"
    );
    a.sh("arping -c 1 -w 1 -I eth0 -S 10.2.0.100 10.2.0.77; true")
        .unwrap();
    assert!(
        cap.wait_for(ARRIVE, arp_from("10.2.0.100", "10.2.0.77"))
            .is_some(),
        "ARP request from a pair"
    );
    // Gratuitous ARP for a pair, as keepalived sends when it takes a VIP.
    a.sh("arping -U -c 1 -w 1 -I eth0 -S 10.2.0.100 10.2.0.100; true")
        .unwrap();
    assert!(
        cap.wait_for(ARRIVE, arp_from("10.2.0.100", "10.2.0.100"))
            .is_some(),
        "gratuitous ARP for a pair"
    );
    // An ARP probe (sender 0.0.0.0) before using an address.
    a.sh("arping -0 -c 1 -w 1 -I eth0 10.2.0.78; true").unwrap();
    assert!(
        cap.wait_for(ARRIVE, arp_from("0.0.0.0", "10.2.0.78"))
            .is_some(),
        "ARP probe"
    );
    // A request the datapath answers itself: arping gets its reply.
    let out = a.sh("arping -c 1 -w 2 -I eth0 10.2.0.20").unwrap();
    assert!(
        out.status.success(),
        "no ARP reply for the receiver's address"
    );

    // Spoofed sender IP, with real arping.
    let dropped = drops_during(&lab, a, "arp_spa", || {
        a.sh("arping -c 2 -w 1 -I eth0 -S 10.2.0.99 10.2.0.79; true")
            .unwrap();
        a.sh("arping -U -c 1 -w 1 -I eth0 -S 10.2.0.20 10.2.0.20; true")
            .unwrap();
    });
    assert!(dropped >= 3, "{dropped} arp_spa drops");
    // Sender MAC that is not the Ethernet source; sender IP bound to
    // another MAC (the pair 10.2.0.200 belongs to VMAC).
    let arp = |esrc: &str, sha: &str, spa: &str, tpa: &str| {
        format!(
            "Ether(src='{esrc}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{sha}', psrc='{spa}', pdst='{tpa}')"
        )
    };
    let dropped = drops_during(&lab, a, "arp_sha", || {
        send(a, &arp(MAC_A, FOREIGN, "10.2.0.10", "10.2.0.80"));
        send(a, &arp(MAC_A, VMAC, "10.2.0.200", "10.2.0.80"));
    });
    assert_eq!(dropped, 2, "arp_sha drops");
    let dropped = drops_during(&lab, a, "arp_spa", || {
        send(a, &arp(MAC_A, MAC_A, "10.2.0.200", "10.2.0.81"));
        send(a, &arp(VMAC, VMAC, "10.2.0.10", "10.2.0.81"));
    });
    assert_eq!(dropped, 2, "arp_spa drops for (IP, MAC) across bindings");
    assert_eq!(
        cap.count(QUIET, |f| frame::arp(f).is_some_and(
            |frame::ArpFields(_, _, s, t)| {
                s == v4("10.2.0.99")
                    || (s == v4("10.2.0.20") && t == v4("10.2.0.20"))
                    || t == v4("10.2.0.80")
                    || t == v4("10.2.0.81")
            }
        )),
        0,
        "a spoofed ARP packet reached the receiver"
    );
    // The receiver's own answer for 10.2.0.20 was not poisoned either.
    let neigh = r.sh("ip neigh show 10.2.0.99").unwrap();
    assert!(String::from_utf8_lossy(&neigh.stdout).trim().is_empty());
}

/// dnsmasq serving `range` on `vm`'s eth0, in the background.
fn dnsmasq(lab: &Lab, vm: &Vm, range: &str, hosts: &str) {
    let dir = lab.dir.path().display();
    vm.sh(&format!(
        "dnsmasq --port=0 --interface=eth0 --bind-interfaces --user=root --group=root \
         --dhcp-range={range},1h {hosts} --dhcp-leasefile={dir}/{name}.leases \
         --pid-file={dir}/{name}.pid --log-facility={dir}/{name}.dnsmasq.log",
        name = vm.name
    ))
    .unwrap();
}

fn stop_dnsmasq(lab: &Lab, vm: &Vm) {
    let pid = lab.dir.path().join(format!("{}.pid", vm.name));
    if let Ok(pid) = std::fs::read_to_string(pid) {
        let _ = vm.sh(&format!("kill {}", pid.trim()));
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// Runs busybox's DHCP client on `vm`; the address it leased, if any.
fn udhcpc(vm: &Vm) -> Option<String> {
    let out = vm
        .ns
        .try_exec(&[
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-q",
            "-n",
            "-t",
            "3",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ])
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.split("lease of ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string)
}

#[test]
fn dhcp_client_passes_and_a_vm_cannot_be_a_dhcp_server() {
    require_root!();
    let lab = lab();
    let (a, r, o) = (lab.vm("a"), lab.vm("r"), lab.vm("o"));

    // A with port security runs a DHCP server: its offers never leave.
    a.sh("ip addr add 10.2.0.10/24 dev eth0").unwrap();
    dnsmasq(&lab, a, "10.2.0.150,10.2.0.160", "");
    let dropped = drops_during(&lab, a, "dhcp_server", || {
        assert_eq!(udhcpc(o), None, "o got a lease from a rogue server");
    });
    assert!(dropped >= 1, "{dropped} dhcp_server drops");
    stop_dnsmasq(&lab, a);
    a.sh("ip addr flush dev eth0").unwrap();

    // The receiver (port security off, as a network node's DHCP agent is)
    // serves a's fixed IP; a, with no address yet, gets it.
    dnsmasq(
        &lab,
        r,
        "10.2.0.150,10.2.0.160",
        &format!("--dhcp-host={MAC_A},10.2.0.10"),
    );
    assert_eq!(udhcpc(a).as_deref(), Some("10.2.0.10"), "a's lease");
    assert_eq!(lab.drops(a, "dhcp_server"), dropped);
    stop_dnsmasq(&lab, r);
}

#[test]
fn ipv6_sources_and_neighbour_discovery() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    a.sh(
        "ip -6 addr add fd02::10/64 dev eth0 nodad && ip -6 addr add fd02::100/128 dev eth0 nodad",
    )
    .unwrap();
    assert!(a.ping("fd02::20", 3), "ping from the fixed IPv6 address");
    assert!(
        a.ping_from("fd02::20", Some("fd02::100"), 3),
        "ping from an IPv6 pair"
    );
    let r_ll = "fe80::f816:3eff:fe20:20";
    assert!(
        a.ping_from(&format!("{r_ll}%eth0"), None, 3),
        "ping between link-local addresses"
    );

    // A spoofed source; the receiver's MAC is known so the packet goes out.
    a.sh(&format!(
        "ip -6 neigh replace fd02::20 lladdr {MAC_R} dev eth0 nud permanent \
         && ip -6 addr add fd02::99/128 dev eth0 nodad"
    ))
    .unwrap();
    let cap = watch(&lab, "r");
    let dropped = drops_during(&lab, a, "ipv6_src", || {
        assert!(!a.ping_from("fd02::20", Some("fd02::99"), 3));
    });
    assert!(dropped >= 3, "{dropped} ipv6_src drops");
    assert_eq!(cap.count(QUIET, |f| ipv6_src_is(f, v6("fd02::99"))), 0);

    // Neighbour discovery, crafted with scapy: an advertisement for our own
    // address arrives; one for an address the port may not use, or naming
    // another MAC, does not; nor do router advertisements or DHCPv6 offers.
    let na = |target: &str, lladdr: &str| {
        format!(
            "Ether(src=MAC, dst='33:33:00:00:00:01')/IPv6(src='fd02::10', dst='ff02::1', hlim=255)\
             /ICMPv6ND_NA(tgt='{target}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{lladdr}')"
        )
    };
    send(a, &na("fd02::10", MAC_A));
    assert!(
        cap.wait_for(ARRIVE, |f| nd(f) == Some((136, v6("fd02::10"))))
            .is_some(),
        "unsolicited NA for the fixed address"
    );
    let dropped = drops_during(&lab, a, "nd_target", || {
        send(a, &na("fd02::99", MAC_A));
        send(a, &na("fd02::20", MAC_A));
    });
    assert_eq!(dropped, 2, "nd_target drops");
    let dropped = drops_during(&lab, a, "nd_lladdr", || {
        send(a, &na("fd02::10", FOREIGN));
        send(
            a,
            &format!(
                "Ether(src=MAC, dst='33:33:ff:00:00:20')/IPv6(src='fd02::10', dst='ff02::1:ff00:20', hlim=255)\
                 /ICMPv6ND_NS(tgt='fd02::20')/ICMPv6NDOptSrcLLAddr(lladdr='{FOREIGN}')"
            ),
        );
    });
    assert_eq!(dropped, 2, "nd_lladdr drops");
    let dropped = drops_during(&lab, a, "router_advert", || {
        send(
            a,
            "Ether(src=MAC, dst='33:33:00:00:00:01')/IPv6(src='fe80::f816:3eff:fe20:a', dst='ff02::1', hlim=255)\
             /ICMPv6ND_RA()",
        );
    });
    assert_eq!(dropped, 1, "router_advert drops");
    let dropped = drops_during(&lab, a, "dhcpv6_server", || {
        send(
            a,
            "Ether(src=MAC, dst='33:33:00:01:00:02')/IPv6(src='fe80::f816:3eff:fe20:a', dst='ff02::1:2')\
             /UDP(sport=547, dport=546)/DHCP6_Advertise()",
        );
    });
    assert_eq!(dropped, 1, "dhcpv6_server drops");
    assert_eq!(
        cap.count(QUIET, |f| {
            matches!(nd(f), Some((136, t)) if t != v6("fd02::10"))
                || matches!(nd(f), Some((135, _)))
                || matches!(nd(f), Some((134, _)))
                || (frame::ipv6(f).is_some_and(|(_, _, n)| n == 17)
                    && f.len() > 55
                    && f[54..56] == [2, 35])
        }),
        0,
        "a spoofed ND, RA or DHCPv6 packet reached the receiver"
    );
}

#[test]
fn port_security_off_lets_everything_through() {
    require_root!();
    let lab = lab();
    let o = lab.vm("o");
    o.sh("ip addr add 10.2.0.30/24 dev eth0 && ip addr add 10.2.0.99/32 dev eth0")
        .unwrap();
    assert!(o.ping("10.2.0.20", 2));
    assert!(
        o.ping_from("10.2.0.20", Some("10.2.0.99"), 2),
        "unlisted source"
    );
    let cap = watch(&lab, "r");
    send(
        o,
        &format!(
            "Ether(src='{FOREIGN}', dst='{MAC_R}')/IP(src='192.0.2.1', dst='10.2.0.20')\
             /UDP(sport=67, dport=68)/Raw(b'anything-goes')"
        ),
    );
    send(
        o,
        "Ether(src=MAC, dst='33:33:00:00:00:01')/IPv6(src='fe80::1', dst='ff02::1', hlim=255)\
         /ICMPv6ND_RA()/Raw(b'ra-goes-too')",
    );
    for marker in ["anything-goes", "ra-goes-too"] {
        assert!(
            cap.wait_for(ARRIVE, |f| frame::contains(f, marker.as_bytes()))
                .is_some(),
            "{marker} did not arrive"
        );
    }
    let stats = lab.port(o).unwrap();
    let drops: u64 = stats["stats"]["drops"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(drops, 0, "drops on a port without port security: {stats}");
}

#[test]
fn a_bad_config_attaches_nothing() {
    require_root!();
    let mut lab = Lab::new(false).unwrap();
    lab.add_vm("a", MAC_A).unwrap();
    let a = &lab.vms[0];
    let mut pa = port(a, "net", &[("v4", "10.2.0.10")]);
    pa["allowed_address_pairs"] = json!([pair("10.2.0.100", Some("01:00:5e:00:00:01"))]);
    let cfg = config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.2.0.0/24", None)],
        vec![pa],
    );
    let path = lab.write_config("bad.json", &cfg).unwrap();
    let out = lab
        .dataplane(&["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{err}");
    assert!(
        err.contains(&a.port_id) && err.contains("allowed_address_pairs[0].mac_address"),
        "the error names the port and field:\n{err}"
    );
    let link = lab.hv.ip(&["-d", "link", "show", "dev", &a.tap]).unwrap();
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "XDP attached after a rejected config"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/{}", lab.instance)).exists(),
        "pins left after a rejected config"
    );
}

//! Port security verdicts through BPF_PROG_TEST_RUN: every rule with a frame
//! that must pass and one that must be dropped, and the drop counted under
//! the right reason.

use lab::{
    pkt::{self, BROADCAST, link_local, mac, v4, v6},
    require_root,
    verdict::{Verdicts, XDP_DROP, XDP_REDIRECT, XDP_TX},
};
use serde_json::{Value, json};

const P: &str = "11111111-aaaa-4000-8000-000000000001";
const Q: &str = "22222222-bbbb-4000-8000-000000000002";
const OFF: &str = "33333333-cccc-4000-8000-000000000003";
const ANY: &str = "44444444-dddd-4000-8000-000000000004";

const MAC_P: &str = "fa:16:3e:00:00:01";
const MAC_Q: &str = "fa:16:3e:00:00:02";
/// The VRRP virtual MAC carried by P's prefix pair.
const VMAC: &str = "00:00:5e:00:01:01";
const MAC_ANY: &str = "fa:16:3e:00:00:04";
const MAC_ANY_PAIR: &str = "fa:16:3e:00:00:99";

fn config() -> Value {
    json!({
        "networks": [{ "id": "net" }],
        "subnets": [
            { "id": "v4", "network_id": "net", "cidr": "10.0.0.0/16", "gateway_ip": "10.0.0.1", "ip_version": 4 },
            { "id": "v6", "network_id": "net", "cidr": "fd00::/64", "ip_version": 6 },
        ],
        "ports": [
            {
                "id": P, "network_id": "net", "mac_address": MAC_P,
                "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.5" }, { "subnet_id": "v6", "ip_address": "fd00::5" }],
                "allowed_address_pairs": [
                    { "ip_address": "10.0.0.100" },
                    { "ip_address": "10.0.1.77/24", "mac_address": VMAC },
                    { "ip_address": "fd00::100" },
                ],
            },
            {
                "id": Q, "network_id": "net", "mac_address": MAC_Q,
                "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.6" }, { "subnet_id": "v6", "ip_address": "fd00::6" }],
            },
            {
                "id": OFF, "network_id": "net", "mac_address": "fa:16:3e:00:00:03",
                "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.7" }],
                "port_security_enabled": false,
            },
            {
                "id": ANY, "network_id": "net", "mac_address": MAC_ANY,
                "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.8" }],
                "allowed_address_pairs": [{ "ip_address": "0.0.0.0/0", "mac_address": MAC_ANY_PAIR }],
            },
        ],
    })
}

/// Runs `frame` from `port` and checks the verdict; for drops, checks that
/// exactly the counter of `reason` went up by one.
fn expect(v: &mut Verdicts, port: &str, frame: &[u8], want: u32, reason: Option<&str>, what: &str) {
    let before = reason.map(|r| v.drops(port, r));
    let got = v.run(frame).unwrap();
    assert_eq!(got, want, "{what}: verdict {got}, expected {want}");
    if let (Some(r), Some(b)) = (reason, before) {
        assert_eq!(v.drops(port, r), b + 1, "{what}: counter {r}");
    }
}

/// Allowed frames are forwarded (XDP_REDIRECT) or, for ARP and ND requests
/// the datapath answers itself, sent back as replies (XDP_TX).
fn pass(v: &mut Verdicts, port: &str, frame: &[u8], what: &str) {
    let drops = |v: &mut Verdicts| v.port(port).unwrap().stats.drops.values().sum::<u64>();
    let before = drops(v);
    let got = v.run(frame).unwrap();
    assert_eq!(drops(v), before, "{what}: a drop was counted");
    assert!(
        got == XDP_REDIRECT || got == XDP_TX,
        "{what}: verdict {got}, expected XDP_REDIRECT or XDP_TX"
    );
}

fn drop(v: &mut Verdicts, port: &str, frame: &[u8], reason: &str, what: &str) {
    expect(v, port, frame, XDP_DROP, Some(reason), what);
}

#[test]
fn ethernet_source_must_be_an_allowed_mac() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let (p, q) = (mac(MAC_P), mac(MAC_Q));
    pass(
        &mut v,
        P,
        &pkt::ping4(p, BROADCAST, v4("10.0.0.5"), v4("10.0.0.6")),
        "own MAC",
    );
    pass(
        &mut v,
        P,
        &pkt::ping4(mac(VMAC), BROADCAST, v4("10.0.1.9"), v4("10.0.0.6")),
        "pair MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::ping4(q, BROADCAST, v4("10.0.0.5"), v4("10.0.0.6")),
        "src_mac",
        "another port's MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::ping4(BROADCAST, p, v4("10.0.0.5"), v4("10.0.0.6")),
        "src_mac",
        "broadcast source",
    );
    drop(
        &mut v,
        P,
        &pkt::ping4(mac("01:00:5e:00:00:01"), p, v4("10.0.0.5"), v4("10.0.0.6")),
        "src_mac",
        "multicast source",
    );
}

#[test]
fn ipv4_source_must_be_fixed_or_a_pair_with_its_mac() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let (p, vmac) = (mac(MAC_P), mac(VMAC));
    let to = v4("10.0.0.6");
    pass(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.5"), to, 1000, 2000),
        "fixed IP",
    );
    pass(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.100"), to, 1000, 2000),
        "pair without MAC uses the port MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(vmac, BROADCAST, v4("10.0.0.100"), to, 1000, 2000),
        "ipv4_src",
        "pair IP with another allowed MAC",
    );
    pass(
        &mut v,
        P,
        &pkt::udp4(vmac, BROADCAST, v4("10.0.1.1"), to, 1000, 2000),
        "prefix pair, first address",
    );
    pass(
        &mut v,
        P,
        &pkt::udp4(vmac, BROADCAST, v4("10.0.1.254"), to, 1000, 2000),
        "prefix pair, last address",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.1.77"), to, 1000, 2000),
        "ipv4_src",
        "prefix pair with the port MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(vmac, BROADCAST, v4("10.0.2.1"), to, 1000, 2000),
        "ipv4_src",
        "just outside the prefix",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.6"), to, 1000, 2000),
        "ipv4_src",
        "another port's IP",
    );
    drop(
        &mut v,
        P,
        &pkt::tcp4(p, BROADCAST, v4("192.168.1.1"), to, 1000, 80),
        "ipv4_src",
        "foreign TCP source",
    );
}

#[test]
fn zero_prefix_pair_still_binds_its_mac() {
    require_root!();
    let mut v = Verdicts::new(&config(), ANY).unwrap();
    let (own, pair) = (mac(MAC_ANY), mac(MAC_ANY_PAIR));
    let to = v4("10.0.0.6");
    pass(
        &mut v,
        ANY,
        &pkt::udp4(pair, BROADCAST, v4("203.0.113.9"), to, 1, 2),
        "any IP from the pair's MAC",
    );
    pass(
        &mut v,
        ANY,
        &pkt::udp4(own, BROADCAST, v4("10.0.0.8"), to, 1, 2),
        "fixed IP from the port MAC",
    );
    drop(
        &mut v,
        ANY,
        &pkt::udp4(own, BROADCAST, v4("203.0.113.9"), to, 1, 2),
        "ipv4_src",
        "any IP from the port MAC",
    );
    drop(
        &mut v,
        ANY,
        &pkt::udp4(mac(MAC_Q), BROADCAST, v4("203.0.113.9"), to, 1, 2),
        "src_mac",
        "foreign MAC",
    );
    pass(
        &mut v,
        ANY,
        &pkt::arp(pair, 2, pair, v4("203.0.113.9"), v4("10.0.0.6")),
        "ARP from the pair's MAC",
    );
    drop(
        &mut v,
        ANY,
        &pkt::arp(own, 2, own, v4("203.0.113.9"), v4("10.0.0.6")),
        "arp_spa",
        "ARP for any IP from the port MAC",
    );
}

#[test]
fn arp_sender_must_match() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let (p, q, vmac) = (mac(MAC_P), mac(MAC_Q), mac(VMAC));
    pass(
        &mut v,
        P,
        &pkt::arp(p, 1, p, v4("10.0.0.5"), v4("10.0.0.6")),
        "request from fixed IP",
    );
    pass(
        &mut v,
        P,
        &pkt::arp(p, 2, p, v4("10.0.0.5"), v4("10.0.0.6")),
        "reply from fixed IP",
    );
    pass(
        &mut v,
        P,
        &pkt::arp(p, 1, p, v4("10.0.0.100"), v4("10.0.0.100")),
        "gratuitous ARP for a pair",
    );
    pass(
        &mut v,
        P,
        &pkt::arp(vmac, 1, vmac, v4("10.0.1.50"), v4("10.0.1.50")),
        "gratuitous ARP in a prefix pair with its MAC",
    );
    pass(
        &mut v,
        P,
        &pkt::arp(p, 1, p, v4("0.0.0.0"), v4("10.0.0.44")),
        "ARP probe",
    );
    drop(
        &mut v,
        P,
        &pkt::arp(p, 1, vmac, v4("10.0.1.50"), v4("10.0.0.6")),
        "arp_sha",
        "sender MAC differs from Ethernet source",
    );
    drop(
        &mut v,
        P,
        &pkt::arp(p, 2, p, v4("10.0.0.6"), v4("10.0.0.6")),
        "arp_spa",
        "gratuitous ARP for another port's IP",
    );
    drop(
        &mut v,
        P,
        &pkt::arp(q, 2, q, v4("10.0.0.6"), v4("10.0.0.5")),
        "src_mac",
        "ARP from another port's MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::arp(vmac, 2, vmac, v4("10.0.0.100"), v4("10.0.0.6")),
        "arp_spa",
        "pair IP with the wrong MAC",
    );
    // Hardware length 8: not Ethernet/IPv4 ARP.
    let mut bad = pkt::arp(p, 1, p, v4("10.0.0.5"), v4("10.0.0.6"));
    bad[18] = 8;
    drop(
        &mut v,
        P,
        &bad,
        "malformed",
        "ARP with a bogus hardware length",
    );
    let mut op = pkt::arp(p, 1, p, v4("10.0.0.5"), v4("10.0.0.6"));
    op[21] = 9;
    drop(&mut v, P, &op, "malformed", "ARP with an unknown operation");
    drop(
        &mut v,
        P,
        &pkt::raw(p, BROADCAST, 0x0806, &[0, 1, 8, 0]),
        "malformed",
        "truncated ARP",
    );
}

#[test]
fn dhcp_client_passes_and_dhcp_server_is_dropped() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let p = mac(MAC_P);
    pass(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, [0; 4], [255; 4], 68, 67),
        "DHCPDISCOVER from 0.0.0.0",
    );
    pass(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.5"), v4("10.0.0.2"), 68, 67),
        "DHCPREQUEST renewal",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, [0; 4], v4("10.0.0.2"), 68, 67),
        "ipv4_src",
        "0.0.0.0 to a unicast server",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, [0; 4], [255; 4], 1234, 67),
        "ipv4_src",
        "0.0.0.0 from a non-client port",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.5"), [255; 4], 67, 68),
        "dhcp_server",
        "DHCPOFFER from a VM",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.5"), v4("10.0.0.6"), 67, 68),
        "dhcp_server",
        "unicast DHCPACK from a VM",
    );
    drop(
        &mut v,
        P,
        &pkt::udp4(p, BROADCAST, v4("10.0.0.5"), v4("10.0.0.3"), 67, 67),
        "dhcp_server",
        "relay to a server",
    );
}

#[test]
fn ipv6_source_must_be_fixed_pair_or_link_local() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let (p, q, vmac) = (mac(MAC_P), mac(MAC_Q), mac(VMAC));
    let to = v6("fd00::6");
    pass(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, v6("fd00::5"), to),
        "fixed IPv6",
    );
    pass(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, v6("fd00::100"), to),
        "IPv6 pair",
    );
    pass(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, link_local(p), to),
        "link-local of the port MAC",
    );
    pass(
        &mut v,
        P,
        &pkt::ping6(vmac, BROADCAST, link_local(vmac), to),
        "link-local of a pair MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, link_local(vmac), to),
        "ipv6_src",
        "pair MAC's link-local from the port MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, link_local(q), to),
        "ipv6_src",
        "another port's link-local",
    );
    drop(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, v6("fd00::6"), to),
        "ipv6_src",
        "another port's IPv6",
    );
    drop(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, v6("fd00::"), to),
        "ipv6_src",
        "unspecified-looking foreign address",
    );
    drop(
        &mut v,
        P,
        &pkt::ping6(p, BROADCAST, [0; 16], to),
        "ipv6_src",
        "echo from ::",
    );
    pass(
        &mut v,
        P,
        &pkt::udp6(p, BROADCAST, link_local(p), v6("ff02::1:2"), 546, 547),
        "DHCPv6 solicit",
    );
    drop(
        &mut v,
        P,
        &pkt::udp6(p, BROADCAST, link_local(p), link_local(q), 547, 546),
        "dhcpv6_server",
        "DHCPv6 advertise from a VM",
    );
}

#[test]
fn neighbour_discovery_must_carry_allowed_addresses() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let (p, q) = (mac(MAC_P), mac(MAC_Q));
    let ll = link_local(p);
    // Duplicate address detection from ::.
    pass(
        &mut v,
        P,
        &pkt::ns(p, [0; 16], v6("fd00::5"), None),
        "DAD probe",
    );
    drop(
        &mut v,
        P,
        &pkt::ns(p, [0; 16], v6("fd00::5"), Some(p)),
        "nd_lladdr",
        "DAD probe with a source link-layer option",
    );
    // Solicitations.
    pass(
        &mut v,
        P,
        &pkt::ns(p, ll, v6("fd00::6"), Some(p)),
        "NS with own link-layer address",
    );
    pass(
        &mut v,
        P,
        &pkt::ns(p, ll, v6("fd00::6"), None),
        "NS without option",
    );
    drop(
        &mut v,
        P,
        &pkt::ns(p, ll, v6("fd00::6"), Some(q)),
        "nd_lladdr",
        "NS claiming another port's MAC",
    );
    // Advertisements.
    pass(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::5"), Some(p)),
        "NA for fixed address",
    );
    pass(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::100"), Some(p)),
        "NA for a pair",
    );
    pass(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::5"), None),
        "NA without option",
    );
    drop(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::6"), Some(p)),
        "nd_target",
        "NA for another port's address",
    );
    drop(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::5"), Some(q)),
        "nd_lladdr",
        "NA pointing at another port's MAC",
    );
    drop(
        &mut v,
        P,
        &pkt::na(p, ll, v6("fd00::5"), Some(mac(VMAC))),
        "nd_target",
        "NA binding the address to the wrong own MAC",
    );
    // Router advertisements and redirects.
    drop(
        &mut v,
        P,
        &pkt::ra(p, ll),
        "router_advert",
        "router advertisement",
    );
    let redirect = pkt::icmp6(p, BROADCAST, ll, link_local(q), 137, [0; 4], &[0; 32]);
    drop(&mut v, P, &redirect, "router_advert", "redirect");
    // Options must be well formed.
    let mut bad = pkt::na(p, ll, v6("fd00::5"), Some(p));
    let len_at = bad.len() - 7;
    bad[len_at] = 0;
    drop(&mut v, P, &bad, "malformed", "zero-length ND option");
    let mut two = pkt::lladdr_opt(2, p);
    two.extend(pkt::lladdr_opt(2, p));
    let mut body = v6("fd00::5").to_vec();
    body.extend(two);
    let dst = v6("ff02::1");
    let twice = pkt::icmp6(
        p,
        pkt::multicast_mac_v6(dst),
        ll,
        dst,
        136,
        [0x20, 0, 0, 0],
        &body,
    );
    drop(
        &mut v,
        P,
        &twice,
        "nd_lladdr",
        "two target link-layer options",
    );
}

#[test]
fn other_ethertypes_and_malformed_headers_are_dropped() {
    require_root!();
    let mut v = Verdicts::new(&config(), P).unwrap();
    let p = mac(MAC_P);
    let ok = pkt::udp4(p, BROADCAST, v4("10.0.0.5"), v4("10.0.0.6"), 1, 2);
    let mut vlan = ok[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    vlan.extend_from_slice(&ok[12..]);
    drop(&mut v, P, &vlan, "ethertype", "802.1Q tagged frame");
    drop(
        &mut v,
        P,
        &pkt::raw(p, BROADCAST, 0x88cc, &[0; 46]),
        "ethertype",
        "LLDP",
    );
    drop(
        &mut v,
        P,
        &pkt::raw(p, BROADCAST, 0x8863, &[0; 46]),
        "ethertype",
        "PPPoE discovery",
    );
    let mut ihl = ok.clone();
    ihl[14] = 0x44;
    drop(&mut v, P, &ihl, "malformed", "IPv4 header length 4 words");
    let mut long = ok.clone();
    long[16] = 0x05;
    drop(
        &mut v,
        P,
        &long,
        "malformed",
        "IPv4 total length beyond the frame",
    );
    let mut ver = ok.clone();
    ver[14] = 0x65;
    drop(
        &mut v,
        P,
        &ver,
        "malformed",
        "IPv4 ethertype with version 6",
    );
    let six = pkt::ping6(p, BROADCAST, v6("fd00::5"), v6("fd00::6"));
    drop(&mut v, P, &six[..40], "malformed", "truncated IPv6 header");
}

#[test]
fn port_security_off_lets_everything_through() {
    require_root!();
    let mut v = Verdicts::new(&config(), OFF).unwrap();
    let q = mac(MAC_Q);
    pass(
        &mut v,
        OFF,
        &pkt::udp4(q, BROADCAST, v4("10.0.0.6"), v4("10.0.0.5"), 67, 68),
        "spoofed DHCP server",
    );
    pass(
        &mut v,
        OFF,
        &pkt::arp(q, 2, q, v4("10.0.0.5"), v4("10.0.0.6")),
        "ARP for another port's address",
    );
    pass(
        &mut v,
        OFF,
        &pkt::ra(q, link_local(q)),
        "router advertisement",
    );
    pass(
        &mut v,
        OFF,
        &pkt::raw(q, BROADCAST, 0x88cc, &[0; 46]),
        "LLDP",
    );
    let port = v.port(OFF).unwrap();
    assert!(
        port.stats.drops.is_empty(),
        "no drops expected: {:?}",
        port.stats.drops
    );
    assert_eq!(port.stats.rx_packets, 4);
    assert_eq!(port.stats.forwarded + port.stats.flooded, 4);
}

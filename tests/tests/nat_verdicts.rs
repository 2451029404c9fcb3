//! Byte-level checks of the external gateway's translation, through the
//! real programs with BPF_PROG_TEST_RUN: what leaves the uplink (source
//! translated, checksums still right, the next hop's MAC), what comes in
//! (destination translated back), ARP on the external network, and the
//! refusals. The VM and the uplink are both "ifindex 1" (test runs arrive
//! there): `from_vm` looks it up among ports, `from_uplink` among uplinks.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lab::{
    pkt::{self, checksum, mac, v4},
    require_root,
    topo::{network, subnet},
    verdict::{Verdicts, XDP_DROP, XDP_PASS, XDP_REDIRECT},
};
use serde_json::{Value, json};

const VM_MAC: &str = "fa:16:3e:50:00:14";
const WEB_MAC: &str = "fa:16:3e:50:00:1e";
const GW_INT_MAC: &str = "fa:16:3e:50:01:01";
const GW_EXT_MAC: &str = "fa:16:3e:50:02:01";
const UP_MAC: &str = "fa:16:3e:99:00:01";
const VM: &str = "10.50.0.20";
const WEB: &str = "10.50.0.30";
const GATEWAY: &str = "203.0.113.10";
const UPSTREAM: &str = "203.0.113.1";
const FAR: &str = "198.51.100.7";
const FIP: &str = "203.0.113.51";

/// vm (no floating IP) and web (floating IP 203.0.113.51) on net1, router
/// r1 with its gateway on "public" (SNAT on).
fn config() -> Value {
    let mut public = network("public");
    public["router:external"] = json!(true);
    public["provider:network_type"] = json!("flat");
    public["provider:physical_network"] = json!("public");
    let port = |id: &str, m: &str, ip: &str| {
        json!({
            "id": id, "network_id": "net1", "mac_address": m,
            "fixed_ips": [{ "subnet_id": "s1", "ip_address": ip }],
            "security_groups": ["open"], "tap_name": format!("tap-{id}"),
        })
    };
    json!({
        "networks": [network("net1"), public],
        "subnets": [
            subnet("s1", "net1", "10.50.0.0/24", Some("10.50.0.1")),
            subnet("public-s", "public", "203.0.113.0/24", Some(UPSTREAM)),
        ],
        "ports": [
            port("vm", VM_MAC, VM),
            port("web", WEB_MAC, WEB),
            { "id": "r1-if0", "network_id": "net1", "mac_address": GW_INT_MAC,
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "s1", "ip_address": "10.50.0.1" }] },
            { "id": "r1-gw", "network_id": "public", "mac_address": GW_EXT_MAC,
              "device_owner": "network:router_gateway", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }] },
        ],
        "routers": [{
            "id": "r1",
            "external_gateway_info": {
                "network_id": "public", "enable_snat": true,
                "external_fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }],
            },
        }],
        "floatingips": [{
            "id": "fip-web", "floating_network_id": "public", "floating_ip_address": FIP,
            "port_id": "web", "fixed_ip_address": WEB, "router_id": "r1",
        }],
        "security_groups": [lab::topo::open_group()],
    })
}

/// What a frame says, checked: (src, dst, TTL, source port, destination
/// port or ICMP id), after verifying the IPv4 header checksum and the
/// transport checksum.
fn read(frame: &[u8]) -> ([u8; 4], [u8; 4], u8, u16, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4: {frame:02x?}");
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let (sp, dp) = match &p.transport {
        Some(TransportSlice::Udp(u)) => {
            let want = u
                .to_header()
                .calc_checksum_ipv4(&h, u.payload())
                .expect("udp checksum");
            assert_eq!(u.checksum(), want, "UDP checksum");
            (u.source_port(), u.destination_port())
        }
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&h, t.payload())
                .expect("tcp checksum");
            assert_eq!(t.checksum(), want, "TCP checksum");
            (t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let want = i.icmp_type().calc_checksum(i.payload());
            assert_eq!(i.checksum(), want, "ICMP checksum");
            let b = i.slice();
            (0, u16::from_be_bytes([b[4], b[5]]))
        }
        other => panic!("unexpected transport {other:?}"),
    };
    (h.source, h.destination, h.time_to_live, sp, dp)
}

fn verdicts() -> Verdicts {
    Verdicts::with_uplinks(&config(), "vm", &[("public", 1)]).unwrap()
}

/// Teaches the datapath the upstream router's MAC, as its ARP reply to
/// the gateway would.
fn learn_upstream(v: &mut Verdicts) {
    let reply = pkt::arp(mac(UP_MAC), 2, mac(UP_MAC), v4(UPSTREAM), v4(GATEWAY));
    let mut reply = reply;
    reply[0..6].copy_from_slice(&mac(GW_EXT_MAC));
    let (action, _) = v.exchange("from_uplink", &reply).unwrap();
    assert_eq!(action, XDP_DROP, "a reply to the gateway is consumed");
}

#[test]
fn arp_on_the_uplink_is_answered_for_the_datapath_s_addresses_only() {
    require_root!();
    let mut v = verdicts();
    for (addr, what) in [(GATEWAY, "the gateway"), (FIP, "a floating IP")] {
        let req = pkt::arp(mac(UP_MAC), 1, mac(UP_MAC), v4(UPSTREAM), v4(addr));
        let (action, out) = v.exchange("from_uplink", &req).unwrap();
        assert_eq!(action, XDP_REDIRECT, "{what} answered");
        assert_eq!(&out[0..6], &mac(UP_MAC), "to the asker");
        assert_eq!(&out[6..12], &mac(GW_EXT_MAC), "from the gateway port");
        assert_eq!(&out[20..22], &[0, 2], "an ARP reply");
        assert_eq!(
            &out[22..28],
            &mac(GW_EXT_MAC),
            "{what} is at the gateway's MAC"
        );
        assert_eq!(&out[28..32], &v4(addr));
    }
    let other = pkt::arp(
        mac(UP_MAC),
        1,
        mac(UP_MAC),
        v4(UPSTREAM),
        v4("203.0.113.99"),
    );
    let (action, _) = v.exchange("from_uplink", &other).unwrap();
    assert_eq!(
        action, XDP_PASS,
        "someone else's address: the host's business"
    );
}

#[test]
fn snat_rewrites_the_source_and_back_with_checksums_intact() {
    require_root!();
    let mut v = verdicts();
    let s = mac(VM_MAC);
    let r = mac(GW_INT_MAC);
    // The upstream router is not known yet: the packet becomes an ARP
    // request for it, from the gateway.
    let out_udp = pkt::udp4(s, r, v4(VM), v4(FAR), 40000, 53);
    let (action, arp) = v.exchange("from_vm", &out_udp).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&arp[12..14], &[0x08, 0x06], "an ARP request: {arp:02x?}");
    assert_eq!(&arp[38..42], &v4(UPSTREAM), "for the upstream router");
    assert_eq!(&arp[28..32], &v4(GATEWAY), "from the gateway");
    assert_eq!(v.drops("vm", "ext_resolving"), 1);
    learn_upstream(&mut v);
    for (frame, proto) in [
        (pkt::udp4(s, r, v4(VM), v4(FAR), 40000, 53), "udp"),
        (pkt::tcp4(s, r, v4(VM), v4(FAR), 40001, 443), "tcp"),
        (pkt::ping4(s, r, v4(VM), v4(FAR)), "icmp"),
    ] {
        let (action, out) = v.exchange("from_vm", &frame).unwrap();
        assert_eq!(action, XDP_REDIRECT, "{proto}");
        assert_eq!(&out[0..6], &mac(UP_MAC), "{proto}: to the upstream router");
        assert_eq!(&out[6..12], &mac(GW_EXT_MAC), "{proto}: from the gateway");
        let (src, dst, ttl, sport, id) = read(&out);
        assert_eq!((src, dst, ttl), (v4(GATEWAY), v4(FAR), 63), "{proto}");
        let chosen = if proto == "icmp" { id } else { sport };
        assert!(chosen >= common::NAT_PORT_MIN, "{proto}: port {chosen}");
        // The same connection again: the same port.
        let (_, again) = v.exchange("from_vm", &frame).unwrap();
        let (_, _, _, sport2, id2) = read(&again);
        assert_eq!(
            (sport2, id2),
            (sport, id),
            "{proto}: one port per connection"
        );
        // The reply, from outside, goes back to the VM's address and port.
        let reply = match proto {
            "udp" => pkt::udp4(
                mac(UP_MAC),
                mac(GW_EXT_MAC),
                v4(FAR),
                v4(GATEWAY),
                53,
                sport,
            ),
            "tcp" => pkt::tcp4(
                mac(UP_MAC),
                mac(GW_EXT_MAC),
                v4(FAR),
                v4(GATEWAY),
                443,
                sport,
            ),
            _ => pkt::ping4_reply(mac(UP_MAC), mac(GW_EXT_MAC), v4(FAR), v4(GATEWAY), id),
        };
        let (action, back) = v.exchange("from_uplink", &reply).unwrap();
        assert_eq!(action, XDP_REDIRECT, "{proto}: the reply is routed in");
        assert_eq!(&back[0..6], &mac(VM_MAC), "{proto}: to the VM");
        let (src, dst, _, sport, dport) = read(&back);
        assert_eq!((src, dst), (v4(FAR), v4(VM)), "{proto}");
        match proto {
            "udp" => assert_eq!((sport, dport), (53, 40000)),
            "tcp" => assert_eq!((sport, dport), (443, 40001)),
            _ => assert_eq!(dport, 7, "the VM's own echo id"),
        }
    }
    // A reply to a port no connection holds goes nowhere.
    let stray = pkt::udp4(mac(UP_MAC), mac(GW_EXT_MAC), v4(FAR), v4(GATEWAY), 53, 9);
    let (action, _) = v.exchange("from_uplink", &stray).unwrap();
    assert_eq!(action, XDP_DROP);
}

#[test]
fn a_floating_ip_translates_both_ways_and_the_inside_cannot_be_spoofed() {
    require_root!();
    let mut v = verdicts();
    learn_upstream(&mut v);
    // From outside to the floating IP: to web's fixed IP, routed.
    let inbound = pkt::tcp4(mac(UP_MAC), mac(GW_EXT_MAC), v4(FAR), v4(FIP), 5555, 80);
    let (action, out) = v.exchange("from_uplink", &inbound).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&out[0..6], &mac(WEB_MAC), "to web");
    assert_eq!(&out[6..12], &mac(GW_INT_MAC), "from the router's interface");
    let (src, dst, ttl, sport, dport) = read(&out);
    assert_eq!(
        (src, dst, ttl, sport, dport),
        (v4(FAR), v4(WEB), 63, 5555, 80)
    );
    // A source on the router's inside, from outside: spoofed.
    let spoofed = pkt::tcp4(mac(UP_MAC), mac(GW_EXT_MAC), v4(VM), v4(FIP), 5555, 80);
    let (action, _) = v.exchange("from_uplink", &spoofed).unwrap();
    assert_eq!(action, XDP_DROP);
    // Addressed to another MAC: not the router's, left to the host.
    let other = pkt::tcp4(mac(UP_MAC), mac(UP_MAC), v4(FAR), v4(FIP), 5555, 80);
    assert_eq!(v.exchange("from_uplink", &other).unwrap().0, XDP_PASS);
}

#[test]
fn fragments_without_a_floating_ip_are_not_translated() {
    require_root!();
    let mut v = verdicts();
    learn_upstream(&mut v);
    let mut frag = pkt::udp4(mac(VM_MAC), mac(GW_INT_MAC), v4(VM), v4(FAR), 40000, 53);
    // More fragments follow; the header checksum is left stale on purpose
    // (the datapath does not check it).
    frag[20] |= 0x20;
    let (action, _) = v.exchange("from_vm", &frag).unwrap();
    assert_eq!(action, XDP_DROP);
    assert_eq!(v.drops("vm", "ip_fragment"), 1);
}

/// An ICMP error from `from` to `to` at the gateway port's MAC, as an
/// outside router sends it: type, code, the 4 bytes after the checksum
/// (the next-hop MTU of "fragmentation needed") and `quoted`, the start
/// of the IPv4 datagram it is about; both checksums right.
fn icmp_error(from: &str, to: &str, ty: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quoted);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0xc0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 62, 1, 0, 0]);
    ip.extend_from_slice(&v4(from));
    ip.extend_from_slice(&v4(to));
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = mac(GW_EXT_MAC).to_vec();
    f.extend_from_slice(&mac(UP_MAC));
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// An ICMP error as the VM receives it, checked: the outer IPv4 header's
/// checksum and the ICMP checksum over the whole message; returns the
/// outer (source, destination), type, code, the 4 bytes after the
/// checksum and the quoted bytes.
fn error_seen(frame: &[u8]) -> ([u8; 4], [u8; 4], u8, u8, [u8; 4], Vec<u8>) {
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4: {frame:02x?}");
    let ip = &frame[14..34];
    assert_eq!(ip[0], 0x45, "no options in these errors");
    assert_eq!(ip[9], 1, "ICMP");
    assert_eq!(checksum(ip), 0, "outer IPv4 header checksum: {frame:02x?}");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let icmp = &frame[34..14 + total];
    assert_eq!(checksum(icmp), 0, "ICMP checksum: {frame:02x?}");
    let a = |o: usize| <[u8; 4]>::try_from(&ip[o..o + 4]).unwrap();
    let rest = <[u8; 4]>::try_from(&icmp[4..8]).unwrap();
    (a(12), a(16), icmp[0], icmp[1], rest, icmp[8..].to_vec())
}

/// The VM's packet as the error quotes it once translated back: its IPv4
/// datagram as the VM sent it, with the TTL it left with (and the header
/// checksum for that TTL); every other byte is the VM's own.
fn as_sent(sent: &[u8], left_ttl: u8) -> Vec<u8> {
    let mut d = sent[14..].to_vec();
    d[8] = left_ttl;
    d[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&d[..20]);
    d[10..12].copy_from_slice(&c.to_be_bytes());
    d
}

#[test]
fn icmp_errors_about_snat_connections_come_back_to_the_vm_translated() {
    require_root!();
    let mut v = verdicts();
    learn_upstream(&mut v);
    let (s, r) = (mac(VM_MAC), mac(GW_INT_MAC));
    let time_exceeded = (11u8, 0u8, [0u8; 4]);
    let frag_needed = (3u8, 4u8, [0, 0, 0x05, 0x78]);
    // (what the VM sends, the error about it, how much of it is quoted)
    let cases = [
        (
            pkt::udp4(s, r, v4(VM), v4(FAR), 40000, 33434),
            time_exceeded,
            usize::MAX,
        ),
        (pkt::udp4(s, r, v4(VM), v4(FAR), 40002, 53), frag_needed, 28),
        (pkt::ping4(s, r, v4(VM), v4(FAR)), time_exceeded, usize::MAX),
        (pkt::ping4(s, r, v4(VM), v4(FAR)), frag_needed, 28),
        // TCP quoted whole (its checksum restored) and cut to 8 bytes (the
        // checksum not quoted: ports only).
        (
            pkt::tcp4(s, r, v4(VM), v4(FAR), 40001, 443),
            frag_needed,
            usize::MAX,
        ),
        (
            pkt::tcp4(s, r, v4(VM), v4(FAR), 40001, 443),
            time_exceeded,
            28,
        ),
    ];
    for (sent, (ty, code, rest), len) in cases {
        let (action, left) = v.exchange("from_vm", &sent).unwrap();
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(&left[26..30], &v4(GATEWAY), "left by SNAT");
        let datagram = &left[14..];
        let quoted = &datagram[..len.min(datagram.len())];
        let error = icmp_error(UPSTREAM, GATEWAY, ty, code, rest, quoted);
        let (action, back) = v.exchange("from_uplink", &error).unwrap();
        let what = format!("type {ty} code {code} about {:?}", &sent[23]);
        assert_eq!(action, XDP_REDIRECT, "{what}: routed in");
        assert_eq!(&back[0..6], &mac(VM_MAC), "{what}: to the VM");
        assert_eq!(&back[6..12], &mac(GW_INT_MAC), "{what}: from the router");
        let (src, dst, ty2, code2, rest2, quote) = error_seen(&back);
        assert_eq!((src, dst), (v4(UPSTREAM), v4(VM)), "{what}");
        assert_eq!((ty2, code2, rest2), (ty, code, rest), "{what}");
        assert_eq!(back[22], 61, "{what}: TTL decremented by the router");
        let want = as_sent(&sent, left[22]);
        assert_eq!(
            quote,
            want[..quote.len()],
            "{what}: the quoted packet is the VM's own"
        );
        assert_eq!(quote.len(), quoted.len(), "{what}: all of the quote");
    }
    assert_eq!(v.unattributed_drops("no_nat"), 0);
}

#[test]
fn icmp_errors_quoting_no_connection_of_the_gateway_are_dropped() {
    require_root!();
    let mut v = verdicts();
    learn_upstream(&mut v);
    let (s, r) = (mac(VM_MAC), mac(GW_INT_MAC));
    let (_, left) = v
        .exchange("from_vm", &pkt::udp4(s, r, v4(VM), v4(FAR), 40000, 33434))
        .unwrap();
    let real = left[14..].to_vec();
    let error = |quoted: &[u8]| icmp_error(UPSTREAM, GATEWAY, 11, 0, [0; 4], quoted);
    // The genuine error passes: the cases below differ from it in one way.
    assert_eq!(
        v.exchange("from_uplink", &error(&real)).unwrap().0,
        XDP_REDIRECT
    );
    let mut other_port = real.clone();
    other_port[20..22].copy_from_slice(&9u16.to_be_bytes());
    let mut other_peer = real.clone();
    other_peer[16..20].copy_from_slice(&v4("198.51.100.8"));
    let mut from_inside = real.clone();
    from_inside[12..16].copy_from_slice(&v4(VM));
    let mut other_proto = real.clone();
    other_proto[9] = 6;
    let no_nat = [
        (other_port, "a port no connection holds"),
        (other_peer, "another peer"),
        (from_inside, "a source that is not the gateway's"),
        (other_proto, "another protocol"),
    ];
    for (n, (quoted, what)) in no_nat.iter().enumerate() {
        let (action, _) = v.exchange("from_uplink", &error(quoted)).unwrap();
        assert_eq!(action, XDP_DROP, "{what}");
        assert_eq!(v.unattributed_drops("no_nat"), n as u64 + 1, "{what}");
    }
    // A wrong ICMP checksum: not translated (Linux's conntrack leaves it).
    let mut corrupt = error(&real);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(v.exchange("from_uplink", &corrupt).unwrap().0, XDP_DROP);
    assert_eq!(v.unattributed_drops("malformed"), 1);
    // A quote too short to hold the ports.
    assert_eq!(
        v.exchange("from_uplink", &error(&real[..24])).unwrap().0,
        XDP_DROP
    );
    assert_eq!(v.unattributed_drops("malformed"), 2);
}

#[test]
fn icmp_errors_about_a_floating_ip_s_packets_reach_its_fixed_ip() {
    require_root!();
    // Web sends here (the port test runs arrive on).
    let mut v = Verdicts::with_uplinks(&config(), "web", &[("public", 1)]).unwrap();
    learn_upstream(&mut v);
    let (web, r) = (mac(WEB_MAC), mac(GW_INT_MAC));
    let sent = pkt::udp4(web, r, v4(WEB), v4(FAR), 5353, 33434);
    let (action, left) = v.exchange("from_vm", &sent).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&left[26..30], &v4(FIP), "left as the floating IP");
    let error = icmp_error(UPSTREAM, FIP, 3, 4, [0, 0, 0x05, 0x78], &left[14..]);
    let (action, back) = v.exchange("from_uplink", &error).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(&back[0..6], &mac(WEB_MAC), "to web");
    let (src, dst, ty, code, _, quote) = error_seen(&back);
    assert_eq!((src, dst, ty, code), (v4(UPSTREAM), v4(WEB), 3, 4));
    assert_eq!(quote, as_sent(&sent, left[22]), "the quote is web's packet");
    // One that quotes a packet the floating IP did not send.
    let mut other = left[14..].to_vec();
    other[12..16].copy_from_slice(&v4(GATEWAY));
    let error = icmp_error(UPSTREAM, FIP, 3, 4, [0, 0, 0x05, 0x78], &other);
    assert_eq!(v.exchange("from_uplink", &error).unwrap().0, XDP_DROP);
    assert_eq!(v.unattributed_drops("no_nat"), 1);
}

#[test]
fn a_floating_ip_is_reached_from_inside_through_the_router_and_back() {
    require_root!();
    let mut v = verdicts();
    let (s, r) = (mac(VM_MAC), mac(GW_INT_MAC));
    // vm, without a floating IP, to web's: to web's fixed IP, from the
    // gateway's address with a port of its own (Neutron's SNAT of DNAT'ed
    // traffic), routed once (TTL 63); no uplink neighbour needed.
    for proto in ["udp", "icmp"] {
        let out = match proto {
            "udp" => pkt::udp4(s, r, v4(VM), v4(FIP), 40000, 5353),
            _ => pkt::ping4(s, r, v4(VM), v4(FIP)),
        };
        let (action, to_web) = v.exchange("from_vm", &out).unwrap();
        assert_eq!(action, XDP_REDIRECT, "{proto}");
        assert_eq!(&to_web[0..6], &mac(WEB_MAC), "{proto}: to web");
        assert_eq!(&to_web[6..12], &mac(GW_INT_MAC), "{proto}: from the router");
        let (src, dst, ttl, sport, id) = read(&to_web);
        assert_eq!((src, dst, ttl), (v4(GATEWAY), v4(WEB), 63), "{proto}");
        let chosen = if proto == "udp" { sport } else { id };
        assert!(chosen >= common::NAT_PORT_MIN, "{proto}: port {chosen}");
        // web's reply, to the gateway's address: back to vm, from the
        // floating IP vm addressed.
        let reply = match proto {
            "udp" => pkt::udp4(mac(WEB_MAC), r, v4(WEB), v4(GATEWAY), 5353, sport),
            _ => pkt::ping4_reply(mac(WEB_MAC), r, v4(WEB), v4(GATEWAY), id),
        };
        let (action, back) = v.exchange_from("from_vm", "web", &reply).unwrap();
        assert_eq!(action, XDP_REDIRECT, "{proto}: the reply");
        assert_eq!(&back[0..6], &mac(VM_MAC), "{proto}: to vm");
        let (src, dst, ttl, sport, dport) = read(&back);
        assert_eq!((src, dst, ttl), (v4(FIP), v4(VM), 63), "{proto}");
        match proto {
            "udp" => assert_eq!((sport, dport), (5353, 40000)),
            _ => assert_eq!(dport, 7, "vm's own echo id"),
        }
    }
    // web to its own floating IP: it appears as its floating IP (the
    // sender's floating IP first, as Neutron's float-snat).
    let own = pkt::udp4(mac(WEB_MAC), r, v4(WEB), v4(FIP), 5000, 5353);
    let (action, f) = v.exchange_from("from_vm", "web", &own).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    let (src, dst, _, sport, dport) = read(&f);
    assert_eq!((src, dst, sport, dport), (v4(FIP), v4(WEB), 5000, 5353));
    // To the gateway's address, of no connection: the router's own
    // address, which answers as its others do, from itself.
    let stray = pkt::udp4(s, r, v4(VM), v4(GATEWAY), 40000, 9);
    let (action, err) = v.exchange("from_vm", &stray).unwrap();
    assert_eq!(action, XDP_REDIRECT, "port unreachable");
    assert_eq!(&err[0..6], &mac(VM_MAC), "back to vm");
    let (src, dst, ty, code, _, quote) = error_seen(&err);
    assert_eq!((src, dst, ty, code), (v4(GATEWAY), v4(VM), 3, 3));
    assert_eq!(quote, stray[14..], "the packet as vm sent it");
    assert_eq!(v.drops("vm", "to_router"), 1);
    let ping = pkt::ping4(s, r, v4(VM), v4(GATEWAY));
    let (action, reply) = v.exchange("from_vm", &ping).unwrap();
    assert_eq!(action, XDP_REDIRECT, "echo reply");
    assert_eq!(&reply[0..6], &mac(VM_MAC));
    let (src, dst, ttl, _, id) = read(&reply);
    assert_eq!((src, dst, ttl, id), (v4(GATEWAY), v4(VM), 64, 7));
    let dir = v.dir();
    let stats = dataplane_agent::nat_view::stats(&dir).unwrap();
    assert_eq!(stats.hairpin, 5, "{stats:?}");
    assert_eq!(stats.snat_out + stats.floating_out, 0, "nothing left");
}

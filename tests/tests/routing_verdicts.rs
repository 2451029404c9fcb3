//! The router's own answers byte by byte, through BPF_PROG_TEST_RUN (the
//! real programs, tail calls included, on live maps; traced frames, so no
//! state changes and no rate limit): echo replies, and ICMP errors whose
//! headers, checksums and quoted packet follow RFC 792/1812 (IPv4: the
//! header and as much as fits 576 bytes) and RFC 4443 (IPv6: as much as
//! fits the minimum MTU, 1280 bytes), and the packets that get no error.

use dataplane_agent::{
    show,
    trace::{Probe, Trace},
};
use etherparse::PacketBuilder;
use lab::{
    pkt::{checksum, mac, v4, v6},
    require_root,
    verdict::Verdicts,
};
use serde_json::{Value, json};

const MAC_A: &str = "fa:16:3e:50:00:0a";
const MAC_B: &str = "fa:16:3e:50:00:0b";
const MAC_OFF: &str = "fa:16:3e:50:00:0c";
const GW1: &str = "fa:16:3e:50:01:01";
const GW2: &str = "fa:16:3e:50:01:02";

/// a on net1, b on net2 (MTU 1280), `off` on net1 without port security;
/// router r1 between them.
fn config() -> Value {
    let fixed = |pairs: &[(&str, &str)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(s, ip)| json!({ "subnet_id": s, "ip_address": ip }))
            .collect()
    };
    let open = json!({ "id": "open", "security_group_rules": [
        { "direction": "ingress" }, { "direction": "egress" },
        { "direction": "ingress", "ethertype": "IPv6" }, { "direction": "egress", "ethertype": "IPv6" },
    ]});
    json!({
        "networks": [{ "id": "net1" }, { "id": "net2", "mtu": 1280 }],
        "subnets": [
            { "id": "s1", "network_id": "net1", "cidr": "10.5.1.0/24", "gateway_ip": "10.5.1.1" },
            { "id": "s1v6", "network_id": "net1", "cidr": "fd05:1::/64", "gateway_ip": "fd05:1::1" },
            { "id": "s2", "network_id": "net2", "cidr": "10.5.2.0/24", "gateway_ip": "10.5.2.1" },
            { "id": "s2v6", "network_id": "net2", "cidr": "fd05:2::/64", "gateway_ip": "fd05:2::1" },
        ],
        "security_groups": [open],
        "routers": [{ "id": "r1" }],
        "ports": [
            { "id": "a", "network_id": "net1", "mac_address": MAC_A, "security_groups": ["open"],
              "fixed_ips": fixed(&[("s1", "10.5.1.10"), ("s1v6", "fd05:1::10")]) },
            { "id": "b", "network_id": "net2", "mac_address": MAC_B, "security_groups": ["open"],
              "fixed_ips": fixed(&[("s2", "10.5.2.10"), ("s2v6", "fd05:2::10")]) },
            { "id": "off", "network_id": "net1", "mac_address": MAC_OFF,
              "port_security_enabled": false,
              "fixed_ips": fixed(&[("s1", "10.5.1.11")]) },
            { "id": "r1-1", "network_id": "net1", "mac_address": GW1,
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": fixed(&[("s1", "10.5.1.1"), ("s1v6", "fd05:1::1")]) },
            { "id": "r1-2", "network_id": "net2", "mac_address": GW2,
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": fixed(&[("s2", "10.5.2.1"), ("s2v6", "fd05:2::1")]) },
        ],
    })
}

/// Traces each frame from port `from`; the traces in order.
fn traces(from: &str, frames: Vec<Vec<u8>>) -> Vec<Trace> {
    let mut v = Verdicts::on_veths(&config()).unwrap();
    let from = from.to_string();
    v.inside(move |dir| {
        let probe = Probe::open(dir)?;
        let ports = show::ports(dir)?;
        let port = ports.find(&from)?.clone();
        frames.iter().map(|f| probe.run(&ports, &port, f)).collect()
    })
    .unwrap()
}

/// Rewrites the checksum of the frame's 20-byte IPv4 header after an edit.
fn set_ipv4_checksum(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let sum = checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4 UDP frame from a to `dst` via the gateway, with `ttl`,
/// `payload` bytes and the DF bit as given.
fn udp4(dst: &str, ttl: u8, payload: usize, df: bool) -> Vec<u8> {
    let mut ip =
        etherparse::Ipv4Header::new(0, ttl, etherparse::IpNumber::UDP, v4("10.5.1.10"), v4(dst))
            .unwrap();
    ip.dont_fragment = df;
    let b = PacketBuilder::ethernet2(mac(MAC_A), mac(GW1))
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(40000, 33434);
    let body: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let mut out = Vec::new();
    b.write(&mut out, &body).unwrap();
    out
}

/// An IPv6 UDP frame from a to `dst` via the gateway.
fn udp6(dst: &str, hops: u8, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(mac(MAC_A), mac(GW1))
        .ipv6(v6("fd05:1::10"), v6(dst), hops)
        .udp(40000, 33434);
    let body: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let mut out = Vec::new();
    b.write(&mut out, &body).unwrap();
    out
}

/// Checks an IPv4 ICMP error the router sent about `sent` (a frame): its
/// headers, checksums and quote; returns (type, code, rest of header).
fn ipv4_error(t: &Trace, sent: &[u8], from: [u8; 4]) -> (u8, u8, [u8; 4]) {
    let e = &t.frames.1;
    assert_eq!(&e[0..6], &mac(MAC_A), "back to the sender");
    assert_eq!(&e[6..12], &mac(GW1), "from the gateway's MAC");
    assert_eq!(&e[12..14], &[0x08, 0x00]);
    let ip = &e[14..34];
    assert_eq!(ip[0], 0x45);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(e.len(), 14 + total, "no trailing bytes");
    assert_eq!((ip[8], ip[9]), (64, 1), "TTL 64, ICMP");
    assert_eq!(checksum(ip), 0, "IPv4 header checksum");
    assert_eq!(&ip[12..16], &from, "source");
    assert_eq!(&ip[16..20], &v4("10.5.1.10"), "to the packet's source");
    let icmp = &e[34..];
    assert_eq!(checksum(icmp), 0, "ICMP checksum");
    let datagram = &sent[14..];
    let inner_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let quote = inner_len.min(576 - 28);
    assert_eq!(total, 28 + quote, "as much as fits 576 bytes");
    assert_eq!(&icmp[8..], &datagram[..quote], "the packet as received");
    (icmp[0], icmp[1], icmp[4..8].try_into().unwrap())
}

/// As [`ipv4_error`] for ICMPv6, from `from`.
fn ipv6_error(t: &Trace, sent: &[u8], from: [u8; 16]) -> (u8, u8, [u8; 4]) {
    let e = &t.frames.1;
    assert_eq!(&e[0..6], &mac(MAC_A));
    assert_eq!(&e[6..12], &mac(GW1));
    assert_eq!(&e[12..14], &[0x86, 0xdd]);
    let ip = &e[14..54];
    assert_eq!(ip[0] >> 4, 6);
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    assert_eq!(e.len(), 54 + payload, "no trailing bytes");
    assert_eq!((ip[6], ip[7]), (58, 64), "ICMPv6, hop limit 64");
    assert_eq!(&ip[8..24], &from);
    assert_eq!(&ip[24..40], &v6("fd05:1::10"));
    let icmp = &e[54..];
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[8..40]);
    pseudo.extend_from_slice(&(payload as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(icmp);
    assert_eq!(checksum(&pseudo), 0, "ICMPv6 checksum");
    let datagram = &sent[14..];
    let quote = datagram.len().min(1280 - 48);
    assert_eq!(payload, 8 + quote, "as much as fits the minimum MTU");
    assert_eq!(&icmp[8..], &datagram[..quote]);
    (icmp[0], icmp[1], icmp[4..8].try_into().unwrap())
}

#[test]
fn echo_requests_to_router_addresses_are_answered_in_place() {
    require_root!();
    let ping4 = lab::pkt::ping4(mac(MAC_A), mac(GW1), v4("10.5.1.10"), v4("10.5.2.1"));
    let ping6 = lab::pkt::ping6(mac(MAC_A), mac(GW1), v6("fd05:1::10"), v6("fd05:1::1"));
    let t = traces("a", vec![ping4.clone(), ping6.clone()]);
    for (t, sent) in t.iter().zip([&ping4, &ping6]) {
        assert_eq!(t.verdict, "answered", "{t:?}");
        let r = &t.frames.1;
        assert_eq!(r.len(), sent.len());
        assert_eq!((&r[0..6], &r[6..12]), (&sent[6..12], &sent[0..6]));
    }
    let r = &t[0].frames.1;
    assert_eq!(&r[26..30], &v4("10.5.2.1"), "from the address pinged");
    assert_eq!(&r[30..34], &v4("10.5.1.10"));
    assert_eq!((r[22], r[34]), (64, 0), "TTL 64, echo reply");
    assert_eq!(checksum(&r[14..34]), 0);
    assert_eq!(checksum(&r[34..]), 0);
    let r = &t[1].frames.1;
    assert_eq!((r[21], r[54]), (64, 129));
    let mut pseudo = r[22..54].to_vec();
    pseudo.extend_from_slice(&((r.len() - 54) as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&r[54..]);
    assert_eq!(checksum(&pseudo), 0, "ICMPv6 checksum");
}

#[test]
fn errors_quote_the_packet_as_the_rfcs_say() {
    require_root!();
    let small = udp4("10.5.2.10", 1, 10, false);
    let mut padded = small.clone();
    padded.resize(60, 0xee);
    let big = udp4("10.5.2.10", 1, 1000, false);
    let no_route = udp4("192.0.2.1", 64, 10, false);
    let no_host = udp4("10.5.2.99", 64, 10, false);
    let to_router = udp4("10.5.2.1", 64, 10, false);
    let too_big = udp4("10.5.2.10", 64, 1300, true);
    let frames = vec![
        small.clone(),
        padded,
        big.clone(),
        no_route.clone(),
        no_host.clone(),
    ];
    let mut frames = frames;
    frames.extend([to_router.clone(), too_big.clone()]);
    let t = traces("a", frames);
    let gw = v4("10.5.1.1");
    let time_exceeded = (11, 0, [0; 4]);
    for (i, sent) in [&small, &small, &big].into_iter().enumerate() {
        assert_eq!(t[i].verdict, "dropped");
        assert_eq!(t[i].reason.as_deref(), Some("ttl_exceeded"));
        assert_eq!(ipv4_error(&t[i], sent, gw), time_exceeded, "frame {i}");
    }
    assert_eq!(t[3].reason.as_deref(), Some("no_route"));
    assert_eq!(
        ipv4_error(&t[3], &no_route, gw),
        (3, 0, [0; 4]),
        "net unreachable"
    );
    assert_eq!(
        ipv4_error(&t[4], &no_host, gw),
        (3, 1, [0; 4]),
        "host unreachable"
    );
    assert_eq!(t[5].reason.as_deref(), Some("to_router"));
    assert_eq!(
        ipv4_error(&t[5], &to_router, v4("10.5.2.1")),
        (3, 3, [0; 4]),
        "port unreachable, from the address probed"
    );
    assert_eq!(t[6].reason.as_deref(), Some("mtu_exceeded"));
    assert_eq!(
        ipv4_error(&t[6], &too_big, gw),
        (3, 4, [0, 0, 0x05, 0x00]),
        "fragmentation needed, next-hop MTU 1280"
    );
}

#[test]
fn ipv6_errors_quote_up_to_the_minimum_mtu() {
    require_root!();
    let small = udp6("fd05:2::10", 1, 10);
    let big = udp6("fd05:2::10", 1, 1400);
    let no_host = udp6("fd05:2::99", 64, 10);
    let too_big = udp6("fd05:2::10", 64, 1300);
    let t = traces(
        "a",
        vec![small.clone(), big.clone(), no_host.clone(), too_big.clone()],
    );
    let gw = v6("fd05:1::1");
    assert_eq!(ipv6_error(&t[0], &small, gw), (3, 0, [0; 4]));
    assert_eq!(ipv6_error(&t[1], &big, gw), (3, 0, [0; 4]));
    assert_eq!(ipv6_error(&t[2], &no_host, gw), (1, 3, [0; 4]));
    assert_eq!(t[3].reason.as_deref(), Some("mtu_exceeded"));
    assert_eq!(
        ipv6_error(&t[3], &too_big, gw),
        (2, 0, 1280u32.to_be_bytes()),
        "packet too big, MTU 1280"
    );
}

#[test]
fn no_error_about_errors_later_fragments_or_unreachable_sources() {
    require_root!();
    // An ICMP error (port unreachable) with TTL 1, from the port without
    // port security: from a port with security groups, an error about no
    // connection it tracks (a trace tracks none) is invalid before it
    // reaches the router (below).
    let error = {
        let b = PacketBuilder::ethernet2(mac(MAC_OFF), mac(GW1))
            .ipv4(v4("10.5.1.11"), v4("10.5.2.10"), 1)
            .icmpv4(etherparse::Icmpv4Type::Unknown {
                type_u8: 3,
                code_u8: 3,
                bytes5to8: [0; 4],
            });
        let mut out = Vec::new();
        b.write(&mut out, &[0x45; 28]).unwrap();
        out
    };
    // A later fragment with TTL 1: offset 185 (1480 bytes), no DF.
    let mut later = udp4("10.5.2.10", 1, 10, false);
    later[20] = 0x00;
    later[21] = 185;
    set_ipv4_checksum(&mut later);
    let t = traces("off", vec![error.clone()])
        .into_iter()
        .chain(traces("a", vec![later]));
    for t in t {
        assert_eq!(t.verdict, "dropped", "{t:?}");
        assert_eq!(t.reason.as_deref(), Some("ttl_exceeded"));
        assert!(t.reply.is_none(), "no error about {t:?}");
    }
    // The same error from a port with security groups: invalid (it quotes
    // no connection of the sender's), as Neutron's firewall has it.
    let mut from_a = error;
    from_a[6..12].copy_from_slice(&mac(MAC_A));
    from_a[26..30].copy_from_slice(&v4("10.5.1.10"));
    set_ipv4_checksum(&mut from_a);
    let t = traces("a", vec![from_a]);
    assert_eq!(t[0].reason.as_deref(), Some("ct_invalid"), "{:?}", t[0]);
    assert!(t[0].reply.is_none());
    // A port without port security sending from an address the router has
    // no route back to: dropped without an error.
    let spoofed = {
        let b = PacketBuilder::ethernet2(mac(MAC_OFF), mac(GW1))
            .ipv4(v4("198.51.100.7"), v4("10.5.2.10"), 1)
            .udp(1, 2);
        let mut out = Vec::new();
        b.write(&mut out, b"x").unwrap();
        out
    };
    let t = traces("off", vec![spoofed]);
    assert_eq!(t[0].reason.as_deref(), Some("ttl_exceeded"));
    assert!(t[0].reply.is_none(), "{:?}", t[0]);
}

/// A router solicitation from MAC `from` and address `src`, with a
/// source link-layer option unless it comes from the unspecified address.
fn solicitation(from: &str, src: [u8; 16]) -> Vec<u8> {
    let body = if src == [0; 16] {
        Vec::new()
    } else {
        lab::pkt::lladdr_opt(1, mac(from))
    };
    lab::pkt::icmp6(
        mac(from),
        [0x33, 0x33, 0, 0, 0, 2],
        src,
        v6("ff02::2"),
        133,
        [0; 4],
        &body,
    )
}

/// Checks an advertisement the datapath sent to `dst` (`dst_mac`).
fn check_advert(t: &Trace, dst: [u8; 16], dst_mac: [u8; 6]) {
    assert_eq!(t.verdict, "answered", "{t:?}");
    let r = &t.frames.1;
    let router_ll = lab::pkt::link_local(mac(GW1));
    assert_eq!((&r[0..6], &r[6..12]), (&dst_mac[..], &mac(GW1)[..]));
    assert_eq!((r[20], r[21]), (58, 255), "ICMPv6, hop limit 255");
    assert_eq!((&r[22..38], &r[38..54]), (&router_ll[..], &dst[..]));
    let message = &r[54..];
    assert_eq!(
        usize::from(u16::from_be_bytes([r[18], r[19]])),
        message.len()
    );
    // net1 has IPv6 subnets without a mode and no MTU: a default router
    // (lifetime 300 s) announcing no prefix, with its MAC.
    let mut want = vec![
        134, 0, 0, 0, 64, 0, 0x01, 0x2c, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
    ];
    want.extend_from_slice(&mac(GW1));
    assert_eq!(&message[..2], &want[..2]);
    assert_eq!(&message[4..], &want[4..]);
    let mut pseudo = r[22..54].to_vec();
    pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(message);
    assert_eq!(checksum(&pseudo), 0, "ICMPv6 checksum");
}

#[test]
fn router_solicitations_are_answered_with_the_router_s_advertisement() {
    require_root!();
    // From an address: back to it. From no address (port security lets
    // only duplicate address detection and MLD out of ::, so from a port
    // without it): to all nodes, on the asker's tap alone.
    let t = traces("a", vec![solicitation(MAC_A, v6("fd05:1::10"))]);
    check_advert(&t[0], v6("fd05:1::10"), mac(MAC_A));
    let t = traces("off", vec![solicitation(MAC_OFF, [0; 16])]);
    check_advert(&t[0], v6("ff02::1"), [0x33, 0x33, 0, 0, 0, 1]);
}

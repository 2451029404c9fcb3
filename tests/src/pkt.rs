//! Frames for BPF_PROG_TEST_RUN, built with etherparse (checksums and
//! lengths filled in), plus raw edits for malformed cases.

use std::net::{Ipv4Addr, Ipv6Addr};

use common::proto::{
    ARPOP_REQUEST, ICMPV6_NEIGH_ADVERT, ICMPV6_NEIGH_SOLICIT, ICMPV6_ROUTER_ADVERT,
    ND_NA_FLAG_OVERRIDE, ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR,
};
use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, PacketBuilder};

pub type Mac = [u8; 6];
pub const BROADCAST: Mac = [0xff; 6];

pub fn mac(s: &str) -> Mac {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    v.try_into().expect("six octets")
}

pub fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().expect("IPv4").octets()
}

pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("IPv6").octets()
}

/// The modified EUI-64 link-local address of `mac`.
pub fn link_local(mac: Mac) -> [u8; 16] {
    common::proto::link_local_v6(mac)
}

/// The solicited-node multicast address of `addr`.
pub fn solicited_node(addr: [u8; 16]) -> [u8; 16] {
    let mut a = v6("ff02::1:ff00:0");
    a[13..].copy_from_slice(&addr[13..]);
    a
}

pub fn multicast_mac_v6(addr: [u8; 16]) -> Mac {
    [0x33, 0x33, addr[12], addr[13], addr[14], addr[15]]
}

fn finish<T>(b: etherparse::PacketBuilderStep<T>, payload: &[u8]) -> Vec<u8>
where
    etherparse::PacketBuilderStep<T>: Writable,
{
    b.write_to_vec(payload)
}

/// RFC 1071: the one's complement of the one's complement sum of 16-bit
/// big-endian words (an odd last byte padded with zero). Zero over a
/// header or message whose checksum field is right; the field's value
/// when computed with the field zero.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The last builder steps all write the same way.
pub trait Writable {
    fn write_to_vec(self, payload: &[u8]) -> Vec<u8>;
}

macro_rules! writable {
    ($($t:ty),*) => {$(
        impl Writable for etherparse::PacketBuilderStep<$t> {
            fn write_to_vec(self, payload: &[u8]) -> Vec<u8> {
                let mut out = Vec::with_capacity(self.size(payload.len()));
                self.write(&mut out, payload).expect("write");
                out
            }
        }
    )*};
}
writable!(
    etherparse::UdpHeader,
    etherparse::TcpHeader,
    etherparse::Icmpv4Header,
    etherparse::Icmpv6Header
);

pub fn arp(eth_src: Mac, oper: u16, sha: Mac, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let op = if oper == ARPOP_REQUEST {
        ArpOperation::REQUEST
    } else {
        ArpOperation::REPLY
    };
    let b = PacketBuilder::ethernet2(eth_src, BROADCAST).arp(
        ArpPacket::new(
            ArpHardwareId::ETHERNET,
            EtherType::IPV4,
            op,
            &sha,
            &spa,
            &[0; 6],
            &tpa,
        )
        .expect("arp"),
    );
    let mut out = Vec::with_capacity(b.size());
    b.write(&mut out).expect("write");
    out
}

pub fn udp4(
    eth_src: Mac,
    eth_dst: Mac,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    finish(b, b"dataplane-test")
}

pub fn tcp4(
    eth_src: Mac,
    eth_dst: Mac,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 64000)
        .syn();
    finish(b, &[])
}

pub fn ping4(eth_src: Mac, eth_dst: Mac, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(7, 1);
    finish(b, b"dataplane-test")
}

/// An echo reply with identifier `id` (as a peer answers [`ping4`]'s
/// request once translated).
pub fn ping4_reply(eth_src: Mac, eth_dst: Mac, src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(src, dst, 64)
        .icmpv4_echo_reply(id, 1);
    finish(b, b"dataplane-test")
}

pub fn udp6(
    eth_src: Mac,
    eth_dst: Mac,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv6(src, dst, 64)
        .udp(sport, dport);
    finish(b, b"dataplane-test")
}

pub fn ping6(eth_src: Mac, eth_dst: Mac, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv6(src, dst, 64)
        .icmpv6_echo_request(7, 1);
    finish(b, b"dataplane-test")
}

/// An ICMPv6 message with `body` after the 4-byte type/code/checksum and
/// `word` (the next four bytes).
pub fn icmp6(
    eth_src: Mac,
    eth_dst: Mac,
    src: [u8; 16],
    dst: [u8; 16],
    icmp_type: u8,
    word: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv6(src, dst, 255)
        .icmpv6_raw(icmp_type, 0, word);
    finish(b, body)
}

/// A link-layer address option (`ND_OPT_SOURCE_LLADDR` or
/// `ND_OPT_TARGET_LLADDR`).
pub fn lladdr_opt(kind: u8, mac: Mac) -> Vec<u8> {
    let mut o = vec![kind, 1];
    o.extend_from_slice(&mac);
    o
}

/// Neighbour solicitation for `target`, to its solicited-node group.
pub fn ns(eth_src: Mac, src: [u8; 16], target: [u8; 16], slla: Option<Mac>) -> Vec<u8> {
    let dst = solicited_node(target);
    let mut body = target.to_vec();
    if let Some(m) = slla {
        body.extend(lladdr_opt(ND_OPT_SOURCE_LLADDR, m));
    }
    icmp6(
        eth_src,
        multicast_mac_v6(dst),
        src,
        dst,
        ICMPV6_NEIGH_SOLICIT,
        [0; 4],
        &body,
    )
}

/// Unsolicited neighbour advertisement for `target` to all nodes.
pub fn na(eth_src: Mac, src: [u8; 16], target: [u8; 16], tlla: Option<Mac>) -> Vec<u8> {
    let dst = v6("ff02::1");
    let mut body = target.to_vec();
    if let Some(m) = tlla {
        body.extend(lladdr_opt(ND_OPT_TARGET_LLADDR, m));
    }
    icmp6(
        eth_src,
        multicast_mac_v6(dst),
        src,
        dst,
        ICMPV6_NEIGH_ADVERT,
        [ND_NA_FLAG_OVERRIDE, 0, 0, 0],
        &body,
    )
}

/// A router advertisement (no options).
pub fn ra(eth_src: Mac, src: [u8; 16]) -> Vec<u8> {
    let dst = v6("ff02::1");
    icmp6(
        eth_src,
        multicast_mac_v6(dst),
        src,
        dst,
        ICMPV6_ROUTER_ADVERT,
        [64, 0, 7, 8],
        &[0; 8],
    )
}

/// A frame with an arbitrary ethertype and payload.
pub fn raw(eth_src: Mac, eth_dst: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

//! Header parsing: Ethernet, ARP, IPv4, IPv6 (with extension headers), the
//! transport ports and ICMPv6 type. Parsers copy what later stages need out
//! of the packet and return a drop reason when a header is truncated or
//! inconsistent, so malformed frames never reach a policy decision.

use common::{
    DropReason,
    proto::{
        ARPHRD_ETHER, ARPOP_REPLY, ARPOP_REQUEST, ETH_P_IP, NEXTHDR_AUTH, NEXTHDR_DEST,
        NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING,
    },
};
use network_types::{arp::ArpHdr, ip::Ipv4Hdr, ip::Ipv6Hdr};

use crate::packet::Packet;

pub const ETH_HLEN: usize = 14;

const IPV6_HLEN: usize = 40;
/// Extension headers walked before giving up on finding the transport header.
const MAX_IPV6_EXT_HEADERS: usize = 6;

#[derive(Clone, Copy)]
pub struct Eth {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Host byte order.
    pub proto: u16,
}

#[inline(always)]
pub fn eth(pkt: &Packet) -> Result<Eth, DropReason> {
    let dst = pkt.read::<[u8; 6]>(0).ok_or(DropReason::Malformed)?;
    let src = pkt.read::<[u8; 6]>(6).ok_or(DropReason::Malformed)?;
    let proto = pkt.be16_at(12).ok_or(DropReason::Malformed)?;
    Ok(Eth { dst, src, proto })
}

/// Broadcast and multicast MACs have the group bit set.
#[inline(always)]
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

// ---------------------------------------------------------------------------
// ARP

#[derive(Clone, Copy)]
pub struct Arp {
    pub oper: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tpa: [u8; 4],
}

/// Parses an Ethernet/IPv4 ARP request or reply; anything else is malformed.
#[inline(always)]
pub fn arp(pkt: &Packet) -> Result<Arp, DropReason> {
    let hdr: ArpHdr = pkt.read(ETH_HLEN).ok_or(DropReason::Malformed)?;
    let oper = u16::from_be_bytes(hdr.oper);
    if u16::from_be_bytes(hdr.htype) != ARPHRD_ETHER
        || u16::from_be_bytes(hdr.ptype) != ETH_P_IP
        || hdr.hlen != 6
        || hdr.plen != 4
        || (oper != ARPOP_REQUEST && oper != ARPOP_REPLY)
    {
        return Err(DropReason::Malformed);
    }
    Ok(Arp {
        oper,
        sha: hdr.sha,
        spa: hdr.spa,
        tpa: hdr.tpa,
    })
}

// ---------------------------------------------------------------------------
// IP

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    None,
    /// First fragment: carries the transport header.
    First,
    /// A later fragment: no transport header.
    Later,
}

#[derive(Clone, Copy)]
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    /// Offset of the transport header from the start of the frame.
    pub l4_off: usize,
    pub frag: Frag,
}

#[inline(always)]
pub fn ipv4(pkt: &Packet) -> Result<Ipv4, DropReason> {
    let hdr: Ipv4Hdr = pkt.read(ETH_HLEN).ok_or(DropReason::Malformed)?;
    let ihl = (hdr.vihl & 0x0f) as usize * 4;
    let tot_len = u16::from_be_bytes(hdr.tot_len) as usize;
    // Frames may carry Ethernet padding after the datagram, never less.
    if hdr.vihl >> 4 != 4 || ihl < 20 || tot_len < ihl || ETH_HLEN + tot_len > pkt.len() {
        return Err(DropReason::Malformed);
    }
    let frags = u16::from_be_bytes(hdr.frags);
    let more = frags & 0x2000 != 0;
    let offset = frags & 0x1fff;
    let frag = if offset != 0 {
        Frag::Later
    } else if more {
        Frag::First
    } else {
        Frag::None
    };
    Ok(Ipv4 {
        src: hdr.src_addr,
        dst: hdr.dst_addr,
        proto: hdr.proto,
        l4_off: ETH_HLEN + ihl,
        frag,
    })
}

#[derive(Clone, Copy)]
pub struct Ipv6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The transport protocol after any extension headers.
    pub proto: u8,
    pub l4_off: usize,
    /// Offset of the end of the datagram (frames may carry padding after it).
    pub end: usize,
    pub frag: Frag,
}

#[inline(always)]
pub fn ipv6(pkt: &Packet) -> Result<Ipv6, DropReason> {
    let hdr: Ipv6Hdr = pkt.read(ETH_HLEN).ok_or(DropReason::Malformed)?;
    let payload_len = u16::from_be_bytes(hdr.payload_len) as usize;
    if hdr.vcf[0] >> 4 != 6 || ETH_HLEN + IPV6_HLEN + payload_len > pkt.len() {
        return Err(DropReason::Malformed);
    }
    let mut proto = hdr.next_hdr;
    let mut off = ETH_HLEN + IPV6_HLEN;
    let mut frag = Frag::None;
    let mut found = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match proto {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let [next, len] = pkt.read::<[u8; 2]>(off).ok_or(DropReason::Malformed)?;
                proto = next;
                off += (len as usize + 1) * 8;
            }
            NEXTHDR_AUTH => {
                let [next, len] = pkt.read::<[u8; 2]>(off).ok_or(DropReason::Malformed)?;
                proto = next;
                off += (len as usize + 2) * 4;
            }
            NEXTHDR_FRAGMENT => {
                let [next, _, hi, lo] = pkt.read::<[u8; 4]>(off).ok_or(DropReason::Malformed)?;
                let field = u16::from_be_bytes([hi, lo]);
                proto = next;
                off += 8;
                if field & 0xfff8 != 0 {
                    // A later fragment: what follows is payload, not headers.
                    frag = Frag::Later;
                    found = true;
                    break;
                }
                if field & 1 != 0 {
                    frag = Frag::First;
                }
            }
            _ => {
                found = true;
                break;
            }
        }
    }
    if !found {
        return Err(DropReason::Malformed);
    }
    Ok(Ipv6 {
        src: hdr.src_addr,
        dst: hdr.dst_addr,
        proto,
        l4_off: off,
        end: ETH_HLEN + IPV6_HLEN + payload_len,
        frag,
    })
}

/// Source and destination ports of a TCP or UDP header (host byte order).
#[inline(always)]
pub fn l4_ports(pkt: &Packet, l4_off: usize) -> Option<(u16, u16)> {
    let sport = pkt.be16_at(l4_off)?;
    let dport = pkt.be16_at(l4_off + 2)?;
    Some((sport, dport))
}

pub const IPV6_UNSPECIFIED: [u8; 16] = [0; 16];

#[inline(always)]
pub fn ipv6_is_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
}

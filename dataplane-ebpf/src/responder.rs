//! ARP and neighbour discovery answered by the datapath: a request for an
//! address that exactly one port (or a router interface) owns is turned into
//! the reply in place and sent back to the requester, so the request is
//! never flooded. The reply goes back through the requester's device-map
//! entry rather than XDP_TX: on veth, XDP_TX frames sat in the peer's queue
//! until the next packet flushed it (a second of delay per resolution),
//! while redirected ones are delivered at once, and `to_vm` counts them. Shared, prefix-only and unknown addresses
//! are not answered: the request is flooded and the real owner answers.
//! Answering for a shared address with one member's MAC is what breaks
//! failover in other datapaths.

use aya_ebpf::maps::lpm_trie::Key;
use common::{
    NEIGH_F_HOST, NEIGH_PREFIX_BITS, Neigh, NeighV4Key, NeighV6Key, PortInfo, TARGET_GROUP,
    TARGET_PORT,
    proto::{
        ARPOP_REPLY, ICMPV6_NEIGH_ADVERT, IPPROTO_ICMPV6, ND_NA_FLAG_OVERRIDE, ND_NA_FLAG_ROUTER,
        ND_NA_FLAG_SOLICITED, ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR,
    },
};

use crate::{
    maps::{NEIGH_V4, NEIGH_V6, TX_PORTS},
    packet::Packet,
    parse::{Arp, ETH_HLEN, Ipv6},
    stats,
};

/// The owner to answer for, if the address has exactly one and it is not
/// the asking port (answering a host's own probe would be a false conflict).
#[inline(always)]
fn answerable(n: &Neigh, port: &PortInfo) -> bool {
    n.kind != TARGET_GROUP
        && n.flags & NEIGH_F_HOST != 0
        && !(n.kind == TARGET_PORT && n.target == port.index)
}

/// Answers an ARP request in place and returns XDP_REDIRECT, or 0 if it must be
/// flooded instead. A BPF subprogram (not inlined) so that its stack does
/// not add to the caller's; hence at most five arguments and a plain u32.
#[inline(never)]
pub fn arp(pkt: &Packet, slot: u32, port: &PortInfo, eth_src: &[u8; 6], req: &Arp) -> u32 {
    arp_reply(pkt, slot, port, eth_src, req).unwrap_or(0)
}

#[inline(always)]
fn arp_reply(
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    eth_src: &[u8; 6],
    req: &Arp,
) -> Option<u32> {
    let key = Key::new(
        NEIGH_PREFIX_BITS + 32,
        NeighV4Key {
            slot,
            network: port.network,
            addr: req.tpa,
        },
    );
    let n = *NEIGH_V4.get(&key)?;
    if !answerable(&n, port) {
        return None;
    }
    if !arp_reply_in_place(pkt, eth_src, req, n.mac) {
        return None;
    }
    stats::update(port.index, |s| s.arp_replies += 1);
    back_to_sender(port)
}

/// Turns the ARP request `req` (from Ethernet source `eth_src`) into the
/// reply saying its target address is at `owner`: back to the asker, from
/// the owner. False if the frame is too short.
#[inline(always)]
pub fn arp_reply_in_place(pkt: &Packet, eth_src: &[u8; 6], req: &Arp, owner: [u8; 6]) -> bool {
    pkt.write(0, *eth_src)
        && pkt.write(6, owner)
        // ARP: oper, sender = owner, target = asker.
        && pkt.write(ETH_HLEN + 6, ARPOP_REPLY.to_be_bytes())
        && pkt.write(ETH_HLEN + 8, owner)
        && pkt.write(ETH_HLEN + 14, req.tpa)
        && pkt.write(ETH_HLEN + 18, req.sha)
        && pkt.write(ETH_HLEN + 24, req.spa)
}

/// ICMPv6 length of a neighbour solicitation carrying exactly one source
/// link-layer option: 8 header + 16 target + 8 option. Its advertisement
/// has the same length, so the reply is written in place.
const NS_WITH_SLLA_LEN: usize = 32;

/// Answers a neighbour solicitation in place and returns XDP_REDIRECT, or 0 if it
/// must be flooded.
#[inline(never)]
pub fn nd(pkt: &Packet, slot: u32, port: &PortInfo, eth_src: &[u8; 6], ip: &Ipv6) -> u32 {
    nd_reply(pkt, slot, port, eth_src, ip).unwrap_or(0)
}

#[inline(always)]
fn nd_reply(pkt: &Packet, slot: u32, port: &PortInfo, eth_src: &[u8; 6], ip: &Ipv6) -> Option<u32> {
    // Duplicate address detection (from ::) is for the owner to answer;
    // only the simple layout is rewritten in place.
    if ip.src == [0; 16] || ip.l4_off != ETH_HLEN + 40 || ip.end != ip.l4_off + NS_WITH_SLLA_LEN {
        return None;
    }
    let l4 = ip.l4_off;
    let target = pkt.read::<[u8; 16]>(l4 + 8)?;
    let [opt_type, opt_len] = pkt.read::<[u8; 2]>(l4 + 24)?;
    if opt_type != ND_OPT_SOURCE_LLADDR || opt_len != 1 {
        return None;
    }
    let key = Key::new(
        NEIGH_PREFIX_BITS + 128,
        NeighV6Key {
            slot,
            network: port.network,
            addr: target,
        },
    );
    let n = *NEIGH_V6.get(&key)?;
    if !answerable(&n, port) {
        return None;
    }
    // Ethernet and IPv6: back to the asker, from the target, hop limit 255
    // (RFC 4861 requires it of every ND message).
    let ok = pkt.write(0, *eth_src)
        && pkt.write(6, n.mac)
        && pkt.write(ETH_HLEN + 6, [IPPROTO_ICMPV6, 255u8])
        && pkt.write(ETH_HLEN + 8, target)
        && pkt.write(ETH_HLEN + 24, ip.src)
        // NA: type 136, code 0, checksum later, flags Solicited|Override
        // (and Router for a router interface).
        && pkt.write(l4, [ICMPV6_NEIGH_ADVERT, 0u8, 0, 0])
        && pkt.write(l4 + 4, [na_flags(&n), 0u8, 0, 0])
        // Target link-layer address option.
        && pkt.write(l4 + 24, [ND_OPT_TARGET_LLADDR, 1u8])
        && pkt.write(l4 + 26, n.mac);
    if !ok {
        return None;
    }
    let sum = icmpv6_checksum(pkt, l4)?;
    if !pkt.write(l4 + 2, sum.to_be_bytes()) {
        return None;
    }
    stats::update(port.index, |s| s.nd_replies += 1);
    back_to_sender(port)
}

#[inline(always)]
fn back_to_sender(port: &PortInfo) -> Option<u32> {
    TX_PORTS.redirect(port.index, 0).ok()
}

#[inline(always)]
fn na_flags(n: &Neigh) -> u8 {
    if n.kind == common::TARGET_ROUTER {
        ND_NA_FLAG_ROUTER | ND_NA_FLAG_SOLICITED | ND_NA_FLAG_OVERRIDE
    } else {
        ND_NA_FLAG_SOLICITED | ND_NA_FLAG_OVERRIDE
    }
}

/// The checksum of a 32-byte ICMPv6 message (with its checksum field zero)
/// over the IPv6 pseudo-header, read from the packet already rewritten:
/// source and destination addresses are the 32 bytes at ETH_HLEN + 8.
/// Words are read one by one: no arrays, so the subprogram's stack stays
/// small enough to add to the caller's.
#[inline(always)]
fn icmpv6_checksum(pkt: &Packet, l4: usize) -> Option<u16> {
    let mut sum: u32 = NS_WITH_SLLA_LEN as u32 + IPPROTO_ICMPV6 as u32;
    for i in 0..16 {
        sum += pkt.be16_at(ETH_HLEN + 8 + 2 * i)? as u32;
        sum += pkt.be16_at(l4 + 2 * i)? as u32;
    }
    // At most 34 words of 16 bits: two folds always suffice.
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    Some(!(sum as u16))
}

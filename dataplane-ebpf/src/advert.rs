//! Router solicitations answered by the datapath: a VM's solicitation
//! (after port security) on a network with an advertising router gets that
//! router's advertisement (`ADVERTS`, compiled as Neutron's radvd would
//! send it), from the router's link-local address, sent back to the VM
//! alone: to its address, or to all nodes if it has none yet (RFC 4861
//! 6.2.6). The agent sends the same advertisement periodically.
//!
//! A program of its own (`router_advert`), tail-called by `from_vm`: the
//! frame is rewritten from the front (it grows: an advertisement is longer
//! than a solicitation), with a checksum over the whole message.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use common::{
    ADVERT_MAX, Advert, AdvertKey, DropReason, Hop, JUMP_ADVERT, OUT_REPLY, PortInfo,
    proto::IPPROTO_ICMPV6,
};

use crate::{
    checksum,
    drop::{self, NOTIFY},
    maps::{ADVERTS, HOP, JUMP, TX_PORTS},
    meta,
    packet::Packet,
    parse::ETH_HLEN,
    route, stats,
};

/// All-nodes multicast, and its MAC.
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Whether a router advertises on the port's network.
#[inline(always)]
pub fn advertised(slot: u32, port: &PortInfo) -> bool {
    let key = AdvertKey {
        slot,
        network: port.network,
    };
    // SAFETY: only the presence is read.
    unsafe { ADVERTS.get(key) }.is_some()
}

/// Hands a solicitation to `router_advert`; returns only if the tail call
/// failed (the program is missing), which is a drop.
#[inline(always)]
pub fn enter(ctx: &XdpContext, slot: u32, port: &PortInfo) -> DropReason {
    if let Some(hop) = HOP.get_ptr_mut(0) {
        // SAFETY: this CPU's entry; nothing else runs on it meanwhile.
        unsafe {
            *hop = Hop {
                slot,
                port: *port,
                ..Hop::default()
            };
            JUMP.tail_call(ctx, JUMP_ADVERT);
        }
    }
    DropReason::RedirectFailed
}

/// `router_advert`: the advertisement, in place of the solicitation.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let Some(h) = HOP.get(0) else {
        return route::no_hop(ctx);
    };
    match answer(ctx, h) {
        Ok(action) => action,
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

#[inline(always)]
fn answer(ctx: &XdpContext, h: &Hop) -> Result<u32, DropReason> {
    let key = AdvertKey {
        slot: h.slot,
        network: h.port.network,
    };
    // SAFETY: the value is read in place while this program runs (RCU).
    let ad = unsafe { ADVERTS.get(key) }.ok_or(DropReason::RedirectFailed)?;
    let len = usize::from(ad.len);
    if len > ADVERT_MAX || len % 8 != 0 || len < 16 {
        return Err(DropReason::Malformed);
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let [_, asker_mac] = pkt.read::<[[u8; 6]; 2]>(0).ok_or(DropReason::Malformed)?;
    let asker = pkt
        .read::<[u8; 16]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    // A host without an address yet is answered at all nodes (on its link
    // alone: the frame goes to its tap only).
    let (dst, dst_mac) = if asker == [0; 16] {
        (ALL_NODES, ALL_NODES_MAC)
    } else {
        (asker, asker_mac)
    };
    if !resize(ctx, ETH_HLEN + 40 + len) {
        return Err(DropReason::Malformed);
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    if !write(&pkt, ad, dst, dst_mac) {
        return Err(DropReason::Malformed);
    }
    let action = TX_PORTS
        .redirect(h.port.index, 0)
        .map_err(|_| DropReason::RedirectFailed)?;
    meta::record(ctx, OUT_REPLY, h.port.index);
    stats::update(h.port.index, |s| s.ra_replies += 1);
    Ok(action)
}

/// Makes the frame exactly `total` bytes long, growing it at the front or
/// cutting it at the end (its content is written afresh).
#[inline(always)]
fn resize(ctx: &XdpContext, total: usize) -> bool {
    let len = ctx.data_end() - ctx.data();
    if len < total {
        // SAFETY: ctx.ctx is the program's xdp_md.
        return unsafe { bpf_xdp_adjust_head(ctx.ctx, len as i32 - total as i32) } == 0;
    }
    // SAFETY: as above; shrinking only.
    len == total || unsafe { bpf_xdp_adjust_tail(ctx.ctx, total as i32 - len as i32) } == 0
}

/// Writes the advertisement's frame over the packet; false if it does not
/// fit.
#[inline(always)]
fn write(pkt: &Packet, ad: &Advert, dst: [u8; 16], dst_mac: [u8; 6]) -> bool {
    let m = ad.mac;
    // The router's link-local address (modified EUI-64 of its MAC).
    let src = common::proto::link_local_v6(m);
    let len = usize::from(ad.len);
    let [l0, l1] = ad.len.to_be_bytes();
    let icmp = ETH_HLEN + 40;
    let ok = pkt.write(0, [dst_mac, m])
        && pkt.write(
            12,
            [0x86u8, 0xdd, 0x60, 0, 0, 0, l0, l1, IPPROTO_ICMPV6, 255],
        )
        && pkt.write(ETH_HLEN + 8, [src, dst])
        && copy(pkt, icmp, ad, len);
    if !ok {
        return false;
    }
    let pseudo = checksum::sum(pkt, ETH_HLEN + 8, 32);
    let body = checksum::sum(pkt, icmp, len);
    match (pseudo, body) {
        (Some(p), Some(b)) => {
            let sum = p + b + len as u32 + u32::from(IPPROTO_ICMPV6);
            pkt.write(icmp + 2, checksum::finish(sum).to_be_bytes())
        }
        _ => false,
    }
}

/// Copies the message, eight bytes at a time (its length is a multiple
/// of eight).
#[inline(always)]
fn copy(pkt: &Packet, at: usize, ad: &Advert, len: usize) -> bool {
    for i in 0..ADVERT_MAX / 8 {
        if 8 * i >= len {
            break;
        }
        // SAFETY: 8 * i + 8 <= ADVERT_MAX: inside the map value.
        let chunk =
            unsafe { core::ptr::read_unaligned(ad.message.as_ptr().add(8 * i) as *const [u8; 8]) };
        if !pkt.write(at + 8 * i, chunk) {
            return false;
        }
    }
    true
}

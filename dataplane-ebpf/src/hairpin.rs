//! Hairpin: a packet from inside routed to one of its router's own
//! external addresses, as Neutron's L3 agent's NAT rules treat it. To a
//! floating IP (`PREROUTING -d FIP -j DNAT`): its destination becomes the
//! fixed IP and its source what the router's POSTROUTING makes of
//! DNAT'ed traffic from inside, `float-snat` first (a sender with a
//! floating IP appears as it) and else SNAT to the gateway's address
//! (`-m conntrack --ctstate DNAT -j SNAT --to-source <gateway>`, which
//! Neutron adds with or without `enable_snat`), so that the reply comes
//! back through the router to be translated again. To the gateway's
//! address: the reply of such a connection (its SNAT connection's, by
//! ports), sent back to the VM that opened it from the floating IP it
//! addressed; anything else there is for the router itself, answered as
//! at its interface addresses (`route.rs`). Then the router routes the packet in as if it came from
//! outside (`route_v4`, from no port: the receiver's ingress rules see the
//! translated source as a remote without security groups); its TTL is
//! restored first, so that the router decrements it once, as Linux's
//! does.
//!
//! The uplink plays no part: hairpinning works on a host without one.
//! Another router's external addresses are not reached (`no_route`): that
//! packet would have to leave by the uplink and come back in.

use aya_ebpf::programs::XdpContext;
use common::{
    DropReason, EXT_FLOATING, ExtAddr, FloatingKey, Gateway, Hop, JUMP_ROUTE_V4, NAT_IN, NatKey,
    PortInfo,
};

use crate::{
    checksum, external,
    maps::FLOATING,
    meta, nat,
    packet::Packet,
    parse::{ETH_HLEN, Ipv4},
    route,
};

/// Translates a packet for one of the router's external addresses (`me`)
/// and hands it back to the router; returns the reason to drop it for if
/// it cannot be, or if the routing program is missing.
#[inline(always)]
pub fn turn(
    ctx: &XdpContext,
    pkt: &Packet,
    h: &Hop,
    gw: &Gateway,
    ip: &Ipv4,
    me: &ExtAddr,
) -> DropReason {
    if me.router != h.router {
        return DropReason::NoRoute;
    }
    let translated = if me.kind == EXT_FLOATING {
        to_floating(ctx, pkt, h, gw, ip, me.fixed)
    } else {
        to_gateway(ctx, pkt, h, ip)
    };
    if let Err(reason) = translated {
        return reason;
    }
    if !untick(pkt) {
        return DropReason::Malformed;
    }
    nat::count(|s| s.hairpin += 1);
    let inside = PortInfo {
        network: gw.network,
        ifindex: gw.ifindex,
        ..PortInfo::default()
    };
    route::enter(ctx, h.slot, &inside, h.router, JUMP_ROUTE_V4)
}

/// To a floating IP: DNAT to its fixed IP, then the source as the
/// router's POSTROUTING leaves DNAT'ed traffic (the sender's floating IP,
/// else SNAT to the gateway's address).
#[inline(always)]
fn to_floating(
    ctx: &XdpContext,
    pkt: &Packet,
    h: &Hop,
    gw: &Gateway,
    ip: &Ipv4,
    fixed: [u8; 4],
) -> Result<(), DropReason> {
    if !nat::set_addr(pkt, ip, nat::DST_OFF, fixed) {
        return Err(DropReason::Malformed);
    }
    let dnated = Ipv4 { dst: fixed, ..*ip };
    external::translate(ctx, pkt, h, gw, &dnated, true)
}

/// To the gateway's address: the reply of a connection SNAT hairpinned,
/// back to the VM and port that opened it, from the floating IP it
/// addressed (the replier's). Anything else is for the router itself,
/// answered as at its other addresses (an echo reply, "port unreachable"
/// for UDP) or dropped `to_router`.
#[inline(always)]
fn to_gateway(ctx: &XdpContext, pkt: &Packet, h: &Hop, ip: &Ipv4) -> Result<(), DropReason> {
    match hairpinned(ctx, pkt, h, ip) {
        Some(done) => done,
        // The router answers the packet as it arrived (TTL included).
        None if untick(pkt) => Err(route::local_v4_checked(ctx, pkt)),
        None => Err(DropReason::Malformed),
    }
}

/// The reply of a hairpinned connection, translated back (Some(Ok)), or
/// the reason it could not be; None if it is no such reply.
#[inline(always)]
fn hairpinned(
    ctx: &XdpContext,
    pkt: &Packet,
    h: &Hop,
    ip: &Ipv4,
) -> Option<Result<(), DropReason>> {
    let f = nat::port_field(pkt, ip, true)?;
    let local_port = pkt.read::<[u8; 2]>(f.off)?;
    let remote_port = nat::peer_port(pkt, ip, false)?;
    let k = NatKey {
        router: h.router,
        proto: ip.proto,
        dir: NAT_IN,
        local_port,
        local: ip.dst,
        remote: ip.src,
        remote_port,
        _pad: [0; 2],
    };
    let (addr, port) = nat::unsnat(&k, meta::tracing(ctx))?;
    Some(back(pkt, h, ip, addr, &f, port))
}

/// Rewrites a hairpinned connection's reply back to the VM's address and
/// port, from the replier's floating IP.
#[inline(always)]
fn back(
    pkt: &Packet,
    h: &Hop,
    ip: &Ipv4,
    addr: [u8; 4],
    f: &nat::PortField,
    port: [u8; 2],
) -> Result<(), DropReason> {
    if !(nat::set_addr(pkt, ip, nat::DST_OFF, addr) && nat::set_port(pkt, f, port)) {
        return Err(DropReason::Malformed);
    }
    let fk = FloatingKey {
        slot: h.slot,
        router: h.router,
        fixed: ip.src,
    };
    // SAFETY: copied out at once.
    if let Some(f) = unsafe { FLOATING.get(fk) }.copied() {
        if !nat::set_addr(pkt, ip, nat::SRC_OFF, f.addr) {
            return Err(DropReason::Malformed);
        }
    }
    Ok(())
}

/// Gives back the TTL the routing program took on the way out (with the
/// header checksum): the packet is routed once, on its way back in.
#[inline(always)]
fn untick(pkt: &Packet) -> bool {
    // One read and one write of TTL, protocol and checksum: split reads
    // let LLVM mix a packet pointer into the checksum arithmetic, which
    // the verifier refuses.
    let Some([ttl, proto, c0, c1]) = pkt.read::<[u8; 4]>(ETH_HLEN + 8) else {
        return false;
    };
    let next = ttl.saturating_add(1);
    let [c0, c1] = checksum::replace(
        u16::from_be_bytes([c0, c1]),
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([next, proto]),
    )
    .to_be_bytes();
    pkt.write(ETH_HLEN + 8, [next, proto, c0, c1])
}

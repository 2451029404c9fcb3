//! The router's own ICMP: what a routing program hands over (in `HOP`)
//! when the router answers a packet itself instead of forwarding it:
//! an echo reply to an echo request for one of its addresses, or an ICMP
//! error (destination unreachable, time exceeded, fragmentation needed or
//! packet too big) about a packet it drops.
//!
//! The answer goes back to the sending port only (through its device-map
//! entry, so `to_vm` applies the port's ingress rules), and only if the
//! router has a route back to the sender through the link the packet came
//! from (as a Linux router routes its ICMP). The sender's egress security
//! groups saw the packet first (`to_router.rs`). Errors are never sent about ICMP errors, non-first fragments
//! or to sources that do not name one host (RFC 1812 4.3.2.7, RFC 4443
//! 2.4(e)), and at most `ICMP_ERRORS_PER_SECOND` to each port per CPU
//! (`ratelimit`). An error quotes as much of the packet as fits in 576
//! bytes (IPv4, RFC 1812 4.3.2.3) or in the IPv6 minimum MTU (RFC 4443
//! 2.4(c)).

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use common::{
    DropReason, Hop, OUT_ICMP_ERROR, OUT_REPLY, PortInfo, ROUTE_CONNECTED,
    proto::{
        ICMP_ADDRESSREPLY, ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, ICMP_FRAG_NEEDED,
        ICMP_PORT_UNREACH, ICMP_ROUTERADVERT, ICMP_ROUTERSOLICIT, ICMP_TIME_EXCEEDED,
        ICMP_TIMESTAMP, ICMPV6_DEST_UNREACH, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST,
        ICMPV6_INFOMSG, ICMPV6_PKT_TOOBIG, ICMPV6_PORT_UNREACH, ICMPV6_TIME_EXCEED, IPPROTO_ICMP,
        IPPROTO_ICMPV6, is_link_local_v6,
    },
};

use crate::{
    checksum,
    drop::{self, NOTIFY},
    maps::{HOP, TX_PORTS},
    meta,
    packet::Packet,
    parse::{self, ETH_HLEN, Frag, Ipv4, Ipv6},
    ratelimit, route, stats,
};

/// Bytes of an IPv4 error's quote: 576 less the IP and ICMP headers.
const QUOTE_V4: usize = 576 - 20 - 8;
/// Bytes of an IPv6 error's quote: 1280 less the IPv6 and ICMPv6 headers.
const QUOTE_V6: usize = 1280 - 40 - 8;
/// Headers an error puts in front of the packet it quotes (the Ethernet
/// header is reused): IPv4 and ICMP, IPv6 and ICMPv6.
const GROW_V4: usize = 20 + 8;
const GROW_V6: usize = 40 + 8;
/// TTL and hop limit of what the router sends (Linux's default).
const TTL: u8 = 64;

/// `icmp_v4`: answers an IPv4 packet as the routing program decided (the
/// sender's egress rules allowed it: `to_router`).
#[inline(always)]
pub fn ipv4(ctx: &XdpContext) -> u32 {
    let Some(h) = HOP.get(0) else {
        return route::no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    match answer_v4(ctx, &pkt, h) {
        Ok(action) => action,
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

/// `icmp_v6`: answers an IPv6 packet as the routing program decided.
#[inline(always)]
pub fn ipv6(ctx: &XdpContext) -> u32 {
    let Some(h) = HOP.get(0) else {
        return route::no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    match answer_v6(ctx, &pkt, h) {
        Ok(action) => action,
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

/// The drop an IPv4 answer stands for, from the message the routing
/// program chose. Derived, not handed over: compares yield a constant on
/// every path, where a reason passed as a number reaches the drop counters
/// without a bound the verifier knows.
#[inline(always)]
fn reason_v4(answer: u32) -> DropReason {
    let (ty, code) = ((answer >> 8) as u8, answer as u8);
    if ty == ICMP_TIME_EXCEEDED {
        DropReason::TtlExceeded
    } else if ty == ICMP_DEST_UNREACH && code == ICMP_FRAG_NEEDED {
        DropReason::MtuExceeded
    } else if ty == ICMP_DEST_UNREACH && code != ICMP_PORT_UNREACH {
        DropReason::NoRoute
    } else {
        DropReason::ToRouter
    }
}

/// As [`reason_v4`], for ICMPv6.
#[inline(always)]
fn reason_v6(answer: u32) -> DropReason {
    let (ty, code) = ((answer >> 8) as u8, answer as u8);
    if ty == ICMPV6_TIME_EXCEED {
        DropReason::TtlExceeded
    } else if ty == ICMPV6_PKT_TOOBIG {
        DropReason::MtuExceeded
    } else if ty == ICMPV6_DEST_UNREACH && code != ICMPV6_PORT_UNREACH {
        DropReason::NoRoute
    } else {
        DropReason::ToRouter
    }
}

#[inline(always)]
fn answer_v4(ctx: &XdpContext, pkt: &Packet, h: &Hop) -> Result<u32, DropReason> {
    let reason = reason_v4(h.answer);
    let ip = parse::ipv4(pkt)?;
    let echo = h.answer >> 8 == u32::from(ICMP_ECHOREPLY);
    let eligible = if echo {
        ip.proto == IPPROTO_ICMP && ip.frag == Frag::None
    } else {
        error_allowed_v4(pkt, &ip)
    };
    if !eligible {
        return Err(reason);
    }
    let own = reverse_v4(h, ip.src).ok_or(reason)?;
    if echo {
        return Ok(echo_v4(ctx, h));
    }
    if !budget(ctx, &h.port) {
        return Err(reason);
    }
    // What was for the router itself (UDP: port unreachable) is answered
    // from the address it was sent to, as a host answers.
    let from = if reason == DropReason::ToRouter {
        ip.dst
    } else {
        own
    };
    Ok(error_v4(ctx, h, u32::from_be_bytes(from)))
}

#[inline(always)]
fn answer_v6(ctx: &XdpContext, pkt: &Packet, h: &Hop) -> Result<u32, DropReason> {
    let reason = reason_v6(h.answer);
    let ip = parse::ipv6(pkt)?;
    let echo = h.answer >> 8 == u32::from(ICMPV6_ECHO_REPLY);
    if echo {
        // Only the plain layout is answered in place.
        if ip.proto != IPPROTO_ICMPV6 || ip.l4_off != ETH_HLEN + 40 {
            return Err(reason);
        }
        // On-link senders (link-local sources) need no route back.
        if !is_link_local_v6(&ip.src) && reverse_v6(h, ip.src).is_none() {
            return Err(reason);
        }
        return Ok(echo_v6(ctx, h));
    }
    if !error_allowed_v6(pkt, &ip) {
        return Err(reason);
    }
    let own = reverse_v6(h, ip.src).ok_or(reason)?;
    if !budget(ctx, &h.port) {
        return Err(reason);
    }
    let from = if reason == DropReason::ToRouter {
        ip.dst
    } else {
        own
    };
    Ok(error_v6(ctx, h, &from))
}

/// Whether an IPv4 packet may be answered with an error: a first (or
/// only) fragment, and not an ICMP message other than the informational
/// ones (echo, router advertisement and solicitation, timestamp,
/// information and address mask requests and replies): never an error,
/// nor a type nobody knows.
#[inline(always)]
fn error_allowed_v4(pkt: &Packet, ip: &Ipv4) -> bool {
    if ip.frag == Frag::Later {
        return false;
    }
    if ip.proto != IPPROTO_ICMP {
        return true;
    }
    match pkt.read::<[u8; 2]>(ip.l4_off) {
        Some([ty, _]) => {
            matches!(
                ty,
                ICMP_ECHOREPLY | ICMP_ECHO | ICMP_ROUTERADVERT | ICMP_ROUTERSOLICIT
            ) || (ICMP_TIMESTAMP..=ICMP_ADDRESSREPLY).contains(&ty)
        }
        None => false,
    }
}

/// Whether an IPv6 packet may be answered with an error: not an ICMPv6
/// error itself (types below 128).
#[inline(always)]
fn error_allowed_v6(pkt: &Packet, ip: &Ipv6) -> bool {
    if ip.proto != IPPROTO_ICMPV6 || ip.frag == Frag::Later {
        return true;
    }
    matches!(pkt.read::<[u8; 2]>(ip.l4_off), Some([ty, _]) if ty >= ICMPV6_INFOMSG)
}

/// The router's address on the link a packet from `src` came in by, if
/// the router routes back to `src` through that link (directly, or by a
/// static route via a next hop on it). Route entries are read where they
/// lie: copies would take stack this program does not have.
#[inline(always)]
fn reverse_v4(h: &Hop, src: [u8; 4]) -> Option<[u8; 4]> {
    let mut r = route::route_v4_ref(h.slot, h.router, src)?;
    if r.kind != ROUTE_CONNECTED {
        let [a, b, c, d] = [r.addr[0], r.addr[1], r.addr[2], r.addr[3]];
        r = route::route_v4_ref(h.slot, h.router, [a, b, c, d])?;
    }
    (r.kind == ROUTE_CONNECTED && r.network == h.port.network)
        .then(|| [r.addr[0], r.addr[1], r.addr[2], r.addr[3]])
}

/// As [`reverse_v4`]; never for a link-local source (nothing routes there).
#[inline(always)]
fn reverse_v6(h: &Hop, src: [u8; 16]) -> Option<[u8; 16]> {
    if is_link_local_v6(&src) {
        return None;
    }
    let mut r = route::route_v6_ref(h.slot, h.router, src)?;
    if r.kind != ROUTE_CONNECTED {
        r = route::route_v6_ref(h.slot, h.router, r.addr)?;
    }
    (r.kind == ROUTE_CONNECTED && r.network == h.port.network).then_some(r.addr)
}

/// Whether an error may go to `port` now (a traced packet neither asks
/// nor uses the budget); counts the ones held back.
#[inline(always)]
fn budget(ctx: &XdpContext, port: &PortInfo) -> bool {
    if meta::tracing(ctx) || ratelimit::allow(port.index) {
        return true;
    }
    stats::update(port.index, |s| s.icmp_limited += 1);
    false
}

/// Turns an IPv4 echo request into its reply, in place, back to the
/// sender; returns the XDP action. A BPF subprogram: see [`ipv4`].
#[inline(never)]
fn echo_v4(ctx: &XdpContext, h: &Hop) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    match echo_v4_rewrite(&pkt) {
        Ok(()) => replied(ctx, &h.port),
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

#[inline(always)]
fn echo_v4_rewrite(pkt: &Packet) -> Result<(), DropReason> {
    let [vihl, _] = pkt.read::<[u8; 2]>(ETH_HLEN).ok_or(DropReason::Malformed)?;
    let l4 = ETH_HLEN + (vihl & 0x0f) as usize * 4;
    let [ty, code] = pkt.read::<[u8; 2]>(l4).ok_or(DropReason::Malformed)?;
    if ty != ICMP_ECHO {
        return Err(DropReason::ToRouter);
    }
    let sum = pkt.be16_at(l4 + 2).ok_or(DropReason::Malformed)?;
    let sum = checksum::replace(
        sum,
        u16::from_be_bytes([ICMP_ECHO, code]),
        u16::from_be_bytes([ICMP_ECHOREPLY, code]),
    );
    let [ttl, proto] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    let check = pkt.be16_at(ETH_HLEN + 10).ok_or(DropReason::Malformed)?;
    let check = checksum::replace(
        check,
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([TTL, proto]),
    );
    let [src, dst] = pkt
        .read::<[[u8; 4]; 2]>(ETH_HLEN + 12)
        .ok_or(DropReason::Malformed)?;
    let ok = swap_macs(pkt)
        && pkt.write(l4, [ICMP_ECHOREPLY, code])
        && pkt.write(l4 + 2, sum.to_be_bytes())
        && pkt.write(ETH_HLEN + 8, [TTL, proto])
        && pkt.write(ETH_HLEN + 10, check.to_be_bytes())
        // Swapping source and destination leaves the header sum as it was.
        && pkt.write(ETH_HLEN + 12, [dst, src]);
    if ok {
        Ok(())
    } else {
        Err(DropReason::Malformed)
    }
}

/// Turns an IPv6 echo request (no extension headers) into its reply. A
/// BPF subprogram, as [`echo_v4`].
#[inline(never)]
fn echo_v6(ctx: &XdpContext, h: &Hop) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    match echo_v6_rewrite(&pkt) {
        Ok(()) => replied(ctx, &h.port),
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

#[inline(always)]
fn echo_v6_rewrite(pkt: &Packet) -> Result<(), DropReason> {
    let l4 = ETH_HLEN + 40;
    let [ty, code] = pkt.read::<[u8; 2]>(l4).ok_or(DropReason::Malformed)?;
    if ty != ICMPV6_ECHO_REQUEST {
        return Err(DropReason::ToRouter);
    }
    let sum = pkt.be16_at(l4 + 2).ok_or(DropReason::Malformed)?;
    // The pseudo-header's addresses only swap places: its sum is unchanged.
    let sum = checksum::replace(
        sum,
        u16::from_be_bytes([ICMPV6_ECHO_REQUEST, code]),
        u16::from_be_bytes([ICMPV6_ECHO_REPLY, code]),
    );
    let [src, dst] = pkt
        .read::<[[u8; 16]; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    let [_, next] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 5)
        .ok_or(DropReason::Malformed)?;
    let ok = swap_macs(pkt)
        && pkt.write(l4, [ICMPV6_ECHO_REPLY, code])
        && pkt.write(l4 + 2, sum.to_be_bytes())
        && pkt.write(ETH_HLEN + 6, [next, TTL])
        && pkt.write(ETH_HLEN + 8, [dst, src]);
    if ok {
        Ok(())
    } else {
        Err(DropReason::Malformed)
    }
}

/// Sends an echo reply back to `port`.
#[inline(always)]
fn replied(ctx: &XdpContext, port: &PortInfo) -> u32 {
    match back(ctx, port, OUT_REPLY, port.index, |s| s.echo_replies += 1) {
        Ok(action) => action,
        Err(reason) => drop::drop(ctx, port.index, reason, NOTIFY),
    }
}

/// Back to the sender: the frame's source MAC becomes its destination.
#[inline(always)]
fn swap_macs(pkt: &Packet) -> bool {
    match pkt.read::<[[u8; 6]; 2]>(0) {
        Some([dst, src]) => pkt.write(0, [src, dst]),
        None => false,
    }
}

/// Sends the rewritten frame back to `port`, recording the decision for a
/// trace and counting it.
#[inline(always)]
fn back(
    ctx: &XdpContext,
    port: &PortInfo,
    kind: u32,
    detail: u32,
    count: impl FnOnce(&mut common::PortStats),
) -> Result<u32, DropReason> {
    let action = TX_PORTS
        .redirect(port.index, 0)
        .map_err(|_| DropReason::RedirectFailed)?;
    meta::record(ctx, kind, detail);
    stats::update(port.index, count);
    Ok(action)
}

/// Grows the frame at the front by `grow` bytes and cuts it to `total`
/// (the quoted packet starts where the old IP header was); false if the
/// frame has no room, which a drop then reports.
#[inline(always)]
fn reshape(ctx: &XdpContext, grow: usize, total: usize) -> bool {
    // SAFETY: ctx.ctx is the program's xdp_md.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return false;
    }
    let len = ctx.data_end() - ctx.data();
    if len < total {
        return false;
    }
    // SAFETY: as above; shrinking only.
    len == total || unsafe { bpf_xdp_adjust_tail(ctx.ctx, total as i32 - len as i32) } == 0
}

/// The error about an IPv4 packet, in place of it, back to the sender,
/// from the router's address `own`; returns the XDP action. A BPF
/// subprogram: see [`ipv4`] on the stack.
#[inline(never)]
fn error_v4(ctx: &XdpContext, h: &Hop, own: u32) -> u32 {
    let reason = reason_v4(h.answer);
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let Some([total_in, src]) = read_v4(&pkt) else {
        return drop::drop(ctx, h.port.index, DropReason::Malformed, NOTIFY);
    };
    let Some(macs) = pkt.read::<[[u8; 6]; 2]>(0) else {
        return drop::drop(ctx, h.port.index, DropReason::Malformed, NOTIFY);
    };
    let quote = if total_in > QUOTE_V4 as u32 {
        QUOTE_V4
    } else {
        total_in as usize
    };
    // Counted and streamed while the packet is still the one dropped.
    drop::answered(ctx, h.port.index, reason);
    if !reshape(ctx, GROW_V4, ETH_HLEN + GROW_V4 + quote) {
        return drop::abandoned(ctx, reason);
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let [l0, l1] = ((GROW_V4 + quote) as u16).to_be_bytes();
    let (own, src) = (own.to_be_bytes(), src.to_be_bytes());
    let header: [u8; 20] = [
        0x45,
        0xc0,
        l0,
        l1,
        0,
        0,
        0,
        0,
        TTL,
        IPPROTO_ICMP,
        0,
        0,
        own[0],
        own[1],
        own[2],
        own[3],
        src[0],
        src[1],
        src[2],
        src[3],
    ];
    let check = checksum::finish(checksum::sum_bytes(&header));
    let (ty, code) = ((h.answer >> 8) as u8, h.answer as u8);
    // "Fragmentation needed" carries the next hop's MTU (RFC 1191).
    let mtu = if ty == ICMP_DEST_UNREACH && code == ICMP_FRAG_NEEDED {
        (h.mtu as u16).to_be_bytes()
    } else {
        [0, 0]
    };
    let icmp = ETH_HLEN + 20;
    let ok = pkt.write(0, [macs[1], macs[0]])
        && pkt.write(12, [0x08u8, 0x00])
        && pkt.write(ETH_HLEN, header)
        && pkt.write(ETH_HLEN + 10, check.to_be_bytes())
        && pkt.write(icmp, [ty, code, 0, 0, 0, 0, mtu[0], mtu[1]]);
    let done = match checksum::sum(&pkt, icmp, 8 + quote) {
        Some(s) if ok => pkt.write(icmp + 2, checksum::finish(s).to_be_bytes()),
        _ => false,
    };
    if !done {
        return drop::abandoned(ctx, reason);
    }
    sent_error(ctx, &h.port, reason)
}

/// The IPv4 total length and source of the packet.
#[inline(always)]
fn read_v4(pkt: &Packet) -> Option<[u32; 2]> {
    let total = u32::from(pkt.be16_at(ETH_HLEN + 2)?);
    let src = pkt.read::<[u8; 4]>(ETH_HLEN + 12)?;
    Some([total, u32::from_be_bytes(src)])
}

/// The error about an IPv6 packet, in place of it, back to the sender,
/// from the router's address `own`. A BPF subprogram, as [`error_v4`].
#[inline(never)]
fn error_v6(ctx: &XdpContext, h: &Hop, own: &[u8; 16]) -> u32 {
    let reason = reason_v6(h.answer);
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let (Some(payload), Some(src), Some(macs)) = (
        pkt.be16_at(ETH_HLEN + 4),
        pkt.read::<[u8; 16]>(ETH_HLEN + 8),
        pkt.read::<[[u8; 6]; 2]>(0),
    ) else {
        return drop::drop(ctx, h.port.index, DropReason::Malformed, NOTIFY);
    };
    let datagram = 40 + usize::from(payload);
    let quote = if datagram > QUOTE_V6 {
        QUOTE_V6
    } else {
        datagram
    };
    drop::answered(ctx, h.port.index, reason);
    if !reshape(ctx, GROW_V6, ETH_HLEN + GROW_V6 + quote) {
        return drop::abandoned(ctx, reason);
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let length = (8 + quote) as u16;
    let [l0, l1] = length.to_be_bytes();
    let (ty, code) = ((h.answer >> 8) as u8, h.answer as u8);
    // "Packet too big" carries the MTU of the next link.
    let mtu = if ty == ICMPV6_PKT_TOOBIG {
        h.mtu.to_be_bytes()
    } else {
        [0; 4]
    };
    let icmp = ETH_HLEN + 40;
    let ok = pkt.write(0, [macs[1], macs[0]])
        && pkt.write(12, [0x86u8, 0xdd])
        && pkt.write(ETH_HLEN, [0x60u8, 0, 0, 0, l0, l1, IPPROTO_ICMPV6, TTL])
        && pkt.write(ETH_HLEN + 8, [*own, src])
        && pkt.write(icmp, [ty, code, 0, 0, mtu[0], mtu[1], mtu[2], mtu[3]]);
    // The pseudo-header: both addresses, the length, the next header.
    let pseudo = checksum::sum(&pkt, ETH_HLEN + 8, 32)
        .map(|s| s + u32::from(length) + u32::from(IPPROTO_ICMPV6));
    let done = match (pseudo, checksum::sum(&pkt, icmp, 8 + quote)) {
        (Some(p), Some(s)) if ok => pkt.write(icmp + 2, checksum::finish(p + s).to_be_bytes()),
        _ => false,
    };
    if !done {
        return drop::abandoned(ctx, reason);
    }
    sent_error(ctx, &h.port, reason)
}

/// Sends an error back to `port`, or drops the packet after all.
#[inline(always)]
fn sent_error(ctx: &XdpContext, port: &PortInfo, reason: DropReason) -> u32 {
    match back(ctx, port, OUT_ICMP_ERROR, reason as u32, |s| {
        s.icmp_errors += 1
    }) {
        Ok(action) => action,
        Err(_) => drop::abandoned(ctx, reason),
    }
}

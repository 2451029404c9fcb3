//! Routing by a router's tables. A frame addressed to a router interface's
//! MAC (after port security) is routed: the router's route table
//! (`ROUTES_V4/V6`: its connected subnets and static routes) gives the
//! egress network, the router's MAC there and, for a static route, the
//! next hop; that network's neighbour table gives the port or group owning
//! the destination (or the next hop), fixed IPs and pair IPs alike; then
//! the frame is rewritten (MACs, TTL or hop limit, IPv4 checksum) and
//! redirected.
//!
//! What the router answers itself goes on by tail calls, through the
//! sender's egress rules (`to_router.rs`) to its ICMP program (`icmp.rs`):
//! echo requests to its own addresses, and the errors a packet it cannot
//! forward deserves (no route, no neighbour, TTL or hop limit expired,
//! larger than the egress MTU, UDP to the router).
//!
//! Routing runs in programs of its own (`route_v4`, `route_v6`) that
//! `from_vm` tail-calls into with the hop's context in `HOP`: a fresh
//! 512-byte stack and verifier budget, which the port-security pipeline
//! and routing did not fit in together.

use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};
use common::{
    DropReason, Hop, JUMP_ICMP_V4, JUMP_TO_EXTERNAL, JUMP_TO_ROUTER, NEIGH_PREFIX_BITS, Neigh,
    NeighV4Key, NeighV6Key, PortInfo, ROUTE_CONNECTED, ROUTE_EXTERNAL, ROUTE_NEXTHOP,
    ROUTE_PREFIX_BITS, Route, RouteV4Key, RouteV6Key, TARGET_GROUP, TARGET_PORT, TARGET_ROUTER,
    proto::{
        ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, ICMP_EXC_TTL, ICMP_FRAG_NEEDED,
        ICMP_HOST_UNREACH, ICMP_NET_UNREACH, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED,
        ICMPV6_ADDR_UNREACH, ICMPV6_DEST_UNREACH, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST,
        ICMPV6_EXC_HOPLIMIT, ICMPV6_NOROUTE, ICMPV6_PKT_TOOBIG, ICMPV6_PORT_UNREACH,
        ICMPV6_TIME_EXCEED, IP_DF, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, is_link_local_v6,
    },
};

use crate::{
    checksum, drop, forward, groups,
    maps::{HOP, JUMP, NEIGH_V4, NEIGH_V6, ROUTES_V4, ROUTES_V6},
    meta,
    packet::Packet,
    parse::{self, ETH_HLEN, Frag},
    stats,
};

/// Hands the packet to a routing program; returns only if the tail call
/// failed (the program is missing), which is a drop.
#[inline(always)]
pub fn enter(ctx: &XdpContext, slot: u32, port: &PortInfo, router: u32, jump: u32) -> DropReason {
    if let Some(hop) = HOP.get_ptr_mut(0) {
        // SAFETY: this CPU's entry; nothing else runs on it meanwhile.
        unsafe {
            *hop = Hop {
                slot,
                router,
                port: *port,
                ..Hop::default()
            };
            JUMP.tail_call(ctx, jump);
        }
    }
    DropReason::RedirectFailed
}

/// The hop `from_vm` (or a routing program) handed over.
#[inline(always)]
pub fn hop() -> Option<Hop> {
    // SAFETY: copied out at once.
    HOP.get(0).copied()
}

/// Hands the packet over to be answered by the router with ICMP
/// `ty`/`code` (an echo reply, or an error standing for a drop for
/// `reason`, which the ICMP program derives from the message again):
/// first to the sender's egress rules (`to_router`), then to the ICMP
/// program of its family. Returns `reason` if the tail call failed, for a
/// plain drop.
#[inline(always)]
fn answer(ctx: &XdpContext, ty: u8, code: u8, reason: DropReason, mtu: u32) -> DropReason {
    answer_by(ctx, JUMP_TO_ROUTER, ty, code, reason, mtu)
}

/// [`answer`] through program `jump`: `JUMP_TO_ROUTER`, or the ICMP
/// program itself for a packet whose sender's egress rules already
/// allowed it.
#[inline(always)]
fn answer_by(
    ctx: &XdpContext,
    jump: u32,
    ty: u8,
    code: u8,
    reason: DropReason,
    mtu: u32,
) -> DropReason {
    if let Some(hop) = HOP.get_ptr_mut(0) {
        // SAFETY: this CPU's entry, written by `enter` for this packet.
        unsafe {
            (*hop).answer = u32::from(ty) << 8 | u32::from(code);
            (*hop).mtu = mtu;
            JUMP.tail_call(ctx, jump);
        }
    }
    reason
}

/// Routes an IPv4 packet (already parsed and checked by `from_vm`); the
/// addresses are read again from the packet.
#[inline(always)]
pub fn ipv4(ctx: &XdpContext) -> u32 {
    let Some(h) = hop() else {
        return no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    finish(ctx, &h.port, ipv4_hop(ctx, &pkt, &h))
}

/// Routes an IPv6 packet handed over by `from_vm`.
#[inline(always)]
pub fn ipv6(ctx: &XdpContext) -> u32 {
    let Some(h) = hop() else {
        return no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    finish(ctx, &h.port, ipv6_hop(ctx, &pkt, &h))
}

#[inline(always)]
fn finish(ctx: &XdpContext, port: &PortInfo, r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => {
            stats::update(port.index, |s| s.routed += 1);
            action
        }
        Err(reason) => drop::drop(ctx, port.index, reason, drop::NOTIFY),
    }
}

/// The hand-over from `from_vm` is missing (the per-CPU entry always
/// exists, so this does not happen): a drop not tied to a port.
#[inline(always)]
pub fn no_hop(ctx: &XdpContext) -> u32 {
    drop::drop(ctx, 0, DropReason::RedirectFailed, drop::QUIET)
}

/// The router's route to an IPv4 address.
#[inline(always)]
pub fn route_v4(slot: u32, router: u32, addr: [u8; 4]) -> Option<Route> {
    let key = Key::new(ROUTE_PREFIX_BITS + 32, RouteV4Key { slot, router, addr });
    ROUTES_V4.get(&key).copied()
}

/// The router's route to an IPv6 address.
#[inline(always)]
pub fn route_v6(slot: u32, router: u32, addr: [u8; 16]) -> Option<Route> {
    let key = Key::new(ROUTE_PREFIX_BITS + 128, RouteV6Key { slot, router, addr });
    ROUTES_V6.get(&key).copied()
}

/// [`route_v4`] without the copy: a reference to the map's value.
#[inline(always)]
pub fn route_v4_ref(slot: u32, router: u32, addr: [u8; 4]) -> Option<&'static Route> {
    let key = Key::new(ROUTE_PREFIX_BITS + 32, RouteV4Key { slot, router, addr });
    ROUTES_V4.get(&key)
}

/// [`route_v6`] without the copy.
#[inline(always)]
pub fn route_v6_ref(slot: u32, router: u32, addr: [u8; 16]) -> Option<&'static Route> {
    let key = Key::new(ROUTE_PREFIX_BITS + 128, RouteV6Key { slot, router, addr });
    ROUTES_V6.get(&key)
}

#[inline(always)]
fn neigh_v4(slot: u32, network: u32, addr: [u8; 4]) -> Option<Neigh> {
    let key = Key::new(
        NEIGH_PREFIX_BITS + 32,
        NeighV4Key {
            slot,
            network,
            addr,
        },
    );
    NEIGH_V4.get(&key).copied()
}

#[inline(always)]
fn neigh_v6(slot: u32, network: u32, addr: [u8; 16]) -> Option<Neigh> {
    let key = Key::new(
        NEIGH_PREFIX_BITS + 128,
        NeighV6Key {
            slot,
            network,
            addr,
        },
    );
    NEIGH_V6.get(&key).copied()
}

/// Sources a router never forwards from (RFC 1812 5.3.7): "this network",
/// loopback, multicast, class E and broadcast.
#[inline(always)]
fn martian_v4(src: &[u8; 4]) -> bool {
    src[0] == 0 || src[0] == 127 || src[0] >= 224
}

/// The all-ones address of a connected IPv4 subnet: a directed broadcast,
/// which the router neither forwards nor answers with an error.
#[inline(always)]
fn subnet_broadcast(route: &Route, dst: &[u8; 4]) -> bool {
    let on_link = route.kind == ROUTE_CONNECTED
        || (route.kind == ROUTE_EXTERNAL && route.addr[..4] == [0; 4]);
    if !on_link || route.prefix_len > 30 {
        return false;
    }
    let host = u32::MAX >> (route.prefix_len & 31);
    u32::from_be_bytes(*dst) & host == host
}

#[inline(always)]
// Long on purpose: every decision reads the header right where its bounds
// were checked, one branch per outcome.
fn ipv4_hop(ctx: &XdpContext, pkt: &Packet, h: &Hop) -> Result<u32, DropReason> {
    let (slot, router) = (h.slot, h.router);
    let [src, dst] = pkt
        .read::<[[u8; 4]; 2]>(ETH_HLEN + 12)
        .ok_or(DropReason::Malformed)?;
    // Broadcast, multicast and "this network" destinations stay on their
    // link, and martian sources are never forwarded: no error either.
    if dst[0] >= 224 || dst[0] == 0 || martian_v4(&src) {
        return Err(DropReason::NoRoute);
    }
    let v4 = |ty, code, reason, mtu| answer(ctx, ty, code, reason, mtu);
    let Some(route) = route_v4(slot, router, dst) else {
        return Err(v4(
            ICMP_DEST_UNREACH,
            ICMP_NET_UNREACH,
            DropReason::NoRoute,
            0,
        ));
    };
    if subnet_broadcast(&route, &dst) {
        return Err(DropReason::NoRoute);
    }
    let external = route.kind == ROUTE_EXTERNAL;
    let via = [route.addr[0], route.addr[1], route.addr[2], route.addr[3]];
    // An external route's address is its next hop, or zero on link.
    let target = if route.kind == ROUTE_NEXTHOP || (external && via != [0; 4]) {
        via
    } else {
        dst
    };
    // The external network's neighbours are not in the neighbour tables
    // (they are learned on the uplink, by `to_external`).
    let neigh = match neigh_v4(slot, route.network, target) {
        Some(n) => n,
        None if external => Neigh::default(),
        None => {
            return Err(v4(
                ICMP_DEST_UNREACH,
                ICMP_HOST_UNREACH,
                DropReason::NoRoute,
                0,
            ));
        }
    };
    if neigh.kind == TARGET_ROUTER {
        if neigh.target == router && route.kind == ROUTE_CONNECTED {
            return Err(local_v4(ctx, pkt));
        }
        // Another router's address: routers do not route to each other.
        return Err(DropReason::NoRoute);
    }
    // TTL and protocol share a 16-bit word of the header checksum.
    let [ttl, proto] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    if ttl <= 1 {
        return Err(v4(
            ICMP_TIME_EXCEEDED,
            ICMP_EXC_TTL,
            DropReason::TtlExceeded,
            0,
        ));
    }
    let [total, frags] = pkt
        .read::<[[u8; 2]; 3]>(ETH_HLEN + 2)
        .map(|[t, _, f]| [u16::from_be_bytes(t), u16::from_be_bytes(f)])
        .ok_or(DropReason::Malformed)?;
    if route.mtu != 0 && total > route.mtu {
        // The datapath does not fragment: a sender that allows it
        // (no DF) loses the packet; one that does not learns the MTU.
        if frags & IP_DF == 0 {
            return Err(DropReason::MtuExceeded);
        }
        let mtu = u32::from(route.mtu);
        return Err(v4(
            ICMP_DEST_UNREACH,
            ICMP_FRAG_NEEDED,
            DropReason::MtuExceeded,
            mtu,
        ));
    }
    let check = pkt.be16_at(ETH_HLEN + 10).ok_or(DropReason::Malformed)?;
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    if !pkt.write(ETH_HLEN + 8, [ttl - 1, proto])
        || !pkt.write(
            ETH_HLEN + 10,
            checksum::replace(check, old, new).to_be_bytes(),
        )
    {
        return Err(DropReason::Malformed);
    }
    if external {
        return Err(leave(ctx, target));
    }
    deliver(ctx, pkt, slot, &h.port, &route, &neigh)
}

/// Hands a packet leaving through the router's external gateway over:
/// the sender's egress rules first (`to_router`, as for what the router
/// answers: no port receives it, so no `to_vm` applies them), then
/// `to_external`.
#[inline(always)]
fn leave(ctx: &XdpContext, via: [u8; 4]) -> DropReason {
    if let Some(hop) = HOP.get_ptr_mut(0) {
        // SAFETY: this CPU's entry, written by `enter` for this packet.
        unsafe {
            (*hop).then = JUMP_TO_EXTERNAL;
            (*hop).via = via;
            JUMP.tail_call(ctx, JUMP_TO_ROUTER);
        }
    }
    DropReason::RedirectFailed
}

/// An IPv4 packet for one of the router's own addresses: an echo request
/// is answered, UDP gets "port unreachable" (traceroute's last hop), the
/// rest is dropped. Returns the reason to drop for, if nothing answers.
#[inline(always)]
fn local_v4(ctx: &XdpContext, pkt: &Packet) -> DropReason {
    match local_v4_answer(ctx, pkt, JUMP_TO_ROUTER) {
        Ok(reason) | Err(reason) => reason,
    }
}

/// As [`local_v4`], for a packet that already passed its sender's egress
/// rules on its way to the router's external gateway (`to_router`): to the
/// gateway's own address, answered by the ICMP program directly.
#[inline(always)]
pub fn local_v4_checked(ctx: &XdpContext, pkt: &Packet) -> DropReason {
    match local_v4_answer(ctx, pkt, JUMP_ICMP_V4) {
        Ok(reason) | Err(reason) => reason,
    }
}

/// [`local_v4`]'s body: every read returns early when it fails, so that
/// no register holds a packet pointer on one path and a value on another
/// (the verifier refuses the arithmetic LLVM then shares between them).
#[inline(always)]
fn local_v4_answer(ctx: &XdpContext, pkt: &Packet, jump: u32) -> Result<DropReason, DropReason> {
    let reason = DropReason::ToRouter;
    let [vihl, _] = pkt.read::<[u8; 2]>(ETH_HLEN).ok_or(DropReason::Malformed)?;
    let [_, proto] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    if proto == IPPROTO_UDP {
        let (ty, code) = (ICMP_DEST_UNREACH, ICMP_PORT_UNREACH);
        return Ok(answer_by(ctx, jump, ty, code, reason, 0));
    }
    if proto != IPPROTO_ICMP {
        return Ok(reason);
    }
    let l4 = ETH_HLEN + (vihl & 0x0f) as usize * 4;
    let [ty, _] = pkt.read::<[u8; 2]>(l4).ok_or(reason)?;
    if ty != ICMP_ECHO {
        return Ok(reason);
    }
    Ok(answer_by(ctx, jump, ICMP_ECHOREPLY, 0, reason, 0))
}

#[inline(always)]
// Long on purpose: as `ipv4_hop`.
fn ipv6_hop(ctx: &XdpContext, pkt: &Packet, h: &Hop) -> Result<u32, DropReason> {
    let (slot, router) = (h.slot, h.router);
    let [src, dst] = pkt
        .read::<[[u8; 16]; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    // Multicast destinations and unspecified or multicast sources are
    // never routed (RFC 4291), nor answered with an error.
    if dst[0] == 0xff || src == [0; 16] || src[0] == 0xff {
        return Err(DropReason::NoRoute);
    }
    if is_link_local_v6(&dst) {
        // Only the router's own link-local address on this link.
        return match neigh_v6(slot, h.port.network, dst) {
            Some(n) if n.kind == TARGET_ROUTER && n.target == router => Err(local_v6(ctx, pkt)),
            _ => Err(DropReason::NoRoute),
        };
    }
    let v6 = |ty, code, reason, mtu| answer(ctx, ty, code, reason, mtu);
    let Some(route) = route_v6(slot, router, dst) else {
        return Err(v6(
            ICMPV6_DEST_UNREACH,
            ICMPV6_NOROUTE,
            DropReason::NoRoute,
            0,
        ));
    };
    let target = if route.kind == ROUTE_NEXTHOP {
        route.addr
    } else {
        dst
    };
    let Some(neigh) = neigh_v6(slot, route.network, target) else {
        return Err(v6(
            ICMPV6_DEST_UNREACH,
            ICMPV6_ADDR_UNREACH,
            DropReason::NoRoute,
            0,
        ));
    };
    if neigh.kind == TARGET_ROUTER {
        if neigh.target == router && route.kind == ROUTE_CONNECTED {
            return Err(local_v6(ctx, pkt));
        }
        return Err(DropReason::NoRoute);
    }
    // A link-local source never leaves its link (RFC 4291 2.5.6).
    if is_link_local_v6(&src) {
        return Err(DropReason::NoRoute);
    }
    // Payload length and next header come before the hop limit; IPv6 has
    // no header checksum to update.
    let [plen0, plen1, next, hops] = pkt
        .read::<[u8; 4]>(ETH_HLEN + 4)
        .ok_or(DropReason::Malformed)?;
    if hops <= 1 {
        let reason = DropReason::TtlExceeded;
        return Err(v6(ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, reason, 0));
    }
    let length = 40 + u32::from(u16::from_be_bytes([plen0, plen1]));
    if route.mtu != 0 && length > u32::from(route.mtu) {
        let mtu = u32::from(route.mtu);
        return Err(v6(ICMPV6_PKT_TOOBIG, 0, DropReason::MtuExceeded, mtu));
    }
    if !pkt.write(ETH_HLEN + 6, [next, hops - 1]) {
        return Err(DropReason::Malformed);
    }
    deliver(ctx, pkt, slot, &h.port, &route, &neigh)
}

/// The port owning `addr` on the router's network of that address (its
/// connected subnet), if a single port owns it (not a group, not the
/// router): who a packet from `addr` routed by `router` came from.
#[inline(always)]
pub fn owner_v4(slot: u32, router: u32, addr: [u8; 4]) -> Option<u32> {
    let key = Key::new(ROUTE_PREFIX_BITS + 32, RouteV4Key { slot, router, addr });
    let network = ROUTES_V4.get(&key)?.network;
    let key = Key::new(
        NEIGH_PREFIX_BITS + 32,
        NeighV4Key {
            slot,
            network,
            addr,
        },
    );
    NEIGH_V4
        .get(&key)
        .filter(|n| n.kind == TARGET_PORT)
        .map(|n| n.target)
}

/// [`owner_v4`] for IPv6.
#[inline(always)]
pub fn owner_v6(slot: u32, router: u32, addr: [u8; 16]) -> Option<u32> {
    let key = Key::new(ROUTE_PREFIX_BITS + 128, RouteV6Key { slot, router, addr });
    let network = ROUTES_V6.get(&key)?.network;
    let key = Key::new(
        NEIGH_PREFIX_BITS + 128,
        NeighV6Key {
            slot,
            network,
            addr,
        },
    );
    NEIGH_V6
        .get(&key)
        .filter(|n| n.kind == TARGET_PORT)
        .map(|n| n.target)
}

/// An IPv6 packet for one of the router's own addresses: as [`local_v4`].
#[inline(always)]
fn local_v6(ctx: &XdpContext, pkt: &Packet) -> DropReason {
    let ip = match parse::ipv6(pkt) {
        Ok(ip) => ip,
        Err(reason) => return reason,
    };
    let reason = DropReason::ToRouter;
    if ip.proto == IPPROTO_ICMPV6 && ip.frag == Frag::None {
        let Some([ty, _]) = pkt.read::<[u8; 2]>(ip.l4_off) else {
            return reason;
        };
        if ty != ICMPV6_ECHO_REQUEST {
            return reason;
        }
        return answer(ctx, ICMPV6_ECHO_REPLY, 0, reason, 0);
    }
    if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
        let (ty, code) = (ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH);
        return answer(ctx, ty, code, reason, 0);
    }
    reason
}

/// Rewrites the Ethernet header for the next hop and sends the frame to the
/// destination's port, its group's active member, or every member.
#[inline(always)]
fn deliver(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    route: &Route,
    neigh: &Neigh,
) -> Result<u32, DropReason> {
    if !pkt.write(6, route.mac) {
        return Err(DropReason::Malformed);
    }
    match neigh.kind {
        TARGET_PORT => {
            if !pkt.write(0, neigh.mac) {
                return Err(DropReason::Malformed);
            }
            meta::tag(ctx, port, 0)?;
            forward::to_port(ctx, port, neigh.target)
        }
        TARGET_GROUP => {
            let group = neigh.target;
            if let Some(active) = groups::active_member(slot, group) {
                let mac = groups::member_mac(slot, group, active).ok_or(DropReason::NoRoute)?;
                if !pkt.write(0, mac) {
                    return Err(DropReason::Malformed);
                }
                meta::tag(ctx, port, 0)?;
                match forward::to_port(ctx, port, active) {
                    Err(DropReason::RedirectFailed) => groups::deactivate(group, active),
                    done => return done,
                }
                // The metadata is in place; only the group is missing.
                if !meta::set_group(ctx, group) {
                    return Err(DropReason::RedirectFailed);
                }
                return forward::flood_group(ctx, slot, port, group);
            }
            // Every member, each addressed by `to_vm` with its own MAC for
            // the address (members may bind the address to different MACs).
            meta::tag(ctx, port, group)?;
            forward::flood_group(ctx, slot, port, group)
        }
        _ => Err(DropReason::NoRoute),
    }
}

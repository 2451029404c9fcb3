//! Routing between the subnets attached to a router. A frame addressed to a
//! router interface's MAC (after port security) is routed: the router's
//! connected-subnet table (`ROUTES_V4/V6`) gives the egress network and the
//! router's MAC there, that network's neighbour table gives the port or
//! group owning the destination (fixed IPs and pair IPs alike), then the
//! frame is rewritten (MACs, TTL or hop limit, IPv4 checksum) and redirected.
//!
//! Routing runs in programs of its own (`route_v4`, `route_v6`) that
//! `from_vm` tail-calls into with the hop's context in `HOP`: a fresh
//! 512-byte stack and verifier budget, which the port-security pipeline
//! and routing did not fit in together.

use aya_ebpf::{maps::lpm_trie::Key, programs::XdpContext};
use common::{
    DropReason, Hop, NEIGH_PREFIX_BITS, Neigh, NeighV4Key, NeighV6Key, PortInfo, ROUTE_PREFIX_BITS,
    Route, RouteV4Key, RouteV6Key, TARGET_GROUP, TARGET_PORT,
};

use crate::{
    drop, forward, groups,
    maps::{HOP, JUMP, NEIGH_V4, NEIGH_V6, ROUTES_V4, ROUTES_V6},
    meta,
    packet::Packet,
    parse::ETH_HLEN,
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
            };
            JUMP.tail_call(ctx, jump);
        }
    }
    DropReason::RedirectFailed
}

/// The hop `from_vm` handed over.
#[inline(always)]
fn hop() -> Option<Hop> {
    // SAFETY: copied out at once.
    HOP.get(0).copied()
}

/// Routes an IPv4 packet (already parsed and checked by `from_vm`); the
/// addresses are read again from the packet.
#[inline(always)]
pub fn ipv4(ctx: &XdpContext) -> u32 {
    let Some(h) = hop() else {
        return no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    finish(ctx, &h.port, ipv4_hop(ctx, &pkt, h.slot, &h.port, h.router))
}

/// Routes an IPv6 packet handed over by `from_vm`.
#[inline(always)]
pub fn ipv6(ctx: &XdpContext) -> u32 {
    let Some(h) = hop() else {
        return no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    finish(ctx, &h.port, ipv6_hop(ctx, &pkt, h.slot, &h.port, h.router))
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
fn no_hop(ctx: &XdpContext) -> u32 {
    drop::drop(ctx, 0, DropReason::RedirectFailed, drop::QUIET)
}

#[inline(always)]
fn ipv4_hop(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    router: u32,
) -> Result<u32, DropReason> {
    let [src, dst] = pkt
        .read::<[[u8; 4]; 2]>(ETH_HLEN + 12)
        .ok_or(DropReason::Malformed)?;
    // Broadcast, multicast and "this network" destinations stay on their
    // link; 0.0.0.0 and loopback sources are never forwarded (RFC 1812).
    if dst[0] >= 224 || dst[0] == 0 || src[0] == 0 || src[0] == 127 {
        return Err(DropReason::NoRoute);
    }
    let key = Key::new(
        ROUTE_PREFIX_BITS + 32,
        RouteV4Key {
            slot,
            router,
            addr: dst,
        },
    );
    let route = *ROUTES_V4.get(&key).ok_or(DropReason::NoRoute)?;
    let key = Key::new(
        NEIGH_PREFIX_BITS + 32,
        NeighV4Key {
            slot,
            network: route.network,
            addr: dst,
        },
    );
    let neigh = *NEIGH_V4.get(&key).ok_or(DropReason::NoRoute)?;
    // TTL and protocol share a 16-bit word of the header checksum.
    let [ttl, proto] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    if ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let check = pkt.be16_at(ETH_HLEN + 10).ok_or(DropReason::Malformed)?;
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    if !pkt.write(ETH_HLEN + 8, [ttl - 1, proto])
        || !pkt.write(
            ETH_HLEN + 10,
            checksum_replace(check, old, new).to_be_bytes(),
        )
    {
        return Err(DropReason::Malformed);
    }
    deliver(ctx, pkt, slot, port, &route, &neigh)
}

#[inline(always)]
fn ipv6_hop(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    router: u32,
) -> Result<u32, DropReason> {
    let [src, dst] = pkt
        .read::<[[u8; 16]; 2]>(ETH_HLEN + 8)
        .ok_or(DropReason::Malformed)?;
    // Multicast and link-local addresses are never routed (RFC 4291), nor
    // is the unspecified source.
    let link_local = |a: &[u8; 16]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
    if dst[0] == 0xff || link_local(&dst) || link_local(&src) || src == [0; 16] {
        return Err(DropReason::NoRoute);
    }
    let key = Key::new(
        ROUTE_PREFIX_BITS + 128,
        RouteV6Key {
            slot,
            router,
            addr: dst,
        },
    );
    let route = *ROUTES_V6.get(&key).ok_or(DropReason::NoRoute)?;
    let key = Key::new(
        NEIGH_PREFIX_BITS + 128,
        NeighV6Key {
            slot,
            network: route.network,
            addr: dst,
        },
    );
    let neigh = *NEIGH_V6.get(&key).ok_or(DropReason::NoRoute)?;
    // Payload length and next header come before the hop limit; IPv6 has
    // no header checksum to update.
    let [next, hops] = pkt
        .read::<[u8; 2]>(ETH_HLEN + 6)
        .ok_or(DropReason::Malformed)?;
    if hops <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    if !pkt.write(ETH_HLEN + 6, [next, hops - 1]) {
        return Err(DropReason::Malformed);
    }
    deliver(ctx, pkt, slot, port, &route, &neigh)
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

/// RFC 1624 incremental update of a one's complement checksum when one
/// 16-bit word changes from `old` to `new`.
#[inline(always)]
fn checksum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = (!check) as u32 + (!old) as u32 + new as u32;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
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
        // A router's own address: nothing listens on it.
        _ => Err(DropReason::NoRoute),
    }
}

//! The pipeline for frames a VM sends: port lookup, parsing, port security,
//! group claims, the ARP/ND responder, then routing or L2 forwarding.

use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::warn;
use common::{
    ADDR_F_SHARED, DropReason, JUMP_ROUTE_V4, JUMP_ROUTE_V6, OUT_REPLY, PORT_F_SECURITY, PortInfo,
    TARGET_PORT, TARGET_ROUTER, TX_F_STALE,
    proto::{
        ARPOP_REPLY, ARPOP_REQUEST, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMPV6_NEIGH_ADVERT,
        ICMPV6_NEIGH_SOLICIT, ICMPV6_ROUTER_SOLICIT, IPPROTO_ICMPV6,
    },
};

use crate::{
    advert, config, drop, fastpath, forward, groups, meta, packet::Packet, parse, portsec,
    responder, route, stats,
};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let ifindex = ctx.ingress_ifindex() as u32;
    // The flow cache first: a hit needs no other lookup. A traced frame
    // takes the full path: it shows every step, and an entry it found
    // would count it as a hit.
    let cached = if meta::tracing(ctx) {
        fastpath::MISS
    } else {
        fastpath::lookup(&pkt, ifindex)
    };
    if cached < fastpath::STALE {
        return fastpath::forward(ctx, pkt.len(), cached);
    }
    let stale = if cached == fastpath::STALE {
        TX_F_STALE
    } else {
        0
    };
    let slot = config::active_slot();
    let Some(port) = config::port_by_ifindex(slot, ifindex) else {
        // Not a port (yet, or any more): fail closed. Logged, not
        // streamed: a drop event names the port that sent the frame.
        warn!(
            ctx,
            "dropped a frame from ifindex {}, which is not a port", ifindex
        );
        return drop::drop(ctx, 0, DropReason::UnknownPort, drop::QUIET);
    };
    stats::update(port.index, |s| {
        s.rx_packets += 1;
        s.rx_bytes += pkt.len() as u64;
    });
    match pipeline(ctx, &pkt, slot, &port, stale) {
        Ok(action) => action,
        Err(reason) => drop::drop(ctx, port.index, reason, drop::NOTIFY),
    }
}

/// Each protocol is checked in its own branch, right where it is parsed:
/// merging the parsed headers into one enum first let LLVM pack header
/// offsets into registers shared between variants, whose bounds the
/// verifier then lost.
#[inline(always)]
// Long on purpose: see above; one branch per protocol, inline.
fn pipeline(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    stale: u32,
) -> Result<u32, DropReason> {
    let eth = parse::eth(pkt)?;
    // A traced frame claims nothing: tracing must not move a group's
    // active member.
    let claims = !meta::tracing(ctx);
    let dest = forward::lookup(slot, port, &eth.dst);
    let router = if dest.kind == TARGET_ROUTER {
        dest.target
    } else {
        0
    };
    let secure = port.flags & PORT_F_SECURITY != 0;
    // Whether the flow cache may remember this frame's verdict (to_vm
    // decides, see fastpath): a unicast to one port, from a source that
    // claims nothing (a shared MAC or address moves a group's active
    // member, which the cache would skip), TCP or UDP and not a fragment.
    // One variable with `stale` (kept by [`fastpath::uncache`]): from_vm's
    // stack is full.
    let mut cache = if dest.kind == TARGET_PORT && claims {
        fastpath::cacheable_flags(slot) | stale
    } else {
        stale
    };
    if secure {
        let mac_flags = portsec::mac_flags(slot, port.index, eth.src).ok_or(DropReason::SrcMac)?;
        if mac_flags & ADDR_F_SHARED != 0 {
            cache = fastpath::uncache(cache);
            if claims {
                groups::claim_mac(slot, port, eth.src);
            }
        }
    }
    match eth.proto {
        ETH_P_ARP => {
            cache = fastpath::uncache(cache);
            let arp = parse::arp(pkt)?;
            if secure {
                portsec::check_arp(slot, port, &eth, &arp)?;
            }
            // Gratuitous ARP (sender = target) and replies prove ownership.
            if arp.oper == ARPOP_REPLY || (arp.spa == arp.tpa && arp.spa != [0; 4]) {
                if claims {
                    groups::claim_v4(slot, port, arp.spa);
                }
            } else if arp.oper == ARPOP_REQUEST {
                let action = responder::arp(pkt, slot, port, &eth.src, &arp);
                if action != 0 {
                    meta::record(ctx, OUT_REPLY, port.index);
                    return Ok(action);
                }
            }
        }
        ETH_P_IP => {
            let ip = parse::ipv4(pkt)?;
            if secure {
                let flags = portsec::check_ipv4(pkt, slot, port, &eth, &ip)?;
                if flags & ADDR_F_SHARED != 0 {
                    cache = fastpath::uncache(cache);
                    if claims {
                        groups::claim_v4(slot, port, ip.src);
                    }
                }
            }
            if !fastpath::may_cache(ip.proto, ip.frag) {
                cache = fastpath::uncache(cache);
            }
            if router != 0 {
                return Err(route::enter(ctx, slot, port, router, JUMP_ROUTE_V4));
            }
        }
        ETH_P_IPV6 => {
            let ip = parse::ipv6(pkt)?;
            if secure {
                let flags = portsec::check_ipv6(pkt, slot, port, &eth, &ip)?;
                if flags & ADDR_F_SHARED != 0 {
                    cache = fastpath::uncache(cache);
                    if claims {
                        groups::claim_v6(slot, port, ip.src);
                    }
                }
            }
            if !fastpath::may_cache(ip.proto, ip.frag) {
                cache = fastpath::uncache(cache);
            }
            if ip.proto == IPPROTO_ICMPV6 && ip.frag == parse::Frag::None {
                let icmp = pkt
                    .read::<[u8; 2]>(ip.l4_off)
                    .ok_or(DropReason::Malformed)?;
                if icmp[0] == ICMPV6_NEIGH_ADVERT {
                    // Port security (when on) checked the target is the port's.
                    let target = pkt
                        .read::<[u8; 16]>(ip.l4_off + 8)
                        .ok_or(DropReason::Malformed)?;
                    if claims {
                        groups::claim_v6(slot, port, target);
                    }
                } else if icmp[0] == ICMPV6_NEIGH_SOLICIT {
                    let action = responder::nd(pkt, slot, port, &eth.src, &ip);
                    if action != 0 {
                        meta::record(ctx, OUT_REPLY, port.index);
                        return Ok(action);
                    }
                } else if icmp[0] == ICMPV6_ROUTER_SOLICIT && advert::advertised(slot, port) {
                    return Err(advert::enter(ctx, slot, port));
                }
            }
            if router != 0 {
                return Err(route::enter(ctx, slot, port, router, JUMP_ROUTE_V6));
            }
        }
        _ => {
            if secure {
                return Err(DropReason::Ethertype);
            }
            cache = fastpath::uncache(cache);
        }
    }
    // The sender travels with the frame, for the receiver's security groups.
    meta::tag_flags(ctx, port, cache)?;
    forward::l2(ctx, slot, port, dest)
}

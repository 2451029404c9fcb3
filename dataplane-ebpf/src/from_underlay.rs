//! Frames from other chassis: XDP on the underlay interface. VXLAN frames
//! (UDP to port 4789) from a live chassis (`CHASSIS`) for a known network
//! (`VNIS`) lose their outer headers and are delivered to local ports as
//! frames of the remote port that sent them: its host applied its port
//! security and egress rules, so this host applies the receiver's view and
//! ingress rules (`to_vm`), with the sender's identity taken from what it
//! can trust (the network, the source MAC, the sending chassis). Claims of
//! shared addresses in them (gratuitous ARP, ARP replies, neighbour
//! advertisements) move the group's active member here too, before the
//! database says so. Everything else on the underlay is the host's own
//! traffic and passes.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use common::{
    ChassisKey, DropReason, PORT_F_REMOTE, PortInfo, RemotePortKey, TARGET_PORT, TARGET_ROUTER,
    VXLAN_FLAG_VNI, VXLAN_OVERHEAD, VXLAN_PORT, VniKey,
    proto::{
        ARPOP_REPLY, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMPV6_NEIGH_ADVERT, IPPROTO_ICMPV6,
        IPPROTO_UDP,
    },
};

use crate::{
    config,
    drop::{self, NOTIFY},
    forward, groups,
    maps::{CHASSIS, REMOTE_PORTS, TUNNEL, VNIS},
    meta,
    packet::Packet,
    parse::{self, ETH_HLEN},
    portsec, route,
};

/// The outer headers' facts this program needs.
struct Outer {
    src: [u8; 4],
    dst: [u8; 4],
    vni: u32,
}

/// A VXLAN frame over IPv4 (no options, not fragmented), or None.
#[inline(always)]
fn vxlan(pkt: &Packet) -> Option<Outer> {
    if pkt.be16_at(12)? != ETH_P_IP {
        return None;
    }
    let [vihl, _] = pkt.read::<[u8; 2]>(ETH_HLEN)?;
    let [frag0, frag1, _, proto] = pkt.read::<[u8; 4]>(ETH_HLEN + 6)?;
    let fragmented = u16::from_be_bytes([frag0, frag1]) & 0x3fff != 0;
    if vihl != 0x45 || proto != IPPROTO_UDP || fragmented {
        return None;
    }
    let [s0, s1, s2, s3, d0, d1, d2, d3] = pkt.read::<[u8; 8]>(ETH_HLEN + 12)?;
    let l4 = ETH_HLEN + 20;
    if pkt.be16_at(l4 + 2)? != VXLAN_PORT {
        return None;
    }
    let [flags, _, _, _, v0, v1, v2, _] = pkt.read::<[u8; 8]>(l4 + 8)?;
    if flags & VXLAN_FLAG_VNI == 0 {
        return None;
    }
    Some(Outer {
        src: [s0, s1, s2, s3],
        dst: [d0, d1, d2, d3],
        vni: u32::from_be_bytes([0, v0, v1, v2]),
    })
}

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let Some(outer) = vxlan(&pkt) else {
        return xdp_action::XDP_PASS;
    };
    let Some(t) = TUNNEL.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let (local_ip, tunnel) = (t.local_ip, t.port);
    if outer.dst != local_ip {
        // Another host's (a flooded underlay frame): not ours to take.
        return xdp_action::XDP_PASS;
    }
    let slot = config::active_slot();
    // Drops before the sender is known are charged to no port (the
    // "unattributed" counters of `show ports`).
    let key = ChassisKey {
        slot,
        ip: outer.src,
    };
    // SAFETY: copied out at once.
    let Some(chassis) = (unsafe { CHASSIS.get(key) }).map(|c| c.index) else {
        return drop::drop(ctx, 0, DropReason::TunnelSource, NOTIFY);
    };
    let key = VniKey {
        slot,
        vni: outer.vni,
    };
    // SAFETY: copied out at once.
    let Some(network) = (unsafe { VNIS.get(key) }).map(|v| v.network) else {
        return drop::drop(ctx, 0, DropReason::TunnelVni, NOTIFY);
    };
    // SAFETY: ctx.ctx is the program's xdp_md.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, VXLAN_OVERHEAD as i32) } != 0 {
        return drop::drop(ctx, 0, DropReason::Malformed, NOTIFY);
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let unknown = PortInfo {
        index: tunnel,
        network,
        ..PortInfo::default()
    };
    match inner(ctx, &pkt, slot, chassis, &unknown) {
        Ok(action) => action,
        Err((port, reason)) => drop::drop(ctx, port, reason, NOTIFY),
    }
}

/// The decapsulated frame: its sender, its claims, its delivery.
#[inline(always)]
fn inner(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    chassis: u32,
    unknown: &PortInfo,
) -> Result<u32, (u32, DropReason)> {
    let eth = parse::eth(pkt).map_err(|r| (unknown.index, r))?;
    let sender = sender(pkt, slot, chassis, unknown, &eth).map_err(|r| (0, r))?;
    if sender.flags & PORT_F_REMOTE != 0 && !meta::tracing(ctx) {
        claims(pkt, slot, &sender, eth.proto, &eth.src);
    }
    meta::tag_from_tunnel(ctx, &sender).map_err(|r| (sender.index, r))?;
    let dest = forward::lookup(slot, &sender, &eth.dst);
    forward::l2(ctx, slot, &sender, dest).map_err(|r| (sender.index, r))
}

/// Who sent the frame: the remote port whose MAC it comes from, if that
/// port lives on the sending chassis; nobody known (no identity) for a MAC
/// no single remote port has. A local port's MAC from another chassis is
/// refused. A frame another chassis routed comes from the router's MAC:
/// its sender is found by its source address ([`routed_sender`]).
#[inline(always)]
fn sender(
    pkt: &Packet,
    slot: u32,
    chassis: u32,
    unknown: &PortInfo,
    eth: &parse::Eth,
) -> Result<PortInfo, DropReason> {
    let entry = forward::lookup(slot, unknown, &eth.src);
    if entry.kind == TARGET_ROUTER {
        return Ok(routed_sender(
            pkt,
            slot,
            chassis,
            unknown,
            eth.proto,
            entry.target,
        ));
    }
    if entry.kind != TARGET_PORT {
        return Ok(*unknown);
    }
    let key = RemotePortKey {
        slot,
        port: entry.target,
    };
    // SAFETY: copied out at once.
    match unsafe { REMOTE_PORTS.get(key) }.copied() {
        Some(r) if r.chassis == chassis => Ok(r.info),
        _ => Err(DropReason::TunnelSource),
    }
}

/// The identity of a frame routed on the sending chassis (its router
/// rewrote the source MAC): the port owning its source address on the
/// router's network of that address, if that port lives on the sending
/// chassis (whose port security let the address through, so the address
/// names its sender). Anything less certain (a shared address, an owner
/// elsewhere) leaves the sender unknown: only rules without a remote group
/// can then allow it, never more than the sender's own rules would.
#[inline(always)]
fn routed_sender(
    pkt: &Packet,
    slot: u32,
    chassis: u32,
    unknown: &PortInfo,
    proto: u16,
    router: u32,
) -> PortInfo {
    let owner = match proto {
        ETH_P_IP => parse::ipv4(pkt)
            .ok()
            .and_then(|ip| route::owner_v4(slot, router, ip.src)),
        ETH_P_IPV6 => parse::ipv6(pkt)
            .ok()
            .and_then(|ip| route::owner_v6(slot, router, ip.src)),
        _ => None,
    };
    let Some(port) = owner else {
        return *unknown;
    };
    let key = RemotePortKey { slot, port };
    // SAFETY: copied out at once.
    match unsafe { REMOTE_PORTS.get(key) }.copied() {
        Some(r) if r.chassis == chassis => PortInfo {
            identity: r.info.identity,
            ..*unknown
        },
        _ => *unknown,
    }
}

/// Claims of shared addresses by a remote member: gratuitous ARP and ARP
/// replies, neighbour advertisements, frames from a shared MAC.
#[inline(always)]
fn claims(pkt: &Packet, slot: u32, sender: &PortInfo, proto: u16, src: &[u8; 6]) {
    if portsec::mac_flags(slot, sender.index, *src).is_some_and(|f| f & common::ADDR_F_SHARED != 0)
    {
        groups::claim_mac(slot, sender, *src);
    }
    if proto == ETH_P_ARP {
        if let Ok(arp) = parse::arp(pkt) {
            if arp.oper == ARPOP_REPLY || (arp.spa == arp.tpa && arp.spa != [0; 4]) {
                groups::claim_v4(slot, sender, arp.spa);
            }
        }
    } else if proto == ETH_P_IPV6 {
        if let Ok(ip) = parse::ipv6(pkt) {
            if ip.proto == IPPROTO_ICMPV6 && ip.frag == parse::Frag::None {
                if let Some([ty, _]) = pkt.read::<[u8; 2]>(ip.l4_off) {
                    if ty == ICMPV6_NEIGH_ADVERT {
                        if let Some(target) = pkt.read::<[u8; 16]>(ip.l4_off + 8) {
                            groups::claim_v6(slot, sender, target);
                        }
                    }
                }
            }
        }
    }
}

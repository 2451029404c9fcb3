//! `to_external`: a routed packet leaving through its router's external
//! gateway, after the sender's egress rules (`to_router`). Its source is
//! translated as Neutron's router does (to the fixed IP's floating IP, or
//! else, with `enable_snat`, to the gateway's address and a port of its
//! own; without it, not at all), its next hop's MAC is taken from the
//! neighbours learned on the external network, and it is sent out of the
//! uplink. A next hop not known yet gets an ARP request in the packet's
//! place (at most one a second per address): the packet is lost, as the
//! first packet to an unresolved neighbour is in many routers. A packet
//! for one of the router's own external addresses turns back in
//! (`hairpin.rs`).

use aya_ebpf::{
    bindings::{BPF_ANY, xdp_action},
    helpers::{bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use common::{
    DropReason, ExtAddrKey, ExtNeigh, ExtNeighKey, FloatingKey, GATEWAY_F_SNAT, Gateway,
    GatewayKey, Hop, NAT_OUT, NatKey, OUT_DROP, OUT_EXTERNAL,
    proto::{ARPHRD_ETHER, ARPOP_REQUEST, ETH_P_ARP, ETH_P_IP},
};

use crate::{
    drop::{self, NOTIFY},
    hairpin,
    maps::{EXT_ADDRS, EXT_NEIGH, FLOATING, GATEWAYS},
    meta, nat,
    packet::Packet,
    parse::{self, ETH_HLEN, Frag, Ipv4},
    route, stats,
};

/// How often an unresolved next hop is asked for.
const ARP_RETRY_NS: u64 = 1_000_000_000;

/// Length of an Ethernet frame holding an ARP request for IPv4.
const ARP_FRAME_LEN: usize = ETH_HLEN + 28;

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let Some(h) = route::hop() else {
        return route::no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    match leave(ctx, &pkt, &h) {
        Ok(action) => {
            stats::update(h.port.index, |s| s.routed += 1);
            action
        }
        Err(reason) => drop::drop(ctx, h.port.index, reason, NOTIFY),
    }
}

#[inline(always)]
fn leave(ctx: &XdpContext, pkt: &Packet, h: &Hop) -> Result<u32, DropReason> {
    let key = GatewayKey {
        slot: h.slot,
        router: h.router,
    };
    // SAFETY: copied out at once.
    let gw = unsafe { GATEWAYS.get(key) }
        .copied()
        .ok_or(DropReason::NoRoute)?;
    let ip = parse::ipv4(pkt)?;
    // A floating IP or the gateway's address reached from inside turns
    // back in (no uplink needed).
    let mine = ExtAddrKey {
        slot: h.slot,
        network: gw.network,
        addr: ip.dst,
    };
    // SAFETY: copied out at once.
    if let Some(me) = unsafe { EXT_ADDRS.get(mine) }.copied() {
        return Err(hairpin::turn(ctx, pkt, h, &gw, &ip, &me));
    }
    if gw.ifindex == 0 {
        return Err(DropReason::NoUplink);
    }
    // The next hop the routing program found (`Hop::via`).
    let next = h.via;
    translate(ctx, pkt, h, &gw, &ip, false)?;
    let nk = ExtNeighKey {
        network: gw.network,
        addr: next,
    };
    // SAFETY: copied out at once.
    let known = unsafe { EXT_NEIGH.get(nk) }.copied();
    let mac = match known {
        Some(n) if n.mac != [0; 6] => n.mac,
        _ => return resolve(ctx, h, &gw, &nk, known),
    };
    if !(pkt.write(0, mac) && pkt.write(6, gw.mac)) {
        return Err(DropReason::Malformed);
    }
    meta::record(ctx, OUT_EXTERNAL, gw.ifindex);
    // SAFETY: a helper call with plain arguments.
    Ok(unsafe { bpf_redirect(gw.ifindex, 0) } as u32)
}

/// The source translation: the fixed IP's floating IP, else SNAT if the
/// gateway does it (a `hairpin` always does), else none. A hairpinned
/// packet is not counted as leaving.
#[inline(always)]
pub fn translate(
    ctx: &XdpContext,
    pkt: &Packet,
    h: &Hop,
    gw: &Gateway,
    ip: &Ipv4,
    hairpin: bool,
) -> Result<(), DropReason> {
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
        if !hairpin {
            nat::count(|s| s.floating_out += 1);
        }
        return Ok(());
    }
    if gw.flags & GATEWAY_F_SNAT == 0 && !hairpin {
        nat::count(|s| s.routed_out += 1);
        return Ok(());
    }
    // A later fragment has no ports to translate by.
    if ip.frag != Frag::None {
        return Err(DropReason::IpFragment);
    }
    let f = nat::port_field(pkt, ip, false).ok_or(DropReason::NoNat)?;
    let local_port = pkt.read::<[u8; 2]>(f.off).ok_or(DropReason::Malformed)?;
    let remote_port = nat::peer_port(pkt, ip, true).ok_or(DropReason::Malformed)?;
    let k = NatKey {
        router: h.router,
        proto: ip.proto,
        dir: NAT_OUT,
        local_port,
        local: ip.src,
        remote: ip.dst,
        remote_port,
        _pad: [0; 2],
    };
    let port = nat::snat_port(&k, gw.addr, meta::tracing(ctx))?;
    if !(nat::set_addr(pkt, ip, nat::SRC_OFF, gw.addr) && nat::set_port(pkt, &f, port)) {
        return Err(DropReason::Malformed);
    }
    if !hairpin {
        nat::count(|s| s.snat_out += 1);
    }
    Ok(())
}

/// The next hop's MAC is not known: the packet becomes an ARP request
/// for it, from the gateway, out of the uplink (unless one went out less
/// than a second ago: then it is dropped).
#[inline(always)]
fn resolve(
    ctx: &XdpContext,
    h: &Hop,
    gw: &Gateway,
    nk: &ExtNeighKey,
    known: Option<ExtNeigh>,
) -> Result<u32, DropReason> {
    let reason = DropReason::ExtResolving;
    // SAFETY: ktime is always callable from XDP.
    let now = unsafe { bpf_ktime_get_ns() };
    let asked = known.map(|n| n.seen_ns).unwrap_or(0);
    if asked != 0 && now.wrapping_sub(asked) < ARP_RETRY_NS {
        return Err(reason);
    }
    let len = ctx.data_end() - ctx.data();
    if len < ARP_FRAME_LEN {
        return Err(reason);
    }
    if !meta::tracing(ctx) {
        let pending = ExtNeigh {
            mac: [0; 6],
            _pad: [0; 2],
            seen_ns: now,
        };
        let _ = EXT_NEIGH.insert(nk, pending, BPF_ANY as u64);
    }
    // Counted and streamed as the packet's drop, while it still is it.
    drop::answered(ctx, h.port.index, reason);
    // SAFETY: ctx.ctx is the program's xdp_md; shrinking only.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, ARP_FRAME_LEN as i32 - len as i32) } != 0 {
        return Ok(drop::abandoned(ctx, reason));
    }
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let mut arp = [0u8; 8];
    arp[..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    arp[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..].copy_from_slice(&ARPOP_REQUEST.to_be_bytes());
    let ok = pkt.write(0, [0xff_u8; 6])
        && pkt.write(6, gw.mac)
        && pkt.write(12, ETH_P_ARP.to_be_bytes())
        && pkt.write(ETH_HLEN, arp)
        && pkt.write(ETH_HLEN + 8, gw.mac)
        && pkt.write(ETH_HLEN + 14, gw.addr)
        && pkt.write(ETH_HLEN + 18, [0u8; 6])
        && pkt.write(ETH_HLEN + 24, nk.addr);
    if !ok {
        return Ok(drop::abandoned(ctx, reason));
    }
    nat::count(|s| s.arp_requests += 1);
    meta::record(ctx, OUT_DROP, reason as u32);
    // SAFETY: a helper call with plain arguments.
    let action = unsafe { bpf_redirect(gw.ifindex, 0) } as u32;
    if action != xdp_action::XDP_REDIRECT {
        return Ok(drop::abandoned(ctx, reason));
    }
    Ok(action)
}

//! Frames leaving for other chassis (see `common::tunnel`).
//!
//! A remote destination is a device-map entry like any port, pointing at
//! the host's tunnel veth, with `to_tunnel` as its program instead of
//! `to_vm`: [`out`] applies what this host owes the frame (the sender's
//! egress rules; the receiver's ingress rules are its own host's) and keeps
//! what came from a tunnel from going back into one. On the veth's other
//! end, [`tx`] (TC, where skbs can be cloned and given tunnel keys)
//! encapsulates it through the collect_md VXLAN device: to the chassis of
//! the port it was redirected to, or once to every chassis of the flood
//! domain it was flooded to. The XDP metadata travels with the frame across
//! the veth and tells `tx` which.

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, bpf_tunnel_key, xdp_action},
    helpers::{bpf_redirect, bpf_skb_set_tunnel_key},
    programs::{TcContext, XdpContext},
};
use common::{
    DropReason, FloodKey, MAX_FLOOD_CHASSIS, OUT_FLOOD, OUT_PORT, PORT_F_SECURITY, PortInfo,
    RemotePortKey, TX_F_FROM_TUNNEL, TX_META_MAGIC, TxMeta,
};

use crate::{
    config,
    drop::{self, QUIET},
    maps::{REMOTE_FLOOD, REMOTE_PORTS, TUNNEL},
    meta,
    packet::Packet,
    sg, stats,
};

/// TTL of the outer header.
const OUTER_TTL: u8 = 64;

/// `to_tunnel`, on the device-map entries of the tunnel interface: the
/// frame is about to leave the host.
#[inline(always)]
pub fn out(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let slot = config::active_slot();
    let index = TUNNEL.get(0).map(|t| t.port).unwrap_or(0);
    let tunnel = PortInfo {
        index,
        ..PortInfo::default()
    };
    let tx = meta::read(ctx);
    leave(ctx, &pkt, slot, &tunnel, &tx)
}

#[inline(always)]
fn leave(ctx: &XdpContext, pkt: &Packet, slot: u32, tunnel: &PortInfo, tx: &TxMeta) -> u32 {
    if tx.flags & TX_F_FROM_TUNNEL != 0 {
        // Split horizon: what another chassis sent is for local ports only
        // (its sender's host replicated it to every chassis already).
        return drop::drop(ctx, tunnel.index, DropReason::Hairpin, QUIET);
    }
    // The receiver as the sender's egress rules see it: a remote port, or
    // nobody known (a flood, whose receivers are on other hosts).
    let mut rx = PortInfo {
        index: tunnel.index,
        ..PortInfo::default()
    };
    if tx.out_kind == OUT_PORT {
        let key = RemotePortKey { slot, port: tx.out };
        // SAFETY: copied out at once.
        match unsafe { REMOTE_PORTS.get(key) } {
            Some(remote) => {
                rx = remote.info;
                // Its ingress rules are applied by its own host.
                rx.flags &= !PORT_F_SECURITY;
            }
            None => return drop::drop(ctx, tunnel.index, DropReason::RedirectFailed, QUIET),
        }
    } else if tx.out_kind != OUT_FLOOD {
        return drop::drop(ctx, tunnel.index, DropReason::RedirectFailed, QUIET);
    }
    if tx.flags & u32::from(PORT_F_SECURITY) != 0 {
        let verdict = sg::check(pkt, slot, &rx, tx);
        if !sg::passed(verdict) {
            let (refuser, reason) = sg::refusal(verdict);
            return drop::drop(ctx, refuser, reason, drop::NOTIFY);
        }
    }
    stats::update(tunnel.index, |s| {
        s.tx_packets += 1;
        s.tx_bytes += pkt.len() as u64;
    });
    xdp_action::XDP_PASS
}

/// The frame's metadata, as `out` left it.
#[inline(always)]
fn metadata(ctx: &TcContext) -> Option<TxMeta> {
    // SAFETY: ctx.skb.skb is the program's __sk_buff.
    let (meta, data) = unsafe { ((*ctx.skb.skb).data_meta as usize, ctx.data()) };
    if meta + size_of::<TxMeta>() > data {
        return None;
    }
    // SAFETY: [meta, meta + size) lies before data (checked above).
    let m = unsafe { core::ptr::read_unaligned(meta as *const TxMeta) };
    (m.magic == TX_META_MAGIC).then_some(m)
}

/// Sets where the next transmission through the VXLAN device goes.
#[inline(always)]
fn set_key(ctx: &TcContext, ip: [u8; 4], vni: u32) -> bool {
    // SAFETY: an all-zero tunnel key is valid; only its fields are set.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    key.tunnel_id = vni;
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes(ip);
    key.tunnel_ttl = OUTER_TTL;
    // SAFETY: the helper reads `key` for the given size.
    unsafe {
        bpf_skb_set_tunnel_key(ctx.skb.skb, &mut key, size_of::<bpf_tunnel_key>() as u32, 0) == 0
    }
}

/// TC on the tunnel veth's far end: encapsulates the frame `out` let
/// through, to one chassis or to each chassis of its flood domain.
#[inline(always)]
pub fn tx(ctx: &TcContext) -> i32 {
    let shot = TC_ACT_SHOT;
    let Some(m) = metadata(ctx) else {
        return shot;
    };
    let Some(t) = TUNNEL.get(0) else {
        return shot;
    };
    let vxlan = t.vxlan_ifindex;
    let slot = config::active_slot();
    if m.out_kind == OUT_PORT {
        let key = RemotePortKey { slot, port: m.out };
        // SAFETY: copied out at once.
        let Some(r) = (unsafe { REMOTE_PORTS.get(key) }).copied() else {
            return shot;
        };
        if !set_key(ctx, r.chassis_ip, r.vni) {
            return shot;
        }
        // SAFETY: a helper without pointers.
        return unsafe { bpf_redirect(vxlan, 0) } as i32;
    }
    if m.out_kind == OUT_FLOOD {
        flood(ctx, slot, m.out, vxlan);
    }
    shot
}

/// One copy of the frame to each chassis of `domain`.
#[inline(never)]
fn flood(ctx: &TcContext, slot: u32, domain: u32, vxlan: u32) -> i32 {
    let key = FloodKey { slot, domain };
    // SAFETY: the entry stays valid for this program's run (RCU).
    let Some(f) = (unsafe { REMOTE_FLOOD.get(key) }) else {
        return 0;
    };
    let n = f.count as usize;
    for i in 0..MAX_FLOOD_CHASSIS {
        if i >= n {
            break;
        }
        if set_key(ctx, f.ips[i], f.vni) {
            let _ = ctx.skb.clone_redirect(vxlan, 0);
        }
    }
    0
}

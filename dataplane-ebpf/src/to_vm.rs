//! The last step before a frame reaches a VM: runs for each destination of
//! a redirect or flood (a program on every device-map entry). A VM receives
//! only frames addressed to its MAC, a pair's MAC, broadcast or multicast
//! (its port security view of what it may receive); a port without port
//! security receives everything its network delivers.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use common::{DropReason, OUT_DROP, PORT_F_SECURITY, TX_F_TRACE};

use crate::{
    config, events, groups, meta, packet::Packet, parse::is_multicast, portsec, sg, stats,
};

/// Runs the receiving side for the port on interface `ifindex` (the
/// device-map entry's interface; `dataplane trace` passes it as the
/// ingress interface instead).
#[inline(always)]
pub fn run(ctx: &XdpContext, ifindex: u32) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let slot = config::active_slot();
    let Some(port) = config::port_by_ifindex(slot, ifindex) else {
        return drop(ctx, 0, DropReason::UnknownPort);
    };
    let tx = meta::read(ctx);
    if tx.group != 0 {
        let group = tx.group;
        // A routed frame for a group without an active member: address it
        // to the MAC this member binds the group's address to.
        match groups::member_mac(slot, group, port.index) {
            Some(mac) if pkt.write(0, mac) => {}
            _ => return drop(ctx, port.index, DropReason::IngressMac),
        }
    }
    let Some(dst) = pkt.read::<[u8; 6]>(0) else {
        return drop(ctx, port.index, DropReason::Malformed);
    };
    if port.flags & PORT_F_SECURITY != 0
        && !is_multicast(&dst)
        && !portsec::mac_allowed(slot, port.index, dst)
    {
        return drop(ctx, port.index, DropReason::IngressMac);
    }
    if (port.flags | tx.flags as u16) & PORT_F_SECURITY != 0 {
        let verdict = sg::check(&pkt, slot, &port, &tx);
        if verdict != sg::PASS {
            // Counted by sg on the port whose rules refused it.
            meta::record(ctx, OUT_DROP, verdict & 0xff);
            if tx.flags & TX_F_TRACE == 0 {
                events::dropped(&pkt, verdict >> 8, verdict & 0xff);
            }
            return xdp_action::XDP_DROP;
        }
    }
    stats::update(port.index, |s| {
        s.tx_packets += 1;
        s.tx_bytes += pkt.len() as u64;
    });
    xdp_action::XDP_PASS
}

/// Counts a drop on `port` and records it for a trace. Not streamed to the
/// monitor: a flood of unknown unicast is refused by every port but its
/// owner, which is normal and would drown the events that matter.
#[inline(always)]
fn drop(ctx: &XdpContext, port: u32, reason: DropReason) -> u32 {
    stats::count_drop(port, reason);
    meta::record(ctx, OUT_DROP, reason as u32);
    xdp_action::XDP_DROP
}

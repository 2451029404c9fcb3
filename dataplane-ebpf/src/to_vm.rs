//! The last step before a frame reaches a VM: runs for each destination of
//! a redirect or flood (a program on every device-map entry). A VM receives
//! only frames addressed to its MAC, a pair's MAC, broadcast or multicast
//! (its port security view of what it may receive); a port without port
//! security receives everything its network delivers.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use common::{DropReason, PORT_F_SECURITY};

use crate::{config, groups, meta, packet::Packet, parse::is_multicast, portsec, sg, stats};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let slot = config::active_slot();
    // SAFETY: ctx.ctx is the program's xdp_md.
    let ifindex = unsafe { (*ctx.ctx).egress_ifindex };
    let Some(port) = config::port_by_ifindex(slot, ifindex) else {
        stats::count_drop(0, DropReason::UnknownPort);
        return xdp_action::XDP_DROP;
    };
    let tx = meta::read(ctx);
    if tx.group != 0 {
        let group = tx.group;
        // A routed frame for a group without an active member: address it
        // to the MAC this member binds the group's address to.
        match groups::member_mac(slot, group, port.index) {
            Some(mac) if pkt.write(0, mac) => {}
            _ => {
                stats::count_drop(port.index, DropReason::IngressMac);
                return xdp_action::XDP_DROP;
            }
        }
    }
    let Some(dst) = pkt.read::<[u8; 6]>(0) else {
        stats::count_drop(port.index, DropReason::Malformed);
        return xdp_action::XDP_DROP;
    };
    if port.flags & PORT_F_SECURITY != 0
        && !is_multicast(&dst)
        && !portsec::mac_allowed(slot, port.index, dst)
    {
        stats::count_drop(port.index, DropReason::IngressMac);
        return xdp_action::XDP_DROP;
    }
    if (port.flags | tx.flags as u16) & PORT_F_SECURITY != 0 {
        let verdict = sg::check(&pkt, slot, &port, &tx);
        if verdict != 0 {
            return verdict;
        }
    }
    stats::update(port.index, |s| {
        s.tx_packets += 1;
        s.tx_bytes += pkt.len() as u64;
    });
    xdp_action::XDP_PASS
}

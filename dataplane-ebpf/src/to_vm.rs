//! The last step before a frame reaches a VM: runs for each destination of
//! a redirect or flood (a program on every device-map entry). A VM receives
//! only frames addressed to its MAC, a pair's MAC, broadcast or multicast
//! (its port security view of what it may receive); a port without port
//! security receives everything its network delivers.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use common::{DropReason, PORT_F_SECURITY, ROUTED_TO_GROUP_MAGIC, RoutedToGroup};

use crate::{config, groups, packet::Packet, parse::is_multicast, portsec, stats};

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
    if let Some(group) = routed_to_group(ctx) {
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
    stats::update(port.index, |s| {
        s.tx_packets += 1;
        s.tx_bytes += pkt.len() as u64;
    });
    xdp_action::XDP_PASS
}

/// The group a routed frame was tagged with (see `route::tag_for_group`).
#[inline(always)]
fn routed_to_group(ctx: &XdpContext) -> Option<u32> {
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + size_of::<RoutedToGroup>() > data {
        return None;
    }
    // SAFETY: the metadata area holds a whole RoutedToGroup (checked above).
    let tag = unsafe { core::ptr::read_unaligned(meta as *const RoutedToGroup) };
    (tag.magic == ROUTED_TO_GROUP_MAGIC).then_some(tag.group)
}

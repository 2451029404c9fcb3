//! The last step before a frame reaches a VM: runs for each destination of
//! a redirect or flood (a program on every device-map entry). A VM receives
//! only frames addressed to its MAC, a pair's MAC, broadcast or multicast
//! (its port security view of what it may receive); a port without port
//! security receives everything its network delivers. These refusals of
//! the receiving side are counted but not streamed ([`drop::QUIET`]);
//! security-group refusals are streamed (see [`drop`]).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use common::{DropReason, PORT_F_SECURITY, TX_F_CACHED};

use crate::{
    config,
    drop::{self, QUIET},
    fastpath, groups, meta,
    packet::Packet,
    parse::is_multicast,
    portsec, sg, stats,
};

/// Runs the receiving side for the port on interface `ifindex` (the
/// device-map entry's interface; `dataplane trace` passes it as the
/// ingress interface instead).
#[inline(always)]
pub fn run(ctx: &XdpContext, ifindex: u32) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let tx = meta::read(ctx);
    if tx.flags & TX_F_CACHED != 0 {
        // `from_vm` forwarded it from the flow cache, whose entry this
        // program made for this port under the live configuration: every
        // check below passed for this sender, MACs and connection. The
        // port is the one `from_vm` redirected to (`out`).
        stats::update(tx.out, |s| {
            s.tx_packets += 1;
            s.tx_bytes += pkt.len() as u64;
        });
        return xdp_action::XDP_PASS;
    }
    let slot = config::active_slot();
    let Some(port) = config::port_by_ifindex(slot, ifindex) else {
        return drop::drop(ctx, 0, DropReason::UnknownPort, QUIET);
    };
    if tx.group != 0 {
        let group = tx.group;
        // A routed frame for a group without an active member: address it
        // to the MAC this member binds the group's address to.
        match groups::member_mac(slot, group, port.index) {
            Some(mac) if pkt.write(0, mac) => {}
            _ => return drop::drop(ctx, port.index, DropReason::IngressMac, QUIET),
        }
    }
    let Some(dst) = pkt.read::<[u8; 6]>(0) else {
        return drop::drop(ctx, port.index, DropReason::Malformed, QUIET);
    };
    // The port's own MAC is always among its MACs (the agent binds it
    // first): most frames are for it, and need no lookup.
    if port.flags & PORT_F_SECURITY != 0
        && dst != port.mac
        && !is_multicast(&dst)
        && !portsec::mac_allowed(slot, port.index, dst)
    {
        return drop::drop(ctx, port.index, DropReason::IngressMac, QUIET);
    }
    if (port.flags | tx.flags as u16) & PORT_F_SECURITY != 0 {
        let verdict = sg::check(&pkt, slot, &port, &tx);
        if !sg::passed(verdict) {
            // Charged to, and streamed under, the port whose rules refused it.
            let (refuser, reason) = sg::refusal(verdict);
            return drop::drop(ctx, refuser, reason, drop::NOTIFY);
        }
        if verdict == sg::PASS_TRACKED {
            fastpath::remember(&pkt, &tx, &port);
        }
    }
    stats::update(port.index, |s| {
        s.tx_packets += 1;
        s.tx_bytes += pkt.len() as u64;
    });
    xdp_action::XDP_PASS
}

//! What a packet owes on its way to the router itself, when the router
//! answers it (an echo reply, an ICMP error): the sender's egress rules,
//! with the router as the remote (no port, no security groups: rules with
//! no remote, or a prefix holding the packet's destination, apply). A
//! packet they refuse gets no answer and is counted `sg_egress` (or
//! `ct_invalid`); one they allow is tracked, so that the answer passes the
//! sender's ingress as a reply or as related, as it would behind a router
//! anywhere else. Then the router's ICMP program of the packet's family
//! answers (`icmp.rs`).
//!
//! A program of its own, between the routing programs and the ICMP ones:
//! the security-group check's frames leave no room for the ICMP programs'
//! work, and this way it is verified once for both families.

use aya_ebpf::programs::XdpContext;
use common::{
    DropReason, JUMP_ICMP_V4, JUMP_ICMP_V6, PORT_F_SECURITY, PortInfo, TX_F_TRACE, TX_META_MAGIC,
    TxMeta, proto::ETH_P_IP,
};

use crate::{
    drop::{self, NOTIFY},
    maps::{HOP, JUMP},
    meta,
    packet::Packet,
    route, sg,
};

/// `to_router`: the sender's egress rules, then the ICMP program.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let Some(h) = HOP.get(0) else {
        return route::no_hop(ctx);
    };
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let Some(ethertype) = pkt.be16_at(12) else {
        return drop::drop(ctx, h.port.index, DropReason::Malformed, NOTIFY);
    };
    let port = &h.port;
    if port.flags & PORT_F_SECURITY != 0 {
        let tx = TxMeta {
            magic: TX_META_MAGIC,
            sender: port.index,
            policy: port.policy,
            identity: port.identity,
            flags: u32::from(port.flags) | (meta::read(ctx).flags & TX_F_TRACE),
            ..TxMeta::default()
        };
        let verdict = sg::check(&pkt, h.slot, &PortInfo::default(), &tx);
        if !sg::passed(verdict) {
            let (refuser, reason) = sg::refusal(verdict);
            return drop::drop(ctx, refuser, reason, NOTIFY);
        }
    }
    let jump = if h.then != 0 {
        h.then
    } else if ethertype == ETH_P_IP {
        JUMP_ICMP_V4
    } else {
        JUMP_ICMP_V6
    };
    // SAFETY: a tail call; on success it does not return.
    unsafe {
        JUMP.tail_call(ctx, jump);
    }
    drop::drop(ctx, port.index, DropReason::RedirectFailed, NOTIFY)
}

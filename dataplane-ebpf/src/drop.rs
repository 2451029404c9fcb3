//! The one way a program drops a frame (as Cilium's `send_drop_notify`):
//! every drop goes through [`drop`], which does the three things a drop
//! owes the operator, by the same rules everywhere:
//!
//! 1. it is counted, under the port it is charged to and its reason
//!    (`PORT_STATS`; port 0 collects drops not tied to a port);
//! 2. it is recorded in the frame's XDP metadata (`OUT_DROP` and the
//!    reason), if the frame carries any, so `dataplane trace` reads the
//!    datapath's own decision;
//! 3. it is streamed to `dataplane monitor` as a ring-buffer event
//!    ([`events::dropped`], rate limited), unless the caller passes
//!    [`QUIET`] or the frame is one of `dataplane trace`'s (a trace changes
//!    nothing other packets or readers depend on).
//!
//! Who passes [`QUIET`]: the receiving side's own refusals (`to_vm`'s
//! ingress MAC filter, a group member without a MAC, a port that is gone):
//! a flood of unknown unicast is refused by every port but its owner, which
//! is normal and would drown the events that matter; and drops not tied to
//! any port (a frame on an interface that is no port: logged instead).
//! Security-group refusals are not quiet even in `to_vm`: they are charged
//! to, and streamed under, the port whose rules refused the packet (the
//! sender's for egress rules, the receiver's for ingress rules).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use common::{DropReason, OUT_DROP};

use crate::{events, meta, packet::Packet, stats};

/// [`drop`]'s `notify`: stream the drop to the monitor.
pub const NOTIFY: bool = true;
/// [`drop`]'s `notify`: count and record the drop, but send no event.
pub const QUIET: bool = false;

/// Drops the frame: counts it on `port` for `reason`, records the reason
/// for a trace and, if `notify`, streams an event (see the module's rules).
/// Returns `XDP_DROP`, for the program to return.
#[inline(always)]
pub fn drop(ctx: &XdpContext, port: u32, reason: DropReason, notify: bool) -> u32 {
    stats::count_drop(port, reason);
    meta::record(ctx, OUT_DROP, reason as u32);
    if notify && !meta::tracing(ctx) {
        // Fresh packet bounds: the program may have moved the data (the
        // metadata helper), which voids pointers taken before.
        let pkt = Packet::new(ctx.data(), ctx.data_end());
        events::dropped(&pkt, port, reason as u32);
    }
    xdp_action::XDP_DROP
}

/// Counts and streams the drop of a packet the router answers with an
/// ICMP error instead of forwarding it: [`drop`]'s first and third duties,
/// done while the frame is still the dropped packet; the caller records
/// the error it sends in its place (`OUT_ICMP_ERROR`).
#[inline(always)]
pub fn answered(ctx: &XdpContext, port: u32, reason: DropReason) {
    stats::count_drop(port, reason);
    if !meta::tracing(ctx) {
        let pkt = Packet::new(ctx.data(), ctx.data_end());
        events::dropped(&pkt, port, reason as u32);
    }
}

/// The ICMP error for a packet [`answered`] counted could not be written
/// (no room in the frame): the packet is dropped after all, and recorded
/// as such; it was counted already.
#[inline(always)]
pub fn abandoned(ctx: &XdpContext, reason: DropReason) -> u32 {
    meta::record(ctx, OUT_DROP, reason as u32);
    xdp_action::XDP_DROP
}

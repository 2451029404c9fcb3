//! The pipeline for frames a VM sends: port lookup, parsing, port security.
//! Allowed frames go on to the kernel (`XDP_PASS`).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use aya_log_ebpf::debug;
use common::{DropReason, PORT_F_SECURITY, PortInfo};

use crate::{config, packet::Packet, parse, portsec, stats};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let slot = config::active_slot();
    let Some(port) = config::port_by_ifindex(slot, ctx.ingress_ifindex() as u32) else {
        // Not a port (yet, or any more): fail closed.
        stats::count_drop(0, DropReason::UnknownPort);
        return xdp_action::XDP_DROP;
    };
    stats::update(port.index, |s| {
        s.rx_packets += 1;
        s.rx_bytes += pkt.len() as u64;
    });
    match pipeline(&pkt, slot, &port) {
        Ok(()) => {
            stats::update(port.index, |s| s.passed += 1);
            xdp_action::XDP_PASS
        }
        Err(reason) => {
            stats::count_drop(port.index, reason);
            debug!(ctx, "port {} drop {}", port.index, reason as u32);
            xdp_action::XDP_DROP
        }
    }
}

#[inline(always)]
fn pipeline(pkt: &Packet, slot: u32, port: &PortInfo) -> Result<(), DropReason> {
    let eth = parse::eth(pkt)?;
    if port.flags & PORT_F_SECURITY != 0 {
        let l3 = parse::l3(pkt, &eth)?;
        portsec::check(pkt, slot, port, &eth, &l3)?;
    }
    Ok(())
}

//! The pipeline for frames a VM sends: port lookup, parsing, port security.
//! Allowed frames go on to the kernel (`XDP_PASS`).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use aya_log_ebpf::debug;
use common::{DropReason, PORT_F_SECURITY, PortInfo};

use crate::{
    config,
    packet::Packet,
    parse::{self, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
    portsec, stats,
};

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

/// Each protocol is checked in its own branch, right where it is parsed:
/// merging the parsed headers into one enum first let LLVM pack header
/// offsets into registers shared between variants, whose bounds the
/// verifier then lost.
#[inline(always)]
fn pipeline(pkt: &Packet, slot: u32, port: &PortInfo) -> Result<(), DropReason> {
    let eth = parse::eth(pkt)?;
    if port.flags & PORT_F_SECURITY == 0 {
        return Ok(());
    }
    if !portsec::mac_allowed(slot, port.index, eth.src) {
        return Err(DropReason::SrcMac);
    }
    match eth.proto {
        ETH_P_ARP => {
            let arp = parse::arp(pkt)?;
            portsec::check_arp(slot, port, &eth, &arp)
        }
        ETH_P_IP => {
            let ip = parse::ipv4(pkt)?;
            portsec::check_ipv4(pkt, slot, port, &eth, &ip)
        }
        ETH_P_IPV6 => {
            let ip = parse::ipv6(pkt)?;
            portsec::check_ipv6(pkt, slot, port, &eth, &ip)
        }
        _ => Err(DropReason::Ethertype),
    }
}

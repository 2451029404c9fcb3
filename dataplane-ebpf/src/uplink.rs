//! `from_uplink`: frames from an external network, on the host interface
//! that carries it (`dataplane run --uplink PHYSNET=IFNAME`). What is for
//! a router's gateway address or a floating IP (by destination MAC and
//! address) is the datapath's: ARP requests for those addresses are
//! answered, packets to a floating IP go on to its fixed IP and replies of
//! SNAT connections to the VM that opened them, both routed by the router
//! (`route_v4`, so a fixed IP that several ports share as a VRRP VIP
//! reaches the group's active member) and then the receiving port's
//! ingress rules (`to_vm`; the outside is a remote without security
//! groups, so only prefix rules and rules without a remote apply). ICMP
//! errors about packets the gateway translated are translated back and
//! routed to the VM the same way (`nat_icmp.rs`). Everything else is the
//! host's and passes.
//!
//! Neighbours on the external network are learned from ARP that concerns
//! the datapath's addresses (requests for them, replies to them) and
//! refreshed by gratuitous ARP; other ARP is never learned, so a host
//! on the outside cannot fill the table with what it likes.

use aya_ebpf::{
    bindings::{BPF_ANY, xdp_action},
    helpers::{bpf_ktime_get_ns, bpf_redirect},
    programs::XdpContext,
};
use common::{
    DropReason, EXT_FLOATING, ExtAddr, ExtAddrKey, ExtNeigh, ExtNeighKey, JUMP_ROUTE_V4, NAT_IN,
    NatKey, OUT_REPLY, PortInfo, ROUTE_EXTERNAL, UplinkKey,
    proto::{ARPOP_REQUEST, ETH_P_ARP, ETH_P_IP},
};

use crate::{
    config,
    drop::{self, QUIET},
    maps::{EXT_ADDRS, EXT_NEIGH, UPLINKS},
    meta, nat, nat_icmp,
    packet::Packet,
    parse::{self, Arp, Eth, Frag},
    responder, route,
};

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let slot = config::active_slot();
    let ifindex = ctx.ingress_ifindex() as u32;
    let key = UplinkKey { slot, ifindex };
    // SAFETY: copied out at once.
    let Some(network) = unsafe { UPLINKS.get(key) }.map(|u| u.network) else {
        return xdp_action::XDP_PASS;
    };
    let Ok(eth) = parse::eth(&pkt) else {
        return pass();
    };
    let outside = PortInfo {
        network,
        ifindex,
        ..PortInfo::default()
    };
    let r = match eth.proto {
        ETH_P_ARP => arp(ctx, &pkt, slot, &outside, &eth),
        ETH_P_IP => ipv4(ctx, &pkt, slot, &outside, &eth),
        _ => Ok(pass()),
    };
    match r {
        Ok(action) => action,
        // Charged to port 0 (no port sent it); not streamed: the outside
        // is not a port an operator watches with `monitor`.
        Err(reason) => drop::drop(ctx, 0, reason, QUIET),
    }
}

/// Left to the host's stack.
#[inline(always)]
fn pass() -> u32 {
    nat::count(|s| s.passed += 1);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn ours(slot: u32, network: u32, addr: [u8; 4]) -> Option<ExtAddr> {
    let key = ExtAddrKey {
        slot,
        network,
        addr,
    };
    // SAFETY: copied out at once.
    unsafe { EXT_ADDRS.get(key) }.copied()
}

/// Learns a neighbour (not for a traced frame: a trace changes nothing).
#[inline(always)]
fn learn(ctx: &XdpContext, network: u32, addr: [u8; 4], mac: [u8; 6]) {
    if addr == [0; 4] || mac[0] & 1 != 0 || meta::tracing(ctx) {
        return;
    }
    let n = ExtNeigh {
        mac,
        _pad: [0; 2],
        // SAFETY: ktime is always callable from XDP.
        seen_ns: unsafe { bpf_ktime_get_ns() },
    };
    let _ = EXT_NEIGH.insert(ExtNeighKey { network, addr }, n, BPF_ANY as u64);
    nat::count(|s| s.neigh_learned += 1);
}

#[inline(always)]
fn arp(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    outside: &PortInfo,
    eth: &Eth,
) -> Result<u32, DropReason> {
    let Ok(a) = parse::arp(pkt) else {
        return Ok(pass());
    };
    let network = outside.network;
    let Some(me) = ours(slot, network, a.tpa) else {
        // Gratuitous ARP moves a neighbour already known (an upstream
        // router's failover); it teaches nothing new.
        let key = ExtNeighKey {
            network,
            addr: a.spa,
        };
        // SAFETY: checked for presence only.
        if a.spa == a.tpa && unsafe { EXT_NEIGH.get(key) }.is_some() {
            learn(ctx, network, a.spa, a.sha);
        }
        return Ok(pass());
    };
    learn(ctx, network, a.spa, a.sha);
    if a.oper == ARPOP_REQUEST {
        meta::record(ctx, OUT_REPLY, 0);
        return answer(pkt, outside, eth, &a, &me);
    }
    // A reply to the datapath's own request: learned, nothing to pass on.
    Ok(xdp_action::XDP_DROP)
}

/// The ARP reply for one of the datapath's addresses, in place, back out
/// of the uplink.
#[inline(always)]
fn answer(
    pkt: &Packet,
    outside: &PortInfo,
    eth: &Eth,
    a: &Arp,
    me: &ExtAddr,
) -> Result<u32, DropReason> {
    if !responder::arp_reply_in_place(pkt, &eth.src, a, me.mac) {
        return Err(DropReason::Malformed);
    }
    nat::count(|s| s.arp_replies += 1);
    // Redirected rather than XDP_TX: see the responder (a veth delivers
    // XDP_TX frames only at its next flush).
    // SAFETY: a helper call with plain arguments.
    Ok(unsafe { bpf_redirect(outside.ifindex, 0) } as u32)
}

#[inline(always)]
fn ipv4(
    ctx: &XdpContext,
    pkt: &Packet,
    slot: u32,
    outside: &PortInfo,
    eth: &Eth,
) -> Result<u32, DropReason> {
    let Ok(ip) = parse::ipv4(pkt) else {
        return Ok(pass());
    };
    let Some(me) = ours(slot, outside.network, ip.dst) else {
        return Ok(pass());
    };
    if eth.dst != me.mac {
        return Ok(pass());
    }
    let router = me.router;
    // Reverse path: the outside cannot speak for the router's inside.
    if let Some(r) = route::route_v4(slot, router, ip.src) {
        if r.kind != ROUTE_EXTERNAL {
            return Err(DropReason::UplinkSrc);
        }
    }
    if nat_icmp::is_error(pkt, &ip) {
        nat_icmp::translate(pkt, &ip, &me)?;
        nat::count(|s| s.icmp_in += 1);
    } else if me.kind == EXT_FLOATING {
        if !nat::set_addr(pkt, &ip, nat::DST_OFF, me.fixed) {
            return Err(DropReason::Malformed);
        }
        nat::count(|s| s.floating_in += 1);
    } else {
        if ip.frag != Frag::None {
            return Err(DropReason::IpFragment);
        }
        let f = nat::port_field(pkt, &ip, true).ok_or(DropReason::NoNat)?;
        let local_port = pkt.read::<[u8; 2]>(f.off).ok_or(DropReason::Malformed)?;
        let remote_port = nat::peer_port(pkt, &ip, false).ok_or(DropReason::Malformed)?;
        let k = NatKey {
            router,
            proto: ip.proto,
            dir: NAT_IN,
            local_port,
            local: ip.dst,
            remote: ip.src,
            remote_port,
            _pad: [0; 2],
        };
        let (addr, port) = nat::unsnat(&k, meta::tracing(ctx)).ok_or(DropReason::NoNat)?;
        if !(nat::set_addr(pkt, &ip, nat::DST_OFF, addr) && nat::set_port(pkt, &f, port)) {
            return Err(DropReason::Malformed);
        }
        nat::count(|s| s.snat_in += 1);
    }
    // Routed by the router like a packet from one of its interfaces.
    Err(route::enter(ctx, slot, outside, router, JUMP_ROUTE_V4))
}

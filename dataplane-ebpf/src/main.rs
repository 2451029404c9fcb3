//! XDP programs of the allowed-address-pairs datapath.
//!
//! `from_vm` runs on every frame a VM sends (XDP on the host side of the
//! VM's tap): port security, group claims, ARP/ND answers, forwarding.
//! `to_vm` runs on every device-map entry a frame is redirected to, just
//! before it reaches a VM: the receiving port's view of what it accepts.
#![no_std]
#![no_main]

mod advert;
mod checksum;
mod config;
mod drop;
mod events;
mod external;
mod fastpath;
mod flow;
mod forward;
mod from_underlay;
mod from_vm;
mod groups;
mod hairpin;
mod icmp;
mod maps;
mod meta;
mod nat;
mod nat_icmp;
mod packet;
mod parse;
mod portsec;
mod ratelimit;
mod responder;
mod route;
mod sg;
mod stats;
mod to_router;
mod to_vm;
mod tunnel;
mod uplink;

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

#[xdp]
pub fn from_vm(ctx: XdpContext) -> u32 {
    from_vm::run(&ctx)
}

/// Tail-called by `from_vm` for IPv4 packets to a router interface.
#[xdp]
pub fn route_v4(ctx: XdpContext) -> u32 {
    route::ipv4(&ctx)
}

/// Tail-called by `from_vm` for IPv6 packets to a router interface.
#[xdp]
pub fn route_v6(ctx: XdpContext) -> u32 {
    route::ipv6(&ctx)
}

/// Tail-called by the routing programs for a packet the router answers
/// itself: the sender's egress rules, then `icmp_v4` or `icmp_v6`.
#[xdp]
pub fn to_router(ctx: XdpContext) -> u32 {
    to_router::run(&ctx)
}

/// Tail-called by `to_router` for what the router answers itself in
/// IPv4: echo replies and ICMP errors.
#[xdp]
pub fn icmp_v4(ctx: XdpContext) -> u32 {
    icmp::ipv4(&ctx)
}

/// Tail-called by `to_router` for IPv6: echo replies, ICMPv6 errors.
#[xdp]
pub fn icmp_v6(ctx: XdpContext) -> u32 {
    icmp::ipv6(&ctx)
}

/// Tail-called by `to_router` for a routed packet leaving through its
/// router's external gateway: NAT, the next hop, the uplink.
#[xdp]
pub fn to_external(ctx: XdpContext) -> u32 {
    external::run(&ctx)
}

/// Frames from an external network, on its uplink: ARP for gateway and
/// floating addresses, floating IPs, replies of SNAT connections.
#[xdp]
pub fn from_uplink(ctx: XdpContext) -> u32 {
    uplink::run(&ctx)
}

/// Tail-called by `from_vm` for a router solicitation on a network with
/// an advertising router: answers it.
#[xdp]
pub fn router_advert(ctx: XdpContext) -> u32 {
    advert::run(&ctx)
}

/// The benchmark's floor: an empty program (never attached; `cargo xtask
/// bench` measures everything else against it in the same run).
#[xdp]
pub fn bench_floor(_ctx: XdpContext) -> u32 {
    aya_ebpf::bindings::xdp_action::XDP_DROP
}

/// Frames from other chassis: XDP on the underlay interface.
#[xdp]
pub fn from_underlay(ctx: XdpContext) -> u32 {
    from_underlay::run(&ctx)
}

/// TC on the tunnel veth's far end: encapsulation to other chassis.
#[classifier]
pub fn tunnel_tx(ctx: TcContext) -> i32 {
    tunnel::tx(&ctx)
}

/// Lets every frame through: on the tunnel veth's far end, so that frames
/// redirected into the veth are received (a veth delivers XDP-redirected
/// frames only to a peer with NAPI, which an XDP program gives it).
#[xdp]
pub fn pass(_ctx: XdpContext) -> u32 {
    aya_ebpf::bindings::xdp_action::XDP_PASS
}

/// On device-map entries for other chassis (the tunnel veth): the frame
/// leaves the host. A program of its own, with its own stack: `to_vm` and
/// the security-group checks leave no room for the tunnel's work.
#[xdp(map = "devmap")]
pub fn to_tunnel(ctx: XdpContext) -> u32 {
    tunnel::out(&ctx)
}

#[xdp(map = "devmap")]
pub fn to_vm(ctx: XdpContext) -> u32 {
    // SAFETY: ctx.ctx is the program's xdp_md.
    let ifindex = unsafe { (*ctx.ctx).egress_ifindex };
    to_vm::run(&ctx, ifindex)
}

/// `to_vm` as a plain XDP program, never attached: BPF_PROG_TEST_RUN
/// refuses device-map programs, so `dataplane trace` and the benchmark run
/// this one, naming the receiving port's interface as the ingress one (a
/// plain XDP program may not read the egress interface).
#[xdp]
pub fn to_vm_trace(ctx: XdpContext) -> u32 {
    to_vm::run(&ctx, ctx.ingress_ifindex() as u32)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

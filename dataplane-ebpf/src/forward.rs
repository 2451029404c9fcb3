//! L2 forwarding: deliver by destination MAC within the sender's network,
//! through device maps whose entries run `to_vm` for each destination.
//! Broadcast, multicast and unknown unicast are flooded to the network's
//! other ports only (one device map per network and slot, sent with
//! BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS).

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS},
    programs::XdpContext,
};
use common::{
    DropReason, FLOOD_DOMAIN_GROUP_BASE, FdbEntry, FdbKey, FloodKey, OUT_FLOOD, OUT_PORT, PortInfo,
    TARGET_GROUP, TARGET_PORT, TARGET_ROUTER,
};

use crate::{
    groups,
    maps::{FDB, FLOOD, TX_PORTS},
    meta,
    parse::is_multicast,
    stats,
};

/// The L2 table's entry for a unicast `dst` in the port's network; kind 0
/// for multicast and unknown destinations. A plain value rather than an
/// Option: LLVM spilled the payload of a None (uninitialised registers),
/// which the verifier refuses to read.
#[inline(always)]
pub fn lookup(slot: u32, port: &PortInfo, dst: &[u8; 6]) -> FdbEntry {
    const NONE: FdbEntry = FdbEntry { kind: 0, target: 0 };
    if is_multicast(dst) {
        return NONE;
    }
    let key = FdbKey {
        slot,
        network: port.network,
        mac: *dst,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    unsafe { FDB.get(key) }.copied().unwrap_or(NONE)
}

/// Where a frame goes from `port` given its destination's L2 entry;
/// returns the XDP action. Every function here records where it sent the
/// frame in the metadata ([`meta::record`]), which must be in place.
#[inline(always)]
pub fn l2(
    ctx: &XdpContext,
    slot: u32,
    port: &PortInfo,
    entry: FdbEntry,
) -> Result<u32, DropReason> {
    match entry.kind {
        TARGET_PORT => to_port(ctx, port, entry.target),
        TARGET_GROUP => to_group(ctx, slot, port, entry.target),
        // Frames for a router interface that are not IP (the router
        // answers ARP/ND in the responder and routes IP before this).
        TARGET_ROUTER => Err(DropReason::NoRoute),
        _ => flood_network(ctx, slot, port),
    }
}

/// Unicast to one port.
#[inline(always)]
pub fn to_port(ctx: &XdpContext, port: &PortInfo, target: u32) -> Result<u32, DropReason> {
    if target == port.index {
        return Err(DropReason::Hairpin);
    }
    let action = TX_PORTS
        .redirect(target, 0)
        .map_err(|_| DropReason::RedirectFailed)?;
    meta::record(ctx, OUT_PORT, target);
    stats::update(port.index, |s| s.forwarded += 1);
    Ok(action)
}

/// To the active member of a group, or to every member while none is known.
#[inline(always)]
pub fn to_group(
    ctx: &XdpContext,
    slot: u32,
    port: &PortInfo,
    group: u32,
) -> Result<u32, DropReason> {
    if let Some(active) = groups::active_member(slot, group) {
        if active != port.index {
            match to_port(ctx, port, active) {
                // The member's tap is gone (the kernel removed it from the
                // device map): it is no longer active; every member gets it.
                Err(DropReason::RedirectFailed) => groups::deactivate(group, active),
                done => return done,
            }
        }
    }
    flood_group(ctx, slot, port, group)
}

/// To every member of a group.
#[inline(always)]
pub fn flood_group(
    ctx: &XdpContext,
    slot: u32,
    port: &PortInfo,
    group: u32,
) -> Result<u32, DropReason> {
    let action = flood(ctx, slot, FLOOD_DOMAIN_GROUP_BASE + group)?;
    stats::update(port.index, |s| s.group_flooded += 1);
    Ok(action)
}

#[inline(always)]
fn flood_network(ctx: &XdpContext, slot: u32, port: &PortInfo) -> Result<u32, DropReason> {
    let action = flood(ctx, slot, port.network)?;
    stats::update(port.index, |s| s.flooded += 1);
    Ok(action)
}

#[inline(always)]
fn flood(ctx: &XdpContext, slot: u32, domain: u32) -> Result<u32, DropReason> {
    let key = FloodKey { slot, domain };
    // SAFETY: only the map's address is used, by the redirect helper.
    let set = unsafe { FLOOD.get(&key) }.ok_or(DropReason::RedirectFailed)?;
    let action = set
        .redirect(0, (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) as u64)
        .map_err(|_| DropReason::RedirectFailed)?;
    meta::record(ctx, OUT_FLOOD, domain);
    Ok(action)
}

//! Ports sharing an address (allowed address pairs with the same IP, or the
//! same MAC as keepalived's use_vmac) form a group. Its active member is the
//! port that last proved it owns the address: a gratuitous ARP, an ARP
//! reply, an unsolicited neighbour advertisement, or traffic sourced from the
//! address, all after port security passed. The datapath records the claim
//! itself, so failover needs no round trip to userspace.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::maps::lpm_trie::Key;
use common::{
    FdbKey, GroupMemberKey, NEIGH_PREFIX_BITS, NeighV4Key, NeighV6Key, PortInfo, TARGET_GROUP,
};

use crate::{
    maps::{FDB, GROUP_MEMBERS, GROUP_STATE, NEIGH_V4, NEIGH_V6},
    stats,
};

#[inline(always)]
fn is_member(slot: u32, group: u32, port: u32) -> bool {
    GROUP_MEMBERS
        .get_ptr(GroupMemberKey { slot, group, port })
        .is_some()
}

/// The active member, if one is known and still a member in this slot (a
/// port removed from the group, or gone, is never used).
#[inline(always)]
pub fn active_member(slot: u32, group: u32) -> Option<u32> {
    let state = GROUP_STATE.get(group)?;
    let active = state.active;
    if active != 0 && is_member(slot, group, active) {
        Some(active)
    } else {
        None
    }
}

/// Makes `port` the group's active member if it is a member.
#[inline(always)]
fn claim(slot: u32, port: &PortInfo, group: u32) {
    if !is_member(slot, group, port.index) {
        return;
    }
    let Some(state) = GROUP_STATE.get_ptr_mut(group) else {
        return;
    };
    // SAFETY: a valid array element; racing claims on two CPUs both write a
    // member, and the last one wins, which is what a claim means.
    unsafe {
        if (*state).active != port.index {
            (*state).active = port.index;
            (*state).changed_ns = bpf_ktime_get_ns();
            (*state).changes += 1;
            stats::update(port.index, |s| s.claims += 1);
        }
    }
}

/// Forgets `port` as the group's active member (its tap went away).
#[inline(always)]
pub fn deactivate(group: u32, port: u32) {
    let Some(state) = GROUP_STATE.get_ptr_mut(group) else {
        return;
    };
    // SAFETY: a valid array element; see `claim` for races.
    unsafe {
        if (*state).active == port {
            (*state).active = 0;
            (*state).changed_ns = bpf_ktime_get_ns();
            (*state).changes += 1;
        }
    }
}

/// A claim for an IPv4 address of the port's network.
#[inline(always)]
pub fn claim_v4(slot: u32, port: &PortInfo, addr: [u8; 4]) {
    let key = Key::new(
        NEIGH_PREFIX_BITS + 32,
        NeighV4Key {
            slot,
            network: port.network,
            addr,
        },
    );
    if let Some(n) = NEIGH_V4.get(&key) {
        if n.kind == TARGET_GROUP {
            claim(slot, port, n.target);
        }
    }
}

#[inline(always)]
pub fn claim_v6(slot: u32, port: &PortInfo, addr: [u8; 16]) {
    let key = Key::new(
        NEIGH_PREFIX_BITS + 128,
        NeighV6Key {
            slot,
            network: port.network,
            addr,
        },
    );
    if let Some(n) = NEIGH_V6.get(&key) {
        if n.kind == TARGET_GROUP {
            claim(slot, port, n.target);
        }
    }
}

/// A frame from a shared MAC claims the MAC's group.
#[inline(always)]
pub fn claim_mac(slot: u32, port: &PortInfo, mac: [u8; 6]) {
    let key = FdbKey {
        slot,
        network: port.network,
        mac,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    if let Some(e) = unsafe { FDB.get(key) }.copied() {
        if e.kind == TARGET_GROUP {
            claim(slot, port, e.target);
        }
    }
}

/// The MAC a member binds the group's address to.
#[inline(always)]
pub fn member_mac(slot: u32, group: u32, port: u32) -> Option<[u8; 6]> {
    // SAFETY: copied out at once.
    unsafe { GROUP_MEMBERS.get(GroupMemberKey { slot, group, port }) }.map(|m| m.mac)
}

//! Drop events for `dataplane monitor`: what a VM sent that was dropped,
//! and why, streamed through a ring buffer. A per-CPU budget bounds them to
//! EVENTS_PER_SECOND per CPU, so a tenant flooding spoofed frames costs
//! the agent at most that much; counters still count every drop.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use common::{
    DropEvent, EVENTS_PER_SECOND,
    proto::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
};

use crate::{
    maps::{EVENT_BUDGET, EVENTS},
    packet::Packet,
    parse::ETH_HLEN,
};

const SEC: u64 = 1_000_000_000;

/// Whether this CPU may send one more event in the current second.
#[inline(always)]
fn within_budget(now: u64) -> bool {
    let Some(b) = EVENT_BUDGET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's entry.
    let b = unsafe { &mut *b };
    if now.wrapping_sub(b.window_ns) >= SEC {
        b.window_ns = now;
        b.sent = 0;
    }
    if b.sent >= EVENTS_PER_SECOND {
        b.suppressed = b.suppressed.wrapping_add(1);
        return false;
    }
    b.sent += 1;
    true
}

/// Records that `port` dropped `pkt` for `reason`. A BPF subprogram, and
/// the event is written straight into the ring buffer: `from_vm`'s stack
/// leaves little room.
#[inline(never)]
pub fn dropped(pkt: &Packet, port: u32, reason: u32) -> u32 {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if !within_budget(now) {
        return 0;
    }
    // A full ring (nobody reading) loses the event; the counter has it.
    let Some(mut entry) = EVENTS.reserve(0) else {
        return 0;
    };
    let e: *mut DropEvent = entry.as_mut_ptr();
    // SAFETY: `e` points to a reserved DropEvent, written field by field
    // before it is submitted.
    unsafe {
        core::ptr::write_bytes(e, 0, 1);
        (*e).ns = now;
        (*e).port = port;
        (*e).reason = reason;
        if let Some(h) = pkt.read::<[u8; 14]>(0) {
            (*e).src_mac = [h[6], h[7], h[8], h[9], h[10], h[11]];
            (*e).ethertype = u16::from_be_bytes([h[12], h[13]]);
        }
        let ethertype = (*e).ethertype;
        if ethertype == ETH_P_IP {
            if let Some([_, proto]) = pkt.read::<[u8; 2]>(ETH_HLEN + 8) {
                (*e).proto = proto;
            }
            if let Some(a) = pkt.read::<[u8; 4]>(ETH_HLEN + 12) {
                write4(core::ptr::addr_of_mut!((*e).src), a);
            }
            if let Some(a) = pkt.read::<[u8; 4]>(ETH_HLEN + 16) {
                write4(core::ptr::addr_of_mut!((*e).dst), a);
            }
        } else if ethertype == ETH_P_IPV6 {
            if let Some([next, _]) = pkt.read::<[u8; 2]>(ETH_HLEN + 6) {
                (*e).proto = next;
            }
            if let Some(a) = pkt.read::<[u8; 16]>(ETH_HLEN + 8) {
                (*e).src = a;
            }
            if let Some(a) = pkt.read::<[u8; 16]>(ETH_HLEN + 24) {
                (*e).dst = a;
            }
        } else if ethertype == ETH_P_ARP {
            if let Some(a) = pkt.read::<[u8; 4]>(ETH_HLEN + 14) {
                write4(core::ptr::addr_of_mut!((*e).src), a);
            }
            if let Some(a) = pkt.read::<[u8; 4]>(ETH_HLEN + 24) {
                write4(core::ptr::addr_of_mut!((*e).dst), a);
            }
        }
    }
    entry.submit(0);
    0
}

/// Writes an IPv4 address into the first 4 bytes of a 16-byte field.
///
/// # Safety
/// `field` must be valid for writes.
#[inline(always)]
unsafe fn write4(field: *mut [u8; 16], a: [u8; 4]) {
    // SAFETY: the caller's field holds 16 bytes.
    unsafe { core::ptr::write_unaligned(field as *mut [u8; 4], a) };
}

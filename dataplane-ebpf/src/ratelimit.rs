//! The budget of ICMP errors the router sends to each port: at most
//! `ICMP_ERRORS_PER_SECOND` per port, CPU and one-second window (RFC 1812
//! 4.3.2.8, RFC 4443 2.4(f)). Per port, so that a tenant provoking errors
//! cannot use up another's; per CPU, so that no lock is taken.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use common::ICMP_ERRORS_PER_SECOND;

use crate::maps::ICMP_BUDGET;

const SEC: u64 = 1_000_000_000;

/// Whether one more error may go to `port` now; takes it from the budget.
#[inline(always)]
pub fn allow(port: u32) -> bool {
    let Some(b) = ICMP_BUDGET.get_ptr_mut(port) else {
        return false;
    };
    // SAFETY: this CPU's entry; programs do not nest on a CPU.
    let b = unsafe { &mut *b };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(b.window_ns) >= SEC {
        b.window_ns = now;
        b.sent = 0;
    }
    if b.sent >= ICMP_ERRORS_PER_SECOND {
        return false;
    }
    b.sent += 1;
    true
}

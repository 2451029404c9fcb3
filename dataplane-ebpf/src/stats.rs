//! Per-port counters (`PORT_STATS`, one copy per CPU, so plain increments).

use common::{DROP_REASON_COUNT, DropReason, PORT_STATS_DROPS_OFFSET, PortStats};

use crate::maps::PORT_STATS;

#[inline(always)]
fn stats(port: u32) -> Option<*mut PortStats> {
    PORT_STATS.get_ptr_mut(port)
}

/// Adds one to a port's counter for `reason`. Port 0 collects drops that
/// cannot be tied to a port.
#[inline(always)]
pub fn count_drop(port: u32, reason: DropReason) {
    let index = reason as usize;
    if index >= DROP_REASON_COUNT {
        return;
    }
    if let Some(s) = stats(port) {
        // SAFETY: PortStats is repr(C) and made of u64 counters only; the
        // drop counters start at PORT_STATS_DROPS_OFFSET and `index` was
        // checked against their number above.
        unsafe { *(s as *mut u64).add(PORT_STATS_DROPS_OFFSET + index) += 1 };
    }
}

/// Updates a port's counters through `f`.
#[inline(always)]
pub fn update(port: u32, f: impl FnOnce(&mut PortStats)) {
    if let Some(s) = stats(port) {
        // SAFETY: per-CPU value of this port; programs do not nest on a CPU.
        f(unsafe { &mut *s });
    }
}

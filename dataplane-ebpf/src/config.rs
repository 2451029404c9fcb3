//! The global configuration entry and port lookup.

use common::{DpConfig, PortInfo, PortKey};

use crate::maps::{CONFIG, PORTS};

/// The slot whose configuration entries are live; read once per packet so
/// that every lookup of one packet sees the same configuration.
#[inline(always)]
pub fn active_slot() -> u32 {
    CONFIG.get(0).map(|c| c.active_slot).unwrap_or(0)
}

/// The live slot and generation, read once per packet like
/// [`active_slot`].
#[inline(always)]
pub fn current() -> DpConfig {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// The port bound to `ifindex`, copied out of the map.
#[inline(always)]
pub fn port_by_ifindex(slot: u32, ifindex: u32) -> Option<PortInfo> {
    let key = PortKey { slot, ifindex };
    // SAFETY: the value is copied before any other map operation.
    unsafe { PORTS.get(key) }.copied()
}

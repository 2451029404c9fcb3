//! Host interfaces: resolving tap names to interface indexes.

use std::ffi::CString;

use dataplane_config::config::{ConfigError, ConfigErrors, Topology};

/// The interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string for the call's duration.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Resolves every port's tap, or reports each one that does not exist.
pub fn resolve_taps(topology: &Topology) -> Result<Vec<u32>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut indexes = Vec::with_capacity(topology.ports.len());
    for port in &topology.ports {
        match ifindex(&port.tap) {
            Some(i) => indexes.push(i),
            None => {
                errors.push(ConfigError {
                    object: port.label(),
                    field: "tap_name".into(),
                    message: format!("interface {} does not exist", port.tap),
                });
                indexes.push(0);
            }
        }
    }
    if errors.is_empty() {
        Ok(indexes)
    } else {
        Err(ConfigErrors(errors))
    }
}

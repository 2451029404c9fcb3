//! Stopping the processes the tests and benchmarks start (agents, etcd,
//! Neutron, MariaDB, Open vSwitch): a signal, a grace period in which the
//! exit is polled for, then SIGKILL.

use std::{
    process::Child,
    time::{Duration, Instant},
};

/// Sends `signal` to `child` and waits up to `grace` for it to exit; kills
/// it (SIGKILL) and reaps it otherwise. Returns whether it exited on the
/// signal.
pub fn stop(child: &mut Child, signal: libc::c_int, grace: Duration) -> bool {
    // SAFETY: signalling a child we own and have not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

//! What both demos (`cargo xtask run`, `cargo xtask run --hosts`) share:
//! steps that stop on Ctrl-C (the demo then removes what it built) and
//! verdicts printed against what was expected.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::lab::Vm;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP end the demo at its next step, through its
/// normal clean-up.
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Waits for Ctrl-C (`--hold`), then lets the demo go on to its clean-up.
pub fn hold() {
    while !interrupted() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    INTERRUPTED.store(false, Ordering::Relaxed);
}

/// Starts a step (its title), unless the demo was interrupted.
pub fn step(title: &str) -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    println!("\n== {title}");
    Ok(())
}

/// Prints whether `vm` got replies for `what`, and fails if that is not
/// what was expected.
pub fn show(vm: &Vm, what: &str, replied: bool, expected: bool) -> Result<()> {
    let verdict = if replied { "replies" } else { "no reply" };
    let mark = if replied == expected {
        "as expected"
    } else {
        "UNEXPECTED"
    };
    println!("   {:<8} {what}: {verdict} ({mark})", vm.name);
    if replied != expected {
        bail!(
            "{} {what}: expected {}",
            vm.name,
            if expected { "replies" } else { "no reply" }
        );
    }
    Ok(())
}

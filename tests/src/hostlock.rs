//! Locks shared by every checkout on this machine, for tests that change
//! something global (the dpkg database, the guest image cache): two runs
//! of the same test from two worktrees take turns instead of failing.

use std::{fs::File, os::fd::AsRawFd as _};

use anyhow::{Context, Result, bail};

/// Held until dropped (flock ends with the file).
pub struct HostLock {
    _file: File,
}

impl HostLock {
    /// Waits for `/run/lock/aap-tests-NAME.lock`.
    pub fn take(name: &str) -> Result<HostLock> {
        let path = format!("/run/lock/aap-tests-{name}.lock");
        let file = File::create(&path).with_context(|| format!("creating {path}"))?;
        // SAFETY: flock on an open file descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("flock {path}: {}", std::io::Error::last_os_error());
        }
        Ok(HostLock { _file: file })
    }
}

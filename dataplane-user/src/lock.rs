//! One agent per instance: `dataplane run` holds an exclusive `flock` on
//! `/run/dataplane/<instance>.lock` for its whole life (bpffs, where the
//! instance's state lives, does not take locks). A second `run` is refused,
//! naming the holder's PID, which the holder writes into the file. The
//! kernel drops the lock when the holder exits, however it exits (SIGKILL
//! included), so a lock is never stale.
//!
//! What belongs to the lock holder: the control socket and the facts file
//! beside it (only the holder creates or removes them), and the pinned
//! state while it runs (`dataplane stop` takes the lock before it removes
//! pins, or asks the holder to).

use std::{
    fs::File,
    io::{Read, Seek, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// Where the agent's lock, control socket and facts live.
pub const RUN_DIR: &str = "/run/dataplane";

pub fn lock_path(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.lock"))
}

/// The instance is run by another agent.
#[derive(Debug, thiserror::Error)]
#[error(
    "instance {instance} is already run by {} (lock {}): stop that agent first \
     (`dataplane --instance {instance} stop`, or SIGTERM to leave the datapath running), \
     or choose another --instance",
    holder(.pid),
    .path.display()
)]
pub struct Held {
    pub instance: String,
    /// The holder's PID: None if the holder is not a live agent (an
    /// agent that has not written its PID yet, or `dataplane stop`).
    pub pid: Option<u32>,
    pub path: PathBuf,
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("the agent with PID {pid}"),
        None => "an agent that is starting, or a `dataplane stop`".into(),
    }
}

/// An exclusive lock on an instance, released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the instance's lock, or fails with [`Held`] if an agent holds
    /// it; writes this process's PID into the lock file. A holder that is
    /// not a live agent (`dataplane stop` removing state, or a reader
    /// checking for an agent) holds it briefly: waited for, up to 2 s.
    pub fn acquire(instance: &str) -> Result<InstanceLock> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match Self::try_acquire(instance)? {
                Ok(lock) => {
                    lock.write_pid()?;
                    return Ok(lock);
                }
                Err(held) if held.pid.is_some() || Instant::now() > deadline => {
                    return Err(held.into());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Takes the lock without writing a PID (for `dataplane stop`, which
    /// holds it only while it removes pinned state). `Ok(Err(held))` if an
    /// agent holds it.
    pub fn try_acquire(instance: &str) -> Result<Result<InstanceLock, Held>> {
        let path = lock_path(instance);
        std::fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(err).with_context(|| format!("locking {}", path.display()));
                }
                return Ok(Err(Held {
                    instance: instance.to_string(),
                    pid: read_pid(&mut file),
                    path,
                }));
            }
            // The previous holder may have removed the file between our
            // open and our lock: the lock must be on the file the path
            // names now, or a third process could lock a new file too.
            let ours = file.metadata()?.ino();
            if std::fs::metadata(&path).map(|m| m.ino()).ok() == Some(ours) {
                return Ok(Ok(InstanceLock { file, path }));
            }
        }
    }

    fn write_pid(&self) -> Result<()> {
        let mut f = &self.file;
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Removed while still locked (see the inode check in try_acquire);
        // closing the file then releases the lock.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The PID in a held lock file, if that process is alive (a file left by
/// an agent that was killed names a dead one).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    let pid: u32 = s.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid as i32, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then_some(pid)
}

/// The PID of the agent running `instance`, if one holds its lock.
pub fn running_agent(instance: &str) -> Result<Option<Option<u32>>> {
    Ok(match InstanceLock::try_acquire(instance)? {
        Ok(_free) => None,
        Err(held) => Some(held.pid),
    })
}

/// Waits until no agent holds the instance's lock (it exited); false if
/// one still does after `within`.
pub fn wait_released(instance: &str, within: Duration) -> Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        if running_agent(instance)?.is_none() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

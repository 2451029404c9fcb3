//! The instance's directory on bpffs: mounting it, checking what a
//! previous run pinned there, removing it.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::maps::MapData;
use common::names;
use tracing::warn;

use super::maps::MapSpec;

pub const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub fn instance_dir(instance: &str) -> PathBuf {
    Path::new(BPFFS).join(instance)
}

/// Mounts bpffs on /sys/fs/bpf unless it is there already.
pub fn ensure_bpffs() -> Result<()> {
    let path = CString::new(BPFFS).unwrap();
    // SAFETY: statfs writes into the zeroed struct; path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS).ok();
    let fstype = CString::new("bpf").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "cannot mount bpffs on {BPFFS}: {} (are you root?)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Pinned maps whose contents a new build may start afresh when their
/// layout changed (a counter added, a cache): counters restart from zero
/// and cached flows take the full path once, and nothing a packet's
/// verdict depends on is lost. Every other map (configuration, connections,
/// NAT, claims) must match, or the run stops.
const RENEWABLE: &[&str] = &[
    names::PORT_STATS,
    names::SG_STATS,
    names::NAT_STATS,
    names::FLOW_CACHE,
];

/// Creates the instance directory, or checks that the maps pinned there by
/// a previous run have the layout this build expects. A renewable map of
/// another layout (an upgrade that added a counter) is unpinned, so that
/// this run pins a new one; the previous run's programs, still attached
/// until this run takes their links over, keep the old map meanwhile.
pub fn prepare(dir: &Path, specs: &[MapSpec]) -> Result<()> {
    let maps = dir.join("maps");
    std::fs::create_dir_all(&maps).with_context(|| format!("creating {}", maps.display()))?;
    for s in specs {
        let path = maps.join(s.name);
        if !path.exists() {
            continue;
        }
        let info = MapData::from_pin(&path)
            .and_then(|m| m.info())
            .with_context(|| format!("opening pinned map {}", path.display()))?;
        let found = (info.key_size(), info.value_size(), info.max_entries());
        let wanted = (s.key_size, s.value_size, s.max_entries);
        if found != wanted && RENEWABLE.contains(&s.name) {
            warn!(
                map = s.name,
                ?found,
                ?wanted,
                "a pinned map has another layout (a previous version's): it starts afresh"
            );
            std::fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
            continue;
        }
        if found != wanted {
            bail!(
                "pinned map {} has (key size, value size, max entries) = {found:?} but this build \
                 needs {wanted:?}: it was made by another version or with other limits; remove \
                 the old datapath with `dataplane stop` first",
                path.display()
            );
        }
    }
    Ok(())
}

/// Removes the instance directory and everything pinned in it. Its XDP
/// links are detached first, at once: removing a pin only drops a
/// reference, and the link would leave its interface only once the last
/// one (an agent's) is gone, after an RCU grace period. Returns how many
/// links were detached.
pub fn remove(dir: &Path) -> Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let detached = detach_links(&dir.join("links"));
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(detached)
}

/// Detaches every link pinned under `dir` (the tunnel's are one level
/// down); returns how many.
fn detach_links(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                detach_links(&path)
            } else {
                usize::from(detach_link(&path).is_ok())
            }
        })
        .sum()
}

/// Detaches the BPF link pinned at `pin` now (BPF_LINK_DETACH), whoever
/// else holds a reference to it; the pin stays (a defunct link).
pub fn detach_link(pin: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct LinkDetach {
        link_fd: u32,
    }
    let path = CString::new(pin.as_os_str().as_bytes())?;
    let get = ObjGet {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: bpf(2) with an attribute struct of the size given; the path
    // outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &get as *const ObjGet,
            size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let detach = LinkDetach { link_fd: fd as u32 };
    // SAFETY: as above; fd is the link's, closed right after.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            &detach as *const LinkDetach,
            size_of::<LinkDetach>(),
        )
    };
    let result = if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: closing the fd BPF_OBJ_GET gave us.
    unsafe { libc::close(fd as i32) };
    result
}

/// A NUL-padded byte string as text.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

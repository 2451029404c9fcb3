//! The instance's directory on bpffs: mounting it, checking what a
//! previous run pinned there, removing it.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::maps::MapData;

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

/// Creates the instance directory, or checks that the maps pinned there by
/// a previous run have the layout this build expects.
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

/// Removes the instance directory and everything pinned in it.
pub fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// A NUL-padded byte string as text.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

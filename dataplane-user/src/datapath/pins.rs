//! The instance's directory on bpffs and the layout of its pinned maps.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::maps::MapData;
use common::{
    CT_STATS_ENTRIES, CtEntry, CtKey, CtStats, DpConfig, EVENTS_RING_BYTES, FdbEntry, FdbKey,
    FloodKey, GroupMember, GroupMemberKey, GroupMeta, GroupState, JUMP_SLOTS, MAX_FLOOD_DOMAINS,
    MAX_GROUPS, MAX_POLICY_RULES, MAX_REMOTE_PREFIXES, MAX_ROUTER_INTERFACES, MAX_SECURITY_GROUPS,
    Neigh, NeighV4Key, NeighV6Key, PolicyEntry, PolicyKey, PortAddr, PortAddrV4Key, PortAddrV6Key,
    PortInfo, PortKey, PortMac, PortMacKey, PortMeta, PortStats, RemoteIdentity, RemoteV4Key,
    RemoteV6Key, Route, RouteV4Key, RouteV6Key, SgMeta, SgStats,
};

use super::Options;

pub const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Address entries (MACs, fixed IPs, pairs, link-local addresses) one port
/// may need, on average, in each address map.
pub const ADDRESSES_PER_PORT: u32 = 32;

pub fn instance_dir(instance: &str) -> PathBuf {
    Path::new(BPFFS).join(instance)
}

/// Layout of a map this build expects.
#[derive(Clone, Debug)]
pub struct MapSpec {
    pub name: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

fn spec<K, V>(name: &'static str, max_entries: u32) -> MapSpec {
    MapSpec {
        name,
        key_size: size_of::<K>() as u32,
        value_size: size_of::<V>() as u32,
        max_entries,
    }
}

/// The pinned maps of the datapath and their sizes for `opts`. LPM keys
/// carry a 4-byte prefix length before the data.
pub fn map_specs(opts: &Options) -> Vec<MapSpec> {
    let ports = opts.max_ports;
    let slotted_ports = 2 * ports;
    let slotted_addrs = 2 * ports * ADDRESSES_PER_PORT;
    vec![
        spec::<u32, DpConfig>("CONFIG", 1),
        spec::<PortKey, PortInfo>("PORTS", slotted_ports),
        spec::<PortMacKey, PortMac>("PORT_MACS", slotted_addrs),
        spec::<([u8; 4], PortAddrV4Key), PortAddr>("PORT_ADDRS_V4", slotted_addrs),
        spec::<([u8; 4], PortAddrV6Key), PortAddr>("PORT_ADDRS_V6", slotted_addrs),
        // Index 0 collects drops not tied to a port.
        spec::<u32, PortStats>("PORT_STATS", ports + 1),
        spec::<u32, PortMeta>("PORT_META", ports + 1),
        spec::<FdbKey, FdbEntry>("FDB", slotted_addrs),
        spec::<([u8; 4], NeighV4Key), Neigh>("NEIGH_V4", slotted_addrs),
        spec::<([u8; 4], NeighV6Key), Neigh>("NEIGH_V6", slotted_addrs),
        spec::<GroupMemberKey, GroupMember>("GROUP_MEMBERS", slotted_addrs),
        spec::<([u8; 4], RouteV4Key), Route>("ROUTES_V4", 2 * MAX_ROUTER_INTERFACES),
        spec::<([u8; 4], RouteV6Key), Route>("ROUTES_V6", 2 * MAX_ROUTER_INTERFACES),
        spec::<u32, GroupState>("GROUP_STATE", MAX_GROUPS),
        spec::<u32, GroupMeta>("GROUP_META", MAX_GROUPS),
        // Device map values: ifindex and the fd of the program run per entry.
        spec::<u32, [u32; 2]>("TX_PORTS", ports + 1),
        spec::<FloodKey, u32>("FLOOD", MAX_FLOOD_DOMAINS),
        // Program fds of the tail-called routing programs.
        spec::<u32, u32>("JUMP", JUMP_SLOTS),
        // A ring buffer: no key or value size, its size in bytes.
        spec::<(), ()>("EVENTS", EVENTS_RING_BYTES),
        spec::<([u8; 4], PolicyKey), PolicyEntry>("POLICY", MAX_POLICY_RULES),
        spec::<([u8; 4], RemoteV4Key), RemoteIdentity>("REMOTE_V4", MAX_REMOTE_PREFIXES),
        spec::<([u8; 4], RemoteV6Key), RemoteIdentity>("REMOTE_V6", MAX_REMOTE_PREFIXES),
        spec::<CtKey, CtEntry>("CONNTRACK", opts.max_connections),
        spec::<u32, CtStats>("CT_STATS", CT_STATS_ENTRIES),
        spec::<u32, SgStats>("SG_STATS", MAX_SECURITY_GROUPS),
        spec::<u32, SgMeta>("SG_META", MAX_SECURITY_GROUPS),
    ]
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

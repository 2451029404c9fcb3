//! Interfaces the datapath's frames are lost on, although its programs
//! count them as forwarded: what `status`, `show ports`, `trace` and the
//! metrics warn of.
//!
//! A tap that is one end of a veth (VMs that are namespaces or
//! containers) has two such traps, both in its peer (the VM's end):
//!
//! - frames the datapath redirects to the tap (XDP_REDIRECT, and the
//!   ARP/ND answers it sends back with XDP_TX) cross to the peer only
//!   through the peer's NAPI, which a veth has only while it is up and has
//!   GRO on or an XDP program. Without it the kernel refuses every such
//!   frame (`__xdp_enqueue`: the tap lacks NETDEV_XDP_ACT_NDO_XMIT), and
//!   no program of ours sees the refusal;
//! - a peer that offloads its TX checksums sends TCP and UDP with the
//!   checksum left to be filled in; XDP turns the frame into a plain
//!   buffer and loses that note, so the receiver gets a bad checksum and
//!   drops it.
//!
//! A tun/tap (a VM behind vhost-net) has neither. The peer lives in the
//! VM's namespace: it is found by its namespace id among the named
//! namespaces (`ip netns`) and those of running processes, and looked at
//! from a thread that enters it.

use std::{
    collections::BTreeMap,
    fs::File,
    os::fd::{AsRawFd, OwnedFd},
};

use serde::Serialize;

use crate::netlink::{self, Link};

/// What is wrong with a port's interface, if anything.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LinkHealth {
    /// The tap's kind ("veth", "tun", ...).
    pub kind: String,
    /// The veth's other end (the VM's interface), when it could be seen:
    /// "eth0 in netns NAME".
    pub peer: Option<String>,
    /// Why frames are lost, one line each.
    pub problems: Vec<Problem>,
    /// The kernel's count of frames of this tap dropped after the
    /// datapath decided (refused redirects and answers among them).
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// "no_napi" (every frame sent to the port is lost) or
    /// "tx_checksum_offload" (its TCP and UDP arrive with bad checksums).
    pub code: String,
    pub detail: String,
    /// What to run in the VM's namespace to fix it.
    pub fix: String,
}

impl LinkHealth {
    /// Whether every frame sent to the port is lost.
    pub fn loses_everything(&self) -> bool {
        self.problems.iter().any(|p| p.code == "no_napi")
    }
}

/// What the peer end of a veth has.
#[derive(Debug, Default)]
struct Peer {
    name: String,
    up: bool,
    gro: bool,
    xdp: bool,
    tx_checksum: bool,
}

/// Looks at taps; remembers the namespaces it found on the way.
#[derive(Default)]
pub struct Inspector {
    /// Namespace id (as this namespace knows it) -> (name, open namespace).
    netns: BTreeMap<i32, (String, File)>,
    /// Namespaces already looked at, by (device, inode).
    seen: std::collections::BTreeSet<(u64, u64)>,
    /// Which places were looked through: named namespaces, processes'.
    scanned: (bool, bool),
}

impl Inspector {
    /// The health of the interface named `tap` (None: there is none).
    pub fn check(&mut self, tap: &str) -> Option<LinkHealth> {
        let ifindex = crate::interfaces::ifindex(tap)?;
        let link = netlink::link(ifindex).ok()??;
        let mut health = LinkHealth {
            kind: link.kind.clone(),
            rx_dropped: link.rx_dropped,
            tx_dropped: link.tx_dropped,
            ..LinkHealth::default()
        };
        if link.kind == "veth" {
            if let Some((peer, netns)) = self.peer(&link) {
                health.peer = Some(match &netns {
                    Some(ns) => format!("{} in netns {ns}", peer.name),
                    None => peer.name.clone(),
                });
                health.problems = problems(&peer, netns.as_deref());
            }
        }
        Some(health)
    }

    /// The peer of a veth, and the name of its namespace (None: this one).
    fn peer(&mut self, link: &Link) -> Option<(Peer, Option<String>)> {
        let ifindex = link.peer_ifindex?;
        let Some(nsid) = link.peer_netnsid else {
            return Some((inspect(ifindex)?, None));
        };
        let (name, file) = self.namespace(nsid)?;
        let fd: OwnedFd = file.try_clone().ok()?.into();
        let name = name.clone();
        let peer = std::thread::spawn(move || {
            // SAFETY: setns on an open namespace file, for this thread only
            // (it ends here).
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            inspect(ifindex)
        })
        .join()
        .ok()??;
        Some((peer, Some(name)))
    }

    /// The namespace this one knows as `nsid`: looked for among the named
    /// ones first (their names are what operators know), then, only if
    /// need be, among those of processes (a container's).
    fn namespace(&mut self, nsid: i32) -> Option<&(String, File)> {
        if !self.netns.contains_key(&nsid) && !self.scanned.0 {
            self.scanned.0 = true;
            let named = std::fs::read_dir("/run/netns")
                .into_iter()
                .flatten()
                .flatten();
            self.scan(named.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())));
        }
        if !self.netns.contains_key(&nsid) && !self.scanned.1 {
            self.scanned.1 = true;
            let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
            self.scan(procs.filter_map(|e| {
                let pid = e.file_name().to_string_lossy().into_owned();
                pid.parse::<u32>()
                    .ok()
                    .map(|_| (format!("of PID {pid}"), e.path().join("ns/net")))
            }));
        }
        self.netns.get(&nsid)
    }

    /// Notes the id of each namespace among `candidates` (name, path).
    fn scan(&mut self, candidates: impl Iterator<Item = (String, std::path::PathBuf)>) {
        use std::os::unix::fs::MetadataExt;
        for (name, path) in candidates {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !self.seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            if let Ok(Some(id)) = netlink::netnsid_of(&file) {
                self.netns.entry(id).or_insert((name, file));
            }
        }
    }
}

/// The link `ifindex` of the calling thread's namespace, as a veth peer.
fn inspect(ifindex: u32) -> Option<Peer> {
    let link = netlink::link(ifindex).ok()??;
    // SAFETY: a plain socket call; the fd is owned just below. Its
    // namespace is the thread's: the ioctls below see the peer's links.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return None;
    }
    // SAFETY: a socket we just opened, closed when this drops.
    let socket = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(socket) };
    Some(Peer {
        gro: ethtool_flag(&socket, &link.name, ETHTOOL_GGRO).unwrap_or(false),
        tx_checksum: ethtool_flag(&socket, &link.name, ETHTOOL_GTXCSUM).unwrap_or(false),
        name: link.name,
        up: link.up,
        xdp: link.xdp,
    })
}

fn problems(peer: &Peer, netns: Option<&str>) -> Vec<Problem> {
    let run = |cmd: &str| match netns {
        Some(ns) if !ns.starts_with("of PID") => format!("ip netns exec {ns} {cmd}"),
        _ => cmd.to_string(),
    };
    let mut out = Vec::new();
    if peer.up && !peer.gro && !peer.xdp {
        out.push(Problem {
            code: "no_napi".into(),
            detail: format!(
                "every frame sent to this port is lost: its veth peer {} has no NAPI \
                 (GRO off, no XDP program), so the kernel refuses the frames the \
                 datapath redirects to it",
                peer.name
            ),
            fix: run(&format!("ethtool -K {} gro on", peer.name)),
        });
    }
    if peer.up && peer.tx_checksum {
        out.push(Problem {
            code: "tx_checksum_offload".into(),
            detail: format!(
                "TCP and UDP this port sends arrive with bad checksums: its veth peer {} \
                 offloads TX checksums, which XDP-forwarded frames lose",
                peer.name
            ),
            fix: run(&format!("ethtool -K {} tx off", peer.name)),
        });
    }
    out
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GGRO: u32 = 0x2b;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// An ethtool on/off setting (ETHTOOL_G*) of the interface `name`.
fn ethtool_flag(socket: &OwnedFd, name: &str, cmd: u32) -> Option<bool> {
    let mut value = EthtoolValue { cmd, data: 0 };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: SIOCETHTOOL reads the ifreq and writes the ethtool_value it
    // points to; both live until the call returns.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    (rc == 0).then_some(value.data != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_veth_peer_without_napi_or_with_checksum_offload_is_a_problem() {
        let peer = |gro, xdp, tx_checksum, up| Peer {
            name: "eth0".into(),
            up,
            gro,
            xdp,
            tx_checksum,
        };
        let codes = |p: &Peer| -> Vec<String> {
            problems(p, Some("vm1"))
                .into_iter()
                .map(|x| x.code)
                .collect()
        };
        assert!(codes(&peer(true, false, false, true)).is_empty());
        assert!(codes(&peer(false, true, false, true)).is_empty());
        assert_eq!(codes(&peer(false, false, false, true)), ["no_napi"]);
        assert_eq!(
            codes(&peer(true, false, true, true)),
            ["tx_checksum_offload"]
        );
        // A VM whose interface is down receives nothing anyway.
        assert!(codes(&peer(false, false, true, false)).is_empty());
        let fix = &problems(&peer(false, false, false, true), Some("vm1"))[0].fix;
        assert_eq!(fix, "ip netns exec vm1 ethtool -K eth0 gro on");
    }
}

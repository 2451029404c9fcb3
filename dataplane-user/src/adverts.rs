//! Unsolicited router advertisements: the agent sends each local port on a
//! network with an advertising router that router's advertisement (the
//! `ADVERTS` entry the datapath answers solicitations with), as radvd does
//! for Neutron: at once when the port appears or the advertisement
//! changes, twice more 16 s apart (RFC 4861 6.2.4's initial
//! advertisements), then at random intervals between
//! `adverts::MIN_INTERVAL` and `MAX_INTERVAL` seconds. Hosts need them:
//! a default route learnt from an advertisement lives 300 s.
//!
//! A thread of its own reads the live slot of the pinned maps every
//! second (so it follows every change however it came) and writes the
//! frames on the ports' taps with a packet socket: a frame sent on a tap
//! goes to its VM.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData};
use common::{Advert, AdvertKey, DpConfig, PortInfo, PortKey};
use dataplane_config::{MacAddr, adverts};
use tracing::{debug, warn};

use crate::datapath::pinned;

/// How often the maps are read for new ports and changed advertisements.
const SCAN: Duration = Duration::from_secs(1);
/// Initial advertisements after the first, and the gap between them.
const INITIAL: u32 = 2;
const INITIAL_GAP: Duration = Duration::from_secs(16);

/// The sending thread; it stops when this is dropped.
pub struct Advertiser {
    stop: Arc<AtomicBool>,
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts sending the advertisements of the datapath pinned in `dir`.
pub fn spawn(dir: PathBuf) -> Advertiser {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("adverts".into())
        .spawn(move || run(&dir, &flag))
        .map_err(|e| warn!("router advertisements are not sent: {e}"))
        .ok();
    Advertiser { stop }
}

/// What was last sent to a port, and when the next one is due.
struct Schedule {
    advert: Advert,
    next: Instant,
    /// Initial advertisements still to send.
    initial: u32,
}

fn run(dir: &std::path::Path, stop: &AtomicBool) {
    let socket = match Socket::open() {
        Ok(s) => s,
        Err(e) => {
            warn!("router advertisements are not sent: {e:#}");
            return;
        }
    };
    let mut rng = Rng::seeded();
    let mut ports: BTreeMap<u32, Schedule> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        match due(dir, &mut ports, &mut rng) {
            Ok(sends) => {
                for (ifindex, advert) in sends {
                    if let Err(e) = socket.send(ifindex, &advert) {
                        debug!(ifindex, "router advertisement not sent: {e}");
                    }
                }
            }
            Err(e) => debug!("reading the advertisements: {e:#}"),
        }
        std::thread::sleep(SCAN);
    }
}

/// The advertisements due now, by tap; updates the schedule (ports gone
/// are forgotten).
fn due(
    dir: &std::path::Path,
    ports: &mut BTreeMap<u32, Schedule>,
    rng: &mut Rng,
) -> Result<Vec<(u32, Advert)>> {
    let config: Array<MapData, DpConfig> = pinned::CONFIG(dir)?;
    let slot = config.get(&0, 0)?.active_slot;
    let by_network: HashMap<MapData, AdvertKey, Advert> = pinned::ADVERTS(dir)?;
    let mut adverts = BTreeMap::new();
    for item in by_network.iter() {
        let (k, v) = item?;
        if k.slot == slot {
            adverts.insert(k.network, v);
        }
    }
    let mut live = BTreeMap::new();
    if !adverts.is_empty() {
        let table: HashMap<MapData, PortKey, PortInfo> = pinned::PORTS(dir)?;
        for item in table.iter() {
            let (k, p) = item?;
            if let (true, Some(a)) = (k.slot == slot, adverts.get(&p.network)) {
                live.insert(k.ifindex, *a);
            }
        }
    }
    ports.retain(|ifindex, _| live.contains_key(ifindex));
    let now = Instant::now();
    let mut out = Vec::new();
    for (ifindex, advert) in live {
        let s = ports.entry(ifindex).or_insert(Schedule {
            advert,
            next: now,
            initial: INITIAL + 1,
        });
        if s.advert != advert {
            // A new advertisement goes out at once, as on a new port.
            *s = Schedule {
                advert,
                next: now,
                initial: INITIAL + 1,
            };
        }
        if s.next > now {
            continue;
        }
        out.push((ifindex, advert));
        s.initial = s.initial.saturating_sub(1);
        s.next = now
            + if s.initial > 0 {
                INITIAL_GAP
            } else {
                rng.between(adverts::MIN_INTERVAL, adverts::MAX_INTERVAL)
            };
    }
    Ok(out)
}

/// A packet socket to write frames on taps.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn open() -> Result<Socket> {
        use std::os::fd::FromRawFd;
        // SAFETY: a plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("opening a packet socket");
        }
        // SAFETY: fd is a new socket nobody else owns.
        Ok(Socket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends `advert` to all nodes on the tap `ifindex`.
    fn send(&self, ifindex: u32, advert: &Advert) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let len = usize::from(advert.len).min(advert.message.len());
        let frame = adverts::frame(
            MacAddr(advert.mac),
            &advert.message[..len],
            adverts::ALL_NODES,
            adverts::ALL_NODES_MAC,
        );
        // SAFETY: an all-zero sockaddr_ll is valid; fields are set below.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = 0x86ddu16.to_be();
        to.sll_ifindex = ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&adverts::ALL_NODES_MAC);
        // SAFETY: valid fd, buffer and address of the given sizes.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &to as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// xorshift64: spreads the periodic advertisements (RFC 4861 asks for
/// random intervals); nothing here needs more.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t ^ u64::from(std::process::id()) | 1)
    }

    fn between(&mut self, lo: u32, hi: u32) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = u64::from(hi.saturating_sub(lo)) * 1000 + 1;
        Duration::from_millis(u64::from(lo) * 1000 + self.0 % span)
    }
}

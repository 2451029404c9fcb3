//! A VM that keeps sending: frames written to its eth0 through a packet
//! socket opened inside its namespace, at a steady interval, from whatever
//! source address is current. Each frame carries a marker and a sequence
//! number so that background traffic never counts.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use lab::{lab::Vm, pkt};

pub const MARKER: &[u8] = b"aap-etcd-bench";

pub struct Sender {
    src: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

/// Where the frames go: the receiver's MAC and address, and a UDP port.
pub struct Target {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub dport: u16,
}

impl Sender {
    /// Starts sending from `vm` to `to` every `interval`, from `src`.
    pub fn start(vm: &Vm, to: Target, src: Ipv4Addr, interval: Duration) -> Result<Sender> {
        let fd = vm.ns.run_inside(open_on_eth0)?;
        let mut s = Sender {
            src: Arc::new(AtomicU32::new(src.into())),
            stop: Arc::new(AtomicBool::new(false)),
            sent: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            thread: None,
        };
        let (cur, stop, sent) = (s.src.clone(), s.stop.clone(), s.sent.clone());
        let from_mac = pkt::mac(&vm.mac);
        let thread = std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let src = Ipv4Addr::from(cur.load(Ordering::Relaxed));
                let frame = frame(from_mac, &to, src, seq);
                // SAFETY: a valid fd and buffer.
                let n =
                    unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                if n > 0 {
                    seq += 1;
                    sent.store(seq, Ordering::Relaxed);
                }
                std::thread::sleep(interval);
            }
        });
        s.thread = Some(thread);
        Ok(s)
    }

    /// From now on, frames come from `src`.
    pub fn set_source(&self, src: Ipv4Addr) {
        self.src.store(src.into(), Ordering::Relaxed);
    }

    /// The interval frames actually went out at, on average so far (the
    /// machine is busy: sleeps overrun).
    pub fn mean_interval(&self) -> Duration {
        let n = self.sent.load(Ordering::Relaxed).max(1);
        self.started.elapsed() / n as u32
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn frame(from_mac: pkt::Mac, to: &Target, src: Ipv4Addr, seq: u64) -> Vec<u8> {
    let mut payload = MARKER.to_vec();
    payload.extend_from_slice(&seq.to_be_bytes());
    let b = etherparse::PacketBuilder::ethernet2(from_mac, pkt::mac(&to.mac))
        .ipv4(src.octets(), to.ip.octets(), 64)
        .udp(4000, to.dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("frame");
    out
}

/// A packet socket for sending only (protocol 0: it receives nothing),
/// bound to eth0 of the calling thread's namespace.
fn open_on_eth0() -> Result<OwnedFd> {
    // SAFETY: plain syscalls on valid arguments.
    unsafe {
        let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let index = libc::if_nametoindex(c"eth0".as_ptr());
        if index == 0 {
            bail!("no eth0");
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        let len = size_of::<libc::sockaddr_ll>() as u32;
        if libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) != 0 {
            bail!("bind: {}", std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

//! Observing what arrives at an interface: an AF_PACKET socket opened
//! inside a namespace (it stays bound to that namespace afterwards).

use std::{
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

pub struct Capture {
    fd: OwnedFd,
}

const ETH_P_ALL: u16 = 0x0003;

impl Capture {
    /// Captures frames that `ifname` in `ns` receives (not the ones it sends).
    pub fn open(ns: &Netns, ifname: &str) -> Result<Capture> {
        let path = ns.path();
        let ifname = ifname.to_string();
        // setns affects only the calling thread, so do it on a thread of
        // its own; the socket keeps the namespace it was created in.
        let fd = std::thread::spawn(move || -> Result<OwnedFd> {
            let nsfile = File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: plain syscalls on valid fds and buffers.
            unsafe {
                if libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    bail!("setns {path}: {}", std::io::Error::last_os_error());
                }
                let raw = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(ETH_P_ALL.to_be()),
                );
                if raw < 0 {
                    bail!("socket: {}", std::io::Error::last_os_error());
                }
                let fd = OwnedFd::from_raw_fd(raw);
                let cname = std::ffi::CString::new(ifname.clone())?;
                let index = libc::if_nametoindex(cname.as_ptr());
                if index == 0 {
                    bail!("no interface {ifname} in {path}");
                }
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = ETH_P_ALL.to_be();
                sll.sll_ifindex = index as i32;
                if libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const _ as *const libc::sockaddr,
                    size_of::<libc::sockaddr_ll>() as u32,
                ) != 0
                {
                    bail!("bind: {}", std::io::Error::last_os_error());
                }
                // What the interface sends stays out of the socket's queue,
                // and the queue holds a burst: a test that reads after a
                // burst of hundreds of frames must find every one received.
                let on: libc::c_int = 1;
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_IGNORE_OUTGOING,
                    (&raw const on).cast(),
                    size_of::<libc::c_int>() as u32,
                );
                let bytes: libc::c_int = 8 << 20;
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const bytes).cast(),
                    size_of::<libc::c_int>() as u32,
                );
                Ok(fd)
            }
        })
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
        Ok(Capture { fd })
    }

    /// The next received frame within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.next_stamped(timeout).map(|(f, _)| f)
    }

    /// From now on, the kernel stamps each frame with the time it received
    /// it ([`Capture::next_stamped`]), rather than the time a reader got to
    /// it.
    pub fn timestamped(self) -> Result<Capture> {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd and option buffer.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        if r != 0 {
            bail!("SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
        }
        Ok(self)
    }

    /// The next received frame within `timeout`, with the kernel's receive
    /// time if the capture is [`Capture::timestamped`] (else the time it
    /// was read).
    pub fn next_stamped(&self, timeout: Duration) -> Option<(Vec<u8>, SystemTime)> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        let mut control = [0u8; 64];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.set_timeout(left);
            // SAFETY: every pointer in msg is to a live local buffer of the
            // length given with it.
            unsafe {
                let mut from: libc::sockaddr_ll = std::mem::zeroed();
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_name = (&raw mut from).cast();
                msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
                msg.msg_iov = &raw mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = control.len();
                let n = libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, 0);
                if n < 0 {
                    return None;
                }
                if from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let at = kernel_time(&msg).unwrap_or_else(SystemTime::now);
                return Some((buf[..n as usize].to_vec(), at));
            }
        }
    }

    fn set_timeout(&self, left: Duration) {
        let tv = libc::timeval {
            tv_sec: left.as_secs() as i64,
            tv_usec: left.subsec_micros().max(1) as i64,
        };
        // SAFETY: valid fd and option buffer.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as u32,
            );
        }
    }

    /// Waits up to `timeout` for a frame matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(f) if pred(&f) => return Some(f),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }

    /// Counts frames matching `pred` arriving during `window`.
    pub fn count(&self, window: Duration, pred: impl Fn(&[u8]) -> bool) -> usize {
        let deadline = Instant::now() + window;
        let mut n = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(f) if pred(&f) => n += 1,
                Some(_) => {}
                None => break,
            }
        }
        n
    }

    /// Discards frames already queued.
    pub fn drain(&self) {
        while self.next(Duration::from_millis(1)).is_some() {}
    }
}

/// The SCM_TIMESTAMPNS stamp among a received message's control data.
///
/// # Safety
/// `msg` is a message recvmsg filled in, its control buffer still live.
unsafe fn kernel_time(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: walking the control messages the kernel wrote (see above).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Frame field accessors for predicates.
pub mod frame {
    pub fn ethertype(f: &[u8]) -> u16 {
        if f.len() < 14 {
            return 0;
        }
        u16::from_be_bytes([f[12], f[13]])
    }

    pub fn src_mac(f: &[u8]) -> [u8; 6] {
        f.get(6..12)
            .map(|s| s.try_into().unwrap())
            .unwrap_or_default()
    }

    /// IPv4 source and destination, if the frame is IPv4.
    pub fn ipv4(f: &[u8]) -> Option<([u8; 4], [u8; 4], u8)> {
        if ethertype(f) != 0x0800 || f.len() < 34 {
            return None;
        }
        Some((
            f[26..30].try_into().ok()?,
            f[30..34].try_into().ok()?,
            f[23],
        ))
    }

    /// IPv6 source, destination and next header, if the frame is IPv6.
    pub fn ipv6(f: &[u8]) -> Option<([u8; 16], [u8; 16], u8)> {
        if ethertype(f) != 0x86dd || f.len() < 54 {
            return None;
        }
        Some((
            f[22..38].try_into().ok()?,
            f[38..54].try_into().ok()?,
            f[20],
        ))
    }

    /// ARP (oper, sender MAC, sender IP, target IP).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ArpFields(pub u16, pub [u8; 6], pub [u8; 4], pub [u8; 4]);

    /// An ARP packet's fields.
    pub fn arp(f: &[u8]) -> Option<ArpFields> {
        if ethertype(f) != 0x0806 || f.len() < 42 {
            return None;
        }
        Some(ArpFields(
            u16::from_be_bytes([f[20], f[21]]),
            f[22..28].try_into().ok()?,
            f[28..32].try_into().ok()?,
            f[38..42].try_into().ok()?,
        ))
    }

    /// Whether the frame carries `marker` anywhere in its payload: tests tag
    /// the packets they send so that background traffic never matches.
    pub fn contains(f: &[u8], marker: &[u8]) -> bool {
        f.windows(marker.len()).any(|w| w == marker)
    }
}

//! Address and port translation of IPv4 packets (Neutron's SNAT and
//! floating IPs): the rewrites with their checksum updates, and the SNAT
//! connections (`NAT`) with their port choice.
//!
//! Checksums are updated incrementally (RFC 1624) for each 16-bit word
//! that changes: the IPv4 header's for an address, and the transport's for
//! an address (TCP and UDP sum a pseudo-header with both addresses) or a
//! port. A UDP checksum of zero means "none" and stays zero.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::bpf_ktime_get_ns,
};
use common::{
    DropReason, NAT_IDLE_NS, NAT_IN, NAT_OUT, NAT_PORT_MIN, NAT_PORT_TRIES, NatEntry, NatKey,
    NatStats,
    proto::{ICMP_ECHO, ICMP_ECHOREPLY, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    checksum,
    maps::{NAT, NAT_STATS},
    packet::Packet,
    parse::{ETH_HLEN, Frag, Ipv4},
};

/// Offset of the IPv4 source address in the frame; the destination
/// follows it.
pub const SRC_OFF: usize = ETH_HLEN + 12;
pub const DST_OFF: usize = ETH_HLEN + 16;

/// Updates the NAT counters through `f`.
#[inline(always)]
pub fn count(f: impl FnOnce(&mut NatStats)) {
    if let Some(s) = NAT_STATS.get_ptr_mut(0) {
        // SAFETY: this CPU's entry; programs do not nest on a CPU.
        f(unsafe { &mut *s });
    }
}

/// The transport header's offset, read again from the header right where
/// it is used: an offset carried over from the parser (through the stack)
/// reached the pointer arithmetic with no bounds the verifier kept.
#[inline(always)]
pub fn l4_off(pkt: &Packet) -> Option<usize> {
    let [vihl, _] = pkt.read::<[u8; 2]>(ETH_HLEN)?;
    Some(ETH_HLEN + (vihl & 0x0f) as usize * 4)
}

/// Where the transport checksum that covers the addresses is: TCP's and
/// UDP's (pseudo-header), in the first fragment or an unfragmented
/// packet only. ICMP's does not cover the addresses.
#[inline(always)]
fn l4_check(pkt: &Packet, ip: &Ipv4) -> Option<usize> {
    if ip.frag == Frag::Later {
        return None;
    }
    let l4 = l4_off(pkt)?;
    match ip.proto {
        IPPROTO_TCP => Some(l4 + 16),
        IPPROTO_UDP => Some(l4 + 6),
        _ => None,
    }
}

/// Replaces one 16-bit word's contribution to the checksum at `at`; a
/// UDP checksum of zero (none) is left alone.
#[inline(always)]
fn fix(pkt: &Packet, at: usize, udp: bool, old: u16, new: u16) -> bool {
    let Some(check) = pkt.be16_at(at) else {
        return false;
    };
    if udp && check == 0 {
        return true;
    }
    let mut next = checksum::replace(check, old, new);
    if udp && next == 0 {
        next = 0xffff;
    }
    pkt.write(at, next.to_be_bytes())
}

/// Writes `new` over the IPv4 address at `off` (`SRC_OFF` or `DST_OFF`),
/// updating the header's and the transport's checksums.
#[inline(always)]
pub fn set_addr(pkt: &Packet, ip: &Ipv4, off: usize, new: [u8; 4]) -> bool {
    let Some(old) = pkt.read::<[u8; 4]>(off) else {
        return false;
    };
    let words = |a: [u8; 4]| {
        [
            u16::from_be_bytes([a[0], a[1]]),
            u16::from_be_bytes([a[2], a[3]]),
        ]
    };
    let ([o0, o1], [n0, n1]) = (words(old), words(new));
    let l4 = l4_check(pkt, ip);
    let udp = ip.proto == IPPROTO_UDP;
    let ok = fix(pkt, ETH_HLEN + 10, false, o0, n0) && fix(pkt, ETH_HLEN + 10, false, o1, n1);
    let ok = ok
        && match l4 {
            Some(at) => fix(pkt, at, udp, o0, n0) && fix(pkt, at, udp, o1, n1),
            None => true,
        };
    ok && pkt.write(off, new)
}

/// The transport's identifier of a connection on this side: TCP or UDP
/// ports (`which` 0: source, 2: destination), or the ICMP echo
/// identifier (both sides). With where its checksum is.
#[derive(Clone, Copy)]
pub struct PortField {
    pub off: usize,
    pub check: usize,
    pub udp: bool,
}

/// The port field of `ip` on side `dest` (false: the source), for the
/// protocols SNAT translates: TCP, UDP, ICMP echo requests (leaving) and
/// replies (arriving). None for anything else, or a fragment.
#[inline(always)]
pub fn port_field(pkt: &Packet, ip: &Ipv4, dest: bool) -> Option<PortField> {
    if ip.frag != Frag::None {
        return None;
    }
    let l4 = l4_off(pkt)?;
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => Some(PortField {
            off: l4 + if dest { 2 } else { 0 },
            check: l4 + if ip.proto == IPPROTO_TCP { 16 } else { 6 },
            udp: ip.proto == IPPROTO_UDP,
        }),
        IPPROTO_ICMP => {
            let [ty, _] = pkt.read::<[u8; 2]>(l4)?;
            let wanted = if dest { ICMP_ECHOREPLY } else { ICMP_ECHO };
            (ty == wanted).then_some(PortField {
                off: l4 + 4,
                check: l4 + 2,
                udp: false,
            })
        }
        _ => None,
    }
}

/// Writes `new` over a port field, updating its checksum.
#[inline(always)]
pub fn set_port(pkt: &Packet, f: &PortField, new: [u8; 2]) -> bool {
    let Some(old) = pkt.read::<[u8; 2]>(f.off) else {
        return false;
    };
    let (o, n) = (u16::from_be_bytes(old), u16::from_be_bytes(new));
    fix(pkt, f.check, f.udp, o, n) && pkt.write(f.off, new)
}

/// The peer's port of a connection: its TCP/UDP port at the source
/// (`at_dest` false) or destination side; 0 for ICMP echo, whose
/// identifier belongs to the VM's side.
#[inline(always)]
pub fn peer_port(pkt: &Packet, ip: &Ipv4, at_dest: bool) -> Option<[u8; 2]> {
    if ip.proto == IPPROTO_ICMP {
        return Some([0; 2]);
    }
    pkt.read::<[u8; 2]>(l4_off(pkt)? + if at_dest { 2 } else { 0 })
}

/// The gateway's address and port a connection from (`src`, `sport`) to
/// (`dst`, `dport`) leaves with: its SNAT connection's, or a new one's.
/// A traced packet (`trace`) opens none and is told the first candidate.
#[inline(always)]
pub fn snat_port(k: &NatKey, gateway: [u8; 4], trace: bool) -> Result<[u8; 2], DropReason> {
    // SAFETY: ktime is always callable from XDP.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(e) = NAT.get_ptr_mut(k) {
        // SAFETY: a value of this map; races with other CPUs only on the
        // time stamp, which is advisory.
        let port = unsafe {
            (*e).last_ns = now;
            (*e).port
        };
        // The reply direction must exist too: the LRU may have evicted
        // it alone. Re-created if it still belongs to this connection.
        if keep_in(k, gateway, port, now) {
            return Ok(port);
        }
    }
    let base = spread(k);
    for i in 0..NAT_PORT_TRIES {
        let span = u32::from(u16::MAX - NAT_PORT_MIN) + 1;
        let p = (NAT_PORT_MIN as u32 + (base.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        let port = p.to_be_bytes();
        if trace {
            return Ok(port);
        }
        if claim(k, gateway, port, now) {
            let out = NatEntry {
                addr: gateway,
                port,
                _pad: [0; 2],
                last_ns: now,
            };
            let _ = NAT.insert(k, out, BPF_ANY as u64);
            count(|s| s.snat_new += 1);
            return Ok(port);
        }
    }
    Err(DropReason::NatExhausted)
}

/// The arriving direction's key of the connection `k` leaves as
/// (`gateway`, `port`).
#[inline(always)]
fn in_key(k: &NatKey, gateway: [u8; 4], port: [u8; 2]) -> NatKey {
    NatKey {
        router: k.router,
        proto: k.proto,
        dir: NAT_IN,
        local_port: port,
        local: gateway,
        remote: k.remote,
        remote_port: k.remote_port,
        _pad: [0; 2],
    }
}

/// Refreshes the arriving direction of an existing connection, or puts it
/// back if it was evicted and the port is still free; false if the port
/// went to another connection meanwhile.
#[inline(always)]
fn keep_in(k: &NatKey, gateway: [u8; 4], port: [u8; 2], now: u64) -> bool {
    let ik = in_key(k, gateway, port);
    if let Some(e) = NAT.get_ptr_mut(ik) {
        // SAFETY: a value of this map (see `snat_port`).
        unsafe {
            if (*e).addr != k.local || (*e).port != k.local_port {
                return false;
            }
            (*e).last_ns = now;
        }
        return true;
    }
    claim(k, gateway, port, now)
}

/// Takes `port` for the connection `k` if no live connection to the same
/// peer holds it: writes the arriving direction. A connection idle for
/// `NAT_IDLE_NS` gives its port up (its leaving entry is removed, so that
/// it cannot capture the new one's replies).
#[inline(always)]
fn claim(k: &NatKey, gateway: [u8; 4], port: [u8; 2], now: u64) -> bool {
    let ik = in_key(k, gateway, port);
    let mine = NatEntry {
        addr: k.local,
        port: k.local_port,
        _pad: [0; 2],
        last_ns: now,
    };
    if NAT.insert(ik, mine, BPF_NOEXIST as u64).is_ok() {
        return true;
    }
    // SAFETY: copied out at once.
    let Some(held) = (unsafe { NAT.get(ik) }).copied() else {
        return false;
    };
    if held.last_ns.wrapping_add(NAT_IDLE_NS) > now {
        return false;
    }
    let old = NatKey {
        dir: NAT_OUT,
        local: held.addr,
        local_port: held.port,
        ..*k
    };
    let _ = NAT.remove(old);
    NAT.insert(ik, mine, BPF_ANY as u64).is_ok()
}

/// A hash of the connection, where its port search starts (so that
/// connections to one peer spread over the range).
#[inline(always)]
fn spread(k: &NatKey) -> u32 {
    let words = [
        u32::from_be_bytes(k.local),
        u32::from(u16::from_be_bytes(k.local_port)),
        u32::from_be_bytes(k.remote),
        u32::from(u16::from_be_bytes(k.remote_port)) << 16 | u32::from(k.proto),
    ];
    let mut h: u32 = 0x9e37_79b9 ^ k.router;
    for w in words {
        h = (h ^ w).wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
    }
    h
}

/// The connection an arriving packet belongs to: the VM's address and
/// port, refreshed (unless `trace`); None if no connection has that port.
#[inline(always)]
pub fn unsnat(k: &NatKey, trace: bool) -> Option<([u8; 4], [u8; 2])> {
    let e = NAT.get_ptr_mut(k)?;
    // SAFETY: a value of this map (see `snat_port`).
    unsafe {
        if !trace {
            (*e).last_ns = bpf_ktime_get_ns();
        }
        Some(((*e).addr, (*e).port))
    }
}

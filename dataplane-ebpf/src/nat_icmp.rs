//! ICMP errors from the outside about packets the gateway translated. An
//! outside router's "time exceeded" (traceroute), "destination
//! unreachable" (with "fragmentation needed": path MTU discovery) or
//! "parameter problem" is addressed to the gateway's address or to a
//! floating IP and quotes the packet as it left, translated. As Linux's
//! NAT does for an error related to a connection
//! (`nf_nat_icmp_reply_translation`), it is translated back before the
//! router routes it in: its destination becomes the VM's address, the
//! quoted packet's source the VM's address and port (or echo identifier).
//! Every checksum follows, incrementally (RFC 1624): the outer IPv4
//! header's, the quoted IPv4 header's, the quoted transport checksum where
//! Linux updates it (UDP's unless zero, TCP's only when its whole header is
//! quoted, an echo's), and the ICMP checksum over the whole message. The
//! receiving port's security groups then see an error quoting the VM's own
//! connection: related.
//!
//! Only an error about a packet the gateway sent passes: the quoted source
//! is the address the error came to and, for a gateway address, its
//! protocol and ports are those of a live SNAT connection (a floating IP's
//! mapping is static, as for its other packets). Anything else is dropped
//! `no_nat`; so is a fragment (`ip_fragment`), and a quote too short to
//! hold an IPv4 header and 8 bytes or a message whose ICMP checksum is
//! wrong (`malformed`: Linux's conntrack leaves such an error untranslated
//! and its router drops it). To a gateway address, no outside host can
//! thus have the gateway hand a VM an error about a connection it does
//! not see; to a floating IP, as for its other packets, the VM's security
//! groups decide (related to one of its live connections, or let in by
//! its ingress rules like any ICMP from outside).

use common::{
    DropReason, EXT_FLOATING, ExtAddr, NAT_IN, NatKey,
    proto::{
        ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_PARAMETERPROB, ICMP_TIME_EXCEEDED, IPPROTO_ICMP,
        IPPROTO_TCP, IPPROTO_UDP,
    },
};

use crate::{
    checksum, nat,
    packet::Packet,
    parse::{ETH_HLEN, Frag, Ipv4},
};

/// Whether `ip` is an ICMP error that quotes a packet (the types Linux's
/// conntrack relates to a connection, less source quench and redirect,
/// which nobody sends to a NAT gateway for a reason to honour).
#[inline(always)]
pub fn is_error(pkt: &Packet, ip: &Ipv4) -> bool {
    if ip.proto != IPPROTO_ICMP || ip.frag == Frag::Later {
        return false;
    }
    let Some(l4) = nat::l4_off(pkt) else {
        return false;
    };
    matches!(
        pkt.read::<[u8; 2]>(l4),
        Some([
            ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB,
            _
        ])
    )
}

/// Where the parts of an error are in the frame, and what its quoted
/// packet says.
struct Quote {
    /// The ICMP header.
    icmp: usize,
    /// The quoted IPv4 header and transport header.
    ip: usize,
    l4: usize,
    /// The end of the error's datagram (padding may follow).
    end: usize,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
}

/// Translates the error `ip` to `me` (a gateway address or a floating IP)
/// back, in place, for the router to route in; or the reason to drop it.
#[inline(always)]
pub fn translate(pkt: &Packet, ip: &Ipv4, me: &ExtAddr) -> Result<(), DropReason> {
    if ip.frag != Frag::None {
        return Err(DropReason::IpFragment);
    }
    let q = quote(pkt)?;
    // Sent by the gateway: from the address the error came back to.
    if q.src != ip.dst {
        return Err(DropReason::NoNat);
    }
    let (addr, port) = if me.kind == EXT_FLOATING {
        (me.fixed, None)
    } else {
        let (addr, port) = snat_origin(pkt, &q, me.router).ok_or(DropReason::NoNat)?;
        (addr, Some(port))
    };
    if !intact(pkt, &q) {
        return Err(DropReason::Malformed);
    }
    if !rewrite(pkt, &q, addr, port) || !nat::set_addr(pkt, ip, nat::DST_OFF, addr) {
        return Err(DropReason::Malformed);
    }
    Ok(())
}

/// The quoted packet's header: an IPv4 header and at least 8 bytes after
/// it (RFC 792), inside the error's datagram; not a later fragment (no
/// ports: never a packet SNAT sent, and Linux relates none).
#[inline(always)]
fn quote(pkt: &Packet) -> Result<Quote, DropReason> {
    let icmp = nat::l4_off(pkt).ok_or(DropReason::Malformed)?;
    let total = pkt.be16_at(ETH_HLEN + 2).ok_or(DropReason::Malformed)?;
    let end = ETH_HLEN + usize::from(total);
    let ip = icmp + 8;
    let [vihl, _] = pkt.read::<[u8; 2]>(ip).ok_or(DropReason::Malformed)?;
    let ihl = usize::from(vihl & 0x0f);
    if vihl >> 4 != 4 || ihl < 5 {
        return Err(DropReason::Malformed);
    }
    let l4 = ip + ihl * 4;
    if l4 + 8 > end {
        return Err(DropReason::Malformed);
    }
    let [_, _, _, _, f0, f1, _, proto] =
        pkt.read::<[u8; 8]>(ip + 2).ok_or(DropReason::Malformed)?;
    let [a, b, c, d, e, f, g, h] = pkt.read::<[u8; 8]>(ip + 12).ok_or(DropReason::Malformed)?;
    if u16::from_be_bytes([f0, f1]) & 0x1fff != 0 {
        return Err(DropReason::NoNat);
    }
    Ok(Quote {
        icmp,
        ip,
        l4,
        end,
        proto,
        src: [a, b, c, d],
        dst: [e, f, g, h],
    })
}

/// The VM's address and port of the SNAT connection the quoted packet
/// left by: TCP or UDP by both ports, an echo request by its identifier.
/// An error does not keep the connection alive (as Linux's conntrack does
/// not refresh a connection for its related packets).
#[inline(always)]
fn snat_origin(pkt: &Packet, q: &Quote, router: u32) -> Option<([u8; 4], [u8; 2])> {
    let (local_port, remote_port) = match q.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let [s0, s1, d0, d1] = pkt.read::<[u8; 4]>(q.l4)?;
            ([s0, s1], [d0, d1])
        }
        IPPROTO_ICMP => {
            let [ty, _, _, _, i0, i1, _, _] = pkt.read::<[u8; 8]>(q.l4)?;
            if ty != ICMP_ECHO {
                return None;
            }
            ([i0, i1], [0; 2])
        }
        _ => return None,
    };
    let k = NatKey {
        router,
        proto: q.proto,
        dir: NAT_IN,
        local_port,
        local: q.src,
        remote: q.dst,
        remote_port,
        _pad: [0; 2],
    };
    nat::unsnat(&k, true)
}

/// Whether the ICMP checksum over the whole message is right. A message
/// longer than the datapath sums (`checksum::MAX_SUM_BYTES`, well above
/// the 576 bytes RFC 1812 4.3.2.3 allows an error) counts as wrong.
#[inline(always)]
fn intact(pkt: &Packet, q: &Quote) -> bool {
    if q.end < q.icmp {
        return false;
    }
    matches!(checksum::sum(pkt, q.icmp, q.end - q.icmp), Some(s) if checksum::finish(s) == 0)
}

/// A 4-byte address as the two 16-bit words checksums sum.
#[inline(always)]
fn words(a: [u8; 4]) -> [u16; 2] {
    [
        u16::from_be_bytes([a[0], a[1]]),
        u16::from_be_bytes([a[2], a[3]]),
    ]
}

/// Rewrites the quoted packet's source to `addr` and, for SNAT, its port
/// (or echo identifier) to `port`, with the quoted checksums and the ICMP
/// checksum (which covers every byte of the quote).
#[inline(always)]
fn rewrite(pkt: &Packet, q: &Quote, addr: [u8; 4], port: Option<[u8; 2]>) -> bool {
    let (Some(icmp), Some(ip_check)) = (pkt.be16_at(q.icmp + 2), pkt.be16_at(q.ip + 10)) else {
        return false;
    };
    let ([o0, o1], [n0, n1]) = (words(q.src), words(addr));
    let swap = |c: u16| checksum::replace(checksum::replace(c, o0, n0), o1, n1);
    let new_ip_check = swap(ip_check);
    let mut icmp = checksum::replace(swap(icmp), ip_check, new_ip_check);
    if !(pkt.write(q.ip + 10, new_ip_check.to_be_bytes()) && pkt.write(q.ip + 12, addr)) {
        return false;
    }
    let Some(t) = transport(q, port.is_some()) else {
        return pkt.write(q.icmp + 2, icmp.to_be_bytes());
    };
    let Some(old_port) = pkt.be16_at(t.port) else {
        return false;
    };
    let new_port = port.map_or(old_port, u16::from_be_bytes);
    if let Some(at) = t.check {
        let Some(check) = pkt.be16_at(at) else {
            return false;
        };
        // A UDP checksum of zero means none, and stays so.
        let mut next = check;
        if !(t.udp && check == 0) {
            next = if t.pseudo { swap(check) } else { check };
            next = checksum::replace(next, old_port, new_port);
            if t.udp && next == 0 {
                next = 0xffff;
            }
        }
        icmp = checksum::replace(icmp, check, next);
        if !pkt.write(at, next.to_be_bytes()) {
            return false;
        }
    }
    icmp = checksum::replace(icmp, old_port, new_port);
    pkt.write(t.port, new_port.to_be_bytes()) && pkt.write(q.icmp + 2, icmp.to_be_bytes())
}

/// Where the quoted transport header's translated fields are.
struct Transport {
    /// The source port or echo identifier.
    port: usize,
    /// Its checksum, unless it is left as it is: TCP's when the TCP
    /// header is not quoted whole (as Linux's `tcp_manip_pkt` leaves it).
    check: Option<usize>,
    udp: bool,
    /// Whether the checksum covers the addresses (a pseudo-header).
    pseudo: bool,
}

/// The quoted transport fields a translation changes: for SNAT (`ports`)
/// TCP, UDP and echo requests (`snat_origin` admitted no other); for a
/// floating IP only TCP's and UDP's checksums, which cover the address.
#[inline(always)]
fn transport(q: &Quote, ports: bool) -> Option<Transport> {
    match q.proto {
        IPPROTO_TCP => Some(Transport {
            port: q.l4,
            check: (q.l4 + 20 <= q.end).then_some(q.l4 + 16),
            udp: false,
            pseudo: true,
        }),
        IPPROTO_UDP => Some(Transport {
            port: q.l4,
            check: Some(q.l4 + 6),
            udp: true,
            pseudo: true,
        }),
        IPPROTO_ICMP if ports => Some(Transport {
            port: q.l4 + 4,
            check: Some(q.l4 + 2),
            udp: false,
            pseudo: false,
        }),
        _ => None,
    }
}

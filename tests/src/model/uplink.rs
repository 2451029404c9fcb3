//! The model of what arrives on an uplink, from the README's rules
//! ("Forwarding and routing", external network): only what is for a
//! router's gateway address or a floating IP is the datapath's, the rest
//! is left to the host. ARP requests for those addresses are answered
//! (replies to them are learned from); an IPv4 packet to one of them, at
//! its gateway port's MAC, whose source the router reaches on an inner
//! subnet is dropped `uplink_src` (reverse path); one to a floating IP
//! goes on to its fixed IP and is routed by the router like a packet
//! from one of its interfaces, to the receiving port's ingress rules (the
//! outside is a remote without security groups); one to a gateway address
//! must be a reply of a SNAT connection, and traced frames meet none
//! (`no_nat`). An ICMP error (destination unreachable, time exceeded,
//! parameter problem) to one of them is the datapath's only if it quotes
//! a packet the gateway sent: unfragmented (`ip_fragment`), quoting an
//! IPv4 header and 8 bytes inside its datagram (`malformed`), not a later
//! fragment and from the address the error came to (`no_nat`); to a
//! gateway address it must quote a SNAT connection, which traced frames
//! never meet (`no_nat`); to a floating IP its ICMP checksum must be right
//! (`malformed`), and then its destination and the quoted source become
//! the fixed IP and it is routed in like the floating IP's other packets.
//! The router's errors about packets from outside are not sent (not done:
//! ICMP errors to the outside): they are dropped with their reason.

use std::net::{IpAddr, Ipv4Addr};

use common::{DropReason, proto::*};

use super::{
    Bytes, Frag, Ip, Model, R, Sent,
    external::rewritable,
    ipv4,
    route::{Answer, Deliver, Drop, Leave},
};

impl Model {
    /// What becomes of `frame` arriving on the uplink of external network
    /// `network`.
    pub fn arrive(&self, network: usize, frame: &[u8]) -> Sent {
        let b = Bytes(frame);
        match b.be16(12) {
            Ok(ETH_P_ARP) => self.arrive_arp(network, &b),
            Ok(ETH_P_IP) => self.arrive_ipv4(network, &b).unwrap_or_else(Sent::Dropped),
            _ => Sent::Passed,
        }
    }

    fn arrive_arp(&self, network: usize, b: &Bytes) -> Sent {
        let Ok(a) = b.get::<28>(14) else {
            return Sent::Passed;
        };
        let oper = u16::from_be_bytes([a[6], a[7]]);
        let valid = u16::from_be_bytes([a[0], a[1]]) == ARPHRD_ETHER
            && u16::from_be_bytes([a[2], a[3]]) == ETH_P_IP
            && a[4..6] == [6, 4]
            && (oper == ARPOP_REQUEST || oper == ARPOP_REPLY);
        let tpa: [u8; 4] = a[24..28].try_into().expect("4");
        if !valid || self.ext_address(network, Ipv4Addr::from(tpa)).is_none() {
            return Sent::Passed;
        }
        if oper == ARPOP_REQUEST {
            Sent::Answered
        } else {
            Sent::Consumed
        }
    }

    fn arrive_ipv4(&self, network: usize, b: &Bytes) -> Result<Sent, DropReason> {
        let Ok(ip) = ipv4(b) else {
            return Ok(Sent::Passed);
        };
        let IpAddr::V4(dst) = ip.dst else {
            unreachable!("an IPv4 header");
        };
        let Some(me) = self.ext_address(network, dst) else {
            return Ok(Sent::Passed);
        };
        if b.get::<6>(0)? != me.mac {
            return Ok(Sent::Passed);
        }
        if self
            .route_to(me.router, ip.src)
            .is_some_and(|r| !r.external)
        {
            return Err(R::UplinkSrc);
        }
        if icmp_error(b, &ip) {
            let inside = quoting_ours(b, &ip, me.fixed)?;
            return Ok(self.routed_in(me.router, &inside));
        }
        let Some(fixed) = me.fixed else {
            snat_reply(b, &ip)?;
            // Traced frames open no SNAT connection: none to reply to.
            return Err(R::NoNat);
        };
        rewritable(b, &ip, false)?;
        let mut inside = b.0.to_vec();
        inside[30..34].copy_from_slice(&fixed.octets());
        Ok(self.routed_in(me.router, &inside))
    }

    /// A packet from outside, its destination translated, routed by router
    /// `r` to the port(s) holding it.
    pub(super) fn routed_in(&self, r: usize, frame: &[u8]) -> Sent {
        match self.decide_v4(None, r, &Bytes(frame)) {
            Err(reason) | Ok(Drop(reason)) => Sent::Dropped(reason),
            // No error goes back to the outside.
            Ok(Answer(_, _, reason)) => Sent::Dropped(reason),
            Ok(Leave(_)) => unreachable!("a fixed IP is on one of the router's inner subnets"),
            Ok(Deliver(to)) => Sent::Delivered(
                to.into_iter()
                    .map(|(p, mac)| {
                        let mut routed = frame.to_vec();
                        routed[..6].copy_from_slice(&mac);
                        (p, self.receive(None, p, &routed))
                    })
                    .collect(),
            ),
        }
    }
}

/// What a reply of a SNAT connection must be before its connection is
/// looked up: an unfragmented TCP or UDP packet with both ports, or an
/// ICMP echo reply with its identifier.
fn snat_reply(b: &Bytes, ip: &Ip) -> Result<(), DropReason> {
    if ip.frag != Frag::None {
        return Err(R::IpFragment);
    }
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => b.get::<4>(ip.l4).map(|_| ()),
        IPPROTO_ICMP => match b.get::<2>(ip.l4) {
            Ok([ICMP_ECHOREPLY, _]) => b.get::<2>(ip.l4 + 4).map(|_| ()),
            _ => Err(R::NoNat),
        },
        _ => Err(R::NoNat),
    }
}

/// Whether a packet is an ICMP error that quotes a packet: destination
/// unreachable, time exceeded or parameter problem, not a later fragment
/// (whose first bytes are no ICMP header).
fn icmp_error(b: &Bytes, ip: &Ip) -> bool {
    ip.proto == IPPROTO_ICMP
        && ip.frag != Frag::Later
        && matches!(
            b.get::<2>(ip.l4),
            Ok([
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB,
                _
            ])
        )
}

/// An ICMP error to a gateway address (`fixed` None) or a floating IP,
/// taken only if it quotes a packet the gateway sent; the frame with its
/// destination and the quoted source as the floating IP's fixed IP. To a
/// gateway address it would need a SNAT connection: traced frames meet
/// none.
fn quoting_ours(b: &Bytes, ip: &Ip, fixed: Option<Ipv4Addr>) -> Result<Vec<u8>, DropReason> {
    if ip.frag != Frag::None {
        return Err(R::IpFragment);
    }
    let q = ip.l4 + 8;
    let [vihl, _] = b.get::<2>(q)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || q + ihl + 8 > ip.end {
        return Err(R::Malformed);
    }
    let quoted = b.get::<20>(q)?;
    let later = u16::from_be_bytes([quoted[6], quoted[7]]) & 0x1fff != 0;
    if later || IpAddr::from(<[u8; 4]>::try_from(&quoted[12..16]).expect("4")) != ip.dst {
        return Err(R::NoNat);
    }
    let fixed = fixed.ok_or(R::NoNat)?;
    // The ICMP checksum covers the whole message.
    let message = &b.0[ip.l4..ip.end];
    if message.len() > MAX_SUM_BYTES || crate::pkt::checksum(message) != 0 {
        return Err(R::Malformed);
    }
    let mut inside = b.0.to_vec();
    inside[30..34].copy_from_slice(&fixed.octets());
    inside[q + 12..q + 16].copy_from_slice(&fixed.octets());
    Ok(inside)
}

/// The longest ICMP message whose checksum the datapath checks (its
/// documented limit, above the 576 bytes RFC 1812 allows an error).
const MAX_SUM_BYTES: usize = 1240;

//! The model of a router's external gateway, from the README's rules
//! ("External networks, router gateways and floating IPs" and "Forwarding
//! and routing"): the routes it adds (its external subnets on link, the
//! default route through the first one's `gateway_ip`, static routes
//! through them), and what becomes of a packet routed there once the
//! sender's egress rules let it go: a floating IP or the gateway's own
//! address as destination turns back in (hairpin, `Model::hairpin`);
//! a source with a floating IP leaves as it; any other leaves as the
//! gateway's address with a port of its own (SNAT: TCP, UDP and ICMP echo
//! requests, not fragments), or untranslated without `enable_snat`. It
//! goes to the next hop's MAC when that neighbour is known on the uplink,
//! else an ARP request for it goes out in its place and the packet is
//! dropped `ext_resolving`.

use std::net::{IpAddr, Ipv4Addr};

use common::{DropReason, proto::*};
use ipnet::IpNet;

use super::{
    Bytes, Frag, Model, R, Sent, ipv4,
    route::{Answer, Deliver, Drop, Leave, Owner, Route, local_v4},
};

/// A frame as it leaves through the uplink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaving {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// The source port (TCP, UDP) or echo identifier.
    pub port: Port,
}

/// What becomes of the sender's port (or echo identifier) on the way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Left as it was (a floating IP, no SNAT, or no port at all).
    Kept,
    /// One of the gateway's, chosen by SNAT (not below
    /// `common::NAT_PORT_MIN`).
    Chosen,
}

/// The ARP request that goes out instead of a packet whose next hop is
/// not known: from the gateway port's MAC and address, for the next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asking {
    pub mac: [u8; 6],
    pub who_has: Ipv4Addr,
    pub tell: Ipv4Addr,
}

/// An address of an external network that is the datapath's.
pub(super) struct ExtAddress {
    /// The router whose gateway answers for it.
    pub(super) router: usize,
    /// Its gateway port's MAC, which ARP answers with.
    pub(super) mac: [u8; 6],
    /// A floating IP's fixed IP (None: the gateway's own address).
    pub(super) fixed: Option<Ipv4Addr>,
}

/// A frame that can hold an ARP request: Ethernet and 28 bytes.
const ARP_FRAME_LEN: usize = 14 + 28;

impl Model {
    /// The router's external subnets (on link through its gateway), in
    /// the order of its `external_fixed_ips`; IPv4 only.
    pub(super) fn gateway_subnets(&self, r: usize) -> Vec<(IpNet, Route)> {
        let Some(g) = &self.t.routers[r].gateway else {
            return Vec::new();
        };
        g.addresses
            .iter()
            .filter(|(_, a)| a.is_ipv4())
            .map(|&(s, _)| {
                let cidr = self.t.subnets[s].cidr.trunc();
                (cidr, self.external_route(r, None, cidr.prefix_len()))
            })
            .collect()
    }

    /// The default route through the first external subnet with an IPv4
    /// `gateway_ip` (the outside's router).
    pub(super) fn default_route(&self, r: usize) -> Option<(IpNet, Route)> {
        let g = self.t.routers[r].gateway.as_ref()?;
        let hop = g
            .addresses
            .iter()
            .filter(|(_, a)| a.is_ipv4())
            .find_map(|&(s, _)| self.t.subnets[s].gateway_ip.filter(|h| h.is_ipv4()))?;
        let any = IpNet::V4(ipnet::Ipv4Net::default());
        Some((any, self.external_route(r, Some(hop), 0)))
    }

    fn external_route(&self, r: usize, next: Option<IpAddr>, prefix_len: u8) -> Route {
        let network = self.t.routers[r]
            .gateway
            .as_ref()
            .expect("a gateway")
            .network;
        Route {
            network,
            addr: next,
            connected: false,
            external: true,
            prefix_len,
            mtu: self.t.networks[network].mtu,
        }
    }

    /// The router's address on the outside: the first IPv4 one of its
    /// gateway (what SNAT uses).
    fn gateway_address(&self, r: usize) -> Option<Ipv4Addr> {
        let g = self.t.routers[r].gateway.as_ref()?;
        g.addresses.iter().find_map(|(_, a)| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }

    /// What `addr` on external network `network` is to the datapath, if
    /// anything: a router's gateway address, or a floating IP.
    pub(super) fn ext_address(&self, network: usize, addr: Ipv4Addr) -> Option<ExtAddress> {
        let gateway = self.t.routers.iter().enumerate().find_map(|(r, router)| {
            let g = router.gateway.as_ref().filter(|g| g.network == network)?;
            g.addresses
                .iter()
                .any(|(_, a)| *a == IpAddr::V4(addr))
                .then_some(ExtAddress {
                    router: r,
                    mac: g.mac.0,
                    fixed: None,
                })
        });
        gateway.or_else(|| {
            let f = self
                .t
                .floating_ips
                .iter()
                .find(|f| f.network == network && f.address == addr)?;
            let g = self.t.routers[f.router].gateway.as_ref()?;
            Some(ExtAddress {
                router: f.router,
                mac: g.mac.0,
                fixed: Some(f.fixed),
            })
        })
    }

    /// Whether this host has an uplink for external network `network`.
    fn uplinked(&self, network: usize) -> bool {
        self.t.networks[network]
            .physical_network
            .as_ref()
            .is_some_and(|p| self.uplinks.contains(p))
    }

    /// A packet routed by router `r` toward its gateway, to next hop `via`
    /// (TTL already checked): the sender's egress rules, then the gateway.
    pub(super) fn leave(&self, from: usize, r: usize, b: &Bytes, via: IpAddr) -> Sent {
        if let Err(refused) = self.egress_to_router(from, b) {
            return Sent::DroppedLeaving(refused);
        }
        match self.to_external(from, r, b, via) {
            Ok(sent) => sent,
            Err(reason) => Sent::DroppedLeaving(reason),
        }
    }

    fn to_external(
        &self,
        from: usize,
        r: usize,
        b: &Bytes,
        via: IpAddr,
    ) -> Result<Sent, DropReason> {
        let g = self.t.routers[r].gateway.as_ref().ok_or(R::NoRoute)?;
        let ip = ipv4(b)?;
        let (IpAddr::V4(src), IpAddr::V4(dst), IpAddr::V4(via)) = (ip.src, ip.dst, via) else {
            unreachable!("external routes are IPv4");
        };
        if let Some(me) = self.ext_address(g.network, dst) {
            return self.hairpin(from, r, b, &ip, me);
        }
        if !self.uplinked(g.network) {
            return Err(R::NoUplink);
        }
        let floating = self
            .t
            .floating_ips
            .iter()
            .find(|f| f.router == r && f.fixed == src);
        let gateway = self.gateway_address(r).ok_or(R::NoRoute)?;
        let (new_src, port) = match floating {
            Some(f) => {
                rewritable(b, &ip, false)?;
                (f.address, Port::Kept)
            }
            None if !g.enable_snat => (src, Port::Kept),
            None => {
                snat_translatable(b, &ip)?;
                (gateway, Port::Chosen)
            }
        };
        let known = self
            .neighbours
            .iter()
            .find(|(n, a, _)| *n == g.network && *a == via);
        let Some(&(_, _, mac)) = known else {
            let asking = (b.0.len() >= ARP_FRAME_LEN).then_some(Asking {
                mac: g.mac.0,
                who_has: via,
                tell: gateway,
            });
            return Ok(Sent::Resolving(asking));
        };
        Ok(Sent::Left(Leaving {
            src_mac: g.mac.0,
            dst_mac: mac,
            src: new_src,
            dst,
            ttl: b.get::<1>(22)?[0] - 1,
            port,
        }))
    }
}

impl Model {
    /// A packet from inside to one of router `r`'s external addresses, as
    /// Neutron's L3 agent's NAT rules treat it (uplink or not): to a
    /// floating IP, to its fixed IP, from the sender's floating IP or else
    /// from the gateway's address with a port of its own (with or without
    /// `enable_snat`), routed back in from outside; to the gateway's
    /// address, the reply of such a connection (none in a traced run) or
    /// else for the router itself (an echo reply, port unreachable for
    /// UDP, `to_router`). Another router's addresses are not reached
    /// (`no_route`).
    /// A group holding the fixed IP is flooded, as a routed packet is, but
    /// not back out of the port the frame came in by: the sender does not
    /// get its own packet back that way (it does from a port of its own).
    fn hairpin(
        &self,
        from: usize,
        r: usize,
        b: &Bytes,
        ip: &super::Ip,
        me: ExtAddress,
    ) -> Result<Sent, DropReason> {
        let IpAddr::V4(src) = ip.src else {
            unreachable!("IPv4");
        };
        if me.router != r {
            return Err(R::NoRoute);
        }
        let Some(fixed) = me.fixed else {
            // To the gateway's address: no hairpinned connection's reply in
            // a traced run, so for the router itself, as its other
            // addresses (its sender's egress rules already passed).
            let then = match local_v4(b, ip) {
                Answer(ty, code, reason) => self.answer(from, r, b, ty, code, reason),
                Drop(reason) => Sent::Dropped(reason),
                Deliver(_) | Leave(_) => unreachable!("the router's own address"),
            };
            return Ok(Sent::Hairpin(Box::new(then)));
        };
        rewritable(b, ip, false)?;
        let floating = self
            .t
            .floating_ips
            .iter()
            .find(|f| f.router == r && f.fixed == src);
        let mut inside = b.0.to_vec();
        let new_src = match floating {
            Some(f) => f.address,
            None => {
                snat_translatable(b, ip)?;
                // SNAT's port: which one is not said, only that it is not
                // below NAT_PORT_MIN, which is all the receiver's rules can
                // tell (DHCP's ports are below it).
                if matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP) {
                    inside[ip.l4..ip.l4 + 2].copy_from_slice(&common::NAT_PORT_MIN.to_be_bytes());
                }
                self.gateway_address(r).ok_or(R::NoRoute)?
            }
        };
        inside[26..30].copy_from_slice(&new_src.octets());
        inside[30..34].copy_from_slice(&fixed.octets());
        let mut then = self.routed_in(r, &inside);
        let fixed = IpAddr::V4(fixed);
        let flooded = self
            .route_to(r, fixed)
            .is_some_and(|route| matches!(self.owner(route.network, fixed), Owner::Group(_)));
        if let Sent::Delivered(to) = &mut then {
            if flooded {
                to.retain(|(p, _)| *p != from);
            }
        }
        Ok(Sent::Hairpin(Box::new(then)))
    }
}

/// SNAT needs the connection's ports: an unfragmented TCP or UDP packet,
/// or an ICMP echo request (its identifier), whole enough to rewrite.
fn snat_translatable(b: &Bytes, ip: &super::Ip) -> Result<(), DropReason> {
    if ip.frag != Frag::None {
        return Err(R::IpFragment);
    }
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => rewritable(b, ip, true),
        IPPROTO_ICMP => match b.get::<2>(ip.l4) {
            // The identifier at 4, the checksum at 2.
            Ok([ICMP_ECHO, _]) => b.get::<2>(ip.l4 + 4).map(|_| ()),
            _ => Err(R::NoNat),
        },
        _ => Err(R::NoNat),
    }
}

/// Whether the fields a translation rewrites are in the frame: a TCP or
/// UDP checksum (which covers the addresses; not in a later fragment),
/// and with `ports` both ports.
pub(super) fn rewritable(b: &Bytes, ip: &super::Ip, ports: bool) -> Result<(), DropReason> {
    if ports {
        b.get::<4>(ip.l4)?;
    }
    if ip.frag == Frag::Later {
        return Ok(());
    }
    match ip.proto {
        IPPROTO_TCP => b.get::<2>(ip.l4 + 16).map(|_| ()),
        IPPROTO_UDP => b.get::<2>(ip.l4 + 6).map(|_| ()),
        _ => Ok(()),
    }
}

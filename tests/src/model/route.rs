//! The model of routing, from the README's rules ("Forwarding and
//! routing"): a frame to a router interface's MAC is routed by the
//! router's routes (its connected subnets and static routes, longest
//! prefix first) to the owner of the destination (or of the next hop) in
//! the egress network, or answered by the router itself: an echo reply for
//! an echo request to one of its addresses, an ICMP error for a packet it
//! cannot forward, when the sender's egress rules allow the packet (the
//! router being a remote without security groups), the error is allowed
//! about that packet and the router routes back to the sender through the
//! link it came from. Routes through the router's external gateway, and
//! what becomes of a packet leaving by them, are `model/external.rs`'s.

use std::net::IpAddr;

use common::{DropReason, proto::*};
use dataplane_config::topology::Direction;
use ipnet::IpNet;

use super::{Bytes, Frag, Ip, Model, R, Sent, base_allowed, flow, ipv4, ipv6};

/// Who owns an address in a network's L3 table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    None,
    /// A router (index): its interface address, which overrides ports'.
    Router(usize),
    /// One port, and the MAC it binds the address to.
    Port(usize, [u8; 6]),
    /// Several ports holding the same prefix, each with its MAC.
    Group(Vec<(usize, [u8; 6])>),
}

/// Where a router's route leads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route {
    pub(super) network: usize,
    /// The router's address on the subnet (connected), or the next hop
    /// (none for an external subnet, which is on link).
    pub(super) addr: Option<IpAddr>,
    /// One of the router's own subnets (an interface's).
    pub(super) connected: bool,
    /// Through the router's external gateway (`model/external.rs`).
    pub(super) external: bool,
    pub(super) prefix_len: u8,
    /// The egress network's MTU (0: none).
    pub(super) mtu: u32,
}

impl Route {
    /// The destination itself is on the route's link (no next hop).
    fn on_link(&self) -> bool {
        self.connected || (self.external && self.addr.is_none())
    }
}

/// What the routing step decides before anything is sent.
pub(super) enum Decision {
    Drop(DropReason),
    /// Answered by the router: (ICMP type, code, the drop an error stands
    /// for), or an echo reply.
    Answer(u8, u8, DropReason),
    /// Delivered to these ports, each addressed to its MAC.
    Deliver(Vec<(usize, [u8; 6])>),
    /// Out of the router's external gateway, to this next hop.
    Leave(IpAddr),
}

pub(super) use Decision::{Answer, Deliver, Drop, Leave};

fn link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
}

fn host(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

impl Model {
    /// The router with an interface of MAC `dst` on port `from`'s network.
    pub(super) fn router_at(&self, from: usize, dst: [u8; 6]) -> Option<usize> {
        let network = self.t.ports[from].network;
        self.t.routers.iter().position(|r| {
            r.interfaces
                .iter()
                .any(|i| i.network == network && i.mac.0 == dst)
        })
    }

    /// The router's route to `addr`: the longest prefix among its
    /// connected subnets (its interfaces', then its gateway's), static
    /// routes and the gateway's default route; at the same prefix the one
    /// in that order first.
    pub(super) fn route_to(&self, r: usize, addr: IpAddr) -> Option<Route> {
        let router = &self.t.routers[r];
        let mut best: Option<(u8, Route)> = None;
        let mut consider = |cidr: IpNet, route: Route| {
            if cidr.contains(&addr) && best.is_none_or(|(p, _)| cidr.prefix_len() > p) {
                best = Some((cidr.prefix_len(), route));
            }
        };
        for i in &router.interfaces {
            let cidr = self.t.subnets[i.subnet].cidr;
            let route = Route {
                network: i.network,
                addr: Some(i.ip),
                connected: true,
                external: false,
                prefix_len: cidr.prefix_len(),
                mtu: self.t.networks[i.network].mtu,
            };
            consider(cidr, route);
        }
        let outside = self.gateway_subnets(r);
        for &(cidr, route) in &outside {
            consider(cidr, route);
        }
        for s in &router.routes {
            // Through the interface (or the gateway's subnet) holding the
            // next hop.
            let inside = router
                .interfaces
                .iter()
                .find(|i| self.t.subnets[i.subnet].cidr.contains(&s.nexthop))
                .map(|i| (i.network, false));
            let via = inside.or_else(|| {
                outside
                    .iter()
                    .find(|(c, _)| c.contains(&s.nexthop))
                    .map(|(_, o)| (o.network, true))
            });
            let Some((network, external)) = via else {
                continue;
            };
            let route = Route {
                network,
                addr: Some(s.nexthop),
                connected: false,
                external,
                prefix_len: s.destination.prefix_len(),
                mtu: self.t.networks[network].mtu,
            };
            consider(s.destination, route);
        }
        if let Some((cidr, route)) = self.default_route(r) {
            consider(cidr, route);
        }
        best.map(|(_, r)| r)
    }

    /// The owner of `addr` in `network`: the longest prefix any port or
    /// router interface there holds it by.
    pub(super) fn owner(&self, network: usize, addr: IpAddr) -> Owner {
        let mut entries: Vec<(IpNet, Owner)> = Vec::new();
        for (r, router) in self.t.routers.iter().enumerate() {
            for i in router.interfaces.iter().filter(|i| i.network == network) {
                entries.push((host(i.ip), Owner::Router(r)));
                let ll = IpAddr::V6(i.mac.ipv6_link_local());
                entries.push((host(ll), Owner::Router(r)));
            }
        }
        for p in (0..self.t.ports.len()).filter(|&p| self.t.ports[p].network == network) {
            for (mac, net) in self.bindings(p) {
                entries.push((net.trunc(), Owner::Port(p, mac)));
            }
        }
        let Some(longest) = entries
            .iter()
            .filter(|(n, _)| n.contains(&addr))
            .map(|(n, _)| n.prefix_len())
            .max()
        else {
            return Owner::None;
        };
        let at: Vec<&(IpNet, Owner)> = entries
            .iter()
            .filter(|(n, _)| n.prefix_len() == longest && n.contains(&addr))
            .collect();
        if let Some((_, router)) = at.iter().find(|(_, o)| matches!(o, Owner::Router(_))) {
            return router.clone();
        }
        let mut ports: Vec<(usize, [u8; 6])> = Vec::new();
        for (_, o) in &at {
            if let Owner::Port(p, mac) = o {
                ports.push((*p, *mac));
            }
        }
        // Each port's MAC for the address: its own when a fixed IP binds it,
        // else the lowest it binds it with.
        let mut chosen: Vec<(usize, [u8; 6])> = Vec::new();
        for &(p, _) in &ports {
            if chosen.iter().any(|(q, _)| *q == p) {
                continue;
            }
            let macs: Vec<[u8; 6]> = ports
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, m)| *m)
                .collect();
            let own = self.t.ports[p].mac.0;
            let fixed = macs.contains(&own)
                && self.t.ports[p]
                    .fixed_ips
                    .iter()
                    .any(|f| host(f.ip).contains(&addr));
            let mac = if fixed {
                own
            } else {
                *macs.iter().min().expect("one")
            };
            chosen.push((p, mac));
        }
        match chosen.len() {
            0 => Owner::None,
            1 => Owner::Port(chosen[0].0, chosen[0].1),
            _ => Owner::Group(chosen),
        }
    }

    /// What becomes of an IP frame `from` sent to router `r`'s MAC.
    pub(super) fn routed(&self, from: usize, r: usize, frame: &[u8]) -> Sent {
        let b = Bytes(frame);
        let decided = match b.be16(12) {
            Ok(ETH_P_IP) => self.decide_v4(Some(from), r, &b),
            Ok(ETH_P_IPV6) => self.decide_v6(from, r, &b),
            _ => Ok(Drop(R::NoRoute)),
        };
        match decided {
            Err(reason) | Ok(Drop(reason)) => Sent::Dropped(reason),
            Ok(Deliver(to)) => Sent::Delivered(
                to.into_iter()
                    .map(|(p, mac)| {
                        let mut routed = frame.to_vec();
                        routed[..6].copy_from_slice(&mac);
                        (p, self.receive(Some(from), p, &routed))
                    })
                    .collect(),
            ),
            Ok(Answer(ty, code, reason)) => self.answer(from, r, &b, ty, code, reason),
            Ok(Leave(via)) => self.leave(from, r, &b, via),
        }
    }

    /// `from`: the sending port (None: the outside, through the uplink).
    pub(super) fn decide_v4(
        &self,
        from: Option<usize>,
        r: usize,
        b: &Bytes,
    ) -> Result<Decision, DropReason> {
        let ip = ipv4(b)?;
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (ip.src, ip.dst) else {
            unreachable!("IPv4 addresses");
        };
        let (s, d) = (src.octets(), dst.octets());
        if d[0] >= 224 || d[0] == 0 || s[0] == 0 || s[0] == 127 || s[0] >= 224 {
            return Ok(Drop(R::NoRoute));
        }
        let Some(route) = self.route_to(r, ip.dst) else {
            return Ok(Answer(ICMP_DEST_UNREACH, ICMP_NET_UNREACH, R::NoRoute));
        };
        if route.on_link() && route.prefix_len <= 30 {
            let hostmask = u32::MAX >> route.prefix_len;
            if u32::from(dst) & hostmask == hostmask {
                return Ok(Drop(R::NoRoute));
            }
        }
        let target = match route.addr {
            Some(next) if !route.on_link() => next,
            _ => ip.dst,
        };
        let owner = self.owner(route.network, target);
        match owner {
            // Nobody inside holds what is outside: the next hop is found
            // on the uplink.
            Owner::None if route.external => {}
            Owner::None => return Ok(Answer(ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, R::NoRoute)),
            Owner::Router(x) if x == r && route.connected => return Ok(local_v4(b, &ip)),
            Owner::Router(_) => return Ok(Drop(R::NoRoute)),
            _ => {}
        }
        if b.get::<1>(22)?[0] <= 1 {
            return Ok(Answer(ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, R::TtlExceeded));
        }
        let total = u32::from(b.be16(16)?);
        if route.mtu != 0 && route.mtu <= 0xffff && total > route.mtu {
            if b.be16(20)? & IP_DF == 0 {
                return Ok(Drop(R::MtuExceeded));
            }
            return Ok(Answer(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, R::MtuExceeded));
        }
        if route.external {
            return Ok(Leave(target));
        }
        Ok(self.deliver(from, owner))
    }

    fn decide_v6(&self, from: usize, r: usize, b: &Bytes) -> Result<Decision, DropReason> {
        let ip = ipv6(b)?;
        let network = self.t.ports[from].network;
        let unspecified = ip.src.is_unspecified();
        if ip_multicast_any(&ip.dst) || unspecified || ip_multicast_any(&ip.src) {
            return Ok(Drop(R::NoRoute));
        }
        if link_local(&ip.dst) {
            return Ok(match self.owner(network, ip.dst) {
                Owner::Router(x) if x == r => local_v6(b, &ip),
                _ => Drop(R::NoRoute),
            });
        }
        let Some(route) = self.route_to(r, ip.dst) else {
            return Ok(Answer(ICMPV6_DEST_UNREACH, ICMPV6_NOROUTE, R::NoRoute));
        };
        let target = match route.addr {
            Some(next) if !route.connected => next,
            _ => ip.dst,
        };
        let owner = self.owner(route.network, target);
        match owner {
            Owner::None => {
                return Ok(Answer(ICMPV6_DEST_UNREACH, ICMPV6_ADDR_UNREACH, R::NoRoute));
            }
            Owner::Router(x) if x == r && route.connected => return Ok(local_v6(b, &ip)),
            Owner::Router(_) => return Ok(Drop(R::NoRoute)),
            _ => {}
        }
        if link_local(&ip.src) {
            return Ok(Drop(R::NoRoute));
        }
        if b.get::<1>(21)?[0] <= 1 {
            return Ok(Answer(
                ICMPV6_TIME_EXCEED,
                ICMPV6_EXC_HOPLIMIT,
                R::TtlExceeded,
            ));
        }
        let length = 40 + u32::from(b.be16(18)?);
        if route.mtu != 0 && route.mtu <= 0xffff && length > route.mtu {
            return Ok(Answer(ICMPV6_PKT_TOOBIG, 0, R::MtuExceeded));
        }
        Ok(self.deliver(Some(from), owner))
    }

    /// To the destination's owner: a port (never back to the sender), or
    /// every member of a group (no active member in traced frames).
    fn deliver(&self, from: Option<usize>, owner: Owner) -> Decision {
        match owner {
            Owner::Port(p, _) if Some(p) == from => Drop(R::Hairpin),
            Owner::Port(p, mac) => Deliver(vec![(p, mac)]),
            Owner::Group(members) => Deliver(
                members
                    .into_iter()
                    .filter(|(p, _)| Some(*p) != from)
                    .collect(),
            ),
            Owner::None | Owner::Router(_) => Drop(R::NoRoute),
        }
    }

    /// The router's answer, once the sender's egress rules allow the
    /// packet: an echo reply, or an error if it may be sent.
    pub(super) fn answer(
        &self,
        from: usize,
        r: usize,
        b: &Bytes,
        ty: u8,
        code: u8,
        reason: R,
    ) -> Sent {
        if let Err(refused) = self.egress_to_router(from, b) {
            return Sent::Dropped(refused);
        }
        let v6 = b.be16(12) == Ok(ETH_P_IPV6);
        let ip = match if v6 { ipv6(b) } else { ipv4(b) } {
            Ok(ip) => ip,
            Err(e) => return Sent::Dropped(e),
        };
        let echo = ty == ICMP_ECHOREPLY && !v6 || ty == ICMPV6_ECHO_REPLY && v6;
        if echo {
            return self.echo(from, r, b, &ip, reason);
        }
        if !error_allowed(b, &ip) || self.route_back(from, r, ip.src).is_none() {
            return Sent::Dropped(reason);
        }
        Sent::Errored(reason, ty, code)
    }

    fn echo(&self, from: usize, r: usize, b: &Bytes, ip: &Ip, reason: R) -> Sent {
        let plain = if ip.v6 {
            ip.proto == IPPROTO_ICMPV6 && ip.l4 == 54
        } else {
            ip.proto == IPPROTO_ICMP && ip.frag == Frag::None
        };
        let back = (ip.v6 && link_local(&ip.src)) || self.route_back(from, r, ip.src).is_some();
        if !plain || !back {
            return Sent::Dropped(reason);
        }
        // The reply is written in place: type, code and checksum must be
        // there.
        if b.get::<4>(ip.l4).is_err() {
            return Sent::Dropped(R::Malformed);
        }
        Sent::Answered
    }

    /// The router's address on the link of port `from`, if it routes back
    /// to `src` through it (directly, or via a next hop there).
    fn route_back(&self, from: usize, r: usize, src: IpAddr) -> Option<IpAddr> {
        if link_local(&src) {
            return None;
        }
        let mut route = self.route_to(r, src)?;
        if !route.connected {
            // Never through the gateway: the sender is inside.
            route = self.route_to(r, route.addr?).filter(|v| v.connected)?;
        }
        (route.network == self.t.ports[from].network)
            .then_some(route.addr)
            .flatten()
    }

    /// The sender's egress rules for a packet to the router, a remote
    /// without security groups.
    pub(super) fn egress_to_router(&self, from: usize, b: &Bytes) -> Result<(), DropReason> {
        if !self.secure(from) {
            return Ok(());
        }
        let Some(f) = flow(b)? else {
            return Ok(());
        };
        if base_allowed(&f) {
            return Ok(());
        }
        self.policy(from, None, Direction::Egress, &f)
    }
}

fn ip_multicast_any(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.octets()[0] == 0xff)
}

/// An IPv4 packet for the router: echo requests answered, UDP gets "port
/// unreachable", the rest dropped.
pub(super) fn local_v4(b: &Bytes, ip: &Ip) -> Decision {
    match ip.proto {
        IPPROTO_UDP => Answer(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, R::ToRouter),
        IPPROTO_ICMP => match b.get::<2>(ip.l4) {
            Ok([ICMP_ECHO, _]) => Answer(ICMP_ECHOREPLY, 0, R::ToRouter),
            _ => Drop(R::ToRouter),
        },
        _ => Drop(R::ToRouter),
    }
}

fn local_v6(b: &Bytes, ip: &Ip) -> Decision {
    if ip.proto == IPPROTO_ICMPV6 && ip.frag == Frag::None {
        return match b.get::<2>(ip.l4) {
            Ok([ICMPV6_ECHO_REQUEST, _]) => Answer(ICMPV6_ECHO_REPLY, 0, R::ToRouter),
            _ => Drop(R::ToRouter),
        };
    }
    if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
        return Answer(ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, R::ToRouter);
    }
    Drop(R::ToRouter)
}

/// RFC 1812 4.3.2.7 and RFC 4443 2.4(e): no error about a non-first
/// fragment (IPv4), nor about an ICMP error or (IPv4) an ICMP message of
/// unknown type.
fn error_allowed(b: &Bytes, ip: &Ip) -> bool {
    if ip.v6 {
        if ip.proto != IPPROTO_ICMPV6 || ip.frag == Frag::Later {
            return true;
        }
        return matches!(b.get::<2>(ip.l4), Ok([ty, _]) if ty >= ICMPV6_INFOMSG);
    }
    if ip.frag == Frag::Later {
        return false;
    }
    if ip.proto != IPPROTO_ICMP {
        return true;
    }
    matches!(b.get::<2>(ip.l4), Ok([0 | 8 | 9 | 10 | 13..=18, _]))
}

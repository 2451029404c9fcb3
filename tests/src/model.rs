//! A reference model of what each port may send and receive, written from
//! the configuration and the rules the README states, in plain Rust and
//! independent of the eBPF code and of the compiler that fills its maps.
//! The packet fuzzer (tests/tests/packet_fuzz.rs) runs frames through the
//! real programs and compares their verdicts with this model's.
//!
//! The model covers port security, L2 forwarding (ports, shared MACs,
//! floods), the ARP/ND responder, the receiving port's MAC filter,
//! security groups for a connection's first packet, routing with the
//! router's own answers (`model/route.rs`), what leaves through a
//! router's external gateway (`model/external.rs`: SNAT, floating IPs,
//! the next hop's resolution) and what arrives on its uplink
//! (`model/uplink.rs`). It assumes what the fuzzer guarantees:
//! empty connection tracking, no SNAT connection and no active group
//! member (traced frames write none), no ICMP rate limit (traced frames
//! are exempt), and the neighbours outside it was told the datapath knows.

mod external;
mod route;
mod uplink;

pub use external::{Asking, Leaving, Port};

use std::net::IpAddr;

use common::DropReason;
use dataplane_config::topology::{Direction, PortMatch, Remote, Topology};
use ipnet::IpNet;

/// What becomes of a frame a port sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    Dropped(DropReason),
    /// The datapath answered an ARP or ND request, or the router an echo
    /// request, itself.
    Answered,
    /// Dropped for the reason, and answered with an ICMP error of this
    /// type and code.
    Errored(DropReason, u8, u8),
    /// Each receiving port (by index in the topology) and its verdict.
    Delivered(Vec<(usize, Result<(), DropReason>)>),
    /// Routed out of the uplink of a router's external network.
    Left(Leaving),
    /// Routed toward the outside and dropped on the way: by the sender's
    /// egress rules or by the router's gateway.
    DroppedLeaving(DropReason),
    /// From an uplink: not the datapath's, left to the host.
    Passed,
    /// From an uplink: an ARP reply to one of the datapath's addresses,
    /// which it learns from (not when traced) and passes on to nobody.
    Consumed,
    /// Routed toward the outside, whose next hop is not known: dropped
    /// `ext_resolving`, and an ARP request for it sent in its place
    /// (none if the frame is too short to become one).
    Resolving(Option<Asking>),
    /// Routed to one of its router's own external addresses from inside,
    /// translated and routed back in (hairpin): what became of it then.
    Hairpin(Box<Sent>),
}

// Ethertypes, IP protocols, ICMP types, ports: the numbers' names are
// shared with the datapath (common::proto); the decisions are not.
use common::proto::*;

/// IPv6 extension headers looked through before the transport header is
/// given up on (the datapath's documented limit).
const MAX_EXT_HEADERS: usize = 6;
/// Neighbour discovery options looked at (the datapath's documented limit).
const MAX_ND_OPTIONS: usize = 8;

use DropReason as R;

/// Bounds-checked reads from a frame.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn get<const N: usize>(&self, off: usize) -> Result<[u8; N], DropReason> {
        self.0
            .get(off..off.checked_add(N).ok_or(R::Malformed)?)
            .map(|s| s.try_into().expect("N bytes"))
            .ok_or(R::Malformed)
    }

    fn be16(&self, off: usize) -> Result<u16, DropReason> {
        self.get::<2>(off).map(u16::from_be_bytes)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frag {
    None,
    First,
    Later,
}

struct Ip {
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: usize,
    /// End of the datagram (padding may follow).
    end: usize,
    frag: Frag,
}

fn ipv4(b: &Bytes) -> Result<Ip, DropReason> {
    let h = b.get::<20>(14)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if h[0] >> 4 != 4 || ihl < 20 || total < ihl || 14 + total > b.0.len() {
        return Err(R::Malformed);
    }
    let frags = u16::from_be_bytes([h[6], h[7]]);
    let frag = match (frags & 0x1fff != 0, frags & 0x2000 != 0) {
        (true, _) => Frag::Later,
        (false, true) => Frag::First,
        (false, false) => Frag::None,
    };
    let v4 = |o: usize| IpAddr::from(<[u8; 4]>::try_from(&h[o..o + 4]).expect("4"));
    Ok(Ip {
        v6: false,
        src: v4(12),
        dst: v4(16),
        proto: h[9],
        l4: 14 + ihl,
        end: 14 + total,
        frag,
    })
}

fn ipv6(b: &Bytes) -> Result<Ip, DropReason> {
    let h = b.get::<40>(14)?;
    let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if h[0] >> 4 != 6 || 54 + payload > b.0.len() {
        return Err(R::Malformed);
    }
    let mut proto = h[6];
    let mut off = 54;
    let mut frag = Frag::None;
    let mut walked = 0;
    loop {
        if walked == MAX_EXT_HEADERS {
            // Too many extension headers to find the transport.
            return Err(R::Malformed);
        }
        walked += 1;
        match proto {
            // Hop-by-hop, routing, destination options: 8-byte units.
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let [next, len] = b.get::<2>(off)?;
                proto = next;
                off += (usize::from(len) + 1) * 8;
            }
            // Authentication header: 4-byte units, less two.
            NEXTHDR_AUTH => {
                let [next, len] = b.get::<2>(off)?;
                proto = next;
                off += (usize::from(len) + 2) * 4;
            }
            NEXTHDR_FRAGMENT => {
                let [next, _, hi, lo] = b.get::<4>(off)?;
                let field = u16::from_be_bytes([hi, lo]);
                proto = next;
                off += 8;
                if field & 0xfff8 != 0 {
                    frag = Frag::Later;
                    break;
                }
                if field & 1 != 0 {
                    frag = Frag::First;
                }
            }
            _ => break,
        }
    }
    let a = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&h[o..o + 16]).expect("16"));
    Ok(Ip {
        v6: true,
        src: a(8),
        dst: a(24),
        proto,
        l4: off,
        end: 54 + payload,
        frag,
    })
}

fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

fn unspecified(a: &IpAddr) -> bool {
    a.is_unspecified()
}

fn ip_multicast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v) if v.octets()[0] == 0xff)
}

/// ff02::1:ffXX:XXXX, where duplicate address detection probes go.
fn solicited_node(a: &IpAddr) -> bool {
    match a {
        IpAddr::V6(v) => {
            let o = v.octets();
            o[..2] == [0xff, 0x02] && o[2..11] == [0; 9] && o[11] == 1 && o[12] == 0xff
        }
        IpAddr::V4(_) => false,
    }
}

/// A transport header cut short: malformed, unless the first fragment of
/// a datagram stops before it (fragmentation hiding the ports).
fn cut(frag: Frag) -> DropReason {
    if frag == Frag::First {
        R::IpFragment
    } else {
        R::Malformed
    }
}

/// What security groups look at in a packet.
struct Flow {
    v6: bool,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    /// The destination port, or ICMP [type, code].
    matched: [u8; 2],
    tcp_flags: u8,
    /// An ICMP error (the types Linux's conntrack calls errors).
    icmp_error: bool,
}

pub struct Model {
    t: Topology,
    /// Physical networks this host has an uplink for.
    uplinks: Vec<String>,
    /// Neighbours known on external networks: (network, address, MAC).
    neighbours: Vec<(usize, std::net::Ipv4Addr, [u8; 6])>,
}

impl Model {
    pub fn new(t: Topology) -> Model {
        Model {
            t,
            uplinks: Vec::new(),
            neighbours: Vec::new(),
        }
    }

    /// This host reaches the external networks on `physnet` (as `dataplane
    /// run --uplink PHYSNET=...`).
    pub fn uplink(mut self, physnet: &str) -> Model {
        self.uplinks.push(physnet.to_string());
        self
    }

    /// The datapath knows `addr` on external network `network` at `mac`
    /// (learned from ARP on the uplink).
    pub fn neighbour(mut self, network: usize, addr: std::net::Ipv4Addr, mac: [u8; 6]) -> Model {
        self.neighbours.push((network, addr, mac));
        self
    }

    pub fn topology(&self) -> &Topology {
        &self.t
    }

    fn secure(&self, port: usize) -> bool {
        self.t.ports[port].port_security_enabled
    }

    /// The MACs a port may send from and receives unicast for.
    fn macs(&self, port: usize) -> Vec<[u8; 6]> {
        let p = &self.t.ports[port];
        let mut m = vec![p.mac.0];
        m.extend(p.allowed_address_pairs.iter().map(|a| a.mac.0));
        m
    }

    /// The (MAC, addresses) a port may use: fixed IPs with the port's MAC,
    /// each pair's prefix with its MAC, and each such MAC's IPv6 link-local.
    fn bindings(&self, port: usize) -> Vec<([u8; 6], IpNet)> {
        let p = &self.t.ports[port];
        let mut b: Vec<([u8; 6], IpNet)> = p
            .fixed_ips
            .iter()
            .map(|f| (p.mac.0, IpNet::from(f.ip)))
            .collect();
        b.extend(p.allowed_address_pairs.iter().map(|a| (a.mac.0, a.ip)));
        for mac in self.macs(port) {
            let ll = dataplane_config::MacAddr(mac).ipv6_link_local();
            b.push((mac, IpNet::from(IpAddr::V6(ll))));
        }
        b
    }

    fn may_use(&self, port: usize, mac: [u8; 6], addr: IpAddr) -> bool {
        self.bindings(port)
            .iter()
            .any(|(m, net)| *m == mac && net.contains(&addr))
    }

    /// Whether the responder answers `port`'s request for `addr`: a router
    /// interface of its network holds it, or exactly one port of its
    /// network holds the address itself (not through a prefix), and it is
    /// another port.
    fn answered(&self, port: usize, addr: IpAddr) -> bool {
        let network = self.t.ports[port].network;
        if self.router_holds(network, addr) {
            return true;
        }
        let owners: Vec<usize> = (0..self.t.ports.len())
            .filter(|&q| self.t.ports[q].network == network)
            .filter(|&q| {
                self.bindings(q)
                    .iter()
                    .any(|(_, net)| net.prefix_len() == net.max_prefix_len() && net.addr() == addr)
            })
            .collect();
        owners.len() == 1 && owners[0] != port
    }

    /// The verdict on `frame` sent by port `from`.
    pub fn send(&self, from: usize, frame: &[u8]) -> Sent {
        match self.port_security(from, frame) {
            Err(reason) => Sent::Dropped(reason),
            Ok(true) => Sent::Answered,
            Ok(false) if self.to_router(from, frame).is_some() => {
                let r = self.to_router(from, frame).expect("a router");
                match Bytes(frame).be16(12) {
                    Ok(ETH_P_IP | ETH_P_IPV6) => self.routed(from, r, frame),
                    // Not IP: a router forwards nothing else.
                    _ => Sent::Dropped(R::NoRoute),
                }
            }
            Ok(false) => match self.forward(from, frame) {
                Err(reason) => Sent::Dropped(reason),
                Ok(receivers) => Sent::Delivered(
                    receivers
                        .into_iter()
                        .map(|r| (r, self.receive(Some(from), r, frame)))
                        .collect(),
                ),
            },
        }
    }

    /// The router a unicast frame from `from` is addressed to, if any.
    fn to_router(&self, from: usize, frame: &[u8]) -> Option<usize> {
        let dst: [u8; 6] = frame.get(..6)?.try_into().ok()?;
        if is_multicast(&dst) {
            return None;
        }
        self.router_at(from, dst)
    }

    /// Whether a router interface of `network` holds `addr` itself (one
    /// of its fixed IPs, or its link-local address).
    fn router_holds(&self, network: usize, addr: IpAddr) -> bool {
        self.t.routers.iter().any(|r| {
            r.interfaces.iter().any(|i| {
                i.network == network
                    && (i.ip == addr || IpAddr::V6(i.mac.ipv6_link_local()) == addr)
            })
        })
    }

    /// Whether a router advertises on `network`: it has an interface there
    /// on an IPv6 subnet (Neutron's radvd runs for every such interface).
    fn advertises(&self, network: usize) -> bool {
        self.t.routers.iter().any(|r| {
            r.interfaces
                .iter()
                .any(|i| i.network == network && i.ip.is_ipv6())
        })
    }

    /// Port security and the responder: Ok(true) if answered, Ok(false)
    /// to forward.
    fn port_security(&self, from: usize, frame: &[u8]) -> Result<bool, DropReason> {
        let b = Bytes(frame);
        // The destination matters only to forwarding.
        let src = b.get::<6>(6)?;
        let ethertype = b.be16(12)?;
        let secure = self.secure(from);
        if secure && !self.macs(from).contains(&src) {
            return Err(R::SrcMac);
        }
        match ethertype {
            ETH_P_ARP => {
                let a = b.get::<28>(14)?;
                let oper = u16::from_be_bytes([a[6], a[7]]);
                if u16::from_be_bytes([a[0], a[1]]) != ARPHRD_ETHER
                    || u16::from_be_bytes([a[2], a[3]]) != ETH_P_IP
                    || a[4..6] != [6, 4]
                    || !(oper == ARPOP_REQUEST || oper == ARPOP_REPLY)
                {
                    return Err(R::Malformed);
                }
                let sha: [u8; 6] = a[8..14].try_into().expect("6");
                let spa: [u8; 4] = a[14..18].try_into().expect("4");
                let tpa: [u8; 4] = a[24..28].try_into().expect("4");
                if secure {
                    if sha != src {
                        return Err(R::ArpSha);
                    }
                    if spa != [0; 4] && !self.may_use(from, sha, IpAddr::from(spa)) {
                        return Err(R::ArpSpa);
                    }
                }
                let gratuitous = spa == tpa && spa != [0; 4];
                Ok(oper == ARPOP_REQUEST && !gratuitous && self.answered(from, IpAddr::from(tpa)))
            }
            ETH_P_IP => {
                let ip = ipv4(&b)?;
                if secure {
                    self.check_v4(from, &b, src, &ip)?;
                }
                Ok(false)
            }
            ETH_P_IPV6 => {
                let ip = ipv6(&b)?;
                if secure {
                    self.check_v6(from, &b, src, &ip)?;
                }
                if ip.proto == IPPROTO_ICMPV6 && ip.frag == Frag::None {
                    let [ty, _] = b.get::<2>(ip.l4)?;
                    if ty == ICMPV6_NEIGH_ADVERT {
                        b.get::<16>(ip.l4 + 8)?;
                    } else if ty == ICMPV6_NEIGH_SOLICIT {
                        return Ok(self.ns_answered(from, &b, &ip));
                    } else if ty == ICMPV6_ROUTER_SOLICIT {
                        // Answered by the router advertising on the link,
                        // if there is one; flooded otherwise.
                        return Ok(self.advertises(self.t.ports[from].network));
                    }
                }
                Ok(false)
            }
            _ if secure => Err(R::Ethertype),
            _ => Ok(false),
        }
    }

    fn check_v4(&self, from: usize, b: &Bytes, mac: [u8; 6], ip: &Ip) -> Result<(), DropReason> {
        let udp = if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
            let p = b.get::<4>(ip.l4).map_err(|_| cut(ip.frag))?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ))
        } else {
            None
        };
        if unspecified(&ip.src) {
            // A DHCP client asking for an address.
            let dhcp = udp == Some((DHCP_CLIENT_PORT, DHCP_SERVER_PORT))
                && ip.frag == Frag::None
                && ip.dst == IpAddr::from([255u8; 4]);
            return if dhcp { Ok(()) } else { Err(R::Ipv4Src) };
        }
        if !self.may_use(from, mac, ip.src) {
            return Err(R::Ipv4Src);
        }
        if matches!(udp, Some((DHCP_SERVER_PORT, _))) {
            return Err(R::DhcpServer);
        }
        Ok(())
    }

    fn check_v6(&self, from: usize, b: &Bytes, mac: [u8; 6], ip: &Ip) -> Result<(), DropReason> {
        let icmp = if ip.proto == IPPROTO_ICMPV6 && ip.frag != Frag::Later {
            Some(b.get::<2>(ip.l4).map_err(|_| cut(ip.frag))?[0])
        } else {
            None
        };
        if unspecified(&ip.src) {
            // Duplicate address detection and listener reports only.
            let ok = ip.frag == Frag::None
                && match icmp {
                    Some(ICMPV6_NEIGH_SOLICIT) => solicited_node(&ip.dst),
                    Some(ICMPV6_MLD_REPORT | ICMPV6_MLD_DONE | ICMPV6_MLD2_REPORT) => {
                        ip_multicast(&ip.dst)
                    }
                    _ => false,
                };
            if !ok {
                return Err(R::Ipv6Src);
            }
        } else if !self.may_use(from, mac, ip.src) {
            return Err(R::Ipv6Src);
        }
        if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
            let p = b.get::<4>(ip.l4).map_err(|_| cut(ip.frag))?;
            if u16::from_be_bytes([p[0], p[1]]) == DHCPV6_SERVER_PORT {
                return Err(R::Dhcpv6Server);
            }
        }
        match icmp {
            Some(ICMPV6_ROUTER_ADVERT | ICMPV6_REDIRECT) => Err(R::RouterAdvert),
            Some(t @ (ICMPV6_ROUTER_SOLICIT | ICMPV6_NEIGH_SOLICIT | ICMPV6_NEIGH_ADVERT)) => {
                if ip.frag != Frag::None {
                    return Err(R::IpFragment);
                }
                self.check_nd(from, b, mac, ip, t)
            }
            _ => Ok(()),
        }
    }

    fn check_nd(
        &self,
        from: usize,
        b: &Bytes,
        mac: [u8; 6],
        ip: &Ip,
        ty: u8,
    ) -> Result<(), DropReason> {
        let body = if ty == ICMPV6_ROUTER_SOLICIT { 8 } else { 24 };
        let mut off = ip.l4 + body;
        if off > ip.end {
            return Err(R::Malformed);
        }
        let wanted = if ty == ICMPV6_NEIGH_ADVERT {
            ND_OPT_TARGET_LLADDR
        } else {
            ND_OPT_SOURCE_LLADDR
        };
        let mut lladdr = None;
        let mut seen = 0;
        while off < ip.end {
            if seen == MAX_ND_OPTIONS {
                return Err(R::Malformed);
            }
            seen += 1;
            let [kind, units] = b.get::<2>(off)?;
            let len = usize::from(units) * 8;
            if len == 0 || off + len > ip.end {
                return Err(R::Malformed);
            }
            if kind == wanted {
                if lladdr.is_some() {
                    return Err(R::NdLladdr);
                }
                lladdr = Some(b.get::<6>(off + 2)?);
            }
            off += len;
        }
        if ty == ICMPV6_NEIGH_ADVERT {
            let target = IpAddr::from(b.get::<16>(ip.l4 + 8)?);
            let mac = match lladdr {
                Some(m) if !self.macs(from).contains(&m) => return Err(R::NdLladdr),
                Some(m) => m,
                None => mac,
            };
            if !self.may_use(from, mac, target) {
                return Err(R::NdTarget);
            }
            return Ok(());
        }
        match lladdr {
            Some(_) if unspecified(&ip.src) => Err(R::NdLladdr),
            Some(m) if !self.may_use(from, m, ip.src) => Err(R::NdLladdr),
            _ => Ok(()),
        }
    }

    /// The responder rewrites only the common solicitation: no extension
    /// headers, one source link-layer option, from an address.
    fn ns_answered(&self, from: usize, b: &Bytes, ip: &Ip) -> bool {
        if unspecified(&ip.src) || ip.l4 != 54 || ip.end != ip.l4 + 32 {
            return false;
        }
        let (Ok(target), Ok(opt)) = (b.get::<16>(ip.l4 + 8), b.get::<2>(ip.l4 + 24)) else {
            return false;
        };
        opt == [ND_OPT_SOURCE_LLADDR, 1] && self.answered(from, IpAddr::from(target))
    }

    /// The ports a frame goes to: the owner of its destination MAC in the
    /// sender's network, every holder of a shared MAC, or (broadcast,
    /// multicast, unknown) every other port of the network.
    fn forward(&self, from: usize, frame: &[u8]) -> Result<Vec<usize>, DropReason> {
        let dst: [u8; 6] = frame[..6].try_into().expect("6");
        let network = self.t.ports[from].network;
        let others = (0..self.t.ports.len())
            .filter(|&q| q != from && self.t.ports[q].network == network)
            .collect();
        if is_multicast(&dst) {
            return Ok(others);
        }
        let owners: Vec<usize> = (0..self.t.ports.len())
            .filter(|&q| self.t.ports[q].network == network && self.macs(q).contains(&dst))
            .collect();
        match owners.as_slice() {
            [] => Ok(others),
            [only] if *only == from => Err(R::Hairpin),
            [only] => Ok(vec![*only]),
            _ => Ok(owners.into_iter().filter(|&q| q != from).collect()),
        }
    }

    /// The receiving side: the MAC filter, then the sender's egress and
    /// the receiver's ingress rules for a new connection.
    /// `from` None: the outside (through an uplink), a remote without
    /// port security or security groups.
    fn receive(&self, from: Option<usize>, to: usize, frame: &[u8]) -> Result<(), DropReason> {
        let dst: [u8; 6] = frame[..6].try_into().expect("6");
        if self.secure(to) && !is_multicast(&dst) && !self.macs(to).contains(&dst) {
            return Err(R::IngressMac);
        }
        let sender = from.filter(|&p| self.secure(p));
        if sender.is_none() && !self.secure(to) {
            return Ok(());
        }
        let Some(flow) = flow(&Bytes(frame))? else {
            return Ok(());
        };
        if base_allowed(&flow) {
            return Ok(());
        }
        if let Some(p) = sender {
            self.policy(p, Some(to), Direction::Egress, &flow)?;
        }
        if self.secure(to) {
            self.policy(to, from, Direction::Ingress, &flow)?;
        }
        Ok(())
    }

    /// Whether one of `port`'s rules in `dir` allows a new connection
    /// with `remote`. A remote group matches a remote port with port
    /// security that is a member (port security has already bound the
    /// packet's address to that port); a prefix matches the remote address.
    fn policy(
        &self,
        port: usize,
        remote: Option<usize>,
        dir: Direction,
        f: &Flow,
    ) -> Result<(), DropReason> {
        let refused = if dir == Direction::Egress {
            R::SgEgress
        } else {
            R::SgIngress
        };
        if f.proto == IPPROTO_TCP && f.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
            // Not the opening SYN of a connection nobody tracks.
            return Err(R::CtInvalid);
        }
        if f.icmp_error {
            // An error about a connection nobody tracks: invalid, as
            // Linux's conntrack (and Neutron's firewalls) see it.
            return Err(R::CtInvalid);
        }
        let remote_ip = if dir == Direction::Egress {
            f.dst
        } else {
            f.src
        };
        let r = remote.map(|q| &self.t.ports[q]);
        let allowed = self.t.ports[port]
            .security_groups
            .iter()
            .flat_map(|&g| self.t.security_groups[g].rules.iter())
            .any(|rule| {
                rule.direction == dir
                    && rule.ipv6 == f.v6
                    && rule.protocol.is_none_or(|p| p == f.proto)
                    && match rule.ports {
                        PortMatch::Any => true,
                        PortMatch::Range(lo, hi) => {
                            (lo..=hi).contains(&u16::from_be_bytes(f.matched))
                        }
                        PortMatch::Icmp(t, c) => {
                            f.matched[0] == t && c.is_none_or(|c| f.matched[1] == c)
                        }
                    }
                    && match &rule.remote {
                        Remote::Any => true,
                        Remote::Prefix(net) => net.contains(&remote_ip),
                        // A remote without a port (the router) is in no group.
                        Remote::Group(g) => r.is_some_and(|r| {
                            r.port_security_enabled && r.security_groups.contains(g)
                        }),
                    }
            });
        if allowed { Ok(()) } else { Err(refused) }
    }
}

/// The flow of an IP packet (None for other ethertypes).
fn flow(b: &Bytes) -> Result<Option<Flow>, DropReason> {
    let ip = match b.be16(12)? {
        ETH_P_IP => ipv4(b)?,
        ETH_P_IPV6 => ipv6(b)?,
        _ => return Ok(None),
    };
    let mut f = Flow {
        v6: ip.v6,
        proto: ip.proto,
        src: ip.src,
        dst: ip.dst,
        sport: 0,
        dport: 0,
        matched: [0; 2],
        tcp_flags: 0,
        icmp_error: false,
    };
    // A later fragment has no ports: rules with ports cannot match it.
    if ip.frag == Frag::Later {
        return Ok(Some(f));
    }
    if ip.proto == IPPROTO_ICMP || ip.proto == IPPROTO_ICMPV6 {
        let [ty, code] = b.get::<2>(ip.l4)?;
        f.matched = [ty, code];
        f.icmp_error = if ip.v6 {
            (ICMPV6_DEST_UNREACH..=ICMPV6_PARAMPROB).contains(&ty)
        } else {
            matches!(
                ty,
                ICMP_DEST_UNREACH
                    | ICMP_SOURCE_QUENCH
                    | ICMP_REDIRECT
                    | ICMP_TIME_EXCEEDED
                    | ICMP_PARAMETERPROB
            )
        };
        let echo = if ip.proto == IPPROTO_ICMP {
            [ICMP_ECHO, ICMP_ECHOREPLY]
        } else {
            [ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY]
        };
        if echo.contains(&ty) {
            b.get::<2>(ip.l4 + 4)?;
        }
    } else {
        if let Ok(p) = b.get::<4>(ip.l4) {
            f.sport = u16::from_be_bytes([p[0], p[1]]);
            f.dport = u16::from_be_bytes([p[2], p[3]]);
            f.matched = [p[2], p[3]];
        }
        if ip.proto == IPPROTO_TCP {
            f.tcp_flags = b.get::<2>(ip.l4 + 12)?[1];
        }
    }
    Ok(Some(f))
}

/// Allowed before any security group, as Neutron's firewall does: DHCP
/// and DHCPv6 between client and server ports, neighbour discovery and
/// multicast listener messages.
fn base_allowed(f: &Flow) -> bool {
    let between = |a: u16, b: u16| (f.sport, f.dport) == (a, b) || (f.sport, f.dport) == (b, a);
    match f.proto {
        IPPROTO_UDP if !f.v6 => between(DHCP_CLIENT_PORT, DHCP_SERVER_PORT),
        IPPROTO_UDP => between(DHCPV6_CLIENT_PORT, DHCPV6_SERVER_PORT),
        // MLD, router and neighbour discovery, MLDv2 reports.
        IPPROTO_ICMPV6 => matches!(
            f.matched[0],
            ICMPV6_MLD_QUERY..=ICMPV6_NEIGH_ADVERT | ICMPV6_MLD2_REPORT
        ),
        _ => false,
    }
}

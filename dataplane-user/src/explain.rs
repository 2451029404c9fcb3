//! Why `dataplane trace`'s packet went where it went: the routing step and
//! the security groups, read from the live maps the way the programs read
//! them (`route.rs`, `sg.rs`). The verdicts themselves come from the
//! programs (BPF_PROG_TEST_RUN); this only names what decided them, and
//! says so when it cannot reproduce a verdict rather than guess.

use std::net::IpAddr;

use anyhow::Result;
use aya::maps::{Array, HashMap, LpmTrie, MapData, lpm_trie::Key};
use common::{
    CT_CLOSED, CtEntry, CtKey, DpConfig, FdbEntry, FdbKey, POLICY_DIR_EGRESS, POLICY_DIR_INGRESS,
    POLICY_PREFIX_BITS, POLICY_V6, PolicyEntry, PolicyKey, REMOTE_PREFIX_BITS, ROUTE_EXTERNAL,
    ROUTE_NEXTHOP, ROUTE_PREFIX_BITS, RemoteIdentity, RemoteV4Key, RemoteV6Key, Route, RouteV4Key,
    RouteV6Key, SgMeta, TARGET_ROUTER,
    proto::{
        DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPV6_CLIENT_PORT, DHCPV6_SERVER_PORT, ICMP_ECHO,
        ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_MLD_QUERY,
        ICMPV6_MLD2_REPORT, ICMPV6_NEIGH_ADVERT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
        IPPROTO_UDP, TCP_ACK, TCP_SYN,
    },
};
use dataplane_config::MacAddr;
use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use serde::Serialize;

use crate::{
    datapath::{pinned, pins::c_str},
    facts::Facts,
    show::{PortView, PortsView, clock_ns},
};

/// One port's security groups on a packet.
#[derive(Clone, Debug, Serialize)]
pub struct SgStep {
    /// The port whose rules apply.
    pub port: String,
    /// "egress" (the sender's rules) or "ingress" (the receiver's).
    pub direction: String,
    /// "allowed" or "refused".
    pub verdict: String,
    /// The security group whose rule allowed it, if a rule did.
    pub group: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// The routing step of a packet sent to a router interface's MAC.
#[derive(Clone, Debug, Serialize)]
pub struct RouteStep {
    /// The router: its name and id if known, else its index.
    pub router: String,
    /// The subnet (and network) the destination is on, if the router has
    /// a route for it.
    pub to: Option<String>,
    /// For a static route: its destination and nexthop ("10.99.0.0/24 via
    /// 10.0.2.100"), the nexthop being what `to` names the network of.
    pub via: Option<String>,
    /// The frame as routed: MACs and TTL (hop limit) before and after.
    pub src_mac: Option<String>,
    pub dst_mac: Option<String>,
    pub ttl_in: Option<u8>,
    pub ttl_out: Option<u8>,
}

/// What the security groups see of a packet (as `sg.rs`'s `Flow`).
#[derive(Clone, Debug)]
pub struct Flow {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    /// Destination port, or ICMP [type, code]: what rules match.
    pub policy_port: [u8; 2],
    pub tcp_flags: u8,
}

impl Flow {
    /// The IP packet of an Ethernet frame, if it is one.
    pub fn of(frame: &[u8]) -> Option<Flow> {
        let p = SlicedPacket::from_ethernet(frame).ok()?;
        let (v6, src, dst, proto) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => (
                false,
                IpAddr::from(ip.header().source_addr()),
                IpAddr::from(ip.header().destination_addr()),
                ip.payload().ip_number.0,
            ),
            Some(NetSlice::Ipv6(ip)) => (
                true,
                IpAddr::from(ip.header().source_addr()),
                IpAddr::from(ip.header().destination_addr()),
                ip.payload().ip_number.0,
            ),
            _ => return None,
        };
        let mut f = Flow {
            v6,
            src,
            dst,
            proto,
            sport: [0; 2],
            dport: [0; 2],
            policy_port: [0; 2],
            tcp_flags: 0,
        };
        let icmp = |f: &mut Flow, ty: u8, code: u8, bytes: &[u8], echo: (u8, u8)| {
            f.policy_port = [ty, code];
            let id = [
                bytes.get(4).copied().unwrap_or(0),
                bytes.get(5).copied().unwrap_or(0),
            ];
            if ty == echo.0 {
                f.sport = id;
            } else if ty == echo.1 {
                f.dport = id;
            } else {
                f.sport = [ty, code];
            }
        };
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                f.sport = t.source_port().to_be_bytes();
                f.dport = t.destination_port().to_be_bytes();
                f.policy_port = f.dport;
                f.tcp_flags = t.slice().get(13).copied().unwrap_or(0);
            }
            Some(TransportSlice::Udp(u)) => {
                f.sport = u.source_port().to_be_bytes();
                f.dport = u.destination_port().to_be_bytes();
                f.policy_port = f.dport;
            }
            Some(TransportSlice::Icmpv4(i)) => icmp(
                &mut f,
                i.type_u8(),
                i.code_u8(),
                i.slice(),
                (ICMP_ECHO, ICMP_ECHOREPLY),
            ),
            Some(TransportSlice::Icmpv6(i)) => icmp(
                &mut f,
                i.type_u8(),
                i.code_u8(),
                i.slice(),
                (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY),
            ),
            // A later fragment: matched by protocol only.
            _ => {}
        }
        Some(f)
    }

    /// What Neutron's firewall allows before any group (`sg::base_allowed`).
    fn base_allowed(&self) -> bool {
        let (s, d) = (
            u16::from_be_bytes(self.sport),
            u16::from_be_bytes(self.dport),
        );
        let between =
            |client: u16, server: u16| (s == client && d == server) || (s == server && d == client);
        match self.proto {
            IPPROTO_UDP if !self.v6 => between(DHCP_CLIENT_PORT, DHCP_SERVER_PORT),
            IPPROTO_UDP => between(DHCPV6_CLIENT_PORT, DHCPV6_SERVER_PORT),
            IPPROTO_ICMPV6 => matches!(
                self.policy_port[0],
                ICMPV6_MLD_QUERY..=ICMPV6_NEIGH_ADVERT | ICMPV6_MLD2_REPORT
            ),
            _ => false,
        }
    }

    /// "tcp port 81", "icmp type 8 code 0", "protocol 47".
    fn describe(&self) -> String {
        let [a, b] = self.policy_port;
        match self.proto {
            IPPROTO_TCP => format!("tcp port {}", u16::from_be_bytes(self.policy_port)),
            IPPROTO_UDP => format!("udp port {}", u16::from_be_bytes(self.policy_port)),
            IPPROTO_ICMP => format!("icmp type {a} code {b}"),
            IPPROTO_ICMPV6 => format!("icmpv6 type {a} code {b}"),
            p => format!("protocol {p}"),
        }
    }
}

fn addr16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut out = [0; 16];
            out[..4].copy_from_slice(&v4.octets());
            out
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The live maps the explanations read.
pub struct Explainer<'a> {
    dir: &'a std::path::Path,
    ports: &'a PortsView,
    facts: Option<&'a Facts>,
    generation: u64,
}

/// One side's security-group check, as `sg::check` makes it.
struct Side<'a> {
    port: &'a PortView,
    dir: u8,
    /// The other end's identity (0: unknown).
    remote: u32,
    remote_ip: IpAddr,
}

impl<'a> Explainer<'a> {
    pub fn new(
        dir: &'a std::path::Path,
        ports: &'a PortsView,
        facts: Option<&'a Facts>,
    ) -> Result<Explainer<'a>> {
        let config: Array<MapData, DpConfig> = pinned::CONFIG(dir)?;
        Ok(Explainer {
            dir,
            ports,
            facts,
            generation: config.get(&0, 0)?.generation,
        })
    }

    /// The security-group steps of `frame` from `sender` to `receiver`, in
    /// the order `to_vm` takes them; empty for what groups do not judge.
    pub fn security_groups(
        &self,
        sender: &PortView,
        receiver: &PortView,
        frame: &[u8],
    ) -> Result<Vec<SgStep>> {
        let Some(flow) = Flow::of(frame) else {
            return Ok(Vec::new());
        };
        if flow.base_allowed() {
            return Ok(vec![SgStep {
                port: receiver.id.clone(),
                direction: "ingress".into(),
                verdict: "allowed".into(),
                group: None,
                detail: "always allowed (DHCP, neighbour discovery, MLD), as by Neutron".into(),
            }]);
        }
        let mut steps = Vec::new();
        let sides = [
            (
                sender.port_security,
                Side {
                    port: sender,
                    dir: POLICY_DIR_EGRESS,
                    remote: receiver.identity,
                    remote_ip: flow.dst,
                },
            ),
            (
                receiver.port_security,
                Side {
                    port: receiver,
                    dir: POLICY_DIR_INGRESS,
                    remote: sender.identity,
                    remote_ip: flow.src,
                },
            ),
        ];
        for (secured, side) in sides {
            if !secured {
                continue;
            }
            let step = self.side(&flow, &side)?;
            let refused = step.verdict == "refused";
            steps.push(step);
            if refused {
                break;
            }
        }
        Ok(steps)
    }

    fn side(&self, f: &Flow, s: &Side) -> Result<SgStep> {
        let direction = if s.dir == POLICY_DIR_EGRESS {
            "egress"
        } else {
            "ingress"
        };
        let step = |verdict: &str, group: Option<String>, detail: String| SgStep {
            port: s.port.id.clone(),
            direction: direction.into(),
            verdict: verdict.into(),
            group,
            detail,
        };
        if let Some(entry) = self.tracked(f, s.port.index)? {
            // A connection allowed under older rules is judged again: that
            // is the rule lookup below.
            if entry.generation == self.generation {
                return Ok(step(
                    "allowed",
                    None,
                    "part of a connection tracked in the port's zone".to_string(),
                ));
            }
        } else {
            let new_syn = f.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
            if f.proto == IPPROTO_TCP && !new_syn {
                return Ok(step(
                    "refused",
                    None,
                    "a TCP packet other than a SYN that opens no tracked connection (ct_invalid)"
                        .into(),
                ));
            }
        }
        let (towards, peer) = if s.dir == POLICY_DIR_EGRESS {
            ("to", f.dst)
        } else {
            ("from", f.src)
        };
        let what = format!("{} {towards} {peer}", f.describe());
        Ok(match self.allowing_group(f, s)? {
            Some(group) => step(
                "allowed",
                Some(group.clone()),
                format!("security group {group} allows {direction} {what}"),
            ),
            None => step(
                "refused",
                None,
                format!(
                    "no {direction} rule of {} allows {what}",
                    self.groups_of(s.port)
                ),
            ),
        })
    }

    /// The live connection of zone `zone` the packet belongs to, if any
    /// (`sg::track_zone`'s lookup, both directions).
    fn tracked(&self, f: &Flow, zone: u32) -> Result<Option<CtEntry>> {
        let ct: HashMap<MapData, CtKey, CtEntry> = pinned::CONNTRACK(self.dir)?;
        let now = clock_ns(libc::CLOCK_MONOTONIC);
        let new_syn = f.proto == IPPROTO_TCP && f.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        for reversed in [false, true] {
            let (src, dst, sport, dport) = if reversed {
                (f.dst, f.src, f.dport, f.sport)
            } else {
                (f.src, f.dst, f.sport, f.dport)
            };
            let key = CtKey {
                zone,
                proto: f.proto,
                ipv6: f.v6 as u8,
                sport,
                dport,
                _pad: [0; 2],
                src: addr16(src),
                dst: addr16(dst),
            };
            if let Ok(e) = ct.get(&key, 0) {
                if e.expires_ns >= now && !(e.state == CT_CLOSED && new_syn) {
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }

    /// The group of a rule allowing the packet on `s`'s side
    /// (`sg::allowing_group`): by the remote port's identity, the remote
    /// address's CIDR identity, or a rule without remote.
    fn allowing_group(&self, f: &Flow, s: &Side) -> Result<Option<String>> {
        let policy: LpmTrie<MapData, PolicyKey, PolicyEntry> = pinned::POLICY(self.dir)?;
        let slot = self.ports.active_slot;
        let dir = if f.v6 { s.dir | POLICY_V6 } else { s.dir };
        let lookup = |identity: u32| {
            let key = PolicyKey {
                slot,
                policy: s.port.policy,
                identity,
                dir,
                proto: f.proto,
                port: f.policy_port,
            };
            policy
                .get(&Key::new(POLICY_PREFIX_BITS + 24, key), 0)
                .ok()
                .map(|e| e.group)
        };
        let mut candidates = Vec::new();
        if s.remote != 0 {
            candidates.push(s.remote);
        }
        let cidr = self.cidr_identity(s.remote_ip)?;
        if cidr != 0 {
            candidates.push(cidr);
        }
        candidates.push(0);
        let Some(group) = candidates.into_iter().find_map(lookup) else {
            return Ok(None);
        };
        let meta: Array<MapData, SgMeta> = pinned::SG_META(self.dir)?;
        let id = meta
            .get(&group, 0)
            .map(|m| c_str(&m.id))
            .unwrap_or_else(|_| format!("#{group}"));
        Ok(Some(match self.facts {
            Some(facts) => facts.security_group_label(&id),
            None => id,
        }))
    }

    fn cidr_identity(&self, addr: IpAddr) -> Result<u32> {
        let slot = self.ports.active_slot;
        Ok(match addr {
            IpAddr::V4(a) => {
                let t: LpmTrie<MapData, RemoteV4Key, RemoteIdentity> = pinned::REMOTE_V4(self.dir)?;
                let key = RemoteV4Key {
                    slot,
                    addr: a.octets(),
                };
                t.get(&Key::new(REMOTE_PREFIX_BITS + 32, key), 0)
                    .map(|r| r.identity)
                    .unwrap_or(0)
            }
            IpAddr::V6(a) => {
                let t: LpmTrie<MapData, RemoteV6Key, RemoteIdentity> = pinned::REMOTE_V6(self.dir)?;
                let key = RemoteV6Key {
                    slot,
                    addr: a.octets(),
                };
                t.get(&Key::new(REMOTE_PREFIX_BITS + 128, key), 0)
                    .map(|r| r.identity)
                    .unwrap_or(0)
            }
        })
    }

    /// "web's security groups (web, default)" (names from the agent's
    /// facts).
    fn groups_of(&self, port: &PortView) -> String {
        let who = if port.name.is_empty() {
            &port.id
        } else {
            &port.name
        };
        let Some(facts) = self.facts else {
            return format!("{who}'s security groups");
        };
        let groups: Vec<String> = facts
            .ports
            .get(&port.id)
            .map(|p| p.security_groups.clone())
            .unwrap_or_default();
        if groups.is_empty() {
            format!("{who}'s security groups (it has none)")
        } else {
            let labels: Vec<String> = groups
                .iter()
                .map(|g| facts.security_group_label(g))
                .collect();
            format!("{who}'s security groups ({})", labels.join(", "))
        }
    }

    /// The routing step, if `frame` from `sender` is addressed to a router
    /// interface; `out` is the frame as `from_vm` (routing included) left
    /// it.
    pub fn route(&self, sender: &PortView, frame: &[u8], out: &[u8]) -> Result<Option<RouteStep>> {
        let Ok(p) = SlicedPacket::from_ethernet(frame) else {
            return Ok(None);
        };
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            return Ok(None);
        };
        let slot = self.ports.active_slot;
        let fdb: HashMap<MapData, FdbKey, FdbEntry> = pinned::FDB(self.dir)?;
        let key = FdbKey {
            slot,
            network: sender.network,
            mac: eth.destination(),
            _pad: [0; 2],
        };
        let Ok(entry) = fdb.get(&key, 0) else {
            return Ok(None);
        };
        if entry.kind != TARGET_ROUTER {
            return Ok(None);
        }
        let ttl = |frame: &[u8]| match SlicedPacket::from_ethernet(frame).ok()?.net? {
            NetSlice::Ipv4(ip) => Some(ip.header().ttl()),
            NetSlice::Ipv6(ip) => Some(ip.header().hop_limit()),
            _ => None,
        };
        let dst = match &p.net {
            Some(NetSlice::Ipv4(ip)) => Some(IpAddr::from(ip.header().destination_addr())),
            Some(NetSlice::Ipv6(ip)) => Some(IpAddr::from(ip.header().destination_addr())),
            _ => None,
        };
        let route = dst.and_then(|d| self.route_of(entry.target, d).transpose());
        let route = route.transpose()?;
        let routed = route.is_some() && out.len() >= 12 && ttl(out) != ttl(frame);
        let mac = |b: &[u8]| MacAddr(b.try_into().expect("6 bytes")).to_string();
        Ok(Some(RouteStep {
            router: self.router_label(entry.target, eth.destination()),
            to: route.map(|r| self.destination_label(&r, dst)),
            via: route
                .filter(through_nexthop)
                .and_then(|r| static_route(&r, dst)),
            src_mac: routed.then(|| mac(&out[6..12])),
            dst_mac: routed.then(|| mac(&out[..6])),
            ttl_in: ttl(frame),
            ttl_out: if routed { ttl(out) } else { None },
        }))
    }

    fn route_of(&self, router: u32, dst: IpAddr) -> Result<Option<Route>> {
        let slot = self.ports.active_slot;
        Ok(match dst {
            IpAddr::V4(a) => {
                let t: LpmTrie<MapData, RouteV4Key, Route> = pinned::ROUTES_V4(self.dir)?;
                let key = RouteV4Key {
                    slot,
                    router,
                    addr: a.octets(),
                };
                t.get(&Key::new(ROUTE_PREFIX_BITS + 32, key), 0).ok()
            }
            IpAddr::V6(a) => {
                let t: LpmTrie<MapData, RouteV6Key, Route> = pinned::ROUTES_V6(self.dir)?;
                let key = RouteV6Key {
                    slot,
                    router,
                    addr: a.octets(),
                };
                t.get(&Key::new(ROUTE_PREFIX_BITS + 128, key), 0).ok()
            }
        })
    }

    /// The router owning the interface with MAC `mac` (from the facts), or
    /// its index.
    fn router_label(&self, index: u32, mac: [u8; 6]) -> String {
        let mac = MacAddr(mac).to_string();
        self.facts
            .and_then(|f| {
                let port = f
                    .ports
                    .values()
                    .find(|p| p.mac == mac && p.router.is_some())?;
                Some(f.router_label(port.router.as_deref()?))
            })
            .unwrap_or_else(|| format!("#{index}"))
    }

    /// "subnet s2 (10.9.2.0/24) of network net2" for where a route leads
    /// (a static route: where its nexthop is).
    fn destination_label(&self, route: &Route, dst: Option<IpAddr>) -> String {
        let dst = match dst {
            Some(IpAddr::V4(_)) if through_nexthop(route) => Some(IpAddr::from(
                <[u8; 4]>::try_from(&route.addr[..4]).expect("4 bytes"),
            )),
            Some(IpAddr::V6(_)) if route.kind == ROUTE_NEXTHOP => Some(IpAddr::from(route.addr)),
            other => other,
        };
        let mac = MacAddr(route.mac).to_string();
        let found = self.facts.and_then(|f| {
            let port = f
                .ports
                .values()
                .find(|p| p.mac == mac && p.router.is_some())?;
            let subnet = port.subnets.iter().find_map(|id| {
                let s = f.subnets.get(id)?;
                dst.is_some_and(|d| s.cidr.contains(&d)).then_some((id, s))
            });
            Some(match subnet {
                Some((id, s)) => format!("subnet {id} ({}) of network {}", s.cidr, port.network_id),
                None => format!("network {}", port.network_id),
            })
        });
        found.unwrap_or_else(|| format!("network #{} (router MAC {mac})", route.network))
    }
}

/// Whether a route goes through a next hop (a static route, or an
/// external gateway's default route) rather than to the destination on
/// link.
fn through_nexthop(route: &Route) -> bool {
    route.kind == ROUTE_NEXTHOP || route.kind == ROUTE_EXTERNAL && route.addr[..4] != [0; 4]
}

/// "PREFIX via NEXTHOP" for a static route that `dst` took.
fn static_route(route: &Route, dst: Option<IpAddr>) -> Option<String> {
    let (prefix, hop) = match dst? {
        IpAddr::V4(a) => {
            let hop = <[u8; 4]>::try_from(&route.addr[..4]).ok()?;
            let net = ipnet::Ipv4Net::new(a, route.prefix_len).ok()?.trunc();
            (ipnet::IpNet::V4(net), IpAddr::from(hop))
        }
        IpAddr::V6(a) => {
            let net = ipnet::Ipv6Net::new(a, route.prefix_len).ok()?.trunc();
            (ipnet::IpNet::V6(net), IpAddr::from(route.addr))
        }
    };
    Some(format!("{prefix} via {hop}"))
}

/// The gateway a VM on `port` would send a packet for `dst` to: none if
/// `dst` is on one of the port's subnets, else its subnet's gateway
/// (`Ok(None)` too when the facts do not say).
pub fn gateway(facts: &Facts, port: &PortView, dst: IpAddr) -> Result<Option<(IpAddr, String)>> {
    let Some(p) = facts.ports.get(&port.id) else {
        return Ok(None);
    };
    let subnets: Vec<(&String, &crate::facts::SubnetFacts)> = p
        .subnets
        .iter()
        .filter_map(|id| Some((id, facts.subnets.get(id)?)))
        .filter(|(_, s)| s.cidr.addr().is_ipv6() == dst.is_ipv6())
        .collect();
    if subnets.iter().any(|(_, s)| s.cidr.contains(&dst)) {
        return Ok(None);
    }
    let Some((id, subnet)) = subnets.first() else {
        anyhow::bail!(
            "port {} has no IPv{} subnet, so {dst} is reached through no gateway: give --via or \
             --dst-mac",
            port.id,
            if dst.is_ipv6() { 6 } else { 4 }
        );
    };
    let Some(gw) = subnet.gateway_ip else {
        anyhow::bail!(
            "{dst} is not on port {}'s subnet {id} ({}), which has no gateway: give --via or \
             --dst-mac",
            port.id,
            subnet.cidr
        );
    };
    Ok(Some((
        gw,
        format!("{gw}, the gateway of subnet {id} ({})", subnet.cidr),
    )))
}

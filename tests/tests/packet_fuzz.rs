//! Packet fuzzing against an independent model: random and mutated frames
//! from every kind of port go through the real programs with real maps
//! (BPF_PROG_TEST_RUN, through `dataplane trace`'s probe: from_vm, then
//! to_vm's code for every port the frame reaches), and each verdict, drop
//! reason, answer and set of receivers must equal the reference model's
//! (lab::model). Every mismatch is printed with the seed, the iteration,
//! the sending port and the frame in hex: `FUZZ_SEED=<seed>` replays a run
//! exactly; `FUZZ_PACKETS=<n>` sets its length (default 2,000,000).
//!
//! Frames are traced ones: they claim no group, write no conntrack entry
//! or SNAT connection, learn no neighbour and are exempt from the ICMP
//! errors' rate limit, so every packet meets the same state and the model
//! need not track any (claims, conntrack, SNAT connections and the rate
//! limit have their own tests). The one state set up is the upstream
//! router's MAC, taught to the datapath on its uplink before the run (and
//! to the model), so that packets to the outside both leave (translated)
//! and wait for their next hop.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use common::proto::ARPOP_REPLY;
use dataplane_agent::{
    datapath::PROG_FROM_UPLINK,
    show::{self, PortView},
    trace::{self, Probe, Trace},
};
use dataplane_config::{MacAddr, Topology};
use lab::{
    model::{Model, Port, Sent},
    pkt::{checksum, link_local, solicited_node},
    require_root,
    rng::Rng,
    verdict::Verdicts,
};
use serde_json::{Value, json};

const VMAC: &str = "00:00:5e:00:01:01";
/// The external network's physical network, and the uplink's.
const PHYSNET: &str = "physnet1";
const GATEWAY: &str = "203.0.113.10";
const GATEWAY_MAC: &str = "fa:16:3e:00:02:01";
/// The outside's router (the external subnet's gateway_ip), which the
/// datapath is taught before the run; the static route's next hop
/// (203.0.113.254) stays unresolved.
const UPSTREAM: &str = "203.0.113.1";
const UPSTREAM_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x99, 0, 1];

/// Ports of every kind: with fixed IPs and pairs (an address shared by two
/// ports, a shared virtual MAC, a prefix pair, a /0 pair), without port
/// security, without security groups, and alone on a second network;
/// groups with rules by port range, ICMP type, prefix and remote group;
/// a router joining the three networks, one of which has a small MTU,
/// with static routes, and its gateway on an external network (SNAT, a
/// floating IP on c's fixed IP and one on the VIP a and b share, whose
/// port holds it as Neutron users make it); a second router without a
/// gateway on the second network (no default route: net unreachable).
fn config() -> Value {
    let fixed = |v4: &str, v6: Option<&str>| {
        let mut f = vec![json!({ "subnet_id": "v4", "ip_address": v4 })];
        if let Some(v6) = v6 {
            f.push(json!({ "subnet_id": "v6", "ip_address": v6 }));
        }
        f
    };
    json!({
        "networks": [
            { "id": "net" }, { "id": "other" }, { "id": "small", "mtu": 100 },
            // A small MTU here too: routes to the outside check it.
            { "id": "public", "router:external": true, "provider:network_type": "flat",
              "provider:physical_network": PHYSNET, "mtu": 150 },
            { "id": "public2", "router:external": true, "provider:network_type": "flat",
              "provider:physical_network": "physnet2" },
        ],
        "subnets": [
            { "id": "v4", "network_id": "net", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4 },
            { "id": "v6", "network_id": "net", "cidr": "fd00::/64", "ip_version": 6 },
            { "id": "o4", "network_id": "other", "cidr": "10.1.0.0/24", "ip_version": 4 },
            { "id": "sm4", "network_id": "small", "cidr": "10.2.0.0/24", "ip_version": 4 },
            { "id": "pub4", "network_id": "public", "cidr": "203.0.113.0/24",
              "gateway_ip": UPSTREAM, "ip_version": 4 },
            { "id": "pub2", "network_id": "public2", "cidr": "192.0.2.0/24",
              "gateway_ip": null, "ip_version": 4 },
        ],
        // Static routes: through the VIP a and b share (no active member
        // in traced frames: every member), through f's address, through
        // an address nobody holds, an IPv6 one, and one to a connected
        // subnet (which stays connected); one through the gateway's
        // subnet, to a next hop the datapath has not resolved.
        "routers": [
            { "id": "r1", "routes": [
                { "destination": "10.9.0.0/16", "nexthop": "10.0.0.100" },
                { "destination": "10.8.0.0/24", "nexthop": "10.1.0.5" },
                { "destination": "10.2.0.128/25", "nexthop": "10.1.0.77" },
                { "destination": "fd09::/48", "nexthop": "fd00::6" },
                { "destination": "10.1.0.0/24", "nexthop": "10.0.0.7" },
                { "destination": "198.51.100.0/24", "nexthop": "203.0.113.254" },
              ],
              "external_gateway_info": {
                  "network_id": "public", "enable_snat": true,
                  "external_fixed_ips": [{ "subnet_id": "pub4", "ip_address": GATEWAY }],
              } },
            // On "other", its gateway on an external network this host
            // has no uplink for, whose subnet has no gateway_ip (no
            // default route: net unreachable stays).
            { "id": "r2", "external_gateway_info": {
                  "network_id": "public2",
                  "external_fixed_ips": [{ "subnet_id": "pub2", "ip_address": "192.0.2.10" }],
              } },
            // On "small", without SNAT: its packets leave untranslated.
            { "id": "r3", "external_gateway_info": {
                  "network_id": "public", "enable_snat": false,
                  "external_fixed_ips": [{ "subnet_id": "pub4", "ip_address": "203.0.113.11" }],
              } },
        ],
        "floatingips": [
            { "id": "fip-c", "floating_network_id": "public", "floating_ip_address": "203.0.113.20",
              "port_id": "c", "fixed_ip_address": "10.0.0.7" },
            { "id": "fip-vip", "floating_network_id": "public", "floating_ip_address": "203.0.113.21",
              "port_id": "vip", "fixed_ip_address": "10.0.0.100" },
            // On d, without port security: an ICMP error from outside to
            // it is delivered translated (to the others, traced frames,
            // which track no connection, bring only invalid ones).
            { "id": "fip-d", "floating_network_id": "public", "floating_ip_address": "203.0.113.22",
              "port_id": "d", "fixed_ip_address": "10.0.0.8" },
        ],
        "security_groups": [
            { "id": "web", "security_group_rules": [
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80 },
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443, "remote_ip_prefix": "10.0.0.0/29" },
                { "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "remote_group_id": "web" },
                { "direction": "ingress", "ethertype": "IPv6", "protocol": "udp", "port_range_min": 5000, "port_range_max": 5010 },
                // The outside, through a floating IP.
                { "direction": "ingress", "protocol": "udp", "port_range_min": 5000, "port_range_max": 5010, "remote_ip_prefix": "198.51.100.0/24" },
                // And from the external subnet: what hairpins to the VIP's
                // floating IP from inside comes from the gateway's address
                // or the sender's floating IP.
                { "direction": "ingress", "protocol": "udp", "port_range_min": 5000, "port_range_max": 5010, "remote_ip_prefix": "203.0.113.0/24" },
                // Destination unreachable from there: errors about the
                // floating IP's packets, unrelated in a traced run.
                { "direction": "ingress", "protocol": "icmp", "port_range_min": 3, "remote_ip_prefix": "198.51.100.0/24" },
                { "direction": "egress", "ethertype": "IPv4" },
                { "direction": "egress", "ethertype": "IPv6" },
            ]},
            { "id": "ssh", "security_group_rules": [
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_group_id": "ssh" },
                { "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp", "port_range_min": 128, "port_range_max": 0 },
                { "direction": "egress", "protocol": "tcp" },
                { "direction": "egress", "protocol": "udp", "remote_ip_prefix": "10.0.0.0/24" },
                { "direction": "egress", "ethertype": "IPv6", "protocol": "ipv6-icmp" },
            ]},
            { "id": "open", "security_group_rules": [
                { "direction": "ingress", "remote_group_id": "open" },
                { "direction": "ingress", "ethertype": "IPv6", "remote_group_id": "open" },
                { "direction": "egress" },
                { "direction": "egress", "ethertype": "IPv6" },
            ]},
        ],
        "ports": [
            { "id": "a", "network_id": "net", "mac_address": "fa:16:3e:00:00:0a",
              "fixed_ips": fixed("10.0.0.5", Some("fd00::5")),
              "allowed_address_pairs": [
                  { "ip_address": "10.0.0.100" },
                  { "ip_address": "10.0.0.64/28", "mac_address": VMAC },
                  { "ip_address": "fd00::100" },
              ],
              "security_groups": ["web", "ssh"] },
            { "id": "b", "network_id": "net", "mac_address": "fa:16:3e:00:00:0b",
              "fixed_ips": fixed("10.0.0.6", Some("fd00::6")),
              "allowed_address_pairs": [
                  { "ip_address": "10.0.0.100" },
                  { "ip_address": "10.0.0.200", "mac_address": VMAC },
              ],
              "security_groups": ["web"] },
            { "id": "c", "network_id": "net", "mac_address": "fa:16:3e:00:00:0c",
              "fixed_ips": fixed("10.0.0.7", Some("fd00::7")),
              "security_groups": ["ssh", "open"] },
            { "id": "d", "network_id": "net", "mac_address": "fa:16:3e:00:00:0d",
              "fixed_ips": fixed("10.0.0.8", None),
              "port_security_enabled": false, "security_groups": [] },
            { "id": "e", "network_id": "net", "mac_address": "fa:16:3e:00:00:0e",
              "fixed_ips": fixed("10.0.0.9", Some("fd00::9")),
              "allowed_address_pairs": [{ "ip_address": "0.0.0.0/0", "mac_address": "fa:16:3e:00:00:ee" }],
              "security_groups": [] },
            { "id": "f", "network_id": "other", "mac_address": "fa:16:3e:00:00:0f",
              "fixed_ips": [{ "subnet_id": "o4", "ip_address": "10.1.0.5" }],
              "security_groups": ["open"] },
            { "id": "g", "network_id": "small", "mac_address": "fa:16:3e:00:00:10",
              "fixed_ips": [{ "subnet_id": "sm4", "ip_address": "10.2.0.5" }],
              "security_groups": ["open"] },
            // The VIP's own port, which no VM uses (a floating IP needs a
            // port holding its fixed IP).
            { "id": "vip", "network_id": "net", "mac_address": "fa:16:3e:00:00:64",
              "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.100" }],
              "security_groups": ["web"] },
            { "id": "r1-net", "network_id": "net", "mac_address": "fa:16:3e:00:01:01",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.0.0.1" }, { "subnet_id": "v6", "ip_address": "fd00::1" }] },
            { "id": "r1-other", "network_id": "other", "mac_address": "fa:16:3e:00:01:02",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "o4", "ip_address": "10.1.0.1" }] },
            { "id": "r1-small", "network_id": "small", "mac_address": "fa:16:3e:00:01:03",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "sm4", "ip_address": "10.2.0.1" }] },
            { "id": "r1-gw", "network_id": "public", "mac_address": GATEWAY_MAC,
              "device_owner": "network:router_gateway", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "pub4", "ip_address": GATEWAY }] },
            { "id": "r2-other", "network_id": "other", "mac_address": "fa:16:3e:00:01:04",
              "device_owner": "network:router_interface", "device_id": "r2",
              "fixed_ips": [{ "subnet_id": "o4", "ip_address": "10.1.0.2" }] },
            { "id": "r2-gw", "network_id": "public2", "mac_address": "fa:16:3e:00:02:02",
              "device_owner": "network:router_gateway", "device_id": "r2",
              "fixed_ips": [{ "subnet_id": "pub2", "ip_address": "192.0.2.10" }] },
            { "id": "r3-small", "network_id": "small", "mac_address": "fa:16:3e:00:01:05",
              "device_owner": "network:router_interface", "device_id": "r3",
              "fixed_ips": [{ "subnet_id": "sm4", "ip_address": "10.2.0.3" }] },
            { "id": "r3-gw", "network_id": "public", "mac_address": "fa:16:3e:00:02:03",
              "device_owner": "network:router_gateway", "device_id": "r3",
              "fixed_ips": [{ "subnet_id": "pub4", "ip_address": "203.0.113.11" }] },
        ],
    })
}

/// MACs, IPv4 and IPv6 addresses that frames are built from.
type Pools = (Vec<[u8; 6]>, Vec<[u8; 4]>, Vec<[u8; 16]>);

/// Addresses and MACs no port owns: broadcast, multicast, unknown ones,
/// and outside ones (the upstream router, a host on the external subnet
/// and its broadcast, one behind the static route, the Internet).
fn fixed_pools() -> Pools {
    let macs = vec![
        [0xff; 6],
        [0x33, 0x33, 0, 0, 0, 1],
        [0x33, 0x33, 0xff, 0, 0, 5],
        [1, 0, 0x5e, 0, 0, 0x12],
        [0; 6],
        [0xfa, 0x16, 0x3e, 0xaa, 0xbb, 0xcc],
    ];
    let v4 = vec![
        [0; 4],
        [255; 4],
        [224, 0, 0, 18],
        [10, 0, 0, 1],
        [10, 0, 0, 250],
        [10, 0, 0, 255],
        [10, 1, 0, 99],
        [10, 2, 0, 99],
        [192, 0, 2, 1],
        [203, 0, 113, 1],
        [203, 0, 113, 77],
        [203, 0, 113, 255],
        [198, 51, 100, 7],
        [8, 8, 8, 8],
    ];
    let v6 = vec![
        [0; 16],
        lab::pkt::v6("ff02::1"),
        lab::pkt::v6("ff02::2"),
        lab::pkt::v6("ff02::16"),
        lab::pkt::v6("fd00::99"),
        lab::pkt::v6("2001:db8::1"),
    ];
    (macs, v4, v6)
}

/// The gateway and floating addresses, each with the MAC of the gateway
/// port that answers for it.
fn outside_addresses(t: &Topology) -> Vec<([u8; 4], [u8; 6])> {
    let mut ours = Vec::new();
    for g in t.routers.iter().filter_map(|r| r.gateway.as_ref()) {
        for (_, a) in &g.addresses {
            if let std::net::IpAddr::V4(a) = a {
                ours.push((a.octets(), g.mac.0));
            }
        }
    }
    for f in &t.floating_ips {
        if let Some(g) = &t.routers[f.router].gateway {
            ours.push((f.address.octets(), g.mac.0));
        }
    }
    ours
}

/// Frames built from pools of the topology's own MACs and addresses (so
/// that allowed, spoofed, shared and unknown ones all occur), with random
/// header fields, then cut, corrupted or padded.
struct Gen<'a> {
    r: Rng,
    t: &'a Topology,
    macs: Vec<[u8; 6]>,
    v4: Vec<[u8; 4]>,
    v6: Vec<[u8; 16]>,
    /// The routers' gateway port MACs, and the gateway and floating
    /// addresses with the MAC of the gateway that answers for each: what
    /// frames from outside go to.
    gateway_macs: Vec<[u8; 6]>,
    ours: Vec<([u8; 4], [u8; 6])>,
}

impl<'a> Gen<'a> {
    fn new(seed: u64, t: &'a Topology) -> Gen<'a> {
        let (mut macs, mut v4, mut v6) = fixed_pools();
        for p in &t.ports {
            macs.push(p.mac.0);
            macs.extend(p.allowed_address_pairs.iter().map(|a| a.mac.0));
            let ips = p
                .fixed_ips
                .iter()
                .map(|f| f.ip)
                .chain(p.allowed_address_pairs.iter().map(|a| a.ip.addr()));
            for ip in ips {
                match ip {
                    std::net::IpAddr::V4(a) => v4.push(a.octets()),
                    std::net::IpAddr::V6(a) => {
                        v6.push(a.octets());
                        v6.push(solicited_node(a.octets()));
                    }
                }
            }
        }
        for r in &t.routers {
            // Addresses behind the static routes, as destinations.
            for route in &r.routes {
                match route.destination {
                    ipnet::IpNet::V4(n) => {
                        let mut a = n.network().octets();
                        a[3] |= 3;
                        v4.push(a);
                    }
                    ipnet::IpNet::V6(n) => {
                        let mut a = n.network().octets();
                        a[15] |= 3;
                        v6.push(a);
                    }
                }
            }
            for i in &r.interfaces {
                macs.push(i.mac.0);
                match i.ip {
                    std::net::IpAddr::V4(a) => v4.push(a.octets()),
                    std::net::IpAddr::V6(a) => v6.push(a.octets()),
                }
            }
        }
        let ours = outside_addresses(t);
        // Destinations too: they are not reached from inside.
        v4.extend(ours.iter().map(|(a, _)| *a));
        let gateway_macs: Vec<[u8; 6]> = t
            .routers
            .iter()
            .filter_map(|r| r.gateway.as_ref().map(|g| g.mac.0))
            .collect();
        for m in macs.clone() {
            v6.push(link_local(m));
        }
        macs.sort();
        macs.dedup();
        Gen {
            r: Rng(seed),
            t,
            macs,
            v4,
            v6,
            gateway_macs,
            ours,
        }
    }

    /// The MAC of a router interface on the port's network, if any.
    fn gateway_mac(&mut self, from: usize) -> Option<[u8; 6]> {
        let network = self.t.ports[from].network;
        let macs: Vec<[u8; 6]> = self
            .t
            .routers
            .iter()
            .flat_map(|r| &r.interfaces)
            .filter(|i| i.network == network)
            .map(|i| i.mac.0)
            .collect();
        (!macs.is_empty()).then(|| *self.r.pick(&macs))
    }

    /// One of the port's own MACs most of the time, else any.
    fn src_mac(&mut self, from: usize) -> [u8; 6] {
        let p = &self.t.ports[from];
        if self.r.chance(75) {
            let n = p.allowed_address_pairs.len() + 1;
            match self.r.below(n) {
                0 => p.mac.0,
                i => p.allowed_address_pairs[i - 1].mac.0,
            }
        } else {
            *self.r.pick(&self.macs)
        }
    }

    /// One of the port's own addresses (a random one inside a prefix
    /// pair) most of the time, else any of the pool.
    fn src_v4(&mut self, from: usize) -> [u8; 4] {
        let own: Vec<ipnet::IpNet> = self
            .own(from)
            .into_iter()
            .filter(|n| n.addr().is_ipv4())
            .collect();
        if !own.is_empty() && self.r.chance(65) {
            let net = *self.r.pick(&own);
            if let ipnet::IpNet::V4(n) = net {
                let host_bits = 32 - u32::from(n.prefix_len());
                let mask = if host_bits == 32 {
                    u32::MAX
                } else {
                    (1u32 << host_bits) - 1
                };
                let base = u32::from(n.network());
                return (base | (self.r.next_u64() as u32 & mask)).to_be_bytes();
            }
        }
        *self.r.pick(&self.v4)
    }

    fn src_v6(&mut self, from: usize) -> [u8; 16] {
        let own: Vec<[u8; 16]> = self
            .own(from)
            .into_iter()
            .filter_map(|n| match n.addr() {
                std::net::IpAddr::V6(a) => Some(a.octets()),
                _ => None,
            })
            .collect();
        if !own.is_empty() && self.r.chance(55) {
            return *self.r.pick(&own);
        }
        if self.r.chance(30) {
            let m = self.src_mac(from);
            return link_local(m);
        }
        *self.r.pick(&self.v6)
    }

    fn own(&self, from: usize) -> Vec<ipnet::IpNet> {
        let p = &self.t.ports[from];
        p.fixed_ips
            .iter()
            .map(|f| ipnet::IpNet::from(f.ip))
            .chain(p.allowed_address_pairs.iter().map(|a| a.ip))
            .collect()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.r.byte()).collect()
    }

    fn frame(&mut self, from: usize) -> Vec<u8> {
        let gateway = self.gateway_mac(from);
        let dst = match (self.r.below(100), gateway) {
            (0..20, Some(gw)) => gw,
            (20..36, _) => self.src_mac(from),
            _ => *self.r.pick(&self.macs),
        };
        let src = self.src_mac(from);
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        match self.r.below(100) {
            0..15 => self.arp(from, src, &mut f),
            15..45 => self.ipv4(from, &mut f),
            45..80 => self.ipv6(from, &mut f),
            80..88 => {
                // VLAN or QinQ tags in front of an allowed-looking packet.
                let outer: u16 = *self.r.pick(&[0x8100, 0x88a8, 0x9100]);
                f.extend_from_slice(&outer.to_be_bytes());
                f.extend_from_slice(&self.bytes(2));
                if self.r.chance(40) {
                    f.extend_from_slice(&0x8100u16.to_be_bytes());
                    f.extend_from_slice(&self.bytes(2));
                }
                let mut inner = Vec::new();
                match self.r.below(3) {
                    0 => self.arp(from, src, &mut inner),
                    1 => self.ipv4(from, &mut inner),
                    _ => self.ipv6(from, &mut inner),
                }
                f.extend_from_slice(&inner);
            }
            88..95 => {
                let ethertype: u16 = *self.r.pick(&[
                    0x88cc, 0x8035, 0x0842, 0x88e5, 0x8847, 0x0000, 0x05dc, 0xffff,
                ]);
                f.extend_from_slice(&ethertype.to_be_bytes());
                let n = self.r.below(64);
                f.extend_from_slice(&self.bytes(n));
            }
            _ => {
                let n = self.r.below(80);
                f = self.bytes(n);
            }
        }
        self.mutate(&mut f);
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
        if f.len() < 14 {
            let n = 14 - f.len();
            let fill = self.bytes(n);
            f.extend_from_slice(&fill);
        }
        f
    }

    /// A frame from the outside, on the uplink: mostly to a gateway port's
    /// MAC, ARP or IPv4 for the gateway and floating addresses, from
    /// outside addresses (some from inside ones: spoofed), then cut,
    /// corrupted or padded.
    fn outside_frame(&mut self) -> Vec<u8> {
        let dst = if self.r.chance(75) {
            *self.r.pick(&self.gateway_macs)
        } else {
            *self.r.pick(&self.macs)
        };
        let src = if self.r.chance(80) {
            UPSTREAM_MAC
        } else {
            *self.r.pick(&self.macs)
        };
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        match self.r.below(100) {
            0..25 => self.outside_arp(src, &mut f),
            25..92 => {
                let from = self.outside_src();
                let (to, mac) = if self.r.chance(80) {
                    *self.r.pick(&self.ours)
                } else {
                    (*self.r.pick(&self.v4), dst)
                };
                // Mostly at the MAC the datapath answers ARP for it with.
                if self.r.chance(85) {
                    f[..6].copy_from_slice(&mac);
                }
                if self.r.chance(25) {
                    self.icmp_error(from, to, &mut f);
                } else {
                    self.ipv4_between(from, to, &mut f);
                }
            }
            _ => {
                let ethertype: u16 = *self.r.pick(&[0x86dd, 0x8100, 0x88cc, 0x0000]);
                f.extend_from_slice(&ethertype.to_be_bytes());
                let n = self.r.below(64);
                f.extend_from_slice(&self.bytes(n));
            }
        }
        self.mutate(&mut f);
        if f.len() < 14 {
            let n = 14 - f.len();
            let fill = self.bytes(n);
            f.extend_from_slice(&fill);
        }
        f
    }

    /// An ICMP error from `src` to `dst` (ethertype and IPv4 on): mostly
    /// about a packet `dst` sent (TCP, UDP, an echo request, GRE), quoting
    /// its header and 8 bytes or more, with its ICMP checksum right; now
    /// and then fragmented, about a later fragment or another source, cut
    /// short or with a wrong checksum.
    fn icmp_error(&mut self, src: [u8; 4], dst: [u8; 4], f: &mut Vec<u8>) {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let proto: u8 = *self.r.pick(&[6, 6, 17, 17, 1, 1, 47]);
        let words: usize = match self.r.below(100) {
            0..85 => 5,
            85..95 => 6 + self.r.below(10),
            _ => self.r.below(5),
        };
        let mut quote = vec![
            if self.r.chance(95) {
                0x40
            } else {
                self.r.byte() & 0xf0
            } | words as u8,
        ];
        quote.push(0);
        quote.extend_from_slice(&(20 + self.r.below(200) as u16).to_be_bytes());
        quote.extend_from_slice(&self.bytes(2));
        let qfrags: u16 = match self.r.below(10) {
            0..8 => 0x4000,
            8 => 0x2000,
            _ => 1 + self.r.below(0x1fff) as u16,
        };
        quote.extend_from_slice(&qfrags.to_be_bytes());
        quote.extend_from_slice(&[1, proto]);
        quote.extend_from_slice(&self.bytes(2));
        let qsrc = if self.r.chance(85) {
            dst
        } else {
            *self.r.pick(&self.v4)
        };
        quote.extend_from_slice(&qsrc);
        let qdst = self.outside_src();
        quote.extend_from_slice(&qdst);
        let opts = self.bytes(words.max(5) * 4 - 20);
        quote.extend_from_slice(&opts);
        let mut l4 = self.l4(proto, false);
        if proto == 1 && self.r.chance(70) {
            l4[0] = ICMP_ECHO_TYPE;
        }
        // Mostly the 8 bytes RFC 792 asks for, or more; sometimes fewer.
        let keep = *self.r.pick(&[8, 8, 8, 20, 28, l4.len(), 4]);
        l4.truncate(keep);
        quote.extend_from_slice(&l4);
        let ty: u8 = *self.r.pick(&[3, 3, 11, 11, 12]);
        let code: u8 = *self.r.pick(&[0, 1, 3, 4]);
        let mut icmp = vec![ty, code, 0, 0, 0, 0, 0x05, 0x78];
        icmp.extend_from_slice(&quote);
        if self.r.chance(85) {
            let c = checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
        } else {
            icmp[2..4].copy_from_slice(&self.bytes(2));
        }
        let frags: u16 = match self.r.below(10) {
            0..8 => 0x4000 * self.r.below(2) as u16,
            8 => 0x2000,
            _ => 1 + self.r.below(0x1fff) as u16,
        };
        f.extend_from_slice(&[0x45, 0xc0]);
        f.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&self.bytes(2));
        f.extend_from_slice(&frags.to_be_bytes());
        f.extend_from_slice(&[*self.r.pick(&[64, 64, 1]), 1, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&icmp);
    }

    /// An outside host's address most of the time, else any of the pool
    /// (inside ones, martians).
    fn outside_src(&mut self) -> [u8; 4] {
        if self.r.chance(70) {
            *self.r.pick(&[
                [203, 0, 113, 1],
                [203, 0, 113, 77],
                [198, 51, 100, 7],
                [8, 8, 8, 8],
            ])
        } else {
            *self.r.pick(&self.v4)
        }
    }

    /// The ethertype and the ARP header up to the operation: Ethernet/IPv4
    /// (one field sometimes replaced), an operation picked from `opers`.
    fn arp_head(&mut self, f: &mut Vec<u8>, opers: &[u16]) {
        f.extend_from_slice(&0x0806u16.to_be_bytes());
        let mut h = [0u8, 1, 8, 0, 6, 4];
        if self.r.chance(8) {
            let i = self.r.below(6);
            h[i] = self.r.byte();
        }
        f.extend_from_slice(&h);
        let oper: u16 = *self.r.pick(opers);
        f.extend_from_slice(&oper.to_be_bytes());
    }

    /// ARP on the uplink: requests and replies for the datapath's
    /// addresses and others.
    fn outside_arp(&mut self, src: [u8; 6], f: &mut Vec<u8>) {
        self.arp_head(f, &[1, 1, 1, 2, 2, 3]);
        let spa = self.outside_src();
        let tpa = if self.r.chance(70) {
            self.r.pick(&self.ours).0
        } else if self.r.chance(20) {
            spa
        } else {
            *self.r.pick(&self.v4)
        };
        let tha = *self.r.pick(&[[0u8; 6], [0xff; 6], UPSTREAM_MAC]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&tha);
        f.extend_from_slice(&tpa);
    }

    fn mutate(&mut self, f: &mut Vec<u8>) {
        if self.r.chance(20) {
            let n = self.r.below(f.len() + 1);
            f.truncate(n);
        }
        if self.r.chance(15) && !f.is_empty() {
            for _ in 0..1 + self.r.below(4) {
                let i = self.r.below(f.len());
                f[i] ^= 1 + self.r.below(255) as u8;
            }
        }
        if self.r.chance(10) {
            let n = 1 + self.r.below(30);
            let pad = self.bytes(n);
            f.extend_from_slice(&pad);
        } else if self.r.chance(15) && f.len() < 60 {
            f.resize(60, 0);
        }
    }

    /// Ethertype and ARP body.
    fn arp(&mut self, from: usize, src: [u8; 6], f: &mut Vec<u8>) {
        self.arp_head(f, &[1, 1, 1, 2, 2, 3, 0]);
        let sha = if self.r.chance(85) {
            src
        } else {
            self.src_mac(from)
        };
        let spa = if self.r.chance(12) {
            [0; 4]
        } else {
            self.src_v4(from)
        };
        let tpa = if self.r.chance(20) {
            spa
        } else {
            *self.r.pick(&self.v4)
        };
        let tha = *self.r.pick(&[[0u8; 6], [0xff; 6]]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&tha);
        f.extend_from_slice(&tpa);
    }

    /// Ethertype, IPv4 header (options, fragments, odd lengths) and
    /// payload, from one of the port's addresses most of the time.
    fn ipv4(&mut self, from: usize, f: &mut Vec<u8>) {
        let src = if self.r.chance(10) {
            [0; 4]
        } else {
            self.src_v4(from)
        };
        let dst = *self.r.pick(&self.v4);
        self.ipv4_between(src, dst, f);
    }

    fn ipv4_between(&mut self, src: [u8; 4], dst: [u8; 4], f: &mut Vec<u8>) {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let proto: u8 = *self.r.pick(&[6, 6, 17, 17, 1, 1, 47, 132, 58]);
        let words: usize = match self.r.below(100) {
            0..80 => 5,
            80..95 => 6 + self.r.below(10),
            _ => self.r.below(5),
        };
        let frags: u16 = match self.r.below(10) {
            0..7 => 0x4000 * self.r.below(2) as u16,
            7 => 0x2000,
            8 => 1 + self.r.below(0x1fff) as u16,
            _ => 0x2000 | (1 + self.r.below(0x1fff) as u16),
        };
        let l4 = self.l4(proto, false);
        let header_len = words.max(5) * 4;
        let mut total = (header_len + l4.len()) as u16;
        if self.r.chance(8) {
            total = self.r.next_u64() as u16 % 200;
        }
        let version = if self.r.chance(97) {
            4
        } else {
            self.r.byte() >> 4
        };
        f.push(version << 4 | words as u8);
        f.push(0);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&self.bytes(2));
        f.extend_from_slice(&frags.to_be_bytes());
        f.push(*self.r.pick(&[64, 64, 64, 1, 1, 2, 0]));
        f.push(proto);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let opts = self.bytes(header_len - 20);
        f.extend_from_slice(&opts);
        f.extend_from_slice(&l4);
    }

    /// Ethertype, IPv6 header, extension headers and payload.
    fn ipv6(&mut self, from: usize, f: &mut Vec<u8>) {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        let proto: u8 = *self.r.pick(&[6, 17, 58, 58, 58, 59, 47]);
        let mut chain = Vec::new();
        if self.r.chance(35) {
            for _ in 0..1 + self.r.below(8) {
                chain.push(*self.r.pick(&[0u8, 43, 60, 44, 44, 51]));
            }
        }
        let mut ext = Vec::new();
        for (i, &h) in chain.iter().enumerate() {
            let next = chain.get(i + 1).copied().unwrap_or(proto);
            match h {
                44 => {
                    let field: u16 = match self.r.below(5) {
                        0 => 0,
                        1 => 1,
                        2 => (1 + self.r.below(0x1fff) as u16) << 3,
                        3 => ((1 + self.r.below(0x1fff) as u16) << 3) | 1,
                        _ => self.r.next_u64() as u16,
                    };
                    ext.extend_from_slice(&[next, 0]);
                    ext.extend_from_slice(&field.to_be_bytes());
                    ext.extend_from_slice(&self.bytes(4));
                }
                51 => {
                    let len = 1 + self.r.below(4);
                    ext.extend_from_slice(&[next, len as u8]);
                    ext.extend_from_slice(&self.bytes((len + 2) * 4 - 2));
                }
                _ => {
                    let len = self.r.below(2);
                    ext.extend_from_slice(&[next, len as u8]);
                    ext.extend_from_slice(&self.bytes((len + 1) * 8 - 2));
                }
            }
        }
        let first = chain.first().copied().unwrap_or(proto);
        let src = if self.r.chance(8) {
            [0; 16]
        } else {
            self.src_v6(from)
        };
        let dst = *self.r.pick(&self.v6);
        let l4 = self.l4(proto, true);
        let mut payload = (ext.len() + l4.len()) as u16;
        if self.r.chance(8) {
            payload = self.r.next_u64() as u16 % 200;
        }
        let version = if self.r.chance(97) {
            0x60
        } else {
            self.r.byte() & 0xf0
        };
        f.extend_from_slice(&[version, 0, 0, 0]);
        f.extend_from_slice(&payload.to_be_bytes());
        f.push(first);
        f.push(*self.r.pick(&[255, 255, 64, 1, 1, 2, 0]));
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&ext);
        f.extend_from_slice(&l4);
    }

    /// A transport header and a little payload.
    fn l4(&mut self, proto: u8, v6: bool) -> Vec<u8> {
        let mut l = Vec::new();
        match proto {
            6 => {
                let any = self.r.next_u64() as u16;
                let sport: u16 = *self.r.pick(&[22, 80, 443, 40000, any]);
                let dport: u16 = *self.r.pick(&[22, 80, 443, 8080, 5000, any.rotate_left(3)]);
                l.extend_from_slice(&sport.to_be_bytes());
                l.extend_from_slice(&dport.to_be_bytes());
                l.extend_from_slice(&self.bytes(8));
                l.push(0x50);
                let any = self.r.byte();
                l.push(
                    *self
                        .r
                        .pick(&[0x02, 0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0x03, any]),
                );
                l.extend_from_slice(&self.bytes(6));
            }
            17 => {
                let ports: [u16; 10] = [
                    67,
                    68,
                    53,
                    546,
                    547,
                    5000,
                    5005,
                    5010,
                    5011,
                    self.r.next_u64() as u16,
                ];
                let sport = *self.r.pick(&ports);
                let dport = *self.r.pick(&ports);
                l.extend_from_slice(&sport.to_be_bytes());
                l.extend_from_slice(&dport.to_be_bytes());
                l.extend_from_slice(&[0, 8, 0, 0]);
            }
            1 | 58 if (proto == 58) == v6 => {
                let types: &[u8] = if v6 {
                    &[
                        128, 129, 1, 3, 133, 134, 135, 135, 136, 136, 137, 130, 131, 143, 200,
                    ]
                } else {
                    &[8, 8, 0, 3, 11, 5, 13, 42]
                };
                let ty = *self.r.pick(types);
                let code = *self.r.pick(&[0u8, 0, 1, 3]);
                l.extend_from_slice(&[ty, code, 0, 0]);
                match ty {
                    133 => {
                        l.extend_from_slice(&[0; 4]);
                        self.nd_options(&mut l);
                    }
                    135 | 136 => {
                        l.extend_from_slice(&[if ty == 136 { 0x60 } else { 0 }, 0, 0, 0]);
                        let target = if self.r.chance(60) {
                            self.src_v6(0)
                        } else {
                            *self.r.pick(&self.v6)
                        };
                        l.extend_from_slice(&target);
                        self.nd_options(&mut l);
                    }
                    3 | 11 | 1 => {
                        // An error quoting the start of a packet.
                        l.extend_from_slice(&[0; 4]);
                        let n = self.r.below(48);
                        l.extend_from_slice(&self.bytes(n));
                    }
                    _ => {
                        let n = 4 + self.r.below(8);
                        l.extend_from_slice(&self.bytes(n));
                    }
                }
            }
            _ => {
                let n = self.r.below(24);
                l.extend_from_slice(&self.bytes(n));
            }
        }
        // Now and then a payload that does not fit a small MTU.
        if self.r.chance(20) {
            let n = 40 + self.r.below(80);
            l.extend_from_slice(&self.bytes(n));
        }
        l
    }

    fn nd_options(&mut self, l: &mut Vec<u8>) {
        for _ in 0..self.r.below(4) {
            let kind: u8 = *self.r.pick(&[1, 1, 2, 2, 3, 14]);
            let units: u8 = *self.r.pick(&[1, 1, 1, 0, 2]);
            l.push(kind);
            l.push(units);
            let mac = if self.r.chance(70) {
                let from = self.r.below(self.t.ports.len());
                self.src_mac(from)
            } else {
                *self.r.pick(&self.macs)
            };
            l.extend_from_slice(&mac);
            if units > 1 {
                l.extend_from_slice(&self.bytes(usize::from(units - 1) * 8));
            }
        }
    }
}

/// A verdict in words both sides can produce, for comparing and printing.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
enum Seen {
    Dropped(String),
    /// Dropped, and an ICMP error (type, code) sent back.
    Errored(String, u8, u8),
    Answered,
    /// (receiving port, None if delivered or its drop reason), by port id.
    Delivered(Vec<(String, Option<String>)>),
    /// Sent out of the uplink: MACs, addresses and TTL as it leaves, and
    /// its source port (or echo identifier).
    Left(String, PortSeen),
    /// Dropped `ext_resolving`, and the ARP request sent in its place.
    Resolving(Option<String>),
    /// From the uplink: left to the host.
    Passed,
    /// From the uplink: an ARP reply the datapath takes for itself.
    Consumed,
    Other(String),
}

/// A leaving packet's source port (TCP, UDP) or echo identifier.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum PortSeen {
    /// This one (None: the packet has none).
    Is(Option<u16>),
    /// One SNAT chose: the model does not say which, only from where.
    Chosen,
}

/// An ICMP echo request's type.
const ICMP_ECHO_TYPE: u8 = 8;

/// Whether a frame from the uplink is an ICMP error to the datapath's
/// addresses (for the run's coverage: their outcomes are counted apart).
fn is_icmp_error(frame: &[u8]) -> bool {
    frame.len() > 34
        && frame[12..14] == [8, 0]
        && frame[23] == 1
        && u16::from_be_bytes([frame[20], frame[21]]) & 0x1fff == 0
        && frame
            .get(14 + usize::from(frame[14] & 0x0f) * 4)
            .is_some_and(|t| matches!(t, 3 | 11 | 12))
}

/// Whether what the datapath did is what the model expects.
fn agree(want: &Seen, got: &Seen) -> bool {
    match (want, got) {
        (Seen::Left(a, PortSeen::Chosen), Seen::Left(b, PortSeen::Is(Some(port)))) => {
            a == b && *port >= common::NAT_PORT_MIN
        }
        _ => want == got,
    }
}

/// The source port (TCP, UDP) or echo request identifier of an IPv4
/// frame, where it has one in the frame.
fn port_of(frame: &[u8]) -> Option<u16> {
    let b = |i: usize| frame.get(i).copied();
    let l4 = 14 + usize::from(b(14)? & 0x0f) * 4;
    if u16::from_be_bytes([b(20)?, b(21)?]) & 0x1fff != 0 {
        return None;
    }
    let at = match b(23)? {
        6 | 17 => l4,
        1 if b(l4)? == 8 => l4 + 4,
        _ => return None,
    };
    Some(u16::from_be_bytes([b(at)?, b(at + 1)?]))
}

/// A leaving IPv4 frame in words: MACs, addresses, TTL.
fn leaving(frame: &[u8]) -> String {
    let mac = |i: usize| MacAddr(frame[i..i + 6].try_into().expect("6"));
    let ip = |i: usize| std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&frame[i..i + 4]).expect("4"));
    if frame.len() < 34 {
        return format!("{} bytes", frame.len());
    }
    format!(
        "{} > {} {} > {} ttl {}",
        mac(6),
        mac(0),
        ip(26),
        ip(30),
        frame[22]
    )
}

/// An ARP request in words: MACs, who has what, tell whom.
fn asking(frame: &[u8]) -> String {
    let mac = |i: usize| MacAddr(frame[i..i + 6].try_into().expect("6"));
    let ip = |i: usize| std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&frame[i..i + 4]).expect("4"));
    if frame.len() < 42 || frame[12..14] != [8, 6] || frame[20..22] != [0, 1] {
        return format!("not an ARP request: {frame:02x?}");
    }
    format!(
        "{} > {} who-has {} tell {} ({})",
        mac(6),
        mac(0),
        ip(38),
        ip(28),
        mac(22)
    )
}

fn expected(model: &Model, sent: Sent, frame: &[u8]) -> Seen {
    match sent {
        Sent::Hairpin(then) => expected(model, *then, frame),
        Sent::Dropped(r) => Seen::Dropped(r.name().into()),
        Sent::Errored(r, ty, code) => Seen::Errored(r.name().into(), ty, code),
        Sent::Answered => Seen::Answered,
        Sent::Delivered(to) => {
            let mut v: Vec<(String, Option<String>)> = to
                .into_iter()
                .map(|(p, v)| {
                    (
                        model.topology().ports[p].id.clone(),
                        v.err().map(|r| r.name().to_string()),
                    )
                })
                .collect();
            v.sort();
            Seen::Delivered(v)
        }
        Sent::Left(l) => {
            let desc = format!(
                "{} > {} {} > {} ttl {}",
                MacAddr(l.src_mac),
                MacAddr(l.dst_mac),
                l.src,
                l.dst,
                l.ttl
            );
            let port = match l.port {
                Port::Kept => PortSeen::Is(port_of(frame)),
                Port::Chosen => PortSeen::Chosen,
            };
            Seen::Left(desc, port)
        }
        Sent::DroppedLeaving(r) => Seen::Dropped(r.name().into()),
        Sent::Passed => Seen::Passed,
        Sent::Consumed => Seen::Consumed,
        Sent::Resolving(a) => Seen::Resolving(a.map(|a| {
            format!(
                "{} > {} who-has {} tell {} ({})",
                MacAddr(a.mac),
                MacAddr([0xff; 6]),
                a.who_has,
                a.tell,
                MacAddr(a.mac)
            )
        })),
    }
}

fn observed(t: Result<Trace>) -> Seen {
    let t = match t {
        Ok(t) => t,
        Err(e) => return Seen::Other(format!("error: {e:#}")),
    };
    let out = &t.frames.1;
    if t.verdict == "dropped" && t.reason.as_deref() == Some("ext_resolving") {
        return Seen::Resolving(t.external.is_some().then(|| asking(out)));
    }
    if t.verdict == "sent out of the uplink" {
        return Seen::Left(leaving(out), PortSeen::Is(port_of(out)));
    }
    if t.verdict == "dropped" {
        let reason = t.reason.unwrap_or_default();
        return match t.reply.as_deref().and_then(icmp_type_code) {
            Some((ty, code)) => Seen::Errored(reason, ty, code),
            None => Seen::Dropped(reason),
        };
    }
    if t.verdict == "answered" {
        return Seen::Answered;
    }
    if t.verdict == "passed to the host" {
        return Seen::Passed;
    }
    if t.verdict == "consumed" {
        return Seen::Consumed;
    }
    if t.verdict.starts_with("forwarded") || t.verdict.starts_with("flooded") {
        let mut v: Vec<(String, Option<String>)> = t
            .deliveries
            .into_iter()
            .map(|d| {
                let r = (d.verdict != "delivered").then(|| d.reason.unwrap_or("?".into()));
                (d.port, r)
            })
            .collect();
        v.sort();
        return Seen::Delivered(v);
    }
    Seen::Other(t.verdict)
}

/// The type and code of an ICMP message as a trace summarizes it ("...
/// type 11 code 0").
fn icmp_type_code(summary: &str) -> Option<(u8, u8)> {
    let (_, rest) = summary.split_once(" type ")?;
    let (ty, code) = rest.split_once(" code ")?;
    Some((ty.trim().parse().ok()?, code.trim().parse().ok()?))
}

/// The outcome of a packet routed toward the outside, named for the
/// run's coverage: how it left, or where it was dropped.
fn outside_key(t: &Topology, sent: &Sent) -> Option<String> {
    Some(match sent {
        Sent::Left(l) if t.floating_ips.iter().any(|f| f.address == l.src) => {
            "outside: left as a floating IP".into()
        }
        Sent::Left(l) if l.port == Port::Chosen => "outside: left by SNAT".into(),
        Sent::Left(_) => "outside: left untranslated".into(),
        Sent::Resolving(Some(_)) => "outside: resolving, ARP request sent".into(),
        Sent::Resolving(None) => "outside: resolving, too short to ask".into(),
        Sent::DroppedLeaving(r) => format!("outside: dropped {}", r.name()),
        Sent::Hairpin(then) => match &**then {
            Sent::Delivered(to) if to.iter().all(|(_, v)| v.is_ok()) => {
                "outside: hairpin, delivered".into()
            }
            Sent::Delivered(_) => "outside: hairpin, refused by a receiver".into(),
            Sent::Dropped(r) => format!("outside: hairpin, dropped {}", r.name()),
            Sent::Answered => "outside: hairpin, answered".into(),
            Sent::Errored(r, ty, code) => {
                format!(
                    "outside: hairpin, errored {} type {ty} code {code}",
                    r.name()
                )
            }
            other => format!("outside: hairpin, {other:?}"),
        },
        _ => return None,
    })
}

struct Report {
    packets: u64,
    mismatches: u64,
    cases: String,
    /// How often each outcome occurred (coverage of the run).
    outcomes: BTreeMap<String, u64>,
}

/// The external network the uplink carries.
fn public(t: &Topology) -> Result<usize> {
    t.networks
        .iter()
        .position(|n| n.physical_network.as_deref() == Some(PHYSNET))
        .context("no external network on the uplink's physical network")
}

/// Teaches the datapath the upstream router's MAC, as its ARP reply to the
/// gateway would (a frame on the uplink that is not traced: it is
/// learned), and returns the model that knows it too.
fn teach_upstream(dir: &Path, uplink: &PortView, topology: Topology) -> Result<Model> {
    let upstream: std::net::Ipv4Addr = UPSTREAM.parse()?;
    let gateway_mac: MacAddr = GATEWAY_MAC.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reply = lab::pkt::arp(
        UPSTREAM_MAC,
        ARPOP_REPLY,
        UPSTREAM_MAC,
        upstream.octets(),
        lab::pkt::v4(GATEWAY),
    );
    reply[0..6].copy_from_slice(&gateway_mac.0);
    reply[32..38].copy_from_slice(&gateway_mac.0);
    let path = dir.join("programs").join(PROG_FROM_UPLINK);
    let prog = Xdp::from_pin(&path, XdpAttachType::Interface)?;
    let out = trace::run_xdp(&prog, &reply, 0, uplink.ifindex, 1)?;
    anyhow::ensure!(
        out.action == 1,
        "the ARP reply to the gateway was not consumed"
    );
    let public = public(&topology)?;
    Ok(Model::new(topology)
        .uplink(PHYSNET)
        .neighbour(public, upstream, UPSTREAM_MAC))
}

/// The outcome a run counts, for its coverage: frames from the uplink
/// apart, packets routed toward the outside by how they leave.
fn outcome(t: &Topology, outside: Option<&[u8]>, sent: &Sent, want: &Seen) -> String {
    if let Some(k) = outside_key(t, sent) {
        return k;
    }
    let key = match want {
        Seen::Dropped(r) => format!("dropped {r}"),
        Seen::Errored(r, ty, code) => format!("errored {r} type {ty} code {code}"),
        Seen::Answered => "answered".into(),
        Seen::Delivered(v) => {
            let refused: Vec<&str> = v.iter().filter_map(|(_, r)| r.as_deref()).collect();
            if refused.is_empty() {
                "delivered".into()
            } else {
                format!("refused by a receiver: {}", refused.join(","))
            }
        }
        Seen::Passed => "passed to the host".into(),
        Seen::Consumed => "consumed".into(),
        Seen::Left(..) | Seen::Resolving(_) => unreachable!("keyed as outside"),
        Seen::Other(o) => o.clone(),
    };
    match outside {
        Some(f) if is_icmp_error(f) => format!("uplink error: {key}"),
        Some(_) => format!("uplink: {key}"),
        None => key,
    }
}

fn run(dir: &Path, uplink: &str, topology: Topology, seed: u64, packets: u64) -> Result<Report> {
    let probe = Probe::open(dir)?;
    let ports = show::ports(dir)?;
    let views: Vec<_> = topology
        .ports
        .iter()
        .map(|p| ports.find(&p.id).cloned())
        .collect::<Result<_>>()?;
    let outside = trace::uplink_source(dir, ports.active_slot, uplink)?
        .with_context(|| format!("{uplink} is no uplink of the datapath"))?;
    let model = teach_upstream(dir, &outside, topology.clone())?;
    let public = public(&topology)?;
    let mut g = Gen::new(seed, &topology);
    let mut report = Report {
        packets,
        mismatches: 0,
        cases: String::new(),
        outcomes: BTreeMap::new(),
    };
    for i in 0..packets {
        // A port, or (None) the outside through the uplink.
        let from = (!g.r.chance(15)).then(|| g.r.below(topology.ports.len()));
        let (frame, sent, view) = match from {
            Some(p) => {
                let frame = g.frame(p);
                let sent = model.send(p, &frame);
                (frame, sent, &views[p])
            }
            None => {
                let frame = g.outside_frame();
                let sent = model.arrive(public, &frame);
                (frame, sent, &outside)
            }
        };
        let want = expected(&model, sent.clone(), &frame);
        let got = observed(probe.run(&ports, view, &frame));
        let outside = from.is_none().then_some(frame.as_slice());
        let key = outcome(&topology, outside, &sent, &want);
        *report.outcomes.entry(key).or_default() += 1;
        if !agree(&want, &got) {
            report.mismatches += 1;
            if report.mismatches <= 20 {
                let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(
                    report.cases,
                    "seed {seed} packet {i} from {}: frame {hex}\n  model:    {want:?}\n  datapath: {got:?}",
                    view.id
                );
            }
        }
    }
    Ok(report)
}

#[test]
fn every_verdict_matches_the_model() {
    require_root!();
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(1)
        });
    let packets: u64 = std::env::var("FUZZ_PACKETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    eprintln!("packet fuzz: seed {seed} (FUZZ_SEED={seed} replays it), {packets} packets");
    let mut v = Verdicts::on_veths_with_uplinks(&config(), &[PHYSNET]).unwrap();
    let topology = v.topology.clone();
    let uplink = v.uplink(PHYSNET).expect("the uplink").to_string();
    let started = std::time::Instant::now();
    let report = v
        .inside(move |dir| run(dir, &uplink, topology, seed, packets))
        .unwrap();
    eprintln!(
        "{} packets in {:.1} s; outcomes:",
        report.packets,
        started.elapsed().as_secs_f64()
    );
    for (k, n) in &report.outcomes {
        eprintln!("  {n:>9}  {k}");
    }
    assert_eq!(
        report.mismatches, 0,
        "{} of {} packets: the datapath disagrees with the model (first 20 below)\n{}",
        report.mismatches, report.packets, report.cases
    );
    // The run must reach every port-security reason and the other
    // outcomes, or it proves little.
    for must in [
        "dropped malformed",
        "dropped src_mac",
        "dropped ethertype",
        "dropped ipv4_src",
        "dropped ipv6_src",
        "dropped arp_sha",
        "dropped arp_spa",
        "dropped dhcp_server",
        "dropped dhcpv6_server",
        "dropped router_advert",
        "dropped nd_target",
        "dropped nd_lladdr",
        "dropped ip_fragment",
        "dropped hairpin",
        "dropped no_route",
        "dropped ttl_exceeded",
        "dropped to_router",
        "dropped mtu_exceeded",
        "errored no_route type 3 code 0",
        "errored no_route type 3 code 1",
        "errored no_route type 1 code 3",
        "errored ttl_exceeded type 11 code 0",
        "errored ttl_exceeded type 3 code 0",
        "errored mtu_exceeded type 3 code 4",
        "errored to_router type 3 code 3",
        "errored to_router type 1 code 4",
        "answered",
        "delivered",
        // Toward the outside: every check of the gateway, both ways of
        // leaving, and the next hop's resolution.
        "outside: dropped sg_egress",
        "outside: dropped no_route",
        "outside: dropped no_uplink",
        // To the router's own floating IPs from inside, and its gateway's
        // address (no hairpinned connection in a traced run).
        "outside: hairpin, delivered",
        "outside: hairpin, refused by a receiver",
        "outside: hairpin, answered",
        "outside: hairpin, errored to_router type 3 code 3",
        "outside: hairpin, dropped to_router",
        "outside: dropped no_nat",
        "outside: dropped ip_fragment",
        "outside: left as a floating IP",
        "outside: left by SNAT",
        "outside: left untranslated",
        "outside: resolving, ARP request sent",
        // From the uplink.
        "uplink: passed to the host",
        "uplink: answered",
        "uplink: consumed",
        "uplink: dropped uplink_src",
        "uplink: dropped no_nat",
        "uplink: dropped ip_fragment",
        "uplink: dropped ttl_exceeded",
        "uplink: delivered",
        "uplink: refused by a receiver: sg_ingress",
        // ICMP errors from the uplink: about a floating IP's packet,
        // delivered or refused; the rest dropped.
        "uplink error: delivered",
        "uplink error: refused by a receiver: ct_invalid",
        "uplink error: dropped no_nat",
        "uplink error: dropped malformed",
        "uplink error: dropped ip_fragment",
    ] {
        assert!(
            report.outcomes.contains_key(must),
            "no packet of the run had the outcome {must:?}: the generator misses it"
        );
    }
    assert!(
        report.outcomes.keys().any(|k| k.contains("sg_ingress"))
            && report.outcomes.keys().any(|k| k.contains("sg_egress"))
            && report.outcomes.keys().any(|k| k.contains("ct_invalid"))
            && report.outcomes.keys().any(|k| k.contains("ingress_mac")),
        "the run reached no security-group or MAC-filter refusal: {:?}",
        report.outcomes.keys().collect::<Vec<_>>()
    );
}

//! IPv6 router advertisements as Neutron has them sent: for a router
//! interface with IPv6 subnets, what the L3 agent's radvd announces
//! (`neutron/agent/linux/ra.py`, with the agent's default intervals of 30
//! to 100 seconds and radvd's defaults for the rest):
//!
//! - the M flag if a subnet's `ipv6_ra_mode` is `dhcpv6-stateful`, the O
//!   flag if one is `dhcpv6-stateless`;
//! - router lifetime 300 s (3 × MaxRtrAdvInterval), hop limit 64,
//!   reachable time and retransmission timer unspecified;
//! - one prefix information option per subnet with an `ipv6_ra_mode`:
//!   on-link, autonomous for `slaac` and `dhcpv6-stateless` (not for
//!   `dhcpv6-stateful`), valid 86400 s, preferred 14400 s; a subnet
//!   without a mode is not announced (the router is still a default
//!   router: radvd runs for every router port with an IPv6 subnet);
//! - the DNS servers of the `slaac` subnets (at most 3, lifetime 100 s);
//! - the network's MTU if it is at least 1280;
//! - the router's MAC as source link-layer address.
//!
//! The message (ICMPv6, checksum left zero) is compiled once; the datapath
//! answers router solicitations with it and the agent sends it
//! periodically, each putting it in a frame from the router's link-local
//! address ([`frame`]).

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use crate::{
    neutron::MacAddr,
    objects::{Ipv6Mode, Subnet},
};

/// Seconds between unsolicited advertisements (Neutron's
/// `min_rtr_adv_interval` and `max_rtr_adv_interval` defaults).
pub const MIN_INTERVAL: u32 = 30;
pub const MAX_INTERVAL: u32 = 100;
/// radvd's default router lifetime: 3 × MaxRtrAdvInterval.
pub const ROUTER_LIFETIME: u16 = 3 * MAX_INTERVAL as u16;
/// radvd's default prefix lifetimes.
pub const VALID_LIFETIME: u32 = 86_400;
pub const PREFERRED_LIFETIME: u32 = 14_400;
/// Neutron announces at most this many DNS servers.
pub const MAX_RDNSS: usize = 3;
/// radvd's default RDNSS lifetime: MaxRtrAdvInterval.
pub const RDNSS_LIFETIME: u32 = MAX_INTERVAL;

const ICMPV6_ROUTER_ADVERT: u8 = 134;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const FLAG_MANAGED: u8 = 0x80;
const FLAG_OTHER: u8 = 0x40;
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;

/// The advertisement of a router interface with MAC `mac` on a network
/// with MTU `mtu`, for its IPv6 `subnets` (in the order of its fixed IPs).
pub fn message(mac: MacAddr, mtu: u32, subnets: &[&Subnet]) -> Vec<u8> {
    let modes: Vec<Ipv6Mode> = subnets.iter().filter_map(|s| s.ipv6_ra_mode).collect();
    let mut flags = 0;
    if modes.contains(&Ipv6Mode::Dhcpv6Stateful) {
        flags |= FLAG_MANAGED;
    }
    if modes.contains(&Ipv6Mode::Dhcpv6Stateless) {
        flags |= FLAG_OTHER;
    }
    let mut m = vec![ICMPV6_ROUTER_ADVERT, 0, 0, 0, 64, flags];
    m.extend_from_slice(&ROUTER_LIFETIME.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    // radvd's order: prefixes, RDNSS, MTU, source link-layer address.
    let announced = subnets.iter().filter(|s| s.ipv6_ra_mode.is_some());
    // Automatic prefixes first, then stateful ones, as Neutron lists them.
    let (auto, stateful): (Vec<&&Subnet>, Vec<&&Subnet>) =
        announced.partition(|s| s.ipv6_ra_mode.is_some_and(Ipv6Mode::automatic));
    for (s, autonomous) in auto
        .iter()
        .map(|s| (s, true))
        .chain(stateful.iter().map(|s| (s, false)))
    {
        prefix(&mut m, s.cidr, autonomous);
    }
    let dns: Vec<IpAddr> = subnets
        .iter()
        .filter(|s| s.ipv6_ra_mode == Some(Ipv6Mode::Slaac))
        .flat_map(|s| s.dns_nameservers.iter().copied())
        .take(MAX_RDNSS)
        .collect();
    if !dns.is_empty() {
        m.extend_from_slice(&[OPT_RDNSS, 1 + 2 * dns.len() as u8, 0, 0]);
        m.extend_from_slice(&RDNSS_LIFETIME.to_be_bytes());
        for d in dns {
            if let IpAddr::V6(a) = d {
                m.extend_from_slice(&a.octets());
            }
        }
    }
    if mtu >= crate::objects::IPV6_MIN_MTU {
        m.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        m.extend_from_slice(&mtu.to_be_bytes());
    }
    m.extend_from_slice(&[OPT_SOURCE_LLADDR, 1]);
    m.extend_from_slice(&mac.octets());
    m
}

fn prefix(m: &mut Vec<u8>, cidr: IpNet, autonomous: bool) {
    let IpNet::V6(net) = cidr else {
        return;
    };
    let flags = PREFIX_ON_LINK | if autonomous { PREFIX_AUTONOMOUS } else { 0 };
    m.extend_from_slice(&[OPT_PREFIX_INFO, 4, net.prefix_len(), flags]);
    m.extend_from_slice(&VALID_LIFETIME.to_be_bytes());
    m.extend_from_slice(&PREFERRED_LIFETIME.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&net.network().octets());
}

/// An advertisement in a frame from the router (MAC `mac`, its link-local
/// address) to `dst` (`dst_mac`), checksum filled in.
pub fn frame(mac: MacAddr, message: &[u8], dst: Ipv6Addr, dst_mac: [u8; 6]) -> Vec<u8> {
    let src = mac.ipv6_link_local();
    let mut f = Vec::with_capacity(54 + message.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&mac.octets());
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(message.len() as u16).to_be_bytes());
    // Hop limit 255: hosts ignore router discovery messages with any other.
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let start = f.len();
    f.extend_from_slice(message);
    let sum = checksum(&src, &dst, &f[start..]);
    f[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// All nodes: where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The ICMPv6 checksum of `message` between `src` and `dst` (RFC 4443).
pub fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(cidr: &str, mode: Option<Ipv6Mode>, dns: &[&str]) -> Subnet {
        Subnet {
            id: cidr.into(),
            name: String::new(),
            network_id: "n".into(),
            cidr: cidr.parse().unwrap(),
            gateway_ip: None,
            ipv6_ra_mode: mode,
            ipv6_address_mode: mode,
            enable_dhcp: true,
            dns_nameservers: dns.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn as_radvd_would_send_it() {
        let mac: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let slaac = subnet(
            "fd00:1::/64",
            Some(Ipv6Mode::Slaac),
            &["fd00::53", "fd00::54"],
        );
        let stateful = subnet("fd00:2::/64", Some(Ipv6Mode::Dhcpv6Stateful), &["fd00::99"]);
        let none = subnet("fd00:3::/64", None, &[]);
        let m = message(mac, 1450, &[&stateful, &slaac, &none]);
        assert_eq!(
            &m[..8],
            &[134, 0, 0, 0, 64, 0x80, 0x01, 0x2c],
            "M flag, lifetime 300"
        );
        // Automatic prefix first (A set), then the stateful one (A clear).
        assert_eq!(&m[16..20], &[3, 4, 64, 0xc0]);
        assert_eq!(
            &m[32..48],
            &"fd00:1::".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&m[48..52], &[3, 4, 64, 0x80]);
        // The slaac subnet's DNS servers only.
        assert_eq!(&m[80..84], &[25, 5, 0, 0]);
        assert_eq!(&m[84..88], &100u32.to_be_bytes());
        assert_eq!(&m[120..128], &[5, 1, 0, 0, 0, 0, 0x05, 0xaa], "MTU 1450");
        assert_eq!(&m[128..], &[1, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]);
        // Without modes: no prefix, no flags; a small MTU is not announced.
        let m = message(mac, 1000, &[&none]);
        assert_eq!(m.len(), 16 + 8);
        assert_eq!(m[5], 0);
    }

    #[test]
    fn frames_carry_a_valid_checksum() {
        let mac: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let m = message(mac, 0, &[&subnet("fd00::/64", Some(Ipv6Mode::Slaac), &[])]);
        let f = frame(mac, &m, ALL_NODES, ALL_NODES_MAC);
        let (src, dst) = (mac.ipv6_link_local(), ALL_NODES);
        assert_eq!(checksum(&src, &dst, &f[54..]), 0);
        assert_eq!(f[21], 255);
    }
}

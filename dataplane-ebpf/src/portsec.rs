//! Port security: what a VM may send. A frame passes only if its Ethernet
//! source is the port's MAC or a pair's MAC and its network-layer source
//! (IPv4, ARP sender, IPv6, ND target and link-layer options) is a fixed
//! (ip, mac) of the port or one of its allowed address pairs. VMs may not act
//! as DHCP servers or IPv6 routers. Only IPv4, ARP and IPv6 frames pass.

use aya_ebpf::maps::lpm_trie::Key;
use common::{
    DropReason, PORT_ADDR_PREFIX_BITS, PortAddrV4Key, PortAddrV6Key, PortInfo, PortMacKey,
    proto::{
        DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPV6_SERVER_PORT, ICMPV6_MLD_DONE, ICMPV6_MLD_QUERY,
        ICMPV6_MLD_REPORT, ICMPV6_MLD2_REPORT, ICMPV6_NEIGH_ADVERT, ICMPV6_NEIGH_SOLICIT,
        ICMPV6_REDIRECT, ICMPV6_ROUTER_ADVERT, ICMPV6_ROUTER_SOLICIT, IPPROTO_ICMPV6, IPPROTO_UDP,
        ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR,
    },
};

use crate::{
    maps::{PORT_ADDRS_V4, PORT_ADDRS_V6, PORT_MACS},
    packet::Packet,
    parse::{self, Arp, Eth, Frag, IPV6_UNSPECIFIED, Ipv4, Ipv6},
};
/// Legitimate NS/NA/RS carry one or two options; more than this is dropped
/// rather than left unchecked.
const MAX_ND_OPTIONS: usize = 8;

#[inline(always)]
pub fn mac_allowed(slot: u32, port: u32, mac: [u8; 6]) -> bool {
    mac_flags(slot, port, mac).is_some()
}

/// The flags (ADDR_F_*) of a MAC the port may use, if it may.
#[inline(always)]
pub fn mac_flags(slot: u32, port: u32, mac: [u8; 6]) -> Option<u32> {
    let key = PortMacKey {
        slot,
        port,
        mac,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    unsafe { PORT_MACS.get(key) }.map(|m| m.flags)
}

/// Whether (mac, addr) is a fixed address or a pair of the port.
#[inline(always)]
pub fn v4_allowed(slot: u32, port: u32, mac: [u8; 6], addr: [u8; 4]) -> bool {
    v4_flags(slot, port, mac, addr).is_some()
}

#[inline(always)]
pub fn v6_allowed(slot: u32, port: u32, mac: [u8; 6], addr: [u8; 16]) -> bool {
    v6_flags(slot, port, mac, addr).is_some()
}

/// The flags (ADDR_F_*) of the most specific entry binding (mac, addr) to
/// the port, if any.
#[inline(always)]
pub fn v4_flags(slot: u32, port: u32, mac: [u8; 6], addr: [u8; 4]) -> Option<u32> {
    let key = Key::new(
        PORT_ADDR_PREFIX_BITS + 32,
        PortAddrV4Key {
            slot,
            port,
            mac,
            addr,
            _pad: [0; 2],
        },
    );
    PORT_ADDRS_V4.get(&key).map(|a| a.flags)
}

#[inline(always)]
pub fn v6_flags(slot: u32, port: u32, mac: [u8; 6], addr: [u8; 16]) -> Option<u32> {
    let key = Key::new(
        PORT_ADDR_PREFIX_BITS + 128,
        PortAddrV6Key {
            slot,
            port,
            mac,
            addr,
            _pad: [0; 2],
        },
    );
    PORT_ADDRS_V6.get(&key).map(|a| a.flags)
}

#[inline(always)]
pub fn check_arp(slot: u32, port: &PortInfo, eth: &Eth, arp: &Arp) -> Result<(), DropReason> {
    if arp.sha != eth.src {
        return Err(DropReason::ArpSha);
    }
    // An ARP probe (RFC 5227) has no sender address yet.
    if arp.spa == [0; 4] {
        return Ok(());
    }
    if !v4_allowed(slot, port.index, arp.sha, arp.spa) {
        return Err(DropReason::ArpSpa);
    }
    Ok(())
}

#[inline(always)]
pub fn check_ipv4(
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    eth: &Eth,
    ip: &Ipv4,
) -> Result<u32, DropReason> {
    let udp_ports = if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
        Some(parse::l4_ports(pkt, ip.l4_off).ok_or(truncated(ip.frag))?)
    } else {
        None
    };
    if ip.src == [0; 4] {
        // A DHCP client without an address: DISCOVER and REQUEST go from
        // 0.0.0.0:68 to 255.255.255.255:67.
        return match udp_ports {
            Some((DHCP_CLIENT_PORT, DHCP_SERVER_PORT))
                if ip.frag == Frag::None && ip.dst == [255; 4] =>
            {
                Ok(0)
            }
            _ => Err(DropReason::Ipv4Src),
        };
    }
    let Some(flags) = v4_flags(slot, port.index, eth.src, ip.src) else {
        return Err(DropReason::Ipv4Src);
    };
    if let Some((DHCP_SERVER_PORT, _)) = udp_ports {
        return Err(DropReason::DhcpServer);
    }
    Ok(flags)
}

/// A transport header cut short is a malformed packet, unless a first
/// fragment was cut before it: then the fragmentation hides it.
#[inline(always)]
fn truncated(frag: Frag) -> DropReason {
    if frag == Frag::First {
        DropReason::IpFragment
    } else {
        DropReason::Malformed
    }
}

#[inline(always)]
pub fn check_ipv6(
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    eth: &Eth,
    ip: &Ipv6,
) -> Result<u32, DropReason> {
    let icmp_type = if ip.proto == IPPROTO_ICMPV6 && ip.frag != Frag::Later {
        Some(pkt.read::<[u8; 2]>(ip.l4_off).ok_or(truncated(ip.frag))?[0])
    } else {
        None
    };

    let flags = if ip.src == IPV6_UNSPECIFIED {
        // Before it has an address a host sends only duplicate address
        // detection probes and multicast listener reports.
        let allowed = ip.frag == Frag::None
            && match icmp_type {
                Some(ICMPV6_NEIGH_SOLICIT) => is_solicited_node(&ip.dst),
                Some(ICMPV6_MLD_REPORT | ICMPV6_MLD_DONE | ICMPV6_MLD2_REPORT) => {
                    parse::ipv6_is_multicast(&ip.dst)
                }
                _ => false,
            };
        if !allowed {
            return Err(DropReason::Ipv6Src);
        }
        0
    } else {
        v6_flags(slot, port.index, eth.src, ip.src).ok_or(DropReason::Ipv6Src)?
    };

    if ip.proto == IPPROTO_UDP && ip.frag != Frag::Later {
        let (sport, _) = parse::l4_ports(pkt, ip.l4_off).ok_or(truncated(ip.frag))?;
        if sport == DHCPV6_SERVER_PORT {
            return Err(DropReason::Dhcpv6Server);
        }
    }

    match icmp_type {
        Some(ICMPV6_ROUTER_ADVERT | ICMPV6_REDIRECT) => Err(DropReason::RouterAdvert),
        Some(t @ (ICMPV6_ROUTER_SOLICIT | ICMPV6_NEIGH_SOLICIT | ICMPV6_NEIGH_ADVERT)) => {
            // RFC 6980: neighbour discovery is never fragmented.
            if ip.frag != Frag::None {
                return Err(DropReason::IpFragment);
            }
            check_nd(pkt, slot, port, eth, ip, t).map(|()| flags)
        }
        Some(ICMPV6_MLD_QUERY) | Some(_) | None => Ok(flags),
    }
}

/// ff02::1:ff00:0/104, the only destination of a duplicate address probe.
#[inline(always)]
fn is_solicited_node(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
        && addr[1] == 0x02
        && addr[2..11] == [0, 0, 0, 0, 0, 0, 0, 0, 0]
        && addr[11] == 1
        && addr[12] == 0xff
}

/// Link-layer options must name an allowed MAC; a neighbour advertisement
/// may only advertise a target the port may use, bound to the advertised MAC.
#[inline(always)]
fn check_nd(
    pkt: &Packet,
    slot: u32,
    port: &PortInfo,
    eth: &Eth,
    ip: &Ipv6,
    icmp_type: u8,
) -> Result<(), DropReason> {
    // RS: 8-byte header; NS and NA: 8-byte header and a 16-byte target.
    let body = if icmp_type == ICMPV6_ROUTER_SOLICIT {
        8
    } else {
        24
    };
    let end = ip.end;
    let mut off = ip.l4_off + body;
    if off > end {
        return Err(DropReason::Malformed);
    }
    let mut lladdr: Option<[u8; 6]> = None;
    let mut done = false;
    for _ in 0..MAX_ND_OPTIONS {
        if off >= end {
            done = true;
            break;
        }
        let [opt_type, opt_len] = pkt.read::<[u8; 2]>(off).ok_or(DropReason::Malformed)?;
        let opt_len = opt_len as usize * 8;
        if opt_len == 0 || off + opt_len > end {
            return Err(DropReason::Malformed);
        }
        let wanted = if icmp_type == ICMPV6_NEIGH_ADVERT {
            ND_OPT_TARGET_LLADDR
        } else {
            ND_OPT_SOURCE_LLADDR
        };
        if opt_type == wanted {
            let mac = pkt.read::<[u8; 6]>(off + 2).ok_or(DropReason::Malformed)?;
            if lladdr.is_some() {
                // Two link-layer options: which one a host believes is up
                // to the host. Refuse the ambiguity.
                return Err(DropReason::NdLladdr);
            }
            lladdr = Some(mac);
        }
        off += opt_len;
    }
    if !done {
        return Err(DropReason::Malformed);
    }

    if icmp_type == ICMPV6_NEIGH_ADVERT {
        let target = pkt
            .read::<[u8; 16]>(ip.l4_off + 8)
            .ok_or(DropReason::Malformed)?;
        let mac = match lladdr {
            Some(mac) => {
                if !mac_allowed(slot, port.index, mac) {
                    return Err(DropReason::NdLladdr);
                }
                mac
            }
            None => eth.src,
        };
        if !v6_allowed(slot, port.index, mac, target) {
            return Err(DropReason::NdTarget);
        }
        return Ok(());
    }

    // RS and NS: receivers bind the source address to the source link-layer
    // option, so that binding must be allowed; a duplicate address probe
    // (from ::) must not carry the option at all (RFC 4861 7.1.1).
    match lladdr {
        Some(_) if ip.src == IPV6_UNSPECIFIED => Err(DropReason::NdLladdr),
        Some(mac) if !v6_allowed(slot, port.index, mac, ip.src) => Err(DropReason::NdLladdr),
        _ => Ok(()),
    }
}

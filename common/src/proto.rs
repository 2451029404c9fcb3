//! Protocol numbers, named once for the eBPF programs, the loader and the
//! tests. The names follow Linux's headers (`if_ether.h`, `in.h`,
//! `icmp.h`, `icmpv6.h`, `ndisc.h`, `if_arp.h`, `ipv6.h`). Numbers are in
//! host byte order: compare them with fields read big-endian.

// ---------------------------------------------------------------------------
// Ethertypes

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;

// ---------------------------------------------------------------------------
// ARP

/// Hardware type Ethernet (`htype`).
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPOP_REQUEST: u16 = 1;
pub const ARPOP_REPLY: u16 = 2;

// ---------------------------------------------------------------------------
// IPv4 header

/// "Don't fragment", in the flags and fragment offset word.
pub const IP_DF: u16 = 0x4000;
/// Fragment offset bits of that word.
pub const IP_OFFSET: u16 = 0x1fff;

// ---------------------------------------------------------------------------
// IP protocols (IPv4 `protocol`, IPv6 `next header`)

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// IPv6 extension headers: hop-by-hop options.
pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
/// Authentication header (length in 4-byte units, less two).
pub const NEXTHDR_AUTH: u8 = 51;
pub const NEXTHDR_DEST: u8 = 60;

// ---------------------------------------------------------------------------
// ICMP types

pub const ICMP_ECHOREPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_SOURCE_QUENCH: u8 = 4;
pub const ICMP_REDIRECT: u8 = 5;
pub const ICMP_ECHO: u8 = 8;
pub const ICMP_ROUTERADVERT: u8 = 9;
pub const ICMP_ROUTERSOLICIT: u8 = 10;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAMETERPROB: u8 = 12;
/// Timestamp request; from it to the address mask reply (18), the
/// informational messages of RFC 792 and RFC 950.
pub const ICMP_TIMESTAMP: u8 = 13;
pub const ICMP_ADDRESSREPLY: u8 = 18;

/// Codes of `ICMP_DEST_UNREACH`.
pub const ICMP_NET_UNREACH: u8 = 0;
pub const ICMP_HOST_UNREACH: u8 = 1;
pub const ICMP_PORT_UNREACH: u8 = 3;
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// Code of `ICMP_TIME_EXCEEDED`: TTL exceeded in transit.
pub const ICMP_EXC_TTL: u8 = 0;

// ---------------------------------------------------------------------------
// ICMPv6 types: errors are 1 to 4 (`ICMPV6_DEST_UNREACH..=ICMPV6_PARAMPROB`).

pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PKT_TOOBIG: u8 = 2;
pub const ICMPV6_TIME_EXCEED: u8 = 3;
pub const ICMPV6_PARAMPROB: u8 = 4;
/// Codes of `ICMPV6_DEST_UNREACH`.
pub const ICMPV6_NOROUTE: u8 = 0;
pub const ICMPV6_ADDR_UNREACH: u8 = 3;
pub const ICMPV6_PORT_UNREACH: u8 = 4;
/// Code of `ICMPV6_TIME_EXCEED`: hop limit exceeded in transit.
pub const ICMPV6_EXC_HOPLIMIT: u8 = 0;
/// Types from this one on are informational; below it, errors.
pub const ICMPV6_INFOMSG: u8 = 128;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// Multicast listener discovery (MLDv1 query, report, done).
pub const ICMPV6_MLD_QUERY: u8 = 130;
pub const ICMPV6_MLD_REPORT: u8 = 131;
pub const ICMPV6_MLD_DONE: u8 = 132;
/// Neighbour discovery (RFC 4861): router solicitation and advertisement,
/// neighbour solicitation and advertisement, redirect.
pub const ICMPV6_ROUTER_SOLICIT: u8 = 133;
pub const ICMPV6_ROUTER_ADVERT: u8 = 134;
pub const ICMPV6_NEIGH_SOLICIT: u8 = 135;
pub const ICMPV6_NEIGH_ADVERT: u8 = 136;
pub const ICMPV6_REDIRECT: u8 = 137;
pub const ICMPV6_MLD2_REPORT: u8 = 143;

/// Neighbour discovery option types.
pub const ND_OPT_SOURCE_LLADDR: u8 = 1;
pub const ND_OPT_TARGET_LLADDR: u8 = 2;

/// Neighbour advertisement flags, in the first byte of the flags word.
pub const ND_NA_FLAG_ROUTER: u8 = 0x80;
pub const ND_NA_FLAG_SOLICITED: u8 = 0x40;
pub const ND_NA_FLAG_OVERRIDE: u8 = 0x20;

// ---------------------------------------------------------------------------
// UDP ports

pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const DHCPV6_CLIENT_PORT: u16 = 546;
pub const DHCPV6_SERVER_PORT: u16 = 547;

// ---------------------------------------------------------------------------
// TCP flags (byte 13 of the header)

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The IPv6 link-local address a host derives from a MAC (modified
/// EUI-64, RFC 4291 appendix A): the datapath's router advertisements come
/// from it, and the agent allows and answers for it.
#[inline(always)]
pub const fn link_local_v6(m: [u8; 6]) -> [u8; 16] {
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ]
}

/// Whether an IPv6 address is link-local (fe80::/10).
#[inline(always)]
pub const fn is_link_local_v6(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

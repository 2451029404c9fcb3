//! Ethernet MAC addresses as Neutron writes them ("fa:16:3e:12:34:56").

use std::{fmt, str::FromStr};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Group (multicast or broadcast) addresses have the I/G bit set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// The IPv6 link-local address a host derives from this MAC (modified
    /// EUI-64, RFC 4291 appendix A).
    pub fn ipv6_link_local(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(common::proto::link_local_v6(self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (expected six hex octets such as fa:16:3e:12:34:56)")]
pub struct ParseMacError;

/// The spellings netaddr (and so Neutron's `validate_mac_address`) accepts,
/// from `netaddr.strategy.eui48.RE_MAC_FORMATS`: separator, number of
/// groups, and the fewest and most hex digits in a group.
const MAC_FORMATS: [(char, usize, usize, usize); 7] = [
    (':', 6, 1, 2), // fa:16:3e:12:34:56 (UNIX; "fa:16:3e:0:0:1" too)
    ('-', 6, 1, 2), // fa-16-3e-12-34-56 (Windows, EUI-48)
    (':', 3, 1, 4), // fa16:3e12:3456
    ('-', 3, 1, 4), // fa16-3e12-3456
    ('.', 3, 1, 4), // fa16.3e12.3456 (Cisco)
    ('-', 2, 5, 6), // fa163e-123456 (PostgreSQL)
    (':', 2, 5, 6), // fa163e:123456
];

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Every spelling netaddr accepts, in either case: six groups of one or
    /// two hex digits separated by `:` or `-`, three groups of up to four
    /// separated by `:`, `-` or `.`, two groups of five or six separated by
    /// `-` or `:`, or 12 (or 11) hex digits without separators.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_ascii() {
            return Err(ParseMacError);
        }
        let hex = |g: &str| g.bytes().all(|b| b.is_ascii_hexdigit());
        let value = if !s.is_empty() && hex(s) {
            match s.len() {
                11 | 12 => u64::from_str_radix(s, 16).map_err(|_| ParseMacError)?,
                _ => return Err(ParseMacError),
            }
        } else {
            MAC_FORMATS
                .iter()
                .find_map(|&(sep, n, min, max)| {
                    let groups: Vec<&str> = s.split(sep).collect();
                    let fits = groups.len() == n
                        && groups
                            .iter()
                            .all(|g| (min..=max).contains(&g.len()) && hex(g));
                    fits.then(|| {
                        let bits = 48 / n;
                        groups.iter().fold(0u64, |acc, g| {
                            (acc << bits) | u64::from_str_radix(g, 16).unwrap_or(0)
                        })
                    })
                })
                .ok_or(ParseMacError)?
        };
        let b = value.to_be_bytes();
        Ok(MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mac: MacAddr = "FA:16:3e:0a:0B:01".parse().unwrap();
        assert_eq!(mac.octets(), [0xfa, 0x16, 0x3e, 0x0a, 0x0b, 0x01]);
        assert_eq!(mac.to_string(), "fa:16:3e:0a:0b:01");
        assert_eq!("fa-16-3e-0a-0b-01".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn netaddr_spellings() {
        // netaddr.valid_mac, which Neutron's validate_mac_address calls,
        // accepts all of these; netaddr.EUI reads them as this one address.
        let mac: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        for spelling in [
            "FA:16:3E:00:00:01",
            "fa:16:3e:0:0:1",
            "fa-16-3e-00-00-01",
            "fa163e000001",
            "FA163E000001",
            "fa16.3e00.0001",
            "fa16:3e00:0001",
            "fa16-3e00-0001",
            "fa16.3e00.1",
            "fa163e-000001",
            "fa163e:000001",
        ] {
            assert_eq!(spelling.parse::<MacAddr>(), Ok(mac), "{spelling}");
        }
        assert_eq!(
            "a163e000001".parse::<MacAddr>().unwrap().to_string(),
            "0a:16:3e:00:00:01"
        );
        assert_eq!(
            "1.2.3".parse::<MacAddr>().unwrap().to_string(),
            "00:01:00:02:00:03"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "fa:16:3e:0a:0b",
            "fa:16:3e:0a:0b:01:02",
            "fa:16:3e:0a:0b:zz",
            "fa:16:3e:0a:0b:001",
            "fa::3e:0a:0b:01",
            // Also refused by netaddr: mixed separators, dotted octets,
            // whitespace, 13 digits, a five-digit Cisco group.
            "fa:16:3e-00:00:01",
            "fa.16.3e.00.00.01",
            " fa:16:3e:00:00:01",
            "fa:16:3e:00:00:01 ",
            "fa163e0000011",
            "fa16.3e00.00001",
            "0x:16:3e:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn link_local_is_modified_eui64() {
        let mac: MacAddr = "fa:16:3e:12:34:56".parse().unwrap();
        assert_eq!(
            mac.ipv6_link_local().to_string(),
            "fe80::f816:3eff:fe12:3456"
        );
    }

    #[test]
    fn multicast_bit() {
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert!(
            !"fa:16:3e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
    }
}

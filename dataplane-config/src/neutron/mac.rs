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
        let m = self.0;
        std::net::Ipv6Addr::from([
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
        ])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (expected six hex octets such as fa:16:3e:12:34:56)")]
pub struct ParseMacError;

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.is_empty() || part.len() > 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
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
    fn rejects_malformed() {
        for bad in [
            "",
            "fa:16:3e:0a:0b",
            "fa:16:3e:0a:0b:01:02",
            "fa:16:3e:0a:0b:zz",
            "fa:16:3e:0a:0b:001",
            "fa::3e:0a:0b:01",
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

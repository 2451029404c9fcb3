//! Neutron's syntax for addresses, prefixes, numbers and booleans, as
//! neutron-lib's validators and converters (and the netaddr and Python
//! built-ins under them) read it, so that what Neutron accepts is accepted
//! here and what it refuses is refused with its reason.
//!
//! - [`ip_address`] is `validators.validate_ip_address`
//! - [`subnet`] is `validators.validate_subnet`
//! - [`ip_network`] is `netaddr.IPNetwork` (`convert_ip_prefix_to_cidr`)
//! - [`overlaps_multicast`] is `validators.validate_subnet_not_multicast`
//! - [`python_int`] is Python's `int()` of a string (`convert_to_int`,
//!   `netutils.is_valid_port`)
//! - [`boolean`] is `converters.convert_to_boolean`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde_json::Value;

/// `validate_no_whitespace`: Neutron refuses any whitespace in an address.
fn has_whitespace(s: &str) -> bool {
    s.chars().any(char::is_whitespace)
}

/// An IP address as `validate_ip_address` accepts it: IPv4 only in its
/// canonical dotted form (a leading zero could be read as octal, so Neutron
/// refuses it and recommends the plain form), IPv6 in any form
/// `inet_pton` reads; no prefix, no zone, no whitespace.
pub fn ip_address(s: &str) -> Result<IpAddr, String> {
    if !has_whitespace(s) {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ip);
        }
        if let Some(plain) = zero_filled_v4(s) {
            return Err(format!(
                "{s:?} is not an IP address Neutron accepts (a leading zero could be octal): \
                 write {plain}"
            ));
        }
    }
    Err(format!("{s:?} is not an IP address"))
}

/// Four decimal octets of which some have leading zeros (netaddr's
/// ZEROFILL reading of them).
fn zero_filled_v4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

/// A prefix as `validate_subnet` accepts it (allowed address pairs with a
/// `/`, subnet `cidr`): `netaddr.IPNetwork` must read it, it must contain a
/// `/`, and an IPv4 one must be written canonically (`10.0.0.0/24`, not
/// `10.0.0.0/024` or `10.0.0.0/255.255.255.0`); an IPv6 one may take any
/// form netaddr reads (`fd00::/064`, `fd00::/ffff::`). Host bits are kept.
pub fn subnet(s: &str) -> Result<IpNet, String> {
    let invalid = || {
        format!(
            "{s:?} is not a CIDR as Neutron takes it (an address, '/', a prefix length; IPv4 \
             written canonically, such as 10.0.0.0/24)"
        )
    };
    if has_whitespace(s) || !s.contains('/') {
        return Err(invalid());
    }
    let net = ip_network(s).ok_or_else(invalid)?;
    if net.addr().is_ipv4() && format!("{}/{}", net.addr(), net.prefix_len()) != s {
        return Err(invalid());
    }
    Ok(net)
}

/// What `netaddr.IPNetwork` reads (a security group rule's
/// `remote_ip_prefix`): an address alone (a host prefix), or an address,
/// `/`, and a prefix length as Python's `int()` reads it or a netmask or
/// hostmask of the address's version. Host bits are kept.
pub fn ip_network(s: &str) -> Option<IpNet> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => width,
        Some(p) => match python_int(p) {
            Some(n) if (0..=i64::from(width)).contains(&n) => n as u8,
            Some(_) => return None,
            None => mask_prefix(addr, p)?,
        },
    };
    IpNet::new(addr, len).ok()
}

/// The prefix length of a netmask (`255.255.255.0`) or hostmask
/// (`0.0.0.255`) written as an address of `addr`'s version; netaddr tries
/// netmask first.
fn mask_prefix(addr: IpAddr, mask: &str) -> Option<u8> {
    let (bits, width) = match addr {
        IpAddr::V4(_) => (u128::from(u32::from(mask.parse::<Ipv4Addr>().ok()?)), 32),
        IpAddr::V6(_) => (u128::from(mask.parse::<Ipv6Addr>().ok()?), 128),
    };
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let ones = bits.count_ones();
    let netmask = if ones == 0 {
        0
    } else {
        all & !((1u128 << (width - ones)) - 1)
    };
    let hostmask = if ones == 128 {
        u128::MAX
    } else {
        (1u128 << ones) - 1
    };
    if bits == netmask {
        Some(ones as u8)
    } else if bits == hostmask {
        Some((width - ones) as u8)
    } else {
        None
    }
}

/// `validate_subnet_not_multicast`: whether a pair's prefix overlaps
/// 224.0.0.0/4 or ff00::/8. Neutron makes one exception, `0.0.0.0/0`
/// (any IPv4 /0); it has none for IPv6, so `::/0` overlaps ff00::/8.
pub fn overlaps_multicast(net: IpNet) -> bool {
    // Neutron compares the prefix and the multicast range on the shorter
    // of their two prefix lengths.
    match net {
        IpNet::V4(n) if n.prefix_len() == 0 => false,
        IpNet::V4(n) if n.prefix_len() < 4 => n.trunc().contains(&Ipv4Addr::new(224, 0, 0, 0)),
        IpNet::V6(n) if n.prefix_len() < 8 => n
            .trunc()
            .contains(&Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)),
        _ => net.addr().is_multicast(),
    }
}

/// Python's `int()` of a string, as Neutron's converters call it: surrounding
/// whitespace, an optional sign, decimal digits with single underscores
/// between them, leading zeros allowed. (Python also reads non-ASCII
/// digits; they are refused here.)
pub fn python_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_whitespace());
    let (negative, digits) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -n } else { n })
}

/// `convert_to_boolean` (oslo's `bool_from_string`, strict): a boolean, the
/// integers 0 and 1, or one of 1/t/true/on/y/yes and 0/f/false/off/n/no in
/// any case, surrounded by any whitespace. `null` is refused.
pub fn boolean(value: &Value) -> Result<bool, String> {
    let text = match value {
        Value::Bool(b) => return Ok(*b),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    match text.as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(format!("{value} cannot be converted to boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks() {
        assert_eq!(
            ip_network("10.0.0.0/255.0.0.0").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            ip_network("10.0.0.0/0.0.0.255").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            ip_network("10.0.0.0/0.0.0.0").unwrap().to_string(),
            "10.0.0.0/0"
        );
        assert_eq!(
            ip_network("fd00::/ffff::").unwrap().to_string(),
            "fd00::/16"
        );
        assert_eq!(
            ip_network("fd00::/::ffff").unwrap().to_string(),
            "fd00::/112"
        );
        assert!(ip_network("fd00::/00ff::").is_none());
        assert!(ip_network("10.0.0.0/255.0.255.0").is_none());
    }

    #[test]
    fn python_ints() {
        for (s, n) in [
            ("80", 80),
            (" 80 ", 80),
            ("+80", 80),
            ("8_0", 80),
            ("080", 80),
            ("-1", -1),
        ] {
            assert_eq!(python_int(s), Some(n), "{s:?}");
        }
        for s in ["", "+", "_8", "8_", "8__0", "0x50", "80.0", "8 0"] {
            assert_eq!(python_int(s), None, "{s:?}");
        }
    }

    #[test]
    fn booleans() {
        for v in [
            json!(true),
            json!(1),
            json!("Yes"),
            json!(" on "),
            json!("T"),
        ] {
            assert_eq!(boolean(&v), Ok(true), "{v}");
        }
        for v in [
            json!(false),
            json!(0),
            json!("no"),
            json!("OFF"),
            json!("0"),
        ] {
            assert_eq!(boolean(&v), Ok(false), "{v}");
        }
        assert_eq!(
            boolean(&json!(null)).unwrap_err(),
            "null cannot be converted to boolean"
        );
        assert!(boolean(&json!(2)).is_err());
        assert!(boolean(&json!("maybe")).is_err());
    }
}

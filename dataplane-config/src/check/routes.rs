//! A router's static `routes`, read as Neutron reads them (neutron-lib's
//! `type:hostroutes`: a list of objects with exactly `destination` and
//! `nexthop`, the destination a CIDR as `validate_route_cidr` takes it,
//! the nexthop as `validate_ip_address`, no route twice). What needs the
//! router's interfaces (the nexthop on one of its subnets, not one of its
//! addresses) is the store's to check (`store::resolve::static_routes`).

use ipnet::IpNet;
use serde_json::Value;

use crate::{errors::Errors, neutron::syntax, objects::StaticRoute};

/// Reads `routes` (absent or `null`: none).
pub fn routes(errors: &mut Errors, label: &str, v: &Option<Value>) -> Vec<StaticRoute> {
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let msg = format!("Invalid data format for hostroute: '{other}'");
            errors.push(label, "routes", msg);
            return Vec::new();
        }
    };
    let mut out: Vec<StaticRoute> = Vec::new();
    let mut seen: Vec<&Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("routes[{i}]");
        let Some(route) = one(errors, label, &field, item) else {
            continue;
        };
        if seen.contains(&item) {
            errors.push(label, &field, format!("Duplicate hostroute '{item}'"));
            continue;
        }
        seen.push(item);
        out.push(route);
    }
    out
}

fn one(errors: &mut Errors, label: &str, field: &str, item: &Value) -> Option<StaticRoute> {
    let Some(object) = item.as_object() else {
        errors.push(
            label,
            field,
            format!(
                "Invalid input. '{item}' must be a dictionary with keys: \
                 ['destination', 'nexthop']"
            ),
        );
        return None;
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["destination", "nexthop"] {
        errors.push(
            label,
            field,
            format!(
                "Validation of dictionary's keys failed. Expected keys: \
                 {{'destination', 'nexthop'}} Provided keys: {keys:?}"
            ),
        );
        return None;
    }
    let destination = match object["destination"].as_str().map(route_cidr) {
        Some(Ok(net)) => Some(net),
        Some(Err(e)) => {
            errors.push(label, format!("{field}.destination"), e);
            None
        }
        None => {
            let msg = format!("'{}' is not a valid CIDR", object["destination"]);
            errors.push(label, format!("{field}.destination"), msg);
            None
        }
    };
    let nexthop = match object["nexthop"].as_str().map(syntax::ip_address) {
        Some(Ok(ip)) => Some(ip),
        Some(Err(e)) => {
            errors.push(label, format!("{field}.nexthop"), e);
            None
        }
        None => {
            let msg = format!("'{}' is not a valid IP address", object["nexthop"]);
            errors.push(label, format!("{field}.nexthop"), msg);
            None
        }
    };
    let (destination, nexthop) = (destination?, nexthop?);
    if destination.addr().is_ipv4() != nexthop.is_ipv4() {
        // Linux can route IPv4 through an IPv6 gateway (RFC 5549); the
        // datapath cannot: refused rather than routed somewhere else.
        errors.push(
            label,
            format!("{field}.nexthop"),
            format!(
                "{nexthop} is not of the version of the destination {destination} (a route \
                 through a next hop of the other IP version is not supported)"
            ),
        );
        return None;
    }
    Some(StaticRoute {
        destination,
        nexthop,
    })
}

/// `validate_route_cidr`: what `netaddr.IPNetwork` reads, with a `/`, no
/// host bits, not a loopback prefix.
fn route_cidr(s: &str) -> Result<IpNet, String> {
    let invalid = || format!("'{s}' is not a valid CIDR");
    if s.chars().any(char::is_whitespace) || !s.contains('/') {
        return Err(invalid());
    }
    let net = syntax::ip_network(s).ok_or_else(invalid)?;
    if net.addr() != net.network() {
        return Err(invalid());
    }
    let loopback = match net {
        IpNet::V4(n) => n.prefix_len() >= 8 && n.addr().octets()[0] == 127,
        IpNet::V6(n) => n.prefix_len() == 128 && n.addr().is_loopback(),
    };
    if loopback {
        return Err(format!("'{s}' is not a routable CIDR"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(v: Value) -> (Vec<StaticRoute>, Vec<String>) {
        let mut errors = Errors::default();
        let out = routes(&mut errors, "router r", &Some(v));
        (out, errors.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn read_as_neutron_reads_them() {
        let (ok, e) = read(json!([
            { "destination": "10.9.0.0/16", "nexthop": "10.0.0.5" },
            { "destination": "0.0.0.0/0", "nexthop": "10.0.0.6" },
            { "destination": "fd09::/48", "nexthop": "fd00::5" },
            { "destination": "10.8.0.0/255.255.0.0", "nexthop": "10.0.0.5" },
        ]));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[3].destination, "10.8.0.0/16".parse::<IpNet>().unwrap());
        for (bad, field, says) in [
            (
                json!({ "destination": "10.9.0.1/16", "nexthop": "10.0.0.5" }),
                "destination",
                "not a valid CIDR",
            ),
            (
                json!({ "destination": "10.9.0.0", "nexthop": "10.0.0.5" }),
                "destination",
                "not a valid CIDR",
            ),
            (
                json!({ "destination": "127.0.0.0/8", "nexthop": "10.0.0.5" }),
                "destination",
                "not a routable",
            ),
            (
                json!({ "destination": "::1/128", "nexthop": "fd00::5" }),
                "destination",
                "not a routable",
            ),
            (
                json!({ "destination": "10.9.0.0/16", "nexthop": "10.0.0.256" }),
                "nexthop",
                "not an IP address",
            ),
            (
                json!({ "destination": "10.9.0.0/16", "nexthop": "fd00::5" }),
                "nexthop",
                "version",
            ),
            (
                json!({ "destination": "10.9.0.0/16" }),
                "routes[0]",
                "Expected keys",
            ),
            (
                json!({ "destination": "10.9.0.0/16", "nexthop": "10.0.0.5", "x": 1 }),
                "routes[0]",
                "Expected keys",
            ),
            (json!("10.9.0.0/16"), "routes[0]", "must be a dictionary"),
        ] {
            let (ok, e) = read(json!([bad]));
            assert!(ok.is_empty(), "{bad} accepted");
            assert!(
                e.len() == 1 && e[0].contains(field) && e[0].contains(says),
                "{bad}: {e:?}"
            );
        }
        let twice = json!({ "destination": "10.9.0.0/16", "nexthop": "10.0.0.5" });
        let (ok, e) = read(json!([twice, twice]));
        assert_eq!(ok.len(), 1);
        assert!(
            e[0].contains("routes[1]") && e[0].contains("Duplicate hostroute"),
            "{e:?}"
        );
        let (_, e) = read(json!({ "destination": "10.9.0.0/16" }));
        assert!(e[0].contains("Invalid data format for hostroute"), "{e:?}");
    }
}

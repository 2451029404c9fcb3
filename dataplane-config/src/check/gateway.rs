//! A router's `external_gateway_info` on its own, as neutron-lib's l3 API
//! definition reads it (`type:dict_or_nodata`: `network_id` required,
//! `enable_snat` a boolean, `external_fixed_ips` a list of `subnet_id` and
//! `ip_address`). What needs other objects (the network exists and is
//! external, each address on one of its subnets, the gateway port agrees)
//! is the store's (`store::external`).

use serde_json::{Map, Value};

use crate::{
    errors::Errors,
    neutron::syntax,
    objects::{ExternalGateway, FixedIpSpec},
};

const FIELD: &str = "external_gateway_info";

/// Keys Neutron accepts in `external_gateway_info` (`qos_policy_id` comes
/// with the qos-gateway-ip extension and is ignored).
const KEYS: &[&str] = &[
    "network_id",
    "enable_snat",
    "external_fixed_ips",
    "qos_policy_id",
];

/// Reads `external_gateway_info` (absent or `null`: no gateway).
pub fn info(errors: &mut Errors, label: &str, value: Option<&Value>) -> Option<ExternalGateway> {
    let m = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(m)) => m,
        Some(other) => {
            errors.push(label, FIELD, format!("'{other}' is not a dictionary"));
            return None;
        }
    };
    for key in m.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        errors.push(
            label,
            format!("{FIELD}.{key}"),
            format!("Unexpected keys supplied: {key}"),
        );
    }
    let network_id = match m.get("network_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push(label, format!("{FIELD}.network_id"), "missing (required)");
            None
        }
        Some(other) => {
            let msg = format!("'{other}' is not a valid UUID");
            errors.push(label, format!("{FIELD}.network_id"), msg);
            None
        }
    };
    let enable_snat = match m.get("enable_snat") {
        // Neutron's `enable_snat_by_default` option, true by default.
        None => true,
        Some(v) => syntax::boolean(v)
            .map_err(|e| errors.push(label, format!("{FIELD}.enable_snat"), e))
            .unwrap_or(true),
    };
    let external_fixed_ips = fixed_ips(errors, label, m);
    Some(ExternalGateway {
        network_id: network_id?,
        enable_snat,
        external_fixed_ips,
    })
}

/// `external_fixed_ips`: each with its address (Neutron allocates one when
/// none is given; a file must say which), at least one IPv4 (the
/// datapath's external gateway is IPv4).
fn fixed_ips(errors: &mut Errors, label: &str, m: &Map<String, Value>) -> Vec<FixedIpSpec> {
    let field = format!("{FIELD}.external_fixed_ips");
    let items = match m.get("external_fixed_ips") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let msg = format!("Invalid data format for fixed IP: '{other}'");
            errors.push(label, field, msg);
            return Vec::new();
        }
    };
    let mut out: Vec<FixedIpSpec> = Vec::new();
    let before = errors.len();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{field}[{i}]");
        if let Some(f) = one(errors, label, &here, item) {
            if out.iter().any(|o| o.ip == f.ip) {
                let msg = format!("Duplicate IP address '{}'", f.ip);
                errors.push(label, format!("{here}.ip_address"), msg);
                continue;
            }
            out.push(f);
        }
    }
    if errors.len() == before && !out.iter().any(|f| f.ip.is_ipv4()) {
        errors.push(
            label,
            field,
            "no IPv4 address: the datapath's external gateway (SNAT, floating IPs) is IPv4, and \
             Neutron allocates the router one on the external network: give the address it \
             allocated (GET /v2.0/routers or `openstack router show` prints it)",
        );
    }
    out
}

fn one(errors: &mut Errors, label: &str, here: &str, item: &Value) -> Option<FixedIpSpec> {
    let Some(m) = item.as_object() else {
        errors.push(
            label,
            here,
            format!("Invalid data format for fixed IP: '{item}'"),
        );
        return None;
    };
    for key in m
        .keys()
        .filter(|k| !["subnet_id", "ip_address"].contains(&k.as_str()))
    {
        let msg = "unknown field (Neutron has no such attribute here)";
        errors.push(label, format!("{here}.{key}"), msg);
    }
    let subnet_id = match m.get("subnet_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => {
            let msg = format!("'{other}' is not a valid UUID");
            errors.push(label, format!("{here}.subnet_id"), msg);
            return None;
        }
    };
    let ip = match m.get("ip_address") {
        Some(Value::String(s)) => match syntax::ip_address(s) {
            Ok(ip) => ip,
            Err(e) => {
                errors.push(label, format!("{here}.ip_address"), e);
                return None;
            }
        },
        None | Some(Value::Null) => {
            errors.push(
                label,
                format!("{here}.ip_address"),
                "missing: Neutron allocates the address when none is given, so a file must give \
                 the one it allocated (GET /v2.0/routers or `openstack router show` prints it)",
            );
            return None;
        }
        Some(other) => {
            let msg = format!("'{other}' is not a valid IP address");
            errors.push(label, format!("{here}.ip_address"), msg);
            return None;
        }
    };
    Some(FixedIpSpec { subnet_id, ip })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(v: Value) -> (Option<ExternalGateway>, Vec<String>) {
        let mut errors = Errors::default();
        let out = info(&mut errors, "router r", Some(&v));
        (out, errors.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn read_as_neutron_reads_it() {
        let (g, e) = read(json!({
            "network_id": " ext ",
            "external_fixed_ips": [
                { "subnet_id": "s4", "ip_address": "203.0.113.5" },
                { "ip_address": "2001:db8::5" },
            ],
            "qos_policy_id": null,
        }));
        assert!(e.is_empty(), "{e:?}");
        let g = g.unwrap();
        assert_eq!(g.network_id, "ext");
        assert!(g.enable_snat, "Neutron's enable_snat_by_default");
        assert_eq!(g.external_fixed_ips.len(), 2);
        assert_eq!(g.external_fixed_ips[0].subnet_id.as_deref(), Some("s4"));
        assert_eq!(g.external_fixed_ips[1].subnet_id, None);
        let (g, _) = read(json!({ "network_id": "ext", "enable_snat": "False",
            "external_fixed_ips": [{ "ip_address": "203.0.113.5" }] }));
        assert!(!g.unwrap().enable_snat);
        let (g, e) = read(Value::Null);
        assert!(g.is_none() && e.is_empty());
    }

    #[test]
    fn refusals_name_the_field() {
        let ip = json!([{ "ip_address": "203.0.113.5" }]);
        for (bad, field, says) in [
            (json!("ext"), "external_gateway_info", "not a dictionary"),
            (
                json!({ "external_fixed_ips": ip }),
                "external_gateway_info.network_id",
                "missing",
            ),
            (
                json!({ "network_id": 5, "external_fixed_ips": ip }),
                "external_gateway_info.network_id",
                "not a valid UUID",
            ),
            (
                json!({ "network_id": "ext", "enable_snat": "maybe", "external_fixed_ips": ip }),
                "external_gateway_info.enable_snat",
                "cannot be converted to boolean",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": ip, "gateway": 1 }),
                "external_gateway_info.gateway",
                "Unexpected keys supplied",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": "203.0.113.5" }),
                "external_gateway_info.external_fixed_ips",
                "Invalid data format for fixed IP",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": ["203.0.113.5"] }),
                "external_gateway_info.external_fixed_ips[0]",
                "Invalid data format for fixed IP",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "subnet_id": "s4" }] }),
                "external_gateway_info.external_fixed_ips[0].ip_address",
                "Neutron allocates the address",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "subnet_id": 4, "ip_address": "203.0.113.5" }] }),
                "external_gateway_info.external_fixed_ips[0].subnet_id",
                "not a valid UUID",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "ip_address": 5 }] }),
                "external_gateway_info.external_fixed_ips[0].ip_address",
                "not a valid IP address",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "ip_address": "203.0.113.500" }] }),
                "external_gateway_info.external_fixed_ips[0].ip_address",
                "not an IP address",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "ip_address": "203.0.113.5", "mac": 1 }] }),
                "external_gateway_info.external_fixed_ips[0].mac",
                "unknown field",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [
                    { "ip_address": "203.0.113.5" }, { "ip_address": "203.0.113.5" }] }),
                "external_gateway_info.external_fixed_ips[1].ip_address",
                "Duplicate IP address",
            ),
            (
                json!({ "network_id": "ext" }),
                "external_gateway_info.external_fixed_ips",
                "no IPv4 address",
            ),
            (
                json!({ "network_id": "ext", "external_fixed_ips": [{ "ip_address": "2001:db8::5" }] }),
                "external_gateway_info.external_fixed_ips",
                "no IPv4 address",
            ),
        ] {
            let (_, e) = read(bad.clone());
            assert!(
                e.len() == 1 && e[0].contains(&format!("{field}: ")) && e[0].contains(says),
                "{bad}: {e:?}"
            );
        }
    }
}

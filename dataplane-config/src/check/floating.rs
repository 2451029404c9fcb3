//! A floating IP on its own, as neutron-lib's l3 API definition and
//! neutron's `l3_db` read it: `floating_network_id` required,
//! `floating_ip_address` an IPv4 address (Neutron's floating IPs are
//! IPv4; a file must give the one Neutron allocated), `port_id` optional
//! (null: not associated), `fixed_ip_address` an IPv4 address and only with
//! a port. What needs other objects (the network external, the address on
//! one of its subnets, the port and the router) is the store's
//! (`store::floating`).

use std::net::{IpAddr, Ipv4Addr};

use super::{optional, raw, required, unknown_fields_in};
use crate::{
    errors::Errors,
    neutron::{Object, fields, raw::RawFloatingIp, syntax},
    objects::FloatingIp,
};

pub fn check(errors: &mut Errors, label: &str, object: &Object) -> Option<FloatingIp> {
    let f: RawFloatingIp = raw(errors, label, &object.value)?;
    unknown_fields_in(errors, label, "", &f.extra, fields::FLOATINGIP);
    let network = required(errors, label, "floating_network_id", &f.floating_network_id);
    let address = match optional(&f.floating_ip_address) {
        None => {
            errors.push(
                label,
                "floating_ip_address",
                "missing: Neutron allocates the address when none is given, so a file must give \
                 the one it allocated (GET /v2.0/floatingips or `openstack floating ip list` \
                 prints it)",
            );
            None
        }
        Some(text) => v4(errors, label, "floating_ip_address", text, |ip| {
            format!(
                "{ip} is not an IPv4 address: Neutron's floating IPs are IPv4 (Unable to find \
                 any IP address on external network {})",
                network.unwrap_or("")
            )
        }),
    };
    let port_id = optional(&f.port_id).map(str::to_string);
    let fixed = optional(&f.fixed_ip_address).and_then(|text| {
        v4(errors, label, "fixed_ip_address", text, |ip| {
            format!(
                "Cannot process floating IP association with {ip}, since that is not an IPv4 \
                 address"
            )
        })
    });
    if fixed.is_some() && port_id.is_none() {
        errors.push(
            label,
            "fixed_ip_address",
            "fixed_ip_address cannot be specified without a port_id",
        );
    }
    Some(FloatingIp {
        id: object.id.clone(),
        floating_ip_address: address?,
        floating_network_id: network?.to_string(),
        port_id,
        fixed_ip_address: fixed,
        router_id: optional(&f.router_id).map(str::to_string),
        association: None,
    })
}

/// An IPv4 address; `v6` says why an IPv6 one is refused.
fn v4(
    errors: &mut Errors,
    label: &str,
    field: &str,
    text: &str,
    v6: impl FnOnce(IpAddr) -> String,
) -> Option<Ipv4Addr> {
    match syntax::ip_address(text) {
        Ok(IpAddr::V4(ip)) => Some(ip),
        Ok(ip) => {
            errors.push(label, field, v6(ip));
            None
        }
        Err(e) => {
            errors.push(label, field, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::neutron::Kind;

    fn read(v: Value) -> (Option<FloatingIp>, Vec<String>) {
        let mut errors = Errors::default();
        let object = Object {
            kind: Kind::FloatingIp,
            id: "f".into(),
            value: v,
        };
        let out = check(&mut errors, "floating IP f", &object);
        let out = out.filter(|_| errors.is_empty());
        (out, errors.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn what_neutron_returns_reads() {
        let (f, e) = read(json!({
            "id": "f", "floating_ip_address": "203.0.113.20", "floating_network_id": "ext",
            "port_id": "p", "fixed_ip_address": "10.0.0.5", "router_id": "r",
            "status": "ACTIVE", "port_details": null, "tags": [], "dns_name": "",
            "port_forwardings": [], "qos_policy_id": null, "project_id": "x",
        }));
        assert!(e.is_empty(), "{e:?}");
        let f = f.unwrap();
        assert_eq!(f.floating_ip_address, Ipv4Addr::new(203, 0, 113, 20));
        assert_eq!(f.port_id.as_deref(), Some("p"));
        assert_eq!(f.fixed_ip_address, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(f.router_id.as_deref(), Some("r"));
        // Not associated: kept.
        let (f, e) = read(json!({
            "floating_ip_address": "203.0.113.21", "floating_network_id": "ext",
            "port_id": null, "fixed_ip_address": null, "router_id": null,
        }));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(f.unwrap().port_id, None);
    }

    #[test]
    fn refusals_name_the_field() {
        for (bad, field, says) in [
            (
                json!({ "floating_ip_address": "203.0.113.20" }),
                "floating_network_id",
                "missing",
            ),
            (
                json!({ "floating_network_id": "ext" }),
                "floating_ip_address",
                "Neutron allocates the address",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "2001:db8::20" }),
                "floating_ip_address",
                "Neutron's floating IPs are IPv4",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "203.0.113.020" }),
                "floating_ip_address",
                "leading zero",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "203.0.113.20",
                        "port_id": "p", "fixed_ip_address": "fd00::5" }),
                "fixed_ip_address",
                "since that is not an IPv4 address",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "203.0.113.20",
                        "fixed_ip_address": "10.0.0.5" }),
                "fixed_ip_address",
                "cannot be specified without a port_id",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "203.0.113.20",
                        "port_id": 5 }),
                "port_id",
                "invalid type",
            ),
            (
                json!({ "floating_network_id": "ext", "floating_ip_address": "203.0.113.20",
                        "fixed_port_id": "p" }),
                "fixed_port_id",
                "unknown field",
            ),
        ] {
            let (f, e) = read(bad.clone());
            assert!(f.is_none(), "{bad} accepted");
            assert!(
                e.len() == 1 && e[0].contains(&format!("{field}: ")) && e[0].contains(says),
                "{bad}: {e:?}"
            );
        }
    }
}

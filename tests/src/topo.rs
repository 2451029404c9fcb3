//! Builders for configuration documents (JSON, Neutron field names).

use serde_json::{Value, json};

use crate::lab::Vm;

pub fn network(id: &str) -> Value {
    json!({ "id": id, "name": id })
}

pub fn subnet(id: &str, network: &str, cidr: &str, gateway: Option<&str>) -> Value {
    let version = if cidr.contains(':') { 6 } else { 4 };
    json!({
        "id": id,
        "network_id": network,
        "cidr": cidr,
        "gateway_ip": gateway,
        "ip_version": version,
    })
}

/// A port for `vm` on `network` with fixed IPs given as (subnet, address).
pub fn port(vm: &Vm, network: &str, fixed_ips: &[(&str, &str)]) -> Value {
    json!({
        "id": vm.port_id,
        "name": vm.name,
        "network_id": network,
        "mac_address": vm.mac,
        "fixed_ips": fixed_ips
            .iter()
            .map(|(s, ip)| json!({ "subnet_id": s, "ip_address": ip }))
            .collect::<Vec<_>>(),
        "tap_name": vm.tap,
    })
}

/// An allowed address pair, with or without its own MAC.
pub fn pair(ip: &str, mac: Option<&str>) -> Value {
    match mac {
        Some(m) => json!({ "ip_address": ip, "mac_address": m }),
        None => json!({ "ip_address": ip }),
    }
}

/// A configuration. Ports with port security that name no security groups
/// get the "open" group (everything in and out, IPv4 and IPv6), so that
/// tests of other features are not filtered; security-group tests name
/// their groups (or an explicit empty list).
pub fn config(networks: Vec<Value>, subnets: Vec<Value>, mut ports: Vec<Value>) -> Value {
    for p in &mut ports {
        let secure = p["port_security_enabled"].as_bool() != Some(false);
        let router = p["device_owner"].is_string();
        if secure && !router && p.get("security_groups").is_none() {
            p["security_groups"] = json!(["open"]);
        }
    }
    json!({
        "networks": networks,
        "subnets": subnets,
        "ports": ports,
        "security_groups": [open_group()],
    })
}

/// A group allowing everything in both directions.
pub fn open_group() -> Value {
    let rules: Vec<Value> = ["ingress", "egress"]
        .iter()
        .flat_map(|d| {
            ["IPv4", "IPv6"]
                .iter()
                .map(move |e| json!({ "direction": d, "ethertype": e }))
        })
        .collect();
    json!({ "id": "open", "name": "open", "security_group_rules": rules })
}

/// A router interface: (network, MAC, fixed IPs as (subnet, address)).
pub type RouterInterface<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A router and its interface ports: one per (network, MAC, fixed IPs as
/// (subnet, address)).
pub fn router(id: &str, interfaces: &[RouterInterface]) -> (Value, Vec<Value>) {
    let ports = interfaces
        .iter()
        .enumerate()
        .map(|(i, (network, mac, fixed_ips))| {
            json!({
                "id": format!("{id}-if{i}"),
                "network_id": network,
                "device_owner": "network:router_interface",
                "device_id": id,
                "mac_address": mac,
                "fixed_ips": fixed_ips
                    .iter()
                    .map(|(s, ip)| json!({ "subnet_id": s, "ip_address": ip }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    (json!({ "id": id, "name": id }), ports)
}

/// A network that spans hosts: VXLAN with VNI `vni`.
pub fn vxlan_network(id: &str, vni: u32) -> Value {
    json!({
        "id": id, "name": id,
        "provider:network_type": "vxlan",
        "provider:segmentation_id": vni,
    })
}

/// [`port`] bound to host `host` (`binding:host_id`).
pub fn port_on(vm: &Vm, host: &str, network: &str, fixed_ips: &[(&str, &str)]) -> Value {
    let mut p = port(vm, network, fixed_ips);
    p["binding:host_id"] = json!(host);
    p
}

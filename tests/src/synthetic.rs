//! A synthetic cloud in the etcd layout the agents watch (see the README's
//! "What the driver writes"): projects, each with its networks (dual
//! stack, a VNI each), a router joining them, a default security group
//! (members reach each other, everything out) and a web group; VM ports
//! spread over the chassis, the first two of every network sharing a VIP
//! as an allowed address pair (keepalived's case). Every object is what
//! Neutron 29's API returns for it, fields it does not use included
//! (their size is part of what an agent reads), so that the benchmark
//! measures the agent on what the ML2 driver writes.
//!
//! Ports are spread over chassis in turn (port g on chassis g mod C), as a
//! scheduler spreading VMs would: a chassis holds ports/C of them, each
//! in another network.

use serde_json::{Value, json};

/// The size and shape of the cloud.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub chassis: usize,
    /// VM ports (router interfaces come on top: one per network).
    pub ports: usize,
    pub ports_per_network: usize,
    pub networks_per_project: usize,
}

impl Shape {
    pub fn networks(&self) -> usize {
        self.ports.div_ceil(self.ports_per_network)
    }

    pub fn projects(&self) -> usize {
        self.networks().div_ceil(self.networks_per_project)
    }

    /// The chassis port `g` is bound to.
    pub fn host_of(&self, g: usize) -> String {
        chassis_name(g % self.chassis)
    }

    /// VM ports bound to chassis `c`.
    pub fn ports_of(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (c..self.ports).step_by(self.chassis)
    }
}

pub fn chassis_name(c: usize) -> String {
    format!("compute-{c:04}")
}

/// A chassis's underlay address (10.200.0.0/16).
pub fn chassis_ip(c: usize) -> String {
    format!("10.200.{}.{}", c / 250, c % 250 + 1)
}

/// A UUID-shaped id, unique by (kind tag, number).
pub fn uuid(tag: u8, n: usize) -> String {
    format!("{tag:02x}{:06x}-5ca1-4e00-8000-{n:012x}", n & 0xff_ffff)
}

const TAG_NETWORK: u8 = 0x11;
const TAG_SUBNET4: u8 = 0x12;
const TAG_SUBNET6: u8 = 0x13;
const TAG_ROUTER: u8 = 0x14;
const TAG_SG: u8 = 0x15;
const TAG_WEB_SG: u8 = 0x16;
const TAG_PORT: u8 = 0x17;
const TAG_IFACE: u8 = 0x18;
const TAG_RULE: u8 = 0x19;
const TAG_DEVICE: u8 = 0x1a;

fn project_id(p: usize) -> String {
    format!("{p:08x}5ca14e0080000000{p:08x}")
}

/// Fields every resource has (standard attributes and ownership).
fn standard(v: &mut Value, project: usize) {
    let p = project_id(project);
    v["description"] = json!("");
    v["created_at"] = json!("2026-12-01T02:53:30Z");
    v["updated_at"] = json!("2026-12-01T02:53:30Z");
    v["revision_number"] = json!(1);
    v["project_id"] = json!(p);
    v["tenant_id"] = json!(p);
}

/// Network `n`'s IPv4 /24 (10.0.0.0/8 by network number) and IPv6 /64.
fn v4_net(n: usize) -> String {
    format!("10.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

fn v6_net(n: usize) -> String {
    format!("fd00:{n:x}")
}

pub fn network(shape: &Shape, n: usize) -> Value {
    let mut v = json!({
        "id": uuid(TAG_NETWORK, n), "name": format!("net-{n}"),
        "admin_state_up": true, "mtu": 1450, "status": "ACTIVE",
        "subnets": [uuid(TAG_SUBNET4, n), uuid(TAG_SUBNET6, n)],
        "shared": false, "availability_zone_hints": [], "availability_zones": [],
        "ipv4_address_scope": null, "ipv6_address_scope": null, "router:external": false,
        "qinq": false, "vlan_transparent": false, "port_security_enabled": true,
        "qos_policy_id": null, "dns_domain": "", "l2_adjacency": true, "tags": [],
        "provider:network_type": "vxlan", "provider:physical_network": null,
        "provider:segmentation_id": 1000 + n, "pvlan": false, "project_default": false,
    });
    standard(&mut v, n / shape.networks_per_project);
    v
}

pub fn subnets(shape: &Shape, n: usize) -> [Value; 2] {
    let (v4, v6) = (v4_net(n), v6_net(n));
    let mut four = json!({
        "id": uuid(TAG_SUBNET4, n), "name": format!("net-{n}-v4"),
        "network_id": uuid(TAG_NETWORK, n), "ip_version": 4, "subnetpool_id": null,
        "enable_dhcp": false, "ipv6_ra_mode": null, "ipv6_address_mode": null,
        "gateway_ip": format!("{v4}.1"), "cidr": format!("{v4}.0/24"),
        "allocation_pools": [{ "start": format!("{v4}.2"), "end": format!("{v4}.254") }],
        "host_routes": [], "dns_nameservers": [], "router:external": false,
        "service_types": [], "segment_id": null, "tags": [],
        "dns_publish_fixed_ip": false,
    });
    let mut six = json!({
        "id": uuid(TAG_SUBNET6, n), "name": format!("net-{n}-v6"),
        "network_id": uuid(TAG_NETWORK, n), "ip_version": 6, "subnetpool_id": null,
        "enable_dhcp": false, "ipv6_ra_mode": null, "ipv6_address_mode": null,
        "gateway_ip": format!("{v6}::1"), "cidr": format!("{v6}::/64"),
        "allocation_pools": [{ "start": format!("{v6}::2"), "end": format!("{v6}::ffff") }],
        "host_routes": [], "dns_nameservers": [], "router:external": false,
        "service_types": [], "segment_id": null, "tags": [],
        "dns_publish_fixed_ip": false,
    });
    let project = n / shape.networks_per_project;
    standard(&mut four, project);
    standard(&mut six, project);
    [four, six]
}

pub fn router(p: usize) -> Value {
    let mut v = json!({
        "id": uuid(TAG_ROUTER, p), "name": format!("router-{p}"),
        "admin_state_up": true, "status": "ACTIVE", "external_gateway_info": null,
        "availability_zones": [], "distributed": false, "ha": false,
        "availability_zone_hints": [], "routes": [], "flavor_id": null, "tags": [],
        "enable_default_route_bfd": false, "enable_default_route_ecmp": false,
        "conntrack_helpers": [], "external_gateways": [],
    });
    standard(&mut v, p);
    v
}

fn rule(p: usize, group: &str, k: usize, fields: Value) -> Value {
    let mut r = json!({
        "id": uuid(TAG_RULE, p * 16 + k), "security_group_id": group,
        "ethertype": "IPv4", "direction": "ingress", "protocol": null,
        "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null,
        "remote_address_group_id": null, "normalized_cidr": null, "remote_group_id": null,
        "standard_attr_id": p * 16 + k, "belongs_to_default_sg": null, "tags": [],
    });
    for (key, value) in fields.as_object().expect("rule fields") {
        r[key] = value.clone();
    }
    standard(&mut r, p);
    r["description"] = Value::Null;
    r
}

/// Project `p`'s default group (members reach each other, everything
/// out) and its web group (HTTP, HTTPS and ping from anywhere).
pub fn security_groups(p: usize) -> [Value; 2] {
    let (default, web) = (uuid(TAG_SG, p), uuid(TAG_WEB_SG, p));
    let mut d = json!({
        "id": default, "name": "default", "stateful": true, "shared": false, "tags": [],
        "security_group_rules": [
            rule(p, &default, 0, json!({ "direction": "egress" })),
            rule(p, &default, 1, json!({ "direction": "egress", "ethertype": "IPv6" })),
            rule(p, &default, 2, json!({ "remote_group_id": default })),
            rule(p, &default, 3, json!({ "ethertype": "IPv6", "remote_group_id": default })),
        ],
    });
    let tcp = |k, port| {
        rule(
            p,
            &web,
            k,
            json!({ "protocol": "tcp", "port_range_min": port, "port_range_max": port,
                    "remote_ip_prefix": "0.0.0.0/0", "normalized_cidr": "0.0.0.0/0" }),
        )
    };
    let mut w = json!({
        "id": web, "name": "web", "stateful": true, "shared": false, "tags": [],
        "security_group_rules": [
            tcp(4, 80),
            tcp(5, 443),
            rule(p, &web, 6, json!({ "protocol": "icmp" })),
        ],
    });
    standard(&mut d, p);
    standard(&mut w, p);
    d["description"] = json!("Default security group");
    [d, w]
}

/// The fields of a port Neutron returns that the datapath ignores.
fn port_body(mut v: Value, project: usize, host: &str) -> Value {
    let extra = json!({
        "admin_state_up": true, "status": "ACTIVE", "extra_dhcp_opts": [],
        "binding:vnic_type": "normal", "binding:profile": {}, "binding:host_id": host,
        "binding:vif_type": "tap",
        "binding:vif_details": { "port_filter": true, "connectivity": "l2" },
        "qos_policy_id": null, "qos_network_policy_id": null, "dns_domain": "",
        "propagate_uplink_status": true, "numa_affinity_policy": null, "hints": null,
        "data_plane_status": null, "device_profile": null, "hardware_offload_type": null,
        "resource_request": null, "ip_allocation": "immediate", "tags": [],
        "trusted": null, "pvlan_type": null, "pvlan_community": null, "trunk_details": null,
    });
    for (key, value) in extra.as_object().expect("fields") {
        v[key] = value.clone();
    }
    standard(&mut v, project);
    v
}

fn dns(name: &str, addresses: &[&str]) -> Value {
    addresses
        .iter()
        .map(|a| json!({ "ip_address": a, "hostname": name, "fqdn": format!("{name}.example.org.") }))
        .collect()
}

/// The MAC of VM port `g` (router interfaces use the top of the range).
pub fn port_mac(g: usize) -> String {
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        (g >> 16) & 0xff,
        (g >> 8) & 0xff,
        g & 0xff
    )
}

/// VM port `g`: the (j+1)-th of its network; the first two share the
/// network's VIP (.250) as an allowed address pair.
pub fn vm_port(shape: &Shape, g: usize) -> Value {
    let (n, j) = (g / shape.ports_per_network, g % shape.ports_per_network);
    let project = n / shape.networks_per_project;
    let name = format!("vm-{g}");
    let (v4, v6) = (
        format!("{}.{}", v4_net(n), j + 10),
        format!("{}::{:x}", v6_net(n), j + 10),
    );
    let pairs = if j < 2 {
        json!([{ "ip_address": format!("{}.250", v4_net(n)), "mac_address": port_mac(g) }])
    } else {
        json!([])
    };
    let mut groups = vec![uuid(TAG_SG, project)];
    if j % 4 == 0 {
        groups.push(uuid(TAG_WEB_SG, project));
    }
    let v = json!({
        "id": uuid(TAG_PORT, g), "name": name, "network_id": uuid(TAG_NETWORK, n),
        "mac_address": port_mac(g), "device_id": uuid(TAG_DEVICE, g),
        "device_owner": "compute:nova",
        "fixed_ips": [
            { "subnet_id": uuid(TAG_SUBNET4, n), "ip_address": v4 },
            { "subnet_id": uuid(TAG_SUBNET6, n), "ip_address": v6 },
        ],
        "allowed_address_pairs": pairs, "security_groups": groups,
        "port_security_enabled": true, "dns_name": name,
        "dns_assignment": dns(&name, &[&v4, &v6]),
    });
    port_body(v, project, &shape.host_of(g))
}

/// Network `n`'s interface on its project's router (the gateways).
pub fn router_interface(shape: &Shape, n: usize) -> Value {
    let project = n / shape.networks_per_project;
    let (v4, v6) = (format!("{}.1", v4_net(n)), format!("{}::1", v6_net(n)));
    let v = json!({
        "id": uuid(TAG_IFACE, n), "name": "", "network_id": uuid(TAG_NETWORK, n),
        "mac_address": port_mac(0xf0_0000 + n), "device_id": uuid(TAG_ROUTER, project),
        "device_owner": "network:router_interface",
        "fixed_ips": [
            { "subnet_id": uuid(TAG_SUBNET4, n), "ip_address": v4 },
            { "subnet_id": uuid(TAG_SUBNET6, n), "ip_address": v6 },
        ],
        "allowed_address_pairs": [], "security_groups": [],
        "port_security_enabled": false, "dns_name": "",
        "dns_assignment": dns("host-gw", &[&v4, &v6]),
    });
    port_body(v, project, "")
}

/// A chassis record, as an agent publishes it.
pub fn chassis(c: usize) -> Value {
    json!({ "name": chassis_name(c), "underlay_ip": chassis_ip(c), "tunnel_type": "vxlan" })
}

/// Every Neutron object as (key under the layout's prefix, value), what is
/// referred to before what refers to it. Chassis records are apart
/// (they live under a lease).
pub fn neutron_objects(shape: &Shape) -> impl Iterator<Item = (String, Value)> + '_ {
    let key = |collection: &str, v: &Value| {
        format!("neutron/{collection}/{}", v["id"].as_str().expect("id"))
    };
    let networks = (0..shape.networks()).map(move |n| network(shape, n));
    let subnets = (0..shape.networks()).flat_map(move |n| subnets(shape, n));
    let groups = (0..shape.projects()).flat_map(security_groups);
    let routers = (0..shape.projects()).map(router);
    let ifaces = (0..shape.networks()).map(move |n| router_interface(shape, n));
    let ports = (0..shape.ports).map(move |g| vm_port(shape, g));
    networks
        .map(move |v| (key("networks", &v), v))
        .chain(subnets.map(move |v| (key("subnets", &v), v)))
        .chain(groups.map(move |v| (key("security_groups", &v), v)))
        .chain(routers.map(move |v| (key("routers", &v), v)))
        .chain(ifaces.chain(ports).map(move |v| (key("ports", &v), v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_accepts_the_synthetic_cloud() {
        let shape = Shape {
            chassis: 7,
            ports: 200,
            ports_per_network: 20,
            networks_per_project: 3,
        };
        let mut doc = json!({ "networks": [], "subnets": [], "ports": [],
                              "routers": [], "security_groups": [] });
        for (key, value) in neutron_objects(&shape) {
            let collection = key.split('/').nth(1).expect("collection");
            doc[collection].as_array_mut().expect("list").push(value);
        }
        let document = dataplane_config::Document::from_value(doc).expect("a document");
        let store = dataplane_config::validate(&document).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.ports().len(), 200 + shape.networks());
        assert_eq!(store.networks().len(), 10);
        let on_c3 = store
            .ports()
            .values()
            .filter(|p| p.spec.host.as_deref() == Some("compute-0003"))
            .count();
        assert_eq!(on_c3, shape.ports_of(3).count());
    }
}

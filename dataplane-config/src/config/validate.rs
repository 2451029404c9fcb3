//! Turns the raw file into a [`Topology`], or into every problem found, each
//! naming the object and the field. Rules follow what Neutron accepts and
//! rejects, so a configuration Neutron would refuse is refused here too.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::IpAddr,
};

use ipnet::IpNet;

use super::{
    mac::MacAddr,
    model::{
        AddressPair, DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS, Direction, FixedIp, Network, Port,
        PortMatch, ROUTER_INTERFACE_OWNERS, Remote, Router, RouterInterface, Rule, SecurityGroup,
        Subnet, Topology, default_tap_name, label,
    },
    raw::{
        Extra, IGNORED_FIELDS, RawConfig, RawNetwork, RawPort, RawProtocol, RawRouter,
        RawSecurityGroup, RawSubnet,
    },
};

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The object: `port 5e1c... (web-1)`, `subnets[2]`, ...
    pub object: String,
    /// The field path inside the object: `allowed_address_pairs[1].ip_address`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "configuration rejected ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Whether some error mentions `field` (for tests and callers that
    /// react to a specific problem).
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field.contains(field))
    }
}

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, object: &str, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            object: object.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn unknown_fields(&mut self, object: &str, prefix: &str, extra: &Extra) {
        for key in extra.keys() {
            if !IGNORED_FIELDS.contains(&key.as_str()) {
                self.push(
                    object,
                    format!("{prefix}{key}"),
                    "unknown field (misspelt? unknown fields are refused so that a typo cannot weaken security)",
                );
            }
        }
    }
}

fn required<'a>(
    errors: &mut Errors,
    object: &str,
    field: &str,
    value: &'a Option<String>,
) -> Option<&'a str> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Some(v),
        _ => {
            errors.push(object, field, "missing (required)");
            None
        }
    }
}

fn object_label(
    kind: &str,
    collection: &str,
    index: usize,
    id: &Option<String>,
    name: &Option<String>,
) -> String {
    match id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => label(kind, id, name.as_deref().unwrap_or("")),
        _ => format!("{collection}[{index}]"),
    }
}

/// Validates a parsed configuration.
pub fn validate(raw: &RawConfig) -> Result<Topology, ConfigErrors> {
    let mut errors = Errors::default();
    for key in raw.extra.keys() {
        errors.push(
            "configuration",
            key.clone(),
            "unknown section (expected dataplane, networks, subnets, ports, routers, security_groups)",
        );
    }

    let mut max_pairs = DEFAULT_MAX_ALLOWED_ADDRESS_PAIRS;
    if let Some(settings) = &raw.dataplane {
        errors.unknown_fields("dataplane", "", &settings.extra);
        if let Some(n) = settings.max_allowed_address_pair {
            if n < 0 {
                errors.push(
                    "dataplane",
                    "max_allowed_address_pair",
                    format!("{n} is negative"),
                );
            } else {
                max_pairs = n as usize;
            }
        }
    }

    let (networks, network_security) = validate_networks(&mut errors, &raw.networks);
    let network_index: HashMap<&str, usize> = networks
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let subnets = validate_subnets(&mut errors, &raw.subnets, &network_index);
    let security_groups = validate_security_groups(&mut errors, &raw.security_groups);
    let sg_index: HashMap<&str, usize> = security_groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.as_str(), i))
        .collect();
    let (ports, router_ports) = validate_ports(
        &mut errors,
        &raw.ports,
        &Refs {
            networks: &network_index,
            network_security: &network_security,
            subnets: &subnets,
            security_groups: &sg_index,
        },
        max_pairs,
    );
    let routers = validate_routers(&mut errors, &raw.routers, router_ports, &subnets);

    if errors.0.is_empty() {
        Ok(Topology {
            max_allowed_address_pairs: max_pairs,
            networks,
            subnets,
            ports,
            routers,
            security_groups,
        })
    } else {
        Err(ConfigErrors(errors.0))
    }
}

fn validate_networks(errors: &mut Errors, raw: &[RawNetwork]) -> (Vec<Network>, Vec<bool>) {
    let mut networks = Vec::new();
    let mut security = Vec::new();
    let mut seen = HashMap::new();
    for (i, n) in raw.iter().enumerate() {
        let object = object_label("network", "networks", i, &n.id, &n.name);
        errors.unknown_fields(&object, "", &n.extra);
        let Some(id) = required(errors, &object, "id", &n.id) else {
            continue;
        };
        if seen.insert(id.to_string(), i).is_some() {
            errors.push(&object, "id", "duplicate network id");
            continue;
        }
        networks.push(Network {
            id: id.to_string(),
            name: n.name.clone().unwrap_or_default(),
        });
        security.push(n.port_security_enabled.unwrap_or(true));
    }
    (networks, security)
}

fn validate_subnets(
    errors: &mut Errors,
    raw: &[RawSubnet],
    network_index: &HashMap<&str, usize>,
) -> Vec<Subnet> {
    let mut subnets: Vec<Subnet> = Vec::new();
    let mut seen = HashMap::new();
    for (i, s) in raw.iter().enumerate() {
        let object = object_label("subnet", "subnets", i, &s.id, &s.name);
        errors.unknown_fields(&object, "", &s.extra);
        let id = required(errors, &object, "id", &s.id);
        if let Some(id) = id {
            if seen.insert(id.to_string(), i).is_some() {
                errors.push(&object, "id", "duplicate subnet id");
            }
        }
        let network = required(errors, &object, "network_id", &s.network_id).and_then(|nid| {
            let found = network_index.get(nid).copied();
            if found.is_none() {
                errors.push(&object, "network_id", format!("unknown network {nid:?}"));
            }
            found
        });
        let cidr =
            required(errors, &object, "cidr", &s.cidr).and_then(|c| match c.parse::<IpNet>() {
                Ok(net) if net.trunc() != net => {
                    errors.push(
                        &object,
                        "cidr",
                        format!("{c:?} has host bits set; did you mean {}?", net.trunc()),
                    );
                    None
                }
                Ok(net) => Some(net),
                Err(_) => {
                    errors.push(
                        &object,
                        "cidr",
                        format!("{c:?} is not a CIDR such as 10.0.0.0/24"),
                    );
                    None
                }
            });
        if let (Some(v), Some(net)) = (s.ip_version, cidr) {
            let actual = if net.addr().is_ipv4() { 4 } else { 6 };
            if v != 4 && v != 6 {
                errors.push(&object, "ip_version", format!("{v} is neither 4 nor 6"));
            } else if v != actual {
                errors.push(
                    &object,
                    "ip_version",
                    format!("{v} does not match cidr {net} (IPv{actual})"),
                );
            }
        }
        let gateway_ip = match s.gateway_ip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(g) => match g.parse::<IpAddr>() {
                Ok(ip) => {
                    if let Some(net) = cidr {
                        if !net.contains(&ip) {
                            errors.push(
                                &object,
                                "gateway_ip",
                                format!("{ip} is outside cidr {net}"),
                            );
                        } else if ip == net.network() {
                            errors.push(
                                &object,
                                "gateway_ip",
                                format!("{ip} is the network address of {net}"),
                            );
                        }
                    }
                    Some(ip)
                }
                Err(_) => {
                    errors.push(&object, "gateway_ip", format!("{g:?} is not an IP address"));
                    None
                }
            },
        };
        let (Some(id), Some(network), Some(cidr)) = (id, network, cidr) else {
            continue;
        };
        if let Some(other) = subnets.iter().find(|o| {
            o.network == network
                && (o.cidr.contains(&cidr.network()) || cidr.contains(&o.cidr.network()))
        }) {
            errors.push(
                &object,
                "cidr",
                format!(
                    "{cidr} overlaps subnet {} ({}) on the same network",
                    other.id, other.cidr
                ),
            );
        }
        subnets.push(Subnet {
            id: id.to_string(),
            name: s.name.clone().unwrap_or_default(),
            network,
            cidr,
            gateway_ip,
        });
    }
    subnets
}

/// Parses an allowed address pair's `ip_address`: a host address or a
/// prefix; host bits of a prefix are allowed, as in Neutron.
fn parse_pair_ip(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

/// A router interface port, before its router is known to exist.
struct RouterPort {
    label: String,
    device_id: String,
    port: Port,
}

/// What ports may refer to.
struct Refs<'a> {
    networks: &'a HashMap<&'a str, usize>,
    network_security: &'a [bool],
    subnets: &'a [Subnet],
    security_groups: &'a HashMap<&'a str, usize>,
}

fn validate_ports(
    errors: &mut Errors,
    raw: &[RawPort],
    refs: &Refs,
    max_pairs: usize,
) -> (Vec<Port>, Vec<RouterPort>) {
    let (network_index, network_security, subnets) =
        (refs.networks, refs.network_security, refs.subnets);
    let subnet_index: HashMap<&str, usize> = subnets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut ports = Vec::new();
    let mut router_ports = Vec::new();
    let mut seen_ids = HashMap::new();
    let mut seen_taps: HashMap<String, String> = HashMap::new();
    // (network, MAC) -> port label; (network, IP) -> port label.
    let mut macs: BTreeMap<(usize, MacAddr), String> = BTreeMap::new();
    let mut ips: BTreeMap<(usize, IpAddr), String> = BTreeMap::new();

    for (i, p) in raw.iter().enumerate() {
        let object = object_label("port", "ports", i, &p.id, &p.name);
        errors.unknown_fields(&object, "", &p.extra);
        let before = errors.0.len();

        let owner = p.device_owner.as_deref().map(str::trim).unwrap_or("");
        let router_iface = ROUTER_INTERFACE_OWNERS.contains(&owner);
        if owner == "network:router_gateway" {
            errors.push(
                &object,
                "device_owner",
                "router gateway ports (external networks, SNAT) are not supported",
            );
        }
        let device_id = if router_iface {
            required(errors, &object, "device_id", &p.device_id)
        } else {
            None
        };

        let id = required(errors, &object, "id", &p.id);
        if let Some(id) = id {
            if seen_ids.insert(id.to_string(), i).is_some() {
                errors.push(&object, "id", "duplicate port id");
            }
        }
        let network = required(errors, &object, "network_id", &p.network_id).and_then(|nid| {
            let found = network_index.get(nid).copied();
            if found.is_none() {
                errors.push(&object, "network_id", format!("unknown network {nid:?}"));
            }
            found
        });
        let mac = required(errors, &object, "mac_address", &p.mac_address).and_then(|m| {
            match m.parse::<MacAddr>() {
                Ok(mac) if mac.is_multicast() => {
                    errors.push(
                        &object,
                        "mac_address",
                        format!("{mac} is a multicast address"),
                    );
                    None
                }
                Ok(mac) if mac.is_zero() => {
                    errors.push(
                        &object,
                        "mac_address",
                        "00:00:00:00:00:00 is not a usable address",
                    );
                    None
                }
                Ok(mac) => Some(mac),
                Err(e) => {
                    errors.push(&object, "mac_address", format!("{m:?}: {e}"));
                    None
                }
            }
        });
        let port_security_enabled = p
            .port_security_enabled
            .unwrap_or_else(|| network.map(|n| network_security[n]).unwrap_or(true));

        // Fixed IPs.
        let mut fixed_ips = Vec::new();
        for (j, f) in p.fixed_ips.iter().enumerate() {
            let field = format!("fixed_ips[{j}]");
            errors.unknown_fields(&object, &format!("{field}."), &f.extra);
            let Some(ip_str) = required(
                errors,
                &object,
                &format!("{field}.ip_address"),
                &f.ip_address,
            ) else {
                continue;
            };
            let Ok(ip) = ip_str.parse::<IpAddr>() else {
                errors.push(
                    &object,
                    format!("{field}.ip_address"),
                    format!("{ip_str:?} is not an IP address"),
                );
                continue;
            };
            let subnet = match f.subnet_id.as_deref().map(str::trim) {
                Some(sid) if !sid.is_empty() => match subnet_index.get(sid) {
                    Some(&s) => Some(s),
                    None => {
                        errors.push(
                            &object,
                            format!("{field}.subnet_id"),
                            format!("unknown subnet {sid:?}"),
                        );
                        continue;
                    }
                },
                // Neutron picks the subnet that contains the address.
                _ => subnets
                    .iter()
                    .position(|s| Some(s.network) == network && s.cidr.contains(&ip)),
            };
            let Some(subnet) = subnet else {
                errors.push(
                    &object,
                    format!("{field}.ip_address"),
                    format!("{ip} is in no subnet of the port's network"),
                );
                continue;
            };
            let s = &subnets[subnet];
            if network.is_some() && Some(s.network) != network {
                errors.push(
                    &object,
                    format!("{field}.subnet_id"),
                    format!("subnet {} belongs to another network", s.id),
                );
                continue;
            }
            if !s.cidr.contains(&ip) {
                errors.push(
                    &object,
                    format!("{field}.ip_address"),
                    format!("{ip} is outside subnet {} ({})", s.id, s.cidr),
                );
                continue;
            }
            if let IpNet::V4(net) = s.cidr {
                if net.prefix_len() < 31
                    && (IpAddr::V4(net.network()) == ip || IpAddr::V4(net.broadcast()) == ip)
                {
                    errors.push(
                        &object,
                        format!("{field}.ip_address"),
                        format!("{ip} is the network or broadcast address of {}", s.cidr),
                    );
                    continue;
                }
            } else if s.cidr.network() == ip {
                errors.push(
                    &object,
                    format!("{field}.ip_address"),
                    format!("{ip} is the subnet-router anycast address of {}", s.cidr),
                );
                continue;
            }
            if s.gateway_ip == Some(ip) && !router_iface {
                errors.push(
                    &object,
                    format!("{field}.ip_address"),
                    format!("{ip} is the gateway_ip of subnet {}", s.id),
                );
                continue;
            }
            fixed_ips.push(FixedIp { subnet, ip });
        }

        // Allowed address pairs.
        let mut pairs: Vec<AddressPair> = Vec::new();
        if !p.allowed_address_pairs.is_empty() && !port_security_enabled {
            errors.push(
                &object,
                "allowed_address_pairs",
                "not allowed while port_security_enabled is false (Neutron refuses this too)",
            );
        }
        if p.allowed_address_pairs.len() > max_pairs {
            errors.push(
                &object,
                "allowed_address_pairs",
                format!(
                    "{} pairs exceed max_allowed_address_pair = {max_pairs}",
                    p.allowed_address_pairs.len()
                ),
            );
        }
        for (j, a) in p.allowed_address_pairs.iter().enumerate() {
            let field = format!("allowed_address_pairs[{j}]");
            errors.unknown_fields(&object, &format!("{field}."), &a.extra);
            let ip = required(
                errors,
                &object,
                &format!("{field}.ip_address"),
                &a.ip_address,
            )
            .and_then(|s| match parse_pair_ip(s) {
                Some(net) if net.addr().is_multicast() => {
                    errors.push(
                        &object,
                        format!("{field}.ip_address"),
                        format!("{s} is a multicast address"),
                    );
                    None
                }
                Some(net) => Some(net),
                None => {
                    errors.push(
                        &object,
                        format!("{field}.ip_address"),
                        format!("{s:?} is not an IP address or CIDR"),
                    );
                    None
                }
            });
            let pair_mac = match a.mac_address.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(m) => match m.parse::<MacAddr>() {
                    Ok(mac) if mac.is_multicast() => {
                        errors.push(
                            &object,
                            format!("{field}.mac_address"),
                            format!("{mac} is a multicast address"),
                        );
                        continue;
                    }
                    Ok(mac) if mac.is_zero() => {
                        errors.push(
                            &object,
                            format!("{field}.mac_address"),
                            "00:00:00:00:00:00 is not a usable address",
                        );
                        continue;
                    }
                    Ok(mac) => Some(mac),
                    Err(e) => {
                        errors.push(
                            &object,
                            format!("{field}.mac_address"),
                            format!("{m:?}: {e}"),
                        );
                        continue;
                    }
                },
            };
            let (Some(ip), Some(port_mac)) = (ip, mac) else {
                continue;
            };
            let pair = AddressPair {
                ip,
                mac: pair_mac.unwrap_or(port_mac),
                explicit_mac: pair_mac.is_some(),
            };
            // {ip} and {port MAC, ip} are the same pair; so are two ways of
            // writing one prefix.
            if let Some(k) = pairs
                .iter()
                .position(|q| q.ip.trunc() == pair.ip.trunc() && q.mac == pair.mac)
            {
                errors.push(
                    &object,
                    field.to_string(),
                    format!(
                        "duplicate of allowed_address_pairs[{k}] ({} with MAC {})",
                        pair.ip.trunc(),
                        pair.mac
                    ),
                );
                continue;
            }
            pairs.push(pair);
        }

        if router_iface {
            if !p.allowed_address_pairs.is_empty() {
                errors.push(
                    &object,
                    "allowed_address_pairs",
                    "a router interface has no allowed address pairs",
                );
            }
            if p.fixed_ips.is_empty() {
                errors.push(
                    &object,
                    "fixed_ips",
                    "a router interface needs an address on the subnet it attaches to",
                );
            }
            if p.tap_name.is_some() {
                errors.push(
                    &object,
                    "tap_name",
                    "a router interface has no tap: the datapath implements it",
                );
            }
        }

        let mut security_groups = Vec::new();
        for (j, g) in p.security_groups.iter().enumerate() {
            match refs.security_groups.get(g.trim()) {
                Some(&i) => security_groups.push(i),
                None => errors.push(
                    &object,
                    format!("security_groups[{j}]"),
                    format!("unknown security group {g:?} (not in security_groups)"),
                ),
            }
        }
        security_groups.sort_unstable();
        security_groups.dedup();

        if !p.security_groups.is_empty() && !port_security_enabled {
            errors.push(
                &object,
                "security_groups",
                "not allowed while port_security_enabled is false (Neutron refuses this too)",
            );
        }

        let tap = match p.tap_name.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => id.map(default_tap_name).unwrap_or_default(),
        };
        if router_iface {
            // No interface: the datapath is the router.
        } else if id.is_some() && !is_valid_ifname(&tap) {
            errors.push(
                &object,
                "tap_name",
                format!(
                    "{tap:?} is not a valid interface name (1-15 characters, no '/' or spaces)"
                ),
            );
        } else if let Some(other) = seen_taps.get(&tap) {
            errors.push(
                &object,
                "tap_name",
                format!("interface {tap} is already used by {other}"),
            );
        }

        if errors.0.len() != before {
            continue;
        }
        let (Some(id), Some(network), Some(mac)) = (id, network, mac) else {
            continue;
        };
        let port = Port {
            id: id.to_string(),
            name: p.name.clone().unwrap_or_default(),
            network,
            mac,
            fixed_ips,
            allowed_address_pairs: pairs,
            port_security_enabled,
            security_groups,
            tap,
        };
        let label = port.label();
        if let Some(other) = macs.get(&(network, mac)) {
            errors.push(
                &label,
                "mac_address",
                format!("{mac} is already used by {other} on the same network"),
            );
            continue;
        }
        let mut clash = false;
        for f in &port.fixed_ips {
            if let Some(other) = ips.get(&(network, f.ip)) {
                errors.push(
                    &label,
                    "fixed_ips",
                    format!("{} is already used by {other} on the same network", f.ip),
                );
                clash = true;
            }
        }
        if clash {
            continue;
        }
        macs.insert((network, mac), label.clone());
        for f in &port.fixed_ips {
            ips.insert((network, f.ip), label.clone());
        }
        if let Some(device_id) = device_id {
            router_ports.push(RouterPort {
                label,
                device_id: device_id.to_string(),
                port,
            });
            continue;
        }
        seen_taps.insert(port.tap.clone(), label);
        ports.push(port);
    }
    (ports, router_ports)
}

fn validate_routers(
    errors: &mut Errors,
    raw: &[RawRouter],
    router_ports: Vec<RouterPort>,
    subnets: &[Subnet],
) -> Vec<Router> {
    let mut routers: Vec<Router> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let object = object_label("router", "routers", i, &r.id, &r.name);
        errors.unknown_fields(&object, "", &r.extra);
        if !r.routes.is_empty() {
            errors.push(
                &object,
                "routes",
                "static routes are not supported yet (only connected subnets are routed)",
            );
        }
        if r.external_gateway_info.is_some() {
            errors.push(
                &object,
                "external_gateway_info",
                "external gateways (SNAT, floating IPs) are not supported",
            );
        }
        let Some(id) = required(errors, &object, "id", &r.id) else {
            continue;
        };
        if index.contains_key(id) {
            errors.push(&object, "id", "duplicate router id");
            continue;
        }
        index.insert(id.to_string(), routers.len());
        routers.push(Router {
            id: id.to_string(),
            name: r.name.clone().unwrap_or_default(),
            interfaces: Vec::new(),
        });
    }
    for rp in router_ports {
        let Some(&r) = index.get(&rp.device_id) else {
            errors.push(
                &rp.label,
                "device_id",
                format!("unknown router {:?} (not in routers)", rp.device_id),
            );
            continue;
        };
        for (j, f) in rp.port.fixed_ips.iter().enumerate() {
            let cidr = subnets[f.subnet].cidr;
            // Neutron refuses a second interface on a subnet, and subnets
            // whose ranges overlap on one router: routes would be ambiguous.
            let clash = routers[r].interfaces.iter().find(|o| {
                let other = subnets[o.subnet].cidr;
                o.subnet == f.subnet
                    || other.contains(&cidr.network())
                    || cidr.contains(&other.network())
            });
            if let Some(o) = clash {
                errors.push(
                    &rp.label,
                    format!("fixed_ips[{j}]"),
                    format!(
                        "router {} already has an interface ({}) on {} which overlaps {cidr}",
                        routers[r].id, o.port_id, subnets[o.subnet].cidr
                    ),
                );
                continue;
            }
            routers[r].interfaces.push(RouterInterface {
                port_id: rp.port.id.clone(),
                network: rp.port.network,
                subnet: f.subnet,
                mac: rp.port.mac,
                ip: f.ip,
            });
        }
    }
    routers
}

/// IP protocol numbers of the names Neutron accepts.
fn protocol_number(name: &str, ipv6: bool) -> Option<u8> {
    Some(match name {
        "icmp" if ipv6 => 58,
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "egp" => 8,
        "udp" => 17,
        "dccp" => 33,
        "ipv6-encap" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

/// Protocols whose rules may name a destination port range.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

fn validate_security_groups(errors: &mut Errors, raw: &[RawSecurityGroup]) -> Vec<SecurityGroup> {
    // Ids first: rules may refer to any group, including later ones.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<SecurityGroup> = Vec::new();
    let mut objects = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let object = object_label("security group", "security_groups", i, &g.id, &g.name);
        errors.unknown_fields(&object, "", &g.extra);
        if g.stateful == Some(false) {
            errors.push(
                &object,
                "stateful",
                "stateless security groups are not supported yet",
            );
        }
        let Some(id) = required(errors, &object, "id", &g.id) else {
            continue;
        };
        if index.insert(id, groups.len()).is_some() {
            errors.push(&object, "id", "duplicate security group id");
            continue;
        }
        groups.push(SecurityGroup {
            id: id.to_string(),
            name: g.name.clone().unwrap_or_default(),
            rules: Vec::new(),
        });
        objects.push((object, g));
    }
    for (gi, (object, g)) in objects.into_iter().enumerate() {
        for (j, r) in g.security_group_rules.iter().enumerate() {
            let field = |f: &str| format!("security_group_rules[{j}].{f}");
            let before = errors.0.len();
            errors.unknown_fields(&object, &format!("security_group_rules[{j}]."), &r.extra);
            let direction = match r.direction.as_deref().map(str::trim) {
                Some("ingress") => Some(Direction::Ingress),
                Some("egress") => Some(Direction::Egress),
                Some(d) => {
                    errors.push(
                        &object,
                        field("direction"),
                        format!("{d:?} is neither ingress nor egress"),
                    );
                    None
                }
                None => {
                    errors.push(&object, field("direction"), "missing (required)");
                    None
                }
            };
            let ipv6 = match r.ethertype.as_deref().map(str::trim) {
                None | Some("IPv4") => false,
                Some("IPv6") => true,
                Some(e) => {
                    errors.push(
                        &object,
                        field("ethertype"),
                        format!("{e:?} is neither IPv4 nor IPv6"),
                    );
                    false
                }
            };
            let protocol = match &r.protocol {
                None => None,
                Some(RawProtocol::Name(n)) if matches!(n.trim(), "" | "any") => None,
                Some(RawProtocol::Name(n)) => match n.trim().parse::<i64>() {
                    Ok(v) if (0..=255).contains(&v) => Some(v as u8),
                    Ok(v) => {
                        errors.push(
                            &object,
                            field("protocol"),
                            format!("{v} is not an IP protocol number (0-255)"),
                        );
                        None
                    }
                    Err(_) => match protocol_number(&n.trim().to_ascii_lowercase(), ipv6) {
                        Some(p) => Some(p),
                        None => {
                            errors.push(
                                &object,
                                field("protocol"),
                                format!("unknown protocol {n:?}"),
                            );
                            None
                        }
                    },
                },
                Some(RawProtocol::Number(v)) if (0..=255).contains(v) => Some(*v as u8),
                Some(RawProtocol::Number(v)) => {
                    errors.push(
                        &object,
                        field("protocol"),
                        format!("{v} is not an IP protocol number (0-255)"),
                    );
                    None
                }
            };
            if protocol == Some(1) && ipv6 || protocol == Some(58) && !ipv6 {
                errors.push(
                    &object,
                    field("protocol"),
                    "ICMP version does not match the ethertype",
                );
            }
            let (min, max) = (r.port_range_min, r.port_range_max);
            let ports = match (protocol, min, max) {
                (_, None, None) => PortMatch::Any,
                (None, _, _) => {
                    errors.push(
                        &object,
                        field("port_range_min"),
                        "a port range needs a protocol",
                    );
                    PortMatch::Any
                }
                (Some(1 | 58), Some(t), code) => {
                    if !(0..=255).contains(&t) {
                        errors.push(
                            &object,
                            field("port_range_min"),
                            format!("ICMP type {t} is not 0-255"),
                        );
                    }
                    if let Some(c) = code {
                        if !(0..=255).contains(&c) {
                            errors.push(
                                &object,
                                field("port_range_max"),
                                format!("ICMP code {c} is not 0-255"),
                            );
                        }
                    }
                    PortMatch::Icmp(t as u8, code.map(|c| c as u8))
                }
                (Some(1 | 58), None, Some(_)) => {
                    errors.push(
                        &object,
                        field("port_range_max"),
                        "an ICMP code needs an ICMP type (port_range_min)",
                    );
                    PortMatch::Any
                }
                (Some(p), lo, hi) if has_ports(p) => {
                    let lo = lo.or(hi).unwrap_or(1);
                    let hi = hi.or(Some(lo)).unwrap_or(lo);
                    if !(1..=65535).contains(&lo) || !(1..=65535).contains(&hi) {
                        errors.push(
                            &object,
                            field("port_range_min"),
                            format!("ports {lo}-{hi} are not within 1-65535"),
                        );
                    } else if lo > hi {
                        errors.push(
                            &object,
                            field("port_range_max"),
                            format!("{hi} is below port_range_min {lo}"),
                        );
                    }
                    PortMatch::Range(lo as u16, hi as u16)
                }
                (Some(p), _, _) => {
                    errors.push(
                        &object,
                        field("port_range_min"),
                        format!("protocol {p} has no ports"),
                    );
                    PortMatch::Any
                }
            };
            if r.remote_address_group_id
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
            {
                errors.push(
                    &object,
                    field("remote_address_group_id"),
                    "address groups are not supported yet",
                );
            }
            let prefix = r
                .remote_ip_prefix
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let group = r
                .remote_group_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let remote = match (prefix, group) {
                (Some(_), Some(_)) => {
                    errors.push(
                        &object,
                        field("remote_group_id"),
                        "give remote_ip_prefix or remote_group_id, not both",
                    );
                    Remote::Any
                }
                (Some(p), None) => match parse_pair_ip(p) {
                    Some(net) if net.addr().is_ipv6() != ipv6 => {
                        errors.push(
                            &object,
                            field("remote_ip_prefix"),
                            format!(
                                "{p} does not match ethertype {}",
                                if ipv6 { "IPv6" } else { "IPv4" }
                            ),
                        );
                        Remote::Any
                    }
                    // Neutron normalises host bits away; so do we.
                    Some(net) => Remote::Prefix(net.trunc()),
                    None => {
                        errors.push(
                            &object,
                            field("remote_ip_prefix"),
                            format!("{p:?} is not an IP address or CIDR"),
                        );
                        Remote::Any
                    }
                },
                (None, Some(g)) => match index.get(g) {
                    Some(&i) => Remote::Group(i),
                    None => {
                        errors.push(
                            &object,
                            field("remote_group_id"),
                            format!("unknown security group {g:?}"),
                        );
                        Remote::Any
                    }
                },
                (None, None) => Remote::Any,
            };
            let Some(direction) = direction else { continue };
            if errors.0.len() != before {
                continue;
            }
            groups[gi].rules.push(Rule {
                direction,
                ipv6,
                protocol,
                ports,
                remote,
            });
        }
    }
    groups
}

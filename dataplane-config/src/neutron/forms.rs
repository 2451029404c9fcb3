//! The forms a configuration document may take, brought to one: a table of
//! sections (`networks`, `subnets`, `ports`, `routers`, `security_groups`
//! with their rules nested, and `dataplane`), which [`super::Document`]
//! splits into objects.
//!
//! Accepted, and mixed freely:
//! - this project's combined document (sections as above);
//! - Neutron's API bodies as GET returns them: `{"ports": [...]}` (and
//!   `networks`, `subnets`, `routers`, `security_groups`,
//!   `security_group_rules`), `{"port": {...}}` for one object, several of
//!   them in one document or one after another in one file (a JSON stream,
//!   as `curl` of several URLs writes);
//! - what `openstack … show -f json` prints (one object, mostly API names;
//!   `security_group_ids`, `rules` and `ether_type` are renamed), and the
//!   rows `openstack … list -f json` prints ("ID", "Name", …) where they
//!   say what the datapath needs (network, subnet, `router list --long` and
//!   `security group rule list` rows; not port or security group rows);
//! - a bare object or list (as the CLI prints it) in a file named after its
//!   resource: `ports.json`, `port-web-1.json`, `security-group-rules.json`.
//!
//! Separate security group rules are merged into their groups by
//! `security_group_id`. What the datapath cannot serve is dropped with a
//! notice where that is safe (see [`skip`]); the rest is left for the
//! checks to refuse.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::{
    errors::{ConfigError, ConfigErrors, Errors, label},
    neutron::syntax,
    objects::ROUTER_INTERFACE_OWNERS,
};

/// Neutron's resources as a file may hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    SecurityGroupRule,
}

impl Resource {
    const ALL: [Resource; 7] = [
        Resource::Network,
        Resource::Subnet,
        Resource::Port,
        Resource::Router,
        Resource::FloatingIp,
        Resource::SecurityGroup,
        Resource::SecurityGroupRule,
    ];

    /// The key of a GET body listing them (the collection).
    pub const fn collection(self) -> &'static str {
        match self {
            Resource::Network => "networks",
            Resource::Subnet => "subnets",
            Resource::Port => "ports",
            Resource::Router => "routers",
            Resource::FloatingIp => "floatingips",
            Resource::SecurityGroup => "security_groups",
            Resource::SecurityGroupRule => "security_group_rules",
        }
    }

    /// The key of a GET body of one of them.
    pub const fn singular(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Subnet => "subnet",
            Resource::Port => "port",
            Resource::Router => "router",
            Resource::FloatingIp => "floatingip",
            Resource::SecurityGroup => "security_group",
            Resource::SecurityGroupRule => "security_group_rule",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Resource::FloatingIp => "floating IP",
            Resource::SecurityGroup => "security group",
            Resource::SecurityGroupRule => "security group rule",
            other => other.singular(),
        }
    }

    /// The `openstack` command that prints them.
    fn command(self) -> &'static str {
        match self {
            Resource::FloatingIp => "floating ip",
            Resource::SecurityGroup => "security group",
            Resource::SecurityGroupRule => "security group rule",
            other => other.singular(),
        }
    }

    fn from_key(key: &str) -> Option<(Resource, bool)> {
        Resource::ALL.into_iter().find_map(|r| {
            if key == r.collection() {
                Some((r, true))
            } else if key == r.singular() {
                Some((r, false))
            } else {
                None
            }
        })
    }

    /// The resource a file's name says it holds: its name up to the first
    /// dot, `-` read as `_`, is a collection or resource name, alone or
    /// followed by `_` and anything (`ports.json`, `port-web-1.json`,
    /// `security-group-rules.json`).
    pub fn from_file_name(name: &str) -> Option<Resource> {
        let stem = name
            .split('.')
            .next()?
            .to_ascii_lowercase()
            .replace('-', "_");
        let mut names: Vec<(&str, Resource)> = Resource::ALL
            .into_iter()
            .flat_map(|r| [(r.collection(), r), (r.singular(), r)])
            .collect();
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        names.into_iter().find_map(|(n, r)| {
            let rest = stem.strip_prefix(n)?;
            (rest.is_empty() || rest.starts_with('_')).then_some(r)
        })
    }
}

/// A document brought to the combined form, and what was left out of it.
pub struct Normalized {
    pub value: Value,
    pub skipped: Vec<ConfigError>,
}

/// Brings the top-level values of a document (one, or several for a JSON
/// stream) to the combined form. `name` is the file's name, which says what
/// a bare object or list holds.
pub fn normalize(values: Vec<Value>, name: Option<&str>) -> Result<Normalized, ConfigErrors> {
    let bare = name.and_then(Resource::from_file_name);
    let mut errors = Errors::default();
    let mut out = Map::new();
    for value in values {
        collect(&mut out, &mut errors, value, bare);
    }
    for r in Resource::ALL {
        if let Some(Value::Array(items)) = out.get_mut(r.collection()) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Err((object, message)) = api_form(r, item) {
                    let object = object.unwrap_or_else(|| format!("{}[{i}]", r.collection()));
                    errors.push(&object, "", message);
                }
            }
        }
    }
    merge_rules(&mut out, &mut errors);
    let skipped = skip(&mut out);
    errors.into_result(Normalized {
        value: Value::Object(out),
        skipped,
    })
}

/// One top-level value into the sections of `out`.
fn collect(
    out: &mut Map<String, Value>,
    errors: &mut Errors,
    value: Value,
    bare: Option<Resource>,
) {
    let sections = |m: &Map<String, Value>| {
        m.keys()
            .any(|k| k == "dataplane" || Resource::from_key(k).is_some() || links_of(k).is_some())
    };
    match (value, bare) {
        (Value::Object(m), Some(r)) if !sections(&m) => push(out, r, Value::Object(m)),
        (Value::Array(items), Some(r)) => {
            for item in items {
                push(out, r, item);
            }
        }
        (Value::Array(_), None) => errors.push(
            "configuration",
            "",
            "a bare list (as `openstack … list -f json` prints it) needs its resource named: by the \
             file's name (ports.json, security-group-rules.json, …) or by a key, as in \
             {\"ports\": [...]}",
        ),
        (Value::Object(m), _) => {
            for (key, v) in m {
                section(out, errors, key, v);
            }
        }
        (other, _) => errors.push(
            "configuration",
            "",
            format!(
                "expected a table (TOML) or object (JSON) of sections, not {}",
                kind_of(&other)
            ),
        ),
    }
}

fn section(out: &mut Map<String, Value>, errors: &mut Errors, key: String, v: Value) {
    if let Some((r, plural)) = Resource::from_key(&key) {
        match (plural, v) {
            (true, Value::Array(items)) => {
                for item in items {
                    push(out, r, item);
                }
            }
            (false, Value::Object(m)) => push(out, r, Value::Object(m)),
            (true, _) => errors.push("configuration", key, "expected a list of objects"),
            (false, _) => errors.push("configuration", key, "expected an object"),
        }
    } else if let Some(r) = links_of(&key) {
        // GET with `limit` pages a collection and says so in its links.
        if v.as_array().is_some_and(|l| !l.is_empty()) {
            errors.push(
                "configuration",
                key,
                format!(
                    "this {} body is one page of a paginated list: fetch it without `limit` (or \
                     every page) so that no object is missing",
                    r.collection()
                ),
            );
        }
    } else if key == "max_allowed_address_pairs" || key == "max_allowed_address_pair" {
        errors.push(
            "configuration",
            key,
            "unknown section: Neutron's max_allowed_address_pair goes in the dataplane table \
             ([dataplane] max_allowed_address_pair = 10)",
        );
    } else if out.contains_key(&key) {
        errors.push("configuration", key, "given twice");
    } else {
        // `dataplane` and unknown sections: the document reports the latter.
        out.insert(key, v);
    }
}

fn links_of(key: &str) -> Option<Resource> {
    let collection = key.strip_suffix("_links")?;
    Resource::from_key(collection)
        .filter(|(_, plural)| *plural)
        .map(|(r, _)| r)
}

fn push(out: &mut Map<String, Value>, r: Resource, item: Value) {
    let list = out
        .entry(r.collection())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        list.push(item);
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// How errors name an object not yet checked.
fn object_label(r: Resource, m: &Map<String, Value>) -> Option<String> {
    let id = m.get("id").or_else(|| m.get("ID"))?.as_str()?;
    // A floating IP has no name: its address says which it is.
    let (name, row_name) = match r {
        Resource::FloatingIp => ("floating_ip_address", "Floating IP Address"),
        _ => ("name", "Name"),
    };
    let name = m
        .get(name)
        .or_else(|| m.get(row_name))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(label(r.noun(), id, name))
}

/// Brings one object to the API's field names: a row of `openstack … list`
/// is translated, names `openstack … show` prints differently are renamed.
fn api_form(r: Resource, item: &mut Value) -> Result<(), (Option<String>, String)> {
    let Value::Object(m) = item else {
        return Ok(()); // the document reports it
    };
    let here = object_label(r, m);
    if m.contains_key("ID") && !m.contains_key("id") {
        *item = Value::Object(list_row(r, m).map_err(|e| (here, e))?);
        return Ok(());
    }
    let aliases: &[(&str, &str)] = match r {
        Resource::Port => &[("security_group_ids", "security_groups")],
        Resource::SecurityGroup => &[("rules", "security_group_rules")],
        Resource::SecurityGroupRule => &[("ether_type", "ethertype")],
        _ => &[],
    };
    for (cli, api) in aliases {
        if let Some(v) = m.remove(*cli) {
            match m.get(*api) {
                Some(existing) if *existing != v => {
                    return Err((
                        here,
                        format!(
                            "{cli} (as `openstack {} show` prints {api}) and {api} differ",
                            r.command()
                        ),
                    ));
                }
                _ => {
                    m.insert(api.to_string(), v);
                }
            }
        }
    }
    Ok(())
}

/// A row of `openstack <resource> list -f json` (python-openstackclient's
/// column headers) as an API object, when the row says everything the
/// datapath needs.
fn list_row(r: Resource, row: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let columns = list_columns(r)?;
    let mut m = Map::new();
    for (header, v) in row {
        let Some((_, field)) = columns.iter().find(|(h, _)| h == header) else {
            return Err(format!(
                "{header:?} is not a column of `openstack {} list`",
                r.command()
            ));
        };
        m.insert(field.to_string(), v.clone());
    }
    match r {
        // Nor the physical network: an external network's uplink would be
        // unknown, and its traffic dropped without a word.
        Resource::Network
            if m.get("router:external")
                .is_some_and(|v| syntax::boolean(v) == Ok(true)) =>
        {
            return Err(
                "a row of `openstack network list` for an external network, which does not \
                 print provider:physical_network (which uplink reaches it): give `openstack \
                 network show -f json` of it"
                    .into(),
            );
        }
        // `network list --long` shows the type but not the segmentation id
        // (the VNI a tunnelled network needs): a file of such rows
        // describes one host's networks, which need neither.
        Resource::Network => {
            m.remove("provider:network_type");
        }
        // Without --long the list has no gateway: unknown, so none.
        // IPv6 modes are not among the columns: what a router advertises
        // and which addresses hosts make could not be told.
        Resource::Subnet if m.get("ip_version").is_some_and(|v| v == 6 || v == "6") => {
            return Err(
                "a row of `openstack subnet list` for an IPv6 subnet, which does not print \
                 ipv6_ra_mode and ipv6_address_mode (refused rather than guessed): give \
                 `openstack subnet show -f json` of it"
                    .into(),
            );
        }
        Resource::Subnet if !row.contains_key("Gateway") => {
            m.insert("gateway_ip".into(), Value::Null);
        }
        Resource::Router if !row.contains_key("Routes") => {
            return Err(
                "a row of `openstack router list` without --long, which does not print the \
                 static routes (refused rather than ignored): use `openstack router list --long`"
                    .into(),
            );
        }
        Resource::SecurityGroupRule => rule_row(&mut m)?,
        _ => {}
    }
    Ok(m)
}

/// The columns of `openstack <resource> list -f json` and the API fields
/// they show (with and without `--long`), for the lists that say what the
/// datapath needs.
fn list_columns(r: Resource) -> Result<&'static [(&'static str, &'static str)], String> {
    Ok(match r {
        Resource::Network => &[
            ("ID", "id"),
            ("Name", "name"),
            ("Status", "status"),
            ("Project", "project_id"),
            ("State", "admin_state_up"),
            ("Shared", "shared"),
            ("Subnets", "subnets"),
            ("Network Type", "provider:network_type"),
            ("Router Type", "router:external"),
            ("Availability Zones", "availability_zones"),
            ("Tags", "tags"),
        ],
        Resource::Subnet => &[
            ("ID", "id"),
            ("Name", "name"),
            ("Network", "network_id"),
            ("Subnet", "cidr"),
            ("Project", "project_id"),
            ("DHCP", "enable_dhcp"),
            ("Name Servers", "dns_nameservers"),
            ("Allocation Pools", "allocation_pools"),
            ("Host Routes", "host_routes"),
            ("IP Version", "ip_version"),
            ("Gateway", "gateway_ip"),
            ("Service Types", "service_types"),
            ("Tags", "tags"),
        ],
        Resource::Router => &[
            ("ID", "id"),
            ("Name", "name"),
            ("Status", "status"),
            ("State", "admin_state_up"),
            ("Project", "project_id"),
            ("Distributed", "distributed"),
            ("HA", "ha"),
            ("Routes", "routes"),
            ("External gateway info", "external_gateway_info"),
            ("Availability zones", "availability_zones"),
            ("Tags", "tags"),
        ],
        // Without --long there is no router: the store finds it.
        Resource::FloatingIp => &[
            ("ID", "id"),
            ("Floating IP Address", "floating_ip_address"),
            ("Fixed IP Address", "fixed_ip_address"),
            ("Port", "port_id"),
            ("Floating Network", "floating_network_id"),
            ("Project", "project_id"),
            ("Router", "router_id"),
            ("Status", "status"),
            ("Description", "description"),
            ("Tags", "tags"),
            ("DNS Name", "dns_name"),
            ("DNS Domain", "dns_domain"),
        ],
        Resource::SecurityGroupRule => &[
            ("ID", "id"),
            ("IP Protocol", "protocol"),
            ("Ethertype", "ethertype"),
            ("IP Range", "remote_ip_prefix"),
            ("Port Range", "port_range"),
            ("Direction", "direction"),
            ("Remote Security Group", "remote_group_id"),
            ("Remote Address Group", "remote_address_group_id"),
            ("Security Group", "security_group_id"),
        ],
        Resource::Port => {
            return Err(
                "a row of `openstack port list`, which does not print network_id, \
                 allowed_address_pairs or port_security_enabled: give `openstack port show -f \
                 json` of each port, or the body of GET /v2.0/ports"
                    .into(),
            );
        }
        Resource::SecurityGroup => {
            return Err(
                "a row of `openstack security group list`, which does not print the rules or \
                 `stateful`: give `openstack security group show -f json` of each group, or the \
                 body of GET /v2.0/security-groups"
                    .into(),
            );
        }
    })
}

/// The columns `openstack security group rule list` formats: "IP Range"
/// shows 0.0.0.0/0 or ::/0 for no prefix; "Port Range" is "80:443", or for
/// ICMP "type=8:code=0" written by truthiness, so that a type or code of 0
/// does not show ("" and "type=3" are ambiguous and refused: a rule cannot
/// be guessed).
fn rule_row(m: &mut Map<String, Value>) -> Result<(), String> {
    if !m.contains_key("security_group_id") {
        return Err(
            "a row of `openstack security group rule list GROUP`, which does not say its \
             group: list the rules without a group (then each row has \"Security Group\"), or \
             give `openstack security group show -f json`"
                .into(),
        );
    }
    if let Some(Value::String(p)) = m.get("remote_ip_prefix") {
        if p == "0.0.0.0/0" || p == "::/0" {
            m.insert("remote_ip_prefix".into(), Value::Null);
        }
    }
    let range = match m.remove("port_range") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(other) => return Err(format!("\"Port Range\" {other} is not a string")),
    };
    let icmp = match m.get("protocol") {
        Some(Value::String(p)) => {
            matches!(
                p.to_ascii_lowercase().as_str(),
                "icmp" | "ipv6-icmp" | "icmpv6" | "1" | "58"
            )
        }
        Some(Value::Number(n)) => matches!(n.as_u64(), Some(1 | 58)),
        _ => false,
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("\"Port Range\" {range:?} is not a port range"))
    };
    let (min, max) = if icmp {
        let ambiguous = || {
            format!(
                "ICMP rule with \"Port Range\" {range:?}: `openstack security group rule list` \
                 leaves out an ICMP type or code of 0, so the rule cannot be told: give `openstack \
                 security group show -f json` or GET /v2.0/security-group-rules"
            )
        };
        match range.split_once(':') {
            Some((t, c)) if c.starts_with("code=") => {
                let code = number(&c["code=".len()..])?;
                let ty = match t.strip_prefix("type=") {
                    Some(t) => number(t)?,
                    None if t.is_empty() => Value::from(0),
                    None => return Err(ambiguous()),
                };
                (ty, code)
            }
            _ => return Err(ambiguous()),
        }
    } else if range.is_empty() {
        (Value::Null, Value::Null)
    } else {
        match range.split_once(':') {
            Some((lo, hi)) => (number(lo)?, number(hi)?),
            None => return Err(format!("\"Port Range\" {range:?} is not a port range")),
        }
    };
    m.insert("port_range_min".into(), min);
    m.insert("port_range_max".into(), max);
    Ok(())
}

/// Rules given on their own (`security_group_rules`) go into their groups.
/// A rule also nested in its group (a dump of both collections) is kept
/// once if both copies agree.
fn merge_rules(out: &mut Map<String, Value>, errors: &mut Errors) {
    let Some(Value::Array(rules)) = out.remove("security_group_rules") else {
        return;
    };
    let mut groups = match out.remove("security_groups") {
        Some(Value::Array(g)) => g,
        Some(other) => {
            out.insert("security_groups".into(), other);
            return;
        }
        None => Vec::new(),
    };
    for (i, rule) in rules.into_iter().enumerate() {
        let here = rule
            .as_object()
            .and_then(|m| object_label(Resource::SecurityGroupRule, m))
            .unwrap_or_else(|| format!("security_group_rules[{i}]"));
        let Some(group_id) = rule.get("security_group_id").and_then(Value::as_str) else {
            errors.push(
                &here,
                "security_group_id",
                "missing (required for a rule given on its own)",
            );
            continue;
        };
        let Some(group) = groups
            .iter_mut()
            .find(|g| g.get("id").and_then(Value::as_str).map(str::trim) == Some(group_id.trim()))
        else {
            errors.push(
                &here,
                "security_group_id",
                format!("no security group {group_id:?} in this document"),
            );
            continue;
        };
        let Some(g) = group.as_object_mut() else {
            continue;
        };
        let nested = g
            .entry("security_group_rules")
            .or_insert_with(|| Value::Array(Vec::new()));
        if nested.is_null() {
            *nested = Value::Array(Vec::new());
        }
        let Some(nested) = nested.as_array_mut() else {
            continue; // the check reports it
        };
        let id = rule.get("id");
        match nested.iter().find(|n| id.is_some() && n.get("id") == id) {
            Some(copy) if same_rule(copy, &rule) => {}
            Some(_) => errors.push(
                &here,
                "",
                format!("differs from its copy nested in security group {group_id}"),
            ),
            None => nested.push(rule),
        }
    }
    out.insert("security_groups".into(), Value::Array(groups));
}

/// Whether two copies of a rule say the same (0.0.0.0/0, ::/0 and no
/// prefix alike; protocol names in any case).
fn same_rule(a: &Value, b: &Value) -> bool {
    let field = |v: &Value, f: &str| -> Value {
        let x = v.get(f).cloned().unwrap_or(Value::Null);
        match (f, &x) {
            ("remote_ip_prefix", Value::String(p))
                if p.is_empty() || p == "0.0.0.0/0" || p == "::/0" =>
            {
                Value::Null
            }
            ("protocol", Value::String(p)) => Value::String(p.to_ascii_lowercase()),
            _ => x,
        }
    };
    [
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "remote_address_group_id",
    ]
    .iter()
    .all(|f| field(a, f) == field(b, f))
}

/// Drops, with a notice, what the datapath cannot serve and may safely
/// leave out:
/// - a router's `external_gateways` (several gateways) when its first is
///   `external_gateway_info`, which is served (one that says otherwise is
///   left for the check to refuse); IPv6 addresses of a gateway are noted
///   (kept, so that they still agree with the gateway port, and left out
///   when compiled: the external gateway is IPv4);
/// - floating IP ports (`network:floatingip`): they hold the address for
///   Neutron's IPAM and have no tap; the floating IP itself is served;
/// - ports and routers with `admin_state_up` false (and such a router's
///   interfaces, gateway port and floating IPs): Neutron passes no
///   traffic through them, and neither does the datapath when it leaves
///   them out.
///
/// Static routes, stateless groups and address-group rules are not
/// dropped: ignoring them would open or close traffic unexpectedly, so the
/// checks refuse them.
fn skip(out: &mut Map<String, Value>) -> Vec<ConfigError> {
    let mut skipped = Vec::new();
    let mut note = |object: String, field: &str, message: &str| {
        skipped.push(ConfigError {
            object,
            field: field.to_string(),
            message: message.to_string(),
        })
    };
    let down_routers = skip_routers(out, &mut note);
    skip_ports(out, &mut note, &down_routers);
    skip_floating_ips(out, &mut note, &down_routers);
    skipped
}

/// What [`skip`] does to a document, for one object alone (a database
/// holds one object per key): strips what is ignored in place and returns
/// the notices, with `true` if the whole object is left out (the caller
/// then treats it as absent). A router that is down is left out, but its
/// interfaces, which are other keys, are not: they refer to a router that
/// is not there, which the checks refuse (they wait until it is up).
pub fn leave_out(kind: super::Kind, value: &mut Value) -> (bool, Vec<ConfigError>) {
    let section = kind.section();
    if !matches!(
        kind,
        super::Kind::Port | super::Kind::Router | super::Kind::FloatingIp
    ) {
        return (false, Vec::new());
    }
    let mut out = Map::new();
    out.insert(section.into(), Value::Array(vec![value.take()]));
    let notes = skip(&mut out);
    match out.remove(section) {
        Some(Value::Array(mut kept)) if kept.len() == 1 => {
            *value = kept.pop().unwrap_or_default();
            (false, notes)
        }
        _ => (true, notes),
    }
}

/// Records a notice: object, field, message.
type Note<'a> = dyn FnMut(String, &str, &str) + 'a;

/// Routers down (returned, for their interfaces) and external gateways.
fn skip_routers(out: &mut Map<String, Value>, note: &mut Note) -> BTreeSet<String> {
    let mut down_routers = BTreeSet::new();
    if let Some(Value::Array(routers)) = out.get_mut("routers") {
        routers.retain_mut(|router| {
            let Some(m) = router.as_object_mut() else {
                return true;
            };
            let here = object_label(Resource::Router, m).unwrap_or_else(|| "router".into());
            if admin_down(m) {
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    down_routers.insert(id.trim().to_string());
                }
                note(
                    here,
                    "admin_state_up",
                    "skipped with its interfaces: the router is administratively down, so nothing \
                     is routed through it",
                );
                return false;
            }
            gateway_notes(m, &here, note);
            true
        });
    }
    down_routers
}

/// Gateway and floating IP ports, ports down and interfaces of routers
/// down.
fn skip_ports(out: &mut Map<String, Value>, note: &mut Note, down_routers: &BTreeSet<String>) {
    if let Some(Value::Array(ports)) = out.get_mut("ports") {
        ports.retain(|port| {
            let Some(m) = port.as_object() else {
                return true;
            };
            let here = object_label(Resource::Port, m).unwrap_or_else(|| "port".into());
            let owner = m
                .get("device_owner")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim();
            let device = m
                .get("device_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim();
            let why = match owner {
                "network:floatingip" => Some((
                    "device_owner",
                    "skipped: a floating IP's own port (it holds the address for Neutron, and has \
                     no tap); the floating IP (floatingips) is what the datapath serves",
                )),
                o if (ROUTER_INTERFACE_OWNERS.contains(&o) || o == "network:router_gateway")
                    && down_routers.contains(device) =>
                {
                    Some((
                        "device_id",
                        "skipped: a port of a router that is administratively down",
                    ))
                }
                _ if admin_down(m) => Some((
                    "admin_state_up",
                    "skipped: the port is administratively down, so Neutron passes none of its \
                     traffic; left out, its tap is not connected",
                )),
                _ => None,
            };
            match why {
                Some((field, message)) => {
                    note(here, field, message);
                    false
                }
                None => true,
            }
        });
    }
}

/// A router's `external_gateways` left out when it says what
/// `external_gateway_info` says (its first gateway is that one), and
/// IPv6 gateway addresses noted.
fn gateway_notes(m: &mut Map<String, Value>, here: &str, note: &mut Note) {
    let info = m
        .get("external_gateway_info")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(Value::Array(ips)) = info.get("external_fixed_ips") {
        for (i, ip) in ips.iter().enumerate() {
            let v6 = ip
                .get("ip_address")
                .and_then(Value::as_str)
                .and_then(|a| syntax::ip_address(a).ok())
                .is_some_and(|a| a.is_ipv6());
            if v6 {
                note(
                    here.to_string(),
                    &format!("external_gateway_info.external_fixed_ips[{i}]"),
                    "IPv6 address left out: the datapath's external gateway (SNAT, floating IPs) \
                     is IPv4",
                );
            }
        }
    }
    let gateways = match m.get("external_gateways") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            m.remove("external_gateways");
            return;
        }
    };
    if !same_gateway(&gateways[0], &info) {
        return; // the check refuses it
    }
    let more = gateways.len() - 1;
    m.remove("external_gateways");
    let message = if more == 0 {
        "ignored: it repeats external_gateway_info, which is served".to_string()
    } else {
        format!(
            "ignored: its first gateway is external_gateway_info, which is served; the {more} \
             other(s) (external-gateway-multihoming) are not"
        )
    };
    note(here.to_string(), "external_gateways", &message);
}

/// Whether two gateways (`external_gateway_info` and an entry of
/// `external_gateways`) say the same: network, SNAT (true by default) and
/// addresses in any order.
fn same_gateway(a: &Value, b: &Value) -> bool {
    fn network(v: &Value) -> Option<&str> {
        v.get("network_id").and_then(Value::as_str).map(str::trim)
    }
    let snat = |v: &Value| {
        v.get("enable_snat")
            .filter(|s| !s.is_null())
            .map_or(Ok(true), syntax::boolean)
    };
    fn ips(v: &Value) -> Vec<(Option<&str>, Option<&str>)> {
        let mut out: Vec<(Option<&str>, Option<&str>)> = v
            .get("external_fixed_ips")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .map(|f| {
                        let text = |k: &str| f.get(k).and_then(Value::as_str).map(str::trim);
                        (text("subnet_id"), text("ip_address"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
    a.is_object()
        && b.is_object()
        && network(a) == network(b)
        && snat(a) == snat(b)
        && ips(a) == ips(b)
}

/// Floating IPs of a router that is administratively down.
fn skip_floating_ips(
    out: &mut Map<String, Value>,
    note: &mut Note,
    down_routers: &BTreeSet<String>,
) {
    if let Some(Value::Array(fips)) = out.get_mut("floatingips") {
        fips.retain(|fip| {
            let Some(m) = fip.as_object() else {
                return true;
            };
            let router = m.get("router_id").and_then(Value::as_str).unwrap_or("");
            if !down_routers.contains(router.trim()) {
                return true;
            }
            let here =
                object_label(Resource::FloatingIp, m).unwrap_or_else(|| "floating IP".into());
            note(
                here,
                "router_id",
                "skipped: its router is administratively down",
            );
            false
        });
    }
}

fn admin_down(m: &Map<String, Value>) -> bool {
    m.get("admin_state_up")
        .is_some_and(|v| syntax::boolean(v) == Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_the_resource() {
        for (name, r) in [
            ("ports.json", Some(Resource::Port)),
            ("port-web-1.json", Some(Resource::Port)),
            ("Ports.JSON", Some(Resource::Port)),
            (
                "security-group-rules.json",
                Some(Resource::SecurityGroupRule),
            ),
            (
                "security_group_rule.json",
                Some(Resource::SecurityGroupRule),
            ),
            ("security-groups-prod.json", Some(Resource::SecurityGroup)),
            ("security-group.json", Some(Resource::SecurityGroup)),
            ("subnets.json", Some(Resource::Subnet)),
            ("routers.json", Some(Resource::Router)),
            ("networks.v2.json", Some(Resource::Network)),
            ("portal.json", None),
            ("config.json", None),
            ("sg.json", None),
        ] {
            assert_eq!(Resource::from_file_name(name), r, "{name}");
        }
    }
}

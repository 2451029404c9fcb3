//! What Neutron prints loads as it is: the bodies of GET /v2.0/networks,
//! /subnets, /ports, /routers, /floatingips, /security-groups and
//! /security-group-rules, and what `openstack … show/list -f json` prints.
//!
//! The fixtures (tests/fixtures/neutron/) are the output of a Neutron 29
//! (2026.1) API server with ML2 and the router, QoS and segments service
//! plugins, and of python-openstackclient 10.5 against it, with the fields
//! of extensions that server did not load added by hand after neutron-lib's
//! API definitions (networks: `pvlan`, `project_default`; subnets:
//! `dns_publish_fixed_ip`, `leak_routes`; ports: `trusted`, `pvlan_type`,
//! `pvlan_community`, `trunk_details`; routers: `enable_default_route_bfd`,
//! `enable_default_route_ecmp`, `conntrack_helpers`, `external_gateways`),
//! and the project id made a Keystone-like one. The scenario: a tenant
//! network with an IPv4 and an IPv6 (SLAAC) subnet, an external network,
//! a router with an external gateway and an interface on each tenant
//! subnet (the IPv6 one on Neutron's default IPv6 gateway, the subnet's
//! network address), two VRRP ports sharing 10.20.0.100, a port with port
//! security off, a DHCP port, an administratively down port, the router's
//! gateway port and a floating IP's port; groups `default` and `web`.
//!
//! The floating IPs (api/floatingips.json, cli/floating-ip*.json) and the
//! gateway port's `openstack port show` (cli/port-router-gateway.json)
//! were written by hand after neutron-lib's l3 API definition and
//! python-openstackclient's columns, to match that scenario: the floating
//! IP whose port is in ports.json, associated with vrrp-a, and one not
//! associated.

use std::path::PathBuf;

use dataplane_config::{ConfigErrors, Document, Format, Topology, topology::Remote};
use serde_json::{Value, json};

fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/neutron")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const BODIES: [&str; 7] = [
    "networks",
    "subnets",
    "ports",
    "routers",
    "floatingips",
    "security-groups",
    "security-group-rules",
];

/// The six API bodies one after another, as `curl` of the six URLs writes
/// them into one file.
fn api_stream() -> String {
    BODIES
        .iter()
        .map(|b| fixture(&format!("api/{b}.json")))
        .collect()
}

fn load(text: &str, name: &str) -> Result<(Document, Topology), ConfigErrors> {
    let doc = Document::parse_named(text, Format::Json, Some(name))?;
    let store = dataplane_config::validate(&doc)?;
    Ok((doc, Topology::of(&store)))
}

/// External networks, router gateways and floating IPs as the store
/// resolved them, as sorted lines.
fn outside(text: &str, name: &str) -> Vec<String> {
    let doc = Document::parse_named(text, Format::Json, Some(name)).unwrap();
    let store = dataplane_config::validate(&doc).unwrap_or_else(|e| panic!("{e}"));
    let mut lines = Vec::new();
    for n in store.networks().values().filter(|n| n.external) {
        lines.push(format!("external {} {:?}", n.id, n.physical_network));
    }
    for r in store.routers().values() {
        let port = store
            .gateway_port(&r.id)
            .map(|p| (p.id(), p.spec.mac.to_string()));
        lines.push(format!("router {} {:?} port {port:?}", r.id, r.gateway));
    }
    for f in store.floating_ips().values() {
        lines.push(format!("floating {f:?}"));
    }
    lines.sort();
    lines
}

fn skipped(doc: &Document) -> Vec<String> {
    doc.skipped.iter().map(ToString::to_string).collect()
}

/// The topology as sorted lines, to compare configurations that list
/// their objects in different orders.
fn summary(t: &Topology) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &t.subnets {
        lines.push(format!("subnet {} {} {:?}", s.id, s.cidr, s.gateway_ip));
    }
    for p in &t.ports {
        let mut pairs: Vec<String> = p
            .allowed_address_pairs
            .iter()
            .map(|a| format!("{}@{}", a.ip.trunc(), a.mac))
            .collect();
        pairs.sort();
        let mut groups: Vec<&str> = p
            .security_groups
            .iter()
            .map(|g| t.security_groups[*g].id.as_str())
            .collect();
        groups.sort();
        let ips: Vec<String> = p.fixed_ips.iter().map(|f| f.ip.to_string()).collect();
        lines.push(format!(
            "port {} {} {} ips {ips:?} pairs {pairs:?} security {} groups {groups:?}",
            p.id, p.mac, p.tap, p.port_security_enabled
        ));
    }
    for g in &t.security_groups {
        let mut rules: Vec<String> = g
            .rules
            .iter()
            .map(|r| {
                let remote = match &r.remote {
                    Remote::Group(i) => format!("group {}", t.security_groups[*i].id),
                    other => format!("{other:?}"),
                };
                format!(
                    "{:?} v6 {} {:?} {:?} {remote}",
                    r.direction, r.ipv6, r.protocol, r.ports
                )
            })
            .collect();
        rules.sort();
        lines.push(format!("group {} {rules:?}", g.id));
    }
    for r in &t.routers {
        let mut ifaces: Vec<String> = r
            .interfaces
            .iter()
            .map(|i| format!("{}={}", i.port_id, i.ip))
            .collect();
        ifaces.sort();
        lines.push(format!("router {} {ifaces:?}", r.id));
    }
    lines.sort();
    lines
}

const VRRP_A: &str = "40311219-91db-41c5-860b-fde8f24b637c";
const WEB: &str = "f436db13-e3e8-4dcc-8bb7-63c0f94f9a8d";

#[test]
fn neutron_api_bodies_load() {
    let (doc, t) = load(&api_stream(), "neutron-dump.json").unwrap_or_else(|e| panic!("{e}"));
    let skipped = skipped(&doc);
    for needle in [
        "router 2e0f2d3b-cc07-4ad2-a730-9d54a6302285 (edge): external_gateways: ignored: it \
         repeats external_gateway_info",
        "port b5e5b9ad-afd9-4a20-9875-c81405bbc5e5: device_owner: skipped: a floating IP's own port",
        "(parked): admin_state_up: skipped",
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(needle)),
            "{needle}\n{skipped:#?}"
        );
    }
    assert_eq!(skipped.len(), 3, "{skipped:#?}");
    let outside = outside(&api_stream(), "dump.json");
    let expected = [
        "external 3abf95ca-fce3-49a1-ba18-140e231fbd9f Some(\"physnet1\")",
        "floating FloatingIp { id: \"0c5d7a2e-8b41-4f6a-9e3d-2a1b4c6d8e0f\", floating_ip_address: \
         203.0.113.82, floating_network_id: \"3abf95ca-fce3-49a1-ba18-140e231fbd9f\", port_id: \
         None, fixed_ip_address: None, router_id: None, association: None }",
        "floating FloatingIp { id: \"e61e3eb0-120f-483a-8cc0-b6422fdaa3f1\", floating_ip_address: \
         203.0.113.81, floating_network_id: \"3abf95ca-fce3-49a1-ba18-140e231fbd9f\", port_id: \
         Some(\"40311219-91db-41c5-860b-fde8f24b637c\"), fixed_ip_address: Some(10.20.0.10), \
         router_id: Some(\"2e0f2d3b-cc07-4ad2-a730-9d54a6302285\"), association: \
         Some(Association { port_id: \"40311219-91db-41c5-860b-fde8f24b637c\", fixed: 10.20.0.10, \
         subnet_id: \"569f8b40-5ec3-4bb2-8e49-3b1d3f8de90a\", router: \
         \"2e0f2d3b-cc07-4ad2-a730-9d54a6302285\" }) }",
        "router 2e0f2d3b-cc07-4ad2-a730-9d54a6302285 Some(ExternalGateway { network_id: \
         \"3abf95ca-fce3-49a1-ba18-140e231fbd9f\", enable_snat: true, external_fixed_ips: \
         [FixedIpSpec { subnet_id: Some(\"07955eff-9c7e-4e9b-9c5e-d8894f9d3df2\"), ip: \
         203.0.113.157 }] }) port Some((\"4c224eae-0617-4bf3-a1db-cb8eea91f867\", \
         \"fa:16:3e:8d:90:f3\"))",
    ];
    assert_eq!(outside, expected);
    assert_eq!(t.networks.len(), 2);
    assert_eq!(t.subnets.len(), 3);
    let v6 = t.subnets.iter().find(|s| s.name == "tenant-v6").unwrap();
    assert_eq!(
        v6.gateway_ip.unwrap().to_string(),
        "fd00:20::",
        "Neutron's IPv6 default"
    );
    // VM ports: the DHCP port, vrrp-a, vrrp-b, no-security; the router's
    // interfaces are the router's.
    assert_eq!(t.ports.len(), 4, "{:#?}", t.ports);
    assert_eq!(t.routers.len(), 1);
    let ifaces: Vec<String> = t.routers[0]
        .interfaces
        .iter()
        .map(|i| i.ip.to_string())
        .collect();
    assert_eq!(ifaces.len(), 2);
    assert!(ifaces.contains(&"fd00:20::".to_string()), "{ifaces:?}");
    let a = t.ports.iter().find(|p| p.id == VRRP_A).unwrap();
    // Four pairs as Neutron stores them; 10.20.0.100 and 10.20.0.100/32
    // are one entry.
    assert_eq!(
        a.allowed_address_pairs.len(),
        3,
        "{:#?}",
        a.allowed_address_pairs
    );
    let macs: Vec<String> = a
        .allowed_address_pairs
        .iter()
        .map(|p| p.mac.to_string())
        .collect();
    assert!(
        macs.contains(&"fa:16:3e:aa:bb:cc".to_string()),
        "FA-16-3E-AA-BB-CC read"
    );
    assert_eq!(a.security_groups.len(), 2);
    let web = t.security_groups.iter().find(|g| g.id == WEB).unwrap();
    // Its two default egress rules and six created, each nested in the
    // group and listed on its own.
    assert_eq!(web.rules.len(), 8, "{:#?}", web.rules);
    let off = t.ports.iter().find(|p| p.name == "no-security").unwrap();
    assert!(!off.port_security_enabled);
}

#[test]
fn one_document_with_every_body_is_the_same() {
    let mut doc = serde_json::Map::new();
    for b in BODIES {
        let Value::Object(body) = serde_json::from_str(&fixture(&format!("api/{b}.json"))).unwrap()
        else {
            panic!("{b} is not an object")
        };
        doc.extend(body);
    }
    let (_, t) =
        load(&Value::Object(doc).to_string(), "config.json").unwrap_or_else(|e| panic!("{e}"));
    let (_, reference) = load(&api_stream(), "dump.json").unwrap();
    assert_eq!(summary(&t), summary(&reference));
}

#[test]
fn rules_alone_or_nested_alone_are_the_same() {
    // The groups without their nested rules, and the rules on their own.
    let mut groups: Value = serde_json::from_str(&fixture("api/security-groups.json")).unwrap();
    for g in groups["security_groups"].as_array_mut().unwrap() {
        g["security_group_rules"] = json!([]);
    }
    let text = [
        fixture("api/networks.json"),
        fixture("api/subnets.json"),
        fixture("api/ports.json"),
        fixture("api/routers.json"),
        groups.to_string(),
        fixture("api/security-group-rules.json"),
    ]
    .concat();
    let (_, t) = load(&text, "dump.json").unwrap_or_else(|e| panic!("{e}"));
    let (_, reference) = load(&api_stream(), "dump.json").unwrap();
    assert_eq!(summary(&t), summary(&reference));
}

/// What `openstack` prints, each output wrapped in its resource's key
/// (a list as a collection, a show as one object) and written one after
/// another, as a shell loop would.
fn cli_stream() -> String {
    let mut text = String::new();
    for (key, file) in [
        ("networks", "networks-list-long.json"),
        ("network", "network-public.json"),
        ("subnets", "subnets-list-long.json"),
        ("routers", "routers-list-long.json"),
        ("floatingip", "floating-ip.json"),
        ("floatingips", "floating-ips-list.json"),
        ("security_group", "security-group-web.json"),
        ("security_group", "security-group-default.json"),
        ("port", "port-vrrp-a.json"),
        ("port", "port-vrrp-b.json"),
        ("port", "port-no-security.json"),
        ("port", "port-dhcp.json"),
        ("port", "port-router-v4.json"),
        ("port", "port-router-v6.json"),
        ("port", "port-router-gateway.json"),
    ] {
        let mut body = fixture(&format!("cli/{file}"));
        if file == "networks-list-long.json" {
            // An external network's row is refused (no physical network):
            // it comes from `network show`.
            let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
            let internal: Vec<&Value> = rows.iter().filter(|r| r["Router Type"] != true).collect();
            body = serde_json::to_string(&internal).unwrap();
        }
        if file == "floating-ips-list.json" {
            // The associated one comes from `floating ip show`; a list
            // row (no router without --long) says enough too.
            let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
            body = serde_json::to_string(&rows[1..]).unwrap();
        }
        if file == "subnets-list-long.json" {
            // IPv6 rows are refused (no RA and address modes): the IPv6
            // subnet comes from `subnet show`, as the README says.
            let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
            let v4: Vec<&Value> = rows.iter().filter(|r| r["IP Version"] != 6).collect();
            body = serde_json::to_string(&v4).unwrap();
            text.push_str(&format!(
                "{{\"subnet\": {}}}\n",
                fixture("cli/subnet-tenant-v6.json")
            ));
        }
        text.push_str(&format!("{{\"{key}\": {body}}}\n"));
    }
    text
}

#[test]
fn openstack_cli_output_loads_and_says_the_same() {
    let (doc, t) = load(&cli_stream(), "from-cli.json").unwrap_or_else(|e| panic!("{e}"));
    assert!(skipped(&doc).is_empty(), "{:#?}", skipped(&doc));
    let (_, reference) = load(&api_stream(), "dump.json").unwrap();
    assert_eq!(summary(&t), summary(&reference));
    assert_eq!(
        outside(&cli_stream(), "from-cli.json"),
        outside(&api_stream(), "dump.json")
    );
    // A list row without the router: the store finds the same one.
    let mut row: Vec<Value> = serde_json::from_str(&fixture("cli/floating-ips-list.json")).unwrap();
    let one = row.remove(0);
    let text = cli_stream().replace(
        &format!("{{\"floatingip\": {}}}", fixture("cli/floating-ip.json")),
        &format!("{{\"floatingips\": [{one}]}}"),
    );
    assert_eq!(
        outside(&text, "from-cli.json"),
        outside(&api_stream(), "dump.json")
            .into_iter()
            .map(|l| l.replace(
                "router_id: Some(\"2e0f2d3b-cc07-4ad2-a730-9d54a6302285\"), association",
                "router_id: None, association"
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_bare_object_or_list_is_named_by_its_file() {
    // `openstack port show -f json > port-vrrp-a.json`
    let doc = Document::parse_named(
        &fixture("cli/port-vrrp-a.json"),
        Format::Json,
        Some("port-vrrp-a.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.objects.len(), 1);
    assert_eq!(doc.objects[0].id, VRRP_A);
    assert!(
        doc.objects[0].value.get("security_groups").is_some(),
        "security_group_ids renamed"
    );
    // `openstack network list --long -f json > networks.json`: an
    // external network's row does not say its physical network.
    refused(
        &fixture("cli/networks-list-long.json"),
        "networks.json",
        &[
            "network 3abf95ca-fce3-49a1-ba18-140e231fbd9f (public)",
            "provider:physical_network",
            "`openstack network show -f json`",
        ],
    );
    let rows: Vec<Value> = serde_json::from_str(&fixture("cli/networks-list-long.json")).unwrap();
    let doc = Document::parse_named(
        &serde_json::to_string(&rows[..1]).unwrap(),
        Format::Json,
        Some("networks.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.objects.len(), 1);
    // `openstack floating ip list -f json > floatingips.json`, and `show`.
    for (file, name, n) in [
        ("floating-ips-list.json", "floatingips.json", 2),
        ("floating-ip.json", "floatingip-web.json", 1),
    ] {
        let doc = Document::parse_named(&fixture(&format!("cli/{file}")), Format::Json, Some(name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            doc.of(dataplane_config::Kind::FloatingIp).count(),
            n,
            "{file}"
        );
    }
    // Without a telling name, a bare list is refused with the ways out.
    let e = Document::parse_named(
        &fixture("cli/networks-list-long.json"),
        Format::Json,
        Some("dump.json"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs its resource named"), "{e}");
    // Detected as JSON without an extension too.
    assert_eq!(
        Format::detect(std::path::Path::new("ports"), "[\n  {"),
        Format::Json
    );
    assert_eq!(
        Format::detect(std::path::Path::new("cfg"), "[[ports]]\nid = \"p\""),
        Format::Toml
    );
}

/// Expects parsing `text` (from a file called `name`) to fail with an
/// error whose text contains every needle.
fn refused(text: &str, name: &str, needles: &[&str]) {
    let e = match Document::parse_named(text, Format::Json, Some(name)) {
        Ok(_) => panic!("{name} parsed"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(e.contains(n), "{n:?} not in:\n{e}");
    }
}

#[test]
fn cli_rows_without_what_the_datapath_needs_are_refused() {
    refused(
        &fixture("cli/ports-list-long.json"),
        "ports.json",
        &[
            "port 40311219-91db-41c5-860b-fde8f24b637c (vrrp-a)",
            "`openstack port list`",
            "allowed_address_pairs",
        ],
    );
    refused(
        &fixture("cli/security-groups-list.json"),
        "security-groups.json",
        &["`openstack security group list`", "rules"],
    );
    refused(
        &fixture("cli/routers-list.json"),
        "routers.json",
        &["without --long", "static routes"],
    );
    refused(
        &fixture("cli/subnets-list-long.json"),
        "subnets.json",
        &[
            "IPv6 subnet",
            "ipv6_ra_mode",
            "`openstack subnet show -f json`",
        ],
    );
    refused(
        &fixture("cli/security-group-rules-list-web.json"),
        "security-group-rules.json",
        &["does not say its group"],
    );
    // ICMP type 8 code 0 shows as "type=8", any ICMPv6 as "": both
    // ambiguous, refused rule by rule.
    refused(
        &fixture("cli/security-group-rules-list.json"),
        "security-group-rules.json",
        &[
            "security group rule 8011ba1f-f08a-4d70-8ef2-776cd6d08638: ICMP rule with \"Port Range\" \"type=8\"",
            "ICMP rule with \"Port Range\" \"\"",
        ],
    );
}

#[test]
fn security_group_rule_list_rows_map_to_rules() {
    // The rows that are not ambiguous, under the groups they name.
    let rows: Vec<Value> =
        serde_json::from_str::<Vec<Value>>(&fixture("cli/security-group-rules-list.json"))
            .unwrap()
            .into_iter()
            .filter(|r| !matches!(r["IP Protocol"].as_str(), Some("icmp" | "ipv6-icmp")))
            .collect();
    let mut groups: Value = serde_json::from_str(&fixture("api/security-groups.json")).unwrap();
    for g in groups["security_groups"].as_array_mut().unwrap() {
        g["security_group_rules"] = json!([]);
    }
    let text =
        json!({ "security_groups": groups["security_groups"], "security_group_rules": rows });
    let doc = Document::parse(&text.to_string(), Format::Json).unwrap_or_else(|e| panic!("{e}"));
    let store = dataplane_config::validate(&doc).unwrap_or_else(|e| panic!("{e}"));
    let web = &store.security_groups()[WEB];
    // Egress IPv4 and IPv6, tcp 80-443, tcp 22 (protocol "6") from the
    // group, udp 1-65535 (any port), vrrp from the group: the ICMP and
    // ICMPv6 rows were left out.
    assert_eq!(web.rules.len(), 6, "{:#?}", web.rules);
    let reference = dataplane_config::validate(
        &Document::parse_named(&api_stream(), Format::Json, Some("dump.json")).unwrap(),
    )
    .unwrap();
    for rule in &web.rules {
        assert!(
            reference.security_groups()[WEB].rules.contains(rule),
            "{rule:?}"
        );
    }
}

#[test]
fn a_page_of_a_list_is_refused() {
    let body = json!({
        "networks": [{ "id": "n1" }],
        "networks_links": [{ "href": "http://neutron/v2.0/networks?limit=1&marker=n1", "rel": "next" }],
    });
    refused(
        &body.to_string(),
        "networks.json",
        &["networks_links", "one page of a paginated list"],
    );
}

#[test]
fn rules_on_their_own_need_their_group() {
    let text = json!({
        "security_groups": [{ "id": "g1", "security_group_rules": [
            { "id": "r1", "security_group_id": "g1", "direction": "ingress", "protocol": "tcp",
              "port_range_min": 22, "port_range_max": 22 },
        ]}],
        "security_group_rules": [
            { "id": "r2", "direction": "egress" },
            { "id": "r3", "security_group_id": "g9", "direction": "egress" },
            { "id": "r1", "security_group_id": "g1", "direction": "ingress", "protocol": "tcp",
              "port_range_min": 22, "port_range_max": 23 },
        ],
    });
    refused(
        &text.to_string(),
        "config.json",
        &[
            "security group rule r2: security_group_id: missing",
            "security group rule r3: security_group_id: no security group \"g9\"",
            "security group rule r1: differs from its copy nested in security group g1",
        ],
    );
}

#[test]
fn singular_bodies_and_the_max_option() {
    let text = json!({ "network": { "id": "n1" }, "subnet": { "id": "s1", "network_id": "n1", "cidr": "10.0.0.0/24" } });
    let doc = Document::parse(&text.to_string(), Format::Json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.objects.len(), 2);
    // The option's name is Neutron's, and it goes in [dataplane].
    refused(
        &json!({ "max_allowed_address_pairs": 3 }).to_string(),
        "config.json",
        &[
            "max_allowed_address_pairs: unknown section: Neutron's max_allowed_address_pair goes in the dataplane table",
        ],
    );
}

#[test]
fn fields_are_known_per_resource() {
    let mut doc: Value = serde_json::from_str(&fixture("api/ports.json")).unwrap();
    // A field of another resource on a port: refused.
    doc["ports"][0]["stateful"] = json!(true);
    doc["ports"][1]["cidr"] = json!("10.0.0.0/24");
    let text = [
        fixture("api/networks.json"),
        fixture("api/subnets.json"),
        doc.to_string(),
    ]
    .concat();
    let e = load(&text, "dump.json").unwrap_err();
    assert!(
        e.0.iter()
            .any(|e| e.field == "stateful" && e.message.contains("unknown field")),
        "{e}"
    );
    assert!(
        e.0.iter()
            .any(|e| e.field == "cidr" && e.message.contains("unknown field")),
        "{e}"
    );
    // Rules nested in GET /v2.0/security-groups carry standard_attr_id and
    // tags; a rule with a port's field does not load.
    let bad = json!({ "security_groups": [{ "id": "g", "security_group_rules": [
        { "direction": "ingress", "standard_attr_id": 20, "tags": [], "mac_address": "fa:16:3e:00:00:01" },
    ]}]});
    let e = dataplane_config::validate(&Document::parse(&bad.to_string(), Format::Json).unwrap())
        .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].field, "security_group_rules[0].mac_address", "{e}");
}

//! Configuration fuzzing: tens of thousands of random mutations of a rich,
//! valid configuration go through the parser, the validator and the
//! compiler. None may panic; every rejection must name an object and say
//! what is wrong; every accepted configuration must compile.
//!
//! The generator is fastrand's seeded one: a failure prints the seed and
//! iteration, which replay it exactly (`CONFIG_FUZZ_SEED`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use dataplane_config::{Document, Engine, Format, Touched};
use fastrand::Rng;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "dataplane": { "max_allowed_address_pair": 10 },
        "networks": [
            { "id": "n1", "name": "one" }, { "id": "n2" },
            { "id": "ext", "router:external": true, "provider:physical_network": "physnet1" },
        ],
        "subnets": [
            { "id": "s1", "network_id": "n1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4 },
            { "id": "s6", "network_id": "n1", "cidr": "fd00::/64", "ip_version": 6 },
            { "id": "s2", "network_id": "n2", "cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.1", "ip_version": 4 },
            { "id": "s-ext", "network_id": "ext", "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1" },
        ],
        "routers": [{ "id": "r1", "routes": [], "external_gateway_info": {
            "network_id": "ext", "enable_snat": true,
            "external_fixed_ips": [{ "subnet_id": "s-ext", "ip_address": "203.0.113.10" }] } }],
        "floatingips": [
            { "id": "f1", "floating_ip_address": "203.0.113.20", "floating_network_id": "ext",
              "port_id": "p2", "fixed_ip_address": "10.0.0.6", "router_id": "r1" },
            { "id": "f2", "floating_ip_address": "203.0.113.21", "floating_network_id": "ext",
              "port_id": null },
        ],
        "security_groups": [
            { "id": "g1", "security_group_rules": [
                { "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 90, "remote_group_id": "g1" },
                { "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp", "port_range_min": 128 },
                { "direction": "egress", "remote_ip_prefix": "0.0.0.0/0" },
            ]},
        ],
        "ports": [
            { "id": "p1", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
              "fixed_ips": [{ "subnet_id": "s1", "ip_address": "10.0.0.5" }, { "subnet_id": "s6", "ip_address": "fd00::5" }],
              "allowed_address_pairs": [{ "ip_address": "10.0.0.100" }, { "ip_address": "10.9.0.0/16", "mac_address": "00:00:5e:00:01:01" }],
              "security_groups": ["g1"], "tap_name": "tapfuzz1" },
            { "id": "p2", "network_id": "n1", "mac_address": "fa:16:3e:00:00:02",
              "fixed_ips": [{ "subnet_id": "s1", "ip_address": "10.0.0.6" }],
              "allowed_address_pairs": [{ "ip_address": "10.0.0.100" }],
              "security_groups": ["g1"], "tap_name": "tapfuzz2" },
            { "id": "p3", "network_id": "n2", "mac_address": "fa:16:3e:00:00:03",
              "fixed_ips": [{ "subnet_id": "s2", "ip_address": "10.1.0.7" }],
              "port_security_enabled": false, "tap_name": "tapfuzz3" },
            { "id": "r1-a", "network_id": "n1", "mac_address": "fa:16:3e:00:01:01",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "s1", "ip_address": "10.0.0.1" }] },
            { "id": "r1-b", "network_id": "n2", "mac_address": "fa:16:3e:00:01:02",
              "device_owner": "network:router_interface", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "s2", "ip_address": "10.1.0.1" }] },
            { "id": "r1-gw", "network_id": "ext", "mac_address": "fa:16:3e:00:02:01",
              "device_owner": "network:router_gateway", "device_id": "r1",
              "fixed_ips": [{ "subnet_id": "s-ext", "ip_address": "203.0.113.10" }] },
        ],
    })
}

/// Every path to a value in `v` (object keys and array indexes).
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(json!(k));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(json!(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k {
        Value::String(s) => &mut v[s.as_str()],
        Value::Number(n) => &mut v[n.as_u64().unwrap() as usize],
        _ => unreachable!(),
    })
}

const STRINGS: &[&str] = &[
    "",
    " ",
    "n1",
    "n2",
    "s1",
    "s6",
    "g1",
    "r1",
    "p1",
    "any",
    "tcp",
    "ingress",
    "egress",
    "IPv4",
    "IPv6",
    "10.0.0.5",
    "10.0.0.1",
    "10.0.0.0/33",
    "10.0.0.0/0",
    "0.0.0.0/0",
    "::/0",
    "::/129",
    "fd00::5",
    "fe80::1",
    "224.0.0.5",
    "255.255.255.255",
    "ff:ff:ff:ff:ff:ff",
    "01:00:5e:00:00:01",
    "00:00:00:00:00:00",
    "fa:16:3e:00:00:01",
    "FA-16-3E-00-00-09",
    "fa:16:3e:00:00",
    "tap/../../x",
    "tapaaaaaaaaaaaaaaaaaaaaa",
    "network:router_interface",
    "network:router_gateway",
    "network:floatingip",
    "203.0.113.10",
    "203.0.113.20",
    "\u{0}",
    "\u{1F600}",
    "-1",
    "65536",
    "999999999999999999999",
];

fn random_value(r: &mut Rng) -> Value {
    match r.usize(..9) {
        0 => Value::Null,
        1 => json!(r.usize(..2) == 0),
        2 => json!([0i64, -1, 1, 4, 6, 17, 58, 255, 256, 65535, 65536, i64::MAX][r.usize(..12)]),
        3 => json!([]),
        4 => json!({}),
        5 => json!(1.5),
        _ => json!(STRINGS[r.usize(..STRINGS.len())]),
    }
}

fn mutate(r: &mut Rng, doc: &mut Value) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let path = all[r.usize(..all.len())].clone();
    match r.usize(..4) {
        // Replace the value.
        0 | 1 => *at(doc, &path) = random_value(r),
        // Remove it from its object or array.
        2 => {
            if let Some((last, parent)) = path.split_last() {
                match (at(doc, parent), last) {
                    (Value::Object(m), Value::String(k)) => {
                        m.remove(k);
                    }
                    (Value::Array(a), Value::Number(i)) => {
                        a.remove(i.as_u64().unwrap() as usize);
                    }
                    _ => {}
                }
            }
        }
        // Duplicate an array element, or add a stray field.
        _ => match at(doc, &path) {
            Value::Array(a) if !a.is_empty() => {
                let i = r.usize(..a.len());
                let copy = a[i].clone();
                a.push(copy);
            }
            Value::Object(m) => {
                m.insert(
                    STRINGS[r.usize(..STRINGS.len())].to_string(),
                    random_value(r),
                );
            }
            _ => {}
        },
    }
}

fn check_one(seed: u64, iteration: usize, doc: &Value) -> Result<bool, String> {
    let text = doc.to_string();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<bool, String> {
        let Ok(document) = Document::parse(&text, Format::Json) else {
            return Ok(false);
        };
        match dataplane_config::validate(&document) {
            Err(errors) => {
                if errors.0.is_empty() {
                    return Err("rejected without an error".into());
                }
                for e in &errors.0 {
                    if e.object.trim().is_empty() || e.message.trim().is_empty() {
                        return Err(format!("an error without object or message: {e:?}"));
                    }
                }
                Ok(false)
            }
            Ok(store) => {
                let mut engine = Engine::new(100_000);
                engine
                    .compile(&store, &Touched::all(&store), &|_| Some(10))
                    .map_err(|e| format!("an accepted configuration failed to compile: {e:#}"))?;
                Ok(true)
            }
        }
    }));
    match outcome {
        Ok(r) => r,
        Err(_) => Err(format!("panic (seed {seed}, iteration {iteration})")),
    }
    .map_err(|e| {
        format!(
            "seed {seed}, iteration {iteration}: {e}\n{}",
            serde_json::to_string_pretty(doc).unwrap()
        )
    })
}

#[test]
fn random_mutations_never_panic_and_are_explained() {
    let seeds: Vec<u64> = match std::env::var("CONFIG_FUZZ_SEED") {
        Ok(s) => vec![s.parse().expect("a number")],
        Err(_) => vec![0x9e37_79b9_7f4a_7c15, 0xdead_beef_cafe_f00d, 42],
    };
    let iterations = 8000;
    assert!(
        check_one(0, 0, &base()).unwrap(),
        "the base configuration is valid"
    );
    let (mut accepted, mut rejected) = (0, 0);
    // Panics are caught and reported with their seed; keep their output
    // out of the log.
    std::panic::set_hook(Box::new(|_| {}));
    for &seed in &seeds {
        let mut r = Rng::with_seed(seed);
        for i in 0..iterations {
            let mut doc = base();
            for _ in 0..1 + r.usize(..4) {
                mutate(&mut r, &mut doc);
            }
            match check_one(seed, i, &doc) {
                Ok(true) => accepted += 1,
                Ok(false) => rejected += 1,
                Err(e) => {
                    let _ = std::panic::take_hook();
                    panic!("{e}");
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    eprintln!("config fuzz: {accepted} accepted, {rejected} rejected");
    // Both outcomes must be well represented, or the mutations are too
    // tame or too wild to test anything.
    assert!(
        accepted > 500 && rejected > 5000,
        "accepted {accepted}, rejected {rejected}"
    );
}

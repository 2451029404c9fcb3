//! `dataplane publish FILE --etcd URL` against a real etcd (on loopback):
//! it writes the file's objects in the agents' layout as a difference, and
//! refuses a file the agents would refuse, changing nothing.

use std::path::Path;

use dataplane_agent::source::{EtcdSource, Source, etcd::EtcdOptions};
use dataplane_config::Update;
use lab::{
    etcd::Etcd,
    lab::dataplane_bin,
    require_root,
    topo::{config, network, pair, subnet},
};
use serde_json::{Value, json};

fn port(id: &str, mac: &str, ip: &str) -> Value {
    json!({
        "id": id, "name": id, "network_id": "net1", "mac_address": mac,
        "fixed_ips": [{ "subnet_id": "sub1", "ip_address": ip }],
    })
}

fn cfg(ports: Vec<Value>) -> Value {
    config(
        vec![network("net1")],
        vec![subnet("sub1", "net1", "10.40.0.0/24", Some("10.40.0.1"))],
        ports,
    )
}

/// Runs `dataplane publish` on `cfg`; (exit success, stdout + stderr).
fn publish(etcd: &Etcd, dir: &Path, cfg: &Value) -> (bool, String) {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(cfg).unwrap()).unwrap();
    let out = std::process::Command::new(dataplane_bin())
        .arg("publish")
        .arg(&path)
        .args(["--etcd", &etcd.url])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Keys and the revision each was last written at (etcdctl's `fields`
/// output: one `"Name" : value` line per field, each key's fields in turn).
fn revisions(etcd: &Etcd) -> Vec<(String, i64)> {
    let out = etcd
        .etcdctl(&["get", "--prefix", "/aap/neutron/", "-w", "fields"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut keys = Vec::new();
    let mut key = None;
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("\"Key\" : ") {
            key = Some(k.trim_matches('"').to_string());
        } else if let Some(r) = line.strip_prefix("\"ModRevision\" : ") {
            if let (Some(k), Ok(r)) = (key.take(), r.trim().parse()) {
                keys.push((k, r));
            }
        }
    }
    keys.sort();
    keys
}

#[test]
fn publish_writes_the_difference_and_refuses_what_agents_would_refuse() {
    require_root!();
    let etcd = Etcd::start(None, "127.0.0.1", 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = port("a", "fa:16:3e:41:00:01", "10.40.0.10");
    let b = port("b", "fa:16:3e:41:00:02", "10.40.0.11");
    let (ok, text) = publish(&etcd, dir.path(), &cfg(vec![a.clone(), b.clone()]));
    assert!(ok, "{text}");
    // net1, sub1, the "open" group, a, b.
    assert!(text.contains("5 object(s) written, 0 deleted"), "{text}");
    let first = revisions(&etcd);
    assert_eq!(first.len(), 5, "{first:?}");
    assert!(first.iter().any(|(k, _)| k == "/aap/neutron/ports/a"));

    // The same file again writes nothing: agents see no change.
    let (ok, text) = publish(&etcd, dir.path(), &cfg(vec![a.clone(), b.clone()]));
    assert!(
        ok && text.contains("0 object(s) written, 0 deleted"),
        "{text}"
    );
    assert_eq!(revisions(&etcd), first);

    // One port changed, one gone: one put, one delete, the rest untouched.
    a["allowed_address_pairs"] = json!([pair("10.40.0.100", None)]);
    let (ok, text) = publish(&etcd, dir.path(), &cfg(vec![a.clone()]));
    assert!(
        ok && text.contains("1 object(s) written, 1 deleted"),
        "{text}"
    );
    let now = revisions(&etcd);
    assert!(!now.iter().any(|(k, _)| k == "/aap/neutron/ports/b"));
    for (key, revision) in &now {
        let before = first.iter().find(|(k, _)| k == key).map(|(_, r)| *r);
        if key.ends_with("/ports/a") {
            assert!(Some(*revision) > before, "a rewritten");
        } else {
            assert_eq!(Some(*revision), before, "{key} untouched");
        }
    }
    let value: Value =
        serde_json::from_str(&etcd.get("/aap/neutron/ports/a").unwrap().unwrap()).unwrap();
    assert_eq!(
        value["allowed_address_pairs"][0]["ip_address"],
        "10.40.0.100"
    );

    // A file the agents would refuse (a pair with a multicast prefix) is
    // refused whole, naming the field, and etcd keeps what it had.
    let mut bad = a.clone();
    bad["allowed_address_pairs"] = json!([pair("224.0.0.0/4", None)]);
    let c = port("c", "fa:16:3e:41:00:03", "10.40.0.12");
    let (ok, text) = publish(&etcd, dir.path(), &cfg(vec![bad, c]));
    assert!(!ok, "refused: {text}");
    assert!(text.contains("allowed_address_pairs"), "{text}");
    assert_eq!(revisions(&etcd), now, "nothing written");
}

/// An external network, a router with its gateway (and gateway port) and a
/// floating IP on a VM port.
fn external_cfg() -> Value {
    let mut c = cfg(vec![port("vm", "fa:16:3e:41:00:05", "10.40.0.5")]);
    let mut ext = network("ext");
    ext["router:external"] = json!(true);
    ext["provider:physical_network"] = json!("physnet1");
    c["networks"].as_array_mut().unwrap().push(ext);
    c["subnets"].as_array_mut().unwrap().push(subnet(
        "ext-v4",
        "ext",
        "198.51.100.0/24",
        Some("198.51.100.1"),
    ));
    c["routers"] = json!([{ "id": "r1", "external_gateway_info": {
        "network_id": "ext", "external_fixed_ips": [{ "ip_address": "198.51.100.10" }] } }]);
    c["ports"].as_array_mut().unwrap().extend([
        json!({ "id": "r1-if", "network_id": "net1", "mac_address": "fa:16:3e:41:01:00",
                "device_owner": "network:router_interface", "device_id": "r1",
                "fixed_ips": [{ "subnet_id": "sub1", "ip_address": "10.40.0.1" }] }),
        json!({ "id": "r1-gw", "network_id": "ext", "mac_address": "fa:16:3e:41:02:00",
                "device_owner": "network:router_gateway", "device_id": "r1",
                "fixed_ips": [{ "subnet_id": "ext-v4", "ip_address": "198.51.100.10" }] }),
    ]);
    c["floatingips"] = json!([{ "id": "f1", "floating_ip_address": "198.51.100.20",
        "floating_network_id": "ext", "port_id": "vm" }]);
    c
}

#[test]
fn floating_ips_go_through_etcd_like_the_other_resources() {
    require_root!();
    let etcd = Etcd::start(None, "127.0.0.1", 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = publish(&etcd, dir.path(), &external_cfg());
    assert!(ok, "{text}");
    let value: Value =
        serde_json::from_str(&etcd.get("/aap/neutron/floatingips/f1").unwrap().unwrap()).unwrap();
    assert_eq!(value["floating_ip_address"], "198.51.100.20");
    // An agent's source reads it back, and the store associates it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    let mut source = EtcdSource::new(EtcdOptions {
        endpoints: vec![etcd.url.clone()],
        prefix: "/aap".into(),
        chassis: "h1".into(),
        underlay_ip: "192.168.100.1".parse().unwrap(),
        lease_ttl: 5,
    });
    let update = rt
        .block_on(tokio::time::timeout(
            std::time::Duration::from_secs(30),
            source.next(),
        ))
        .expect("no snapshot within 30 s")
        .expect("the read failed");
    let Update::Snapshot(doc) = update else {
        panic!("the first update is not a snapshot");
    };
    let store = dataplane_config::validate(&doc).unwrap_or_else(|e| panic!("{e}"));
    let f1 = store.floating_ips()["f1"]
        .association
        .clone()
        .expect("associated");
    assert_eq!(
        (f1.router.as_str(), f1.fixed.to_string()),
        ("r1", "10.40.0.5".into())
    );
    assert!(store.gateway_port(&"r1".to_string()).is_some());
    // A floating IP the agents would refuse (on the router's own address)
    // is refused whole, naming the field.
    let mut bad = external_cfg();
    bad["floatingips"][0]["floating_ip_address"] = json!("198.51.100.10");
    let (ok, text) = publish(&etcd, dir.path(), &bad);
    assert!(!ok, "refused: {text}");
    assert!(text.contains("floating_ip_address"), "{text}");
}

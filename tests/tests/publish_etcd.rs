//! `dataplane publish FILE --etcd URL` against a real etcd (on loopback):
//! it writes the file's objects in the agents' layout as a difference, and
//! refuses a file the agents would refuse, changing nothing.

use std::path::Path;

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

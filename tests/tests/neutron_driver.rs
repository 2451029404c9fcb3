//! The ML2 driver `aap` (networking-aap) in a real Neutron 29 API server
//! (MariaDB, noauth, driven by the real `openstack` CLI) writing into a real
//! etcd: what it writes, port binding and status, resync. No datapath
//! agents: chassis and binding records are written here as an agent would.
//!
//! Each API call's effect is timed from the moment the call returned to the
//! moment a watch saw the object change in etcd; negative: the driver wrote
//! it before the API answered, as postcommit hooks do. The CLI returns a
//! few hundred ms after the server answers (it formats and exits), so one
//! change is also made with a plain HTTP request and timed from the answer.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use lab::{
    etcd::Etcd,
    lab::{WAIT, wait_for},
    neutron::{EtcdWatch, Neutron, Options},
};
use serde_json::Value;

const IP: &str = "127.0.0.1";

/// The value under `key`, parsed.
fn etcd_json(etcd: &Etcd, key: &str) -> Result<Option<Value>> {
    etcd.get(key)?
        .map(|v| serde_json::from_str(&v).with_context(|| format!("{key}: {v}")))
        .transpose()
}

/// Waits until `key` holds an object for which `cond` holds; returns it.
fn wait_json(etcd: &Etcd, key: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Result<Value> {
    let mut last = None;
    let found = wait_for(WAIT, what, || {
        last = etcd_json(etcd, key).ok().flatten();
        last.as_ref().is_some_and(&cond)
    });
    found.with_context(|| format!("{key} holds {last:?}"))?;
    Ok(last.expect("checked"))
}

fn wait_gone(etcd: &Etcd, key: &str) -> Result<()> {
    wait_for(WAIT, &format!("{key} deleted"), || {
        etcd.get(key).map(|v| v.is_none()).unwrap_or(false)
    })
}

/// Runs an API call; returns its result, when it started and returned.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Instant, Instant)> {
    let started = Instant::now();
    let v = f()?;
    Ok((v, started, Instant::now()))
}

/// Prints how long after the API call returned `key` changed in etcd.
fn report(
    watch: &EtcdWatch,
    what: &str,
    key: &str,
    started: Instant,
    returned: Instant,
) -> Result<()> {
    let e = watch.wait_change(key, started, WAIT)?;
    let ms = if e.at >= returned {
        (e.at - returned).as_secs_f64() * 1e3
    } else {
        -(returned - e.at).as_secs_f64() * 1e3
    };
    eprintln!(
        "latency: {what}: {} in etcd {ms:+.1} ms after the API call returned (call took {:.0} ms)",
        e.kind,
        (returned - started).as_secs_f64() * 1e3
    );
    Ok(())
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}

/// An etcd lease kept alive by `etcdctl lease keep-alive`, as an agent
/// keeps its chassis lease.
struct Lease {
    id: String,
    keepalive: Child,
}

impl Lease {
    fn grant(etcd: &Etcd, ttl: u32) -> Result<Lease> {
        let out = etcd.etcdctl(&["lease", "grant", &ttl.to_string()])?;
        // "lease 694d7c3e2f1a2b0c granted with TTL(10s)"
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("lease grant said {text:?}"))?
            .to_string();
        let keepalive = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &etcd.url, "lease", "keep-alive", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Lease { id, keepalive })
    }

    fn put(&self, etcd: &Etcd, key: &str, value: &str) -> Result<()> {
        let out = etcd.etcdctl(&["put", &format!("--lease={}", self.id), key, value])?;
        if !out.status.success() {
            bail!("put {key}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.keepalive.kill();
        let _ = self.keepalive.wait();
    }
}

fn chassis(name: &str) -> String {
    format!(r#"{{"name":"{name}","underlay_ip":"192.0.2.1","tunnel_type":"vxlan"}}"#)
}

fn binding(chassis: &str, port_id: &str) -> String {
    format!(r#"{{"chassis":"{chassis}","tap":"tap{}"}}"#, &port_id[..11])
}

/// Fails with the server's log when it logged errors.
fn no_errors(n: &Neutron) -> Result<()> {
    let errors = n.errors();
    if !errors.is_empty() {
        bail!("Neutron logged errors:\n{}", errors.join("\n"));
    }
    Ok(())
}

fn with_log<T>(n: &Neutron, r: Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:#}\n--- neutron log (tail) ---\n{}", n.log_tail(80)))
}

#[test]
fn driver_writes_objects_binds_ports_and_tracks_status() -> Result<()> {
    lab::require_root!();
    let etcd = Etcd::start(None, IP, 0)?;
    let n = Neutron::start(Options::new(&etcd.url))?;
    let r = scenario(&etcd, &n);
    with_log(&n, r)?;
    no_errors(&n)
}

fn scenario(etcd: &Etcd, n: &Neutron) -> Result<()> {
    let watch = EtcdWatch::start(&etcd.url, "/aap/neutron/")?;
    let key = |kind: &str, id: &str| format!("/aap/neutron/{kind}/{id}");

    // A network: Neutron allocates its VNI from vni_ranges.
    let (net, t0, t1) = timed(|| n.cli_json(&["network", "create", "net1"]))?;
    let net_id = s(&net, "id").to_string();
    report(&watch, "network create", &key("networks", &net_id), t0, t1)?;
    let v = wait_json(etcd, &key("networks", &net_id), "network in etcd", |v| {
        v["provider:segmentation_id"].is_u64()
    })?;
    assert_eq!(s(&v, "id"), net_id);
    assert_eq!(s(&v, "provider:network_type"), "vxlan");
    assert_eq!(
        v["provider:segmentation_id"],
        net["provider:segmentation_id"]
    );

    let (sub, t0, t1) = timed(|| {
        n.cli_json(&[
            "subnet",
            "create",
            "sub1",
            "--network",
            "net1",
            "--subnet-range",
            "10.0.0.0/24",
        ])
    })?;
    let sub_id = s(&sub, "id").to_string();
    report(&watch, "subnet create", &key("subnets", &sub_id), t0, t1)?;
    let v = wait_json(etcd, &key("subnets", &sub_id), "subnet in etcd", |_| true)?;
    assert_eq!(s(&v, "network_id"), net_id);
    assert_eq!(s(&v, "cidr"), "10.0.0.0/24");
    assert_eq!(s(&v, "gateway_ip"), "10.0.0.1");
    assert_eq!(v["ip_version"], 4);
    wait_json(
        etcd,
        &key("networks", &net_id),
        "network lists its subnet",
        |v| {
            v["subnets"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == &Value::from(sub_id.clone())))
        },
    )?;

    // A security group whose rule names a remote group (itself).
    let sg = n.cli_json(&["security", "group", "create", "web"])?;
    let sg_id = s(&sg, "id").to_string();
    let (rule, t0, t1) = timed(|| {
        n.cli_json(&[
            "security",
            "group",
            "rule",
            "create",
            "web",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "80",
            "--remote-group",
            "web",
        ])
    })?;
    let rule_id = s(&rule, "id").to_string();
    report(
        &watch,
        "security group rule create",
        &key("security_groups", &sg_id),
        t0,
        t1,
    )?;
    let v = wait_json(
        etcd,
        &key("security_groups", &sg_id),
        "rule in its group",
        |v| {
            v["security_group_rules"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["id"] == rule_id.as_str()))
        },
    )?;
    let r = v["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rule_id.as_str())
        .unwrap();
    assert_eq!(s(r, "remote_group_id"), sg_id);
    assert_eq!(s(r, "direction"), "ingress");
    assert_eq!(s(r, "protocol"), "tcp");
    assert_eq!(r["port_range_min"], 80);
    assert_eq!(s(r, "ethertype"), "IPv4");

    // A VM port on host h1, which has no live agent yet: not bound.
    let (p1, t0, t1) = timed(|| {
        n.cli_json(&[
            "port",
            "create",
            "vm1",
            "--network",
            "net1",
            "--security-group",
            "web",
            "--allowed-address",
            "ip-address=10.0.0.100",
            "--host",
            "h1",
            "--device-owner",
            "compute:nova",
            "--device",
            "vm-1",
        ])
    })?;
    let p1_id = s(&p1, "id").to_string();
    let p1_key = key("ports", &p1_id);
    report(&watch, "port create", &p1_key, t0, t1)?;
    assert_eq!(
        s(&p1, "binding_vif_type"),
        "binding_failed",
        "no chassis h1: {p1}"
    );
    let v = wait_json(etcd, &p1_key, "port in etcd, binding failed", |v| {
        s(v, "binding:vif_type") == "binding_failed"
    })?;
    let mac = s(&p1, "mac_address").to_string();
    assert_eq!(s(&v, "id"), p1_id);
    assert_eq!(s(&v, "network_id"), net_id);
    assert_eq!(s(&v, "mac_address"), mac);
    assert_eq!(s(&v["fixed_ips"][0], "subnet_id"), sub_id);
    assert!(
        s(&v["fixed_ips"][0], "ip_address").starts_with("10.0.0."),
        "{v}"
    );
    assert_eq!(
        v["allowed_address_pairs"],
        serde_json::json!([{"ip_address": "10.0.0.100", "mac_address": mac}])
    );
    assert_eq!(v["security_groups"], serde_json::json!([sg_id]));
    assert_eq!(v["port_security_enabled"], true);
    assert_eq!(s(&v, "binding:host_id"), "h1");
    assert_eq!(s(&v, "device_owner"), "compute:nova");
    assert_eq!(s(&v, "device_id"), "vm-1");
    assert_eq!(s(&v, "status"), "DOWN");

    // The agent on h1 comes up (chassis record under its lease): the driver
    // binds the port without anyone touching it.
    let lease = Lease::grant(etcd, 10)?;
    let t = Instant::now();
    lease.put(etcd, "/aap/chassis/h1", &chassis("h1"))?;
    let v = wait_json(etcd, &p1_key, "port bound once chassis h1 is up", |v| {
        s(v, "binding:vif_type") == "tap"
    })?;
    eprintln!(
        "latency: chassis h1 up -> port bound in {:.0?}",
        t.elapsed()
    );
    assert_eq!(v["binding:vif_details"]["port_filter"], true);
    assert_eq!(v["binding:vif_details"]["connectivity"], "l2");
    assert_eq!(s(&v, "status"), "DOWN", "bound, tap not attached yet");
    let shown = n.cli_json(&["port", "show", &p1_id])?;
    assert_eq!(s(&shown, "binding_vif_type"), "tap");
    assert_eq!(s(&shown, "status"), "DOWN");

    // The agent attached the tap: ACTIVE; the record goes: DOWN.
    let t = Instant::now();
    lease.put(
        etcd,
        &format!("/aap/bindings/{p1_id}"),
        &binding("h1", &p1_id),
    )?;
    wait_json(etcd, &p1_key, "port ACTIVE", |v| s(v, "status") == "ACTIVE")?;
    eprintln!(
        "latency: binding record -> port ACTIVE in etcd in {:.0?}",
        t.elapsed()
    );
    assert_eq!(
        s(&n.cli_json(&["port", "show", &p1_id])?, "status"),
        "ACTIVE"
    );
    let t = Instant::now();
    etcd.etcdctl(&["del", &format!("/aap/bindings/{p1_id}")])?;
    wait_json(etcd, &p1_key, "port DOWN", |v| s(v, "status") == "DOWN")?;
    eprintln!(
        "latency: binding removed -> port DOWN in etcd in {:.0?}",
        t.elapsed()
    );
    lease.put(
        etcd,
        &format!("/aap/bindings/{p1_id}"),
        &binding("h1", &p1_id),
    )?;
    wait_json(etcd, &p1_key, "port ACTIVE again", |v| {
        s(v, "status") == "ACTIVE"
    })?;

    // A second VM port on h2 (alive already) sharing the VIP: bound at once.
    lease.put(etcd, "/aap/chassis/h2", &chassis("h2"))?;
    let p2 = n.cli_json(&[
        "port",
        "create",
        "vm2",
        "--network",
        "net1",
        "--security-group",
        "web",
        "--allowed-address",
        "ip-address=10.0.0.100",
        "--host",
        "h2",
    ])?;
    let p2_id = s(&p2, "id").to_string();
    assert_eq!(s(&p2, "binding_vif_type"), "tap", "{p2}");
    let v = wait_json(etcd, &key("ports", &p2_id), "vm2 bound in etcd", |v| {
        s(v, "binding:vif_type") == "tap"
    })?;
    assert_eq!(
        s(&v["allowed_address_pairs"][0], "ip_address"),
        "10.0.0.100"
    );

    // Pairs changed on a live port.
    let (_, t0, t1) = timed(|| {
        n.cli(&[
            "port",
            "set",
            &p1_id,
            "--allowed-address",
            "ip-address=10.0.0.101",
        ])
    })?;
    report(&watch, "port set --allowed-address", &p1_key, t0, t1)?;
    wait_json(etcd, &p1_key, "two pairs", |v| {
        v["allowed_address_pairs"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })?;
    let (_, t0, t1) = timed(|| {
        n.cli(&[
            "port",
            "unset",
            &p1_id,
            "--allowed-address",
            &format!("ip-address=10.0.0.100,mac-address={mac}"),
        ])
    })?;
    report(&watch, "port unset --allowed-address", &p1_key, t0, t1)?;
    let v = wait_json(etcd, &p1_key, "one pair left", |v| {
        v["allowed_address_pairs"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })?;
    assert_eq!(
        s(&v["allowed_address_pairs"][0], "ip_address"),
        "10.0.0.101"
    );
    assert_eq!(s(&v, "status"), "ACTIVE", "a pair change keeps the port up");

    // The same through the API without the CLI, timed from the server's
    // answer: the pairs replaced on the live port.
    let body = serde_json::json!({"port": {"allowed_address_pairs": [
        {"ip_address": "10.0.0.101"}, {"ip_address": "10.0.0.102"}]}});
    let (_, t0, t1) = timed(|| n.api("PUT", &format!("/ports/{p1_id}"), Some(&body)))?;
    report(
        &watch,
        "PUT /v2.0/ports/<id> allowed_address_pairs",
        &p1_key,
        t0,
        t1,
    )?;
    wait_json(etcd, &p1_key, "pairs replaced", |v| {
        v["allowed_address_pairs"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })?;

    // A router and its interface on the subnet.
    let (router, t0, t1) = timed(|| n.cli_json(&["router", "create", "r1"]))?;
    let router_id = s(&router, "id").to_string();
    report(&watch, "router create", &key("routers", &router_id), t0, t1)?;
    let (_, t0, t1) = timed(|| n.cli(&["router", "add", "subnet", "r1", "sub1"]))?;
    let itf = n.cli_json(&[
        "port",
        "list",
        "--device-owner",
        "network:router_interface",
        "--long",
    ])?;
    let itf_id = itf[0]["ID"]
        .as_str()
        .context("an interface port")?
        .to_string();
    report(&watch, "router add subnet", &key("ports", &itf_id), t0, t1)?;
    let v = wait_json(
        etcd,
        &key("ports", &itf_id),
        "router interface in etcd",
        |_| true,
    )?;
    assert_eq!(s(&v, "device_owner"), "network:router_interface");
    assert_eq!(s(&v, "device_id"), router_id);
    assert_eq!(s(&v["fixed_ips"][0], "ip_address"), "10.0.0.1");
    let shown = n.cli_json(&["router", "show", "r1"])?;
    wait_json(
        etcd,
        &key("routers", &router_id),
        "router at its latest revision",
        |v| v["revision_number"] == shown["revision_number"],
    )?;

    // Deletions: a rule, a port, a group, the interface.
    let (_, t0, t1) = timed(|| n.cli(&["security", "group", "rule", "delete", &rule_id]))?;
    report(
        &watch,
        "security group rule delete",
        &key("security_groups", &sg_id),
        t0,
        t1,
    )?;
    wait_json(
        etcd,
        &key("security_groups", &sg_id),
        "rule gone from its group",
        |v| {
            v["security_group_rules"]
                .as_array()
                .is_some_and(|rs| !rs.iter().any(|r| r["id"] == rule_id.as_str()))
        },
    )?;
    let (_, t0, t1) = timed(|| n.cli(&["port", "delete", &p2_id]))?;
    report(&watch, "port delete", &key("ports", &p2_id), t0, t1)?;
    wait_gone(etcd, &key("ports", &p2_id))?;
    let sg2 = n.cli_json(&["security", "group", "create", "spare"])?;
    let sg2_key = key("security_groups", s(&sg2, "id"));
    wait_json(etcd, &sg2_key, "group in etcd", |_| true)?;
    n.cli(&["security", "group", "delete", "spare"])?;
    wait_gone(etcd, &sg2_key)?;
    n.cli(&["router", "remove", "subnet", "r1", "sub1"])?;
    wait_gone(etcd, &key("ports", &itf_id))?;

    // Nothing but what Neutron has: the remaining objects match the API.
    let keys = etcd.keys("/aap/neutron/")?;
    for k in [
        &p1_key,
        &key("networks", &net_id),
        &key("subnets", &sub_id),
        &key("routers", &router_id),
    ] {
        assert!(keys.contains(k), "{k} missing from {keys:?}");
    }
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&p2_id) || k.contains(&itf_id)),
        "{keys:?}"
    );
    same_as_the_api(etcd, n)
}

/// Every object under /aap/neutron/ is exactly what the API's GET returns.
fn same_as_the_api(etcd: &Etcd, n: &Neutron) -> Result<()> {
    for (key, value) in snapshot(etcd)? {
        let mut parts = key.split('/').skip(3);
        let (kind, id) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let (path, field) = match kind {
            "security_groups" => ("security-groups", "security_group"),
            k => (k, k.trim_end_matches('s')),
        };
        let api = n.api("GET", &format!("/{path}/{id}"), None)?;
        let mine: Value = serde_json::from_str(&value)?;
        assert_eq!(mine, api[field], "{key} differs from GET /v2.0/{path}/{id}");
    }
    Ok(())
}

/// The mod_revision of `key` (0 if absent).
fn mod_revision(etcd: &Etcd, key: &str) -> Result<u64> {
    let out = etcd.etcdctl(&["get", key, "-w", "fields"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("\"ModRevision\" : "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Every key under /aap/neutron/ with its value.
fn snapshot(etcd: &Etcd) -> Result<Vec<(String, String)>> {
    etcd.keys("/aap/neutron/")?
        .into_iter()
        .map(|k| Ok((k.clone(), etcd.get(&k)?.unwrap_or_default())))
        .collect()
}

fn wait_snapshot(etcd: &Etcd, want: &[(String, String)], what: &str) -> Result<Duration> {
    let t = Instant::now();
    let mut last = vec![];
    let r = wait_for(WAIT, what, || {
        last = snapshot(etcd).unwrap_or_default();
        last == want
    });
    r.with_context(|| format!("etcd holds {last:#?}\nwanted {want:#?}"))?;
    Ok(t.elapsed())
}

#[test]
fn resync_rewrites_etcd_from_the_database() -> Result<()> {
    lab::require_root!();
    let mut etcd = Etcd::start(None, IP, 0)?;
    let port = etcd.port();
    let mut n = Neutron::start(Options::new(&etcd.url))?;
    let r = resync(&mut etcd, &mut n, port);
    // No error check: while etcd is down the driver rightly warns.
    with_log(&n, r)
}

fn resync(etcd: &mut Etcd, n: &mut Neutron, port: u16) -> Result<()> {
    n.cli(&["network", "create", "net1"])?;
    n.cli(&[
        "subnet",
        "create",
        "sub1",
        "--network",
        "net1",
        "--subnet-range",
        "10.0.0.0/24",
    ])?;
    n.cli(&["security", "group", "create", "web"])?;
    n.cli(&[
        "security",
        "group",
        "rule",
        "create",
        "web",
        "--remote-group",
        "web",
    ])?;
    let p = n.cli_json(&[
        "port",
        "create",
        "vm1",
        "--network",
        "net1",
        "--security-group",
        "web",
        "--allowed-address",
        "ip-address=10.0.0.100",
        "--host",
        "h1",
    ])?;
    let port_key = format!("/aap/neutron/ports/{}", s(&p, "id"));
    n.cli(&["router", "create", "r1"])?;
    n.cli(&["router", "add", "subnet", "r1", "sub1"])?;
    // networks, subnet, the default group and web, vm1, the interface, r1.
    wait_for(WAIT, "every object in etcd", || {
        etcd.keys("/aap/neutron/")
            .map(|k| k.len() == 7)
            .unwrap_or(false)
    })?;
    let want = snapshot(etcd)?;

    // 1. The driver restarts: a stale object is rewritten, one Neutron no
    //    longer has is deleted, unchanged ones are not touched (the agents
    //    see no change), and the agents' keys stay.
    etcd.put(&port_key, r#"{"id":"stale"}"#)?;
    etcd.put("/aap/neutron/ports/ghost", r#"{"id":"ghost"}"#)?;
    etcd.put("/aap/chassis/h9", &chassis("h9"))?;
    etcd.put("/aap/bindings/ghost", &binding("h9", "ghost-port-id"))?;
    let revisions: Vec<(String, u64)> = want
        .iter()
        .filter(|(k, _)| k != &port_key)
        .map(|(k, _)| Ok((k.clone(), mod_revision(etcd, k)?)))
        .collect::<Result<_>>()?;
    n.restart()?;
    let took = wait_snapshot(etcd, &want, "driver restart: etcd as the database says")?;
    same_as_the_api(etcd, n)?;
    eprintln!("resync: driver restart -> etcd corrected {took:.0?} after the API was up");
    for (k, rev) in revisions {
        assert_eq!(
            mod_revision(etcd, &k)?,
            rev,
            "{k} rewritten though unchanged"
        );
    }
    assert!(
        etcd.get("/aap/chassis/h9")?.is_some(),
        "chassis key touched"
    );
    assert!(
        etcd.get("/aap/bindings/ghost")?.is_some(),
        "binding key touched"
    );

    // 2. etcd loses its data while the driver runs: it notices (its epoch
    //    key is gone) and rewrites everything.
    let t = Instant::now();
    etcd.kill()?;
    *etcd = Etcd::start(None, IP, port)?;
    let took = wait_snapshot(etcd, &want, "etcd wiped: rewritten by the running driver")?;
    eprintln!(
        "resync: etcd wiped under a running driver -> rewritten {took:.0?} after etcd was back ({:.0?} in all)",
        t.elapsed()
    );

    // 3. Both at once: the server restarts onto an empty etcd.
    n.stop();
    etcd.kill()?;
    *etcd = Etcd::start(None, IP, port)?;
    n.restart()?;
    let took = wait_snapshot(etcd, &want, "server restarted onto an empty etcd")?;
    eprintln!(
        "resync: server restarted onto an empty etcd -> complete {took:.0?} after the API was up"
    );
    // And the API still works, driver included.
    n.cli(&["port", "delete", "vm1"])?;
    wait_gone(etcd, &port_key)?;

    // 4. etcd is down while the API changes something: the call still
    //    succeeds, and the change reaches etcd once it is back.
    etcd.kill()?;
    let net2 = n.cli_json(&["network", "create", "net2"])?;
    etcd.restart()?;
    let t = Instant::now();
    wait_json(
        etcd,
        &format!("/aap/neutron/networks/{}", s(&net2, "id")),
        "a network created while etcd was down",
        |_| true,
    )?;
    eprintln!(
        "resync: a change made while etcd was down in etcd {:.0?} after it was back",
        t.elapsed()
    );

    // 5. Status across a driver restart: an attached port stays ACTIVE; one
    //    whose binding record went while the driver was down turns DOWN.
    let lease = Lease::grant(etcd, 10)?;
    lease.put(etcd, "/aap/chassis/h1", &chassis("h1"))?;
    let mut ports = vec![];
    for name in ["vm3", "vm4"] {
        let p = n.cli_json(&["port", "create", name, "--network", "net1", "--host", "h1"])?;
        let id = s(&p, "id").to_string();
        lease.put(etcd, &format!("/aap/bindings/{id}"), &binding("h1", &id))?;
        ports.push(format!("/aap/neutron/ports/{id}"));
    }
    for key in &ports {
        wait_json(etcd, key, "port ACTIVE", |v| s(v, "status") == "ACTIVE")?;
    }
    let vm3_revision = mod_revision(etcd, &ports[0])?;
    n.stop();
    let vm4 = ports[1].rsplit('/').next().unwrap_or_default();
    etcd.etcdctl(&["del", &format!("/aap/bindings/{vm4}")])?;
    n.restart()?;
    wait_json(etcd, &ports[1], "vm4 DOWN after the restart", |v| {
        s(v, "status") == "DOWN"
    })?;
    let vm3 = etcd_json(etcd, &ports[0])?.context("vm3 in etcd")?;
    assert_eq!(s(&vm3, "status"), "ACTIVE", "vm3 stays ACTIVE");
    assert_eq!(
        mod_revision(etcd, &ports[0])?,
        vm3_revision,
        "vm3 untouched (no flap)"
    );
    let shown = n.cli_json(&["port", "show", "vm3"])?;
    assert_eq!(s(&shown, "status"), "ACTIVE");
    Ok(())
}

/// The driver's pure parts (layout, ordering, resync diff): Python unit
/// tests that need neither Neutron nor etcd.
#[test]
fn driver_unit_tests() -> Result<()> {
    let dir = lab::neutron::driver_dir();
    let out = Command::new("/usr/bin/python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(&dir)
        .arg("-t")
        .arg(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .context("running python3 -m unittest")?;
    if !out.status.success() {
        bail!(
            "python unit tests failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// What the driver writes, the agent's configuration code accepts: every
/// object under /aap/neutron/ written by a real Neutron (IPv4 and IPv6
/// subnets, a port with a pair, groups, a router and its interface) as one
/// document through `dataplane_config::validate`.
#[test]
fn agent_accepts_what_the_driver_writes() -> Result<()> {
    lab::require_root!();
    let etcd = Etcd::start(None, IP, 0)?;
    let n = Neutron::start(Options::new(&etcd.url))?;
    let r = (|| -> Result<()> {
        n.cli(&["network", "create", "net1"])?;
        n.cli(&[
            "subnet",
            "create",
            "v4",
            "--network",
            "net1",
            "--subnet-range",
            "10.0.0.0/24",
        ])?;
        n.cli(&[
            "subnet",
            "create",
            "v6",
            "--network",
            "net1",
            "--ip-version",
            "6",
            "--subnet-range",
            "fd00::/64",
        ])?;
        n.cli(&["security", "group", "create", "web"])?;
        n.cli(&[
            "security",
            "group",
            "rule",
            "create",
            "web",
            "--protocol",
            "tcp",
            "--remote-group",
            "web",
        ])?;
        n.cli(&[
            "port",
            "create",
            "vm1",
            "--network",
            "net1",
            "--security-group",
            "web",
            "--allowed-address",
            "ip-address=10.0.0.100",
            "--host",
            "h1",
        ])?;
        n.cli(&["router", "create", "r1"])?;
        n.cli(&["router", "add", "subnet", "r1", "v4"])?;
        // An external network, the router's gateway on it, and a floating
        // IP for a VIP port (the fixed IP vm1 carries as a pair).
        n.cli(&[
            "network",
            "create",
            "public",
            "--external",
            "--provider-network-type",
            "flat",
            "--provider-physical-network",
            "public",
        ])?;
        n.cli(&[
            "subnet",
            "create",
            "public-v4",
            "--network",
            "public",
            "--subnet-range",
            "203.0.113.0/24",
            "--gateway",
            "203.0.113.1",
            "--no-dhcp",
        ])?;
        n.cli(&["router", "set", "r1", "--external-gateway", "public"])?;
        n.cli(&[
            "port",
            "create",
            "vip",
            "--network",
            "net1",
            "--fixed-ip",
            "subnet=v4,ip-address=10.0.0.100",
        ])?;
        let fip = n.cli_json(&[
            "floating",
            "ip",
            "create",
            "public",
            "--port",
            "vip",
            "--floating-ip-address",
            "203.0.113.50",
        ])?;
        let fip_id = s(&fip, "id").to_string();
        // net1, v4, v6, default and web, vm1, the interface, r1, public,
        // public-v4, the gateway port, vip, the floating IP's port, the
        // floating IP.
        wait_for(WAIT, "every object in etcd", || {
            etcd.keys("/aap/neutron/")
                .map(|k| k.len() == 14)
                .unwrap_or(false)
        })?;
        let key = format!("/aap/neutron/floatingips/{fip_id}");
        let written = wait_json(&etcd, &key, "the floating IP, associated", |v| {
            v["fixed_ip_address"] == "10.0.0.100" && v["router_id"].is_string()
        })?;
        assert_eq!(written["floating_ip_address"], "203.0.113.50");
        let mut doc = serde_json::Map::new();
        for (key, value) in snapshot(&etcd)? {
            let kind = key.split('/').nth(3).context("a kind")?.to_string();
            let list = doc.entry(kind).or_insert_with(|| Value::Array(vec![]));
            list.as_array_mut()
                .expect("an array")
                .push(serde_json::from_str(&value)?);
        }
        let text = Value::Object(doc).to_string();
        let document = dataplane_config::Document::parse(&text, dataplane_config::Format::Json)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let store =
            dataplane_config::validate(&document).map_err(|e| anyhow::anyhow!("{e}\n{text}"))?;
        let served = store.floating_ips().get(&fip_id);
        anyhow::ensure!(
            served.is_some_and(|f| f.port_id.as_deref() == Some(s(&fip, "port_id"))),
            "the floating IP, associated, in the configuration: {text}"
        );
        anyhow::ensure!(
            store
                .gateway_port(&s(&written, "router_id").to_string())
                .is_some(),
            "the router's gateway port: {text}"
        );
        // Disassociated, then deleted: etcd follows.
        n.cli(&["floating", "ip", "unset", "--port", &fip_id])?;
        wait_json(&etcd, &key, "the floating IP, disassociated", |v| {
            v["port_id"].is_null()
        })?;
        n.cli(&["floating", "ip", "delete", &fip_id])?;
        wait_gone(&etcd, &key)?;
        Ok(())
    })();
    with_log(&n, r)
}

//! Observing the datapath as operators do: a real Prometheus (Debian's)
//! scrapes the agents of two hosts on a real etcd and is queried through
//! its HTTP API; each exposition passes `promtool check metrics`; every
//! query of the shipped Grafana dashboard is valid PromQL and names only
//! metrics the agents export; the agents' logs, with `--log-format json`,
//! are one JSON object a line.

use std::collections::BTreeSet;

use lab::{
    cloud::{Cloud, METRICS_PORT},
    lab::{Lab, WAIT},
    netns::run,
    prometheus::{self, Prometheus},
    require_root,
    topo::{config, port_on, subnet, vxlan_network},
};
use serde_json::Value;

fn metrics_addr(host_ip: &str) -> String {
    format!("{host_ip}:{METRICS_PORT}")
}

/// What the agent of `lab` serves at /metrics (fetched inside its namespace).
fn scrape(lab: &Lab, addr: &str) -> String {
    let out = run(lab
        .hv
        .command("curl")
        .args(["-sS", "--fail", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics")))
    .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Two hosts, one VM each on a VXLAN network; agents on etcd serving
/// metrics on their underlay address and logging JSON.
fn two_hosts() -> (Cloud, Vec<String>) {
    let mut cloud = Cloud::new(2).unwrap();
    let mut ports = Vec::new();
    let mut addrs = Vec::new();
    for (i, host) in cloud.hosts.iter_mut().enumerate() {
        let name = format!("vm{}", i + 1);
        let n = host
            .lab
            .add_vm(&name, &format!("fa:16:3e:40:00:0{}", i + 1))
            .unwrap();
        let vm = &host.lab.vms[n];
        let ip = format!("10.40.0.1{}", i + 1);
        vm.sh(&format!("ip addr add {ip}/24 dev eth0")).unwrap();
        ports.push(port_on(vm, &host.name, "net1", &[("sub1", &ip)]));
        let addr = metrics_addr(&host.ip);
        host.lab.run_args = ["--log-format", "json"].map(String::from).to_vec();
        addrs.push(addr);
    }
    let cfg = config(
        vec![vxlan_network("net1", 4001)],
        vec![subnet("sub1", "net1", "10.40.0.0/24", Some("10.40.0.1"))],
        ports,
    );
    cloud.publish(&cfg).unwrap();
    for h in ["h1", "h2"] {
        cloud.start(h, 1).unwrap();
    }
    for h in ["h1", "h2"] {
        cloud.wait_chassis(h, &["h1", "h2"], WAIT).unwrap();
        cloud.wait_remote_ports(h, 1, WAIT).unwrap();
    }
    (cloud, addrs)
}

#[test]
fn prometheus_scrapes_two_hosts_and_the_dashboard_queries_what_they_export() {
    require_root!();
    let (cloud, addrs) = two_hosts();
    let vm1 = cloud.host("h1").lab.vm("vm1");
    vm1.reaches("10.40.0.12", WAIT).unwrap();
    // A source vm1 may not use: dropped at h1 as ipv4_src (the ARP entry
    // for vm2 is fresh, so only the ICMP carries the spoofed address).
    vm1.sh("ip addr add 10.40.0.150/32 dev eth0").unwrap();
    assert!(!vm1.ping_from("10.40.0.12", Some("10.40.0.150"), 2));

    let mut exported = BTreeSet::new();
    for (host, addr) in ["h1", "h2"].iter().zip(&addrs) {
        let text = scrape(&cloud.host(host).lab, addr);
        prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{host}: {e:#}"));
        exported.extend(prometheus::families(&text));
    }

    let prom = Prometheus::start(&cloud.underlay, &addrs).unwrap();
    prom.wait_samples(r#"up{job="dataplane"}"#, 2, |v| v == 1.0)
        .unwrap();
    prom.wait_samples("dataplane_source_connected", 2, |v| v == 1.0)
        .unwrap();
    let spoofs = format!(
        r#"dataplane_port_drops_total{{reason="ipv4_src",port="{}",instance="{}"}}"#,
        vm1.port_id, addrs[0]
    );
    prom.wait_samples(&spoofs, 1, |v| v >= 1.0).unwrap();
    prom.wait_samples("dataplane_port_rx_packets_total", 2, |v| v > 0.0)
        .unwrap();
    prom.wait_samples("dataplane_conntrack_capacity", 2, |v| v > 0.0)
        .unwrap();
    // Both hosts read the same database to the same revision.
    prom.wait_samples(
        "scalar(max(dataplane_source_revision)) - dataplane_source_revision",
        2,
        |v| v == 0.0,
    )
    .unwrap();

    dashboard_queries_are_valid(&prom, &exported);
    for host in ["h1", "h2"] {
        logs_are_json(&cloud.host(host).lab);
    }
}

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/grafana/dataplane.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard is JSON")
}

/// Every `expr` of every panel target and query variable.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    // label_values(METRIC{...}, label): the metric is a query.
                    ("definition", Value::String(s)) if s.starts_with("label_values(") => {
                        let inner = &s["label_values(".len()..s.rfind(',').unwrap()];
                        out.push(inner.to_string());
                    }
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn dashboard_queries_are_valid(prom: &Prometheus, exported: &BTreeSet<String>) {
    let mut all = Vec::new();
    exprs(&dashboard(), &mut all);
    assert!(all.len() >= 15, "{all:?}");
    let mut named = BTreeSet::new();
    for e in &all {
        // Grafana's variables, as Grafana would fill them in.
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$job", ".*");
        prom.query(&q)
            .unwrap_or_else(|err| panic!("dashboard query invalid: {err:#}"));
        let mut rest = q.as_str();
        while let Some(i) = rest.find("dataplane_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            named.insert(name);
        }
    }
    let unknown: Vec<_> = named.difference(exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics no agent exports: {unknown:?}"
    );
    // And it shows what the issue asks for.
    for want in [
        "dataplane_port_drops_total",
        "dataplane_port_rx_packets_total",
        "dataplane_conntrack_entries",
        "dataplane_conntrack_evicted_total",
        "dataplane_port_claims_total",
        "dataplane_source_connected",
        "dataplane_source_revision",
    ] {
        assert!(named.contains(want), "the dashboard lacks {want}");
    }
}

/// Every line the agent logged is a JSON object with the fields log
/// collectors index, and the agent's own messages are among them.
fn logs_are_json(lab: &Lab) {
    let text = std::fs::read_to_string(lab.dir.path().join("agent.err")).unwrap();
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v[field].is_string(), "{field} missing: {line}");
        }
        messages.push(v["message"].as_str().unwrap().to_string());
    }
    assert!(
        messages.iter().any(|m| m.contains("datapath ready")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("serving metrics")),
        "{messages:?}"
    );
}

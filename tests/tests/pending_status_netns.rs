//! Ports that wait for their tap, and `dataplane status`: a port whose tap
//! does not exist is accepted and waits (nothing of it passes), is attached
//! within a second of the tap appearing and waits again when it goes; the
//! status tells the agent, its source, the generation in force and the last
//! attempt, a refused reload, a file switched by `dataplane apply` (kept
//! across a restart), and interfaces that lose what the datapath forwards.

use std::{cell::Cell, time::SystemTime};

use lab::{
    capture::frame,
    lab::{Lab, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

const MAC_A: &str = "fa:16:3e:73:00:0a";
const MAC_B: &str = "fa:16:3e:73:00:0b";
const MAC_C: &str = "fa:16:3e:73:00:0c";

/// Ports of the VMs among a (10.5.0.10), b (.11) and c (.12) that `lab`
/// has.
fn topology(lab: &Lab, names: &[&str]) -> Value {
    let ports = names
        .iter()
        .map(|n| port(lab.vm(n), "net", &[("v4", &ip_of(n))]))
        .collect();
    config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.5.0.0/24", None)],
        ports,
    )
}

fn ip_of(name: &str) -> String {
    match name {
        "a" => "10.5.0.10",
        "b" => "10.5.0.11",
        _ => "10.5.0.12",
    }
    .to_string()
}

/// VMs a, b and c; those in `unplugged` have no tap yet.
fn lab_with(unplugged: &[&str]) -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("a", MAC_A), ("b", MAC_B), ("c", MAC_C)] {
        if unplugged.contains(&name) {
            lab.add_unplugged_vm(name, mac).unwrap();
        } else {
            lab.add_vm(name, mac).unwrap();
            address(&lab, name);
        }
    }
    lab
}

fn address(lab: &Lab, name: &str) {
    lab.vm(name)
        .sh(&format!("ip addr add {}/24 dev eth0", ip_of(name)))
        .unwrap();
}

/// The ids `show ports --json` lists as waiting for their tap.
fn pending(lab: &Lab) -> Vec<String> {
    lab.show_ports().unwrap()["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn attached(lab: &Lab, name: &str) -> bool {
    lab.port(lab.vm(name)).is_ok()
}

#[test]
fn a_port_waits_for_its_tap_is_attached_when_it_appears_and_waits_again_when_it_goes() {
    require_root!();
    let mut lab = lab_with(&["b"]);
    // Before: refused at start (exit 2), nothing attached.
    lab.start(&topology(&lab, &["a", "b", "c"])).unwrap();
    let b = lab.vm("b");
    assert_eq!(pending(&lab), vec![b.port_id.clone()]);
    assert!(!attached(&lab, "b"));
    let (status, code) = lab.status().unwrap();
    assert_eq!(status["pending"][0]["tap"], b.tap.as_str(), "{status:#}");
    assert_eq!(code, 4, "{status:#}");
    let text =
        String::from_utf8(lab.dataplane(&["show", "ports"]).output().unwrap().stdout).unwrap();
    assert!(text.contains("waiting for their tap"), "{text}");

    // Nothing reaches the waiting port, nor leaks elsewhere: a frame from
    // a to its MAC and address arrives nowhere before a later broadcast.
    let (a, c) = (lab.vm("a"), lab.vm("c"));
    let cap = c.capture().unwrap();
    cap.drain();
    a.scapy(&format!(
        "sendp(Ether(src=MAC, dst='{MAC_B}')/IP(src='10.5.0.10', dst='10.5.0.11')/UDP(sport=9, \
         dport=9)/Raw(b'to-pending'), iface=IFACE)\n\
         sendp(Ether(src=MAC, dst='ff:ff:ff:ff:ff:ff')/IP(src='10.5.0.10', dst='10.5.0.255')/\
         UDP(sport=9, dport=9)/Raw(b'marker'), iface=IFACE)"
    ))
    .unwrap();
    let leaked = Cell::new(false);
    let marker = cap.wait_for(WAIT, |f| {
        leaked.set(leaked.get() || frame::contains(f, b"to-pending"));
        frame::contains(f, b"marker")
    });
    assert!(marker.is_some(), "the broadcast did not reach c");
    assert!(!leaked.get(), "a frame for the waiting port reached c");

    // The tap appears: attached within a second, by the agent's clock.
    let created = now();
    lab.plug_vm("b").unwrap();
    wait_for(WAIT, "the port attached", || {
        lab.log_count("its tap appeared") > 0
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.agent_log()));
    let delay = lab.log_time("its tap appeared").unwrap() - created;
    assert!(delay < 1.0, "attached {delay:.3} s after the tap appeared");
    address(&lab, "b");
    assert!(attached(&lab, "b"));
    assert!(pending(&lab).is_empty());
    let b = lab.vm("b");
    lab.vm("a").reaches("10.5.0.11", WAIT).unwrap();
    // Enforced: a spoofed source is dropped and counted.
    b.sh("ip addr add 10.5.0.98/32 dev eth0 && ip neigh replace 10.5.0.10 lladdr fa:16:3e:73:00:0a dev eth0 nud permanent")
        .unwrap();
    assert!(!b.ping_from("10.5.0.10", Some("10.5.0.98"), 2));
    assert!(lab.drops(b, "ipv4_src") >= 2);

    // The tap goes: the port waits again, detached.
    lab.hv.ip(&["link", "del", &b.tap]).unwrap();
    wait_for(WAIT, "the port waits again", || {
        pending(&lab) == vec![b.port_id.clone()]
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.agent_log()));
    assert!(!attached(&lab, "b"));
    assert!(
        lab.agent_log()
            .contains("its tap went: the port waits for it")
    );
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_change_adding_a_port_without_its_tap_applies_whole() {
    require_root!();
    let mut lab = lab_with(&["c"]);
    lab.start(&topology(&lab, &["a", "b"])).unwrap();
    // One edit: c (no tap yet) comes, and a gets a pair. Before: refused
    // whole, a's pair held back too.
    let mut new = topology(&lab, &["a", "b", "c"]);
    new["ports"][0]["allowed_address_pairs"] = json!([pair("10.5.0.100", None)]);
    lab.reload(&new).unwrap();
    assert_eq!(pending(&lab), vec![lab.vm("c").port_id.clone()]);
    let a = lab.vm("a");
    a.sh("ip addr add 10.5.0.100/32 dev eth0").unwrap();
    a.reaches_from("10.5.0.11", Some("10.5.0.100"), WAIT)
        .expect("the pair that came with the waiting port is in force");

    // `check` lists the port that would wait, and succeeds;
    // --skip-interfaces does not look.
    let path = lab.write_config("with-c.json", &new).unwrap();
    let path = path.to_str().unwrap();
    let out = lab
        .dataplane(&["check", "--config", path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 port(s) would wait for their tap") && text.contains(&lab.vm("c").tap),
        "{text}"
    );
    let out = lab
        .dataplane(&["check", "--skip-interfaces", "--config", path])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("would wait"));
    // `apply` takes it too (before: refused, exit 2).
    let out = lab.dataplane(&["apply", path]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_tells_the_agent_its_source_and_generation_and_when_no_agent_runs() {
    require_root!();
    let mut lab = lab_with(&[]);
    lab.start(&topology(&lab, &["a", "b"])).unwrap();
    let (s, code) = lab.status().unwrap();
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["agent"]["state"], "running");
    assert_eq!(s["agent"]["pid"], lab.agent_pid().unwrap());
    assert!(s["agent"]["uptime_secs"].as_f64().unwrap() >= 0.0);
    let config = lab.dir.path().join("config.json");
    let config = std::fs::canonicalize(config).unwrap();
    assert!(
        s["source"]["watching"]
            .as_str()
            .unwrap()
            .contains(config.to_str().unwrap()),
        "{s:#}"
    );
    let generation = lab.show_ports().unwrap()["generation"].clone();
    assert_eq!(s["datapath"]["generation"], generation);
    assert_eq!(s["last_attempt"]["outcome"], "applied");
    assert_eq!(s["last_attempt"]["generation"], generation);
    assert_eq!(s["verdict"]["ok"], true, "{s:#}");
    let text = lab.dataplane(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("verdict: ok"), "{text}");
    assert!(text.contains("agent running, PID"), "{text}");

    // The agent exits, the datapath stays: status says no agent runs.
    lab.stop().unwrap();
    let (s, code) = lab.status().unwrap();
    assert_eq!(code, 4, "{s:#}");
    assert_eq!(s["agent"]["state"], "not running");
    assert_eq!(s["datapath"]["generation"], generation);
    assert!(
        s["verdict"]["summary"]
            .as_str()
            .unwrap()
            .contains("no agent runs"),
        "{s:#}"
    );
}

#[test]
fn a_refused_reload_shows_in_status_and_show_until_one_applies() {
    require_root!();
    let mut lab = lab_with(&[]);
    let good = topology(&lab, &["a", "b"]);
    lab.start(&good).unwrap();
    let mut bad = good.clone();
    bad["ports"][1]["mac_address"] = json!("not-a-mac");
    lab.sighup(&bad).unwrap();
    let (s, code) = lab.status().unwrap();
    assert_eq!(code, 4, "{s:#}");
    assert_eq!(s["last_attempt"]["outcome"], "refused", "{s:#}");
    let error = s["last_error"]["error"].as_str().unwrap();
    assert!(error.contains("mac_address"), "{s:#}");
    // Verbatim: the error the log has.
    assert!(
        lab.agent_log().contains(error),
        "{error}\n{}",
        lab.agent_log()
    );
    let ports = lab.show_ports().unwrap();
    assert!(
        ports["refused"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("mac_address")),
        "{ports:#}"
    );
    let text = lab.dataplane(&["show", "ports"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("was refused"));

    // A good one applies: in force again, no longer refused.
    lab.reload(&good).unwrap();
    assert!(lab.show_ports().unwrap().get("refused").is_none());
    let (s, code) = lab.status().unwrap();
    assert_eq!(
        (code, &s["last_attempt"]["outcome"]),
        (0, &json!("applied"))
    );
    // The error stays told as the last one.
    assert!(
        s["last_error"]["error"]
            .as_str()
            .unwrap()
            .contains("mac_address")
    );
}

#[test]
fn a_file_switched_by_apply_is_shown_and_kept_across_a_restart() {
    require_root!();
    let mut lab = lab_with(&[]);
    lab.start(&topology(&lab, &["a", "b"])).unwrap();
    let config = std::fs::canonicalize(lab.dir.path().join("config.json")).unwrap();
    let mut with_pair = topology(&lab, &["a", "b"]);
    with_pair["ports"][0]["allowed_address_pairs"] = json!([pair("10.5.0.100", None)]);
    let other = lab.write_config("other.json", &with_pair).unwrap();
    let other = std::fs::canonicalize(other).unwrap();
    let out = lab
        .dataplane(&["apply", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (s, _) = lab.status().unwrap();
    assert_eq!(s["source"]["file"], other.to_str().unwrap(), "{s:#}");
    assert_eq!(s["source"]["started_with"], config.to_str().unwrap());
    assert!(s["source"]["applied_at"].is_number(), "{s:#}");
    let text = lab.dataplane(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("a restart keeps it"));

    // Restarted as before (--config config.json): the applied file stays
    // the configuration. Before: back to config.json, the pair gone.
    lab.stop().unwrap();
    lab.start_file(&config, 2).unwrap();
    let (s, _) = lab.status().unwrap();
    assert_eq!(s["source"]["file"], other.to_str().unwrap(), "{s:#}");
    assert!(
        s["source"]["note"]
            .as_str()
            .unwrap()
            .contains("kept across the restart")
    );
    let a = lab.vm("a");
    a.sh("ip addr add 10.5.0.100/32 dev eth0").unwrap();
    a.reaches_from("10.5.0.11", Some("10.5.0.100"), WAIT)
        .expect("the applied file's pair is in force after the restart");

    // Restarted with another --config: the operator's newer word wins.
    let third = lab
        .write_config("third.json", &topology(&lab, &["a", "b"]))
        .unwrap();
    lab.stop().unwrap();
    lab.start_file(&third, 2).unwrap();
    let (s, _) = lab.status().unwrap();
    let third = std::fs::canonicalize(third).unwrap();
    assert_eq!(s["source"]["file"], third.to_str().unwrap(), "{s:#}");
    assert!(s["source"]["note"].as_str().unwrap().contains("replaces"));
}

#[test]
fn interfaces_that_lose_frames_are_named_in_status_show_trace_and_metrics() {
    require_root!();
    let mut lab = lab_with(&[]);
    lab.run_args = vec!["--metrics".into(), "127.0.0.1:9478".into()];
    lab.start(&topology(&lab, &["a", "b"])).unwrap();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    a.reaches("10.5.0.11", WAIT).unwrap();
    // b's end of its veth loses NAPI (every frame sent to b is refused);
    // a offloads TX checksums (its TCP/UDP would arrive broken).
    b.sh("ethtool -K eth0 gro off").unwrap();
    a.sh("ethtool -K eth0 tx on >/dev/null").unwrap();
    assert!(!a.ping("10.5.0.11", 2), "frames to b should be lost");

    // trace does not call it delivered: lost at b's interface, exit 3.
    let out = lab
        .dataplane(&["trace", "a", "--dst", "10.5.0.11"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("lost") && !text.contains("and delivered"),
        "{text}"
    );

    let (s, code) = lab.status().unwrap();
    assert_eq!(code, 4, "{s:#}");
    let problems = |id: &str| -> Vec<String> {
        s["lossy"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["id"] == id)
            .flat_map(|p| p["interface"]["problems"].as_array().unwrap().clone())
            .map(|p| p["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(problems(&b.port_id), ["no_napi"], "{s:#}");
    assert_eq!(problems(&a.port_id), ["tx_checksum_offload"], "{s:#}");
    let shown = lab.port(b).unwrap();
    assert_eq!(shown["interface"]["problems"][0]["code"], "no_napi");

    let metrics = lab
        .hv
        .run_inside(|| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:9478")?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .unwrap();
    let series = format!(
        "dataplane_port_interface_problem{{port=\"{}\",tap=\"{}\",problem=\"no_napi\"}} 1",
        b.port_id, b.tap
    );
    assert!(metrics.contains(&series), "{metrics}");

    // Fixed in the VM: no longer named, and b is reached.
    b.sh("ethtool -K eth0 gro on").unwrap();
    a.sh("ethtool -K eth0 tx off >/dev/null").unwrap();
    let (s, _) = lab.status().unwrap();
    assert_eq!(s["lossy"], json!([]), "{s:#}");
    a.reaches("10.5.0.11", WAIT).unwrap();
}

//! Operating the datapath under traffic: the agent stops, is killed and
//! restarts, and the configuration changes live, while a VM pings another;
//! not one ping may be lost.

use std::time::Duration;

use lab::{
    lab::{Lab, Vm, WAIT, ping_result, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

const MAC_A: &str = "fa:16:3e:70:00:0a";
const MAC_B: &str = "fa:16:3e:70:00:0b";
const MAC_C: &str = "fa:16:3e:70:00:0c";

fn topology(lab: &Lab, with_c: bool) -> Value {
    let mut ports = vec![
        port(lab.vm("a"), "net", &[("v4", "10.8.0.10")]),
        port(lab.vm("b"), "net", &[("v4", "10.8.0.11")]),
    ];
    if with_c {
        let mut pc = port(lab.vm("c"), "net", &[("v4", "10.8.0.12")]);
        pc["allowed_address_pairs"] = json!([pair("10.8.0.100", None)]);
        ports.push(pc);
    }
    config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.8.0.0/24", None)],
        ports,
    )
}

fn lab() -> Lab {
    lab_with(&[])
}

/// The three VMs, the agent started with `run_args` on a and b's ports.
fn lab_with(run_args: &[&str]) -> Lab {
    let mut lab = Lab::new(false).unwrap();
    lab.run_args = run_args.iter().map(|a| a.to_string()).collect();
    for (name, mac, ip) in [
        ("a", MAC_A, "10.8.0.10"),
        ("b", MAC_B, "10.8.0.11"),
        ("c", MAC_C, "10.8.0.12"),
    ] {
        lab.add_vm(name, mac).unwrap();
        lab.vm(name)
            .sh(&format!("ip addr add {ip}/24 dev eth0"))
            .unwrap();
    }
    let cfg = topology(&lab, false);
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn stopping_killing_and_restarting_the_agent_loses_no_packet() {
    require_root!();
    let mut lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    a.reaches("10.8.0.11", WAIT).unwrap();
    let rx_before = lab.port(b).unwrap()["stats"]["rx_packets"]
        .as_u64()
        .unwrap();
    let opened = |lab: &Lab| -> u64 {
        let groups = lab.show("security-groups").unwrap();
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == "open")
            .unwrap()["egress_allowed"]
            .as_u64()
            .unwrap()
    };
    let opened_before = opened(&lab);
    assert!(opened_before > 0);
    // 12 s of pings: the two restarts below take 5 to 10 s on a busy
    // machine, and pings that end before them would test nothing.
    let out = lab.ping_in_background(a, "10.8.0.11", 600);
    std::thread::sleep(Duration::from_millis(500));

    // The agent exits: the datapath keeps forwarding on its pinned links.
    lab.stop().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // A new agent adopts the pinned state and replaces the programs.
    let cfg = topology(&lab, false);
    lab.start(&cfg).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Killed without any chance to clean up, then started again.
    lab.kill_agent().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    lab.start(&cfg).unwrap();

    let (sent, received) = ping_result(&out);
    assert_eq!(
        (sent, received),
        (600, 600),
        "pings lost across the restarts\n{}",
        lab.agent_log()
    );
    // Counters and indexes were adopted, not reset.
    let b = lab.vm("b");
    let rx_after = lab.port(b).unwrap()["stats"]["rx_packets"]
        .as_u64()
        .unwrap();
    assert!(rx_after >= rx_before + 600, "rx {rx_before} -> {rx_after}");
    assert!(
        opened(&lab) >= opened_before,
        "security-group counters were reset"
    );
    assert!(lab.agent_log().contains("took over the XDP links"));
}

#[test]
fn live_changes_and_a_rejected_config_lose_no_packet() {
    require_root!();
    let lab = lab();
    let (a, c) = (lab.vm("a"), lab.vm("c"));
    assert!(!c.ping("10.8.0.10", 1), "c is not a port yet");
    // 10 s of pings: long enough to span the changes below on a busy
    // machine, even when c's first ping waits for its ARP entry to fail
    // (see Vm::reaches).
    let out = lab.ping_in_background(a, "10.8.0.11", 500);
    std::thread::sleep(Duration::from_millis(300));

    // A port is added (with a pair) live.
    let with_c = topology(&lab, true);
    lab.reload(&with_c).unwrap();
    c.reaches("10.8.0.10", WAIT).expect("the new port forwards");

    // A broken file changes nothing.
    let generation = lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    let mut bad = with_c.clone();
    bad["ports"][2]["mac_address"] = json!("not-a-mac");
    // Returns once the agent handled the signal and the file change.
    lab.sighup(&bad).unwrap();
    assert_eq!(
        lab.show_ports().unwrap()["generation"].as_u64().unwrap(),
        generation,
        "a rejected config was applied"
    );
    assert!(
        lab.agent_log()
            .contains("keeping the running configuration")
    );
    c.reaches("10.8.0.10", WAIT)
        .expect("the running configuration still forwards");

    // And removed again.
    lab.reload(&topology(&lab, false)).unwrap();
    assert!(!c.ping("10.8.0.10", 2), "the removed port still forwards");

    let (sent, received) = ping_result(&out);
    assert_eq!(
        (sent, received),
        (500, 500),
        "pings lost during live changes"
    );
}

#[test]
fn an_edited_config_file_applies_without_a_signal() {
    require_root!();
    let lab = lab();
    let c = lab.vm("c");
    let before = lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    // Only the file changes: no SIGHUP, no command.
    lab.write_config("config.json", &topology(&lab, true))
        .unwrap();
    let applied = wait_for(WAIT, "the edit applied", || {
        lab.show_ports().unwrap()["generation"].as_u64().unwrap() > before
    });
    assert!(
        applied.is_ok(),
        "the edit was not applied:\n{}",
        lab.agent_log()
    );
    c.reaches("10.8.0.10", WAIT)
        .expect("the port added by the edit forwards");
}

#[test]
fn metrics_expose_per_port_per_reason_counters() {
    require_root!();
    let lab = lab_with(&["--metrics", "127.0.0.1:9477"]);
    let a = lab.vm("a");
    a.reaches("10.8.0.11", WAIT).unwrap();
    // A spoofed source, for a drop counter.
    a.sh("ip addr add 10.8.0.99/32 dev eth0 && ip neigh replace 10.8.0.11 lladdr fa:16:3e:70:00:0b dev eth0 nud permanent")
        .unwrap();
    assert!(!a.ping_from("10.8.0.11", Some("10.8.0.99"), 2));
    let get = |path: &'static str| {
        lab.hv
            .run_inside(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect("127.0.0.1:9477")?;
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .unwrap()
    };
    let text = get("/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let value = |series: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let drops = value(&format!(
        "dataplane_port_drops_total{{port=\"{}\",reason=\"ipv4_src\"}}",
        a.port_id
    ));
    assert_eq!(drops, lab.drops(a, "ipv4_src"));
    assert!(drops >= 2);
    let rx = value(&format!(
        "dataplane_port_rx_packets_total{{port=\"{}\"",
        a.port_id
    ));
    assert!(rx >= 2);
    assert!(text.contains("# TYPE dataplane_port_drops_total counter"));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
}

#[test]
fn dataplane_apply_talks_to_the_running_agent() {
    require_root!();
    let lab = lab();
    let c = lab.vm("c");
    let good = lab
        .write_config("with-c.json", &topology(&lab, true))
        .unwrap();
    let out = lab
        .dataplane(&["apply", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
    c.reaches("10.8.0.10", WAIT)
        .expect("the applied port forwards");

    // A bad file is refused before the agent sees it, naming the field.
    let generation = lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    let mut bad = topology(&lab, true);
    bad["ports"][2]["allowed_address_pairs"] = json!([{ "ip_address": "224.0.0.5" }]);
    let bad = lab.write_config("bad.json", &bad).unwrap();
    let out = lab
        .dataplane(&["apply", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_address_pairs[0].ip_address"));
    assert_eq!(
        lab.show_ports().unwrap()["generation"].as_u64().unwrap(),
        generation
    );
    c.reaches("10.8.0.10", WAIT)
        .expect("the running configuration still forwards");
}

#[test]
fn monitor_streams_drops_with_port_reason_and_addresses() {
    require_root!();
    let lab = lab();
    let a = lab.vm("a");
    let out = lab.dir.path().join("monitor.out");
    let mut child = lab
        .dataplane(&["monitor", "--json", "--count", "2"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    a.sh("ip addr add 10.8.0.99/32 dev eth0 && ip neigh replace 10.8.0.11 lladdr fa:16:3e:70:00:0b dev eth0 nud permanent")
        .unwrap();
    // Spoofed pings until the monitor has printed its 2 events and exited
    // (however long it takes to start).
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        assert!(!a.ping_from("10.8.0.11", Some("10.8.0.99"), 2));
    }
    let _ = child.kill();
    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    for e in &events {
        assert_eq!(e["port"], a.port_id.as_str());
        assert_eq!(e["reason"], "ipv4_src");
        assert_eq!(e["src"], "10.8.0.99");
        assert_eq!(e["dst"], "10.8.0.11");
        assert_eq!(e["src_mac"], MAC_A);
    }
}

#[test]
fn a_rebooted_vm_gets_its_port_back() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    a.reaches("10.8.0.11", WAIT).unwrap();
    let before = lab.port(b).unwrap()["ifindex"].as_u64().unwrap();
    // b's tap goes away and comes back with a new ifindex.
    lab.replug("b").unwrap();
    b.sh("ip addr add 10.8.0.11/24 dev eth0").unwrap();
    let reattached = wait_for(WAIT, "the port on the new tap", || {
        lab.port(b).unwrap()["ifindex"].as_u64().unwrap() != before
    });
    assert!(
        reattached.is_ok(),
        "the port kept the old tap:\n{}",
        lab.agent_log()
    );
    a.reaches("10.8.0.11", WAIT)
        .expect("traffic did not resume");
    // Its port security holds on the new tap too.
    let dropped = lab.drops(b, "ipv4_src");
    b.sh("ip addr add 10.8.0.98/32 dev eth0 && ip neigh replace 10.8.0.10 lladdr fa:16:3e:70:00:0a dev eth0 nud permanent")
        .unwrap();
    assert!(!b.ping_from("10.8.0.10", Some("10.8.0.98"), 2));
    assert!(lab.drops(b, "ipv4_src") > dropped);
}

#[test]
fn a_config_larger_than_the_maps_changes_nothing() {
    require_root!();
    let mut lab = lab();
    // The agent sized for 2 ports: a third one does not fit.
    lab.stop().unwrap();
    let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/{}", lab.instance));
    let cfg = topology(&lab, true);
    let path = lab.write_config("big.json", &cfg).unwrap();
    let out = lab
        .dataplane(&[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--max-ports",
            "2",
            "--cleanup",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("too many ports") && err.contains("--max-ports"),
        "{err}"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/{}", lab.instance)).exists(),
        "a rejected start left state behind"
    );
    let link = lab
        .hv
        .ip(&["-d", "link", "show", "dev", &lab.vm("a").tap])
        .unwrap();
    assert!(!String::from_utf8_lossy(&link.stdout).contains("xdp"));

    // Running with room for 2, a live change to 3 is refused and the two
    // ports keep forwarding.
    lab.run_args = vec!["--max-ports".into(), "2".into()];
    let small = topology(&lab, false);
    let path = lab.write_config("config.json", &small).unwrap();
    lab.start_file(&path, 2).unwrap();
    let generation = lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    // Returns once the agent handled the signal and the file change.
    lab.sighup(&cfg).unwrap();
    assert!(
        lab.agent_log().contains("too many ports"),
        "{}",
        lab.agent_log()
    );
    assert_eq!(
        lab.show_ports().unwrap()["generation"].as_u64().unwrap(),
        generation
    );
    lab.vm("a").reaches("10.8.0.11", WAIT).unwrap();
}

/// Runs the agent on `config` with `DATAPLANE_FAILPOINT=point` and
/// requires it to crash there (SIGABRT) within 30 s.
fn crash_at(lab: &Lab, config: &Value, point: &str) {
    use std::os::unix::process::ExitStatusExt as _;
    let path = lab.write_config("config.json", config).unwrap();
    let mut child = lab
        .dataplane(&[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--max-ports",
            "64",
        ])
        .env("DATAPLANE_FAILPOINT", point)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not reach the failpoint {point}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "expected a crash at {point}: {status}\n{err}"
    );
    assert!(err.contains(point), "{err}");
}

/// Whether the tap of `vm` has an XDP program attached.
fn has_xdp(lab: &Lab, vm: &Vm) -> bool {
    let out = lab.hv.ip(&["link", "show", "dev", &vm.tap]).unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

#[test]
fn an_agent_crashing_in_the_middle_of_an_apply_leaves_old_or_new_never_a_mix() {
    require_root!();
    let mut lab = lab();
    let old = topology(&lab, false);
    // The new configuration adds port c (with a pair) and gives b a pair.
    let mut new = topology(&lab, true);
    new["ports"][1]["allowed_address_pairs"] = json!([pair("10.8.0.200", None)]);
    lab.vm("b")
        .sh("ip addr add 10.8.0.200/32 dev eth0")
        .unwrap();
    let generation = |lab: &Lab| lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    let ports = |lab: &Lab| lab.show_ports().unwrap()["ports"].as_array().unwrap().len();
    lab.vm("a").reaches("10.8.0.11", WAIT).unwrap();
    assert!(!lab.vm("b").ping_from("10.8.0.10", Some("10.8.0.200"), 1));
    let before = generation(&lab);

    // Crash with the new slot written and c's tap attached, before the
    // switch: the old configuration is whole and alone in force.
    lab.kill_agent().unwrap();
    crash_at(&lab, &new, "apply-staged");
    assert_eq!(generation(&lab), before, "the switch happened");
    assert_eq!(ports(&lab), 2);
    lab.vm("a")
        .reaches("10.8.0.11", WAIT)
        .expect("old traffic broken");
    let spoofed = lab.drops(lab.vm("b"), "ipv4_src");
    assert!(
        !lab.vm("b").ping_from("10.8.0.10", Some("10.8.0.200"), 2),
        "new pair in force"
    );
    assert!(lab.drops(lab.vm("b"), "ipv4_src") >= spoofed + 2);
    // c is not a port of the live configuration: its frames are refused
    // (its tap's program finds no port), not let through. This leaves c's
    // ARP entry for 10.8.0.10 unresolved for 3 s: the checks that c does
    // reach it use Vm::reaches, which outlasts that.
    assert!(
        !lab.vm("c").ping("10.8.0.10", 2),
        "a half-added port forwards"
    );

    // The next start repairs: the new configuration, whole.
    lab.start(&new).unwrap();
    assert!(generation(&lab) > before);
    assert_eq!(ports(&lab), 3);
    lab.vm("c")
        .reaches("10.8.0.10", WAIT)
        .expect("c not working after the repair");
    lab.vm("b")
        .reaches_from("10.8.0.10", Some("10.8.0.200"), WAIT)
        .expect("b's pair not in force");
    lab.vm("a").reaches("10.8.0.11", WAIT).unwrap();

    // Crash right after switching back to the old configuration, before
    // any cleanup: the old configuration is whole in force (c is no port,
    // b's pair is gone), with c's program still attached.
    let before = generation(&lab);
    lab.kill_agent().unwrap();
    crash_at(&lab, &old, "apply-switched");
    assert_eq!(generation(&lab), before + 1);
    assert_eq!(ports(&lab), 2);
    lab.vm("a").reaches("10.8.0.11", WAIT).unwrap();
    assert!(
        !lab.vm("b").ping_from("10.8.0.10", Some("10.8.0.200"), 2),
        "the removed pair still works"
    );
    assert!(
        !lab.vm("c").ping("10.8.0.10", 2),
        "a removed port still forwards"
    );
    assert!(
        has_xdp(&lab, lab.vm("c")),
        "expected the leftover attachment the test is about"
    );

    // The next start repairs: the leftover attachment goes. The kernel
    // detaches a link once its last reference is gone, and the pin's goes
    // after an RCU grace period: shortly after the agent is ready.
    lab.start(&old).unwrap();
    assert_eq!(ports(&lab), 2);
    wait_for(WAIT, "c's tap without the program", || {
        !has_xdp(&lab, lab.vm("c"))
    })
    .expect("c's tap kept the datapath's program");
    lab.vm("a").reaches("10.8.0.11", WAIT).unwrap();
    assert!(lab.agent_log().contains("took over the XDP links"));
}

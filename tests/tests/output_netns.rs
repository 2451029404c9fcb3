//! What the commands print must be true: `show groups` after an active
//! member's tap went, `monitor` (from now on, wall-clock times, filters),
//! a closed pipe, exit codes of configuration errors.

use std::{
    io::Read,
    process::{Output, Stdio},
    time::{Duration, Instant, SystemTime},
};

use lab::{
    capture::frame,
    lab::{Lab, Vm, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

const MAC_M1: &str = "fa:16:3e:72:00:01";
const MAC_M2: &str = "fa:16:3e:72:00:02";
const MAC_C: &str = "fa:16:3e:72:00:0c";
const VMAC: &str = "00:00:5e:00:01:72";
const VIP: &str = "10.6.0.100";

fn topology(lab: &Lab) -> Value {
    let mut p1 = port(lab.vm("m1"), "net", &[("v4", "10.6.0.10")]);
    p1["allowed_address_pairs"] = json!([pair(VIP, Some(VMAC))]);
    let mut p2 = port(lab.vm("m2"), "net", &[("v4", "10.6.0.11")]);
    p2["allowed_address_pairs"] = json!([pair(VIP, Some(VMAC))]);
    let pc = port(lab.vm("c"), "net", &[("v4", "10.6.0.12")]);
    config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.6.0.0/24", None)],
        vec![p1, p2, pc],
    )
}

/// m1 and m2 share a VIP with one MAC; c is a client.
fn lab_with(run_args: &[&str]) -> Lab {
    let mut lab = Lab::new(false).unwrap();
    lab.run_args = run_args.iter().map(|a| a.to_string()).collect();
    for (name, mac, ip) in [
        ("m1", MAC_M1, "10.6.0.10"),
        ("m2", MAC_M2, "10.6.0.11"),
        ("c", MAC_C, "10.6.0.12"),
    ] {
        lab.add_vm(name, mac).unwrap();
        lab.vm(name)
            .sh(&format!("ip addr add {ip}/24 dev eth0"))
            .unwrap();
    }
    let cfg = topology(&lab);
    lab.start(&cfg).unwrap();
    lab
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn groups_text(lab: &Lab) -> String {
    let out = lab.dataplane(&["show", "groups"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn show_groups_does_not_call_a_member_without_its_tap_active() {
    require_root!();
    let lab = lab_with(&[]);
    let (m1, m2, c) = (lab.vm("m1"), lab.vm("m2"), lab.vm("c"));
    m1.scapy(&format!(
        "sendp(Ether(src='{VMAC}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{VMAC}', \
         psrc='{VIP}', pdst='{VIP}'), iface=IFACE)"
    ))
    .unwrap();
    assert_eq!(
        lab.active_member(VMAC).as_deref(),
        Some(m1.port_id.as_str())
    );
    assert!(groups_text(&lab).contains("* active"));

    // m1's tap goes. Before any frame for the group: frames would go to
    // every member, and show says so.
    lab.hv.ip(&["link", "del", &m1.tap]).unwrap();
    assert_eq!(
        lab.active_member(VMAC),
        None,
        "a member without its tap shown active:\n{}",
        groups_text(&lab)
    );
    let groups = lab.show("groups").unwrap();
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"].as_str().unwrap().contains(VMAC))
        .unwrap();
    assert_eq!(g["lost_active"], m1.port_id.as_str(), "{g}");
    let shown = groups_text(&lab);
    assert!(!shown.contains("* active"), "{shown}");
    assert!(shown.contains("its tap is gone"), "{shown}");

    // A frame for the group: the datapath forgets m1; m2 gets it.
    let cap = m2.capture().unwrap();
    cap.drain();
    c.scapy(&format!(
        "sendp(Ether(src=MAC, dst='{VMAC}')/IP(src='10.6.0.12', dst='{VIP}')/UDP(sport=9, \
         dport=9)/Raw(b'after-m1-went'), iface=IFACE)"
    ))
    .unwrap();
    assert!(
        cap.wait_for(Duration::from_secs(2), |f| frame::contains(
            f,
            b"after-m1-went"
        ))
        .is_some()
    );
    let shown = groups_text(&lab);
    assert!(
        !shown.contains("active since"),
        "no member is active, yet:\n{shown}"
    );
    assert!(
        shown.contains("no active member: traffic goes to every member"),
        "{shown}"
    );
}

/// Starts `dataplane monitor ARGS` with stdout and stderr in files, and
/// waits until it says it streams.
fn monitor(lab: &Lab, name: &str, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let out = lab.dir.path().join(format!("{name}.out"));
    let err = lab.dir.path().join(format!("{name}.err"));
    let mut cmd = lab.dataplane(&["monitor"]);
    cmd.args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    let ready = wait_for(WAIT, "the monitor streams", || {
        std::fs::read_to_string(&err).is_ok_and(|e| e.contains("monitor: streaming"))
    });
    if ready.is_err() {
        let _ = child.kill();
        panic!(
            "monitor not ready: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    (child, out)
}

/// Waits for the monitor to exit by itself (`--count`) while `poke` makes
/// drops; returns its JSON events.
fn events_until_exit(
    mut child: std::process::Child,
    out: &std::path::Path,
    mut poke: impl FnMut(),
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the monitor did not print its events: {}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        poke();
    }
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Makes `vm` send two pings from an address that is not its own.
fn spoof(vm: &Vm, from: &str, to: &str) {
    vm.sh(&format!(
        "ip addr replace {from}/32 dev eth0 && ip neigh replace {to} lladdr ff:ff:ff:ff:ff:ff \
         dev eth0 nud permanent"
    ))
    .unwrap();
    assert!(!vm.ping_from(to, Some(from), 2));
}

#[test]
fn monitor_starts_from_now_with_wall_clock_times_and_filters() {
    require_root!();
    let lab = lab_with(&[]);
    let (m1, c) = (lab.vm("m1"), lab.vm("c"));
    // A backlog: c's spoofed pings, queued while no monitor reads.
    spoof(c, "10.6.0.99", "10.6.0.10");
    wait_for(WAIT, "c's drops counted", || lab.drops(c, "ipv4_src") >= 2).unwrap();

    // Asked for, the backlog comes first, without new drops.
    let (child, out) = monitor(
        &lab,
        "backlog",
        &["--json", "--count", "1", "--backlog", "--port", "c"],
    );
    let events = events_until_exit(child, &out, || {
        std::thread::sleep(Duration::from_millis(50))
    });
    assert_eq!(events[0]["port"], c.port_id.as_str());

    // More backlog; then a monitor from now on sees m1's new drop first,
    // with its wall-clock time.
    spoof(c, "10.6.0.98", "10.6.0.10");
    wait_for(WAIT, "c's drops counted", || lab.drops(c, "ipv4_src") >= 4).unwrap();
    let (child, out) = monitor(&lab, "now", &["--json", "--count", "1"]);
    let events = events_until_exit(child, &out, || spoof(m1, "10.6.0.97", "10.6.0.12"));
    let e = &events[0];
    assert_eq!(e["port"], m1.port_id.as_str(), "backlog replayed: {e}");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let at = e["unix_time"].as_f64().unwrap();
    assert!(
        (now - at).abs() < 60.0,
        "event at {at}, now {now}: not wall-clock time"
    );
    assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");

    // Filters by port name and reason: c's drops only, though m1's come too.
    let (child, out) = monitor(
        &lab,
        "filtered",
        &[
            "--json", "--count", "2", "--port", "c", "--reason", "ipv4_src",
        ],
    );
    let events = events_until_exit(child, &out, || {
        spoof(m1, "10.6.0.96", "10.6.0.12");
        spoof(c, "10.6.0.95", "10.6.0.10");
    });
    for e in &events {
        assert_eq!(e["port"], c.port_id.as_str(), "{e}");
        assert_eq!(e["reason"], "ipv4_src");
    }
    // An unknown reason or port is an error.
    for args in [["--reason", "ipv4_srcc"], ["--port", "nobody"]] {
        let out = lab.dataplane(&["monitor"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
}

/// A command whose reader went away ends quietly: no panic, no 101.
fn assert_quiet_on_closed_pipe(mut child: std::process::Child, mut poke: impl FnMut()) {
    // Close our end of its stdout before it writes.
    drop(child.stdout.take());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("it kept running with nobody reading");
        }
        poke();
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_ne!(status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_closed_pipe_ends_show_and_monitor_quietly() {
    require_root!();
    let lab = lab_with(&[]);
    for what in ["ports", "groups", "conntrack", "security-groups"] {
        let child = lab
            .dataplane(&["show", what, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_quiet_on_closed_pipe(child, || std::thread::sleep(Duration::from_millis(20)));
    }
    let child = lab
        .dataplane(&["monitor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = lab.vm("c");
    assert_quiet_on_closed_pipe(child, || spoof(c, "10.6.0.99", "10.6.0.10"));
}

#[test]
fn show_conntrack_says_full_only_when_full() {
    require_root!();
    let lab = lab_with(&[]);
    lab.vm("c").reaches("10.6.0.10", WAIT).unwrap();
    let out = lab.dataplane(&["show", "conntrack"]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(shown.contains("connection(s)"), "{shown}");
    assert!(
        !shown.contains("full)"),
        "a table of 131072 is not full:\n{shown}"
    );
    assert!(!shown.contains("table is full"), "{shown}");
}

/// `dataplane ARGS` in the lab's namespace; its output.
fn dataplane(lab: &Lab, args: &[&str]) -> Output {
    lab.dataplane(args).output().unwrap()
}

#[test]
fn every_configuration_error_exits_2() {
    require_root!();
    let lab = lab_with(&["--max-ports", "3"]);
    let dir = lab.dir.path();
    let file = |name: &str, content: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cases = [
        file("syntax.toml", b"[[ports]\nid = 1\n"),
        file(
            "type.toml",
            b"[[ports]]\nid = \"p\"\nfixed_ips = \"10.0.0.1\"\n",
        ),
        file(
            "type2.toml",
            b"[dataplane]\nmax_allowed_address_pair = \"ten\"\n",
        ),
        file("syntax.json", b"{\"ports\": [}"),
        file("type.json", b"{\"ports\": [{\"id\": 5}]}"),
        file("latin1.toml", b"[[networks]]\nid = \"r\xe9seau\"\n"),
    ];
    for path in &cases {
        for args in [
            vec!["check", "--skip-interfaces", "--config", path],
            vec!["apply", path],
        ] {
            let out = dataplane(&lab, &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        }
    }
    // Valid, but larger than the running agent's maps (--max-ports 3): the
    // agent refuses it, and that is a configuration error too.
    lab.hv
        .ip(&[
            "link",
            "add",
            "tapextra0",
            "type",
            "veth",
            "peer",
            "name",
            "tapextra0p",
        ])
        .unwrap();
    let mut big = topology(&lab);
    big["ports"].as_array_mut().unwrap().push(json!({
        "id": "extra-0",
        "name": "extra",
        "network_id": "net",
        "mac_address": "fa:16:3e:72:01:01",
        "fixed_ips": [{ "subnet_id": "v4", "ip_address": "10.6.0.50" }],
        "tap_name": "tapextra0",
        "security_groups": ["open"],
    }));
    let generation = lab.show_ports().unwrap()["generation"].as_u64();
    let path = lab.write_config("big.json", &big).unwrap();
    let out = dataplane(&lab, &["apply", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-ports"),
        "{}",
        text(&out)
    );
    assert_eq!(lab.show_ports().unwrap()["generation"].as_u64(), generation);
    // So is a start with it.
    let other = format!("{}b", lab.instance);
    let out = lab
        .hv
        .command(lab::lab::dataplane_bin().to_str().unwrap())
        .args(["--instance", &other, "run", "--config"])
        .arg(&path)
        .args(["--max-ports", "3", "--cleanup"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!std::path::Path::new(&format!("/sys/fs/bpf/{other}")).exists());
}

/// `show programs` measures under live traffic: the programs that carry
/// it ran, each with a time per run, and one that had nothing to do did
/// not.
#[test]
fn show_programs_reports_what_the_traffic_costs() {
    require_root!();
    let lab = lab_with(&[]);
    let c = lab.vm("c");
    c.reaches("10.6.0.10", WAIT).unwrap();
    let pinged = lab.ping_in_background(c, "10.6.0.10", 150);
    let out = lab
        .dataplane(&["show", "programs", "--json", "--sample", "1.5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let program = |name: &str| {
        v["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    for name in ["from_vm", "to_vm"] {
        let p = program(name);
        assert!(p["runs"].as_u64().unwrap() >= 10, "{name} ran: {p}");
        let ns = p["ns_per_run"].as_f64().unwrap();
        assert!(ns > 0.0, "{name} took time: {p}");
    }
    // Nothing routes here: the routing programs did not run.
    assert_eq!(program("route_v4")["runs"], 0, "{v:#}");
    assert!(program("route_v4")["ns_per_run"].is_null());
    let _ = lab::lab::ping_result(&pinged);
    // The text form names the same programs.
    let out = lab
        .dataplane(&["show", "programs", "--sample", "0.2"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("from_vm") && shown.contains("ns/run"),
        "{shown}"
    );
}

//! One agent per instance, and a `dataplane stop` that cannot strand
//! anyone: whatever the order of stop, SIGTERM, SIGKILL and restarts, the
//! datapath is either fully enforcing (XDP on the taps, pins, traffic
//! forwarded) or fully removed on purpose (no XDP, no pins, no socket).

use std::{path::Path, process::Output, time::Duration};

use lab::{
    lab::{Lab, WAIT, wait_for},
    require_root,
    topo::{config, network, port, subnet},
};
use serde_json::Value;

const MAC_A: &str = "fa:16:3e:71:00:0a";
const MAC_B: &str = "fa:16:3e:71:00:0b";

fn topology(lab: &Lab) -> Value {
    config(
        vec![network("net")],
        vec![subnet("v4", "net", "10.7.0.0/24", None)],
        vec![
            port(lab.vm("a"), "net", &[("v4", "10.7.0.10")]),
            port(lab.vm("b"), "net", &[("v4", "10.7.0.11")]),
        ],
    )
}

/// Two VMs behind a running agent, a reaching b.
fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac, ip) in [("a", MAC_A, "10.7.0.10"), ("b", MAC_B, "10.7.0.11")] {
        lab.add_vm(name, mac).unwrap();
        lab.vm(name)
            .sh(&format!("ip addr add {ip}/24 dev eth0"))
            .unwrap();
    }
    let cfg = topology(&lab);
    lab.start(&cfg).unwrap();
    lab.vm("a").reaches("10.7.0.11", WAIT).unwrap();
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

fn stop(lab: &Lab) -> Output {
    lab.dataplane(&["stop"]).output().unwrap()
}

/// Which of the VMs' taps have an XDP program.
fn taps_with_xdp(lab: &Lab) -> Vec<String> {
    lab.vms
        .iter()
        .filter(|vm| {
            let out = lab.hv.ip(&["link", "show", "dev", &vm.tap]).unwrap();
            String::from_utf8_lossy(&out.stdout).contains("xdp")
        })
        .map(|vm| vm.name.clone())
        .collect()
}

fn pins(lab: &Lab) -> bool {
    Path::new(&format!("/sys/fs/bpf/{}", lab.instance)).exists()
}

fn socket(lab: &Lab) -> bool {
    Path::new(&format!("/run/dataplane/{}.sock", lab.instance)).exists()
}

/// Fully enforcing: every tap has XDP, the state is pinned, traffic flows.
fn assert_enforcing(lab: &Lab) {
    assert_eq!(taps_with_xdp(lab), ["a", "b"], "{}", lab.agent_log());
    assert!(pins(lab), "the pinned state is gone");
    lab.vm("a").reaches("10.7.0.11", WAIT).unwrap();
}

/// Fully removed: no XDP on any tap, nothing pinned, no control socket.
/// Right when `stop` returns: it says it detached, so it must have.
fn assert_removed(lab: &Lab) {
    assert_eq!(
        taps_with_xdp(lab),
        Vec::<String>::new(),
        "XDP left attached"
    );
    assert!(!pins(lab), "pinned state left");
    assert!(!socket(lab), "control socket left");
}

#[test]
fn a_second_agent_is_refused_naming_the_first_which_keeps_its_socket() {
    require_root!();
    let lab = lab();
    let pid = lab.agent_pid().unwrap();
    let generation = lab.show_ports().unwrap()["generation"].as_u64().unwrap();
    let path = lab.write_config("second.json", &topology(&lab)).unwrap();
    let mut second = lab
        .dataplane(&[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--max-ports",
            "64",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must give up by itself, at once, rather than take over.
    let exited = wait_for(WAIT, "the second agent exits", || {
        second.try_wait().unwrap().is_some()
    });
    if exited.is_err() {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    exited.unwrap_or_else(|e| panic!("{e}\n{}", text(&out)));
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already run by the agent with PID {pid}")),
        "{}",
        text(&out)
    );
    // The first agent is untouched: same generation, its socket answers.
    assert_eq!(
        lab.show_ports().unwrap()["generation"].as_u64().unwrap(),
        generation
    );
    assert!(socket(&lab));
    let applied = lab
        .dataplane(&["apply", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", text(&applied));
    assert_enforcing(&lab);
}

#[test]
fn stop_under_a_running_agent_has_it_remove_everything_and_exit() {
    require_root!();
    let mut lab = lab();
    let pid = lab.agent_pid().unwrap();
    let out = stop(&lab);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stopped the agent (PID {pid})")),
        "{}",
        text(&out)
    );
    // stop returned once the agent had exited, cleanly.
    let status = lab.wait_agent_exit(Duration::from_secs(1)).unwrap();
    assert!(status.success(), "{status}\n{}", lab.agent_log());
    assert_removed(&lab);
    assert!(
        !lab.agent_log().contains("keeps running"),
        "{}",
        lab.agent_log()
    );
    assert!(
        !lab.vm("a").ping("10.7.0.11", 2),
        "traffic flows without a datapath"
    );
}

#[test]
fn stop_after_sigterm_removes_what_the_agent_left() {
    require_root!();
    let mut lab = lab();
    lab.stop().unwrap();
    assert!(
        lab.agent_log()
            .contains("keeps running on its pinned links")
    );
    // Left running on purpose: still enforcing.
    assert_enforcing(&lab);
    let out = stop(&lab);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("detached 2 XDP link(s)"),
        "{}",
        text(&out)
    );
    assert_removed(&lab);
}

#[test]
fn stop_after_sigkill_removes_what_the_agent_left() {
    require_root!();
    let mut lab = lab();
    lab.kill_agent().unwrap();
    assert_enforcing(&lab);
    let out = stop(&lab);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no agent was running"),
        "{}",
        text(&out)
    );
    assert_removed(&lab);
    // Nothing left to stop: a second stop is an error.
    let again = stop(&lab);
    assert!(!again.status.success(), "{}", text(&again));
}

#[test]
fn run_after_stop_starts_afresh_and_enforces() {
    require_root!();
    let mut lab = lab();
    let out = stop(&lab);
    assert!(out.status.success(), "{}", text(&out));
    lab.wait_agent_exit(Duration::from_secs(1)).unwrap();
    assert_removed(&lab);
    let cfg = topology(&lab);
    lab.start(&cfg).unwrap();
    assert_eq!(
        lab.show_ports().unwrap()["generation"].as_u64(),
        Some(1),
        "a stopped instance is not adopted"
    );
    assert_enforcing(&lab);
    // And this agent stops as cleanly.
    let out = stop(&lab);
    assert!(out.status.success(), "{}", text(&out));
    assert_removed(&lab);
}

#[test]
fn stop_of_an_unknown_instance_fails_and_removes_nothing() {
    require_root!();
    let lab = lab();
    let typo = format!("{}x", lab.instance);
    let out = lab
        .hv
        .command(lab::lab::dataplane_bin().to_str().unwrap())
        .args(["--instance", &typo, "stop"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("no instance {typo}")) && err.contains(&lab.instance),
        "the error names the instance and the ones there are: {}",
        text(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("removed"),
        "{}",
        text(&out)
    );
    // The real instance is untouched.
    assert_enforcing(&lab);
}

#[test]
fn an_agent_whose_pins_were_removed_under_it_does_not_claim_the_datapath_runs_on() {
    require_root!();
    let mut lab = lab();
    // Not through `stop` (which asks the agent): by hand, as an old
    // `stop` or an operator would.
    std::fs::remove_dir_all(format!("/sys/fs/bpf/{}", lab.instance)).unwrap();
    lab.stop().unwrap();
    let log = lab.agent_log();
    assert!(
        !log.contains("keeps running on its pinned links"),
        "the agent claims a datapath it cannot leave behind:\n{log}"
    );
    assert!(log.contains("was removed while the agent ran"), "{log}");
    assert_removed(&lab);
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    require_root!();
    let lab = lab();
    let log = lab.agent_log();
    assert!(log.contains("datapath ready"));
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log:?}");
}

/// Replaces the instance's pinned map `name` with an empty per-CPU array
/// of another value size, as an older version of the datapath might have
/// left it.
fn pin_other_layout(lab: &Lab, name: &str) {
    let path = format!("/sys/fs/bpf/{}/maps/{name}", lab.instance);
    std::fs::remove_file(&path).unwrap();
    let out = std::process::Command::new("bpftool")
        .args(["map", "create", &path, "type", "percpu_array"])
        .args(["key", "4", "value", "24", "entries", "4", "name", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_upgrade_renews_counters_of_another_layout_and_refuses_other_changes() {
    require_root!();
    let mut lab = lab();
    let cfg = topology(&lab);
    // A previous version's counters (another layout): the new agent
    // starts them afresh, says so, and enforces.
    lab.kill_agent().unwrap();
    pin_other_layout(&lab, "PORT_STATS");
    lab.start(&cfg).unwrap();
    assert!(
        lab.agent_log().contains("starts afresh"),
        "{}",
        lab.agent_log()
    );
    assert_enforcing(&lab);
    let a = lab.vm("a");
    wait_for(WAIT, "a's counters counting again", || {
        lab.port(a).unwrap()["stats"]["rx_packets"].as_u64() > Some(0)
    })
    .unwrap();
    // Connection tracking's counters are not renewable (its eviction count
    // is computed from them): the agent refuses, naming the map, and the
    // datapath goes on enforcing without it.
    lab.kill_agent().unwrap();
    pin_other_layout(&lab, "CT_STATS");
    assert!(lab.start(&cfg).is_err(), "an agent started over CT_STATS");
    let log = lab.agent_log();
    assert!(
        log.contains("CT_STATS") && log.contains("dataplane stop"),
        "{log}"
    );
    assert_eq!(taps_with_xdp(&lab), ["a", "b"]);
    lab.vm("a").reaches("10.7.0.11", WAIT).unwrap();
}

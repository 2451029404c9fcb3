//! Ports that wait for their tap: a port whose tap does not exist is
//! accepted and waits (nothing of it passes), is attached within a second
//! of the tap appearing and waits again when it goes.

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

fn attached(lab: &Lab, name: &str) -> bool {
    lab.port(lab.vm(name)).is_ok()
}

#[test]
fn a_port_waits_for_its_tap_is_attached_when_it_appears_and_waits_again_when_it_goes() {
    require_root!();
    let mut lab = lab_with(&["b"]);
    // Before: refused at start (exit 2), nothing attached.
    lab.start(&topology(&lab, &["a", "b", "c"])).unwrap();
    assert!(!attached(&lab, "b"));

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
    let b = lab.vm("b");
    lab.vm("a").reaches("10.5.0.11", WAIT).unwrap();
    // Enforced: a spoofed source is dropped and counted.
    b.sh("ip addr add 10.5.0.98/32 dev eth0 && ip neigh replace 10.5.0.10 lladdr fa:16:3e:73:00:0a dev eth0 nud permanent")
        .unwrap();
    assert!(!b.ping_from("10.5.0.10", Some("10.5.0.98"), 2));
    assert!(lab.drops(b, "ipv4_src") >= 2);

    // The tap goes: the port waits again, detached.
    lab.hv.ip(&["link", "del", &b.tap]).unwrap();
    wait_for(WAIT, "the port detached", || !attached(&lab, "b"))
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
    assert!(!attached(&lab, "c"));
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

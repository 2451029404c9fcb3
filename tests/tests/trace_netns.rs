//! `dataplane trace` against real traffic: for each packet, the trace's
//! verdict (drop reason, ports reached) must be what the same packet sent
//! for real from the VM does. The very frame scapy sends is written to a
//! pcap file and traced from it; a few traces are built from descriptions.
//!
//! net1: a (10.9.1.10, group "clients"), web (10.9.1.20, group "web": TCP
//! 80 and ICMP from "clients"), c and d sharing the pair 10.9.1.100 with
//! one MAC (keepalived's use_vmac). net2: far (10.9.2.10). Router r1 joins
//! them (10.9.1.1, 10.9.2.1).

use std::{collections::BTreeSet, time::Duration};

use lab::{
    capture::frame,
    lab::{Lab, Vm},
    require_root,
    topo::{config, network, open_group, pair, port, router, subnet},
};
use serde_json::{Value, json};

const MAC_A: &str = "fa:16:3e:90:00:0a";
const MAC_WEB: &str = "fa:16:3e:90:00:20";
const MAC_C: &str = "fa:16:3e:90:00:0c";
const MAC_D: &str = "fa:16:3e:90:00:0d";
const MAC_FAR: &str = "fa:16:3e:90:00:f0";
const GW1_MAC: &str = "fa:16:3e:90:01:01";
const GW2_MAC: &str = "fa:16:3e:90:01:02";
const VMAC: &str = "00:00:5e:00:01:09";
const VIP: &str = "10.9.1.100";

fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [
        ("a", MAC_A),
        ("web", MAC_WEB),
        ("c", MAC_C),
        ("d", MAC_D),
        ("far", MAC_FAR),
    ] {
        lab.add_vm(name, mac).unwrap();
    }
    let vm = |n: &str| lab.vm(n);
    let mut pa = port(vm("a"), "net1", &[("s1", "10.9.1.10")]);
    pa["security_groups"] = json!(["clients"]);
    let mut pweb = port(vm("web"), "net1", &[("s1", "10.9.1.20")]);
    pweb["security_groups"] = json!(["web"]);
    let mut pc = port(vm("c"), "net1", &[("s1", "10.9.1.11")]);
    pc["allowed_address_pairs"] = json!([pair(VIP, Some(VMAC))]);
    let mut pd = port(vm("d"), "net1", &[("s1", "10.9.1.12")]);
    pd["allowed_address_pairs"] = json!([pair(VIP, Some(VMAC))]);
    let pfar = port(vm("far"), "net2", &[("s2", "10.9.2.10")]);
    let (r1, r1_ports) = router(
        "r1",
        &[
            ("net1", GW1_MAC, &[("s1", "10.9.1.1")]),
            ("net2", GW2_MAC, &[("s2", "10.9.2.1")]),
        ],
    );
    let mut ports = vec![pa, pweb, pc, pd, pfar];
    ports.extend(r1_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.9.1.0/24", Some("10.9.1.1")),
            subnet("s2", "net2", "10.9.2.0/24", Some("10.9.2.1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    let egress = json!({ "direction": "egress", "ethertype": "IPv4" });
    cfg["security_groups"] = json!([
        open_group(),
        { "id": "clients", "security_group_rules": [egress] },
        { "id": "web", "security_group_rules": [
            egress,
            { "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
              "port_range_min": 80, "port_range_max": 80, "remote_group_id": "clients" },
            { "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
              "remote_group_id": "clients" },
        ]},
    ]);
    for (name, ip, gw) in [
        ("a", "10.9.1.10", "10.9.1.1"),
        ("web", "10.9.1.20", "10.9.1.1"),
        ("c", "10.9.1.11", "10.9.1.1"),
        ("d", "10.9.1.12", "10.9.1.1"),
        ("far", "10.9.2.10", "10.9.2.1"),
    ] {
        lab.vm(name)
            .sh(&format!(
                "ip addr add {ip}/24 dev eth0 && ip route add default via {gw}"
            ))
            .unwrap();
    }
    lab.start(&cfg).unwrap();
    lab
}

/// `dataplane trace --json ARGS...` (one object per traced frame). Its
/// exit status says whether the datapath drops the packet (any of a pcap
/// file's): 3 if so, else 0.
fn trace(lab: &Lab, args: &[&str]) -> Vec<Value> {
    let mut cmd = lab.dataplane(&["trace", "--json"]);
    cmd.args(args);
    let out = cmd.output().unwrap();
    let traces: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dropped = traces.iter().any(dropped);
    let expected = if dropped { 3 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(expected),
        "trace {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    traces
}

/// Whether a trace says the packet is dropped: no one receives it and it
/// is neither answered nor passed to the host.
fn dropped(t: &Value) -> bool {
    let through = ["answered", "passed to the host"].contains(&t["verdict"].as_str().unwrap());
    !through && delivered(t).is_empty()
}

fn delivered(t: &Value) -> BTreeSet<String> {
    t["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["verdict"] == "delivered")
        .map(|d| d["port"].as_str().unwrap().to_string())
        .collect()
}

/// Every port's drop counters, by (port id, reason).
fn drops(lab: &Lab) -> BTreeSet<(String, String, u64)> {
    let v = lab.show_ports().unwrap();
    let mut out = BTreeSet::new();
    for p in v["ports"].as_array().unwrap() {
        for (reason, n) in p["stats"]["drops"].as_object().unwrap() {
            out.insert((
                p["id"].as_str().unwrap().to_string(),
                reason.clone(),
                n.as_u64().unwrap(),
            ));
        }
    }
    out
}

/// The drop counters that went up between two snapshots.
fn risen(
    before: &BTreeSet<(String, String, u64)>,
    after: &BTreeSet<(String, String, u64)>,
) -> BTreeSet<(String, String)> {
    let count = |s: &BTreeSet<(String, String, u64)>, p: &str, r: &str| {
        s.iter()
            .find(|(pp, rr, _)| pp == p && rr == r)
            .map(|t| t.2)
            .unwrap_or(0)
    };
    after
        .iter()
        .filter(|(p, r, n)| *n > count(before, p, r))
        .map(|(p, r, _)| (p.clone(), r.clone()))
        .collect()
}

/// What really happens to `packet` (a scapy expression carrying `marker`)
/// sent by `sender`, and what the trace of the very same frame says.
struct Compared {
    trace: Value,
    /// Port ids of the VMs that received the frame.
    received: BTreeSet<String>,
    /// (port id, reason) of the drop counters the real frame raised.
    dropped: BTreeSet<(String, String)>,
}

fn compare(lab: &Lab, sender: &Vm, packet: &str, marker: &str) -> Compared {
    let pcap = lab.dir.path().join(format!("{marker}.pcap"));
    sender
        .scapy(&format!(
            "from scapy.utils import wrpcap\nwrpcap('{}', [{packet}])",
            pcap.display()
        ))
        .unwrap();
    let traces = trace(lab, &[&sender.port_id, "--pcap", pcap.to_str().unwrap()]);
    assert_eq!(traces.len(), 1);
    let others: Vec<&Vm> = lab.vms.iter().filter(|v| v.name != sender.name).collect();
    let captures: Vec<_> = others.iter().map(|v| v.capture().unwrap()).collect();
    for c in &captures {
        c.drain();
    }
    // After the trace: it counts on the port counters too.
    let before = drops(lab);
    sender
        .scapy(&format!("sendp({packet}, iface=IFACE)"))
        .unwrap();
    let mut received = BTreeSet::new();
    for (vm, c) in others.iter().zip(&captures) {
        let seen = c.wait_for(Duration::from_millis(700), |f| {
            frame::contains(f, marker.as_bytes())
        });
        if seen.is_some() {
            received.insert(vm.port_id.clone());
        }
    }
    let dropped = risen(&before, &drops(lab));
    Compared {
        trace: traces.into_iter().next().unwrap(),
        received,
        dropped,
    }
}

/// The trace's drop reasons, as (port id, reason), the way counters hold
/// them: from_vm's on the sender; a receiver's security-group refusal on
/// the port whose rules refused (here always the receiver's ingress).
fn trace_drops(t: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    if let Some(r) = t["reason"].as_str() {
        out.insert((t["port"].as_str().unwrap().to_string(), r.to_string()));
    }
    for d in t["deliveries"].as_array().unwrap() {
        if let Some(r) = d["reason"].as_str() {
            out.insert((d["port"].as_str().unwrap().to_string(), r.to_string()));
        }
    }
    out
}

fn check_same(what: &str, c: &Compared) {
    assert_eq!(
        delivered(&c.trace),
        c.received,
        "{what}: trace {} disagrees with the real frame about who receives it",
        c.trace
    );
    assert_eq!(
        trace_drops(&c.trace),
        c.dropped,
        "{what}: trace {} disagrees with the counters the real frame raised",
        c.trace
    );
}

#[test]
fn trace_agrees_with_real_traffic() {
    require_root!();
    let lab = lab();
    let (a, web, c, d, far) = (
        lab.vm("a"),
        lab.vm("web"),
        lab.vm("c"),
        lab.vm("d"),
        lab.vm("far"),
    );
    let eth = |src: &str, dst: &str| format!("Ether(src='{src}', dst='{dst}')");

    // Spoofed source address: dropped by port security.
    let spoofed = compare(
        &lab,
        a,
        &format!(
            "{}/IP(src='10.9.1.99', dst='10.9.1.20')/UDP(sport=5000, dport=80)/Raw(b'mk-spoof')",
            eth(MAC_A, MAC_WEB)
        ),
        "mk-spoof",
    );
    assert_eq!(spoofed.trace["verdict"], "dropped");
    assert_eq!(spoofed.trace["reason"], "ipv4_src");
    check_same("spoofed", &spoofed);

    // Allowed by web's group: TCP 80 from a client.
    let allowed = compare(
        &lab,
        a,
        &format!(
            "{}/IP(src='10.9.1.10', dst='10.9.1.20')/TCP(sport=41000, dport=80, flags='S')/Raw(b'mk-allow')",
            eth(MAC_A, MAC_WEB)
        ),
        "mk-allow",
    );
    assert_eq!(
        delivered(&allowed.trace),
        BTreeSet::from([web.port_id.clone()])
    );
    check_same("allowed", &allowed);

    // Denied by web's group: TCP 81.
    let denied = compare(
        &lab,
        a,
        &format!(
            "{}/IP(src='10.9.1.10', dst='10.9.1.20')/TCP(sport=41001, dport=81, flags='S')/Raw(b'mk-deny')",
            eth(MAC_A, MAC_WEB)
        ),
        "mk-deny",
    );
    assert!(delivered(&denied.trace).is_empty(), "{}", denied.trace);
    assert_eq!(denied.trace["deliveries"][0]["reason"], "sg_ingress");
    check_same("denied", &denied);

    // Routed to the other network.
    let routed = compare(
        &lab,
        a,
        &format!(
            "{}/IP(src='10.9.1.10', dst='10.9.2.10')/UDP(sport=5001, dport=9)/Raw(b'mk-route')",
            eth(MAC_A, GW1_MAC)
        ),
        "mk-route",
    );
    assert_eq!(
        delivered(&routed.trace),
        BTreeSet::from([far.port_id.clone()])
    );
    assert_eq!(routed.trace["deliveries"][0]["dst_mac"], MAC_FAR);
    check_same("routed", &routed);

    // To the shared address before anyone claimed it: every member.
    let shared = format!(
        "{}/IP(src='10.9.1.10', dst='{VIP}')/UDP(sport=5002, dport=9)/Raw(b'mk-vip')",
        eth(MAC_A, VMAC)
    );
    let before_claim = compare(&lab, a, &shared, "mk-vip");
    assert_eq!(
        delivered(&before_claim.trace),
        BTreeSet::from([c.port_id.clone(), d.port_id.clone()])
    );
    check_same("shared, no active member", &before_claim);

    // A trace of d's gratuitous ARP claims nothing...
    let garp = trace(
        &lab,
        &[
            &d.port_id,
            "--proto",
            "arp-reply",
            "--src",
            VIP,
            "--dst",
            VIP,
            "--src-mac",
            VMAC,
        ],
    );
    assert!(
        garp[0]["verdict"].as_str().unwrap().contains("flooded"),
        "{}",
        garp[0]
    );
    assert_eq!(lab.active_member(VIP), None, "a trace claimed the VIP");
    // ...the real one does, and then only d gets the VIP's traffic.
    d.scapy(&format!(
        "sendp(Ether(src='{VMAC}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, hwsrc='{VMAC}', psrc='{VIP}', \
         hwdst='ff:ff:ff:ff:ff:ff', pdst='{VIP}'), iface=IFACE)"
    ))
    .unwrap();
    assert_eq!(lab.active_member(VIP), Some(d.port_id.clone()));
    let after_claim = compare(&lab, a, &shared.replace("mk-vip", "mk-vip2"), "mk-vip2");
    assert_eq!(
        delivered(&after_claim.trace),
        BTreeSet::from([d.port_id.clone()])
    );
    check_same("shared, d active", &after_claim);
}

#[test]
fn trace_builds_packets_and_changes_no_state() {
    require_root!();
    let lab = lab();
    let (a, web, far) = (lab.vm("a"), lab.vm("web"), lab.vm("far"));

    // Defaults: a's MAC and fixed IP, the destination's MAC from the
    // datapath's neighbour table.
    let t = &trace(
        &lab,
        &[
            &a.port_id,
            "--proto",
            "tcp",
            "--dst",
            "10.9.1.20",
            "--dport",
            "80",
        ],
    )[0];
    assert_eq!(delivered(t), BTreeSet::from([web.port_id.clone()]), "{t}");
    assert!(
        t["packet"]
            .as_str()
            .unwrap()
            .contains("10.9.1.10:40000 > 10.9.1.20:80 [S]"),
        "{t}"
    );
    // Nothing was tracked: a real reply from web is not let in.
    let conns = lab.show("conntrack").unwrap()["connections"].clone();
    assert_eq!(conns.as_array().map(Vec::len), Some(0), "{conns}");

    // Routed through the gateway named with --via.
    let t = &trace(
        &lab,
        &[&a.port_id, "--dst", "10.9.2.10", "--via", "10.9.1.1"],
    )[0];
    assert_eq!(delivered(t), BTreeSet::from([far.port_id.clone()]), "{t}");

    // Answered by the ARP responder.
    let t = &trace(&lab, &[&a.port_id, "--proto", "arp", "--dst", "10.9.1.20"])[0];
    assert_eq!(t["verdict"], "answered", "{t}");
    assert!(
        t["reply"].as_str().unwrap().contains(MAC_WEB),
        "the reply must carry web's MAC: {t}"
    );

    // An SG refusal from the other side: web may not open connections to a
    // (clients accepts nothing), and egress is fine.
    let t = &trace(&lab, &[&web.port_id, "--dst", "10.9.1.10"])[0];
    assert!(delivered(t).is_empty(), "{t}");
    assert_eq!(t["deliveries"][0]["reason"], "sg_ingress", "{t}");

    // The human form names the reason.
    let out = lab
        .dataplane(&[
            "trace",
            &a.port_id,
            "--src",
            "10.9.1.77",
            "--dst",
            "10.9.1.20",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("dropped") && text.contains("ipv4_src"),
        "{text}"
    );

    // A port that does not exist is an error, not a verdict.
    let out = lab
        .dataplane(&["trace", "no-such-port", "--dst", "10.9.1.20"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-port"));
}

/// Security-group refusals reach `dataplane monitor` too, named after the
/// port whose rules refused; a trace of the same packet sends no event.
#[test]
fn monitor_streams_security_group_drops_but_not_traces() {
    require_root!();
    let lab = lab();
    let (a, web) = (lab.vm("a"), lab.vm("web"));
    let out = lab.dir.path().join("monitor.out");
    let err = lab.dir.path().join("monitor.err");
    let mut child = lab
        .dataplane(&["monitor", "--json"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // It streams drops from the moment it says so.
    lab::lab::wait_for(lab::lab::WAIT, "the monitor streams", || {
        std::fs::read_to_string(&err).is_ok_and(|e| e.contains("monitor: streaming"))
    })
    .unwrap();
    let t = &trace(
        &lab,
        &[
            &a.port_id,
            "--proto",
            "tcp",
            "--dst",
            "10.9.1.20",
            "--dport",
            "81",
        ],
    )[0];
    assert_eq!(t["deliveries"][0]["reason"], "sg_ingress", "{t}");
    a.scapy(&format!(
        "sendp(Ether(src='{MAC_A}', dst='{MAC_WEB}')/IP(src='10.9.1.10', dst='10.9.1.20')/\
         TCP(sport=41002, dport=81, flags='S'), iface=IFACE)"
    ))
    .unwrap();
    // Events come in order: the trace's, had it sent one, would be first.
    lab::lab::wait_for(lab::lab::WAIT, "the real packet's event", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 1)
    })
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "one event, for the real packet: {text}");
    let e = &events[0];
    assert_eq!(e["port"], web.port_id.as_str());
    assert_eq!(e["reason"], "sg_ingress");
    assert_eq!(e["src"], "10.9.1.10");
    assert_eq!(e["dst"], "10.9.1.20");
    assert_eq!(e["src_mac"], MAC_A);
}

/// Ports by name (the README's example), the exit status of a drop, the
/// security group that allowed a packet or the groups none of whose rules
/// did, the routing step, and the gateway of the port's subnet as the next
/// hop when --via is not given.
#[test]
fn trace_names_ports_groups_routes_and_gateways() {
    require_root!();
    let lab = lab();
    let (web, far) = (lab.vm("web"), lab.vm("far"));
    let human = |args: &[&str]| {
        let out = lab.dataplane(&["trace"]).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // By name; refused by web's group: exit 3, and why.
    let (code, text) = human(&["a", "--proto", "tcp", "--dst", "10.9.1.20", "--dport", "81"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains(&web.port_id), "{text}");
    assert!(
        text.contains("no ingress rule of")
            && text.contains("security groups (web)")
            && text.contains("tcp port 81 from 10.9.1.10"),
        "{text}"
    );
    assert!(text.contains("=> dropped"), "{text}");

    // Allowed: which group allowed it, on each side.
    let t = &trace(
        &lab,
        &["a", "--proto", "tcp", "--dst", "10.9.1.20", "--dport", "80"],
    )[0];
    assert_eq!(delivered(t), BTreeSet::from([web.port_id.clone()]), "{t}");
    let steps = t["deliveries"][0]["security_groups"].as_array().unwrap();
    let step = |dir: &str| steps.iter().find(|s| s["direction"] == dir).unwrap();
    assert_eq!(step("egress")["group"], "clients", "{t}");
    assert_eq!(step("ingress")["group"], "web", "{t}");

    // Off the subnet, no --via: through the subnet's gateway, routed.
    let t = &trace(&lab, &["a", "--dst", "10.9.2.10"])[0];
    assert_eq!(delivered(t), BTreeSet::from([far.port_id.clone()]), "{t}");
    assert!(
        t["gateway"]
            .as_str()
            .unwrap()
            .starts_with("10.9.1.1, the gateway of subnet s1"),
        "{t}"
    );
    assert!(t["packet"].as_str().unwrap().contains(GW1_MAC), "{t}");
    let route = &t["route"];
    assert_eq!(route["router"], "r1", "{t}");
    assert!(route["to"].as_str().unwrap().contains("10.9.2.0/24"), "{t}");
    assert_eq!(
        (route["ttl_in"].as_u64(), route["ttl_out"].as_u64()),
        (Some(64), Some(63))
    );
    assert_eq!(route["src_mac"], GW2_MAC);
    assert_eq!(route["dst_mac"], MAC_FAR);
    let (code, text) = human(&["a", "--dst", "10.9.2.10"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("route: router r1"), "{text}");

    // On the subnet: straight to the owner, no gateway.
    let t = &trace(&lab, &["a", "--dst", "10.9.1.20"])[0];
    assert!(t["gateway"].is_null() && t["route"].is_null(), "{t}");

    // A port that does not exist is an error (1), not a drop.
    let (code, text) = human(&["nobody", "--dst", "10.9.1.20"]);
    assert_eq!(code, Some(1), "{text}");
}

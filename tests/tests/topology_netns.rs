//! `dataplane show topology`: the datapath at a glance, as text, JSON and a
//! Graphviz graph that `dot` renders: two networks joined by a router, a
//! VIP shared by two ports with the one that claimed it active, and a port
//! that dropped spoofed frames.

use lab::{
    lab::{Lab, WAIT, wait_for},
    netns::run,
    require_root,
    topo::{config, network, pair, port, router, subnet},
};
use serde_json::{Value, json};

const VIP: &str = "10.7.2.100";

fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [
        ("web", "fa:16:3e:07:01:0a"),
        ("lb-1", "fa:16:3e:07:02:0c"),
        ("lb-2", "fa:16:3e:07:02:0d"),
    ] {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, c, d) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let pa = port(a, "net1", &[("s1", "10.7.1.10")]);
    let mut pc = port(c, "net2", &[("s2", "10.7.2.11")]);
    pc["allowed_address_pairs"] = json!([pair(VIP, None)]);
    let mut pd = port(d, "net2", &[("s2", "10.7.2.12")]);
    pd["allowed_address_pairs"] = json!([pair(VIP, None)]);
    let (r1, r1_ports) = router(
        "r1",
        &[
            ("net1", "fa:16:3e:07:01:01", &[("s1", "10.7.1.1")]),
            ("net2", "fa:16:3e:07:02:01", &[("s2", "10.7.2.1")]),
        ],
    );
    let mut ports = vec![pa, pc, pd];
    ports.extend(r1_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.7.1.0/24", Some("10.7.1.1")),
            subnet("s2", "net2", "10.7.2.0/24", Some("10.7.2.1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    for (vm, ip) in [(a, "10.7.1.10"), (c, "10.7.2.11"), (d, "10.7.2.12")] {
        vm.sh(&format!("ip addr add {ip}/24 dev eth0")).unwrap();
    }
    lab.start(&cfg).unwrap();
    lab
}

fn show(lab: &Lab, args: &[&str]) -> String {
    let mut a = vec!["show", "topology"];
    a.extend(args);
    String::from_utf8(run(&mut lab.dataplane(&a)).unwrap().stdout).unwrap()
}

#[test]
fn show_topology_as_text_json_and_a_graph_dot_renders() {
    require_root!();
    let lab = lab();
    let (web, lb2) = (lab.vm("web"), lab.vm("lb-2"));
    // lb-2 claims the VIP; web sends from an address it may not use.
    lb2.sh(&format!(
        "ip addr add {VIP}/32 dev eth0 && {{ arping -q -U -c 1 -I eth0 -S {VIP} {VIP}; true; }}"
    ))
    .unwrap();
    wait_for(WAIT, "lb-2 active", || {
        lab.active_member(VIP).as_deref() == Some(lb2.port_id.as_str())
    })
    .unwrap();
    web.scapy(
        "sendp(Ether(src=MAC, dst='fa:16:3e:07:01:01')/IP(src='10.7.1.99', dst='10.7.1.1')/ICMP(), \
         iface=IFACE, count=3)",
    )
    .unwrap();
    wait_for(WAIT, "web's drops counted", || {
        lab.drops(web, "ipv4_src") == 3
    })
    .unwrap();

    let text = show(&lab, &[]);
    for want in [
        "network net1",
        "subnet 10.7.2.0/24, gateway 10.7.2.1",
        &format!("shared {VIP}: lb-1, lb-2 (active)"),
        "router r1: 10.7.1.0/24, 10.7.2.0/24",
        &format!("pairs {VIP}"),
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    let v: Value = serde_json::from_str(&show(&lab, &["--json"])).unwrap();
    assert_eq!(v["networks"].as_array().unwrap().len(), 2, "{v:#}");
    let net2 = &v["networks"][1];
    assert_eq!(net2["groups"][0]["active"], lb2.port_id.as_str(), "{v:#}");
    let web_port = &v["networks"][0]["ports"][0];
    assert_eq!(web_port["name"], "web");
    assert!(web_port["drops"].as_u64().unwrap() > 0);

    let dot = show(&lab, &["--dot"]);
    assert!(dot.contains("label=\"active\""), "{dot}");
    assert!(dot.contains("color=red"), "web dropped frames: {dot}");
    let svg = render(&lab, &dot);
    for want in ["<svg", "lb-2", "router r1", "10.7.2.0/24", VIP] {
        assert!(svg.contains(want), "{want} not drawn:\n{svg}");
    }
}

/// `dot -Tsvg` of a graph; fails with dot's complaints.
fn render(lab: &Lab, dot: &str) -> String {
    let path = lab.dir.path().join("topology.dot");
    std::fs::write(&path, dot).unwrap();
    let out = run(std::process::Command::new("dot").arg("-Tsvg").arg(&path)).unwrap();
    assert!(
        out.stderr.is_empty(),
        "dot warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Graphviz writes '-' in SVG text as an entity.
    String::from_utf8(out.stdout).unwrap().replace("&#45;", "-")
}

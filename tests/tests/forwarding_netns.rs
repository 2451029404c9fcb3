//! Forwarding by the datapath itself (no bridge anywhere): L2 delivery by
//! MAC through device maps, the ARP/ND responder, TCP across it.

use lab::{
    lab::Lab,
    require_root,
    topo::{config, network, pair, port, subnet},
};

const MAC_A: &str = "fa:16:3e:10:00:0a";
const MAC_B: &str = "fa:16:3e:10:00:0b";
const MAC_C: &str = "fa:16:3e:10:00:0c";

/// Three VMs on one network, no bridge; a and b share 10.1.0.100.
fn three_vms() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("a", MAC_A), ("b", MAC_B), ("c", MAC_C)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (a, b, c) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let mut pa = port(a, "net", &[("v4", "10.1.0.10"), ("v6", "fd01::10")]);
    pa["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", None)]);
    let mut pb = port(b, "net", &[("v4", "10.1.0.11"), ("v6", "fd01::11")]);
    pb["allowed_address_pairs"] = serde_json::json!([pair("10.1.0.100", None)]);
    let pc = port(c, "net", &[("v4", "10.1.0.12"), ("v6", "fd01::12")]);
    let cfg = config(
        vec![network("net")],
        vec![
            subnet("v4", "net", "10.1.0.0/24", Some("10.1.0.1")),
            subnet("v6", "net", "fd01::/64", None),
        ],
        vec![pa, pb, pc],
    );
    for (vm, v4, v6) in [
        (a, "10.1.0.10", "fd01::10"),
        (b, "10.1.0.11", "fd01::11"),
        (c, "10.1.0.12", "fd01::12"),
    ] {
        vm.sh(&format!(
            "ip addr add {v4}/24 dev eth0 && ip -6 addr add {v6}/64 dev eth0 nodad"
        ))
        .unwrap();
    }
    lab.start(&cfg).unwrap();
    lab
}

#[test]
fn ping_and_tcp_between_vms_without_a_bridge() {
    require_root!();
    let lab = three_vms();
    let (a, c) = (lab.vm("a"), lab.vm("c"));
    let ok4 = c.ping("10.1.0.10", 8);
    let ok6 = c.ping("fd01::10", 8);
    assert!(
        ok4 && ok6,
        "v4 {ok4} v6 {ok6}\n{}\n{}",
        serde_json::to_string_pretty(&lab.show_ports().unwrap()).unwrap(),
        lab.agent_log()
    );
    // TCP: a listens, c connects and sends a line, which must arrive.
    let out = lab.dir.path().join("nc.out");
    a.sh(&format!(
        "timeout 10 nc -l -p 7000 > {} 2>/dev/null & true",
        out.display()
    ))
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.sh("echo hello-over-xdp | timeout 5 nc -N 10.1.0.10 7000")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(got.trim(), "hello-over-xdp");
    let port_a = lab.port(a).unwrap();
    assert!(port_a["stats"]["tx_packets"].as_u64().unwrap() > 0);
}

//! Stateful security groups with real traffic (nc, ping) between VM
//! namespaces, through the datapath alone.
//!
//! - `web` (10.6.0.10, fd06::10) in group "web": TCP 80 in from group
//!   "clients" (IPv4 and IPv6), ICMP in from 10.6.0.0/28, everything out.
//! - `client` (10.6.0.20, fd06::20) in "clients": everything out, nothing in;
//!   pairs: the VIP 10.6.0.100 and the prefix 10.6.1.0/28.
//! - `other` (10.6.0.5, inside 10.6.0.0/28) in "others": everything out.

use std::time::Duration;

use lab::{
    lab::{Lab, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

const MAC_WEB: &str = "fa:16:3e:60:00:10";
const MAC_CLIENT: &str = "fa:16:3e:60:00:20";
const MAC_OTHER: &str = "fa:16:3e:60:00:05";

fn rule(direction: &str, ethertype: &str, extra: Value) -> Value {
    let mut r = json!({ "direction": direction, "ethertype": ethertype });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn groups(extra_web_rules: Vec<Value>) -> Value {
    let egress_any = || {
        vec![
            rule("egress", "IPv4", json!({})),
            rule("egress", "IPv6", json!({})),
        ]
    };
    let mut web = egress_any();
    web.extend([
        rule(
            "ingress",
            "IPv4",
            json!({ "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_group_id": "clients" }),
        ),
        rule(
            "ingress",
            "IPv6",
            json!({ "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_group_id": "clients" }),
        ),
        rule(
            "ingress",
            "IPv4",
            json!({ "protocol": "icmp", "port_range_min": 8, "remote_ip_prefix": "10.6.0.0/28" }),
        ),
    ]);
    web.extend(extra_web_rules);
    json!([
        { "id": "web", "security_group_rules": web },
        { "id": "clients", "security_group_rules": egress_any() },
        { "id": "others", "security_group_rules": egress_any() },
    ])
}

fn topology(lab: &Lab, groups: Value, other_groups: &[&str]) -> Value {
    let (web, client, other) = (lab.vm("web"), lab.vm("client"), lab.vm("other"));
    let mut pw = port(web, "net", &[("v4", "10.6.0.10"), ("v6", "fd06::10")]);
    pw["security_groups"] = json!(["web"]);
    let mut pc = port(client, "net", &[("v4", "10.6.0.20"), ("v6", "fd06::20")]);
    pc["security_groups"] = json!(["clients"]);
    pc["allowed_address_pairs"] = json!([pair("10.6.0.100", None), pair("10.6.1.0/28", None)]);
    let mut po = port(other, "net", &[("v4", "10.6.0.5")]);
    po["security_groups"] = json!(other_groups);
    let mut cfg = config(
        vec![network("net")],
        vec![
            subnet("v4", "net", "10.6.0.0/24", None),
            subnet("v6", "net", "fd06::/64", None),
        ],
        vec![pw, pc, po],
    );
    cfg["security_groups"] = groups;
    cfg
}

fn lab(extra_web_rules: Vec<Value>) -> (Lab, Value) {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [
        ("web", MAC_WEB),
        ("client", MAC_CLIENT),
        ("other", MAC_OTHER),
    ] {
        lab.add_vm(name, mac).unwrap();
    }
    for (name, setup) in [
        (
            "web",
            "ip addr add 10.6.0.10/24 dev eth0 && ip -6 addr add fd06::10/64 dev eth0 nodad \
             && ip route add 10.6.1.0/24 dev eth0",
        ),
        (
            "client",
            "ip addr add 10.6.0.20/24 dev eth0 && ip -6 addr add fd06::20/64 dev eth0 nodad \
             && ip addr add 10.6.0.100/32 dev eth0 && ip addr add 10.6.1.5/32 dev eth0",
        ),
        ("other", "ip addr add 10.6.0.5/24 dev eth0"),
    ] {
        lab.vm(name).sh(setup).unwrap();
    }
    let cfg = topology(&lab, groups(extra_web_rules), &["others"]);
    lab.start(&cfg).unwrap();
    // A TCP server on web, ports 80 and 81, answering each connection.
    lab.vm("web").serve_tcp(&[80, 81]).unwrap();
    (lab, cfg)
}

/// Connections from `src` to port 80 that `vm`'s port tracks.
fn tracked(lab: &Lab, vm: &lab::lab::Vm, src: &str) -> usize {
    lab.show("conntrack").unwrap()["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["port"] == vm.port_id.as_str() && c["src"] == src && c["dport"] == 80)
        .count()
}

#[test]
fn remote_group_covers_fixed_ips_pairs_and_pair_prefixes() {
    require_root!();
    let (lab, _) = lab(vec![]);
    let (web, client, other) = (lab.vm("web"), lab.vm("client"), lab.vm("other"));
    assert!(client.connects("10.6.0.10", 80, None), "client's fixed IP");
    assert!(
        client.connects("10.6.0.10", 80, Some("10.6.0.100")),
        "client's VIP (an allowed address pair)"
    );
    assert!(
        client.connects("10.6.0.10", 80, Some("10.6.1.5")),
        "an address of client's pair prefix"
    );
    assert!(client.connects("fd06::10", 80, None), "IPv6");
    // Not a member of "clients"; and port 81 is allowed to nobody.
    let before = lab.drops(web, "sg_ingress");
    assert!(
        !other.connects("10.6.0.10", 80, None),
        "other reached port 80"
    );
    assert!(
        !client.connects("10.6.0.10", 81, None),
        "client reached port 81"
    );
    assert!(lab.drops(web, "sg_ingress") >= before + 2);

    // Each side's zone holds the connections it took part in.
    let conns = lab.show("conntrack").unwrap()["connections"].clone();
    let has = |port: &str, dir: &str, src: &str| {
        conns.as_array().unwrap().iter().any(|c| {
            c["port"] == port && c["direction"] == dir && c["src"] == src && c["dport"] == 80
        })
    };
    assert!(has(&web.port_id, "ingress", "10.6.0.100"), "{conns:#}");
    assert!(has(&client.port_id, "egress", "10.6.1.5"), "{conns:#}");

    // Per-group counters: the four accepted connections were let in by
    // "web"; "clients" let those and the one to port 81 out (which web
    // refused).
    let groups = lab.show("security-groups").unwrap();
    let count = |id: &str, field: &str| {
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .and_then(|g| g[field].as_u64())
            .unwrap_or_else(|| panic!("no {id} in {groups:#}"))
    };
    assert_eq!(count("web", "ingress_allowed"), 4, "{groups:#}");
    assert_eq!(count("clients", "egress_allowed"), 5, "{groups:#}");
}

#[test]
fn replies_pass_and_unsolicited_reverse_traffic_does_not() {
    require_root!();
    let (lab, _) = lab(vec![]);
    let (web, client, other) = (lab.vm("web"), lab.vm("client"), lab.vm("other"));
    // client has no ingress rule at all: the replies of its connection
    // came in only because the connection is tracked.
    assert!(client.connects("10.6.0.10", 80, None));
    // ICMP from 10.6.0.0/28 (other) is allowed, and its replies return;
    // client is outside the prefix.
    assert!(other.ping("10.6.0.10", 2), "ping from inside the prefix");
    assert!(!client.ping("10.6.0.10", 2), "ping from outside the prefix");
    // web may send anything, but client accepts nothing it did not ask for.
    let before = lab.drops(client, "sg_ingress");
    client
        .sh("(timeout 3 nc -l -p 9000 >/dev/null 2>&1 &) ; true")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!web.connects("10.6.0.20", 9000, None));
    assert!(!web.ping("10.6.0.20", 2));
    assert!(lab.drops(client, "sg_ingress") > before);
    // A TCP packet that opens nothing (no SYN) is invalid, in the
    // sender's zone already.
    let before = lab.drops(client, "ct_invalid");
    client
        .scapy(&format!(
            "sendp(Ether(src=MAC, dst='{MAC_WEB}')/IP(src='10.6.0.20', dst='10.6.0.10')\
             /TCP(sport=4444, dport=80, flags='A', seq=1, ack=1), iface=IFACE)"
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.drops(client, "ct_invalid"), before + 1);
}

#[test]
fn a_port_without_groups_sends_and_receives_no_ip() {
    require_root!();
    let (lab, cfg) = lab(vec![]);
    let mut cfg = cfg;
    cfg["ports"][2]["security_groups"] = json!([]);
    lab.reload(&cfg).unwrap();
    let (web, other) = (lab.vm("web"), lab.vm("other"));
    let before = lab.drops(other, "sg_egress");
    assert!(!other.ping("10.6.0.10", 2));
    assert!(lab.drops(other, "sg_egress") >= 2);
    assert!(lab.drops(other, "sg_egress") > before);
    // ARP is not IP: it still works.
    let out = other
        .sh("arping -c 1 -w 2 -I eth0 10.6.0.10; true")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains(MAC_WEB)
    );
    let _ = web;
}

#[test]
fn membership_and_rule_changes_take_effect_live() {
    require_root!();
    let (lab, cfg) = lab(vec![]);
    let (client, other) = (lab.vm("client"), lab.vm("other"));
    assert!(!other.connects("10.6.0.10", 80, None));
    // other joins "clients": port 80 opens for it.
    let mut joined = cfg.clone();
    joined["ports"][2]["security_groups"] = json!(["others", "clients"]);
    lab.reload(&joined).unwrap();
    assert!(
        other.connects("10.6.0.10", 80, None),
        "after joining clients"
    );

    // A long-lived connection from client, then the rule goes away: new
    // connections fail, and the open one is cut at its next packet.
    client
        .sh("((for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.4; done | timeout 5 nc 10.6.0.10 80) >/dev/null 2>&1 &) ; true")
        .unwrap();
    let web = lab.vm("web");
    wait_for(WAIT, "the long-lived connection", || {
        tracked(&lab, web, "10.6.0.20") > 0
    })
    .unwrap();
    let before = lab.drops(web, "sg_ingress");
    let mut no_web = cfg.clone();
    no_web["security_groups"][0]["security_group_rules"] = json!([
        rule("egress", "IPv4", json!({})),
        rule("egress", "IPv6", json!({})),
    ]);
    lab.reload(&no_web).unwrap();
    wait_for(
        WAIT,
        "the established connection to be cut once its rule is gone",
        || lab.drops(web, "sg_ingress") > before,
    )
    .unwrap();
    assert!(
        !client.connects("10.6.0.10", 80, None),
        "after the rule was removed"
    );
}

#[test]
fn thousands_of_rules_still_enforce_exactly() {
    require_root!();
    // 3000 single-port rules from unrelated prefixes, and ranges.
    let mut extra: Vec<Value> = (0..3000u32)
        .map(|i| {
            rule(
                "ingress",
                "IPv4",
                json!({
                    "protocol": "tcp",
                    "port_range_min": 10000 + i, "port_range_max": 10000 + i,
                    "remote_ip_prefix": format!("192.0.{}.{}/32", i / 250, i % 250),
                }),
            )
        })
        .collect();
    extra.push(rule(
        "ingress",
        "IPv4",
        json!({ "protocol": "tcp", "port_range_min": 20000, "port_range_max": 29999, "remote_group_id": "clients" }),
    ));
    let (lab, _) = lab(extra);
    let (web, client) = (lab.vm("web"), lab.vm("client"));
    web.sh("(timeout 8 nc -l -N -p 25000 </dev/null >/dev/null 2>&1 &); (timeout 8 nc -l -N -p 10005 </dev/null >/dev/null 2>&1 &); true")
        .unwrap();
    wait_for(WAIT, "web to listen", || {
        web.listens(25000) && web.listens(10005)
    })
    .unwrap();
    assert!(
        client.connects("10.6.0.10", 80, None),
        "port 80 from clients"
    );
    let ok = |port: u16| {
        client
            .ns
            .try_exec(&[
                "sh",
                "-c",
                &format!("timeout 3 nc -z -w 2 10.6.0.10 {port}"),
            ])
            .unwrap()
            .status
            .success()
    };
    assert!(ok(25000), "inside the range from clients");
    assert!(!ok(10005), "a port only 192.0.0.5 may reach");
}

#[test]
fn icmp_errors_of_tracked_connections_pass_and_others_do_not() {
    require_root!();
    let udp = rule(
        "ingress",
        "IPv4",
        json!({ "protocol": "udp", "port_range_min": 5000, "port_range_max": 6000, "remote_group_id": "clients" }),
    );
    let (lab, _) = lab(vec![udp]);
    let (web, client) = (lab.vm("web"), lab.vm("client"));
    // Nothing listens on web's UDP 5555: its kernel answers with an ICMP
    // port unreachable, which client (no ingress rules) must receive as
    // part of its own connection.
    let probe = "import socket\n\
                 s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.connect(('10.6.0.10', 5555))\n\
                 s.settimeout(2)\n\
                 s.send(b'x')\n\
                 try:\n    s.recv(10); print('data')\n\
                 except ConnectionRefusedError:\n    print('refused')\n\
                 except socket.timeout:\n    print('timeout')\n";
    let out = client
        .ns
        .try_exec(&["/usr/bin/python3", "-c", probe])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused");
    // An ICMP error about a connection neither had is invalid, whatever
    // the rules (web may send anything): dropped as it leaves web, as
    // Neutron's firewalls drop what conntrack calls invalid.
    let before = lab.drops(web, "ct_invalid");
    web.scapy(&format!(
        "sendp(Ether(src=MAC, dst='{MAC_CLIENT}')/IP(src='10.6.0.10', dst='10.6.0.20')\
         /ICMP(type=3, code=3)/IP(src='10.6.0.20', dst='10.6.0.10')/UDP(sport=1234, dport=4321), iface=IFACE)"
    ))
    .unwrap();
    wait_for(WAIT, "the unrelated error dropped", || {
        lab.drops(web, "ct_invalid") == before + 1
    })
    .unwrap();
}

#[test]
fn a_zero_prefix_pair_does_not_open_a_remote_group_rule() {
    require_root!();
    let (lab, cfg) = lab(vec![]);
    let (client, other) = (lab.vm("client"), lab.vm("other"));
    // client may now send from any address (with its own MAC), as Neutron
    // allows with a 0.0.0.0/0 pair; that must not make every source a
    // member of "clients".
    let mut any = cfg.clone();
    any["ports"][1]["allowed_address_pairs"] = json!([pair("0.0.0.0/0", None)]);
    lab.reload(&any).unwrap();
    client.sh("ip addr add 10.6.0.77/32 dev eth0").unwrap();
    other.sh("ip addr add 10.6.0.78/32 dev eth0").unwrap();
    assert!(
        client.connects("10.6.0.10", 80, Some("10.6.0.77")),
        "client from an address its /0 pair allows"
    );
    assert!(
        !other.connects("10.6.0.10", 80, None),
        "other, not a member"
    );
    assert!(
        !other.connects("10.6.0.10", 80, Some("10.6.0.78")),
        "other, from an address inside client's /0 pair"
    );
}

#[test]
fn egress_rules_and_routed_traffic() {
    require_root!();
    use lab::topo::router;
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [("c1", "fa:16:3e:61:00:01"), ("web", MAC_WEB)] {
        lab.add_vm(name, mac).unwrap();
    }
    let (c1, web) = (&lab.vms[0], &lab.vms[1]);
    let mut p1 = port(c1, "net1", &[("s1", "10.7.1.10"), ("s1v6", "fd07:1::10")]);
    p1["security_groups"] = json!(["narrow-out"]);
    let mut pw = port(web, "net2", &[("s2", "10.7.2.10"), ("s2v6", "fd07:2::10")]);
    pw["security_groups"] = json!(["web"]);
    let (r1, r1_ports) = router(
        "r1",
        &[
            (
                "net1",
                "fa:16:3e:61:01:01",
                &[("s1", "10.7.1.1"), ("s1v6", "fd07:1::1")],
            ),
            (
                "net2",
                "fa:16:3e:61:01:02",
                &[("s2", "10.7.2.1"), ("s2v6", "fd07:2::1")],
            ),
        ],
    );
    let mut ports = vec![p1, pw];
    ports.extend(r1_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.7.1.0/24", Some("10.7.1.1")),
            subnet("s1v6", "net1", "fd07:1::/64", Some("fd07:1::1")),
            subnet("s2", "net2", "10.7.2.0/24", Some("10.7.2.1")),
            subnet("s2v6", "net2", "fd07:2::/64", Some("fd07:2::1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    cfg["security_groups"] = json!([
        { "id": "narrow-out", "security_group_rules": [
            rule("egress", "IPv4", json!({ "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_group_id": "web" })),
            rule("egress", "IPv6", json!({ "protocol": "ipv6-icmp" })),
        ]},
        { "id": "web", "security_group_rules": [
            rule("ingress", "IPv4", json!({ "protocol": "tcp", "port_range_min": 80, "port_range_max": 81 })),
            rule("ingress", "IPv6", json!({ "protocol": 58, "remote_ip_prefix": "fd07:1::/64" })),
            rule("egress", "IPv4", json!({})),
            rule("egress", "IPv6", json!({})),
        ]},
    ]);
    c1.sh(
        "ip addr add 10.7.1.10/24 dev eth0 && ip route add default via 10.7.1.1 \
           && ip -6 addr add fd07:1::10/64 dev eth0 nodad && ip -6 route add default via fd07:1::1",
    )
    .unwrap();
    web.sh("ip addr add 10.7.2.10/24 dev eth0 && ip route add default via 10.7.2.1 \
            && ip -6 addr add fd07:2::10/64 dev eth0 nodad && ip -6 route add default via fd07:2::1")
        .unwrap();
    lab.start(&cfg).unwrap();
    let (c1, web) = (lab.vm("c1"), lab.vm("web"));
    web.serve_tcp(&[80, 81]).unwrap();
    assert!(
        c1.connects("10.7.2.10", 80, None),
        "routed, allowed both ways"
    );
    let before = lab.drops(c1, "sg_egress");
    assert!(
        !c1.connects("10.7.2.10", 81, None),
        "web accepts 81, c1 may not send it"
    );
    assert!(!c1.ping("10.7.2.10", 2), "no IPv4 ICMP egress rule");
    assert!(lab.drops(c1, "sg_egress") >= before + 3);
    assert!(
        c1.ping("fd07:2::10", 3),
        "ICMPv6 by protocol number and remote prefix"
    );
}

#[test]
fn a_removed_port_takes_its_connections_with_it() {
    require_root!();
    let (lab, cfg) = lab(vec![]);
    let (web, other) = (lab.vm("web"), lab.vm("other"));
    assert!(other.ping("10.6.0.10", 1));
    let zones = |lab: &Lab| -> Vec<String> {
        let v = lab.show("conntrack").unwrap()["connections"].clone();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["port"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let before = zones(&lab);
    assert!(
        before.contains(&other.port_id) && before.contains(&web.port_id),
        "{before:?}"
    );
    let table = |lab: &Lab| lab.show("conntrack").unwrap()["table"].clone();
    let removed_before = table(&lab)["removed"].as_u64().unwrap();
    let others = before.iter().filter(|z| **z == other.port_id).count() as u64;
    let mut without = cfg.clone();
    without["ports"].as_array_mut().unwrap().remove(2);
    lab.reload(&without).unwrap();
    // The agent removes them once no packet of the old configuration can
    // use them, and counts what it removed: not taken for evictions.
    wait_for(WAIT, "the removed port's connections are flushed", || {
        table(&lab)["removed"].as_u64().unwrap() >= removed_before + others
    })
    .unwrap();
    let t = table(&lab);
    assert_eq!(t["evicted"], 0, "{t}");
    let after = zones(&lab);
    assert!(
        !after.iter().any(|z| z.contains(&other.port_id[..8])),
        "{after:?}"
    );
    // The other side keeps its own record of the connection.
    assert!(after.contains(&web.port_id), "{after:?}");
}

#[test]
fn removing_one_holder_of_a_shared_vip_keeps_the_others_connections() {
    require_root!();
    let (lab, cfg) = lab(vec![]);
    let (web, client) = (lab.vm("web"), lab.vm("client"));
    // other holds the VIP too, in "clients".
    let mut shared = cfg.clone();
    shared["ports"][2]["allowed_address_pairs"] = json!([pair("10.6.0.100", None)]);
    shared["ports"][2]["security_groups"] = json!(["clients"]);
    lab.reload(&shared).unwrap();
    // client talks from the VIP, a line every 0.3 s.
    client
        .sh("((for i in $(seq 1 15); do echo line-$i; sleep 0.3; done | timeout 8 nc -s 10.6.0.100 10.6.0.10 80) >/dev/null 2>&1 &) ; true")
        .unwrap();
    let packets = |lab: &Lab| -> u64 {
        let v = lab.show("conntrack").unwrap()["connections"].clone();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["port"] == web.port_id.as_str() && c["src"] == "10.6.0.100" && c["dport"] == 80
            })
            .map(|c| c["packets"].as_u64().unwrap())
            .sum()
    };
    wait_for(WAIT, "the connection from the VIP", || packets(&lab) > 0).unwrap();
    let before = packets(&lab);
    let denied = lab.drops(web, "sg_ingress");
    // The other holder goes away.
    let mut without = shared.clone();
    without["ports"].as_array_mut().unwrap().remove(2);
    lab.reload(&without).unwrap();
    wait_for(
        WAIT,
        "the connection to go on after the other holder left",
        || packets(&lab) > before,
    )
    .unwrap();
    assert_eq!(
        lab.drops(web, "sg_ingress"),
        denied,
        "packets of the connection were denied"
    );
}

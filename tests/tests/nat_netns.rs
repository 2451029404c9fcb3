//! The external network: a router's gateway on it (SNAT for VMs without a
//! floating IP) and floating IPs (DNAT/SNAT), reached through an uplink of
//! the hypervisor (a veth whose far end is a namespace playing the outside
//! world: the upstream router 203.0.113.1 and a far host 198.51.100.7
//! behind it). Real ping, nc and keepalived; the outside sees only the
//! gateway's and the floating addresses.

use std::time::Duration;

use lab::{
    capture::frame,
    lab::{Lab, Vm, WAIT, wait_for},
    netns::Netns,
    probe::Pinger,
    require_root,
    topo::{config, network, pair, port, router, subnet},
};
use serde_json::{Value, json};

const MAC_PLAIN: &str = "fa:16:3e:40:00:14";
const MAC_M1: &str = "fa:16:3e:40:00:0b";
const MAC_M2: &str = "fa:16:3e:40:00:0c";
const MAC_WEB: &str = "fa:16:3e:40:00:1e";
const MAC_VIP: &str = "fa:16:3e:40:00:64";
const MAC_OUT: &str = "fa:16:3e:99:00:01";
const GW_INT_MAC: &str = "fa:16:3e:40:01:01";
const GW_EXT_MAC: &str = "fa:16:3e:40:02:01";

const GATEWAY: &str = "203.0.113.10";
const UPSTREAM: &str = "203.0.113.1";
const FAR: &str = "198.51.100.7";
const FIP_VIP: &str = "203.0.113.50";
const FIP_WEB: &str = "203.0.113.51";
const VIP: &str = "10.40.0.100";
/// Where the agent serves its metrics (loopback of the hypervisor's
/// namespace).
const METRICS: &str = "127.0.0.1:9464";

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// The hypervisor, its VMs, and the outside world on the uplink.
struct World {
    lab: Lab,
    /// The outside namespace, as a VM-like handle (ping, nc, captures).
    out: Vm,
    cfg: Value,
}

/// net1 (10.40.0.0/24) holds plain (no floating IP), m1 and m2 (sharing
/// the VIP as an allowed address pair; the VIP is the fixed IP of a port
/// with no VM, as Neutron users make it) and web (a floating IP, and a
/// security group that lets in TCP 8080 only). Router r1 joins net1 to
/// the external network "public" (flat on physical network "public",
/// 203.0.113.0/24, upstream 203.0.113.1), with SNAT.
fn world() -> World {
    world_with(|_| {})
}

/// [`world`], its configuration edited by `edit` before the agent starts.
fn world_with(edit: impl FnOnce(&mut Value)) -> World {
    let mut lab = Lab::new(false).unwrap();
    for (name, mac) in [
        ("plain", MAC_PLAIN),
        ("m1", MAC_M1),
        ("m2", MAC_M2),
        ("web", MAC_WEB),
    ] {
        lab.add_vm(name, mac).unwrap();
    }
    let out = outside(&lab);
    let (plain, m1, m2, web) = (&lab.vms[0], &lab.vms[1], &lab.vms[2], &lab.vms[3]);
    let pp = port(plain, "net1", &[("s1", "10.40.0.20")]);
    let mut p1 = port(m1, "net1", &[("s1", "10.40.0.11")]);
    let mut p2 = port(m2, "net1", &[("s1", "10.40.0.12")]);
    for p in [&mut p1, &mut p2] {
        p["allowed_address_pairs"] = json!([pair(VIP, None)]);
    }
    let mut pw = port(web, "net1", &[("s1", "10.40.0.30")]);
    pw["security_groups"] = json!(["web"]);
    let vip_port = json!({
        "id": "vip-port", "network_id": "net1", "mac_address": MAC_VIP,
        "fixed_ips": [{ "subnet_id": "s1", "ip_address": VIP }],
        "device_owner": "", "tap_name": "tapvipnovm0",
    });
    let (mut r1, mut ports) = router("r1", &[("net1", GW_INT_MAC, &[("s1", "10.40.0.1")])]);
    r1["external_gateway_info"] = json!({
        "network_id": "public", "enable_snat": true,
        "external_fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }],
    });
    ports.push(json!({
        "id": "r1-gw", "network_id": "public", "mac_address": GW_EXT_MAC,
        "device_owner": "network:router_gateway", "device_id": "r1",
        "fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }],
    }));
    ports.extend([pp, p1, p2, pw, vip_port]);
    let mut public = network("public");
    public["router:external"] = json!(true);
    public["provider:network_type"] = json!("flat");
    public["provider:physical_network"] = json!("public");
    let mut cfg = config(
        vec![network("net1"), public],
        vec![
            subnet("s1", "net1", "10.40.0.0/24", Some("10.40.0.1")),
            subnet("public-s", "public", "203.0.113.0/24", Some(UPSTREAM)),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    cfg["floatingips"] = json!([
        { "id": "fip-vip", "floating_network_id": "public", "floating_ip_address": FIP_VIP,
          "port_id": "vip-port", "fixed_ip_address": VIP, "router_id": "r1" },
        { "id": "fip-web", "floating_network_id": "public", "floating_ip_address": FIP_WEB,
          "port_id": web.port_id, "fixed_ip_address": "10.40.0.30", "router_id": "r1" },
    ]);
    cfg["security_groups"].as_array_mut().unwrap().push(json!({
    "id": "web", "security_group_rules": [
        { "direction": "egress", "ethertype": "IPv4" },
        { "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
          "port_range_min": 8080, "port_range_max": 8080 },
    ]}));
    for (vm, ip) in [
        (plain, "10.40.0.20"),
        (m1, "10.40.0.11"),
        (m2, "10.40.0.12"),
        (web, "10.40.0.30"),
    ] {
        vm.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip route add default via 10.40.0.1"
        ))
        .unwrap();
    }
    lab.run_args = vec![
        "--uplink".into(),
        "public=upl0".into(),
        "--metrics".into(),
        METRICS.into(),
    ];
    edit(&mut cfg);
    lab.start(&cfg).unwrap();
    World { lab, out, cfg }
}

/// The outside world: a namespace on the far end of the uplink `upl0`,
/// holding the upstream router's address and the far host's.
fn outside(lab: &Lab) -> Vm {
    lab.add_outside(
        "upl0",
        MAC_OUT,
        &[&format!("{UPSTREAM}/24"), &format!("{FAR}/32")],
    )
    .unwrap()
}

/// The datapath's NAT counters (`dataplane show nat`).
fn nat(lab: &Lab) -> Value {
    lab.show("nat").unwrap()
}

fn nat_stat(lab: &Lab, name: &str) -> u64 {
    nat(lab)["stats"][name].as_u64().unwrap_or(0)
}

/// Drops not charged to a port (frames from the uplink), by reason.
fn unattributed(lab: &Lab, reason: &str) -> u64 {
    lab.show_ports().unwrap()["unattributed"]["drops"][reason]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_vm_without_a_floating_ip_reaches_the_outside_as_the_gateway() {
    require_root!();
    let w = world();
    let (lab, out) = (&w.lab, &w.out);
    let plain = lab.vm("plain");
    let cap = out.capture().unwrap();
    // The first packet to the upstream router is an ARP request in its
    // place; ping's next ones go through.
    plain.reaches(FAR, WAIT).unwrap();
    let seen = cap.wait_for(Duration::from_secs(2), |f| {
        frame::ipv4(f).is_some_and(|(s, d, p)| d == ip4(FAR) && p == 1 && s == ip4(GATEWAY))
    });
    assert!(seen.is_some(), "the outside sees the gateway's address");
    assert_eq!(
        cap.count(Duration::from_millis(300), |f| frame::ipv4(f)
            .is_some_and(|(s, _, _)| s == ip4("10.40.0.20"))),
        0,
        "the VM's own address never leaves"
    );
    // TCP, from two connections at once: each gets a port of its own.
    out.serve_tcp(&[8081]).unwrap();
    assert!(plain.connects(FAR, 8081, None), "TCP through SNAT");
    assert!(plain.connects(FAR, 8081, None), "and again");
    let n = nat(lab);
    assert!(n["stats"]["snat_new"].as_u64().unwrap() >= 3, "{n:#}");
    let conns = n["connections"].as_array().unwrap();
    assert!(
        conns
            .iter()
            .any(|c| c["inside"].as_str().unwrap().starts_with("10.40.0.20:")
                && c["outside"].as_str().unwrap().starts_with(GATEWAY)),
        "{n:#}"
    );
    // `trace` shows the packet as it leaves: translated, to the upstream
    // router's MAC.
    let t = lab
        .dataplane(&["trace", "plain", "--dst", FAR])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("sent out of the uplink")
            && text.contains(&format!("out of the uplink: {GW_EXT_MAC} > {MAC_OUT}"))
            && text.contains(&format!("{GATEWAY} > {FAR}")),
        "{text}"
    );
    // The metrics say the same.
    let metrics = lab
        .hv
        .sh(&format!(
            "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{METRICS}/metrics').read().decode())\""
        ))
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        sample("dataplane_nat_packets_total{event=\"snat_new\"}") >= 3.0,
        "{text}"
    );
    assert!(sample("dataplane_nat_connections") >= 3.0, "{text}");
    // An address on the external subnet itself is on link: no upstream.
    plain.reaches(UPSTREAM, WAIT).unwrap();
}

#[test]
fn a_floating_ip_on_a_vip_follows_the_keepalived_master() {
    require_root!();
    let w = world();
    let (lab, out) = (&w.lab, &w.out);
    let (m1, m2) = (lab.vm("m1"), lab.vm("m2"));
    let dir = lab.dir.path();
    lab::vrrp::keepalived(dir, m1, 61, 200, VIP, false).unwrap();
    lab::vrrp::keepalived(dir, m2, 61, 100, VIP, false).unwrap();
    let active = |vm: &Vm| lab.active_member(VIP).as_deref() == Some(vm.port_id.as_str());
    wait_for(Duration::from_secs(20), "m1 holding the VIP", || {
        lab::vrrp::holds(m1, VIP) && active(m1)
    })
    .unwrap();
    // From outside, the floating IP answers; m1 is the one who hears it,
    // from the outside client's own address.
    let cap1 = m1.capture().unwrap();
    out.reaches(FIP_VIP, WAIT).unwrap();
    assert!(
        cap1.wait_for(Duration::from_secs(2), |f| {
            frame::ipv4(f).is_some_and(|(s, d, p)| s == ip4(UPSTREAM) && d == ip4(VIP) && p == 1)
        })
        .is_some(),
        "m1 got the floating IP's traffic, for the VIP"
    );
    m1.serve_tcp(&[8080]).unwrap();
    m2.serve_tcp(&[8080]).unwrap();
    assert!(out.connects(FIP_VIP, 8080, None), "TCP to the floating IP");

    // Failover under a steady ping from outside: m1's keepalived stops,
    // m2 takes the VIP, its gratuitous ARP moves the group's active
    // member, and the floating IP's traffic follows.
    let ping = Pinger::start(out, None, FIP_VIP, "0.05").unwrap();
    wait_for(WAIT, "replies from the floating IP", || {
        ping.replies().len() >= 20
    })
    .unwrap();
    lab::vrrp::signal_keepalived(dir, m1, libc::SIGTERM);
    wait_for(Duration::from_secs(20), "m2 holding the VIP", || {
        lab::vrrp::holds(m2, VIP) && active(m2)
    })
    .unwrap();
    let after = ping.replies().last().map(|r| r.seq).unwrap_or(0);
    wait_for(WAIT, "replies again after the failover", || {
        ping.replies().iter().filter(|r| r.seq > after).count() >= 20
    })
    .unwrap();
    let (sent, received) = ping.finish().unwrap();
    let lost = sent - received;
    eprintln!("floating IP on a VIP: {lost} of {sent} pings lost across the failover");
    // keepalived's own takeover (three missed adverts at 1 s, then its
    // gratuitous ARP) bounds the loss; anything near the whole run would
    // mean the floating IP did not follow.
    assert!(
        lost < sent / 2,
        "{lost} of {sent} lost: the floating IP did not follow"
    );
    assert!(out.connects(FIP_VIP, 8080, None), "TCP to m2 now");
    assert!(nat_stat(lab, "floating_in") >= received as u64);
    assert!(nat_stat(lab, "floating_out") >= received as u64);
}

#[test]
fn what_comes_from_outside_meets_security_groups_and_a_reverse_path_check() {
    require_root!();
    let w = world();
    let (lab, out) = (&w.lab, &w.out);
    let web = lab.vm("web");
    web.serve_tcp(&[8080, 8082]).unwrap();
    // The group lets TCP 8080 in and nothing else.
    wait_for(WAIT, "TCP 8080 through the floating IP", || {
        out.connects(FIP_WEB, 8080, None)
    })
    .unwrap();
    assert!(!out.connects(FIP_WEB, 8082, None), "8082 is not allowed");
    assert!(!out.ping(FIP_WEB, 2), "nor ICMP");
    assert!(lab.drops(web, "sg_ingress") >= 1);
    // `trace` from the uplink tells the same, without sending anything.
    let trace = |dport: &str| {
        let out = lab
            .dataplane(&[
                "trace", "upl0", "--proto", "tcp", "--src", FAR, "--dst", FIP_WEB, "--dport", dport,
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = trace("8080");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("uplink upl0 sends") && text.contains(&web.port_id),
        "{text}"
    );
    let (code, text) = trace("8082");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("sg_ingress"), "{text}");
    // The web server's own connections out leave as its floating IP.
    let cap = out.capture().unwrap();
    web.reaches(FAR, WAIT).unwrap();
    assert!(
        cap.wait_for(Duration::from_secs(2), |f| frame::ipv4(f)
            .is_some_and(|(s, d, _)| s == ip4(FIP_WEB) && d == ip4(FAR)))
            .is_some(),
        "web leaves as its floating IP"
    );
    // A source from the router's inside, arriving from outside, is
    // spoofed: dropped before any translation.
    let before = unattributed(lab, "uplink_src");
    let script = format!(
        "sendp(Ether(src=MAC, dst='{GW_EXT_MAC}')/IP(src='10.40.0.20', dst='{FIP_WEB}')\
         /TCP(sport=4444, dport=8080, flags='S'), iface=IFACE, count=3, verbose=False)"
    );
    let wcap = web.capture().unwrap();
    out.scapy(&script).unwrap();
    wait_for(WAIT, "uplink_src drops", || {
        unattributed(lab, "uplink_src") >= before + 3
    })
    .unwrap();
    assert_eq!(
        wcap.count(Duration::from_millis(300), |f| frame::ipv4(f)
            .is_some_and(|(s, _, _)| s == ip4("10.40.0.20"))),
        0,
        "the spoofed packets never reached web"
    );
    // Packets for the gateway that belong to no connection go nowhere.
    let before = unattributed(lab, "no_nat");
    let script = format!(
        "sendp(Ether(src=MAC, dst='{GW_EXT_MAC}')/IP(src='{UPSTREAM}', dst='{GATEWAY}')\
         /UDP(sport=53, dport=40000), iface=IFACE, count=2, verbose=False)"
    );
    out.scapy(&script).unwrap();
    wait_for(WAIT, "no_nat drops", || {
        unattributed(lab, "no_nat") >= before + 2
    })
    .unwrap();
}

#[test]
fn snat_connections_and_learned_neighbours_survive_an_agent_restart() {
    require_root!();
    let mut w = world();
    let plain = w.lab.vm("plain");
    plain.reaches(FAR, WAIT).unwrap();
    let ping = Pinger::start(plain, None, FAR, "0.02").unwrap();
    wait_for(WAIT, "replies through SNAT", || ping.replies().len() >= 10).unwrap();
    let before = nat(&w.lab)["connections"].as_array().unwrap().len();
    w.lab.kill_agent().unwrap();
    let during = ping.replies().len();
    wait_for(WAIT, "replies with no agent", || {
        ping.replies().len() >= during + 10
    })
    .unwrap();
    let cfg = w.cfg.clone();
    w.lab.start(&cfg).unwrap();
    let after = ping.replies().len();
    wait_for(WAIT, "replies after the restart", || {
        ping.replies().len() >= after + 10
    })
    .unwrap();
    let unanswered = ping.unanswered();
    let (sent, received) = ping.finish().unwrap();
    assert_eq!(
        unanswered, 0,
        "{sent} sent, {received} received: the restart lost some"
    );
    assert!(nat(&w.lab)["connections"].as_array().unwrap().len() >= before);
}

/// A host two hops past the gateway: behind a router namespace that the
/// upstream router reaches over a link with a smaller MTU.
const BEYOND: &str = "198.18.0.7";
/// The MTU of the link between the upstream router and the next one.
const BEYOND_MTU: u32 = 1400;

/// A second router behind the outside's (the upstream router forwards to
/// it over 192.0.2.0/30 with MTU [`BEYOND_MTU`]), holding [`BEYOND`]. Both
/// send every ICMP error they owe (no rate limit).
fn second_hop(out: &Vm) -> Netns {
    let hop = Netns::new("dpo").unwrap();
    out.sh(&format!(
        "ip link add o2 mtu {BEYOND_MTU} type veth peer name eth0 mtu {BEYOND_MTU} netns {} && \
         ip addr add 192.0.2.1/30 dev o2 && ip link set o2 up && \
         ip route add 198.18.0.0/15 via 192.0.2.2 && \
         sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0",
        hop.name
    ))
    .unwrap();
    hop.sh(&format!(
        "ip addr add 192.0.2.2/30 dev eth0 && ip link set eth0 up && \
         ip addr add {BEYOND}/32 dev lo && ip route add default via 192.0.2.1 && \
         sysctl -qw net.ipv4.icmp_ratelimit=0"
    ))
    .unwrap();
    hop
}

/// What a command run in `vm` printed, stdout and stderr.
fn output(vm: &Vm, script: &str) -> String {
    let out = vm.ns.try_exec(&["sh", "-c", script]).unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The hop lines of traceroute's or tracepath's output: (hop, first
/// address on it).
fn hops(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let hop = words.next()?.trim_end_matches(':').parse().ok()?;
            let addr = words.find(|w| w.contains('.'))?;
            Some((hop, addr.to_string()))
        })
        .collect()
}

#[test]
fn traceroute_and_tracepath_through_snat_and_a_floating_ip_see_the_outside_hops() {
    require_root!();
    // plain's group lets nothing in unasked: what comes back must be
    // related to its connections.
    let w = world_with(|cfg| {
        for p in cfg["ports"].as_array_mut().unwrap() {
            if p["name"] == "plain" {
                p["security_groups"] = json!(["out-only"]);
            }
        }
        cfg["security_groups"].as_array_mut().unwrap().push(json!({
            "id": "out-only",
            "security_group_rules": [{ "direction": "egress", "ethertype": "IPv4" }],
        }));
    });
    let (lab, out) = (&w.lab, &w.out);
    let _hop = second_hop(out);
    let (plain, web) = (lab.vm("plain"), lab.vm("web"));
    // The upstream router's MAC learned (the first packet to it is lost
    // to the ARP request), and the way there and back works.
    plain.reaches(BEYOND, WAIT).unwrap();
    let before = nat_stat(lab, "icmp_in");
    // UDP probes through SNAT: the datapath's router, the upstream router
    // (time exceeded, and fragmentation needed for the 1400-byte link:
    // the path MTU), then the host (port unreachable).
    let text = output(plain, &format!("timeout 60 tracepath -n -m 5 {BEYOND}"));
    let seen = hops(&text);
    assert!(seen.contains(&(1, "10.40.0.1".into())), "{text}");
    assert!(seen.contains(&(2, UPSTREAM.into())), "{text}");
    assert!(seen.contains(&(3, BEYOND.into())), "{text}");
    assert!(text.contains("reached"), "{text}");
    assert!(text.contains(&format!("pmtu {BEYOND_MTU}")), "{text}");
    // ICMP echo probes through SNAT: time exceeded about them.
    let text = output(
        plain,
        &format!("timeout 60 traceroute -I -n -q 1 -w 2 -m 5 {BEYOND}"),
    );
    let seen = hops(&text);
    assert!(seen.contains(&(2, UPSTREAM.into())), "{text}");
    assert!(seen.contains(&(3, BEYOND.into())), "{text}");
    // web leaves as its floating IP; its group lets only TCP 8080 in.
    let text = output(
        web,
        &format!("timeout 60 traceroute -n -q 1 -w 2 -m 5 {BEYOND}"),
    );
    let seen = hops(&text);
    assert!(seen.contains(&(2, UPSTREAM.into())), "{text}");
    assert!(seen.contains(&(3, BEYOND.into())), "{text}");
    let translated = nat_stat(lab, "icmp_in") - before;
    // tracepath: hop 2 at least twice (time exceeded, frag needed) and the
    // port unreachable; traceroute -I: hop 2; web's: hops 2 and 3.
    assert!(translated >= 6, "{translated} errors translated back");
    assert_eq!(lab.drops(plain, "sg_ingress"), 0, "all of it related");
    // Errors about nothing the gateway sent (a port no connection holds,
    // an inside source) go nowhere.
    let before = unattributed(lab, "no_nat");
    let cap = plain.capture().unwrap();
    let script = format!(
        "e = Ether(src=MAC, dst='{GW_EXT_MAC}')/IP(src='{UPSTREAM}', dst='{GATEWAY}')/ICMP(type=11)\n\
         sendp([e/IP(src='{GATEWAY}', dst='{BEYOND}')/UDP(sport=9, dport=33434), \
                e/IP(src='10.40.0.20', dst='{BEYOND}')/UDP(sport=40000, dport=33434)], \
               iface=IFACE, count=2, verbose=False)"
    );
    out.scapy(&script).unwrap();
    wait_for(WAIT, "no_nat drops", || {
        unattributed(lab, "no_nat") >= before + 4
    })
    .unwrap();
    assert_eq!(
        cap.count(Duration::from_millis(300), |f| frame::ipv4(f)
            .is_some_and(|(s, _, p)| s == ip4(UPSTREAM) && p == 1)),
        0,
        "no spoofed error reached plain"
    );
}

#[test]
fn a_floating_ip_is_reached_from_inside_through_the_router() {
    require_root!();
    let w = world();
    let lab = &w.lab;
    let (plain, web) = (lab.vm("plain"), lab.vm("web"));
    web.serve_tcp(&[8080]).unwrap();
    // plain has no floating IP: web sees it as the gateway's address (the
    // reply goes back through the router, which translates it again).
    let cap = web.capture().unwrap();
    wait_for(WAIT, "TCP to web's floating IP from inside", || {
        plain.connects(FIP_WEB, 8080, None)
    })
    .unwrap();
    assert!(
        cap.wait_for(Duration::from_secs(2), |f| frame::ipv4(f).is_some_and(
            |(s, d, p)| s == ip4(GATEWAY) && d == ip4("10.40.0.30") && p == 6
        ))
        .is_some(),
        "web hears plain as the gateway's address"
    );
    // web to its own floating IP: from its floating IP.
    let cap = web.capture().unwrap();
    assert!(web.connects(FIP_WEB, 8080, None), "web to itself");
    assert!(
        cap.wait_for(Duration::from_secs(2), |f| frame::ipv4(f).is_some_and(
            |(s, d, p)| s == ip4(FIP_WEB) && d == ip4("10.40.0.30") && p == 6
        ))
        .is_some(),
        "web hears itself as its floating IP"
    );
    // Only TCP 8080 is let in, whoever comes.
    assert!(!plain.connects(FIP_WEB, 8082, None), "8082 is not allowed");
    // The gateway's address is the router's: it answers pings from inside.
    assert!(plain.ping(GATEWAY, 2), "ping to the gateway's address");
    // `trace` follows the packet there and back in.
    let t = lab
        .dataplane(&[
            "trace", "plain", "--proto", "tcp", "--dst", FIP_WEB, "--dport", "8080",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert_eq!(t.status.code(), Some(0), "{text}");
    assert!(text.contains(&web.port_id), "{text}");
    assert!(
        text.contains(&format!(
            "translated by the router: {GW_INT_MAC} > {MAC_WEB} TCP {GATEWAY}:"
        )) && text.contains("> 10.40.0.30:8080"),
        "{text}"
    );
    assert!(nat_stat(lab, "hairpin") >= 6, "{:#}", nat(lab));
}

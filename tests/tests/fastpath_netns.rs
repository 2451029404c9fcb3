//! The flow cache with real frames (scapy) between VM namespaces: an
//! established connection's packets are forwarded from it and still
//! counted on the connection; a configuration change reaches a cached
//! connection at its next packet; a frame that looks like a cached
//! connection's but is not one of its packets (another MAC, a header the
//! parser refuses, a fragment, a flag that changes the connection's state)
//! takes the full path and meets its verdict there.
//!
//! `a` (10.21.0.11, fd21::11, pair 10.21.0.100) sends UDP to `b`
//! (10.21.0.12, fd21::12), whose group lets UDP 5000 in; both send
//! anything out.

use std::{process::Child, time::Duration};

use lab::{
    capture::Capture,
    lab::{Lab, Vm, WAIT, wait_for},
    require_root,
    topo::{config, network, pair, port, subnet},
};
use serde_json::{Value, json};

const MAC_A: &str = "fa:16:3e:21:00:11";
const MAC_B: &str = "fa:16:3e:21:00:12";

fn cfg(lab: &Lab, udp_in: bool, a_pair: bool) -> Value {
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let mut pa = port(a, "net", &[("v4", "10.21.0.11"), ("v6", "fd21::11")]);
    if a_pair {
        pa["allowed_address_pairs"] = json!([pair("10.21.0.100", None)]);
    }
    pa["security_groups"] = json!(["out"]);
    let mut pb = port(b, "net", &[("v4", "10.21.0.12"), ("v6", "fd21::12")]);
    pb["security_groups"] = json!(["in"]);
    let mut c = config(
        vec![network("net")],
        vec![
            subnet("v4", "net", "10.21.0.0/24", None),
            subnet("v6", "net", "fd21::/64", None),
        ],
        vec![pa, pb],
    );
    let egress = |ethertype| json!({ "direction": "egress", "ethertype": ethertype });
    let mut in_rules = vec![egress("IPv4"), egress("IPv6")];
    if udp_in {
        for ethertype in ["IPv4", "IPv6"] {
            in_rules.push(json!({
                "direction": "ingress", "ethertype": ethertype, "protocol": "udp",
                "port_range_min": 5000, "port_range_max": 5000,
            }));
        }
    }
    c["security_groups"] = json!([
        { "id": "out", "security_group_rules": [egress("IPv4"), egress("IPv6")] },
        { "id": "in", "security_group_rules": in_rules },
    ]);
    c
}

fn lab() -> Lab {
    let mut lab = Lab::new(false).unwrap();
    lab.add_vm("a", MAC_A).unwrap();
    lab.add_vm("b", MAC_B).unwrap();
    lab.vm("a")
        .sh(
            "ip addr add 10.21.0.11/24 dev eth0 && ip addr add 10.21.0.100/32 dev eth0 \
             && ip -6 addr add fd21::11/64 dev eth0 nodad",
        )
        .unwrap();
    lab.vm("b")
        .sh("ip addr add 10.21.0.12/24 dev eth0 && ip -6 addr add fd21::12/64 dev eth0 nodad")
        .unwrap();
    let c = cfg(&lab, true, true);
    lab.start(&c).unwrap();
    lab
}

/// Sends `n` UDP frames a -> b from `src`:4000 to port 5000, each
/// carrying `marker`.
fn send_udp(a: &Vm, src: &str, n: usize, marker: &str) {
    a.scapy(&format!(
        "sendp([Ether(src=MAC, dst='{MAC_B}')/IP(src='{src}', dst='10.21.0.12')/UDP(sport=4000, dport=5000)/Raw(b'{marker}')] * {n}, iface=IFACE)"
    ))
    .unwrap();
}

/// A steady UDP flow a -> b (`src`:4000 -> 5000, a frame every 10 ms,
/// "steady" in each) from a kernel socket in `a`, so that the connection's
/// cache entry stays fresh; stopped (killed and reaped) when dropped, also
/// when the test fails.
struct Steady(Child);

impl Steady {
    fn start(a: &Vm, src: &str) -> Steady {
        let (family, dst) = if src.contains(':') {
            ("AF_INET6", "fd21::12")
        } else {
            ("AF_INET", "10.21.0.12")
        };
        let script = format!(
            "import socket, time\n\
             s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
             s.bind(('{src}', 4000))\n\
             end = time.monotonic() + 60\n\
             while time.monotonic() < end:\n\
             \x20   s.sendto(b'steady', ('{dst}', 5000))\n\
             \x20   time.sleep(0.01)\n"
        );
        let child =
            a.ns.command("python3")
                .args(["-c", &script])
                .spawn()
                .expect("starting the steady sender");
        Steady(child)
    }
}

impl Drop for Steady {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn marked(marker: &str) -> impl Fn(&[u8]) -> bool + '_ {
    move |f| lab::capture::frame::contains(f, marker.as_bytes())
}

/// Waits until `n` frames with `marker` arrived on `cap`.
fn arrive(cap: &Capture, marker: &str, n: usize) {
    let pred = marked(marker);
    for i in 0..n {
        assert!(
            cap.wait_for(WAIT, &pred).is_some(),
            "frame {i} of {n} ({marker}) did not arrive"
        );
    }
}

fn stat(lab: &Lab, vm: &Vm, name: &str) -> u64 {
    lab.port(vm).unwrap()["stats"][name].as_u64().unwrap_or(0)
}

/// The packets counted on the connection a -> b (src:4000 -> 5000) in
/// each port's zone (sender's egress, receiver's ingress).
fn ct_packets(lab: &Lab, src: &str) -> Vec<u64> {
    let v = lab.show("conntrack").unwrap();
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["src"] == src && c["sport"] == 4000 && c["dport"] == 5000)
        .map(|c| c["packets"].as_u64().unwrap_or(0))
        .collect()
}

/// Sends frames until the cache holds the connection (one is forwarded
/// from it); returns how many were sent.
fn warm(lab: &Lab, cap: &Capture, src: &str) -> usize {
    let a = lab.vm("a");
    let before = stat(lab, a, "fast_path");
    let mut sent = 0;
    wait_for(WAIT, "a cached frame", || {
        send_udp(a, src, 3, "warm");
        sent += 3;
        arrive(cap, "warm", 3);
        stat(lab, a, "fast_path") > before
    })
    .unwrap();
    sent
}

/// Whether a frame with one of `markers` is queued on `cap` (the frames
/// queued are read; the caller already knows, from the datapath's
/// counters, that everything sent was dealt with).
fn any_queued(cap: &Capture, markers: &[&str]) -> bool {
    let mut found = false;
    while let Some(f) = cap.next(Duration::from_millis(1)) {
        found |= markers
            .iter()
            .any(|m| lab::capture::frame::contains(&f, m.as_bytes()));
    }
    found
}

#[test]
fn cached_packets_are_forwarded_counted_and_added_to_their_connection() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let cap = b.capture().unwrap();
    let mut sent = warm(&lab, &cap, "10.21.0.11");
    let (fast, rx) = (stat(&lab, a, "fast_path"), stat(&lab, b, "tx_packets"));
    send_udp(a, "10.21.0.11", 40, "burst");
    sent += 40;
    arrive(&cap, "burst", 40);
    // Forwarded from the cache (most of them: an entry is renewed once a
    // second through the full path), and delivered and counted as ever.
    assert!(
        stat(&lab, a, "fast_path") > fast,
        "no frame of the burst was cached"
    );
    assert_eq!(stat(&lab, b, "tx_packets") - rx, 40);
    assert_eq!(stat(&lab, a, "forwarded") as usize, sent);
    // Once the entry is renewed, the connection's count in both zones
    // includes what the cache forwarded: send a frame at a time until one
    // takes the full path and the counts catch up with what was sent.
    wait_for(WAIT, "connection counts including cached packets", || {
        send_udp(a, "10.21.0.11", 1, "tick");
        sent += 1;
        arrive(&cap, "tick", 1);
        let counts = ct_packets(&lab, "10.21.0.11");
        counts.len() == 2 && counts.iter().all(|&c| c as usize == sent)
    })
    .unwrap();
}

#[test]
fn a_change_reaches_a_cached_connection_at_its_next_packet() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    // From the pair's address, in a steady flow whose entry stays fresh:
    // once the pair is removed, nothing more from it is delivered (the
    // entry, made under the previous generation, is not used).
    let steady = Steady::start(a, "10.21.0.100");
    wait_for(WAIT, "the pair's flow cached", || {
        stat(&lab, a, "fast_path") > 0
    })
    .unwrap();
    lab.reload(&cfg(&lab, true, false)).unwrap();
    let (delivered, drops) = (stat(&lab, b, "tx_packets"), lab.drops(a, "ipv4_src"));
    wait_for(WAIT, "the pair's packets dropped", || {
        lab.drops(a, "ipv4_src") >= drops + 20
    })
    .unwrap();
    assert_eq!(
        stat(&lab, b, "tx_packets"),
        delivered,
        "a packet from the removed pair was delivered"
    );
    drop(steady);
    // From the fixed IP: once the rule that let the connection in is
    // removed, nothing more is delivered (the connection is checked again,
    // not the entry trusted).
    let fast = stat(&lab, a, "fast_path");
    let _steady = Steady::start(a, "10.21.0.11");
    wait_for(WAIT, "the flow cached", || {
        stat(&lab, a, "fast_path") > fast
    })
    .unwrap();
    lab.reload(&cfg(&lab, false, false)).unwrap();
    let (delivered, drops) = (stat(&lab, b, "tx_packets"), lab.drops(b, "sg_ingress"));
    wait_for(WAIT, "the connection's packets refused", || {
        lab.drops(b, "sg_ingress") >= drops + 20
    })
    .unwrap();
    assert_eq!(
        stat(&lab, b, "tx_packets"),
        delivered,
        "a packet the rules no longer allow was delivered"
    );
}

#[test]
fn look_alikes_of_a_cached_connection_take_the_full_path() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let cap = b.capture().unwrap();
    // The connection's entry stays fresh meanwhile: each look-alike meets
    // a usable entry for the connection it imitates.
    let steady = Steady::start(a, "10.21.0.11");
    wait_for(WAIT, "the flow cached", || stat(&lab, a, "fast_path") > 0).unwrap();
    let base = "IP(src='10.21.0.11', dst='10.21.0.12'";
    let udp = "UDP(sport=4000, dport=5000)";
    // Each: (what it is, the scapy frame, the drop reason it must meet).
    let cases = [
        (
            "another source MAC",
            format!("Ether(src='fa:16:3e:21:00:99', dst='{MAC_B}')/{base})/{udp}/Raw(b'lk1')"),
            "src_mac",
        ),
        (
            "an IPv4 total length past the frame",
            format!("Ether(src=MAC, dst='{MAC_B}')/{base}, len=200)/{udp}/Raw(b'lk2')"),
            "malformed",
        ),
        (
            "an IPv4 header length under 5 words",
            format!("Ether(src=MAC, dst='{MAC_B}')/{base}, ihl=4)/{udp}/Raw(b'lk3')"),
            "malformed",
        ),
    ];
    for (what, frame, reason) in &cases {
        let before = lab.drops(a, reason);
        a.scapy(&format!("sendp({frame}, iface=IFACE)")).unwrap();
        wait_for(WAIT, what, || lab.drops(a, reason) == before + 1).unwrap();
    }
    // A later fragment and a first fragment of the same connection: the
    // full path decides (a later fragment carries no ports; b's rule
    // names port 5000, so it is refused as a new connection).
    let refused = lab.drops(b, "sg_ingress");
    a.scapy(&format!(
        "sendp(Ether(src=MAC, dst='{MAC_B}')/{base}, frag=10, proto=17)/Raw(b'lk4-later-fragment'), iface=IFACE)"
    ))
    .unwrap();
    wait_for(WAIT, "a later fragment refused", || {
        lab.drops(b, "sg_ingress") == refused + 1
    })
    .unwrap();
    // Still cached: the steady flow goes on from the cache.
    let fast = stat(&lab, a, "fast_path");
    wait_for(WAIT, "the flow still cached", || {
        stat(&lab, a, "fast_path") > fast
    })
    .unwrap();
    drop(steady);
    assert!(
        !any_queued(&cap, &["lk1", "lk2", "lk3", "lk4"]),
        "a look-alike arrived"
    );
}

#[test]
fn an_ipv6_connection_is_cached_too() {
    require_root!();
    let lab = lab();
    let (a, b) = (lab.vm("a"), lab.vm("b"));
    let _steady = Steady::start(a, "fd21::11");
    wait_for(WAIT, "the IPv6 flow cached", || {
        stat(&lab, a, "fast_path") > 0
    })
    .unwrap();
    // Delivered as ever: every packet a sent b got, from the cache or not.
    wait_for(WAIT, "every IPv6 packet delivered", || {
        let (sent, got) = (stat(&lab, a, "forwarded"), stat(&lab, b, "tx_packets"));
        sent > 50 && got >= sent.saturating_sub(2)
    })
    .unwrap();
}

//! `BENCH_ONLY=routing`: what the router's paths cost, one run at a time
//! (each rewrites its frame) against the empty program timed the same
//! way in the same run: a packet routed to a connected subnet, one routed
//! by a static route whose nexthop is a VIP two ports share (no active
//! member known: every member), an echo request to the router answered,
//! and a router solicitation answered with the advertisement.

use std::fmt::Write as _;

use anyhow::Result;
use lab::{
    pkt::{self, link_local, mac, v4, v6},
    verdict::{Verdicts, XDP_REDIRECT},
};
use serde_json::{Value, json};

use crate::{R1_MAC, S_MAC, SINGLES, SRC, median, topology};

const H1_MAC: &str = "fa:16:3e:b0:00:31";
const H2_MAC: &str = "fa:16:3e:b0:00:32";

/// The packet section's base topology, with two ports on net2 sharing
/// 10.20.0.100, a static route through it, and an IPv6 subnet on net
/// (dhcpv6-stateful: the router advertises it) for the source port and
/// the router.
fn config() -> Value {
    let mut c = topology(10, 10, 10);
    c["subnets"].as_array_mut().expect("subnets").push(json!({
        "id": "s6", "network_id": "net", "cidr": "fd09::/64", "ip_version": 6,
        "ipv6_ra_mode": "dhcpv6-stateful", "ipv6_address_mode": "dhcpv6-stateful",
    }));
    // The source may send IPv6 too (the base groups are IPv4 only).
    c["security_groups"][0]["security_group_rules"]
        .as_array_mut()
        .expect("rules")
        .push(json!({ "direction": "egress", "ethertype": "IPv6" }));
    c["routers"][0]["routes"] =
        json!([{ "destination": "10.30.0.0/16", "nexthop": "10.20.0.100" }]);
    let ports = c["ports"].as_array_mut().expect("ports");
    for p in ports.iter_mut() {
        if p["id"] == SRC {
            p["fixed_ips"]
                .as_array_mut()
                .expect("fixed_ips")
                .push(json!({ "subnet_id": "s6", "ip_address": "fd09::5" }));
        }
        if p["id"] == "bench-r1-if0" {
            p["fixed_ips"]
                .as_array_mut()
                .expect("fixed_ips")
                .push(json!({ "subnet_id": "s6", "ip_address": "fd09::1" }));
        }
    }
    for (id, m, ip) in [
        ("bench-h1", H1_MAC, "10.20.0.11"),
        ("bench-h2", H2_MAC, "10.20.0.12"),
    ] {
        ports.push(json!({
            "id": id, "network_id": "net2", "mac_address": m,
            "fixed_ips": [{ "subnet_id": "s2", "ip_address": ip }],
            "allowed_address_pairs": [{ "ip_address": "10.20.0.100" }],
            "security_groups": ["open"],
        }));
    }
    c
}

fn paths() -> Vec<(&'static str, Vec<u8>)> {
    let (s, r) = (mac(S_MAC), mac(R1_MAC));
    let rs = pkt::icmp6(
        s,
        [0x33, 0x33, 0, 0, 0, 2],
        v6("fd09::5"),
        v6("ff02::2"),
        133,
        [0; 4],
        &pkt::lladdr_opt(1, s),
    );
    vec![
        (
            "routed to a connected subnet",
            pkt::udp4(s, r, v4("10.9.0.1"), v4("10.20.0.5"), 1000, 2000),
        ),
        (
            "routed by a static route via a shared VIP (every member)",
            pkt::udp4(s, r, v4("10.9.0.1"), v4("10.30.0.7"), 1000, 2000),
        ),
        (
            "echo request to the router answered",
            pkt::ping4(s, r, v4("10.9.0.1"), v4("10.9.255.254")),
        ),
        (
            "IPv6 echo request to the router's link-local address answered",
            pkt::ping6(s, r, link_local(s), link_local(r)),
        ),
        ("router solicitation answered (advertisement)", rs),
    ]
}

pub fn section(md: &mut String) -> Result<()> {
    eprintln!("bench: routing");
    let mut v = Verdicts::new(&config(), SRC)?;
    let floor = [0u8; 64];
    let floor_single = median(|| v.time("bench_floor", &floor, 1), SINGLES)?;
    let prog = dataplane_agent::datapath::PROG_FROM_VM;
    writeln!(md, "## Routing\n")?;
    writeln!(
        md,
        "`from_vm` and the routing programs it tail-calls, one run at a time (median of \
         {SINGLES}), against the empty program timed the same way. The echo requests are \
         tracked (the router is a remote of the sender's egress rules): after the first run \
         they find their connection.\n"
    )?;
    writeln!(md, "| path | ns per packet | ratio to the floor |")?;
    writeln!(md, "|---|---:|---:|")?;
    writeln!(md, "| floor, single runs | {floor_single:.0} | 1.0 |")?;
    for (name, frame) in paths() {
        let got = v.run(&frame)?;
        if got != XDP_REDIRECT {
            let drops = v.port(SRC)?.stats.drops;
            anyhow::bail!("{name}: verdict {got}, expected {XDP_REDIRECT}; drops {drops:?}");
        }
        let ns = median(|| v.time(prog, &frame, 1), SINGLES)?;
        writeln!(md, "| {name} | {ns:.0} | {:.1} |", ns / floor_single)?;
    }
    writeln!(md)?;
    Ok(())
}

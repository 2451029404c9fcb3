//! `BENCH_ONLY=routing`: what the router's paths cost, one run at a time
//! (each rewrites its frame) against the empty program timed the same
//! way in the same run: a packet routed to a connected subnet, one routed
//! by a static route whose nexthop is a VIP two ports share (no active
//! member known: every member), an echo request to the router answered,
//! a router solicitation answered with the advertisement, and the external
//! gateway's translations (SNAT out and its reply in, DNAT to a floating
//! IP).

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

const GW_EXT_MAC: &str = "fa:16:3e:b0:02:01";
const UP_MAC: &str = "fa:16:3e:b0:99:01";
const GATEWAY: &str = "203.0.113.10";
const UPSTREAM: &str = "203.0.113.1";
const FAR: &str = "198.51.100.7";
const FIP: &str = "203.0.113.50";

/// [`config`] with router r1's gateway on an external network (SNAT on)
/// and a floating IP for the far port (10.20.0.5), on uplink "public".
fn nat_config() -> Value {
    let mut c = config();
    c["networks"].as_array_mut().expect("networks").push(json!({
        "id": "public", "router:external": true,
        "provider:network_type": "flat", "provider:physical_network": "public",
    }));
    c["subnets"].as_array_mut().expect("subnets").push(json!({
        "id": "public-s", "network_id": "public", "cidr": "203.0.113.0/24",
        "ip_version": 4, "gateway_ip": UPSTREAM,
    }));
    c["ports"].as_array_mut().expect("ports").push(json!({
        "id": "bench-r1-gw", "network_id": "public", "mac_address": GW_EXT_MAC,
        "device_owner": "network:router_gateway", "device_id": "r1",
        "fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }],
    }));
    c["routers"][0]["external_gateway_info"] = json!({
        "network_id": "public", "enable_snat": true,
        "external_fixed_ips": [{ "subnet_id": "public-s", "ip_address": GATEWAY }],
    });
    c["floatingips"] = json!([{
        "id": "bench-fip", "floating_network_id": "public", "floating_ip_address": FIP,
        "port_id": "bench-far", "fixed_ip_address": "10.20.0.5", "router_id": "r1",
    }]);
    c
}

/// The NAT paths, timed like the others: a packet leaving through the
/// gateway (SNAT, its connection known), a reply to it from outside, and
/// a packet from outside to a floating IP (DNAT), routed in.
fn nat_rows(md: &mut String, singles: usize, floor: f64) -> Result<()> {
    let mut v = Verdicts::with_uplinks(&nat_config(), SRC, &[("public", 1)])?;
    let (up, gw) = (mac(UP_MAC), mac(GW_EXT_MAC));
    // The upstream router, learned as from its ARP reply to the gateway.
    let learn = pkt::arp(up, 2, up, v4(UPSTREAM), v4(GATEWAY));
    v.exchange("from_uplink", &learn)?;
    let out = pkt::udp4(mac(S_MAC), mac(R1_MAC), v4("10.9.0.1"), v4(FAR), 1000, 53);
    let (action, left) = v.exchange(dataplane_agent::datapath::PROG_FROM_VM, &out)?;
    anyhow::ensure!(
        action == XDP_REDIRECT && left.get(26..30) == Some(&v4(GATEWAY)[..]),
        "SNAT path: verdict {action}, frame {left:02x?}"
    );
    let port = u16::from_be_bytes([left[34], left[35]]);
    let reply = pkt::udp4(up, gw, v4(FAR), v4(GATEWAY), 53, port);
    let dnat = pkt::udp4(up, gw, v4(FAR), v4(FIP), 1000, 2000);
    let rows = [
        (
            "SNAT: routed out of the external gateway (connection known)",
            dataplane_agent::datapath::PROG_FROM_VM,
            out,
        ),
        (
            "SNAT: the reply from outside, back to the VM",
            "from_uplink",
            reply,
        ),
        (
            "DNAT: from outside to a floating IP, routed in",
            "from_uplink",
            dnat,
        ),
    ];
    for (name, prog, frame) in rows {
        let (got, _) = v.exchange(prog, &frame)?;
        anyhow::ensure!(got == XDP_REDIRECT, "{name}: verdict {got}");
        let ns = median(|| v.time(prog, &frame, 1), singles)?;
        writeln!(md, "| {name} | {ns:.0} | {:.1} |", ns / floor)?;
    }
    Ok(())
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
    let singles = crate::pick(SINGLES, 20);
    let floor_single = median(|| v.time("bench_floor", &floor, 1), singles)?;
    let prog = dataplane_agent::datapath::PROG_FROM_VM;
    writeln!(md, "## Routing\n")?;
    writeln!(
        md,
        "`from_vm` and the routing programs it tail-calls (`from_uplink` for what comes \
         from the external network), one run at a time (median of {singles}), against the \
         empty program timed the same way. The echo requests are tracked (the router is a \
         remote of the sender's egress rules): after the first run they find their \
         connection. The NAT rows run in a datapath of their own with the router's gateway \
         on an external network: a packet leaving is checked against the sender's egress \
         rules, translated and sent to the learned next hop; one arriving is translated and \
         routed in (the receiver's ingress rules are `to_vm`'s, not timed here).\n"
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
        let ns = median(|| v.time(prog, &frame, 1), singles)?;
        writeln!(md, "| {name} | {ns:.0} | {:.1} |", ns / floor_single)?;
    }
    // In its own datapath (the uplink's test runs arrive where the
    // source port's do); the floor is the same program-independent one.
    drop(v);
    nat_rows(md, singles, floor_single)?;
    writeln!(md)?;
    Ok(())
}

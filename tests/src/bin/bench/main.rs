//! `cargo xtask bench`: what the datapath costs per packet, against the
//! empty-program floor measured in the same run, and how that cost scales
//! with ports, allowed address pairs and security-group rules. Results go
//! to `results/bench.md` and `results/bench.svg`. Nothing here fails for
//! being slow: it measures.
//! `BENCH_ONLY=packet,routing,control,bpf,forwarding,taps,failover` or any of the
//! multi-host sections `hosts-forwarding,hosts-etcd,hosts-failover`
//! (`hosts` for the three), or `scale` (comma-separated) runs only those
//! sections, into the folder given as the first argument.
//! `BENCH_SMOKE=1` runs every section with tiny counts (CI's check that
//! the benchmark still runs; its numbers mean nothing), and every section
//! must produce table rows, smoke or not.
//!
//! Every path runs the real `from_vm` (and the routing program it
//! tail-calls) with real maps, through BPF_PROG_TEST_RUN. The receiving
//! side, where security groups and connection tracking run, is timed in
//! `to_vm_trace` (`to_vm`'s code as a plain XDP program: BPF_PROG_TEST_RUN
//! refuses device-map programs). Live-frame mode was tried and dropped:
//! frames the programs had rewritten were not reset between runs, so its
//! numbers described other paths than their names.

mod bpf_cost;
mod control;
mod forwarding;
mod hosts;
mod neutron_fw;
mod ovs;
mod ovs_fw;
mod routing;
mod scale;
mod taps;

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context, Result};
use common::{TX_F_TRACE, TxMeta};
use lab::{
    pkt::{self, mac, v4},
    verdict::{Verdicts, XDP_DROP, XDP_PASS, XDP_REDIRECT},
    vrrp,
};
use serde_json::{Value, json};

const SRC: &str = "bench-src";
const S_MAC: &str = "fa:16:3e:b0:00:01";
const D_MAC: &str = "fa:16:3e:b0:00:02";
const G1_MAC: &str = "fa:16:3e:b0:00:11";
const G2_MAC: &str = "fa:16:3e:b0:00:12";
const VMAC: &str = "00:00:5e:00:01:09";
const E_MAC: &str = "fa:16:3e:b0:00:20";
const R1_MAC: &str = "fa:16:3e:b0:01:01";
const R2_MAC: &str = "fa:16:3e:b0:01:02";

/// A topology of `ports` ports (at least the five the paths need; the
/// router's two interfaces come on top), the
/// source port holding `pairs` allowed address pairs (host addresses and
/// /24 prefixes, raising Neutron's limit), and the destination's group
/// holding `rules` extra rules (remote prefixes and remote groups).
fn topology(ports: usize, pairs: usize, rules: usize) -> Value {
    let port = |id: &str, net: &str, subnet: &str, mac: &str, ip: &str, sg: &str| {
        json!({
            "id": id, "network_id": net, "mac_address": mac,
            "fixed_ips": [{ "subnet_id": subnet, "ip_address": ip }],
            "security_groups": [sg],
        })
    };
    let mut src = port(SRC, "net", "s", S_MAC, "10.9.0.1", "open");
    src["allowed_address_pairs"] = (0..pairs)
        .map(|i| {
            let j = i / 2;
            if i % 2 == 0 {
                json!({ "ip_address": format!("10.{}.{}.{}", 100 + j / 65536, (j / 256) % 256, j % 256) })
            } else {
                json!({ "ip_address": format!("172.{}.{}.0/24", 16 + j / 256, j % 256) })
            }
        })
        .collect();
    let mut ports_v = vec![
        src,
        port("bench-dst", "net", "s", D_MAC, "10.9.0.2", "dst"),
        port("bench-g1", "net", "s", G1_MAC, "10.9.0.11", "open"),
        port("bench-g2", "net", "s", G2_MAC, "10.9.0.12", "open"),
        port("bench-far", "net2", "s2", E_MAC, "10.20.0.5", "open"),
    ];
    for p in &mut ports_v[2..4] {
        p["allowed_address_pairs"] = json!([{ "ip_address": "10.9.0.100", "mac_address": VMAC }]);
    }
    // The other ports sit on networks of up to EXTRA_PER_NETWORK ports: a
    // flood domain holds at most 4,096 ports on one host.
    let first_extra = ports_v.len();
    let mut networks = vec![json!({ "id": "net" }), json!({ "id": "net2" })];
    let mut subnets = vec![
        json!({ "id": "s", "network_id": "net", "cidr": "10.9.0.0/16", "ip_version": 4 }),
        json!({ "id": "s2", "network_id": "net2", "cidr": "10.20.0.0/24", "ip_version": 4 }),
    ];
    for i in first_extra..ports {
        let (k, j) = (
            (i - first_extra) / EXTRA_PER_NETWORK,
            (i - first_extra) % EXTRA_PER_NETWORK,
        );
        // Network k is the k-th /22 from 10.128.0.0; port j its (j+1)-th
        // address.
        let base = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0)) + (k as u32) * 1024;
        if j == 0 {
            networks.push(json!({ "id": format!("x{k}") }));
            subnets.push(json!({
                "id": format!("sx{k}"), "network_id": format!("x{k}"),
                "cidr": format!("{}/22", std::net::Ipv4Addr::from(base)), "ip_version": 4,
            }));
        }
        let [_, b, c, d] = (i as u32).to_be_bytes();
        ports_v.push(port(
            &format!("{i:08}-extra"),
            &format!("x{k}"),
            &format!("sx{k}"),
            &format!("fa:16:3e:{b:02x}:{c:02x}:{d:02x}"),
            &std::net::Ipv4Addr::from(base + 1 + j as u32).to_string(),
            "open",
        ));
    }
    for (i, (net, subnet, mac, ip)) in [
        ("net", "s", R1_MAC, "10.9.255.254"),
        ("net2", "s2", R2_MAC, "10.20.0.1"),
    ]
    .iter()
    .enumerate()
    {
        ports_v.push(json!({
            "id": format!("bench-r1-if{i}"), "network_id": net, "mac_address": mac,
            "device_owner": "network:router_interface", "device_id": "r1",
            "fixed_ips": [{ "subnet_id": subnet, "ip_address": ip }],
        }));
    }
    let mut dst_rules: Vec<Value> = vec![
        json!({ "direction": "egress" }),
        json!({ "direction": "ingress", "protocol": "udp", "port_range_min": 2000, "port_range_max": 2000 }),
    ];
    // Rules that never match the measured packets (TCP to other ports):
    // they only make the tables bigger. Half name a remote prefix, half a
    // remote group, the sender's own ("open"), so that its identity's
    // entries grow too.
    dst_rules.extend((0..rules).map(|i| {
        let mut r = json!({
            "direction": "ingress", "protocol": "tcp",
            "port_range_min": 10000 + (i % 50000), "port_range_max": 10000 + (i % 50000),
        });
        if i % 2 == 0 {
            r["remote_ip_prefix"] =
                json!(format!("192.{}.{}.0/24", 168 + i / 65536, (i / 256) % 256));
        } else {
            r["remote_group_id"] = json!("open");
        }
        r
    }));
    json!({
        "dataplane": { "max_allowed_address_pair": pairs.max(10) },
        "networks": networks,
        "subnets": subnets,
        "routers": [{ "id": "r1" }],
        "ports": ports_v,
        "security_groups": [
            { "id": "open", "security_group_rules": [
                { "direction": "ingress" }, { "direction": "egress" } ] },
            { "id": "dst", "security_group_rules": dst_rules },
        ],
    })
}

struct Path {
    name: &'static str,
    frame: Vec<u8>,
    expect: u32,
    /// Repeated runs on one buffer are only valid for paths that leave the
    /// frame as it was; the others are timed one run at a time.
    repeatable: bool,
}

fn paths() -> Vec<Path> {
    let (s, d) = (mac(S_MAC), mac(D_MAC));
    vec![
        Path {
            name: "spoofed source dropped",
            frame: pkt::udp4(s, d, v4("10.66.0.1"), v4("10.9.0.2"), 1000, 2000),
            expect: XDP_DROP,
            repeatable: true,
        },
        Path {
            name: "L2 forward (allowed, redirected)",
            frame: pkt::udp4(s, d, v4("10.9.0.1"), v4("10.9.0.2"), 1000, 2000),
            expect: XDP_REDIRECT,
            repeatable: true,
        },
        Path {
            name: "to a shared address",
            frame: pkt::udp4(s, mac(VMAC), v4("10.9.0.1"), v4("10.9.0.100"), 1000, 2000),
            expect: XDP_REDIRECT,
            repeatable: true,
        },
        Path {
            name: "routed",
            frame: pkt::udp4(s, mac(R1_MAC), v4("10.9.0.1"), v4("10.20.0.5"), 1000, 2000),
            expect: XDP_REDIRECT,
            repeatable: false,
        },
        Path {
            name: "ARP request answered",
            frame: pkt::arp(s, 1, s, v4("10.9.0.1"), v4("10.9.0.2")),
            expect: XDP_REDIRECT,
            repeatable: false,
        },
    ]
}

/// (ports, pairs on the source port, extra rules).
type Scale = (usize, usize, usize);

/// Whether this is a smoke run (`BENCH_SMOKE`): tiny counts everywhere.
pub fn smoke() -> bool {
    std::env::var_os("BENCH_SMOKE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `a / b` for a table, or "–" when it is no number (a smoke run's few
/// frames can take no whole CPU tick, so a CPU time may be zero).
pub fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if b != 0.0 && r.is_finite() {
        format!("{r:.2}")
    } else {
        "–".to_string()
    }
}

/// `full` in a measurement, `tiny` in a smoke run.
pub fn pick<T>(full: T, tiny: T) -> T {
    if smoke() { tiny } else { full }
}

const REPEAT: u32 = 200_000;
/// Ports per network beyond the paths' own.
const EXTRA_PER_NETWORK: usize = 1000;
/// The datapath's port capacity in every measurement: room for the
/// largest topology (10,000 ports, 100,000 pairs at 16 address entries a
/// port).
const MAX_PORTS: u32 = 16384;
/// Single runs per measurement for paths that rewrite the frame.
const SINGLES: usize = 4000;

/// Median of `n` measurements, to damp a noisy shared machine.
fn median(mut f: impl FnMut() -> Result<f64>, n: usize) -> Result<f64> {
    Ok(median_of(
        (0..n).map(|_| f()).collect::<Result<Vec<f64>>>()?,
    ))
}

/// The middle value of measurements already taken (not empty).
fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Measured {
    /// The floor timed both ways: repeated, and one run at a time.
    floor_repeat: f64,
    floor_single: f64,
    /// (path, ns, ratio to the floor timed the same way)
    rows: Vec<(&'static str, f64, f64)>,
}

fn measure(config: &Value) -> Result<Measured> {
    let (repeat, singles) = (pick(REPEAT, 1000), pick(SINGLES, 20));
    let mut v = Verdicts::sized(config, SRC, pick(MAX_PORTS, 256))?;
    let floor = [0u8; 64];
    let floor_repeat = median(|| v.time("bench_floor", &floor, repeat), 5)?;
    let floor_single = median(|| v.time("bench_floor", &floor, 1), singles)?;
    let prog = dataplane_agent::datapath::PROG_FROM_VM;
    let mut rows = Vec::new();
    for p in paths() {
        let got = v.run(&p.frame)?;
        anyhow::ensure!(
            got == p.expect,
            "{}: verdict {got}, expected {}",
            p.name,
            p.expect
        );
        let (ns, ratio) = if p.repeatable {
            let ns = median(|| v.time(prog, &p.frame, repeat), 5)?;
            (ns, ns / floor_repeat)
        } else {
            let ns = median(|| v.time(prog, &p.frame, 1), singles)?;
            (ns, ns / floor_single)
        };
        rows.push((p.name, ns, ratio));
    }
    // The receiving side: to_vm's code as a plain XDP program, with the
    // destination port bound to the run's interface and the metadata
    // from_vm attaches to what the source port sends.
    drop(v);
    let mut r = Verdicts::sized(config, "bench-dst", pick(MAX_PORTS, 256))?;
    let sender = r.sender_meta(SRC)?;
    let traced = TxMeta {
        flags: sender.flags | TX_F_TRACE,
        ..sender
    };
    let (s, d) = (mac(S_MAC), mac(D_MAC));
    let allowed = pkt::udp4(s, d, v4("10.9.0.1"), v4("10.9.0.2"), 1000, 2000);
    let refused = pkt::udp4(s, d, v4("10.9.0.1"), v4("10.9.0.2"), 1000, 2001);
    let to_vm_paths: [(&'static str, &TxMeta, &[u8], u32); 3] = [
        // A traced frame writes no conntrack entry, so every run is a new
        // connection's policy decision (without the entry's insert).
        (
            "to_vm: new connection, rule lookup",
            &traced,
            &allowed,
            XDP_PASS,
        ),
        ("to_vm: established connection", &sender, &allowed, XDP_PASS),
        (
            "to_vm: refused by security groups",
            &traced,
            &refused,
            XDP_DROP,
        ),
    ];
    for (name, meta, frame, expect) in to_vm_paths {
        // The first untraced run opens the connection the next ones find.
        let (got, _) = r.to_vm(meta, frame, 1)?;
        anyhow::ensure!(got == expect, "{name}: verdict {got}, expected {expect}");
        let ns = median(|| Ok(r.to_vm(meta, frame, repeat)?.1), 5)?;
        rows.push((name, ns, ns / floor_repeat));
    }
    // A whole new connection, its entry and the creation count included:
    // one run per frame, each from a source port not seen before.
    let mut sport = 1024u16;
    let ns = median(
        || {
            sport += 1;
            let frame = pkt::udp4(s, d, v4("10.9.0.1"), v4("10.9.0.2"), sport, 2000);
            let (got, ns) = r.to_vm(&sender, &frame, 1)?;
            anyhow::ensure!(got == XDP_PASS, "new connection: verdict {got}");
            Ok(ns)
        },
        singles,
    )?;
    rows.push((
        "to_vm: new connection, entry inserted",
        ns,
        ns / floor_single,
    ));
    Ok(Measured {
        floor_repeat,
        floor_single,
        rows,
    })
}

fn main() -> Result<()> {
    let out_dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../results").to_string()),
    );
    std::fs::create_dir_all(&out_dir)?;
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut md = String::new();
    writeln!(md, "# Benchmark results\n")?;
    writeln!(
        md,
        "Machine: {machine}, {cpus} CPUs, kernel {}.\n",
        kernel.trim()
    )?;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| {
        only.is_empty()
            || only
                .split(',')
                .any(|s| s == section || (s == "hosts" && section.starts_with("hosts-")))
    };
    let mut series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    if wanted("packet") {
        md += &timed("packet", || {
            let mut md = String::new();
            per_packet(&mut md, &mut series)?;
            Ok(md)
        })?;
    }
    let sections: [(&str, Section); 10] = [
        ("routing", || {
            let mut md = String::new();
            routing::section(&mut md)?;
            Ok(md)
        }),
        ("control", || {
            let mut md = String::new();
            control::section(&mut md)?;
            Ok(md)
        }),
        ("bpf", bpf_cost::run),
        ("forwarding", forwarding::run),
        ("taps", taps::run),
        ("failover", || {
            let mut md = String::new();
            failover(&mut md)?;
            Ok(md)
        }),
        ("hosts-forwarding", hosts::forwarding::run),
        ("hosts-etcd", hosts::etcd),
        ("hosts-failover", hosts::failover),
        ("scale", scale::run),
    ];
    for (name, section) in sections {
        if wanted(name) {
            md += &timed(name, section)?;
        }
    }

    std::fs::write(out_dir.join("bench.md"), &md)?;
    std::fs::write(out_dir.join("bench.svg"), svg(&series))?;
    print!("{md}");
    eprintln!("bench: wrote {}", out_dir.join("bench.md").display());
    Ok(())
}

/// A section after the per-packet one: its markdown.
type Section = fn() -> Result<String>;

/// Runs a section, saying on stderr how long it took; a section must
/// produce table rows of numbers (the smoke run's check that it still
/// measures something).
fn timed(name: &str, section: impl FnOnce() -> Result<String>) -> Result<String> {
    let t = std::time::Instant::now();
    let md = section().with_context(|| name.to_string())?;
    let rows = table_rows(&md);
    anyhow::ensure!(rows > 0, "{name}: no table rows in its output:\n{md}");
    anyhow::ensure!(
        !md.contains("NaN") && !md.contains(" inf "),
        "{name}: a measurement is not a number:\n{md}"
    );
    eprintln!(
        "bench: {name} took {:.0} s, {rows} rows",
        t.elapsed().as_secs_f64()
    );
    Ok(md)
}

/// Data rows of the markdown tables in `md` (not headers or separators)
/// holding at least one digit.
fn table_rows(md: &str) -> usize {
    let lines: Vec<&str> = md.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            l.starts_with('|')
                && !l.starts_with("|---")
                && !lines.get(i + 1).is_some_and(|n| n.starts_with("|---"))
                && l.chars().any(|c| c.is_ascii_digit())
        })
        .count()
}

/// Per-packet cost of each path in the base topology, then scaled one
/// dimension at a time; `series` gets the plot's lines.
fn per_packet(md: &mut String, series: &mut Vec<(String, Vec<(usize, f64)>)>) -> Result<()> {
    writeln!(
        md,
        "BPF_PROG_TEST_RUN of `from_vm` (and the routing program it tail-calls) with the \
         loaded maps; the redirect itself is not carried out. Paths that leave the frame \
         unchanged are timed as {REPEAT} repeated runs (median of 5); paths that rewrite it \
         (routing, ARP answers) one run at a time (median of {SINGLES}) against the floor \
         timed the same way. The floor is an empty XDP program.\n"
    )?;
    writeln!(
        md,
        "`to_vm` rows: the receiving side (the port's MAC view, security groups, connection \
         tracking) for a UDP packet from the source port, timed in `to_vm_trace`, the same \
         code built as a plain XDP program (BPF_PROG_TEST_RUN refuses device-map programs). \
         A new connection is timed as traced frames, which decide but write no conntrack \
         entry: the rule lookup without the insert. The established row finds the entry \
         the first run opened and updates it. The inserted row is a whole new connection \
         (rule lookup, entry insert, creation count): each run a new source port, timed one \
         run at a time against the floor timed the same way.\n"
    )?;
    eprintln!("bench: base topology (10 ports, 10 pairs, 10 rules)");
    let base = measure(&topology(10, 10, 10))?;
    writeln!(md, "## Paths\n")?;
    writeln!(md, "| path | ns per packet | ratio to the floor |")?;
    writeln!(md, "|---|---:|---:|")?;
    writeln!(
        md,
        "| floor, repeated runs | {:.0} | 1.0 |",
        base.floor_repeat
    )?;
    writeln!(
        md,
        "| floor, single runs | {:.0} | 1.0 |",
        base.floor_single
    )?;
    for (name, ns, ratio) in &base.rows {
        writeln!(md, "| {name} | {ns:.0} | {ratio:.1} |")?;
    }

    // Scaling: one dimension at a time.
    let dims: [(&str, Vec<Scale>); 3] = [
        (
            "ports",
            pick(
                vec![(10, 10, 10), (1000, 10, 10), (10_000, 10, 10)],
                vec![(10, 10, 10), (20, 10, 10)],
            ),
        ),
        (
            "allowed address pairs",
            pick(
                vec![(10, 10, 10), (10, 10_000, 10), (10, 100_000, 10)],
                vec![(10, 10, 10), (10, 20, 10)],
            ),
        ),
        (
            "security-group rules",
            pick(
                vec![(10, 10, 10), (10, 10, 1000), (10, 10, 10_000)],
                vec![(10, 10, 10), (10, 10, 20)],
            ),
        ),
    ];
    writeln!(
        md,
        "\n## Scaling (ns per packet; ratio largest / smallest)\n"
    )?;
    // A smoke run scales one dimension: the same code, a third of the time.
    for (dim, points) in dims.into_iter().take(pick(3, 1)) {
        let mut results: Vec<(usize, Measured)> = Vec::new();
        for &(ports, pairs, rules) in &points {
            let size = match dim {
                "ports" => ports,
                "allowed address pairs" => pairs,
                _ => rules,
            };
            eprintln!("bench: {dim} = {size}");
            let m = measure(&topology(ports, pairs, rules))
                .with_context(|| format!("{dim} = {size}"))?;
            results.push((size, m));
        }
        writeln!(md, "### {dim}\n")?;
        let sizes: Vec<String> = results.iter().map(|(s, _)| s.to_string()).collect();
        writeln!(md, "| path | {} | largest / smallest |", sizes.join(" | "))?;
        writeln!(md, "|---|{}---:|", "---:|".repeat(sizes.len()))?;
        for (i, (name, _, _)) in base.rows.iter().enumerate() {
            let vals: Vec<f64> = results.iter().map(|(_, m)| m.rows[i].1).collect();
            let cells: Vec<String> = vals.iter().map(|v| format!("{v:.0}")).collect();
            writeln!(
                md,
                "| {name} | {} | {:.2} |",
                cells.join(" | "),
                vals[vals.len() - 1] / vals[0]
            )?;
            series.push((
                format!("{name} ({dim})"),
                results.iter().map(|(s, m)| (*s, m.rows[i].2)).collect(),
            ));
        }
        writeln!(md)?;
    }

    Ok(())
}

/// VRRP failover with real keepalived (`lab::vrrp`), through the datapath
/// and through a plain Linux bridge, in the same run.
fn failover(md: &mut String) -> Result<()> {
    writeln!(md, "## VRRP failover\n")?;
    writeln!(
        md,
        "| keepalived | pings lost through the datapath | pings lost through a Linux bridge |"
    )?;
    writeln!(md, "|---|---:|---:|")?;
    // One variant in a smoke run: each is a keepalived takeover (seconds).
    for vmac in pick(vec![false, true], vec![false]) {
        let variant = if vmac { "use_vmac" } else { "no vmac" };
        eprintln!("bench: VRRP failover ({variant}), Linux bridge");
        let (lab, bridged) = vrrp::scenario(true, vmac)?;
        drop(lab);
        eprintln!("bench: VRRP failover ({variant}), datapath");
        let (lab, through_dp) = vrrp::scenario(false, vmac)?;
        drop(lab);
        writeln!(
            md,
            "| {variant} | {} of {} | {} of {} |",
            through_dp.lost(),
            through_dp.sent,
            bridged.lost(),
            bridged.sent
        )?;
    }
    writeln!(
        md,
        "\nTwo VMs run keepalived (advert_int 1 s, priorities 200 and 100) for a VIP they \
         hold as an allowed address pair; a third pings it every 0.1 s; after {} answered \
         pings, the master's link goes down. Both columns hold keepalived's own takeover time (three \
         missed adverts plus skew); the difference between them is what the switch adds \
         (the datapath learns the new master from its gratuitous ARP).\n",
        vrrp::FAIL_AFTER_REPLIES
    )?;
    Ok(())
}

/// Memory locked by this process's BPF maps, from /proc/self/fdinfo.
fn memlock_mib() -> String {
    let mut total: u64 = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") {
        for e in dir.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                if text.contains("map_type:") {
                    total += text
                        .lines()
                        .find_map(|l| l.strip_prefix("memlock:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    format!("{:.1} MiB", total as f64 / (1024.0 * 1024.0))
}

/// Cost (ratio to the floor) against scale, one line per path and
/// dimension, scale on a log axis.
fn svg(series: &[(String, Vec<(usize, f64)>)]) -> String {
    let (w, h, left, top, plot_w, plot_h) = (900.0, 560.0, 60.0, 20.0, 520.0, 480.0);
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let x_of = |s: usize| left + plot_w * ((s as f64).log10() / 5.0);
    let y_of = |y: f64| top + plot_h * (1.0 - y / max_y);
    // One colour per path, one dash per dimension (series come dimension
    // by dimension, the paths in the same order each time).
    let colours = [
        "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
        "#1f78b4",
    ];
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='11'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n\
         <line x1='{left}' y1='{top}' x2='{left}' y2='{}' stroke='black'/>\n\
         <text x='{left}' y='{}'>scale (log10: 1 .. 100000 ports / pairs / rules)</text>\n\
         <text x='4' y='{}'>x floor</text>\n",
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h,
        top + plot_h + 30.0,
        top + 10.0
    );
    for tick in [1.0, max_y / 2.0, max_y] {
        let _ = writeln!(s, "<text x='20' y='{:.0}'>{tick:.1}</text>", y_of(tick));
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let dash = match i / colours.len() {
            0 => "",
            1 => " stroke-dasharray='6 3'",
            _ => " stroke-dasharray='2 2'",
        };
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill='none' stroke='{colour}' stroke-width='2'{dash} points='{}'/>",
            pts.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x='{}' y='{}' fill='{colour}'>{name}</text>",
            left + plot_w + 10.0,
            top + 14.0 * i as f64 + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

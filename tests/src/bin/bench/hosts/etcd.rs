//! From an etcd write to the first packet it lets through, delivered on
//! another host.
//!
//! VM `a` on h1 keeps sending UDP to VM `b` on h2 (a frame every
//! [`INTERVAL`]) from an address that is not yet its own: h1's datapath
//! drops every frame. Then the port object of `a` is written into etcd with
//! that address as an allowed address pair, as the ML2 driver writes it
//! (one transaction conditional on the key's revision, from the underlay
//! namespace, where etcd runs). h1's agent watching etcd applies the
//! change, the next frame passes, crosses the tunnel and reaches `b`,
//! whose packet socket stamps it on arrival (kernel time). Measured per
//! change: the write's duration, when a watcher of that key in h1's
//! namespace (where the agent watches from) is notified, and when the
//! first frame from the address arrives at `b`. Then the pair is removed
//! again, and the next change uses a new address.
//!
//! The floor is etcd's own notification: no agent can act on a change
//! before it is told of it.

use std::{
    net::Ipv4Addr,
    sync::mpsc,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail, ensure};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use lab::{capture::Capture, cloud::Cloud, lab::WAIT, netns::Netns, topo};
use serde_json::{Value, json};

use super::sender::{MARKER, Sender, Target};
use crate::forwarding::{self, DPORT_MIN};

/// Changes measured.
const CHANGES: usize = 120;
/// How often `a` sends: the first packet is late by up to this much
/// (plus the sender's own delays).
const INTERVAL: Duration = Duration::from_micros(200);
/// Frames from the new address before the write must all be dropped: the
/// sender uses it this long before each write.
const BEFORE: Duration = Duration::from_millis(30);
/// After a pair is removed: the datapath's grace period after a switch is
/// 50 ms; changes are spaced past it.
const AFTER: Duration = Duration::from_millis(100);

const A_MAC: &str = "fa:16:3e:f3:00:01";
const B_MAC: &str = "fa:16:3e:f3:00:02";
const A_IP: &str = "10.33.0.11";
const B_IP: &str = "10.33.0.12";

/// One change's times, in seconds.
struct Timing {
    /// The write, from issuing it until etcd answered.
    write: f64,
    /// From issuing the write until the watcher on h1 was notified.
    watch: f64,
    /// From the write's answer until the first frame reached `b`.
    first_packet: f64,
}

pub fn run() -> Result<String> {
    eprintln!("bench: hosts-etcd, building two hosts");
    let cloud = hosts()?;
    let (a, b) = (cloud.hosts[0].lab.vm("a"), cloud.hosts[1].lab.vm("b"));
    let key = format!("{}/neutron/ports/{}", lab::cloud::PREFIX, a.port_id);
    let events = watch_from(&cloud.hosts[0].lab.hv, &cloud.etcd.url, &key)?;
    let capture = b.capture()?.timestamped()?;
    let target = Target {
        mac: B_MAC.into(),
        ip: B_IP.parse()?,
        dport: DPORT_MIN,
    };
    let sender = Sender::start(a, target, address(0), INTERVAL)?;
    let url = cloud.etcd.url.clone();
    eprintln!("bench: hosts-etcd, {CHANGES} changes");
    // The writer runs where `dataplane publish` does, in etcd's namespace.
    let (timings, interval) = cloud.underlay.run_inside(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let timings = rt.block_on(changes(&url, &key, &sender, &capture, &events))?;
        Ok((timings, sender.mean_interval()))
    })?;
    Ok(report(&timings, interval))
}

/// The `i`-th change's address (none of them is any port's).
fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 33, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// Every change, one after the other.
async fn changes(
    url: &str,
    key: &str,
    sender: &Sender,
    capture: &Capture,
    events: &mpsc::Receiver<(i64, SystemTime)>,
) -> Result<Vec<Timing>> {
    let mut client = Client::connect([url], None).await?;
    let got = client.get(key, None).await?;
    let kv = got.kvs().first().context("the port is not in etcd")?;
    let mut port: Value = serde_json::from_slice(kv.value())?;
    let mut rev = kv.mod_revision();
    let mut out = Vec::new();
    for i in 1..=CHANGES {
        let addr = address(i);
        sender.set_source(addr);
        tokio::time::sleep(BEFORE).await;
        let early = queued_from(capture, addr);
        ensure!(
            early == 0,
            "{early} frames from {addr} passed before the write"
        );
        port["allowed_address_pairs"] = json!([{ "ip_address": addr.to_string() }]);
        let start = SystemTime::now();
        rev = write(&mut client, key, rev, &port).await?;
        let answered = SystemTime::now();
        let arrived = first_from(capture, addr)?;
        let notified = notified(events, rev)?;
        out.push(Timing {
            write: secs(start, answered),
            watch: secs(start, notified),
            first_packet: secs(answered, arrived),
        });
        port["allowed_address_pairs"] = json!([]);
        rev = write(&mut client, key, rev, &port).await?;
        tokio::time::sleep(AFTER).await;
    }
    Ok(out)
}

/// `later - earlier` in seconds, negative if it came first.
fn secs(earlier: SystemTime, later: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Writes the port as the ML2 driver does: only if nobody changed it
/// since revision `rev`. Returns the new revision.
async fn write(client: &mut Client, key: &str, rev: i64, port: &Value) -> Result<i64> {
    let txn = Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
        .and_then([TxnOp::put(key, port.to_string(), None)]);
    let resp = client.txn(txn).await?;
    ensure!(resp.succeeded(), "{key} changed under the benchmark");
    Ok(resp.header().context("no header")?.revision())
}

/// Frames from `addr` among those received so far (read and discarded).
fn queued_from(capture: &Capture, addr: Ipv4Addr) -> usize {
    let mut n = 0;
    while let Some(f) = capture.next(Duration::from_millis(1)) {
        n += usize::from(is_from(&f, addr));
    }
    n
}

fn is_from(f: &[u8], addr: Ipv4Addr) -> bool {
    lab::capture::frame::ipv4(f).is_some_and(|(src, _, _)| src == addr.octets())
        && lab::capture::frame::contains(f, MARKER)
}

/// The kernel's receive time of the first frame from `addr`.
fn first_from(capture: &Capture, addr: Ipv4Addr) -> Result<SystemTime> {
    let deadline = std::time::Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match capture.next_stamped(left) {
            Some((f, at)) if is_from(&f, addr) => return Ok(at),
            Some(_) => continue,
            None => break,
        }
    }
    bail!("no frame from {addr} reached b within {WAIT:?}")
}

/// When the watcher saw revision `rev` (events of earlier revisions are
/// passed over).
fn notified(events: &mpsc::Receiver<(i64, SystemTime)>, rev: i64) -> Result<SystemTime> {
    loop {
        let (r, at) = events.recv_timeout(WAIT).context("no watch event")?;
        if r == rev {
            return Ok(at);
        }
    }
}

/// A watcher of `key` in `ns` (its own thread and connection); each
/// event's revision and arrival time go to the returned channel. It ends
/// when etcd goes away with the cloud.
fn watch_from(ns: &Netns, url: &str, key: &str) -> Result<mpsc::Receiver<(i64, SystemTime)>> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (url, key, path) = (url.to_string(), key.to_string(), ns.path());
    std::thread::spawn(move || {
        let run = || -> Result<()> {
            enter(&path)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut client = Client::connect([url], None).await?;
                let mut stream = client.watch(key, None).await?;
                // The first message says the watch is created.
                stream.message().await?;
                let _ = ready_tx.send(Ok(()));
                while let Some(resp) = stream.message().await? {
                    let at = SystemTime::now();
                    for e in resp.events() {
                        let rev = e.kv().map(|kv| kv.mod_revision()).unwrap_or(0);
                        if tx.send((rev, at)).is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            })
        };
        if let Err(e) = run() {
            let _ = ready_tx.send(Err(e));
        }
    });
    match ready_rx.recv_timeout(WAIT) {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(e.context("watching etcd")),
        Err(_) => bail!("the watch did not start within {WAIT:?}"),
    }
}

/// Moves the calling thread into the namespace at `path`.
fn enter(path: &str) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::File::open(path).with_context(|| path.to_string())?;
    // SAFETY: setns on a valid namespace fd, for this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// a on h1, b on h2, both open, b discarding what a sends.
fn hosts() -> Result<Cloud> {
    let mut cloud = Cloud::new(2)?;
    let mut ports = Vec::new();
    for (h, name, mac, ip) in [(0, "a", A_MAC, A_IP), (1, "b", B_MAC, B_IP)] {
        let host = &mut cloud.hosts[h];
        let i = host.lab.add_vm(name, mac)?;
        let vm = &host.lab.vms[i];
        vm.sh(&format!("ip addr add {ip}/24 dev eth0"))?;
        ports.push(topo::port_on(vm, &host.name, "net", &[("v4", ip)]));
    }
    let cfg = topo::config(
        vec![topo::vxlan_network("net", 3001)],
        vec![topo::subnet("v4", "net", "10.33.0.0/24", None)],
        ports,
    );
    cloud.publish(&cfg)?;
    cloud.start("h1", 1)?;
    cloud.start("h2", 1)?;
    for h in ["h1", "h2"] {
        cloud.wait_chassis(h, &["h1", "h2"], WAIT)?;
        cloud.wait_remote_ports(h, 1, WAIT)?;
    }
    let b = cloud.hosts[1].lab.vm("b");
    forwarding::sink(b)?;
    b.reaches(A_IP, WAIT)?;
    Ok(cloud)
}

/// The `q`-quantile (nearest rank) of `v`, in milliseconds.
fn quantile_ms(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1] * 1e3
}

fn report(t: &[Timing], interval: Duration) -> String {
    let col = |f: &dyn Fn(&Timing) -> f64| t.iter().map(f).collect::<Vec<f64>>();
    let (write, watch, first) = (
        col(&|x| x.write),
        col(&|x| x.watch),
        col(&|x| x.first_packet),
    );
    let from_start = col(&|x| x.write + x.first_packet);
    let after_watch = col(&|x| x.write + x.first_packet - x.watch);
    let row = |name: &str, v: &[f64]| {
        format!(
            "| {name} | {:.2} | {:.2} | {:.2} |\n",
            quantile_ms(v, 0.5),
            quantile_ms(v, 0.99),
            quantile_ms(v, 1.0)
        )
    };
    let mut md = String::from("## etcd write to the first packet on another host\n\n");
    md += &format!(
        "{} changes. VM a on h1 sends a UDP frame to VM b on h2 every {} µs (the sender's \
         mean interval, sleeps overrunning on this busy machine, was {} µs) from an address \
         h1's datapath refuses; the port object of a is then written into etcd with that \
         address as an allowed address pair, as the ML2 driver writes it (one transaction \
         conditional on the key's revision, issued from the underlay namespace where etcd \
         runs); the first frame from the address that reaches b is stamped by the kernel on \
         arrival (SO_TIMESTAMPNS on a packet socket on b's eth0). For {}ms before each write \
         the sender already uses the address, and no frame from it arrived. The pair is \
         removed after each change; each change uses a new address. Floor: a watcher of the \
         port's key in h1's namespace, connected as h1's agent is, notified by etcd; no \
         agent can act before that.\n\n",
        t.len(),
        INTERVAL.as_micros(),
        interval.as_micros(),
        BEFORE.as_millis(),
    );
    md += "| milliseconds | p50 | p99 | max |\n|---|---:|---:|---:|\n";
    md += &row("the write (issued until etcd answered)", &write);
    md += &row("**first packet at b, from the write's answer**", &first);
    md += &row("first packet at b, from issuing the write", &from_start);
    md += &row(
        "floor: watcher on h1 notified, from issuing the write",
        &watch,
    );
    md += &row(
        "first packet at b, from the watcher's notification (agent, datapath, tunnel)",
        &after_watch,
    );
    md += &format!(
        "\nRatio of first packet to floor (both from issuing the write): p50 {:.1}, p99 {:.1}.\n\n",
        quantile_ms(&from_start, 0.5) / quantile_ms(&watch, 0.5),
        quantile_ms(&from_start, 0.99) / quantile_ms(&watch, 0.99),
    );
    md
}

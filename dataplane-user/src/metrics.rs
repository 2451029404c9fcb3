//! `dataplane run --metrics ADDR`: the counters of the pinned maps in the
//! Prometheus text format, at `http://ADDR/metrics`. Each scrape reads the
//! maps afresh (what `show` reads), so a restarted agent serves counters
//! that continue where they were.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use common::DropReason;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tracing::{info, warn};

use crate::{agent_status::AgentRecord, show};

/// (metric name, help, how to read it from a port's counters).
type Counter = (&'static str, &'static str, fn(&show::StatsView) -> u64);

/// Prometheus label values escape backslash, quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the agent knows of itself and its configuration source.
fn agent_lines(a: &AgentRecord) -> String {
    let mut out = String::new();
    let s = &a.source;
    let mut gauge = |name: &str, help: &str, labels: String, value: String| {
        let _ = writeln!(out, "# HELP dataplane_{name} {help}");
        let _ = writeln!(out, "# TYPE dataplane_{name} gauge");
        let _ = writeln!(out, "dataplane_{name}{labels} {value}");
    };
    gauge(
        "agent_start_time_seconds",
        "When the agent started, in seconds since the Unix epoch.",
        String::new(),
        format!("{:.3}", a.started),
    );
    let refused = a.refused_now().is_some();
    gauge(
        "config_last_attempt_refused",
        "Whether the configuration the source holds now was refused (1): the one in force is older.",
        String::new(),
        u8::from(refused).to_string(),
    );
    let last_error = a.last_error.as_ref().map(|e| e.at).unwrap_or_default();
    gauge(
        "config_last_error_time_seconds",
        "When a configuration was last refused (0: never), in seconds since the Unix epoch.",
        String::new(),
        format!("{last_error:.3}"),
    );
    gauge(
        "ports_pending",
        "Ports waiting for their tap (nothing reaches them, nothing of theirs passes).",
        String::new(),
        a.pending.len().to_string(),
    );
    if let Some(connected) = s.connected {
        gauge(
            "source_connected",
            "Whether the agent reaches its database (1) or not (0).",
            format!("{{source=\"{}\"}}", label(&s.describe)),
            u8::from(connected).to_string(),
        );
    }
    if let Some(revision) = s.revision {
        gauge(
            "source_revision",
            "The database revision last delivered to the agent.",
            String::new(),
            revision.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP dataplane_source_resyncs_total Full reads of the database (start, reconnections, compactions)."
        );
        let _ = writeln!(out, "# TYPE dataplane_source_resyncs_total counter");
        let _ = writeln!(out, "dataplane_source_resyncs_total {}", s.resyncs);
    }
    out
}

/// The exposition text for the instance in `dir`.
pub fn render(dir: &std::path::Path) -> Result<String> {
    let mut ports = show::ports(dir)?;
    show::with_interfaces(&mut ports);
    let mut out = String::new();
    port_counters(&mut out, &ports)?;
    drops(&mut out, &ports)?;
    interfaces(&mut out, &ports)?;
    security_groups(&mut out, dir)?;
    conntrack(&mut out, dir)?;
    nat(&mut out, dir)?;
    writeln!(
        out,
        "# HELP dataplane_config_generation Configurations applied."
    )?;
    writeln!(out, "# TYPE dataplane_config_generation gauge")?;
    writeln!(out, "dataplane_config_generation {}", ports.generation)?;
    Ok(out)
}

fn port_counters(out: &mut String, ports: &show::PortsView) -> Result<()> {
    let counters: [Counter; 16] = [
        ("rx_packets", "Frames the VM sent", |s| s.rx_packets),
        ("rx_bytes", "Bytes the VM sent", |s| s.rx_bytes),
        ("tx_packets", "Frames delivered to the VM", |s| s.tx_packets),
        ("tx_bytes", "Bytes delivered to the VM", |s| s.tx_bytes),
        ("forwarded", "Frames redirected to one port", |s| {
            s.forwarded
        }),
        ("flooded", "Frames flooded to the network", |s| s.flooded),
        (
            "group_flooded",
            "Frames sent to every member of a shared address",
            |s| s.group_flooded,
        ),
        ("routed", "Packets routed to another subnet", |s| s.routed),
        (
            "arp_replies",
            "ARP requests answered by the datapath",
            |s| s.arp_replies,
        ),
        (
            "nd_replies",
            "Neighbour solicitations answered by the datapath",
            |s| s.nd_replies,
        ),
        (
            "echo_replies",
            "Echo requests to a router address answered by the datapath",
            |s| s.echo_replies,
        ),
        (
            "icmp_errors",
            "ICMP errors the router sent to the port",
            |s| s.icmp_errors,
        ),
        (
            "icmp_limited",
            "ICMP errors not sent to the port: over its rate limit",
            |s| s.icmp_limited,
        ),
        (
            "ra_replies",
            "Router solicitations answered by the datapath",
            |s| s.ra_replies,
        ),
        (
            "claims",
            "Times the port became a shared address's active member",
            |s| s.claims,
        ),
        (
            "fast_path",
            "Frames forwarded through the flow cache (also counted as forwarded)",
            |s| s.fast_path,
        ),
    ];
    for (name, help, get) in counters {
        writeln!(out, "# HELP dataplane_port_{name}_total {help}.")?;
        writeln!(out, "# TYPE dataplane_port_{name}_total counter")?;
        for p in &ports.ports {
            writeln!(
                out,
                "dataplane_port_{name}_total{{port=\"{}\",tap=\"{}\"}} {}",
                label(&p.id),
                label(&p.tap),
                get(&p.stats)
            )?;
        }
    }
    Ok(())
}

fn drops(out: &mut String, ports: &show::PortsView) -> Result<()> {
    writeln!(
        out,
        "# HELP dataplane_port_drops_total Frames dropped, by port and reason."
    )?;
    writeln!(out, "# TYPE dataplane_port_drops_total counter")?;
    for p in &ports.ports {
        // Every reason, zeros included: a series that appears only once it
        // is non-zero breaks rate() on its first increment.
        for reason in DropReason::ALL {
            let n = p.stats.drops.get(reason.name()).copied().unwrap_or(0);
            writeln!(
                out,
                "dataplane_port_drops_total{{port=\"{}\",reason=\"{}\"}} {n}",
                label(&p.id),
                reason.name()
            )?;
        }
    }
    for (reason, n) in &ports.unattributed.drops {
        writeln!(
            out,
            "dataplane_port_drops_total{{port=\"\",reason=\"{reason}\"}} {n}"
        )?;
    }
    Ok(())
}

/// What the kernel does with each port's frames after the datapath:
/// losses no datapath counter sees (see `link_health`).
fn interfaces(out: &mut String, ports: &show::PortsView) -> Result<()> {
    writeln!(
        out,
        "# HELP dataplane_port_interface_problem Whether the port's interface loses frames the datapath forwards (1), by problem: no_napi (every frame sent to it), tx_checksum_offload (its TCP and UDP arrive with bad checksums)."
    )?;
    writeln!(out, "# TYPE dataplane_port_interface_problem gauge")?;
    for p in &ports.ports {
        let Some(i) = &p.interface else { continue };
        for problem in ["no_napi", "tx_checksum_offload"] {
            let on = i.problems.iter().any(|x| x.code == problem);
            writeln!(
                out,
                "dataplane_port_interface_problem{{port=\"{}\",tap=\"{}\",problem=\"{problem}\"}} {}",
                label(&p.id),
                label(&p.tap),
                u8::from(on)
            )?;
        }
    }
    for (name, help, get) in [
        (
            "rx_dropped",
            "Frames of the port's tap the kernel dropped after the datapath let them through (refused redirects and answers among them)",
            (|i| i.rx_dropped) as fn(&crate::link_health::LinkHealth) -> u64,
        ),
        (
            "tx_dropped",
            "Frames to the port's tap the kernel dropped",
            |i| i.tx_dropped,
        ),
    ] {
        writeln!(out, "# HELP dataplane_port_interface_{name}_total {help}.")?;
        writeln!(out, "# TYPE dataplane_port_interface_{name}_total counter")?;
        for p in &ports.ports {
            if let Some(i) = &p.interface {
                writeln!(
                    out,
                    "dataplane_port_interface_{name}_total{{port=\"{}\",tap=\"{}\"}} {}",
                    label(&p.id),
                    label(&p.tap),
                    get(i)
                )?;
            }
        }
    }
    Ok(())
}

fn security_groups(out: &mut String, dir: &std::path::Path) -> Result<()> {
    writeln!(
        out,
        "# HELP dataplane_security_group_connections_total Connections a security group's rules allowed."
    )?;
    writeln!(
        out,
        "# TYPE dataplane_security_group_connections_total counter"
    )?;
    for g in show::security_groups(dir)? {
        for (direction, n) in [("ingress", g.ingress_allowed), ("egress", g.egress_allowed)] {
            writeln!(
                out,
                "dataplane_security_group_connections_total{{group=\"{}\",direction=\"{direction}\"}} {n}",
                label(&g.id)
            )?;
        }
    }
    Ok(())
}

/// Reads the whole table: a scrape costs two syscalls per entry.
fn conntrack(out: &mut String, dir: &std::path::Path) -> Result<()> {
    let ct = show::conntrack_table(dir)?;
    for (name, kind, help, value) in [
        (
            "capacity",
            "gauge",
            "Entries the connection table holds",
            u64::from(ct.capacity),
        ),
        (
            "entries",
            "gauge",
            "Entries in the connection table, dead ones included",
            ct.entries,
        ),
        ("live", "gauge", "Connections not expired", ct.live),
        (
            "created_total",
            "counter",
            "Connections tracked",
            ct.created,
        ),
        (
            "removed_total",
            "counter",
            "Connections removed by rule changes or port removal",
            ct.removed,
        ),
        (
            "evicted_total",
            "counter",
            "Connections evicted because the table was full",
            ct.evicted,
        ),
    ] {
        writeln!(out, "# HELP dataplane_conntrack_{name} {help}.")?;
        writeln!(out, "# TYPE dataplane_conntrack_{name} {kind}")?;
        writeln!(out, "dataplane_conntrack_{name} {value}")?;
    }
    Ok(())
}

/// The external gateways' counters (`show nat`) and SNAT connections.
fn nat(out: &mut String, dir: &std::path::Path) -> Result<()> {
    let stats = crate::nat_view::stats(dir)?;
    writeln!(
        out,
        "# HELP dataplane_nat_packets_total What the external gateways did, by event (show nat)."
    )?;
    writeln!(out, "# TYPE dataplane_nat_packets_total counter")?;
    for (event, value) in stats.named() {
        writeln!(
            out,
            "dataplane_nat_packets_total{{event=\"{event}\"}} {value}"
        )?;
    }
    writeln!(
        out,
        "# HELP dataplane_nat_connections SNAT connections in the table."
    )?;
    writeln!(out, "# TYPE dataplane_nat_connections gauge")?;
    writeln!(
        out,
        "dataplane_nat_connections {}",
        crate::nat_view::connections(dir)?
    )?;
    Ok(())
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, dir: PathBuf, status: Arc<Mutex<AgentRecord>>) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "serving metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let dir = dir.clone();
            let agent = status.lock().map(|s| s.clone()).unwrap_or_default();
            tokio::spawn(async move {
                // Read the request head (up to an empty line, 4 KiB, or
                // 2 s); only its request line matters.
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout_at(deadline, conn.read(&mut buf[n..])).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(m)) => n += m,
                    }
                }
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" {
                    let text = move || render(&dir).map(|m| m + &agent_lines(&agent));
                    match tokio::task::spawn_blocking(text).await {
                        Ok(Ok(body)) => ("200 OK", body),
                        Ok(Err(e)) => ("500 Internal Server Error", format!("{e:#}\n")),
                        Err(e) => ("500 Internal Server Error", format!("{e}\n")),
                    }
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = conn.write_all(response.as_bytes()).await {
                    warn!(error = %e, "metrics client");
                }
            });
        }
    });
    Ok(())
}

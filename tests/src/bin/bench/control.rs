//! The control plane: how long a change takes from the moment the agent
//! has it until it is live in the maps (validation, compilation, the map
//! writes, the slot switch), at 1,000, 10,000 and 100,000 ports.
//!
//! One-port changes come as a database delivers them (the changed object
//! alone, `Update::Changes`); the file source's path (the whole file read,
//! parsed and compared) is timed too. The ports the changes touch have
//! real interfaces (veths in a namespace); the other ports are compiled in
//! full but without a tap (100,000 veths would measure the kernel's
//! interface tables, not this code): they lack only their own `PORTS` and
//! device-map entries.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use dataplane_agent::{controller::Controller, datapath::Options};
use dataplane_config::{Change, Document, Format, Kind, Update};
use lab::netns::Netns;
use serde_json::{Value, json};

use crate::{SRC, median_of, memlock_mib, topology};

/// Changes are spaced past the datapath's grace period (50 ms after a
/// switch), which a burst of changes would wait for.
const SPACING: Duration = Duration::from_millis(60);
/// Timed runs of each change (median).
const RUNS: usize = 15;

struct Bench {
    ns: Netns,
    ctl: Option<Controller>,
    taps: BTreeMap<String, u32>,
}

impl Bench {
    /// Applies `config` from nothing; `tapped` ports get interfaces.
    fn new(config: &Value, tapped: &[&str], max_ports: u32) -> Result<(Bench, Duration)> {
        let ns = Netns::new("dpc")?;
        let mut taps = BTreeMap::new();
        for (i, id) in tapped.iter().enumerate() {
            let name = format!("tap{}", &id[..id.len().min(11)]);
            ns.ip(&[
                "link",
                "add",
                &name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("e{i}"),
            ])?;
            ns.ip(&["link", "set", &name, "up"])?;
            taps.insert(name.clone(), ns.ifindex(&name)?);
        }
        let doc = Document::parse(&config.to_string(), Format::Json)?;
        let resolve = taps.clone();
        let (ctl, first) = ns.run_inside(move || {
            let mut ctl = Controller::open(
                Options {
                    instance: lab::netns::unique("dpc"),
                    max_ports,
                    max_connections: 1024,
                    attach: false,
                },
                None,
            )?;
            let started = std::time::Instant::now();
            ctl.apply(&Update::Snapshot(doc), &|t| resolve.get(t).copied())?;
            Ok((ctl, started.elapsed()))
        })?;
        Ok((
            Bench {
                ns,
                ctl: Some(ctl),
                taps,
            },
            first,
        ))
    }

    /// Applies `update` where the interfaces are; returns how long it took.
    fn apply(&mut self, update: Update) -> Result<Duration> {
        std::thread::sleep(SPACING);
        let mut ctl = self.ctl.take().context("controller")?;
        let taps = self.taps.clone();
        let (ctl, elapsed) = self.ns.run_inside(move || {
            let started = std::time::Instant::now();
            ctl.apply(&update, &|t| taps.get(t).copied())?;
            let elapsed = started.elapsed();
            ctl.housekeeping()?;
            Ok((ctl, elapsed))
        })?;
        self.ctl = Some(ctl);
        Ok(elapsed)
    }

    /// Median time of `RUNS` rounds of `first` then `second` (a change and
    /// its undoing, both timed).
    fn pair(&mut self, first: &Update, second: &Update) -> Result<f64> {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(self.apply(first.clone())?.as_secs_f64());
            times.push(self.apply(second.clone())?.as_secs_f64());
        }
        Ok(median_of(times) * 1e3)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            let _ = ctl.shutdown(true);
        }
    }
}

fn port_change(id: &str, value: Option<Value>) -> Update {
    Update::Changes(vec![Change {
        kind: Kind::Port,
        id: id.to_string(),
        value,
    }])
}

/// The same port, edited.
fn edited(port: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = port.clone();
    edit(&mut p);
    p
}

/// Rows of one-port changes at each size.
pub fn section(md: &mut String) -> Result<()> {
    writeln!(md, "## Control plane\n")?;
    writeln!(
        md,
        "| configuration | first apply | add a port | remove it | a pair | its groups | its MAC \
         | whole file, one port changed | map memory |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for ports in [1000usize, 10_000, 100_000] {
        eprintln!("bench: control plane, {ports} ports");
        let row = row(ports)?;
        writeln!(md, "{row}")?;
    }
    writeln!(
        md,
        "\nMilliseconds from the change reaching the agent to it being live (validated, \
         compiled, written to the inactive slot, switched), median of {RUNS} rounds of a change \
         and its undoing, each timed. One-port changes come as a database delivers them (the \
         object alone); \"whole file\" is the file source's path, which reads, parses and \
         compares the whole file before the same work. Changes are spaced {} ms apart, past the \
         datapath's grace period after a switch. The other ports have no tap here; they are \
         compiled in full. Map memory: `memlock` of this process's BPF maps, sized for the ports \
         (hash and LPM maps allocate on use).",
        SPACING.as_millis()
    )?;
    writeln!(md)?;
    Ok(())
}

fn row(ports: usize) -> Result<String> {
    let config = topology(ports, 10, 10);
    let new_id = "bench-new-port";
    let (mut b, first) = Bench::new(&config, &[SRC, "bench-dst", new_id], ports as u32 + 64)?;
    let src = config["ports"][0].clone();
    let new = json!({
        "id": new_id, "network_id": "net", "mac_address": "fa:16:3e:b0:0a:0a",
        "fixed_ips": [{ "subnet_id": "s", "ip_address": "10.9.10.10" }],
        "allowed_address_pairs": [{ "ip_address": "10.9.0.100", "mac_address": crate::VMAC }],
        "security_groups": ["open"],
    });
    let mut add_remove = Vec::new();
    for _ in 0..RUNS {
        add_remove.push(
            b.apply(port_change(new_id, Some(new.clone())))?
                .as_secs_f64()
                * 1e3,
        );
        add_remove.push(b.apply(port_change(new_id, None))?.as_secs_f64() * 1e3);
    }
    let adds: Vec<f64> = add_remove.iter().step_by(2).copied().collect();
    let removes: Vec<f64> = add_remove.iter().skip(1).step_by(2).copied().collect();
    let pair = edited(&src, |p| {
        p["allowed_address_pairs"][0] = json!({ "ip_address": "10.250.0.1" })
    });
    let groups = edited(&src, |p| p["security_groups"] = json!(["open", "dst"]));
    let mac = edited(&src, |p| p["mac_address"] = json!("fa:16:3e:b0:0b:0b"));
    let back = port_change(SRC, Some(src.clone()));
    let t_pair = b.pair(&port_change(SRC, Some(pair)), &back)?;
    let t_groups = b.pair(&port_change(SRC, Some(groups)), &back)?;
    let t_mac = b.pair(&port_change(SRC, Some(mac)), &back)?;
    let file = |c: &Value| -> Result<Update> {
        Ok(Update::Snapshot(Document::parse(
            &c.to_string(),
            Format::Json,
        )?))
    };
    let mut changed = config.clone();
    changed["ports"][0]["allowed_address_pairs"][0] = json!({ "ip_address": "10.250.0.9" });
    let mut t_file = Vec::new();
    for _ in 0..5 {
        // Parsing is part of the file source's cost: timed with it.
        let started = std::time::Instant::now();
        let update = file(&changed)?;
        let parse = started.elapsed();
        t_file.push((b.apply(update)? + parse).as_secs_f64() * 1e3);
        let update = file(&config)?;
        b.apply(update)?;
    }
    Ok(format!(
        "| {ports} ports, 10 rules | {:.0} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms \
         | {:.0} ms | {} |",
        first.as_secs_f64() * 1e3,
        median_of(adds),
        median_of(removes),
        t_pair,
        t_groups,
        t_mac,
        median_of(t_file),
        memlock_mib(),
    ))
}

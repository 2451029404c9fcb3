//! The one-shot commands of the CLI (everything but `run`), as library
//! functions: `main.rs` only parses the command line.

use std::path::Path;

use anyhow::{Result, bail};
use dataplane_config::{CompileError, ConfigErrors, Document, Store, Topology};

use crate::{
    control::{self, Request},
    datapath, explain,
    facts::Facts,
    interfaces, lifecycle, show, trace,
};

/// Whether `e` is a configuration refused (it does not validate, or does
/// not fit the datapath's limits): the CLI exits with status 2 for those.
pub fn is_config_error(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<ConfigErrors>() || cause.is::<CompileError>() || cause.is::<Refused>()
    })
}

/// The running agent refused a configuration (`invalid` on the control
/// socket).
#[derive(Debug, thiserror::Error)]
#[error("the agent refused {path}: {reason}")]
pub struct Refused {
    pub path: String,
    pub reason: String,
}

/// What `check` found: the configuration, and the ports whose tap does
/// not exist here (they would wait for it: not an error).
pub struct Checked {
    pub topology: Topology,
    /// "PORT: interface TAP does not exist", one per port.
    pub missing_taps: Vec<String>,
}

/// Validates a configuration file; with `interfaces`, also lists the
/// ports whose tap does not exist on this host. What the file holds that
/// the datapath leaves out is logged.
pub fn check(path: &Path, interfaces: bool) -> Result<Checked> {
    let document = Document::read(path)?;
    crate::source::file::log_skipped(&document);
    let store = dataplane_config::validate(&document)?;
    let missing_taps = if interfaces {
        missing_taps(&store)
    } else {
        Vec::new()
    };
    Ok(Checked {
        topology: Topology::of(&store),
        missing_taps,
    })
}

/// The VM ports whose tap does not exist on this host.
pub fn missing_taps(store: &Store) -> Vec<String> {
    store
        .ports()
        .values()
        .filter(|p| p.spec.router.is_none() && interfaces::ifindex(&p.spec.tap).is_none())
        .map(|p| format!("{}: interface {} does not exist", p.label(), p.spec.tap))
        .collect()
}

/// `dataplane apply FILE`: validates FILE here (same errors as `check`),
/// then has the running agent apply it and watch it from then on (a
/// port whose tap does not exist waits for it). Returns the generation it
/// runs as.
pub fn apply(instance: &str, file: &Path) -> Result<u64> {
    check(file, false)?;
    let path = std::fs::canonicalize(file)?;
    let reply = control::request(
        instance,
        &Request::Apply(path.clone()),
        std::time::Duration::from_secs(600),
    )?;
    match reply.split_once(' ') {
        Some(("ok", generation)) => Ok(generation.trim().parse()?),
        Some(("invalid", reason)) => Err(Refused {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
        .into()),
        _ => bail!("the agent could not apply {}: {reply}", path.display()),
    }
}

/// `dataplane stop`: the running agent removes the datapath and exits, or,
/// without one, the pinned state is removed (see `lifecycle`).
pub fn stop(instance: &str) -> Result<lifecycle::Stopped> {
    lifecycle::stop(instance)
}

/// Runs frames through the instance's programs: the frames of a pcap file,
/// or one built from a description.
pub fn trace(
    instance: &str,
    port: &str,
    description: trace::Description,
    pcap: Option<&Path>,
) -> Result<Vec<trace::Trace>> {
    let dir = datapath::instance_dir(instance);
    let probe = trace::Probe::open(&dir)?;
    let ports = show::named_ports(&dir)?;
    // An uplink's name: a frame from the external network.
    let uplink = trace::uplink_source(&dir, ports.active_slot, port)?;
    let source = match &uplink {
        Some(u) => u,
        None => ports.find(port)?,
    };
    let facts = Facts::read(instance);
    let mut description = description;
    let mut gateway = None;
    if let (Some(u), None, None, Some(dst)) =
        (&uplink, &pcap, &description.dst_mac, description.dst)
    {
        let arp = description.proto.to_ascii_lowercase().starts_with("arp");
        if !arp {
            let slot = ports.active_slot;
            description.dst_mac = Some(trace::external_mac(&dir, slot, u.network, dst)?);
        }
    }
    // A VM sends a packet for another subnet to its gateway.
    if let (None, None, None, None, Some(dst), Some(facts)) = (
        &uplink,
        &pcap,
        &description.via,
        &description.dst_mac,
        description.dst,
        &facts,
    ) {
        if !description.proto.to_ascii_lowercase().starts_with("arp") {
            if let Some((via, why)) = explain::gateway(facts, source, dst)? {
                description.via = Some(via);
                gateway = Some(why);
            }
        }
    }
    let frames = match pcap {
        Some(path) => trace::read_pcap(path)?,
        None => vec![probe.build(&ports, source, &description)?],
    };
    let explainer = explain::Explainer::new(&dir, &ports, facts.as_ref())?;
    let mut inspector = crate::link_health::Inspector::default();
    frames
        .iter()
        .map(|frame| {
            let mut t = probe.run(&ports, source, frame)?;
            t.gateway = gateway.clone();
            if uplink.is_none() {
                trace::explain(&mut t, &explainer, &ports, source)?;
            }
            trace::interfaces(&mut t, &ports, &mut inspector);
            Ok(t)
        })
        .collect()
}

/// Prints a view as pretty JSON or as the view's text.
pub fn print_view<V: ?Sized + serde::Serialize>(
    view: &V,
    json: bool,
    render: impl FnOnce(&V) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        print!("{}", render(view));
    }
    Ok(())
}

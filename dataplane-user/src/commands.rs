//! The one-shot commands of the CLI (everything but `run`), as library
//! functions: `main.rs` only parses the command line.

use std::path::Path;

use anyhow::{Result, bail};
use dataplane_config::{ConfigError, ConfigErrors, Document, Store, Topology};

use crate::{control, datapath, interfaces, show, trace};

/// Validates a configuration file; with `interfaces`, its taps must exist.
/// What the file holds that the datapath leaves out is logged.
pub fn check(path: &Path, interfaces: bool) -> Result<Topology> {
    let document = Document::read(path)?;
    crate::source::file::log_skipped(&document);
    let store = dataplane_config::validate(&document)?;
    if interfaces {
        taps_exist(&store)?;
    }
    Ok(Topology::of(&store))
}

/// Every VM port's tap exists on this host.
pub fn taps_exist(store: &Store) -> Result<(), ConfigErrors> {
    let errors: Vec<ConfigError> = store
        .ports()
        .values()
        .filter(|p| p.spec.router.is_none() && interfaces::ifindex(&p.spec.tap).is_none())
        .map(|p| ConfigError {
            object: p.label(),
            field: "tap_name".into(),
            message: format!("interface {} does not exist", p.spec.tap),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `dataplane apply FILE`: validates FILE here (same errors as `check`),
/// then has the running agent apply it and watch it from then on.
/// Returns the generation it runs as.
pub fn apply(instance: &str, file: &Path) -> Result<u64> {
    check(file, true)?;
    let path = std::fs::canonicalize(file)?;
    let reply = control::request(instance, &path)?;
    match reply.split_once(' ') {
        Some(("ok", generation)) => Ok(generation.trim().parse()?),
        _ => bail!("the agent refused {}: {reply}", path.display()),
    }
}

/// Removes an instance's pinned state.
pub fn stop(instance: &str) -> Result<std::path::PathBuf> {
    let dir = datapath::instance_dir(instance);
    datapath::pins::remove(&dir)?;
    Ok(dir)
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
    let ports = show::ports(&dir)?;
    let source = trace::find_port(&ports, port)?;
    let frames = match pcap {
        Some(path) => trace::read_pcap(path)?,
        None => vec![probe.build(&ports, source, &description)?],
    };
    frames
        .iter()
        .map(|frame| probe.run(&ports, source, frame))
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

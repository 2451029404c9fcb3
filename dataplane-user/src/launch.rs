//! `dataplane run` after its command line is parsed: the agent on a
//! configuration file, or on etcd as one host of many, each on a runtime of
//! its own.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::{Result, bail};

use crate::{
    agent::{self, RunOptions},
    controller::HostOptions,
    source::{EtcdSource, FileSource, etcd::EtcdOptions},
};

/// Where the agent's configuration comes from.
pub enum Origin {
    /// A file, watched.
    File(PathBuf),
    /// etcd, as one host of many.
    Etcd(EtcdRun),
}

/// `dataplane run --etcd ...`'s options as given (defaults not yet
/// filled in).
pub struct EtcdRun {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// None: the host name.
    pub chassis: Option<String>,
    pub underlay_dev: Option<String>,
    pub underlay_ip: Option<Ipv4Addr>,
    pub lease_ttl: i64,
}

/// The runtime the agent and `publish` run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs the agent until it is told to stop.
pub fn run(mut opts: RunOptions, origin: Origin) -> Result<()> {
    let etcd = match origin {
        Origin::File(config) => {
            return runtime()?
                .block_on(async { agent::run(opts, FileSource::new(&config)?).await });
        }
        Origin::Etcd(etcd) => etcd,
    };
    let chassis = match etcd.chassis {
        Some(c) => c,
        None => hostname()?,
    };
    let (Some(underlay_dev), Some(underlay_ip)) = (etcd.underlay_dev, etcd.underlay_ip) else {
        bail!("--etcd needs --underlay-dev and --underlay-ip (the tunnels' interface and address)");
    };
    opts.host = Some(HostOptions {
        chassis: chassis.clone(),
        underlay_dev,
        underlay_ip,
    });
    let source = EtcdSource::new(EtcdOptions {
        endpoints: etcd.endpoints,
        prefix: etcd.prefix.trim_end_matches('/').to_string(),
        chassis,
        underlay_ip,
        lease_ttl: etcd.lease_ttl,
    });
    runtime()?.block_on(agent::run(opts, source))
}

/// This host's name (the default chassis name, as Neutron's host is).
fn hostname() -> Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        bail!("cannot read the host name: give --chassis");
    }
    Ok(crate::datapath::pins::c_str(&buf))
}

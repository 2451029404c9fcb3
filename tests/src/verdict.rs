//! Fast verdicts: the real `from_vm` program with real maps, driven by
//! BPF_PROG_TEST_RUN on crafted frames, without interfaces or namespaces.
//!
//! BPF_PROG_TEST_RUN presents every frame as received on the loopback
//! interface (ifindex 1), so the port under test is bound to ifindex 1. The
//! other ports need real interfaces (device maps refuse unknown ifindexes):
//! they get veth interfaces in a namespace of their own, where the
//! configuration is applied.

use anyhow::{Context, Result};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use dataplane::{
    config::{self, Format, Topology},
    datapath::{Datapath, Options, PROG_FROM_VM},
    show,
};
use serde_json::Value;

use crate::netns::Netns;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

pub struct Verdicts {
    dp: Option<Datapath>,
    pub topology: Topology,
    /// Holds the dummy interfaces of the other ports; dropped after `dp`.
    _ns: Netns,
}

impl Verdicts {
    /// Loads the datapath with `config`; frames appear to come from the
    /// port with id `source`.
    pub fn new(config: &Value, source: &str) -> Result<Verdicts> {
        let raw = config::parse(&config.to_string(), Format::Json)?;
        let topology = config::validate(&raw)?;
        let ns = Netns::new("dpx")?;
        let mut ifindexes = Vec::new();
        for (i, p) in topology.ports.iter().enumerate() {
            if p.id == source {
                ifindexes.push(1);
            } else {
                let name = format!("d{i}");
                // This kernel has no dummy interfaces; a veth end will do.
                let peer = format!("e{i}");
                ns.ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
                ns.ip(&["link", "set", &name, "up"])?;
                ifindexes.push(ns.ifindex(&name)?);
            }
        }
        anyhow::ensure!(ifindexes.contains(&1), "no port {source}");
        let t = topology.clone();
        let dp = ns.run_inside(move || {
            let mut dp = Datapath::open(Options {
                instance: crate::netns::unique("dpv"),
                max_ports: 64,
                attach: false,
            })?;
            dp.apply(&t, &ifindexes)?;
            Ok(dp)
        })?;
        Ok(Verdicts {
            dp: Some(dp),
            topology,
            _ns: ns,
        })
    }

    fn dp(&mut self) -> &mut Datapath {
        self.dp.as_mut().expect("datapath")
    }

    /// Runs `frame` through `from_vm`; returns the XDP action.
    pub fn run(&mut self, frame: &[u8]) -> Result<u32> {
        let prog: &Xdp = self
            .dp()
            .ebpf_mut()
            .program(PROG_FROM_VM)
            .context("from_vm")?
            .try_into()?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        Ok(r.return_value)
    }

    /// The `show ports` view of a port, counters included.
    pub fn port(&mut self, id: &str) -> Result<show::PortView> {
        let dir = self.dp().dir().clone();
        show::ports(&dir)?
            .ports
            .into_iter()
            .find(|p| p.id == id)
            .with_context(|| format!("no port {id}"))
    }

    pub fn drops(&mut self, id: &str, reason: &str) -> u64 {
        self.port(id)
            .ok()
            .and_then(|p| p.stats.drops.get(reason).copied())
            .unwrap_or(0)
    }
}

impl Drop for Verdicts {
    fn drop(&mut self) {
        if let Some(dp) = self.dp.take() {
            let _ = dp.shutdown(true);
        }
    }
}

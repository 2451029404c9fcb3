//! Fast verdicts: the real `from_vm` program with real maps, driven by
//! BPF_PROG_TEST_RUN on crafted frames, without interfaces or namespaces.
//!
//! BPF_PROG_TEST_RUN presents every frame as received on the loopback
//! interface (ifindex 1), so the port under test is bound to ifindex 1. The
//! other ports need real interfaces (device maps refuse unknown ifindexes):
//! they get veth interfaces in a namespace of their own, where the
//! configuration is applied.

use anyhow::{Context, Result};
use aya::{
    maps::{Map, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
};
use common::{PortInfo, PortKey, TX_META_MAGIC, TxMeta};
use dataplane_agent::{
    controller::Controller,
    datapath::{Datapath, Options, PROG_FROM_VM, PROG_TO_VM_TRACE},
    show, trace,
};
use dataplane_config::{Document, Format, Topology, Update};
use serde_json::Value;

use crate::netns::Netns;

/// Tap name -> interface index, from the ports' positions.
fn taps(t: &Topology, ifindexes: &[u32]) -> std::collections::BTreeMap<String, u32> {
    t.ports
        .iter()
        .zip(ifindexes)
        .map(|(p, &i)| (p.tap.clone(), i))
        .collect()
}

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

pub struct Verdicts {
    dp: Option<Controller>,
    pub topology: Topology,
    /// How long the first apply of the configuration took.
    pub first_apply: std::time::Duration,
    ifindexes: Vec<u32>,
    /// (physical network, interface) of each uplink made by
    /// [`Verdicts::on_veths_with_uplinks`].
    uplinks: Vec<(String, String)>,
    /// Holds the dummy interfaces of the other ports; dropped after `dp`.
    _ns: Netns,
}

impl Verdicts {
    /// Loads the datapath with `config`; frames appear to come from the
    /// port with id `source`.
    pub fn new(config: &Value, source: &str) -> Result<Verdicts> {
        Self::sized(config, source, 64)
    }

    /// As [`Verdicts::new`], with the maps sized for `max_ports`.
    pub fn sized(config: &Value, source: &str, max_ports: u32) -> Result<Verdicts> {
        Self::build(config, Some(source), max_ports, common::MAX_CONNTRACK)
    }

    /// As [`Verdicts::new`], with a connection table of `max_connections`.
    pub fn with_connections(
        config: &Value,
        source: &str,
        max_connections: u32,
    ) -> Result<Verdicts> {
        Self::build(config, Some(source), 64, max_connections)
    }

    /// As [`Verdicts::new`], with uplinks: (physical network, ifindex).
    /// Ifindex 1 makes the test runs' frames arrive on the uplink too
    /// (`from_uplink` looks them up among uplinks, `from_vm` among ports).
    pub fn with_uplinks(config: &Value, source: &str, uplinks: &[(&str, u32)]) -> Result<Verdicts> {
        let uplinks = uplinks.iter().map(|(p, i)| (p.to_string(), *i)).collect();
        Self::build_with(
            config,
            Some(source),
            64,
            common::MAX_CONNTRACK,
            uplinks,
            &[],
        )
    }

    /// Every port on a veth interface of the namespace, none on loopback:
    /// for [`Verdicts::inside`], where any port can be the sender.
    pub fn on_veths(config: &Value) -> Result<Verdicts> {
        Self::build(config, None, 64, common::MAX_CONNTRACK)
    }

    /// As [`Verdicts::on_veths`], with an uplink for each of `physnets`
    /// (`dataplane run --uplink PHYSNET=IFNAME`): a veth of the namespace,
    /// named by [`Verdicts::uplink`].
    pub fn on_veths_with_uplinks(config: &Value, physnets: &[&str]) -> Result<Verdicts> {
        let none = Default::default();
        Self::build_with(config, None, 64, common::MAX_CONNTRACK, none, physnets)
    }

    /// The interface carrying `physnet`, made by
    /// [`Verdicts::on_veths_with_uplinks`].
    pub fn uplink(&self, physnet: &str) -> Option<&str> {
        self.uplinks
            .iter()
            .find(|(p, _)| p == physnet)
            .map(|(_, name)| name.as_str())
    }

    fn build(
        config: &Value,
        source: Option<&str>,
        max_ports: u32,
        max_connections: u32,
    ) -> Result<Verdicts> {
        Self::build_with(
            config,
            source,
            max_ports,
            max_connections,
            Default::default(),
            &[],
        )
    }

    fn build_with(
        config: &Value,
        source: Option<&str>,
        max_ports: u32,
        max_connections: u32,
        mut uplinks: std::collections::BTreeMap<String, u32>,
        uplink_veths: &[&str],
    ) -> Result<Verdicts> {
        let document = Document::parse(&config.to_string(), Format::Json)?;
        let topology = Topology::of(&dataplane_config::validate(&document)?);
        let ns = Netns::new("dpx")?;
        let mut ifindexes = Vec::new();
        for (i, p) in topology.ports.iter().enumerate() {
            if Some(p.id.as_str()) == source {
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
        if let Some(source) = source {
            anyhow::ensure!(ifindexes.contains(&1), "no port {source}");
        }
        let mut uplink_names = Vec::new();
        for (i, physnet) in uplink_veths.iter().enumerate() {
            let (name, peer) = (format!("u{i}"), format!("w{i}"));
            ns.ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
            ns.ip(&["link", "set", &name, "up"])?;
            uplinks.insert(physnet.to_string(), ns.ifindex(&name)?);
            uplink_names.push((physnet.to_string(), name));
        }
        let taps = taps(&topology, &ifindexes);
        let (dp, first_apply) = ns.run_inside(move || {
            let mut dp = Controller::open(
                Options {
                    instance: crate::netns::unique("dpv"),
                    max_ports,
                    max_connections,
                    attach: false,
                },
                None,
            )?;
            if !uplinks.is_empty() {
                dp.set_uplinks(&uplinks)?;
            }
            let started = std::time::Instant::now();
            dp.apply(&Update::Snapshot(document), &|t| taps.get(t).copied())?;
            Ok((dp, started.elapsed()))
        })?;
        Ok(Verdicts {
            dp: Some(dp),
            topology,
            first_apply,
            ifindexes,
            uplinks: uplink_names,
            _ns: ns,
        })
    }

    /// The datapath's pin directory (for `show`).
    pub fn dir(&mut self) -> std::path::PathBuf {
        self.dp().dir().clone()
    }

    fn dp(&mut self) -> &mut Datapath {
        self.dp.as_mut().expect("datapath").datapath_mut()
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

    /// Runs `frame` once through `program` (any XDP program of the
    /// datapath, as received on ifindex 1); returns the XDP action and the
    /// frame as the program left it.
    pub fn exchange(&mut self, program: &str, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let out = trace::run_xdp(self.program(program)?, frame, 0, 1, 1)?;
        Ok((out.action, out.frame))
    }

    /// The datapath's XDP program `name`, loaded (the agent loads those it
    /// attaches or tail-calls; the bench's own, such as the floor, not).
    fn program(&mut self, name: &str) -> Result<&mut Xdp> {
        let prog: &mut Xdp = self
            .dp()
            .ebpf_mut()
            .program_mut(name)
            .with_context(|| format!("program {name}"))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()?;
        }
        Ok(prog)
    }

    /// As [`Verdicts::exchange`], with the frame arriving from port `id`
    /// (any port, run inside the ports' namespace where its ifindex is
    /// its interface's).
    pub fn exchange_from(
        &mut self,
        program: &str,
        id: &str,
        frame: &[u8],
    ) -> Result<(u32, Vec<u8>)> {
        let i = self
            .topology
            .ports
            .iter()
            .position(|p| p.id == id)
            .with_context(|| format!("no port {id}"))?;
        let ifindex = self.ifindexes[i];
        let (program, frame) = (program.to_string(), frame.to_vec());
        self.inside(move |dir| {
            let path = dir.join("programs").join(&program);
            let prog = Xdp::from_pin(&path, aya_obj::programs::XdpAttachType::Interface)?;
            let out = trace::run_xdp(&prog, &frame, 0, ifindex, 1)?;
            Ok((out.action, out.frame))
        })
    }

    /// Average ns per run of `program` on `frame` over `repeat` runs on
    /// one buffer (the kernel's own timing). Runs after the first see what
    /// the previous one left: only meaningful for paths that do not
    /// rewrite the frame, or with `repeat` 1.
    pub fn time(&mut self, program: &str, frame: &[u8], repeat: u32) -> Result<f64> {
        let prog = self.program(program)?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        })?;
        Ok(r.duration.as_nanos() as f64)
    }

    /// Applies a changed `config` with the same ports; returns how long it
    /// took.
    pub fn reapply(&mut self, config: &Value) -> Result<std::time::Duration> {
        let document = Document::parse(&config.to_string(), Format::Json)?;
        let taps = taps(&self.topology, &self.ifindexes);
        let mut dp = self.dp.take().context("datapath")?;
        // Device maps resolve ifindexes in the caller's namespace: apply
        // where the ports' interfaces are.
        let (dp, elapsed) = self._ns.run_inside(move || {
            let started = std::time::Instant::now();
            let update = Update::Snapshot(document);
            dp.apply(&update, &|t| taps.get(t).copied())?;
            Ok((dp, started.elapsed()))
        })?;
        self.dp = Some(dp);
        Ok(elapsed)
    }

    /// The metadata `from_vm` attaches to what port `id` sends (read from
    /// the live PORTS map), as `to_vm` receives it.
    pub fn sender_meta(&mut self, id: &str) -> Result<TxMeta> {
        let index = self.port(id)?.index;
        let dir = self.dp().dir().clone();
        let ports: aya::maps::HashMap<MapData, PortKey, PortInfo> =
            Map::from_map_data(MapData::from_pin(dir.join("maps/PORTS"))?)?.try_into()?;
        for item in ports.iter() {
            let (_, info) = item?;
            if info.index == index {
                return Ok(TxMeta {
                    magic: TX_META_MAGIC,
                    sender: info.index,
                    policy: info.policy,
                    identity: info.identity,
                    flags: u32::from(info.flags),
                    ..TxMeta::default()
                });
            }
        }
        anyhow::bail!("port {id} not in PORTS")
    }

    /// Runs `to_vm`'s code (`to_vm_trace`) `repeat` times on `frame`
    /// carrying `meta`, as delivered to the port bound to ifindex 1;
    /// returns (XDP action, average ns per run).
    pub fn to_vm(&mut self, meta: &TxMeta, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        let prog: &Xdp = self
            .dp()
            .ebpf_mut()
            .program(PROG_TO_VM_TRACE)
            .context("to_vm_trace")?
            .try_into()?;
        let mut input = trace::meta_bytes(meta).to_vec();
        input.extend_from_slice(frame);
        let out = trace::run_xdp(prog, &input, size_of::<TxMeta>(), 1, repeat)?;
        Ok((out.action, out.ns_per_run))
    }

    /// Runs `f` with the datapath's pin directory on a thread inside the
    /// ports' namespace, where their ifindexes mean their interfaces (as
    /// BPF_PROG_TEST_RUN's ingress_ifindex needs).
    pub fn inside<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&std::path::Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let dir = self.dp().dir().clone();
        self._ns.run_inside(move || f(&dir))
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

    /// Drops charged to no port (frames from an uplink) for `reason`.
    pub fn unattributed_drops(&mut self, reason: &str) -> u64 {
        let dir = self.dp().dir().clone();
        show::ports(&dir)
            .ok()
            .and_then(|v| v.unattributed.drops.get(reason).copied())
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

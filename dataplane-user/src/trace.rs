//! `dataplane trace`: runs a packet through the running datapath's own
//! programs with BPF_PROG_TEST_RUN, against its live maps, and reports
//! what they decided: the drop reason, or the ports the frame reaches and
//! whether each one accepts it.
//!
//! `from_vm` runs the frame as if it came from the port's tap. Where it
//! redirects the frame, it records the destination (a port, or a flood
//! domain) in the frame's metadata, as it does for every redirected frame;
//! each destination's receiving side then runs in `to_vm_trace` (`to_vm`'s
//! code as a plain XDP program, which BPF_PROG_TEST_RUN accepts) on its
//! own copy of the frame, as the device map would. The frame carries
//! `TX_F_TRACE`, so nothing other packets depend on changes: no group
//! claim, no tracked connection, no monitor event. Port counters do count
//! traced frames.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::{
    maps::{DevMapHash, HashMap, HashOfMaps, LpmTrie, MapData, lpm_trie::Key},
    programs::{TestRun, TestRunOptions, Xdp},
};
use aya_obj::programs::XdpAttachType;
use common::{
    DropReason, ExtAddr, ExtAddrKey, FLOOD_DOMAIN_GROUP_BASE, FloodKey, NEIGH_PREFIX_BITS, Neigh,
    NeighV4Key, NeighV6Key, OUT_DROP, OUT_EXTERNAL, OUT_FLOOD, OUT_ICMP_ERROR, OUT_NONE, OUT_PORT,
    OUT_REPLY, TARGET_GROUP, TX_F_TRACE, TX_META_MAGIC, TxMeta, Uplink, UplinkKey,
};
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, LinkSlice, NetSlice, PacketBuilder,
    SlicedPacket, TransportSlice,
};
use serde::Serialize;

use dataplane_config::MacAddr;

use crate::{
    datapath::{PROG_FROM_UPLINK, PROG_FROM_VM, PROG_TO_VM_TRACE, pinned},
    explain::{Explainer, RouteStep, SgStep},
    link_health::Inspector,
    show::{self, PortView, PortsView},
};

const XDP_ACTIONS: [&str; 5] = ["aborted", "drop", "pass", "tx", "redirect"];
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const META_LEN: usize = size_of::<TxMeta>();

/// A packet described in a few words; what is left out is filled in from
/// the port (its MAC and first fixed address) and the datapath's neighbour
/// table (the destination's MAC).
#[derive(Clone, Debug, Default)]
pub struct Description {
    /// icmp, tcp, udp, arp (a request for `dst`) or arp-reply.
    pub proto: String,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// The next hop whose MAC the frame is sent to (a gateway), when the
    /// destination is not on the port's network.
    pub via: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags as letters: S, A, F, R, P (default S).
    pub tcp_flags: String,
}

/// What one destination's receiving side decided.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub port: String,
    /// The port's name ("" if unknown).
    pub name: String,
    /// "delivered" or "dropped".
    pub verdict: String,
    pub reason: Option<String>,
    /// The Ethernet destination the VM sees (a routed frame to a group is
    /// readdressed per member).
    pub dst_mac: String,
    /// The security groups' say, sender's egress then receiver's ingress
    /// (filled by [`explain`]).
    pub security_groups: Vec<SgStep>,
    /// Why a frame the programs deliver is lost all the same: the
    /// receiver's interface refuses it (see `link_health`; filled by
    /// [`interfaces`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    pub port: String,
    /// The port's name ("" if unknown).
    pub name: String,
    pub packet: String,
    /// from_vm's XDP action.
    pub action: String,
    /// "dropped", "delivered", "answered", "flooded", "passed to the host"...
    pub verdict: String,
    pub reason: Option<String>,
    pub reason_description: Option<String>,
    /// For a flood, the flood domain ("network" or "group").
    pub flood: Option<String>,
    pub deliveries: Vec<Delivery>,
    /// The answer sent back to the sender: the ARP/ND responder's, the
    /// router's echo reply, or the ICMP error about a dropped packet.
    pub reply: Option<String>,
    /// The frame as it leaves through an uplink to an external network
    /// (translated by the router's gateway: floating IP or SNAT), or the
    /// ARP request sent in its place while the next hop is not known.
    pub external: Option<String>,
    /// The frame as delivered when the router translated its addresses
    /// on the way (a floating IP's packet from outside, a reply of a SNAT
    /// connection, a hairpin from inside).
    pub translated: Option<String>,
    /// The gateway the packet was addressed to, when `--via` was not given
    /// and the destination is not on the port's subnet.
    pub gateway: Option<String>,
    /// The routing step, for a packet sent to a router interface (filled by
    /// [`explain`]).
    pub route: Option<RouteStep>,
    /// The frame as traced, and as `from_vm` passed it on.
    #[serde(skip)]
    pub frames: (Vec<u8>, Vec<u8>),
}

impl Trace {
    /// Whether the datapath drops the packet: no port receives it, and it
    /// is neither answered nor passed to the host.
    pub fn dropped(&self) -> bool {
        match self.verdict.as_str() {
            "answered" | "passed to the host" | "sent out of the uplink" | "consumed" => false,
            _ => self.delivered_to().is_empty(),
        }
    }

    /// Whether some port receives the packet (or, for a request the
    /// datapath answers, the sender receives the answer).
    pub fn delivered_to(&self) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|d| d.verdict == "delivered")
            .map(|d| d.port.as_str())
            .collect()
    }
}

/// A trace for people: the packet, the decision, the routing step, then
/// one line per port with the security groups' say, then the outcome.
pub fn render(t: &Trace) -> String {
    let mut s = format!("{} sends {}\n", label(&t.port, &t.name), t.packet);
    if let Some(g) = &t.gateway {
        s += &format!("  via {g}\n");
    }
    s += &format!("  from_vm: {} ({})", t.verdict, t.action);
    if let (Some(r), Some(d)) = (&t.reason, &t.reason_description) {
        s += &format!(": {r} ({d})");
    }
    if let Some(f) = &t.flood {
        s += &format!(", flooded to the {f}");
    }
    s += "\n";
    if let Some(r) = &t.route {
        s += &format!("  route: router {}", r.router);
        if let Some(via) = &r.via {
            s += &format!(": {via}");
        }
        match &r.to {
            Some(to) => s += &format!(" -> {to}"),
            None => s += ": no route to the destination",
        }
        if let (Some(src), Some(dst), Some(a), Some(b)) =
            (&r.src_mac, &r.dst_mac, r.ttl_in, r.ttl_out)
        {
            s += &format!(", rewritten {src} > {dst}, ttl {a} -> {b}");
        }
        s += "\n";
    }
    if let Some(r) = &t.reply {
        s += &format!("  answer to {}: {r}\n", label(&t.port, &t.name));
    }
    if let Some(x) = &t.external {
        s += &format!("  out of the uplink: {x}\n");
    }
    if let Some(x) = &t.translated {
        s += &format!("  translated by the router: {x}\n");
    }
    for d in &t.deliveries {
        s += &format!(
            "  to_vm {} (dst {}): {}",
            label(&d.port, &d.name),
            d.dst_mac,
            d.verdict
        );
        if let Some(r) = &d.reason {
            s += &format!(": {r}");
        }
        s += "\n";
        for step in &d.security_groups {
            s += &format!("    {} {}: {}\n", step.direction, step.verdict, step.detail);
        }
        if let Some(i) = &d.interface {
            s += &format!("    interface: {i}\n");
        }
    }
    s += if t.dropped() {
        "  => dropped\n"
    } else {
        "  => gets through\n"
    };
    s
}

/// An IPv4 frame's source and destination addresses (None for others).
fn addresses(frame: &[u8]) -> Option<&[u8]> {
    (frame.get(12..14) == Some(&[0x08, 0x00][..]))
        .then(|| frame.get(26..34))
        .flatten()
}

/// "id (name)", or the id of a port without a name.
fn label(id: &str, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({name})")
    }
}

/// A frame the programs deliver to a port whose interface refuses every
/// redirected frame (see `link_health`) is lost, not delivered: says so.
pub fn interfaces(t: &mut Trace, ports: &PortsView, inspector: &mut Inspector) {
    let mut lost = false;
    for d in &mut t.deliveries {
        if d.verdict != "delivered" {
            continue;
        }
        let Some(receiver) = ports.ports.iter().find(|p| p.id == d.port) else {
            continue;
        };
        let Some(health) = inspector.check(&receiver.tap) else {
            continue;
        };
        if let Some(p) = health.problems.iter().find(|p| p.code == "no_napi") {
            d.verdict = "lost".into();
            d.reason = Some("interface".into());
            d.interface = Some(format!("{} (fix: {})", p.detail, p.fix));
            lost = true;
        }
    }
    if lost && t.delivered_to().is_empty() {
        if let Some(v) = t.verdict.strip_suffix(" and delivered") {
            t.verdict = format!("{v} but lost at every receiver's interface");
        }
    }
}

/// Names what decided `t` (see `explain`): the routing step and, for each
/// receiver, the security groups. `sender` sent it; `ports` as traced.
pub fn explain(
    t: &mut Trace,
    explainer: &Explainer,
    ports: &PortsView,
    sender: &PortView,
) -> Result<()> {
    let (input, forwarded) = &t.frames;
    t.route = explainer.route(sender, input, forwarded)?;
    for d in &mut t.deliveries {
        let Some(receiver) = ports.ports.iter().find(|p| p.id == d.port) else {
            continue;
        };
        let mut steps = explainer.security_groups(sender, receiver, forwarded)?;
        // The programs decided; say so where this reading disagrees.
        let refused = steps.iter().any(|s| s.verdict == "refused");
        let sg_drop = d
            .reason
            .as_deref()
            .is_some_and(|r| matches!(r, "sg_ingress" | "sg_egress" | "ct_invalid"));
        let delivered = d.verdict == "delivered";
        if (delivered && refused) || (sg_drop && !refused) {
            for step in &mut steps {
                step.detail += " (but the datapath decided otherwise: this reading of the maps \
                                 does not explain its verdict)";
            }
        }
        d.security_groups = steps;
    }
    Ok(())
}

/// The running datapath's programs, opened from their pins.
pub struct Probe {
    dir: PathBuf,
    from_vm: Xdp,
    to_vm: Xdp,
    /// For frames from an external network (an older run pinned none).
    from_uplink: Option<Xdp>,
}

impl Probe {
    pub fn open(dir: &Path) -> Result<Probe> {
        let open = |name: &str| {
            let path = dir.join("programs").join(name);
            Xdp::from_pin(&path, XdpAttachType::Interface).with_context(|| {
                format!(
                    "cannot open {} (is `dataplane run` running for this instance?)",
                    path.display()
                )
            })
        };
        Ok(Probe {
            dir: dir.to_path_buf(),
            from_vm: open(PROG_FROM_VM)?,
            to_vm: open(PROG_TO_VM_TRACE)?,
            from_uplink: open(PROG_FROM_UPLINK).ok(),
        })
    }

    /// Builds the frame `d` describes, as the port `source` would send it.
    pub fn build(&self, ports: &PortsView, source: &PortView, d: &Description) -> Result<Vec<u8>> {
        build(&self.dir, ports, source, d)
    }

    /// Runs `frame` from `source` through the datapath.
    pub fn run(&self, ports: &PortsView, source: &PortView, frame: &[u8]) -> Result<Trace> {
        let mut input = meta_bytes(&TxMeta {
            magic: TX_META_MAGIC,
            flags: TX_F_TRACE,
            ..TxMeta::default()
        })
        .to_vec();
        input.extend_from_slice(frame);
        // Index 0 is no port: an uplink (see `uplink_source`).
        let prog = if source.index == 0 {
            self.from_uplink
                .as_ref()
                .context("from_uplink is not pinned (an agent older than the external network)")?
        } else {
            &self.from_vm
        };
        let out = run_xdp(prog, &input, META_LEN, source.ifindex, 1)?;
        let action = out.action;
        let meta = out.meta.unwrap_or_default();
        let mut trace = Trace {
            port: source.id.clone(),
            name: source.name.clone(),
            packet: summary(frame),
            action: XDP_ACTIONS
                .get(action as usize)
                .unwrap_or(&"unknown")
                .to_string(),
            verdict: String::new(),
            reason: None,
            reason_description: None,
            flood: None,
            deliveries: Vec::new(),
            reply: None,
            external: None,
            translated: None,
            gateway: None,
            route: None,
            frames: (frame.to_vec(), out.frame.clone()),
        };
        match (action, meta.out_kind) {
            (XDP_DROP, OUT_DROP) => {
                let reason = DropReason::from_u32(meta.out).context("unknown drop reason")?;
                trace.verdict = "dropped".into();
                trace.reason = Some(reason.name().into());
                trace.reason_description = Some(reason.description().into());
            }
            (XDP_REDIRECT, OUT_REPLY) => {
                trace.verdict = "answered".into();
                trace.reply = Some(summary(&out.frame));
            }
            (XDP_REDIRECT, OUT_ICMP_ERROR) => {
                // Dropped, and the router tells the sender why.
                let reason = DropReason::from_u32(meta.out).context("unknown drop reason")?;
                trace.verdict = "dropped".into();
                trace.reason = Some(reason.name().into());
                trace.reason_description = Some(reason.description().into());
                trace.reply = Some(summary(&out.frame));
            }
            (XDP_REDIRECT, OUT_EXTERNAL) => {
                trace.verdict = "sent out of the uplink".into();
                trace.external = Some(summary(&out.frame));
            }
            (XDP_REDIRECT, OUT_DROP) => {
                // The next hop outside is not known: an ARP request for
                // it went out in the packet's place.
                let reason = DropReason::from_u32(meta.out).context("unknown drop reason")?;
                trace.verdict = "dropped".into();
                trace.reason = Some(reason.name().into());
                trace.reason_description = Some(reason.description().into());
                trace.external = Some(summary(&out.frame));
            }
            (XDP_REDIRECT, OUT_PORT) => {
                let dest = by_index(ports, meta.out)?;
                trace.verdict = "forwarded".into();
                trace
                    .deliveries
                    .push(self.receive(dest, &out.bytes, out.meta_len)?);
            }
            (XDP_REDIRECT, OUT_FLOOD) => {
                trace.verdict = "flooded".into();
                trace.flood = Some(if meta.out >= FLOOD_DOMAIN_GROUP_BASE {
                    "group".into()
                } else {
                    "network".into()
                });
                for dest in self.flood_members(ports, meta.out, source.ifindex)? {
                    trace
                        .deliveries
                        .push(self.receive(dest, &out.bytes, out.meta_len)?);
                }
            }
            (XDP_PASS, _) => trace.verdict = "passed to the host".into(),
            // From an uplink: an ARP reply to one of the gateway's or
            // floating addresses, which the datapath learns from (not when
            // traced) and passes on to nobody.
            (XDP_DROP, OUT_NONE) if source.index == 0 => trace.verdict = "consumed".into(),
            (a, kind) => bail!("from_vm returned {a} with decision {kind}: not understood"),
        }
        if !trace.deliveries.is_empty() && addresses(frame) != addresses(&out.frame) {
            trace.translated = Some(summary(&out.frame));
        }
        if trace.verdict == "forwarded" || trace.verdict == "flooded" {
            if trace.deliveries.iter().all(|d| d.verdict == "dropped") {
                trace.verdict = format!("{} but dropped by every receiver", trace.verdict);
            } else {
                trace.verdict = format!("{} and delivered", trace.verdict);
            }
        }
        Ok(trace)
    }

    /// The receiving side for `dest` on a copy of the redirected frame.
    fn receive(&self, dest: &PortView, bytes: &[u8], meta_len: usize) -> Result<Delivery> {
        let out = run_xdp(&self.to_vm, bytes, meta_len, dest.ifindex, 1)?;
        let action = out.action;
        let meta = out.meta.unwrap_or_default();
        let dst_mac = out
            .frame
            .get(..6)
            .map(|m| MacAddr(m.try_into().expect("6 bytes")).to_string())
            .unwrap_or_default();
        Ok(match action {
            XDP_PASS => Delivery {
                port: dest.id.clone(),
                name: dest.name.clone(),
                verdict: "delivered".into(),
                reason: None,
                dst_mac,
                security_groups: Vec::new(),
                interface: None,
            },
            XDP_DROP => Delivery {
                port: dest.id.clone(),
                name: dest.name.clone(),
                verdict: "dropped".into(),
                reason: (meta.out_kind == OUT_DROP)
                    .then(|| DropReason::from_u32(meta.out).map(|r| r.name().to_string()))
                    .flatten(),
                dst_mac,
                security_groups: Vec::new(),
                interface: None,
            },
            a => bail!("to_vm returned {a} for {}: not understood", dest.id),
        })
    }

    /// The ports a flood to `domain` reaches: the live flood set, less the
    /// sender (the datapath floods with BPF_F_EXCLUDE_INGRESS).
    fn flood_members<'a>(
        &self,
        ports: &'a PortsView,
        domain: u32,
        ingress: u32,
    ) -> Result<Vec<&'a PortView>> {
        let flood: HashOfMaps<MapData, FloodKey, DevMapHash<MapData>> = pinned::FLOOD(&self.dir)?;
        let key = FloodKey {
            slot: ports.active_slot,
            domain,
        };
        let set = flood.get(&key, 0).context("the flood set is missing")?;
        let mut out = Vec::new();
        for item in set.iter() {
            let (index, value) = item?;
            if value.if_index != ingress {
                out.push(by_index(ports, index)?);
            }
        }
        Ok(out)
    }
}

fn by_index(ports: &PortsView, index: u32) -> Result<&PortView> {
    ports
        .ports
        .iter()
        .find(|p| p.index == index)
        .with_context(|| format!("port index {index} is not in the live configuration"))
}

/// Finds a port by id, name or tap.
pub fn find_port<'a>(ports: &'a PortsView, name: &str) -> Result<&'a PortView> {
    ports.find(name)
}

/// `m` as the bytes of the XDP metadata area.
pub fn meta_bytes(m: &TxMeta) -> [u8; META_LEN] {
    // SAFETY: TxMeta is repr(C), made of u32s only (no padding).
    unsafe { core::mem::transmute_copy(m) }
}

/// What a program did with a frame under BPF_PROG_TEST_RUN.
pub struct Output {
    /// The XDP action.
    pub action: u32,
    /// The kernel's average time per run.
    pub ns_per_run: f64,
    /// Metadata and frame, as the next program gets them.
    pub bytes: Vec<u8>,
    pub meta_len: usize,
    pub meta: Option<TxMeta>,
    pub frame: Vec<u8>,
}

/// Runs `prog` `repeat` times on `input` (`meta_len` bytes of metadata,
/// then the frame) as received on `ifindex`.
pub fn run_xdp(
    prog: &Xdp,
    input: &[u8],
    meta_len: usize,
    ifindex: u32,
    repeat: u32,
) -> Result<Output> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex. With a context, `data` is the length
    // of the metadata in front of the frame.
    let ctx_words = [meta_len as u32, input.len() as u32, 0, ifindex, 0, 0];
    let ctx_in: Vec<u8> = ctx_words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut ctx_out = vec![0u8; ctx_in.len()];
    let mut data_out = vec![0u8; input.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut data_out),
            ctx_in: Some(&ctx_in),
            ctx_out: Some(&mut ctx_out),
            repeat,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    let word = |i: usize| u32::from_ne_bytes(ctx_out[i * 4..i * 4 + 4].try_into().expect("4"));
    let (data, end) = (word(0) as usize, word(1) as usize);
    let end = end.min(r.data_size_out as usize).min(data_out.len());
    let bytes = data_out[..end].to_vec();
    let meta = (data == META_LEN && end >= META_LEN).then(|| {
        // SAFETY: META_LEN bytes of a repr(C) struct of u32s.
        unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const TxMeta) }
    });
    let meta = meta.filter(|m| m.magic == TX_META_MAGIC);
    let frame = bytes.get(data.min(end)..).unwrap_or_default().to_vec();
    Ok(Output {
        action: r.return_value,
        ns_per_run: r.duration.as_nanos() as f64,
        bytes,
        meta_len: data,
        meta,
        frame,
    })
}

/// One line about a frame: addresses, protocol, ports.
pub fn summary(frame: &[u8]) -> String {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return format!("{} bytes, not parseable", frame.len());
    };
    let mut s = String::new();
    if let Some(LinkSlice::Ethernet2(e)) = &p.link {
        s = format!("{} > {}", MacAddr(e.source()), MacAddr(e.destination()));
    }
    if let Some(arp) = &p.net.as_ref().and_then(|n| match n {
        NetSlice::Arp(a) => Some(a.clone()),
        _ => None,
    }) {
        let ip = |b: &[u8]| {
            <[u8; 4]>::try_from(b)
                .map(|a| std::net::Ipv4Addr::from(a).to_string())
                .unwrap_or_default()
        };
        let op = if arp.operation() == ArpOperation::REQUEST {
            "request who-has"
        } else {
            "reply"
        };
        return format!(
            "{s} ARP {op} {} tell {} ({})",
            ip(arp.target_protocol_addr()),
            ip(arp.sender_protocol_addr()),
            <[u8; 6]>::try_from(arp.sender_hw_addr())
                .map(|m| MacAddr(m).to_string())
                .unwrap_or_default()
        );
    }
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::from(ip.header().source_addr()),
            IpAddr::from(ip.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::from(ip.header().source_addr()),
            IpAddr::from(ip.header().destination_addr()),
        ),
        _ => return s,
    };
    let l4 = match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let flags: String = [
                (t.syn(), 'S'),
                (t.ack(), 'A'),
                (t.fin(), 'F'),
                (t.rst(), 'R'),
                (t.psh(), 'P'),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, c)| *c)
            .collect();
            format!(
                "TCP {src}:{} > {dst}:{} [{flags}]",
                t.source_port(),
                t.destination_port()
            )
        }
        Some(TransportSlice::Udp(u)) => format!(
            "UDP {src}:{} > {dst}:{}",
            u.source_port(),
            u.destination_port()
        ),
        Some(TransportSlice::Icmpv4(i)) => {
            format!(
                "ICMP {src} > {dst} {}",
                icmp_kind(i.type_u8(), i.code_u8(), &[0, 8])
            )
        }
        Some(TransportSlice::Icmpv6(i)) => {
            format!(
                "ICMPv6 {src} > {dst} {}",
                icmp_kind(i.type_u8(), i.code_u8(), &[128, 129])
            )
        }
        _ => format!("IP {src} > {dst}"),
    };
    format!("{s} {l4}")
}

/// "type T", with the code for messages other than the `echo` ones
/// (errors are told apart by their code).
fn icmp_kind(ty: u8, code: u8, echo: &[u8]) -> String {
    if echo.contains(&ty) {
        format!("type {ty}")
    } else {
        format!("type {ty} code {code}")
    }
}

/// The first fixed address of the port in `v6`'s family.
fn fixed_address(port: &PortView, v6: bool) -> Option<IpAddr> {
    port.addresses
        .iter()
        .filter(|a| a.kind.contains("fixed"))
        .filter_map(|a| a.address.split('/').next()?.parse::<IpAddr>().ok())
        .find(|a| a.is_ipv6() == v6)
}

/// The MAC a VM on `port`'s network reaches `addr` at, from the
/// datapath's neighbour table (for a shared address: the active member's,
/// else the first member's).
fn neighbour_mac(dir: &Path, slot: u32, port: &PortView, addr: IpAddr) -> Result<MacAddr> {
    let neigh: Option<Neigh> = match addr {
        IpAddr::V4(a) => {
            let t: LpmTrie<MapData, NeighV4Key, Neigh> = pinned::NEIGH_V4(dir)?;
            let key = NeighV4Key {
                slot,
                network: port.network,
                addr: a.octets(),
            };
            t.get(&Key::new(NEIGH_PREFIX_BITS + 32, key), 0).ok()
        }
        IpAddr::V6(a) => {
            let t: LpmTrie<MapData, NeighV6Key, Neigh> = pinned::NEIGH_V6(dir)?;
            let key = NeighV6Key {
                slot,
                network: port.network,
                addr: a.octets(),
            };
            t.get(&Key::new(NEIGH_PREFIX_BITS + 128, key), 0).ok()
        }
    };
    let n = neigh.with_context(|| {
        format!(
            "no port on {}'s network owns {addr}: give --dst-mac, or --via the gateway",
            port.id
        )
    })?;
    if n.kind != TARGET_GROUP {
        return Ok(MacAddr(n.mac));
    }
    let group = show::groups(dir)?
        .into_iter()
        .find(|g| g.index == n.target)
        .context("the group of the shared address is missing")?;
    let member = group
        .members
        .iter()
        .find(|m| Some(&m.port) == group.active.as_ref())
        .or_else(|| group.members.first())
        .context("the group has no member")?;
    member.mac.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

fn build(dir: &Path, ports: &PortsView, source: &PortView, d: &Description) -> Result<Vec<u8>> {
    let dst = d.dst.context("a destination address (--dst) is needed")?;
    let v6 = dst.is_ipv6();
    let src = match d.src {
        Some(s) => s,
        None => fixed_address(source, v6).with_context(|| {
            format!(
                "port {} has no fixed IPv{} address: give --src",
                source.id,
                if v6 { 6 } else { 4 }
            )
        })?,
    };
    if src.is_ipv6() != v6 {
        bail!("--src {src} and --dst {dst} are of different families");
    }
    let src_mac = match &d.src_mac {
        Some(m) => m.octets(),
        None => source
            .mac
            .parse::<MacAddr>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .octets(),
    };
    let proto = d.proto.to_ascii_lowercase();
    if proto == "arp" || proto == "arp-reply" {
        return arp_frame(src_mac, src, dst, proto == "arp", d.dst_mac);
    }
    let dst_mac = match &d.dst_mac {
        Some(m) => m.octets(),
        None => neighbour_mac(dir, ports.active_slot, source, d.via.unwrap_or(dst))?.octets(),
    };
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => eth.ipv4(s.octets(), t.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(t)) => eth.ipv6(s.octets(), t.octets(), 64),
        _ => unreachable!("families checked above"),
    };
    let mut out = Vec::new();
    match proto.as_str() {
        "icmp" | "icmpv6" | "ping" if v6 => {
            ip.icmpv6_echo_request(0x7472, 1).write(&mut out, PAYLOAD)?
        }
        "icmp" | "icmpv6" | "ping" => ip.icmpv4_echo_request(0x7472, 1).write(&mut out, PAYLOAD)?,
        "udp" => ip.udp(d.sport, d.dport).write(&mut out, PAYLOAD)?,
        "tcp" => {
            tcp_flags(ip.tcp(d.sport, d.dport, 1, 64240), &d.tcp_flags)?.write(&mut out, &[])?
        }
        other => bail!("unknown protocol {other:?} (use icmp, tcp, udp, arp, arp-reply)"),
    }
    Ok(out)
}

/// What a traced packet carries.
const PAYLOAD: &[u8] = b"dataplane-trace";

/// Sets TCP flags given as letters (S, A, F, R, P; SYN when none).
fn tcp_flags(
    mut b: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    flags: &str,
) -> Result<etherparse::PacketBuilderStep<etherparse::TcpHeader>> {
    let flags = if flags.is_empty() { "S" } else { flags };
    for f in flags.chars() {
        b = match f.to_ascii_uppercase() {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            other => bail!("unknown TCP flag {other:?} (use S, A, F, R, P)"),
        };
    }
    Ok(b)
}

/// An ARP request for `dst` (broadcast unless `dst_mac`), or a reply.
fn arp_frame(
    src_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    request: bool,
    dst_mac: Option<MacAddr>,
) -> Result<Vec<u8>> {
    let (IpAddr::V4(spa), IpAddr::V4(tpa)) = (src, dst) else {
        bail!("ARP needs IPv4 addresses");
    };
    let eth_dst = dst_mac.map(|m| m.octets()).unwrap_or([0xff; 6]);
    let (op, tha) = if request {
        (ArpOperation::REQUEST, [0u8; 6])
    } else {
        (ArpOperation::REPLY, eth_dst)
    };
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &src_mac,
        &spa.octets(),
        &tha,
        &tpa.octets(),
    )
    .map_err(|e| anyhow::anyhow!("ARP packet: {e}"))?;
    let b = PacketBuilder::ethernet2(src_mac, eth_dst).arp(arp);
    let mut out = Vec::with_capacity(b.size());
    b.write(&mut out)?;
    Ok(out)
}

/// The Ethernet frames of a pcap file (the classic format, either byte
/// order, micro- or nanosecond timestamps; link type Ethernet only).
/// Written here because no pcap crate is among this build's dependencies;
/// the format is 24 bytes of file header, then 16 bytes per record.
pub fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.len() < 24 {
        bail!("{}: too short for a pcap file", path.display());
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().expect("4"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => bail!(
            "{}: not a pcap file (pcapng is not supported; convert with `tcpdump -r in -w out`)",
            path.display()
        ),
    };
    let word = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().expect("4");
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = word(20) & 0xffff;
    if linktype != 1 {
        bail!(
            "{}: link type {linktype}, only Ethernet (1) frames can be traced",
            path.display()
        );
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = word(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = data.get(start..start + len) else {
            bail!("{}: record at byte {at} is truncated", path.display());
        };
        frames.push(frame.to_vec());
        at = start + len;
    }
    Ok(frames)
}

/// An uplink as the source of a trace: `name` is an interface that
/// carries an external network in the live configuration (`UPLINKS`), or
/// None. Index 0 (no port) marks it; its frames go to `from_uplink`.
pub fn uplink_source(dir: &Path, slot: u32, name: &str) -> Result<Option<PortView>> {
    let Some(ifindex) = crate::interfaces::ifindex(name) else {
        return Ok(None);
    };
    let uplinks: HashMap<MapData, UplinkKey, Uplink> = pinned::UPLINKS(dir)?;
    let Ok(u) = uplinks.get(&UplinkKey { slot, ifindex }, 0) else {
        return Ok(None);
    };
    Ok(Some(PortView {
        id: format!("uplink {name}"),
        name: String::new(),
        tap: name.to_string(),
        ifindex,
        index: 0,
        network: u.network,
        policy: 0,
        identity: 0,
        // A locally administered MAC of the outside's, unless --src-mac.
        mac: "02:00:00:00:00:01".into(),
        port_security: false,
        macs: Vec::new(),
        addresses: Vec::new(),
        stats: Default::default(),
        interface: None,
    }))
}

/// The MAC the datapath answers for `addr` on external network `network`
/// (a gateway or floating address), where a frame from outside must go.
pub fn external_mac(dir: &Path, slot: u32, network: u32, addr: IpAddr) -> Result<MacAddr> {
    let IpAddr::V4(a) = addr else {
        bail!("external networks are IPv4 here: --dst {addr}");
    };
    let addrs: HashMap<MapData, ExtAddrKey, ExtAddr> = pinned::EXT_ADDRS(dir)?;
    let key = ExtAddrKey {
        slot,
        network,
        addr: a.octets(),
    };
    let e = addrs.get(&key, 0).map_err(|_| {
        anyhow::anyhow!(
            "{addr} is no gateway or floating address on this uplink's network: \
             the datapath would leave it to the host (give --dst-mac to trace it anyway)"
        )
    })?;
    Ok(MacAddr(e.mac))
}

//! The host's tunnel interfaces, made by the agent if missing:
//!
//! - a veth pair: remote destinations are redirected into [`TX_DEV`]
//!   (their device-map entries run `to_tunnel`); on [`RX_DEV`], its other
//!   end, XDP (`pass`, which gives the veth the NAPI that XDP-redirected
//!   frames need) and TC (`tunnel_tx`) hand each frame to
//! - a collect_md VXLAN device ([`VXLAN_DEV`], `external`), which
//!   encapsulates with the key `tunnel_tx` set (VNI, chassis address) and
//!   sends over the underlay.
//!
//! Frames from other chassis are taken off the underlay interface by
//! `from_underlay` (XDP) before the VXLAN device would see them.
//!
//! The interfaces are made with iproute2's `ip`, which every hypervisor
//! has.

use std::{net::Ipv4Addr, process::Command};

use anyhow::{Context, Result, bail};
use common::VXLAN_PORT;

use crate::interfaces::ifindex;

/// The veth end remote destinations are redirected to.
pub const TX_DEV: &str = "aaptun0";
/// Its other end, where frames are encapsulated.
pub const RX_DEV: &str = "aaptun1";
/// The collect_md VXLAN device.
pub const VXLAN_DEV: &str = "aapvx0";

/// The interfaces a host's tunnel uses, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Devices {
    pub tx: u32,
    pub rx: u32,
    pub vxlan: u32,
    pub underlay: u32,
    pub underlay_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Makes the tunnel interfaces if they are missing, and brings them up.
pub fn ensure(underlay_dev: &str, underlay_ip: Ipv4Addr) -> Result<Devices> {
    let underlay = ifindex(underlay_dev)
        .with_context(|| format!("underlay interface {underlay_dev} does not exist"))?;
    if ifindex(TX_DEV).is_none() || ifindex(RX_DEV).is_none() {
        let _ = ip(&["link", "del", TX_DEV]);
        ip(&[
            "link", "add", TX_DEV, "type", "veth", "peer", "name", RX_DEV,
        ])?;
    }
    if ifindex(VXLAN_DEV).is_none() {
        let port = VXLAN_PORT.to_string();
        let local = underlay_ip.to_string();
        ip(&[
            "link", "add", VXLAN_DEV, "type", "vxlan", "external", "dstport", &port, "local",
            &local,
        ])?;
    }
    for dev in [TX_DEV, RX_DEV, VXLAN_DEV] {
        ip(&["link", "set", dev, "up"])?;
    }
    Ok(Devices {
        tx: ifindex(TX_DEV).context("tunnel veth vanished")?,
        rx: ifindex(RX_DEV).context("tunnel veth vanished")?,
        vxlan: ifindex(VXLAN_DEV).context("VXLAN device vanished")?,
        underlay,
        underlay_ip,
    })
}

/// Removes the tunnel interfaces (`dataplane stop`, `--cleanup`).
pub fn remove() {
    let _ = ip(&["link", "del", TX_DEV]);
    let _ = ip(&["link", "del", VXLAN_DEV]);
}

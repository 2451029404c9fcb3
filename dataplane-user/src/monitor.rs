//! `dataplane monitor`: streams the datapath's drop events (port, reason,
//! addresses) from the pinned ring buffer as they happen. The datapath
//! sends at most `EVENTS_PER_SECOND` per CPU; the per-reason counters of
//! `show ports` count every drop.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    time::Duration,
};

use anyhow::Result;
use aya::maps::{Array, MapData};
use common::{
    DropEvent, DropReason, PortMeta,
    proto::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
};
use serde::Serialize;

use dataplane_config::MacAddr;

use crate::datapath::{pinned, pins::c_str};

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Monotonic clock of the drop, in seconds.
    pub time: f64,
    pub port: String,
    pub reason: String,
    pub ethertype: String,
    pub protocol: u8,
    pub src_mac: String,
    pub src: String,
    pub dst: String,
}

fn view(e: &DropEvent, meta: &Array<MapData, PortMeta>) -> EventView {
    let port = meta
        .get(&e.port, 0)
        .map(|m| c_str(&m.id))
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("#{}", e.port));
    let (ethertype, v6) = match e.ethertype {
        ETH_P_IP => ("ipv4".to_string(), false),
        ETH_P_IPV6 => ("ipv6".to_string(), true),
        ETH_P_ARP => ("arp".to_string(), false),
        t => (format!("{t:#06x}"), false),
    };
    let addr = |a: [u8; 16]| {
        if v6 {
            Ipv6Addr::from(a).to_string()
        } else {
            Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
    };
    EventView {
        time: e.ns as f64 / 1e9,
        port,
        reason: DropReason::from_u32(e.reason)
            .map(|r| r.name().to_string())
            .unwrap_or_else(|| e.reason.to_string()),
        ethertype,
        protocol: e.proto,
        src_mac: MacAddr(e.src_mac).to_string(),
        src: addr(e.src),
        dst: addr(e.dst),
    }
}

/// Prints events until `count` were printed (or forever).
pub fn run(dir: &Path, json: bool, count: Option<usize>) -> Result<()> {
    let mut ring = pinned::EVENTS(dir)?;
    let meta = pinned::PORT_META(dir)?;
    let mut printed = 0;
    loop {
        while let Some(item) = ring.next() {
            if item.len() < size_of::<DropEvent>() {
                continue;
            }
            // SAFETY: the datapath writes whole DropEvents; read unaligned.
            let e = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const DropEvent) };
            let v = view(&e, &meta);
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!(
                    "{:>12.6} {} {} {} proto {} {} -> {} (from {})",
                    v.time, v.port, v.reason, v.ethertype, v.protocol, v.src, v.dst, v.src_mac
                );
            }
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! `dataplane monitor`: streams the datapath's drop events (time, port,
//! reason, addresses) from the pinned ring buffer as they happen. The
//! datapath sends at most `EVENTS_PER_SECOND` per CPU; the per-reason
//! counters of `show ports` count every drop.
//!
//! The ring buffer keeps what no reader took: events of minutes ago wait
//! there for the next monitor. It starts from now (older events are read
//! and skipped) unless asked for that backlog. Events carry the kernel's
//! monotonic time (`bpf_ktime_get_ns`), shown as wall-clock time.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    time::Duration,
};

use anyhow::{Result, bail};
use aya::maps::{Array, MapData};
use common::{
    DropEvent, DropReason, PortMeta,
    proto::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
};
use serde::Serialize;

use dataplane_config::MacAddr;

use crate::{
    datapath::{self, pinned, pins::c_str},
    show,
};

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// When the frame was dropped: UTC, RFC 3339.
    pub time: String,
    /// The same, in seconds since the Unix epoch.
    pub unix_time: f64,
    pub port: String,
    pub reason: String,
    pub ethertype: String,
    pub protocol: u8,
    pub src_mac: String,
    pub src: String,
    pub dst: String,
}

fn view(e: &DropEvent, meta: &Array<MapData, PortMeta>, clock: &WallClock) -> EventView {
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
    let unix_ns = clock.wall_ns(e.ns);
    EventView {
        time: rfc3339(unix_ns),
        unix_time: unix_ns as f64 / 1e9,
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

/// Which events to show.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Port indexes (empty: every port).
    pub ports: BTreeSet<u32>,
    /// Drop reasons (empty: every reason).
    pub reasons: BTreeSet<u32>,
}

impl Filter {
    /// Resolves ports (ids, names or taps) and reasons (names) of the
    /// live configuration; an unknown one is an error.
    pub fn new(instance: &str, ports: &[String], reasons: &[String]) -> Result<Filter> {
        let mut filter = Filter::default();
        if !ports.is_empty() {
            let view = show::named_ports(&datapath::instance_dir(instance))?;
            for p in ports {
                filter.ports.insert(view.find(p)?.index);
            }
        }
        for r in reasons {
            let Some(reason) = DropReason::ALL.iter().find(|d| d.name() == r) else {
                let names: Vec<&str> = DropReason::ALL.iter().map(|d| d.name()).collect();
                bail!("unknown drop reason {r:?} (one of: {})", names.join(", "));
            };
            filter.reasons.insert(*reason as u32);
        }
        Ok(filter)
    }

    fn admits(&self, e: &DropEvent) -> bool {
        (self.ports.is_empty() || self.ports.contains(&e.port))
            && (self.reasons.is_empty() || self.reasons.contains(&e.reason))
    }
}

/// How `monitor` runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub json: bool,
    /// Stop after this many events.
    pub count: Option<usize>,
    /// Show the events queued before the monitor started too.
    pub backlog: bool,
    pub filter: Filter,
}

/// Converts the kernel's monotonic nanoseconds to wall-clock time.
pub struct WallClock {
    /// Wall-clock minus monotonic time, in nanoseconds.
    offset: i128,
}

impl WallClock {
    pub fn now() -> WallClock {
        let mono = show::clock_ns(libc::CLOCK_MONOTONIC);
        let real = show::clock_ns(libc::CLOCK_REALTIME);
        WallClock {
            offset: real as i128 - mono as i128,
        }
    }

    /// Nanoseconds since the Unix epoch of the monotonic time `ns`.
    pub fn wall_ns(&self, ns: u64) -> u64 {
        (ns as i128 + self.offset).max(0) as u64
    }
}

/// `unix_ns` as UTC in RFC 3339, to the microsecond.
pub fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Prints events until `count` were printed (or forever).
pub fn run(dir: &Path, opts: &Options) -> Result<()> {
    let mut ring = pinned::EVENTS(dir)?;
    let meta = pinned::PORT_META(dir)?;
    let clock = WallClock::now();
    // Events older than this were queued before we started.
    let start_ns = show::clock_ns(libc::CLOCK_MONOTONIC);
    // On stderr, so that --json output stays JSON: scripts and tests wait
    // for this line before they make drops.
    eprintln!(
        "monitor: streaming drops of {} {}",
        show::instance_of(dir),
        if opts.backlog {
            "queued before now, then from now on".to_string()
        } else {
            format!("from {} on", rfc3339(clock.wall_ns(start_ns)))
        }
    );
    warn_lossy(dir);
    let mut printed = 0;
    loop {
        while let Some(item) = ring.next() {
            if item.len() < size_of::<DropEvent>() {
                continue;
            }
            // SAFETY: the datapath writes whole DropEvents; read unaligned.
            let e = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const DropEvent) };
            if (e.ns < start_ns && !opts.backlog) || !opts.filter.admits(&e) {
                continue;
            }
            let v = view(&e, &meta, &clock);
            if opts.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!(
                    "{} {} {} {} proto {} {} -> {} (from {})",
                    v.time, v.port, v.reason, v.ethertype, v.protocol, v.src, v.dst, v.src_mac
                );
            }
            printed += 1;
            if opts.count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Frames lost at a port's interface make no drop event (no program sees
/// them): said once, at the start, on stderr.
fn warn_lossy(dir: &Path) {
    let Ok(mut view) = show::named_ports(dir) else {
        return;
    };
    show::with_interfaces(&mut view);
    for p in &view.ports {
        for problem in p.interface.iter().flat_map(|i| &i.problems) {
            eprintln!(
                "monitor: port {} (tap {}): {}; these losses make no event here (fix: {})",
                p.id, p.tap, problem.detail, problem.fix
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // date -u -d @1700000000.123456 : 2023-11-14T22:13:20
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456Z"
        );
        // A leap day.
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn monotonic_times_become_wall_clock_times_near_now() {
        let clock = WallClock::now();
        let mono = show::clock_ns(libc::CLOCK_MONOTONIC);
        let real = show::clock_ns(libc::CLOCK_REALTIME);
        let diff = clock.wall_ns(mono) as i128 - real as i128;
        assert!(diff.abs() < 1_000_000_000, "{diff}");
    }
}

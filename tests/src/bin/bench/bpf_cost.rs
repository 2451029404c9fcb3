//! What the datapath's programs cost per packet under real traffic, from
//! the kernel's run-time statistics (BPF_ENABLE_STATS on for the measured
//! runs only): `from_vm` (with the routing program it tail-calls, whose
//! time the kernel charges to `from_vm`) and `to_vm`, for an established
//! flow, the first packet of a connection, a routed packet, one refused by
//! security groups and a spoofed one. The floor is an empty XDP program
//! measured the same way on the same frames: attached to the receiving
//! VM's eth0, it runs once for every frame delivered.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, ensure};
use lab::{
    lab::{Lab, Vm},
    topo::{config, network, pair, port, router, subnet},
};
use serde_json::json;

use super::{
    forwarding::{self, DPORT_MIN, Iface, dst_group, rounds, sink},
    hosts::stats,
    median_of, pick,
};

const SRC_MAC: &str = "fa:16:3e:f4:00:01";
const DST_MAC: &str = "fa:16:3e:f4:00:02";
const FAR_MAC: &str = "fa:16:3e:f4:00:03";
const GW1_MAC: &str = "fa:16:3e:f4:01:01";
const GW2_MAC: &str = "fa:16:3e:f4:01:02";
const SRC_IP: &str = "10.40.1.1";
const DST_IP: &str = "10.40.1.2";
const FAR_IP: &str = "10.40.2.5";

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Established,
    NewConnection,
    Routed,
    Refused,
    Spoofed,
}

impl Case {
    const ALL: [Case; 5] = [
        Case::Established,
        Case::NewConnection,
        Case::Routed,
        Case::Refused,
        Case::Spoofed,
    ];

    fn title(self) -> &'static str {
        match self {
            Case::Established => "established UDP flow, delivered",
            Case::NewConnection => "first packet of a connection (each a new one), delivered",
            Case::Routed => "routed (established flow to another network), delivered",
            Case::Refused => "refused by the receiver's security group",
            Case::Spoofed => "spoofed source, dropped by port security",
        }
    }

    /// trafgen's description of round `round`'s frames, and their number.
    fn trafgen(self, round: usize) -> (String, u64) {
        let n = pick(300_000, 5_000);
        let (da, saddr, daddr, sport, dport) = match self {
            Case::Established => (DST_MAC, SRC_IP, DST_IP, "1000".into(), DPORT_MIN),
            // A destination port of its own each round: its flows are new.
            Case::NewConnection => (
                DST_MAC,
                SRC_IP,
                DST_IP,
                format!("dinc(1024, {})", 1024 + n - 1),
                DPORT_MIN + 1 + round as u16,
            ),
            Case::Routed => (GW1_MAC, SRC_IP, FAR_IP, "1000".into(), DPORT_MIN),
            Case::Refused => (DST_MAC, SRC_IP, DST_IP, "1000".into(), 3000),
            Case::Spoofed => (DST_MAC, "10.66.0.1", DST_IP, "1000".into(), DPORT_MIN),
        };
        (
            format!(
                "{{ eth(da={da}, sa={SRC_MAC}), ipv4(saddr={saddr}, daddr={daddr}, ttl=64), \
                 udp(sp={sport}, dp={dport}), fill(0, 18) }}\n"
            ),
            n,
        )
    }

    fn delivered(self) -> bool {
        matches!(self, Case::Established | Case::NewConnection | Case::Routed)
    }
}

/// One round of one case: ns per run of each program, runs per frame sent.
struct Round {
    from_vm: f64,
    to_vm: f64,
    /// Every datapath program's time over frames sent (from_vm's runs).
    per_packet: f64,
    /// The empty program on the receiver, ns per run (delivered cases).
    floor: Option<f64>,
}

pub fn run() -> Result<String> {
    eprintln!("bench: bpf, building the datapath");
    let lab = build()?;
    let floor = EmptyXdp::attach(&lab.vms[1])?;
    let far_floor = EmptyXdp::attach(&lab.vms[2])?;
    let pid = lab.agent_pid().context("no agent")?;
    let ids = stats::programs_of(pid)?;
    let mut rows: Vec<Vec<Round>> = Case::ALL.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds() {
        for (i, &case) in Case::ALL.iter().enumerate() {
            eprintln!("bench: bpf, round {round}, {}", case.title());
            let to = if case == Case::Routed { 2 } else { 1 };
            let floor_id = if to == 2 { far_floor.id } else { floor.id };
            rows[i].push(measure(&lab, case, round, &ids, floor_id, to)?);
        }
    }
    report(&rows)
}

/// src and dst on net1, far on net2, router r1 between them; dst and far
/// admit only UDP to the benchmark's ports (`bench-dst`), src has pairs.
fn build() -> Result<Lab> {
    let mut lab = Lab::new(false)?;
    for (name, mac) in [("src", SRC_MAC), ("dst", DST_MAC), ("far", FAR_MAC)] {
        lab.add_vm(name, mac)?;
    }
    let (src, dst, far) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let mut ps = port(src, "net1", &[("s1", SRC_IP)]);
    ps["allowed_address_pairs"] = json!([pair("10.40.1.100", None)]);
    let mut pd = port(dst, "net1", &[("s1", DST_IP)]);
    pd["security_groups"] = json!(["bench-dst"]);
    let mut pf = port(far, "net2", &[("s2", FAR_IP)]);
    pf["security_groups"] = json!(["bench-dst"]);
    let (r1, r1_ports) = router(
        "r1",
        &[
            ("net1", GW1_MAC, &[("s1", "10.40.1.254")]),
            ("net2", GW2_MAC, &[("s2", "10.40.2.1")]),
        ],
    );
    let mut ports = vec![ps, pd, pf];
    ports.extend(r1_ports);
    let mut cfg = config(
        vec![network("net1"), network("net2")],
        vec![
            subnet("s1", "net1", "10.40.1.0/24", Some("10.40.1.254")),
            subnet("s2", "net2", "10.40.2.0/24", Some("10.40.2.1")),
        ],
        ports,
    );
    cfg["routers"] = json!([r1]);
    cfg["security_groups"]
        .as_array_mut()
        .context("groups")?
        .push(dst_group());
    for (vm, ip, gw) in [
        (src, SRC_IP, "10.40.1.254"),
        (dst, DST_IP, "10.40.1.254"),
        (far, FAR_IP, "10.40.2.1"),
    ] {
        vm.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip route add default via {gw}"
        ))?;
    }
    sink(dst)?;
    sink(far)?;
    // Room for every round's new connections (two zones each).
    lab.run_args = ["--max-connections", "524288"].map(String::from).to_vec();
    lab.start(&cfg)?;
    Ok(lab)
}

/// Opens the case's connection first (not measured), then sends the
/// measured frames with statistics on.
fn measure(
    lab: &Lab,
    case: Case,
    round: usize,
    ids: &[u32],
    floor_id: u32,
    to: usize,
) -> Result<Round> {
    let (desc, n) = case.trafgen(round);
    let (from, to) = (Iface::eth0(&lab.vms[0]), Iface::eth0(&lab.vms[to]));
    let dir = lab.dir.path();
    if matches!(case, Case::Established | Case::Routed) {
        forwarding::trafgen(from, to, dir, &desc, 100)?;
    }
    let mut all = ids.to_vec();
    all.push(floor_id);
    let on = stats::enable()?;
    let before = stats::read(&all)?;
    let sample = forwarding::trafgen(from, to, dir, &desc, n)?;
    let after = stats::read(&all)?;
    drop(on);
    let delivered_ok = if case.delivered() {
        sample.delivered * 10 >= sample.sent * 9
    } else {
        sample.delivered < 10
    };
    ensure!(
        delivered_ok,
        "{}: {} of {} frames delivered",
        case.title(),
        sample.delivered,
        sample.sent
    );
    let by_name: BTreeMap<String, stats::Counter> = stats::delta(&before, &after)
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let per_run = |name: &str| {
        by_name
            .get(name)
            .map(|c| c.ns as f64 / c.runs as f64)
            .unwrap_or(0.0)
    };
    let from_runs = by_name.get("from_vm").map(|c| c.runs).unwrap_or(0);
    ensure!(
        from_runs >= sample.sent,
        "{}: from_vm ran {from_runs} times for {} frames",
        case.title(),
        sample.sent
    );
    let floor_name = EmptyXdp::NAME;
    let datapath_ns: u64 = by_name
        .values()
        .filter(|c| c.name != floor_name)
        .map(|c| c.ns)
        .sum();
    eprintln!(
        "bench: bpf, {}: from_vm {:.0} ns, to_vm {:.0} ns per run",
        case.title(),
        per_run("from_vm"),
        per_run("to_vm")
    );
    Ok(Round {
        from_vm: per_run("from_vm"),
        to_vm: per_run("to_vm"),
        per_packet: datapath_ns as f64 / from_runs as f64,
        floor: by_name
            .get(floor_name)
            .filter(|_| case.delivered())
            .map(|c| c.ns as f64 / c.runs as f64),
    })
}

fn report(rows: &[Vec<Round>]) -> Result<String> {
    let med = |v: &[Round], f: fn(&Round) -> f64| median_of(v.iter().map(f).collect());
    let floors: Vec<f64> = rows.iter().flatten().filter_map(|r| r.floor).collect();
    ensure!(!floors.is_empty(), "the empty program never ran");
    let floor = median_of(floors);
    let mut md = String::from("## BPF time per packet under real traffic\n\n");
    md += &format!(
        "Kernel run-time statistics (BPF_ENABLE_STATS, on only while the measured frames \
         run; they add two clock reads to every program run, floor included) over {} frames \
         of 64 bytes a run sent by trafgen from one VM (veth) to another through the \
         datapath, median of {} rounds. `from_vm` includes the routing program it \
         tail-calls; `to_vm` runs once per delivered or refused frame. Per packet: the time \
         of every program of the datapath over the frames sent. Floor: an empty XDP program \
         (returns XDP_PASS) on the receiving VM's eth0, measured in the same runs on the \
         frames delivered; a forwarded packet runs two programs, so the ratio is to twice \
         the floor. Port security on both ports; the receiver's security group admits UDP \
         to a port range, the sender's allows everything.\n\n",
        pick(300_000, 5_000),
        rounds()
    );
    md += "| traffic | from_vm, ns per run | to_vm, ns per run | BPF per packet | ratio to two floor runs |\n";
    md += "|---|---:|---:|---:|---:|\n";
    md += &format!("| floor: empty XDP program, one run | – | – | {floor:.0} ns | 0.50 |\n");
    for (case, r) in Case::ALL.iter().zip(rows) {
        let total = med(r, |x| x.per_packet);
        md += &format!(
            "| {} | {:.0} | {} | {total:.0} ns | {:.2} |\n",
            case.title(),
            med(r, |x| x.from_vm),
            match med(r, |x| x.to_vm) {
                0.0 => "–".to_string(),
                v => format!("{v:.0}"),
            },
            total / (2.0 * floor),
        );
    }
    md += "\n";
    Ok(md)
}

/// A two-instruction XDP program (`r0 = XDP_PASS; exit`) attached to a
/// VM's eth0, loaded by hand so that it is as empty as a program can be.
/// Pinned while attached (`ip` attaches pinned programs); the pin goes
/// with the guard, the attachment with the VM's namespace.
struct EmptyXdp {
    pin: std::path::PathBuf,
    id: u32,
}

impl EmptyXdp {
    const NAME: &'static str = "bench_empty";

    fn attach(vm: &Vm) -> Result<EmptyXdp> {
        let pin = Path::new("/sys/fs/bpf").join(lab::netns::unique("bench-empty"));
        let fd = load_empty_xdp(Self::NAME)?;
        pin_fd(&fd, &pin)?;
        let guard = EmptyXdp {
            id: aya::programs::ProgramInfo::from_pin(&pin)?.id(),
            pin,
        };
        let path = guard.pin.to_str().context("pin path")?;
        vm.ns
            .exec(&["ip", "link", "set", "dev", "eth0", "xdpdrv", "pinned", path])?;
        Ok(guard)
    }
}

impl Drop for EmptyXdp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pin);
    }
}

/// bpf(2) with `attr` (zero-filled beyond what the command reads).
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a bpf_attr-sized buffer the kernel reads (and may
    // write) within its length.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load_empty_xdp(name: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    // BPF_MOV64_IMM(r0, XDP_PASS); BPF_EXIT.
    let insns: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let n = name.len().min(15);
    attr[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD of the empty program")?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

fn pin_fd(fd: &std::os::fd::OwnedFd, path: &Path) -> Result<()> {
    use std::os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _};
    const BPF_OBJ_PIN: libc::c_long = 6;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(c_path.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    bpf(BPF_OBJ_PIN, &mut attr).with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

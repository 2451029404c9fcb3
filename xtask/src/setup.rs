//! `cargo xtask setup`: makes a fresh Debian machine able to build, test,
//! demo and benchmark. Each step checks first, so a second run takes a
//! second or two.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::util::{output, require_root, status};

/// Debian packages the tests, demo and benchmarks use.
const PACKAGES: &[&str] = &[
    "bpftool",           // inspecting pinned maps (README, tests)
    "iproute2",          // namespaces, veth, bridge
    "iputils-ping",      // ping / ping -6
    "iputils-tracepath", // tracepath through the datapath's router
    "traceroute",        // traceroute (UDP and ICMP probes)
    "ndisc6",            // rdisc6: what a router advertises
    "arping",            // ARP and gratuitous ARP from VMs
    "tcpdump",           // debugging captures
    "python3-scapy",     // crafted and spoofed packets
    "keepalived",        // real VRRP between VMs sharing an address
    "iperf3",            // TCP/UDP traffic
    "hping3",            // adversarial traffic
    "netsniff-ng",       // trafgen, the benchmark's traffic generator
    "nftables",          // the iptables-style baseline in benchmarks
    // Neutron's firewall baseline: iptables-nft, iptables-legacy and
    // ebtables-nft, each called by that name (the `ebtables` package and
    // its alternative are not used: it selects ebtables-legacy, whose nat
    // table this kernel lacks).
    "iptables",
    // Open vSwitch, a benchmark peer with Neutron's OVS firewall flows. The
    // benchmark starts its own ovsdb-server and ovs-vswitchd (userspace
    // datapath: this kernel has no openvswitch module); the package's own
    // service is never started.
    "openvswitch-switch",
    "procps",            // sysctl
    "ethtool",           // GRO on veth (XDP redirect target)
    "netcat-openbsd",    // TCP/UDP connection tests
    "dnsmasq-base",      // DHCP server inside a VM
    "busybox",           // udhcpc, the DHCP client; the guests' initramfs
    "util-linux",        // nsenter
    "etcd-server",       // the north-bound database of many hosts (tests start it)
    "etcd-client",       // etcdctl, for inspecting it
    "protobuf-compiler", // protoc: the etcd client crate generates its gRPC code
    "libprotobuf-dev",   // the standard .proto files protoc needs
    "mariadb-server",    // Neutron's database in the ML2 driver tests (started by them)
    "python3-venv",      // the tests' venv for Neutron and the driver (Debian's python3)
    "prometheus",        // a real Prometheus scraping the agent, and promtool (tests)
    "qemu-system-x86",   // the VM tier: guests under TCG on real taps
    "cpio",              // packs the guests' initramfs
    "dpkg-dev",          // dpkg-shlibdeps: the package's library dependencies
    "systemd",           // systemd-analyze verify of the package's units
    "graphviz",          // dot: renders `dataplane show topology --dot` (tests)
];

/// Commands the tests, demo and benchmark run by name, and the package of
/// each: checked after the install, so that a package that stops shipping
/// one (or a tool used without its package listed) fails here, by name,
/// rather than halfway through a benchmark.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("nsenter", "util-linux"),
    ("sysctl", "procps"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("arping", "arping"),
    ("trafgen", "netsniff-ng"),
    ("nft", "nftables"),
    ("ebtables-nft", "iptables"),
    ("iptables-nft-restore", "iptables"),
    ("iptables-legacy-restore", "iptables"),
    ("keepalived", "keepalived"),
    ("ovsdb-tool", "openvswitch-common"),
    ("ovs-vsctl", "openvswitch-switch"),
    ("ovs-ofctl", "openvswitch-common"),
    ("ovs-appctl", "openvswitch-common"),
    ("ovsdb-server", "openvswitch-common"),
    ("ovs-vswitchd", "openvswitch-switch"),
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("bpftool", "bpftool"),
    ("stdbuf", "coreutils"),
    ("tracepath", "iputils-tracepath"),
    ("traceroute", "traceroute"),
    ("rdisc6", "ndisc6"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("promtool", "prometheus"),
    ("cpio", "cpio"),
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("systemd-analyze", "systemd"),
    ("dot", "graphviz"),
];

/// cargo-deb builds the Debian package (`cargo xtask package`, and the
/// package test). `cargo install --locked` takes the crate and its
/// dependencies at the checksums of its own Cargo.lock.
const CARGO_DEB_VERSION: &str = "3.8.0";

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    packages()?;
    tools()?;
    rust_components()?;
    bpf_linker()?;
    cargo_deb()?;
    eprintln!("setup: everything is in place");
    Ok(())
}

fn packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root("installing Debian packages")?;
    eprintln!("setup: installing {}", missing.join(" "));
    status(Command::new("apt-get").arg("update").arg("-q"))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn tools() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .collect();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !dirs.iter().any(|d| d.join(tool).is_file()))
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "setup: commands missing after the install: {}",
            missing.join(", ")
        );
    }
    Ok(())
}

fn installed_components(toolchain: &str) -> String {
    output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))
    .unwrap_or_default()
}

fn rust_components() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    for (toolchain, components) in [
        ("nightly", &["rust-src", "clippy", "rustfmt"][..]),
        ("stable", &["clippy", "rustfmt"][..]),
    ] {
        let installed = installed_components(toolchain);
        for c in components {
            if !installed.lines().any(|l| l.starts_with(c)) {
                status(Command::new("rustup").args([
                    "component",
                    "add",
                    c,
                    "--toolchain",
                    toolchain,
                ]))?;
            }
        }
    }
    Ok(())
}

fn cargo_deb() -> Result<()> {
    if output(Command::new("cargo").args(["deb", "--version"]))
        .is_some_and(|v| v.contains(CARGO_DEB_VERSION))
    {
        return Ok(());
    }
    eprintln!("setup: building cargo-deb {CARGO_DEB_VERSION} (about two minutes)");
    status(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
        "--locked",
    ]))
}

/// Where the libLLVM symlinks live; bpf-linker finds libLLVM through an
/// rpath to this folder, so it must outlast the build.
fn llvm_prefix() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".local/share/bpf-linker-llvm"))
}

fn bpf_linker_ok() -> bool {
    output(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
}

/// bpf-linker cannot be downloaded prebuilt and wants a system LLVM that
/// Debian lacks; it links instead against the libLLVM shipped with the
/// nightly toolchain (same LLVM major), see ../shared/TOOLCHAIN.md.
fn bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        return Ok(());
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot failed")?;
    let libdir = PathBuf::from(sysroot.trim()).join("lib");
    // The versioned soname, e.g. libLLVM.so.22.1-rust-1.97.0-nightly.
    let lib = std::fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", libdir.display()))?;
    let major = lib
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix = llvm_prefix()?;
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", lib.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libdir.join(&lib), &link)
            .with_context(|| format!("symlinking {}", link.display()))?;
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against {lib} (a few minutes)");
    status(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if !bpf_linker_ok() {
        bail!("bpf-linker was installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

//! `cargo xtask <task>`: everything a new machine needs, in one place.
//!
//! `run` and `test` call `setup` first, so the README's two commands work on
//! a fresh machine; `setup` only checks when everything is already there.

mod build;
mod package;
mod setup;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks: setup, build-ebpf, lint, test, run, bench, package")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh machine lacks: Debian packages, the nightly
    /// rust-src component, bpf-linker, cargo-deb (idempotent).
    Setup,
    /// Build the eBPF object (nightly, bpfel-unknown-none, with BTF).
    BuildEbpf,
    /// cargo fmt --check and clippy with warnings denied, for every crate.
    Lint,
    /// Build everything and run every test: unit, verdict and namespace
    /// tests (needs root).
    Test {
        /// Extra arguments for `cargo test` after `--` (a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// The demo: VM namespaces sharing a VRRP address, the datapath enforcing
    /// port security, a legitimate ping passing and a spoofed one dropped, a
    /// floating IP following the VRRP address, SNAT to the outside.
    Run {
        /// Keep the topology and datapath up until Ctrl-C, for inspection.
        #[arg(long)]
        hold: bool,
        /// The multi-host demo: three hypervisors, etcd, VXLAN, keepalived
        /// failing over when a host dies.
        #[arg(long)]
        hosts: bool,
    },
    /// Per-packet cost of each path against the empty-program floor, its
    /// scaling with ports, pairs and rules, and control-plane timings;
    /// writes results/bench.md and results/bench.svg (needs root).
    Bench {
        /// Every section with tiny counts into a temporary folder, checking
        /// that each produced its rows (CI; the numbers mean nothing).
        #[arg(long)]
        smoke: bool,
    },
    /// The Debian package (target/debian/dataplane_*.deb): the release
    /// binary with its eBPF object, systemd units, environment file, man
    /// pages, completions, Grafana dashboard and the ML2 driver's source.
    Package {
        /// Package the debug build instead (what the package test installs;
        /// no release build).
        #[arg(long)]
        dev: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::BuildEbpf => build::ebpf().map(|path| println!("{}", path.display())),
        Task::Lint => build::lint(),
        Task::Test { args } => {
            util::require_root("cargo xtask test")?;
            setup::run()?;
            let tests = build::test(&args);
            // The whole suite also checks that the benchmark still runs;
            // a filtered run is someone looking at a few tests.
            let smoke = if args.is_empty() {
                build::bench_smoke()
            } else {
                Ok(())
            };
            tests.and(smoke)
        }
        Task::Bench { smoke } => {
            util::require_root("cargo xtask bench")?;
            setup::run()?;
            if smoke {
                build::bench_smoke()
            } else {
                build::bench()
            }
        }
        Task::Package { dev } => {
            setup::run()?;
            let profile = if dev {
                package::Profile::Dev
            } else {
                package::Profile::Release
            };
            let deb = package::deb(profile)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Run { hold, hosts } => {
            util::require_root("cargo xtask run")?;
            setup::run()?;
            build::demo(hold, hosts)
        }
    }
}

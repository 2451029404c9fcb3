//! Building, linting, testing and the demo.

use std::{path::PathBuf, process::Command};

use anyhow::Result;

use crate::{
    package,
    util::{root, status, with_sigint_ignored},
};

pub fn ebpf() -> Result<PathBuf> {
    ebpf_build::build(&root()).map_err(anyhow::Error::msg)
}

pub fn lint() -> Result<()> {
    let root = root();
    status(
        Command::new("cargo")
            .args(["fmt", "--all", "--check"])
            .current_dir(&root),
    )?;
    status(ebpf_build::cargo(&root, "fmt").arg("--check"))?;
    status(
        Command::new("cargo")
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
    )?;
    status(ebpf_build::cargo(&root, "clippy").args(["--release", "--", "-D", "warnings"]))
}

/// Builds the `dataplane` binary and returns its path.
pub fn dataplane_bin() -> Result<PathBuf> {
    let root = root();
    status(
        Command::new("cargo")
            .args(["build", "-p", "dataplane-user", "--bins"])
            .current_dir(&root),
    )?;
    Ok(root.join("target/debug/dataplane"))
}

pub fn test(args: &[String]) -> Result<()> {
    let bin = dataplane_bin()?;
    // The package test installs this one (the debug build, packaged).
    let deb = package::deb(package::Profile::Dev)?;
    with_sigint_ignored(|| {
        status(
            Command::new("cargo")
                .args(["test", "--workspace", "--no-fail-fast", "--"])
                .args(args)
                .current_dir(root())
                .env("DATAPLANE_BIN", &bin)
                .env("DATAPLANE_DEB", &deb),
        )
    })
}

pub fn demo(hold: bool, hosts: bool) -> Result<()> {
    let bin = dataplane_bin()?;
    let (demo, config) = if hosts {
        ("demo_hosts", "demo/hosts.toml")
    } else {
        ("demo", "demo/demo.toml")
    };
    with_sigint_ignored(|| {
        status(
            Command::new("cargo")
                .args(["run", "--quiet", "-p", "tests", "--bin", demo, "--"])
                .arg(root().join(config))
                .args(hold.then_some("--hold"))
                .current_dir(root())
                .env("DATAPLANE_BIN", &bin),
        )
    })
}

/// The benchmark binary (release build: control-plane timings depend on
/// it), with a release agent: the multi-host sections time agents applying
/// changes from etcd.
pub fn bench() -> Result<()> {
    let root = root();
    status(
        Command::new("cargo")
            .args(["build", "--release", "-p", "dataplane-user", "--bins"])
            .current_dir(&root),
    )?;
    let bin = root.join("target/release/dataplane");
    status(
        Command::new("cargo")
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "tests",
                "--bin",
                "bench",
                "--",
            ])
            .arg(root.join("results"))
            .current_dir(&root)
            .env("DATAPLANE_BIN", &bin),
    )
}

/// `cargo xtask bench --smoke`: every section of the benchmark with tiny
/// counts (`BENCH_SMOKE`), debug builds (those `test` already made), into a
/// temporary folder; the benchmark fails a section that produced no rows,
/// and this checks that every section's heading is in the output.
pub fn bench_smoke() -> Result<()> {
    let started = std::time::Instant::now();
    let bin = dataplane_bin()?;
    let out = tempfile_dir("aap-bench-smoke")?;
    let result = with_sigint_ignored(|| {
        status(
            Command::new("cargo")
                .args(["run", "--quiet", "-p", "tests", "--bin", "bench", "--"])
                .arg(&out)
                .current_dir(root())
                .env("DATAPLANE_BIN", &bin)
                .env("BENCH_SMOKE", "1"),
        )
    })
    .and_then(|()| check_smoke_output(&out.join("bench.md")));
    let _ = std::fs::remove_dir_all(&out);
    result?;
    eprintln!(
        "bench smoke: every section ran, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Headings every full run of the benchmark writes, one per section.
const SECTION_HEADINGS: &[&str] = &[
    "## Paths",
    "## Routing",
    "## Control plane",
    "## BPF time per packet under real traffic",
    "## Forwarding between real interfaces",
    "## Forwarding between real taps",
    "## VRRP failover",
    "## Forwarding across hosts",
    "## etcd write to the first packet on another host",
    "## VIP failover across hosts",
    "## Cloud scale",
];

fn check_smoke_output(md: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(md).map_err(|e| anyhow::anyhow!("{}: {e}", md.display()))?;
    let missing: Vec<&str> = SECTION_HEADINGS
        .iter()
        .copied()
        .filter(|h| !text.lines().any(|l| l.starts_with(h)))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "bench smoke: sections missing from {}: {missing:?}",
        md.display()
    );
    Ok(())
}

/// A fresh folder under the system's temporary directory.
fn tempfile_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

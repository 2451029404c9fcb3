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

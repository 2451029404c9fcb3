//! `cargo xtask package`: the Debian package (cargo-deb, with the metadata
//! in dataplane-user/Cargo.toml): the `dataplane` binary with its eBPF
//! object embedded, systemd units, the environment file, man pages and
//! shell completions generated from the CLI, the Grafana dashboard and the
//! ML2 driver's source.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use crate::{build, util::root, util::status};

/// Which build goes into the package.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// What operators install (`cargo build --release`).
    Release,
    /// The debug binary `cargo xtask test` already built: the package test
    /// checks the package's layout, scripts and units without a second,
    /// release build of everything (minutes on this machine).
    Dev,
}

/// Builds the package and returns its path (under target/debian/).
pub fn deb(profile: Profile) -> Result<PathBuf> {
    let root = root();
    let bin = match profile {
        Profile::Release => {
            status(
                Command::new("cargo")
                    .args([
                        "build",
                        "--release",
                        "-p",
                        "dataplane-user",
                        "--bin",
                        "dataplane",
                    ])
                    .current_dir(&root),
            )?;
            root.join("target/release/dataplane")
        }
        Profile::Dev => build::dataplane_bin()?,
    };
    docs(&bin, &root.join("packaging/generated"))?;
    let out_dir = root.join("target/debian");
    std::fs::create_dir_all(&out_dir)?;
    let mut cmd = Command::new("cargo");
    cmd.args(["deb", "-p", "dataplane-user", "--no-build", "--output"])
        .arg(&out_dir)
        .current_dir(&root);
    match profile {
        // The release profile keeps debug info (debug = 1, for perf and
        // backtraces): into a -dbgsym .ddeb beside the package, as Debian
        // does, so that the package itself is stripped (15 MB, not 86).
        Profile::Release => cmd.arg("--dbgsym"),
        // cargo-deb warns that it is meant for releases: this one is a test
        // package, and quicker compression saves most of its time.
        Profile::Dev => cmd.args(["--profile", "dev", "--fast"]),
    };
    let before = debs(&out_dir)?;
    status(&mut cmd)?;
    newest_deb(&out_dir, &before)
}

/// Completions and gzipped man pages, from the binary being packaged.
fn docs(bin: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    status(Command::new(bin).arg("generate-docs").arg(dir))?;
    let pages = std::fs::read_dir(dir.join("man"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    // -n: no name or time stamp inside, so rebuilt pages are identical.
    status(Command::new("gzip").arg("-9nf").args(pages))
}

fn debs(dir: &Path) -> Result<Vec<(PathBuf, std::time::SystemTime)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.path().extension().is_some_and(|x| x == "deb") {
            v.push((e.path(), e.metadata()?.modified()?));
        }
    }
    Ok(v)
}

/// The .deb cargo-deb just wrote (its name carries version and
/// architecture, which are cargo-deb's to compute).
fn newest_deb(dir: &Path, before: &[(PathBuf, std::time::SystemTime)]) -> Result<PathBuf> {
    let after = debs(dir)?;
    let written = after
        .into_iter()
        .filter(|a| !before.contains(a))
        .max_by_key(|(_, t)| *t)
        .map(|(p, _)| p);
    match written {
        Some(p) => Ok(p),
        None => bail!("cargo deb wrote no .deb in {}", dir.display()),
    }
}

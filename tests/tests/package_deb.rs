//! The Debian package as an operator meets it: `dpkg -i` on this machine,
//! `dataplane --version` from it, its units through `systemd-analyze
//! verify` (systemd is not PID 1 here: verified, never started), man
//! pages, completions and the example configuration; an upgrade keeps
//! the operator's edits; `dpkg -r` keeps only the conffile, `dpkg --purge`
//! leaves nothing behind.
//!
//! `cargo xtask test` packages the debug build it tests and passes the .deb
//! in DATAPLANE_DEB (`cargo xtask test package_` runs this test alone).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use lab::{hostlock::HostLock, netns::run};

const UNITS: &str = "/usr/lib/systemd/system";
const ENV_FILE: &str = "/etc/default/dataplane";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

fn deb() -> PathBuf {
    std::env::var_os("DATAPLANE_DEB")
        .map(PathBuf::from)
        .expect("DATAPLANE_DEB is not set: run `cargo xtask test package_` (it builds the package)")
}

/// dpkg with its arguments; waits (up to 5 min) while another dpkg or apt
/// holds the database lock, as apt's DPkg::Lock::Timeout would.
fn dpkg(args: &[&str]) -> Result<Output> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("dpkg").args(args).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Ok(out);
        }
        if !err.contains("lock") || Instant::now() > deadline {
            bail!(
                "dpkg {args:?} failed ({}):\n{}{err}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "dataplane"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Purges the package when the test ends, passed or failed.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = dpkg(&["--purge", "dataplane"]);
    }
}

/// The paths the package holds (files, not directories), from the .deb.
fn package_files(deb: &Path) -> Result<Vec<String>> {
    let out = run(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect())
}

/// Anything the package or its scripts may have left, by path: its files,
/// the config directory, and whatever deb-systemd-helper recorded or
/// linked for its units.
fn leftovers(files: &[String]) -> Result<Vec<String>> {
    let mut left: Vec<String> = files
        .iter()
        .filter(|f| Path::new(f).symlink_metadata().is_ok())
        .cloned()
        .collect();
    for p in ["/etc/dataplane", "/var/lib/dpkg/info/dataplane.list"] {
        if Path::new(p).symlink_metadata().is_ok() {
            left.push(p.to_string());
        }
    }
    let dirs = [
        "/etc/systemd",
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ];
    let dirs = dirs.iter().filter(|d| Path::new(d).exists());
    let found = stdout(
        Command::new("find")
            .args(dirs)
            .args(["-name", "*dataplane*"]),
    )?;
    left.extend(found.lines().map(str::to_string));
    Ok(left)
}

fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8_lossy(&run(cmd)?.stdout).into_owned())
}

#[test]
fn package_installs_verifies_upgrades_and_purges() -> Result<()> {
    lab::require_root!();
    let deb = deb();
    let _lock = HostLock::take("dpkg-dataplane")?;
    assert!(
        !installed(),
        "a dataplane package is already installed here; this test installs and purges its own \
         (dpkg --purge dataplane first)"
    );
    let files = package_files(&deb)?;
    // The check below must be able to see what it looks for.
    assert!(leftovers(&files)?.is_empty(), "{:?}", leftovers(&files)?);
    let _purge = Purge;
    dpkg(&["-i", deb.to_str().unwrap()])?;

    let version = stdout(Command::new("/usr/bin/dataplane").arg("--version"))?;
    assert_eq!(
        version.trim(),
        format!("dataplane {}", env!("CARGO_PKG_VERSION"))
    );
    for f in &files {
        assert!(
            Path::new(f).exists(),
            "{f} is in the package but not installed"
        );
    }
    installed_files(&files)?;
    assert!(
        leftovers(&files)?.len() > files.len(),
        "nothing of the units recorded"
    );
    verify_units()?;
    docs_and_completions()?;
    upgrade_keeps_edits(&deb)?;

    dpkg(&["-r", "dataplane"])?;
    assert!(!Path::new("/usr/bin/dataplane").exists());
    assert!(
        Path::new(ENV_FILE).exists(),
        "dpkg -r removes the conffile (only purge should)"
    );
    dpkg(&["--purge", "dataplane"])?;
    assert_eq!(leftovers(&files)?, Vec::<String>::new(), "left after purge");
    assert!(!installed());
    Ok(())
}

/// What an operator looks for: the binary, both units, the environment
/// file, man pages, completions, the dashboard and the ML2 driver.
fn installed_files(files: &[String]) -> Result<()> {
    for want in [
        "/usr/bin/dataplane",
        "/usr/lib/systemd/system/dataplane.service",
        "/usr/lib/systemd/system/dataplane-etcd.service",
        ENV_FILE,
        "/usr/share/man/man1/dataplane.1.gz",
        "/usr/share/man/man1/dataplane-run.1.gz",
        "/usr/share/man/man1/dataplane-show-ports.1.gz",
        "/usr/share/bash-completion/completions/dataplane",
        "/usr/share/zsh/vendor-completions/_dataplane",
        "/usr/share/fish/vendor_completions.d/dataplane.fish",
        "/usr/share/doc/dataplane/examples/dataplane.toml",
        "/usr/share/dataplane/grafana/dataplane.json",
        "/usr/share/dataplane/networking-aap/pyproject.toml",
        "/usr/share/dataplane/networking-aap/networking_aap/ml2/mech_driver.py",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} missing from the package:\n{files:#?}"
        );
    }
    // The hidden generator has no page; each visible subcommand has one.
    assert!(!files.iter().any(|f| f.contains("generate-docs")));
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/dataplane.conffiles")?;
    assert_eq!(conffiles.trim(), ENV_FILE);
    Ok(())
}

/// The units as systemd reads them (ExecStart binaries, man pages named
/// in Documentation=, syntax), the file unit enabled by the package and
/// the etcd one not (they conflict), and the directory for the config.
fn verify_units() -> Result<()> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("{UNITS}/dataplane.service"))
        .arg(format!("{UNITS}/dataplane-etcd.service"))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("dataplane")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify warns:\n{err}");
    // /lib is /usr/lib on Debian 12: compare where the link leads.
    let link = std::fs::canonicalize(format!("{WANTS}/dataplane.service"))?;
    assert_eq!(link, Path::new(UNITS).join("dataplane.service"));
    assert!(!Path::new(&format!("{WANTS}/dataplane-etcd.service")).exists());
    assert!(Path::new("/etc/dataplane").is_dir());
    Ok(())
}

fn docs_and_completions() -> Result<()> {
    let page = stdout(Command::new("man").args(["-w", "dataplane-run"]))?;
    assert_eq!(page.trim(), "/usr/share/man/man1/dataplane-run.1.gz");
    let text = stdout(
        Command::new("sh")
            .arg("-c")
            .arg("zcat /usr/share/man/man1/dataplane-run.1.gz"),
    )?;
    assert!(
        text.contains("max\\-connections") || text.contains("max-connections"),
        "{text}"
    );
    let spec =
        stdout(Command::new("bash").arg("-c").arg(
            "source /usr/share/bash-completion/completions/dataplane && complete -p dataplane",
        ))?;
    assert!(spec.contains("dataplane"), "{spec}");
    // The shipped example is a configuration the shipped binary accepts.
    run(Command::new("/usr/bin/dataplane").args([
        "check",
        "--skip-interfaces",
        "--config",
        "/usr/share/doc/dataplane/examples/dataplane.toml",
    ]))?;
    Ok(())
}

/// Installing the package again (an upgrade, as dpkg runs it) keeps the
/// operator's edit of the conffile and the unit enabled.
fn upgrade_keeps_edits(deb: &Path) -> Result<()> {
    let edited = std::fs::read_to_string(ENV_FILE)? + "DATAPLANE_OPTS=\"--metrics 0.0.0.0:9477\"\n";
    std::fs::write(ENV_FILE, &edited)?;
    dpkg(&["-i", deb.to_str().unwrap()])?;
    assert_eq!(std::fs::read_to_string(ENV_FILE)?, edited);
    assert!(Path::new(&format!("{WANTS}/dataplane.service")).exists());
    Ok(())
}

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{what} needs root (network namespaces, XDP, bpffs, apt-get): run it with sudo");
    }
    Ok(())
}

/// Runs a command with inherited stdio; fails if it fails.
pub fn status(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout if it succeeded.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Ignores SIGINT in this process while `f` runs a child: Ctrl-C reaches the
/// child (same process group), which cleans up and exits; we then report.
pub fn with_sigint_ignored<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: installing SIG_IGN and restoring the previous disposition.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let r = f();
    unsafe { libc::signal(libc::SIGINT, old) };
    r
}

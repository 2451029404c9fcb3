//! Network namespaces with unique names, removed when dropped (also when a
//! test fails and unwinds).

use std::{
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: namespace and interface
/// names must fit 15 bytes where they end up in interface names.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command, failing with its output if it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub fn sh(script: &str) -> Result<Output> {
    run(Command::new("sh").arg("-c").arg(script))
}

/// Runs `f` on a thread that lives in the network namespace at `path`
/// (`/run/netns/NAME`): setns affects only the calling thread. For
/// holders of a namespace's path rather than of its [`Netns`].
pub fn run_in<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = path.to_string();
    let name = path.clone();
    std::thread::spawn(move || -> Result<T> {
        use std::os::fd::AsRawFd as _;
        let nsfile = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        // SAFETY: setns on a valid namespace fd, for this thread only.
        if unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns {path}: {}", std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in {name} panicked"))?
}

#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Result<Netns> {
        let name = unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command that runs inside the namespace. Only the network namespace
    /// changes (nsenter, not `ip netns exec`), so /sys/fs/bpf stays the
    /// host's and pinned maps are shared with the test.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(program);
        c
    }

    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let (program, rest) = args.split_first().expect("a command");
        run(self.command(program).args(rest))
    }

    /// Runs a command that is allowed to fail; returns its output.
    pub fn try_exec(&self, args: &[&str]) -> Result<Output> {
        let (program, rest) = args.split_first().expect("a command");
        Ok(self
            .command(program)
            .args(rest)
            .stdin(Stdio::null())
            .output()?)
    }

    pub fn sh(&self, script: &str) -> Result<Output> {
        run(self.command("sh").arg("-c").arg(script))
    }

    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs `f` on a thread that lives in this namespace (setns affects only
    /// the calling thread), and returns its result.
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        run_in(&self.path(), f)
    }

    /// The interface index of `ifname` inside this namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let index = text
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("no ifindex in {text:?}"))?;
        Ok(index)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs in the namespace so it can go away.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

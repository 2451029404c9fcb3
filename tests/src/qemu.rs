//! Real VMs: QEMU guests (TCG: this machine's /dev/kvm cannot run them)
//! with a virtio-net NIC on a real tap in the hypervisor namespace, named
//! as Neutron names taps. The test drives each guest through its serial
//! console (QEMU's stdio): a command, then the line that says it ended.
//! A guest is killed by its PID when dropped; its tap goes with its
//! namespace.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{guest::Image, netns::Netns};

pub struct Guest {
    pub name: String,
    pub tap: String,
    pub mac: String,
    child: Child,
    stdin: ChildStdin,
    /// Everything the console printed so far.
    console: Arc<Mutex<String>>,
    commands: u32,
}

impl Guest {
    /// Creates `tap` in `hv` and boots a guest on it with `mac` and the
    /// address `ip_cidr`; returns at once (see [`Guest::wait_ready`]).
    pub fn boot(
        hv: &Netns,
        image: &Image,
        name: &str,
        tap: &str,
        mac: &str,
        ip_cidr: &str,
    ) -> Result<Guest> {
        hv.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        hv.ip(&["link", "set", tap, "up"])?;
        let mut child = hv
            .command("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-m",
                "160",
                "-smp",
                "1",
                "-nodefaults",
                "-no-user-config",
            ])
            .args([
                "-display",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .arg("-append")
            // no_timer_check: on a loaded host TCG can miss the kernel's
            // IO-APIC timer check, which then panics.
            .arg(format!(
                "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check aap.ip={ip_cidr}"
            ))
            .arg("-netdev")
            .arg(format!(
                "tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off"
            ))
            // No checksum offload: the guest fills in its checksums, as a
            // frame that XDP redirects keeps no note of one to be done.
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=n0,mac={mac},csum=off,guest_csum=off,romfile="
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let console = Arc::new(Mutex::new(String::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let console = console.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut c = console.lock().unwrap();
                    c.push_str(line.trim_end_matches('\r'));
                    c.push('\n');
                }
            });
        }
        let stdin = child.stdin.take().unwrap();
        Ok(Guest {
            name: name.to_string(),
            tap: tap.to_string(),
            mac: mac.to_string(),
            child,
            stdin,
            console,
            commands: 0,
        })
    }

    pub fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// Waits until `within` for a console line holding `marker`; returns
    /// the line from the marker on (a prompt or the kernel may precede it).
    fn wait_line(&mut self, marker: &str, from: usize, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let c = self.console();
            if let Some(l) = c
                .get(from..)
                .unwrap_or("")
                .lines()
                .find_map(|l| l.find(marker).map(|i| &l[i..]))
            {
                return Ok(l.to_string());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("guest {} exited ({status}); console:\n{c}", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "guest {}: no line {marker:?} after {within:?}; console:\n{c}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the guest's /init to say its network is up.
    pub fn wait_ready(&mut self, within: Duration) -> Result<()> {
        self.wait_line("aap-guest: ready", 0, within).map(drop)
    }

    /// Runs `cmd` in the guest's shell; its exit status and output.
    pub fn sh(&mut self, cmd: &str, within: Duration) -> Result<(i32, String)> {
        self.commands += 1;
        let n = self.commands;
        let from = self.console().len();
        // The marker is printed by printf, so the command's own text (were
        // it echoed) never matches it.
        writeln!(self.stdin, "{cmd} 2>&1; printf '@@%s %s\\n' {n} $?")?;
        self.stdin.flush()?;
        let line = self.wait_line(&format!("@@{n} "), from, within)?;
        let code = line
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        let c = self.console();
        let marker = format!("@@{n} ");
        let output = c
            .get(from..)
            .unwrap_or("")
            .split(&marker)
            .next()
            .unwrap_or_default()
            .to_string();
        Ok((code, output))
    }

    /// Runs `cmd`, failing with its output unless it exits 0.
    pub fn ok(&mut self, cmd: &str, within: Duration) -> Result<String> {
        let (code, out) = self.sh(cmd, within)?;
        if code != 0 {
            bail!("{}: `{cmd}` exited {code}:\n{out}", self.name);
        }
        Ok(out)
    }

    /// One ping to `dst` (from `src` if given), retried until a reply or
    /// until `within`: the first can be lost to ARP resolving.
    pub fn reaches(&mut self, dst: &str, src: Option<&str>, within: Duration) -> Result<()> {
        let from = src.map(|s| format!("-I {s} ")).unwrap_or_default();
        let deadline = Instant::now() + within;
        loop {
            let (code, out) = self.sh(
                &format!("ping -c 1 -W 1 {from}{dst}"),
                Duration::from_secs(30),
            )?;
            if code == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no reply from {dst} within {within:?}:\n{out}",
                    self.name
                );
            }
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

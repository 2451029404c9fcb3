//! A ping running in a VM while the test changes something, each reply
//! stamped with the wall-clock time it arrived (`ping -D`): when the
//! datapath started or stopped letting the pings through, to within the
//! ping's interval, and how many were lost across a failover.
//!
//! Wall-clock time, because ping stamps its replies with it; compare with
//! [`now`], taken when an API call returned.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use crate::lab::Vm;

/// Seconds since the epoch, as `ping -D` prints them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// One reply: when it arrived, and its icmp_seq.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub at: f64,
    pub seq: u32,
}

pub struct Pinger {
    child: Option<Child>,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pinger {
    /// Pings `dst` from `vm` (from `src` if given) every `interval`
    /// seconds (0.01 and up) until [`Pinger::finish`] or drop.
    pub fn start(vm: &Vm, src: Option<&str>, dst: &str, interval: &str) -> Result<Pinger> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("ping.out");
        let mut cmd = vm.ns.command("stdbuf");
        // Line-buffered, so that replies can be read while it runs; -O:
        // a line for each request unanswered when the next one goes; -c:
        // a bound should the test die without dropping it. Not -w: with a
        // deadline ping exits at the first ICMP error, and a router now
        // answers a request it cannot route with one.
        cmd.args([
            "-oL", "ping", "-D", "-O", "-n", "-i", interval, "-W", "1", "-c", "30000",
        ]);
        if let Some(src) = src {
            cmd.args(["-I", src]);
        }
        let child = cmd
            .arg(dst)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting ping")?;
        Ok(Pinger {
            child: Some(child),
            out,
            _dir: dir,
        })
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The replies so far, in order.
    pub fn replies(&self) -> Vec<Reply> {
        self.text().lines().filter_map(parse_reply).collect()
    }

    /// How many requests got no reply: no answer when the next one went,
    /// or an ICMP error instead (a router saying the destination is
    /// unreachable).
    pub fn unanswered(&self) -> usize {
        self.text()
            .lines()
            .filter(|l| {
                l.contains("no answer yet")
                    || (l.contains("icmp_seq=") && !l.contains(" bytes from "))
            })
            .count()
    }

    /// Stops the ping (SIGINT: it prints its summary); returns (sent,
    /// received).
    pub fn finish(mut self) -> Result<(u32, u32)> {
        let mut child = self.child.take().context("finished already")?;
        // SAFETY: signalling a child we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait()?;
        let text = self.text();
        summary(&text).with_context(|| format!("no ping summary in:\n{text}"))
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a line of ping's output is a reply: an ICMP error about a
/// request (a router saying the destination is unreachable) names the
/// request's icmp_seq too, but is no reply.
fn is_reply(line: &str) -> bool {
    line.contains(" bytes from ")
}

fn seq_of(line: &str) -> Option<u32> {
    line.split("icmp_seq=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The icmp_seq of every reply in ping's output, in order.
pub fn answered(text: &str) -> Vec<u32> {
    text.lines()
        .filter(|l| is_reply(l))
        .filter_map(seq_of)
        .collect()
}

/// ping's summary line: (transmitted, received).
pub fn summary(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*n.first()?, *n.get(1)?))
}

/// "[1734567890.123456] 64 bytes from 10.0.0.1: icmp_seq=7 ttl=64 time=0.5 ms"
fn parse_reply(line: &str) -> Option<Reply> {
    if !is_reply(line) {
        return None;
    }
    let at = line.strip_prefix('[')?.split(']').next()?.parse().ok()?;
    Some(Reply {
        at,
        seq: seq_of(line)?,
    })
}

/// The longest time between two consecutive replies.
pub fn longest_gap(replies: &[Reply]) -> Duration {
    replies
        .windows(2)
        .map(|w| Duration::from_secs_f64((w[1].at - w[0].at).max(0.0)))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_replies_and_ignores_the_rest() {
        let r = parse_reply(
            "[1734567890.123456] 64 bytes from 10.0.0.1: icmp_seq=7 ttl=64 time=0.512 ms",
        )
        .unwrap();
        assert_eq!(r.seq, 7);
        assert!((r.at - 1734567890.123456).abs() < 1e-6);
        assert!(parse_reply("PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.").is_none());
        assert!(
            parse_reply("[1734567890.1] From 10.0.0.2 icmp_seq=3 Destination Host Unreachable")
                .is_none()
        );
    }
}

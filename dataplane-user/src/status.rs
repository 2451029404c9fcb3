//! `dataplane status`: is an agent running the instance, where does its
//! configuration come from, is what runs what its source holds, which
//! ports wait for their tap and which lose frames at their interface, and
//! a one-line verdict. Read from the instance's lock (the agent), the
//! agent's status record (`agent_status`), the pinned maps and the
//! interfaces.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::{
    agent_status::{AgentRecord, Attempt, SourceRecord, now},
    datapath, lifecycle,
    link_health::LinkHealth,
    lock,
    monitor::rfc3339,
    show::{self, PendingView},
};

#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    pub instance: String,
    pub agent: AgentView,
    /// The pinned datapath (None: nothing pinned).
    pub datapath: Option<DatapathView>,
    /// Where the configuration comes from (as the last agent said).
    pub source: Option<SourceRecord>,
    pub last_attempt: Option<Attempt>,
    pub last_error: Option<Attempt>,
    pub pending: Vec<PendingView>,
    /// Ports whose interface loses frames the datapath sends (or whose
    /// TCP/UDP arrive with bad checksums).
    pub lossy: Vec<LossyPort>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentView {
    /// "running", "starting" (it holds the lock but has not said so yet)
    /// or "not running".
    pub state: String,
    pub pid: Option<u32>,
    /// When it started (seconds since the Unix epoch), and how long ago.
    pub started: Option<f64>,
    pub uptime_secs: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatapathView {
    /// The generation in force (the live slot's).
    pub generation: u64,
    pub active_slot: u32,
    /// Ports attached to their tap on this host.
    pub ports: usize,
    /// Ports on other chassis.
    pub remote_ports: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct LossyPort {
    pub id: String,
    pub name: String,
    pub tap: String,
    pub interface: LinkHealth,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub ok: bool,
    pub summary: String,
}

/// The status of `instance`; an instance with neither an agent nor
/// pinned state is an error.
pub fn status(instance: &str) -> Result<StatusView> {
    let dir = datapath::instance_dir(instance);
    let holder = lock::running_agent(instance)?;
    let record = AgentRecord::read(instance);
    let mut ports = dir
        .join("maps")
        .is_dir()
        .then(|| show::named_ports(&dir))
        .transpose()?;
    if holder.is_none() && ports.is_none() {
        bail!(lifecycle::NoInstance {
            instance: instance.to_string(),
            dir,
            known: lifecycle::known_instances(),
        });
    }
    let agent = agent_view(holder, record.as_ref());
    let running = agent.state == "running";
    let mut lossy = Vec::new();
    if let Some(view) = &mut ports {
        show::with_interfaces(view);
        lossy = view
            .ports
            .iter()
            .filter_map(|p| {
                let i = p.interface.as_ref().filter(|i| !i.problems.is_empty())?;
                Some(LossyPort {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    tap: p.tap.clone(),
                    interface: i.clone(),
                })
            })
            .collect();
    }
    let mut view = StatusView {
        instance: instance.to_string(),
        agent,
        datapath: ports.as_ref().map(|p| DatapathView {
            generation: p.generation,
            active_slot: p.active_slot,
            ports: p.ports.len(),
            remote_ports: p.remote.len(),
        }),
        source: record.as_ref().map(|r| r.source.clone()),
        last_attempt: record.as_ref().and_then(|r| r.last_attempt.clone()),
        last_error: record.as_ref().and_then(|r| r.last_error.clone()),
        pending: record.as_ref().map(show::pending).unwrap_or_default(),
        lossy,
        verdict: Verdict {
            ok: false,
            summary: String::new(),
        },
    };
    view.verdict = verdict(&view, running);
    Ok(view)
}

/// Who holds the instance's lock, against what the record says.
fn agent_view(holder: Option<Option<u32>>, record: Option<&AgentRecord>) -> AgentView {
    let started = |pid: u32| record.filter(|r| r.pid == pid).map(|r| r.started);
    let (state, pid, started) = match holder {
        Some(Some(pid)) => match started(pid) {
            Some(at) => ("running", Some(pid), Some(at)),
            None => ("starting", Some(pid), None),
        },
        Some(None) => ("starting", None, None),
        None => ("not running", None, None),
    };
    AgentView {
        state: state.into(),
        pid,
        started,
        uptime_secs: started.map(|s| (now() - s).max(0.0)),
    }
}

/// One line: all is well, or what is not.
fn verdict(v: &StatusView, running: bool) -> Verdict {
    let mut problems = Vec::new();
    match v.agent.state.as_str() {
        "running" => {}
        // A holder without a PID may also be `dataplane stop` at work.
        "starting" => problems.push(
            "the agent is starting (or `dataplane stop` is removing the instance)".to_string(),
        ),
        _ => problems.push(
            "no agent runs: the pinned datapath enforces what it was left with, and nothing \
             follows taps or configuration changes (start `dataplane run`)"
                .to_string(),
        ),
    }
    if let Some(a) = v.last_attempt.as_ref().filter(|a| a.refused()) {
        problems.push(format!(
            "the configuration given last ({}) was {}: an older one is in force",
            a.trigger, a.outcome
        ));
    }
    if running
        && v.source
            .as_ref()
            .is_some_and(|s| s.connected == Some(false))
    {
        problems.push("the agent does not reach its database".into());
    }
    if !v.pending.is_empty() {
        problems.push(format!("{} port(s) wait for their tap", v.pending.len()));
    }
    if !v.lossy.is_empty() {
        problems.push(format!(
            "{} port(s) lose frames at their interface",
            v.lossy.len()
        ));
    }
    if problems.is_empty() {
        let (generation, ports) = v
            .datapath
            .as_ref()
            .map(|d| (d.generation, d.ports))
            .unwrap_or_default();
        let from = v
            .source
            .as_ref()
            .map(|s| s.describe.as_str())
            .unwrap_or("?");
        return Verdict {
            ok: true,
            summary: format!(
                "ok: enforcing generation {generation} from {from}, {ports} port(s) attached"
            ),
        };
    }
    Verdict {
        ok: false,
        summary: format!("attention: {}", problems.join("; ")),
    }
}

/// `dataplane status` for people.
pub fn render(v: &StatusView) -> String {
    let mut s = String::new();
    let a = &v.agent;
    let _ = match (a.pid, a.uptime_secs) {
        (Some(pid), Some(up)) => writeln!(
            s,
            "instance {}: agent running, PID {pid}, up {} (since {})",
            v.instance,
            duration(up),
            rfc3339((a.started.unwrap_or_default() * 1e9) as u64)
        ),
        (pid, _) => writeln!(
            s,
            "instance {}: agent {}{}",
            v.instance,
            a.state,
            pid.map(|p| format!(", PID {p}")).unwrap_or_default()
        ),
    };
    if let Some(src) = &v.source {
        render_source(&mut s, src, a.state == "running");
    }
    render_generation(&mut s, v);
    if !v.pending.is_empty() {
        let _ = writeln!(
            s,
            "waiting for their tap (nothing reaches them, nothing of theirs passes):"
        );
        for p in &v.pending {
            let _ = writeln!(
                s,
                "  {} tap {} (for {})",
                label(&p.id, &p.name),
                p.tap,
                duration(p.waiting_secs)
            );
        }
    }
    if !v.lossy.is_empty() {
        let _ = writeln!(s, "losing frames at their interface:");
        for p in &v.lossy {
            for problem in &p.interface.problems {
                let _ = writeln!(
                    s,
                    "  {} tap {}: {}\n    fix: {}",
                    label(&p.id, &p.name),
                    p.tap,
                    problem.detail,
                    problem.fix
                );
            }
        }
    }
    let _ = writeln!(s, "verdict: {}", v.verdict.summary);
    s
}

fn render_source(s: &mut String, src: &SourceRecord, running: bool) {
    let verb = if running { "watches" } else { "watched" };
    let _ = writeln!(
        s,
        "configuration: {}; the agent {verb} {}",
        src.describe, src.watching
    );
    if let (Some(file), Some(at)) = (&src.file, src.applied_at) {
        let _ = writeln!(
            s,
            "  {} is the configuration since `dataplane apply` at {} (instead of --config {}); \
             a restart keeps it",
            file.display(),
            rfc3339((at * 1e9) as u64),
            src.started_with
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    if let Some(note) = &src.note {
        let _ = writeln!(s, "  at start: {note}");
    }
    if let Some(connected) = src.connected {
        let _ = writeln!(
            s,
            "  database {}; revision {}, {} full read(s){}",
            if connected { "reached" } else { "NOT reached" },
            src.revision.unwrap_or_default(),
            src.resyncs,
            src.source_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
}

fn render_generation(s: &mut String, v: &StatusView) {
    match &v.datapath {
        Some(d) => {
            let _ = writeln!(
                s,
                "generation in force: {} (slot {}), {} port(s) attached{}",
                d.generation,
                d.active_slot,
                d.ports,
                if d.remote_ports > 0 {
                    format!(", {} on other chassis", d.remote_ports)
                } else {
                    String::new()
                }
            );
        }
        None => {
            let _ = writeln!(s, "no datapath pinned yet");
        }
    }
    if let Some(a) = &v.last_attempt {
        let _ = writeln!(s, "last attempt: {}", attempt(a));
    }
    if let Some(e) = &v.last_error {
        let _ = writeln!(
            s,
            "last error ({} at {}):\n{}",
            e.trigger,
            rfc3339((e.at * 1e9) as u64),
            e.error
                .as_deref()
                .unwrap_or_default()
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
                .trim_end()
        );
    }
}

fn attempt(a: &Attempt) -> String {
    let when = rfc3339((a.at * 1e9) as u64);
    match (a.outcome.as_str(), a.generation) {
        ("applied", Some(g)) => format!("{} at {when}: applied as generation {g}", a.trigger),
        (outcome, Some(g)) => format!("{} at {when}: {outcome} as generation {g}", a.trigger),
        (outcome, None) => format!(
            "{} at {when}: {outcome} (the generation in force is older)",
            a.trigger
        ),
    }
}

fn label(id: &str, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({name})")
    }
}

/// "2h 03m", "4m 10s", "12s".
fn duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> StatusView {
        StatusView {
            instance: "i".into(),
            agent: AgentView {
                state: "running".into(),
                pid: Some(7),
                started: Some(1.0),
                uptime_secs: Some(75.0),
            },
            datapath: Some(DatapathView {
                generation: 4,
                active_slot: 0,
                ports: 2,
                remote_ports: 0,
            }),
            source: Some(SourceRecord {
                describe: "file /c.toml".into(),
                ..SourceRecord::default()
            }),
            last_attempt: None,
            last_error: None,
            pending: Vec::new(),
            lossy: Vec::new(),
            verdict: Verdict {
                ok: false,
                summary: String::new(),
            },
        }
    }

    #[test]
    fn the_verdict_names_every_problem_or_says_ok() {
        let v = view();
        let ok = verdict(&v, true);
        assert!(ok.ok, "{}", ok.summary);
        assert!(ok.summary.contains("generation 4 from file /c.toml"));
        let mut v = view();
        v.last_attempt = Some(Attempt {
            trigger: "SIGHUP".into(),
            outcome: "refused".into(),
            ..Attempt::default()
        });
        v.pending.push(PendingView {
            id: "p".into(),
            name: String::new(),
            tap: "tapp".into(),
            since: 0.0,
            waiting_secs: 3.0,
        });
        let bad = verdict(&v, true);
        assert!(!bad.ok);
        assert!(
            bad.summary.contains("(SIGHUP) was refused"),
            "{}",
            bad.summary
        );
        assert!(bad.summary.contains("1 port(s) wait for their tap"));
        v.agent.state = "not running".into();
        assert!(verdict(&v, false).summary.contains("no agent runs"));
    }

    #[test]
    fn durations_read_like_uptime() {
        assert_eq!(duration(12.5), "12s");
        assert_eq!(duration(250.0), "4m 10s");
        assert_eq!(duration(7380.0), "2h 03m");
    }
}

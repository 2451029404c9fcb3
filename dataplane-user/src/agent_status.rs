//! What the running agent says of itself, for `dataplane status`, `show`
//! and the metrics: `/run/dataplane/<instance>.status.json`, written by
//! the holder of the instance's lock (aside, then renamed) whenever it
//! changes. It outlives the agent, like the pinned datapath it describes
//! (a reader then tells that no agent runs), and goes with `dataplane
//! stop`.
//!
//! It holds what the maps cannot: where the configuration comes from and
//! what is watched, how the last attempt to apply it ended (the error
//! verbatim), which ports wait for their tap, and which file `dataplane
//! apply` made the configuration (so that a restart keeps it).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::lock::RUN_DIR;

pub fn path(instance: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{instance}.status.json"))
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    pub instance: String,
    pub pid: u32,
    /// When the agent started (seconds since the Unix epoch).
    pub started: f64,
    pub source: SourceRecord,
    /// The last configuration the source delivered, and how applying it
    /// ended.
    pub last_attempt: Option<Attempt>,
    /// The last attempt that was refused (or partly refused), whatever
    /// came after it.
    pub last_error: Option<Attempt>,
    /// Local ports waiting for their tap, by id.
    pub pending: BTreeMap<String, PendingPort>,
}

/// Where the configuration comes from.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    /// As logged: "file /etc/dp/config.toml", "etcd http://... (prefix
    /// /aap, chassis h1)".
    pub describe: String,
    /// What the agent watches for changes, in words.
    pub watching: String,
    /// A file source: the file in force, which the agent watches.
    pub file: Option<PathBuf>,
    /// A file source: the file `run --config` named.
    pub started_with: Option<PathBuf>,
    /// When `dataplane apply` made `file` the configuration (None: it is
    /// `started_with`).
    pub applied_at: Option<f64>,
    /// Why the agent runs a file other than `--config`'s, or went back
    /// to it.
    pub note: Option<String>,
    /// A database: whether the agent reaches it, the revision it last
    /// read, its full reads, the last error talking to it.
    pub connected: Option<bool>,
    pub revision: Option<i64>,
    pub resyncs: u64,
    pub source_error: Option<String>,
}

/// One configuration delivered by the source, and what became of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// What brought it: "start", "SIGHUP", "configuration file changed",
    /// "dataplane apply FILE", "etcd".
    pub trigger: String,
    /// "applied", "refused", or "partly applied" (a database's objects
    /// that do not validate wait; the others apply).
    pub outcome: String,
    /// The generation it was applied as.
    pub generation: Option<u64>,
    /// Why it was refused, verbatim as logged.
    pub error: Option<String>,
}

impl Attempt {
    pub fn refused(&self) -> bool {
        self.outcome != "applied"
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PendingPort {
    pub name: String,
    pub tap: String,
    /// Since when it waits (seconds since the Unix epoch).
    pub since: f64,
}

impl AgentRecord {
    /// Writes the record (aside, then renamed into place).
    pub fn write(&self) -> Result<()> {
        let path = path(&self.instance);
        let tmp = path.with_extension("json.tmp");
        std::fs::create_dir_all(RUN_DIR)?;
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// What the last agent of `instance` wrote, if anything.
    pub fn read(instance: &str) -> Option<AgentRecord> {
        let text = std::fs::read(path(instance)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn remove(instance: &str) {
        let _ = std::fs::remove_file(path(instance));
    }

    /// The attempt that is refused and has not been followed by one that
    /// applied: the configuration on disk (or in the database) is not what
    /// runs.
    pub fn refused_now(&self) -> Option<&Attempt> {
        self.last_attempt.as_ref().filter(|a| a.refused())
    }
}

/// Which file a new agent started with `--config started_with` is to run,
/// given what the previous agent of the instance recorded: the file
/// `dataplane apply` made the configuration, as long as `--config` is
/// still the one that agent was started with (a new `--config` is the
/// operator's newer word) and the file can be read. Returns the file and
/// why, when it is not `started_with`; the note when it goes back.
pub fn file_to_run(
    previous: Option<&AgentRecord>,
    started_with: &Path,
) -> (PathBuf, Option<String>, Option<f64>) {
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| Some(a) == std::fs::canonicalize(b).ok())
    };
    let Some(source) = previous.map(|p| &p.source) else {
        return (started_with.to_path_buf(), None, None);
    };
    let (Some(applied), Some(before), Some(at)) =
        (&source.file, &source.started_with, source.applied_at)
    else {
        return (started_with.to_path_buf(), None, None);
    };
    if !same(before, started_with) {
        let note = format!(
            "--config {} replaces {} (made the configuration by `dataplane apply` under \
             --config {})",
            started_with.display(),
            applied.display(),
            before.display()
        );
        return (started_with.to_path_buf(), Some(note), None);
    }
    if let Err(e) = std::fs::metadata(applied) {
        let note = format!(
            "back to --config {}: {}, which `dataplane apply` made the configuration, \
             cannot be read ({e})",
            started_with.display(),
            applied.display()
        );
        return (started_with.to_path_buf(), Some(note), None);
    }
    let note = format!(
        "{} (made the configuration by `dataplane apply`) is kept across the restart, \
         instead of --config {}; `dataplane apply` another file, or `dataplane stop`, \
         to change that",
        applied.display(),
        started_with.display()
    );
    (applied.clone(), Some(note), Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file: &Path, started_with: &Path) -> AgentRecord {
        AgentRecord {
            source: SourceRecord {
                file: Some(file.into()),
                started_with: Some(started_with.into()),
                applied_at: Some(1.0),
                ..SourceRecord::default()
            },
            ..AgentRecord::default()
        }
    }

    #[test]
    fn an_applied_file_is_kept_unless_config_changed_or_it_is_gone() {
        let dir = tempfile_dir();
        let (a, b, c) = (dir.join("a.toml"), dir.join("b.toml"), dir.join("c.toml"));
        for f in [&a, &b, &c] {
            std::fs::write(f, "").unwrap();
        }
        // No previous agent, or no apply: --config.
        assert_eq!(file_to_run(None, &a).0, a);
        let mut plain = record(&a, &a);
        plain.source.applied_at = None;
        assert_eq!(file_to_run(Some(&plain), &a), (a.clone(), None, None));
        // Applied b under --config a, restarted with --config a: b.
        let (file, note, at) = file_to_run(Some(&record(&b, &a)), &a);
        assert_eq!((file, at), (b.clone(), Some(1.0)));
        assert!(note.unwrap().contains("kept across the restart"));
        // Restarted with another --config: that one, said so.
        let (file, note, _) = file_to_run(Some(&record(&b, &a)), &c);
        assert_eq!(file, c);
        assert!(note.unwrap().contains("replaces"));
        // The applied file is gone: back to --config, said so.
        std::fs::remove_file(&b).unwrap();
        let (file, note, _) = file_to_run(Some(&record(&b, &a)), &a);
        assert_eq!(file, a);
        assert!(note.unwrap().contains("cannot be read"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dp-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

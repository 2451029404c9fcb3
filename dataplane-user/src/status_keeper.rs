//! The agent's side of its status record (see `agent_status`): kept up to
//! date as configurations are tried, taps come and go and the source
//! connects, written when it changed (at most every publishing tick, and
//! at once after a `dataplane apply`), and shared with the metrics.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use tracing::{info, warn};

use crate::{
    agent_status::{AgentRecord, Attempt, PendingPort, SourceRecord, file_to_run, now},
    controller::Controller,
    source::Source,
};

pub struct Status {
    record: AgentRecord,
    shared: Arc<Mutex<AgentRecord>>,
    dirty: bool,
}

fn canonical(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Status {
    /// The record of an agent starting on `source`. A file source is
    /// pointed at the file `dataplane apply` made the instance's
    /// configuration under the previous agent, if that holds (`fresh`: the
    /// instance has no pinned state, nothing to go on from).
    pub fn start<S: Source>(instance: &str, source: &mut S, fresh: bool) -> Status {
        let previous = (!fresh).then(|| AgentRecord::read(instance)).flatten();
        let mut record = SourceRecord::default();
        if let Some(config) = source.file().map(Path::to_path_buf) {
            let (file, note, applied_at) = file_to_run(previous.as_ref(), &config);
            if file != config {
                source.loaded(&file);
            }
            if let Some(note) = &note {
                if applied_at.is_some() {
                    info!("{note}");
                } else {
                    warn!("{note}");
                }
            }
            record.file = Some(canonical(&file));
            record.started_with = Some(canonical(&config));
            record.applied_at = applied_at;
            record.note = note;
        }
        record.describe = source.describe();
        record.watching = source.watching();
        let record = AgentRecord {
            instance: instance.to_string(),
            pid: std::process::id(),
            started: now(),
            source: record,
            ..AgentRecord::default()
        };
        Status {
            shared: Arc::new(Mutex::new(record.clone())),
            record,
            dirty: true,
        }
    }

    /// The record as the metrics read it.
    pub fn shared(&self) -> Arc<Mutex<AgentRecord>> {
        self.shared.clone()
    }

    /// A configuration from the source was applied (as `generation`;
    /// `waiting`: the errors of objects set aside) or refused.
    pub fn attempt(&mut self, trigger: &str, result: &Result<u64, String>, waiting: &[String]) {
        let attempt = match result {
            Ok(generation) if waiting.is_empty() => Attempt {
                at: now(),
                trigger: trigger.to_string(),
                outcome: "applied".into(),
                generation: Some(*generation),
                error: None,
            },
            Ok(generation) => Attempt {
                at: now(),
                trigger: trigger.to_string(),
                outcome: "partly applied".into(),
                generation: Some(*generation),
                error: Some(waiting.join("\n")),
            },
            Err(e) => Attempt {
                at: now(),
                trigger: trigger.to_string(),
                outcome: "refused".into(),
                generation: None,
                error: Some(e.clone()),
            },
        };
        if attempt.refused() {
            self.record.last_error = Some(attempt.clone());
        }
        self.record.last_attempt = Some(attempt);
        self.dirty = true;
    }

    /// An error that leaves the configuration in force as it was, and
    /// the source as it was (`dataplane apply` of a file refused).
    pub fn error(&mut self, trigger: &str, error: String) {
        self.record.last_error = Some(Attempt {
            at: now(),
            trigger: trigger.to_string(),
            outcome: "refused".into(),
            generation: None,
            error: Some(error),
        });
        self.dirty = true;
    }

    /// `dataplane apply` made the source's file the configuration.
    pub fn applied_file<S: Source>(&mut self, source: &S) {
        let r = &mut self.record.source;
        r.file = source.file().map(canonical);
        r.applied_at = (r.file != r.started_with).then(now);
        r.note = None;
        r.describe = source.describe();
        r.watching = source.watching();
        self.dirty = true;
    }

    /// The ports waiting for their tap, as the controller has them.
    pub fn pending(&mut self, ctl: &Controller) {
        let now_pending = ctl.pending();
        let before = self.record.pending.len();
        self.record.pending.retain(|id, _| now_pending.contains(id));
        let mut changed = self.record.pending.len() != before;
        for id in now_pending {
            if self.record.pending.contains_key(id) {
                continue;
            }
            let Some(port) = ctl.store().port(id) else {
                continue;
            };
            let waiting = PendingPort {
                name: port.spec.name.clone(),
                tap: port.spec.tap.clone(),
                since: now(),
            };
            self.record.pending.insert(id.clone(), waiting);
            changed = true;
        }
        self.dirty |= changed;
    }

    /// How the source is doing (a database's connection).
    pub fn source<S: Source>(&mut self, source: &S) {
        let s = source.status();
        let r = &mut self.record.source;
        let fresh = (s.connected, s.revision, s.resyncs, &s.last_error);
        if fresh != (r.connected, r.revision, r.resyncs, &r.source_error) {
            r.connected = s.connected;
            r.revision = s.revision;
            r.resyncs = s.resyncs;
            r.source_error = s.last_error;
            r.watching = source.watching();
            self.dirty = true;
        }
    }

    /// Writes the record if it changed.
    pub fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        if let Ok(mut shared) = self.shared.lock() {
            *shared = self.record.clone();
        }
        match self.record.write() {
            Ok(()) => self.dirty = false,
            Err(e) => warn!("writing the agent's status: {e:#}"),
        }
    }
}

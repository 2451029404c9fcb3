//! A configuration file: read whole at start, on SIGHUP and whenever it
//! changes on disk (watched through its directory, since editors and
//! configuration management replace files rather than write them in
//! place).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use dataplane_config::{Document, Update};
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};
use tracing::{info, warn};

use super::Source;

/// Editors write in several steps: a change is read this long after the
/// last event.
const SETTLE: Duration = Duration::from_millis(200);

pub struct FileSource {
    path: PathBuf,
    watcher: notify::RecommendedWatcher,
    changed: mpsc::UnboundedReceiver<()>,
    sighup: Signal,
    /// Why the file is to be read at the next call (the first call, or a
    /// change or SIGHUP seen by a call that was cancelled before reading).
    due: Option<&'static str>,
    /// A change was seen: read once the writer has settled, at this time.
    settle_until: Option<tokio::time::Instant>,
    /// Why the file was last read.
    last: &'static str,
}

impl FileSource {
    pub fn new(path: &Path) -> Result<FileSource> {
        let (watcher, changed) = watch(path)?;
        Ok(FileSource {
            path: path.to_path_buf(),
            watcher,
            changed,
            sighup: signal(SignalKind::hangup())?,
            due: Some("start"),
            settle_until: None,
            last: "start",
        })
    }

    fn read(&self) -> Result<Update> {
        let document = Document::read(&self.path)?;
        log_skipped(&document);
        Ok(Update::Snapshot(document))
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn watching(&self) -> String {
        format!(
            "{} (changes on disk, and SIGHUP)",
            std::fs::canonicalize(&self.path)
                .unwrap_or_else(|_| self.path.clone())
                .display()
        )
    }

    fn trigger(&self) -> String {
        self.last.to_string()
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    async fn next(&mut self) -> Result<Update> {
        // Every step keeps its state in `self`: a call cancelled at any
        // await resumes where it was at the next call.
        if self.due.is_none() {
            tokio::select! {
                _ = self.sighup.recv() => self.due = Some("SIGHUP"),
                Some(()) = self.changed.recv() => {
                    self.due = Some("configuration file changed");
                    self.settle_until = Some(tokio::time::Instant::now() + SETTLE);
                }
            }
        }
        if let Some(at) = self.settle_until {
            tokio::time::sleep_until(at).await;
            while self.changed.try_recv().is_ok() {}
            self.settle_until = None;
        }
        if let Some(why) = self.due.take() {
            if why != "start" {
                info!("{why}: reading {}", self.path.display());
            }
            self.last = why;
        }
        self.read()
    }

    fn load(&mut self, path: &Path) -> Option<Result<Update>> {
        Some(
            Document::read(path)
                .inspect(log_skipped)
                .map(Update::Snapshot)
                .with_context(|| format!("reading {}", path.display())),
        )
    }

    fn loaded(&mut self, path: &Path) {
        match watch(path) {
            Ok((w, c)) => {
                self.watcher = w;
                self.changed = c;
                self.path = path.to_path_buf();
            }
            Err(e) => warn!("cannot watch {}: {e:#}", path.display()),
        }
    }
}

/// Tells what a document holds that the datapath leaves out (a router's
/// second external gateway, a floating IP's own port, ...).
pub fn log_skipped(document: &Document) {
    for s in &document.skipped {
        warn!("not served: {s}");
    }
}

/// Watches the file's directory and reports changes to the file itself.
fn watch(path: &Path) -> Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let path = std::fs::canonicalize(path)
        .with_context(|| format!("cannot read configuration {}", path.display()))?;
    let name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .context("configuration file without a directory")?
        .to_path_buf();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        let writes = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        );
        if ours && writes {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

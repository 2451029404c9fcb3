//! Where the agent's configuration comes from. A source delivers updates
//! (a whole configuration, or some objects changed); the agent validates,
//! compiles and applies each one, and keeps the running configuration when
//! one is refused. A new source (a database, say) implements [`Source`]
//! and plugs into the same agent loop.

pub mod etcd;
mod etcd_lease;
mod etcd_read;
pub mod file;

use std::{collections::BTreeMap, future::Future, path::Path};

use anyhow::Result;
use dataplane_config::Update;

pub use etcd::EtcdSource;
pub use file::FileSource;

/// What this host knows that others need: published by sources shared
/// between hosts (a database), ignored by a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReport {
    /// Local ports whose tap is attached: port id -> tap.
    pub attached: BTreeMap<String, String>,
    /// Shared addresses whose active member is a local port, as the
    /// datapath learned it: "<network id>/<address or MAC>" -> (port id,
    /// the group's count of changes, so that only a new claim is told).
    pub claims: BTreeMap<String, (String, u64)>,
}

/// How a source is doing, for logs, metrics and `dataplane status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// Whether it reaches its database (None: not a database).
    pub connected: Option<bool>,
    /// The database revision last delivered.
    pub revision: Option<i64>,
    /// Full reads since the start (the first, reconnections, compactions).
    pub resyncs: u64,
    /// The last error talking to it.
    pub last_error: Option<String>,
}

/// A source of configuration updates.
pub trait Source: Send {
    /// What the source reads, for logs and `dataplane status`.
    fn describe(&self) -> String;

    /// What the source watches for changes, in words (`dataplane status`).
    fn watching(&self) -> String;

    /// What brought the update `next` returned last ("start", "SIGHUP",
    /// ...), for `dataplane status`.
    fn trigger(&self) -> String;

    /// The file the configuration is read from, for a file source.
    fn file(&self) -> Option<&Path> {
        None
    }

    /// Waits for the next update. The first call returns the whole
    /// configuration. Cancel-safe: the agent waits on it together with
    /// signals and timers, and a cancelled call loses nothing.
    fn next(&mut self) -> impl Future<Output = Result<Update>> + Send;

    /// `dataplane apply FILE`: the update FILE holds, if this source takes
    /// files (None: it does not).
    fn load(&mut self, _path: &Path) -> Option<Result<Update>> {
        None
    }

    /// The update `load` returned for `path` was applied: FILE is the
    /// configuration from now on.
    fn loaded(&mut self, _path: &Path) {}

    /// Whether the valid objects of an update apply when others are
    /// refused (a database holding objects written by many writers),
    /// rather than the whole update being refused (a file).
    fn partial(&self) -> bool {
        false
    }

    /// Tells the others what this host knows (a database source).
    fn publish(&mut self, _report: &HostReport) -> impl Future<Output = ()> + Send {
        async {}
    }

    fn status(&self) -> SourceStatus {
        SourceStatus::default()
    }
}

//! Where the agent's configuration comes from. A source delivers updates
//! (a whole configuration, or some objects changed); the agent validates,
//! compiles and applies each one, and keeps the running configuration when
//! one is refused. A new source (a database, say) implements [`Source`]
//! and plugs into the same agent loop.

pub mod file;

use std::{future::Future, path::Path};

use anyhow::Result;
use dataplane_config::Update;

pub use file::FileSource;

/// A source of configuration updates.
pub trait Source: Send {
    /// What the source reads, for logs and `dataplane status`.
    fn describe(&self) -> String;

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
}

//! Where the agent's and the commands' logs go: stderr, as text for people
//! or as one JSON object a line for log collectors (journald forwarders,
//! Fluent Bit, Vector, Loki's promtail), whose parsers then need no
//! pattern for our message layout.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` filters as usual (default
/// `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Colours for people at a terminal, not escape codes in log files.
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        // Flattened: collectors index `message` and the fields by name
        // without digging into a nested `fields` object.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

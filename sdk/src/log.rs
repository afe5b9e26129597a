//! Logging into the host's log (WIT interface `log`). Natively, outside a component, records go
//! to standard error so plugin logic can log in plain `cargo test` runs.

use std::sync::OnceLock;

/// Severity of a log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress information.
    Info,
    /// Something unexpected that the plugin worked around.
    Warn,
    /// Something failed.
    Error,
}

static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

/// Routes records to the host; called by the export macros' glue.
#[doc(hidden)]
pub fn install_sink(sink: fn(Level, &str)) {
    // A second install (a repeated `configure`) routes to the same host function.
    let _ = SINK.set(sink);
}

/// Writes one record at the given level.
pub fn log(level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("[{level:?}] {message}"),
    }
}

/// Writes a trace record.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a debug record.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an info record.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a warning record.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an error record.
pub fn error(message: &str) {
    log(Level::Error, message);
}

//! Calls into the host: structured logging and progress reports.
//!
//! These call the `logging` and `progress` imports directly: the SDK generates the bindings of the
//! `imports` world once (see the export macros), and each plugin world's bindings reuse them.
//!
//! Outside WebAssembly — the plugin's native unit tests — there is no host: log records go to
//! stderr and progress reports are dropped, so the same plugin code runs unchanged in `cargo test`.

/// Log severity: the WIT `logging.level` enum (as in `tracing`).
pub use crate::__private::wit::aimass::plugin::logging::Level;

impl Level {
    /// Lower-case name (`"info"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Structured logging into the host's log (tagged there with plugin name, version and
/// invocation id). The host rate-limits and truncates records.
pub mod log {
    use super::Level;

    /// Emit one record with extra structured `fields`.
    pub fn log(level: Level, message: impl AsRef<str>, fields: &[(&str, &str)]) {
        let message = message.as_ref();
        #[cfg(target_arch = "wasm32")]
        {
            let fields: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            crate::__private::wit::aimass::plugin::logging::log(level, message, &fields);
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
            eprintln!("[{}] {message}{fields}", level.as_str());
        }
    }

    /// Emit a `trace` record.
    pub fn trace(message: impl AsRef<str>) {
        log(Level::Trace, message, &[]);
    }

    /// Emit a `debug` record.
    pub fn debug(message: impl AsRef<str>) {
        log(Level::Debug, message, &[]);
    }

    /// Emit an `info` record.
    pub fn info(message: impl AsRef<str>) {
        log(Level::Info, message, &[]);
    }

    /// Emit a `warn` record.
    pub fn warn(message: impl AsRef<str>) {
        log(Level::Warn, message, &[]);
    }

    /// Emit an `error` record.
    pub fn error(message: impl AsRef<str>) {
        log(Level::Error, message, &[]);
    }
}

/// Report that `done` of `total` units are finished (`total` 0 when unknown), with a short phase
/// message. Cheap: the host keeps only the last report.
pub fn progress(done: u64, total: u64, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    crate::__private::wit::aimass::plugin::progress::report(done, total, message.as_ref());
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (done, total, message);
}

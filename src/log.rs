//! Logging seam: safe code logs through [`Log`]; the FFI bridge implements it over Fluent Bit's
//! `log_print`/`output_log_check`, tests implement it over a Vec.

use std::sync::{Arc, Mutex};

/// Fluent Bit's log levels (`flb_log.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

pub trait Log: Send + Sync {
    /// Whether a message at `level` would be printed (Fluent Bit's `output_log_check`).
    fn enabled(&self, level: Level) -> bool;
    /// Print one already-formatted line. Callers must never pass secrets.
    fn write(&self, level: Level, message: &str);
}

pub type SharedLog = Arc<dyn Log>;

/// `text` as one log line: control characters escaped, at most `max` characters (`…` when cut).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 4));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Log helper: formats only when the level is enabled.
#[macro_export]
macro_rules! flb_log {
    ($log:expr, $level:expr, $($arg:tt)+) => {{
        let log: &dyn $crate::log::Log = &*$log;
        if log.enabled($level) {
            log.write($level, &format!($($arg)+));
        }
    }};
}

/// Captures lines; used by unit tests and by the Rust-side integration tests.
#[derive(Default)]
pub struct MemoryLog {
    pub lines: Mutex<Vec<(Level, String)>>,
}

impl Log for MemoryLog {
    fn enabled(&self, _level: Level) -> bool {
        true
    }
    fn write(&self, level: Level, message: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((level, message.to_string()));
        }
    }
}

impl MemoryLog {
    pub fn contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .map(|l| l.iter().any(|(_, m)| m.contains(needle)))
            .unwrap_or(false)
    }
}

/// Writes to stderr; for tools and benches that run the pipeline without Fluent Bit.
pub struct StderrLog(pub Level);

impl Log for StderrLog {
    fn enabled(&self, level: Level) -> bool {
        level <= self.0
    }
    fn write(&self, level: Level, message: &str) {
        eprintln!("[sigv4_http] [{level:?}] {message}");
    }
}

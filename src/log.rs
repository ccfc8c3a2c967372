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

/// `text` as one log line: control characters escaped, at most `max` characters of output
/// (then `…`).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 4));
    let mut written = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if written + n > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        written += n;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_counts_escapes_against_the_limit() {
        assert_eq!(super::one_line("abc", 3), "abc");
        assert_eq!(super::one_line("abcd", 3), "abc…");
        assert_eq!(super::one_line("a\u{1}", 3), "a…");
        let long = "\u{1}".repeat(100);
        let s = super::one_line(&long, 20);
        assert!(
            s.chars().count() <= 21 && !s.chars().any(char::is_control),
            "{s}"
        );
    }
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

//! Small helpers shared by the providers: time parsing, redaction, paths, knobs.

use crate::env::Env;
use aws_smithy_types::date_time::{DateTime, Format};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Parses an ISO-8601 / RFC 3339 timestamp (`2024-05-01T12:00:00Z`, fractional seconds and
/// offsets allowed).
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    let dt = DateTime::from_str(text.trim(), Format::DateTimeWithOffset).ok()?;
    SystemTime::try_from(dt).ok()
}

/// RFC 3339 rendering for logs and errors.
pub(crate) fn fmt_time(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "<unrepresentable time>".to_string())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `true`, `1`, `yes`, `on` (any case) → true.
pub(crate) fn is_true(value: Option<String>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes" | "on")
    )
}

/// A duration knob from the environment, in seconds (fractions allowed); `default` when unset or
/// unparsable.
pub(crate) fn duration_knob(env: &Env, var: &str, default: Duration) -> Duration {
    env.get(var)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(default)
}

/// The home directory from the (injected) environment.
pub(crate) fn home_dir(env: &Env) -> Option<PathBuf> {
    env.get("HOME")
        .or_else(|| env.get("USERPROFILE"))
        .map(PathBuf::from)
}

/// Expands a leading `~/` with the environment's `HOME`.
pub(crate) fn expand_home(path: &str, env: &Env) -> PathBuf {
    if path == "~" {
        if let Some(home) = home_dir(env) {
            return home;
        }
    }
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = home_dir(env) {
            return home.join(rest);
        }
    }
    PathBuf::from(path)
}

/// A printable, bounded prefix of a response body for error messages, with every known secret
/// replaced by `***`.
pub(crate) fn snippet(body: &[u8], max: usize, secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        shown.push('…');
    }
    scrub(shown.trim(), secrets)
}

/// Replaces every occurrence of each non-empty secret by `***`.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    out
}

/// The chain of `source()`s of an error, joined by `: ` (reqwest hides the useful part there).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Truncates a value read from a local file for display (DMI strings and the like).
pub(crate) fn short_value(text: &str) -> String {
    bounded(text, 64)
}

/// Like [`short_value`], for messages (up to 512 characters).
pub(crate) fn short_value_long(text: &str) -> String {
    bounded(text, 512)
}

fn bounded(text: &str, max: usize) -> String {
    let t = text.trim();
    let mut out: String = t
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if t.chars().count() > max {
        out.push('…');
    }
    out
}

/// Polls a future once; `Some` when it completed (for futures that never really wait, such as
/// aws-config's profile loader given in-memory contents).
pub(crate) fn poll_ready<F: std::future::Future>(fut: F) -> Option<F::Output> {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = parse_time("2030-01-02T03:04:05Z").expect("parses");
        assert_eq!(fmt_time(t), "2030-01-02T03:04:05Z");
        assert!(parse_time("2030-01-02T03:04:05.123+01:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn scrubbing() {
        assert_eq!(scrub("token=abcdef!", &["abcdef", ""]), "token=***!");
        assert_eq!(snippet(b"a\nbsecretc", 100, &["secret"]), "a b***c");
    }
}

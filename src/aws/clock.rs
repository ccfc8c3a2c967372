//! The instance's skew-corrected clock (DESIGN §6): one offset (server time minus local time),
//! shared by the log requests and every AWS call (STS, SSO), set from the `Date` header of a
//! response that reports clock skew.

use aws_smithy_async::time::TimeSource;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Local time plus a shared offset. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct SkewClock {
    offset_ms: Arc<AtomicI64>,
}

impl SkewClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The corrected time.
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_ms())
    }

    /// Server time minus local time, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// Sets the offset from an HTTP `Date` header value (RFC 7231); returns the new offset, or
    /// `None` (offset unchanged) when the value is not an HTTP date.
    pub fn set_offset_from_server_date(&self, date: &str) -> Option<i64> {
        let server = httpdate::parse_http_date(date.trim()).ok()?;
        let offset_ms = offset_between(server, SystemTime::now());
        self.set_offset_ms(offset_ms);
        Some(offset_ms)
    }
}

fn shift(t: SystemTime, offset_ms: i64) -> SystemTime {
    if offset_ms >= 0 {
        t + Duration::from_millis(offset_ms as u64)
    } else {
        t - Duration::from_millis(offset_ms.unsigned_abs())
    }
}

fn offset_between(server: SystemTime, local: SystemTime) -> i64 {
    match server.duration_since(local) {
        Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// For the AWS SDK clients (STS, SSO): they sign with this clock.
impl TimeSource for SkewClock {
    fn now(&self) -> SystemTime {
        SkewClock::now(self)
    }
}

/// Whether an AWS error says the request's time is off (DESIGN §6): by error code, and for the
/// codes AWS also uses for other signature failures only with one of the skew messages — never
/// because a message merely contains a date (`SignatureDoesNotMatch` echoes `x-amz-date`).
pub fn is_skew_error(code: &str, message: &str) -> bool {
    match code {
        "RequestTimeTooSkewed" | "RequestExpired" | "RequestInTheFuture" | "SignatureExpired" => {
            true
        }
        "InvalidSignatureException" | "SignatureDoesNotMatch" | "AccessDenied" | "AuthFailure" => {
            let m = message.trim_start();
            m.starts_with("Signature expired") || m.starts_with("Signature not yet current")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let a = SkewClock::new();
        let b = a.clone();
        let server = SystemTime::now() + Duration::from_secs(3600);
        let offset = a
            .set_offset_from_server_date(&httpdate::fmt_http_date(server))
            .expect("http date");
        assert!((3_598_000..=3_601_000).contains(&offset), "{offset}");
        let seen = b.now().duration_since(SystemTime::now()).expect("ahead");
        assert!(seen > Duration::from_secs(3590) && seen < Duration::from_secs(3610));
        let via_sdk = TimeSource::now(&b)
            .duration_since(SystemTime::now())
            .expect("ahead");
        assert!(
            via_sdk > Duration::from_secs(3590),
            "the SDK sees the corrected time"
        );
        assert!(a.set_offset_from_server_date("yesterday").is_none());
        assert_eq!(a.offset_ms(), offset);
        a.set_offset_ms(-5000);
        let behind = SystemTime::now().duration_since(b.now()).expect("behind");
        assert!(behind >= Duration::from_millis(4900) && behind < Duration::from_secs(6));
    }

    #[test]
    fn skew_errors_by_code_and_message_only() {
        assert!(is_skew_error("RequestTimeTooSkewed", "anything"));
        assert!(is_skew_error("RequestExpired", "Request has expired."));
        assert!(is_skew_error(
            "SignatureDoesNotMatch",
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z (20240101T001000Z - 5 min.)"
        ));
        assert!(is_skew_error(
            "InvalidSignatureException",
            "Signature not yet current: 20300101T000000Z is still later than 20240101T000500Z"
        ));
        // A signing bug echoes the date in the canonical request: not skew.
        assert!(!is_skew_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match. x-amz-date:20240101T000000Z"
        ));
        assert!(!is_skew_error("InvalidClientTokenId", "Signature expired"));
        assert!(!is_skew_error("AccessDenied", "not authorized"));
    }
}

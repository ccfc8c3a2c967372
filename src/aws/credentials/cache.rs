//! The cache in front of every provider that fetches: hands out immutable snapshots, renews them
//! in the background ahead of expiry, keeps still-valid credentials when a refresh fails.
//!
//! # Schedule
//! Credentials fetched at `issue` that expire at `expiry` (lifetime `L`) are renewed at
//! `issue + max(L − 5 min, L / 2)` minus a jitter of up to 5% of `L` (at most 60 s): 5 minutes
//! before expiry for the usual one-hour credentials, half-way for short-lived ones (a 20-second
//! credential is renewed after ~10 s). Credentials without an expiry are never renewed (only
//! after [`CredentialSource::invalidate`]).
//!
//! A failed renewal keeps the current credentials while they are valid and retries after 1 s,
//! doubling up to 30 s, never later than the expiry. A `get` never waits while valid credentials
//! exist; once they have expired, each `get` tries a fetch itself (one at a time, bounded by the
//! provider's own timeouts and by a deadline) and returns [`CredentialsError::Expired`] when it
//! fails.
//!
//! The background task holds only a weak reference: it ends when the source is dropped or
//! [`CredentialSource::shutdown`] is called, and it sleeps (no CPU) between renewals.

use super::{CredentialSource, CredentialsError, CredsFuture};
use crate::flb_log;
use crate::log::{Level, SharedLog};
use aws_credential_types::Credentials;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What a cached provider does: fetch fresh credentials (no caching of its own).
pub(crate) trait Fetch: Send + Sync + 'static {
    fn fetch(&self) -> CredsFuture<'_>;
    /// Stops whatever the fetcher owns (a base source's refresh task).
    fn shutdown(&self) {}
    /// See [`CredentialSource::assumed_role_arn`].
    fn assumed_role_arn(&self) -> Option<String> {
        None
    }
}

/// Refresh timings (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Renew this long before expiry (unless half the lifetime is later).
    pub ahead: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Upper bound of one fetch, whatever the provider does.
    pub fetch_deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ahead: Duration::from_secs(300),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            fetch_deadline: Duration::from_secs(120),
        }
    }
}

struct Entry {
    creds: Credentials,
    fetched: SystemTime,
    refresh_at: Option<SystemTime>,
}

#[derive(Default)]
struct State {
    current: Option<Entry>,
    /// The endpoint refused the current credentials; the next `get` fetches.
    invalid: bool,
    /// Consecutive failed fetches.
    failures: u32,
    /// Bumped at every finished fetch, successful or not.
    attempts: u64,
    /// The error of the last fetch, when it failed.
    last_error: Option<CredentialsError>,
}

struct Inner {
    name: String,
    fetcher: Box<dyn Fetch>,
    log: SharedLog,
    timing: Timing,
    state: Mutex<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
}

/// A provider behind a cache with background refresh.
pub(crate) struct CachedSource {
    inner: Arc<Inner>,
    task: Mutex<Option<JoinHandle<()>>>,
}

enum Wait {
    For(Duration),
    UntilWoken,
}

/// Margin under which credentials about to expire are no longer handed out: 5 s, or a tenth of
/// the lifetime for short-lived credentials.
fn margin(entry: &Entry) -> Duration {
    match entry.creds.expiry() {
        Some(exp) => {
            let lifetime = exp.duration_since(entry.fetched).unwrap_or_default();
            (lifetime / 10).min(Duration::from_secs(5))
        }
        None => Duration::ZERO,
    }
}

fn valid_at(entry: &Entry, now: SystemTime) -> bool {
    match entry.creds.expiry() {
        None => true,
        Some(exp) => now + margin(entry) < exp,
    }
}

fn refresh_time(
    timing: &Timing,
    fetched: SystemTime,
    expiry: Option<SystemTime>,
) -> Option<SystemTime> {
    let exp = expiry?;
    let lifetime = exp.duration_since(fetched).unwrap_or_default();
    let offset = lifetime.saturating_sub(timing.ahead).max(lifetime / 2);
    let jitter_max = (lifetime / 20).min(Duration::from_secs(60));
    let jitter = jitter_max.mul_f64(fastrand::f64());
    Some(fetched + offset.saturating_sub(jitter))
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn usable(&self) -> Option<Credentials> {
        let st = lock(&self.state);
        if st.invalid {
            return None;
        }
        st.current
            .as_ref()
            .filter(|e| valid_at(e, SystemTime::now()))
            .map(|e| e.creds.clone())
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        (self.timing.backoff_min * 2u32.pow(exp)).min(self.timing.backoff_max)
    }

    fn next_wait(&self) -> Wait {
        let st = lock(&self.state);
        let now = SystemTime::now();
        match &st.current {
            None if st.failures == 0 => Wait::For(Duration::ZERO),
            None => Wait::For(self.backoff(st.failures)),
            Some(entry) if st.failures > 0 => {
                let backoff = self.backoff(st.failures);
                match entry
                    .creds
                    .expiry()
                    .and_then(|exp| exp.duration_since(now).ok())
                {
                    Some(left) => Wait::For(backoff.min(left).max(Duration::from_millis(50))),
                    None if entry.creds.expiry().is_some() => Wait::For(backoff),
                    None => Wait::UntilWoken,
                }
            }
            Some(entry) => match entry.refresh_at {
                Some(at) => Wait::For(at.duration_since(now).unwrap_or_default()),
                None => Wait::UntilWoken,
            },
        }
    }

    /// Whether the background task should fetch now.
    fn due(&self) -> bool {
        let st = lock(&self.state);
        match &st.current {
            None => true,
            Some(_) if st.invalid || st.failures > 0 => true,
            Some(entry) => entry.refresh_at.is_some_and(|at| at <= SystemTime::now()),
        }
    }

    async fn fetch_once(&self) -> Result<Credentials, CredentialsError> {
        let creds =
            match tokio::time::timeout(self.timing.fetch_deadline, self.fetcher.fetch()).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(CredentialsError::Provider {
                        provider: self.name.clone(),
                        message: format!(
                            "no answer within {} s",
                            self.timing.fetch_deadline.as_secs()
                        ),
                    })
                }
            };
        if let Some(exp) = creds.expiry() {
            if exp <= SystemTime::now() {
                return Err(CredentialsError::Provider {
                    provider: self.name.clone(),
                    message: format!(
                        "returned credentials that already expired at {}",
                        super::util::fmt_time(exp)
                    ),
                });
            }
        }
        Ok(creds)
    }

    fn store(&self, creds: Credentials) {
        let now = SystemTime::now();
        let refresh_at = refresh_time(&self.timing, now, creds.expiry());
        let expiry = creds.expiry();
        {
            let mut st = lock(&self.state);
            st.current = Some(Entry {
                creds,
                fetched: now,
                refresh_at,
            });
            st.invalid = false;
            st.failures = 0;
            st.attempts = st.attempts.wrapping_add(1);
            st.last_error = None;
        }
        match (expiry, refresh_at) {
            (Some(exp), Some(at)) => flb_log!(
                self.log,
                Level::Debug,
                "credentials from '{}' fetched; they expire at {}, renewal planned at {}",
                self.name,
                super::util::fmt_time(exp),
                super::util::fmt_time(at)
            ),
            _ => flb_log!(
                self.log,
                Level::Debug,
                "credentials from '{}' fetched; they do not expire",
                self.name
            ),
        }
    }

    /// Records a failure; returns the number of consecutive failures and the expiry of the
    /// credentials still held (if still valid).
    fn record_failure(&self, error: &CredentialsError) -> (u32, Option<Option<SystemTime>>) {
        let mut st = lock(&self.state);
        st.failures = st.failures.saturating_add(1);
        st.attempts = st.attempts.wrapping_add(1);
        st.last_error = Some(error.clone());
        let now = SystemTime::now();
        let still_valid = st
            .current
            .as_ref()
            .filter(|e| !st.invalid && valid_at(e, now))
            .map(|e| e.creds.expiry());
        (st.failures, still_valid)
    }

    async fn refresh_in_background(&self) {
        let _guard = self.fetch_lock.lock().await;
        if !self.due() {
            return;
        }
        match self.fetch_once().await {
            Ok(creds) => self.store(creds),
            Err(e) => {
                let (failures, still_valid) = self.record_failure(&e);
                let retry = match self.next_wait() {
                    Wait::For(d) => format!("retrying in {:.1} s", d.as_secs_f64()),
                    Wait::UntilWoken => "not retrying until the next use".to_string(),
                };
                let kept = match still_valid {
                    Some(Some(exp)) => format!(
                        "the current credentials stay in use until they expire at {}",
                        super::util::fmt_time(exp)
                    ),
                    Some(None) => "the current credentials stay in use".to_string(),
                    None => "no valid credentials are available: flushes are retried".to_string(),
                };
                flb_log!(self.log, Level::Warn, "refreshing credentials from '{}' failed (attempt {failures}): {e}; {kept}; {retry}", self.name);
            }
        }
    }

    /// The error a caller sees: [`CredentialsError::Expired`] when credentials existed (and
    /// were not refused by the endpoint) but expired, else the provider's own error.
    fn caller_error(&self, e: CredentialsError, had_expired: bool) -> CredentialsError {
        if !had_expired {
            return e;
        }
        let message = match e {
            CredentialsError::Provider { message, .. }
            | CredentialsError::Misconfigured { message, .. } => message,
            CredentialsError::Expired { message, .. } => message,
            other => other.to_string(),
        };
        CredentialsError::Expired {
            provider: self.name.clone(),
            message,
        }
    }

    async fn get(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.usable() {
            return Ok(c);
        }
        let seen = lock(&self.state).attempts;
        let _guard = self.fetch_lock.lock().await;
        let had_expired = {
            let st = lock(&self.state);
            if st.attempts != seen {
                // A fetch finished while we waited: use its outcome rather than queueing another.
                if !st.invalid {
                    if let Some(entry) = st
                        .current
                        .as_ref()
                        .filter(|e| valid_at(e, SystemTime::now()))
                    {
                        return Ok(entry.creds.clone());
                    }
                }
                if let Some(e) = st.last_error.clone() {
                    let had = st.current.is_some() && !st.invalid;
                    drop(st);
                    return Err(self.caller_error(e, had));
                }
            }
            st.current.is_some() && !st.invalid
        };
        match self.fetch_once().await {
            Ok(creds) => {
                self.store(creds.clone());
                self.wake.notify_one();
                Ok(creds)
            }
            Err(e) => {
                self.record_failure(&e);
                self.wake.notify_one();
                Err(self.caller_error(e, had_expired))
            }
        }
    }
}

async fn refresh_loop(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let wait = match weak.upgrade() {
            Some(inner) => inner.next_wait(),
            None => return,
        };
        match wait {
            Wait::For(d) if d.is_zero() => {}
            Wait::For(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = wake.notified() => continue,
                }
            }
            Wait::UntilWoken => {
                wake.notified().await;
                continue;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        inner.refresh_in_background().await;
    }
}

impl CachedSource {
    pub(crate) fn new(name: impl Into<String>, fetcher: Box<dyn Fetch>, log: SharedLog) -> Self {
        Self::with_timing(name, fetcher, log, Timing::default())
    }

    /// Starts the background task on the current tokio runtime (none outside a runtime: then
    /// `get` fetches on demand only).
    pub(crate) fn with_timing(
        name: impl Into<String>,
        fetcher: Box<dyn Fetch>,
        log: SharedLog,
        timing: Timing,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            name: name.into(),
            fetcher,
            log,
            timing,
            state: Mutex::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            wake: wake.clone(),
        });
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| h.spawn(refresh_loop(Arc::downgrade(&inner), wake)));
        CachedSource {
            inner,
            task: Mutex::new(task),
        }
    }

    fn abort_task(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
    }

    #[cfg(test)]
    pub(crate) fn task_finished(&self) -> bool {
        self.task
            .lock()
            .map(|t| t.as_ref().map_or(true, |t| t.is_finished()))
            .unwrap_or(true)
    }
}

impl CredentialSource for CachedSource {
    fn get(&self) -> CredsFuture<'_> {
        Box::pin(self.inner.get())
    }
    fn invalidate(&self) {
        lock(&self.inner.state).invalid = true;
    }
    fn name(&self) -> String {
        self.inner.name.clone()
    }
    fn shutdown(&self) {
        self.abort_task();
        self.inner.fetcher.shutdown();
    }
    fn assumed_role_arn(&self) -> Option<String> {
        self.inner.fetcher.assumed_role_arn()
    }
}

impl Drop for CachedSource {
    fn drop(&mut self) {
        self.abort_task();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MemoryLog;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Instant;

    /// Issues credentials `AKID<n>` living `lifetime`; fails while `fail` is set; each fetch
    /// takes `delay`.
    struct Fake {
        calls: Arc<AtomicU32>,
        fail: Arc<AtomicBool>,
        lifetime: Duration,
        delay: Duration,
    }

    impl Fetch for Fake {
        fn fetch(&self) -> CredsFuture<'_> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(CredentialsError::Provider {
                        provider: "fake".into(),
                        message: "source is down".into(),
                    });
                }
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    Some("tok".into()),
                    Some(SystemTime::now() + self.lifetime),
                    "fake",
                ))
            })
        }
    }

    fn fake(lifetime: Duration, delay: Duration) -> (Box<Fake>, Arc<AtomicU32>, Arc<AtomicBool>) {
        let calls = Arc::new(AtomicU32::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        (
            Box::new(Fake {
                calls: calls.clone(),
                fail: fail.clone(),
                lifetime,
                delay,
            }),
            calls,
            fail,
        )
    }

    fn fast() -> Timing {
        Timing {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            ..Timing::default()
        }
    }

    #[test]
    fn schedule() {
        let t = Timing::default();
        let now = SystemTime::now();
        let at = refresh_time(&t, now, Some(now + Duration::from_secs(20))).expect("expiry");
        let off = at.duration_since(now).expect("after");
        assert!(
            off <= Duration::from_secs(10) && off >= Duration::from_secs(9),
            "{off:?}"
        );
        let at = refresh_time(&t, now, Some(now + Duration::from_secs(3600))).expect("expiry");
        let off = at.duration_since(now).expect("after");
        assert!(
            off <= Duration::from_secs(3300) && off >= Duration::from_secs(3240),
            "{off:?}"
        );
        assert!(refresh_time(&t, now, None).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_refresh_before_expiry_and_get_never_blocks() {
        let log = Arc::new(MemoryLog::default());
        let (f, calls, _fail) = fake(Duration::from_secs(2), Duration::from_millis(300));
        let src = CachedSource::with_timing("fake", f, log.clone(), fast());
        let first = src.get().await.expect("first");
        assert_eq!(first.access_key_id(), "AKID1");
        // For 2.5 s, every get returns valid credentials immediately; refreshes happen behind.
        let start = Instant::now();
        let mut seen = std::collections::HashSet::new();
        while start.elapsed() < Duration::from_millis(2500) {
            let t = Instant::now();
            let c = src.get().await.expect("valid");
            assert!(
                t.elapsed() < Duration::from_millis(100),
                "get blocked for {:?}",
                t.elapsed()
            );
            assert!(c.expiry().expect("expiry") > SystemTime::now());
            seen.insert(c.access_key_id().to_string());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen.len() >= 2, "a background refresh happened: {seen:?}");
        let n = calls.load(Ordering::SeqCst);
        assert!(
            (2..=5).contains(&n),
            "refreshed about every second, not per get: {n}"
        );
        assert!(log.contains("renewal planned"));
        src.shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(src.task_finished());
        let before = calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before,
            "no refresh after shutdown"
        );
    }

    #[tokio::test]
    async fn invalidate_forces_a_fetch() {
        let log = Arc::new(MemoryLog::default());
        let (f, calls, _fail) = fake(Duration::from_secs(3600), Duration::ZERO);
        let src = CachedSource::with_timing("fake", f, log, fast());
        assert_eq!(src.get().await.expect("ok").access_key_id(), "AKID1");
        assert_eq!(src.get().await.expect("ok").access_key_id(), "AKID1");
        src.invalidate();
        assert_eq!(src.get().await.expect("ok").access_key_id(), "AKID2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failure_keeps_valid_credentials_then_expired() {
        let log = Arc::new(MemoryLog::default());
        let (f, calls, fail) = fake(Duration::from_secs(2), Duration::ZERO);
        let src = CachedSource::with_timing("fake", f, log.clone(), fast());
        let first = src.get().await.expect("first");
        fail.store(true, Ordering::SeqCst);
        // Until expiry (minus the margin) the first credentials keep coming back.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1600) {
            assert_eq!(
                src.get().await.expect("still valid").access_key_id(),
                first.access_key_id()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(calls.load(Ordering::SeqCst) >= 2, "background retried");
        assert!(log.contains("refreshing credentials from 'fake' failed"));
        assert!(log.contains("stay in use until"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before = calls.load(Ordering::SeqCst);
        let err = src.get().await.expect_err("expired");
        assert!(matches!(err, CredentialsError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("source is down"));
        assert!(
            calls.load(Ordering::SeqCst) > before,
            "get tried a fresh fetch"
        );
        // The source comes back: the next get recovers.
        fail.store(false, Ordering::SeqCst);
        let c = src.get().await.expect("recovered");
        assert_ne!(c.access_key_id(), first.access_key_id());
        assert!(!log
            .lines
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, l)| l.contains("secret") || l.contains("tok")));
    }

    #[tokio::test]
    async fn concurrent_gets_share_one_failing_fetch() {
        let log = Arc::new(MemoryLog::default());
        let (f, calls, fail) = fake(Duration::from_secs(60), Duration::from_millis(200));
        fail.store(true, Ordering::SeqCst);
        let timing = Timing {
            backoff_min: Duration::from_secs(10),
            ..fast()
        };
        let src = CachedSource::with_timing("fake", f, log, timing);
        let (a, b, c, d, e) = tokio::join!(src.get(), src.get(), src.get(), src.get(), src.get());
        for r in [a, b, c, d, e] {
            assert!(r.is_err());
        }
        assert!(
            calls.load(Ordering::SeqCst) <= 2,
            "{}",
            calls.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn initial_failure_is_the_provider_error() {
        let log = Arc::new(MemoryLog::default());
        let (f, _calls, fail) = fake(Duration::from_secs(60), Duration::ZERO);
        fail.store(true, Ordering::SeqCst);
        let src = CachedSource::with_timing("fake", f, log, fast());
        let err = src.get().await.expect_err("down");
        assert!(matches!(err, CredentialsError::Provider { .. }));
    }

    #[tokio::test]
    async fn already_expired_credentials_are_refused() {
        struct Old;
        impl Fetch for Old {
            fn fetch(&self) -> CredsFuture<'_> {
                Box::pin(async {
                    Ok(Credentials::new(
                        "A",
                        "B",
                        None,
                        Some(SystemTime::now() - Duration::from_secs(1)),
                        "old",
                    ))
                })
            }
        }
        let src =
            CachedSource::with_timing("old", Box::new(Old), Arc::new(MemoryLog::default()), fast());
        let err = src.get().await.expect_err("expired");
        assert!(err.to_string().contains("already expired"), "{err}");
    }
}

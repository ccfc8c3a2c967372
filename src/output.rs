//! One plugin instance: configuration + credentials + HTTP client. `flush(chunk, tag)` encodes,
//! splits, compresses, signs and sends, and maps the outcome to DESIGN §6's table.

use crate::aws::credentials::{self, ChainContext, CredentialSource, CredentialsError};
use crate::aws::signing::{self, SigningScope};
use crate::chunk_bodies::{self, ChunkBodies};
use crate::config::Config;
use crate::env::Env;
use crate::event::Compression;
use crate::flb_log;
use crate::http::body::Payload;
use crate::http::client::{build_client, ClientError, ClientOptions};
use crate::http::delivery::{body_excerpt, classify, Verdict};
use crate::http::proxy::{redact_url, ProxyError, ProxyResolver, PROXY_URL_VARS};
use crate::log::{Level, SharedLog};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What a flush tells Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FlushResult {
    Ok,
    Error,
    Retry,
}

impl FlushResult {
    /// A chunk's result from its parts' results: a part to retry makes the chunk retried
    /// (delivered parts are not re-sent), else any rejected part makes it an error.
    fn combine(self, other: FlushResult) -> FlushResult {
        self.max(other)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Signing(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

struct Auth {
    scope: SigningScope,
    credentials: Arc<dyn CredentialSource>,
    /// Server time minus local time, from a clock-skew error's `Date` header.
    clock_offset_ms: AtomicI64,
}

impl Auth {
    fn now(&self) -> SystemTime {
        let offset = self.clock_offset_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_millis(offset as u64)
        } else {
            now - Duration::from_millis(offset.unsigned_abs())
        }
    }
}

/// One delivered part of a chunk: its record range and the digest of its payload.
type PartKey = (usize, usize, [u8; 32]);

/// Parts already delivered of chunks whose last flush returned `FLB_RETRY`, so that the retry
/// sends only what is missing. Keyed by a hash of tag and chunk bytes. A flush *takes* its
/// chunk's entry and puts it back only when it returns `FLB_RETRY` again: another chunk with
/// the same bytes (or the same chunk flushed concurrently) never skips anything on the strength
/// of it, and a finished chunk leaves nothing behind. Bounded: the oldest entries go first.
#[derive(Default)]
struct PendingRetries {
    order: VecDeque<u64>,
    parts: HashMap<u64, HashSet<PartKey>>,
}

const PENDING_RETRIES_KEPT: usize = 1024;

impl PendingRetries {
    fn take(&mut self, chunk: u64) -> HashSet<PartKey> {
        match self.parts.remove(&chunk) {
            Some(parts) => {
                self.order.retain(|&c| c != chunk);
                parts
            }
            None => HashSet::new(),
        }
    }

    fn put(&mut self, chunk: u64, parts: HashSet<PartKey>) {
        if self.parts.insert(chunk, parts).is_none() {
            self.order.push_back(chunk);
        }
        while self.order.len() > PENDING_RETRIES_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.parts.remove(&old);
            }
        }
    }
}

/// What one flush knows about which parts of its chunk are delivered.
#[derive(Default)]
struct ChunkProgress {
    /// Hash of tag and chunk, computed only once a part needs tracking (multi-part chunks).
    key: Option<u64>,
    /// Parts delivered by this chunk's earlier attempts and by this flush.
    delivered: HashSet<PartKey>,
}

pub struct Output {
    config: Config,
    log: SharedLog,
    client: reqwest::Client,
    auth: Option<Auth>,
    host_header: String,
    pending: Mutex<PendingRetries>,
    /// Strings that must never reach a log line (proxy passwords), replaced by `***`.
    secrets: Vec<String>,
}

/// One part of a chunk being sent.
struct Part<'a> {
    bodies: &'a ChunkBodies,
    tag: &'a str,
    chunk: &'a [u8],
    progress: &'a Mutex<ChunkProgress>,
    multi: bool,
}

enum SendError {
    Credentials(CredentialsError),
    Transport(String),
    Signing(String),
}

impl Output {
    /// Builds the instance: proxy resolver, HTTP client, signing scope and credentials.
    pub async fn start(config: Config, log: SharedLog, env: Env) -> Result<Arc<Output>, InitError> {
        let resolver = ProxyResolver::new(
            &env.lookup(),
            config.proxy.as_ref(),
            config.no_proxy.as_deref(),
        )?;
        let client = build_client(
            &ClientOptions {
                tls: config.tls.clone(),
                timeout: config.timeout,
                connect_timeout: config.connect_timeout,
            },
            resolver.clone(),
        )?;
        let host_header = signing::host_header(&config.endpoint).unwrap_or_default();
        let mut secrets = Vec::new();
        for url in [config.proxy.as_ref()].into_iter().flatten() {
            if let Some(p) = url.password() {
                secrets.push(p.to_string());
            }
        }
        for var in PROXY_URL_VARS {
            if let Some(p) = env
                .get(var)
                .and_then(|v| reqwest::Url::parse(&v).ok())
                .and_then(|u| u.password().map(str::to_string))
            {
                secrets.push(p);
            }
        }

        flb_log!(
            log,
            Level::Info,
            "configuration: {}",
            config.redacted_summary()
        );
        flb_log!(
            log,
            Level::Info,
            "proxy for the endpoint: {}",
            resolver.describe(&config.endpoint)
        );
        for warning in config.startup_warnings() {
            flb_log!(log, Level::Warn, "{warning}");
        }

        let auth = if config.aws.auth {
            let scope = resolve_scope(&config, &env, &resolver).await?;
            let ctx = ChainContext {
                env,
                aws: config.aws.clone(),
                region: Some(scope.region.clone()),
                proxy: resolver.clone(),
                log: log.clone(),
            };
            let selection = credentials::select(&ctx).await?;
            flb_log!(
                log,
                Level::Info,
                "signing with SigV4 for region '{}' service '{}'; credentials provider '{}' chosen because {}",
                scope.region,
                scope.service,
                selection.source.name(),
                selection.reason
            );
            Some(Auth {
                scope,
                credentials: selection.source,
                clock_offset_ms: AtomicI64::new(0),
            })
        } else {
            flb_log!(log, Level::Info, "aws_auth off: requests are sent unsigned");
            None
        };

        Ok(Arc::new(Output {
            config,
            log,
            client,
            auth,
            host_header,
            pending: Mutex::new(PendingRetries::default()),
            secrets,
        }))
    }

    pub fn log(&self) -> SharedLog {
        self.log.clone()
    }

    /// Stops background work (credential refresh).
    pub async fn shutdown(&self) {
        if let Some(auth) = &self.auth {
            auth.credentials.shutdown();
        }
    }

    /// Ships one chunk.
    pub async fn flush(&self, chunk: &[u8], tag: &str) -> FlushResult {
        let bodies = match ChunkBodies::encode(
            chunk,
            &self.config.body,
            self.config.max_request_bytes,
            self.config.compress,
        )
        .await
        {
            Ok(bodies) => bodies,
            Err(e) => {
                flb_log!(
                    self.log,
                    Level::Error,
                    "dropping chunk with tag '{tag}' ({} bytes): {e}",
                    chunk.len()
                );
                return FlushResult::Error;
            }
        };
        if bodies.is_empty() {
            return FlushResult::Ok;
        }
        let progress = Mutex::new(ChunkProgress::default());
        let part = Part {
            bodies: &bodies,
            tag,
            chunk,
            progress: &progress,
            multi: bodies.batches.len() > 1,
        };
        let mut result = FlushResult::Ok;
        for range in bodies.batches.iter().cloned() {
            let r = self.send_range(&part, range).await;
            result = result.combine(r);
            if r == FlushResult::Retry {
                // The endpoint is struggling: stop here, the retry sends only what is missing.
                break;
            }
        }
        if result == FlushResult::Retry {
            let progress = progress.into_inner().unwrap_or_else(|p| p.into_inner());
            if let (Some(key), false) = (progress.key, progress.delivered.is_empty()) {
                self.lock_pending().put(key, progress.delivered);
            }
        }
        result
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, PendingRetries> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this part of the chunk was delivered before (by an earlier attempt of this
    /// chunk or earlier in this flush). The first call of a flush loads what earlier attempts
    /// delivered.
    fn already_delivered(&self, part: &Part<'_>, key: &PartKey) -> bool {
        let mut progress = part.progress.lock().unwrap_or_else(|p| p.into_inner());
        if progress.key.is_none() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            part.tag.hash(&mut h);
            part.chunk.hash(&mut h);
            let chunk = h.finish();
            progress.key = Some(chunk);
            progress.delivered = self.lock_pending().take(chunk);
        }
        progress.delivered.contains(key)
    }

    fn mark_delivered(&self, part: &Part<'_>, key: Option<PartKey>) {
        if let Some(key) = key {
            let mut progress = part.progress.lock().unwrap_or_else(|p| p.into_inner());
            progress.delivered.insert(key);
        }
    }

    /// Sends records `range` (splitting on 413), with one credential refresh and one clock-skew
    /// correction allowed.
    async fn send_range(&self, part: &Part<'_>, range: Range<usize>) -> FlushResult {
        let body_len = part.bodies.body_len(range.clone());
        let ready = part.bodies.ready_payload(&range);
        // Uncompressed, the payload is the body itself: no copy of up to max_request_bytes.
        let (payload, digest) = match (ready, self.config.compress) {
            (Some(ready), _) => ready,
            (None, Compression::None) => {
                let body = part.bodies.body(range.clone());
                let digest = chunk_bodies::sha256(&body);
                (body, digest)
            }
            (None, codec) => match codec.compress(&part.bodies.body(range.clone()).contiguous()) {
                Ok(p) => {
                    let p = Payload::from(p);
                    let digest = chunk_bodies::sha256(&p);
                    (p, digest)
                }
                Err(e) => {
                    flb_log!(self.log, Level::Error, "{e}; chunk kept for retry");
                    return FlushResult::Retry;
                }
            },
        };
        let track = part.multi || range.len() < part.bodies.len();
        let key = track.then_some((range.start, range.end, digest));
        if let Some(key) = &key {
            if self.already_delivered(part, key) {
                flb_log!(
                    self.log,
                    Level::Debug,
                    "part of {} records of tag '{}' was already delivered; not sent again",
                    range.len(),
                    part.tag
                );
                return FlushResult::Ok;
            }
        }
        let digest_hex = hex::encode(digest);
        let mut refreshed = false;
        let mut skew_fixed = false;
        loop {
            let (status, date, response) =
                match self.send_once(&payload, &digest_hex, part.tag).await {
                    Ok(r) => r,
                    Err(SendError::Credentials(e)) => {
                        flb_log!(
                            self.log,
                            Level::Warn,
                            "no usable credentials, chunk kept for retry: {e}"
                        );
                        return FlushResult::Retry;
                    }
                    Err(SendError::Transport(e)) => {
                        flb_log!(
                            self.log,
                            Level::Warn,
                            "request to {} failed, chunk kept for retry: {}",
                            redact_url(&self.config.endpoint),
                            self.redact(&e)
                        );
                        return FlushResult::Retry;
                    }
                    Err(SendError::Signing(e)) => {
                        flb_log!(self.log, Level::Error, "{e}; chunk kept for retry");
                        return FlushResult::Retry;
                    }
                };
            match classify(status, &response) {
                Verdict::Delivered => {
                    flb_log!(
                        self.log,
                        Level::Debug,
                        "delivered {} records ({} bytes) with tag '{}': HTTP {status}",
                        range.len(),
                        payload.len(),
                        part.tag
                    );
                    self.mark_delivered(part, key);
                    return FlushResult::Ok;
                }
                Verdict::TooLarge if range.len() > 1 => {
                    let mid = range.start + range.len() / 2;
                    flb_log!(
                        self.log,
                        Level::Warn,
                        "HTTP 413 for {} records ({} bytes): splitting and re-sending",
                        range.len(),
                        payload.len()
                    );
                    let left = Box::pin(self.send_range(part, range.start..mid)).await;
                    if left == FlushResult::Retry {
                        return left;
                    }
                    let right = Box::pin(self.send_range(part, mid..range.end)).await;
                    return left.combine(right);
                }
                Verdict::TooLarge => {
                    flb_log!(
                        self.log,
                        Level::Error,
                        "HTTP 413: the endpoint refuses a single record of {} bytes ({} bytes as sent) with tag '{}'; that record is dropped",
                        body_len,
                        payload.len(),
                        part.tag
                    );
                    self.mark_delivered(part, key);
                    return FlushResult::Ok;
                }
                Verdict::TokenRejected if !refreshed && self.auth.is_some() => {
                    refreshed = true;
                    flb_log!(self.log, Level::Info, "HTTP {status}: the endpoint says the security token expired or is invalid; refreshing credentials and re-sending once");
                    if let Some(auth) = &self.auth {
                        auth.credentials.invalidate();
                    }
                }
                Verdict::ClockSkew if !skew_fixed && self.auth.is_some() => {
                    skew_fixed = true;
                    self.correct_clock(date.as_deref());
                }
                Verdict::TokenRejected | Verdict::ClockSkew | Verdict::AuthFailed => {
                    flb_log!(
                        self.log,
                        Level::Error,
                        "HTTP {status} from the endpoint, chunk kept for retry: {}",
                        body_excerpt(&response)
                    );
                    return FlushResult::Retry;
                }
                Verdict::Transient => {
                    flb_log!(
                        self.log,
                        Level::Warn,
                        "HTTP {status} from the endpoint, chunk kept for retry: {}",
                        body_excerpt(&response)
                    );
                    return FlushResult::Retry;
                }
                Verdict::Rejected => {
                    flb_log!(self.log, Level::Error, "HTTP {status}: the endpoint rejected {} records with tag '{}'; they are dropped: {}", range.len(), part.tag, body_excerpt(&response));
                    return FlushResult::Error;
                }
            }
        }
    }

    fn correct_clock(&self, date: Option<&str>) {
        let Some(auth) = &self.auth else { return };
        match date.and_then(|d| httpdate::parse_http_date(d).ok()) {
            Some(server) => {
                let offset_ms = match server.duration_since(SystemTime::now()) {
                    Ok(ahead) => ahead.as_millis() as i64,
                    Err(behind) => -(behind.duration().as_millis() as i64),
                };
                auth.clock_offset_ms.store(offset_ms, Ordering::Relaxed);
                flb_log!(self.log, Level::Warn, "the endpoint reports clock skew; signing with a clock offset of {offset_ms} ms and re-sending once");
            }
            None => flb_log!(
                self.log,
                Level::Warn,
                "the endpoint reports clock skew but sent no usable Date header; re-sending once"
            ),
        }
    }

    async fn send_once(
        &self,
        payload: &Payload,
        digest_hex: &str,
        tag: &str,
    ) -> Result<(u16, Option<String>, Bytes), SendError> {
        let format = self.config.body.format;
        let content_type = format.content_type();
        let encoding = self.config.compress.content_encoding();
        let mut req = self
            .client
            .post(self.config.endpoint.clone())
            .header("content-type", content_type);
        if let Some(enc) = encoding {
            req = req.header("content-encoding", enc);
        }
        for (name, value) in &self.config.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(name) = &self.config.header_tag {
            req = req.header(name.as_str(), tag);
        }
        if let Some(auth) = &self.auth {
            let creds = auth
                .credentials
                .get()
                .await
                .map_err(SendError::Credentials)?;
            let mut to_sign: Vec<(&str, &str)> =
                vec![("host", &self.host_header), ("content-type", content_type)];
            if let Some(enc) = encoding {
                to_sign.push(("content-encoding", enc));
            }
            let signed = signing::sign_request(
                "POST",
                self.config.endpoint.as_str(),
                &to_sign,
                digest_hex,
                &creds,
                &auth.scope,
                auth.now(),
            )
            .map_err(|e| SendError::Signing(e.to_string()))?;
            req = req.header("host", &self.host_header);
            for (name, value) in signed {
                req = req.header(name, value);
            }
        }
        let resp = req
            .body(payload.to_body())
            .send()
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        Ok((status, date, body))
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// An error with its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// The signing scope, from the same resolution the doctor reports ([`crate::aws::scope`]).
async fn resolve_scope(
    config: &Config,
    env: &Env,
    proxy: &ProxyResolver,
) -> Result<SigningScope, InitError> {
    crate::aws::scope::resolve_scope(config, env, proxy)
        .await
        .map(|r| r.scope)
        .map_err(|e| match e {
            crate::aws::scope::ScopeError::Imds(c) => InitError::Credentials(c),
            other => InitError::Signing(other.to_string()),
        })
}

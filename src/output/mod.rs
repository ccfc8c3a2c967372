//! One plugin instance: configuration + credentials + HTTP client. `flush(chunk, tag)` encodes,
//! splits, compresses, signs and sends, remembers per record what ended how, and maps the
//! outcome to DESIGN §6's table.
//!
//! - `memory`: which records of unfinished chunks were delivered, rejected or are in flight;
//! - `send`: one request (and its 413 split, credential refresh and clock-skew retries);
//! - `outcome`: the chunk's one result;
//! - `budget`: flushes on Fluent Bit's engine thread, which may not hold it long.

pub mod budget;
pub mod memory;
pub mod outcome;
mod probe;
mod send;

use crate::aws::clock::SkewClock;
use crate::aws::credentials::{self, ChainContext, CredentialSource, CredentialsError};
use crate::aws::http::AwsHttp;
use crate::aws::signing::{self, SigningScope};
use crate::chunk_bodies::ChunkBodies;
use crate::config::Config;
use crate::env::Env;
use crate::flb_log;
use crate::http::client::{build_client, ClientError, ClientOptions};
use crate::http::proxy::{ProxyError, ProxyResolver, PROXY_URL_VARS};
use crate::log::{Level, SharedLog};
use budget::{Background, Caller, Held, Waiter};
use memory::{chunk_key, ChunkRecord, RecordMemory};
pub use outcome::{FlushResult, Tally};
pub use probe::{SendTestError, TestExchange};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How requests are signed.
pub struct Auth {
    pub scope: SigningScope,
    pub credentials: Arc<dyn CredentialSource>,
    /// The instance's skew-corrected clock, shared with STS (corrected from a clock-skew
    /// error's `Date` header, whoever saw it).
    pub clock: SkewClock,
}

pub struct Output {
    config: Config,
    log: SharedLog,
    client: reqwest::Client,
    auth: Option<Auth>,
    host_header: String,
    /// The `Content-Type` sent and signed: the user's, else the format's.
    content_type: String,
    memory: RecordMemory,
    background: Arc<Background>,
    /// The no-Workers warning was logged.
    warned_engine: AtomicBool,
    /// Strings that must never reach a log line (proxy passwords), replaced by `***`.
    secrets: Vec<String>,
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
        for skipped in resolver.skipped_no_proxy() {
            flb_log!(log, Level::Warn, "{skipped}");
        }

        let secrets_env = env.clone();
        let auth = if config.aws.auth {
            let http = AwsHttp::new(&env, &resolver)?;
            let scope = resolve_scope(&config, &env, &http).await?;
            let ctx = ChainContext {
                env,
                aws: config.aws.clone(),
                region: Some(scope.region.clone()),
                proxy: resolver.clone(),
                http,
                clock: SkewClock::new(),
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
                clock: ctx.clock.clone(),
            })
        } else {
            flb_log!(log, Level::Info, "aws_auth off: requests are sent unsigned");
            None
        };

        Ok(Arc::new(Output::assemble(
            config,
            log,
            &secrets_env,
            client,
            auth,
        )))
    }

    /// The instance from parts already built (`start`'s last step; the doctor builds the parts
    /// itself to report on each, then sends through [`Output::send_test`]). `env` only names
    /// the proxy passwords to keep out of log lines.
    pub fn assemble(
        config: Config,
        log: SharedLog,
        env: &Env,
        client: reqwest::Client,
        auth: Option<Auth>,
    ) -> Output {
        let host_header = signing::host_header(&config.endpoint).unwrap_or_default();
        // A user `Content-Type` (in `headers`) replaces the format's and is what gets signed.
        let content_type = config
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| config.body.format.content_type().to_string());
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
        Output {
            config,
            log,
            client,
            auth,
            host_header,
            memory: RecordMemory::default(),
            background: Arc::new(Background::default()),
            warned_engine: AtomicBool::new(false),
            content_type,
            secrets,
        }
    }

    pub fn log(&self) -> SharedLog {
        self.log.clone()
    }

    pub fn background(&self) -> Arc<Background> {
        self.background.clone()
    }

    /// Logs, once per instance, that flushes run on Fluent Bit's engine thread.
    pub fn warn_engine_once(&self) {
        if !self.warned_engine.swap(true, Ordering::AcqRel) {
            flb_log!(
                self.log,
                Level::Warn,
                "this output has no Workers: its flushes run on Fluent Bit's engine thread, which each flush may hold for at most {} ms before it returns a retry and lets its request finish in the background. Set 'Workers 2' on this [OUTPUT]; if you hot-reload Fluent Bit (which crashes with Workers on proxy outputs), keep no Workers and set 'Retry_Limit no_limits' so that no chunk is given up while its request is still running",
                budget::ENGINE_BUDGET.as_millis()
            );
        }
    }

    /// Stops background work: waits (bounded) for background requests, logs what is abandoned,
    /// and stops credential refresh.
    pub async fn shutdown(&self, wait: Duration) {
        if !self.background.wait_idle(wait).await {
            flb_log!(
                self.log,
                Level::Warn,
                "exiting with {} request(s) still running in the background ({} bytes held), abandoned after {} ms; their chunks were returned to Fluent Bit for retry and are sent again after a restart or reload if Fluent Bit keeps them (at-least-once)",
                self.background.tasks(),
                self.background.bytes(),
                wait.as_millis()
            );
        }
        if let Some(auth) = &self.auth {
            auth.credentials.shutdown();
        }
    }

    /// Ships one chunk. `start` is when Fluent Bit called flush; `waiter` tells whether Fluent
    /// Bit will learn the result (it decides what the chunk's record keeps); `held` counts the
    /// bytes of a background (engine-thread) flush.
    pub async fn flush(
        &self,
        chunk: &[u8],
        tag: &str,
        caller: Caller,
        start: Instant,
        waiter: &Waiter,
        held: Option<&Held>,
    ) -> FlushResult {
        let bodies = match ChunkBodies::encode_tagged(
            chunk,
            tag,
            &self.config.body,
            self.config.max_request_bytes,
            self.config.compress,
        )
        .await
        {
            Ok(bodies) => bodies,
            Err(e) => {
                waiter.complete();
                flb_log!(
                    self.log,
                    Level::Error,
                    "dropping chunk with tag '{tag}' ({} bytes): {e}",
                    chunk.len()
                );
                return FlushResult::Error;
            }
        };
        if let Some(held) = held {
            held.add(bodies.byte_size());
        }
        if bodies.is_empty() {
            waiter.complete();
            return FlushResult::Ok;
        }
        // The chunk is looked up (and so hashed) only when something may be remembered of it, or
        // when it must be visible to a retry while it runs in the background.
        let key =
            (caller == Caller::Engine || !self.memory.is_empty()).then(|| chunk_key(tag, chunk));
        let record = match key {
            Some(key) => self.memory.open(key, bodies.len()),
            None => Arc::new(ChunkRecord::new(bodies.len())),
        };
        let result = self.send_chunk(&bodies, tag, &record, caller, start).await;
        if waiter.complete() {
            match (result, key) {
                (FlushResult::Retry, None) if record.has_settled() => {
                    self.memory.remember(chunk_key(tag, chunk), &record)
                }
                (FlushResult::Retry, _) => {}
                (_, Some(key)) => self.memory.forget(key),
                (_, None) => {}
            }
        }
        result
    }

    /// Sends what is left of a chunk, batch by batch, and tallies the chunk's result.
    async fn send_chunk(
        &self,
        bodies: &ChunkBodies,
        tag: &str,
        record: &ChunkRecord,
        caller: Caller,
        start: Instant,
    ) -> FlushResult {
        // An earlier attempt of this chunk may still have records in flight (in the background):
        // wait for them (within the caller's limit) rather than send them twice.
        if !record
            .wait_idle(caller.wait_deadline(start, budget::IN_FLIGHT_WAIT))
            .await
        {
            flb_log!(
                self.log,
                Level::Debug,
                "records of the chunk with tag '{tag}' are still being sent by an earlier attempt; chunk kept for retry"
            );
            return FlushResult::Retry;
        }
        let bulk = (self.config.body.format == crate::event::Format::OpenSearch)
            .then(|| std::sync::Mutex::new(crate::opensearch::response::FlushSummary::new()));
        let part = send::Part {
            bodies,
            tag,
            record,
            bulk: bulk.as_ref(),
        };
        let mut retry = false;
        'batches: for batch in bodies.batches.iter().cloned() {
            let mut claimed = record.claim(batch).into_iter();
            while let Some(range) = claimed.next() {
                if self.send_range(&part, range).await == send::Sent::Retry {
                    // The endpoint is struggling: stop here, the retry sends only what is missing.
                    for rest in claimed {
                        record.release(rest);
                    }
                    retry = true;
                    break 'batches;
                }
            }
        }
        if let Some(line) =
            bulk.and_then(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()).line())
        {
            flb_log!(self.log, Level::Warn, "tag '{tag}': {line}");
        }
        Tally {
            delivered: record.delivered(),
            rejected: record.rejected(),
            retry: retry || !record.is_complete(),
        }
        .result()
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

/// The signing scope, from the same resolution the doctor reports ([`crate::aws::scope`]).
async fn resolve_scope(
    config: &Config,
    env: &Env,
    http: &AwsHttp,
) -> Result<SigningScope, InitError> {
    crate::aws::scope::resolve_scope(config, env, http)
        .await
        .map(|r| r.scope)
        .map_err(|e| match e {
            crate::aws::scope::ScopeError::Imds(c) => InitError::Credentials(c),
            other => InitError::Signing(other.to_string()),
        })
}

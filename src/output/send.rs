//! One request of a chunk: payload, signature, send, and what its answer means for its records
//! (DESIGN §6): 413 splits, one credential refresh, one clock-skew correction.

use super::budget;
use super::memory::{ChunkRecord, Settled};
use super::Output;
use crate::aws::credentials::CredentialsError;
use crate::aws::signing;
use crate::chunk_bodies::{self, ChunkBodies};
use crate::event::Compression;
use crate::flb_log;
use crate::http::body::Payload;
use crate::http::client::transport_hint;
use crate::http::delivery::{body_excerpt, classify, header_excerpt, ResponseHead, Verdict};
use crate::http::proxy::redact_url;
use crate::log::Level;
use crate::opensearch::response::{parse_bulk_response, FlushSummary, Items, Outcome};
use crate::runtime;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

/// The chunk a request belongs to.
pub(super) struct Part<'a> {
    pub bodies: &'a ChunkBodies,
    pub tag: &'a str,
    pub record: &'a ChunkRecord,
    /// `format opensearch`: the documents of this flush that were not delivered, for one log
    /// line per flush.
    pub bulk: Option<&'a Mutex<FlushSummary>>,
}

/// How often the documents a `_bulk` response says are worth retrying (429, 5xx, 402, a 409
/// conflict of an update) are sent again within one flush, and the first pause (doubled each
/// time). What still fails then is left to Fluent Bit's retry of the chunk.
const BULK_ITEM_RETRIES: u32 = 3;
const BULK_ITEM_BACKOFF: Duration = Duration::from_millis(200);

/// Whether the records of a range ended (delivered or rejected for good) or wait for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    Settled,
    Retry,
}

pub(super) enum SendError {
    Credentials(CredentialsError),
    CredentialsTimeout,
    Transport(String),
    Signing(String),
}

/// A response: its status and headers of interest, and its body.
type Response = (ResponseHead, Bytes);

impl Output {
    /// Sends records `range` (claimed in flight by the caller) and settles or releases them in
    /// the chunk's record.
    pub(super) async fn send_range(&self, part: &Part<'_>, range: Range<usize>) -> Sent {
        let sent = self.send_claimed(part, range.clone()).await;
        if sent == Sent::Retry {
            // Whatever of the range was not settled is no longer in flight.
            part.record.release(range);
        }
        sent
    }

    /// The payload (compressed when configured) of records `range` and its SHA-256.
    pub(super) fn payload(
        &self,
        part: &Part<'_>,
        range: &Range<usize>,
    ) -> Result<(Payload, [u8; 32]), String> {
        if let Some(ready) = part.bodies.ready_payload(range) {
            return Ok(ready);
        }
        // Compressing and hashing a body not prepared alongside encoding is CPU work.
        runtime::off_worker(|| match self.config.compress {
            // Uncompressed, the payload is the body itself: no copy of up to max_request_bytes.
            Compression::None => {
                let body = part.bodies.body(range.clone());
                let digest = chunk_bodies::sha256(&body);
                Ok((body, digest))
            }
            codec => {
                let p = codec
                    .compress(&part.bodies.body(range.clone()).contiguous())
                    .map_err(|e| e.to_string())?;
                let p = Payload::from(p);
                let digest = chunk_bodies::sha256(&p);
                Ok((p, digest))
            }
        })
    }

    /// The payload and its SHA-256 of several record ranges sent as one body (`_bulk` bodies
    /// are record lines back to back, so any selection of records is a valid body).
    fn payload_of(
        &self,
        part: &Part<'_>,
        ranges: &[Range<usize>],
    ) -> Result<(Payload, [u8; 32]), String> {
        if let [one] = ranges {
            return self.payload(part, one);
        }
        let mut pieces = Vec::new();
        for r in ranges {
            pieces.extend(part.bodies.body(r.clone()).pieces().iter().cloned());
        }
        let body = Payload::new(pieces);
        runtime::off_worker(|| match self.config.compress {
            Compression::None => {
                let digest = chunk_bodies::sha256(&body);
                Ok((body, digest))
            }
            codec => {
                let p = Payload::from(
                    codec
                        .compress(&body.contiguous())
                        .map_err(|e| e.to_string())?,
                );
                let digest = chunk_bodies::sha256(&p);
                Ok((p, digest))
            }
        })
    }

    /// Settles records `ranges` (in request order, one `_bulk` item each) from a 2xx `_bulk`
    /// response, then re-sends the documents worth retrying, only those, a bounded number of
    /// times. `Retry` when some are still not delivered (they are released by the caller).
    async fn settle_bulk(&self, part: &Part<'_>, ranges: Vec<Range<usize>>, body: &Bytes) -> Sent {
        let mut pending = ranges;
        let mut response = body.clone();
        let mut attempt = 0;
        loop {
            let sent: usize = pending.iter().map(|r| r.len()).sum();
            let parsed = match parse_bulk_response(&response, Some(sent)) {
                Ok(p) => p,
                Err(e) => {
                    flb_log!(
                        self.log,
                        Level::Error,
                        "_bulk answered 2xx with a body that does not say which of its {sent} documents were indexed ({e}); chunk kept for retry: {}",
                        body_excerpt(&response)
                    );
                    return Sent::Retry;
                }
            };
            let items = match parsed.items {
                Items::AllDelivered(n) => {
                    if let Some(m) = part.bulk {
                        m.lock().unwrap_or_else(|p| p.into_inner()).add_delivered(n);
                    }
                    for r in pending {
                        part.record.settle(r, Settled::Delivered);
                    }
                    return Sent::Settled;
                }
                Items::Each(items) => items,
            };
            let (mut delivered, mut rejected, mut again) = (Vec::new(), Vec::new(), Vec::new());
            {
                let records = pending.iter().flat_map(|r| r.clone());
                let mut summary = part
                    .bulk
                    .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
                let last = attempt == BULK_ITEM_RETRIES;
                for (record, item) in records.zip(items.iter()) {
                    // Documents to retry count in the summary only once no retry is left.
                    if let Some(s) = summary
                        .as_mut()
                        .filter(|_| last || item.outcome() != Outcome::Retryable)
                    {
                        s.add(item);
                    }
                    match item.outcome() {
                        Outcome::Delivered => push_record(&mut delivered, record),
                        Outcome::Rejected => push_record(&mut rejected, record),
                        Outcome::Retryable => push_record(&mut again, record),
                    }
                }
            }
            // Settled in runs of records (one call for a request whose documents all went in).
            for r in delivered {
                part.record.settle(r, Settled::Delivered);
            }
            for r in rejected {
                part.record.settle(r, Settled::Rejected);
            }
            if again.is_empty() {
                return Sent::Settled;
            }
            attempt += 1;
            if attempt > BULK_ITEM_RETRIES {
                return Sent::Retry;
            }
            tokio::time::sleep(BULK_ITEM_BACKOFF * 2u32.pow(attempt - 1)).await;
            pending = again;
            let (payload, digest) = match self.payload_of(part, &pending) {
                Ok(p) => p,
                Err(e) => {
                    flb_log!(self.log, Level::Error, "{e}; chunk kept for retry");
                    return Sent::Retry;
                }
            };
            let (head, body) = match self
                .send_once(&payload, &hex::encode(digest), part.tag)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    self.log_send_error(e);
                    return Sent::Retry;
                }
            };
            if classify(&head, &body) != Verdict::Delivered {
                flb_log!(
                    self.log,
                    Level::Warn,
                    "HTTP {} re-sending {} documents to _bulk, chunk kept for retry: {}",
                    head.status,
                    pending.iter().map(|r| r.len()).sum::<usize>(),
                    body_excerpt(&body)
                );
                return Sent::Retry;
            }
            response = body;
        }
    }

    async fn send_claimed(&self, part: &Part<'_>, range: Range<usize>) -> Sent {
        let body_len = part.bodies.body_len(range.clone());
        let (payload, digest) = match self.payload(part, &range) {
            Ok(p) => p,
            Err(e) => {
                flb_log!(self.log, Level::Error, "{e}; chunk kept for retry");
                return Sent::Retry;
            }
        };
        let digest_hex = hex::encode(digest);
        let mut refreshed = false;
        let mut skew_fixed = false;
        loop {
            let (head, response) = match self.send_once(&payload, &digest_hex, part.tag).await {
                Ok(r) => r,
                Err(e) => {
                    self.log_send_error(e);
                    return Sent::Retry;
                }
            };
            let (status, date) = (head.status, head.date.clone());
            match classify(&head, &response) {
                Verdict::Delivered if part.bulk.is_some() => {
                    return self.settle_bulk(part, vec![range], &response).await;
                }
                Verdict::Delivered => {
                    flb_log!(
                        self.log,
                        Level::Debug,
                        "delivered {} records ({} bytes) with tag '{}': HTTP {status}",
                        range.len(),
                        payload.len(),
                        part.tag
                    );
                    part.record.settle(range, Settled::Delivered);
                    return Sent::Settled;
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
                    let left = Box::pin(self.send_claimed(part, range.start..mid)).await;
                    if left == Sent::Retry {
                        return left;
                    }
                    return Box::pin(self.send_claimed(part, mid..range.end)).await;
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
                    part.record.settle(range, Settled::Rejected);
                    return Sent::Settled;
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
                    return Sent::Retry;
                }
                Verdict::Transient => {
                    flb_log!(
                        self.log,
                        Level::Warn,
                        "HTTP {status} from the endpoint, chunk kept for retry: {}",
                        body_excerpt(&response)
                    );
                    return Sent::Retry;
                }
                Verdict::Redirect => {
                    flb_log!(self.log, Level::Error, "HTTP {status} redirect to '{}' (redirects are not followed; set endpoint to the final URL): {} records with tag '{}' are dropped", head.location.as_deref().map_or_else(|| "(no Location)".to_string(), |l| self.redact(&header_excerpt(l))), range.len(), part.tag);
                    part.record.settle(range, Settled::Rejected);
                    return Sent::Settled;
                }
                Verdict::Rejected => {
                    flb_log!(self.log, Level::Error, "HTTP {status}: the endpoint rejected {} records with tag '{}'; they are dropped: {}", range.len(), part.tag, body_excerpt(&response));
                    part.record.settle(range, Settled::Rejected);
                    return Sent::Settled;
                }
            }
        }
    }

    fn log_send_error(&self, e: SendError) {
        match e {
            SendError::Credentials(e) => flb_log!(
                self.log,
                Level::Warn,
                "no usable credentials, chunk kept for retry: {e}"
            ),
            SendError::CredentialsTimeout => flb_log!(
                self.log,
                Level::Warn,
                "no credentials yet: the credentials provider has not answered within {} s (it keeps trying in the background); chunk kept for retry",
                budget::CREDENTIALS_WAIT.as_secs()
            ),
            SendError::Transport(e) => flb_log!(
                self.log,
                Level::Warn,
                "request to {} failed, chunk kept for retry: {}{}",
                redact_url(&self.config.endpoint),
                self.redact(&e),
                transport_hint(&e).map_or(String::new(), |h| format!(" ({h})"))
            ),
            SendError::Signing(e) => {
                flb_log!(self.log, Level::Error, "{e}; chunk kept for retry")
            }
        }
    }

    fn correct_clock(&self, date: Option<&str>) {
        let Some(auth) = &self.auth else { return };
        match date.and_then(|d| auth.clock.set_offset_from_server_date(d)) {
            Some(offset_ms) => {
                flb_log!(self.log, Level::Warn, "the endpoint reports clock skew; signing with a clock offset of {offset_ms} ms and re-sending once");
            }
            None => flb_log!(
                self.log,
                Level::Warn,
                "the endpoint reports clock skew but sent no usable Date header; re-sending once"
            ),
        }
    }

    /// The request exactly as the plugin sends it: the instance's `Content-Type` (the user's
    /// replaces the format's), `Content-Encoding`, `headers`, `header_tag`, signed with the
    /// instance's credentials and skew-corrected clock, through its client.
    pub(super) async fn send_once(
        &self,
        payload: &Payload,
        digest_hex: &str,
        tag: &str,
    ) -> Result<Response, SendError> {
        let content_type = self.content_type.as_str();
        let encoding = self.config.compress.content_encoding();
        let mut req = self
            .client
            .post(self.config.endpoint.clone())
            .header("content-type", content_type);
        if let Some(enc) = encoding {
            req = req.header("content-encoding", enc);
        }
        for (name, value) in &self.config.headers {
            if !name.eq_ignore_ascii_case("content-type") {
                req = req.header(name.as_str(), value.as_str());
            }
        }
        if let Some(name) = &self.config.header_tag {
            req = req.header(name.as_str(), tag);
        }
        if let Some(auth) = &self.auth {
            // Credentials being fetched are waited for only so long: the fetch goes on in the
            // background and the chunk is retried.
            let creds = tokio::time::timeout(budget::CREDENTIALS_WAIT, auth.credentials.get())
                .await
                .map_err(|_| SendError::CredentialsTimeout)?
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
                auth.clock.now(),
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
        let head = ResponseHead::of(&resp);
        let body = resp
            .bytes()
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        Ok((head, body))
    }
}

/// Appends a record to a list of ranges, extending the last when adjacent.
fn push_record(ranges: &mut Vec<Range<usize>>, record: usize) {
    match ranges.last_mut() {
        Some(last) if last.end == record => last.end += 1,
        _ => ranges.push(record..record + 1),
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

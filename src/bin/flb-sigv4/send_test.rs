//! `--send-test`: one request to the endpoint, built as the plugin builds its requests (body from
//! the plugin's encoder, compression, SigV4 through `aws::signing`, the plugin's HTTP client) and
//! its answer classified by the plugin's own table (`http::delivery::classify`).

use crate::report::SendTest;
use flb_sigv4::aws::credentials::CredentialSource;
use flb_sigv4::aws::signing::{self, SigningScope};
use flb_sigv4::chunk_bodies::{self, ChunkBodies};
use flb_sigv4::config::Config;
use flb_sigv4::event::Format;
use flb_sigv4::http::body::Payload;
use flb_sigv4::http::delivery::{body_excerpt, classify, Verdict};
use flb_sigv4::http::proxy::redact_url;
use std::sync::Arc;
use std::time::SystemTime;

/// One event in Fluent Bit's v2 form: `[[EventTime, {}], {"message": …, "source": …}]`.
fn test_chunk() -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut buf = Vec::new();
    let mut ts = Vec::with_capacity(8);
    ts.extend_from_slice(&(now.as_secs() as u32).to_be_bytes());
    ts.extend_from_slice(&now.subsec_nanos().to_be_bytes());
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_array_len(&mut buf, 2);
    let _ = rmp::encode::write_array_len(&mut buf, 2);
    let _ = rmp::encode::write_ext_meta(&mut buf, 8, 0);
    buf.extend_from_slice(&ts);
    let _ = rmp::encode::write_map_len(&mut buf, 0);
    let _ = rmp::encode::write_map_len(&mut buf, 2);
    let _ = rmp::encode::write_str(&mut buf, "message");
    let _ = rmp::encode::write_str(&mut buf, "flb-sigv4 doctor test record");
    let _ = rmp::encode::write_str(&mut buf, "source");
    let _ = rmp::encode::write_str(&mut buf, "flb-sigv4 doctor --send-test --record");
    buf
}

fn is_bulk(config: &Config) -> bool {
    config
        .endpoint
        .path()
        .trim_end_matches('/')
        .ends_with("/_bulk")
}

/// What the plugin does with a part answered like this (DESIGN §6).
fn meaning(v: &Verdict) -> &'static str {
    match v {
        Verdict::Delivered => "delivered (FLB_OK)",
        Verdict::TooLarge => "too large: the plugin splits the batch and re-sends",
        Verdict::TokenRejected => "the credentials are rejected as expired or invalid: the plugin refreshes them once and re-sends, then retries (FLB_RETRY); if it persists they are revoked or belong to another account or partition",
        Verdict::ClockSkew => "clock skew: the plugin corrects its clock from the response's Date and re-sends once; fix this host's time (NTP)",
        Verdict::AuthFailed => "not authorized: kept for retry (FLB_RETRY) and logged as an error; check the identity's IAM policy, the endpoint's resource policy (OpenSearch: role mapping), and the region and service signed for",
        Verdict::Transient => "temporary failure: kept for retry (FLB_RETRY)",
        Verdict::Redirect => "a redirect, which the plugin does not follow: FLB_ERROR (records dropped); set endpoint to the final URL",
        Verdict::Rejected => "rejected for good (FLB_ERROR): the records are dropped",
    }
}

pub async fn run(
    config: &Config,
    client: &reqwest::Client,
    signer: Option<&(Arc<dyn CredentialSource>, SigningScope)>,
    record: bool,
) -> SendTest {
    let url = redact_url(&config.endpoint);
    let mut result = SendTest {
        url,
        body: String::new(),
        status: None,
        verdict: "transport error".into(),
        meaning: String::new(),
        accepted: false,
        response: None,
        error: None,
    };
    let chunk = if record { test_chunk() } else { Vec::new() };
    let bodies = match ChunkBodies::encode(
        &chunk,
        &config.body,
        config.max_request_bytes,
        config.compress,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            result.error = Some(format!("encoding the test body: {e}"));
            return result;
        }
    };
    let raw = bodies.body(0..bodies.len()).contiguous();
    let payload = match config.compress.compress(&raw) {
        Ok(c) if !config.compress.is_none() => Payload::from(c),
        Ok(_) => Payload::from(raw.clone()),
        Err(e) => {
            result.error = Some(format!("compressing the test body: {e}"));
            return result;
        }
    };
    result.body = format!(
        "{}, {} bytes{}",
        if record {
            "one test record"
        } else {
            "empty batch"
        },
        payload.len(),
        config
            .compress
            .content_encoding()
            .map(|e| format!(" {e}"))
            .unwrap_or_default()
    );
    let digest = hex::encode(chunk_bodies::sha256(&payload));
    let user_type = config
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let content_type = user_type.unwrap_or(config.body.format.content_type());
    let encoding = config.compress.content_encoding();
    let mut req = client
        .post(config.endpoint.clone())
        .header("content-type", content_type);
    if let Some(enc) = encoding {
        req = req.header("content-encoding", enc);
    }
    for (name, value) in &config.headers {
        if !name.eq_ignore_ascii_case("content-type") {
            req = req.header(name.as_str(), value.as_str());
        }
    }
    if let Some((source, scope)) = signer {
        let creds = match source.get().await {
            Ok(c) => c,
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
        };
        let host = signing::host_header(&config.endpoint).unwrap_or_default();
        let mut to_sign: Vec<(&str, &str)> = vec![("host", &host), ("content-type", content_type)];
        if let Some(enc) = encoding {
            to_sign.push(("content-encoding", enc));
        }
        let signed = match signing::sign_request(
            "POST",
            config.endpoint.as_str(),
            &to_sign,
            &digest,
            &creds,
            scope,
            SystemTime::now(),
        ) {
            Ok(s) => s,
            Err(e) => {
                result.error = Some(e.to_string());
                return result;
            }
        };
        req = req.header("host", &host);
        for (name, value) in signed {
            req = req.header(name, value);
        }
    }
    let resp = match req.body(payload.to_body()).send().await {
        Ok(r) => r,
        Err(e) => {
            result.meaning = "no answer: kept for retry (FLB_RETRY)".into();
            result.error = Some(error_chain(&e));
            return result;
        }
    };
    let head = flb_sigv4::http::delivery::ResponseHead::of(&resp);
    let status = head.status;
    let body = resp.bytes().await.unwrap_or_default();
    let verdict = classify(&head, &body);
    let excerpt = body_excerpt(&body);
    result.status = Some(status);
    result.response = Some(excerpt.clone());
    result.verdict = format!("{verdict:?}");
    result.meaning = meaning(&verdict).to_string();
    result.accepted = verdict == Verdict::Delivered;
    // An empty `_bulk` is refused by OpenSearch after authentication: the credentials passed.
    if !record && is_bulk(config) && status == 400 && excerpt.contains("request body is required") {
        result.accepted = true;
        result.meaning = "authentication passed: OpenSearch refuses an empty _bulk body after checking the signature (use --record to write one document)".into();
    }
    if config.body.format == Format::Msgpack && result.accepted && !record {
        result
            .meaning
            .push_str("; an empty msgpack body carries no records");
    }
    result
}

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

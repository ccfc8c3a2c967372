//! `--send-test`: one request to the endpoint, built and sent by the plugin itself
//! ([`Output::send_test`]: its encoder, compression, headers, signing and client), and its answer
//! classified by the plugin's own table (`http::delivery::classify`).

use crate::report::SendTest;
use flb_sigv4::config::Config;
use flb_sigv4::event::Format;
use flb_sigv4::http::delivery::{body_excerpt, classify, Verdict};
use flb_sigv4::http::proxy::redact_url;
use flb_sigv4::output::{Output, SendTestError};
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

/// The tag the test request carries (`header_tag`, `include_tag_key`).
const TEST_TAG: &str = "flb-sigv4.doctor";

pub async fn run(output: &Output, config: &Config, record: bool) -> SendTest {
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
    let exchange = match output.send_test(&chunk, TEST_TAG).await {
        Ok(x) => x,
        Err(e @ SendTestError::Prepare(_)) => {
            result.error = Some(e.to_string());
            return result;
        }
        Err(e @ SendTestError::Transport(_)) => {
            result.meaning = "no answer: kept for retry (FLB_RETRY)".into();
            result.error = Some(e.to_string());
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
        exchange.payload_bytes,
        config
            .compress
            .content_encoding()
            .map(|e| format!(" {e}"))
            .unwrap_or_default()
    );
    let (head, body) = (exchange.head, exchange.body);
    let status = head.status;
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

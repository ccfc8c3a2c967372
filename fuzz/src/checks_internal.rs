//! Fuzz checks on the credential parsers, reached through
//! `flb_sigv4::aws::credentials::fuzzing` (a hidden module: the parsers are crate-private).
//! Each check takes the raw fuzz input and panics on a finding: a panic in the parser, or a
//! secret value of the input (replaced by a canary) showing in an error message, a plan
//! description or a `Debug` output.

use flb_sigv4::aws::credentials::fuzzing;

/// A value that must never show in an error, a plan description or a `Debug` output.
const CANARY: &str = "CANARYxSECRETx7q";

fn assert_no_canary(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY),
        "{what} shows a secret value: {text}"
    );
}

/// Canary checks only make sense when the input does not hold the canary itself.
fn has_canary(data: &[u8]) -> bool {
    data.windows(CANARY.len()).any(|w| w == CANARY.as_bytes())
}

/// The JSON object with every string under a secret-looking key (`*secret*`, `*token*`, any
/// case, any depth) replaced by [`CANARY`]; `None` when the input is not a JSON object or has
/// no such key.
fn json_with_canary(data: &[u8]) -> Option<Vec<u8>> {
    fn walk(v: &mut serde_json::Value) -> bool {
        let mut hit = false;
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    let k = k.to_ascii_lowercase();
                    if v.is_string() && (k.contains("secret") || k.contains("token")) {
                        *v = serde_json::Value::String(CANARY.to_string());
                        hit = true;
                    } else {
                        hit |= walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for v in a {
                    hit |= walk(v);
                }
            }
            _ => {}
        }
        hit
    }
    if has_canary(data) {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_slice(data).ok()?;
    if !v.is_object() || !walk(&mut v) {
        return None;
    }
    serde_json::to_vec(&v).ok()
}

/// Input: the config file's text, a NUL byte, the credentials file's text (no NUL: config only).
/// Checks: no panic; then, with every `aws_secret_access_key` / `aws_session_token` value
/// replaced by a canary, no plan description or error shows it.
pub fn check_profile_file(data: &[u8]) {
    let (config, credentials) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(config), Ok(credentials)) = (
        std::str::from_utf8(config),
        std::str::from_utf8(credentials),
    ) else {
        return; // the loader refuses non-UTF-8 files before parsing
    };
    let _ = fuzzing::profile_files(config, credentials);
    let canary = |text: &str| -> (String, bool) {
        let mut hit = false;
        let lines: Vec<String> = text
            .split('\n')
            .map(|line| match line.split_once('=') {
                Some((k, _))
                    if matches!(k.trim(), "aws_secret_access_key" | "aws_session_token") =>
                {
                    hit = true;
                    format!("{k}= {CANARY}")
                }
                _ => line.to_string(),
            })
            .collect();
        (lines.join("\n"), hit)
    };
    let ((config, a), (credentials, b)) = (canary(config), canary(credentials));
    if !(a || b) || has_canary(data) {
        return;
    }
    match fuzzing::profile_files(&config, &credentials) {
        Ok(plans) => {
            for (name, plan) in plans {
                match plan {
                    Ok(d) => assert_no_canary(&format!("plan of profile {name:?}"), &d),
                    Err(e) => assert_no_canary(&format!("error of profile {name:?}"), &e),
                }
            }
        }
        Err(e) => assert_no_canary("parse error", &e),
    }
}

/// Input: `credential_process` stdout. Checks: no panic, no empty keys accepted; secrets
/// (canary) never in the error or the `Debug` output.
pub fn check_credential_process_json(data: &[u8]) {
    for (input, canary) in [(Some(data.to_vec()), false), (json_with_canary(data), true)] {
        let Some(input) = input else { continue };
        let shown = match fuzzing::credential_process_output(&input) {
            Ok(c) => {
                assert!(!c.access_key_id().is_empty(), "empty AccessKeyId accepted");
                assert!(
                    !c.secret_access_key().is_empty(),
                    "empty SecretAccessKey accepted"
                );
                format!("{c:?}")
            }
            Err(e) => e,
        };
        if canary {
            assert_no_canary("credential_process result", &shown);
        }
    }
}

/// Input: a container / IMDS credentials response body. Checks: no panic; complete
/// credentials on success; secrets (canary) never in the error or `Debug` output.
pub fn check_metadata_json(data: &[u8]) {
    for (input, canary) in [(Some(data.to_vec()), false), (json_with_canary(data), true)] {
        let Some(input) = input else { continue };
        let shown = match fuzzing::metadata_credentials(&input) {
            Ok(c) => {
                assert!(!c.access_key_id().is_empty(), "empty AccessKeyId accepted");
                assert!(c.expiry().is_some(), "no expiry");
                format!("{c:?}")
            }
            Err(e) => e,
        };
        if canary {
            assert_no_canary("metadata result", &shown);
        }
    }
}

//! EC2 instance metadata (IMDS) credentials, written on our reqwest client so that the gating,
//! the proxy rules (metadata addresses are always direct) and the timeouts are ours.
//!
//! # When IMDS is used (the chain's step 5)
//! - never when `AWS_EC2_METADATA_DISABLED=true` — even with `aws_imds on`: the variable is the
//!   operator's kill switch for every AWS client on the host, and the plugin honours it;
//! - `aws_imds off`: never; `aws_imds on`: always (the user says this is EC2);
//! - `aws_imds auto` (default): when `AWS_EC2_METADATA_SERVICE_ENDPOINT` is set, or when this host
//!   is EC2 by its local files ([`super::ec2::detect_ec2`]). Off EC2, no packet is sent.
//!
//! # Protocol
//! IMDSv2: `PUT /latest/api/token` (`X-aws-ec2-metadata-token-ttl-seconds: 21600`), then
//! `GET /latest/meta-data/iam/security-credentials/` (the role) and `…/<role>` with the token.
//! Each request: 1 s to connect, 2 s in all, at most 2 attempts. IMDSv1 (no token) only when the
//! token request is refused (HTTP 403, 404 or 405) and `AWS_EC2_METADATA_V1_DISABLED` is not true.
//! Endpoint: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://[fd00:ec2::254]` when
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`, else `http://169.254.169.254`.

use super::ec2::{detect_ec2, sys_root};
use crate::aws::credentials::cache::Fetch;
use crate::aws::credentials::util::{self, error_chain, is_true};
use crate::aws::credentials::{CredentialsError, CredsFuture};
use crate::aws::http::AwsHttp;
use crate::config::ImdsMode;
use crate::env::Env;
use aws_credential_types::Credentials;
use reqwest::{StatusCode, Url};
use std::time::{Duration, Instant};

pub(crate) const ENDPOINT_VAR: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
const TOKEN_TTL_SECS: u64 = 21_600;
/// Per attempt, connecting included (metadata answers at once or not at all).
const TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPTS: u32 = 2;
const CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials/";

/// Whether the chain may use IMDS, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Use(String),
    Skip(String),
}

/// See the module docs. Reads only the environment and local files.
pub(crate) fn decide(env: &Env, mode: ImdsMode) -> Decision {
    if is_true(env.get("AWS_EC2_METADATA_DISABLED")) {
        return Decision::Skip(match mode {
            ImdsMode::On => "AWS_EC2_METADATA_DISABLED=true (it overrides aws_imds on)".into(),
            _ => "AWS_EC2_METADATA_DISABLED=true".into(),
        });
    }
    match mode {
        ImdsMode::Off => Decision::Skip("aws_imds off".into()),
        ImdsMode::On => Decision::Use("aws_imds on".into()),
        ImdsMode::Auto => {
            let d = detect_ec2(&sys_root(env));
            if d.is_ec2 {
                Decision::Use(format!("aws_imds auto and this host is EC2 ({})", d.reason))
            } else if let Some(ep) = env.get(ENDPOINT_VAR) {
                Decision::Use(format!(
                    "aws_imds auto and {ENDPOINT_VAR} is set ({})",
                    util::short_value(&ep)
                ))
            } else {
                Decision::Skip(format!("aws_imds auto and {}", d.reason))
            }
        }
    }
}

/// The IMDS base URL (see the module docs).
pub(crate) fn endpoint(env: &Env) -> Result<Url, String> {
    if let Some(ep) = env.get(ENDPOINT_VAR) {
        return Url::parse(ep.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("{ENDPOINT_VAR} is not an http(s) URL"));
    }
    let v6 = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("ipv6"));
    let base = if v6 {
        "http://[fd00:ec2::254]"
    } else {
        "http://169.254.169.254"
    };
    Url::parse(base).map_err(|e| e.to_string())
}

pub(crate) struct Imds {
    http: AwsHttp,
    base: Url,
    v1_disabled: bool,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    provider: String,
}

enum Token {
    V2(String),
    V1,
}

impl Imds {
    pub(crate) fn new(env: &Env, http: &AwsHttp, provider: &str) -> Result<Imds, CredentialsError> {
        let base = endpoint(env).map_err(|message| CredentialsError::Misconfigured {
            provider: provider.into(),
            message,
        })?;
        Ok(Imds {
            http: http.clone(),
            base,
            v1_disabled: is_true(env.get("AWS_EC2_METADATA_V1_DISABLED")),
            token: tokio::sync::Mutex::new(None),
            provider: provider.to_string(),
        })
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, String> {
        self.base
            .join(path)
            .map_err(|_| format!("cannot build the URL for {path}"))
    }

    /// Sends with bounded attempts (retrying transport errors and 5xx).
    async fn send(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
        what: &str,
        secrets: &[&str],
    ) -> Result<(StatusCode, bytes::Bytes), String> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match make().timeout(TIMEOUT).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) if status.is_server_error() && attempt < ATTEMPTS => {
                            last = format!("HTTP {} ({} bytes)", status.as_u16(), body.len())
                        }
                        Ok(body) => return Ok((status, body)),
                        Err(e) => {
                            last = format!(
                                "reading the response failed: {}",
                                util::scrub(&error_chain(&e), secrets)
                            )
                        }
                    }
                }
                Err(e) => {
                    last = if e.is_timeout() {
                        "no answer in time (2 s per attempt, connecting included)".to_string()
                    } else {
                        format!("request failed: {}", util::scrub(&error_chain(&e), secrets))
                    }
                }
            }
        }
        Err(format!(
            "{what} at {}: {last} (after {ATTEMPTS} attempts)",
            self.base
        ))
    }

    async fn token(&self, fresh: bool) -> Result<Token, String> {
        let mut slot = self.token.lock().await;
        if !fresh {
            if let Some((t, until)) = slot.as_ref() {
                if Instant::now() < *until {
                    return Ok(Token::V2(t.clone()));
                }
            }
        }
        let url = self.url("/latest/api/token")?;
        let (status, body) = self
            .send(
                || {
                    self.http.client().put(url.clone()).header(
                        "x-aws-ec2-metadata-token-ttl-seconds",
                        TOKEN_TTL_SECS.to_string(),
                    )
                },
                "IMDSv2 token request",
                &[],
            )
            .await?;
        match status.as_u16() {
            200 => {
                let t = String::from_utf8_lossy(&body).trim().to_string();
                // A token must be usable as a header value (visible ASCII): anything else (an
                // HTML page from a broken endpoint) would be cached for hours and make every
                // later request fail before it is sent, even once the endpoint is healthy.
                if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("IMDSv2 token request returned an unusable token".into());
                }
                *slot = Some((t.clone(), Instant::now() + Duration::from_secs(TOKEN_TTL_SECS - 120)));
                Ok(Token::V2(t))
            }
            403..=405 if self.v1_disabled => Err(format!(
                "the IMDSv2 token request was refused (HTTP {}) and AWS_EC2_METADATA_V1_DISABLED=true forbids falling back to IMDSv1",
                status.as_u16()
            )),
            403..=405 => {
                *slot = None;
                Ok(Token::V1)
            }
            s => Err(format!("the IMDSv2 token request answered HTTP {s}")),
        }
    }

    /// GET `path` with the session token (refreshing it once on 401).
    async fn get(&self, path: &str) -> Result<(StatusCode, String), String> {
        let url = self.url(path)?;
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let tok = match &token {
                Token::V2(t) => Some(t.clone()),
                Token::V1 => None,
            };
            let secrets: Vec<&str> = tok.iter().map(String::as_str).collect();
            let (status, body) = self
                .send(
                    || {
                        let req = self.http.client().get(url.clone());
                        match &tok {
                            Some(t) => req.header("x-aws-ec2-metadata-token", t.as_str()),
                            None => req,
                        }
                    },
                    &format!("GET {path}"),
                    &secrets,
                )
                .await?;
            if status == StatusCode::UNAUTHORIZED && tok.is_some() && !fresh {
                fresh = true;
                continue;
            }
            return Ok((status, String::from_utf8_lossy(&body).into_owned()));
        }
    }

    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let fail = |message: String| CredentialsError::Provider {
            provider: self.provider.clone(),
            message,
        };
        let (status, body) = self.get(CREDS_PATH).await.map_err(fail)?;
        let role = match status.as_u16() {
            200 => body
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string),
            404 => {
                return Err(fail(format!(
                    "no IAM role is attached to this instance ({} answered 404 for {CREDS_PATH})",
                    self.base
                )))
            }
            s => {
                return Err(fail(format!(
                    "{} answered HTTP {s} for {CREDS_PATH}",
                    self.base
                )))
            }
        };
        let Some(role) = role else {
            return Err(fail(format!(
                "no IAM role is attached to this instance ({} listed none)",
                self.base
            )));
        };
        if role.contains(['/', '?', '#']) {
            return Err(fail(
                "the instance metadata returned an unusable role name".into(),
            ));
        }
        let path = format!("{CREDS_PATH}{role}");
        let (status, body) = self.get(&path).await.map_err(fail)?;
        if status != StatusCode::OK {
            return Err(fail(format!(
                "{} answered HTTP {} for the credentials of role '{}'",
                self.base,
                status.as_u16(),
                util::short_value(&role)
            )));
        }
        super::container::parse_credentials(body.as_bytes(), "imds").map_err(|m| {
            fail(format!(
                "credentials of role '{}' from {}: {m}",
                util::short_value(&role),
                self.base
            ))
        })
    }

    /// The instance's region (`/latest/meta-data/placement/region`).
    pub(crate) async fn region(&self) -> Result<String, String> {
        let (status, body) = self.get("/latest/meta-data/placement/region").await?;
        let region = body.trim();
        if status == StatusCode::OK
            && !region.is_empty()
            && region.len() < 64
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            Ok(region.to_string())
        } else {
            Err(format!(
                "{} answered HTTP {} without a usable region",
                self.base,
                status.as_u16()
            ))
        }
    }
}

impl Fetch for Imds {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.credentials())
    }
}

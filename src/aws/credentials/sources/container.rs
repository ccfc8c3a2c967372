//! Container credentials (ECS task roles, EKS Pod Identity):
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on `http://169.254.170.2`) or
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (https to any host; plain http only to loopback,
//! 169.254.170.2, 169.254.170.23 or fd00:ec2::23 — anything else is refused), with the
//! `Authorization` header from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read again at each
//! fetch) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`. The token never appears in errors or logs.

use crate::aws::credentials::cache::Fetch;
use crate::aws::credentials::util::{self, error_chain, expand_home, parse_time, snippet};
use crate::aws::credentials::{ChainContext, CredentialsError, CredsFuture};
use crate::aws::http::AwsHttp;
use aws_credential_types::Credentials;
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

const ECS_HOST: &str = "169.254.170.2";
/// Whole request, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 2;

enum Token {
    None,
    Value(String),
    File(PathBuf),
}

pub(crate) struct Container {
    url: Url,
    token: Token,
    http: AwsHttp,
    provider: String,
}

/// Whether plain http to this URL's host is allowed (loopback or the container endpoints).
pub(crate) fn http_host_allowed(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip == Ipv4Addr::new(169, 254, 170, 2)
                || ip == Ipv4Addr::new(169, 254, 170, 23)
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)
        }
        Err(_) => host == "localhost",
    }
}

/// The configured container endpoint, if any, and why it was chosen.
pub(crate) fn from_env(
    ctx: &ChainContext,
    provider: &str,
) -> Result<Option<(Container, String)>, CredentialsError> {
    let bad = |message: String| CredentialsError::Misconfigured {
        provider: provider.to_string(),
        message,
    };
    let (url, why) = if let Some(rel) = ctx.env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let rel = if rel.starts_with('/') {
            rel
        } else {
            format!("/{rel}")
        };
        let url = Url::parse(&format!("http://{ECS_HOST}{rel}")).map_err(|_| {
            bad("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a valid URI path".into())
        })?;
        (url, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set")
    } else if let Some(full) = ctx.env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let url = Url::parse(full.trim())
            .map_err(|_| bad("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL".into()))?;
        match url.scheme() {
            "https" if url.host_str().is_some() => {}
            "http" if http_host_allowed(&url) => {}
            "http" => {
                return Err(bad(format!(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI {} is refused: plain http is allowed only to loopback, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]; use https for other hosts",
                    crate::http::proxy::redact_url(&url)
                )))
            }
            _ => return Err(bad("AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http or https URL".into())),
        }
        (url, "AWS_CONTAINER_CREDENTIALS_FULL_URI is set")
    } else {
        return Ok(None);
    };
    let (token, token_note) =
        if let Some(file) = ctx.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            let path = expand_home(&file, &ctx.env);
            let note = format!(", authorization token from file {}", path.display());
            (Token::File(path), note)
        } else if let Some(value) = ctx.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
            (
                Token::Value(value),
                ", authorization token from AWS_CONTAINER_AUTHORIZATION_TOKEN".to_string(),
            )
        } else {
            (Token::None, String::new())
        };
    let reason = format!(
        "{why} ({}{token_note}; connection: {})",
        crate::http::proxy::redact_url(&url),
        ctx.proxy.describe(&url)
    );
    Ok(Some((
        Container {
            url,
            token,
            http: ctx.http.clone(),
            provider: provider.to_string(),
        },
        reason,
    )))
}

impl Container {
    fn fail(&self, message: String) -> CredentialsError {
        CredentialsError::Provider {
            provider: self.provider.clone(),
            message: format!(
                "container endpoint {}: {message}",
                crate::http::proxy::redact_url(&self.url)
            ),
        }
    }

    async fn token(&self) -> Result<Option<String>, CredentialsError> {
        let value = match &self.token {
            Token::None => return Ok(None),
            Token::Value(v) => v.clone(),
            Token::File(path) => {
                let raw = tokio::fs::read(path).await.map_err(|e| {
                    self.fail(format!(
                        "cannot read the authorization token file '{}': {e}",
                        path.display()
                    ))
                })?;
                String::from_utf8(raw).map_err(|_| {
                    self.fail(format!(
                        "the authorization token file '{}' is not UTF-8 text",
                        path.display()
                    ))
                })?
            }
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(self.fail("the authorization token is empty".into()));
        }
        if value.contains(['\r', '\n']) {
            return Err(self.fail("the authorization token contains a line break".into()));
        }
        Ok(Some(value))
    }

    async fn run(&self) -> Result<Credentials, CredentialsError> {
        let token = self.token().await?;
        let secrets: Vec<&str> = token.iter().map(String::as_str).collect();
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .http
                .client()
                .get(self.url.clone())
                .timeout(TIMEOUT)
                .header("accept", "application/json");
            if let Some(t) = &token {
                req = req.header("authorization", t.as_str());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!(
                        "request failed: {}",
                        util::scrub(&error_chain(&e), &secrets)
                    );
                    continue;
                }
            };
            let status = resp.status();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = format!(
                        "reading the response failed: {}",
                        util::scrub(&error_chain(&e), &secrets)
                    );
                    continue;
                }
            };
            if status.is_server_error() && attempt < ATTEMPTS {
                last = format!("HTTP {}", status.as_u16());
                continue;
            }
            if !status.is_success() {
                return Err(self.fail(format!(
                    "HTTP {}: '{}'",
                    status.as_u16(),
                    snippet(&body, 200, &secrets)
                )));
            }
            return parse_credentials(&body, "container").map_err(|m| self.fail(m));
        }
        Err(self.fail(format!("{last} (after {ATTEMPTS} attempts)")))
    }
}

/// `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` (ECS / Pod Identity / IMDS format).
/// Messages never quote the document.
pub(crate) fn parse_credentials(body: &[u8], source: &'static str) -> Result<Credentials, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "response is not JSON (error at line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let obj = value
        .as_object()
        .ok_or("response is JSON but not an object")?;
    if let Some(code) = obj.get("Code").and_then(|c| c.as_str()) {
        if code != "Success" {
            let message = obj.get("Message").and_then(|m| m.as_str()).unwrap_or("");
            return Err(format!(
                "response says Code '{}': {}",
                util::short_value(code),
                util::short_value_long(message)
            ));
        }
    }
    let string = |key: &str| -> Result<String, String> {
        match obj.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::String(_)) | None | Some(serde_json::Value::Null) => {
                Err(format!("response has no {key}"))
            }
            Some(_) => Err(format!("response's {key} is not a string")),
        }
    };
    let akid = string("AccessKeyId")?;
    let secret = string("SecretAccessKey")?;
    let token = string("Token")?;
    let exp = string("Expiration")?;
    let expiry = parse_time(&exp).ok_or("response's Expiration is not an ISO-8601 time")?;
    Ok(Credentials::new(
        akid,
        secret,
        Some(token),
        Some(expiry),
        source,
    ))
}

impl Fetch for Container {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.run())
    }
}

//! STS through the AWS SDK's client (`aws-sdk-sts`, which aws-config already compiles) on our
//! HTTP client ([`crate::aws::http::AwsHttp`]: our proxy rules, `AWS_CA_BUNDLE`) and our clock
//! ([`SkewClock`]: every call is signed with the instance's skew-corrected time):
//! `AssumeRole` (signed with the caller's base credentials) and `AssumeRoleWithWebIdentity`
//! (unsigned). The SDK's own retries are off: the credential cache retries with its backoff.
//! When STS answers that the request's time is off, the shared clock is corrected from STS's
//! `Date` header and the call is made once more.
//!
//! # Endpoint
//! `aws_sts_endpoint` when set; else `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL` (the AWS
//! SDKs' variables, ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`); else the regional
//! endpoint `https://sts.<region>.amazonaws.com` (`.amazonaws.com.cn` in China). Requests are
//! signed for the region the output signs for (`us-east-1` when no region is known and the
//! endpoint is explicit).

use super::util::{self, error_chain};
use super::{ChainContext, CredentialsError};
use crate::aws::clock::{is_skew_error, SkewClock};
use crate::aws::http::ReqwestHttpClient;
use crate::flb_log;
use crate::log::{Level, SharedLog};
use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use reqwest::Url;
use std::fmt;
use std::time::{Duration, SystemTime};

const READ_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where STS is and how it was chosen.
#[derive(Debug, Clone)]
pub(crate) struct StsEndpoint {
    pub url: Url,
    pub region: String,
    pub origin: &'static str,
}

/// Resolves the STS endpoint for the chain (see the module docs).
pub(crate) fn resolve_endpoint(ctx: &ChainContext) -> Result<StsEndpoint, String> {
    let region = ctx.region.clone();
    if let Some(url) = &ctx.aws.sts_endpoint {
        return Ok(StsEndpoint {
            url: url.clone(),
            region: region.unwrap_or_else(|| "us-east-1".into()),
            origin: "aws_sts_endpoint",
        });
    }
    if !util::is_true(ctx.env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
        for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
            if let Some(value) = ctx.env.get(var) {
                let url = Url::parse(value.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .ok_or_else(|| format!("{var} is not an http(s) URL"))?;
                let origin = if var == "AWS_ENDPOINT_URL_STS" {
                    "AWS_ENDPOINT_URL_STS"
                } else {
                    "AWS_ENDPOINT_URL"
                };
                return Ok(StsEndpoint {
                    url,
                    region: region.unwrap_or_else(|| "us-east-1".into()),
                    origin,
                });
            }
        }
    }
    let Some(region) = region else {
        return Err(
            "STS needs a region: set aws_region (or AWS_REGION), or aws_sts_endpoint".into(),
        );
    };
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let url = Url::parse(&format!("https://sts.{region}.{suffix}/"))
        .map_err(|_| format!("region '{region}' does not make a valid STS host name"))?;
    Ok(StsEndpoint {
        url,
        region,
        origin: "the regional endpoint of the region",
    })
}

/// An STS failure; `code` is the STS error code when STS answered with an error document.
/// Never carries a secret.
#[derive(Debug, Clone)]
pub(crate) struct StsError {
    pub code: Option<String>,
    pub message: String,
    /// STS's `Date` header, kept for a clock-skew error.
    server_date: Option<String>,
    skew: bool,
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StsError {
    /// STS says the credentials that signed the call are expired or unknown.
    pub fn is_bad_caller_credentials(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "ExpiredToken"
                    | "InvalidClientTokenId"
                    | "ExpiredTokenException"
                    | "UnrecognizedClientException"
            )
        )
    }
}

/// What STS issued: the credentials and, when STS named it, the `AssumedRoleUser` ARN
/// (`arn:aws:sts::…:assumed-role/<role>/<session>`, what the doctor shows for a role).
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub credentials: Credentials,
    pub assumed_role_arn: Option<String>,
}

/// What `AssumeRole` needs besides the base credentials.
#[derive(Debug, Clone)]
pub(crate) struct AssumeRoleParams {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_seconds: Option<u32>,
}

enum Call<'a> {
    AssumeRole(&'a Credentials, &'a AssumeRoleParams),
    WebIdentity {
        role_arn: &'a str,
        session_name: &'a str,
        token: &'a str,
    },
}

impl Call<'_> {
    fn action(&self) -> &'static str {
        match self {
            Call::AssumeRole(..) => "AssumeRole",
            Call::WebIdentity { .. } => "AssumeRoleWithWebIdentity",
        }
    }

    /// Values that must not show in a message: the signer's secret and token, the web identity
    /// token.
    fn secrets(&self) -> Vec<&str> {
        match self {
            Call::AssumeRole(base, _) => {
                let mut s = vec![base.secret_access_key()];
                s.extend(base.session_token());
                s
            }
            Call::WebIdentity { token, .. } => vec![*token],
        }
    }
}

#[derive(Clone)]
pub(crate) struct Sts {
    endpoint: StsEndpoint,
    http: ReqwestHttpClient,
    clock: SkewClock,
    log: SharedLog,
}

impl Sts {
    /// A client for the chain's STS endpoint; `provider` names the caller in errors.
    pub fn new(ctx: &ChainContext, provider: &str) -> Result<Sts, CredentialsError> {
        let endpoint =
            resolve_endpoint(ctx).map_err(|message| CredentialsError::Misconfigured {
                provider: provider.into(),
                message,
            })?;
        Ok(Sts {
            endpoint,
            http: ctx.http.smithy(),
            clock: ctx.clock.clone(),
            log: ctx.log.clone(),
        })
    }

    pub fn endpoint(&self) -> &StsEndpoint {
        &self.endpoint
    }

    /// `sts:AssumeRole`, signed with `base`.
    pub async fn assume_role(
        &self,
        base: &Credentials,
        p: &AssumeRoleParams,
    ) -> Result<Issued, StsError> {
        self.call(Call::AssumeRole(base, p)).await
    }

    /// `sts:AssumeRoleWithWebIdentity` (unsigned: the token is the proof).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
    ) -> Result<Credentials, StsError> {
        self.call(Call::WebIdentity {
            role_arn,
            session_name,
            token,
        })
        .await
        .map(|issued| issued.credentials)
    }

    /// One call, made once more after correcting the clock when STS reports skew.
    async fn call(&self, call: Call<'_>) -> Result<Issued, StsError> {
        match self.call_once(&call).await {
            Err(e) if e.skew => {
                let Some(offset) = e
                    .server_date
                    .as_deref()
                    .and_then(|d| self.clock.set_offset_from_server_date(d))
                else {
                    return Err(e);
                };
                flb_log!(
                    self.log,
                    Level::Warn,
                    "STS {} reports clock skew; signing with a clock offset of {offset} ms (from STS's Date header) and calling once more",
                    call.action()
                );
                self.call_once(&call).await
            }
            other => other,
        }
    }

    fn client(&self, signer: Option<&Credentials>) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.endpoint.region.clone()))
            .endpoint_url(self.endpoint.url.as_str().trim_end_matches('/'))
            .http_client(self.http.clone())
            .time_source(self.clock.clone())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .operation_timeout(CONNECT_TIMEOUT + READ_TIMEOUT)
                    .build(),
            );
        if let Some(base) = signer {
            config = config.credentials_provider(base.clone());
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    async fn call_once(&self, call: &Call<'_>) -> Result<Issued, StsError> {
        let action = call.action();
        let secrets = call.secrets();
        let result = match call {
            Call::AssumeRole(base, p) => self
                .client(Some(base))
                .assume_role()
                .role_arn(&p.role_arn)
                .role_session_name(&p.session_name)
                .set_external_id(p.external_id.clone())
                .set_duration_seconds(p.duration_seconds.map(|d| d as i32))
                .send()
                .await
                .map(|out| (out.credentials, out.assumed_role_user))
                .map_err(|e| self.error(action, e, &secrets)),
            Call::WebIdentity {
                role_arn,
                session_name,
                token,
            } => self
                .client(None)
                .assume_role_with_web_identity()
                .role_arn(*role_arn)
                .role_session_name(*session_name)
                .web_identity_token(*token)
                .send()
                .await
                .map(|out| (out.credentials, out.assumed_role_user))
                .map_err(|e| self.error(action, e, &secrets)),
        };
        let (creds, user) = result?;
        let creds = creds.ok_or_else(|| {
            self.plain(
                action,
                &format!("the response is not complete {action}Response XML: no Credentials"),
            )
        })?;
        // The SDK's parser is lenient (a truncated document yields empty fields): check each.
        let missing = [
            ("AccessKeyId", creds.access_key_id.is_empty()),
            ("SecretAccessKey", creds.secret_access_key.is_empty()),
            ("SessionToken", creds.session_token.is_empty()),
            ("Expiration", creds.expiration.secs() <= 0),
        ];
        if let Some((name, _)) = missing.iter().find(|(_, m)| *m) {
            return Err(self.plain(
                action,
                &format!(
                    "the response is not complete {action}Response XML: no Credentials/{name}"
                ),
            ));
        }
        let expiry = SystemTime::try_from(creds.expiration)
            .map_err(|_| self.plain(action, "Credentials/Expiration is out of range"))?;
        Ok(Issued {
            credentials: Credentials::new(
                creds.access_key_id,
                creds.secret_access_key,
                Some(creds.session_token),
                Some(expiry),
                "sts",
            ),
            // The SDK's lenient parser may leave it empty: an empty ARN is no ARN.
            assumed_role_arn: user.map(|u| u.arn).filter(|a| !a.is_empty()),
        })
    }

    fn plain(&self, action: &str, message: &str) -> StsError {
        StsError {
            code: None,
            message: format!("STS {action} at {}: {message}", redact(&self.endpoint.url)),
            server_date: None,
            skew: false,
        }
    }

    /// Our message for an SDK error: code and message of an STS error document (secrets
    /// scrubbed, bounded), else a bounded prefix of the body, else the transport's error chain.
    /// Never the SDK's `Debug` forms, which carry whole responses.
    fn error<E>(&self, action: &str, err: SdkError<E, HttpResponse>, secrets: &[&str]) -> StsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let at = redact(&self.endpoint.url);
        let raw = err.raw_response();
        let status = raw.map(|r| r.status().as_u16());
        let server_date = raw
            .and_then(|r| r.headers().get("date"))
            .map(str::to_string);
        if let (Some(code), Some(status)) = (err.code(), status) {
            let message = err.message().unwrap_or("");
            return StsError {
                message: format!(
                    "STS {action} at {at} failed: HTTP {status}: {}: {}",
                    util::short_value(code),
                    util::scrub(&util::short_value_long(message), secrets)
                ),
                skew: is_skew_error(code, message),
                code: Some(util::short_value(code)),
                server_date,
            };
        }
        let message = match (raw, status) {
            (Some(_), Some(status)) if (200..300).contains(&status) => format!(
                "HTTP {status} with a response that is not the expected {action}Response: {}",
                util::scrub(&util::short_value_long(&error_chain(&err)), secrets)
            ),
            (Some(r), Some(status)) => format!(
                "HTTP {status} with a body that is not STS error XML: '{}'",
                util::snippet(r.body().bytes().unwrap_or(&[]), 200, secrets)
            ),
            _ => match &err {
                SdkError::TimeoutError(_) => format!(
                    "no answer within {} s",
                    (CONNECT_TIMEOUT + READ_TIMEOUT).as_secs()
                ),
                _ => format!(
                    "request failed: {}",
                    util::scrub(&util::short_value_long(&error_chain(&err)), secrets)
                ),
            },
        };
        StsError {
            code: None,
            message: format!("STS {action} at {at}: {message}"),
            server_date: None,
            skew: false,
        }
    }
}

fn redact(url: &Url) -> String {
    crate::http::proxy::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::testutil::{form_value, sts_xml, FakeServer, Resp};
    use crate::aws::http::AwsHttp;
    use crate::env::Env;
    use crate::http::proxy::ProxyResolver;
    use crate::log::MemoryLog;
    use std::sync::Arc;

    fn sts(url: &str, clock: SkewClock, log: Arc<MemoryLog>) -> Sts {
        Sts {
            endpoint: StsEndpoint {
                url: Url::parse(url).expect("url"),
                region: "us-east-1".into(),
                origin: "test",
            },
            http: AwsHttp::new(&Env::default(), &ProxyResolver::direct())
                .expect("client")
                .smithy(),
            clock,
            log,
        }
    }

    fn params() -> AssumeRoleParams {
        AssumeRoleParams {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            session_name: "s".into(),
            external_id: Some("ext-1".into()),
            duration_seconds: Some(900),
        }
    }

    fn base() -> Credentials {
        Credentials::new(
            "AKIDBASE",
            "S3CRETBASE",
            Some("T0KENBASE".into()),
            None,
            "t",
        )
    }

    /// `X-Amz-Date` (`20240101T000000Z`) as a time.
    fn amz_date(text: &str) -> Option<SystemTime> {
        let iso = format!(
            "{}-{}-{}T{}:{}:{}Z",
            text.get(0..4)?,
            text.get(4..6)?,
            text.get(6..8)?,
            text.get(9..11)?,
            text.get(11..13)?,
            text.get(13..15)?
        );
        util::parse_time(&iso)
    }

    #[tokio::test]
    async fn assume_role_is_signed_with_the_base_and_parsed() {
        let server = FakeServer::start(|r| {
            let action = form_value(&r.body, "Action").unwrap_or_default();
            Resp::Reply(
                200,
                sts_xml(
                    &action,
                    "ASIANEW",
                    "S3CRETNEW",
                    "T0KENNEW",
                    Duration::from_secs(3600),
                ),
            )
        })
        .await;
        let log = Arc::new(MemoryLog::default());
        let issued = sts(&server.url(), SkewClock::new(), log)
            .assume_role(&base(), &params())
            .await
            .expect("credentials");
        assert_eq!(
            issued.assumed_role_arn.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/r/sess")
        );
        let c = issued.credentials;
        assert_eq!(c.access_key_id(), "ASIANEW");
        assert_eq!(c.session_token(), Some("T0KENNEW"));
        assert!(c.expiry().is_some());
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(
            form_value(&req.body, "RoleArn").as_deref(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        assert_eq!(
            form_value(&req.body, "ExternalId").as_deref(),
            Some("ext-1")
        );
        assert_eq!(
            form_value(&req.body, "DurationSeconds").as_deref(),
            Some("900")
        );
        let auth = req.header("authorization").expect("signed");
        assert!(auth.contains("Credential=AKIDBASE/"), "{auth}");
        assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
        assert_eq!(req.header("x-amz-security-token"), Some("T0KENBASE"));
    }

    #[tokio::test]
    async fn web_identity_is_unsigned() {
        let server = FakeServer::start(|_| {
            Resp::Reply(
                200,
                sts_xml(
                    "AssumeRoleWithWebIdentity",
                    "ASIAWI",
                    "S3CRETWI",
                    "T0KENWI",
                    Duration::from_secs(3600),
                ),
            )
        })
        .await;
        let c = sts(
            &server.url(),
            SkewClock::new(),
            Arc::new(MemoryLog::default()),
        )
        .assume_role_with_web_identity("arn:aws:iam::1:role/w", "sess", "JWT-TOKEN-VALUE")
        .await
        .expect("credentials");
        assert_eq!(c.access_key_id(), "ASIAWI");
        let req = &server.requests()[0];
        assert!(req.header("authorization").is_none());
        assert_eq!(
            form_value(&req.body, "WebIdentityToken").as_deref(),
            Some("JWT-TOKEN-VALUE")
        );
    }

    #[tokio::test]
    async fn errors_carry_the_code_and_no_secret() {
        let server = FakeServer::start(|r| {
            if r.body.contains("WebIdentity") {
                Resp::Reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad token JWT-TOKEN-VALUE</Message></Error></ErrorResponse>".into())
            } else if form_value(&r.body, "RoleSessionName").as_deref() == Some("gw") {
                Resp::Reply(502, "<html>bad gateway S3CRETBASE</html>".into())
            } else {
                Resp::Reply(403, "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token T0KENBASE expired</Message></Error></ErrorResponse>".into())
            }
        })
        .await;
        let s = sts(
            &server.url(),
            SkewClock::new(),
            Arc::new(MemoryLog::default()),
        );
        let e = s
            .assume_role(&base(), &params())
            .await
            .expect_err("expired");
        assert_eq!(e.code.as_deref(), Some("ExpiredToken"));
        assert!(e.is_bad_caller_credentials());
        assert!(e.message.contains("HTTP 403: ExpiredToken"), "{e}");
        assert!(!e.message.contains("T0KENBASE"), "{e}");
        let e = s
            .assume_role_with_web_identity("arn:aws:iam::1:role/w", "sess", "JWT-TOKEN-VALUE")
            .await
            .expect_err("refused");
        assert!(e.message.contains("InvalidIdentityToken"), "{e}");
        assert!(!e.message.contains("JWT-TOKEN-VALUE"), "{e}");
        let p = AssumeRoleParams {
            session_name: "gw".into(),
            ..params()
        };
        let e = s.assume_role(&base(), &p).await.expect_err("502");
        assert!(e.code.is_none());
        assert!(e.message.contains("HTTP 502"), "{e}");
        assert!(!e.message.contains("S3CRETBASE"), "{e}");
        // Nothing listens: a transport error, named.
        drop(server);
        let e = s.assume_role(&base(), &params()).await.expect_err("down");
        assert!(e.message.contains("request failed"), "{e}");
    }

    /// A fake STS whose clock is two hours ahead: requests dated more than 5 minutes from it
    /// are refused like AWS does, with its own time in `Date`.
    #[tokio::test]
    async fn skew_is_corrected_from_the_date_header_and_retried_once() {
        let ahead = Duration::from_secs(2 * 3600);
        let server = FakeServer::start(move |r| {
            let server_now = SystemTime::now() + ahead;
            let date = httpdate::fmt_http_date(server_now);
            let signed = r.header("x-amz-date").and_then(amz_date);
            let off = signed.map(|t| match server_now.duration_since(t) {
                Ok(d) => d,
                Err(e) => e.duration(),
            });
            if off.is_some_and(|d| d <= Duration::from_secs(300)) {
                Resp::WithHeaders(200, vec![("Date".into(), date)], sts_xml("AssumeRole", "ASIASKEW", "S3CRETSKEW", "T0KENSKEW", Duration::from_secs(3600)))
            } else {
                Resp::WithHeaders(403, vec![("Date".into(), date)],
                    "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>Signature expired: 20240101T000000Z is now earlier than 20240101T020000Z (20240101T021000Z - 5 min.)</Message></Error></ErrorResponse>".into())
            }
        })
        .await;
        let clock = SkewClock::new();
        let log = Arc::new(MemoryLog::default());
        let s = sts(&server.url(), clock.clone(), log.clone());
        let c = s
            .assume_role(&base(), &params())
            .await
            .expect("after the correction")
            .credentials;
        assert_eq!(c.access_key_id(), "ASIASKEW");
        assert_eq!(server.count(), 2, "one refused call, one retry");
        let offset = clock.offset_ms();
        assert!((7_195_000..=7_201_000).contains(&offset), "{offset}");
        assert!(log.contains("reports clock skew"));
        // The shared clock stays corrected: the next call is accepted at once.
        s.assume_role(&base(), &params())
            .await
            .expect("second call");
        assert_eq!(server.count(), 3);
    }

    #[tokio::test]
    async fn skew_without_a_date_is_not_retried_and_a_mismatch_is_not_skew() {
        let server = FakeServer::start(|r| {
            if form_value(&r.body, "RoleSessionName").as_deref() == Some("mismatch") {
                Resp::WithHeaders(403, vec![("Date".into(), httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7200)))],
                    "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. x-amz-date:20240101T000000Z</Message></Error></ErrorResponse>".into())
            } else {
                Resp::Reply(400, "<ErrorResponse><Error><Code>RequestExpired</Code><Message>Request has expired.</Message></Error></ErrorResponse>".into())
            }
        })
        .await;
        let clock = SkewClock::new();
        let s = sts(&server.url(), clock.clone(), Arc::new(MemoryLog::default()));
        let e = s
            .assume_role(&base(), &params())
            .await
            .expect_err("skew, no date");
        assert_eq!(e.code.as_deref(), Some("RequestExpired"));
        assert_eq!(server.count(), 1);
        let p = AssumeRoleParams {
            session_name: "mismatch".into(),
            ..params()
        };
        s.assume_role(&base(), &p).await.expect_err("mismatch");
        assert_eq!(server.count(), 2, "a signature mismatch is not retried");
        assert_eq!(clock.offset_ms(), 0);
    }
}

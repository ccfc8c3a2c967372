//! A minimal STS client on our reqwest client: `AssumeRole` (SigV4-signed with the caller's base
//! credentials) and `AssumeRoleWithWebIdentity` (unsigned), Query API over POST, XML responses.
//!
//! # Endpoint
//! `aws_sts_endpoint` when set; else `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL` (the AWS
//! SDKs' variables, ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`); else the regional
//! endpoint `https://sts.<region>.amazonaws.com` (`.amazonaws.com.cn` in China). Requests are
//! signed for the region the output signs for (`us-east-1` when no region is known and the
//! endpoint is explicit).

use super::util::{self, error_chain, form_encode, parse_time, snippet};
use super::{ChainContext, CredentialsError};
use crate::aws::signing::{self, SigningScope};
use aws_credential_types::Credentials;
use quick_xml::events::Event;
use quick_xml::Reader;
use reqwest::Url;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::{Duration, SystemTime};

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
const TIMEOUT: Duration = Duration::from_secs(20);
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

/// An STS failure; `code` is the STS error code when STS answered with error XML. Never carries
/// a secret.
#[derive(Debug, Clone)]
pub(crate) struct StsError {
    pub code: Option<String>,
    pub message: String,
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

/// What `AssumeRole` needs besides the base credentials.
#[derive(Debug, Clone)]
pub(crate) struct AssumeRoleParams {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_seconds: Option<u32>,
}

pub(crate) struct Sts {
    client: reqwest::Client,
    endpoint: StsEndpoint,
}

impl Sts {
    /// A client for the chain's STS endpoint; `provider` names the caller in errors.
    pub fn new(ctx: &ChainContext, provider: &str) -> Result<Sts, CredentialsError> {
        let endpoint =
            resolve_endpoint(ctx).map_err(|message| CredentialsError::Misconfigured {
                provider: provider.into(),
                message,
            })?;
        let client = util::client_for(provider, &ctx.env, &ctx.proxy, TIMEOUT, CONNECT_TIMEOUT)?;
        Ok(Sts { client, endpoint })
    }

    pub fn endpoint(&self) -> &StsEndpoint {
        &self.endpoint
    }

    /// `sts:AssumeRole`, signed with `base`.
    pub async fn assume_role(
        &self,
        base: &Credentials,
        p: &AssumeRoleParams,
    ) -> Result<Credentials, StsError> {
        let duration = p.duration_seconds.map(|d| d.to_string());
        let mut pairs = vec![
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", p.role_arn.as_str()),
            ("RoleSessionName", p.session_name.as_str()),
        ];
        if let Some(id) = &p.external_id {
            pairs.push(("ExternalId", id.as_str()));
        }
        if let Some(d) = &duration {
            pairs.push(("DurationSeconds", d.as_str()));
        }
        self.call("AssumeRole", form_encode(&pairs), Some(base), &[])
            .await
    }

    /// `sts:AssumeRoleWithWebIdentity` (unsigned: the token is the proof).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
    ) -> Result<Credentials, StsError> {
        let pairs = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token),
        ];
        self.call(
            "AssumeRoleWithWebIdentity",
            form_encode(&pairs),
            None,
            &[token],
        )
        .await
    }

    async fn call(
        &self,
        action: &str,
        body: String,
        signer: Option<&Credentials>,
        secrets: &[&str],
    ) -> Result<Credentials, StsError> {
        let url = &self.endpoint.url;
        let fail = |message: String| StsError {
            code: None,
            message: format!("STS {action} at {}: {message}", redact(url)),
        };
        let mut req = self
            .client
            .post(url.clone())
            .header("content-type", CONTENT_TYPE);
        if let Some(base) = signer {
            let host =
                signing::host_header(url).ok_or_else(|| fail("endpoint has no host".into()))?;
            let digest = hex::encode(Sha256::digest(body.as_bytes()));
            let scope = SigningScope {
                region: self.endpoint.region.clone(),
                service: "sts".into(),
            };
            let headers = [("host", host.as_str()), ("content-type", CONTENT_TYPE)];
            let signed = signing::sign_request(
                "POST",
                url.as_str(),
                &headers,
                &digest,
                base,
                &scope,
                SystemTime::now(),
            )
            .map_err(|e| fail(e.to_string()))?;
            req = req.header("host", host.as_str());
            for (name, value) in signed {
                req = req.header(name, value);
            }
        }
        let resp = req.body(body).send().await.map_err(|e| {
            fail(format!(
                "request failed: {}",
                util::scrub(&error_chain(&e), secrets)
            ))
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            fail(format!(
                "reading the response failed: {}",
                util::scrub(&error_chain(&e), secrets)
            ))
        })?;
        let mut all_secrets: Vec<&str> = secrets.to_vec();
        if let Some(b) = signer {
            all_secrets.push(b.secret_access_key());
            if let Some(t) = b.session_token() {
                all_secrets.push(t);
            }
        }
        if status.is_success() {
            parse_credentials(&bytes, action).map_err(fail)
        } else {
            let text = String::from_utf8_lossy(&bytes);
            match parse_error(&text) {
                Some((code, message)) => Err(StsError {
                    message: format!(
                        "STS {action} at {} failed: HTTP {}: {code}: {}",
                        redact(url),
                        status.as_u16(),
                        util::scrub(&util::short_value_long(&message), &all_secrets)
                    ),
                    code: Some(code),
                }),
                None => Err(fail(format!(
                    "HTTP {} with a body that is not STS error XML: '{}'",
                    status.as_u16(),
                    snippet(&bytes, 200, &all_secrets)
                ))),
            }
        }
    }
}

fn redact(url: &Url) -> String {
    crate::http::proxy::redact_url(url)
}

/// Every element of the document as (parent name, element name, text), in document order.
type Leaves = Vec<(String, String, String)>;

/// Parses XML into [`Leaves`]; errors never quote the document.
pub(crate) fn xml_leaves(text: &str) -> Result<Leaves, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut leaves = Vec::new();
    let mut current = String::new();
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                saw_root = true;
                stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                current.clear();
            }
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().cloned().unwrap_or_default();
                leaves.push((parent, name, current.trim().to_string()));
                current.clear();
            }
            Ok(Event::Empty(e)) => {
                saw_root = true;
                let parent = stack.last().cloned().unwrap_or_default();
                leaves.push((
                    parent,
                    String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    String::new(),
                ));
            }
            Ok(Event::Text(t)) => {
                let piece = t
                    .xml10_content()
                    .map_err(|_| "XML text is not valid UTF-8".to_string())?;
                if stack.is_empty() && !piece.trim().is_empty() {
                    return Err("text outside of any XML element".into());
                }
                current.push_str(&piece);
            }
            Ok(Event::CData(c)) => {
                let piece = c
                    .decode()
                    .map_err(|_| "XML text is not valid UTF-8".to_string())?;
                current.push_str(&piece);
            }
            Ok(Event::GeneralRef(r)) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => current.push(c),
                        _ => {
                            return Err(format!(
                                "invalid character reference at byte {}",
                                reader.buffer_position()
                            ))
                        }
                    }
                } else {
                    let name = r
                        .decode()
                        .map_err(|_| "XML entity is not valid UTF-8".to_string())?;
                    match quick_xml::escape::resolve_xml_entity(&name) {
                        Some(v) => current.push_str(v),
                        None => {
                            return Err(format!(
                                "unknown XML entity at byte {}",
                                reader.buffer_position()
                            ))
                        }
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(format!("malformed XML at byte {}", reader.error_position())),
        }
    }
    if !stack.is_empty() {
        return Err("truncated XML (unclosed elements)".into());
    }
    if !saw_root {
        return Err("no XML document".into());
    }
    Ok(leaves)
}

/// `AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration` under `Credentials`.
pub(crate) fn parse_credentials(body: &[u8], action: &str) -> Result<Credentials, String> {
    let text = std::str::from_utf8(body).map_err(|_| "response is not UTF-8".to_string())?;
    let leaves = xml_leaves(text).map_err(|e| format!("response is not the expected XML: {e}"))?;
    let root = leaves
        .last()
        .map(|(_, name, _)| name.as_str())
        .unwrap_or("");
    let expected_root = format!("{action}Response");
    if root != expected_root {
        // Named only when it looks like an AWS response element: a broken document can make
        // the "name" run into the text of a secret (found by fuzz/ sts_xml).
        let shown = if root.len() <= 64
            && root.ends_with("Response")
            && root.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            format!("<{root}>")
        } else {
            "an unexpected element".to_string()
        };
        return Err(format!(
            "response is not the expected XML: root element is {shown}, expected <{expected_root}>"
        ));
    }
    let field = |name: &str| {
        leaves
            .iter()
            .find(|(p, n, v)| p == "Credentials" && n == name && !v.is_empty())
            .map(|(_, _, v)| v.clone())
    };
    let missing = |name: &str| format!("response has no Credentials/{name}");
    let akid = field("AccessKeyId").ok_or_else(|| missing("AccessKeyId"))?;
    let secret = field("SecretAccessKey").ok_or_else(|| missing("SecretAccessKey"))?;
    let token = field("SessionToken").ok_or_else(|| missing("SessionToken"))?;
    let exp_text = field("Expiration").ok_or_else(|| missing("Expiration"))?;
    let expiry = parse_time(&exp_text).ok_or("Credentials/Expiration is not an ISO-8601 time")?;
    Ok(Credentials::new(
        akid,
        secret,
        Some(token),
        Some(expiry),
        "sts",
    ))
}

/// `Error/Code` and `Error/Message` of an STS error document.
pub(crate) fn parse_error(text: &str) -> Option<(String, String)> {
    let leaves = xml_leaves(text).ok()?;
    let get = |name: &str| {
        leaves
            .iter()
            .find(|(p, n, _)| p == "Error" && n == name)
            .map(|(_, _, v)| v.clone())
    };
    let code = get("Code").filter(|c| !c.is_empty())?;
    Some((util::short_value(&code), get("Message").unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>ARO:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalr/K7MDENG+bPxRfiCY&amp;KEY</SecretAccessKey>
      <SessionToken>FwoGZXIvYXdzE</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn parses_credentials() {
        let c = parse_credentials(OK.as_bytes(), "AssumeRole").expect("parses");
        assert_eq!(c.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key(), "wJalr/K7MDENG+bPxRfiCY&KEY");
        assert_eq!(c.session_token(), Some("FwoGZXIvYXdzE"));
        assert!(c.expiry().is_some());
        let err =
            parse_credentials(OK.as_bytes(), "AssumeRoleWithWebIdentity").expect_err("wrong root");
        assert!(err.contains("root element"), "{err}");
    }

    #[test]
    fn malformed_and_incomplete() {
        for (body, want) in [
            ("<AssumeRoleResponse><AssumeRoleResult>", "truncated"),
            ("<AssumeRoleResponse></Oops>", "malformed"),
            ("not xml at all", "text outside"),
            ("", "no XML document"),
            ("<AssumeRoleResponse><Credentials><AccessKeyId>A</AccessKeyId></Credentials></AssumeRoleResponse>", "SecretAccessKey"),
            (
                "<AssumeRoleResponse><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S3CRET</SecretAccessKey><SessionToken>T</SessionToken><Expiration>soon</Expiration></Credentials></AssumeRoleResponse>",
                "ISO-8601",
            ),
        ] {
            let err = parse_credentials(body.as_bytes(), "AssumeRole").expect_err(body);
            assert!(err.contains(want), "{body}: {err}");
            assert!(!err.contains("S3CRET"));
        }
    }

    #[test]
    fn parses_error_xml() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: x is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        let (code, message) = parse_error(body).expect("error xml");
        assert_eq!(code, "AccessDenied");
        assert!(message.contains("not authorized"));
        assert!(parse_error("<html>bad gateway</html>").is_none());
    }
}

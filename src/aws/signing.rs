//! SigV4 on top of aws-sigv4 (DESIGN §6), plus region/service inference from AWS host names.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// Where requests are signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningScope {
    pub region: String,
    pub service: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// Headers to add to the request, all of them part of the signature except none.
pub type SignedHeaders = Vec<(String, String)>;

/// Signs a request. `headers` are the headers to sign besides the ones SigV4 adds itself
/// (`host`, `content-type`, `content-encoding`); returns the headers to add: `authorization`,
/// `x-amz-date`, `x-amz-content-sha256` and `x-amz-security-token` when the credentials carry a
/// session token (signed too).
pub fn sign_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    payload_sha256_hex: &str,
    credentials: &Credentials,
    scope: &SigningScope,
    time: SystemTime,
) -> Result<SignedHeaders, SigningError> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name(&scope.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SigningError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Precomputed(payload_sha256_hex.to_string()),
    )
    .map_err(|e| SigningError::Sign(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningError::Sign(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

/// `host[:port]` as signed: the endpoint's host, with the port only when not the scheme default.
pub fn host_header(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn is_region(label: &str) -> bool {
    // us-east-1, eu-central-2, us-gov-west-1, cn-north-1, us-iso-east-1, us-isob-east-1 ...
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Region and service inferred from an AWS host name, e.g.
/// `search-x.us-east-1.es.amazonaws.com` → (us-east-1, es),
/// `abc.execute-api.eu-west-1.amazonaws.com` → (eu-west-1, execute-api),
/// `logs.us-west-2.amazonaws.com` → (us-west-2, logs). `-fips` suffixes are dropped.
pub fn infer_from_host(host: &str) -> (Option<String>, Option<String>) {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let suffix_at = labels
        .iter()
        .position(|l| *l == "amazonaws")
        .or_else(|| labels.windows(2).position(|w| w == ["on", "aws"]))
        .or_else(|| {
            labels
                .iter()
                .position(|l| *l == "api" && host.ends_with(".api.aws"))
        });
    let Some(suffix_at) = suffix_at else {
        return (None, None);
    };
    let Some(region_at) = labels[..suffix_at].iter().rposition(|l| is_region(l)) else {
        return (None, None);
    };
    let region = labels[region_at].to_string();
    let service = if region_at + 1 < suffix_at {
        Some(labels[region_at + 1])
    } else if region_at > 0 {
        Some(labels[region_at - 1])
    } else {
        None
    };
    let service = service
        .map(|s| s.trim_end_matches("-fips").to_string())
        .map(|s| {
            if s == "lambda-url" {
                "lambda".to_string()
            } else {
                s
            }
        });
    (Some(region), service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_common_aws_hosts() {
        let cases = [
            (
                "search-logs-abc.us-east-1.es.amazonaws.com",
                Some("us-east-1"),
                Some("es"),
            ),
            (
                "vpc-x-y.eu-west-3.es.amazonaws.com",
                Some("eu-west-3"),
                Some("es"),
            ),
            (
                "abc123.us-west-2.aoss.amazonaws.com",
                Some("us-west-2"),
                Some("aoss"),
            ),
            (
                "a1b2.execute-api.ap-southeast-2.amazonaws.com",
                Some("ap-southeast-2"),
                Some("execute-api"),
            ),
            (
                "logs.us-gov-west-1.amazonaws.com",
                Some("us-gov-west-1"),
                Some("logs"),
            ),
            (
                "firehose.cn-north-1.amazonaws.com.cn",
                Some("cn-north-1"),
                Some("firehose"),
            ),
            (
                "logs-fips.us-east-2.amazonaws.com",
                Some("us-east-2"),
                Some("logs"),
            ),
            (
                "pipe-x.us-east-1.osis.amazonaws.com",
                Some("us-east-1"),
                Some("osis"),
            ),
            (
                "abc.lambda-url.eu-central-1.on.aws",
                Some("eu-central-1"),
                Some("lambda"),
            ),
            (
                "LOGS.US-EAST-1.AMAZONAWS.COM.",
                Some("us-east-1"),
                Some("logs"),
            ),
        ];
        for (host, region, service) in cases {
            let (r, s) = infer_from_host(host);
            assert_eq!((r.as_deref(), s.as_deref()), (region, service), "{host}");
        }
        assert_eq!(infer_from_host("127.0.0.1"), (None, None));
        assert_eq!(infer_from_host("logs.example.com"), (None, None));
        assert_eq!(infer_from_host("amazonaws.com"), (None, None));
    }

    #[test]
    fn host_header_keeps_only_non_default_ports() {
        let u = reqwest::Url::parse("https://x.example.com:443/a").expect("url");
        assert_eq!(host_header(&u).as_deref(), Some("x.example.com"));
        let u = reqwest::Url::parse("http://127.0.0.1:8080/a").expect("url");
        assert_eq!(host_header(&u).as_deref(), Some("127.0.0.1:8080"));
        let u = reqwest::Url::parse("http://[::1]:81/").expect("url");
        assert_eq!(host_header(&u).as_deref(), Some("[::1]:81"));
    }

    #[test]
    fn signs_token_and_content_sha() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("TOKEN123".into()),
            None,
            "test",
        );
        let scope = SigningScope {
            region: "us-east-1".into(),
            service: "es".into(),
        };
        let headers = sign_request(
            "POST",
            "https://search-x.us-east-1.es.amazonaws.com/_bulk",
            &[
                ("host", "search-x.us-east-1.es.amazonaws.com"),
                ("content-type", "application/json"),
            ],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &creds,
            &scope,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .expect("signs");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("x-amz-security-token").as_deref(), Some("TOKEN123"));
        assert_eq!(get("x-amz-date").as_deref(), Some("20231114T221320Z"));
        let auth = get("authorization").expect("authorization");
        assert!(
            auth.contains("Credential=AKIDEXAMPLE/20231114/us-east-1/es/aws4_request"),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"), "{auth}");
    }
}

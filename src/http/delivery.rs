//! What a response (or its absence) means for the chunk: DESIGN §6's return-code table.

/// What a response's head says beyond its status, for classification and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `Date`: the server's clock, for skew correction.
    pub date: Option<String>,
    /// `Location` of a 3xx.
    pub location: Option<String>,
    /// `x-amzn-ErrorType` (JSON-protocol services and API Gateway put the error code there).
    pub error_type: Option<String>,
}

impl ResponseHead {
    /// The head of a reqwest response.
    pub fn of(resp: &reqwest::Response) -> Self {
        // Typed header names: looking up by &str parses the name on every call (and that
        // parser's optimised code reads an uninitialised buffer, which valgrind reports).
        static ERROR_TYPE: http::HeaderName = http::HeaderName::from_static("x-amzn-errortype");
        let header = |name: &http::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        ResponseHead {
            status: resp.status().as_u16(),
            date: header(&http::header::DATE),
            location: header(&http::header::LOCATION),
            error_type: header(&ERROR_TYPE),
        }
    }
}

/// Classification of one request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// 413: split the batch and re-send.
    TooLarge,
    /// 401/403 saying the token is expired or invalid: refresh once and re-send.
    TokenRejected,
    /// 403 about the request time: correct the clock offset and re-send once.
    ClockSkew,
    /// Other 401/403: retried later (IAM changes take time to propagate).
    AuthFailed,
    /// 408, 429, 5xx: retry later.
    Transient,
    /// 3xx: redirects are not followed, so retrying cannot help (log the `Location`).
    Redirect,
    /// Other 4xx: the request will never succeed.
    Rejected,
}

const TOKEN_ERRORS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "security token included in the request is expired",
    "security token included in the request is invalid",
];

/// Error codes that always mean the request time is off (S3, EC2-style query APIs).
const SKEW_CODES: &[&str] = &["RequestTimeTooSkewed", "SignatureExpired", "RequestExpired"];

/// The skew messages of `InvalidSignatureException` (AWS's signature check): the request is too
/// old, or (the client's clock ahead) too new. Only a message that *starts* with one counts: the
/// signature-mismatch message echoes the canonical request, `x-amz-date` included.
const SKEW_MESSAGES: &[&str] = &["Signature expired", "Signature not yet current"];

/// Codes that may carry a skew message (query APIs such as STS answer `SignatureDoesNotMatch`
/// with "Signature expired: …").
const SIGNATURE_CODES: &[&str] = &["InvalidSignatureException", "SignatureDoesNotMatch"];

/// An AWS error's code and message, from the `x-amzn-ErrorType` header, a JSON body (`__type`,
/// `code`, `message`) or an XML body (`<Code>`, `<Message>`).
#[derive(Debug, Default, PartialEq, Eq)]
struct AwsError {
    code: Option<String>,
    message: Option<String>,
}

/// `com.amazon.coral.service#InvalidSignatureException` and
/// `InvalidSignatureException:http://internal.amazon.com/…` → `InvalidSignatureException`.
fn bare_code(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    after_hash
        .split(':')
        .next()
        .unwrap_or(after_hash)
        .trim()
        .to_string()
}

fn xml_element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(text[start..start + len].trim())
}

fn aws_error(error_type: Option<&str>, text: &str) -> AwsError {
    let mut err = AwsError {
        code: error_type.map(bare_code).filter(|c| !c.is_empty()),
        message: None,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) {
            let field = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| map.get(*n).and_then(|v| v.as_str()))
                    .map(str::to_string)
            };
            if err.code.is_none() {
                err.code = field(&["__type", "code", "Code"]).map(|c| bare_code(&c));
            }
            err.message = field(&["message", "Message"]);
        }
    } else if trimmed.starts_with('<') {
        if err.code.is_none() {
            err.code = xml_element(trimmed, "Code").map(str::to_string);
        }
        err.message = xml_element(trimmed, "Message").map(str::to_string);
    } else if !trimmed.is_empty() {
        err.message = Some(trimmed.to_string());
    }
    err
}

fn is_clock_skew(err: &AwsError) -> bool {
    let code = err.code.as_deref();
    if code.is_some_and(|c| SKEW_CODES.contains(&c)) {
        return true;
    }
    let skew_message = err
        .message
        .as_deref()
        .is_some_and(|m| SKEW_MESSAGES.iter().any(|s| m.starts_with(s)));
    skew_message && code.map_or(true, |c| SIGNATURE_CODES.contains(&c))
}

/// Classifies a response by its head and (the start of) its body.
pub fn classify(head: &ResponseHead, body: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    match head.status {
        200..=299 => Verdict::Delivered,
        413 => Verdict::TooLarge,
        401 | 403 => {
            let err = aws_error(head.error_type.as_deref(), &text);
            if TOKEN_ERRORS.iter().any(|e| text.contains(e)) {
                Verdict::TokenRejected
            } else if is_clock_skew(&err) {
                Verdict::ClockSkew
            } else {
                Verdict::AuthFailed
            }
        }
        // 407: a proxy in the way refused us (its credentials or policy): a proxy failure.
        // 402: OpenSearch Serverless's collection at its capacity limit (transient).
        402 | 407 | 408 | 429 | 500..=599 => Verdict::Transient,
        // Redirects are not followed: the same request will get the same answer.
        300..=399 => Verdict::Redirect,
        // 1xx is an unexpected final answer: retry.
        100..=199 => Verdict::Transient,
        _ => Verdict::Rejected,
    }
}

/// A header value for a log line: control characters replaced, at most 512 bytes.
pub fn header_excerpt(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 512 {
        let mut cut = 512;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The first 512 bytes of a response body, printable, for logs.
pub fn body_excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(512)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &[u8]) -> Verdict {
        super::classify(
            &ResponseHead {
                status,
                ..ResponseHead::default()
            },
            body,
        )
    }

    fn classify_typed(status: u16, error_type: &str, body: &[u8]) -> Verdict {
        super::classify(
            &ResponseHead {
                status,
                error_type: Some(error_type.to_string()),
                ..ResponseHead::default()
            },
            body,
        )
    }

    #[test]
    fn table() {
        assert_eq!(classify(200, b""), Verdict::Delivered);
        assert_eq!(classify(204, b""), Verdict::Delivered);
        assert_eq!(classify(413, b""), Verdict::TooLarge);
        for s in [407, 408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s, b"x"), Verdict::Transient, "{s}");
        }
        assert_eq!(classify(100, b""), Verdict::Transient);
        assert_eq!(classify(400, b"bad"), Verdict::Rejected);
        assert_eq!(classify(404, b""), Verdict::Rejected);
        assert_eq!(
            classify(403, b"{\"__type\":\"ExpiredTokenException\"}"),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(403, b"<Code>ExpiredToken</Code>"),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(401, b"UnrecognizedClientException"),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(403, b"InvalidClientTokenId"),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(403, b"{\"message\":\"User is not authorized\"}"),
            Verdict::AuthFailed
        );
    }

    #[test]
    fn redirects_are_not_retried() {
        for s in [300, 301, 302, 303, 307, 308] {
            assert_eq!(classify(s, b""), Verdict::Redirect, "{s}");
        }
        assert_eq!(
            header_excerpt("https://x/\r\nInjected: 1"),
            "https://x/  Injected: 1"
        );
        assert_eq!(header_excerpt(&"é".repeat(400)).len(), 512);
    }

    /// Skew answers as AWS services send them.
    #[test]
    fn clock_skew_by_code_and_skew_message() {
        // S3 (XML).
        let s3 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message><RequestTime>20240101T000000Z</RequestTime><ServerTime>2024-01-01T00:20:00Z</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds><RequestId>4442587FB7D0A2F9</RequestId></Error>";
        assert_eq!(classify(403, s3), Verdict::ClockSkew);
        // EC2-style query API.
        let ec2 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestExpired</Code><Message>Request has expired.</Message></Error></Errors><RequestID>1f0a2b3c-0000-4000-8000-000000000000</RequestID></Response>";
        assert_eq!(
            classify(400, ec2),
            Verdict::Rejected,
            "only 401/403 are auth"
        );
        assert_eq!(classify(403, ec2), Verdict::ClockSkew);
        assert_eq!(
            classify(
                403,
                b"<Error><Code>SignatureExpired</Code><Message>x</Message></Error>"
            ),
            Verdict::ClockSkew
        );
        // JSON protocol (CloudWatch Logs, Firehose).
        let expired = br#"{"__type":"InvalidSignatureException","message":"Signature expired: 20240101T000000Z is now earlier than 20240101T001500Z (20240101T002000Z - 5 min.)"}"#;
        assert_eq!(classify(400, expired), Verdict::Rejected);
        assert_eq!(classify(403, expired), Verdict::ClockSkew);
        let ahead = br#"{"__type":"InvalidSignatureException","message":"Signature not yet current: 20300101T000000Z is still later than 20291231T231500Z (20291231T230000Z + 15 min.)"}"#;
        assert_eq!(classify(403, ahead), Verdict::ClockSkew);
        // API Gateway / OpenSearch: the code in x-amzn-ErrorType, the body a bare message.
        let apigw = br#"{"message":"Signature expired: 20240101T000000Z is now earlier than 20240101T001500Z (20240101T002000Z - 5 min.)"}"#;
        assert_eq!(
            classify_typed(
                403,
                "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
                apigw
            ),
            Verdict::ClockSkew
        );
        assert_eq!(classify(403, apigw), Verdict::ClockSkew);
        // STS (query API) answers SignatureDoesNotMatch with the skew message.
        let sts = b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>Signature expired: 20240101T000000Z is now earlier than 20240101T001500Z (20240101T002000Z - 5 min.)</Message></Error><RequestId>b0f1c2d3-0000-4000-8000-000000000000</RequestId></ErrorResponse>";
        assert_eq!(classify(403, sts), Verdict::ClockSkew);
    }

    /// The signature-mismatch answer echoes the canonical request and the string to sign, dates
    /// and `x-amz-date` included: a signing bug, not skew.
    #[test]
    fn signature_mismatch_echoing_dates_is_auth_failed() {
        let apigw = br#"{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/_bulk\n\ncontent-type:application/x-ndjson\nhost:search-x.us-east-1.es.amazonaws.com\nx-amz-content-sha256:0d6ef1c5bf0a1aa0a9b3c1f9e0d0b6a2f1a7f2c3e4d5b6a7f8e9d0c1b2a3f4e5\nx-amz-date:20240101T000000Z\n\ncontent-type;host;x-amz-content-sha256;x-amz-date\n0d6ef1c5bf0a1aa0a9b3c1f9e0d0b6a2f1a7f2c3e4d5b6a7f8e9d0c1b2a3f4e5'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20240101T000000Z\n20240101/us-east-1/es/aws4_request\n5f1d8c1e2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5'\n"}"#;
        assert_eq!(
            classify_typed(
                403,
                "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
                apigw
            ),
            Verdict::AuthFailed
        );
        assert_eq!(classify(403, apigw), Verdict::AuthFailed);
        let json = br#"{"__type":"InvalidSignatureException","message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details. The Canonical String for this request should have been 'POST / content-type:application/x-amz-json-1.1 host:logs.us-east-1.amazonaws.com x-amz-date:20240101T000000Z x-amz-target:Logs_20140328.PutLogEvents'"}"#;
        assert_eq!(classify(403, json), Verdict::AuthFailed);
        let s3 = b"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z\n20240101/us-east-1/s3/aws4_request</StringToSign></Error>";
        assert_eq!(classify(403, s3), Verdict::AuthFailed);
        // A skew message under an unrelated code, or merely containing one, is not skew.
        assert_eq!(
            classify(
                403,
                br#"{"__type":"AccessDeniedException","message":"Signature expired"}"#
            ),
            Verdict::AuthFailed
        );
        assert_eq!(
            classify(
                403,
                br#"{"message":"Denied. Hint: Signature expired errors mean skew"}"#
            ),
            Verdict::AuthFailed
        );
    }

    #[test]
    fn error_codes_are_bare() {
        assert_eq!(
            bare_code("com.amazon.coral.service#InvalidSignatureException"),
            "InvalidSignatureException"
        );
        assert_eq!(
            bare_code("InvalidSignatureException:http://internal.amazon.com/coral/"),
            "InvalidSignatureException"
        );
    }

    #[test]
    fn excerpt_is_bounded() {
        let body = vec![b'a'; 2000];
        assert_eq!(body_excerpt(&body).len(), 512);
        assert_eq!(body_excerpt(b"x\x01y"), "x y");
    }
}

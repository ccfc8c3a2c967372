//! What a response (or its absence) means for the chunk: DESIGN §6's return-code table.

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
const SKEW_ERRORS: &[&str] = &[
    "RequestTimeTooSkewed",
    "SignatureExpired",
    "Signature expired",
    // the client's clock is ahead: "Signature not yet current: X is still later than Y"
    "Signature not yet current",
    "RequestExpired",
];

/// Classifies a response by status and (the start of) its body.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    match status {
        200..=299 => Verdict::Delivered,
        413 => Verdict::TooLarge,
        401 | 403 => {
            if TOKEN_ERRORS.iter().any(|e| text.contains(e)) {
                Verdict::TokenRejected
            } else if SKEW_ERRORS.iter().any(|e| text.contains(e))
                || (text.contains("InvalidSignatureException")
                    && (text.contains("time") || text.contains("date") || text.contains("Date")))
            {
                Verdict::ClockSkew
            } else {
                Verdict::AuthFailed
            }
        }
        // 407: a proxy in the way refused us (its credentials or policy): a proxy failure.
        407 | 408 | 429 | 500..=599 => Verdict::Transient,
        // 1xx/3xx are unexpected final answers (redirects are not followed): retry.
        100..=199 | 300..=399 => Verdict::Transient,
        _ => Verdict::Rejected,
    }
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

    #[test]
    fn table() {
        assert_eq!(classify(200, b""), Verdict::Delivered);
        assert_eq!(classify(204, b""), Verdict::Delivered);
        assert_eq!(classify(413, b""), Verdict::TooLarge);
        for s in [407, 408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s, b"x"), Verdict::Transient, "{s}");
        }
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
        assert_eq!(classify(403, b"RequestTimeTooSkewed"), Verdict::ClockSkew);
        assert_eq!(classify(403, b"InvalidSignatureException: Signature expired: 20200101T000000Z is now earlier than"), Verdict::ClockSkew);
        assert_eq!(
            classify(
                403,
                br#"{"__type":"InvalidSignatureException","message":"Signature not yet current: 20300101T000000Z is still later than 20291231T230000Z (20291231T225500Z + 5 min.)"}"#
            ),
            Verdict::ClockSkew
        );
        assert_eq!(
            classify(403, b"{\"message\":\"User is not authorized\"}"),
            Verdict::AuthFailed
        );
    }

    #[test]
    fn excerpt_is_bounded() {
        let body = vec![b'a'; 2000];
        assert_eq!(body_excerpt(&body).len(), 512);
        assert_eq!(body_excerpt(b"x\x01y"), "x y");
    }
}

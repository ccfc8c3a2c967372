//! The `headers` syntax and the header names the plugin reserves for itself.

use super::ConfigError;

/// HTTP token characters (RFC 9110 `tchar`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the plugin sets itself; `headers` and `header_tag` may not override them.
fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "host"
            | "authorization"
            | "content-length"
            | "content-encoding"
            | "transfer-encoding"
            | "proxy-authorization"
    ) || lower.starts_with("x-amz-")
}

const RESERVED_HEADERS: &str = "Host, Authorization, Content-Length, Content-Encoding, \
     Transfer-Encoding, Proxy-Authorization and X-Amz-* (the plugin sets them itself)";

pub(super) fn check_header_name(property: &'static str, name: &str) -> Result<(), ConfigError> {
    if !is_token(name) {
        return Err(ConfigError::invalid(
            property,
            name,
            "a header name of letters, digits and !#$%&'*+-.^_`|~",
        ));
    }
    if is_reserved_header(name) {
        return Err(ConfigError::invalid(
            property,
            name,
            format!("a header other than {RESERVED_HEADERS}"),
        ));
    }
    Ok(())
}

/// Splits on `;` except `\;`, which stands for a literal `;` (no other escapes).
fn split_header_pairs(value: &str) -> Vec<String> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                current.push(';');
                chars.next();
            }
            ';' => pairs.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pairs.push(current);
    pairs
}

/// `headers`: `Name: value` pairs separated by `;`.
pub(super) fn parse_headers(value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    const ACCEPTED: &str = "'Name: value' pairs separated by ';' (a literal ';' written '\\;')";
    let mut headers = Vec::new();
    for pair in split_header_pairs(value) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, val)) = pair.split_once(':') else {
            return Err(ConfigError::invalid("headers", pair, ACCEPTED));
        };
        let (name, val) = (name.trim(), val.trim());
        check_header_name("headers", name)?;
        if val.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ConfigError::invalid(
                "headers",
                name,
                "a header value without CR, LF or other control characters",
            ));
        }
        headers.push((name.to_string(), val.to_string()));
    }
    Ok(headers)
}

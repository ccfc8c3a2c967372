//! Parsers of property values: booleans, durations, sizes, URLs, role ARNs, files.

use super::ConfigError;
use crate::http::proxy;
use reqwest::Url;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Fluent Bit's booleans (`flb_utils_bool`): on/off, true/false, yes/no, plus 1/0.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A non-negative decimal number (`12`, `1.5`, `.5`) times `unit`, rounded down; `None` when
/// `number` is not such a number or the result overflows.
fn scaled_decimal(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int_val: u128 = if int.is_empty() {
        0
    } else if int.len() > 30 {
        return None;
    } else {
        int.parse().ok()?
    };
    let frac = &frac[..frac.len().min(18)];
    let frac_val: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let denom = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    int_val
        .checked_mul(unit)?
        .checked_add(frac_val.checked_mul(unit)? / denom)
}

/// Fluent Bit time values (`flb_utils_time_to_seconds`): a plain number is seconds; suffixes
/// `s`, `m` (minutes), `h`, `d`, case-insensitive; plus `ms` (milliseconds) and decimals.
pub(super) fn parse_duration(value: &str) -> Option<Duration> {
    let lower = value.to_ascii_lowercase();
    const NS: u128 = 1_000_000_000;
    let (number, unit) = if let Some(n) = lower.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, NS)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 60 * NS)
    } else if let Some(n) = lower.strip_suffix('h') {
        (n, 3_600 * NS)
    } else if let Some(n) = lower.strip_suffix('d') {
        (n, 86_400 * NS)
    } else {
        (lower.as_str(), NS)
    };
    let nanos = u64::try_from(scaled_decimal(number, unit)?).ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Fluent Bit sizes (`flb_utils_size_to_bytes`): plain bytes, `K`/`KB`, `M`/`MB`, `G`/`GB` with
/// Fluent Bit's decimal multipliers (1000), case-insensitive, decimals allowed; plus the binary
/// `KiB`/`MiB`/`GiB` (1024).
pub(super) fn parse_size(value: &str) -> Option<u128> {
    let lower = value.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, suffix) = lower.split_at(split);
    let unit: u128 = match suffix {
        "" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    scaled_decimal(number, unit)
}

/// An `http://` or `https://` URL with a host and without user-info.
pub(super) fn parse_http_url(
    property: &'static str,
    value: &str,
    example: &str,
) -> Result<Url, ConfigError> {
    let accepted = || format!("an http:// or https:// URL with a host, such as {example}");
    let url = Url::parse(value).map_err(|e| {
        ConfigError::invalid(
            property,
            &proxy::redact_raw(value),
            format!("{} ({e})", accepted()),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            property,
            &proxy::redact_url(&url),
            format!(
                "{} (scheme '{}' is not supported)",
                accepted(),
                url.scheme()
            ),
        ));
    }
    if url.host_str().map_or(true, str::is_empty) {
        return Err(ConfigError::invalid(
            property,
            &proxy::redact_url(&url),
            accepted(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            property,
            &proxy::redact_url(&url),
            format!("{} and without user:password@", accepted()),
        ));
    }
    if url.fragment().is_some() {
        return Err(ConfigError::invalid(
            property,
            &proxy::redact_url(&url),
            format!("{} and without #fragment", accepted()),
        ));
    }
    Ok(url)
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub(super) fn is_role_arn(value: &str) -> bool {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(name) = resource.strip_prefix("role/") else {
        return false;
    };
    *arn == "arn"
        && partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && *service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/')
        && !name.contains("//")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

pub(super) fn check_readable_file(
    property: &'static str,
    path: &str,
) -> Result<PathBuf, ConfigError> {
    let p = Path::new(path);
    let result = std::fs::File::open(p).and_then(|f| f.metadata());
    match result {
        Ok(meta) if meta.is_file() => Ok(p.to_path_buf()),
        Ok(_) => Err(ConfigError::invalid(
            property,
            path,
            "a readable file (this is not a regular file)",
        )),
        Err(e) => Err(ConfigError::invalid(
            property,
            path,
            format!("a readable file ({e})"),
        )),
    }
}

pub(super) fn render_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

//! Typed `[OUTPUT]` configuration, parsed once in init from a property lookup, testable without
//! Fluent Bit. Every property is declared once in [`PROPERTIES`]; README's reference is checked
//! against that table by a test.

use crate::event::{BodyOptions, Compression, DateFormat, Format};
use crate::http::proxy::{self, ProxyError, ProxyResolver};
use reqwest::Url;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `aws_imds auto|on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImdsMode {
    /// Only when this host is EC2 by its local files.
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// `aws_auth` (default on). Off: requests go unsigned.
    pub auth: bool,
    pub region: Option<String>,
    pub service: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: Option<String>,
    pub sts_endpoint: Option<Url>,
    pub imds: ImdsMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `tls_verify` (default on).
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
    pub crt_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// `Debug` is written by hand: the proxy URL's password is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `endpoint`: scheme decides TLS, port defaults by scheme, path+query are the target.
    pub endpoint: Url,
    pub tls: TlsConfig,
    /// `timeout` (default 30s): whole request.
    pub timeout: Duration,
    /// `connect_timeout` (default 10s).
    pub connect_timeout: Duration,
    pub body: BodyOptions,
    pub compress: Compression,
    /// `headers`: extra request headers, in order.
    pub headers: Vec<(String, String)>,
    /// `header_tag`: header name that carries the chunk's tag.
    pub header_tag: Option<String>,
    /// `max_request_bytes` (default 5 MiB), measured before compression.
    pub max_request_bytes: usize,
    /// `proxy`: explicit proxy URL, beats the environment.
    pub proxy: Option<Url>,
    /// `no_proxy`: added to `NO_PROXY`.
    pub no_proxy: Option<String>,
    pub aws: AwsConfig,
    /// Start-up warnings found while reading the properties (out_opensearch keys ignored…).
    pub notes: Vec<String>,
}

/// A bad property value. Rendered as one log line naming property, value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("property '{property}' is required: {accepted}")]
    Missing {
        property: &'static str,
        accepted: &'static str,
    },
    #[error("property '{property}' has invalid value '{value}': expected {accepted}")]
    Invalid {
        property: &'static str,
        value: String,
        accepted: String,
    },
}

/// One `[OUTPUT]` property: its name, default (as written in a config) and description.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub description: &'static str,
}

/// Keys Fluent Bit's output core consumes before a proxy plugin can see them (DESIGN §1). Entries
/// listed in [`CORE_KEY_PREFIXES`] as well (`tls.`, `net.`, `oauth2`) are prefixes.
pub static CORE_KEYS: &[&str] = &[
    "match",
    "match_regex",
    "alias",
    "log_level",
    "log_suppress_interval",
    "host",
    "port",
    "ipv6",
    "retry_limit",
    "workers",
    "storage.total_limit_size",
    "tls",
    "tls.",
    "net.",
    "oauth2",
];

/// The entries of [`CORE_KEYS`] that withhold every key starting with them.
pub static CORE_KEY_PREFIXES: &[&str] = &["tls.", "net.", "oauth2"];

/// True when Fluent Bit's core withholds `key` from the plugin (case-insensitive).
pub fn is_core_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    CORE_KEYS.contains(&key.as_str()) || CORE_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

const fn prop(
    name: &'static str,
    default: Option<&'static str>,
    description: &'static str,
) -> Property {
    Property {
        name,
        default,
        description,
    }
}

/// Every `[OUTPUT]` property, once, in README order.
pub static PROPERTIES: &[Property] = &[
    prop("endpoint", None, "Required. URL of the log endpoint (http:// or https://); the scheme decides TLS, the port defaults by scheme, path and query are the request target."),
    prop("tls_verify", Some("on"), "Verify the endpoint's TLS certificate and host name."),
    prop("tls_ca_file", None, "PEM file of CA certificates to trust (in addition to the system roots)."),
    prop("tls_crt_file", None, "PEM client certificate for mutual TLS; requires tls_key_file."),
    prop("tls_key_file", None, "PEM private key of the client certificate; requires tls_crt_file."),
    prop("timeout", Some("30s"), "Time limit of one whole request; a number of seconds or with a unit: ms, s, m, h, d."),
    prop("connect_timeout", Some("10s"), "Time limit to connect (TCP, proxy and TLS handshake); same forms as timeout."),
    prop("format", Some("json_lines"), "Body format: json_lines, json, json_stream, msgpack or opensearch (the _bulk NDJSON of OpenSearch; the endpoint path must end in /_bulk)."),
    prop("json_date_key", Some("date"), "Key under which the record timestamp is written; false (or off, no) omits it. With format opensearch the default is @timestamp."),
    prop("json_date_format", Some("double"), "Timestamp format: double, epoch, epoch_ms (also epoch_millis, epoch_milliseconds), iso8601 or java_sql_timestamp. With format opensearch the default is iso8601."),
    prop("log_key", None, "Ship only this field of each record (not with format opensearch)."),
    prop("compress", Some("none"), "Body compression: none, gzip or zstd."),
    prop("headers", None, "Extra request headers as 'Name: value' pairs separated by ';' (write a literal ';' in a value as '\\;'), e.g. 'X-Team: logs; X-Env: prod'."),
    prop("header_tag", None, "Name of a request header that carries the chunk's tag."),
    prop("max_request_bytes", Some("5MiB"), "Largest request body before compression; bigger chunks are split on record boundaries. Bytes, or K/KB, M/MB, G/GB (x1000, as Fluent Bit) or KiB/MiB/GiB (x1024); at least 1024."),
    prop("proxy", None, "HTTP proxy for every target: http://[user:pass@]host:port, https://... or host:port; beats HTTPS_PROXY/HTTP_PROXY/ALL_PROXY."),
    prop("no_proxy", None, "Hosts reached directly, added to NO_PROXY: comma-separated '*', host names, .domains, IP addresses, CIDR ranges, each optionally with :port."),
    prop("aws_auth", Some("on"), "Sign requests with AWS SigV4; off sends them unsigned."),
    prop("aws_region", None, "Signing region; else AWS_REGION, AWS_DEFAULT_REGION, the profile's region, the endpoint's host name or IMDS."),
    prop("aws_service", None, "Signing service name (es, aoss, execute-api, logs, firehose...); else inferred from the endpoint's host name."),
    prop("aws_profile", None, "Use only this profile of the shared config/credentials files for credentials."),
    prop("aws_role_arn", None, "Assume this IAM role (arn:aws:iam::123456789012:role/name) on top of the base credentials."),
    prop("aws_external_id", None, "External ID passed to sts:AssumeRole with aws_role_arn."),
    prop("aws_role_session_name", None, "Session name for sts:AssumeRole (2-64 characters of A-Z a-z 0-9 _ + = , . @ -)."),
    prop("aws_sts_endpoint", None, "STS endpoint URL to use instead of the region's regional endpoint."),
    prop("aws_imds", Some("auto"), "EC2 instance metadata credentials: auto (when this host is EC2), on or off."),
    // format opensearch (out_opensearch's names; src/opensearch/settings.rs)
    prop("index", Some("fluent-bit"), "format opensearch: the index of every document (strftime conversions in it are filled from the current time, UTC); unused with logstash_format."),
    prop("logstash_format", Some("off"), "format opensearch: index <logstash_prefix><logstash_prefix_separator><logstash_dateformat of the record's time>."),
    prop("logstash_prefix", Some("logstash"), "format opensearch: index prefix with logstash_format."),
    prop("logstash_prefix_key", None, "format opensearch: the record's value at this key (a top-level key or a record accessor such as $kubernetes['namespace_name']), when a string or an integer, replaces logstash_prefix."),
    prop("logstash_prefix_separator", Some("-"), "format opensearch: text between the prefix and the date with logstash_format."),
    prop("logstash_dateformat", Some("%Y.%m.%d"), "format opensearch: strftime pattern of the index date with logstash_format, from each record's timestamp in UTC."),
    prop("current_time_index", Some("off"), "format opensearch: the index date is the time of sending instead of the record's."),
    prop("write_operation", Some("create"), "format opensearch: create, index, update or upsert (update with doc_as_upsert); update and upsert need id_key or generate_id."),
    prop("generate_id", Some("off"), "format opensearch: _id from a hash of the record's timestamp and original content, so a re-sent record is not indexed twice (two identical records with the same timestamp count as one)."),
    prop("id_key", None, "format opensearch: _id from this field (a top-level key or a record accessor) when it is a string or an integer."),
    prop("retry_on_conflict", Some("3"), "format opensearch: retry_on_conflict of update and upsert actions (0-1000)."),
    prop("replace_dots", Some("off"), "format opensearch: '.' in record keys (at every depth) becomes '_'."),
    prop("include_tag_key", Some("off"), "format opensearch: add the tag to each document under tag_key."),
    prop("tag_key", Some("flb-key"), "format opensearch: key of the tag with include_tag_key."),
    prop("suppress_type_name", Some("on"), "format opensearch: accepted for out_opensearch configurations; always on (_type is never sent)."),
    prop("time_key", Some("@timestamp"), "format opensearch: out_opensearch's name for json_date_key (json_date_key wins when both are set)."),
    prop("time_key_format", Some("%Y-%m-%dT%H:%M:%S"), "format opensearch: out_opensearch's date format, understood in its ISO forms: %Y-%m-%dT%H:%M:%S (iso8601) or %Y-%m-%d %H:%M:%S (java_sql_timestamp); json_date_format wins when both are set."),
    prop("time_key_nanos", Some("off"), "format opensearch: accepted; dates always carry nanoseconds (nine fraction digits, which OpenSearch date fields read)."),
];

impl ConfigError {
    pub(crate) fn invalid(
        property: &'static str,
        value: &str,
        accepted: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            property,
            value: one_line(value),
            accepted: one_line(&accepted.into()),
        }
    }
}

/// Control characters escaped (so the message stays on one line) and long values shortened.
fn one_line(text: &str) -> String {
    const MAX: usize = 256;
    let mut out = String::with_capacity(text.len().min(MAX + 8));
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Fluent Bit's booleans (`flb_utils_bool`): on/off, true/false, yes/no, plus 1/0.
fn parse_bool(value: &str) -> Option<bool> {
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
fn parse_duration(value: &str) -> Option<Duration> {
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
fn parse_size(value: &str) -> Option<u128> {
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

fn check_header_name(property: &'static str, name: &str) -> Result<(), ConfigError> {
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
fn parse_headers(value: &str) -> Result<Vec<(String, String)>, ConfigError> {
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

/// An `http://` or `https://` URL with a host and without user-info.
fn parse_http_url(property: &'static str, value: &str, example: &str) -> Result<Url, ConfigError> {
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
fn is_role_arn(value: &str) -> bool {
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

fn check_readable_file(property: &'static str, path: &str) -> Result<PathBuf, ConfigError> {
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

fn render_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::JsonLines => "json_lines",
            Format::Json => "json",
            Format::JsonStream => "json_stream",
            Format::Msgpack => "msgpack",
            Format::OpenSearch => "opensearch",
        }
    }
}

impl DateFormat {
    fn name(self) -> &'static str {
        match self {
            DateFormat::Double => "double",
            DateFormat::Epoch => "epoch",
            DateFormat::EpochMs => "epoch_ms",
            DateFormat::Iso8601 => "iso8601",
            DateFormat::JavaSqlTimestamp => "java_sql_timestamp",
        }
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl Config {
    /// Reads and validates every property through `lookup` (Fluent Bit's case-insensitive
    /// `output_get_property`). Values are trimmed; empty means unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let get_bool = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => parse_bool(&v).ok_or_else(|| {
                    ConfigError::invalid(name, &v, "on, off, true, false, yes, no, 1 or 0")
                }),
            }
        };
        let get_duration = |name: &'static str,
                            default: Duration|
         -> Result<Duration, ConfigError> {
            match get(name) {
                    None => Ok(default),
                    Some(v) => match parse_duration(&v) {
                        Some(d) if !d.is_zero() => Ok(d),
                        _ => Err(ConfigError::invalid(
                            name,
                            &v,
                            "a duration greater than 0: seconds, or a number with ms, s, m, h or d (e.g. 30s, 500ms, 2m)",
                        )),
                    },
                }
        };

        // Endpoint.
        let endpoint_example = "https://search-x.us-east-1.es.amazonaws.com/_bulk";
        let endpoint = match get("endpoint") {
            None => {
                return Err(ConfigError::Missing {
                    property: "endpoint",
                    accepted: "an http:// or https:// URL such as https://search-x.us-east-1.es.amazonaws.com/_bulk",
                })
            }
            Some(v) => parse_http_url("endpoint", &v, endpoint_example)?,
        };

        // TLS.
        let verify = get_bool("tls_verify", true)?;
        let ca_file = get("tls_ca_file")
            .map(|v| check_readable_file("tls_ca_file", &v))
            .transpose()?;
        let (crt, key) = (get("tls_crt_file"), get("tls_key_file"));
        let (crt_file, key_file) = match (crt, key) {
            (Some(c), Some(k)) => (
                Some(check_readable_file("tls_crt_file", &c)?),
                Some(check_readable_file("tls_key_file", &k)?),
            ),
            (Some(c), None) => {
                return Err(ConfigError::invalid(
                    "tls_crt_file",
                    &c,
                    "a client certificate together with tls_key_file (its private key), which is not set",
                ))
            }
            (None, Some(k)) => {
                return Err(ConfigError::invalid(
                    "tls_key_file",
                    &k,
                    "a private key together with tls_crt_file (its client certificate), which is not set",
                ))
            }
            (None, None) => (None, None),
        };
        let tls = TlsConfig {
            verify,
            ca_file,
            crt_file,
            key_file,
        };

        let timeout = get_duration("timeout", Duration::from_secs(30))?;
        let connect_timeout = get_duration("connect_timeout", Duration::from_secs(10))?;

        // Body.
        let format = match get("format") {
            None => Format::JsonLines,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "json_lines" => Format::JsonLines,
                "json" => Format::Json,
                "json_stream" => Format::JsonStream,
                "msgpack" => Format::Msgpack,
                "opensearch" => Format::OpenSearch,
                _ => {
                    return Err(ConfigError::invalid(
                        "format",
                        &v,
                        "json_lines, json, json_stream, msgpack or opensearch",
                    ))
                }
            },
        };
        let date_key = match get("json_date_key") {
            None => None,
            // As out_http: a false boolean disables the key (flb_utils_bool has no "0").
            Some(v) if matches!(v.to_ascii_lowercase().as_str(), "false" | "off" | "no") => {
                Some(None)
            }
            Some(v) => Some(Some(v)),
        };
        let date_format = match get("json_date_format") {
            None => None,
            Some(v) => Some(match v.to_ascii_lowercase().as_str() {
                "double" => DateFormat::Double,
                "epoch" => DateFormat::Epoch,
                "epoch_ms" | "epoch_millis" | "epoch_milliseconds" => DateFormat::EpochMs,
                "iso8601" => DateFormat::Iso8601,
                "java_sql_timestamp" => DateFormat::JavaSqlTimestamp,
                _ => {
                    return Err(ConfigError::invalid(
                        "json_date_format",
                        &v,
                        "double, epoch, epoch_ms, iso8601 or java_sql_timestamp",
                    ))
                }
            }),
        };
        let mut notes = Vec::new();
        let body = if format == Format::OpenSearch {
            crate::opensearch::settings::check_endpoint(&endpoint)?;
            if let Some(v) = get("log_key") {
                return Err(ConfigError::invalid(
                    "log_key",
                    &v,
                    "no log_key with format opensearch (each document is the whole record)",
                ));
            }
            let s = crate::opensearch::settings::parse(&get, date_key, date_format)?;
            notes = s.warnings;
            BodyOptions {
                format,
                date_key: s.date_key,
                date_format: s.date_format,
                log_key: None,
                bulk: Some(s.bulk),
            }
        } else {
            BodyOptions {
                format,
                date_key: date_key.unwrap_or_else(|| Some("date".to_string())),
                date_format: date_format.unwrap_or(DateFormat::Double),
                log_key: get("log_key"),
                bulk: None,
            }
        };
        let compress = match get("compress") {
            None => Compression::None,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "none" => Compression::None,
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                _ => return Err(ConfigError::invalid("compress", &v, "none, gzip or zstd")),
            },
        };
        let headers = match get("headers") {
            None => Vec::new(),
            Some(v) => parse_headers(&v)?,
        };
        let header_tag = get("header_tag")
            .map(|v| check_header_name("header_tag", &v).map(|()| v))
            .transpose()?;
        let max_request_bytes = match get("max_request_bytes") {
            None => 5 * 1024 * 1024,
            Some(v) => match parse_size(&v).map(usize::try_from) {
                Some(Ok(n)) if n >= 1024 => n,
                _ => {
                    return Err(ConfigError::invalid(
                        "max_request_bytes",
                        &v,
                        "a size of at least 1024 bytes: bytes, or a number with K, KB, M, MB, G, GB (x1000) or KiB, MiB, GiB (x1024), e.g. 5MiB",
                    ))
                }
            },
        };

        // Proxy.
        let proxy = match get("proxy") {
            None => None,
            Some(v) => Some(proxy::parse_proxy_url(&v).map_err(|reason| {
                ConfigError::invalid(
                    "proxy",
                    &proxy::redact_raw(&v),
                    format!("http://[user:pass@]host:port, https://... or host:port ({reason})"),
                )
            })?),
        };
        let no_proxy = get("no_proxy");
        // Validates the no_proxy entries (and the proxy once more) without reading the
        // environment.
        ProxyResolver::new(&|_| None, proxy.as_ref(), no_proxy.as_deref()).map_err(
            |e| match e {
                ProxyError::InvalidProxy { value, reason, .. } => ConfigError::invalid(
                    "proxy",
                    &value,
                    format!("http://[user:pass@]host:port, https://... or host:port ({reason})"),
                ),
                ProxyError::InvalidNoProxy { entry, reason, .. } => ConfigError::invalid(
                    "no_proxy",
                    &entry,
                    format!("'*', host names, .domains, IP addresses or CIDR ranges, each optionally with :port ({reason})"),
                ),
            },
        )?;

        // AWS.
        let auth = get_bool("aws_auth", true)?;
        let region = match get("aws_region") {
            None => None,
            Some(v) => {
                let lower = v.to_ascii_lowercase();
                if !lower
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ConfigError::invalid(
                        "aws_region",
                        &v,
                        "a region name of letters, digits and '-', such as us-east-1",
                    ));
                }
                Some(lower)
            }
        };
        let service = match get("aws_service") {
            None => None,
            Some(v) => {
                let lower = v.to_ascii_lowercase();
                if !lower
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
                {
                    return Err(ConfigError::invalid(
                        "aws_service",
                        &v,
                        "a signing service name such as es, aoss, execute-api, logs or firehose",
                    ));
                }
                Some(lower)
            }
        };
        let role_arn = match get("aws_role_arn") {
            None => None,
            Some(v) if is_role_arn(&v) => Some(v),
            Some(v) => {
                return Err(ConfigError::invalid(
                    "aws_role_arn",
                    &v,
                    "an IAM role ARN: arn:<partition>:iam::<12-digit account>:role/<name>",
                ))
            }
        };
        let role_session_name = match get("aws_role_session_name") {
            None => None,
            Some(v)
                if (2..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)) =>
            {
                Some(v)
            }
            Some(v) => {
                return Err(ConfigError::invalid(
                    "aws_role_session_name",
                    &v,
                    "2 to 64 characters of A-Z a-z 0-9 _ + = , . @ -",
                ))
            }
        };
        let sts_endpoint = get("aws_sts_endpoint")
            .map(|v| {
                parse_http_url(
                    "aws_sts_endpoint",
                    &v,
                    "https://sts.us-east-1.amazonaws.com",
                )
            })
            .transpose()?;
        let imds = match get("aws_imds") {
            None => ImdsMode::Auto,
            Some(v) if v.eq_ignore_ascii_case("auto") => ImdsMode::Auto,
            Some(v) => match parse_bool(&v) {
                Some(true) => ImdsMode::On,
                Some(false) => ImdsMode::Off,
                None => return Err(ConfigError::invalid("aws_imds", &v, "auto, on or off")),
            },
        };
        let aws = AwsConfig {
            auth,
            region,
            service,
            profile: get("aws_profile"),
            role_arn,
            external_id: get("aws_external_id"),
            role_session_name,
            sts_endpoint,
            imds,
        };

        Ok(Config {
            endpoint,
            tls,
            timeout,
            connect_timeout,
            body,
            compress,
            headers,
            header_tag,
            max_request_bytes,
            proxy,
            no_proxy,
            aws,
            notes,
        })
    }

    /// One line for the start-up info log: every setting, without secrets (proxy password
    /// redacted, header values and the external ID omitted).
    pub fn redacted_summary(&self) -> String {
        fn opt(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("-")
        }
        fn path(v: &Option<PathBuf>) -> String {
            v.as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string())
        }
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let aws = &self.aws;
        format!(
            "endpoint={} format={} json_date_key={} json_date_format={} log_key={} compress={} \
             headers=[{}] header_tag={} max_request_bytes={} timeout={} connect_timeout={} \
             tls_verify={} tls_ca_file={} tls_crt_file={} tls_key_file={} proxy={} no_proxy={} \
             aws_auth={} aws_region={} aws_service={} aws_profile={} aws_role_arn={} \
             aws_external_id={} aws_role_session_name={} aws_sts_endpoint={} aws_imds={}",
            proxy::redact_url(&self.endpoint),
            self.body.format.name(),
            opt(&self.body.date_key),
            self.body.date_format.name(),
            opt(&self.body.log_key),
            compression_name(self.compress),
            header_names.join(", "),
            opt(&self.header_tag),
            self.max_request_bytes,
            render_duration(self.timeout),
            render_duration(self.connect_timeout),
            on_off(self.tls.verify),
            path(&self.tls.ca_file),
            path(&self.tls.crt_file),
            path(&self.tls.key_file),
            self.proxy
                .as_ref()
                .map_or_else(|| "-".to_string(), proxy::redact_url),
            opt(&self.no_proxy),
            on_off(aws.auth),
            opt(&aws.region),
            opt(&aws.service),
            opt(&aws.profile),
            opt(&aws.role_arn),
            if aws.external_id.is_some() {
                "(set)"
            } else {
                "-"
            },
            opt(&aws.role_session_name),
            aws.sts_endpoint
                .as_ref()
                .map_or_else(|| "-".to_string(), proxy::redact_url),
            match aws.imds {
                ImdsMode::Auto => "auto",
                ImdsMode::On => "on",
                ImdsMode::Off => "off",
            },
        )
    }

    /// Warnings worth one log line each at start-up: TLS verification off, plain `http://` to a
    /// host that is not loopback.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut out = self.notes.clone();
        let host = self.endpoint.host_str().unwrap_or("");
        if self.endpoint.scheme() == "http" && !is_loopback_host(host) {
            out.push(format!(
                "endpoint {} is plain http:// to a host that is not loopback: requests{} cross the network in clear",
                proxy::redact_url(&self.endpoint),
                if self.aws.auth {
                    " and the session token"
                } else {
                    ""
                }
            ));
        }
        if !self.tls.verify && self.endpoint.scheme() == "https" {
            out.push("tls_verify is off: the endpoint's certificate is not checked".to_string());
        }
        out
    }
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let h = h.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("body", &self.body)
            .field("compress", &self.compress)
            .field("headers (names)", &headers)
            .field("header_tag", &self.header_tag)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("proxy", &self.proxy.as_ref().map(proxy::redact_url))
            .field("no_proxy", &self.no_proxy)
            .field("aws", &self.aws)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const EP: &str = "https://search-x.us-east-1.es.amazonaws.com/_bulk";

    /// A case-insensitive lookup over `pairs`, with `endpoint` set unless given.
    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        map.entry("endpoint".to_string())
            .or_insert_with(|| EP.to_string());
        Config::from_lookup(|k| map.get(&k.to_ascii_lowercase()).cloned())
    }

    fn ok(pairs: &[(&str, &str)]) -> Config {
        match parse(pairs) {
            Ok(c) => c,
            Err(e) => panic!("{pairs:?}: {e}"),
        }
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match parse(pairs) {
            Ok(c) => panic!("{pairs:?} accepted: {c:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains('\n'), "{text}");
                text
            }
        }
    }

    fn temp_file(name: &str, content: &str) -> String {
        let dir = std::env::temp_dir().join(format!("flb-sigv4-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, content).expect("temp file");
        path.display().to_string()
    }

    #[test]
    fn properties_are_unique_and_not_core_keys() {
        let mut seen = std::collections::HashSet::new();
        for p in PROPERTIES {
            assert!(seen.insert(p.name), "duplicate {}", p.name);
            assert!(!is_core_key(p.name), "{} is withheld by Fluent Bit", p.name);
            assert!(!p.description.is_empty() && !p.description.contains('\n'));
        }
        assert_eq!(PROPERTIES.len(), 44);
        for key in [
            "match",
            "Match_Regex",
            "alias",
            "log_level",
            "log_suppress_interval",
            "host",
            "port",
            "ipv6",
            "retry_limit",
            "workers",
            "storage.total_limit_size",
            "tls",
            "tls.verify",
            "TLS.ca_file",
            "net.connect_timeout",
            "oauth2",
            "oauth2.token_url",
        ] {
            assert!(is_core_key(key), "{key}");
        }
        for key in ["tls_verify", "timeout", "network", "hostname", "proxy"] {
            assert!(!is_core_key(key), "{key}");
        }
    }

    #[test]
    fn property_defaults_parse_to_the_config_defaults() {
        let with_defaults: Vec<(&str, &str)> = PROPERTIES
            .iter()
            .filter_map(|p| p.default.map(|d| (p.name, d)))
            .collect();
        assert_eq!(ok(&with_defaults), ok(&[]));
    }

    #[test]
    fn defaults() {
        let c = ok(&[]);
        assert_eq!(c.endpoint.as_str(), EP);
        assert_eq!(
            c.tls,
            TlsConfig {
                verify: true,
                ca_file: None,
                crt_file: None,
                key_file: None
            }
        );
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.body, BodyOptions::default());
        assert_eq!(c.body.date_key.as_deref(), Some("date"));
        assert_eq!(c.compress, Compression::None);
        assert!(c.headers.is_empty());
        assert_eq!(c.header_tag, None);
        assert_eq!(c.max_request_bytes, 5 * 1024 * 1024);
        assert_eq!(c.proxy, None);
        assert_eq!(c.no_proxy, None);
        assert_eq!(
            c.aws,
            AwsConfig {
                auth: true,
                region: None,
                service: None,
                profile: None,
                role_arn: None,
                external_id: None,
                role_session_name: None,
                sts_endpoint: None,
                imds: ImdsMode::Auto
            }
        );
    }

    #[test]
    fn empty_and_blank_values_are_unset() {
        let c = ok(&[("format", "  "), ("timeout", ""), ("aws_region", " ")]);
        assert_eq!(c.body.format, Format::JsonLines);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.aws.region, None);
        let c = ok(&[("log_key", "  message "), ("aws_profile", " prod ")]);
        assert_eq!(c.body.log_key.as_deref(), Some("message"));
        assert_eq!(c.aws.profile.as_deref(), Some("prod"));
    }

    #[test]
    fn endpoint() {
        let e = err(&[("endpoint", " ")]);
        assert_eq!(
            e,
            "property 'endpoint' is required: an http:// or https:// URL such as https://search-x.us-east-1.es.amazonaws.com/_bulk"
        );
        let c = ok(&[("endpoint", "http://127.0.0.1:8080/logs?x=1")]);
        assert_eq!(c.endpoint.port(), Some(8080));
        assert_eq!(c.endpoint.path(), "/logs");
        assert_eq!(c.endpoint.query(), Some("x=1"));
        let c = ok(&[("endpoint", "HTTPS://Example.COM")]);
        assert_eq!(c.endpoint.as_str(), "https://example.com/");
        let c = ok(&[("endpoint", "http://[::1]:9/")]);
        assert_eq!(c.endpoint.host_str(), Some("[::1]"));

        let e = err(&[("endpoint", "not a url")]);
        assert!(
            e.starts_with("property 'endpoint' has invalid value 'not a url': expected an http:// or https:// URL"),
            "{e}"
        );
        let e = err(&[("endpoint", "ftp://example.com/")]);
        assert!(e.contains("scheme 'ftp' is not supported"), "{e}");
        let e = err(&[("endpoint", "unix:/var/run/x.sock")]);
        assert!(e.contains("scheme 'unix'"), "{e}");
        let e = err(&[("endpoint", "https://user:hunter2@example.com/")]);
        assert!(e.contains("without user:password@"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(&[("endpoint", "https://user@example.com/")]);
        assert!(e.contains("without user:password@"), "{e}");
        let e = err(&[("endpoint", "https://example.com/#x")]);
        assert!(e.contains("without #fragment"), "{e}");
        let e = err(&[("endpoint", "https://u:hunter2@exa mple.com/")]);
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("on", true),
            ("ON", true),
            ("true", true),
            ("True", true),
            ("yes", true),
            ("YES", true),
            ("1", true),
            ("off", false),
            ("Off", false),
            ("false", false),
            ("FALSE", false),
            ("no", false),
            ("No", false),
            ("0", false),
        ] {
            assert_eq!(ok(&[("tls_verify", v)]).tls.verify, want, "{v}");
            assert_eq!(ok(&[("aws_auth", v)]).aws.auth, want, "{v}");
        }
        assert_eq!(
            err(&[("tls_verify", "maybe")]),
            "property 'tls_verify' has invalid value 'maybe': expected on, off, true, false, yes, no, 1 or 0"
        );
        assert!(err(&[("aws_auth", "2")]).starts_with("property 'aws_auth' has invalid value '2'"));
    }

    #[test]
    fn durations() {
        for (v, want) in [
            ("45", Duration::from_secs(45)),
            ("45s", Duration::from_secs(45)),
            ("45S", Duration::from_secs(45)),
            ("2m", Duration::from_secs(120)),
            ("2M", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1H", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86400)),
            ("500ms", Duration::from_millis(500)),
            ("1500MS", Duration::from_millis(1500)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.25", Duration::from_millis(250)),
            (".5m", Duration::from_secs(30)),
        ] {
            assert_eq!(ok(&[("timeout", v)]).timeout, want, "{v}");
            assert_eq!(ok(&[("connect_timeout", v)]).connect_timeout, want, "{v}");
        }
        for v in [
            "0",
            "0s",
            "0ms",
            "-1",
            "abc",
            "10 s",
            "5x",
            "s",
            "1.2.3",
            "+5",
            "1e3",
            "ms",
            "99999999999999999999d",
        ] {
            let e = err(&[("timeout", v)]);
            assert!(
                e.starts_with(&format!("property 'timeout' has invalid value '{v}': expected a duration greater than 0")),
                "{e}"
            );
            assert!(err(&[("connect_timeout", v)]).contains("'connect_timeout'"));
        }
    }

    #[test]
    fn sizes() {
        for (v, want) in [
            ("1024", 1024),
            ("2000000", 2_000_000),
            ("2k", 2_000),
            ("2K", 2_000),
            ("2KB", 2_000),
            ("2kb", 2_000),
            ("5M", 5_000_000),
            ("5mb", 5_000_000),
            ("1G", 1_000_000_000),
            ("1GB", 1_000_000_000),
            ("5MiB", 5 * 1024 * 1024),
            ("5mib", 5 * 1024 * 1024),
            ("64KiB", 64 * 1024),
            ("1GiB", 1 << 30),
            ("1.5M", 1_500_000),
            ("1.5KiB", 1536),
        ] {
            assert_eq!(
                ok(&[("max_request_bytes", v)]).max_request_bytes,
                want,
                "{v}"
            );
        }
        for v in [
            "1023",
            "1K0",
            "1k",
            "0",
            "false",
            "-5M",
            "5 M",
            "5B",
            "5T",
            "5MB2",
            "M",
            "lots",
            "1KiBB",
            "999999999999999999999999999999G",
        ] {
            let e = err(&[("max_request_bytes", v)]);
            assert!(
                e.starts_with(&format!(
                    "property 'max_request_bytes' has invalid value '{v}': expected a size of at least 1024 bytes"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn format_values() {
        for (v, want) in [
            ("json_lines", Format::JsonLines),
            ("JSON_LINES", Format::JsonLines),
            ("json", Format::Json),
            ("Json", Format::Json),
            ("json_stream", Format::JsonStream),
            ("JSON_Stream", Format::JsonStream),
            ("msgpack", Format::Msgpack),
            ("MsgPack", Format::Msgpack),
        ] {
            assert_eq!(ok(&[("format", v)]).body.format, want, "{v}");
        }
        for v in ["gelf", "otlp_json", "ndjson", "jsonlines"] {
            assert_eq!(
                err(&[("format", v)]),
                format!("property 'format' has invalid value '{v}': expected json_lines, json, json_stream, msgpack or opensearch")
            );
        }
    }

    #[test]
    fn json_date_key_values() {
        assert_eq!(
            ok(&[("json_date_key", "@timestamp")])
                .body
                .date_key
                .as_deref(),
            Some("@timestamp")
        );
        for v in ["false", "FALSE", "off", "Off", "no"] {
            assert_eq!(ok(&[("json_date_key", v)]).body.date_key, None, "{v}");
        }
        // Not booleans for out_http either: kept as key names.
        for v in ["0", "true", "on"] {
            assert_eq!(
                ok(&[("json_date_key", v)]).body.date_key.as_deref(),
                Some(v)
            );
        }
    }

    #[test]
    fn json_date_format_values() {
        for (v, want) in [
            ("double", DateFormat::Double),
            ("DOUBLE", DateFormat::Double),
            ("epoch", DateFormat::Epoch),
            ("Epoch", DateFormat::Epoch),
            ("epoch_ms", DateFormat::EpochMs),
            ("epoch_millis", DateFormat::EpochMs),
            ("EPOCH_MILLISECONDS", DateFormat::EpochMs),
            ("iso8601", DateFormat::Iso8601),
            ("ISO8601", DateFormat::Iso8601),
            ("java_sql_timestamp", DateFormat::JavaSqlTimestamp),
            ("Java_SQL_Timestamp", DateFormat::JavaSqlTimestamp),
        ] {
            assert_eq!(ok(&[("json_date_format", v)]).body.date_format, want, "{v}");
        }
        assert_eq!(
            err(&[("json_date_format", "rfc3339")]),
            "property 'json_date_format' has invalid value 'rfc3339': expected double, epoch, epoch_ms, iso8601 or java_sql_timestamp"
        );
    }

    #[test]
    fn compress_values() {
        for (v, want) in [
            ("none", Compression::None),
            ("NONE", Compression::None),
            ("gzip", Compression::Gzip),
            ("GZip", Compression::Gzip),
            ("zstd", Compression::Zstd),
            ("ZSTD", Compression::Zstd),
        ] {
            assert_eq!(ok(&[("compress", v)]).compress, want, "{v}");
        }
        assert_eq!(
            err(&[("compress", "snappy")]),
            "property 'compress' has invalid value 'snappy': expected none, gzip or zstd"
        );
    }

    #[test]
    fn aws_imds_values() {
        for (v, want) in [
            ("auto", ImdsMode::Auto),
            ("AUTO", ImdsMode::Auto),
            ("on", ImdsMode::On),
            ("On", ImdsMode::On),
            ("true", ImdsMode::On),
            ("off", ImdsMode::Off),
            ("OFF", ImdsMode::Off),
            ("false", ImdsMode::Off),
        ] {
            assert_eq!(ok(&[("aws_imds", v)]).aws.imds, want, "{v}");
        }
        assert_eq!(
            err(&[("aws_imds", "sometimes")]),
            "property 'aws_imds' has invalid value 'sometimes': expected auto, on or off"
        );
    }

    #[test]
    fn log_key_and_strings() {
        let c = ok(&[
            ("log_key", "log"),
            ("aws_profile", "p1"),
            ("aws_external_id", "ext-123"),
        ]);
        assert_eq!(c.body.log_key.as_deref(), Some("log"));
        assert_eq!(c.aws.profile.as_deref(), Some("p1"));
        assert_eq!(c.aws.external_id.as_deref(), Some("ext-123"));
    }

    #[test]
    fn headers_parsing() {
        let c = ok(&[("headers", "X-Team: logs; X-Env:prod ;; Accept: */*;")]);
        assert_eq!(
            c.headers,
            vec![
                ("X-Team".to_string(), "logs".to_string()),
                ("X-Env".to_string(), "prod".to_string()),
                ("Accept".to_string(), "*/*".to_string()),
            ]
        );
        let c = ok(&[(
            "headers",
            r"X-List: a\;b\;c; X-Path: C:\dir; X-Url: http://h:1/",
        )]);
        assert_eq!(
            c.headers,
            vec![
                ("X-List".to_string(), "a;b;c".to_string()),
                ("X-Path".to_string(), r"C:\dir".to_string()),
                ("X-Url".to_string(), "http://h:1/".to_string()),
            ]
        );
        let c = ok(&[("headers", "X-Empty:")]);
        assert_eq!(c.headers, vec![("X-Empty".to_string(), String::new())]);
        let c = ok(&[("headers", "X-Utf8: café\twith tab")]);
        assert_eq!(c.headers[0].1, "café\twith tab");

        assert_eq!(
            err(&[("headers", "X-A: 1; no colon here")]),
            "property 'headers' has invalid value 'no colon here': expected 'Name: value' pairs separated by ';' (a literal ';' written '\\;')"
        );
        for bad in ["X Bad: 1", "X(Bad): 1", ": 1", "Héader: 1", "X\"y: 1"] {
            let e = err(&[("headers", bad)]);
            assert!(
                e.contains("expected a header name of letters, digits"),
                "{e}"
            );
        }
        let e = err(&[("headers", "X-A: line1\rline2")]);
        assert_eq!(
            e,
            "property 'headers' has invalid value 'X-A': expected a header value without CR, LF or other control characters"
        );
        assert!(err(&[("headers", "X-A: a\nb")]).contains("without CR, LF"));
        for reserved in [
            "Host",
            "host",
            "Authorization",
            "Content-Length",
            "content-encoding",
            "Transfer-Encoding",
            "Proxy-Authorization",
            "X-Amz-Date",
            "x-amz-security-token",
            "X-AMZ-Content-Sha256",
        ] {
            let e = err(&[("headers", &format!("X-Ok: 1; {reserved}: v"))]);
            assert!(
                e.starts_with(&format!("property 'headers' has invalid value '{reserved}': expected a header other than Host, Authorization")),
                "{e}"
            );
        }
    }

    #[test]
    fn header_tag_values() {
        assert_eq!(
            ok(&[("header_tag", "FLUENT-TAG")]).header_tag.as_deref(),
            Some("FLUENT-TAG")
        );
        assert!(err(&[("header_tag", "bad name")]).starts_with(
            "property 'header_tag' has invalid value 'bad name': expected a header name"
        ));
        assert!(err(&[("header_tag", "X-Amz-Tag")]).starts_with(
            "property 'header_tag' has invalid value 'X-Amz-Tag': expected a header other than"
        ));
    }

    #[test]
    fn proxy_values() {
        let c = ok(&[("proxy", "http://proxy.corp:3128")]);
        assert_eq!(
            c.proxy.as_ref().map(Url::as_str),
            Some("http://proxy.corp:3128/")
        );
        let c = ok(&[("proxy", "proxy.corp:3128")]);
        assert_eq!(
            c.proxy.as_ref().map(Url::as_str),
            Some("http://proxy.corp:3128/")
        );
        let c = ok(&[("proxy", "https://u:p@proxy:443")]);
        let p = c.proxy.as_ref().expect("proxy");
        assert_eq!(
            (p.scheme(), p.username(), p.password()),
            ("https", "u", Some("p"))
        );
        for bad in [
            "socks5://proxy:1080",
            "http://",
            "http://proxy:notaport",
            "http://[x",
        ] {
            let e = err(&[("proxy", bad)]);
            assert!(
                e.starts_with("property 'proxy' has invalid value")
                    && e.contains("expected http://[user:pass@]host:port"),
                "{e}"
            );
        }
    }

    #[test]
    fn proxy_password_never_echoed() {
        const PW: &str = "T0pS3cret";
        for bad in [
            format!("socks5://alice:{PW}@proxy:1080"),
            format!("http://alice:{PW}@proxy:notaport"),
            format!("alice:{PW}@proxy:99999"),
            format!("http://alice:{PW}/x@proxy:1"),
        ] {
            let e = err(&[("proxy", &bad)]);
            assert!(!e.contains(PW), "{e}");
            assert!(e.contains("alice:***@"), "{e}");
        }
        let c = ok(&[
            ("proxy", &format!("http://alice:{PW}@proxy:3128")),
            ("headers", "X-Api-Key: k3y-value"),
            ("aws_external_id", "ext-secret"),
        ]);
        let summary = c.redacted_summary();
        assert!(!summary.contains(PW), "{summary}");
        assert!(
            summary.contains("proxy=http://alice:***@proxy:3128"),
            "{summary}"
        );
        assert!(!summary.contains("k3y-value"), "{summary}");
        assert!(!summary.contains("ext-secret"), "{summary}");
        assert!(!summary.contains('\n'));
        let debug = format!("{c:?}");
        assert!(!debug.contains(PW), "{debug}");
        assert!(!debug.contains("k3y-value"), "{debug}");
    }

    #[test]
    fn no_proxy_values() {
        let c = ok(&[("no_proxy", ".corp, 10.0.0.0/8, [::1]:8080")]);
        assert_eq!(c.no_proxy.as_deref(), Some(".corp, 10.0.0.0/8, [::1]:8080"));
        let e = err(&[("no_proxy", "a.com, 10.0.0.0/33")]);
        assert!(
            e.starts_with(
                "property 'no_proxy' has invalid value '10.0.0.0/33': expected '*', host names"
            ),
            "{e}"
        );
        assert!(err(&[("no_proxy", "host:port")]).contains("invalid port 'port'"));
    }

    #[test]
    fn aws_values() {
        let c = ok(&[
            ("aws_region", "US-West-2"),
            ("aws_service", "Execute-API"),
            (
                "aws_role_arn",
                "arn:aws:iam::123456789012:role/path/to/My+Role=,.@_-",
            ),
            ("aws_role_session_name", "fluent-bit@host_1"),
            ("aws_sts_endpoint", "https://sts.us-west-2.amazonaws.com"),
        ]);
        assert_eq!(c.aws.region.as_deref(), Some("us-west-2"));
        assert_eq!(c.aws.service.as_deref(), Some("execute-api"));
        assert_eq!(
            c.aws.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/path/to/My+Role=,.@_-")
        );
        assert_eq!(
            c.aws.role_session_name.as_deref(),
            Some("fluent-bit@host_1")
        );
        assert_eq!(
            c.aws.sts_endpoint.as_ref().map(Url::as_str),
            Some("https://sts.us-west-2.amazonaws.com/")
        );
        for arn in [
            "arn:aws-cn:iam::123456789012:role/r",
            "arn:aws-us-gov:iam::123456789012:role/r",
        ] {
            assert!(ok(&[("aws_role_arn", arn)]).aws.role_arn.is_some());
        }

        assert!(err(&[("aws_region", "us_east 1")]).starts_with(
            "property 'aws_region' has invalid value 'us_east 1': expected a region name"
        ));
        assert!(err(&[("aws_service", "my service")])
            .starts_with("property 'aws_service' has invalid value 'my service'"));
        for arn in [
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::1234567890123:role/r",
            "arn:aws:iam::12345678901a:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/a b",
            "arn:aws:sts::123456789012:role/r",
            "arn:aws:iam:us-east-1:123456789012:role/r",
            "arn::iam::123456789012:role/r",
            "arn:azure:iam::123456789012:role/r",
            "role/r",
            "123456789012",
        ] {
            assert_eq!(
                err(&[("aws_role_arn", arn)]),
                format!("property 'aws_role_arn' has invalid value '{arn}': expected an IAM role ARN: arn:<partition>:iam::<12-digit account>:role/<name>")
            );
        }
        for name in ["a", "has space", &"x".repeat(65), "semi;colon"] {
            assert!(err(&[("aws_role_session_name", name)])
                .starts_with("property 'aws_role_session_name' has invalid value"));
        }
        assert!(err(&[("aws_sts_endpoint", "sts.amazonaws.com")])
            .starts_with("property 'aws_sts_endpoint' has invalid value 'sts.amazonaws.com'"));
        assert!(err(&[("aws_sts_endpoint", "ftp://sts.amazonaws.com")]).contains("scheme 'ftp'"));
    }

    #[test]
    fn tls_files() {
        let ca = temp_file("ca.pem", "ca");
        let crt = temp_file("crt.pem", "crt");
        let key = temp_file("key.pem", "key");
        let c = ok(&[
            ("tls_ca_file", &ca),
            ("tls_crt_file", &crt),
            ("tls_key_file", &key),
        ]);
        assert_eq!(c.tls.ca_file, Some(PathBuf::from(&ca)));
        assert_eq!(c.tls.crt_file, Some(PathBuf::from(&crt)));
        assert_eq!(c.tls.key_file, Some(PathBuf::from(&key)));

        let missing = "/nonexistent/flb-sigv4/ca.pem";
        let e = err(&[("tls_ca_file", missing)]);
        assert!(
            e.starts_with(&format!(
                "property 'tls_ca_file' has invalid value '{missing}': expected a readable file ("
            )),
            "{e}"
        );
        let dir = std::env::temp_dir().display().to_string();
        assert!(err(&[("tls_ca_file", &dir)]).contains("not a regular file"));
        let e = err(&[("tls_crt_file", &crt), ("tls_key_file", missing)]);
        assert!(
            e.starts_with("property 'tls_key_file' has invalid value '/nonexistent"),
            "{e}"
        );
        let e = err(&[("tls_crt_file", &crt)]);
        assert!(
            e.starts_with(&format!(
                "property 'tls_crt_file' has invalid value '{crt}'"
            )) && e.contains("tls_key_file"),
            "{e}"
        );
        let e = err(&[("tls_key_file", &key)]);
        assert!(
            e.starts_with(&format!(
                "property 'tls_key_file' has invalid value '{key}'"
            )) && e.contains("tls_crt_file"),
            "{e}"
        );
    }

    #[test]
    fn errors_are_one_line() {
        let e = err(&[("format", "json\nlines")]);
        assert_eq!(
            e,
            "property 'format' has invalid value 'json\\nlines': expected json_lines, json, json_stream, msgpack or opensearch"
        );
        let long = "x".repeat(1000);
        assert!(err(&[("format", &long)]).len() < 400);
    }

    #[test]
    fn summary_and_warnings() {
        let c = ok(&[]);
        let s = c.redacted_summary();
        assert!(
            s.starts_with(&format!(
                "endpoint={EP} format=json_lines json_date_key=date"
            )),
            "{s}"
        );
        assert!(
            s.contains("max_request_bytes=5242880 timeout=30s connect_timeout=10s"),
            "{s}"
        );
        assert!(s.ends_with("aws_imds=auto"), "{s}");
        assert!(c.startup_warnings().is_empty());
        let c = ok(&[("connect_timeout", "1500ms")]);
        assert!(c.redacted_summary().contains("connect_timeout=1500ms"));

        let c = ok(&[
            ("endpoint", "http://logs.example.com/"),
            ("tls_verify", "off"),
        ]);
        let w = c.startup_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("plain http://"), "{w:?}");
        for loopback in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]/",
        ] {
            assert!(ok(&[("endpoint", loopback)]).startup_warnings().is_empty());
        }
        let c = ok(&[("tls_verify", "off")]);
        assert_eq!(c.startup_warnings().len(), 1);
    }

    #[test]
    fn lookup_is_by_property_name() {
        let mut asked = Vec::new();
        let cell = std::cell::RefCell::new(&mut asked);
        let _ = Config::from_lookup(|k| {
            cell.borrow_mut().push(k.to_string());
            (k == "endpoint").then(|| EP.to_string())
        });
        // and the properties of format opensearch
        let _ = Config::from_lookup(|k| {
            cell.borrow_mut().push(k.to_string());
            match k {
                "endpoint" => Some("https://search-x.us-east-1.es.amazonaws.com/_bulk".into()),
                "format" => Some("opensearch".into()),
                "logstash_format" | "include_tag_key" => Some("on".into()),
                _ => None,
            }
        });
        for p in PROPERTIES {
            assert!(asked.contains(&p.name.to_string()), "{} never read", p.name);
        }
        for k in &asked {
            assert!(
                PROPERTIES.iter().any(|p| p.name == k)
                    || crate::opensearch::settings::IGNORED_KEYS.contains(&k.as_str()),
                "{k} not in PROPERTIES"
            );
        }
    }
}

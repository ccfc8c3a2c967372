//! Typed `[OUTPUT]` configuration, parsed once in init from a property lookup, testable without
//! Fluent Bit. Every property is declared once in [`PROPERTIES`]; README's reference is checked
//! against that table by a test.

mod foreign;
mod headers;
mod properties;
mod values;

pub use foreign::{ForeignKey, Instead, FOREIGN_KEYS};
pub use properties::{is_core_key, Property, CORE_KEYS, CORE_KEY_PREFIXES, PROPERTIES};

use crate::event::{BodyOptions, Compression, DateFormat, Format};
use crate::http::proxy::{self, ProxyError, ProxyResolver};
use headers::{check_header_name, parse_headers};
use reqwest::Url;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use values::{
    check_readable_file, is_role_arn, parse_bool, parse_duration, parse_http_url, parse_size,
    render_duration,
};

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
    /// Start-up warnings found while reading the properties (out_opensearch keys ignored…).
    pub notes: Vec<String>,
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
    /// Keys of other outputs (out_http, out_opensearch…) found set; each gets a start-up warning.
    pub foreign_keys: Vec<&'static ForeignKey>,
}

/// Every key the plugin asks Fluent Bit for: its properties, then the foreign keys it warns
/// about (the plugin sees only keys it asks for by name).
pub fn lookup_keys() -> impl Iterator<Item = &'static str> {
    PROPERTIES
        .iter()
        .map(|p| p.name)
        .chain(FOREIGN_KEYS.iter().map(|k| k.name))
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
    crate::log::one_line(text, 256)
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

/// `compress_level` applied to the codec `compress` chose; with `compress none` it has nothing
/// to apply to, which is noted rather than refused (a config may switch compression off alone).
fn with_level(
    c: Compression,
    v: &str,
    notes: &mut Vec<String>,
) -> Result<Compression, ConfigError> {
    use crate::event::compress::{GZIP_LEVELS, ZSTD_LEVELS};
    let n = v.trim().parse::<i32>().ok();
    let invalid = |codec: &str, (lo, hi): (i32, i32)| {
        ConfigError::invalid(
            "compress_level",
            v,
            format!("{lo}-{hi} with compress {codec}"),
        )
    };
    Ok(match c {
        Compression::None => {
            notes.push(format!(
                "compress_level {} ignored: compress is none",
                v.trim()
            ));
            c
        }
        Compression::Gzip(_) => {
            let range = (*GZIP_LEVELS.start() as i32, *GZIP_LEVELS.end() as i32);
            match n.and_then(|n| u32::try_from(n).ok()) {
                Some(n) if GZIP_LEVELS.contains(&n) => Compression::Gzip(n),
                _ => return Err(invalid("gzip", range)),
            }
        }
        Compression::Zstd(_) => match n {
            Some(n) if ZSTD_LEVELS.contains(&n) => Compression::Zstd(n),
            _ => return Err(invalid("zstd", (*ZSTD_LEVELS.start(), *ZSTD_LEVELS.end()))),
        },
    })
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip(_) => "gzip",
        Compression::Zstd(_) => "zstd",
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
                "gzip" => Compression::gzip(),
                "zstd" => Compression::zstd(),
                _ => return Err(ConfigError::invalid("compress", &v, "none, gzip or zstd")),
            },
        };
        let compress = match get("compress_level") {
            None => compress,
            Some(v) => with_level(compress, &v, &mut notes)?,
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
            foreign_keys: foreign::set_keys(get),
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
             compress_level={} headers=[{}] header_tag={} max_request_bytes={} timeout={} connect_timeout={} \
             tls_verify={} tls_ca_file={} tls_crt_file={} tls_key_file={} proxy={} no_proxy={} \
             aws_auth={} aws_region={} aws_service={} aws_profile={} aws_role_arn={} \
             aws_external_id={} aws_role_session_name={} aws_sts_endpoint={} aws_imds={}",
            proxy::redact_url(&self.endpoint),
            self.body.format.name(),
            opt(&self.body.date_key),
            self.body.date_format.name(),
            opt(&self.body.log_key),
            compression_name(self.compress),
            self.compress
                .level()
                .map_or_else(|| "-".to_string(), |l| l.to_string()),
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
        out.extend(self.foreign_keys.iter().map(|key| foreign::warning(key)));
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
            .field(
                "foreign_keys",
                &self.foreign_keys.iter().map(|k| k.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;

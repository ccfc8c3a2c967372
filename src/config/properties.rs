//! The property table: every `[OUTPUT]` property once, and the keys Fluent Bit's core withholds.

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
    prop("compress_level", None, "Compression level: 1-9 with gzip (default 6; levels 3-6 index every match, see Performance), 1-19 with zstd (default 3); higher is smaller and slower. Defaults chosen by measurement."),
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
    prop("time_key_nanos", Some("off"), "format opensearch: accepted; ISO dates (the default) always carry nanoseconds (nine fraction digits, which OpenSearch date fields read)."),
];

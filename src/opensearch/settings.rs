//! The `[OUTPUT]` properties of `format opensearch`, with out_opensearch's names, read and
//! validated at init (DESIGN §2, §12).

use super::strftime::{self, BadConversion};
use super::{BulkOptions, DatePattern, IndexName, KeyPath, WriteOperation, KEY_PATH_ACCEPTED};
use crate::config::ConfigError;
use crate::event::DateFormat;

/// Everything `format opensearch` sets: the bulk options, the date key/format defaults and the
/// start-up warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSettings {
    pub bulk: BulkOptions,
    /// `Some(None)`: json_date_key false; `None`: unset (→ `@timestamp`).
    pub date_key: Option<String>,
    pub date_format: DateFormat,
    pub warnings: Vec<String>,
}

fn invalid(property: &'static str, value: &str, accepted: impl Into<String>) -> ConfigError {
    ConfigError::invalid(property, value, accepted)
}

fn bool_of(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok(true),
            "off" | "false" | "no" | "0" => Ok(false),
            _ => Err(invalid(name, &v, "on, off, true, false, yes, no, 1 or 0")),
        },
    }
}

fn pattern(name: &'static str, v: &str) -> Result<DatePattern, ConfigError> {
    DatePattern::parse(v).map_err(|BadConversion(c)| {
        let what = match c {
            Some(c) => format!("%{c} is not understood"),
            None => "a lone % at the end".to_string(),
        };
        invalid(name, v, format!("{} ({what})", strftime::ACCEPTED))
    })
}

fn key_path(name: &'static str, v: &str) -> Result<KeyPath, ConfigError> {
    KeyPath::parse(v).ok_or_else(|| invalid(name, v, KEY_PATH_ACCEPTED))
}

/// Reads the properties of `format opensearch`. `get` returns trimmed, non-empty values.
/// `date_key`/`date_format` are the values of `json_date_key`/`json_date_format` when set
/// (already validated by the caller): they win over `time_key`/`time_key_format`.
pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    date_key: Option<Option<String>>,
    date_format: Option<DateFormat>,
) -> Result<BulkSettings, ConfigError> {
    let mut warnings = Vec::new();
    let operation = match get("write_operation") {
        None => WriteOperation::Create,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "create" => WriteOperation::Create,
            "index" => WriteOperation::Index,
            "update" => WriteOperation::Update,
            "upsert" => WriteOperation::Upsert,
            _ => {
                return Err(invalid(
                    "write_operation",
                    &v,
                    "create, index, update or upsert",
                ))
            }
        },
    };
    let generate_id = bool_of(get, "generate_id", false)?;
    let id_key = get("id_key").map(|v| key_path("id_key", &v)).transpose()?;
    if operation.needs_id() && id_key.is_none() && !generate_id {
        return Err(invalid(
            "write_operation",
            operation_name(operation),
            "create or index; update and upsert address documents by _id, so they need id_key or generate_id on",
        ));
    }
    let retry_on_conflict = match get("retry_on_conflict") {
        None => 3,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n <= 1000 => n,
            _ => {
                return Err(invalid(
                    "retry_on_conflict",
                    &v,
                    "an integer from 0 to 1000",
                ))
            }
        },
    };
    // read and checked whichever is used, so that a typo fails init either way
    let fixed = pattern(
        "index",
        &get("index").unwrap_or_else(|| "fluent-bit".into()),
    )?;
    let index = if bool_of(get, "logstash_format", false)? {
        let separator = get("logstash_prefix_separator").unwrap_or_else(|| "-".into());
        IndexName::Logstash {
            prefix: get("logstash_prefix").unwrap_or_else(|| "logstash".into()),
            prefix_key: get("logstash_prefix_key")
                .map(|v| key_path("logstash_prefix_key", &v))
                .transpose()?,
            separator,
            date: pattern(
                "logstash_dateformat",
                &get("logstash_dateformat").unwrap_or_else(|| "%Y.%m.%d".into()),
            )?,
            current_time: bool_of(get, "current_time_index", false)?,
        }
    } else {
        IndexName::Fixed(fixed)
    };
    let tag_key = if bool_of(get, "include_tag_key", false)? {
        Some(get("tag_key").unwrap_or_else(|| "flb-key".into()))
    } else {
        None
    };
    if !bool_of(get, "suppress_type_name", true)? {
        warnings.push(
            "suppress_type_name off is ignored: _type is never sent (OpenSearch 2 refuses it)"
                .to_string(),
        );
    }
    bool_of(get, "time_key_nanos", false)?;

    let date_key = match date_key {
        Some(k) => k,
        None => Some(get("time_key").unwrap_or_else(|| "@timestamp".into())),
    };
    let date_format = match date_format {
        Some(f) => f,
        None => match get("time_key_format").as_deref() {
            None | Some("%Y-%m-%dT%H:%M:%S") | Some("%FT%T") => DateFormat::Iso8601,
            Some("%Y-%m-%d %H:%M:%S") | Some("%F %T") => DateFormat::JavaSqlTimestamp,
            Some(v) => {
                return Err(invalid(
                    "time_key_format",
                    v,
                    "%Y-%m-%dT%H:%M:%S (iso8601) or %Y-%m-%d %H:%M:%S (java_sql_timestamp); or set json_date_format",
                ))
            }
        },
    };
    Ok(BulkSettings {
        bulk: BulkOptions {
            operation,
            index,
            generate_id,
            id_key,
            replace_dots: bool_of(get, "replace_dots", false)?,
            tag_key,
            retry_on_conflict,
        },
        date_key,
        date_format,
        warnings,
    })
}

fn operation_name(op: WriteOperation) -> &'static str {
    match op {
        WriteOperation::Create => "create",
        WriteOperation::Index => "index",
        WriteOperation::Update => "update",
        WriteOperation::Upsert => "upsert",
    }
}

/// With format opensearch the endpoint must be a `_bulk` URL.
pub fn check_endpoint(endpoint: &reqwest::Url) -> Result<(), ConfigError> {
    if endpoint.path().ends_with("/_bulk") {
        return Ok(());
    }
    let mut fixed = endpoint.clone();
    let path = format!("{}/_bulk", endpoint.path().trim_end_matches('/'));
    fixed.set_path(&path);
    Err(invalid(
        "endpoint",
        &crate::http::proxy::redact_url(endpoint),
        format!(
            "with format opensearch, a URL whose path ends in /_bulk (OpenSearch's bulk API), e.g. {fixed}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::Format;

    const BULK: &str = "https://search-x.us-east-1.es.amazonaws.com/_bulk";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    }

    fn os(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut pairs = vec![("endpoint", BULK), ("format", "opensearch")];
        pairs.extend_from_slice(extra);
        config(&pairs)
    }

    fn err(extra: &[(&str, &str)]) -> String {
        os(extra).expect_err("refused").to_string()
    }

    #[test]
    fn defaults_follow_out_opensearch() {
        let c = os(&[]).expect("valid");
        assert_eq!(c.body.format, Format::OpenSearch);
        assert_eq!(c.body.date_key.as_deref(), Some("@timestamp"));
        assert_eq!(c.body.date_format, DateFormat::Iso8601);
        assert_eq!(c.body.bulk, Some(BulkOptions::default()));
        assert!(c.startup_warnings().is_empty());
        assert_eq!(Format::OpenSearch.content_type(), "application/x-ndjson");
    }

    #[test]
    fn every_property_is_read() {
        let c = os(&[
            ("logstash_format", "on"),
            ("logstash_prefix", "app"),
            ("logstash_prefix_key", "$kubernetes['namespace_name']"),
            ("logstash_prefix_separator", "_"),
            ("logstash_dateformat", "%Y-%m"),
            ("current_time_index", "yes"),
            ("write_operation", "UPSERT"),
            ("id_key", "request_id"),
            ("retry_on_conflict", "7"),
            ("replace_dots", "on"),
            ("include_tag_key", "true"),
            ("tag_key", "tag"),
            ("suppress_type_name", "on"),
            ("time_key", "ts"),
            ("time_key_format", "%Y-%m-%d %H:%M:%S"),
            ("time_key_nanos", "on"),
        ])
        .expect("valid");
        let b = c.body.bulk.expect("bulk");
        assert_eq!(b.operation, WriteOperation::Upsert);
        assert_eq!(
            b.index,
            IndexName::Logstash {
                prefix: "app".into(),
                prefix_key: KeyPath::parse("$kubernetes['namespace_name']"),
                separator: "_".into(),
                date: DatePattern::parse("%Y-%m").expect("p"),
                current_time: true,
            }
        );
        assert_eq!(b.id_key, KeyPath::parse("request_id"));
        assert_eq!(b.retry_on_conflict, 7);
        assert!(b.replace_dots && !b.generate_id);
        assert_eq!(b.tag_key.as_deref(), Some("tag"));
        assert_eq!(c.body.date_key.as_deref(), Some("ts"));
        assert_eq!(c.body.date_format, DateFormat::JavaSqlTimestamp);
        // json_date_* win over time_key*
        let c = os(&[
            ("time_key", "ts"),
            ("json_date_key", "when"),
            ("time_key_format", "%Y-%m-%d %H:%M:%S"),
            ("json_date_format", "epoch"),
        ])
        .expect("valid");
        assert_eq!(c.body.date_key.as_deref(), Some("when"));
        assert_eq!(c.body.date_format, DateFormat::Epoch);
        let c = os(&[("json_date_key", "off")]).expect("valid");
        assert_eq!(c.body.date_key, None);
        // the other formats keep their defaults
        let c = config(&[("endpoint", "http://127.0.0.1/x"), ("index", "ignored")]).expect("ok");
        assert_eq!(c.body.date_key.as_deref(), Some("date"));
        assert_eq!(c.body.bulk, None);
    }

    #[test]
    fn bad_values_fail_init_naming_property_value_and_what_is_accepted() {
        let e = config(&[
            (
                "endpoint",
                "https://search-x.us-east-1.es.amazonaws.com/logs/",
            ),
            ("format", "opensearch"),
        ])
        .expect_err("refused")
        .to_string();
        assert!(e.contains("'endpoint'"), "{e}");
        assert!(
            e.contains("e.g. https://search-x.us-east-1.es.amazonaws.com/logs/_bulk"),
            "{e}"
        );
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                &[("write_operation", "delete")],
                &[
                    "'write_operation'",
                    "'delete'",
                    "create, index, update or upsert",
                ],
            ),
            (
                &[("write_operation", "update")],
                &["'write_operation'", "'update'", "id_key or generate_id"],
            ),
            (
                &[("write_operation", "upsert")],
                &["'upsert'", "id_key or generate_id"],
            ),
            (
                &[("generate_id", "maybe")],
                &["'generate_id'", "'maybe'", "on, off"],
            ),
            (
                &[("retry_on_conflict", "-1")],
                &["'retry_on_conflict'", "0 to 1000"],
            ),
            (
                &[("logstash_format", "on"), ("logstash_dateformat", "%Y.%Q")],
                &["'logstash_dateformat'", "%Q is not understood", "%Y"],
            ),
            (&[("index", "logs-%")], &["'index'", "lone %"]),
            (
                &[("logstash_format", "on"), ("logstash_prefix_key", "$a['b'")],
                &["'logstash_prefix_key'", "record accessor"],
            ),
            (&[("id_key", "$")], &["'id_key'", "record accessor"]),
            (
                &[("time_key_format", "%s")],
                &["'time_key_format'", "iso8601"],
            ),
            (
                &[("log_key", "log")],
                &["'log_key'", "no log_key", "format opensearch"],
            ),
            (&[("replace_dots", "2")], &["'replace_dots'"]),
        ];
        for (extra, needles) in cases {
            let e = err(extra);
            for n in *needles {
                assert!(e.contains(n), "{extra:?}: {e}");
            }
        }
        // update with generate_id or id_key is fine
        os(&[("write_operation", "update"), ("generate_id", "on")]).expect("valid");
        os(&[("write_operation", "update"), ("id_key", "id")]).expect("valid");
    }

    #[test]
    fn out_opensearch_keys_without_meaning_are_named_in_a_warning() {
        // The general table of copied keys (config::FOREIGN_KEYS) names them, once each.
        let c = os(&[
            ("pipeline", "p"),
            ("type", "_doc"),
            ("trace_error", "on"),
            ("suppress_type_name", "off"),
        ])
        .expect("valid");
        let w = c.startup_warnings().join("\n");
        for key in ["'pipeline'", "'type'", "'trace_error'"] {
            assert_eq!(w.matches(key).count(), 1, "{key}: {w}");
        }
        assert!(w.contains("?pipeline="), "{w}");
        assert!(w.contains("suppress_type_name off is ignored"), "{w}");
    }
}

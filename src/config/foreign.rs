//! Keys of other Fluent Bit outputs (`out_http`, `out_opensearch`, `out_es`, the AWS outputs) that
//! users copy into a `sigv4_http` section. The plugin only sees a key it asks for by name, so
//! these are looked up at init too, and each one that is set gets one start-up warning naming
//! what to use instead. Keys the core withholds (DESIGN §1) never reach the plugin and are not
//! listed; keys `sigv4_http` supports under the same name are not foreign.

/// What to use instead of a foreign key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instead {
    /// A `sigv4_http` property does the job; `how` says how, briefly.
    Property {
        name: &'static str,
        how: &'static str,
    },
    /// Nothing here does the job; the text says why or what happens instead.
    Unsupported(&'static str),
}

/// One foreign key: its name (lowercase; Fluent Bit's look-up is case-insensitive), the
/// plugins it comes from and what to use instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: &'static str,
    pub from: &'static str,
    pub instead: Instead,
}

const fn use_property(
    name: &'static str,
    from: &'static str,
    property: &'static str,
    how: &'static str,
) -> ForeignKey {
    ForeignKey {
        name,
        from,
        instead: Instead::Property {
            name: property,
            how,
        },
    }
}

const fn unsupported(name: &'static str, from: &'static str, why: &'static str) -> ForeignKey {
    ForeignKey {
        name,
        from,
        instead: Instead::Unsupported(why),
    }
}

const HTTP: &str = "out_http";
const SEARCH: &str = "out_opensearch/out_es";
const ES: &str = "out_es";
const AWS_OUTPUTS: &str = "out_cloudwatch_logs/out_kinesis_firehose";
const BASIC_AUTH: &str =
    "basic authentication is not supported; requests are signed with AWS SigV4 (aws_auth)";
const TRACE: &str =
    "a failed request is logged with its status and the first 512 bytes of the response body";
const GELF: &str = "format gelf is not supported";

/// Every foreign key, once. The `format opensearch` names of out_opensearch (`index`,
/// `logstash_*`, `time_key*`, `write_operation`…) are not here: they are (to be) supported.
pub static FOREIGN_KEYS: &[ForeignKey] = &[
    // out_http
    use_property(
        "uri",
        HTTP,
        "endpoint",
        "the endpoint URL's path and query are the request target",
    ),
    use_property(
        "header",
        HTTP,
        "headers",
        "one line of 'Name: value' pairs separated by ';'",
    ),
    unsupported("http_user", "out_http/out_opensearch/out_es", BASIC_AUTH),
    unsupported("http_passwd", "out_http/out_opensearch/out_es", BASIC_AUTH),
    unsupported("http_method", HTTP, "requests are always POST"),
    unsupported(
        "allow_duplicated_headers",
        HTTP,
        "not needed: every pair listed in 'headers' is sent",
    ),
    unsupported("log_response_payload", HTTP, TRACE),
    use_property(
        "http.response_timeout",
        HTTP,
        "timeout",
        "it limits the whole request",
    ),
    use_property(
        "http.read_idle_timeout",
        HTTP,
        "timeout",
        "it limits the whole request",
    ),
    unsupported("gelf_timestamp_key", HTTP, GELF),
    unsupported("gelf_host_key", HTTP, GELF),
    unsupported("gelf_short_message_key", HTTP, GELF),
    unsupported("gelf_full_message_key", HTTP, GELF),
    unsupported("gelf_level_key", HTTP, GELF),
    use_property(
        "body_key",
        HTTP,
        "log_key",
        "it ships only that field of each record",
    ),
    unsupported(
        "headers_key",
        HTTP,
        "per-record headers are not supported; 'headers' sets fixed ones",
    ),
    // out_opensearch and out_es
    unsupported(
        "type",
        SEARCH,
        "no _type is ever sent (types are gone since OpenSearch 2 and Elasticsearch 8)",
    ),
    use_property(
        "aws_service_name",
        SEARCH,
        "aws_service",
        "es, or aoss for OpenSearch Serverless",
    ),
    use_property(
        "path",
        SEARCH,
        "endpoint",
        "put the path in the endpoint URL, e.g. https://host/_bulk",
    ),
    use_property(
        "pipeline",
        SEARCH,
        "endpoint",
        "add ?pipeline=NAME to the endpoint URL's query",
    ),
    unsupported(
        "buffer_size",
        SEARCH,
        "not needed: the whole response body is read",
    ),
    unsupported("trace_output", SEARCH, TRACE),
    unsupported("trace_error", SEARCH, TRACE),
    unsupported("http_api_key", ES, BASIC_AUTH),
    unsupported(
        "cloud_id",
        ES,
        "Elastic Cloud is not supported; set endpoint to the deployment's URL",
    ),
    unsupported("cloud_auth", ES, BASIC_AUTH),
    unsupported(
        "upstream",
        ES,
        "one endpoint per output; use several [OUTPUT] sections",
    ),
    // The AWS outputs' names without the aws_ prefix.
    use_property("region", AWS_OUTPUTS, "aws_region", "the signing region"),
    use_property(
        "role_arn",
        AWS_OUTPUTS,
        "aws_role_arn",
        "the role to assume",
    ),
    use_property(
        "sts_endpoint",
        AWS_OUTPUTS,
        "aws_sts_endpoint",
        "the STS endpoint URL",
    ),
    use_property(
        "external_id",
        AWS_OUTPUTS,
        "aws_external_id",
        "the AssumeRole external ID",
    ),
    use_property(
        "profile",
        AWS_OUTPUTS,
        "aws_profile",
        "the shared-config profile",
    ),
    use_property("compression", AWS_OUTPUTS, "compress", "none, gzip or zstd"),
];

/// The start-up warning for a foreign key that is set.
pub fn warning(key: &ForeignKey) -> String {
    let head = format!(
        "property '{}' ({} setting) is not a sigv4_http property and is ignored",
        key.name, key.from
    );
    match key.instead {
        Instead::Property { name, how } => format!("{head}: use '{name}' instead ({how})"),
        Instead::Unsupported(why) => format!("{head}: not supported ({why})"),
    }
}

/// The foreign keys that `get` finds set, in table order.
pub(super) fn set_keys(get: impl Fn(&str) -> Option<String>) -> Vec<&'static ForeignKey> {
    FOREIGN_KEYS
        .iter()
        .filter(|key| get(key.name).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{is_core_key, PROPERTIES};

    /// The names `format opensearch` takes from out_opensearch: supported, so never foreign.
    const OPENSEARCH_FORMAT_KEYS: &[&str] = &[
        "index",
        "logstash_format",
        "logstash_prefix",
        "logstash_prefix_key",
        "logstash_dateformat",
        "logstash_prefix_separator",
        "current_time_index",
        "write_operation",
        "generate_id",
        "id_key",
        "replace_dots",
        "include_tag_key",
        "tag_key",
        "suppress_type_name",
        "time_key",
        "time_key_format",
        "time_key_nanos",
        "retry_on_conflict",
    ];

    /// The config maps of Fluent Bit v5.1.1's plugins/out_http/http.c and
    /// plugins/out_opensearch/opensearch.c.
    const OUT_HTTP: &[&str] = &[
        "proxy",
        "allow_duplicated_headers",
        "log_response_payload",
        "http.response_timeout",
        "http.read_idle_timeout",
        "http_user",
        "http_passwd",
        "oauth2.enable",
        "oauth2.token_url",
        "oauth2.client_id",
        "oauth2.client_secret",
        "oauth2.scope",
        "aws_auth",
        "aws_service",
        "header_tag",
        "format",
        "json_date_format",
        "json_date_key",
        "compress",
        "header",
        "uri",
        "http_method",
        "gelf_timestamp_key",
        "gelf_host_key",
        "gelf_short_message_key",
        "gelf_full_message_key",
        "gelf_level_key",
        "body_key",
        "headers_key",
    ];
    const OUT_OPENSEARCH: &[&str] = &[
        "index",
        "type",
        "suppress_type_name",
        "http_user",
        "http_passwd",
        "aws_auth",
        "aws_region",
        "aws_profile",
        "aws_sts_endpoint",
        "aws_role_arn",
        "aws_external_id",
        "aws_service_name",
        "logstash_format",
        "logstash_prefix",
        "logstash_prefix_separator",
        "logstash_prefix_key",
        "logstash_dateformat",
        "time_key",
        "time_key_format",
        "time_key_nanos",
        "include_tag_key",
        "tag_key",
        "buffer_size",
        "path",
        "pipeline",
        "generate_id",
        "write_operation",
        "id_key",
        "replace_dots",
        "current_time_index",
        "trace_output",
        "trace_error",
        "compress",
    ];

    fn is_property(name: &str) -> bool {
        PROPERTIES.iter().any(|p| p.name == name)
    }

    #[test]
    fn table_is_unique_lowercase_and_disjoint_from_what_is_supported_or_withheld() {
        let mut seen = std::collections::HashSet::new();
        for key in FOREIGN_KEYS {
            assert!(seen.insert(key.name), "duplicate {}", key.name);
            assert_eq!(key.name, key.name.to_ascii_lowercase());
            assert!(
                !is_property(key.name),
                "{} is a sigv4_http property",
                key.name
            );
            assert!(
                !is_core_key(key.name),
                "{} never reaches the plugin",
                key.name
            );
            assert!(!OPENSEARCH_FORMAT_KEYS.contains(&key.name), "{}", key.name);
            if let Instead::Property { name, .. } = key.instead {
                assert!(is_property(name), "{} points at unknown {name}", key.name);
            }
        }
    }

    #[test]
    fn every_out_http_and_out_opensearch_key_is_classified() {
        for name in OUT_HTTP.iter().chain(OUT_OPENSEARCH) {
            let known = is_property(name)
                || is_core_key(name)
                || OPENSEARCH_FORMAT_KEYS.contains(name)
                || FOREIGN_KEYS.iter().any(|k| k.name == *name);
            assert!(known, "{name} is neither supported, withheld nor foreign");
        }
    }

    #[test]
    fn warnings_name_the_key_and_what_to_do() {
        let by_name = |n: &str| FOREIGN_KEYS.iter().find(|k| k.name == n).expect(n);
        assert_eq!(
            warning(by_name("uri")),
            "property 'uri' (out_http setting) is not a sigv4_http property and is ignored: \
             use 'endpoint' instead (the endpoint URL's path and query are the request target)"
        );
        let text = warning(by_name("http_passwd"));
        assert!(
            text.contains("not supported (basic authentication"),
            "{text}"
        );
        assert!(warning(by_name("aws_service_name")).contains("use 'aws_service' instead"));
    }
}

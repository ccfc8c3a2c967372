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
    assert_eq!(PROPERTIES.len(), 45);
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
            e.starts_with(&format!(
                "property 'timeout' has invalid value '{v}': expected a duration greater than 0"
            )),
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
fn compress_level_values() {
    use crate::event::compress::{GZIP_DEFAULT_LEVEL, ZSTD_DEFAULT_LEVEL};
    let level = |c: &str, l: &str| ok(&[("compress", c), ("compress_level", l)]).compress;
    assert_eq!(
        ok(&[("compress", "gzip")]).compress,
        Compression::Gzip(GZIP_DEFAULT_LEVEL)
    );
    assert_eq!(
        ok(&[("compress", "zstd")]).compress,
        Compression::Zstd(ZSTD_DEFAULT_LEVEL)
    );
    assert_eq!(level("gzip", "1"), Compression::Gzip(1));
    assert_eq!(level("gzip", " 9 "), Compression::Gzip(9));
    assert_eq!(level("zstd", "1"), Compression::Zstd(1));
    assert_eq!(level("zstd", "19"), Compression::Zstd(19));
    for bad in ["0", "10", "-1", "six"] {
        assert_eq!(
            err(&[("compress", "gzip"), ("compress_level", bad)]),
            format!("property 'compress_level' has invalid value '{bad}': expected 1-9 with compress gzip"),
        );
    }
    for bad in ["0", "20", "-5", "3.5"] {
        assert_eq!(
            err(&[("compress", "zstd"), ("compress_level", bad)]),
            format!("property 'compress_level' has invalid value '{bad}': expected 1-19 with compress zstd"),
        );
    }
    // Nothing to apply it to: noted, not refused.
    let c = ok(&[("compress_level", "4")]);
    assert_eq!(c.compress, Compression::None);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("compress_level 4 ignored")),
        "{:?}",
        c.notes
    );
    assert!(ok(&[("compress", "zstd"), ("compress_level", "2")])
        .redacted_summary()
        .contains("compress=zstd compress_level=2 "));
}

#[test]
fn compress_values() {
    for (v, want) in [
        ("none", Compression::None),
        ("NONE", Compression::None),
        ("gzip", Compression::gzip()),
        ("GZip", Compression::gzip()),
        ("zstd", Compression::zstd()),
        ("ZSTD", Compression::zstd()),
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
    assert!(err(&[("header_tag", "bad name")])
        .starts_with("property 'header_tag' has invalid value 'bad name': expected a header name"));
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
    // The FFI layer fetches exactly lookup_keys(): anything else would read as unset.
    for k in &asked {
        assert!(
            lookup_keys().any(|name| name == k),
            "{k} not in lookup_keys()"
        );
    }
}

#[test]
fn foreign_keys_warn_once_each_naming_the_equivalent() {
    let config = ok(&[
        ("URI", "/logs"),
        ("Header", "X-Team: a"),
        ("AWS_Service_Name", "es"),
        ("Pipeline", "p1"),
        ("http_passwd", "secret-pass"),
        ("http_user", ""),
    ]);
    let warnings = config.startup_warnings();
    let foreign: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("is not a sigv4_http property"))
        .collect();
    assert_eq!(foreign.len(), 5, "{warnings:#?}");
    for (key, instead) in [
        ("'uri'", "use 'endpoint'"),
        ("'header'", "use 'headers'"),
        ("'aws_service_name'", "use 'aws_service'"),
        ("'pipeline'", "?pipeline=NAME"),
        ("'http_passwd'", "not supported"),
    ] {
        let hits: Vec<_> = foreign.iter().filter(|w| w.contains(key)).collect();
        assert_eq!(hits.len(), 1, "{key}: {warnings:#?}");
        assert!(hits[0].contains(instead), "{}", hits[0]);
    }
    assert!(
        !warnings.iter().any(|w| w.contains("'http_user'")),
        "empty means unset"
    );
    // The value is never echoed (http_passwd is a secret).
    assert!(!warnings.iter().any(|w| w.contains("secret-pass")));
    assert!(ok(&[]).startup_warnings().is_empty());
}

#[test]
fn lookup_keys_cover_properties_and_foreign_keys() {
    let keys: Vec<&str> = lookup_keys().collect();
    assert!(keys.contains(&"endpoint") && keys.contains(&"uri") && keys.contains(&"pipeline"));
    assert_eq!(keys.len(), PROPERTIES.len() + FOREIGN_KEYS.len());
}

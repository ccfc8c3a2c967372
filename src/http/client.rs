//! Building reqwest clients that use our one proxy resolver (never reqwest's own env lookup).

use crate::config::TlsConfig;
use crate::http::proxy::ProxyResolver;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {property} '{path}': {source}")]
    ReadFile {
        property: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{property} '{path}' holds no usable PEM data: {message}")]
    BadPem {
        property: &'static str,
        path: String,
        message: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Connection settings of one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub tls: TlsConfig,
    /// Whole request, headers to last body byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientOptions {
    /// For AWS service calls (STS, SSO): default TLS, the given timeouts.
    pub fn aws_default(timeout: Duration, connect_timeout: Duration) -> Self {
        ClientOptions {
            tls: TlsConfig {
                verify: true,
                ca_file: None,
                crt_file: None,
                key_file: None,
            },
            timeout,
            connect_timeout,
        }
    }
}

fn read(property: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::ReadFile {
        property,
        path: path.display().to_string(),
        source,
    })
}

/// A client whose every request goes through `resolver` (metadata and loopback always direct).
pub fn build_client(
    opts: &ClientOptions,
    resolver: ProxyResolver,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .proxy(reqwest::Proxy::custom(move |url| resolver.proxy_for(url)))
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(16)
        .http1_only()
        // A redirect is an answer, not a detour: following it would re-send a signed request
        // (or a GET without the body) to another target (DESIGN §6: 3xx is logged, not followed).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flb-sigv4/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &opts.tls.ca_file {
        let pem = read("tls_ca_file", path)?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::BadPem {
                property: "tls_ca_file",
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        builder = builder.tls_certs_merge(certs);
    }
    if let (Some(crt), Some(key)) = (&opts.tls.crt_file, &opts.tls.key_file) {
        let mut pem = read("tls_crt_file", crt)?;
        pem.push(b'\n');
        pem.extend_from_slice(&read("tls_key_file", key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::BadPem {
            property: "tls_crt_file",
            path: crt.display().to_string(),
            message: e.to_string(),
        })?;
        builder = builder.identity(identity);
    }
    if !opts.tls.verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(build_error_text(&e)))
}

/// reqwest's builder error with its causes (its own text is only "builder error"), and what to
/// do when the cause is a host without CA certificates (a minimal container image).
fn build_error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.contains("No CA certificates were loaded") {
        text.push_str(
            " (this host has no CA certificates, as in minimal container images: install them, \
             e.g. Debian's ca-certificates package, or mount a CA bundle and set SSL_CERT_FILE \
             to it; tls_ca_file adds CAs for the endpoint only, AWS_CA_BUNDLE for AWS calls)",
        );
    }
    text
}

/// What a common TLS failure means and how to fix it, recognised from the text of a transport
/// error (rustls' messages as reqwest renders them); `None` for anything else. One line, meant to
/// follow the error in the log.
pub fn transport_hint(error_text: &str) -> Option<&'static str> {
    // Most specific first: a self-signed CA certificate also fails the issuer check.
    const HINTS: &[(&[&str], &str)] = &[
        (
            &["CaUsedAsEndEntity"],
            "the server's certificate is a CA certificate used as a server certificate (typical \
             of `openssl req -x509`): give the server a leaf certificate signed by a CA and set \
             tls_ca_file to the CA, or set tls_verify off",
        ),
        (
            &["UnknownIssuer"],
            "the server's certificate is not signed by a CA this host trusts (self-signed or a \
             private CA): set tls_ca_file to the PEM file of the CA that signed it, or set \
             tls_verify off",
        ),
        (
            &["not valid for name", "NotValidForName"],
            "the server's certificate does not name the endpoint's host: use a host name or IP \
             address listed in the certificate's subjectAltName in endpoint, or reissue the \
             certificate with the endpoint's host",
        ),
        (
            &["certificate expired", "Expired"],
            "the server's certificate has expired (or this host's clock is wrong): renew the \
             certificate, or fix the clock",
        ),
        (
            &["certificate not valid yet", "NotValidYet"],
            "the server's certificate is not valid yet (or this host's clock is behind): check \
             the clock and the certificate's start date",
        ),
        (
            &["CertificateRequired"],
            "the server requires a client certificate: set tls_crt_file and tls_key_file",
        ),
        (
            &["InvalidContentType"],
            "the endpoint is https:// but the server answered in plain HTTP: use http:// in \
             endpoint, or enable TLS on the server",
        ),
    ];
    HINTS
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| error_text.contains(n)))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::transport_hint;

    /// Error texts as the plugin logged them (reqwest over rustls 0.23).
    const PREFIX: &str = "error sending request for url (https://127.0.0.1:40115/x): client \
                          error (Connect): invalid peer certificate: ";

    #[test]
    fn ca_used_as_end_entity_names_openssl_req_x509_and_the_fixes() {
        let hint = transport_hint(&format!("{PREFIX}Other(OtherError(CaUsedAsEndEntity))"))
            .expect("recognised");
        assert!(hint.contains("CA certificate used as a server certificate"));
        assert!(hint.contains("openssl req -x509"));
        assert!(hint.contains("tls_ca_file") && hint.contains("tls_verify off"));
    }

    #[test]
    fn other_common_tls_failures() {
        for (error, needle) in [
            ("UnknownIssuer", "not signed by a CA this host trusts"),
            (
                "certificate not valid for name \"127.0.0.1\"; certificate is only valid for \
                 IpAddress(10.9.9.9) or DnsName(\"other.example\")",
                "does not name the endpoint's host",
            ),
            ("NotValidForName", "does not name the endpoint's host"),
            (
                "certificate expired: verification time 1700000000 (UNIX), but certificate is \
                 not valid after 1600000000 (100000000 seconds ago)",
                "has expired",
            ),
            ("Expired", "has expired"),
            (
                "certificate not valid yet: verification time 1 (UNIX), but certificate is not \
                 valid before 2 (1 seconds in future)",
                "not valid yet",
            ),
        ] {
            let hint = transport_hint(&format!("{PREFIX}{error}")).unwrap_or("");
            assert!(hint.contains(needle), "{error}: {hint}");
        }
        let alert = "error sending request for url (https://h/): client error (Connect): \
                     received fatal alert: CertificateRequired";
        assert!(transport_hint(alert).is_some_and(|h| h.contains("tls_crt_file")));
        let plain = "error sending request for url (https://h/): client error (Connect): \
                     received corrupt message of type InvalidContentType";
        assert!(transport_hint(plain).is_some_and(|h| h.contains("use http://")));
    }

    #[test]
    fn unrelated_errors_get_no_hint() {
        for text in [
            "error sending request for url (http://h/): client error (Connect): tcp connect \
             error: Connection refused (os error 111)",
            "operation timed out",
            "",
        ] {
            assert_eq!(transport_hint(text), None, "{text}");
        }
    }
}

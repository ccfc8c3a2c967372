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
        .map_err(|e| ClientError::Build(e.to_string()))
}

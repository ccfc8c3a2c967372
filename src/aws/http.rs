//! The one HTTP client of an instance's AWS calls (STS, SSO, container, IMDS): [`AwsHttp`], a
//! reqwest client built once from the instance's proxy resolver (DESIGN §5: metadata addresses
//! and loopback always direct) and `AWS_CA_BUNDLE`; callers whose limits differ set them per
//! request (IMDS: 2 s). [`ReqwestHttpClient`] hands the same client to the AWS SDK clients
//! (aws-sdk-sts, aws-config's SSO provider) as an `aws-smithy-runtime-api` [`HttpClient`].
//!
//! Timeouts: connecting is bounded by the client ([`CONNECT_TIMEOUT`]) and, tighter, by each
//! request's whole-request timeout. For the SDK clients, the connector settings they hand over
//! become that request timeout: `connect + read` (60 s when no read timeout is given), so the
//! IMDS client's 1-second limits reach the wire as a 2-second bound.

use crate::env::Env;
use crate::http::client::{build_client, ClientError, ClientOptions};
use crate::http::proxy::ProxyResolver;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::fmt;
use std::time::Duration;

/// Connect limit of the shared client (requests set tighter whole-request limits).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
const SDK_DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const SDK_DEFAULT_TOTAL: Duration = Duration::from_secs(60);

/// The instance's client for AWS calls. Clones share the connection pool.
#[derive(Clone)]
pub struct AwsHttp {
    client: reqwest::Client,
}

impl fmt::Debug for AwsHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsHttp").finish_non_exhaustive()
    }
}

impl AwsHttp {
    /// TLS verified with the system roots plus `AWS_CA_BUNDLE` (as the AWS SDKs do); every
    /// request routed by `proxy`.
    pub fn new(env: &Env, proxy: &ProxyResolver) -> Result<AwsHttp, ClientError> {
        let mut opts = ClientOptions::aws_default(DEFAULT_TIMEOUT, CONNECT_TIMEOUT);
        opts.tls.ca_file = env
            .get("AWS_CA_BUNDLE")
            .map(|p| crate::aws::credentials::expand_home(&p, env));
        Ok(AwsHttp {
            client: build_client(&opts, proxy.clone())?,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The same client for the AWS SDK clients.
    pub fn smithy(&self) -> ReqwestHttpClient {
        ReqwestHttpClient {
            client: self.client.clone(),
        }
    }
}

/// [`AwsHttp`]'s client as an `aws-smithy-runtime-api` [`HttpClient`].
#[derive(Clone)]
pub struct ReqwestHttpClient {
    client: reqwest::Client,
}

impl fmt::Debug for ReqwestHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestHttpClient").finish_non_exhaustive()
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connect = settings.connect_timeout().unwrap_or(SDK_DEFAULT_CONNECT);
        let total = match settings.read_timeout() {
            Some(read) => connect + read,
            None => SDK_DEFAULT_TOTAL,
        };
        SharedHttpConnector::new(ReqwestConnector {
            client: self.client.clone(),
            total,
        })
    }
}

struct ReqwestConnector {
    client: reqwest::Client,
    total: Duration,
}

impl fmt::Debug for ReqwestConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestConnector")
            .field("total", &self.total)
            .finish()
    }
}

#[derive(Debug)]
struct Message(String);
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Message {}

fn boxed(text: String) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(Message(text))
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let total = self.total;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(boxed(format!("unusable request: {e}"))))?;
            let (parts, body) = request.into_parts();
            let Some(bytes) = body.bytes().map(|b| b.to_vec()) else {
                return Err(ConnectorError::user(boxed(
                    "streaming request bodies are not supported".into(),
                )));
            };
            let url = reqwest::Url::parse(&parts.uri.to_string())
                .map_err(|e| ConnectorError::user(boxed(format!("bad request URI: {e}"))))?;
            let mut req = client.request(parts.method, url).timeout(total).body(bytes);
            for (name, value) in parts.headers.iter() {
                req = req.header(name, value);
            }
            let resp = req.send().await.map_err(|e| {
                let text = crate::aws::credentials::error_chain(&e);
                if e.is_timeout() {
                    ConnectorError::timeout(boxed(text))
                } else if e.is_connect() {
                    ConnectorError::io(boxed(text))
                } else {
                    ConnectorError::other(boxed(text), None)
                }
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| {
                let text = crate::aws::credentials::error_chain(&e);
                if e.is_timeout() {
                    ConnectorError::timeout(boxed(text))
                } else {
                    ConnectorError::io(boxed(text))
                }
            })?;
            let mut builder = http::Response::builder().status(status);
            for (name, value) in headers.iter() {
                builder = builder.header(name, value);
            }
            let response = builder
                .body(SdkBody::from(body))
                .map_err(|e| ConnectorError::other(boxed(format!("bad response: {e}")), None))?;
            HttpResponse::try_from(response)
                .map_err(|e| ConnectorError::other(boxed(format!("bad response: {e}")), None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::testutil::{FakeServer, Resp};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;

    fn components() -> RuntimeComponents {
        RuntimeComponentsBuilder::for_tests()
            .build()
            .expect("components")
    }

    #[tokio::test]
    async fn sends_through_reqwest_and_honours_read_timeout() {
        let server = FakeServer::start(|r| {
            if r.path == "/hang" {
                Resp::Hang
            } else {
                Resp::Reply(200, format!("{} {} {}", r.method, r.path, r.body))
            }
        })
        .await;
        let client = AwsHttp::new(&Env::default(), &ProxyResolver::direct())
            .expect("client")
            .smithy();
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_millis(300))
            .build();
        let conn = client.http_connector(&settings, &components());
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("{}/x?a=1", server.url()))
            .body(SdkBody::from("hello"))
            .expect("req");
        let resp = conn
            .call(HttpRequest::try_from(req).expect("smithy req"))
            .await
            .expect("response");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.body().bytes(), Some(&b"POST /x?a=1 hello"[..]));
        let start = std::time::Instant::now();
        let req = http::Request::builder()
            .uri(format!("{}/hang", server.url()))
            .body(SdkBody::empty())
            .expect("req");
        let err = conn
            .call(HttpRequest::try_from(req).expect("smithy req"))
            .await
            .expect_err("times out");
        assert!(err.is_timeout(), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}

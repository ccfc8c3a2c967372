//! An `aws-smithy-runtime-api` [`HttpClient`] over our reqwest client, so aws-config providers
//! (we use its SSO provider) send every request through our proxy resolver (DESIGN §5) and honour
//! the connect and read timeouts they ask for.
//!
//! Timeouts: the connector settings' connect timeout becomes the client's connect timeout (10 s
//! when unset); the read timeout bounds the whole request together with the connect timeout
//! (`connect + read`; 60 s in all when no read timeout is given). One reqwest client is kept per
//! distinct pair of settings.

use crate::env::Env;
use crate::http::client::build_client;
use crate::http::proxy::ProxyResolver;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const DEFAULT_TOTAL: Duration = Duration::from_secs(60);

type Key = (Option<Duration>, Option<Duration>);

/// Our reqwest-based HTTP client for aws-config.
#[derive(Clone)]
pub struct ReqwestHttpClient {
    env: Env,
    proxy: ProxyResolver,
    connectors: Arc<Mutex<HashMap<Key, SharedHttpConnector>>>,
}

impl fmt::Debug for ReqwestHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestHttpClient")
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl ReqwestHttpClient {
    /// `env` provides `AWS_CA_BUNDLE`; `proxy` decides every request's route.
    pub fn new(env: Env, proxy: ProxyResolver) -> Self {
        ReqwestHttpClient {
            env,
            proxy,
            connectors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn connector(&self, connect: Option<Duration>, read: Option<Duration>) -> SharedHttpConnector {
        let connect_timeout = connect.unwrap_or(DEFAULT_CONNECT);
        let total = match read {
            Some(read) => connect_timeout + read,
            None => DEFAULT_TOTAL,
        };
        let opts = super::util::aws_client_options(&self.env, total, connect_timeout);
        match build_client(&opts, self.proxy.clone()) {
            Ok(client) => SharedHttpConnector::new(ReqwestConnector {
                client: Ok(client),
                total,
            }),
            Err(e) => SharedHttpConnector::new(ReqwestConnector {
                client: Err(e.to_string()),
                total,
            }),
        }
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut map = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .or_insert_with(|| self.connector(key.0, key.1))
            .clone()
    }
}

struct ReqwestConnector {
    client: Result<reqwest::Client, String>,
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
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::other(
                    boxed(format!("cannot build the HTTP client: {e}")),
                    None,
                )))
            }
        };
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
                let text = super::util::error_chain(&e);
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
                let text = super::util::error_chain(&e);
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
        let client = ReqwestHttpClient::new(Env::default(), ProxyResolver::direct());
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

//! The service endpoints the chain's providers would call (STS, IMDS, the container endpoint),
//! for reports such as `flb-sigv4 doctor`, which shows the proxy decision for each. Resolved by
//! the providers' own functions where they have one; nothing here sends a request.

use super::sources::imds;
use super::{sts, ChainContext};
use reqwest::Url;

/// The ECS credential host used with `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_BASE: &str = "http://169.254.170.2";

/// `(target, URL or why there is none)` for `sts`, `imds` and `container`.
pub fn service_endpoints(ctx: &ChainContext) -> Vec<(&'static str, Result<Url, String>)> {
    let sts = sts::resolve_endpoint(ctx).map(|e| e.url);
    let imds = imds::endpoint(&ctx.env);
    let container = match (
        ctx.env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ctx.env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    ) {
        (_, Some(rel)) => {
            let rel = if rel.starts_with('/') {
                rel
            } else {
                format!("/{rel}")
            };
            Url::parse(&format!("{ECS_BASE}{rel}")).map_err(|_| {
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a valid URI path".into()
            })
        }
        (Some(full), None) => Url::parse(full.trim())
            .map_err(|_| "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL".into()),
        (None, None) => Url::parse(ECS_BASE).map_err(|e| e.to_string()),
    };
    vec![("sts", sts), ("imds", imds), ("container", container)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AwsConfig;
    use crate::env::Env;
    use crate::http::proxy::ProxyResolver;
    use crate::log::MemoryLog;
    use std::sync::Arc;

    fn ctx(env: &[(&str, &str)], region: Option<&str>) -> ChainContext {
        let env = Env::from_pairs(env.iter().copied());
        ChainContext {
            http: crate::aws::http::AwsHttp::new(&env, &ProxyResolver::direct()).expect("client"),
            clock: crate::aws::clock::SkewClock::new(),
            env,
            aws: AwsConfig {
                auth: true,
                region: None,
                service: None,
                profile: None,
                role_arn: None,
                external_id: None,
                role_session_name: None,
                sts_endpoint: None,
                imds: Default::default(),
            },
            region: region.map(str::to_string),
            proxy: ProxyResolver::direct(),
            log: Arc::new(MemoryLog::default()),
        }
    }

    fn urls(c: &ChainContext) -> Vec<String> {
        service_endpoints(c)
            .into_iter()
            .map(|(t, u)| format!("{t} {}", u.map(|u| u.to_string()).unwrap_or_else(|e| e)))
            .collect()
    }

    #[test]
    fn defaults_and_variables() {
        assert_eq!(
            urls(&ctx(&[], Some("eu-west-1"))),
            vec![
                "sts https://sts.eu-west-1.amazonaws.com/",
                "imds http://169.254.169.254/",
                "container http://169.254.170.2/"
            ]
        );
        let c = ctx(
            &[
                ("AWS_ENDPOINT_URL_STS", "http://10.0.0.1:4566"),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"),
                ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/creds"),
            ],
            None,
        );
        assert_eq!(
            urls(&c),
            vec![
                "sts http://10.0.0.1:4566/",
                "imds http://[fd00:ec2::254]/",
                "container http://169.254.170.2/v2/creds"
            ]
        );
        let c = ctx(
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            )],
            None,
        );
        let got = urls(&c);
        assert!(got[0].starts_with("sts STS needs a region"), "{got:?}");
        assert_eq!(got[2], "container http://169.254.170.23/v1/credentials");
    }
}

//! Where requests are signed for (DESIGN §2): region and service, each with where it came from,
//! so the start-up log and `flb-sigv4 doctor` can say why.
//!
//! Region: `aws_region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, the
//! endpoint host, then IMDS (only where the chain may use IMDS). Service: `aws_service`, then
//! the endpoint host.

use crate::aws::credentials;
use crate::aws::http::AwsHttp;
use crate::aws::signing::{infer_from_host, SigningScope};
use crate::config::Config;
use crate::env::Env;

/// The scope and the source of each part, e.g. `property aws_region`, `AWS_REGION`,
/// `profile 'default' of the shared config files`, `endpoint host name`, `EC2 instance metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedScope {
    pub scope: SigningScope,
    pub region_source: String,
    pub service_source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("property 'aws_service' is not set and no service can be inferred from endpoint host '{host}': set aws_service, e.g. es, aoss, execute-api, logs, firehose")]
    NoService { host: String },
    #[error("property 'aws_region' is not set and no region was found (AWS_REGION, AWS_DEFAULT_REGION, the profile's region, endpoint host '{host}', EC2 instance metadata): set aws_region, e.g. 'aws_region us-east-1'")]
    NoRegion { host: String },
    #[error(transparent)]
    Imds(#[from] credentials::CredentialsError),
}

pub async fn resolve_scope(
    config: &Config,
    env: &Env,
    http: &AwsHttp,
) -> Result<ResolvedScope, ScopeError> {
    let host = config.endpoint.host_str().unwrap_or("");
    let (host_region, host_service) = infer_from_host(host);
    let (service, service_source) = match (&config.aws.service, host_service) {
        (Some(s), _) => (s.clone(), "property aws_service".to_string()),
        (None, Some(s)) => (s, format!("endpoint host name '{host}'")),
        (None, None) => {
            return Err(ScopeError::NoService {
                host: host.to_string(),
            })
        }
    };
    let profile_name = config
        .aws
        .profile
        .clone()
        .or_else(|| env.get("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    let candidates = [
        (config.aws.region.clone(), "property aws_region".to_string()),
        (env.get("AWS_REGION"), "AWS_REGION".to_string()),
        (
            env.get("AWS_DEFAULT_REGION"),
            "AWS_DEFAULT_REGION".to_string(),
        ),
        (
            credentials::region_from_profile(env, config.aws.profile.as_deref()),
            format!("the region of profile '{profile_name}' in the shared config files"),
        ),
        (host_region, format!("endpoint host name '{host}'")),
    ];
    for (value, source) in candidates {
        if let Some(region) = value {
            return Ok(ResolvedScope {
                scope: SigningScope { region, service },
                region_source: source,
                service_source,
            });
        }
    }
    match credentials::region_from_imds(env, config.aws.imds, http).await? {
        Some(region) => Ok(ResolvedScope {
            scope: SigningScope { region, service },
            region_source: "EC2 instance metadata".to_string(),
            service_source,
        }),
        None => Err(ScopeError::NoRegion {
            host: host.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .expect("config")
    }

    async fn resolve(
        pairs: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<ResolvedScope, ScopeError> {
        let env = Env::from_pairs(env.iter().copied());
        let http =
            crate::aws::http::AwsHttp::new(&env, &crate::http::proxy::ProxyResolver::direct())
                .expect("client");
        resolve_scope(&config(pairs), &env, &http).await
    }

    #[tokio::test]
    async fn sources_in_order() {
        let ep = (
            "endpoint",
            "https://search-x.eu-west-3.es.amazonaws.com/_bulk",
        );
        let off = ("aws_imds", "off");
        let r = resolve(
            &[ep, off, ("aws_region", "us-west-2")],
            &[("AWS_REGION", "ap-south-1")],
        )
        .await
        .expect("scope");
        assert_eq!(r.scope.region, "us-west-2");
        assert_eq!(r.region_source, "property aws_region");
        assert_eq!(r.scope.service, "es");
        assert!(r.service_source.starts_with("endpoint host name"), "{r:?}");
        let r = resolve(
            &[ep, off],
            &[
                ("AWS_DEFAULT_REGION", "ap-south-1"),
                ("AWS_REGION", "ca-central-1"),
            ],
        )
        .await
        .expect("scope");
        assert_eq!(
            (r.scope.region.as_str(), r.region_source.as_str()),
            ("ca-central-1", "AWS_REGION")
        );
        let r = resolve(&[ep, off, ("aws_service", "aoss")], &[])
            .await
            .expect("scope");
        assert_eq!(r.scope.region, "eu-west-3");
        assert!(r.region_source.starts_with("endpoint host name"), "{r:?}");
        assert_eq!(r.service_source, "property aws_service");
    }

    #[tokio::test]
    async fn errors() {
        let local = ("endpoint", "http://127.0.0.1:1/x");
        let e = resolve(&[local, ("aws_imds", "off")], &[])
            .await
            .expect_err("no service");
        assert!(e.to_string().contains("'aws_service' is not set"), "{e}");
        let e = resolve(&[local, ("aws_imds", "off"), ("aws_service", "es")], &[])
            .await
            .expect_err("no region");
        assert!(e.to_string().contains("'aws_region' is not set"), "{e}");
    }
}

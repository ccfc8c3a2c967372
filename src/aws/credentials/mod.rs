//! Credentials: the interface the output uses ([`CredentialSource`]), the chain that picks the
//! first configured provider ([`select`]) and the providers (DESIGN §4, §5).
//!
//! The output only ever calls [`CredentialSource::get`] (fast: cached, refreshed in the
//! background) and [`CredentialSource::invalidate`] (after a 403 saying the token expired).
//!
//! # Layout (like aws-config)
//! - `sources/`: one module per source, which only fetches: `environment`, `web_identity`,
//!   `profile` (the shared files and their role chains), `process` (`credential_process`, with
//!   `cmdline` deciding how its command line is started), `sso`, `container`, `imds` (+ `ec2`
//!   detection);
//! - `chain.rs`: which source is configured, in order;
//! - `cache.rs`: the cache in front of every source with an expiry;
//! - `assume_role.rs`: the one AssumeRole layer (`aws_role_arn` and profile role hops);
//! - `sts.rs`: STS calls (aws-sdk-sts on our HTTP client and clock).
//!
//! # The chain
//! Explicit beats ambient: `aws_profile` selects that profile alone. Otherwise the first
//! *configured* provider wins — decided from the environment and local files only, no network:
//! 1. environment keys (half a pair is an error);
//! 2. web identity, `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`;
//! 3. the shared files' profile `AWS_PROFILE` or `default`, when it holds a credential key
//!    (static keys of either file, `credential_process`, roles, SSO, …);
//! 4. container credentials;
//! 5. EC2 instance metadata when allowed.
//!
//! A configured provider that then fails is reported with its name and retried; the chain never
//! falls through to the next one. `aws_role_arn` layers STS `AssumeRole` on the result. Every
//! provider with an expiry sits behind its own cache.
//!
//! # HTTP and clock
//! Every request (STS, SSO, container, IMDS) goes through the instance's one
//! [`AwsHttp`] client (proxy resolver, `AWS_CA_BUNDLE`), and every signed call uses the
//! instance's [`SkewClock`], both carried by [`ChainContext`]. aws-config is used for its
//! profile-file parser and its SSO provider, aws-sdk-sts for STS (both given our client); the
//! other providers are ours, because they must read our injected environment, be gated and
//! time-limited as DESIGN requires, and log through Fluent Bit.
//!
//! # Environment knobs (besides the AWS SDK variables)
//! - `FLB_SIGV4_SYS_ROOT`: the sysfs root EC2 detection reads (default `/sys`);
//! - `FLB_SIGV4_CREDENTIAL_PROCESS_TIMEOUT`: `credential_process` timeout in seconds (default 30).
//!
//! # Secrets
//! Secret keys, session tokens, web identity tokens, container authorization tokens and IMDS
//! tokens never appear in errors, `Debug` output or log lines; `credential_process` stdout is
//! never logged.

mod assume_role;
mod cache;
mod chain;
mod endpoints;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod sources;
mod sts;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
mod util;

use crate::aws::clock::SkewClock;
use crate::aws::http::AwsHttp;
use crate::config::{AwsConfig, ImdsMode};
use crate::env::Env;
use crate::http::proxy::ProxyResolver;
use crate::log::SharedLog;
pub use aws_credential_types::Credentials;
pub use chain::{select, select_traced, ChainCheck};
pub use endpoints::service_endpoints;
pub use sources::ec2::{detect_ec2, sys_root, Ec2Detection, SYS_ROOT_VAR};
pub use sources::environment::{from_environment, StaticSource};
use sources::imds;
pub use sources::profile::region_from_profile;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
pub(crate) use util::{error_chain, expand_home};

pub type CredsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + 'a>>;

/// Errors name the provider; they never carry secret values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    #[error("no AWS credentials configured. Checked: {checked}. Fix: {fix}")]
    NotConfigured { checked: String, fix: String },
    #[error("credentials provider '{provider}' is misconfigured: {message}")]
    Misconfigured { provider: String, message: String },
    #[error("credentials provider '{provider}' failed: {message}")]
    Provider { provider: String, message: String },
    #[error("credentials from '{provider}' expired and could not be renewed yet: {message}")]
    Expired { provider: String, message: String },
}

/// A committed credentials provider with its cache.
pub trait CredentialSource: Send + Sync {
    /// Current credentials; does not wait for a refresh while valid credentials exist.
    fn get(&self) -> CredsFuture<'_>;
    /// Marks the cached credentials as unusable (the endpoint said the token expired); the next
    /// `get` fetches new ones.
    fn invalidate(&self);
    /// The provider's name for logs, e.g. `environment`, `profile:prod`.
    fn name(&self) -> String;
    /// Stops background refresh tasks (instance exit).
    fn shutdown(&self) {}
    /// For a role assumed with `sts:AssumeRole`, the `AssumedRoleUser` ARN STS returned on the
    /// last successful call (`arn:aws:sts::…:assumed-role/<role>/<session>`); `None` otherwise
    /// or before the first call.
    fn assumed_role_arn(&self) -> Option<String> {
        None
    }
}

/// The provider the chain committed to, and why (for the start-up info line).
pub struct Selection {
    pub source: Arc<dyn CredentialSource>,
    pub reason: String,
}

/// What the chain may look at.
pub struct ChainContext {
    pub env: Env,
    pub aws: AwsConfig,
    /// The region requests are signed for (STS uses its regional endpoint).
    pub region: Option<String>,
    /// Decides routes; [`ChainContext::http`] was built with it (kept for describing routes).
    pub proxy: ProxyResolver,
    /// The instance's one client for AWS calls.
    pub http: AwsHttp,
    /// The instance's skew-corrected clock, shared with the log requests' signing.
    pub clock: SkewClock,
    pub log: SharedLog,
}

/// The EC2 instance's region from instance metadata, under the same gating as the chain's IMDS
/// step (`Ok(None)` when IMDS may not be used; no packet is sent then).
pub async fn region_from_imds(
    env: &Env,
    mode: ImdsMode,
    http: &AwsHttp,
) -> Result<Option<String>, CredentialsError> {
    match imds::decide(env, mode) {
        imds::Decision::Skip(_) => Ok(None),
        imds::Decision::Use(_) => {
            let client = imds::Imds::new(env, http, "imds")?;
            client
                .region()
                .await
                .map(Some)
                .map_err(|message| CredentialsError::Provider {
                    provider: "imds".into(),
                    message,
                })
        }
    }
}

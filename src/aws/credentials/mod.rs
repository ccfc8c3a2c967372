//! Credentials: the interface the output uses ([`CredentialSource`]), the chain that picks the
//! first configured provider ([`select`]) and the providers (DESIGN §4, §5).
//!
//! The output only ever calls [`CredentialSource::get`] (fast: cached, refreshed in the
//! background) and [`CredentialSource::invalidate`] (after a 403 saying the token expired).
//!
//! # The chain
//! Explicit beats ambient: `aws_profile` selects that profile alone. Otherwise the first
//! *configured* provider wins — decided from the environment and local files only, no network:
//! 1. environment keys (`environment.rs`; half a pair is an error);
//! 2. web identity, `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (`web_identity.rs`);
//! 3. the shared files' profile `AWS_PROFILE` or `default`, when it holds a credential key
//!    (`profile.rs`: static keys of either file, `credential_process`, roles, SSO, …);
//! 4. container credentials (`container.rs`);
//! 5. EC2 instance metadata when allowed (`imds.rs`, `ec2.rs`).
//!
//! A configured provider that then fails is reported with its name and retried; the chain never
//! falls through to the next one. `aws_role_arn` layers STS `AssumeRole` on the result
//! (`assume_role.rs`). Every provider with an expiry sits behind its own cache (`cache.rs`).
//!
//! # HTTP
//! Every request (STS, SSO, container, IMDS) goes through a reqwest client built by
//! [`crate::http::client::build_client`] with the instance's proxy resolver; `AWS_CA_BUNDLE` adds
//! a CA bundle for them. aws-config is used for its profile-file parser and its SSO provider
//! (given our client through [`ReqwestHttpClient`]); the other providers are ours, because they
//! must read our injected environment, be gated and time-limited as DESIGN requires, and log
//! through Fluent Bit.
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
mod container;
mod ec2;
mod endpoints;
mod environment;
#[doc(hidden)]
pub mod fuzzing;
mod http_adapter;
mod imds;
mod process;
mod profile;
mod sso;
mod sts;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
mod util;
mod web_identity;

use crate::config::{AwsConfig, ImdsMode};
use crate::env::Env;
use crate::http::proxy::ProxyResolver;
use crate::log::SharedLog;
pub use aws_credential_types::Credentials;
pub use ec2::{detect_ec2, sys_root, Ec2Detection, SYS_ROOT_VAR};
pub use endpoints::service_endpoints;
pub use environment::{from_environment, StaticSource};
pub use http_adapter::ReqwestHttpClient;
pub use profile::region_from_profile;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
    pub proxy: ProxyResolver,
    pub log: SharedLog,
}

const FIX: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; or put credentials in a profile of ~/.aws/config or \
~/.aws/credentials (choose it with aws_profile or AWS_PROFILE); or run with a role (EKS web identity, ECS task role, EKS Pod \
Identity, EC2 instance profile — 'aws_imds on' forces instance metadata when this host is EC2 but not detected as such); or \
'aws_auth off' for an endpoint without SigV4";

/// One step of the chain's decision: a provider checked and chosen, skipped (not configured) or
/// in error, with the reason (names of variables and files only, never values). The plugin logs
/// them at start-up; `flb-sigv4 doctor` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    /// `environment`, `web identity`, `shared files`, `container`, `EC2 instance metadata`, or
    /// the chosen provider's name (`profile:prod`, `assume-role:…`).
    pub source: String,
    /// `chosen`, `skipped` or `error`.
    pub outcome: &'static str,
    pub reason: String,
}

impl ChainCheck {
    /// From the chain's `"source: reason"` notes.
    fn skipped(note: String) -> Self {
        match note.split_once(": ") {
            Some((source, reason)) => ChainCheck {
                source: source.to_string(),
                outcome: "skipped",
                reason: reason.to_string(),
            },
            None => ChainCheck {
                source: String::new(),
                outcome: "skipped",
                reason: note,
            },
        }
    }
}

/// Picks the first configured provider (DESIGN §4) and commits to it, then layers
/// `aws_role_arn` on top. Reads only the environment and files; the first fetch happens in the
/// background (its failure is logged and retried) or at the first `get`. Each check is logged
/// at info.
pub async fn select(ctx: &ChainContext) -> Result<Selection, CredentialsError> {
    let (result, trace) = select_traced(ctx);
    for c in &trace {
        crate::flb_log!(
            ctx.log,
            crate::log::Level::Info,
            "credentials chain: {} {}: {}",
            c.source,
            c.outcome,
            c.reason
        );
    }
    result
}

/// [`select`] without logging, with every check made on the way.
pub fn select_traced(ctx: &ChainContext) -> (Result<Selection, CredentialsError>, Vec<ChainCheck>) {
    let mut trace = Vec::new();
    let result = select_base(ctx, &mut trace).and_then(|base| match &ctx.aws.role_arn {
        Some(arn) => assume_role::layer(ctx, base, arn),
        None => Ok(base),
    });
    match &result {
        Ok(sel) => trace.push(ChainCheck {
            source: sel.source.name(),
            outcome: "chosen",
            reason: sel.reason.clone(),
        }),
        // the skipped checks are the message
        Err(CredentialsError::NotConfigured { .. }) => {}
        Err(e) => trace.push(ChainCheck {
            source: "chain".to_string(),
            outcome: "error",
            reason: e.to_string(),
        }),
    }
    (result, trace)
}

fn select_base(
    ctx: &ChainContext,
    trace: &mut Vec<ChainCheck>,
) -> Result<Selection, CredentialsError> {
    if let Some(name) = &ctx.aws.profile {
        trace.push(ChainCheck {
            source: "aws_profile".to_string(),
            outcome: "skipped",
            reason: format!(
                "property aws_profile '{name}' selects that profile alone; the other providers are not checked"
            ),
        });
        return profile::explicit(ctx, name);
    }
    let mut checked = Vec::new();
    let result = select_ambient(ctx, &mut checked);
    trace.extend(checked.into_iter().map(ChainCheck::skipped));
    result
}

/// The ambient chain; `checked` gets a `"source: reason"` note for each provider skipped.
fn select_ambient(
    ctx: &ChainContext,
    checked: &mut Vec<String>,
) -> Result<Selection, CredentialsError> {
    // 1. environment
    if let Some(creds) = from_environment(&ctx.env)? {
        let token = if creds.session_token().is_some() {
            " with AWS_SESSION_TOKEN"
        } else {
            ""
        };
        return Ok(Selection {
            source: Arc::new(StaticSource::new(creds, "environment")),
            reason: format!("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set{token}"),
        });
    }
    checked
        .push("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".to_string());

    // 2. web identity
    if let Some((provider, reason)) = web_identity::from_env(ctx)? {
        let source = cache::CachedSource::new("web-identity", Box::new(provider), ctx.log.clone());
        return Ok(Selection {
            source: Arc::new(source),
            reason,
        });
    }
    let role_note = if ctx.env.get("AWS_ROLE_ARN").is_some() {
        " (AWS_ROLE_ARN alone is ignored)"
    } else {
        ""
    };
    checked.push(format!(
        "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set{role_note}"
    ));

    // 3. shared files
    let files = profile::load(&ctx.env)?;
    match profile::ambient(ctx, &files)? {
        Ok(selection) => return Ok(selection),
        Err(note) => checked.push(note),
    }

    // 4. container
    if let Some((provider, reason)) = container::from_env(ctx, "container")? {
        let source = cache::CachedSource::new("container", Box::new(provider), ctx.log.clone());
        return Ok(Selection {
            source: Arc::new(source),
            reason,
        });
    }
    checked.push("container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set".to_string());

    // 5. EC2 instance metadata
    match imds::decide(&ctx.env, ctx.aws.imds) {
        imds::Decision::Use(why) => {
            let client = imds::Imds::new(&ctx.env, &ctx.proxy, "imds")?;
            let reason = format!(
                "{why}: instance metadata at {} (connection: {})",
                client.base(),
                ctx.proxy.describe(client.base())
            );
            let source = cache::CachedSource::new("imds", Box::new(client), ctx.log.clone());
            Ok(Selection {
                source: Arc::new(source),
                reason,
            })
        }
        imds::Decision::Skip(why) => {
            checked.push(format!("EC2 instance metadata: not used ({why})"));
            Err(CredentialsError::NotConfigured {
                checked: checked.join("; "),
                fix: FIX.to_string(),
            })
        }
    }
}

/// The EC2 instance's region from instance metadata, under the same gating as the chain's IMDS
/// step (`Ok(None)` when IMDS may not be used; no packet is sent then).
pub async fn region_from_imds(
    env: &Env,
    mode: ImdsMode,
    proxy: &ProxyResolver,
) -> Result<Option<String>, CredentialsError> {
    match imds::decide(env, mode) {
        imds::Decision::Skip(_) => Ok(None),
        imds::Decision::Use(_) => {
            let client = imds::Imds::new(env, proxy, "imds")?;
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

//! The chain (DESIGN §4): picks the first *configured* provider from the environment and local
//! files only (no network), commits to it, and layers `aws_role_arn` on top. The sources are in
//! `sources/`, the cache in `cache.rs`, the AssumeRole layer in `assume_role.rs`.

use super::sources::{container, imds, profile, web_identity};
use super::{
    assume_role, cache, from_environment, ChainContext, CredentialsError, Selection, StaticSource,
};
use std::sync::Arc;

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
    // The chosen provider has its own start-up line (with region and service): not repeated.
    for c in trace.iter().filter(|c| c.outcome != "chosen") {
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
            let client = imds::Imds::new(&ctx.env, &ctx.http, "imds")?;
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

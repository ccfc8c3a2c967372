//! Web identity (EKS IRSA and the like): a token file plus a role, exchanged with STS
//! `AssumeRoleWithWebIdentity`. The token file is read again at every fetch (Kubernetes rotates
//! it); its content never appears in errors or logs.

use crate::aws::credentials::cache::Fetch;
use crate::aws::credentials::sts::Sts;
use crate::aws::credentials::util::{self, expand_home};
use crate::aws::credentials::{ChainContext, CredentialsError, CredsFuture};
use std::path::PathBuf;

pub(crate) struct WebIdentity {
    pub token_file: PathBuf,
    pub role_arn: String,
    pub session_name: String,
    pub sts: Sts,
    /// Provider name for errors (`web-identity`, `profile:x`).
    pub provider: String,
}

impl WebIdentity {
    async fn fetch_inner(&self) -> Result<aws_credential_types::Credentials, CredentialsError> {
        let fail = |message: String| CredentialsError::Provider {
            provider: self.provider.clone(),
            message,
        };
        let raw = tokio::fs::read(&self.token_file).await.map_err(|e| {
            fail(format!(
                "cannot read the web identity token file '{}': {e}",
                self.token_file.display()
            ))
        })?;
        let token = String::from_utf8(raw).map_err(|_| {
            fail(format!(
                "the web identity token file '{}' is not UTF-8 text",
                self.token_file.display()
            ))
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(fail(format!(
                "the web identity token file '{}' is empty",
                self.token_file.display()
            )));
        }
        self.sts
            .assume_role_with_web_identity(&self.role_arn, &self.session_name, token)
            .await
            .map_err(|e| fail(e.to_string()))
    }
}

impl Fetch for WebIdentity {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.fetch_inner())
    }
}

/// The default session name: `flb-sigv4-<unix time>`.
pub(crate) fn default_session_name() -> String {
    format!("flb-sigv4-{}", util::unix_now())
}

/// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`). `Ok(None)` when the
/// token file variable is not set; the token file without a role is an error.
pub(crate) fn from_env(
    ctx: &ChainContext,
) -> Result<Option<(WebIdentity, String)>, CredentialsError> {
    let Some(file) = ctx.env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else {
        return Ok(None);
    };
    let Some(role_arn) = ctx.env.get("AWS_ROLE_ARN") else {
        return Err(CredentialsError::Misconfigured {
            provider: "web-identity".into(),
            message:
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not (set both, or neither)"
                    .into(),
        });
    };
    let session_name = ctx
        .env
        .get("AWS_ROLE_SESSION_NAME")
        .unwrap_or_else(default_session_name);
    let sts = Sts::new(ctx, "web-identity")?;
    let token_file = expand_home(&file, &ctx.env);
    let reason = format!(
        "AWS_WEB_IDENTITY_TOKEN_FILE ({}) and AWS_ROLE_ARN ({role_arn}) are set: STS AssumeRoleWithWebIdentity at {} ({}; proxy: {})",
        token_file.display(),
        crate::http::proxy::redact_url(&sts.endpoint().url),
        sts.endpoint().origin,
        ctx.proxy.describe(&sts.endpoint().url)
    );
    Ok(Some((
        WebIdentity {
            token_file,
            role_arn,
            session_name,
            sts,
            provider: "web-identity".into(),
        },
        reason,
    )))
}

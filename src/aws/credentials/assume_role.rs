//! The one `sts:AssumeRole` layer, used for `aws_role_arn` on top of the chosen source and for
//! every `role_arn` hop of a profile chain (`source_profile`, `credential_source`). Each call is
//! signed with the source below's *current* credentials (its own cache, refreshed on its own
//! schedule), never with credentials this layer assumed earlier; the assumed credentials live in
//! a separate cache. When STS says the credentials below expired or are unknown, the source
//! below is invalidated and the call is made once more with fresh credentials from it.

use super::cache::{CachedSource, Fetch};
use super::sources::web_identity::default_session_name;
use super::sts::{AssumeRoleParams, Sts};
use super::{ChainContext, CredentialSource, CredentialsError, CredsFuture, Selection};
use crate::flb_log;
use crate::log::{Level, SharedLog};
use aws_credential_types::Credentials;
use std::sync::{Arc, Mutex};

struct AssumeRole {
    base: Arc<dyn CredentialSource>,
    sts: Sts,
    params: AssumeRoleParams,
    provider: String,
    /// Where the role comes from, for messages (` (profile 'x')`), or empty.
    origin: String,
    /// The `AssumedRoleUser` ARN of the last successful call (the session STS created).
    assumed: Mutex<Option<String>>,
    log: SharedLog,
}

impl AssumeRole {
    async fn run(&self) -> Result<Credentials, CredentialsError> {
        let mut retried = false;
        loop {
            let base = self
                .base
                .get()
                .await
                .map_err(|e| CredentialsError::Provider {
                    provider: self.provider.clone(),
                    message: format!(
                        "assuming role {}{}: the credentials to sign with are not available: {e}",
                        self.params.role_arn, self.origin
                    ),
                })?;
            match self.sts.assume_role(&base, &self.params).await {
                Ok(issued) => {
                    if let Some(arn) = issued.assumed_role_arn {
                        let mut last = self.assumed.lock().unwrap_or_else(|p| p.into_inner());
                        // Once per session, not on every refresh of the same session.
                        if last.as_deref() != Some(arn.as_str()) {
                            flb_log!(
                                self.log,
                                Level::Debug,
                                "assumed role {}{}: STS session {arn}",
                                self.params.role_arn,
                                self.origin
                            );
                        }
                        *last = Some(arn);
                    }
                    return Ok(issued.credentials);
                }
                Err(e) if e.is_bad_caller_credentials() && !retried => {
                    retried = true;
                    self.base.invalidate();
                }
                Err(e) => {
                    return Err(CredentialsError::Provider {
                        provider: self.provider.clone(),
                        message: format!(
                            "assuming role {}{}: {e}",
                            self.params.role_arn, self.origin
                        ),
                    })
                }
            }
        }
    }
}

impl Fetch for AssumeRole {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.run())
    }
    fn shutdown(&self) {
        self.base.shutdown();
    }
    fn assumed_role_arn(&self) -> Option<String> {
        self.assumed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `base` wrapped by `sts:AssumeRole` into `params.role_arn`, cached as `provider`.
pub(crate) fn wrap(
    base: Arc<dyn CredentialSource>,
    sts: Sts,
    params: AssumeRoleParams,
    provider: String,
    origin: String,
    log: SharedLog,
) -> Arc<dyn CredentialSource> {
    let fetcher = AssumeRole {
        base,
        sts,
        params,
        provider: provider.clone(),
        origin,
        assumed: Mutex::new(None),
        log: log.clone(),
    };
    Arc::new(CachedSource::new(provider, Box::new(fetcher), log))
}

/// `aws_role_arn`: wraps the chosen source with `sts:AssumeRole` into `role_arn` (the `aws_*`
/// properties of the context).
pub(crate) fn layer(
    ctx: &ChainContext,
    base: Selection,
    role_arn: &str,
) -> Result<Selection, CredentialsError> {
    let provider = format!("assume-role:{role_arn}");
    let sts = Sts::new(ctx, &provider)?;
    let params = AssumeRoleParams {
        role_arn: role_arn.to_string(),
        session_name: ctx
            .aws
            .role_session_name
            .clone()
            .unwrap_or_else(default_session_name),
        external_id: ctx.aws.external_id.clone(),
        duration_seconds: Some(3600),
    };
    let reason = format!(
        "aws_role_arn is set: sts:AssumeRole into {role_arn} (session '{}'{}) at {} ({}; proxy: {}), signed with the credentials of '{}', chosen because {}",
        params.session_name,
        if params.external_id.is_some() { ", with aws_external_id" } else { "" },
        crate::http::proxy::redact_url(&sts.endpoint().url),
        sts.endpoint().origin,
        ctx.proxy.describe(&sts.endpoint().url),
        base.source.name(),
        base.reason
    );
    Ok(Selection {
        source: wrap(
            base.source,
            sts,
            params,
            provider,
            String::new(),
            ctx.log.clone(),
        ),
        reason,
    })
}

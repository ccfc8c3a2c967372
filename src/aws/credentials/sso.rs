//! IAM Identity Center (SSO) credentials: aws-config's `SsoCredentialsProvider` (token cache
//! `~/.aws/sso/cache`, token refresh through SSO-OIDC for `sso_session` profiles,
//! `GetRoleCredentials`), given our [`ReqwestHttpClient`] so its requests follow our proxy rules.
//!
//! Limitation: aws-config does not let us inject its environment or file system
//! (`ProviderConfig::with_env`/`with_fs` are crate-private), so the token cache is looked up under
//! the process's real `HOME` — the same as [`crate::env::Env::from_process`] in production.

use super::cache::Fetch;
use super::http_adapter::ReqwestHttpClient;
use super::{CredentialsError, CredsFuture};
use crate::env::Env;
use crate::http::proxy::ProxyResolver;
use aws_config::provider_config::ProviderConfig;
use aws_config::sso::SsoCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::region::Region;

/// What a profile says about SSO.
#[derive(Debug, Clone)]
pub(crate) struct SsoSettings {
    pub start_url: String,
    pub region: String,
    pub account_id: String,
    pub role_name: String,
    pub session_name: Option<String>,
}

pub(crate) struct Sso {
    provider: SsoCredentialsProvider,
    name: String,
}

impl Sso {
    pub(crate) fn new(settings: &SsoSettings, env: &Env, proxy: &ProxyResolver, name: &str) -> Sso {
        let config = ProviderConfig::empty()
            .with_http_client(ReqwestHttpClient::new(env.clone(), proxy.clone()))
            .with_region(Some(Region::new(settings.region.clone())));
        let mut builder = SsoCredentialsProvider::builder()
            .configure(&config)
            .start_url(settings.start_url.clone())
            .account_id(settings.account_id.clone())
            .role_name(settings.role_name.clone())
            .region(Region::new(settings.region.clone()));
        if let Some(s) = &settings.session_name {
            builder = builder.session_name(s.clone());
        }
        Sso {
            provider: builder.build(),
            name: name.to_string(),
        }
    }

    async fn run(&self) -> Result<aws_credential_types::Credentials, CredentialsError> {
        self.provider
            .provide_credentials()
            .await
            .map_err(|e| CredentialsError::Provider {
                provider: self.name.clone(),
                message: format!(
                    "SSO (IAM Identity Center): {} (run 'aws sso login' if the session expired)",
                    DisplayErrorContext(&e)
                ),
            })
    }
}

impl Fetch for Sso {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.run())
    }
}

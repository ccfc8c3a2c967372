//! IAM Identity Center (SSO) credentials: aws-config's `SsoCredentialsProvider` (token cache
//! `~/.aws/sso/cache`, token refresh through SSO-OIDC for `sso_session` profiles,
//! `GetRoleCredentials`), given the instance's [`AwsHttp`] client so its requests follow our
//! proxy rules. No SigV4 here (a bearer token authenticates), so no clock to share.
//!
//! Limitation: aws-config does not let us inject its environment or file system
//! (`ProviderConfig::with_env`/`with_fs` are crate-private), so the token cache is looked up under
//! the process's real `HOME` — the same as [`crate::env::Env::from_process`] in production.

use crate::aws::credentials::cache::Fetch;
use crate::aws::credentials::util;
use crate::aws::credentials::{CredentialsError, CredsFuture};
use crate::aws::http::AwsHttp;
use aws_config::provider_config::ProviderConfig;
use aws_config::sso::SsoCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
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
    pub(crate) fn new(settings: &SsoSettings, http: &AwsHttp, name: &str) -> Sso {
        let config = ProviderConfig::empty()
            .with_http_client(http.smithy())
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
                    describe(&e)
                ),
            })
    }
}

/// The error's chain of `Display` messages, bounded. Not aws-smithy's `DisplayErrorContext`: that
/// appends the error's `Debug`, which for a service error holds the raw HTTP response (headers
/// and the whole body) — DESIGN §8 allows no more than a short prefix of a body in a log line.
/// The chain is walked with `cause()`, not `source()`: aws-config's SSO token error implements
/// only the deprecated `cause()` (the default `cause()` forwards to `source()`), and without it
/// the cache file's path and the I/O error would be lost.
#[allow(deprecated)]
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.cause();
    let mut depth = 0;
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        depth += 1;
        if depth >= 16 {
            break;
        }
        next = e.cause();
    }
    util::short_value_long(&text)
}

impl Fetch for Sso {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError as SdkCredentialsError;

    /// Displays a short message; its `Debug` (like an SDK service error's) carries a body.
    struct ServiceFailure;
    impl std::fmt::Display for ServiceFailure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("UnauthorizedException: Session token not found or invalid")
        }
    }
    impl std::fmt::Debug for ServiceFailure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("raw: Response { body: b\"portal-body-with-echoed-token\" }")
        }
    }
    impl std::error::Error for ServiceFailure {}

    #[test]
    fn error_text_is_the_display_chain_without_debug_dumps() {
        let text = describe(&SdkCredentialsError::provider_error(ServiceFailure));
        assert!(
            text.contains("Session token not found or invalid"),
            "{text}"
        );
        assert!(!text.contains("portal-body"), "{text}");
        assert!(!text.contains("raw: Response"), "{text}");
    }

    /// Like aws-config's `SsoTokenProviderError`: the inner error only through `cause()`.
    #[derive(Debug)]
    struct CauseOnly(std::io::Error);
    impl std::fmt::Display for CauseOnly {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("failed to load the cached SSO token")
        }
    }
    impl std::error::Error for CauseOnly {
        #[allow(deprecated)]
        fn cause(&self) -> Option<&dyn std::error::Error> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_text_follows_cause_only_errors() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "failed to read `/home/u/.aws/sso/cache/ab.json`",
        );
        let text = describe(&SdkCredentialsError::provider_error(CauseOnly(inner)));
        assert!(
            text.contains("failed to load the cached SSO token: failed to read `/home/u/.aws/sso/cache/ab.json`"),
            "{text}"
        );
    }

    #[test]
    fn error_text_is_bounded() {
        let long = SdkCredentialsError::unhandled("x".repeat(5000));
        assert!(describe(&long).chars().count() <= 513);
    }
}

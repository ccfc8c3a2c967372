//! The environment provider (`AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` +
//! `AWS_SESSION_TOKEN`) and the source for credentials that never change.

use crate::aws::credentials::{CredentialSource, CredentialsError, CredsFuture};
use crate::env::Env;
use aws_credential_types::Credentials;

/// Static credentials (environment keys): never expire, nothing to refresh.
pub struct StaticSource {
    credentials: Credentials,
    name: String,
}

impl StaticSource {
    pub fn new(credentials: Credentials, name: impl Into<String>) -> Self {
        StaticSource {
            credentials,
            name: name.into(),
        }
    }
}

impl CredentialSource for StaticSource {
    fn get(&self) -> CredsFuture<'_> {
        let c = self.credentials.clone();
        Box::pin(async move { Ok(c) })
    }
    fn invalidate(&self) {}
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Environment provider: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
/// `Ok(None)` when not configured; half a key pair is an error, not a fall-through.
pub fn from_environment(env: &Env) -> Result<Option<Credentials>, CredentialsError> {
    let access = env.get("AWS_ACCESS_KEY_ID");
    let secret = env.get("AWS_SECRET_ACCESS_KEY");
    match (access, secret) {
        (None, None) => Ok(None),
        (Some(access), Some(secret)) => Ok(Some(Credentials::new(
            access,
            secret,
            env.get("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ))),
        (Some(_), None) => Err(CredentialsError::Misconfigured {
            provider: "environment".into(),
            message:
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not (set both, or neither)"
                    .into(),
        }),
        (None, Some(_)) => Err(CredentialsError::Misconfigured {
            provider: "environment".into(),
            message:
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not (set both, or neither)"
                    .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_pairs() {
        let env = Env::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]);
        let c = from_environment(&env).expect("ok").expect("configured");
        assert_eq!(c.session_token(), Some("tok"));
        let half = Env::from_pairs([("AWS_ACCESS_KEY_ID", "AKID")]);
        let err = from_environment(&half).expect_err("half a pair");
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"));
        let half = Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "s3cr3t")]);
        let err = from_environment(&half).expect_err("half a pair");
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(from_environment(&Env::default()).expect("ok").is_none());
    }
}

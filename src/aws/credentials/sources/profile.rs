//! Shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`).
//!
//! Files are located through the injected environment (`AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, else `$HOME/.aws/…`), read by us and parsed with aws-config's
//! profile parser (the AWS CLI's syntax and merge rules: keys of both files merge, the
//! credentials file wins). The profile's credential source is resolved here, like the AWS CLI:
//! `role_arn` hops over `source_profile` chains (loops detected) or `credential_source`
//! (`Environment`, `Ec2InstanceMetadata`, `EcsContainer`) down to a base — static keys (from
//! either file), `credential_process`, `web_identity_token_file`, or SSO — and each hop is an
//! STS `AssumeRole` signed with the previous hop's credentials — the one AssumeRole layer of
//! `assume_role.rs`, each hop over its own cache.

use super::environment::{from_environment, StaticSource};
use super::process::{self, Process};
use super::sso::{Sso, SsoSettings};
use super::web_identity::{default_session_name, WebIdentity};
use super::{container, imds};
use crate::aws::credentials::cache::{CachedSource, Fetch};
use crate::aws::credentials::sts::{AssumeRoleParams, Sts};
use crate::aws::credentials::util::{self, expand_home, home_dir};
use crate::aws::credentials::{
    assume_role, ChainContext, CredentialSource, CredentialsError, CredsFuture, Selection,
};
use crate::config::ImdsMode;
use crate::env::Env;
use aws_config::profile::{Profile, ProfileSet};
use aws_credential_types::Credentials;
use aws_runtime::env_config::file::{
    EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Keys that make a profile a credential source (a profile with only `region` is not one).
pub(crate) const CREDENTIAL_KEYS: [&str; 12] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "credential_process",
    "role_arn",
    "web_identity_token_file",
    "credential_source",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
    "sso_region",
];

/// One of the two files.
pub(crate) struct FileInfo {
    pub label: &'static str,
    pub path: Option<PathBuf>,
    /// `Some` when the file exists.
    pub contents: Option<String>,
}

impl FileInfo {
    pub(crate) fn describe(&self) -> String {
        match (&self.path, &self.contents) {
            (None, _) => format!("{} (no path: HOME is not set)", self.label),
            (Some(p), Some(_)) => format!("{} {} (exists)", self.label, p.display()),
            (Some(p), None) => format!("{} {} (not found)", self.label, p.display()),
        }
    }

    fn shown_path(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| self.label.to_string())
    }
}

/// Both files, parsed alone (to say which file holds a key) and merged.
pub(crate) struct SharedFiles {
    pub config: FileInfo,
    pub credentials: FileInfo,
    merged: ProfileSet,
    credentials_only: ProfileSet,
}

pub(crate) fn parse(config: &str, credentials: &str) -> Result<ProfileSet, String> {
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, config)
        .with_contents(ProfileFileKind::Credentials, credentials)
        .build();
    let fs = aws_types::os_shim_internal::Fs::from_slice(&[]);
    let env = aws_types::os_shim_internal::Env::from_slice(&[]);
    let loaded = util::poll_ready(aws_config::profile::load(&fs, &env, &files, None))
        .ok_or("the profile parser did not finish")?;
    loaded.map_err(|e| {
        // "error parsing <path> on line N:\n  message" → "line N: message"
        let text = util::error_chain(&e);
        match text.split_once(" on line ") {
            Some((_, rest)) => format!(
                "line {}",
                rest.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
            None => text.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    })
}

fn read(info: &mut FileInfo) -> Result<(), CredentialsError> {
    let Some(path) = &info.path else {
        return Ok(());
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| CredentialsError::Misconfigured {
                provider: "shared files".into(),
                message: format!("{} {} is not UTF-8 text", info.label, path.display()),
            })?;
            info.contents = Some(text);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CredentialsError::Misconfigured {
            provider: "shared files".into(),
            message: format!("cannot read {} {}: {e}", info.label, path.display()),
        }),
    }
}

/// Locates, reads and parses both files. A file that exists but cannot be read or parsed is an
/// error naming it; a missing file is fine.
pub(crate) fn load(env: &Env) -> Result<SharedFiles, CredentialsError> {
    let locate = |var: &str, default: &str| {
        env.get(var)
            .map(|p| expand_home(&p, env))
            .or_else(|| home_dir(env).map(|h| h.join(".aws").join(default)))
    };
    let mut config = FileInfo {
        label: "config file",
        path: locate("AWS_CONFIG_FILE", "config"),
        contents: None,
    };
    let mut credentials = FileInfo {
        label: "credentials file",
        path: locate("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        contents: None,
    };
    read(&mut config)?;
    read(&mut credentials)?;
    let bad = |info: &FileInfo, message: String| CredentialsError::Misconfigured {
        provider: "shared files".into(),
        message: format!(
            "{} {} cannot be parsed: {message}",
            info.label,
            info.shown_path()
        ),
    };
    let c = config.contents.as_deref().unwrap_or("");
    let k = credentials.contents.as_deref().unwrap_or("");
    parse(c, "").map_err(|m| bad(&config, m))?;
    let credentials_only = parse("", k).map_err(|m| bad(&credentials, m))?;
    let merged = parse(c, k).map_err(|m| CredentialsError::Misconfigured {
        provider: "shared files".into(),
        message: m,
    })?;
    Ok(SharedFiles {
        config,
        credentials,
        merged,
        credentials_only,
    })
}

impl SharedFiles {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, {}",
            self.config.describe(),
            self.credentials.describe()
        )
    }

    pub(crate) fn profile(&self, name: &str) -> Option<&Profile> {
        self.merged.get_profile(name)
    }

    /// The first credential-bearing key of the profile and the file it is in.
    pub(crate) fn credential_key(&self, name: &str) -> Option<(&'static str, String)> {
        let profile = self.merged.get_profile(name)?;
        let key = CREDENTIAL_KEYS
            .iter()
            .copied()
            .find(|k| profile.get(k).is_some())?;
        let in_credentials = self
            .credentials_only
            .get_profile(name)
            .is_some_and(|p| p.get(key).is_some());
        let file = if in_credentials {
            self.credentials.shown_path()
        } else {
            self.config.shown_path()
        };
        Some((key, file))
    }
}

/// `credential_source` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedSource {
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

/// Where a profile chain bottoms out. `Debug` shows no secret and no command argument.
pub(crate) enum Base {
    Static(Credentials),
    Process(String),
    WebIdentity {
        role_arn: String,
        token_file: String,
        session_name: Option<String>,
    },
    Sso(SsoSettings),
    Named(NamedSource),
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Base::Static(c) => write!(f, "Static({c:?})"),
            Base::Process(cmd) => write!(
                f,
                "Process({} …)",
                util::short_value(cmd.split_whitespace().next().unwrap_or(""))
            ),
            Base::WebIdentity {
                role_arn,
                token_file,
                session_name,
            } => {
                write!(f, "WebIdentity {{ role_arn: {role_arn}, token_file: {token_file}, session_name: {session_name:?} }}")
            }
            Base::Sso(s) => write!(f, "Sso({s:?})"),
            Base::Named(n) => write!(f, "Named({n:?})"),
        }
    }
}

/// One `AssumeRole` hop.
#[derive(Debug, Clone)]
pub(crate) struct RoleHop {
    pub profile: String,
    pub params_role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration_seconds: Option<u32>,
}

/// A resolved profile: the base and the role hops applied to it, in order.
#[derive(Debug)]
pub(crate) struct Plan {
    pub base: Base,
    pub base_profile: String,
    pub roles: Vec<RoleHop>,
}

fn static_keys(profile: &Profile) -> Result<Option<Credentials>, String> {
    let (akid, secret, token) = (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
        profile.get("aws_session_token"),
    );
    match (akid, secret) {
        (Some(a), Some(s)) => Ok(Some(Credentials::new(
            a,
            s,
            token.map(str::to_string),
            None,
            "profile",
        ))),
        (Some(_), None) => Err(format!(
            "profile '{}' has aws_access_key_id but no aws_secret_access_key",
            profile.name()
        )),
        (None, Some(_)) => Err(format!(
            "profile '{}' has aws_secret_access_key but no aws_access_key_id",
            profile.name()
        )),
        (None, None) if token.is_some() => Err(format!(
            "profile '{}' has aws_session_token but no keys",
            profile.name()
        )),
        (None, None) => Ok(None),
    }
}

fn role_hop(profile: &Profile) -> Result<Option<RoleHop>, String> {
    if profile.get("web_identity_token_file").is_some() {
        return Ok(None);
    }
    let Some(arn) = profile.get("role_arn") else {
        return Ok(None);
    };
    let duration_seconds = match profile.get("duration_seconds") {
        None => None,
        Some(d) => Some(d.trim().parse::<u32>().ok().filter(|d| (900..=43_200).contains(d)).ok_or_else(|| {
            format!("profile '{}' has duration_seconds '{}', expected a number of seconds from 900 to 43200", profile.name(), util::short_value(d))
        })?),
    };
    Ok(Some(RoleHop {
        profile: profile.name().to_string(),
        params_role_arn: arn.to_string(),
        external_id: profile.get("external_id").map(str::to_string),
        session_name: profile.get("role_session_name").map(str::to_string),
        duration_seconds,
    }))
}

fn sso_settings(set: &ProfileSet, profile: &Profile) -> Result<Option<SsoSettings>, String> {
    let get = |k: &str| profile.get(k).map(str::to_string);
    let (account, role, mut region, mut start_url, session) = (
        get("sso_account_id"),
        get("sso_role_name"),
        get("sso_region"),
        get("sso_start_url"),
        get("sso_session"),
    );
    if [&account, &role, &region, &start_url, &session]
        .iter()
        .all(|v| v.is_none())
    {
        return Ok(None);
    }
    let name = profile.name();
    if let Some(s) = &session {
        let Some(section) = set.sso_session(s) else {
            return Err(format!("profile '{name}' names sso_session '{s}' but there is no [sso-session {s}] section"));
        };
        start_url = start_url.or_else(|| section.get("sso_start_url").map(str::to_string));
        region = region.or_else(|| section.get("sso_region").map(str::to_string));
    }
    let missing = |k: &str| format!("profile '{name}' uses SSO but has no {k}");
    Ok(Some(SsoSettings {
        start_url: start_url.ok_or_else(|| missing("sso_start_url"))?,
        region: region.ok_or_else(|| missing("sso_region"))?,
        account_id: account.ok_or_else(|| missing("sso_account_id"))?,
        role_name: role.ok_or_else(|| missing("sso_role_name"))?,
        session_name: session,
    }))
}

fn base_of(set: &ProfileSet, profile: &Profile) -> Result<Base, String> {
    let name = profile.name();
    if let Some(source) = profile.get("credential_source") {
        return match source.trim() {
            "Environment" => Ok(Base::Named(NamedSource::Environment)),
            "Ec2InstanceMetadata" => Ok(Base::Named(NamedSource::Ec2InstanceMetadata)),
            "EcsContainer" => Ok(Base::Named(NamedSource::EcsContainer)),
            other => Err(format!(
                "profile '{name}' has credential_source '{}', expected Environment, Ec2InstanceMetadata or EcsContainer",
                util::short_value(other)
            )),
        };
    }
    match (
        profile.get("role_arn"),
        profile.get("web_identity_token_file"),
    ) {
        (Some(role_arn), Some(file)) => {
            return Ok(Base::WebIdentity {
                role_arn: role_arn.to_string(),
                token_file: file.to_string(),
                session_name: profile.get("role_session_name").map(str::to_string),
            })
        }
        (None, Some(_)) => {
            return Err(format!(
                "profile '{name}' has web_identity_token_file but no role_arn"
            ))
        }
        _ => {}
    }
    if let Some(sso) = sso_settings(set, profile)? {
        return Ok(Base::Sso(sso));
    }
    if let Some(cmd) = profile.get("credential_process") {
        return Ok(Base::Process(cmd.to_string()));
    }
    match static_keys(profile)? {
        Some(c) => Ok(Base::Static(c)),
        None => Err(format!(
            "profile '{name}' holds no credentials (none of aws_access_key_id, credential_process, role_arn, sso_*, web_identity_token_file, credential_source)"
        )),
    }
}

/// Resolves the profile chain like the AWS CLI (loops are errors).
pub(crate) fn resolve(set: &ProfileSet, start: &str) -> Result<Plan, String> {
    let mut name = start.to_string();
    let mut visited: Vec<String> = Vec::new();
    let mut roles = Vec::new();
    let (base, base_profile) = loop {
        if visited.contains(&name) {
            visited.push(name);
            return Err(format!("profile loop: {} (each role_arn's source_profile leads back to an earlier profile)", visited.join(" -> ")));
        }
        let profile = set.get_profile(&name).ok_or_else(|| match visited.last() {
            Some(from) => {
                format!("profile '{from}' has source_profile '{name}', which does not exist")
            }
            None => format!("profile '{name}' does not exist"),
        })?;
        visited.push(name.clone());
        if visited.len() > 1 {
            if let Ok(Some(c)) = static_keys(profile) {
                break (Base::Static(c), name);
            }
        }
        let Some(hop) = role_hop(profile)? else {
            break (base_of(set, profile)?, name);
        };
        roles.push(hop);
        match (
            profile.get("source_profile"),
            profile.get("credential_source"),
        ) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "profile '{name}' has both source_profile and credential_source; keep one"
                ))
            }
            (None, None) => {
                return Err(format!(
                "profile '{name}' has role_arn but neither source_profile nor credential_source"
            ))
            }
            (Some(src), None) if src == name => {
                let base = static_keys(profile)?.ok_or_else(|| {
                    format!("profile '{name}' is its own source_profile but holds no static keys")
                })?;
                break (Base::Static(base), name);
            }
            (Some(src), None) => name = src.to_string(),
            (None, Some(_)) => break (base_of(set, profile)?, name),
        }
    };
    roles.reverse();
    Ok(Plan {
        base,
        base_profile,
        roles,
    })
}

impl Plan {
    pub(crate) fn describe(&self) -> String {
        let base = match &self.base {
            Base::Static(c) if c.session_token().is_some() => {
                "static keys with aws_session_token".to_string()
            }
            Base::Static(_) => "static keys".to_string(),
            Base::Process(cmd) => format!(
                "credential_process '{}'",
                util::short_value(cmd.split_whitespace().next().unwrap_or(""))
            ),
            Base::WebIdentity {
                role_arn,
                token_file,
                ..
            } => format!("web identity token file {token_file} for role {role_arn}"),
            Base::Sso(s) => format!(
                "SSO start URL {} (region {}, account {}, role {})",
                s.start_url, s.region, s.account_id, s.role_name
            ),
            Base::Named(n) => format!("credential_source {n:?}"),
        };
        let mut text = format!("{base} (profile '{}')", self.base_profile);
        for hop in &self.roles {
            text.push_str(&format!(
                ", then sts:AssumeRole into {} (profile '{}')",
                hop.params_role_arn, hop.profile
            ));
        }
        text
    }
}

/// `credential_source = Environment`: read at each fetch.
struct EnvKeys {
    env: Env,
    provider: String,
}

impl Fetch for EnvKeys {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(async move {
            from_environment(&self.env)?.ok_or_else(|| CredentialsError::Provider {
                provider: self.provider.clone(),
                message: "credential_source Environment, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".into(),
            })
        })
    }
}

fn misconfigured(provider: &str, message: String) -> CredentialsError {
    CredentialsError::Misconfigured {
        provider: provider.to_string(),
        message,
    }
}

/// Builds the source for profile `name`. `why` starts the reason (`aws_profile 'x' is set`).
pub(crate) fn build(
    ctx: &ChainContext,
    files: &SharedFiles,
    name: &str,
    why: &str,
) -> Result<Selection, CredentialsError> {
    let provider = format!("profile:{name}");
    let plan = resolve(&files.merged, name)
        .map_err(|m| misconfigured(&provider, format!("{m} ({})", files.describe())))?;
    let key_note = match files.credential_key(name) {
        Some((key, file)) => format!("profile '{name}' in {file} has {key}"),
        None => format!("profile '{name}'"),
    };
    let mut reason = format!("{why}{key_note}: {}", plan.describe());
    let needs_sts = !plan.roles.is_empty() || matches!(plan.base, Base::WebIdentity { .. });
    let sts = if needs_sts {
        let sts = Sts::new(ctx, &provider)?;
        reason.push_str(&format!(
            "; STS at {} ({}; proxy: {})",
            crate::http::proxy::redact_url(&sts.endpoint().url),
            sts.endpoint().origin,
            ctx.proxy.describe(&sts.endpoint().url)
        ));
        Some(sts)
    } else {
        None
    };
    // The base has its own cache (static keys need none); each role hop is the one AssumeRole
    // layer (assume_role.rs) over the hop below, the last one named after the profile.
    let base_name = if plan.roles.is_empty() {
        provider.clone()
    } else {
        format!("{provider}:base")
    };
    let fetcher: Box<dyn Fetch> = match plan.base {
        Base::Static(c) => {
            let source: Arc<dyn CredentialSource> = Arc::new(StaticSource::new(c, base_name));
            return Ok(Selection {
                source: layer_roles(ctx, source, plan.roles, sts, &provider),
                reason,
            });
        }
        Base::Process(command) => Box::new(Process {
            command,
            timeout: util::duration_knob(&ctx.env, process::TIMEOUT_VAR, process::DEFAULT_TIMEOUT),
            log: ctx.log.clone(),
            provider: provider.clone(),
            home: home_dir(&ctx.env),
            shell: PathBuf::from(process::SHELL),
        }),
        Base::WebIdentity { role_arn, token_file, session_name } => Box::new(WebIdentity {
            token_file: expand_home(&token_file, &ctx.env),
            role_arn,
            session_name: session_name.unwrap_or_else(default_session_name),
            sts: Sts::new(ctx, &provider)?,
            provider: provider.clone(),
        }),
        Base::Sso(settings) => Box::new(Sso::new(&settings, &ctx.http, &provider)),
        Base::Named(NamedSource::Environment) => Box::new(EnvKeys { env: ctx.env.clone(), provider: provider.clone() }),
        Base::Named(NamedSource::EcsContainer) => match container::from_env(ctx, &provider)? {
            Some((c, why)) => {
                reason.push_str(&format!(" ({why})"));
                Box::new(c)
            }
            None => {
                return Err(misconfigured(
                    &provider,
                    "credential_source EcsContainer, but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set".into(),
                ))
            }
        },
        Base::Named(NamedSource::Ec2InstanceMetadata) => {
            if util::is_true(ctx.env.get("AWS_EC2_METADATA_DISABLED")) {
                return Err(misconfigured(&provider, "credential_source Ec2InstanceMetadata, but AWS_EC2_METADATA_DISABLED=true".into()));
            }
            if ctx.aws.imds == ImdsMode::Off {
                return Err(misconfigured(&provider, "credential_source Ec2InstanceMetadata, but aws_imds is off".into()));
            }
            let client = imds::Imds::new(&ctx.env, &ctx.http, &provider)?;
            reason.push_str(&format!(" (instance metadata at {})", client.base()));
            Box::new(client)
        }
    };
    let base: Arc<dyn CredentialSource> =
        Arc::new(CachedSource::new(base_name, fetcher, ctx.log.clone()));
    Ok(Selection {
        source: layer_roles(ctx, base, plan.roles, sts, &provider),
        reason,
    })
}

/// Each hop of `roles`, in order, as an AssumeRole layer over the one below; `base` itself when
/// there is none.
fn layer_roles(
    ctx: &ChainContext,
    base: Arc<dyn CredentialSource>,
    roles: Vec<RoleHop>,
    sts: Option<Sts>,
    provider: &str,
) -> Arc<dyn CredentialSource> {
    let Some(sts) = sts else {
        return base;
    };
    let last = roles.len().saturating_sub(1);
    let mut source = base;
    for (i, hop) in roles.into_iter().enumerate() {
        let name = if i == last {
            provider.to_string()
        } else {
            format!("{provider}:role:{}", hop.profile)
        };
        let params = AssumeRoleParams {
            session_name: hop.session_name.unwrap_or_else(default_session_name),
            role_arn: hop.params_role_arn,
            external_id: hop.external_id,
            duration_seconds: hop.duration_seconds,
        };
        source = assume_role::wrap(
            source,
            sts.clone(),
            params,
            name,
            format!(" (profile '{}')", hop.profile),
            ctx.log.clone(),
        );
    }
    source
}

/// The chain's step 3 (ambient): profile `AWS_PROFILE` or `default`. `Ok(Err(note))` when not
/// configured, with what was found for the "nothing configured" message.
pub(crate) fn ambient(
    ctx: &ChainContext,
    files: &SharedFiles,
) -> Result<Result<Selection, String>, CredentialsError> {
    let (name, from_env) = match ctx.env.get("AWS_PROFILE") {
        Some(p) => (p, true),
        None => ("default".to_string(), false),
    };
    let Some(profile) = files.profile(&name) else {
        if from_env {
            return Err(misconfigured(
                &format!("profile:{name}"),
                format!("AWS_PROFILE is '{name}' but no such profile exists ({}); fix AWS_PROFILE or add the profile", files.describe()),
            ));
        }
        return Ok(Err(format!(
            "shared files: no profile 'default' (AWS_PROFILE not set) in {}",
            files.describe()
        )));
    };
    if !CREDENTIAL_KEYS.iter().any(|k| profile.get(k).is_some()) {
        let via = if from_env {
            "from AWS_PROFILE"
        } else {
            "AWS_PROFILE not set"
        };
        return Ok(Err(format!(
            "shared files: profile '{name}' ({via}) exists but holds no credential keys; {}",
            files.describe()
        )));
    }
    let why = if from_env {
        format!("AWS_PROFILE is '{name}' and ")
    } else {
        String::new()
    };
    Ok(Ok(build(ctx, files, &name, &why)?))
}

/// The explicit `aws_profile`: that profile alone, whatever it holds.
pub(crate) fn explicit(ctx: &ChainContext, name: &str) -> Result<Selection, CredentialsError> {
    let files = load(&ctx.env)?;
    let provider = format!("profile:{name}");
    let Some(profile) = files.profile(name) else {
        return Err(misconfigured(
            &provider,
            format!(
                "aws_profile '{name}' does not exist in the shared files ({})",
                files.describe()
            ),
        ));
    };
    if !CREDENTIAL_KEYS.iter().any(|k| profile.get(k).is_some()) {
        return Err(misconfigured(
            &provider,
            format!(
                "aws_profile '{name}' holds no credentials (none of aws_access_key_id, credential_process, role_arn, sso_*, web_identity_token_file, credential_source) ({})",
                files.describe()
            ),
        ));
    }
    build(ctx, &files, name, &format!("aws_profile '{name}' is set: "))
}

/// The `region` of `profile` (else `AWS_PROFILE`, else `default`) in the shared files; `None`
/// when unset or when the files cannot be read.
pub fn region_from_profile(env: &Env, profile: Option<&str>) -> Option<String> {
    let files = load(env).ok()?;
    let name = profile
        .map(str::to_string)
        .or_else(|| env.get("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    files
        .profile(&name)?
        .get("region")
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(config: &str, credentials: &str) -> ProfileSet {
        parse(config, credentials).expect("parses")
    }

    #[test]
    fn loop_detection() {
        let s = set("[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n", "");
        let err = resolve(&s, "a").expect_err("loop");
        assert!(err.contains("profile loop: a -> b -> a"), "{err}");
    }

    #[test]
    fn chains_resolve_to_base_and_hops() {
        let s = set(
            "[profile top]\nrole_arn = arn:aws:iam::1:role/top\nsource_profile = mid\nexternal_id = ext\nduration_seconds = 1800\n\
             [profile mid]\nrole_arn = arn:aws:iam::1:role/mid\nsource_profile = base\n",
            "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETBASE\n",
        );
        let plan = resolve(&s, "top").expect("plan");
        assert!(matches!(&plan.base, Base::Static(c) if c.access_key_id() == "AKIDBASE"));
        let arns: Vec<_> = plan
            .roles
            .iter()
            .map(|r| r.params_role_arn.as_str())
            .collect();
        assert_eq!(arns, ["arn:aws:iam::1:role/mid", "arn:aws:iam::1:role/top"]);
        assert_eq!(plan.roles[1].external_id.as_deref(), Some("ext"));
        assert_eq!(plan.roles[1].duration_seconds, Some(1800));
        assert!(!format!("{plan:?}").contains("SECRETBASE"));
    }

    #[test]
    fn credential_sources_and_errors() {
        let s = set(
            "[profile env]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Environment\n\
             [profile both]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Environment\nsource_profile = env\n\
             [profile bad]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Mars\n\
             [profile wi]\nrole_arn = arn:aws:iam::1:role/w\nweb_identity_token_file = /t\n\
             [profile proc]\ncredential_process = /bin/helper --secret-arg\n\
             [profile half]\naws_access_key_id = AKID\n\
             [profile dur]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Environment\nduration_seconds = 5\n\
             [profile sso]\nsso_session = s\nsso_account_id = 1\nsso_role_name = r\n[sso-session s]\nsso_region = us-east-1\nsso_start_url = https://x.awsapps.com/start\n",
            "",
        );
        assert!(matches!(
            resolve(&s, "env").expect("env").base,
            Base::Named(NamedSource::Environment)
        ));
        assert!(resolve(&s, "both")
            .expect_err("both")
            .contains("both source_profile and credential_source"));
        assert!(resolve(&s, "bad")
            .expect_err("bad")
            .contains("credential_source 'Mars'"));
        assert!(matches!(
            resolve(&s, "wi").expect("wi").base,
            Base::WebIdentity { .. }
        ));
        assert!(matches!(
            resolve(&s, "proc").expect("proc").base,
            Base::Process(_)
        ));
        assert!(!resolve(&s, "proc")
            .expect("proc")
            .describe()
            .contains("--secret-arg"));
        assert!(resolve(&s, "half")
            .expect_err("half")
            .contains("no aws_secret_access_key"));
        assert!(resolve(&s, "dur")
            .expect_err("dur")
            .contains("duration_seconds"));
        assert!(
            matches!(resolve(&s, "sso").expect("sso").base, Base::Sso(ref x) if x.region == "us-east-1" && x.session_name.as_deref() == Some("s"))
        );
        assert!(resolve(&s, "nope")
            .expect_err("missing")
            .contains("does not exist"));
    }

    #[test]
    fn garbage_is_an_error_with_a_line() {
        let err = parse("[profile a]\nthis is not a key value line\n", "").expect_err("garbage");
        assert!(err.starts_with("line 2"), "{err}");
    }
}

//! Entry points for the fuzz targets in `fuzz/` and `tests/fuzz_regressions.rs`: the parsers of
//! untrusted text, with no I/O. Only with the `fuzzing` cargo feature (enabled by fuzz/Cargo.toml
//! and by the crate's dev-dependency on itself): not part of the shipped library.

use super::Credentials;

/// Parses the two shared files' text as the loader does (each alone, then merged) and
/// resolves every profile they define (plus `default`) as the chain would: per profile, the
/// plan's description or the error.
#[allow(clippy::type_complexity)]
pub fn profile_files(
    config: &str,
    credentials: &str,
) -> Result<Vec<(String, Result<String, String>)>, String> {
    super::sources::profile::parse(config, "")?;
    super::sources::profile::parse("", credentials)?;
    let set = super::sources::profile::parse(config, credentials)?;
    let mut names: Vec<String> = set.profiles().map(str::to_string).collect();
    names.push("default".to_string());
    Ok(names
        .into_iter()
        .map(|name| {
            let plan = super::sources::profile::resolve(&set, &name).map(|p| p.describe());
            (name, plan)
        })
        .collect())
}

/// `credential_process` stdout.
pub fn credential_process_output(stdout: &[u8]) -> Result<Credentials, String> {
    super::sources::process::parse_output(stdout)
}

/// The container / IMDS credentials JSON.
pub fn metadata_credentials(body: &[u8]) -> Result<Credentials, String> {
    super::sources::container::parse_credentials(body, "container")
}

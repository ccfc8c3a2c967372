//! Reading a Fluent Bit configuration as Fluent Bit's core does (its parsers are C:
//! `src/config_format/flb_cf_fluentbit.c` and `flb_cf_yaml.c`), far enough to know what each
//! `sigv4_http` output would be given: sections and their properties in file order, `@SET` /
//! `env` variables, `@INCLUDE` / `includes` (globs, relative paths).
//!
//! What the core then does with an output's properties (variables expanded, first of repeated
//! keys wins, its own keys withheld) is in [`instance`].

pub mod classic;
pub mod instance;
#[cfg(test)]
mod test_dir;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One `key value` of a section, as the parser stored it (key translated as Fluent Bit does,
/// value trimmed, variables not yet expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub key: String,
    pub value: String,
    pub at: Origin,
}

/// A section (`[OUTPUT]`, `[SERVICE]`, a YAML pipeline entry…); `kind` is lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub at: Origin,
    pub props: Vec<Prop>,
}

impl Section {
    /// The first value of `key` (case-insensitive), as the core's look-ups return it.
    pub fn first(&self, key: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.key.eq_ignore_ascii_case(key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Classic,
    Yaml,
}

/// A whole configuration, every included file read.
#[derive(Debug, Clone)]
pub struct Document {
    pub syntax: Syntax,
    /// Every file read, in reading order.
    pub files: Vec<PathBuf>,
    pub sections: Vec<Section>,
    /// `@SET name=value` / YAML `env`, in order (a later one replaces an earlier one).
    pub vars: Vec<(String, String)>,
    /// Things Fluent Bit warns about while reading (a glob without match …).
    pub warnings: Vec<String>,
}

impl Document {
    pub fn sections_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.kind == kind)
    }
}

/// Fluent Bit would refuse to start with this configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ParseError {
    pub at: Origin,
    pub message: String,
}

impl ParseError {
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Self {
        ParseError {
            at: Origin {
                file: file.to_path_buf(),
                line,
            },
            message: message.into(),
        }
    }
}

/// Fluent Bit's limit on the number of files of one configuration (`FLB_CF_FILE_NUM_LIMIT`).
pub const FILE_LIMIT: usize = 1000;

/// Reads `path` as Fluent Bit would pick the syntax: `.yaml`/`.yml` is YAML, anything else
/// classic.
pub fn read(path: &Path) -> Result<Document, ParseError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yaml") | Some("yml") => yaml::read(path),
        _ => classic::read(path),
    }
}

/// Expands a glob pattern as `glob(3)` would for Fluent Bit's includes: the matching paths
/// (sorted here; Fluent Bit passes `GLOB_NOSORT`, so its order is the directory's), or a warning.
pub(crate) fn expand_glob(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("glob: [{pattern}] {e}"))?;
    let mut out: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    out.sort();
    if out.is_empty() {
        return Err(format!("glob: [{pattern}] no match"));
    }
    Ok(out)
}

//! A snapshot of the process environment taken at init, so every component reads the same
//! values and tests inject their own without touching the real process environment.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Env {
    vars: Arc<HashMap<String, String>>,
}

/// Names only: the values include secret keys, session tokens and proxy passwords (DESIGN §8).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: Arc::new(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect(),
            ),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The variable's value; empty values count as unset.
    pub fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// The names of the variables set (non-empty), sorted; for reports that must not show values.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .vars
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        names.sort_unstable();
        names
    }

    /// A lookup closure for APIs that take one.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| self.get(k)
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"), ("HOME", "/root")]);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("AWS_SECRET_ACCESS_KEY") && shown.contains("HOME"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t-value") && !shown.contains("/root"),
            "{shown}"
        );
        let env = Env::from_pairs([("B", "1"), ("A", "2"), ("EMPTY", "")]);
        assert_eq!(env.names(), vec!["A".to_string(), "B".to_string()]);
    }
}

//! What Fluent Bit's output core makes of one output section (`flb_output_set_property` and
//! `flb_env_var_translate`): `${VAR}` (and `${VAR:-default}`) expanded from `@SET`/`env`
//! variables, then the process environment; keys compared case-insensitively; of a repeated key
//! the plugin sees only the first; the core's own keys ([`flb_sigv4::config::is_core_key`], the
//! same list the C test host withholds) never reach the plugin.

use super::{Origin, Section};
use flb_sigv4::config::is_core_key;
use std::collections::HashMap;

/// Variables as Fluent Bit's `flb_env_get` sees them: its own table (`@SET`, YAML `env`; a later
/// definition replaces an earlier one) first, then the process environment (empty = unset).
pub struct Vars<'a> {
    table: HashMap<String, String>,
    process: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Vars<'a> {
    pub fn new(set: &[(String, String)], process: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Vars {
            table: set.iter().cloned().collect(),
            process,
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.table.get(name) {
            return Some(v.clone());
        }
        (self.process)(name).filter(|v| !v.is_empty())
    }

    /// `flb_env_var_translate`, including its quirks (the closing `}` is searched from where the
    /// previous variable ended; an unclosed `${` stops expansion). Returns the value and the
    /// names of variables used but not set.
    pub fn translate(&self, value: &str) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut unset = Vec::new();
        let mut i = 0;
        let mut have_var = false;
        let mut last_end: Option<usize> = None;
        while i < value.len() {
            let Some(start) = value[i..].find("${").map(|p| p + i) else {
                break;
            };
            let Some(end) = value[i..].find('}').map(|p| p + i) else {
                last_end = None;
                break;
            };
            let name_start = start + 2;
            if end <= name_start {
                break;
            }
            last_end = Some(end);
            have_var = true;
            let inner = &value[name_start..end];
            let (name, default) = match inner.find(':') {
                Some(c) if inner[c + 1..].starts_with('-') => (&inner[..c], Some(&inner[c + 2..])),
                _ => (inner, None),
            };
            out.push_str(&value[i..start]);
            match (self.get(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => unset.push(name.to_string()),
            }
            i = end + 1;
        }
        if !have_var {
            return (value.to_string(), unset);
        }
        if let Some(end) = last_end {
            out.push_str(&value[end + 1..]);
        }
        (out, unset)
    }
}

/// One property as the core handled it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// As written (translated for YAML), original case.
    pub key: String,
    /// After variable expansion; `None` when it expanded to nothing.
    pub value: Option<String>,
    pub at: Origin,
}

/// An output instance as the plugin would see it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub at: Origin,
    /// The plugin name (`Name`), expanded.
    pub name: String,
    /// What `output_get_property` returns: the first of each key (lowercase key).
    pub visible: Vec<Seen>,
    /// Later copies of a visible key: the plugin never sees them.
    pub shadowed: Vec<Seen>,
    /// Keys the core consumes itself (`match`, `workers`, `tls`, `host`, …), first of each.
    pub core: Vec<Seen>,
    /// `${VAR}` used but set nowhere, with where.
    pub unset_vars: Vec<(String, Origin)>,
    /// Built from `-p` properties: there is no `[OUTPUT]` section (no Workers to check).
    pub from_command_line: bool,
}

impl Instance {
    pub fn from_section(section: &Section, vars: &Vars<'_>) -> Instance {
        let mut inst = Instance {
            at: section.at.clone(),
            name: String::new(),
            visible: Vec::new(),
            shadowed: Vec::new(),
            core: Vec::new(),
            unset_vars: Vec::new(),
            from_command_line: false,
        };
        for prop in &section.props {
            let (value, unset) = vars.translate(&prop.value);
            for name in unset {
                inst.unset_vars.push((name, prop.at.clone()));
            }
            let seen = Seen {
                key: prop.key.clone(),
                value: Some(value).filter(|v| !v.is_empty()),
                at: prop.at.clone(),
            };
            if prop.key.eq_ignore_ascii_case("name") {
                if inst.name.is_empty() {
                    inst.name = seen.value.unwrap_or_default();
                }
                continue;
            }
            if prop.key.eq_ignore_ascii_case("routes") {
                continue;
            }
            if is_core_key(&prop.key) {
                if !inst
                    .core
                    .iter()
                    .any(|c| c.key.eq_ignore_ascii_case(&prop.key))
                {
                    inst.core.push(seen);
                }
                continue;
            }
            if inst
                .visible
                .iter()
                .any(|v| v.key.eq_ignore_ascii_case(&prop.key))
            {
                inst.shadowed.push(seen);
            } else {
                inst.visible.push(seen);
            }
        }
        inst
    }

    /// Builds an instance from `-p key=value` pairs (no file, no variables).
    pub fn from_pairs(pairs: &[(String, String)]) -> Instance {
        let section = Section {
            kind: "output".into(),
            at: Origin {
                file: "command line".into(),
                line: 0,
            },
            props: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| super::Prop {
                    key: k.to_ascii_lowercase(),
                    value: v.trim().to_string(),
                    at: Origin {
                        file: "-p".into(),
                        line: i + 1,
                    },
                })
                .collect(),
        };
        let none = |_: &str| None;
        let mut inst = Instance::from_section(&section, &Vars::new(&[], &none));
        inst.name = "sigv4_http".into();
        inst.from_command_line = true;
        inst
    }

    /// `output_get_property`: case-insensitive, first wins, `None` for withheld keys.
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.visible
            .iter()
            .find(|v| v.key.eq_ignore_ascii_case(key))
            .and_then(|v| v.value.clone())
    }

    pub fn core_value(&self, key: &str) -> Option<&Seen> {
        self.core.iter().find(|v| v.key.eq_ignore_ascii_case(key))
    }

    pub fn is_sigv4(&self) -> bool {
        self.name.eq_ignore_ascii_case("sigv4_http")
    }
}

/// `flb_utils_bool`: `Some(true)` for true/on/yes, `Some(false)` for false/off/no.
pub fn flb_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Prop, Section};
    use super::*;

    fn vars_with<'a>(
        set: &[(&str, &str)],
        process: &'a dyn Fn(&str) -> Option<String>,
    ) -> Vars<'a> {
        let set: Vec<(String, String)> = set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Vars::new(&set, process)
    }

    #[test]
    fn translate_like_fluent_bit() {
        let process = |k: &str| match k {
            "HOME" => Some("/root".to_string()),
            "EMPTY" => Some(String::new()),
            "REGION" => Some("from-process".to_string()),
            _ => None,
        };
        let v = vars_with(
            &[("REGION", "eu-west-1"), ("REGION", "eu-west-2")],
            &process,
        );
        assert_eq!(v.translate("plain").0, "plain");
        // The table beats the process environment; a later @SET replaces an earlier one.
        assert_eq!(v.translate("${REGION}").0, "eu-west-2");
        assert_eq!(v.translate("a${HOME}b${REGION}c").0, "a/rootbeu-west-2c");
        assert_eq!(v.translate("${NOPE:-dflt}").0, "dflt");
        assert_eq!(v.translate("${EMPTY:-dflt}").0, "dflt");
        let (out, unset) = v.translate("x${NOPE}y");
        assert_eq!(out, "xy");
        assert_eq!(unset, vec!["NOPE".to_string()]);
        assert_eq!(v.translate("${NOPE}").0, "");
        // Unclosed: expansion stops and the rest is dropped, as in Fluent Bit.
        assert_eq!(v.translate("${HOME}/${X").0, "/root");
    }

    fn section(props: &[(&str, &str)]) -> Section {
        Section {
            kind: "output".into(),
            at: Origin {
                file: "f".into(),
                line: 1,
            },
            props: props
                .iter()
                .enumerate()
                .map(|(i, (k, v))| Prop {
                    key: k.to_string(),
                    value: v.to_string(),
                    at: Origin {
                        file: "f".into(),
                        line: i + 2,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn first_key_wins_and_core_keys_are_withheld() {
        let none = |_: &str| None;
        let v = vars_with(&[("EP", "https://e.example/")], &none);
        let inst = Instance::from_section(
            &section(&[
                ("Name", "SIGV4_HTTP"),
                ("Endpoint", "${EP}"),
                ("endpoint", "https://other/"),
                ("Host", "h"),
                ("tls", "on"),
                ("tls.verify", "off"),
                ("Workers", "2"),
                ("workers", "4"),
                ("aws_region", "${UNSET}"),
            ]),
            &v,
        );
        assert!(inst.is_sigv4());
        assert_eq!(
            inst.lookup("ENDPOINT").as_deref(),
            Some("https://e.example/")
        );
        assert_eq!(inst.shadowed.len(), 1);
        assert_eq!(inst.shadowed[0].at.line, 4);
        assert_eq!(inst.lookup("host"), None);
        assert_eq!(inst.lookup("tls"), None);
        assert_eq!(inst.lookup("tls.verify"), None);
        assert_eq!(
            inst.core_value("workers").and_then(|s| s.value.as_deref()),
            Some("2")
        );
        assert_eq!(inst.core.len(), 4);
        // Expanded to nothing: set, but the plugin sees no value.
        assert_eq!(inst.lookup("aws_region"), None);
        assert_eq!(inst.unset_vars[0].0, "UNSET");
    }
}

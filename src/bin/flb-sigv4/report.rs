//! What the doctor found, as data (printed as one JSON document with `--json`) and as text. Every
//! string put in here is already free of secrets: values are redacted where they are collected.

use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(level: Level, at: Option<String>, message: impl Into<String>) -> Self {
        Finding {
            level,
            at,
            message: message.into(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub input: Input,
    /// Fluent Bit would refuse the configuration file itself (nothing starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<Finding>,
    pub findings: Vec<Finding>,
    pub outputs: Vec<OutputReport>,
    /// Exit status 0.
    pub ok: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Input {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syntax: Option<&'static str>,
    pub files: Vec<String>,
    /// Whose environment the plugin's code was given.
    pub environment: String,
    /// Names of the variables that matter to the plugin and are set (values never shown).
    pub variables_set: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PropertyView {
    pub key: String,
    /// Safe to show: secrets replaced (`***`), header values hidden.
    pub value: String,
    pub at: String,
    /// `plugin` (the plugin sees it), `shadowed` (a repeated key: not seen), `core` (Fluent
    /// Bit's own key: not seen by the plugin), `unknown` (seen, but no property of the plugin).
    pub seen_as: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decided {
    pub value: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub target: &'static str,
    pub url: String,
    /// `direct` or `proxy`; `none` when the URL cannot be known (its reason in `rule`).
    pub route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The resolver's own explanation (`direct (metadata endpoint)`, `… (from HTTPS_PROXY)`).
    pub rule: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub source: String,
    /// `chosen`, `skipped` or `error`.
    pub outcome: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_detection: Option<String>,
    /// Whether fetching them worked (`None`: not tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The `AssumedRoleUser` ARN STS returned (`arn:aws:sts::…:assumed-role/…/<session>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendTest {
    pub url: String,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The plugin's verdict (`Delivered`, `AuthFailed`, `ClockSkew`, …) or `transport error`.
    pub verdict: String,
    /// What the plugin would do with a chunk answered like this.
    pub meaning: String,
    pub accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct OutputReport {
    pub index: usize,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub would_start: bool,
    pub findings: Vec<Finding>,
    pub properties: Vec<PropertyView>,
    /// The line init would log when a property is bad (exactly as the plugin logs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_error: Option<String>,
    /// The configuration after defaults, as the plugin logs it at start-up (secrets redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    pub startup_warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Decided>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Decided>,
    pub connections: Vec<Connection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_test: Option<SendTest>,
    /// The plugin's own start-up log lines for this output (verbose).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugin_log: Vec<String>,
}

fn mark(level: Level) -> &'static str {
    match level {
        Level::Info => "note",
        Level::Warning => "WARNING",
        Level::Error => "ERROR",
    }
}

fn finding_line(out: &mut String, indent: &str, f: &Finding) {
    let at =
        f.at.as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
    let _ = writeln!(out, "{indent}{}: {}{at}", mark(f.level), f.message);
}

impl Report {
    pub fn to_text(&self, verbose: u8) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "flb-sigv4 doctor {}", self.version);
        if let Some(c) = &self.input.config {
            let syntax = self.input.syntax.unwrap_or("?");
            let _ = writeln!(out, "configuration: {c} ({syntax})");
            if verbose > 0 || self.input.files.len() > 1 {
                for f in &self.input.files {
                    let _ = writeln!(out, "  read {f}");
                }
            }
        } else {
            let _ = writeln!(out, "configuration: -p properties");
        }
        let _ = writeln!(out, "environment: {}", self.input.environment);
        if verbose > 0 {
            let _ = writeln!(
                out,
                "  variables set (names only): {}",
                if self.input.variables_set.is_empty() {
                    "none".to_string()
                } else {
                    self.input.variables_set.join(", ")
                }
            );
        }
        if let Some(e) = &self.config_error {
            let _ = writeln!(out);
            finding_line(&mut out, "", e);
        }
        for f in &self.findings {
            finding_line(&mut out, "", f);
        }
        for o in &self.outputs {
            let _ = writeln!(out);
            o.write_text(&mut out, verbose);
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "result: {}",
            if self.ok {
                "OK: every sigv4_http output would start".to_string()
            } else if self.config_error.is_some() {
                "FAILED: Fluent Bit would not load this configuration".to_string()
            } else if self.outputs.is_empty() {
                "FAILED: no [OUTPUT] with Name sigv4_http".to_string()
            } else {
                let bad = self
                    .outputs
                    .iter()
                    .filter(|o| !o.would_start || o.send_test.as_ref().is_some_and(|s| !s.accepted))
                    .count();
                format!(
                    "FAILED: {bad} of {} outputs would not start or were not accepted",
                    self.outputs.len()
                )
            }
        );
        out
    }
}

impl OutputReport {
    fn write_text(&self, out: &mut String, verbose: u8) {
        let alias = self
            .alias
            .as_deref()
            .map(|a| format!(" alias {a}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "== output #{}{alias} ({}): {}",
            self.index,
            self.at,
            if self.would_start {
                "would start"
            } else {
                "WOULD NOT START"
            }
        );
        for f in &self.findings {
            if f.level > Level::Info || verbose > 0 {
                finding_line(out, "  ", f);
            }
        }
        if verbose > 0 {
            let _ = writeln!(out, "  properties:");
            for p in &self.properties {
                let _ = writeln!(
                    out,
                    "    {:<22} {:<40} {} ({})",
                    p.key, p.value, p.seen_as, p.at
                );
            }
        }
        if let Some(e) = &self.init_error {
            let _ = writeln!(out, "  init would fail with: {e}");
        }
        if let Some(c) = &self.configuration {
            let _ = writeln!(out, "  configuration: {c}");
        }
        for w in &self.startup_warnings {
            let _ = writeln!(out, "  start-up warning: {w}");
        }
        if let Some(r) = &self.region {
            let _ = writeln!(out, "  region:  {} (from {})", r.value, r.source);
        }
        if let Some(s) = &self.service {
            let _ = writeln!(out, "  service: {} (from {})", s.value, s.source);
        }
        if !self.connections.is_empty() {
            let _ = writeln!(out, "  connections:");
            for c in &self.connections {
                let _ = writeln!(out, "    {:<10} {} -> {}", c.target, c.url, c.rule);
            }
        }
        if let Some(c) = &self.credentials {
            let _ = writeln!(out, "  credentials:");
            for check in &c.checks {
                let _ = writeln!(
                    out,
                    "    [{}] {}: {}",
                    check.outcome, check.source, check.reason
                );
            }
            if let (Some(p), Some(r)) = (&c.provider, &c.reason) {
                let _ = writeln!(out, "    provider: {p} (because {r})");
            }
            if let Some(d) = &c.ec2_detection {
                if verbose > 0 {
                    let _ = writeln!(out, "    EC2 detection: {d}");
                }
            }
            match c.fetched {
                Some(true) => {
                    let _ = writeln!(
                        out,
                        "    fetched: yes{}{}",
                        c.access_key_id
                            .as_deref()
                            .map(|k| format!(", access key id {k}"))
                            .unwrap_or_default(),
                        c.expires
                            .as_deref()
                            .map(|e| format!(", expires {e}"))
                            .unwrap_or_else(|| ", no expiry".to_string())
                    );
                    if let Some(arn) = &c.role_arn {
                        let _ = writeln!(out, "    role: {arn}");
                    }
                    if let Some(arn) = &c.assumed_role_arn {
                        let _ = writeln!(out, "    assumed role: {arn}");
                    }
                }
                Some(false) => {
                    let _ = writeln!(out, "    fetched: NO");
                }
                None => {}
            }
            if let Some(e) = &c.error {
                let _ = writeln!(out, "    error: {e}");
            }
            for h in &c.hints {
                let _ = writeln!(out, "    hint: {h}");
            }
        }
        if let Some(t) = &self.send_test {
            let _ = writeln!(out, "  send test: POST {} ({})", t.url, t.body);
            match t.status {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "    HTTP {s}: {} -> {}{}",
                        t.verdict,
                        t.meaning,
                        if t.accepted {
                            " [accepted]"
                        } else {
                            " [NOT accepted]"
                        }
                    );
                }
                None => {
                    let _ = writeln!(out, "    no response: {} [NOT accepted]", t.meaning);
                }
            }
            if let Some(r) = &t.response {
                if !r.is_empty() {
                    let _ = writeln!(out, "    response: {r}");
                }
            }
            if let Some(e) = &t.error {
                let _ = writeln!(out, "    error: {e}");
            }
        }
        if verbose > 1 && !self.plugin_log.is_empty() {
            let _ = writeln!(out, "  plugin log:");
            for l in &self.plugin_log {
                let _ = writeln!(out, "    {l}");
            }
        }
    }
}

//! The checks: for each `sigv4_http` output, what Fluent Bit's core hands the plugin, then the
//! plugin's own start-up code on it (property parsing, proxy resolver, signing scope, credential
//! chain), each decision recorded with its reason.

use crate::args::Options;
use crate::fbconf::instance::{flb_bool, Instance, Vars};
use crate::fbconf::{self, Document, Syntax};
use crate::report::{
    Check, Connection, Credentials, Decided, Finding, Level, OutputReport, PropertyView, Report,
};
use crate::send_test;
use flb_sigv4::aws::credentials::{self, ChainContext};
use flb_sigv4::aws::scope::resolve_scope;
use flb_sigv4::config::{Config, PROPERTIES};
use flb_sigv4::env::Env;
use flb_sigv4::http::client::{build_client, ClientOptions};
use flb_sigv4::http::proxy::{redact_raw, redact_url, ProxyResolver};
use flb_sigv4::log::{Level as LogLevel, Log, SharedLog};
use flb_sigv4::output::{Auth, Output};
use reqwest::Url;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the doctor waits for credentials (a provider's own timeouts are shorter).
const FETCH_LIMIT: Duration = Duration::from_secs(40);

/// The environment the plugin's code is given, and whose it is.
pub struct Environment {
    pub env: Env,
    pub description: String,
    /// Fluent Bit's `--enable-hot-reload` / `-Y`, when its command line is known.
    pub hot_reload_flag: Option<bool>,
}

pub fn environment(opts: &Options) -> Result<Environment, String> {
    let Some(pid) = opts.env_from_pid else {
        return Ok(Environment {
            env: Env::from_process(),
            description: "this process (use --env-from-pid PID to see Fluent Bit's)".into(),
            hot_reload_flag: None,
        });
    };
    let path = format!("/proc/{pid}/environ");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let pairs = bytes.split(|b| *b == 0).filter_map(|entry| {
        let text = std::str::from_utf8(entry).ok()?;
        let (k, v) = text.split_once('=')?;
        Some((k.to_string(), v.to_string()))
    });
    let env = Env::from_pairs(pairs);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let hot = cmdline
        .split(|b| *b == 0)
        .any(|a| a == b"-Y" || a == b"--enable-hot-reload");
    Ok(Environment {
        env,
        description: format!("process {pid} ({path})"),
        hot_reload_flag: Some(hot),
    })
}

/// Names of variables that change what the plugin does (values never shown).
fn relevant_names(env: &Env) -> Vec<String> {
    env.names()
        .into_iter()
        .filter(|n| {
            n.starts_with("AWS_")
                || n.starts_with("FLB_SIGV4_")
                || n.eq_ignore_ascii_case("https_proxy")
                || n.eq_ignore_ascii_case("http_proxy")
                || n.eq_ignore_ascii_case("all_proxy")
                || n.eq_ignore_ascii_case("no_proxy")
                || n == "HOME"
        })
        .collect()
}

pub async fn run(opts: &Options, envr: &Environment) -> Report {
    let mut report = Report {
        version: env!("CARGO_PKG_VERSION"),
        ..Report::default()
    };
    report.input.environment = envr.description.clone();
    report.input.variables_set = relevant_names(&envr.env);

    let (instances, hot_reload) = match &opts.config {
        None => (vec![Instance::from_pairs(&opts.props)], None),
        Some(path) => {
            report.input.config = Some(path.display().to_string());
            match fbconf::read(path) {
                Err(e) => {
                    report.config_error = Some(Finding::new(
                        Level::Error,
                        Some(e.at.to_string()),
                        format!("Fluent Bit would refuse this configuration: {}", e.message),
                    ));
                    return report;
                }
                Ok(doc) => {
                    report.input.syntax = Some(match doc.syntax {
                        Syntax::Classic => "classic",
                        Syntax::Yaml => "yaml",
                    });
                    report.input.files =
                        doc.files.iter().map(|f| f.display().to_string()).collect();
                    for w in &doc.warnings {
                        report
                            .findings
                            .push(Finding::new(Level::Warning, None, w.clone()));
                    }
                    let lookup = envr.env.lookup();
                    let vars = Vars::new(&doc.vars, &lookup);
                    let hot = service_hot_reload(&doc, &vars);
                    let all: Vec<Instance> = doc
                        .sections_of("output")
                        .map(|s| Instance::from_section(s, &vars))
                        .collect();
                    let others = all.iter().filter(|i| !i.is_sigv4()).count();
                    if others > 0 && opts.verbose > 0 {
                        report.findings.push(Finding::new(
                            Level::Info,
                            None,
                            format!(
                                "{others} other output(s) not checked (Name is not sigv4_http)"
                            ),
                        ));
                    }
                    (all.into_iter().filter(Instance::is_sigv4).collect(), hot)
                }
            }
        }
    };
    // Hot reload: the service setting, the command-line flag of the process, or --hot-reload.
    let hot_reload = if opts.hot_reload {
        Some("--hot-reload given".to_string())
    } else if envr.hot_reload_flag == Some(true) {
        Some("the process runs with --enable-hot-reload".to_string())
    } else {
        hot_reload
    };
    if instances.is_empty() {
        report.findings.push(Finding::new(
            Level::Error,
            None,
            "no [OUTPUT] with Name sigv4_http in this configuration",
        ));
        return report;
    }
    for (i, inst) in instances.iter().enumerate() {
        let out = check_output(i + 1, inst, hot_reload.as_deref(), opts, &envr.env).await;
        report.outputs.push(out);
    }
    // A `tls on` anywhere makes Fluent Bit refuse the whole configuration.
    let refused = report.outputs.iter().any(|o| {
        o.findings
            .iter()
            .any(|f| f.message.contains("does not support TLS"))
    });
    report.ok = !refused
        && report.outputs.iter().all(|o| {
            o.would_start
                && o.credentials
                    .as_ref()
                    .map_or(true, |c| c.fetched != Some(false))
                && o.send_test.as_ref().map_or(true, |t| t.accepted)
        });
    report
}

/// `[SERVICE] Hot_Reload on` (YAML `service: hot_reload: on`).
fn service_hot_reload(doc: &Document, vars: &Vars<'_>) -> Option<String> {
    let service = doc.sections_of("service").next()?;
    let prop = service.first("hot_reload")?;
    let (value, _) = vars.translate(&prop.value);
    (flb_bool(&value) == Some(true)).then(|| format!("Hot_Reload {value} ({})", prop.at))
}

/// A property value safe to print.
fn shown_value(key: &str, value: Option<&str>) -> String {
    let Some(value) = value else {
        return "(empty)".into();
    };
    let key = key.to_ascii_lowercase();
    match key.as_str() {
        "proxy" => redact_raw(value),
        "headers" => value
            .split(';')
            .filter_map(|pair| {
                pair.split_once(':')
                    .map(|(n, _)| format!("{}: ***", n.trim()))
            })
            .collect::<Vec<_>>()
            .join("; "),
        "aws_external_id" => "***".into(),
        k if PROPERTIES.iter().any(|p| p.name == k) => value.to_string(),
        "match"
        | "match_regex"
        | "alias"
        | "log_level"
        | "log_suppress_interval"
        | "host"
        | "port"
        | "ipv6"
        | "retry_limit"
        | "workers"
        | "tls"
        | "tls.verify"
        | "tls.verify_hostname"
        | "tls.ca_file"
        | "tls.crt_file"
        | "tls.key_file"
        | "storage.total_limit_size"
        | "net.connect_timeout" => value.to_string(),
        _ => "(value not shown)".into(),
    }
}

/// What to write instead of a key the core keeps or the plugin does not know.
fn suggestion(key: &str) -> Option<&'static str> {
    Some(match key.to_ascii_lowercase().as_str() {
        "host" | "port" | "uri" => "put scheme, host, port and path in one endpoint URL",
        "tls.verify" => "use tls_verify",
        "tls.ca_file" => "use tls_ca_file",
        "tls.crt_file" => "use tls_crt_file",
        "tls.key_file" => "use tls_key_file",
        "header" => "use headers 'Name: value; Other: value' (repeated keys reach the plugin once)",
        "http_proxy" => "use proxy",
        "net.connect_timeout" => "use connect_timeout",
        "net.io_timeout" | "net.keepalive_idle_timeout" => "use timeout",
        "json_date_key" | "format" => return None,
        "region" => "use aws_region",
        "service" => "use aws_service",
        "role_arn" => "use aws_role_arn",
        _ => return None,
    })
}

fn config_findings(inst: &Instance, hot_reload: Option<&str>) -> Vec<Finding> {
    let mut f = Vec::new();
    for (name, at) in &inst.unset_vars {
        f.push(Finding::new(
            Level::Warning,
            Some(at.to_string()),
            format!("${{{name}}} is used but set nowhere (@SET, env, or the process environment): it expands to nothing"),
        ));
    }
    if let Some(tls) = inst.core_value("tls") {
        if tls.value.as_deref().and_then(flb_bool) == Some(true) {
            f.push(Finding::new(
                Level::Error,
                Some(tls.at.to_string()),
                "tls on: Fluent Bit rejects the whole configuration ('[config] sigv4_http does not support TLS'). Remove it: an https:// endpoint uses TLS",
            ));
        }
    }
    for c in &inst.core {
        let key = c.key.to_ascii_lowercase();
        if key == "tls" {
            continue;
        }
        let handled_by_core = matches!(
            key.as_str(),
            "match"
                | "match_regex"
                | "alias"
                | "log_level"
                | "log_suppress_interval"
                | "retry_limit"
                | "workers"
                | "storage.total_limit_size"
        );
        if handled_by_core {
            continue;
        }
        let hint = suggestion(&key)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        f.push(Finding::new(
            Level::Warning,
            Some(c.at.to_string()),
            format!(
                "'{}' is Fluent Bit's own key: the plugin never sees it{hint}",
                c.key
            ),
        ));
    }
    for s in &inst.shadowed {
        if !PROPERTIES
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(&s.key))
        {
            // reported once below, as not a property
            continue;
        }
        let first = inst
            .visible
            .iter()
            .find(|v| v.key.eq_ignore_ascii_case(&s.key))
            .map(|v| v.at.to_string())
            .unwrap_or_default();
        let extra = if s.key.eq_ignore_ascii_case("headers") || s.key.eq_ignore_ascii_case("header")
        {
            "; put several headers in one: headers 'A: 1; B: 2'"
        } else {
            ""
        };
        f.push(Finding::new(
            Level::Warning,
            Some(s.at.to_string()),
            format!(
                "'{}' is given again: Fluent Bit passes only the first ({first}) to the plugin{extra}",
                s.key
            ),
        ));
    }
    for v in &inst.visible {
        let key = v.key.to_ascii_lowercase();
        if !PROPERTIES.iter().any(|p| p.name == key) {
            let hint = suggestion(&key)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            f.push(Finding::new(
                Level::Warning,
                Some(v.at.to_string()),
                format!(
                    "'{}' is not a property of sigv4_http and is ignored{hint}",
                    v.key
                ),
            ));
        }
    }
    let workers = inst
        .core_value("workers")
        .and_then(|w| w.value.as_deref())
        .map(|w| w.trim().parse::<i64>().unwrap_or(0));
    match workers {
        None | Some(0) if inst.from_command_line => {}
        None | Some(0) => f.push(Finding::new(
            Level::Warning,
            Some(inst.at.to_string()),
            "Workers is not set: Fluent Bit gives proxy outputs no worker threads by default, so every flush runs on its engine thread and a slow endpoint stalls every input and output. Add 'Workers 2'",
        )),
        Some(n) => {
            if let Some(why) = hot_reload {
                f.push(Finding::new(
                    Level::Warning,
                    inst.core_value("workers").map(|w| w.at.to_string()),
                    format!("Workers {n} together with hot reload ({why}): Fluent Bit (v2.2 to at least v5.1.1) crashes on reload for every proxy output with Workers (README, Known issues). Restart Fluent Bit instead of reloading, or drop Workers"),
                ));
            }
        }
    }
    f
}

fn property_views(inst: &Instance) -> Vec<PropertyView> {
    let mut out = Vec::new();
    for v in &inst.visible {
        let known = PROPERTIES
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(&v.key));
        out.push(PropertyView {
            key: v.key.clone(),
            value: shown_value(&v.key, v.value.as_deref()),
            at: v.at.to_string(),
            seen_as: if known { "plugin" } else { "unknown" },
        });
    }
    for (list, what) in [(&inst.shadowed, "shadowed"), (&inst.core, "core")] {
        for v in list {
            out.push(PropertyView {
                key: v.key.clone(),
                value: shown_value(&v.key, v.value.as_deref()),
                at: v.at.to_string(),
                seen_as: what,
            });
        }
    }
    out
}

/// Collects the plugin's log lines (they are written without secrets by the plugin itself).
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl Log for Collect {
    fn enabled(&self, _level: LogLevel) -> bool {
        true
    }
    fn write(&self, level: LogLevel, message: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(format!("[{level:?}] {message}"));
        }
    }
}

fn connection(target: &'static str, url: &Url, resolver: &ProxyResolver) -> Connection {
    let proxy = resolver.proxy_for(url).map(|p| redact_url(&p));
    Connection {
        target,
        url: redact_url(url),
        route: if proxy.is_some() { "proxy" } else { "direct" },
        proxy,
        rule: resolver.describe(url),
    }
}

async fn check_output(
    index: usize,
    inst: &Instance,
    hot_reload: Option<&str>,
    opts: &Options,
    env: &Env,
) -> OutputReport {
    let mut out = OutputReport {
        index,
        at: inst.at.to_string(),
        alias: inst.core_value("alias").and_then(|a| a.value.clone()),
        findings: config_findings(inst, hot_reload),
        properties: property_views(inst),
        ..OutputReport::default()
    };
    let refused = out.findings.iter().any(|f| f.level == Level::Error);

    // The plugin's init, step by step (src/ffi/exports.rs, src/output.rs).
    let config = match Config::from_lookup(|k| inst.lookup(k)) {
        Ok(c) => c,
        Err(e) => {
            out.init_error = Some(e.to_string());
            return out;
        }
    };
    out.configuration = Some(config.redacted_summary());
    out.startup_warnings = config.startup_warnings();
    let resolver = match ProxyResolver::new(
        &env.lookup(),
        config.proxy.as_ref(),
        config.no_proxy.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            out.init_error = Some(e.to_string());
            return out;
        }
    };
    let client = match build_client(
        &ClientOptions {
            tls: config.tls.clone(),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
        },
        resolver.clone(),
    ) {
        Ok(c) => c,
        Err(e) => {
            out.init_error = Some(e.to_string());
            return out;
        }
    };
    out.connections
        .push(connection("endpoint", &config.endpoint, &resolver));

    let collect = Arc::new(Collect::default());
    let log: SharedLog = collect.clone();
    let mut signer = None;
    if config.aws.auth {
        let http = match flb_sigv4::aws::http::AwsHttp::new(env, &resolver) {
            Ok(h) => h,
            Err(e) => {
                out.init_error = Some(e.to_string());
                return out;
            }
        };
        let scope = match resolve_scope(&config, env, &http).await {
            Ok(s) => s,
            Err(e) => {
                out.init_error = Some(e.to_string());
                out.credentials = Some(imds_hints(Credentials::default(), &e.to_string()));
                return out;
            }
        };
        out.region = Some(Decided {
            value: scope.scope.region.clone(),
            source: scope.region_source.clone(),
        });
        out.service = Some(Decided {
            value: scope.scope.service.clone(),
            source: scope.service_source.clone(),
        });
        let ctx = ChainContext {
            env: env.clone(),
            aws: config.aws.clone(),
            region: Some(scope.scope.region.clone()),
            proxy: resolver.clone(),
            http,
            clock: flb_sigv4::aws::clock::SkewClock::new(),
            log: log.clone(),
        };
        for (target, url) in credentials::service_endpoints(&ctx) {
            match url {
                Ok(u) => out.connections.push(connection(target, &u, &resolver)),
                Err(e) => out.connections.push(Connection {
                    target,
                    url: "-".into(),
                    route: "none",
                    proxy: None,
                    rule: e,
                }),
            }
        }
        let mut creds = Credentials {
            ec2_detection: Some(credentials::detect_ec2(&credentials::sys_root(env)).reason),
            ..Credentials::default()
        };
        let (selection, trace) = credentials::select_traced(&ctx);
        creds.checks = trace
            .into_iter()
            .map(|c| Check {
                source: c.source,
                outcome: c.outcome.to_string(),
                reason: c.reason,
            })
            .collect();
        match selection {
            Err(e) => {
                out.init_error = Some(e.to_string());
                out.credentials = Some(creds);
                return out;
            }
            Ok(sel) => {
                creds.provider = Some(sel.source.name());
                creds.reason = Some(sel.reason.clone());
                out.would_start = !refused;
                let fetched = tokio::time::timeout(FETCH_LIMIT, sel.source.get()).await;
                match fetched {
                    Ok(Ok(c)) => {
                        creds.fetched = Some(true);
                        creds.access_key_id = Some(mask_key_id(c.access_key_id()));
                        creds.expires = c.expiry().map(describe_expiry);
                        creds.role_arn = config.aws.role_arn.clone();
                        creds.assumed_role_arn = sel.source.assumed_role_arn();
                        signer = Some(Auth {
                            scope: scope.scope.clone(),
                            credentials: sel.source.clone(),
                            clock: ctx.clock.clone(),
                        });
                    }
                    Ok(Err(e)) => {
                        creds.fetched = Some(false);
                        creds.error = Some(e.to_string());
                        creds = imds_hints(creds, &e.to_string());
                    }
                    Err(_) => {
                        creds.fetched = Some(false);
                        creds.error =
                            Some(format!("no credentials after {} s", FETCH_LIMIT.as_secs()));
                    }
                }
                out.credentials = Some(creds);
                if let (true, Some(auth)) = (opts.send_test, signer.take()) {
                    let output =
                        Output::assemble(config.clone(), log.clone(), env, client, Some(auth));
                    out.send_test = Some(send_test::run(&output, &config, opts.record).await);
                }
                sel.source.shutdown();
            }
        }
    } else {
        out.would_start = !refused;
        if opts.send_test {
            let output = Output::assemble(config.clone(), log.clone(), env, client, None);
            out.send_test = Some(send_test::run(&output, &config, opts.record).await);
        }
    }
    out.plugin_log = collect.0.lock().map(|l| l.clone()).unwrap_or_default();
    out
}

/// `AKIA…WXYZ` style: enough to tell identities apart, as the AWS CLI shows them.
fn mask_key_id(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("****************{tail}")
}

fn describe_expiry(at: SystemTime) -> String {
    let when = httpdate::fmt_http_date(at);
    match at.duration_since(SystemTime::now()) {
        Ok(left) => format!("{when} (in {} min)", left.as_secs() / 60),
        Err(_) => format!("{when} (already expired)"),
    }
}

/// An IMDSv2 token request that timed out inside a container is the classic hop-limit symptom.
fn imds_hints(mut creds: Credentials, error: &str) -> Credentials {
    let lower = error.to_ascii_lowercase();
    let timed_out = ["no answer in time", "timed out", "timeout"]
        .iter()
        .any(|t| lower.contains(t));
    if lower.contains("imdsv2 token request") && timed_out {
        creds.hints.push("the IMDSv2 token request timed out: inside a container the instance's metadata hop limit must be at least 2 (aws ec2 modify-instance-metadata-options --instance-id i-… --http-put-response-hop-limit 2)".into());
    }
    creds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_limit_hint_on_token_timeout() {
        // The text of the plugin's IMDS client when the token PUT gets no answer.
        let e = "credentials provider 'imds' failed: IMDSv2 token request at http://169.254.169.254/: no answer in time (1 s to connect, 2 s in all) (after 2 attempts)";
        let c = imds_hints(Credentials::default(), e);
        assert!(
            c.hints.len() == 1 && c.hints[0].contains("hop limit"),
            "{:?}",
            c.hints
        );
        let other =
            "credentials provider 'imds' failed: the IMDSv2 token request answered HTTP 500";
        assert!(imds_hints(Credentials::default(), other).hints.is_empty());
    }

    #[test]
    fn values_shown_without_secrets() {
        assert_eq!(
            shown_value("proxy", Some("http://u:pw@p:3128")),
            "http://u:***@p:3128"
        );
        assert_eq!(
            shown_value("headers", Some("X-Api-Key: abc; X-Team: t")),
            "X-Api-Key: ***; X-Team: ***"
        );
        assert_eq!(shown_value("aws_external_id", Some("ext")), "***");
        assert_eq!(
            shown_value("tls.key_passwd", Some("pw")),
            "(value not shown)"
        );
        assert_eq!(shown_value("http_passwd", Some("pw")), "(value not shown)");
        assert_eq!(shown_value("aws_region", Some("eu-west-1")), "eu-west-1");
        assert_eq!(mask_key_id("AKIDFLBSIGV4TEST0001"), "****************0001");
    }

    #[test]
    fn findings_for_what_breaks_users() {
        let inst = Instance::from_pairs(&[
            ("endpoint".into(), "https://h/".into()),
            ("tls".into(), "on".into()),
            ("host".into(), "h".into()),
            ("header".into(), "A: 1".into()),
            ("header".into(), "B: 2".into()),
        ]);
        let f = config_findings(&inst, None);
        let text: Vec<String> = f
            .iter()
            .map(|f| format!("{:?} {}", f.level, f.message))
            .collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(has("Error tls on"), "{text:#?}");
        assert!(has("'host' is Fluent Bit's own key"), "{text:#?}");
        assert!(!has("'header' is given again"), "{text:#?}");
        assert!(has("'header' is not a property"), "{text:#?}");
        assert!(!has("Workers is not set"), "-p has no [OUTPUT]: {text:#?}");
        let f = config_findings(
            &Instance {
                from_command_line: false,
                ..inst
            },
            None,
        );
        assert!(
            f.iter().any(|f| f.message.contains("Workers is not set")),
            "{f:#?}"
        );

        let twice = Instance::from_pairs(&[
            ("endpoint".into(), "https://h/".into()),
            ("Headers".into(), "A: 1".into()),
            ("headers".into(), "B: 2".into()),
        ]);
        let f = config_findings(&twice, None);
        assert!(
            f.len() == 1 && f[0].message.contains("'headers' is given again"),
            "{f:#?}"
        );

        let inst = Instance::from_pairs(&[
            ("endpoint".into(), "https://h/".into()),
            ("workers".into(), "2".into()),
        ]);
        assert!(config_findings(&inst, None).is_empty());
        let f = config_findings(&inst, Some("Hot_Reload on (x:1)"));
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("hot reload"), "{:?}", f[0]);
    }
}

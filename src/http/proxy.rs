//! One proxy resolver for every HTTP client (endpoint, STS, SSO): DESIGN §5.
//!
//! # Which proxy a request uses
//!
//! 1. Metadata endpoints (169.254.169.254, fd00:ec2::254, 169.254.170.2, 169.254.170.23,
//!    fd00:ec2::23) and loopback (`localhost`, `*.localhost`, 127.0.0.0/8, ::1) are **always**
//!    reached directly, whatever the environment or the `proxy` property say.
//! 2. A host exempted by `NO_PROXY`/`no_proxy` (both read and merged) or by the `no_proxy`
//!    property is reached directly. The exemptions apply to the explicit `proxy` too (as in curl,
//!    where `-x` still honours `NO_PROXY`).
//! 3. The explicit `proxy` property, when set, is used for every other target (http and https),
//!    and the proxy variables of the environment are then not even read.
//! 4. Otherwise https targets use `HTTPS_PROXY`/`https_proxy`, http targets
//!    `HTTP_PROXY`/`http_proxy`, and both fall back to `ALL_PROXY`/`all_proxy`.
//!
//! For every pair of variables, an empty value means unset, and when both spellings are set and
//! differ **the lowercase one wins** (curl's convention). A proxy value without a scheme
//! (`proxy:3128`) means `http://`; only `http://` and `https://` proxies are supported, and a value
//! that is not a usable proxy URL fails construction with an error naming the variable.
//!
//! # `NO_PROXY` syntax
//!
//! Entries are separated by commas and/or whitespace; empty entries are ignored.
//! - `*` alone: every host is reached directly;
//! - `example.com`, `.example.com` and `*.example.com`: that domain **and** all its subdomains
//!   (curl's behaviour since 7.86);
//! - IPv4 and IPv6 literals (IPv6 with or without brackets): that address;
//! - CIDR ranges, `10.0.0.0/8`, `fd00::/8` (also `[fd00::]/8` and `[fd00::/8]`);
//! - `:port` after a host name, an IPv4 literal or range, or a bracketed IPv6 literal
//!   (`example.com:8443`, `10.1.2.3:80`, `[::2]:443`): only that port is exempted; the URL's
//!   effective port counts (its explicit port, else 80 for http and 443 for https).
//!
//! Host matching is case-insensitive and ignores trailing dots. IP entries match only URLs whose
//! host is an IP literal (no DNS resolution). An entry of the `no_proxy` property that cannot be
//! parsed (a bad port, a bad CIDR prefix) is an error. The environment is lenient, as curl, Go
//! and Python requests are: an entry none of them understands (`192.168.*`) is skipped and
//! reported once through [`ProxyResolver::skipped_no_proxy`], never silently ignored.
//!
//! Proxy passwords never appear in `Debug`, [`ProxyResolver::describe`] or [`ProxyError`]: they are
//! rendered as `***` (see [`redact_url`]).

use reqwest::Url;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A proxy setting that cannot be used. Values are always rendered with passwords redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// A proxy URL (from the environment or the `proxy` property) that is not usable.
    #[error("{source_name} has invalid proxy value '{value}': {reason}; expected http://[user:pass@]host[:port], https://… or host:port")]
    InvalidProxy {
        /// The variable (`HTTPS_PROXY`, …) or `property proxy`.
        source_name: String,
        /// The value, password redacted.
        value: String,
        reason: String,
    },
    /// An entry of the `no_proxy` property that cannot be parsed (the environment's are skipped).
    #[error("{source_name} has invalid entry '{entry}': {reason}; expected '*', a host name, '.domain', an IP address, a CIDR range, each optionally with ':port'")]
    InvalidNoProxy {
        /// `property no_proxy`.
        source_name: String,
        entry: String,
        reason: String,
    },
}

/// A proxy URL and where it came from (`HTTPS_PROXY`, `property proxy`, …).
#[derive(Clone)]
struct ProxySetting {
    url: Url,
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: every host.
    All,
    /// A domain (lowercase, no leading or trailing dot): matches itself and its subdomains.
    Domain(String),
    /// One address.
    Ip(IpAddr),
    /// A range: network address (masked) and prefix length.
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone)]
struct NoProxyEntry {
    pattern: Pattern,
    port: Option<u16>,
    /// The entry as written (for [`ProxyResolver::describe`]).
    text: String,
    /// `NO_PROXY`, `no_proxy` or `property no_proxy`.
    source: &'static str,
}

/// The environment variables that may hold a proxy URL (and so a proxy password).
pub const PROXY_URL_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Decides, for each target URL, whether to go through a proxy and which one. Cheap to clone;
/// `Debug` redacts proxy passwords.
#[derive(Clone)]
pub struct ProxyResolver {
    explicit: Option<ProxySetting>,
    https: Option<ProxySetting>,
    http: Option<ProxySetting>,
    all: Option<ProxySetting>,
    no_proxy: Vec<NoProxyEntry>,
    /// Entries of `NO_PROXY`/`no_proxy` that were skipped (the environment is lenient).
    skipped: Vec<SkippedEntry>,
}

/// An environment `NO_PROXY`/`no_proxy` entry that none of curl, Go and Python requests would
/// understand either (such as `192.168.*`): skipped, and reported once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// `NO_PROXY` or `no_proxy`.
    pub source: &'static str,
    pub entry: String,
    pub reason: String,
}

impl fmt::Display for SkippedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entry '{}' skipped: {}; expected '*', a host name, '.domain', '*.domain', an IP \
             address or a CIDR range, each optionally with ':port'",
            self.source, self.entry, self.reason
        )?;
        if let Some(cidr) = wildcard_as_cidr(&self.entry) {
            write!(f, " (for this range write {cidr})")?;
        }
        Ok(())
    }
}

/// `192.168.*` → `192.168.0.0/16`: the CIDR form of a trailing-wildcard IPv4 prefix.
fn wildcard_as_cidr(entry: &str) -> Option<String> {
    let prefix = entry.strip_suffix(".*")?;
    let octets: Vec<&str> = prefix.split('.').collect();
    if octets.is_empty()
        || octets.len() > 3
        || !octets
            .iter()
            .all(|o| o.parse::<u8>().is_ok() && !o.is_empty())
    {
        return None;
    }
    let mut full: Vec<&str> = octets.clone();
    full.resize(4, "0");
    Some(format!("{}/{}", full.join("."), octets.len() * 8))
}

/// Why a URL goes direct or through a proxy.
enum Decision<'a> {
    MetadataEndpoint,
    Loopback,
    NoProxy(&'a NoProxyEntry),
    Proxy(&'a ProxySetting),
    NoProxyConfigured,
    NoHost,
}

impl ProxyResolver {
    /// Builds the resolver.
    ///
    /// `env` is a lookup over the process environment (tests pass a map); `explicit` is the
    /// `proxy` property (it beats the environment's proxy variables for every target);
    /// `extra_no_proxy` is the `no_proxy` property, merged with `NO_PROXY`/`no_proxy`.
    ///
    /// When `HTTPS_PROXY` and `https_proxy` (or `HTTP_PROXY`/`http_proxy`,
    /// `ALL_PROXY`/`all_proxy`) are both set and differ, the lowercase one wins, as in curl.
    ///
    /// An entry of `NO_PROXY`/`no_proxy` that cannot be parsed is skipped (see
    /// [`ProxyResolver::skipped_no_proxy`]); one of the `no_proxy` property is an error.
    pub fn new(
        env: &dyn Fn(&str) -> Option<String>,
        explicit: Option<&Url>,
        extra_no_proxy: Option<&str>,
    ) -> Result<Self, ProxyError> {
        let mut resolver = ProxyResolver::direct();
        if let Some(url) = explicit {
            check_proxy_url(url).map_err(|reason| ProxyError::InvalidProxy {
                source_name: "property proxy".to_string(),
                value: redact_url(url),
                reason,
            })?;
            resolver.explicit = Some(ProxySetting {
                url: url.clone(),
                source: "property proxy",
            });
        } else {
            resolver.https = env_proxy(env, "https_proxy", "HTTPS_PROXY")?;
            resolver.http = env_proxy(env, "http_proxy", "HTTP_PROXY")?;
            resolver.all = env_proxy(env, "all_proxy", "ALL_PROXY")?;
        }
        for var in ["NO_PROXY", "no_proxy"] {
            if let Some(list) = env_value(env, var) {
                for bad in parse_no_proxy(&list, var, &mut resolver.no_proxy) {
                    // Both variables often hold the same list: one report per entry.
                    if !resolver.skipped.iter().any(|s| s.entry == bad.entry) {
                        resolver.skipped.push(bad);
                    }
                }
            }
        }
        if let Some(list) = extra_no_proxy {
            let bad = parse_no_proxy(list, "property no_proxy", &mut resolver.no_proxy);
            if let Some(first) = bad.into_iter().next() {
                return Err(ProxyError::InvalidNoProxy {
                    source_name: first.source.to_string(),
                    entry: first.entry,
                    reason: first.reason,
                });
            }
        }
        Ok(resolver)
    }

    /// A resolver that never uses a proxy.
    pub fn direct() -> Self {
        ProxyResolver {
            explicit: None,
            https: None,
            http: None,
            all: None,
            no_proxy: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The environment's `NO_PROXY`/`no_proxy` entries that were skipped, once each; log each
    /// as a start-up warning (its `Display` is the whole message).
    pub fn skipped_no_proxy(&self) -> &[SkippedEntry] {
        &self.skipped
    }

    /// The proxy to use for `url`, or `None` for a direct connection.
    pub fn proxy_for(&self, url: &Url) -> Option<Url> {
        match self.decide(url) {
            Decision::Proxy(setting) => Some(setting.url.clone()),
            _ => None,
        }
    }

    /// Human text for logs, passwords redacted: `direct (metadata endpoint)`,
    /// `direct (NO_PROXY entry '.corp')`, `http://u:***@proxy:3128 (from HTTPS_PROXY)`, …
    pub fn describe(&self, url: &Url) -> String {
        match self.decide(url) {
            Decision::MetadataEndpoint => "direct (metadata endpoint)".to_string(),
            Decision::Loopback => "direct (loopback)".to_string(),
            Decision::NoProxy(entry) => {
                format!("direct ({} entry '{}')", entry.source, entry.text)
            }
            Decision::Proxy(setting) => {
                format!("{} (from {})", redact_url(&setting.url), setting.source)
            }
            Decision::NoProxyConfigured => "direct (no proxy configured)".to_string(),
            Decision::NoHost => "direct (URL without host)".to_string(),
        }
    }

    fn decide(&self, url: &Url) -> Decision<'_> {
        let Some(host) = TargetHost::of(url) else {
            return Decision::NoHost;
        };
        if let Some(reason) = host.always_direct() {
            return reason;
        }
        let port = url.port_or_known_default();
        if let Some(entry) = self.no_proxy.iter().find(|e| e.matches(&host, port)) {
            return Decision::NoProxy(entry);
        }
        let chosen = if self.explicit.is_some() {
            self.explicit.as_ref()
        } else {
            let by_scheme = match url.scheme() {
                "https" => self.https.as_ref(),
                "http" => self.http.as_ref(),
                _ => None,
            };
            by_scheme.or(self.all.as_ref())
        };
        match chosen {
            Some(setting) => Decision::Proxy(setting),
            None => Decision::NoProxyConfigured,
        }
    }
}

impl fmt::Debug for ProxyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |s: &Option<ProxySetting>| {
            s.as_ref()
                .map(|s| format!("{} (from {})", redact_url(&s.url), s.source))
        };
        let no_proxy: Vec<String> = self
            .no_proxy
            .iter()
            .map(|e| format!("{}:{}", e.source, e.text))
            .collect();
        f.debug_struct("ProxyResolver")
            .field("explicit", &show(&self.explicit))
            .field("https", &show(&self.https))
            .field("http", &show(&self.http))
            .field("all", &show(&self.all))
            .field("no_proxy", &no_proxy)
            .finish()
    }
}

/// A target host, normalised: IPs canonical (IPv4-mapped IPv6 as IPv4), names lowercase without
/// trailing dots.
enum TargetHost {
    Ip(IpAddr),
    Name(String),
}

impl TargetHost {
    fn of(url: &Url) -> Option<TargetHost> {
        url.host_str()
            .filter(|h| !h.is_empty())
            .map(TargetHost::parse)
    }

    fn parse(host: &str) -> TargetHost {
        let trimmed = host.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return TargetHost::Ip(canonical_ip(ip));
        }
        TargetHost::Name(unbracketed.trim_end_matches('.').to_ascii_lowercase())
    }

    fn always_direct(&self) -> Option<Decision<'static>> {
        match self {
            TargetHost::Ip(ip) => {
                if METADATA_IPS.contains(ip) {
                    Some(Decision::MetadataEndpoint)
                } else if ip.is_loopback() {
                    Some(Decision::Loopback)
                } else {
                    None
                }
            }
            TargetHost::Name(name) => {
                if name == "localhost" || name.ends_with(".localhost") {
                    Some(Decision::Loopback)
                } else {
                    None
                }
            }
        }
    }
}

const METADATA_IPS: [IpAddr; 5] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
];

/// True for the hosts that are always reached directly: the EC2/ECS/EKS metadata endpoints and
/// loopback (`localhost`, `*.localhost`, 127.0.0.0/8, ::1). Accepts bracketed IPv6 and trailing
/// dots.
pub fn is_always_direct(host: &str) -> bool {
    TargetHost::parse(host).always_direct().is_some()
}

/// `url` as text with its password (if any) replaced by `***`. A URL whose path is only `/` is
/// shown without it (`http://u:***@proxy:3128`).
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() && shown.set_password(Some("***")).is_err() {
        // Cannot happen for URLs with a host; never fall back to the original text.
        return format!("{}://***", url.scheme());
    }
    let mut text = shown.to_string();
    if shown.path() == "/"
        && shown.query().is_none()
        && shown.fragment().is_none()
        && text.ends_with('/')
    {
        text.pop();
    }
    text
}

/// Redacts the password of proxy-like text that may not parse as a URL: everything between the
/// first `:` of the user-info and the last `@` becomes `***`.
pub fn redact_raw(value: &str) -> String {
    let (scheme, rest) = match value.find("://") {
        Some(i) => value.split_at(i + 3),
        None => ("", value),
    };
    let Some(at) = rest.rfind('@') else {
        return value.to_string();
    };
    let userinfo = &rest[..at];
    let host = &rest[at..];
    match userinfo.find(':') {
        Some(colon) => format!("{scheme}{}:***{host}", &userinfo[..colon]),
        None => value.to_string(),
    }
}

/// Parses a proxy setting: `http://[user:pass@]host[:port]`, `https://…`, or `host:port`
/// (meaning `http://`). The error is a reason without the value.
pub fn parse_proxy_url(value: &str) -> Result<Url, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty".to_string());
    }
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| e.to_string())?;
    check_proxy_url(&url)?;
    Ok(url)
}

fn check_proxy_url(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("unsupported scheme '{other}'")),
    }
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err("no host".to_string()),
    }
}

/// A variable's value, trimmed; empty means unset.
fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The proxy from a lowercase/uppercase pair of variables; lowercase wins when both are set.
fn env_proxy(
    env: &dyn Fn(&str) -> Option<String>,
    lower: &'static str,
    upper: &'static str,
) -> Result<Option<ProxySetting>, ProxyError> {
    let (source, value) = match (env_value(env, lower), env_value(env, upper)) {
        (Some(v), _) => (lower, v),
        (None, Some(v)) => (upper, v),
        (None, None) => return Ok(None),
    };
    let url = parse_proxy_url(&value).map_err(|reason| ProxyError::InvalidProxy {
        source_name: source.to_string(),
        value: redact_raw(&value),
        reason,
    })?;
    Ok(Some(ProxySetting { url, source }))
}

/// Parses a comma/space separated list into `out`; returns the entries it could not parse.
fn parse_no_proxy(
    list: &str,
    source: &'static str,
    out: &mut Vec<NoProxyEntry>,
) -> Vec<SkippedEntry> {
    let mut bad = Vec::new();
    for text in list.split(|c: char| c == ',' || c.is_whitespace()) {
        if text.is_empty() {
            continue;
        }
        match parse_entry(&text.to_ascii_lowercase()) {
            Ok((pattern, port)) => out.push(NoProxyEntry {
                pattern,
                port,
                text: text.to_string(),
                source,
            }),
            Err(reason) => bad.push(SkippedEntry {
                source,
                entry: text.to_string(),
                reason,
            }),
        }
    }
    bad
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port '{text}'"));
    }
    text.parse::<u16>()
        .map_err(|_| format!("invalid port '{text}'"))
}

/// One lowercase, non-empty entry.
fn parse_entry(entry: &str) -> Result<(Pattern, Option<u16>), String> {
    if entry == "*" {
        return Ok((Pattern::All, None));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        // [v6], [v6]:port, [v6/len], [v6]/len
        let close = rest.find(']').ok_or("missing ']'")?;
        let inside = &rest[..close];
        let after = &rest[close + 1..];
        if let Some(len) = after.strip_prefix('/') {
            return Ok((parse_cidr(inside, len)?, None));
        }
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after.strip_prefix(':').ok_or("unexpected text after ']'")?,
            )?),
        };
        return Ok((parse_ip_or_cidr(inside)?, port));
    }
    let colons = entry.matches(':').count();
    if colons > 1 {
        // An IPv6 literal or range without brackets: no port possible.
        return Ok((parse_ip_or_cidr(entry)?, None));
    }
    let (host, port) = match entry.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (entry, None),
    };
    if host.contains('/') {
        return Ok((parse_ip_or_cidr(host)?, port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((Pattern::Ip(canonical_ip(ip)), port));
    }
    let domain = host.strip_prefix("*.").unwrap_or(host);
    let domain = domain.trim_start_matches('.').trim_end_matches('.');
    if domain.is_empty() {
        return Err("empty host".to_string());
    }
    if domain.contains(['*', '/', '@', '[', ']']) {
        return Err("not a host name".to_string());
    }
    Ok((Pattern::Domain(domain.to_string()), port))
}

fn parse_ip_or_cidr(text: &str) -> Result<Pattern, String> {
    match text.split_once('/') {
        Some((addr, len)) => parse_cidr(addr, len),
        None => text
            .parse::<IpAddr>()
            .map(|ip| Pattern::Ip(canonical_ip(ip)))
            .map_err(|_| format!("invalid IP address '{text}'")),
    }
}

fn parse_cidr(addr: &str, len: &str) -> Result<Pattern, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid IP address '{addr}'"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match len.parse::<u8>() {
        Ok(p) if p <= max && len.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(format!("invalid prefix length '/{len}' (0..={max})")),
    };
    Ok(Pattern::Cidr(mask(ip, prefix), prefix))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl NoProxyEntry {
    fn matches(&self, host: &TargetHost, port: Option<u16>) -> bool {
        if let Some(want) = self.port {
            if port != Some(want) {
                return false;
            }
        }
        match (&self.pattern, host) {
            (Pattern::All, _) => true,
            (Pattern::Domain(domain), TargetHost::Name(name)) => {
                name == domain
                    || (name.len() > domain.len()
                        && name.ends_with(domain.as_str())
                        && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
            }
            (Pattern::Ip(ip), TargetHost::Ip(target)) => ip == target,
            (Pattern::Cidr(net, prefix), TargetHost::Ip(target)) => {
                net.is_ipv4() == target.is_ipv4() && mask(*target, *prefix) == *net
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    fn resolver(
        vars: &[(&str, &str)],
        explicit: Option<&str>,
        extra: Option<&str>,
    ) -> Result<ProxyResolver, ProxyError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let explicit = explicit.map(url);
        ProxyResolver::new(&|k| map.get(k).cloned(), explicit.as_ref(), extra)
    }

    fn no_proxy(list: &str) -> ProxyResolver {
        resolver(
            &[
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("HTTP_PROXY", "http://proxy:3128"),
            ],
            None,
            Some(list),
        )
        .expect("valid")
    }

    fn direct(r: &ProxyResolver, u: &str) -> bool {
        r.proxy_for(&url(u)).is_none()
    }

    #[test]
    fn direct_resolver_never_proxies() {
        let r = ProxyResolver::direct();
        assert!(direct(&r, "https://example.com/"));
        assert_eq!(
            r.describe(&url("https://example.com/")),
            "direct (no proxy configured)"
        );
    }

    #[test]
    fn scheme_specific_variables_and_all_proxy() {
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://secure:1"),
                ("HTTP_PROXY", "http://plain:2"),
                ("ALL_PROXY", "http://all:3"),
            ],
            None,
            None,
        )
        .expect("valid");
        assert_eq!(
            r.proxy_for(&url("https://x.com/"))
                .expect("proxy")
                .host_str(),
            Some("secure")
        );
        assert_eq!(
            r.proxy_for(&url("http://x.com/"))
                .expect("proxy")
                .host_str(),
            Some("plain")
        );
        let r = resolver(&[("ALL_PROXY", "http://all:3")], None, None).expect("valid");
        assert_eq!(
            r.proxy_for(&url("https://x.com/"))
                .expect("proxy")
                .host_str(),
            Some("all")
        );
        assert_eq!(
            r.proxy_for(&url("http://x.com/"))
                .expect("proxy")
                .host_str(),
            Some("all")
        );
        assert_eq!(
            r.describe(&url("http://x.com/")),
            "http://all:3 (from ALL_PROXY)"
        );
        // https_proxy does not serve http targets.
        let r = resolver(&[("https_proxy", "http://secure:1")], None, None).expect("valid");
        assert!(direct(&r, "http://x.com/"));
        assert!(!direct(&r, "https://x.com/"));
        let r = resolver(&[("all_proxy", "http://a:1")], None, None).expect("valid");
        assert!(!direct(&r, "http://x.com/"));
    }

    #[test]
    fn lowercase_wins_over_uppercase() {
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://upper:1"),
                ("https_proxy", "http://lower:1"),
                ("HTTP_PROXY", "http://upper:2"),
                ("http_proxy", "http://lower:2"),
            ],
            None,
            None,
        )
        .expect("valid");
        assert_eq!(
            r.describe(&url("https://x.com/")),
            "http://lower:1 (from https_proxy)"
        );
        assert_eq!(
            r.describe(&url("http://x.com/")),
            "http://lower:2 (from http_proxy)"
        );
        // Empty lowercase means unset: the uppercase one is used.
        let r = resolver(
            &[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "  ")],
            None,
            None,
        )
        .expect("valid");
        assert_eq!(
            r.describe(&url("https://x.com/")),
            "http://upper:1 (from HTTPS_PROXY)"
        );
        let r = resolver(&[("HTTPS_PROXY", "")], None, None).expect("valid");
        assert!(direct(&r, "https://x.com/"));
    }

    #[test]
    fn explicit_beats_environment() {
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://env:1"),
                ("HTTP_PROXY", "http://env:2"),
                ("ALL_PROXY", "http://env:3"),
            ],
            Some("http://explicit:8080"),
            None,
        )
        .expect("valid");
        for target in ["https://x.com/", "http://x.com/"] {
            assert_eq!(
                r.describe(&url(target)),
                "http://explicit:8080 (from property proxy)"
            );
        }
        // Explicit set: a broken environment proxy is not even read.
        let r = resolver(
            &[("HTTPS_PROXY", "socks5://x:1")],
            Some("http://explicit:8080"),
            None,
        );
        assert!(r.is_ok());
        // NO_PROXY still exempts hosts from the explicit proxy (as curl does).
        let r =
            resolver(&[("NO_PROXY", ".corp")], Some("http://explicit:8080"), None).expect("valid");
        assert!(direct(&r, "https://a.corp/"));
        assert!(!direct(&r, "https://a.com/"));
    }

    #[test]
    fn explicit_must_be_http_or_https() {
        let err = resolver(&[], Some("socks5://u:hunter2@x:1"), None).expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("property proxy"), "{text}");
        assert!(text.contains("socks5"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn scheme_less_proxy_means_http() {
        let r = resolver(&[("HTTPS_PROXY", "proxy.corp:3128")], None, None).expect("valid");
        let p = r.proxy_for(&url("https://x.com/")).expect("proxy");
        assert_eq!(p.scheme(), "http");
        assert_eq!(p.host_str(), Some("proxy.corp"));
        assert_eq!(p.port(), Some(3128));
        let r = resolver(&[("HTTP_PROXY", "u:p@proxy:3128")], None, None).expect("valid");
        let p = r.proxy_for(&url("http://x.com/")).expect("proxy");
        assert_eq!((p.username(), p.password()), ("u", Some("p")));
        let r = resolver(&[("HTTP_PROXY", "https://proxy:443")], None, None).expect("valid");
        assert_eq!(
            r.proxy_for(&url("http://x.com/")).expect("proxy").scheme(),
            "https"
        );
    }

    #[test]
    fn unparseable_env_proxy_is_an_error_naming_the_variable() {
        for (var, value) in [
            ("HTTPS_PROXY", "http://u:s3cr3tpw@[bad:3128"),
            ("http_proxy", "http://u:s3cr3tpw@host:99999"),
            ("ALL_PROXY", "socks5://u:s3cr3tpw@host:1080"),
            ("all_proxy", "u:s3cr3tpw@host:notaport"),
            ("HTTP_PROXY", "http://u:s3cr3t/pw@host:1"),
        ] {
            let err = resolver(&[(var, value)], None, None).expect_err(value);
            let text = err.to_string();
            assert!(text.contains(var), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
            assert!(text.contains("u:***@"), "{text}");
        }
    }

    #[test]
    fn no_proxy_exact_host_matches_domain_and_subdomains() {
        let r = no_proxy("example.com");
        assert!(direct(&r, "https://example.com/"));
        assert!(direct(&r, "https://api.example.com/"));
        assert!(direct(&r, "https://a.b.example.com/"));
        assert!(!direct(&r, "https://notexample.com/"));
        assert!(!direct(&r, "https://example.com.evil.net/"));
        assert!(!direct(&r, "https://example.org/"));
        assert_eq!(
            r.describe(&url("https://api.example.com/")),
            "direct (property no_proxy entry 'example.com')"
        );
    }

    #[test]
    fn no_proxy_leading_dot_and_wildcard_prefix() {
        for list in [".example.com", "*.example.com"] {
            let r = no_proxy(list);
            assert!(direct(&r, "https://example.com/"), "{list}");
            assert!(direct(&r, "https://x.example.com/"), "{list}");
            assert!(!direct(&r, "https://xexample.com/"), "{list}");
        }
    }

    #[test]
    fn no_proxy_star_means_everything() {
        let r = no_proxy("*");
        assert!(direct(&r, "https://anything.example/"));
        assert!(direct(&r, "http://10.1.2.3/"));
        assert!(direct(&r, "http://[2001:db8::1]/"));
        assert_eq!(
            r.describe(&url("https://a.b/")),
            "direct (property no_proxy entry '*')"
        );
    }

    #[test]
    fn no_proxy_ipv4_literal() {
        let r = no_proxy("10.1.2.3");
        assert!(direct(&r, "http://10.1.2.3/"));
        assert!(direct(&r, "http://10.1.2.3:8080/"));
        assert!(!direct(&r, "http://10.1.2.4/"));
        assert!(!direct(&r, "http://host10.1.2.3.example/"));
        // IPv4-mapped IPv6 targets count as their IPv4 address.
        assert!(direct(&r, "http://[::ffff:10.1.2.3]/"));
    }

    #[test]
    fn no_proxy_ipv6_bracketed_and_not() {
        for list in ["2001:db8::1", "[2001:db8::1]", "2001:DB8:0::1"] {
            let r = no_proxy(list);
            assert!(direct(&r, "http://[2001:db8::1]/"), "{list}");
            assert!(direct(&r, "https://[2001:db8::1]:8443/"), "{list}");
            assert!(!direct(&r, "http://[2001:db8::2]/"), "{list}");
        }
    }

    #[test]
    fn no_proxy_cidr_v4_and_v6() {
        let r = no_proxy("10.0.0.0/8, 192.168.1.0/24");
        assert!(direct(&r, "http://10.200.3.4/"));
        assert!(direct(&r, "http://192.168.1.77/"));
        assert!(!direct(&r, "http://192.168.2.1/"));
        assert!(!direct(&r, "http://11.0.0.1/"));
        // Host bits set in the entry are ignored.
        let r = no_proxy("10.1.2.3/16");
        assert!(direct(&r, "http://10.1.99.99/"));
        let r = no_proxy("fd00::/8 [2001:db8::]/32 [2600:1f00::/24]");
        assert!(direct(&r, "http://[fd12:3456::1]/"));
        assert!(direct(&r, "http://[2001:db8:ffff::1]/"));
        assert!(direct(&r, "http://[2600:1f00:1::1]/"));
        assert!(!direct(&r, "http://[2001:db9::1]/"));
        assert!(!direct(&r, "http://10.0.0.1/"));
        let r = no_proxy("0.0.0.0/0");
        assert!(direct(&r, "http://8.8.8.8/"));
        assert!(!direct(&r, "http://[2001:db8::1]/"));
        assert!(!direct(&r, "http://example.com/"));
    }

    #[test]
    fn no_proxy_port_qualified_entries() {
        let r = no_proxy("example.com:8443,10.1.2.3:80,[2001:db8::1]:443,10.9.0.0/16:8080");
        assert!(direct(&r, "https://example.com:8443/"));
        assert!(!direct(&r, "https://example.com/"));
        // Effective port: default by scheme.
        assert!(direct(&r, "http://10.1.2.3/"));
        assert!(direct(&r, "http://10.1.2.3:80/"));
        assert!(!direct(&r, "https://10.1.2.3/"));
        assert!(direct(&r, "https://[2001:db8::1]/"));
        assert!(!direct(&r, "http://[2001:db8::1]/"));
        assert!(direct(&r, "http://10.9.1.1:8080/"));
        assert!(!direct(&r, "http://10.9.1.1/"));
        let r = no_proxy("example.com:443");
        assert!(direct(&r, "https://sub.example.com/"));
        assert!(!direct(&r, "http://sub.example.com/"));
    }

    #[test]
    fn no_proxy_mixed_case_trailing_dots_whitespace_and_empty_entries() {
        let r = no_proxy("  Example.COM. , ,,\t.Corp.Internal \n  ");
        assert!(direct(&r, "https://EXAMPLE.com/"));
        assert!(direct(&r, "https://api.example.com./"));
        assert!(direct(&r, "https://x.corp.internal/"));
        assert!(!direct(&r, "https://other.net/"));
        let r = no_proxy(" , ,");
        assert!(!direct(&r, "https://example.com/"));
    }

    #[test]
    fn no_proxy_env_variables_are_merged_with_the_property() {
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://p:1"),
                ("NO_PROXY", "a.com"),
                ("no_proxy", "b.com"),
            ],
            None,
            Some("c.com"),
        )
        .expect("valid");
        assert_eq!(
            r.describe(&url("https://a.com/")),
            "direct (NO_PROXY entry 'a.com')"
        );
        assert_eq!(
            r.describe(&url("https://b.com/")),
            "direct (no_proxy entry 'b.com')"
        );
        assert_eq!(
            r.describe(&url("https://c.com/")),
            "direct (property no_proxy entry 'c.com')"
        );
        assert!(!direct(&r, "https://d.com/"));
    }

    #[test]
    fn invalid_no_proxy_entries_are_errors() {
        for (list, needle) in [
            ("example.com:http", "invalid port"),
            ("example.com:99999", "invalid port"),
            ("10.0.0.0/33", "prefix"),
            ("fd00::/129", "prefix"),
            ("10.0.0/8", "invalid IP"),
            ("[::1", "missing ']'"),
            ("[::1]x", "after ']'"),
            ("[nothex]", "invalid IP"),
            ("a*b.com", "not a host"),
            (".", "empty host"),
        ] {
            let err = resolver(&[], None, Some(list)).expect_err(list);
            let text = err.to_string();
            assert!(text.contains(needle), "{list}: {text}");
            assert!(text.contains("property no_proxy"), "{text}");
        }
    }

    #[test]
    fn environment_no_proxy_skips_what_it_cannot_parse_once_each() {
        let list = "192.168.*, *.corp.example,10.0.0.0/40 .inner.example:8443 fd00::/8";
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("NO_PROXY", list),
                ("no_proxy", list),
            ],
            None,
            None,
        )
        .expect("the environment is lenient");
        let skipped: Vec<String> = r.skipped_no_proxy().iter().map(|s| s.to_string()).collect();
        assert_eq!(skipped.len(), 2, "{skipped:#?}");
        assert!(
            skipped[0].starts_with("NO_PROXY entry '192.168.*' skipped: not a host name;"),
            "{}",
            skipped[0]
        );
        assert!(
            skipped[0].ends_with("(for this range write 192.168.0.0/16)"),
            "{}",
            skipped[0]
        );
        assert!(
            skipped[1].starts_with("NO_PROXY entry '10.0.0.0/40' skipped: invalid prefix"),
            "{}",
            skipped[1]
        );
        // The entries around the skipped ones still work.
        assert!(direct(&r, "https://git.corp.example/"));
        assert!(direct(&r, "https://a.inner.example:8443/"));
        assert!(!direct(&r, "https://a.inner.example/"));
        assert!(direct(&r, "https://[fd00::1]/"));
        assert!(!direct(&r, "https://192.168.1.1/"));
        assert!(!direct(&r, "https://example.com/"));
    }

    #[test]
    fn environment_no_proxy_accepts_what_curl_go_and_requests_accept() {
        let r = resolver(
            &[
                ("HTTP_PROXY", "http://proxy:3128"),
                (
                    "no_proxy",
                    "localhost,.a.example,*.b.example,c.example:8080,10.1.2.3,172.16.0.0/12,[::1]:80,*",
                ),
            ],
            None,
            None,
        )
        .expect("valid");
        assert!(
            r.skipped_no_proxy().is_empty(),
            "{:?}",
            r.skipped_no_proxy()
        );
    }

    #[test]
    fn wildcard_ipv4_prefixes_suggest_cidr() {
        assert_eq!(wildcard_as_cidr("10.*").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(
            wildcard_as_cidr("192.168.*").as_deref(),
            Some("192.168.0.0/16")
        );
        assert_eq!(wildcard_as_cidr("10.1.2.*").as_deref(), Some("10.1.2.0/24"));
        for no in ["*", "a.*", "10.1.2.3.*", "300.*", "10..*"] {
            assert_eq!(wildcard_as_cidr(no), None, "{no}");
        }
    }

    #[test]
    fn property_no_proxy_stays_strict() {
        for list in ["192.168.*", "ok.example,10.0.0.0/40"] {
            let err = resolver(&[("NO_PROXY", "192.168.*")], None, Some(list)).expect_err(list);
            assert!(
                err.to_string()
                    .starts_with("property no_proxy has invalid entry"),
                "{err}"
            );
        }
    }

    #[test]
    fn metadata_and_loopback_always_direct_even_with_explicit_proxy() {
        let r = resolver(
            &[
                ("HTTPS_PROXY", "http://env:1"),
                ("HTTP_PROXY", "http://env:1"),
                ("ALL_PROXY", "http://env:1"),
                ("NO_PROXY", ""),
            ],
            Some("http://explicit:1"),
            None,
        )
        .expect("valid");
        for target in [
            "http://169.254.169.254/latest/api/token",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert!(direct(&r, target), "{target}");
            assert_eq!(r.describe(&url(target)), "direct (metadata endpoint)");
        }
        for target in [
            "http://localhost:8080/",
            "https://LOCALHOST./",
            "http://api.localhost/",
            "http://127.0.0.1/",
            "http://127.3.2.1:9000/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(direct(&r, target), "{target}");
            assert_eq!(r.describe(&url(target)), "direct (loopback)");
        }
        assert!(!direct(&r, "http://169.254.169.253/"));
        assert!(!direct(&r, "http://localhost.example.com/"));
        assert!(!direct(&r, "http://128.0.0.1/"));
    }

    #[test]
    fn is_always_direct_host_forms() {
        for host in [
            "169.254.169.254",
            "fd00:ec2::254",
            "[fd00:ec2::254]",
            "FD00:EC2::23",
            "169.254.170.2",
            "169.254.170.23",
            "localhost",
            "LocalHost.",
            "foo.localhost",
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            "[::1]",
        ] {
            assert!(is_always_direct(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "169.254.169.1",
            "fd00:ec2::255",
            "::2",
            "notlocalhost",
            "",
        ] {
            assert!(!is_always_direct(host), "{host}");
        }
    }

    #[test]
    fn passwords_never_appear() {
        const PW: &str = "Sup3rS3cretPw";
        let r = resolver(
            &[
                ("HTTPS_PROXY", &format!("http://alice:{PW}@envproxy:3128")),
                ("HTTP_PROXY", &format!("bob:{PW}@plain:3128")),
            ],
            None,
            None,
        )
        .expect("valid");
        let d = r.describe(&url("https://x.com/"));
        assert_eq!(d, "http://alice:***@envproxy:3128 (from HTTPS_PROXY)");
        let d = r.describe(&url("http://x.com/"));
        assert_eq!(d, "http://bob:***@plain:3128 (from HTTP_PROXY)");
        let dbg = format!("{r:?}");
        assert!(!dbg.contains(PW), "{dbg}");
        assert!(dbg.contains("alice:***@envproxy"), "{dbg}");
        // The URL handed to the HTTP client keeps the password.
        let p = r.proxy_for(&url("https://x.com/")).expect("proxy");
        assert_eq!(p.password(), Some(PW));

        let explicit = format!("http://carol:{PW}@explicit:8080");
        let r = resolver(&[], Some(&explicit), None).expect("valid");
        let d = r.describe(&url("https://x.com/"));
        assert_eq!(d, "http://carol:***@explicit:8080 (from property proxy)");
        assert!(!format!("{r:?}").contains(PW));

        // Percent-encoded and special-character passwords.
        let u = url("http://u:p%40ss%3Aword@h:1");
        assert_eq!(redact_url(&u), "http://u:***@h:1");
        assert_eq!(redact_raw("http://u:p@ss@h:1"), "http://u:***@h:1");
        assert_eq!(redact_raw("u:pw@h:1"), "u:***@h:1");
        assert_eq!(redact_raw("h:1"), "h:1");
        assert_eq!(redact_url(&url("https://h/a/b?c=d")), "https://h/a/b?c=d");
        assert_eq!(redact_url(&url("http://user@h:1/")), "http://user@h:1");
    }

    #[test]
    fn resolver_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
        check::<ProxyResolver>();
        check::<ProxyError>();
    }
}

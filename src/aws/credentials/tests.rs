//! Chain-level tests: selection and precedence, gating, every provider against loopback fakes,
//! role layering, secrets. Every test sets HOME and the sysfs root to temporary directories and
//! every endpoint explicitly to 127.0.0.1: nothing here reaches a real metadata address.

use super::sources::container;
use super::testutil::{creds_json, form_value, sts_xml, FakeServer, Req, Resp, TempDir};
use super::*;
use crate::log::MemoryLog;
use reqwest::Url;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

struct World {
    dir: TempDir,
    vars: Vec<(String, String)>,
    aws: AwsConfig,
    log: Arc<MemoryLog>,
}

impl World {
    /// HOME and the sysfs root in a temporary directory (a non-EC2 host: QEMU), region set.
    fn new() -> World {
        let dir = TempDir::new("chain");
        dir.write("sys/class/dmi/id/sys_vendor", "QEMU\n");
        let vars = vec![
            (
                "HOME".to_string(),
                dir.path().join("home").display().to_string(),
            ),
            (
                SYS_ROOT_VAR.to_string(),
                dir.path().join("sys").display().to_string(),
            ),
        ];
        let aws = AwsConfig {
            auth: true,
            region: Some("us-east-1".into()),
            service: Some("es".into()),
            profile: None,
            role_arn: None,
            external_id: None,
            role_session_name: None,
            sts_endpoint: None,
            imds: ImdsMode::Auto,
        };
        World {
            dir,
            vars,
            aws,
            log: Arc::new(MemoryLog::default()),
        }
    }
    fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.push((k.into(), v.into()));
        self
    }
    fn home_file(&self, rel: &str, content: &str) -> String {
        self.dir.write(&format!("home/.aws/{rel}"), content)
    }
    fn file(&self, rel: &str, content: &str) -> String {
        self.dir.write(rel, content)
    }
    fn ctx(&self) -> ChainContext {
        ChainContext {
            env: Env::from_pairs(self.vars.clone()),
            aws: self.aws.clone(),
            region: self.aws.region.clone(),
            proxy: ProxyResolver::direct(),
            http: crate::aws::http::AwsHttp::new(&Env::default(), &ProxyResolver::direct())
                .expect("client"),
            clock: crate::aws::clock::SkewClock::new(),
            log: self.log.clone(),
        }
    }
    async fn select(&self) -> Result<Selection, CredentialsError> {
        select(&self.ctx()).await
    }
}

fn err_of(r: Result<Selection, CredentialsError>) -> CredentialsError {
    match r {
        Ok(s) => panic!(
            "expected an error, got provider '{}' ({})",
            s.source.name(),
            s.reason
        ),
        Err(e) => e,
    }
}

/// A fake STS: AssumeRole answers credentials named after the role's last path segment and the
/// access key that signed the call; AssumeRoleWithWebIdentity after the token.
async fn fake_sts(lifetime: Duration) -> FakeServer {
    let n = Arc::new(AtomicU32::new(0));
    FakeServer::start(move |r: &Req| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        match form_value(&r.body, "Action").as_deref() {
            Some("AssumeRole") => {
                let Some(auth) = r.header("authorization") else {
                    return Resp::Reply(403, "<ErrorResponse><Error><Code>MissingAuthenticationToken</Code><Message>unsigned</Message></Error></ErrorResponse>".into());
                };
                let signer = auth.split("Credential=").nth(1).and_then(|s| s.split('/').next()).unwrap_or("").to_string();
                if signer.starts_with("ASIA") {
                    return Resp::Reply(
                        403,
                        "<ErrorResponse><Error><Code>AccessDenied</Code><Message>assumed-role sessions may not assume this role</Message></Error></ErrorResponse>".into(),
                    );
                }
                let role = form_value(&r.body, "RoleArn").unwrap_or_default();
                let short = role.rsplit('/').next().unwrap_or("").to_ascii_uppercase();
                Resp::Reply(200, sts_xml("AssumeRole", &format!("ASIA{short}{i}BY{signer}"), "ROLESECRET", "ROLETOKEN", lifetime))
            }
            Some("AssumeRoleWithWebIdentity") => {
                let token = form_value(&r.body, "WebIdentityToken").unwrap_or_default();
                Resp::Reply(200, sts_xml("AssumeRoleWithWebIdentity", &format!("ASIAWEB{i}{}", token.to_ascii_uppercase()), "WEBSECRET", "WEBTOKEN", lifetime))
            }
            _ => Resp::Reply(400, "<ErrorResponse><Error><Code>InvalidAction</Code><Message>what</Message></Error></ErrorResponse>".into()),
        }
    })
    .await
}

#[tokio::test]
async fn explicit_profile_beats_environment() {
    let mut w = World::new();
    w.set("AWS_ACCESS_KEY_ID", "AKIDENV")
        .set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
    w.home_file(
        "credentials",
        "[prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = PRODSECRET\n",
    );
    w.aws.profile = Some("prod".into());
    let s = w.select().await.expect("selected");
    assert_eq!(s.source.name(), "profile:prod");
    assert!(
        s.reason.contains("aws_profile 'prod' is set"),
        "{}",
        s.reason
    );
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "AKIDPROD"
    );
    // An explicit profile that does not exist is an error, not a fall-through to the environment.
    w.aws.profile = Some("nope".into());
    let e = err_of(w.select().await);
    assert!(matches!(e, CredentialsError::Misconfigured { .. }), "{e}");
    assert!(
        e.to_string().contains("aws_profile 'nope' does not exist"),
        "{e}"
    );
}

#[tokio::test]
async fn environment_beats_files_and_reads_no_file() {
    let mut w = World::new();
    w.set("AWS_ACCESS_KEY_ID", "AKIDENV")
        .set("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
        .set("AWS_SESSION_TOKEN", "ENVTOKEN");
    // A garbage config file would fail the chain if it were read.
    w.home_file("config", "garbage without section\n");
    let s = w.select().await.expect("environment");
    assert_eq!(s.source.name(), "environment");
    assert!(s.reason.contains("AWS_SESSION_TOKEN"));
    let c = s.source.get().await.expect("creds");
    assert_eq!(c.session_token(), Some("ENVTOKEN"));
}

#[tokio::test]
async fn half_pair_is_an_error_not_a_fall_through() {
    let mut w = World::new();
    w.set("AWS_ACCESS_KEY_ID", "AKIDENV");
    w.home_file(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = FILESECRET\n",
    );
    let e = err_of(w.select().await);
    assert!(
        e.to_string().contains("environment") && e.to_string().contains("AWS_SECRET_ACCESS_KEY"),
        "{e}"
    );
}

#[tokio::test]
async fn keys_only_in_config_file_work() {
    let w = World::new();
    let path = w.home_file("config", "[default]\nregion = eu-west-1\naws_access_key_id = AKIDCFG\naws_secret_access_key = CFGSECRET\n");
    let s = w.select().await.expect("profile");
    assert_eq!(s.source.name(), "profile:default");
    assert!(
        s.reason.contains(&format!(
            "profile 'default' in {path} has aws_access_key_id"
        )),
        "{}",
        s.reason
    );
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "AKIDCFG"
    );
    assert_eq!(
        region_from_profile(&w.ctx().env, None).as_deref(),
        Some("eu-west-1")
    );
}

#[tokio::test]
async fn keys_split_across_both_files_and_aws_profile() {
    let mut w = World::new();
    w.home_file("config", "[profile dev]\nregion = us-west-2\n");
    let cred_path = w.home_file("credentials", "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = DEVSECRET\naws_session_token = DEVTOKEN\n");
    w.set("AWS_PROFILE", "dev");
    let s = w.select().await.expect("profile");
    assert!(
        s.reason.contains(&format!(
            "AWS_PROFILE is 'dev' and profile 'dev' in {cred_path}"
        )),
        "{}",
        s.reason
    );
    let c = s.source.get().await.expect("creds");
    assert_eq!(c.session_token(), Some("DEVTOKEN"));
    assert_eq!(
        region_from_profile(&w.ctx().env, None).as_deref(),
        Some("us-west-2")
    );
    assert_eq!(region_from_profile(&w.ctx().env, Some("other")), None);
    // AWS_PROFILE naming a missing profile is an error.
    w.set("AWS_PROFILE", "missing");
    let e = err_of(w.select().await);
    assert!(e.to_string().contains("AWS_PROFILE is 'missing'"), "{e}");
}

#[tokio::test]
async fn custom_file_paths_and_garbage_ini() {
    let mut w = World::new();
    let cfg = w.file(
        "elsewhere/cfg",
        "[profile default]\nthis line has no equals sign\n",
    );
    w.set("AWS_CONFIG_FILE", &cfg);
    let e = err_of(w.select().await);
    let text = e.to_string();
    assert!(text.contains(&cfg) && text.contains("line 2"), "{text}");
}

#[tokio::test]
async fn the_trace_records_each_check_and_the_choice_and_select_logs_it() {
    let mut w = World::new();
    let cfg = w.home_file(
        "config",
        "[default]\naws_access_key_id = AKIDTRACE\naws_secret_access_key = s3cr3t-trace\n",
    );
    w.set("AWS_ROLE_ARN", "arn:aws:iam::1:role/lonely");
    let (result, trace) = select_traced(&w.ctx());
    assert!(result.is_ok());
    let steps: Vec<(&str, &str)> = trace
        .iter()
        .map(|c| (c.source.as_str(), c.outcome))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("environment", "skipped"),
            ("web identity", "skipped"),
            ("profile:default", "chosen")
        ]
    );
    assert!(
        trace[1].reason.contains("AWS_ROLE_ARN alone is ignored"),
        "{trace:?}"
    );
    assert!(trace[2].reason.contains(&cfg), "{trace:?}");
    assert!(!format!("{trace:?}").contains("s3cr3t-trace"));
    // select logs the same steps at info, but the choice, which the output's start-up line
    // states with region and service
    w.select().await.expect("selected");
    assert!(w.log.contains(
        "credentials chain: web identity skipped: AWS_WEB_IDENTITY_TOKEN_FILE is not set"
    ));
    assert!(!w.log.contains("credentials chain: profile:default chosen"));

    // nothing configured: every provider skipped, no choice
    let w = World::new();
    let (result, trace) = select_traced(&w.ctx());
    assert!(matches!(
        result,
        Err(CredentialsError::NotConfigured { .. })
    ));
    let sources: Vec<&str> = trace.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(
        sources,
        vec![
            "environment",
            "web identity",
            "shared files",
            "container",
            "EC2 instance metadata"
        ]
    );
    assert!(trace.iter().all(|c| c.outcome == "skipped"));
    assert!(
        trace[4].reason.contains("sys_vendor is 'QEMU'"),
        "{trace:?}"
    );
}

#[tokio::test]
async fn profile_without_credentials_falls_through_and_nothing_configured_lists_checks() {
    let mut w = World::new();
    let cfg = w.home_file("config", "[default]\nregion = us-east-1\n");
    w.set("AWS_ROLE_ARN", "arn:aws:iam::1:role/lonely");
    let e = err_of(w.select().await);
    assert!(matches!(e, CredentialsError::NotConfigured { .. }), "{e}");
    let text = e.to_string();
    for needle in [
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
        "AWS_WEB_IDENTITY_TOKEN_FILE is not set (AWS_ROLE_ARN alone is ignored)",
        "profile 'default'",
        "holds no credential keys",
        &format!("config file {cfg} (exists)"),
        "credentials file",
        "(not found)",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set",
        "aws_imds auto and not EC2",
        "sys_vendor is 'QEMU'",
        "Fix:",
        "aws_auth off",
    ] {
        assert!(text.contains(needle), "missing '{needle}' in: {text}");
    }
}

#[tokio::test]
async fn profile_loop_is_reported() {
    let w = World::new();
    w.home_file(
        "config",
        "[default]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = default\n",
    );
    let e = err_of(w.select().await);
    assert!(
        e.to_string()
            .contains("profile loop: default -> b -> default"),
        "{e}"
    );
    assert!(e.to_string().contains("profile:default"), "{e}");
}

#[tokio::test]
async fn profile_configured_means_zero_requests_to_container_and_imds() {
    let mut w = World::new();
    let imds = FakeServer::start(|_| Resp::Reply(200, "x".into())).await;
    let ecs = FakeServer::start(|_| Resp::Reply(200, "x".into())).await;
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    w.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/creds", ecs.url()),
    );
    w.home_file(
        "credentials",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = FILESECRET\n",
    );
    let s = w.select().await.expect("profile");
    s.source.get().await.expect("creds");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(imds.count() + ecs.count(), 0);
}

#[tokio::test]
async fn imds_gating() {
    let imds = FakeServer::start(|_| Resp::Reply(500, "no".into())).await;
    // off, even with the endpoint set: not used, no request
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    w.aws.imds = ImdsMode::Off;
    let e = err_of(w.select().await);
    assert!(
        e.to_string()
            .contains("EC2 instance metadata: not used (aws_imds off)"),
        "{e}"
    );
    // disabled wins even over on
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())
        .set("AWS_EC2_METADATA_DISABLED", "true");
    w.aws.imds = ImdsMode::On;
    let e = err_of(w.select().await);
    assert!(
        e.to_string()
            .contains("AWS_EC2_METADATA_DISABLED=true (it overrides aws_imds on)"),
        "{e}"
    );
    assert_eq!(
        region_from_imds(&w.ctx().env, ImdsMode::On, &w.ctx().http)
            .await
            .expect("ok"),
        None
    );
    // auto on a non-EC2 host: not used
    let w = World::new();
    let e = err_of(w.select().await);
    assert!(e.to_string().contains("aws_imds auto and not EC2"), "{e}");
    assert_eq!(
        region_from_imds(&w.ctx().env, ImdsMode::Auto, &w.ctx().http)
            .await
            .expect("ok"),
        None
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(imds.count(), 0, "no request reached the fake IMDS");
    // auto with the endpoint override: used
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let s = w.select().await.expect("imds");
    assert_eq!(s.source.name(), "imds");
    assert!(
        s.reason
            .contains("AWS_EC2_METADATA_SERVICE_ENDPOINT is set"),
        "{}",
        s.reason
    );
}

#[tokio::test]
async fn ec2_detected_by_sysfs_selects_imds() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let imds = FakeServer::start(imds_handler(true, calls.clone())).await;
    let mut w = World::new();
    w.file("sys/class/dmi/id/board_asset_tag", "i-0abc\n");
    // The endpoint override keeps this test on loopback; detection is what the reason shows.
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let s = w.select().await.expect("imds");
    assert_eq!(s.source.name(), "imds");
    assert!(
        s.reason.contains("this host is EC2") && s.reason.contains("board_asset_tag is 'i-0abc'"),
        "{}",
        s.reason
    );
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "ASIAIMDS"
    );
    s.source.shutdown();
}

fn imds_handler(
    v2: bool,
    calls: Arc<Mutex<Vec<String>>>,
) -> impl Fn(&Req) -> Resp + Send + Sync + 'static {
    move |r: &Req| {
        calls.lock().expect("lock").push(format!(
            "{} {} token={}",
            r.method,
            r.path,
            r.header("x-aws-ec2-metadata-token").unwrap_or("-")
        ));
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") if v2 => {
                if r.header("x-aws-ec2-metadata-token-ttl-seconds") == Some("21600") {
                    Resp::Reply(200, "IMDSTOKEN1".into())
                } else {
                    Resp::Reply(400, "ttl".into())
                }
            }
            ("PUT", "/latest/api/token") => Resp::Reply(403, "forbidden".into()),
            (_, _) if v2 && r.header("x-aws-ec2-metadata-token") != Some("IMDSTOKEN1") => {
                Resp::Reply(401, "".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                Resp::Reply(200, "my-role\n".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/my-role") => Resp::Reply(
                200,
                creds_json(
                    "ASIAIMDS",
                    "IMDSSECRET",
                    "IMDSSESSION",
                    Duration::from_secs(3600),
                ),
            ),
            ("GET", "/latest/meta-data/placement/region") => Resp::Reply(200, "eu-north-1".into()),
            _ => Resp::Reply(404, "".into()),
        }
    }
}

#[tokio::test]
async fn imds_v2_token_flow() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let imds = FakeServer::start(imds_handler(true, calls.clone())).await;
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    w.aws.imds = ImdsMode::On;
    let s = w.select().await.expect("imds");
    let c = s.source.get().await.expect("creds");
    assert_eq!(c.access_key_id(), "ASIAIMDS");
    assert_eq!(c.session_token(), Some("IMDSSESSION"));
    let seen = calls.lock().expect("lock").clone();
    assert_eq!(seen[0], "PUT /latest/api/token token=-");
    assert!(
        seen[1..].iter().all(|l| l.ends_with("token=IMDSTOKEN1")),
        "{seen:?}"
    );
    assert_eq!(
        region_from_imds(&w.ctx().env, ImdsMode::On, &w.ctx().http)
            .await
            .expect("region"),
        Some("eu-north-1".into())
    );
    s.source.shutdown();
}

#[tokio::test]
async fn imds_v1_fallback_only_when_refused_and_allowed() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let imds = FakeServer::start(imds_handler(false, calls.clone())).await;
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let s = w.select().await.expect("imds");
    assert_eq!(
        s.source.get().await.expect("v1 creds").access_key_id(),
        "ASIAIMDS"
    );
    assert!(calls
        .lock()
        .expect("lock")
        .iter()
        .any(|l| l == "GET /latest/meta-data/iam/security-credentials/ token=-"));
    s.source.shutdown();

    w.set("AWS_EC2_METADATA_V1_DISABLED", "true");
    let s = w.select().await.expect("imds");
    let e = s.source.get().await.expect_err("v1 disabled");
    let text = e.to_string();
    assert!(
        text.contains("'imds'") && text.contains("AWS_EC2_METADATA_V1_DISABLED=true"),
        "{text}"
    );
    s.source.shutdown();
}

#[tokio::test]
async fn imds_that_hangs_is_bounded() {
    let imds = FakeServer::start(|_| Resp::Hang).await;
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let s = w.select().await.expect("imds");
    let start = std::time::Instant::now();
    let e = s.source.get().await.expect_err("hang");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().contains("no answer in time"), "{e}");
    s.source.shutdown();
}

#[tokio::test]
async fn imds_without_role() {
    let imds = FakeServer::start(|r: &Req| match r.method.as_str() {
        "PUT" => Resp::Reply(200, "T".into()),
        _ => Resp::Reply(404, "".into()),
    })
    .await;
    let mut w = World::new();
    w.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let s = w.select().await.expect("imds");
    let e = s.source.get().await.expect_err("no role");
    assert!(e.to_string().contains("no IAM role is attached"), "{e}");
    s.source.shutdown();
}

#[tokio::test]
async fn container_full_uri_with_token_file_reread() {
    let ecs = FakeServer::start(|r: &Req| {
        let auth = r.header("authorization").unwrap_or("").to_string();
        if let Some(n) = auth.strip_prefix("PODTOKEN") {
            Resp::Reply(
                200,
                creds_json(
                    &format!("ASIAPOD{n}"),
                    "PODSECRET",
                    "PODSESSION",
                    Duration::from_secs(3600),
                ),
            )
        } else {
            Resp::Reply(401, format!("{{\"message\":\"bad token {auth}\"}}"))
        }
    })
    .await;
    let mut w = World::new();
    let token_file = w.file("token", "PODTOKEN1\n");
    w.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v1/credentials", ecs.url()),
    );
    w.set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    w.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "IGNOREDTOKEN");
    let s = w.select().await.expect("container");
    assert_eq!(s.source.name(), "container");
    assert!(
        s.reason.contains("authorization token from file"),
        "{}",
        s.reason
    );
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "ASIAPOD1"
    );
    std::fs::write(&token_file, "PODTOKEN2").expect("rotate");
    s.source.invalidate();
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "ASIAPOD2"
    );
    // A token the endpoint refuses: the error never echoes it.
    std::fs::write(&token_file, "WRONGTOKEN").expect("rotate");
    s.source.invalidate();
    let e = s.source.get().await.expect_err("refused");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("HTTP 401") && !text.contains("WRONGTOKEN"),
        "{text}"
    );
    // Missing and empty token files.
    std::fs::write(&token_file, "  \n").expect("empty");
    s.source.invalidate();
    assert!(s
        .source
        .get()
        .await
        .expect_err("empty")
        .to_string()
        .contains("token is empty"));
    std::fs::remove_file(&token_file).expect("rm");
    s.source.invalidate();
    assert!(s
        .source
        .get()
        .await
        .expect_err("missing")
        .to_string()
        .contains("cannot read the authorization token file"));
}

#[test]
fn container_relative_uri_and_env_token() {
    let mut w = World::new();
    w.set(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "/v2/credentials/abc",
    );
    w.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ENVAUTH");
    // No runtime here: the source is built but nothing is fetched.
    let (_, reason) = container::from_env(&w.ctx(), "container")
        .expect("ok")
        .expect("configured");
    assert!(
        reason.contains("http://169.254.170.2/v2/credentials/abc"),
        "{reason}"
    );
    assert!(reason.contains("direct (metadata endpoint)"), "{reason}");
    assert!(!reason.contains("ENVAUTH"));
}

#[test]
fn container_host_rule() {
    for (uri, ok) in [
        ("http://127.0.0.1:9/c", true),
        ("http://localhost:9/c", true),
        ("http://[::1]:9/c", true),
        ("http://169.254.170.2/c", true),
        ("http://169.254.170.23/v1/credentials", true),
        ("http://[fd00:ec2::23]/v1/credentials", true),
        ("https://creds.example.com/c", true),
        ("http://creds.example.com/c", false),
        ("http://10.0.0.1/c", false),
        ("http://169.254.169.254/c", false),
        ("ftp://127.0.0.1/c", false),
    ] {
        let mut w = World::new();
        w.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri);
        match container::from_env(&w.ctx(), "container") {
            Ok(found) => assert!(ok && found.is_some(), "{uri} should be refused"),
            Err(e) => {
                assert!(!ok, "{uri}: {e}");
                assert!(
                    matches!(e, CredentialsError::Misconfigured { ref provider, .. } if provider == "container"),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn sso_profile_is_selected_without_network() {
    let mut w = World::new();
    w.home_file(
        "config",
        "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Dev\n\
         [sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://corp.awsapps.com/start\n",
    );
    w.aws.profile = Some("dev".into());
    // Outside any runtime: no background fetch can start (SSO would read the real HOME's token
    // cache and call AWS).
    let s = util::poll_ready(select(&w.ctx()))
        .expect("ready")
        .expect("sso");
    assert_eq!(s.source.name(), "profile:dev");
    assert!(
        s.reason
            .contains("SSO start URL https://corp.awsapps.com/start"),
        "{}",
        s.reason
    );
    s.source.shutdown();
}

#[tokio::test]
async fn web_identity_reads_the_token_file_at_each_refresh() {
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut w = World::new();
    let token_file = w.file("wi-token", "tokena\n");
    w.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .set("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa")
        .set("AWS_ROLE_SESSION_NAME", "sess1");
    w.aws.sts_endpoint = Some(Url::parse(&sts.url()).expect("url"));
    let s = w.select().await.expect("web identity");
    assert_eq!(s.source.name(), "web-identity");
    let c = s.source.get().await.expect("creds");
    assert!(
        c.access_key_id().ends_with("TOKENA"),
        "{}",
        c.access_key_id()
    );
    std::fs::write(&token_file, "tokenb").expect("rotate");
    s.source.invalidate();
    let c = s.source.get().await.expect("creds");
    assert!(
        c.access_key_id().ends_with("TOKENB"),
        "{}",
        c.access_key_id()
    );
    let reqs = sts.requests();
    assert!(
        reqs.iter().all(|r| r.header("authorization").is_none()),
        "AssumeRoleWithWebIdentity is unsigned"
    );
    assert!(reqs
        .iter()
        .all(|r| form_value(&r.body, "RoleSessionName").as_deref() == Some("sess1")));
    // empty token file
    std::fs::write(&token_file, "").expect("empty");
    s.source.invalidate();
    let e = s.source.get().await.expect_err("empty");
    assert!(
        e.to_string().contains("web-identity") && e.to_string().contains("is empty"),
        "{e}"
    );
    // token file without a role
    let mut w = World::new();
    w.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    assert!(err_of(w.select().await)
        .to_string()
        .contains("AWS_ROLE_ARN is not"));
}

#[tokio::test]
async fn assume_role_is_signed_with_base_credentials_every_time() {
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut w = World::new();
    w.home_file(
        "credentials",
        "[default]\naws_access_key_id = AKIDBASE\naws_secret_access_key = BASESECRET\n",
    );
    w.aws.role_arn = Some("arn:aws:iam::123456789012:role/writer".into());
    w.aws.external_id = Some("ext-1".into());
    w.aws.role_session_name = Some("my-session".into());
    w.aws.sts_endpoint = Some(Url::parse(&format!("{}/", sts.url())).expect("url"));
    let s = w.select().await.expect("assume role");
    assert_eq!(
        s.source.name(),
        "assume-role:arn:aws:iam::123456789012:role/writer"
    );
    assert!(
        s.reason
            .contains("signed with the credentials of 'profile:default'"),
        "{}",
        s.reason
    );
    for _ in 0..3 {
        let c = s.source.get().await.expect("assumed");
        assert!(
            c.access_key_id().starts_with("ASIAWRITER")
                && c.access_key_id().ends_with("BYAKIDBASE"),
            "{}",
            c.access_key_id()
        );
        assert_eq!(c.session_token(), Some("ROLETOKEN"));
        s.source.invalidate();
    }
    let reqs = sts.requests();
    assert!(reqs.len() >= 3);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        let auth = r.header("authorization").expect("signed");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBASE/")
                && auth.contains("/us-east-1/sts/aws4_request"),
            "{auth}"
        );
        assert!(r.header("x-amz-date").is_some());
        assert_eq!(form_value(&r.body, "ExternalId").as_deref(), Some("ext-1"));
        assert_eq!(
            form_value(&r.body, "RoleSessionName").as_deref(),
            Some("my-session")
        );
        assert_eq!(
            form_value(&r.body, "DurationSeconds").as_deref(),
            Some("3600")
        );
        assert_eq!(
            form_value(&r.body, "Version").as_deref(),
            Some("2011-06-15")
        );
    }
}

#[tokio::test]
async fn assume_role_base_with_session_token_sends_it_signed() {
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut w = World::new();
    w.set("AWS_ACCESS_KEY_ID", "AKIDTMP")
        .set("AWS_SECRET_ACCESS_KEY", "TMPSECRET")
        .set("AWS_SESSION_TOKEN", "TMPSESSION");
    w.aws.role_arn = Some("arn:aws:iam::1:role/r".into());
    w.aws.sts_endpoint = Some(Url::parse(&sts.url()).expect("url"));
    let s = w.select().await.expect("assume role");
    s.source.get().await.expect("assumed");
    let r = &sts.requests()[0];
    assert_eq!(r.header("x-amz-security-token"), Some("TMPSESSION"));
    assert!(r
        .header("authorization")
        .expect("signed")
        .contains("x-amz-security-token"));
}

#[tokio::test]
async fn sts_errors_are_clear() {
    let bad = FakeServer::start(|r: &Req| match r.path.trim_end_matches('/') {
        "/denied" => Resp::Reply(403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error></ErrorResponse>".into()),
        "/malformed" => Resp::Reply(200, "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>".into()),
        _ => Resp::Reply(502, "<html>bad gateway BASESECRET</html>".into()),
    })
    .await;
    for (path, want) in [
        ("/denied", "HTTP 403: AccessDenied: not authorized"),
        (
            "/malformed",
            "the response is not complete AssumeRoleResponse XML: no Credentials/SecretAccessKey",
        ),
        ("/gw", "HTTP 502 with a body that is not STS error XML"),
    ] {
        let mut w = World::new();
        w.home_file(
            "credentials",
            "[default]\naws_access_key_id = AKIDBASE\naws_secret_access_key = BASESECRET\n",
        );
        w.aws.role_arn = Some("arn:aws:iam::1:role/r".into());
        w.aws.sts_endpoint = Some(Url::parse(&format!("{}{path}", bad.url())).expect("url"));
        let s = w.select().await.expect("selected");
        let e = s.source.get().await.expect_err("sts error");
        let text = format!("{e} {e:?}");
        assert!(
            text.contains(want) && text.contains("STS AssumeRole") && text.contains("assume-role:"),
            "{text}"
        );
        assert!(!text.contains("BASESECRET"), "{text}");
    }
}

#[tokio::test]
async fn profile_role_chain_via_sts() {
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut w = World::new();
    w.home_file(
        "config",
        "[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\nrole_session_name = appsess\nexternal_id = x1\nduration_seconds = 900\n",
    );
    w.home_file(
        "credentials",
        "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = BASESECRET\n",
    );
    w.set("AWS_ENDPOINT_URL_STS", &sts.url());
    w.aws.profile = Some("app".into());
    let s = w.select().await.expect("profile");
    assert!(
        s.reason
            .contains("then sts:AssumeRole into arn:aws:iam::1:role/app")
            && s.reason.contains("AWS_ENDPOINT_URL_STS"),
        "{}",
        s.reason
    );
    let c = s.source.get().await.expect("creds");
    assert!(
        c.access_key_id().starts_with("ASIAAPP"),
        "{}",
        c.access_key_id()
    );
    let r = &sts.requests()[0];
    assert_eq!(
        form_value(&r.body, "RoleSessionName").as_deref(),
        Some("appsess")
    );
    assert_eq!(
        form_value(&r.body, "DurationSeconds").as_deref(),
        Some("900")
    );
    assert_eq!(form_value(&r.body, "ExternalId").as_deref(), Some("x1"));
}

#[tokio::test]
async fn profile_credential_source_environment_and_container() {
    let ecs = FakeServer::start(|_| {
        Resp::Reply(
            200,
            creds_json(
                "ASIAECS",
                "ECSSECRET",
                "ECSSESSION",
                Duration::from_secs(3600),
            ),
        )
    })
    .await;
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut w = World::new();
    w.home_file(
        "config",
        "[profile e]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n[profile c]\nrole_arn = arn:aws:iam::1:role/c\ncredential_source = EcsContainer\n",
    );
    w.set("AWS_ENDPOINT_URL", &sts.url());
    w.aws.profile = Some("e".into());
    // Environment keys are read at fetch time; explicit aws_profile still wins over them.
    w.set("AWS_ACCESS_KEY_ID", "AKIDENV")
        .set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
    let s = w.select().await.expect("profile e");
    assert!(s
        .source
        .get()
        .await
        .expect("creds")
        .access_key_id()
        .ends_with("BYAKIDENV"));
    // EcsContainer: signer is the container's ASIA key, which the fake STS refuses as an
    // assumed-role session — the point is that the container was used as the base.
    w.aws.profile = Some("c".into());
    w.set(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/creds", ecs.url()),
    );
    let s = w.select().await.expect("profile c");
    let e = s.source.get().await.expect_err("fake refuses ASIA signers");
    assert!(e.to_string().contains("AccessDenied"), "{e}");
    assert_eq!(ecs.count(), 1);
}

#[tokio::test]
async fn credential_process_through_profile_and_timeout_knob() {
    let mut w = World::new();
    w.home_file(
        "config",
        "[default]\ncredential_process = printf '{\"Version\":1,\"AccessKeyId\":\"AKIDPROC\",\"SecretAccessKey\":\"PROCSECRET\",\"Expiration\":\"2099-01-01T00:00:00Z\"}'\n\
         [profile slow]\ncredential_process = sleep 20\n",
    );
    let s = w.select().await.expect("process");
    assert!(
        s.reason.contains("credential_process 'printf'"),
        "{}",
        s.reason
    );
    assert_eq!(
        s.source.get().await.expect("creds").access_key_id(),
        "AKIDPROC"
    );
    w.set("FLB_SIGV4_CREDENTIAL_PROCESS_TIMEOUT", "0.3");
    w.aws.profile = Some("slow".into());
    let s = w.select().await.expect("slow");
    let e = s.source.get().await.expect_err("timeout");
    assert!(
        e.to_string()
            .contains("credential_process 'sleep' did not finish within 0.3 s"),
        "{e}"
    );
}

#[tokio::test]
async fn two_roles_in_two_chains_never_share_credentials() {
    let sts = fake_sts(Duration::from_secs(3600)).await;
    let mut sources = Vec::new();
    for role in ["alpha", "beta"] {
        let mut w = World::new();
        w.home_file(
            "credentials",
            "[default]\naws_access_key_id = AKIDBASE\naws_secret_access_key = BASESECRET\n",
        );
        w.aws.role_arn = Some(format!("arn:aws:iam::1:role/{role}"));
        w.aws.sts_endpoint = Some(Url::parse(&sts.url()).expect("url"));
        sources.push((role, w.select().await.expect("selected").source, w));
    }
    for _ in 0..3 {
        for (role, src, _) in &sources {
            let c = src.get().await.expect("creds");
            assert!(
                c.access_key_id()
                    .starts_with(&format!("ASIA{}", role.to_ascii_uppercase())),
                "{role}: {}",
                c.access_key_id()
            );
            src.invalidate();
        }
    }
}

/// Outside any runtime (no background fetch can start): these sources point at real AWS.
#[test]
fn sts_needs_a_region() {
    let mut w = World::new();
    w.set("AWS_ACCESS_KEY_ID", "AKID")
        .set("AWS_SECRET_ACCESS_KEY", "SECRET");
    w.aws.region = None;
    w.aws.role_arn = Some("arn:aws:iam::1:role/r".into());
    let run = |w: &World| util::poll_ready(select(&w.ctx())).expect("ready");
    let e = err_of(run(&w));
    assert!(e.to_string().contains("STS needs a region"), "{e}");
    // Default endpoint is regional.
    w.aws.region = Some("eu-central-1".into());
    let s = run(&w).expect("ok");
    assert!(
        s.reason.contains("https://sts.eu-central-1.amazonaws.com"),
        "{}",
        s.reason
    );
    w.aws.region = Some("cn-north-1".into());
    let s = run(&w).expect("ok");
    assert!(
        s.reason.contains("https://sts.cn-north-1.amazonaws.com.cn"),
        "{}",
        s.reason
    );
}

/// Every error we can produce with known secrets in play: none of them shows a secret.
#[tokio::test]
async fn no_secret_in_any_error_or_log() {
    const SECRETS: [&str; 6] = [
        "ENVSECRETVALUE",
        "ENVSESSIONVALUE",
        "WEBTOKENVALUE",
        "PODTOKENVALUE",
        "PROCSECRETVALUE",
        "FILESECRETVALUE",
    ];
    let mut errors: Vec<CredentialsError> = Vec::new();
    let mut logs: Vec<Arc<MemoryLog>> = Vec::new();
    let hostile = FakeServer::start(|r: &Req| {
        // Echoes whatever it got, the way a broken endpoint might.
        let echo = format!("{} {:?} {}", r.path, r.headers, r.body);
        match r.path.as_str() {
            "/json" => Resp::Reply(
                200,
                format!(
                    "{{\"AccessKeyId\": 5, \"echo\": \"{}\"",
                    echo.replace('"', "'")
                ),
            ),
            "/xml" => Resp::Reply(
                200,
                format!(
                    "<AssumeRoleResponse><Credentials><SecretAccessKey>{echo}</SecretAccessKey>"
                ),
            ),
            _ => Resp::Reply(500, echo),
        }
    })
    .await;

    // half environment pairs
    let mut w = World::new();
    w.set("AWS_SECRET_ACCESS_KEY", "ENVSECRETVALUE")
        .set("AWS_SESSION_TOKEN", "ENVSESSIONVALUE");
    errors.push(err_of(w.select().await));
    // environment base + STS echoing errors and malformed XML
    for path in ["/echo", "/xml"] {
        let mut w = World::new();
        w.set("AWS_ACCESS_KEY_ID", "AKID")
            .set("AWS_SECRET_ACCESS_KEY", "ENVSECRETVALUE")
            .set("AWS_SESSION_TOKEN", "ENVSESSIONVALUE");
        w.aws.role_arn = Some("arn:aws:iam::1:role/r".into());
        w.aws.sts_endpoint = Some(Url::parse(&format!("{}{path}", hostile.url())).expect("url"));
        let s = w.select().await.expect("selected");
        errors.push(s.source.get().await.expect_err("fails"));
        logs.push(w.log.clone());
    }
    // web identity against the echoing STS
    let mut w = World::new();
    let tf = w.file("tok", "WEBTOKENVALUE");
    w.set("AWS_WEB_IDENTITY_TOKEN_FILE", &tf)
        .set("AWS_ROLE_ARN", "arn:aws:iam::1:role/w");
    w.aws.sts_endpoint = Some(Url::parse(&format!("{}/echo", hostile.url())).expect("url"));
    let s = w.select().await.expect("selected");
    errors.push(s.source.get().await.expect_err("fails"));
    logs.push(w.log.clone());
    // container echoing the token, and bad JSON
    for path in ["/echo", "/json"] {
        let mut w = World::new();
        w.set(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &format!("{}{path}", hostile.url()),
        )
        .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "PODTOKENVALUE");
        let s = w.select().await.expect("selected");
        errors.push(s.source.get().await.expect_err("fails"));
        logs.push(w.log.clone());
    }
    // container refused URI with a token set
    let mut w = World::new();
    w.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/x")
        .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "PODTOKENVALUE");
    errors.push(err_of(w.select().await));
    // credential_process printing secrets in bad shapes
    for out in [
        "echo PROCSECRETVALUE; exit 3",
        "echo 'PROCSECRETVALUE'",
        r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"PROCSECRETVALUE","Expiration":"1999-01-01T00:00:00Z"}'"#,
        r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"PROCSECRETVALUE","Expiration":"PROCSECRETVALUE"}'"#,
    ] {
        let w = World::new();
        w.home_file(
            "config",
            &format!("[default]\ncredential_process = {out}\n"),
        );
        let s = w.select().await.expect("selected");
        errors.push(s.source.get().await.expect_err("fails"));
        logs.push(w.log.clone());
    }
    // half keys in a profile, garbage next to a secret
    let w = World::new();
    w.home_file(
        "credentials",
        "[default]\naws_secret_access_key = FILESECRETVALUE\n",
    );
    errors.push(err_of(w.select().await));
    let w = World::new();
    w.home_file(
        "credentials",
        "[default]\naws_secret_access_key FILESECRETVALUE\n",
    );
    errors.push(err_of(w.select().await));
    // IMDS echoing
    let mut w = World::new();
    w.set(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        &format!("{}/echo", hostile.url()),
    );
    let s = w.select().await.expect("selected");
    errors.push(s.source.get().await.expect_err("fails"));
    s.source.shutdown();

    assert!(errors.len() >= 14);
    for e in &errors {
        let text = format!("{e} | {e:?}");
        for s in SECRETS {
            assert!(!text.contains(s), "secret {s} in: {text}");
        }
    }
    for log in logs {
        for (_, line) in log.lines.lock().expect("lock").iter() {
            for s in SECRETS {
                assert!(!line.contains(s), "secret {s} in log: {line}");
            }
        }
    }
    // Debug of credentials and selections' reasons do not show secrets either.
    let c = Credentials::new(
        "AKID",
        "ENVSECRETVALUE",
        Some("ENVSESSIONVALUE".into()),
        None,
        "t",
    );
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("ENVSECRETVALUE") && !dbg.contains("ENVSESSIONVALUE"),
        "{dbg}"
    );
}

/// A profile role hop is the same AssumeRole layer as `aws_role_arn`: the source below (here a
/// `credential_process`) has its own cache, a refresh of the role is signed with its cached
/// credentials (the process does not run again), and when STS rejects them as expired they are
/// fetched again once and the call repeated.
#[tokio::test]
async fn profile_role_hop_is_the_assume_role_layer() {
    let sts = FakeServer::start(|r: &Req| {
        let auth = r.header("authorization").unwrap_or("");
        let signer = auth
            .split("Credential=")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or("")
            .to_string();
        if signer == "AKIDPROC1" {
            return Resp::Reply(403, "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error></ErrorResponse>".into());
        }
        Resp::Reply(
            200,
            sts_xml(
                "AssumeRole",
                &format!("ASIAAPPBY{signer}"),
                "ROLESECRET",
                "ROLETOKEN",
                Duration::from_secs(3600),
            ),
        )
    })
    .await;
    let mut w = World::new();
    let counter = w.file("runs", "");
    let script = w.file(
        "proc.sh",
        &format!(
            "#!/bin/sh\necho x >> {counter}\nn=$(wc -l < {counter})\nprintf '{{\"Version\":1,\"AccessKeyId\":\"AKIDPROC%s\",\"SecretAccessKey\":\"PROCSECRET\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}' $n\n"
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    w.home_file(
        "config",
        &format!("[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = proc\n[profile proc]\ncredential_process = {script}\n"),
    );
    w.set("AWS_ENDPOINT_URL_STS", &sts.url());
    w.aws.profile = Some("app".into());
    let s = w.select().await.expect("profile");
    assert_eq!(s.source.name(), "profile:app");
    let c = s.source.get().await.expect("creds after one retry");
    assert_eq!(c.access_key_id(), "ASIAAPPBYAKIDPROC2");
    let runs = || {
        std::fs::read_to_string(&counter)
            .expect("counter")
            .lines()
            .count()
    };
    assert_eq!(runs(), 2, "the rejected base was fetched again once");
    s.source.invalidate();
    let c = s.source.get().await.expect("renewed");
    assert_eq!(c.access_key_id(), "ASIAAPPBYAKIDPROC2");
    assert_eq!(runs(), 2, "the base's own cache served the renewal");
    let signers: Vec<String> = sts
        .requests()
        .iter()
        .map(|r| {
            let a = r.header("authorization").unwrap_or("");
            a.split("Credential=")
                .nth(1)
                .and_then(|s| s.split('/').next())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(signers, ["AKIDPROC1", "AKIDPROC2", "AKIDPROC2"]);
    s.source.shutdown();
}

//! `credential_process`: runs the profile's command line like the AWS CLI does — split into words
//! and executed directly when it has no shell syntax, else with `/bin/sh -c` when that exists
//! (`cmdline.rs`) — with a timeout (30 s; `FLB_SIGV4_CREDENTIAL_PROCESS_TIMEOUT` seconds overrides
//! it), in its own process group, which is killed with `killpg` (no `kill` binary needed) on
//! timeout and when the fetch is abandoned (instance shutdown). Its stderr is logged (warn,
//! truncated); its stdout (the credentials) never is. Output: JSON `Version` 1, `AccessKeyId`, `SecretAccessKey`,
//! optional `SessionToken` and `Expiration` (RFC 3339, must be in the future).

use super::cmdline::{self, Launch};
use crate::aws::credentials::cache::Fetch;
use crate::aws::credentials::util::{self, parse_time};
use crate::aws::credentials::{CredentialsError, CredsFuture};
use crate::flb_log;
use crate::log::{Level, SharedLog};
use aws_credential_types::Credentials;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment knob for the timeout, in seconds (fractions allowed).
pub(crate) const TIMEOUT_VAR: &str = "FLB_SIGV4_CREDENTIAL_PROCESS_TIMEOUT";
const STDOUT_CAP: usize = 1 << 20;
const STDERR_CAP: usize = 64 << 10;
const STDERR_LOGGED: usize = 1024;
/// The shell for command lines with shell syntax (an absolute path: no `PATH` lookup).
pub(crate) const SHELL: &str = "/bin/sh";

pub(crate) struct Process {
    pub command: String,
    pub timeout: Duration,
    pub log: SharedLog,
    /// Provider name for errors (`profile:x`).
    pub provider: String,
    /// Expands a leading `~` of the command line.
    pub home: Option<PathBuf>,
    /// The shell used for shell syntax ([`SHELL`]; tests point it elsewhere).
    pub shell: PathBuf,
}

/// Kills the command's process group when dropped while armed: on timeout, and when the fetch
/// future is dropped (task aborted at shutdown) with the command still running.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = crate::ffi::signal::kill_process_group(pgid);
        }
    }
}

/// The program of a command line, for messages (arguments may be sensitive).
fn program(command: &str) -> String {
    util::short_value(command.split_whitespace().next().unwrap_or(""))
}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    buf
}

impl Process {
    fn label(&self) -> String {
        format!("credential_process '{}'", program(&self.command))
    }

    async fn run(&self) -> Result<Credentials, CredentialsError> {
        let label = self.label();
        let fail = |message: String| CredentialsError::Provider {
            provider: self.provider.clone(),
            message: format!("{label} {message}"),
        };
        let mut command = match cmdline::parse(&self.command, self.home.as_deref()) {
            Launch::Direct(words) => {
                let mut c = tokio::process::Command::new(&words[0]);
                c.args(&words[1..]);
                c
            }
            Launch::Shell(_) if self.shell.exists() => {
                let mut c = tokio::process::Command::new(&self.shell);
                c.arg("-c").arg(&self.command);
                c
            }
            Launch::Shell(why) => {
                return Err(fail(format!(
                    "uses shell syntax ({why}) but there is no shell at {} (as in the distroless Fluent Bit images): \
                     write the command line as a program and its arguments, or point it at a script with its own interpreter",
                    self.shell.display()
                )))
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("could not be started: {e}")))?;
        // process_group(0): the group id is the child's pid.
        let mut group = GroupGuard(child.id());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let outcome = tokio::time::timeout(self.timeout, async {
            let (out, err, status) = tokio::join!(
                read_capped(stdout, STDOUT_CAP),
                read_capped(stderr, STDERR_CAP),
                child.wait()
            );
            (out, err, status)
        })
        .await;
        let (out, err, status) = match outcome {
            Ok(done) => {
                group.disarm();
                done
            }
            Err(_) => {
                drop(group);
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
                return Err(fail(format!(
                    "did not finish within {:.1} s and was killed",
                    self.timeout.as_secs_f64()
                )));
            }
        };
        if !err.iter().all(u8::is_ascii_whitespace) {
            let text = util::snippet(&err, STDERR_LOGGED, &[]);
            flb_log!(self.log, Level::Warn, "{label} wrote to stderr: {text}");
        }
        let status = status.map_err(|e| fail(format!("could not be waited for: {e}")))?;
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            let hint = if err.iter().all(u8::is_ascii_whitespace) {
                " (no stderr output)"
            } else {
                " (its stderr is logged)"
            };
            return Err(fail(format!("{how}{hint}")));
        }
        parse_output(&out).map_err(fail)
    }
}

/// Parses the JSON the process printed. Messages never quote the output.
pub(crate) fn parse_output(stdout: &[u8]) -> Result<Credentials, String> {
    let value: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| {
        if stdout.iter().all(u8::is_ascii_whitespace) {
            "printed nothing on stdout (expected credentials JSON)".to_string()
        } else {
            format!(
                "printed something that is not JSON on stdout (error at line {}, column {})",
                e.line(),
                e.column()
            )
        }
    })?;
    let obj = value
        .as_object()
        .ok_or("printed JSON that is not an object")?;
    let get = |key: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("printed JSON whose {key} is not a string")),
        }
    };
    match get("Version") {
        Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => {}
        Some(_) => return Err("printed JSON with an unsupported Version (expected 1)".into()),
        None => return Err("printed JSON without Version (expected 1)".into()),
    }
    let akid = string("AccessKeyId")?.ok_or("printed JSON without AccessKeyId")?;
    let secret = string("SecretAccessKey")?.ok_or("printed JSON without SecretAccessKey")?;
    let token = string("SessionToken")?;
    let expiry = match string("Expiration")? {
        None => None,
        Some(text) => {
            let t =
                parse_time(&text).ok_or("printed an Expiration that is not an RFC 3339 time")?;
            if t <= SystemTime::now() {
                return Err(format!(
                    "returned credentials that already expired at {}",
                    util::fmt_time(t)
                ));
            }
            Some(t)
        }
    };
    Ok(Credentials::new(
        akid,
        secret,
        token,
        expiry,
        "credential_process",
    ))
}

impl Fetch for Process {
    fn fetch(&self) -> CredsFuture<'_> {
        Box::pin(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::MemoryLog;
    use std::sync::Arc;
    use std::time::Instant;

    fn process(cmd: &str, log: Arc<MemoryLog>, timeout: Duration) -> Process {
        Process {
            command: cmd.into(),
            timeout,
            log,
            provider: "profile:test".into(),
            home: None,
            shell: PathBuf::from(SHELL),
        }
    }

    /// As in the distroless images: no shell at all.
    fn shell_less(cmd: &str, log: Arc<MemoryLog>) -> Process {
        Process {
            shell: PathBuf::from("/nonexistent/sh"),
            ..process(cmd, log, DEFAULT_TIMEOUT)
        }
    }

    const JSON: &str = r#"{"Version":1,"AccessKeyId":"AKIDW","SecretAccessKey":"S3CRETW"}"#;

    #[tokio::test]
    async fn words_run_without_a_shell() {
        let log = Arc::new(MemoryLog::default());
        // Quoted JSON as one argument, like `aws configure export-credentials`-style helpers.
        let c = shell_less(&format!("printf '%s' '{JSON}'"), log.clone())
            .run()
            .await
            .expect("credentials without a shell");
        assert_eq!(c.access_key_id(), "AKIDW");
        // The program really gets the words as its argv, quotes removed, without sh: a tiny
        // script run by its own interpreter prints its arguments one per line on stderr.
        let dir = std::env::temp_dir().join(format!("flb-cp-argv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("argv.py");
        std::fs::write(
            &script,
            format!("#!/usr/bin/env python3\nimport sys, os\nsys.stderr.write('|'.join(sys.argv[1:]) + ' parent=' + os.readlink('/proc/%d/exe' % os.getppid()) + '\\n')\nprint('{JSON}')\n"),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let cmd = format!(r#"{} "two words" 'single $quoted' plain"#, script.display());
        shell_less(&cmd, log.clone())
            .run()
            .await
            .expect("credentials");
        let me = std::env::current_exe().expect("test binary");
        let want = format!("two words|single $quoted|plain parent={}", me.display());
        assert!(log.contains(&want), "expected stderr line: {want}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn shell_syntax_without_a_shell_is_a_clear_error() {
        let log = Arc::new(MemoryLog::default());
        let err = shell_less("helper --secret-arg | jq .", log)
            .run()
            .await
            .expect_err("no shell");
        let text = err.to_string();
        assert!(text.contains("uses shell syntax (a pipe '|')"), "{text}");
        assert!(text.contains("no shell at /nonexistent/sh"), "{text}");
        assert!(!text.contains("--secret-arg"), "{text}");
    }

    #[tokio::test]
    async fn missing_program_is_named() {
        let log = Arc::new(MemoryLog::default());
        let err = shell_less("/nonexistent/helper --x", log)
            .run()
            .await
            .expect_err("no such program");
        let text = err.to_string();
        assert!(
            text.contains("'/nonexistent/helper' could not be started"),
            "{text}"
        );
    }

    /// Whether `pid` is gone (or a zombie waiting for a reaper).
    fn dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let log = Arc::new(MemoryLog::default());
        let file = std::env::temp_dir().join(format!("flb-cp-grandchild-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        // The shell starts a grandchild in the background and waits for it.
        let cmd = format!("sleep 30 & echo $! > {}; wait", file.display());
        let err = process(&cmd, log, Duration::from_millis(500))
            .run()
            .await
            .expect_err("timeout");
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert_grandchild_killed(&file).await;
    }

    #[tokio::test]
    async fn abandoned_fetch_kills_the_group() {
        let log = Arc::new(MemoryLog::default());
        let file = std::env::temp_dir().join(format!("flb-cp-abandoned-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let cmd = format!("sleep 30 & echo $! > {}; wait", file.display());
        let p = process(&cmd, log, DEFAULT_TIMEOUT);
        let task = tokio::spawn(async move { p.run().await });
        let deadline = Instant::now() + Duration::from_secs(3);
        while std::fs::read_to_string(&file).map_or(true, |t| !t.ends_with('\n')) {
            assert!(Instant::now() < deadline, "the command did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Instance shutdown aborts the refresh task, dropping the fetch future.
        task.abort();
        let _ = task.await;
        assert_grandchild_killed(&file).await;
    }

    /// The pid the test command wrote to `file` belongs to a process that ends within 3 s.
    async fn assert_grandchild_killed(file: &std::path::Path) {
        let pid: u32 = std::fs::read_to_string(file)
            .expect("grandchild pid written")
            .trim()
            .parse()
            .expect("pid");
        let _ = std::fs::remove_file(file);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !dead(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dead(pid), "grandchild {pid} still runs");
    }

    #[tokio::test]
    async fn success_with_expiration() {
        let log = Arc::new(MemoryLog::default());
        let cmd = r#"echo note-on-stderr >&2; printf '{"Version":1,"AccessKeyId":"AKIDP","SecretAccessKey":"S3CRETP","SessionToken":"TOKP","Expiration":"2099-01-01T00:00:00Z"}'"#;
        let c = process(cmd, log.clone(), DEFAULT_TIMEOUT)
            .run()
            .await
            .expect("credentials");
        assert_eq!(c.access_key_id(), "AKIDP");
        assert_eq!(c.session_token(), Some("TOKP"));
        assert!(c.expiry().is_some());
        assert!(log.contains("wrote to stderr: note-on-stderr"));
        assert!(!log.contains("S3CRETP"));
    }

    #[tokio::test]
    async fn failures_are_clear_and_never_print_stdout() {
        let log = Arc::new(MemoryLog::default());
        let cases = [
            (
                "echo S3CRETX; echo boom >&2; exit 1",
                "exited with status 1",
            ),
            ("echo 'S3CRETX is not json'", "not JSON"),
            ("true", "printed nothing"),
            (
                r#"echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S3CRETX"}'"#,
                "Version",
            ),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A"}'"#,
                "without SecretAccessKey",
            ),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":7}'"#,
                "not a string",
            ),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S3CRETX","Expiration":"2001-01-01T00:00:00Z"}'"#,
                "already expired",
            ),
        ];
        for (cmd, want) in cases {
            let err = process(cmd, log.clone(), DEFAULT_TIMEOUT)
                .run()
                .await
                .expect_err(cmd);
            let text = format!("{err} {err:?}");
            assert!(text.contains(want), "{cmd}: {text}");
            assert!(text.contains("credential_process"), "{text}");
            assert!(!text.contains("S3CRETX"), "{text}");
        }
        assert!(log.contains("boom"));
        assert!(!log.contains("S3CRETX"));
    }

    #[tokio::test]
    async fn hang_times_out_and_is_killed() {
        let log = Arc::new(MemoryLog::default());
        let start = Instant::now();
        let err = process("sleep 30; echo late", log, Duration::from_millis(300))
            .run()
            .await
            .expect_err("timeout");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("did not finish within 0.3 s"),
            "{err}"
        );
    }
}

//! Deterministic Fluent Bit chunks: v2 events `[[ext-0 timestamp, {}], record]` holding
//! Kubernetes-style records, generated from a fixed-seed PRNG (the same bytes on every run).

/// splitmix64: tiny, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `true` with probability `pct`/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() - 1)]
    }

    fn hex(&mut self, out: &mut String, digits: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for _ in 0..digits {
            out.push(HEX[(self.next_u64() & 15) as usize] as char);
        }
    }

    fn alnum(&mut self, out: &mut String, n: usize) {
        const AL: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        for _ in 0..n {
            out.push(AL[self.range(0, AL.len() - 1)] as char);
        }
    }
}

/// Which records a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `log` of 100–1500 bytes, a `kubernetes` map with labels, `stream`.
    Kubernetes,
    /// ~150-byte JSON lines: a short `log`, `stream` and a pod name.
    Small,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Kubernetes => "k8s",
            Variant::Small => "small",
        }
    }
}

const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "session",
    "GET",
    "POST",
    "/api/v1/orders",
    "/healthz",
    "status=200",
    "status=503",
    "latency_ms=12",
    "latency_ms=340",
    "cache",
    "miss",
    "hit",
    "retry",
    "upstream",
    "connection",
    "reset",
    "by",
    "peer",
    "timeout",
    "after",
    "3",
    "attempts",
    "db",
    "query",
    "SELECT",
    "FROM",
    "orders",
    "WHERE",
    "id",
    "=",
    "processed",
    "batch",
    "of",
    "records",
    "in",
    "worker",
    "pool",
    "queue",
    "depth",
    "memory",
    "usage",
    "gc",
    "pause",
    "tls",
    "handshake",
    "failed",
    "certificate",
    "verify",
    "ok",
    "token",
    "refreshed",
    "for",
    "tenant",
    "shard",
    "partition",
    "offset",
    "committed",
    "consumer",
    "group",
    "rebalance",
    "started",
    "finished",
];

const NON_ASCII: &[&str] = &[
    "utilisateur créé",
    "café crème",
    "Zürich",
    "日本",
    "東京都の注文",
    "ログイン成功",
    "naïve résumé",
    "señor",
];

struct Pod {
    name: String,
    namespace: &'static str,
    container: &'static str,
    host: String,
    pod_id: String,
    docker_id: String,
    image: String,
    labels: Vec<(&'static str, String)>,
}

fn pods(rng: &mut Rng, n: usize) -> Vec<Pod> {
    const APPS: &[(&str, &str)] = &[
        ("checkout", "payments"),
        ("cart", "shop"),
        ("frontend", "web"),
        ("ingest-worker", "data"),
        ("auth", "identity"),
        ("search-api", "search"),
        ("billing", "payments"),
        ("notifier", "platform"),
    ];
    const LABEL_KEYS: &[&str] = &[
        "tier",
        "version",
        "team",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
    ];
    (0..n)
        .map(|_| {
            let (app, ns) = *rng.pick(APPS);
            let mut hash = String::new();
            rng.hex(&mut hash, 9);
            let mut name = format!("{app}-{hash}-");
            rng.alnum(&mut name, 5);
            let host = format!(
                "ip-10-0-{}-{}.ec2.internal",
                rng.range(0, 255),
                rng.range(1, 254)
            );
            let mut pod_id = String::new();
            for (i, d) in [8, 4, 4, 4, 12].into_iter().enumerate() {
                if i > 0 {
                    pod_id.push('-');
                }
                rng.hex(&mut pod_id, d);
            }
            let mut docker_id = String::new();
            rng.hex(&mut docker_id, 64);
            let image = format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/{app}:1.{}.{}",
                rng.range(0, 9),
                rng.range(0, 30)
            );
            let mut labels = vec![
                ("app", app.to_string()),
                ("pod-template-hash", hash.clone()),
                ("app.kubernetes.io/name", app.to_string()),
            ];
            let extra = rng.range(0, 3);
            for key in LABEL_KEYS.iter().take(extra) {
                let value = match *key {
                    "tier" => rng.pick(&["backend", "frontend", "batch"]).to_string(),
                    "version" => format!("v{}", rng.range(1, 9)),
                    "team" => ns.to_string(),
                    "app.kubernetes.io/part-of" => "shop".to_string(),
                    _ => "helm".to_string(),
                };
                labels.push((key, value));
            }
            Pod {
                name,
                namespace: ns,
                container: app,
                host,
                pod_id,
                docker_id,
                image,
                labels,
            }
        })
        .collect()
}

fn push_words(rng: &mut Rng, s: &mut String, until: usize) {
    while s.len() < until {
        s.push_str(rng.pick::<&str>(WORDS));
        s.push(' ');
    }
}

/// A `log` line of about `len` bytes: plain text, an application's JSON (quotes), a stack trace
/// (quotes, newlines, tabs), a Windows path (backslashes), with some non-ASCII text.
fn log_line(rng: &mut Rng, len: usize, ts: u32) -> String {
    let mut s = String::with_capacity(len + 64);
    let kind = rng.range(0, 99);
    let level = *rng.pick(&["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]);
    if kind < 25 {
        // JSON-formatted application log: lots of quotes to escape.
        s.push_str(&format!(
            "{{\"level\":\"{}\",\"ts\":{ts}.{:03},\"caller\":\"server/handler.go:{}\",\"msg\":\"",
            level.to_ascii_lowercase(),
            rng.range(0, 999),
            rng.range(10, 900)
        ));
        push_words(rng, &mut s, len.saturating_sub(60));
        s.push_str("\",\"request_id\":\"");
        rng.hex(&mut s, 16);
        s.push_str("\",\"bytes\":");
        s.push_str(&rng.range(0, 100_000).to_string());
        s.push('}');
    } else if kind < 35 {
        // Stack trace: quotes, newlines, tabs.
        s.push_str("Exception in thread \"worker-");
        s.push_str(&rng.range(1, 16).to_string());
        s.push_str("\" java.lang.IllegalStateException: ");
        let until = s.len() + 40;
        push_words(rng, &mut s, until);
        while s.len() + 60 < len {
            s.push_str(&format!(
                "\n\tat com.example.{}.Handler.handle(Handler.java:{})",
                rng.pick(&["orders", "billing", "search", "auth"]),
                rng.range(10, 500)
            ));
        }
        s.push_str("\n\t... 12 more");
    } else if kind < 42 {
        // Windows-style paths: backslashes.
        s.push_str(&format!("{level} opened C:\\ProgramData\\App\\logs\\svc-"));
        rng.hex(&mut s, 6);
        s.push_str(".log in \\\\fileserver\\share\\tmp ");
        push_words(rng, &mut s, len);
    } else {
        s.push_str(&format!(
            "2023-11-14T22:{:02}:{:02}.{:03}Z {level:<5} [worker-{}] ",
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 999),
            rng.range(1, 16)
        ));
        push_words(rng, &mut s, len);
    }
    if rng.pct(12) {
        s.push(' ');
        s.push_str(rng.pick::<&str>(NON_ASCII));
        s.push(' ');
        let until = s.len() + 10;
        push_words(rng, &mut s, until);
    }
    if rng.pct(3) {
        s.push_str(" \u{1b}[0m"); // a control character: \u001b
    }
    if rng.pct(50) {
        s.push('\n'); // container runtimes keep the line's newline
    }
    s
}

fn str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("vec write");
}

fn map(out: &mut Vec<u8>, n: usize) {
    rmp::encode::write_map_len(out, n as u32).expect("vec write");
}

/// One chunk of at least `target` bytes of msgpack events; returns the chunk and its records.
pub fn chunk(variant: Variant, target: usize, seed: u64) -> (Vec<u8>, usize) {
    let mut rng = Rng::new(seed);
    let pods = pods(&mut rng, 24);
    let mut out = Vec::with_capacity(target + 4096);
    let mut secs: u32 = 1_700_000_000;
    let mut records = 0;
    while out.len() < target {
        secs += u32::from(rng.pct(20));
        let nanos = (rng.next_u64() % 1_000_000_000) as u32;
        // [[ext0(secs, nanos), {}], record]
        rmp::encode::write_array_len(&mut out, 2).expect("vec write");
        rmp::encode::write_array_len(&mut out, 2).expect("vec write");
        rmp::encode::write_ext_meta(&mut out, 8, 0).expect("vec write");
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
        map(&mut out, 0);
        let pod = rng.pick(&pods);
        let stream = if rng.pct(85) { "stdout" } else { "stderr" };
        match variant {
            Variant::Kubernetes => {
                let len = rng.range(100, 1500);
                let log = log_line(&mut rng, len, secs);
                map(&mut out, 3);
                str(&mut out, "log");
                str(&mut out, &log);
                str(&mut out, "stream");
                str(&mut out, stream);
                str(&mut out, "kubernetes");
                map(&mut out, 8);
                for (k, v) in [
                    ("pod_name", pod.name.as_str()),
                    ("namespace_name", pod.namespace),
                    ("pod_id", pod.pod_id.as_str()),
                ] {
                    str(&mut out, k);
                    str(&mut out, v);
                }
                str(&mut out, "labels");
                map(&mut out, pod.labels.len());
                for (k, v) in &pod.labels {
                    str(&mut out, k);
                    str(&mut out, v);
                }
                for (k, v) in [
                    ("host", pod.host.as_str()),
                    ("container_name", pod.container),
                    ("docker_id", pod.docker_id.as_str()),
                    ("container_image", pod.image.as_str()),
                ] {
                    str(&mut out, k);
                    str(&mut out, v);
                }
            }
            Variant::Small => {
                let mut log = format!("{} ", *rng.pick(&["INFO", "INFO", "WARN", "ERROR"]));
                let until = rng.range(30, 70);
                push_words(&mut rng, &mut log, until);
                if rng.pct(10) {
                    log.push_str("\"quoted\"");
                }
                map(&mut out, 3);
                str(&mut out, "log");
                str(&mut out, &log);
                str(&mut out, "stream");
                str(&mut out, stream);
                str(&mut out, "pod");
                str(&mut out, &pod.name);
            }
        }
        records += 1;
    }
    (out, records)
}

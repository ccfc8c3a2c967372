//! Throughput benchmark of the flush path (DESIGN §11, issue 4).
//!
//! `cargo bench --bench flush` runs it in full (under two minutes on 2 cores);
//! `cargo bench --bench flush -- --quick` is a smoke run of a few seconds. Without `--bench`
//! (as `cargo test --all-targets` runs it) it only checks that everything works, on small chunks.
//!
//! It drives the exported `FLBPluginFlushCtx` (through the rlib) against a loopback HTTP/1.1
//! receiver, with SigV4 on (static credentials from the environment), and measures in the same
//! run, on the same bytes, each stage of the pipeline and its floor. Results go to stdout and to
//! `target/bench-flush.json`.

mod data;
mod host;
mod measure;
mod naive;

use data::Variant;
use flb_sigv4::aws::signing::{sign_request, SigningScope};
use flb_sigv4::event::{encode_chunk, BodyOptions, Compression};
use measure::{peak_extra, process_cpu, time, Budget, Stat};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

#[global_allocator]
static ALLOC: measure::Counting = measure::Counting;

const ACCESS_KEY: &str = "AKIDBENCHMARK0000000";
const SECRET_KEY: &str = "benchmark/secret/key/0000000000000000000";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEBenchmarkSessionTokenThatIsAboutAsLongAsARealOne\
    000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
const TAG: &std::ffi::CStr = c"kube.var.log.containers.checkout";

/// How much to measure.
struct Mode {
    name: &'static str,
    chunk_bytes: usize,
    budget: Budget,
    e2e: Budget,
    idle: Duration,
}

impl Mode {
    fn from_args() -> Mode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench = args.iter().any(|a| a == "--bench");
        let quick = args.iter().any(|a| a == "--quick");
        let ms = Duration::from_millis;
        if !bench {
            // `cargo test` runs bench targets without `--bench`: check, don't measure.
            Mode {
                name: "smoke (no --bench: a check, not a measurement)",
                chunk_bytes: 64 * 1024,
                budget: Budget { time: ms(1), batches: 1 },
                e2e: Budget { time: ms(1), batches: 1 },
                idle: ms(100),
            }
        } else if quick {
            Mode {
                name: "quick",
                chunk_bytes: 2 << 20,
                budget: Budget { time: ms(40), batches: 2 },
                e2e: Budget { time: ms(80), batches: 2 },
                idle: ms(500),
            }
        } else {
            Mode {
                name: "full",
                chunk_bytes: 2 << 20,
                budget: Budget { time: ms(700), batches: 7 },
                e2e: Budget { time: ms(1500), batches: 10 },
                idle: Duration::from_secs(2),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Codec {
    name: &'static str,
    compression: Compression,
    /// Floor: the same codec and level with a reused context into a reused buffer.
    floor_name: &'static str,
}

const CODECS: [Codec; 3] = [
    Codec {
        name: "none",
        compression: Compression::None,
        floor_name: "memcpy",
    },
    Codec {
        name: "gzip",
        compression: Compression::Gzip,
        floor_name: "gzip-6, reused state",
    },
    Codec {
        name: "zstd",
        compression: Compression::Zstd,
        floor_name: "zstd-3, reused context",
    },
];

/// Raw deflate with a reused state + CRC-32: what gzip at level `level` costs at least.
struct GzipFloor {
    state: flate2::Compress,
    out: Vec<u8>,
}

impl GzipFloor {
    fn new(level: u32, max_input: usize) -> GzipFloor {
        GzipFloor {
            state: flate2::Compress::new(flate2::Compression::new(level), false),
            out: Vec::with_capacity(max_input + max_input / 8 + 1024),
        }
    }
    fn run(&mut self, input: &[u8]) -> usize {
        self.state.reset();
        self.out.clear();
        let mut crc = flate2::Crc::new();
        crc.update(input);
        let status = self
            .state
            .compress_vec(input, &mut self.out, flate2::FlushCompress::Finish)
            .expect("deflate");
        assert_eq!(status, flate2::Status::StreamEnd, "output buffer too small");
        std::hint::black_box(crc.sum());
        self.out.len() + 18 // gzip header and trailer
    }
}

struct ZstdFloor {
    ctx: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

impl ZstdFloor {
    fn new(level: i32, max_input: usize) -> ZstdFloor {
        ZstdFloor {
            ctx: zstd::bulk::Compressor::new(level).expect("zstd context"),
            out: Vec::with_capacity(zstd::zstd_safe::compress_bound(max_input)),
        }
    }
    fn run(&mut self, input: &[u8]) -> usize {
        self.out.clear();
        self.ctx
            .compress_to_buffer(input, &mut self.out)
            .expect("zstd")
    }
}

fn gzip_zlib_rs(input: &[u8], level: i32, out: &mut [u8]) -> usize {
    let config = zlib_rs::DeflateConfig {
        window_bits: 31, // gzip wrapper
        ..zlib_rs::DeflateConfig::new(level)
    };
    let (written, rc) = zlib_rs::compress_slice(out, input, config);
    assert_eq!(rc, zlib_rs::ReturnCode::Ok, "zlib-rs deflate");
    written.len()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn stat_json(s: &Stat) -> serde_json::Value {
    json!({"best_s": s.best, "median_s": s.median, "iterations": s.iters})
}

/// One line of the stage table.
struct Row {
    stage: String,
    time: f64,
    floor: String,
    floor_time: f64,
    note: String,
}

/// What one (variant, codec) run produced.
struct ConfigResult {
    codec: &'static str,
    payload_len: usize,
    e2e: Stat,
    compress: Stat,
    compress_floor: Stat,
    sign: Stat,
    sha_payload: Stat,
    send_raw: Stat,
    send_derived: f64,
    e2e_floor: f64,
    cpu_per_gb: f64,
    receiver_cpu_per_gb: f64,
    peak_extra: usize,
}

struct VariantResult {
    variant: Variant,
    chunk_len: usize,
    records: usize,
    json_len: usize,
    naive_len: usize,
    encode: Stat,
    naive: Stat,
    memcpy: Stat,
    sha_json: Stat,
    configs: Vec<ConfigResult>,
    rows: Vec<Row>,
}

struct Target {
    name: &'static str,
    variant: &'static str,
    value: f64,
    shown: String,
    pass: bool,
}

fn run_variant(
    mode: &Mode,
    variant: Variant,
    host: &mut host::Host,
    receiver: &host::Receiver,
    instances: &mut Vec<host::Instance>,
) -> VariantResult {
    let budget = mode.budget;
    let (chunk, records) = data::chunk(variant, mode.chunk_bytes, 0x5eed_f1b5_1974);
    let opts = BodyOptions::default();
    let encoded = encode_chunk(&chunk, &opts).expect("benchmark chunk encodes");
    assert_eq!(encoded.len(), records, "every record encoded");
    let json = encoded.buf.clone();
    serde_json::Deserializer::from_slice(&json)
        .into_iter::<serde_json::Value>()
        .try_for_each(|v| v.map(drop))
        .expect("the transcoder's output is valid JSON");
    let mut naive_out = Vec::with_capacity(json.len() * 2);
    assert_eq!(naive::json_lines(&chunk, &mut naive_out), records);
    let naive_len = naive_out.len();

    // Decode + encode, the naive reference and the floors on the JSON bytes.
    let encode = time(budget, || encode_chunk(&chunk, &opts).expect("encodes"));
    let naive = time(budget, || {
        naive_out.clear();
        naive::json_lines(&chunk, &mut naive_out)
    });
    let mut copy_dst = vec![0u8; json.len()];
    let memcpy = time(budget, || {
        copy_dst.copy_from_slice(std::hint::black_box(&json));
        copy_dst[0]
    });
    let sha_json = time(budget, || Sha256::digest(&json));

    let url = format!("http://{}/bulk", receiver.addr);
    let host_header = receiver.addr.to_string();
    let scope = SigningScope {
        region: "us-east-1".into(),
        service: "es".into(),
    };
    let creds = flb_sigv4::aws::credentials::Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some(SESSION_TOKEN.into()),
        None,
        "bench",
    );
    let mut configs = Vec::new();
    let mut rows = vec![
        Row {
            stage: "decode+encode".into(),
            time: encode.best,
            floor: "memcpy of the JSON".into(),
            floor_time: memcpy.best,
            note: format!("{:.2} GB/s", json.len() as f64 / encode.best / 1e9),
        },
        Row {
            stage: "naive rmpv+serde_json".into(),
            time: naive.best,
            floor: "decode+encode".into(),
            floor_time: encode.best,
            note: format!("transcoder {:.1}x faster", naive.best / encode.best),
        },
    ];
    for codec in CODECS {
        let c = codec.compression;
        let payload = c.compress(&json).expect("compresses");
        let compress = time(budget, || c.compress(&json).expect("compresses"));
        let compress_floor = match c {
            Compression::None => memcpy,
            Compression::Gzip => {
                let mut f = GzipFloor::new(6, json.len());
                time(budget, || f.run(&json))
            }
            Compression::Zstd => {
                let mut f = ZstdFloor::new(3, json.len());
                time(budget, || f.run(&json))
            }
        };
        let mut to_sign = vec![
            ("host", host_header.as_str()),
            ("content-type", "application/x-ndjson"),
        ];
        if let Some(enc) = c.content_encoding() {
            to_sign.push(("content-encoding", enc));
        }
        let sign = time(budget, || {
            let digest = sha256_hex(&payload);
            sign_request(
                "POST",
                &url,
                &to_sign,
                &digest,
                &creds,
                &scope,
                SystemTime::now(),
            )
            .expect("signs")
        });
        let sha_payload = time(budget, || Sha256::digest(&payload));
        let mut raw = host::RawSender::connect(receiver.addr, payload.len(), c.content_encoding());
        let send_raw = time(budget, || raw.post(&payload));
        drop(raw);

        // End to end through FLBPluginFlushCtx.
        let instance = host.init(&[
            ("endpoint", url.as_str()),
            ("format", "json_lines"),
            ("compress", codec.name),
            ("aws_region", "us-east-1"),
            ("aws_service", "es"),
            ("aws_imds", "off"),
        ]);
        let stats = &receiver.stats;
        let (req0, bytes0, signed0) = (
            stats.requests.load(Ordering::SeqCst),
            stats.body_bytes.load(Ordering::SeqCst),
            stats.signed.load(Ordering::SeqCst),
        );
        assert_eq!(host.flush(&instance, &chunk, TAG), flb_sigv4::ffi::abi::FLB_OK, "flush");
        assert_eq!(stats.requests.load(Ordering::SeqCst) - req0, 1, "one request per chunk");
        assert_eq!(stats.signed.load(Ordering::SeqCst) - signed0, 1, "the request is signed");
        assert_eq!(
            stats.body_bytes.load(Ordering::SeqCst) - bytes0,
            payload.len() as u64,
            "the receiver got the body as compressed here"
        );
        let cpu0 = process_cpu();
        let recv0 = stats.cpu_ns.load(Ordering::SeqCst);
        let mut flushes = 0u64;
        let e2e = time(mode.e2e, || {
            flushes += 1;
            assert_eq!(host.flush(&instance, &chunk, TAG), flb_sigv4::ffi::abi::FLB_OK);
        });
        let cpu = process_cpu() - cpu0;
        let recv_cpu = (stats.cpu_ns.load(Ordering::SeqCst) - recv0) as f64 * 1e-9;
        let gb = flushes as f64 * json.len() as f64 / 1e9;
        let mut peak = 0;
        for _ in 0..3 {
            let (p, rc) = peak_extra(|| host.flush(&instance, &chunk, TAG));
            assert_eq!(rc, flb_sigv4::ffi::abi::FLB_OK);
            peak = peak.max(p);
        }
        instances.push(instance);

        let send_derived = (e2e.best - encode.best - compress.best - sign.best).max(0.0);
        let e2e_floor = match c {
            Compression::None => memcpy.best + sha_json.best,
            _ => compress_floor.best,
        };
        let n = codec.name;
        let compress_stage = if c.is_none() {
            format!("{n}: compress (a copy)")
        } else {
            format!("{n}: compress")
        };
        rows.push(Row {
            stage: compress_stage,
            time: compress.best,
            floor: codec.floor_name.into(),
            floor_time: compress_floor.best,
            note: if c.is_none() {
                String::new()
            } else {
                format!("ratio {:.2}", json.len() as f64 / payload.len() as f64)
            },
        });
        rows.push(Row {
            stage: format!("{n}: hash+sign"),
            time: sign.best,
            floor: "SHA-256 of the payload".into(),
            floor_time: sha_payload.best,
            note: String::new(),
        });
        rows.push(Row {
            stage: format!("{n}: send (e2e - stages)"),
            time: send_derived,
            floor: "raw TCP POST".into(),
            floor_time: send_raw.best,
            note: String::new(),
        });
        rows.push(Row {
            stage: format!("{n}: end-to-end"),
            time: e2e.best,
            floor: if c.is_none() {
                "memcpy + SHA-256".into()
            } else {
                codec.floor_name.into()
            },
            floor_time: e2e_floor,
            note: format!("{:.0}% of floor speed", e2e_floor / e2e.best * 100.0),
        });
        configs.push(ConfigResult {
            codec: codec.name,
            payload_len: payload.len(),
            e2e,
            compress,
            compress_floor,
            sign,
            sha_payload,
            send_raw,
            send_derived,
            e2e_floor,
            cpu_per_gb: (cpu - recv_cpu) / gb,
            receiver_cpu_per_gb: recv_cpu / gb,
            peak_extra: peak,
        });
    }
    VariantResult {
        variant,
        chunk_len: chunk.len(),
        records,
        json_len: json.len(),
        naive_len,
        encode,
        naive,
        memcpy,
        sha_json,
        configs,
        rows,
    }
}

/// Alternatives: gzip levels (flate2's backend and zlib-rs), zstd levels, SHA-256 libraries.
fn alternatives(mode: &Mode, json: &[u8]) -> Vec<(String, Stat, Option<f64>)> {
    let budget = Budget {
        time: mode.budget.time / 2,
        batches: mode.budget.batches.div_ceil(2),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; zlib_rs::compress_bound(json.len()) + 64];
    for level in [1u32, 3, 6] {
        let mut f = GzipFloor::new(level, json.len());
        let size = f.run(json);
        out.push((
            format!("gzip-{level} flate2 (miniz_oxide, in use)"),
            time(budget, || f.run(json)),
            Some(json.len() as f64 / size as f64),
        ));
        let size = gzip_zlib_rs(json, level as i32, &mut buf);
        out.push((
            format!("gzip-{level} zlib-rs"),
            time(budget, || gzip_zlib_rs(json, level as i32, &mut buf)),
            Some(json.len() as f64 / size as f64),
        ));
    }
    for level in [1, 3] {
        let mut f = ZstdFloor::new(level, json.len());
        let size = f.run(json);
        out.push((
            format!("zstd-{level}"),
            time(budget, || f.run(json)),
            Some(json.len() as f64 / size as f64),
        ));
    }
    out.push((
        "SHA-256 sha2 (in use)".into(),
        time(budget, || Sha256::digest(json)),
        None,
    ));
    out.push((
        "SHA-256 aws-lc-rs".into(),
        time(budget, || {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json)
        }),
        None,
    ));
    out
}

fn targets(results: &[VariantResult], idle_cpu: f64, idle: Duration) -> Vec<Target> {
    let mut t = Vec::new();
    for r in results {
        let v = r.variant.name();
        let gbps = r.json_len as f64 / r.encode.best / 1e9;
        t.push(Target {
            name: "transcoding >= 1 GB/s per core",
            variant: v,
            value: gbps,
            shown: format!("{gbps:.2} GB/s"),
            pass: gbps >= 1.0,
        });
        let speedup = r.naive.best / r.encode.best;
        t.push(Target {
            name: "transcoding >= 3x naive reference",
            variant: v,
            value: speedup,
            shown: format!("{speedup:.1}x"),
            pass: speedup >= 3.0,
        });
        let cfg = |name: &str| r.configs.iter().find(|c| c.codec == name).expect("config");
        let none = cfg("none");
        let share = none.e2e_floor / none.e2e.best;
        t.push(Target {
            name: "e2e none >= 60% of floor (memcpy + SHA-256)",
            variant: v,
            value: share,
            shown: format!("{:.0}%", share * 100.0),
            pass: share >= 0.6,
        });
        let gzip = cfg("gzip");
        let over = gzip.e2e.best / gzip.e2e_floor;
        t.push(Target {
            name: "e2e gzip <= 1.3x gzip floor",
            variant: v,
            value: over,
            shown: format!("{over:.2}x"),
            pass: over <= 1.3,
        });
        let peak = r.configs.iter().map(|c| c.peak_extra).max().unwrap_or(0) as f64
            / r.chunk_len as f64;
        t.push(Target {
            name: "peak extra memory per flush <= 3x chunk",
            variant: v,
            value: peak,
            shown: format!("{peak:.2}x"),
            pass: peak <= 3.0,
        });
    }
    // ~0: under 0.5% of one core while idle.
    t.push(Target {
        name: "idle CPU ~0 (no polling threads)",
        variant: "-",
        value: idle_cpu,
        shown: format!("{:.1} ms in {:.1} s", idle_cpu * 1e3, idle.as_secs_f64()),
        pass: idle_cpu <= 0.005 * idle.as_secs_f64(),
    });
    t
}

fn main() {
    let started = Instant::now();
    let mode = Mode::from_args();
    // Static credentials from the environment, before any thread starts.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    for k in ["AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"] {
        std::env::remove_var(k);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let receiver = host::start_receiver(4);
    let mut plugin = host::Host::register();
    let mut instances = Vec::new();

    let results: Vec<VariantResult> = [Variant::Kubernetes, Variant::Small]
        .into_iter()
        .map(|v| run_variant(&mode, v, &mut plugin, &receiver, &mut instances))
        .collect();
    let alt_json = encode_chunk(
        &data::chunk(Variant::Kubernetes, mode.chunk_bytes, 0x5eed_f1b5_1974).0,
        &BodyOptions::default(),
    )
    .expect("encodes")
    .buf;
    let alts = alternatives(&mode, &alt_json);

    // Idle: instances initialised, nothing to do.
    let cpu0 = process_cpu();
    std::thread::sleep(mode.idle);
    let idle_cpu = process_cpu() - cpu0;
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    for instance in instances {
        plugin.exit(instance);
    }
    plugin.unregister();

    let targets = targets(&results, idle_cpu, mode.idle);
    let report = render(&mode, cpus, &results, &alts, &targets, threads);
    print!("{report}");
    let problems = host::PLUGIN_PROBLEMS.load(Ordering::SeqCst);
    assert_eq!(problems, 0, "the plugin logged warnings or errors (above)");

    let json = json!({
        "mode": mode.name,
        "cpus": cpus,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "variants": results.iter().map(|r| json!({
            "variant": r.variant.name(),
            "chunk_bytes": r.chunk_len,
            "records": r.records,
            "json_bytes": r.json_len,
            "naive_json_bytes": r.naive_len,
            "decode_encode": stat_json(&r.encode),
            "naive_reference": stat_json(&r.naive),
            "floor_memcpy": stat_json(&r.memcpy),
            "floor_sha256": stat_json(&r.sha_json),
            "transcode_gb_per_s": r.json_len as f64 / r.encode.best / 1e9,
            "configs": r.configs.iter().map(|c| json!({
                "compress": c.codec,
                "payload_bytes": c.payload_len,
                "end_to_end": stat_json(&c.e2e),
                "records_per_s": r.records as f64 / c.e2e.best,
                "json_mb_per_s": r.json_len as f64 / c.e2e.best / 1e6,
                "compress_stage": stat_json(&c.compress),
                "floor_compress": stat_json(&c.compress_floor),
                "hash_sign_stage": stat_json(&c.sign),
                "floor_sha256_payload": stat_json(&c.sha_payload),
                "send_raw_tcp": stat_json(&c.send_raw),
                "send_derived_s": c.send_derived,
                "end_to_end_floor_s": c.e2e_floor,
                "cpu_s_per_gb_json": c.cpu_per_gb,
                "receiver_cpu_s_per_gb_json": c.receiver_cpu_per_gb,
                "peak_extra_bytes": c.peak_extra,
                "peak_extra_per_chunk": c.peak_extra as f64 / r.chunk_len as f64,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "alternatives": alts.iter().map(|(name, s, ratio)| json!({
            "name": name,
            "time": stat_json(s),
            "input_mb_per_s": alt_json.len() as f64 / s.best / 1e6,
            "compression_ratio": ratio,
        })).collect::<Vec<_>>(),
        "idle_cpu_s": idle_cpu,
        "idle_s": mode.idle.as_secs_f64(),
        "threads_while_idle": threads,
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "variant": t.variant, "value": t.value, "pass": t.pass,
        })).collect::<Vec<_>>(),
    });
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir.join("bench-flush.json");
    let text = serde_json::to_string_pretty(&json).expect("json");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => println!("results: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

fn render(
    mode: &Mode,
    cpus: usize,
    results: &[VariantResult],
    alts: &[(String, Stat, Option<f64>)],
    targets: &[Target],
    threads: usize,
) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "flb-sigv4 flush benchmark: {} run, {cpus} CPUs; each time is the best batch \
         (medians in the JSON); compare ratios, not absolute numbers",
        mode.name
    );
    for r in results {
        let _ = writeln!(
            w,
            "\n{}: chunk {:.2} MiB msgpack, {} records ({} B JSON each), JSON {:.2} MB ({:.2}x chunk)",
            r.variant.name(),
            r.chunk_len as f64 / 1048576.0,
            thousands(r.records as f64),
            r.json_len / r.records,
            r.json_len as f64 / 1e6,
            r.json_len as f64 / r.chunk_len as f64
        );
        let _ = writeln!(
            w,
            "  {:<28} {:>9}   {:<24} {:>9} {:>8}",
            "stage", "ms/chunk", "floor", "floor ms", "x floor"
        );
        for row in &r.rows {
            let _ = writeln!(
                w,
                "  {:<28} {:>9}   {:<24} {:>9} {:>8.2}  {}",
                row.stage,
                ms(row.time),
                row.floor,
                ms(row.floor_time),
                row.time / row.floor_time,
                row.note
            );
        }
        let _ = writeln!(
            w,
            "  {:<6} {:>12} {:>10} {:>14} {:>16} {:>12}",
            "config", "records/s", "JSON MB/s", "CPU s/GB JSON", "(+receiver)", "peak/chunk"
        );
        for c in &r.configs {
            let _ = writeln!(
                w,
                "  {:<6} {:>12} {:>10.0} {:>14.2} {:>16.2} {:>11.2}x",
                c.codec,
                thousands(r.records as f64 / c.e2e.best),
                r.json_len as f64 / c.e2e.best / 1e6,
                c.cpu_per_gb,
                c.receiver_cpu_per_gb,
                c.peak_extra as f64 / r.chunk_len as f64
            );
        }
    }
    if let Some(json_len) = results.first().map(|r| r.json_len) {
        let _ = writeln!(w, "\nalternatives (on the k8s JSON, {:.2} MB):", json_len as f64 / 1e6);
        let _ = writeln!(w, "  {:<38} {:>9} {:>10} {:>7}", "", "ms", "MB/s in", "ratio");
        for (name, s, ratio) in alts {
            let _ = writeln!(
                w,
                "  {:<38} {:>9} {:>10.0} {:>7}",
                name,
                ms(s.best),
                json_len as f64 / s.best / 1e6,
                ratio.map_or(String::new(), |r| format!("{r:.2}"))
            );
        }
    }
    let _ = writeln!(w, "\ntargets (issue 4; {threads} threads alive while idle):");
    for t in targets {
        let _ = writeln!(
            w,
            "  {:<46} {:<6} {:>18}  {}",
            t.name,
            t.variant,
            t.shown,
            if t.pass { "PASS" } else { "MISS" }
        );
    }
    o
}

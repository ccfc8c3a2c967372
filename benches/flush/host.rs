//! A minimal Fluent Bit stand-in that drives the exported symbols like Fluent Bit does
//! (register, init per instance, flush, exit, unregister), and a loopback HTTP/1.1 receiver that
//! reads bodies by `Content-Length`, discards them and answers 200 (keep-alive).

use flb_sigv4::ffi::abi::{
    FlbApi, FlbPluginProxyContext, FlbPluginProxyDef, FlbgoOutputPlugin, LogPrintFn, FLB_OK,
};
use flb_sigv4::ffi::exports::{
    FLBPluginExitCtx, FLBPluginFlushCtx, FLBPluginInit, FLBPluginRegister, FLBPluginUnregister,
};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Properties of one `[OUTPUT]` instance; its address is the instance's `o_ins`.
struct Props(HashMap<String, CString>);

/// Warnings and errors the plugin logged.
pub static PLUGIN_PROBLEMS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn get_property(key: *const c_char, ins: *mut c_void) -> *const c_char {
    if key.is_null() || ins.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `ins` is the `Props` of a live instance (see `Host::init`); key is a C string.
    let (props, key) = unsafe { (&*(ins as *const Props), CStr::from_ptr(key)) };
    let key = key.to_string_lossy().to_ascii_lowercase();
    props.0.get(&key).map_or(std::ptr::null(), |v| v.as_ptr())
}

/// Called as `log_print(level, file, line, "%s", message)`: the plugin always passes exactly one
/// string after the format, so a non-variadic function with that fifth argument receives it the
/// same way (x86-64 and AArch64 Linux pass variadic and fixed pointer arguments alike).
unsafe extern "C" fn log_print(
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    _fmt: *const c_char,
    msg: *const c_char,
) {
    if msg.is_null() {
        return;
    }
    PLUGIN_PROBLEMS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the plugin passes a NUL-terminated string.
    let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    eprintln!("[plugin log level {level}] {msg}");
}

/// Only warnings and errors are printed (and counted).
unsafe extern "C" fn log_check(_ins: *mut c_void, level: c_int) -> c_int {
    c_int::from(level <= 2)
}

pub struct Instance {
    remote: *mut c_void,
    _ctx: Box<FlbPluginProxyContext>,
    _props: Box<Props>,
}

pub struct Host {
    def: Box<FlbPluginProxyDef>,
    _api: Box<FlbApi>,
    plugin: Box<FlbgoOutputPlugin>,
}

impl Host {
    /// `FLBPluginRegister`.
    pub fn register() -> Host {
        // SAFETY: transmuting between two `extern "C"` function pointer types whose calls pass
        // the same arguments; see `log_print`.
        let print = unsafe {
            std::mem::transmute::<
                unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, *const c_char),
                LogPrintFn,
            >(log_print)
        };
        let mut api = Box::new(FlbApi {
            output_get_property: Some(get_property),
            input_get_property: None,
            output_get_cmt_instance: None,
            input_get_cmt_instance: None,
            log_print: Some(print),
            input_log_check: None,
            output_log_check: Some(log_check),
            custom_get_property: None,
            custom_log_check: None,
        });
        let mut def = Box::new(FlbPluginProxyDef {
            type_: 0,
            proxy: 0,
            flags: 0,
            name: std::ptr::null_mut(),
            description: std::ptr::null_mut(),
            event_type: 0,
            config_map: std::ptr::null_mut(),
        });
        // SAFETY: `def` is a valid struct for the call.
        let rc = unsafe { FLBPluginRegister(&mut *def) };
        assert_eq!(rc, 0, "FLBPluginRegister");
        let plugin = Box::new(FlbgoOutputPlugin {
            name: def.name,
            api: &mut *api,
            o_ins: std::ptr::null_mut(),
            context: std::ptr::null_mut(),
            cb_init: None,
            cb_flush: None,
            cb_flush_ctx: None,
            cb_exit: None,
            cb_exit_ctx: None,
        });
        Host {
            def,
            _api: api,
            plugin,
        }
    }

    /// `FLBPluginInit` for one instance with these properties.
    pub fn init(&mut self, props: &[(&str, &str)]) -> Instance {
        let mut props = Box::new(Props(
            props
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), CString::new(*v).expect("no NUL")))
                .collect(),
        ));
        let mut ctx = Box::new(FlbPluginProxyContext {
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        });
        // Fluent Bit rewrites the one plugin struct before each instance's init.
        self.plugin.o_ins = &mut *props as *mut Props as *mut c_void;
        self.plugin.context = &mut *ctx;
        // SAFETY: the plugin struct, api table, props and context outlive the instance.
        let rc = unsafe { FLBPluginInit(&mut *self.plugin) };
        assert_eq!(
            rc, FLB_OK,
            "FLBPluginInit failed (see the plugin's log above)"
        );
        assert!(!ctx.remote_context.is_null());
        Instance {
            remote: ctx.remote_context,
            _ctx: ctx,
            _props: props,
        }
    }

    /// `FLBPluginFlushCtx`; the return code. Call from a thread named like Fluent Bit's output
    /// workers ([`name_thread_like_an_output_worker`]) to measure the worker path.
    pub fn flush(&self, instance: &Instance, chunk: &[u8], tag: &CStr) -> c_int {
        // SAFETY: remote came from init; chunk and tag are valid for the call.
        unsafe {
            FLBPluginFlushCtx(
                instance.remote,
                chunk.as_ptr() as *const c_void,
                chunk.len(),
                tag.as_ptr() as *mut c_char,
            )
        }
    }

    /// `FLBPluginExitCtx`.
    pub fn exit(&self, instance: Instance) {
        // SAFETY: remote came from init and is exited once; props/ctx are dropped after.
        let rc = unsafe { FLBPluginExitCtx(instance.remote) };
        assert_eq!(rc, FLB_OK, "FLBPluginExitCtx");
    }

    /// `FLBPluginUnregister`.
    pub fn unregister(mut self) {
        // SAFETY: the def registered in `register`.
        unsafe { FLBPluginUnregister(&mut *self.def) };
    }
}

/// What the receiver saw.
#[derive(Default)]
pub struct ReceiverStats {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
    /// Requests that carried a SigV4 `authorization` header and `x-amz-content-sha256`.
    pub signed: AtomicU64,
    /// CPU time the receiver's threads spent handling requests.
    pub cpu_ns: AtomicU64,
    /// Documents received on `/_bulk` paths (action + source line pairs).
    pub bulk_docs: AtomicU64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub stats: Arc<ReceiverStats>,
}

/// Starts the receiver: one accept loop that gives each connection its own thread (each plugin
/// instance keeps a keep-alive connection open, so a fixed pool could starve). Threads live
/// until their connection closes; the accept loop until the process exits.
pub fn start_receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(ReceiverStats::default());
    let shared = stats.clone();
    std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let stats = shared.clone();
                let _ = std::thread::Builder::new()
                    .name(format!("receiver-{i}"))
                    .spawn(move || serve(stream, &stats));
            }
        })
        .expect("spawn receiver");
    Receiver { addr, stats }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
            Some(line[colon + 1..].trim_ascii())
        } else {
            None
        }
    })
}

/// One keep-alive connection. The buffer lives on this thread's stack: nothing is allocated
/// per request, so the receiver does not disturb the plugin's memory figures.
fn serve(mut s: TcpStream, stats: &ReceiverStats) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = [0u8; 64 * 1024];
    let mut have = 0usize;
    let mut cpu_mark = crate::measure::thread_cpu_ns();
    let mut answer: Option<(u64, Vec<u8>)> = None;
    loop {
        let head_end = loop {
            if let Some(p) = find(&buf[..have], b"\r\n\r\n") {
                break p + 4;
            }
            if have == buf.len() {
                return Ok(()); // header block too large: not ours
            }
            let n = s.read(&mut buf[have..])?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        };
        let head = &buf[..head_end];
        let len: u64 = header(head, "content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        // `_bulk` requests are answered like OpenSearch, one item per document (the plugin
        // reads every item); their lines are counted as the body streams by.
        let bulk = head
            .split(|&b| b == b'\r')
            .next()
            .and_then(|line| line.split(|&b| b == b' ').nth(1))
            .is_some_and(|path| path.ends_with(b"/_bulk"));
        let mut newlines = 0u64;
        let signed = header(head, "authorization")
            .is_some_and(|v| v.starts_with(b"AWS4-HMAC-SHA256 "))
            && header(head, "x-amz-content-sha256").is_some();
        // Body bytes already in the buffer, then the rest straight from the socket.
        let in_buf = ((have - head_end) as u64).min(len) as usize;
        if bulk {
            newlines += count_newlines(&buf[head_end..head_end + in_buf]);
        }
        let leftover = have - head_end - in_buf;
        buf.copy_within(head_end + in_buf..have, 0);
        have = leftover;
        let mut remaining = len - in_buf as u64;
        while remaining > 0 {
            let want = (remaining as usize).min(buf.len() - have);
            let n = s.read(&mut buf[have..have + want])?;
            if n == 0 {
                return Ok(());
            }
            if bulk {
                newlines += count_newlines(&buf[have..have + n]);
            }
            remaining -= n as u64;
        }
        // Counted before answering, so the client sees the counts once it has the answer.
        stats.body_bytes.fetch_add(len, Ordering::SeqCst);
        if signed {
            stats.signed.fetch_add(1, Ordering::SeqCst);
        }
        stats.requests.fetch_add(1, Ordering::SeqCst);
        if bulk {
            let docs = newlines / 2;
            stats.bulk_docs.fetch_add(docs, Ordering::SeqCst);
            if answer.as_ref().map_or(true, |(n, _)| *n != docs) {
                answer = Some((docs, bulk_answer(docs)));
            }
            if let Some((_, bytes)) = &answer {
                s.write_all(bytes)?;
            }
        } else {
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        }
        let now = crate::measure::thread_cpu_ns();
        stats.cpu_ns.fetch_add(now - cpu_mark, Ordering::Relaxed);
        cpu_mark = now;
    }
}

/// Counted in u8 lanes over runs of at most 255 bytes: LLVM vectorises this fully, where a
/// plain `filter().count()` widened every byte to a u64 lane and cost the receiver (which shares
/// the cores with the plugin) 16% of a `_bulk` flush's CPU.
fn count_newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|run| u64::from(run.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n'))))
        .sum()
}

/// The whole answer (status line, headers, body) to a `_bulk` request of `docs` documents:
/// `{"took":1,"errors":false,"items":[{"create":{…,"status":201}},…]}`. Built once per document
/// count and kept by the connection, so the receiver (which shares the cores with the plugin)
/// answers with one write.
fn bulk_answer(docs: u64) -> Vec<u8> {
    const HEAD: &str = "{\"took\":1,\"errors\":false,\"items\":[";
    // An item as OpenSearch 2 writes it for a created document (an _id of its own, shards).
    const ITEM: &str = "{\"create\":{\"_index\":\"fluent-bit\",\"_id\":\"kX3vT5QBk2Yc0dRr9aZ1\",\"_version\":1,\"result\":\"created\",\"_shards\":{\"total\":2,\"successful\":2,\"failed\":0},\"_seq_no\":1283,\"_primary_term\":1,\"status\":201}}";
    let items = vec![ITEM; docs as usize].join(",");
    let body = format!("{HEAD}{items}]}}");
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The send floor: one keep-alive connection that POSTs a body with a SigV4-sized header block
/// and waits for the receiver's answer, nothing else.
pub struct RawSender {
    stream: TcpStream,
    head: Vec<u8>,
}

impl RawSender {
    pub fn connect(addr: SocketAddr, body_len: usize, encoding: Option<&str>) -> RawSender {
        let stream = TcpStream::connect(addr).expect("connect receiver");
        stream.set_nodelay(true).expect("nodelay");
        let mut head = format!(
            "POST /bulk HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-ndjson\r\n\
             content-length: {body_len}\r\nx-amz-date: 20231114T221320Z\r\n\
             x-amz-content-sha256: {zeros}\r\nx-amz-security-token: {token}\r\n\
             authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/es/aws4_request, \
             SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
             Signature={zeros}\r\n",
            zeros = "0".repeat(64),
            token = "T".repeat(300),
        );
        if let Some(enc) = encoding {
            head.push_str(&format!("content-encoding: {enc}\r\n"));
        }
        head.push_str("\r\n");
        RawSender {
            stream,
            head: head.into_bytes(),
        }
    }

    pub fn post(&mut self, body: &[u8]) {
        self.stream.write_all(&self.head).expect("write head");
        self.stream.write_all(body).expect("write body");
        let mut resp = [0u8; 38];
        self.stream.read_exact(&mut resp).expect("read response");
        debug_assert!(resp.starts_with(b"HTTP/1.1 200"));
    }
}

/// Names the calling thread as Fluent Bit names output worker threads (`flb-out-<instance>-w<N>`,
/// cut to 15 characters by the kernel).
pub fn name_thread_like_an_output_worker() {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, c"flb-out-sigv4_h".as_ptr(), 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_NAME)");
}

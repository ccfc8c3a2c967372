//! The exported symbols Fluent Bit resolves (DESIGN §1). Each converts its arguments, runs safe
//! code inside a panic guard and maps the outcome to a return code; none runs heavy work on the
//! caller's stack (flush is called on a small coroutine stack).

#![allow(non_snake_case)]

use super::abi::*;
use super::log_bridge::FlbLog;
use crate::config::{self, Config};
use crate::env::Env;
use crate::flb_log;
use crate::log::{Level, Log, SharedLog};
use crate::output::budget::{self, Caller, Declined, EngineFlush, Waiter};
use crate::output::{FlushResult, Output};
use crate::runtime;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};

const PLUGIN_NAME: &CStr = c"sigv4_http";
const PLUGIN_DESCRIPTION: &CStr = c"Ships records to AWS SigV4 HTTP endpoints";

/// Test knob, compiled only with the `test-knobs` feature (README "Test knobs"): a flush whose
/// tag equals this variable's value, as read when the instance starts, panics on the runtime; it
/// proves a panic in flush is a logged `FLB_RETRY`.
#[cfg(feature = "test-knobs")]
const TEST_PANIC_TAG_VAR: &str = "FLB_SIGV4_TEST_PANIC_TAG";

/// What `remote_context` points to.
struct Instance {
    output: Arc<Output>,
    log: Arc<FlbLog>,
    /// [`TEST_PANIC_TAG_VAR`] at init (unset or empty: never).
    #[cfg(feature = "test-knobs")]
    test_panic_tag: Option<String>,
}

impl Instance {
    fn panics_on(&self, _tag: &str) -> bool {
        #[cfg(feature = "test-knobs")]
        return self.test_panic_tag.as_deref() == Some(_tag);
        #[cfg(not(feature = "test-knobs"))]
        false
    }
}

/// The most recently initialised instance, for the context-less `FLBPluginFlush`.
static LAST_INSTANCE: Mutex<Option<Weak<Instance>>> = Mutex::new(None);

fn guard(on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

fn to_code(result: FlushResult) -> c_int {
    match result {
        FlushResult::Ok => FLB_OK,
        FlushResult::Retry => FLB_RETRY,
        FlushResult::Error => FLB_ERROR,
    }
}

#[no_mangle]
pub extern "C" fn FLBPluginPreRegister(_hot_reloading: c_int) -> c_int {
    0
}

/// # Safety
/// `def` must be null or point to Fluent Bit's registration struct.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut FlbPluginProxyDef) -> c_int {
    guard(-1, || {
        if def.is_null() {
            return -1;
        }
        // SAFETY: checked non-null; Fluent Bit owns the struct for the duration of the call.
        let def = unsafe { &mut *def };
        def.type_ = FLB_PROXY_OUTPUT_PLUGIN;
        def.proxy = FLB_PROXY_GOLANG;
        def.flags = 0;
        // Static strings: Fluent Bit copies the name and keeps the description pointer.
        def.name = PLUGIN_NAME.as_ptr() as *mut c_char;
        def.description = PLUGIN_DESCRIPTION.as_ptr() as *mut c_char;
        def.event_type = 0;
        def.config_map = std::ptr::null_mut();
        runtime::register();
        0
    })
}

/// Reads every property we know on Fluent Bit's thread (its config is not thread-safe).
unsafe fn read_properties(api: *const FlbApi, o_ins: *mut c_void) -> HashMap<&'static str, String> {
    let mut out = HashMap::new();
    // SAFETY: the caller passes Fluent Bit's api table.
    let Some(get) = (unsafe { (*api).output_get_property }) else {
        return out;
    };
    for name in config::lookup_keys() {
        let Ok(key) = CString::new(name) else {
            continue;
        };
        // SAFETY: key is NUL-terminated; Fluent Bit returns NULL or a string it owns.
        let value = unsafe { get(key.as_ptr(), o_ins) };
        if !value.is_null() {
            // SAFETY: non-null NUL-terminated string owned by Fluent Bit, copied at once.
            let value = unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned();
            out.insert(name, value);
        }
    }
    out
}

/// # Safety
/// `plugin` must be null or point to Fluent Bit's `flbgo_output_plugin`, with `api`, `o_ins` and
/// `context` set for the instance being initialised.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut FlbgoOutputPlugin) -> c_int {
    guard(FLB_ERROR, || {
        if plugin.is_null() {
            return FLB_ERROR;
        }
        // SAFETY: checked non-null. Copy what we need now: Fluent Bit rewrites the struct for
        // the next instance.
        let (api, o_ins, context) = unsafe { ((*plugin).api, (*plugin).o_ins, (*plugin).context) };
        if api.is_null() || context.is_null() {
            return FLB_ERROR;
        }
        // SAFETY: api and o_ins stay valid until this instance's exit, when the log is closed.
        let log = Arc::new(unsafe { FlbLog::new(api, o_ins) });
        // SAFETY: api is Fluent Bit's table (checked non-null).
        let props = unsafe { read_properties(api, o_ins) };
        let started = start_instance(props, log.clone());
        // Lines logged on the runtime while starting are printed here, on Fluent Bit's thread.
        log.drain();
        let output = match started {
            Ok(output) => output,
            Err(message) => {
                log.write(Level::Error, &message);
                log.close();
                return FLB_ERROR;
            }
        };
        let instance = Arc::new(Instance {
            output,
            log,
            #[cfg(feature = "test-knobs")]
            test_panic_tag: std::env::var(TEST_PANIC_TAG_VAR)
                .ok()
                .filter(|v| !v.is_empty()),
        });
        if let Ok(mut last) = LAST_INSTANCE.lock() {
            *last = Some(Arc::downgrade(&instance));
        }
        // SAFETY: context checked non-null; Fluent Bit hands remote_context back to us.
        unsafe { (*context).remote_context = Arc::into_raw(instance) as *mut c_void };
        FLB_OK
    })
}

/// Parses the configuration and builds the instance on the runtime; errors come back rendered.
fn start_instance(
    props: HashMap<&'static str, String>,
    log: Arc<FlbLog>,
) -> Result<Arc<Output>, String> {
    let config = Config::from_lookup(|key| props.get(key).cloned()).map_err(|e| e.to_string())?;
    let shared: SharedLog = log;
    runtime::run_and_wait(Box::new(move || {
        Box::pin(Output::start(config, shared, Env::from_process()))
    }))
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

#[no_mangle]
pub extern "C" fn FLBPluginOutputPreRun(_enable_hot_reload: c_int) -> c_int {
    0
}

/// Fluent Bit's chunk, lent to the runtime for the duration of one flush call.
struct LentChunk {
    data: *const u8,
    size: usize,
}

// SAFETY: the chunk is immutable while Fluent Bit waits in flush, so reading it from another
// thread is fine; `run_and_wait` returns only once the future using it is gone.
unsafe impl Send for LentChunk {}

impl LentChunk {
    /// # Safety
    /// Only while the flush call that lent the chunk has not returned.
    unsafe fn as_slice(&self) -> &[u8] {
        if self.size == 0 {
            &[]
        } else {
            // SAFETY: Fluent Bit keeps `data` (size bytes) valid until flush returns.
            unsafe { std::slice::from_raw_parts(self.data, self.size) }
        }
    }
}

/// The calling thread's name (Fluent Bit names its engine and worker threads).
fn current_thread_name() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: buf is 16 bytes, the size pthread_getname_np needs for Linux thread names.
    let rc = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr().cast(), buf.len())
    };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Flushes one chunk; uses only a few hundred bytes of the caller's stack. On an output worker
/// thread the chunk is lent to the runtime (not copied) and the flush waited for; on the engine
/// thread the flush gets a time budget (`output::budget`).
fn flush_chunk(instance: &Instance, data: *const c_void, size: usize, tag: *const c_char) -> c_int {
    if data.is_null() && size > 0 {
        return FLB_ERROR;
    }
    let tag = if tag.is_null() {
        String::new()
    } else {
        // SAFETY: Fluent Bit passes a NUL-terminated tag valid for the call; copied here.
        unsafe { CStr::from_ptr(tag) }
            .to_string_lossy()
            .into_owned()
    };
    let chunk = LentChunk {
        data: data as *const u8,
        size,
    };
    let output = &instance.output;
    let code = if instance.panics_on(&tag) {
        report_failure(
            output,
            runtime::run_and_wait::<()>(Box::new(move || {
                Box::pin(async move {
                    panic!("FLB_SIGV4_TEST_PANIC_TAG: test panic in flush of tag '{tag}'")
                })
            }))
            .err(),
        )
    } else {
        match Caller::from_thread_name(&current_thread_name()) {
            Caller::Worker => flush_waiting(output.clone(), chunk, tag),
            Caller::Engine => {
                output.warn_engine_once();
                // SAFETY: the chunk is valid during this call; flush_within_budget copies it
                // before returning.
                let chunk = unsafe { chunk.as_slice() };
                flush_on_engine(output, chunk, tag)
            }
        }
    };
    instance.log.drain();
    code
}

fn report_failure(output: &Output, error: Option<runtime::RuntimeError>) -> c_int {
    if let Some(e) = error {
        let log = output.log();
        flb_log!(log, Level::Error, "flush failed, chunk kept for retry: {e}");
    }
    FLB_RETRY
}

/// A worker-thread flush: waits for the result (the chunk is not copied).
fn flush_waiting(output: Arc<Output>, chunk: LentChunk, tag: String) -> c_int {
    let start = std::time::Instant::now();
    let log = output.log();
    let in_progress = runtime::FlushInProgress::enter();
    match runtime::run_and_wait(Box::new(move || {
        Box::pin(async move {
            let _in_progress = in_progress;
            // SAFETY: this future runs and is dropped before flush returns (run_and_wait).
            let chunk = unsafe { chunk.as_slice() };
            let waiter = Waiter::patient();
            output
                .flush(chunk, &tag, Caller::Worker, start, &waiter, None)
                .await
        })
    })) {
        Ok(result) => to_code(result),
        Err(e) => {
            flb_log!(log, Level::Error, "flush failed, chunk kept for retry: {e}");
            FLB_RETRY
        }
    }
}

/// An engine-thread flush: waits at most the budget.
fn flush_on_engine(output: &Arc<Output>, chunk: &[u8], tag: String) -> c_int {
    let log = output.log();
    match budget::flush_within_budget(output, chunk, tag) {
        Ok(EngineFlush::Done(result)) => to_code(result),
        Ok(EngineFlush::Backgrounded) => {
            flb_log!(
                log,
                Level::Warn,
                "flush took longer than {} ms on Fluent Bit's engine thread: returning a retry while its request goes on in the background; the retried chunk skips what it delivers",
                budget::ENGINE_BUDGET.as_millis()
            );
            FLB_RETRY
        }
        Ok(EngineFlush::Declined(why)) => {
            match why {
                Declined::Stalled => flb_log!(
                    log,
                    Level::Debug,
                    "a request of this output is still running in the background: chunk kept for retry without sending"
                ),
                Declined::Full => flb_log!(
                    log,
                    Level::Warn,
                    "background requests of this output hold {} bytes (cap {}): chunk kept for retry without sending",
                    output.background().bytes(),
                    budget::BACKGROUND_BYTES_CAP
                ),
            }
            FLB_RETRY
        }
        Err(e) => {
            flb_log!(log, Level::Error, "flush failed, chunk kept for retry: {e}");
            FLB_RETRY
        }
    }
}

/// # Safety
/// `remote_ctx` must be the pointer our init stored; `data`/`size` a chunk and `tag` a C string,
/// all valid for the call.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    remote_ctx: *mut c_void,
    data: *const c_void,
    size: usize,
    tag: *mut c_char,
) -> c_int {
    guard(FLB_RETRY, || {
        if remote_ctx.is_null() {
            return FLB_ERROR;
        }
        // SAFETY: remote_ctx is the Arc<Instance> pointer from init, alive until exit.
        let instance = unsafe { &*(remote_ctx as *const Instance) };
        flush_chunk(instance, data, size, tag)
    })
}

/// Only used by a Fluent Bit that lacks `FLBPluginFlushCtx` (it prefers it): flushes through the
/// most recently initialised instance.
///
/// # Safety
/// As for [`FLBPluginFlushCtx`].
#[no_mangle]
pub unsafe extern "C" fn FLBPluginFlush(
    data: *const c_void,
    size: usize,
    tag: *mut c_char,
) -> c_int {
    guard(FLB_RETRY, || {
        let instance = LAST_INSTANCE
            .lock()
            .ok()
            .and_then(|l| l.as_ref().and_then(Weak::upgrade));
        match instance {
            Some(instance) => flush_chunk(&instance, data, size, tag),
            None => FLB_ERROR,
        }
    })
}

#[no_mangle]
pub extern "C" fn FLBPluginOutputPreExit(_shutdown_by_hot_reloading: c_int) {}

/// # Safety
/// `remote_ctx` must be null or the pointer our init stored; it is freed here.
#[no_mangle]
pub unsafe extern "C" fn FLBPluginExitCtx(remote_ctx: *mut c_void) -> c_int {
    guard(FLB_ERROR, || {
        if remote_ctx.is_null() {
            return FLB_OK;
        }
        // SAFETY: the pointer came from Arc::into_raw in init and Fluent Bit calls exit once.
        let instance = unsafe { Arc::from_raw(remote_ctx as *const Instance) };
        let output = instance.output.clone();
        // Background requests get a bounded time to finish; then credential refresh stops, all
        // before the log goes away with the instance.
        let _ = runtime::run_and_wait(Box::new(move || {
            Box::pin(async move { output.shutdown(budget::EXIT_WAIT).await })
        }));
        instance.log.close();
        FLB_OK
    })
}

#[no_mangle]
pub extern "C" fn FLBPluginExit() -> c_int {
    FLB_OK
}

/// # Safety
/// `def` is Fluent Bit's registration struct (unused).
#[no_mangle]
pub unsafe extern "C" fn FLBPluginUnregister(_def: *mut FlbPluginProxyDef) {
    let _ = catch_unwind(|| {
        if let Ok(mut last) = LAST_INSTANCE.lock() {
            *last = None;
        }
        runtime::unregister();
    });
}

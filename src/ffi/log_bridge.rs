//! [`Log`] over Fluent Bit's `log_print` and `output_log_check`, using the `api`/`o_ins` copies
//! taken at init (the shared plugin struct is rewritten for every instance).
//!
//! Fluent Bit's `log_print` puts a line into its log pipeline (and so into `Log_File`) only on
//! threads Fluent Bit created; from any other thread it writes to stderr (`flb_log_print`: no
//! `flb_worker_ctx`). Lines made on the plugin's own threads are therefore queued and printed
//! by the next call from a Fluent Bit thread ([`FlbLog::drain`]: after init, after each flush,
//! at exit).

use super::abi::FlbApi;
use crate::log::{Level, Log};
use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CString};
use std::sync::{Mutex, RwLock};

/// Lines kept for a Fluent Bit thread to print; beyond it the oldest go (and are counted).
const PENDING_LINES: usize = 2000;

#[derive(Default)]
struct Pending {
    lines: VecDeque<(Level, String)>,
    dropped: usize,
}

struct Target {
    api: *const FlbApi,
    o_ins: *mut c_void,
}

/// Disabled by [`FlbLog::close`] at exit: `o_ins` is freed by Fluent Bit after exit, so no
/// background task may log through it afterwards.
pub struct FlbLog {
    target: RwLock<Option<Target>>,
    pending: Mutex<Pending>,
}

// SAFETY: Fluent Bit's api table lives as long as the config, o_ins until after exit; both are
// only read through their function pointers, which Fluent Bit allows from any thread. The lock
// keeps every use before `close`.
unsafe impl Send for FlbLog {}
unsafe impl Sync for FlbLog {}

impl FlbLog {
    /// # Safety
    /// `api` must point to Fluent Bit's api table and `o_ins` to this instance, both valid until
    /// [`FlbLog::close`] is called.
    pub unsafe fn new(api: *const FlbApi, o_ins: *mut c_void) -> Self {
        FlbLog {
            target: RwLock::new(Some(Target { api, o_ins })),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Prints the lines the plugin's own threads queued. Call only on a Fluent Bit thread.
    pub fn drain(&self) {
        let (lines, dropped) = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut p.lines), std::mem::take(&mut p.dropped))
        };
        if dropped > 0 {
            self.print(
                Level::Warn,
                &format!("{dropped} log lines of the plugin's background work were dropped (more than {PENDING_LINES} queued)"),
            );
        }
        for (level, line) in lines {
            self.print(level, &line);
        }
    }

    /// Prints what is queued, then stops logging: `o_ins` is freed after exit.
    pub fn close(&self) {
        self.drain();
        if let Ok(mut t) = self.target.write() {
            *t = None;
        }
    }
}

impl Log for FlbLog {
    fn enabled(&self, level: Level) -> bool {
        let Ok(guard) = self.target.read() else {
            return false;
        };
        let Some(t) = guard.as_ref() else {
            return false;
        };
        // SAFETY: see `new`; the read lock keeps `close` from racing this call.
        unsafe {
            match (*t.api).output_log_check {
                Some(check) => check(t.o_ins, level as c_int) != 0,
                None => level <= Level::Info,
            }
        }
    }

    fn write(&self, level: Level, message: &str) {
        if crate::runtime::on_plugin_thread() {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.lines.len() >= PENDING_LINES {
                p.lines.pop_front();
                p.dropped += 1;
            }
            p.lines.push_back((level, message.to_string()));
            return;
        }
        self.drain();
        self.print(level, message);
    }
}

impl FlbLog {
    fn print(&self, level: Level, message: &str) {
        let Ok(guard) = self.target.read() else {
            return;
        };
        let Some(t) = guard.as_ref() else { return };
        let text = format!("[output:sigv4_http] {message}").replace('\0', "\\0");
        let Ok(text) = CString::new(text) else { return };
        // SAFETY: see `new`; "%s" with one NUL-terminated string matches log_print's contract.
        unsafe {
            if let Some(print) = (*t.api).log_print {
                print(
                    level as c_int,
                    c"flb_sigv4".as_ptr(),
                    0,
                    c"%s".as_ptr(),
                    text.as_ptr(),
                );
            }
        }
    }
}

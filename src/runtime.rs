//! The one async runtime shared by every instance: started lazily, a few named threads, shut
//! down and joined in `FLBPluginUnregister` so `dlclose` never leaves a thread running code of an
//! unloaded library. A later `FLBPluginRegister` in the same process starts a fresh one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not start the plugin's runtime threads: {0}")]
    Start(#[source] std::io::Error),
    #[error("the plugin's runtime was shut down while the work was running")]
    Stopped,
    #[error("the plugin's work panicked: {0}")]
    Panicked(String),
}

/// Threads the runtime uses: enough to encode two chunks at once on the 2-core machines the
/// plugin typically shares with Fluent Bit, never more than 4.
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

/// The runtime's handle, starting it if needed.
pub fn handle() -> Result<Handle, RuntimeError> {
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.handle().clone());
    }
    let rt = Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .max_blocking_threads(4)
        .thread_name("flb-sigv4")
        .enable_all()
        .build()
        .map_err(RuntimeError::Start)?;
    let handle = rt.handle().clone();
    *slot = Some(rt);
    Ok(handle)
}

/// Stops the runtime and joins its threads (bounded), leaving a clean state for a new load.
pub fn shutdown() {
    let rt = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(rt) = rt {
        rt.shutdown_timeout(Duration::from_secs(5));
    }
}

/// Runs the future built by `make` on the runtime and blocks the calling thread until it is
/// done. Built for Fluent Bit's small coroutine stacks: the caller only moves two pointers into
/// a tiny task; `make` runs on a runtime thread, so the real future lives there.
pub fn run_and_wait<T: Send + 'static>(
    make: Box<dyn FnOnce() -> BoxFuture<T> + Send>,
) -> Result<T, RuntimeError> {
    let handle = handle()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let joined = tokio::spawn(async move { make().await }).await;
        let _ = tx.send(joined);
    });
    match rx.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if e.is_panic() => Err(RuntimeError::Panicked(panic_message(e.into_panic()))),
        Ok(Err(_)) | Err(_) => Err(RuntimeError::Stopped),
    }
}

/// The text of a panic payload (our panics never carry secrets: see DESIGN §8).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_restarts_and_reports_panics() {
        let v = run_and_wait(Box::new(|| Box::pin(async { 41 + 1 }))).expect("runs");
        assert_eq!(v, 42);
        let err = run_and_wait::<()>(Box::new(|| Box::pin(async { panic!("boom") })))
            .expect_err("panic is reported");
        assert!(
            matches!(err, RuntimeError::Panicked(ref m) if m == "boom"),
            "{err:?}"
        );
        shutdown();
        // A new load in the same process gets a fresh runtime.
        let v = run_and_wait(Box::new(|| Box::pin(async { 7 }))).expect("runs after restart");
        assert_eq!(v, 7);
        shutdown();
    }
}

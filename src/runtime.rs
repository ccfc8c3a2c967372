//! The one async runtime shared by every instance: started lazily, a few named threads, shut
//! down and joined when the last registration of the library ends (`FLBPluginUnregister`), so
//! `dlclose` never leaves a thread running code of an unloaded library. Registrations are
//! counted: on hot reload Fluent Bit may register the new load before it unregisters the old
//! one (the same library, one copy in memory), and the old one's unregister must not stop the
//! runtime the new one uses. A later `FLBPluginRegister` in the same process starts a fresh one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Registrations of the library not yet unregistered.
static REGISTRATIONS: Mutex<usize> = Mutex::new(0);

thread_local! {
    /// Set on the runtime's own threads (workers and blocking pool).
    static PLUGIN_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the plugin's own (not one Fluent Bit created).
pub fn on_plugin_thread() -> bool {
    PLUGIN_THREAD.with(|t| t.get())
}

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

/// Async worker threads: one. When flushes run concurrently (Fluent Bit `Workers 2`) it only
/// drives I/O: every CPU-heavy stage of a flush (encoding, compressing, hashing) leaves it
/// through [`off_worker`] or runs on the blocking pool (`chunk_bodies`), so one is enough for
/// any number of instances, and concurrent flushes encode on as many cores as there are
/// flushes. A second worker costs time: tokio wakes it to look for work
/// whenever a flush starts, and on a 2-core machine it then holds the core the hashing thread
/// needs, which waited up to a whole encode for it (benches/flush: a third of k8s flushes took
/// twice as long with two workers).
const WORKER_THREADS: usize = 1;

/// Blocking-pool threads: per concurrent flush one that encodes (the worker it left, replaced by
/// a pool thread, [`off_worker`]) and one hashing or compressing its pieces, plus credential work
/// (file reads, `credential_process`). Idle ones exit after tokio's keep-alive (10 s).
const MAX_BLOCKING_THREADS: usize = 8;

/// Flushes started by Fluent Bit (of every instance) whose work is not finished, including
/// those going on in the background after the engine thread was answered.
static FLUSHES: AtomicUsize = AtomicUsize::new(0);

/// One flush counted in [`FLUSHES`] from Fluent Bit's call (taken on its thread, before the
/// work is spawned, so a flush waiting for the worker already counts) until its work is done.
#[must_use]
pub struct FlushInProgress(());

impl FlushInProgress {
    pub fn enter() -> FlushInProgress {
        FLUSHES.fetch_add(1, Ordering::Relaxed);
        FlushInProgress(())
    }
}

impl Drop for FlushInProgress {
    fn drop(&mut self) {
        FLUSHES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether CPU-heavy work must leave the async worker: only when another flush shares the
/// runtime, whose I/O or encoding would otherwise wait for it. Alone, a flush keeps the worker:
/// handing the worker role to another thread (`block_in_place`) wakes a thread and moves the
/// flush's I/O to it, ~15% of an uncompressed 2 MiB flush (benches/flush, README there).
pub fn must_leave_worker() -> bool {
    FLUSHES.load(Ordering::Relaxed) > 1 && on_multi_thread_runtime()
}

/// Runs CPU-heavy `work` without holding up other flushes: when [`must_leave_worker`], the
/// calling task's thread hands the worker role to another thread first (`block_in_place`), so
/// other flushes' I/O and encoding go on meanwhile; otherwise (alone, outside a runtime, or on a
/// single-threaded one as in unit tests) it just runs.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    if must_leave_worker() {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Whether the caller runs in a task of a multi-thread runtime (where `block_in_place` works).
pub fn on_multi_thread_runtime() -> bool {
    Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
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
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("flb-sigv4")
        .on_thread_start(|| PLUGIN_THREAD.with(|t| t.set(true)))
        .enable_all()
        .build()
        .map_err(RuntimeError::Start)?;
    let handle = rt.handle().clone();
    *slot = Some(rt);
    Ok(handle)
}

/// A registration of the library begins (`FLBPluginRegister`).
pub fn register() {
    *REGISTRATIONS.lock().unwrap_or_else(|p| p.into_inner()) += 1;
}

/// A registration ends (`FLBPluginUnregister`); the last one stops the runtime. Returns whether
/// it did.
pub fn unregister() -> bool {
    let last = {
        let mut n = REGISTRATIONS.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        *n == 0
    };
    if last {
        shutdown();
    }
    last
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
///
/// Guarantee relied on by the zero-copy flush (`ffi::exports`): this returns only after the
/// future has completed or been dropped, never while it may still run (see [`Completion`]).
pub fn run_and_wait<T: Send + 'static>(
    make: Box<dyn FnOnce() -> BoxFuture<T> + Send>,
) -> Result<T, RuntimeError> {
    let handle = handle()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(Completion {
        state: Stage::Make(Some(make)),
        tx: Some(tx),
    });
    match rx.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => Err(RuntimeError::Panicked(panic_message(payload))),
        Err(_) => Err(RuntimeError::Stopped),
    }
}

type Outcome<T> = Result<T, Box<dyn std::any::Any + Send>>;

/// Runs `fut`, turning a panic while polling it into `Err` with the panic's message.
pub async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(payload) => std::task::Poll::Ready(Err(panic_message(payload))),
        }
    })
    .await
}

enum Stage<T> {
    Make(Option<Box<dyn FnOnce() -> BoxFuture<T> + Send>>),
    Run(BoxFuture<T>),
    Done,
}

/// The task of [`run_and_wait`]: builds and polls the future inside a panic guard and sends its
/// outcome. Fields drop in declaration order, so when the runtime drops the task unfinished
/// (shutdown) the future is gone before the sender, whose drop is what wakes the waiting thread.
struct Completion<T> {
    state: Stage<T>,
    tx: Option<std::sync::mpsc::SyncSender<Outcome<T>>>,
}

impl<T> Future for Completion<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        use std::task::Poll;
        let this = &mut *self;
        let polled = catch_unwind(AssertUnwindSafe(|| loop {
            match &mut this.state {
                Stage::Make(make) => match make.take() {
                    Some(make) => this.state = Stage::Run(make()),
                    None => return Poll::Pending,
                },
                Stage::Run(fut) => return fut.as_mut().poll(cx),
                Stage::Done => return Poll::Pending,
            }
        }));
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        // Drop the future (and what it borrows) before telling the caller.
        this.state = Stage::Done;
        if let Some(tx) = this.tx.take() {
            let _ = tx.send(outcome);
        }
        Poll::Ready(())
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
    fn cpu_work_leaves_the_worker_only_beside_another_flush_on_the_plugin_runtime() {
        // Other tests may flush at the same time, so only "at least two" is certain here.
        let (a, b) = (FlushInProgress::enter(), FlushInProgress::enter());
        assert!(
            !must_leave_worker(),
            "outside a runtime there is no worker to leave"
        );
        // A runtime of its own: another test shuts the shared one down and restarts it.
        let multi = Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("builds");
        let on_worker = multi.block_on(async { tokio::spawn(async { must_leave_worker() }).await });
        assert!(
            on_worker.expect("ran"),
            "two flushes in progress: leave the worker"
        );
        let current = Builder::new_current_thread().build().expect("builds");
        assert!(
            !current.block_on(async { must_leave_worker() }),
            "block_in_place is impossible on a current-thread runtime"
        );
        drop((a, b));
    }

    #[test]
    fn one_async_worker_whatever_the_core_count() {
        // No shutdown here: other tests share the runtime.
        let workers = handle().expect("starts").metrics().num_workers();
        assert_eq!(
            workers, 1,
            "see WORKER_THREADS: a second worker slows flushes"
        );
    }

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

    #[test]
    fn the_runtime_marks_its_threads_and_catches_panics() {
        assert!(!on_plugin_thread());
        let on_runtime =
            run_and_wait(Box::new(|| Box::pin(async { on_plugin_thread() }))).expect("runs");
        assert!(on_runtime);
        let caught = run_and_wait(Box::new(|| {
            Box::pin(catch_panic(async { panic!("inner") }))
        }))
        .expect("runs");
        assert_eq!(caught, Err::<(), _>("inner".to_string()));
    }
}

//! Flushes on Fluent Bit's engine thread (an output without `Workers`): they get a time budget,
//! after which the flush returns `FLB_RETRY` while its request goes on in the background
//! (DESIGN §1, issue 14). Worker-thread flushes wait for their result as before.

use super::{FlushResult, Output};
use crate::runtime::{self, RuntimeError};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a flush may hold Fluent Bit's engine thread. Fluent Bit's default `Flush` is 1 s:
/// half of it still leaves the engine free most of every flush interval for inputs, timers and
/// other outputs, and it covers a healthy signed request (a few to a few hundred ms) so that
/// flushes normally complete within it and nothing goes to the background.
pub const ENGINE_BUDGET: Duration = Duration::from_millis(500);

/// The longest a flush waits for credentials that are being fetched (on a worker thread; on the
/// engine thread the flush itself returns after [`ENGINE_BUDGET`], its request waiting on in the
/// background). Without credentials by then: `FLB_RETRY`.
pub const CREDENTIALS_WAIT: Duration = Duration::from_secs(10);

/// The longest a worker-thread flush waits for records of its chunk that an earlier attempt
/// still has in flight (in the background) before it returns `FLB_RETRY`.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Bytes that background requests of one instance may hold (chunk copies and encoded bodies;
/// Fluent Bit's own memory limits do not see them). Past it, engine-thread flushes return
/// `FLB_RETRY` without starting new work.
pub const BACKGROUND_BYTES_CAP: usize = 64 << 20;

/// How long exit (and hot reload) waits for background requests before abandoning them.
pub const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Which Fluent Bit thread a flush runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Fluent Bit's engine thread (`flb-pipeline`), or any thread that is not an output worker.
    Engine,
    /// An output worker thread (`flb-out-…`, with `Workers` set).
    Worker,
}

impl Caller {
    /// Fluent Bit names output worker threads `flb-out-<instance>-w<N>` (cut to 15 characters;
    /// `src/flb_output_thread.c`), its engine thread `flb-pipeline` (`src/flb_lib.c`).
    pub fn from_thread_name(name: &str) -> Caller {
        if name.starts_with("flb-out-") {
            Caller::Worker
        } else {
            Caller::Engine
        }
    }

    /// When a flush started at `start` must stop waiting for something.
    pub fn wait_deadline(self, start: Instant, worker_wait: Duration) -> Instant {
        match self {
            Caller::Engine => start + ENGINE_BUDGET,
            Caller::Worker => start + worker_wait,
        }
    }
}

/// An instance's background work: engine-thread flushes still running, the bytes they hold, and
/// how many of them outlived their budget.
#[derive(Default)]
pub struct Background {
    tasks: AtomicUsize,
    bytes: AtomicUsize,
    stalled: AtomicUsize,
    idle: Notify,
}

impl Background {
    pub fn stalled(&self) -> usize {
        self.stalled.load(Ordering::Acquire)
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    pub fn tasks(&self) -> usize {
        self.tasks.load(Ordering::Acquire)
    }

    /// Waits until no background flush runs, at most `timeout`; true when none does.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.tasks() == 0 {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.tasks() == 0,
            }
        }
    }
}

/// Bytes and a task counted in [`Background`] until dropped.
pub struct Held {
    background: Arc<Background>,
    bytes: AtomicUsize,
}

impl Held {
    pub fn new(background: Arc<Background>, bytes: usize) -> Held {
        background.tasks.fetch_add(1, Ordering::AcqRel);
        background.bytes.fetch_add(bytes, Ordering::AcqRel);
        Held {
            background,
            bytes: AtomicUsize::new(bytes),
        }
    }

    /// Counts more bytes (the encoded bodies).
    pub fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.background.bytes.fetch_add(bytes, Ordering::AcqRel);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.background
            .bytes
            .fetch_sub(self.bytes.load(Ordering::Acquire), Ordering::AcqRel);
        self.background.tasks.fetch_sub(1, Ordering::AcqRel);
        self.background.idle.notify_waiters();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitState {
    Waiting,
    GaveUp,
    Done,
}

/// Whether a flush's caller still waits for its result, i.e. whether Fluent Bit will be told it.
/// A flush whose caller gave up must keep its chunk's record: Fluent Bit retries the chunk, and
/// that retry must skip what the background request delivered.
pub struct Waiter {
    state: Mutex<WaitState>,
    background: Option<Arc<Background>>,
}

impl Waiter {
    /// A caller that always waits (worker threads).
    pub fn patient() -> Arc<Waiter> {
        Arc::new(Waiter {
            state: Mutex::new(WaitState::Waiting),
            background: None,
        })
    }

    fn counted(background: Arc<Background>) -> Arc<Waiter> {
        Arc::new(Waiter {
            state: Mutex::new(WaitState::Waiting),
            background: Some(background),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WaitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller stops waiting; false when the flush had already completed.
    fn give_up(&self) -> bool {
        let mut st = self.lock();
        if *st != WaitState::Waiting {
            return false;
        }
        *st = WaitState::GaveUp;
        if let Some(b) = &self.background {
            b.stalled.fetch_add(1, Ordering::AcqRel);
        }
        true
    }

    /// The flush completes; true when its caller still waits (and will report its result).
    pub fn complete(&self) -> bool {
        let mut st = self.lock();
        let was = *st;
        *st = WaitState::Done;
        if was == WaitState::GaveUp {
            if let Some(b) = &self.background {
                b.stalled.fetch_sub(1, Ordering::AcqRel);
            }
        }
        was == WaitState::Waiting
    }
}

/// Why an engine-thread flush returned `FLB_RETRY` without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// A request of this instance is still stalled in the background.
    Stalled,
    /// Background requests already hold [`BACKGROUND_BYTES_CAP`].
    Full,
}

/// What an engine-thread flush came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineFlush {
    Done(FlushResult),
    /// The budget ran out; the flush goes on in the background.
    Backgrounded,
    Declined(Declined),
}

/// Runs one flush for the engine thread: copies the chunk (Fluent Bit's memory is valid only
/// until we return), starts the flush on the runtime and waits at most [`ENGINE_BUDGET`].
pub fn flush_within_budget(
    output: &Arc<Output>,
    chunk: &[u8],
    tag: String,
) -> Result<EngineFlush, RuntimeError> {
    let background = output.background();
    if background.stalled() > 0 {
        return Ok(EngineFlush::Declined(Declined::Stalled));
    }
    if background.bytes() + chunk.len() > BACKGROUND_BYTES_CAP {
        return Ok(EngineFlush::Declined(Declined::Full));
    }
    let handle = runtime::handle()?;
    let start = Instant::now();
    let held = Held::new(background.clone(), chunk.len());
    let chunk = Bytes::copy_from_slice(chunk);
    let waiter = Waiter::counted(background);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let task_output = output.clone();
    let task_waiter = waiter.clone();
    let in_progress = runtime::FlushInProgress::enter();
    handle.spawn(async move {
        let _in_progress = in_progress;
        let outcome = runtime::catch_panic(task_output.flush(
            &chunk,
            &tag,
            Caller::Engine,
            start,
            &task_waiter,
            Some(&held),
        ))
        .await;
        drop(held);
        let _ = tx.send(outcome);
    });
    let left = ENGINE_BUDGET.saturating_sub(start.elapsed());
    match rx.recv_timeout(left) {
        Ok(Ok(result)) => Ok(EngineFlush::Done(result)),
        Ok(Err(panic)) => Err(RuntimeError::Panicked(panic)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            if waiter.give_up() {
                Ok(EngineFlush::Backgrounded)
            } else {
                // Completed just now: its result is on the way.
                match rx.recv() {
                    Ok(Ok(result)) => Ok(EngineFlush::Done(result)),
                    Ok(Err(panic)) => Err(RuntimeError::Panicked(panic)),
                    Err(_) => Err(RuntimeError::Stopped),
                }
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(RuntimeError::Stopped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_are_told_apart_by_fluent_bits_names() {
        assert_eq!(Caller::from_thread_name("flb-out-sigv4_h"), Caller::Worker);
        assert_eq!(Caller::from_thread_name("flb-out-http.0-"), Caller::Worker);
        assert_eq!(Caller::from_thread_name("flb-pipeline"), Caller::Engine);
        assert_eq!(Caller::from_thread_name("fluent-bit"), Caller::Engine);
        assert_eq!(Caller::from_thread_name(""), Caller::Engine);
    }

    #[test]
    fn a_caller_that_gave_up_counts_as_stalled_until_the_flush_completes() {
        let b = Arc::new(Background::default());
        let w = Waiter::counted(b.clone());
        assert!(w.give_up());
        assert_eq!(b.stalled(), 1);
        assert!(!w.complete(), "nobody reports this result");
        assert_eq!(b.stalled(), 0);
        let w = Waiter::counted(b.clone());
        assert!(w.complete());
        assert!(!w.give_up(), "already completed");
        assert_eq!(b.stalled(), 0);
    }

    #[tokio::test]
    async fn held_bytes_and_tasks_are_released_on_drop() {
        let b = Arc::new(Background::default());
        let h = Held::new(b.clone(), 100);
        h.add(50);
        assert_eq!((b.tasks(), b.bytes()), (1, 150));
        assert!(!b.wait_idle(Duration::from_millis(20)).await);
        let b2 = b.clone();
        let waiting = tokio::spawn(async move { b2.wait_idle(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(h);
        assert!(waiting.await.expect("joins"));
        assert_eq!((b.tasks(), b.bytes()), (0, 0));
    }
}

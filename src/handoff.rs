//! A sequential stage (hashing or compressing a body's pieces, in order) run on a helper thread
//! while the pieces are produced, and ended by the producer once it has produced the last one.
//!
//! The producer is the thread that goes on with the flush (signing, sending). Were it to sleep
//! until the helper is done, it would then need waking, and on the virtual machines plugins run
//! on, waking a thread on an idle vCPU costs 50–100 µs (benches/flush). So for a hash it waits
//! at most for the item the helper is on, then does what is left itself, on data still warm in
//! its own cache ([`Finish::TakeOver`]). A compressor is different: its tables are warm in the
//! helper's cache, so the helper finishes ([`Finish::Wait`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A stage fed items in order.
pub trait Stage: Send + 'static {
    type Item: Send + 'static;
    fn process(&mut self, item: Self::Item);
}

/// How the producer ends the handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Take the stage back at the helper's next item boundary and do the rest here: for stages
    /// whose state is small (hashing), so only the items' data moves, and that is warm here.
    TakeOver,
    /// Let the helper do every item: for stages with large working state (a compressor's
    /// tables, warm in the helper's cache; taking over made zstd flushes 13% slower).
    Wait,
}

/// How long the helper spins for the next item before sleeping.
const HELPER_SPIN: Duration = Duration::from_micros(60);

/// How long [`Handoff::finish`] spins for the helper's current item before sleeping: about the
/// time to hash the small last pieces (`chunk_bodies`), far less than a wake-up costs.
const SPIN: Duration = Duration::from_micros(100);

pub struct Handoff<S: Stage> {
    shared: Arc<Shared<S>>,
}

struct Shared<S: Stage> {
    state: Mutex<State<S>>,
    /// The helper waits here for items.
    items: Condvar,
    /// The producer awaits the stage's return here (async: it must not block a runtime thread
    /// while the helper may still be queued for a blocking-pool thread).
    returned: Notify,
    /// Bumped on every push and stop, so the spinning helper need not take the lock.
    changes: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Process what is queued, then return.
    Drain,
    /// Return at the next item boundary.
    Now,
}

struct State<S: Stage> {
    queue: VecDeque<S::Item>,
    /// `None` while the helper is processing an item (it holds the stage then).
    stage: Option<S>,
    stop: Stop,
    helper_started: bool,
    helper_waiting: bool,
    /// The helper panicked while holding the stage.
    lost: bool,
}

impl<S: Stage> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how the helper stops and wakes it if it sleeps.
    fn stop<'a>(&'a self, mut st: MutexGuard<'a, State<S>>, how: Stop) -> MutexGuard<'a, State<S>> {
        st.stop = how;
        self.changes.fetch_add(1, Ordering::Release);
        if st.helper_waiting {
            st.helper_waiting = false;
            self.items.notify_one();
        }
        st
    }
}

impl<S: Stage> Handoff<S> {
    /// Starts `stage` on a helper thread made by `spawn`. Should the helper never run, the
    /// producer does all the work in [`finish`](Self::finish).
    pub fn start(stage: S, spawn: impl FnOnce(Box<dyn FnOnce() + Send>)) -> Handoff<S> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                stage: Some(stage),
                stop: Stop::Running,
                helper_started: false,
                helper_waiting: false,
                lost: false,
            }),
            items: Condvar::new(),
            returned: Notify::new(),
            changes: AtomicU64::new(0),
        });
        let helper = shared.clone();
        spawn(Box::new(move || help(&helper)));
        Handoff { shared }
    }

    /// Queues the next item for the helper.
    pub fn push(&self, item: S::Item) {
        let mut st = self.shared.lock();
        st.queue.push_back(item);
        self.shared.changes.fetch_add(1, Ordering::Release);
        // Only a sleeping helper needs the (system call) notification.
        if st.helper_waiting {
            st.helper_waiting = false;
            drop(st);
            self.shared.items.notify_one();
        }
    }

    /// Ends the handoff (see [`Finish`]) and returns the stage with every item processed;
    /// `None` if the helper panicked with it.
    pub async fn finish(self, how: Finish) -> Option<S> {
        let shared = &*self.shared;
        let how = {
            let st = shared.lock();
            // A helper that has not started yet may be queued behind busy blocking threads:
            // never wait for it.
            let how = if st.helper_started {
                how
            } else {
                Finish::TakeOver
            };
            let stop = match how {
                Finish::TakeOver => Stop::Now,
                Finish::Wait => Stop::Drain,
            };
            drop(shared.stop(st, stop));
            how
        };
        let spin_until = Instant::now() + SPIN;
        let (mut stage, rest) = loop {
            {
                let mut st = shared.lock();
                if st.lost {
                    return None;
                }
                if how == Finish::TakeOver || st.queue.is_empty() {
                    if let Some(stage) = st.stage.take() {
                        break (stage, std::mem::take(&mut st.queue));
                    }
                }
            }
            if how == Finish::TakeOver && Instant::now() < spin_until {
                std::hint::spin_loop();
            } else {
                shared.returned.notified().await;
            }
        };
        for item in rest {
            stage.process(item);
        }
        Some(stage)
    }
}

/// Dropped unfinished (the producer failed): the helper must not wait for items forever.
impl<S: Stage> Drop for Handoff<S> {
    fn drop(&mut self) {
        let st = self.shared.lock();
        drop(self.shared.stop(st, Stop::Now));
    }
}

/// Marks the stage lost if the helper unwinds while holding it.
struct LostOnPanic<'a, S: Stage> {
    shared: &'a Shared<S>,
    armed: bool,
}

impl<S: Stage> Drop for LostOnPanic<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().lost = true;
            self.shared.returned.notify_one();
        }
    }
}

/// The helper: processes queued items in order until the producer stops it, then leaves the
/// stage for it.
fn help<S: Stage>(shared: &Shared<S>) {
    help_until_stopped(shared);
    // A permit is kept if the producer is not waiting yet.
    shared.returned.notify_one();
}

fn help_until_stopped<S: Stage>(shared: &Shared<S>) {
    let mut st = shared.lock();
    st.helper_started = true;
    loop {
        if st.stop == Stop::Now {
            return;
        }
        let Some(item) = st.queue.pop_front() else {
            if st.stop == Stop::Drain {
                return;
            }
            // Spin a little before sleeping: the next item is often due within the time a
            // wake-up would cost, and a helper that sleeps between items falls a wake-up
            // behind each time (benches/flush: 3-4% slower flushes).
            let seen = shared.changes.load(Ordering::Acquire);
            drop(st);
            let until = Instant::now() + HELPER_SPIN;
            while shared.changes.load(Ordering::Acquire) == seen && Instant::now() < until {
                std::hint::spin_loop();
            }
            st = shared.lock();
            if !st.queue.is_empty() || st.stop != Stop::Running {
                continue;
            }
            st.helper_waiting = true;
            st = shared.items.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let Some(mut stage) = st.stage.take() else {
            return; // cannot happen: the producer takes the stage only once stopping
        };
        drop(st);
        let mut guard = LostOnPanic {
            shared,
            armed: true,
        };
        stage.process(item);
        guard.armed = false;
        st = shared.lock();
        st.stage = Some(stage);
        let done = match st.stop {
            Stop::Running => false,
            Stop::Drain => st.queue.is_empty(),
            Stop::Now => true,
        };
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Records the order items arrive in; optionally slow, or panicking on one item.
    struct Log {
        seen: Vec<u32>,
        delay: Duration,
        panic_on: Option<u32>,
        threads: Vec<std::thread::ThreadId>,
    }

    impl Stage for Log {
        type Item = u32;
        fn process(&mut self, item: u32) {
            if self.panic_on == Some(item) {
                panic!("stage failed on {item}");
            }
            std::thread::sleep(self.delay);
            self.seen.push(item);
            self.threads.push(std::thread::current().id());
        }
    }

    fn log(delay_us: u64, panic_on: Option<u32>) -> Log {
        Log {
            seen: Vec::new(),
            delay: Duration::from_micros(delay_us),
            panic_on,
            threads: Vec::new(),
        }
    }

    const BOTH: [Finish; 2] = [Finish::TakeOver, Finish::Wait];

    type Spawner = Box<dyn FnOnce(Box<dyn FnOnce() + Send>)>;

    /// A helper thread, and a receiver that tells when it has returned.
    fn helper_thread() -> (Spawner, std::sync::mpsc::Receiver<std::thread::ThreadId>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawn = move |b: Box<dyn FnOnce() + Send>| {
            std::thread::spawn(move || {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(b));
                let _ = tx.send(std::thread::current().id());
            });
        };
        (Box::new(spawn), rx)
    }

    async fn started<S: Stage>(h: &Handoff<S>) {
        while !h.shared.lock().helper_started {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn every_item_is_processed_once_in_order() {
        for how in BOTH {
            for delay in [0, 200] {
                let (spawn, helper_done) = helper_thread();
                let h = Handoff::start(log(delay, None), spawn);
                for i in 0..50 {
                    h.push(i);
                    if i % 7 == 0 {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
                let stage = h.finish(how).await.expect("stage comes back");
                assert_eq!(
                    stage.seen,
                    (0..50).collect::<Vec<_>>(),
                    "{how:?} {delay} µs"
                );
                helper_done
                    .recv_timeout(Duration::from_secs(5))
                    .expect("the helper returns");
            }
        }
    }

    #[tokio::test]
    async fn taking_over_does_what_the_slow_helper_has_not_reached() {
        let (spawn, _) = helper_thread();
        let h = Handoff::start(log(2_000, None), spawn);
        started(&h).await;
        for i in 0..20 {
            h.push(i);
        }
        let me = std::thread::current().id();
        let stage = h.finish(Finish::TakeOver).await.expect("stage comes back");
        assert_eq!(stage.seen, (0..20).collect::<Vec<_>>());
        let by_me = stage.threads.iter().filter(|&&t| t == me).count();
        assert!(by_me >= 15, "the producer did {by_me} of 20");
    }

    #[tokio::test]
    async fn waiting_leaves_every_item_to_the_started_helper() {
        let (spawn, helper_done) = helper_thread();
        let h = Handoff::start(log(2_000, None), spawn);
        started(&h).await;
        for i in 0..20 {
            h.push(i);
        }
        let stage = h.finish(Finish::Wait).await.expect("stage comes back");
        assert_eq!(stage.seen, (0..20).collect::<Vec<_>>());
        let helper = helper_done
            .recv_timeout(Duration::from_secs(5))
            .expect("the helper returns");
        assert!(stage.threads.iter().all(|&t| t == helper));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_the_helper_leaves_the_runtime_thread_free() {
        let (spawn, _) = helper_thread();
        let h = Handoff::start(log(20_000, None), spawn);
        started(&h).await;
        for i in 0..3 {
            h.push(i);
        }
        let done = AtomicBool::new(false);
        let mut ticks = 0;
        let (stage, ()) = tokio::join!(
            async {
                let stage = h.finish(Finish::Wait).await;
                done.store(true, Ordering::SeqCst);
                stage
            },
            async {
                while !done.load(Ordering::SeqCst) {
                    ticks += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        );
        assert_eq!(stage.expect("stage comes back").seen, vec![0, 1, 2]);
        assert!(ticks >= 10, "other tasks ran only {ticks} times in ~60 ms");
    }

    #[tokio::test]
    async fn a_helper_that_never_starts_is_not_waited_for() {
        for how in BOTH {
            let h = Handoff::start(log(0, None), |_| {});
            for i in 0..5 {
                h.push(i);
            }
            let stage = h.finish(how).await.expect("stage comes back");
            assert_eq!(stage.seen, vec![0, 1, 2, 3, 4], "{how:?}");
        }
    }

    #[tokio::test]
    async fn dropping_it_unfinished_lets_the_helper_go() {
        let (spawn, helper_done) = helper_thread();
        let h = Handoff::start(log(0, None), spawn);
        h.push(1);
        started(&h).await;
        drop(h);
        helper_done
            .recv_timeout(Duration::from_secs(5))
            .expect("the helper returns once the handoff is dropped");
    }

    #[tokio::test]
    async fn a_helper_panic_is_reported_not_waited_for() {
        for how in BOTH {
            let (spawn, helper_done) = helper_thread();
            let h = Handoff::start(log(0, Some(2)), spawn);
            for i in 0..5 {
                h.push(i);
            }
            helper_done
                .recv_timeout(Duration::from_secs(5))
                .expect("the helper panicked on item 2");
            let finished = tokio::time::timeout(Duration::from_secs(5), h.finish(how))
                .await
                .expect("finish does not hang");
            assert!(finished.is_none(), "{how:?}: a lost stage is reported");
        }
    }
}

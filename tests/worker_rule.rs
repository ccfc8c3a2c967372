//! The worker rule of `runtime::off_worker`, observed from outside: a lone flush's CPU work keeps
//! the async worker (no hand-off cost), while beside another flush it leaves the worker so that
//! other tasks go on. Its own test binary (one process): the count of flushes in progress is
//! global, and the library's unit tests flush concurrently.

use flb_sigv4::runtime::{off_worker, FlushInProgress};
use std::time::Duration;
use tokio::runtime::Builder;

/// With `flushes` flushes in progress, whether another task of a one-worker runtime runs while a
/// task is inside `off_worker`: the work waits (up to `patience`) for that task's message.
fn other_tasks_run_during_cpu_work(flushes: usize, patience: Duration) -> bool {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let guards: Vec<FlushInProgress> = (0..flushes).map(|_| FlushInProgress::enter()).collect();
    let ran = rt.block_on(async move {
        tokio::spawn(async move {
            let (tx, rx) = std::sync::mpsc::channel();
            let other = tokio::spawn(async move {
                let _ = tx.send(());
            });
            let ran = off_worker(|| rx.recv_timeout(patience).is_ok());
            other.await.expect("the other task ends");
            ran
        })
        .await
        .expect("the flush task ends")
    });
    drop(guards);
    ran
}

#[test]
fn a_lone_flush_keeps_the_worker_and_a_second_one_makes_it_leave() {
    assert!(
        !other_tasks_run_during_cpu_work(1, Duration::from_millis(500)),
        "a lone flush's CPU work ran off the worker (the hand-off costs ~25% of its flushes/s)"
    );
    assert!(
        other_tasks_run_during_cpu_work(2, Duration::from_secs(10)),
        "beside another flush, CPU work held the only async worker"
    );
    assert!(
        !other_tasks_run_during_cpu_work(0, Duration::from_millis(500)),
        "no flush counted: nothing to make room for"
    );
}

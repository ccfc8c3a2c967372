//! Timing, CPU accounting and a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// `System`, counting the bytes currently allocated and the peak since the last reset.
pub struct Counting;

static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn grew(by: isize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Peak bytes allocated above the level at the start while `f` runs (any thread counts).
pub fn peak_extra<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed);
    ((peak - base).max(0) as usize, out)
}

/// Process CPU time (user + system, all threads), seconds.
pub fn process_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of the calling thread, nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes into the zeroed struct we own.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How long to measure each thing.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Total time per measurement (after one warm-up call).
    pub time: Duration,
    /// Batches the time is cut into; the best batch gives `best`.
    pub batches: u32,
}

/// Seconds per operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    /// Fastest batch (least disturbed by other load on the machine).
    pub best: f64,
    /// Median batch.
    pub median: f64,
    pub iters: u64,
}

/// Times `f`: one warm-up call, then batches until the budget is spent (at least 3 batches of
/// at least one call each, in full mode; one in a smoke run).
pub fn time<T>(budget: Budget, mut f: impl FnMut() -> T) -> Stat {
    std::hint::black_box(f());
    let per_batch = budget.time / budget.batches.max(1);
    let start = Instant::now();
    let mut per_op = Vec::new();
    let mut iters = 0u64;
    while per_op.len() < budget.batches.min(3) as usize || start.elapsed() < budget.time {
        let t0 = Instant::now();
        let mut n = 0u64;
        while n == 0 || t0.elapsed() < per_batch {
            std::hint::black_box(f());
            n += 1;
        }
        per_op.push(t0.elapsed().as_secs_f64() / n as f64);
        iters += n;
        if per_op.len() >= 1000 {
            break;
        }
    }
    per_op.sort_by(|a, b| a.total_cmp(b));
    Stat {
        best: per_op[0],
        median: per_op[per_op.len() / 2],
        iters,
    }
}

//! One memory per record: for each chunk that is not finished, which of its records were
//! delivered, which were rejected for good and which are in flight (DESIGN §6, issue 14).
//!
//! A chunk is known by a hash of its tag and bytes; its records by their index in the chunk
//! (the same bytes decode to the same records, in the same order). When Fluent Bit flushes a
//! chunk again, settled records (delivered or rejected) are skipped, in-flight ones awaited, the
//! rest sent. An entry lives from the first flush that needs remembering until a flush of that
//! chunk reports a final result to Fluent Bit; the number of entries is bounded (oldest first).
//!
//! Two chunks with the same tag and byte-identical records (same timestamps to the nanosecond)
//! count as one while either is pending: the second skips what the first delivered.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// Chunks remembered per instance; beyond it the oldest entries are forgotten (their chunks are
/// then sent whole if Fluent Bit flushes them again: at-least-once).
pub const CHUNKS_KEPT: usize = 1024;

/// Sorted, disjoint, non-empty, non-adjacent ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<usize>>,
}

impl RangeSet {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of indices covered.
    pub fn count(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    pub fn insert(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // Ranges that touch or overlap `r` merge into it.
        let first = self.ranges.partition_point(|x| x.end < start);
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].start <= end {
            start = start.min(self.ranges[last].start);
            end = end.max(self.ranges[last].end);
            last += 1;
        }
        self.ranges.splice(first..last, std::iter::once(start..end));
    }

    pub fn remove(&mut self, r: Range<usize>) {
        if r.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for x in self.ranges.drain(..) {
            if x.end <= r.start || x.start >= r.end {
                out.push(x);
                continue;
            }
            if x.start < r.start {
                out.push(x.start..r.start);
            }
            if x.end > r.end {
                out.push(r.end..x.end);
            }
        }
        self.ranges = out;
    }

    /// The parts of `r` this set does not cover, in order.
    pub fn gaps(&self, r: Range<usize>) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut at = r.start;
        let first = self.ranges.partition_point(|x| x.end <= r.start);
        for x in &self.ranges[first..] {
            if x.start >= r.end {
                break;
            }
            if x.start > at {
                out.push(at..x.start);
            }
            at = at.max(x.end);
        }
        if at < r.end {
            out.push(at..r.end);
        }
        out
    }

    pub fn overlaps(&self, r: &Range<usize>) -> bool {
        let first = self.ranges.partition_point(|x| x.end <= r.start);
        self.ranges.get(first).is_some_and(|x| x.start < r.end)
    }
}

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Refused for good (4xx other than the retryable ones, a single record too large): never
    /// sent again, like a delivered one.
    Rejected,
}

#[derive(Debug, Default)]
struct RecordState {
    delivered: RangeSet,
    rejected: RangeSet,
    in_flight: RangeSet,
}

/// What is known about one chunk's records.
#[derive(Debug)]
pub struct ChunkRecord {
    /// Number of records in the chunk (a different count under the same key means a hash
    /// collision: the entry is replaced, never trusted).
    records: usize,
    state: Mutex<RecordState>,
    changed: Notify,
}

impl ChunkRecord {
    pub fn new(records: usize) -> ChunkRecord {
        ChunkRecord {
            records,
            state: Mutex::new(RecordState::default()),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecordState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// Records delivered so far (by any attempt).
    pub fn delivered(&self) -> usize {
        self.lock().delivered.count()
    }

    pub fn rejected(&self) -> usize {
        self.lock().rejected.count()
    }

    /// Whether anything is settled (worth remembering across attempts).
    pub fn has_settled(&self) -> bool {
        let st = self.lock();
        !st.delivered.is_empty() || !st.rejected.is_empty()
    }

    /// Whether every record is delivered or rejected.
    pub fn is_complete(&self) -> bool {
        let st = self.lock();
        st.delivered.count() + st.rejected.count() >= self.records
    }

    /// Waits until no record is in flight, or until `deadline`. True when none is.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().in_flight.is_empty() {
                return true;
            }
            let sleep = tokio::time::sleep_until(deadline.into());
            tokio::select! {
                _ = notified => {}
                _ = sleep => return self.lock().in_flight.is_empty(),
            }
        }
    }

    /// Claims the records of `r` that are neither settled nor in flight: they are marked in
    /// flight and returned, in order.
    pub fn claim(&self, r: Range<usize>) -> Vec<Range<usize>> {
        let mut st = self.lock();
        let mut busy = st.delivered.clone();
        for x in st.rejected.ranges().iter().chain(st.in_flight.ranges()) {
            busy.insert(x.clone());
        }
        let free = busy.gaps(r);
        for x in &free {
            st.in_flight.insert(x.clone());
        }
        free
    }

    /// Records `r` ended; they are no longer in flight.
    pub fn settle(&self, r: Range<usize>, how: Settled) {
        {
            let mut st = self.lock();
            st.in_flight.remove(r.clone());
            match how {
                Settled::Delivered => st.delivered.insert(r),
                Settled::Rejected => st.rejected.insert(r),
            }
        }
        self.changed.notify_waiters();
    }

    /// Records `r` were not settled (retry later): they are no longer in flight.
    pub fn release(&self, r: Range<usize>) {
        self.lock().in_flight.remove(r);
        self.changed.notify_waiters();
    }

    /// Copies what `other` settled (used when a record that was kept local is remembered).
    fn absorb(&self, other: &ChunkRecord) {
        let (delivered, rejected) = {
            let o = other.lock();
            (o.delivered.clone(), o.rejected.clone())
        };
        let mut st = self.lock();
        for r in delivered.ranges() {
            st.delivered.insert(r.clone());
        }
        for r in rejected.ranges() {
            st.rejected.insert(r.clone());
        }
    }
}

/// A chunk's key: a hash of its tag and bytes.
pub fn chunk_key(tag: &str, chunk: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    chunk.hash(&mut h);
    h.finish()
}

#[derive(Default)]
struct Entries {
    order: VecDeque<u64>,
    chunks: HashMap<u64, Arc<ChunkRecord>>,
}

/// The per-instance memory of unfinished chunks.
#[derive(Default)]
pub struct RecordMemory {
    entries: Mutex<Entries>,
}

impl RecordMemory {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether nothing is remembered (then a flush need not hash its chunk to look it up).
    pub fn is_empty(&self) -> bool {
        self.lock().chunks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().chunks.len()
    }

    /// The chunk's record, created (and remembered) when there is none.
    pub fn open(&self, key: u64, records: usize) -> Arc<ChunkRecord> {
        let mut e = self.lock();
        if let Some(rec) = e.chunks.get(&key) {
            if rec.records == records {
                return rec.clone();
            }
        }
        let rec = Arc::new(ChunkRecord::new(records));
        if e.chunks.insert(key, rec.clone()).is_none() {
            e.order.push_back(key);
        }
        while e.order.len() > CHUNKS_KEPT {
            if let Some(old) = e.order.pop_front() {
                e.chunks.remove(&old);
            }
        }
        rec
    }

    /// Remembers what a flush that kept its record local settled.
    pub fn remember(&self, key: u64, local: &ChunkRecord) {
        self.open(key, local.records).absorb(local);
    }

    /// Forgets a chunk whose final result Fluent Bit has been told.
    pub fn forget(&self, key: u64) {
        let mut e = self.lock();
        if e.chunks.remove(&key).is_some() {
            e.order.retain(|&k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(rs: &[Range<usize>]) -> RangeSet {
        let mut s = RangeSet::default();
        for r in rs {
            s.insert(r.clone());
        }
        s
    }

    #[test]
    fn ranges_merge_split_and_report_gaps() {
        let s = set(&[5..7, 0..2, 2..3, 10..12, 6..9]);
        assert_eq!(s.ranges(), &[0..3, 5..9, 10..12]);
        assert_eq!(s.count(), 9);
        assert_eq!(s.gaps(0..14), vec![3..5, 9..10, 12..14]);
        assert_eq!(s.gaps(1..3), Vec::<Range<usize>>::new());
        assert_eq!(s.gaps(8..11), vec![9..10]);
        let mut t = s.clone();
        t.remove(6..11);
        assert_eq!(t.ranges(), &[0..3, 5..6, 11..12]);
        assert!(s.overlaps(&(8..10)));
        assert!(!s.overlaps(&(3..5)));
        assert!(!s.overlaps(&(12..20)));
    }

    /// A brute-force model of the set: every operation agrees with a Vec<bool>.
    #[test]
    fn ranges_agree_with_a_bitmap() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let mut s = RangeSet::default();
            let mut bits = [false; 40];
            for _ in 0..12 {
                let a = rng.usize(0..40);
                let b = rng.usize(a..=40);
                if rng.bool() {
                    s.insert(a..b);
                    bits[a..b].iter_mut().for_each(|x| *x = true);
                } else {
                    s.remove(a..b);
                    bits[a..b].iter_mut().for_each(|x| *x = false);
                }
                assert_eq!(s.count(), bits.iter().filter(|&&x| x).count());
                let gaps: usize = s.gaps(0..40).iter().map(|r| r.len()).sum();
                assert_eq!(gaps, 40 - s.count());
                for w in s.ranges().windows(2) {
                    assert!(w[0].end < w[1].start, "{:?}", s.ranges());
                }
            }
        }
    }

    #[test]
    fn claimed_records_are_not_claimed_twice_and_settled_ones_never() {
        let rec = ChunkRecord::new(10);
        assert_eq!(rec.claim(0..4), vec![0..4]);
        assert_eq!(rec.claim(2..8), vec![4..8], "0..4 is in flight");
        rec.settle(0..4, Settled::Delivered);
        rec.release(4..8);
        assert_eq!(rec.claim(0..10), vec![4..10]);
        rec.settle(4..6, Settled::Rejected);
        rec.settle(6..10, Settled::Delivered);
        assert!(rec.is_complete());
        assert_eq!((rec.delivered(), rec.rejected()), (8, 2));
        assert!(rec.claim(0..10).is_empty());
    }

    #[tokio::test]
    async fn waiting_for_in_flight_records_ends_when_they_settle_or_at_the_deadline() {
        let rec = Arc::new(ChunkRecord::new(4));
        rec.claim(0..4);
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(
            !rec.wait_idle(soon).await,
            "still in flight at the deadline"
        );
        let r2 = rec.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            r2.settle(0..4, Settled::Delivered);
        });
        let later = Instant::now() + Duration::from_secs(5);
        let t = Instant::now();
        assert!(rec.wait_idle(later).await);
        assert!(t.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn memory_is_bounded_and_forgets_on_request() {
        let m = RecordMemory::default();
        assert!(m.is_empty());
        let a = m.open(1, 3);
        a.claim(0..1);
        a.settle(0..1, Settled::Delivered);
        assert!(Arc::ptr_eq(&a, &m.open(1, 3)), "same chunk, same record");
        assert!(
            !Arc::ptr_eq(&a, &m.open(1, 4)),
            "another record count: replaced"
        );
        m.forget(1);
        assert!(m.is_empty());
        for k in 0..(CHUNKS_KEPT as u64 + 10) {
            m.open(k, 1);
        }
        assert_eq!(m.len(), CHUNKS_KEPT);
        let local = ChunkRecord::new(5);
        local.claim(0..5);
        local.settle(1..3, Settled::Delivered);
        m.remember(99_999, &local);
        let kept = m.open(99_999, 5);
        assert_eq!(kept.claim(0..5), vec![0..1, 3..5]);
    }

    #[test]
    fn chunk_keys_depend_on_tag_and_bytes() {
        assert_eq!(chunk_key("a", b"xyz"), chunk_key("a", b"xyz"));
        assert_ne!(chunk_key("a", b"xyz"), chunk_key("b", b"xyz"));
        assert_ne!(chunk_key("a", b"xyz"), chunk_key("a", b"xyw"));
    }
}

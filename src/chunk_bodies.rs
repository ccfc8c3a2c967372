//! A chunk's encoded records as request bodies: split on record boundaries into batches of at
//! most `max_request_bytes`, each body a list of zero-copy pieces.
//!
//! Big chunks are encoded a piece at a time, and each finished piece is compressed (when
//! configured) and hashed (SHA-256, which SigV4 needs before a request can start) on a second
//! thread while the next piece is encoded. Encoding and hashing are the two largest costs of an
//! uncompressed flush, encoding and compression those of a compressed one; this way they
//! mostly overlap instead of adding up.

use crate::event::{
    self, ChunkContext, ChunkEncoder, Compression, DecodeError, EncodedRecords, Format,
};
use crate::handoff::{Finish, Handoff, Stage};
use crate::http::body::Payload;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::ops::Range;

/// Encoded bytes per piece when hashing alongside encoding: small enough that hashing starts
/// early and ends soon after encoding, big enough that handing pieces over costs nothing.
const PIECE_BYTES: usize = 256 * 1024;

/// The first and the last pieces are small: the second thread starts early, and what it still
/// has to do once encoding ends is short (the last piece's hash is on the flush's critical path
/// when encoding is the slower stage, as with small records). Pieces in between grow up to
/// [`PIECE_BYTES`].
const END_PIECE_BYTES: usize = 32 * 1024;

/// The pieces shrink towards the end so that each is at most this fraction of what is left: the
/// second thread then finishes each piece while the next is encoded, and is never more than a
/// small piece behind. (A gentler ramp than halving: with halving, the last pieces shrink faster
/// than the hasher catches up and several are still queued when encoding ends — measured 6%
/// slower flushes with small records, none faster.)
const REMAINING_SHARE: usize = 6;

/// Size of the next piece: double the last, but no more than a [`REMAINING_SHARE`]th of what the
/// rest of the chunk will give (estimated from its undecoded bytes).
fn next_piece_bytes(last: usize, input_remaining: usize) -> usize {
    (last * 2)
        .min(PIECE_BYTES)
        .min(input_remaining / REMAINING_SHARE)
        .max(END_PIECE_BYTES)
}

/// Chunks smaller than this are processed in sequence (a second thread would not pay off).
const OVERLAP_MIN_CHUNK: usize = 2 * PIECE_BYTES;

pub struct ChunkBodies {
    records: Records,
    format: Format,
    /// Record ranges, one per request, in order.
    pub batches: Vec<Range<usize>>,
    /// Each batch's payload digest (and compressed payload), when they were computed alongside
    /// encoding; empty otherwise.
    ready: Vec<Option<Ready>>,
}

/// A batch processed alongside encoding.
struct Ready {
    /// `None` when uncompressed: the payload is then the body itself.
    compressed: Option<Bytes>,
    digest: [u8; 32],
}

enum Records {
    /// `json`: the records, for framing each body as an array.
    Framed(EncodedRecords),
    /// The other formats: record bytes back to back in one or more pieces, each with the offset
    /// of its first byte; `ends` holds each record's end offset. No record spans two pieces.
    Flat {
        pieces: Vec<(usize, Bytes)>,
        ends: Vec<usize>,
    },
}

impl ChunkBodies {
    /// Encodes `chunk` and plans its requests; big chunks get their batches compressed with
    /// `compression` and hashed while encoding.
    pub async fn encode(
        chunk: &[u8],
        body: &event::BodyOptions,
        max_request_bytes: usize,
        compression: Compression,
    ) -> Result<ChunkBodies, DecodeError> {
        Self::encode_tagged(chunk, "", body, max_request_bytes, compression).await
    }

    /// [`encode`](Self::encode) for a chunk whose tag the body may carry (`format opensearch`
    /// with `include_tag_key`).
    ///
    /// When other flushes share the plugin's runtime this runs off the async worker (see
    /// `runtime::off_worker`): encoding is the largest CPU cost of a flush, and concurrent
    /// flushes must not queue behind one thread for it.
    pub async fn encode_tagged(
        chunk: &[u8],
        tag: &str,
        body: &event::BodyOptions,
        max_request_bytes: usize,
        compression: Compression,
    ) -> Result<ChunkBodies, DecodeError> {
        let encode = Self::encode_here(chunk, tag, body, max_request_bytes, compression);
        if crate::runtime::must_leave_worker() {
            // The wait for the second stage inside is short and driven from this thread.
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(encode))
        } else {
            encode.await
        }
    }

    async fn encode_here(
        chunk: &[u8],
        tag: &str,
        body: &event::BodyOptions,
        max_request_bytes: usize,
        compression: Compression,
    ) -> Result<ChunkBodies, DecodeError> {
        let ctx = ChunkContext::now(tag.as_bytes());
        if body.format != Format::Json && chunk.len() >= OVERLAP_MIN_CHUNK {
            return encode_alongside(chunk, ctx, body, max_request_bytes, compression).await;
        }
        let records = event::encode_chunk_with(chunk, body, ctx)?;
        let records = if body.format == Format::Json {
            Records::Framed(records)
        } else {
            Records::Flat {
                ends: records.ends,
                pieces: vec![(0, Bytes::from(records.buf))],
            }
        };
        let mut bodies = ChunkBodies {
            records,
            format: body.format,
            batches: Vec::new(),
            ready: Vec::new(),
        };
        bodies.batches = bodies.plan(max_request_bytes);
        Ok(bodies)
    }

    pub fn len(&self) -> usize {
        match &self.records {
            Records::Framed(r) => r.len(),
            Records::Flat { ends, .. } => ends.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn start(ends: &[usize], i: usize) -> usize {
        if i == 0 {
            0
        } else {
            ends[i - 1]
        }
    }

    /// Bytes this value holds: encoded records and payloads compressed alongside encoding.
    pub fn byte_size(&self) -> usize {
        let records = match &self.records {
            Records::Framed(r) => r.buf.len(),
            Records::Flat { pieces, .. } => pieces.iter().map(|(_, p)| p.len()).sum(),
        };
        let compressed: usize = self
            .ready
            .iter()
            .flatten()
            .filter_map(|r| r.compressed.as_ref().map(Bytes::len))
            .sum();
        records + compressed
    }

    /// Bytes of the body of records `range` (before compression), framing included.
    pub fn body_len(&self, range: Range<usize>) -> usize {
        match &self.records {
            Records::Framed(r) => r.body_len(range, self.format),
            Records::Flat { ends, .. } => {
                if range.is_empty() {
                    0
                } else {
                    ends[range.end - 1] - Self::start(ends, range.start)
                }
            }
        }
    }

    /// Record ranges of at most `limit` body bytes (a single bigger record goes alone).
    fn plan(&self, limit: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..self.len() {
            if i > start && self.body_len(start..i + 1) > limit {
                out.push(start..i);
                start = i;
            }
        }
        if start < self.len() {
            out.push(start..self.len());
        }
        out
    }

    /// The uncompressed body of records `range`.
    pub fn body(&self, range: Range<usize>) -> Payload {
        if range.is_empty() {
            return match &self.records {
                Records::Framed(_) => Payload::from(Bytes::from_static(b"[]")),
                Records::Flat { .. } => Payload::default(),
            };
        }
        match &self.records {
            Records::Framed(r) => {
                Payload::from(event::assemble_body(r, range, Format::Json).into_owned())
            }
            Records::Flat { pieces, ends } => {
                let (from, to) = (Self::start(ends, range.start), ends[range.end - 1]);
                let first = pieces.partition_point(|&(start, _)| start <= from) - 1;
                let mut out = Vec::new();
                for (start, piece) in &pieces[first..] {
                    if *start >= to {
                        break;
                    }
                    let a = from.saturating_sub(*start);
                    let b = (to - start).min(piece.len());
                    out.push(piece.slice(a..b));
                }
                Payload::new(out)
            }
        }
    }

    /// The payload (compressed when configured) of batch `range` and its SHA-256, when they
    /// were computed alongside encoding.
    pub fn ready_payload(&self, range: &Range<usize>) -> Option<(Payload, [u8; 32])> {
        let i = self.batches.iter().position(|b| b == range)?;
        let ready = self.ready.get(i)?.as_ref()?;
        let payload = match &ready.compressed {
            Some(c) => Payload::from(c.clone()),
            None => self.body(range.clone()),
        };
        Some((payload, ready.digest))
    }
}

/// SHA-256 over a payload's pieces.
pub fn sha256(payload: &Payload) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in payload.pieces() {
        h.update(p);
    }
    h.finalize().into()
}

/// What the second stage gets, in order.
enum ToSink {
    Bytes(Bytes),
    EndOfBatch,
}

/// What the second thread does with a batch as its pieces arrive.
enum Sink {
    Hash(Sha256),
    /// `None` once compression failed: the batch is then compressed again when sent, and the
    /// error reported there.
    Compress(Option<event::Compressor>),
}

impl Sink {
    fn new(compression: Compression) -> Sink {
        match compression {
            Compression::None => Sink::Hash(Sha256::new()),
            c => Sink::Compress(c.compressor(None).ok().flatten()),
        }
    }

    fn write(&mut self, b: &[u8]) {
        match self {
            Sink::Hash(h) => h.update(b),
            Sink::Compress(c) => {
                if c.as_mut().is_some_and(|z| z.write(b).is_err()) {
                    *c = None;
                }
            }
        }
    }

    fn finish(self) -> Option<Ready> {
        match self {
            Sink::Hash(h) => Some(Ready {
                compressed: None,
                digest: h.finalize().into(),
            }),
            Sink::Compress(c) => {
                let z = Bytes::from(c?.finish().ok()?);
                Some(Ready {
                    digest: Sha256::digest(&z).into(),
                    compressed: Some(z),
                })
            }
        }
    }
}

/// The second stage of a chunk: each batch's pieces hashed (or compressed) in order.
struct BatchSinks {
    compression: Compression,
    sink: Sink,
    ready: Vec<Option<Ready>>,
}

impl Stage for BatchSinks {
    type Item = ToSink;

    fn process(&mut self, item: ToSink) {
        match item {
            ToSink::Bytes(b) => self.sink.write(&b),
            ToSink::EndOfBatch => {
                let next = Sink::new(self.compression);
                self.ready
                    .push(std::mem::replace(&mut self.sink, next).finish());
            }
        }
    }
}

async fn encode_alongside(
    chunk: &[u8],
    ctx: ChunkContext<'_>,
    opts: &event::BodyOptions,
    limit: usize,
    compression: Compression,
) -> Result<ChunkBodies, DecodeError> {
    let sinks = BatchSinks {
        compression,
        sink: Sink::new(compression),
        ready: Vec::new(),
    };
    // A blocking-pool thread: it runs at once, unlike a task queued behind this one.
    let second = Handoff::start(sinks, |help| {
        tokio::task::spawn_blocking(help);
    });
    let mut enc = ChunkEncoder::with_context(chunk, opts, ctx);
    let mut pieces = Vec::new();
    let mut ends: Vec<usize> = Vec::with_capacity(chunk.len() / 256 + 1);
    let mut batches = Vec::new();
    let (mut batch_first, mut batch_from, mut offset) = (0usize, 0usize, 0usize);
    let mut piece_bytes = END_PIECE_BYTES;
    loop {
        let mut piece = EncodedRecords {
            buf: Vec::with_capacity(piece_bytes + piece_bytes / 8),
            ends: Vec::new(),
        };
        let more = enc.encode_some(&mut piece, piece_bytes)?;
        piece_bytes = next_piece_bytes(piece_bytes, enc.input_remaining());
        let bytes = Bytes::from(piece.buf);
        let mut handed = 0; // bytes of this piece given to the hasher
        for end in piece.ends {
            let end = offset + end;
            let prev = ends.last().copied().unwrap_or(0);
            if ends.len() > batch_first && end - batch_from > limit {
                // The batch ends before this record.
                let cut = prev - offset;
                if cut > handed {
                    second.push(ToSink::Bytes(bytes.slice(handed..cut)));
                }
                second.push(ToSink::EndOfBatch);
                handed = cut;
                batches.push(batch_first..ends.len());
                (batch_first, batch_from) = (ends.len(), prev);
            }
            ends.push(end);
        }
        if bytes.len() > handed {
            second.push(ToSink::Bytes(bytes.slice(handed..)));
        }
        let len = bytes.len();
        if len > 0 {
            pieces.push((offset, bytes));
        }
        offset += len;
        if !more {
            break;
        }
    }
    if ends.len() > batch_first {
        batches.push(batch_first..ends.len());
        second.push(ToSink::EndOfBatch);
    }
    // This thread goes on with the flush: it finishes the hashing itself rather than sleep
    // until the helper has, but leaves compression to the helper, whose cache holds the
    // compressor's tables (`handoff::Finish`). Should the helper have panicked, payloads are
    // made when sending instead.
    let how = match compression {
        Compression::None => Finish::TakeOver,
        _ => Finish::Wait,
    };
    let ready = second
        .finish(how)
        .await
        .map(|s| s.ready)
        .unwrap_or_default();
    let ready = if ready.len() == batches.len() {
        ready
    } else {
        Vec::new()
    };
    Ok(ChunkBodies {
        records: Records::Flat { pieces, ends },
        format: opts.format,
        batches,
        ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BodyOptions;

    /// `n` v2 events with records of varying size (some bigger than a piece).
    fn chunk(n: usize) -> Vec<u8> {
        let mut c = Vec::new();
        for i in 0..n {
            let w = &mut c;
            rmp::encode::write_array_len(w, 2).expect("event");
            rmp::encode::write_array_len(w, 2).expect("header");
            rmp::encode::write_ext_meta(w, 8, 0).expect("ts");
            w.extend_from_slice(&(1_700_000_000u32 + i as u32).to_be_bytes());
            w.extend_from_slice(&7u32.to_be_bytes());
            rmp::encode::write_map_len(w, 0).expect("meta");
            rmp::encode::write_map_len(w, 2).expect("record");
            rmp::encode::write_str(w, "i").expect("key");
            rmp::encode::write_uint(w, i as u64).expect("value");
            rmp::encode::write_str(w, "log").expect("key");
            let len = if i % 97 == 5 {
                300_000
            } else {
                50 + (i * 7919) % 3000
            };
            let text: String = (0..len).map(|k| (b'a' + (k % 26) as u8) as char).collect();
            rmp::encode::write_str(w, &text).expect("value");
        }
        c
    }

    /// The plain path: the whole chunk encoded, then planned.
    fn sequential(c: &[u8], opts: &BodyOptions, limit: usize) -> ChunkBodies {
        let records = event::encode_chunk(c, opts).expect("encodes");
        let mut b = ChunkBodies {
            records: Records::Flat {
                ends: records.ends,
                pieces: vec![(0, Bytes::from(records.buf))],
            },
            format: opts.format,
            batches: Vec::new(),
            ready: Vec::new(),
        };
        b.batches = b.plan(limit);
        b
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressed_alongside_decompresses_to_the_bodies() {
        let c = chunk(1500);
        let opts = BodyOptions::default();
        for compression in [Compression::gzip(), Compression::zstd()] {
            let plain = sequential(&c, &opts, 700_000);
            let piped = ChunkBodies::encode(&c, &opts, 700_000, compression)
                .await
                .expect("encodes");
            assert!(piped.batches.len() > 1);
            assert_eq!(plain.batches, piped.batches);
            for batch in &piped.batches {
                let (payload, digest) = piped.ready_payload(batch).expect("ready");
                let z = payload.contiguous();
                assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&z)));
                let body = event::compress::decompress(compression, &z).expect("decompresses");
                assert_eq!(body, all_bytes(&plain, batch.clone()), "{compression:?}");
            }
        }
    }

    fn all_bytes(b: &ChunkBodies, range: Range<usize>) -> Vec<u8> {
        b.body(range).contiguous().to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_alongside_gives_the_same_bodies_batches_and_digests() {
        let c = chunk(2000);
        assert!(c.len() >= OVERLAP_MIN_CHUNK, "{}", c.len());
        for format in [
            Format::JsonLines,
            Format::JsonStream,
            Format::Msgpack,
            Format::OpenSearch,
        ] {
            let opts = BodyOptions {
                format,
                ..BodyOptions::default()
            };
            for limit in [1024, 100_000, 256 * 1024 + 17, 1 << 20, usize::MAX] {
                let plain = sequential(&c, &opts, limit);
                let piped = ChunkBodies::encode(&c, &opts, limit, Compression::None)
                    .await
                    .expect("encodes");
                assert_eq!(piped.len(), 2000);
                assert_eq!(plain.batches, piped.batches, "{format:?} {limit}");
                assert_eq!(piped.ready.len(), piped.batches.len());
                if let Records::Flat { pieces, .. } = &piped.records {
                    assert!(pieces.len() > 1, "encoded in several pieces");
                }
                for (i, batch) in piped.batches.iter().enumerate() {
                    let body = all_bytes(&plain, batch.clone());
                    assert_eq!(all_bytes(&piped, batch.clone()), body);
                    assert_eq!(piped.body_len(batch.clone()), body.len());
                    let want: [u8; 32] = Sha256::digest(&body).into();
                    let (payload, digest) = piped.ready_payload(batch).expect("ready");
                    assert_eq!(digest, want, "batch {i}");
                    assert_eq!(payload.contiguous().to_vec(), body);
                    assert_eq!(sha256(&piped.body(batch.clone())), want);
                }
                // Any sub-range (a 413 split) reads across pieces correctly.
                for r in [0..1, 3..1500, 96..103, 1999..2000, 0..2000] {
                    assert_eq!(all_bytes(&piped, r.clone()), all_bytes(&plain, r));
                }
            }
        }
    }

    #[test]
    fn pieces_start_and_end_small() {
        // A 2 MiB chunk that encodes to about as many bytes: the sizes the encoder asks for.
        let (mut size, mut left, mut sizes) = (END_PIECE_BYTES, 2usize << 20, Vec::new());
        while left > 0 {
            sizes.push(size);
            left = left.saturating_sub(size);
            size = next_piece_bytes(size, left);
        }
        assert_eq!(sizes[0], END_PIECE_BYTES);
        assert_eq!(sizes[1], 2 * END_PIECE_BYTES, "{sizes:?}");
        assert_eq!(sizes.iter().max(), Some(&PIECE_BYTES), "{sizes:?}");
        assert_eq!(sizes.last(), Some(&END_PIECE_BYTES), "{sizes:?}");
        assert!(sizes.len() < 32, "{sizes:?}");
        // once shrinking, no piece is less than 80% of the one before (the hasher keeps up)
        let peak = sizes.iter().rposition(|&s| s == PIECE_BYTES).unwrap_or(0);
        for w in sizes[peak..].windows(2) {
            assert!(w[1] * 5 >= w[0] * 4, "{sizes:?}");
        }
    }

    #[tokio::test]
    async fn json_is_framed_per_body() {
        let c = chunk(10);
        let opts = BodyOptions {
            format: Format::Json,
            ..BodyOptions::default()
        };
        let b = ChunkBodies::encode(&c, &opts, usize::MAX, Compression::None)
            .await
            .expect("encodes");
        let v: serde_json::Value =
            serde_json::from_slice(&all_bytes(&b, 2..5)).expect("a JSON array");
        assert_eq!(v.as_array().map(Vec::len), Some(3));
        assert_eq!(v[0]["i"], 2);
        assert_eq!(&all_bytes(&b, 0..0), b"[]");
    }

    #[tokio::test]
    async fn a_bad_chunk_is_an_error_either_way() {
        let mut c = chunk(1500);
        c.push(0xc1); // never valid msgpack
        for compression in [Compression::None, Compression::gzip()] {
            let opts = BodyOptions::default();
            let r = ChunkBodies::encode(&c, &opts, usize::MAX, compression).await;
            assert!(r.is_err(), "{compression:?}");
        }
        let small = chunk(3);
        let opts = BodyOptions::default();
        let mut bad = small.clone();
        bad.push(0xc1);
        assert!(bad.len() < OVERLAP_MIN_CHUNK);
        let r = ChunkBodies::encode(&bad, &opts, usize::MAX, Compression::None).await;
        assert!(r.is_err(), "small chunk");
    }
}

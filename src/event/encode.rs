//! Transcoding records straight from msgpack to the body format (no intermediate tree).
//!
//! # Output
//!
//! * **JSON formats** (`json_lines`, `json`, `json_stream`): one object per record — the date
//!   key first (when configured), then the record's fields in their order. Keys are not
//!   de-duplicated (Fluent Bit drops all but the last of equal keys; a record field named like
//!   the date key therefore appears after it, and JSON readers that keep the last value see the
//!   same result).
//!   - Strings are JSON-escaped (`\"`, `\\`, `\b \f \n \r \t`, other control characters as
//!     `\u00XX`); byte sequences that are not valid UTF-8 are replaced by U+FFFD, one per
//!     maximal invalid sequence, never dropping the record.
//!   - `bin` values and ext values (other than in the timestamp slot) become base64 strings
//!     (standard alphabet, padded). (Fluent Bit writes bin bytes raw and ext as `\xNN` text,
//!     which is not always valid JSON.)
//!   - Keys are always JSON strings: strings as such, integers in decimal, `true`/`false`,
//!     `null`, floats as below, bin/ext as base64, and arrays/maps as the string holding their
//!     compact JSON text.
//!   - Integers are exact; floats use the shortest text that reads back to the same value
//!     (ryu; `f32` values as `f32`); NaN and ±infinity become `null`.
//! * **msgpack**: each record re-encoded as a map whose first entry is the date key (`double` →
//!   float64, `epoch`/`epoch_ms` → integer, `iso8601`/`java_sql_timestamp` → string), followed
//!   by the record's entries copied byte for byte (strings are not validated or re-encoded).
//!
//! # Depth limit
//!
//! Arrays and maps nested deeper than [`MAX_DEPTH`] levels (the record map is level 1) are
//! replaced by `null` (msgpack `nil`); the subtree is skipped iteratively. Nothing here
//! recurses, so hostile nesting cannot exhaust the stack.
//!
//! # Dates (`json_date_format`)
//!
//! Written from the integers (no `f64` rounding), for any `i64` seconds (pre-1970 and far future
//! included; days are converted with the proleptic Gregorian civil-from-days algorithm):
//! * `double`: seconds with the microseconds (rounded to nearest) and trailing zeros dropped,
//!   `1700000000.123457`, `1700000000.5`, `1700000000.0` — the text `out_http` writes (`%.16g` of
//!   an `f64`, `%.1f` for whole seconds). More digits would be noise to a reader that parses a
//!   double (its step is ~0.24 µs at today's seconds) and cost three bytes a record;
//! * `epoch`: integer seconds (floor); `epoch_ms`: integer milliseconds (floor);
//! * `iso8601`: `"2023-11-14T22:13:20.123456789Z"` and `java_sql_timestamp`:
//!   `"2023-11-14 22:13:20.123456789"` — nanosecond-exact, nine fraction digits where Fluent Bit
//!   writes six (text dates are parsed as dates, e.g. by OpenSearch's `date_nanos`). Years
//!   outside 0000–9999 are written with a sign (`+10000-…`, `-0001-…`, ISO 8601 expanded form).
//!
//! # `log_key`
//!
//! `out_http` has no `log_key`; this follows Fluent Bit's `out_s3` (and, near enough, the
//! Firehose/Kinesis/CloudWatch outputs): the first record entry whose key (str or bin) equals
//! `log_key` byte for byte is shipped alone, without the date key. A string or bin value is
//! written raw — not quoted, not escaped — with invalid UTF-8 replaced by U+FFFD; any other value
//! is written as compact JSON. `json_lines` ends each value with `\n`, `json` wraps the values in
//! `[`…`,`…`]`, `json_stream` concatenates them; so `json`/`json_stream` bodies are valid JSON only
//! when the shipped strings hold JSON. With `msgpack` the value's msgpack is copied as is (depth
//! limit applied). Records without the key are skipped (not an error).

use super::bulk::{BulkState, ChunkContext};
use super::decode::{DecodeError, EventDecoder, EventHeader, RawError, Reader, Timestamp, Token};
use super::{BodyOptions, DateFormat, Format};
use base64::Engine as _;
use std::borrow::Cow;
use std::ops::Range;

/// Arrays/maps nested deeper than this (the record map is level 1) are written as `null`.
pub const MAX_DEPTH: usize = 64;

/// The encoded records of one chunk, back to back in one buffer. Record `i` is
/// `buf[ends[i-1]..ends[i]]` (`ends[-1]` = 0). For `json_lines` each record includes its
/// trailing `\n`, so any contiguous range of records is already a valid body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EncodedRecords {
    pub buf: Vec<u8>,
    pub ends: Vec<usize>,
}

impl EncodedRecords {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }
    /// The encoded bytes of record `i`.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.buf[self.start(i)..self.ends[i]]
    }
    /// Bytes a body made of `range` takes (before compression), framing included.
    pub fn body_len(&self, range: Range<usize>, format: Format) -> usize {
        if range.is_empty() {
            return if format == Format::Json { 2 } else { 0 };
        }
        let raw = self.ends[range.end - 1] - self.start(range.start);
        match format {
            Format::Json => raw + 2 + (range.len() - 1),
            _ => raw,
        }
    }
}

/// Decode a whole chunk and encode every record for `opts`.
pub fn encode_chunk(data: &[u8], opts: &BodyOptions) -> Result<EncodedRecords, DecodeError> {
    encode_chunk_with(data, opts, ChunkContext::now(b""))
}

/// [`encode_chunk`] for a chunk whose tag and time the body may need (`format opensearch`).
pub fn encode_chunk_with(
    data: &[u8],
    opts: &BodyOptions,
    ctx: ChunkContext<'_>,
) -> Result<EncodedRecords, DecodeError> {
    let mut out = EncodedRecords {
        buf: Vec::with_capacity((data.len() / 10).saturating_mul(13).saturating_add(64)),
        ends: Vec::with_capacity(data.len() / 128 + 1),
    };
    ChunkEncoder::with_context(data, opts, ctx).encode_some(&mut out, usize::MAX)?;
    Ok(out)
}

/// Encodes a chunk a piece at a time, so that finished pieces can be used (hashed, say) while
/// the rest is encoded.
pub struct ChunkEncoder<'d, 'o> {
    enc: Encoder<'o>,
    dec: EventDecoder<'d>,
    done: bool,
}

impl<'d, 'o> ChunkEncoder<'d, 'o> {
    pub fn new(data: &'d [u8], opts: &'o BodyOptions) -> ChunkEncoder<'d, 'o> {
        ChunkEncoder::with_context(data, opts, ChunkContext::now(b""))
    }

    /// An encoder for a chunk whose tag and time the body may need (`format opensearch`).
    pub fn with_context(
        data: &'d [u8],
        opts: &'o BodyOptions,
        ctx: ChunkContext<'_>,
    ) -> ChunkEncoder<'d, 'o> {
        ChunkEncoder {
            enc: Encoder::new(opts, ctx),
            dec: EventDecoder::new(data),
            done: false,
        }
    }

    /// Appends the next records to `out` until it holds at least `target` bytes or the chunk
    /// ends; `true` while records remain.
    pub fn encode_some(
        &mut self,
        out: &mut EncodedRecords,
        target: usize,
    ) -> Result<bool, DecodeError> {
        while !self.done && out.buf.len() < target {
            let Some(h) = self.dec.next_header()? else {
                self.done = true;
                break;
            };
            let emitted = self
                .enc
                .record(self.dec.reader(), &h, &mut out.buf)
                .map_err(|e| e.into_decode_error(h.offset))?;
            if emitted {
                out.ends.push(out.buf.len());
            }
        }
        Ok(!self.done)
    }

    /// Bytes of the chunk not yet decoded.
    pub fn input_remaining(&mut self) -> usize {
        self.dec.reader().remaining()
    }
}

/// The body for records `range`: borrowed when no framing is needed (json_lines, json_stream,
/// msgpack), built for `json` (`[` … `,` … `]`).
pub fn assemble_body(
    records: &EncodedRecords,
    range: Range<usize>,
    format: Format,
) -> Cow<'_, [u8]> {
    if range.is_empty() {
        return if format == Format::Json {
            Cow::Borrowed(b"[]")
        } else {
            Cow::Borrowed(b"")
        };
    }
    match format {
        Format::Json => {
            let mut out = Vec::with_capacity(records.body_len(range.clone(), format));
            out.push(b'[');
            for i in range.clone() {
                if i != range.start {
                    out.push(b',');
                }
                out.extend_from_slice(records.record(i));
            }
            out.push(b']');
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(&records.buf[records.start(range.start)..records.ends[range.end - 1]]),
    }
}

static DEFAULT_BULK: once_cell::sync::Lazy<crate::opensearch::BulkOptions> =
    once_cell::sync::Lazy::new(Default::default);

/// Per-chunk encoder state: pre-encoded date key and reusable work space.
struct Encoder<'o> {
    opts: &'o BodyOptions,
    /// `"key":` for JSON, or the msgpack str of the key; empty when there is no date key.
    date_key: Vec<u8>,
    dates: DateCache,
    work: Work,
    /// `format opensearch`.
    bulk: Option<BulkState<'o>>,
}

/// Work space reused by every record of a chunk (no per-record allocation or initialisation).
pub(super) struct Work {
    scratch: Vec<u8>,
    frames: [Frame; MAX_DEPTH],
    counts: [u64; MAX_DEPTH],
}

impl<'o> Encoder<'o> {
    fn new(opts: &'o BodyOptions, ctx: ChunkContext<'_>) -> Encoder<'o> {
        let mut date_key = Vec::new();
        if let Some(k) = &opts.date_key {
            if opts.format == Format::Msgpack {
                mp_str_header(&mut date_key, k.len());
                date_key.extend_from_slice(k.as_bytes());
            } else {
                write_json_str(&mut date_key, k.as_bytes());
                date_key.push(b':');
            }
        }
        let mut lead = Vec::new();
        if opts.format != Format::Msgpack {
            lead.extend_from_slice(&date_key);
            if matches!(
                opts.date_format,
                DateFormat::Iso8601 | DateFormat::JavaSqlTimestamp
            ) {
                lead.push(b'"');
            }
        }
        Encoder {
            opts,
            date_key,
            dates: DateCache {
                secs: None,
                lead,
                text: Vec::with_capacity(64),
            },
            work: Work {
                scratch: Vec::new(),
                frames: [ROOT; MAX_DEPTH],
                counts: [0; MAX_DEPTH],
            },
            bulk: (opts.format == Format::OpenSearch)
                .then(|| BulkState::new(opts.bulk.as_ref().unwrap_or(&DEFAULT_BULK), ctx)),
        }
    }

    /// Encodes the record whose header is `h` (the reader is on its first key). `false` when the
    /// record produced no output (`log_key` missing).
    fn record(
        &mut self,
        r: &mut Reader<'_>,
        h: &EventHeader,
        out: &mut Vec<u8>,
    ) -> Result<bool, RawError> {
        let items = 2 * u64::from(h.entries);
        if let Some(bulk) = &mut self.bulk {
            // log_key does not apply: a document must be an object (refused at init)
            bulk.record(self.opts, &mut self.dates, &mut self.work, r, h, out)?;
            return Ok(true);
        }
        if let Some(key) = &self.opts.log_key {
            return self.log_key_record(r, h, key.as_bytes(), out);
        }
        let has_date = self.opts.date_key.is_some();
        match self.opts.format {
            Format::Msgpack => {
                let n = u64::from(h.entries) + u64::from(has_date);
                if !mp_map_header(out, n) {
                    return Err(RawError {
                        pos: h.record_start,
                        what: "record has too many fields",
                    });
                }
                if has_date {
                    out.extend_from_slice(&self.date_key);
                    self.dates.mp_date(out, h.timestamp, self.opts.date_format);
                }
                copy_msgpack(r, out, &mut self.work.counts, items)?;
            }
            format => {
                out.push(b'{');
                if has_date {
                    self.dates
                        .json_date(out, h.timestamp, self.opts.date_format);
                }
                let root = Frame {
                    remaining: items,
                    kind: Kind::Map,
                    first: !has_date,
                    key_start: NOT_KEY,
                };
                json_values::<false>(r, out, &mut self.work, root)?;
                if format == Format::JsonLines {
                    out.push(b'\n');
                }
            }
        }
        Ok(true)
    }

    fn log_key_record(
        &mut self,
        r: &mut Reader<'_>,
        h: &EventHeader,
        key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, RawError> {
        let mut found = None;
        for _ in 0..h.entries {
            let matched = match r.next()? {
                Token::Str(k) | Token::Bin(k) => k == key,
                Token::Array(n) => {
                    r.skip_values(u64::from(n))?;
                    false
                }
                Token::Map(n) => {
                    r.skip_values(2 * u64::from(n))?;
                    false
                }
                _ => false,
            };
            if matched && found.is_none() {
                found = Some(r.pos());
            }
            r.skip_values(1)?;
        }
        let Some(vpos) = found else {
            return Ok(false);
        };
        let mut vr = Reader::at(r.buf(), vpos);
        match self.opts.format {
            Format::Msgpack => copy_msgpack(&mut vr, out, &mut self.work.counts, 1)?,
            format => {
                match vr.clone().next()? {
                    Token::Str(s) | Token::Bin(s) => write_lossy_utf8(out, s),
                    _ => {
                        json_values::<false>(&mut vr, out, &mut self.work, ROOT)?;
                    }
                }
                if format == Format::JsonLines {
                    out.push(b'\n');
                }
            }
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A bare value (no brackets, no separators).
    Root,
    Array,
    Map,
}

/// One open container. `remaining` counts values still to read (keys and values for maps).
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame {
    pub(super) remaining: u64,
    pub(super) kind: Kind,
    pub(super) first: bool,
    /// Where this container's JSON starts when it is a map key (stringified on close).
    pub(super) key_start: usize,
}

pub(super) const NOT_KEY: usize = usize::MAX;

/// A bare single value.
const ROOT: Frame = Frame {
    remaining: 1,
    kind: Kind::Root,
    first: true,
    key_start: NOT_KEY,
};

/// Transcodes the values of `root` (already opened by the caller, whose level counts as 1) and
/// closes it. Iterative: the open container is kept in `cur`, its ancestors in a fixed stack of
/// at most [`MAX_DEPTH`] frames.
pub(super) fn json_values<const REPLACE_DOTS: bool>(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    work: &mut Work,
    root: Frame,
) -> Result<(), RawError> {
    let Work {
        scratch,
        frames: stack,
        ..
    } = work;
    let mut cur = root;
    // number of ancestors of `cur` in `stack`; `cur` is at level `depth + 1`
    let mut depth = 0usize;
    // Whether `cur` or an ancestor is a container key being stringified. Keys nested inside it
    // are then written as they are, not stringified again: the outermost key escapes its whole
    // text once, so the output stays linear in the input (escaping at every level of a key
    // inside a key inside a key… doubles the backslashes each time).
    let mut in_stringified_key = false;
    loop {
        // Close finished containers.
        while cur.remaining == 0 {
            match cur.kind {
                Kind::Array => out.push(b']'),
                Kind::Map => out.push(b'}'),
                Kind::Root => {}
            }
            if cur.key_start != NOT_KEY {
                stringify_tail(out, cur.key_start, scratch);
                in_stringified_key = false;
            }
            if depth == 0 {
                return Ok(());
            }
            depth -= 1;
            cur = stack[depth];
        }
        let in_key = cur.kind == Kind::Map && cur.remaining % 2 == 0;
        match cur.kind {
            Kind::Map if !in_key => out.push(b':'),
            Kind::Root => {}
            _ if !cur.first => out.push(b','),
            _ => {}
        }
        cur.first = false;
        cur.remaining -= 1;
        // Strings (most tokens) take a fast path that builds no `Token`.
        if let Some((from, end)) = r.str_range() {
            let at = out.len();
            write_json_str_at(out, r.buf(), from, end);
            if REPLACE_DOTS && in_key && !in_stringified_key {
                replace_dots(&mut out[at..]);
            }
            continue;
        }
        let tok = r.next()?;
        match tok {
            // the payload ends where the reader is
            Token::Str(s) => {
                let at = out.len();
                write_json_str_at(out, r.buf(), r.pos() - s.len(), r.pos());
                if REPLACE_DOTS && in_key && !in_stringified_key {
                    replace_dots(&mut out[at..]);
                }
            }
            Token::Array(n) | Token::Map(n) => {
                let (kind, items, open) = if let Token::Map(_) = tok {
                    (Kind::Map, 2 * u64::from(n), b'{')
                } else {
                    (Kind::Array, u64::from(n), b'[')
                };
                if depth + 1 >= MAX_DEPTH {
                    r.skip_values(items)?;
                    out.extend_from_slice(if in_key { b"\"null\"" } else { b"null" });
                } else {
                    let key_start = if in_key && !in_stringified_key {
                        in_stringified_key = true;
                        out.len()
                    } else {
                        NOT_KEY
                    };
                    out.push(open);
                    stack[depth] = cur;
                    depth += 1;
                    cur = Frame {
                        remaining: items,
                        kind,
                        first: true,
                        key_start,
                    };
                }
            }
            Token::Bin(b) | Token::Ext(_, b) => write_base64_str(out, b),
            scalar => {
                if in_key {
                    out.push(b'"');
                    write_json_scalar(out, scalar);
                    out.push(b'"');
                } else {
                    write_json_scalar(out, scalar);
                }
            }
        }
    }
}

/// `.` → `_` in a key's JSON text (escaping never writes a `.`).
fn replace_dots(key: &mut [u8]) {
    for b in key {
        if *b == b'.' {
            *b = b'_';
        }
    }
}

/// Turns `out[start..]` (compact JSON) into a JSON string holding that text.
fn stringify_tail(out: &mut Vec<u8>, start: usize, scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(&out[start..]);
    out.truncate(start);
    write_json_str(out, scratch);
}

/// Nil, bool, integers and floats.
pub(super) fn write_json_scalar(out: &mut Vec<u8>, t: Token<'_>) {
    match t {
        Token::Nil => out.extend_from_slice(b"null"),
        Token::Bool(true) => out.extend_from_slice(b"true"),
        Token::Bool(false) => out.extend_from_slice(b"false"),
        Token::UInt(u) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
        Token::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Token::F32(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        Token::F64(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// What follows `\` for bytes that must be escaped; 0 for bytes copied as is.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A mask whose lowest set bit (bit 7 of byte `k`) marks the first byte of the 8 that is a
/// control character, `"` or `\`; 0 when there is none. (Bits above the lowest may be
/// spurious: borrows only propagate upwards from a real hit.)
#[inline(always)]
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let lt = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * b'"' as u64);
    let q = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * b'\\' as u64);
    let b = b.wrapping_sub(ONES) & !b;
    (lt | q | b) & HIGH
}

#[inline(always)]
fn push_escape(out: &mut Vec<u8>, b: u8, e: u8) {
    if e == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', e]);
    }
}

/// Escapes the flagged bytes of a word (the 8 bytes of `buf` from `at`; `m` is its
/// [`escape_mask`], limited to bytes from `*start` on). Every real hit is flagged; spurious flags
/// are filtered by the table.
#[inline(always)]
fn escape_word(out: &mut Vec<u8>, buf: &[u8], at: usize, start: &mut usize, mut m: u64) {
    while m != 0 {
        let j = at + (m.trailing_zeros() / 8) as usize;
        m &= m - 1;
        let Some(&b) = buf.get(j) else { break };
        let e = ESCAPE[usize::from(b)];
        if e != 0 {
            out.extend_from_slice(&buf[*start..j]);
            push_escape(out, b, e);
            *start = j + 1;
        }
    }
}

/// Appends `buf[from..end]` JSON-escaped, without quotes, copying safe runs in bulk and checking
/// 8 bytes at a time — the last (or only, for short strings) word is the 8 bytes ending at `end`,
/// which may start before `from` in `buf`; those bytes are ignored. Returns whether the string
/// has any non-ASCII byte (the caller then checks that it is valid UTF-8).
#[inline(always)]
pub(super) fn escape_range(out: &mut Vec<u8>, buf: &[u8], from: usize, end: usize) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut start = from;
    let mut high = 0u64;
    let words = buf[from..end].chunks_exact(8);
    let i = end - words.remainder().len();
    for (k, w) in words.enumerate() {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            break;
        };
        let word = u64::from_le_bytes(w);
        high |= word;
        let m = escape_mask(word);
        if m != 0 {
            escape_word(out, buf, from + 8 * k, &mut start, m);
        }
    }
    let rest = end - i; // 0..=7
    if rest > 0 {
        if let Some(w) = buf[..end].last_chunk::<8>() {
            // flags spill upwards only, so those of the bytes before `i` can be masked off
            let word = u64::from_le_bytes(*w);
            let keep = !0u64 << (8 * (8 - rest));
            high |= word & keep;
            let m = escape_mask(word) & keep;
            if m != 0 {
                escape_word(out, buf, end - 8, &mut start, m);
            }
        } else {
            for j in i..end {
                let b = buf[j];
                high |= u64::from(b);
                let e = ESCAPE[usize::from(b)];
                if e != 0 {
                    out.extend_from_slice(&buf[start..j]);
                    push_escape(out, b, e);
                    start = j + 1;
                }
            }
        }
    }
    out.extend_from_slice(&buf[start..end]);
    high & HIGH != 0
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Appends `s` as a quoted JSON string; invalid UTF-8 sequences become U+FFFD.
pub(super) fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    write_json_str_at(out, s, 0, s.len());
}

/// Appends `buf[from..end]` as a quoted JSON string; invalid UTF-8 sequences become U+FFFD.
/// (The string's surroundings in `buf` let short strings be checked as one word.) Pure ASCII
/// needs no UTF-8 validation. Not inlined: in its own frame the word loop keeps its state in
/// registers.
#[inline(always)]
pub(super) fn write_json_str_at(out: &mut Vec<u8>, buf: &[u8], from: usize, end: usize) {
    out.reserve(end - from + 2);
    out.push(b'"');
    let body = out.len();
    if escape_range(out, buf, from, end) && std::str::from_utf8(&buf[from..end]).is_err() {
        out.truncate(body);
        write_lossy_escaped(out, &buf[from..end]);
    }
    out.push(b'"');
}

/// Appends `s` JSON-escaped with each maximal invalid UTF-8 sequence replaced by U+FFFD.
#[cold]
#[inline(never)]
pub(super) fn write_lossy_escaped(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        escape_range(out, valid, 0, valid.len());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
}

/// Appends `s` raw; invalid UTF-8 sequences become U+FFFD.
fn write_lossy_utf8(out: &mut Vec<u8>, s: &[u8]) {
    if std::str::from_utf8(s).is_ok() {
        out.extend_from_slice(s);
    } else {
        for chunk in s.utf8_chunks() {
            out.extend_from_slice(chunk.valid().as_bytes());
            if !chunk.invalid().is_empty() {
                out.extend_from_slice(REPLACEMENT);
            }
        }
    }
}

/// Appends `b` as a quoted base64 (standard, padded) JSON string.
fn write_base64_str(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + b.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(b, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------------
// Dates

/// The text of a date that depends on the seconds only (consecutive records mostly share
/// them), kept from one record to the next.
pub(super) struct DateCache {
    secs: Option<(i64, DateFormat)>,
    /// What JSON dates start with: the key, `:` and, for text dates, the opening quote. Kept at
    /// the start of `text`, so that a record's date is one copy and the nanoseconds.
    lead: Vec<u8>,
    text: Vec<u8>,
}

impl DateCache {
    /// [`lead`](Self::lead), then for `epoch`: the seconds; `double`: the seconds and `.` (not
    /// for negative times with a fraction); `iso8601`/`java_sql_timestamp`:
    /// `YYYY-MM-DD?HH:MM:SS.`.
    fn secs_text(&mut self, secs: i64, fmt: DateFormat) -> &[u8] {
        if self.secs != Some((secs, fmt)) {
            self.secs = Some((secs, fmt));
            self.text.clear();
            self.text.extend_from_slice(&self.lead);
            match fmt {
                DateFormat::Double | DateFormat::Epoch | DateFormat::EpochMs => {
                    self.text
                        .extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
                    if fmt == DateFormat::Double {
                        self.text.push(b'.');
                    }
                }
                DateFormat::Iso8601 => write_civil_secs(&mut self.text, secs, b'T'),
                DateFormat::JavaSqlTimestamp => write_civil_secs(&mut self.text, secs, b' '),
            }
        }
        &self.text
    }

    /// Appends the date key and the timestamp as a JSON value in `fmt`.
    pub(super) fn json_date(&mut self, out: &mut Vec<u8>, ts: Timestamp, fmt: DateFormat) {
        match fmt {
            // negative with a fraction, or microseconds that round up into the next second
            DateFormat::Double if (ts.secs < 0 && ts.nanos > 0) || ts.nanos >= MICRO_CARRY => {
                out.extend_from_slice(&self.lead);
                write_decimal_secs(out, ts)
            }
            DateFormat::Double => {
                out.extend_from_slice(self.secs_text(ts.secs, fmt));
                push_micros_trimmed(out, ts.nanos);
            }
            DateFormat::Epoch => out.extend_from_slice(self.secs_text(ts.secs, fmt)),
            DateFormat::EpochMs => {
                out.extend_from_slice(&self.lead);
                out.extend_from_slice(itoa::Buffer::new().format(ts.epoch_millis()).as_bytes())
            }
            DateFormat::Iso8601 => {
                out.extend_from_slice(self.secs_text(ts.secs, fmt));
                push_nanos(out, ts.nanos);
                out.extend_from_slice(b"Z\"");
            }
            DateFormat::JavaSqlTimestamp => {
                out.extend_from_slice(self.secs_text(ts.secs, fmt));
                push_nanos(out, ts.nanos);
                out.push(b'"');
            }
        }
    }

    /// Appends the timestamp as a msgpack value in `fmt`.
    fn mp_date(&mut self, out: &mut Vec<u8>, ts: Timestamp, fmt: DateFormat) {
        match fmt {
            DateFormat::Double => {
                out.push(0xcb);
                out.extend_from_slice(&ts.as_f64().to_be_bytes());
            }
            DateFormat::Epoch => mp_int(out, ts.secs),
            DateFormat::EpochMs => mp_int(out, ts.epoch_millis()),
            DateFormat::Iso8601 | DateFormat::JavaSqlTimestamp => {
                let z = usize::from(fmt == DateFormat::Iso8601);
                let text = self.secs_text(ts.secs, fmt);
                mp_str_header(out, text.len() + 9 + z);
                out.extend_from_slice(text);
                push_nanos(out, ts.nanos);
                if z == 1 {
                    out.push(b'Z');
                }
            }
        }
    }
}

/// `secs.nnnnnnnnn`, exact (negative times as `-s.nnnnnnnnn`).
fn write_decimal_secs(out: &mut Vec<u8>, ts: Timestamp) {
    let (neg, mut whole, mut frac) = if ts.secs < 0 && ts.nanos > 0 {
        // secs + nanos/1e9 = -((-secs - 1) + (1e9 - nanos)/1e9)
        (true, (-(ts.secs + 1)) as u64, 1_000_000_000 - ts.nanos)
    } else {
        (ts.secs < 0, ts.secs.unsigned_abs(), ts.nanos)
    };
    if frac >= MICRO_CARRY {
        // rounds up to the next whole second (u64 magnitude: i64::MIN's + 1 still fits)
        whole += 1;
        frac = 0;
    }
    if neg && (whole > 0 || frac >= 500) {
        out.push(b'-');
    }
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    out.push(b'.');
    push_micros_trimmed(out, frac);
}

/// Nanoseconds from which the microseconds round up to a whole second.
const MICRO_CARRY: u32 = 999_999_500;

/// Appends `nanos` (< [`MICRO_CARRY`]) rounded to microseconds, as six digits less the trailing
/// zeros, at least one digit (`5`, `123457`, `0`).
#[inline]
fn push_micros_trimmed(out: &mut Vec<u8>, nanos: u32) {
    let micros = ((nanos + 500) / 1000) as usize;
    let pair = |v: usize| [DIGIT_PAIRS[2 * v], DIGIT_PAIRS[2 * v + 1]];
    let (hi, lo) = (micros / 1000, micros % 1000);
    let [a, b] = pair(hi / 10);
    let [d, e] = pair(lo / 10);
    let digits = [a, b, b'0' + (hi % 10) as u8, d, e, b'0' + (lo % 10) as u8];
    // trailing zeros without branches (the last digit is random): a fixed six-byte copy, then
    // cut; all zeros keep one digit
    let zeros = [10, 100, 1000, 10_000, 100_000]
        .iter()
        .map(|&m| usize::from(micros % m == 0))
        .sum::<usize>();
    out.extend_from_slice(&digits);
    out.truncate(out.len() - zeros);
}

/// Appends `n` (< 10⁹) as exactly nine digits.
#[inline]
fn push_nanos(out: &mut Vec<u8>, n: u32) {
    // two digits at a time from a table: half the dependent divisions of a digit loop
    let n = (n % 1_000_000_000) as usize;
    let pair = |v: usize| [DIGIT_PAIRS[2 * v], DIGIT_PAIRS[2 * v + 1]];
    let (hi, lo) = (n / 100_000, n % 100_000); // 4 and 5 digits
    let [a, b] = pair(hi / 100);
    let [c, d] = pair(hi % 100);
    let [e, f] = pair(lo / 1000);
    let [g, h] = pair(lo / 10 % 100);
    out.extend_from_slice(&[a, b, c, d, e, f, g, h, b'0' + (lo % 10) as u8]);
}

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends `v` zero-padded to at least `width` digits.
fn push_digits(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v).as_bytes();
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s);
}

/// (year, month, day) of days since 1970-01-01, proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`), valid for every day an `i64` of seconds can reach.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD<sep>HH:MM:SS.` (UTC; the fraction is the caller's).
fn write_civil_secs(out: &mut Vec<u8>, secs: i64, sep: u8) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        out.push(b'-');
    } else if y > 9999 {
        out.push(b'+');
    }
    push_digits(out, y.unsigned_abs(), 4);
    out.push(b'-');
    push_digits(out, u64::from(m), 2);
    out.push(b'-');
    push_digits(out, u64::from(d), 2);
    out.push(sep);
    push_digits(out, sod / 3600, 2);
    out.push(b':');
    push_digits(out, sod / 60 % 60, 2);
    out.push(b':');
    push_digits(out, sod % 60, 2);
    out.push(b'.');
}

// ---------------------------------------------------------------------------------------------
// msgpack

/// Appends a map header; `false` when `n` does not fit msgpack's 32-bit count.
fn mp_map_header(out: &mut Vec<u8>, n: u64) -> bool {
    if n <= 15 {
        out.push(0x80 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xde);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xdf);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        return false;
    }
    true
}

/// Appends a str header (`len` is at most a date's or a configured key's length).
fn mp_str_header(out: &mut Vec<u8>, len: usize) {
    if len <= 31 {
        out.push(0xa0 | len as u8);
    } else if let Ok(n) = u8::try_from(len) {
        out.extend_from_slice(&[0xd9, n]);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

/// Appends an integer in its smallest msgpack encoding.
fn mp_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        let u = v as u64;
        if u < 128 {
            out.push(u as u8);
        } else if let Ok(u) = u8::try_from(u) {
            out.extend_from_slice(&[0xcc, u]);
        } else if let Ok(u) = u16::try_from(u) {
            out.push(0xcd);
            out.extend_from_slice(&u.to_be_bytes());
        } else if let Ok(u) = u32::try_from(u) {
            out.push(0xce);
            out.extend_from_slice(&u.to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if let Ok(i) = i8::try_from(v) {
        out.extend_from_slice(&[0xd0, i as u8]);
    } else if let Ok(i) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&i.to_be_bytes());
    } else if let Ok(i) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&i.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Copies `values` msgpack values from `r` to `out`, byte for byte, except that containers
/// deeper than [`MAX_DEPTH`] (the enclosing record is level 1) become `nil`. Iterative.
fn copy_msgpack(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    stack: &mut [u64; MAX_DEPTH],
    values: u64,
) -> Result<(), RawError> {
    let buf = r.buf();
    stack[0] = values;
    let mut sp = 1usize;
    let mut copy_from = r.pos();
    loop {
        while stack[sp - 1] == 0 {
            sp -= 1;
            if sp == 0 {
                out.extend_from_slice(&buf[copy_from..r.pos()]);
                return Ok(());
            }
        }
        stack[sp - 1] -= 1;
        let tok_start = r.pos();
        let items = match r.next()? {
            Token::Array(n) => u64::from(n),
            Token::Map(n) => 2 * u64::from(n),
            _ => continue,
        };
        if sp >= MAX_DEPTH {
            out.extend_from_slice(&buf[copy_from..tok_start]);
            out.push(0xc0);
            r.skip_values(items)?;
            copy_from = r.pos();
        } else {
            stack[sp] = items;
            sp += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_nanos_writes_nine_digits() {
        let edges = [
            0,
            1,
            9,
            10,
            99,
            100,
            99_999,
            100_000,
            123_456_789,
            999_999_999,
        ];
        let sweep = (0..1_000_000_000u32).step_by(7_919);
        for n in edges.into_iter().chain(sweep) {
            let mut out = b"x".to_vec();
            push_nanos(&mut out, n);
            assert_eq!(out, format!("x{n:09}").as_bytes(), "{n}");
        }
        let mut out = Vec::new();
        push_nanos(&mut out, u32::MAX); // only its last nine digits
        assert_eq!(out, b"294967295");
    }

    /// `escape_range` against a byte-at-a-time reference: strings of every length up to 40 at
    /// every offset of a buffer, so that short strings read their word from before `from`.
    #[test]
    fn escape_range_matches_a_byte_at_a_time_reference() {
        fn reference(s: &[u8]) -> (Vec<u8>, bool) {
            let mut out = Vec::new();
            for &b in s {
                match ESCAPE[usize::from(b)] {
                    0 => out.push(b),
                    e => push_escape(&mut out, b, e),
                }
            }
            (out, s.iter().any(|&b| b >= 0x80))
        }
        let alphabet = [
            b'a', b'"', b'\\', b'\n', 0x01, 0x1f, 0x7f, 0x80, 0xe2, b' ', b'~', 0xff,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..400 {
            let len = 1 + round % 64;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    // mostly plain text, as in logs
                    if (x >> 60) < 11 {
                        b'a' + (x >> 33) as u8 % 26
                    } else {
                        alphabet[(x >> 40) as usize % alphabet.len()]
                    }
                })
                .collect();
            for from in 0..buf.len() {
                for end in from..=buf.len().min(from + 40) {
                    let mut out = b"prefix".to_vec();
                    let high = escape_range(&mut out, &buf, from, end);
                    let (want, want_high) = reference(&buf[from..end]);
                    assert_eq!(&out[6..], &want[..], "{from}..{end} of {buf:?}");
                    assert_eq!(high, want_high, "{from}..{end} of {buf:?}");
                }
            }
        }
    }

    #[test]
    fn escape_mask_finds_the_first_special_byte() {
        let specials = [0u8, 0x1f, b'"', b'\\', b'\n'];
        let others = [
            b' ', b'a', 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'!', b'#', b'[', b']',
        ];
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mut bytes = [0u8; 8];
            for (k, b) in bytes.iter_mut().enumerate() {
                let r = (x >> (k * 7 + 3)) as usize;
                *b = if r % 9 == 0 {
                    specials[r / 9 % specials.len()]
                } else if r % 9 == 1 {
                    (r >> 4) as u8
                } else {
                    others[r / 9 % others.len()]
                };
            }
            let want = bytes.iter().position(|&b| ESCAPE[usize::from(b)] != 0);
            let m = escape_mask(u64::from_le_bytes(bytes));
            let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
            assert_eq!(got, want, "{bytes:?}");
        }
    }
}

//! Decoding Fluent Bit chunks: a sequence of msgpack events, v2 `[[ts, meta], record]` or
//! legacy `[ts, record]`; timestamps as ext type 0, integer or float.
//!
//! The decoder reads msgpack straight from the chunk's byte slice (hand-rolled marker
//! parsing, no intermediate value tree, no allocation). Every declared length is checked
//! against the bytes that remain before it is trusted, and skipping a value is iterative, so
//! hostile input can neither exhaust memory nor the stack.
//!
//! Behaviour, compared with Fluent Bit's own `flb_log_event_decoder.c` (v5.1.1):
//!
//! * **Group markers** (Fluent Bit ≥ 4) are skipped: an event whose timestamp is the ext
//!   EventTime with seconds `0xFFFFFFFF` (group start) or `0xFFFFFFFE` (group end) and zero
//!   nanoseconds, an integer `-1`/`-2` (or `u64::MAX`/`u64::MAX - 1`, which is how a legacy
//!   encoder writes `(uint64_t) -1`), or a float `-1.0`/`-2.0`. Their metadata and body are
//!   skipped whatever their type.
//! * **Metadata** (the second element of the v2 header) is skipped, whatever its type.
//!   (Fluent Bit ≥ 4 adds non-empty metadata and group attributes to its JSON under
//!   `__internal__`; this plugin does not.)
//! * **Timestamps**: ext type 0 of 8 bytes (big-endian `u32` seconds, `u32` nanoseconds;
//!   nanoseconds ≥ 10⁹ carry into the seconds instead of failing the chunk), an integer
//!   (seconds; any sign, so pre-1970 values work — Fluent Bit skips records with negative
//!   seconds other than the markers), or a float (seconds; the fraction is rounded to the
//!   nearest nanosecond, where Fluent Bit truncates; NaN reads as 0 and values beyond the
//!   `i64` range saturate). Any other timestamp type fails the chunk.
//! * The record must be a map; anything else fails the chunk, as does invalid or truncated
//!   msgpack. [`DecodeError::offset`] is the byte offset of the event that failed.

/// A chunk that is not valid msgpack (or not a sequence of events).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid msgpack chunk at byte offset {offset}: {reason}")]
pub struct DecodeError {
    /// Byte offset, in the chunk, of the event that could not be decoded.
    pub offset: usize,
    pub reason: String,
}

/// Event timestamp, nanosecond precision. `secs` is the floor of the time in seconds since the
/// Unix epoch (negative before 1970) and `nanos` (always `< 1_000_000_000`) is added to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

const NANOS_PER_SEC: u32 = 1_000_000_000;

impl Timestamp {
    /// A timestamp from seconds and nanoseconds; nanoseconds ≥ 10⁹ carry into the seconds.
    pub fn new(secs: i64, nanos: u32) -> Timestamp {
        if nanos < NANOS_PER_SEC {
            Timestamp { secs, nanos }
        } else {
            Timestamp {
                secs: secs.saturating_add(i64::from(nanos / NANOS_PER_SEC)),
                nanos: nanos % NANOS_PER_SEC,
            }
        }
    }

    /// Seconds as a float: the fraction rounded to the nearest nanosecond (ties away from
    /// zero); NaN reads as 0, values beyond the `i64` range saturate.
    pub fn from_f64(v: f64) -> Timestamp {
        if v.is_nan() {
            return Timestamp::default();
        }
        let floor = v.floor();
        // 2^63 is exactly representable; `as` saturates, so check the range explicitly.
        if floor >= 9_223_372_036_854_775_808.0 {
            return Timestamp {
                secs: i64::MAX,
                nanos: 0,
            };
        }
        if floor < -9_223_372_036_854_775_808.0 {
            return Timestamp {
                secs: i64::MIN,
                nanos: 0,
            };
        }
        let secs = floor as i64;
        // `v - floor` is exact or off by far less than a nanosecond.
        let nanos = ((v - floor) * 1e9).round();
        let nanos = if nanos >= 1e9 {
            NANOS_PER_SEC
        } else if nanos <= 0.0 {
            0
        } else {
            nanos as u32
        };
        Timestamp::new(secs, nanos)
    }

    /// Milliseconds since the epoch, floored, saturating.
    pub fn epoch_millis(self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// Seconds as an `f64` (nearest representable value).
    pub fn as_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }
}

/// A low-level decoding failure: what went wrong and where (absolute byte position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawError {
    pub pos: usize,
    pub what: &'static str,
}

impl RawError {
    pub(crate) fn into_decode_error(self, event_offset: usize) -> DecodeError {
        DecodeError {
            offset: event_offset,
            reason: format!("{} (at byte {})", self.what, self.pos),
        }
    }
}

/// One msgpack token. Containers carry only their declared element count (already checked
/// against the remaining input); strings, binaries and ext payloads borrow from the chunk.
///
/// `repr(C, u8)` puts every payload at offset 8, apart from the tag: built field by field and
/// read back field by field, a token then never costs a failed store-to-load forward (a
/// measurable stall on every token with the default layout, which packs small payloads next to
/// the tag).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, u8)]
pub(crate) enum Token<'a> {
    Nil,
    Bool(bool),
    /// Non-negative integers from the unsigned encodings.
    UInt(u64),
    /// Integers from the signed encodings (negative fixint, int8…int64).
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    Array(u32),
    Map(u32),
}

/// A cursor over msgpack bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Reader<'a> {
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    pub(crate) fn buf(&self) -> &'a [u8] {
        self.buf
    }

    #[inline(always)]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline(always)]
    fn err(&self, what: &'static str) -> RawError {
        RawError {
            pos: self.pos,
            what,
        }
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], RawError> {
        if n > self.remaining() {
            return Err(self.err("length exceeds the remaining input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RawError> {
        match self.buf[self.pos..].first_chunk::<N>() {
            Some(a) => {
                self.pos += N;
                Ok(*a)
            }
            None => Err(self.err("truncated input")),
        }
    }

    #[inline(always)]
    fn u8(&mut self) -> Result<u8, RawError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.err("truncated input")),
        }
    }

    #[inline(always)]
    fn len16(&mut self) -> Result<usize, RawError> {
        Ok(usize::from(u16::from_be_bytes(self.array::<2>()?)))
    }

    #[inline(always)]
    fn len32(&mut self) -> Result<u32, RawError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    #[inline(always)]
    fn array_token(&self, n: u32) -> Result<Token<'a>, RawError> {
        if n as usize > self.remaining() {
            return Err(self.err("array length exceeds the remaining input"));
        }
        Ok(Token::Array(n))
    }

    #[inline(always)]
    fn map_token(&self, n: u32) -> Result<Token<'a>, RawError> {
        if (n as usize).saturating_mul(2) > self.remaining() {
            return Err(self.err("map length exceeds the remaining input"));
        }
        Ok(Token::Map(n))
    }

    #[inline(always)]
    fn ext_token(&mut self, len: usize) -> Result<Token<'a>, RawError> {
        let ty = self.u8()? as i8;
        Ok(Token::Ext(ty, self.take(len)?))
    }

    /// Reads the next token.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Result<Token<'a>, RawError> {
        let start = self.pos;
        let m = self.u8()?;
        let tok = match m {
            0x00..=0x7f => Token::UInt(u64::from(m)),
            0x80..=0x8f => self.map_token(u32::from(m & 0x0f))?,
            0x90..=0x9f => self.array_token(u32::from(m & 0x0f))?,
            0xa0..=0xbf => Token::Str(self.take(usize::from(m & 0x1f))?),
            0xc0 => Token::Nil,
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => {
                let n = usize::from(self.u8()?);
                Token::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Token::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()? as usize;
                Token::Bin(self.take(n)?)
            }
            0xc7 => {
                let n = usize::from(self.u8()?);
                self.ext_token(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext_token(n)?
            }
            0xc9 => {
                let n = self.len32()? as usize;
                self.ext_token(n)?
            }
            0xca => Token::F32(f32::from_be_bytes(self.array::<4>()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.array::<8>()?)),
            0xcc => Token::UInt(u64::from(self.u8()?)),
            0xcd => Token::UInt(u64::from(u16::from_be_bytes(self.array::<2>()?))),
            0xce => Token::UInt(u64::from(u32::from_be_bytes(self.array::<4>()?))),
            0xcf => Token::UInt(u64::from_be_bytes(self.array::<8>()?)),
            0xd0 => Token::Int(i64::from(self.u8()? as i8)),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.array::<2>()?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.array::<4>()?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.array::<8>()?)),
            0xd4 => self.ext_token(1)?,
            0xd5 => self.ext_token(2)?,
            0xd6 => self.ext_token(4)?,
            0xd7 => self.ext_token(8)?,
            0xd8 => self.ext_token(16)?,
            0xd9 => {
                let n = usize::from(self.u8()?);
                Token::Str(self.take(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Token::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()? as usize;
                Token::Str(self.take(n)?)
            }
            0xdc => {
                let n = self.len16()? as u32;
                self.array_token(n)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array_token(n)?
            }
            0xde => {
                let n = self.len16()? as u32;
                self.map_token(n)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map_token(n)?
            }
            0xe0..=0xff => Token::Int(i64::from(m as i8)),
            0xc1 => {
                self.pos = start;
                return Err(self.err("reserved msgpack marker 0xc1"));
            }
        };
        Ok(tok)
    }

    /// When the next token is a string lying wholly within the input, consumes it and returns its
    /// payload's range; otherwise `None`, consuming nothing. (A fast path that builds no
    /// [`Token`]; anything else, errors included, is left to [`next`](Self::next).)
    #[inline(always)]
    pub(crate) fn str_range(&mut self) -> Option<(usize, usize)> {
        let b = &self.buf[self.pos..];
        let (hdr, len) = match *b.first()? {
            m @ 0xa0..=0xbf => (1, usize::from(m & 0x1f)),
            0xd9 => (2, usize::from(*b.get(1)?)),
            0xda => (
                3,
                usize::from(u16::from_be_bytes(*b.get(1..)?.first_chunk::<2>()?)),
            ),
            0xdb => (
                5,
                u32::from_be_bytes(*b.get(1..)?.first_chunk::<4>()?) as usize,
            ),
            _ => return None,
        };
        if hdr + len > b.len() {
            return None;
        }
        let from = self.pos + hdr;
        self.pos = from + len;
        Some((from, self.pos))
    }

    /// Skips `items` complete values, iteratively (no recursion, whatever the nesting).
    pub(crate) fn skip_values(&mut self, items: u64) -> Result<(), RawError> {
        let mut left = items;
        while left > 0 {
            // Every pending value needs at least one byte.
            if left > self.remaining() as u64 {
                return Err(self.err("truncated input"));
            }
            left -= 1;
            match self.next()? {
                Token::Array(n) => left += u64::from(n),
                Token::Map(n) => left += 2 * u64::from(n),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where a record starts, as found by [`EventDecoder::next_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventHeader {
    /// Offset of the event in the chunk.
    pub offset: usize,
    pub timestamp: Timestamp,
    /// Position of the record map's header.
    pub record_start: usize,
    /// Number of key/value pairs of the record map.
    pub entries: u32,
}

enum Head {
    Record(EventHeader),
    Marker,
}

/// Walks the events of a chunk. [`next_header`](Self::next_header) leaves the reader on the
/// first key of the record; the caller must consume exactly `2 * entries` values (or call
/// [`skip_record`](Self::skip_record)) before asking for the next header.
pub(crate) struct EventDecoder<'a> {
    r: Reader<'a>,
}

/// Group start / end in the ext EventTime encoding (seconds are unsigned there).
const EXT_GROUP_START: u32 = u32::MAX;
const EXT_GROUP_END: u32 = u32::MAX - 1;

impl<'a> EventDecoder<'a> {
    pub(crate) fn new(data: &'a [u8]) -> EventDecoder<'a> {
        EventDecoder {
            r: Reader::new(data),
        }
    }

    pub(crate) fn reader(&mut self) -> &mut Reader<'a> {
        &mut self.r
    }

    /// Skips the rest of a record returned by [`next_header`](Self::next_header).
    pub(crate) fn skip_record(&mut self, h: &EventHeader) -> Result<(), DecodeError> {
        self.r
            .skip_values(2 * u64::from(h.entries))
            .map_err(|e| e.into_decode_error(h.offset))
    }

    /// The next record's header, skipping group markers; `None` at the end of the chunk.
    pub(crate) fn next_header(&mut self) -> Result<Option<EventHeader>, DecodeError> {
        loop {
            if self.r.remaining() == 0 {
                return Ok(None);
            }
            if let Some(h) = self.usual_head() {
                return Ok(Some(h));
            }
            let offset = self.r.pos();
            match self.head(offset) {
                Ok(Head::Record(h)) => return Ok(Some(h)),
                Ok(Head::Marker) => continue,
                Err(e) => return Err(e.into_decode_error(offset)),
            }
        }
    }

    /// The header of the event Fluent Bit writes almost always, `[[EventTime, {}], {…}]` with a
    /// fixmap record, read straight from its 14 bytes: small records spend a tenth of their
    /// decoding in [`head`](Self::head)'s token-by-token walk otherwise. `None` for anything
    /// else (group markers included), which `head` then reads.
    #[inline(always)]
    fn usual_head(&mut self) -> Option<EventHeader> {
        let offset = self.r.pos;
        let b: &[u8; 14] = self.r.buf.get(offset..)?.first_chunk()?;
        let [0x92, 0x92, 0xd7, 0x00, s0, s1, s2, s3, n0, n1, n2, n3, 0x80, map] = *b else {
            return None;
        };
        if map & 0xf0 != 0x80 {
            return None;
        }
        let timestamp = event_time([s0, s1, s2, s3, n0, n1, n2, n3])?;
        self.r.pos = offset + b.len();
        Some(EventHeader {
            offset,
            timestamp,
            record_start: offset + b.len() - 1,
            entries: u32::from(map & 0x0f),
        })
    }

    fn head(&mut self, offset: usize) -> Result<Head, RawError> {
        let r = &mut self.r;
        let bad = |what| RawError { pos: offset, what };
        match r.next()? {
            Token::Array(2) => {}
            Token::Array(_) => return Err(bad("event is not a 2-element array")),
            _ => return Err(bad("event is not an array")),
        }
        let first_pos = r.pos();
        let first = r.next()?;
        let ts_tok = match first {
            Token::Array(2) => {
                let ts_pos = r.pos();
                let t = r.next()?;
                if matches!(t, Token::Array(_) | Token::Map(_)) {
                    return Err(RawError {
                        pos: ts_pos,
                        what: "timestamp is not an integer, float or EventTime",
                    });
                }
                // metadata: ignored, whatever it is
                r.skip_values(1)?;
                (t, ts_pos)
            }
            Token::Array(_) => {
                return Err(RawError {
                    pos: first_pos,
                    what: "event header is not a 2-element array",
                })
            }
            t => (t, first_pos),
        };
        let ts = match timestamp(ts_tok.0) {
            Some(ts) => ts,
            None => {
                return Err(RawError {
                    pos: ts_tok.1,
                    what: "timestamp is not an integer, float or EventTime",
                })
            }
        };
        let Some(ts) = ts else {
            // group marker: skip its body (group attributes), whatever it is
            r.skip_values(1)?;
            return Ok(Head::Marker);
        };
        let record_start = r.pos();
        match r.next()? {
            Token::Map(entries) => Ok(Head::Record(EventHeader {
                offset,
                timestamp: ts,
                record_start,
                entries,
            })),
            _ => Err(RawError {
                pos: record_start,
                what: "record is not a map",
            }),
        }
    }
}

/// `None`: not a timestamp; `Some(None)`: a group marker; `Some(Some(ts))`: a timestamp.
fn timestamp(t: Token<'_>) -> Option<Option<Timestamp>> {
    let signed = |s: i64| {
        if s == -1 || s == -2 {
            None
        } else {
            Some(Timestamp { secs: s, nanos: 0 })
        }
    };
    Some(match t {
        Token::UInt(u) => match i64::try_from(u) {
            Ok(s) => signed(s),
            Err(_) if u >= u64::MAX - 1 => None,
            Err(_) => Some(Timestamp {
                secs: i64::MAX,
                nanos: 0,
            }),
        },
        Token::Int(i) => signed(i),
        Token::F32(f) => float_ts(f64::from(f)),
        Token::F64(f) => float_ts(f),
        Token::Ext(0, d) => event_time(*<&[u8; 8]>::try_from(d).ok()?),
        _ => return None,
    })
}

/// The 8 bytes of an EventTime (ext type 0): `None` for a group marker.
fn event_time(d: [u8; 8]) -> Option<Timestamp> {
    let [s0, s1, s2, s3, n0, n1, n2, n3] = d;
    let secs = u32::from_be_bytes([s0, s1, s2, s3]);
    let nanos = u32::from_be_bytes([n0, n1, n2, n3]);
    if nanos == 0 && (secs == EXT_GROUP_START || secs == EXT_GROUP_END) {
        None
    } else {
        Some(Timestamp::new(i64::from(secs), nanos))
    }
}

fn float_ts(f: f64) -> Option<Timestamp> {
    if f == -1.0 || f == -2.0 {
        None
    } else {
        Some(Timestamp::from_f64(f))
    }
}

/// One decoded event: its timestamp and its record, still as raw msgpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Byte offset of the event in the chunk.
    pub offset: usize,
    pub timestamp: Timestamp,
    /// The record map, as raw msgpack (header included).
    pub record: &'a [u8],
    /// Number of key/value pairs in the record.
    pub entries: u32,
}

/// Iterator over the records of a chunk (group markers skipped). Yields at most one error,
/// then ends.
pub struct Events<'a> {
    dec: EventDecoder<'a>,
    done: bool,
}

/// Iterates the records of a Fluent Bit chunk.
pub fn events(data: &[u8]) -> Events<'_> {
    Events {
        dec: EventDecoder::new(data),
        done: false,
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let res = self.dec.next_header().and_then(|h| match h {
            None => Ok(None),
            Some(h) => {
                self.dec.skip_record(&h)?;
                let buf = self.dec.r.buf();
                Ok(Some(Event {
                    offset: h.offset,
                    timestamp: h.timestamp,
                    record: &buf[h.record_start..self.dec.r.pos()],
                    entries: h.entries,
                }))
            }
        });
        match res {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Events<'_> {}

//! `format opensearch`: each record becomes its `_bulk` action line and its document line, both
//! newline-terminated, so any contiguous range of encoded records is a valid `_bulk` body.
//!
//! * Action: `{"<op>":{"_index":"…"[,"_id":"…"][,"retry_on_conflict":N]}}` — never `_type`.
//! * Document: the JSON encoder's output (date key first), then the tag key when configured,
//!   then the record's fields (with `.` → `_` in keys under `replace_dots`); for `update` wrapped
//!   as `{"doc":…}`, for `upsert` as `{"doc_as_upsert":true,"doc":…}`.
//! * `_id`: `id_key`'s value when it is a string or an integer; otherwise, with `generate_id` or
//!   for update/upsert (which need one), the generated id: the first 128 bits of SHA-256 over the
//!   timestamp (seconds as big-endian i64, nanoseconds as big-endian u32) and the record's
//!   msgpack bytes as they are in the chunk, written `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`
//!   (uppercase hex, out_opensearch's shape). A re-sent record gets the same id; two identical
//!   records with the same timestamp get the same id too (one document).
//! * Index: fixed (`index`, strftime-filled from the encoding time) or logstash-style
//!   (`<prefix or the value at logstash_prefix_key><separator><logstash_dateformat>`), the date
//!   from the record's timestamp in UTC (or the encoding time with `current_time_index`),
//!   rendered once per distinct second.

use super::decode::{EventHeader, RawError, Reader, Token};
use super::encode::{
    escape_range, json_values, write_json_str, write_lossy_escaped, DateCache, Frame, Kind, Work,
    NOT_KEY,
};
use super::BodyOptions;
use crate::opensearch::{BulkOptions, IndexName, KeyPath, PathStep, WriteOperation};
use sha2::{Digest, Sha256};

/// What a chunk's encoding needs to know besides the options: its tag and the time.
#[derive(Debug, Clone, Copy)]
pub struct ChunkContext<'t> {
    pub tag: &'t [u8],
    /// Seconds since the epoch (UTC) that stand for "now" (`index` patterns,
    /// `current_time_index`).
    pub now: i64,
}

impl<'t> ChunkContext<'t> {
    /// The context of a chunk encoded now.
    pub fn now(tag: &'t [u8]) -> ChunkContext<'t> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        ChunkContext { tag, now }
    }
}

/// Per-chunk state of the `_bulk` encoder: everything constant for the chunk pre-encoded.
pub(super) struct BulkState<'o> {
    opts: &'o BulkOptions,
    /// `{"create":{"_index":"`
    action_head: Vec<u8>,
    /// The fixed index's escaped text (no quotes).
    fixed_index: Vec<u8>,
    /// Logstash: the escaped prefix, and the escaped separator.
    prefix: Vec<u8>,
    separator: Vec<u8>,
    /// Logstash: the second whose date `date_text` holds, and that text (escaped).
    date_secs: Option<i64>,
    date_text: Vec<u8>,
    now: i64,
    /// `,"retry_on_conflict":N}}\n` for update/upsert, else `}}\n`.
    action_tail: Vec<u8>,
    /// `"tag_key":"tag"`, empty without include_tag_key.
    tag_member: Vec<u8>,
    /// `{"doc":` / `{"doc_as_upsert":true,"doc":`, empty for create/index.
    doc_head: &'static [u8],
    scratch: String,
}

impl<'o> BulkState<'o> {
    pub(super) fn new(opts: &'o BulkOptions, ctx: ChunkContext<'_>) -> BulkState<'o> {
        let mut action_head = b"{\"".to_vec();
        action_head.extend_from_slice(opts.operation.action().as_bytes());
        action_head.extend_from_slice(b"\":{\"_index\":\"");
        let mut scratch = String::new();
        let (mut fixed_index, mut prefix, mut separator) = (Vec::new(), Vec::new(), Vec::new());
        match &opts.index {
            IndexName::Fixed(p) => {
                p.render(&mut scratch, ctx.now);
                escape_text(&mut fixed_index, scratch.as_bytes());
            }
            IndexName::Logstash {
                prefix: p,
                separator: s,
                ..
            } => {
                escape_text(&mut prefix, p.as_bytes());
                escape_text(&mut separator, s.as_bytes());
            }
        }
        let mut action_tail = Vec::new();
        if opts.operation.needs_id() {
            action_tail.extend_from_slice(b",\"retry_on_conflict\":");
            action_tail.extend_from_slice(
                itoa::Buffer::new()
                    .format(opts.retry_on_conflict)
                    .as_bytes(),
            );
        }
        action_tail.extend_from_slice(b"}}\n");
        let mut tag_member = Vec::new();
        if let Some(k) = &opts.tag_key {
            write_json_str(&mut tag_member, k.as_bytes());
            tag_member.push(b':');
            write_json_str(&mut tag_member, ctx.tag);
        }
        let doc_head: &'static [u8] = match opts.operation {
            WriteOperation::Create | WriteOperation::Index => b"",
            WriteOperation::Update => b"{\"doc\":",
            WriteOperation::Upsert => b"{\"doc_as_upsert\":true,\"doc\":",
        };
        BulkState {
            opts,
            action_head,
            fixed_index,
            prefix,
            separator,
            date_secs: None,
            date_text: Vec::new(),
            now: ctx.now,
            action_tail,
            tag_member,
            doc_head,
            scratch,
        }
    }

    /// Writes the record whose header is `h` (the reader on its first key): action line and
    /// document line.
    pub(super) fn record(
        &mut self,
        body: &BodyOptions,
        dates: &mut DateCache,
        work: &mut Work,
        r: &mut Reader<'_>,
        h: &EventHeader,
        out: &mut Vec<u8>,
    ) -> Result<(), RawError> {
        // Action line.
        out.extend_from_slice(&self.action_head);
        match &self.opts.index {
            IndexName::Fixed(_) => out.extend_from_slice(&self.fixed_index),
            IndexName::Logstash {
                prefix_key,
                date,
                current_time,
                ..
            } => {
                let mut from_key = false;
                if let Some(path) = prefix_key {
                    match lookup(r, h.entries, path)? {
                        Some(Token::Str(s)) => {
                            escape_text(out, s);
                            from_key = true;
                        }
                        Some(Token::UInt(u)) => {
                            out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
                            from_key = true;
                        }
                        Some(Token::Int(i)) => {
                            out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                            from_key = true;
                        }
                        _ => {}
                    }
                }
                if !from_key {
                    out.extend_from_slice(&self.prefix);
                }
                out.extend_from_slice(&self.separator);
                let secs = if *current_time {
                    self.now
                } else {
                    h.timestamp.secs
                };
                if self.date_secs != Some(secs) {
                    self.date_secs = Some(secs);
                    self.scratch.clear();
                    date.render(&mut self.scratch, secs);
                    self.date_text.clear();
                    escape_text(&mut self.date_text, self.scratch.as_bytes());
                }
                out.extend_from_slice(&self.date_text);
            }
        }
        out.push(b'"');
        let mut have_id = false;
        if let Some(path) = &self.opts.id_key {
            match lookup(r, h.entries, path)? {
                Some(Token::Str(s)) if !s.is_empty() => {
                    out.extend_from_slice(b",\"_id\":\"");
                    escape_text(out, s);
                    out.push(b'"');
                    have_id = true;
                }
                Some(Token::UInt(u)) => {
                    out.extend_from_slice(b",\"_id\":\"");
                    out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
                    out.push(b'"');
                    have_id = true;
                }
                Some(Token::Int(i)) => {
                    out.extend_from_slice(b",\"_id\":\"");
                    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                    out.push(b'"');
                    have_id = true;
                }
                _ => {}
            }
        }
        if !have_id && (self.opts.generate_id || self.opts.operation.needs_id()) {
            out.extend_from_slice(b",\"_id\":\"");
            generated_id(out, r, h)?;
            out.push(b'"');
        }
        out.extend_from_slice(&self.action_tail);

        // Document line.
        out.extend_from_slice(self.doc_head);
        out.push(b'{');
        let has_date = body.date_key.is_some();
        if has_date {
            dates.json_date(out, h.timestamp, body.date_format);
        }
        let has_tag = !self.tag_member.is_empty();
        if has_tag {
            if has_date {
                out.push(b',');
            }
            out.extend_from_slice(&self.tag_member);
        }
        let root = Frame {
            remaining: 2 * u64::from(h.entries),
            kind: Kind::Map,
            first: !(has_date || has_tag),
            key_start: NOT_KEY,
        };
        if self.opts.replace_dots {
            json_values::<true>(r, out, work, root)?;
        } else {
            json_values::<false>(r, out, work, root)?;
        }
        if !self.doc_head.is_empty() {
            out.push(b'}');
        }
        out.push(b'\n');
        Ok(())
    }
}

/// Appends `s` JSON-escaped without quotes (invalid UTF-8 as U+FFFD).
fn escape_text(out: &mut Vec<u8>, s: &[u8]) {
    let at = out.len();
    if escape_range(out, s, 0, s.len()) && std::str::from_utf8(s).is_err() {
        out.truncate(at);
        write_lossy_escaped(out, s);
    }
}

/// Appends the generated `_id` of the record (see the module text).
fn generated_id(out: &mut Vec<u8>, r: &Reader<'_>, h: &EventHeader) -> Result<(), RawError> {
    let mut end = r.clone();
    end.skip_values(2 * u64::from(h.entries))?;
    let mut hasher = Sha256::new();
    hasher.update(h.timestamp.secs.to_be_bytes());
    hasher.update(h.timestamp.nanos.to_be_bytes());
    hasher.update(&r.buf()[h.record_start..end.pos()]);
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, b) in digest[..16].iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    Ok(())
}

/// The value at `path` in the record whose first key `r` is on (`entries` pairs); `None` when a
/// step is missing or crosses a value that is not a map (key) or an array (index). `r` is not
/// moved.
fn lookup<'a>(r: &Reader<'a>, entries: u32, path: &KeyPath) -> Result<Option<Token<'a>>, RawError> {
    let mut r = r.clone();
    let (mut n, mut is_map) = (u64::from(entries), true);
    for (i, step) in path.steps.iter().enumerate() {
        match (step, is_map) {
            (PathStep::Key(want), true) => {
                let mut found = false;
                for _ in 0..n {
                    match r.next()? {
                        Token::Str(k) | Token::Bin(k) if k == want.as_slice() => {
                            found = true;
                            break;
                        }
                        Token::Array(c) => r.skip_values(u64::from(c))?,
                        Token::Map(c) => r.skip_values(2 * u64::from(c))?,
                        _ => {}
                    }
                    r.skip_values(1)?;
                }
                if !found {
                    return Ok(None);
                }
            }
            (PathStep::Index(ix), false) if *ix < n => r.skip_values(*ix)?,
            _ => return Ok(None),
        }
        let tok = r.next()?;
        if i + 1 == path.steps.len() {
            return Ok(Some(tok));
        }
        (n, is_map) = match tok {
            Token::Map(m) => (u64::from(m), true),
            Token::Array(a) => (u64::from(a), false),
            _ => return Ok(None),
        };
    }
    Ok(None)
}

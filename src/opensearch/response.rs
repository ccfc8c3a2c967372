//! The `_bulk` response: one outcome per document (DESIGN §12).
//!
//! Parsed in one streaming pass with serde: only `errors` and, per item, its operation key,
//! `status`, `_index` and `error.type`/`error.reason` are kept; everything else is skipped with
//! serde's `IgnoredAny`, and keys may come in any order (`errors` need not come first). When
//! `errors: false` comes before `items` (as servers write it), the items are only counted. No
//! tree of the response is built. Items are classified by `status` only, never by error type
//! names (which differ between Elasticsearch and OpenSearch versions).
//!
//! What is accepted is JSON: the body's UTF-8 is checked first (serde_json's skipping does not),
//! and the skipped parts follow JSON's grammar. Two things RFC 8259 leaves to implementations
//! are not checked in skipped values: numbers beyond an f64's range (§6) and unpaired UTF-16
//! surrogate escapes (§8.2); serde_json refuses both when it reads a value, and neither can
//! change an outcome.

use crate::log::one_line;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Longest error reason kept (characters).
pub const MAX_REASON_CHARS: usize = 200;
/// Longest error type or index name kept (characters).
const MAX_NAME_CHARS: usize = 128;

/// The operation key of a response item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BulkOp {
    Create,
    Index,
    /// Also the key of `upsert` items (`update` with `doc_as_upsert`).
    Update,
    Delete,
}

impl BulkOp {
    pub fn name(self) -> &'static str {
        match self {
            BulkOp::Create => "create",
            BulkOp::Index => "index",
            BulkOp::Update => "update",
            BulkOp::Delete => "delete",
        }
    }
}

/// What became of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Indexed (2xx), or already there (409 on `create`).
    Delivered,
    /// Worth sending again: 429, 5xx, 402 (OpenSearch Serverless at capacity), 409 on
    /// `update` (a concurrent change; `retry_on_conflict` was already spent), anything that is
    /// not a 2xx/4xx.
    Retryable,
    /// Refused for good (other 4xx: mapping or parsing errors…): never send it again.
    Rejected,
}

/// A failed item's error (present when the item has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// `error.type`, e.g. `mapper_parsing_exception`.
    pub kind: String,
    /// `error.reason`, cut to [`MAX_REASON_CHARS`] and without the field-value preview
    /// OpenSearch adds to parsing errors (document content).
    pub reason: String,
}

/// One item of the response, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    pub op: BulkOp,
    pub status: u16,
    /// `_index`, kept for failed items only (2xx and 409-create items leave it `None`).
    pub index: Option<String>,
    pub error: Option<ItemError>,
}

impl BulkItem {
    /// The item's outcome, from its operation and status alone.
    pub fn outcome(&self) -> Outcome {
        classify(self.op, self.status)
    }
}

/// Classifies an item by its operation key and status.
pub fn classify(op: BulkOp, status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        409 if op == BulkOp::Create => Outcome::Delivered,
        409 if op == BulkOp::Update => Outcome::Retryable,
        402 | 429 => Outcome::Retryable,
        400..=499 => Outcome::Rejected,
        _ => Outcome::Retryable,
    }
}

/// A parsed `_bulk` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkResponse {
    /// The top-level `errors` flag (`true` whenever any item failed; a 409 on `create` counts as
    /// a failure there although it is delivered for us).
    pub errors: bool,
    pub items: Items,
}

/// The response's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Items {
    /// `errors: false` came before `items` (as OpenSearch and Elasticsearch write it): every
    /// item is delivered, so the items were only counted, not read one by one (less than half
    /// the parsing time of a 2 MiB chunk's response: benches/flush README).
    AllDelivered(usize),
    /// Each item, in request order.
    Each(Vec<BulkItem>),
}

impl Items {
    pub fn len(&self) -> usize {
        match self {
            Items::AllDelivered(n) => *n,
            Items::Each(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for BulkResponse {
    fn default() -> Self {
        BulkResponse {
            errors: false,
            items: Items::Each(Vec::new()),
        }
    }
}

impl BulkResponse {
    /// Counts of (delivered, retryable, rejected) items.
    pub fn counts(&self) -> (usize, usize, usize) {
        let items = match &self.items {
            Items::AllDelivered(n) => return (*n, 0, 0),
            Items::Each(items) => items,
        };
        let mut c = (0, 0, 0);
        for i in items {
            match i.outcome() {
                Outcome::Delivered => c.0 += 1,
                Outcome::Retryable => c.1 += 1,
                Outcome::Rejected => c.2 += 1,
            }
        }
        c
    }
}

/// A body that is not a `_bulk` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the _bulk response is not valid: {0}")]
    Invalid(String),
    #[error("the _bulk response has no items array")]
    NoItems,
    #[error("the _bulk response has {got} items for {sent} documents")]
    ItemCount { got: usize, sent: usize },
}

/// Parses a `_bulk` response body. `expected` (the number of documents sent) is checked
/// against the number of items when given.
pub fn parse_bulk_response(
    body: &[u8],
    expected: Option<usize>,
) -> Result<BulkResponse, ResponseError> {
    // serde_json skips ignored strings without checking their UTF-8: check the whole body
    // first, so that what is accepted is JSON (found by the bulk_response fuzz target).
    std::str::from_utf8(body).map_err(|e| ResponseError::Invalid(e.to_string()))?;
    let (errors, items) = match parse_top(body, true)? {
        // A later duplicate `errors` key said true after the items were only counted: read
        // them one by one after all.
        (Some(true), Some(Items::AllDelivered(_))) => parse_top(body, false)?,
        parsed => parsed,
    };
    let items = items.ok_or(ResponseError::NoItems)?;
    if let Some(sent) = expected {
        if items.len() != sent {
            return Err(ResponseError::ItemCount {
                got: items.len(),
                sent,
            });
        }
    }
    Ok(BulkResponse {
        errors: errors.unwrap_or(false),
        items,
    })
}

/// The top-level `errors` flag and items; `count_only` lets items that follow `errors: false`
/// be counted instead of read.
fn parse_top(
    body: &[u8],
    count_only: bool,
) -> Result<(Option<bool>, Option<Items>), ResponseError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(ResponseVisitor { count_only })
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| ResponseError::Invalid(e.to_string()))
}

struct ResponseVisitor {
    count_only: bool,
}

impl<'de> Visitor<'de> for ResponseVisitor {
    type Value = (Option<bool>, Option<Items>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a _bulk response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut errors, mut items) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "errors" => errors = Some(map.next_value::<bool>()?),
                "items" if self.count_only && errors == Some(false) => {
                    items = Some(Items::AllDelivered(map.next_value_seed(CountSeed)?))
                }
                "items" => items = Some(Items::Each(map.next_value_seed(ItemsSeed)?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((errors, items))
    }
}

/// An array whose elements are only counted.
struct CountSeed;

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an items array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// A key or short string, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<BulkItem>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<BulkItem>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an items array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // the hint comes from the input only for formats that know it; cap it anyway
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(ItemSeed)? {
            out.push(item);
        }
        Ok(out)
    }
}

/// `{"<op>": {…}}`: exactly one operation key.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = BulkItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = BulkItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item object with one operation key")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(key) = map.next_key::<Key>()? else {
            return Err(de::Error::custom("an item without an operation"));
        };
        let op = match key.0.as_ref() {
            "create" => BulkOp::Create,
            "index" => BulkOp::Index,
            "update" => BulkOp::Update,
            "delete" => BulkOp::Delete,
            other => {
                return Err(de::Error::custom(format!(
                    "unknown item operation '{}'",
                    one_line(other, 32)
                )))
            }
        };
        let item = map.next_value_seed(ItemBodySeed(op))?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("an item with more than one operation"));
        }
        Ok(item)
    }
}

struct ItemBodySeed(BulkOp);

impl<'de> DeserializeSeed<'de> for ItemBodySeed {
    type Value = BulkItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemBodySeed {
    type Value = BulkItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item body object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut status = None;
        let mut index: Option<Key<'de>> = None;
        let mut error = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "status" => status = Some(map.next_value::<u16>()?),
                "_index" => index = Some(map.next_value::<Key>()?),
                "error" => error = Some(map.next_value::<ErrorField>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let status = status.ok_or_else(|| de::Error::missing_field("status"))?;
        let failed = classify(self.0, status) != Outcome::Delivered;
        Ok(BulkItem {
            op: self.0,
            status,
            index: index
                .filter(|_| failed)
                .map(|k| one_line(&k.0, MAX_NAME_CHARS)),
            error: error.filter(|_| failed),
        })
    }
}

/// `error`: an object with `type` and `reason` (others skipped), or a plain string (older
/// servers).
struct ErrorField(ItemError);

impl<'de> de::Deserialize<'de> for ErrorField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an error object or string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorField, E> {
                Ok(ErrorField(ItemError {
                    kind: String::new(),
                    reason: clean_reason(v),
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorField, A::Error> {
                let (mut kind, mut reason) = (String::new(), String::new());
                while let Some(key) = map.next_key::<Key>()? {
                    match key.0.as_ref() {
                        "type" => {
                            kind = map
                                .next_value::<Option<Key>>()?
                                .map(|k| one_line(&k.0, MAX_NAME_CHARS))
                                .unwrap_or_default()
                        }
                        "reason" => {
                            reason = map
                                .next_value::<Option<Key>>()?
                                .map(|k| clean_reason(&k.0))
                                .unwrap_or_default()
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ErrorField(ItemError { kind, reason }))
            }
        }
        d.deserialize_any(V)
    }
}

/// The reason without OpenSearch's preview of the offending field's value (document content),
/// cut to [`MAX_REASON_CHARS`].
fn clean_reason(reason: &str) -> String {
    let end = reason
        .find(". Preview of field's value")
        .unwrap_or(reason.len());
    one_line(&reason[..end], MAX_REASON_CHARS)
}

/// Distinct (status, type) counts kept per flush: a hostile or broken server cannot make the
/// line grow without bound.
const MAX_KINDS: usize = 16;

/// Accumulates the failed items of one flush (across its requests and retries) into one log
/// line. Holds counts and the first failure only, never document content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushSummary {
    delivered: usize,
    retryable: usize,
    rejected: usize,
    /// (status, error type) → items
    kinds: BTreeMap<(u16, String), usize>,
    other_kinds: usize,
    first: Option<BulkItem>,
}

impl FlushSummary {
    pub fn new() -> FlushSummary {
        FlushSummary::default()
    }

    /// Counts one item.
    pub fn add(&mut self, item: &BulkItem) {
        match item.outcome() {
            Outcome::Delivered => {
                self.delivered += 1;
                return;
            }
            Outcome::Retryable => self.retryable += 1,
            Outcome::Rejected => self.rejected += 1,
        }
        let kind = item
            .error
            .as_ref()
            .map(|e| e.kind.clone())
            .unwrap_or_default();
        let key = (item.status, kind);
        if let Some(n) = self.kinds.get_mut(&key) {
            *n += 1;
        } else if self.kinds.len() < MAX_KINDS {
            self.kinds.insert(key, 1);
        } else {
            self.other_kinds += 1;
        }
        if self.first.is_none() {
            self.first = Some(item.clone());
        }
    }

    /// Counts every item of a response.
    pub fn add_response(&mut self, response: &BulkResponse) {
        match &response.items {
            Items::AllDelivered(n) => self.add_delivered(*n),
            Items::Each(items) => items.iter().for_each(|i| self.add(i)),
        }
    }

    /// Counts `n` delivered items.
    pub fn add_delivered(&mut self, n: usize) {
        self.delivered += n;
    }

    pub fn rejected(&self) -> usize {
        self.rejected
    }
    pub fn retryable(&self) -> usize {
        self.retryable
    }
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// The log line, or `None` when every item was delivered. E.g.
    /// `_bulk: 3 of 10 documents not delivered (2 rejected, dropped; 1 to retry): 400
    /// mapper_parsing_exception x2, 429 es_rejected_execution_exception x1; first: index
    /// "logs", status 400, mapper_parsing_exception: failed to parse field [n] of type [long]`
    pub fn line(&self) -> Option<String> {
        use std::fmt::Write as _;
        let failed = self.rejected + self.retryable;
        if failed == 0 {
            return None;
        }
        let mut s = format!(
            "_bulk: {failed} of {} documents not delivered ({} rejected, dropped; {} to retry): ",
            failed + self.delivered,
            self.rejected,
            self.retryable
        );
        for (i, ((status, kind), n)) in self.kinds.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let kind = if kind.is_empty() { "(no type)" } else { kind };
            let _ = write!(s, "{status} {kind} x{n}");
        }
        if self.other_kinds > 0 {
            let _ = write!(s, ", other x{}", self.other_kinds);
        }
        if let Some(f) = &self.first {
            let _ = write!(
                s,
                "; first: index \"{}\", status {}",
                f.index.as_deref().unwrap_or(""),
                f.status
            );
            if let Some(e) = &f.error {
                let kind = if e.kind.is_empty() {
                    "(no type)"
                } else {
                    &e.kind
                };
                let _ = write!(s, ", {kind}: {}", e.reason);
            }
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests;

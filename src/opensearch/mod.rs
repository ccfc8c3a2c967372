//! OpenSearch `_bulk` (DESIGN §12): the options of `format opensearch` (the body itself is
//! written by `event::bulk`) and the `_bulk` response's per-document outcomes ([`response`]).

pub mod response;
pub mod settings;
pub mod strftime;

pub use strftime::DatePattern;

/// `write_operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteOperation {
    #[default]
    Create,
    Index,
    Update,
    /// `update` with `"doc_as_upsert": true` (its response items are `update` items).
    Upsert,
}

impl WriteOperation {
    /// The action name in the action line.
    pub fn action(self) -> &'static str {
        match self {
            WriteOperation::Create => "create",
            WriteOperation::Index => "index",
            WriteOperation::Update | WriteOperation::Upsert => "update",
        }
    }

    /// Update and upsert address a document by `_id`.
    pub fn needs_id(self) -> bool {
        matches!(self, WriteOperation::Update | WriteOperation::Upsert)
    }
}

/// Where a document goes (`index`, or `logstash_format` and its properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexName {
    /// `index`: strftime conversions in it are filled from the current time (UTC), once per
    /// chunk, as out_opensearch does.
    Fixed(DatePattern),
    /// `logstash_format on`: `<prefix><separator><dateformat of the record's time>`.
    Logstash {
        /// `logstash_prefix` (default `logstash`).
        prefix: String,
        /// `logstash_prefix_key`: the record's value there, when it is a string or an integer,
        /// replaces the prefix.
        prefix_key: Option<KeyPath>,
        /// `logstash_prefix_separator` (default `-`).
        separator: String,
        /// `logstash_dateformat` (default `%Y.%m.%d`).
        date: DatePattern,
        /// `current_time_index`: the date is the time of encoding, not the record's.
        current_time: bool,
    },
}

/// Everything `format opensearch` needs beyond the JSON body options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOptions {
    pub operation: WriteOperation,
    pub index: IndexName,
    /// `generate_id`: `_id` from a hash of the record's timestamp and original msgpack bytes.
    pub generate_id: bool,
    /// `id_key`: `_id` from this field (string or integer).
    pub id_key: Option<KeyPath>,
    /// `replace_dots`: `.` in record keys (at any depth) becomes `_`.
    pub replace_dots: bool,
    /// `include_tag_key` + `tag_key`: the tag is added to each document under this key.
    pub tag_key: Option<String>,
    /// `retry_on_conflict` for update/upsert (default 3).
    pub retry_on_conflict: u32,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            operation: WriteOperation::Create,
            index: IndexName::Fixed(
                DatePattern::parse("fluent-bit")
                    .unwrap_or_else(|_| unreachable!("a pattern without % always parses")),
            ),
            generate_id: false,
            id_key: None,
            replace_dots: false,
            tag_key: None,
            retry_on_conflict: 3,
        }
    }
}

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(Vec<u8>),
    Index(u64),
}

/// A field of a record: a top-level key (`kubernetes`) or a record-accessor path
/// (`$kubernetes['namespace_name']`, `$a["b"][0]`, `$top`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    pub steps: Vec<PathStep>,
}

/// What a key path may look like, for error messages.
pub const KEY_PATH_ACCEPTED: &str =
    "a top-level key, or a record accessor such as $key, $kubernetes['namespace_name'] or $list[0]";

impl KeyPath {
    /// Parses a top-level key (no `$`) or a record accessor; `None` when malformed.
    pub fn parse(text: &str) -> Option<KeyPath> {
        let Some(ra) = text.strip_prefix('$') else {
            if text.is_empty() {
                return None;
            }
            return Some(KeyPath {
                steps: vec![PathStep::Key(text.as_bytes().to_vec())],
            });
        };
        let b = ra.as_bytes();
        let first_end = b.iter().position(|&c| c == b'[').unwrap_or(b.len());
        if first_end == 0 {
            return None;
        }
        let mut steps = vec![PathStep::Key(b[..first_end].to_vec())];
        let mut i = first_end;
        while i < b.len() {
            if b[i] != b'[' {
                return None;
            }
            i += 1;
            match b.get(i) {
                Some(&q @ (b'\'' | b'"')) => {
                    let rest = &b[i + 1..];
                    let len = rest.iter().position(|&c| c == q)?;
                    steps.push(PathStep::Key(rest[..len].to_vec()));
                    i += 1 + len + 1;
                }
                Some(c) if c.is_ascii_digit() => {
                    let len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let n = ra.get(i..i + len)?.parse().ok()?;
                    steps.push(PathStep::Index(n));
                    i += len;
                }
                _ => return None,
            }
            if b.get(i) != Some(&b']') {
                return None;
            }
            i += 1;
        }
        Some(KeyPath { steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PathStep {
        PathStep::Key(s.as_bytes().to_vec())
    }

    #[test]
    fn key_paths_parse() {
        assert_eq!(
            KeyPath::parse("kubernetes").map(|p| p.steps),
            Some(vec![key("kubernetes")])
        );
        assert_eq!(
            KeyPath::parse("$kubernetes['namespace_name']").map(|p| p.steps),
            Some(vec![key("kubernetes"), key("namespace_name")])
        );
        assert_eq!(
            KeyPath::parse("$a[\"b.c\"][12]['x']").map(|p| p.steps),
            Some(vec![key("a"), key("b.c"), PathStep::Index(12), key("x")])
        );
        assert_eq!(
            KeyPath::parse("$top").map(|p| p.steps),
            Some(vec![key("top")])
        );
        for bad in [
            "", "$", "$['a']", "$a[", "$a['b'", "$a['b']x", "$a[b]", "$a[1",
        ] {
            assert_eq!(KeyPath::parse(bad), None, "{bad}");
        }
    }
}

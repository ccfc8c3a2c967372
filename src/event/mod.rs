//! msgpack events to HTTP bodies: decoding Fluent Bit chunks ([`decode`]), transcoding records
//! straight to the wire format ([`encode`]) and compressing bodies ([`compress`]).

pub mod bulk;
pub mod compress;
pub mod decode;
pub mod encode;

pub use bulk::ChunkContext;
pub use compress::{CompressError, Compression, Compressor};
pub use decode::{events, DecodeError, Event, Events, Timestamp};
pub use encode::{
    assemble_body, encode_chunk, encode_chunk_with, ChunkEncoder, EncodedRecords, MAX_DEPTH,
};

#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod tests;

/// Body format (`format` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, each line ending in `\n` (the default).
    JsonLines,
    /// One JSON array of objects.
    Json,
    /// JSON objects concatenated with no separator (Fluent Bit's `json_stream`).
    JsonStream,
    /// msgpack maps concatenated.
    Msgpack,
    /// OpenSearch `_bulk` NDJSON: per record an action line and a document line, each ending
    /// in `\n` (options in [`BodyOptions::bulk`]).
    OpenSearch,
}

/// How the record timestamp is written under `json_date_key` (`json_date_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// seconds with up to 6 fractional digits (microseconds), as `out_http`: `1700000000.123457`
    Double,
    /// integer seconds
    Epoch,
    /// integer milliseconds
    EpochMs,
    /// `2023-11-14T22:13:20.123456789Z`
    Iso8601,
    /// `2023-11-14 22:13:20.123456789`
    JavaSqlTimestamp,
}

/// Everything the encoders need to know about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyOptions {
    pub format: Format,
    /// `None` when `json_date_key false`.
    pub date_key: Option<String>,
    pub date_format: DateFormat,
    /// Ship only this field of each record (`log_key`).
    pub log_key: Option<String>,
    /// `format opensearch`'s options (`None`: their defaults).
    pub bulk: Option<crate::opensearch::BulkOptions>,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            format: Format::JsonLines,
            date_key: Some("date".to_string()),
            date_format: DateFormat::Double,
            log_key: None,
            bulk: None,
        }
    }
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines | Format::OpenSearch => "application/x-ndjson",
            Format::Json | Format::JsonStream => "application/json",
            Format::Msgpack => "application/msgpack",
        }
    }
}

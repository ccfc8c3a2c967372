//! One test request built and sent exactly as a flush sends it (`flb-sigv4 doctor --send-test`):
//! the chunk is encoded with the instance's format (and tag), compressed as configured and sent
//! through [`Output::send_once`], so the doctor never assembles a request of its own.

use super::memory::ChunkRecord;
use super::send::{Part, SendError};
use super::{budget, Output};
use crate::chunk_bodies::ChunkBodies;
use crate::http::delivery::ResponseHead;
use bytes::Bytes;

/// What the test request was and what came back.
pub struct TestExchange {
    /// The bytes sent (after compression).
    pub payload_bytes: usize,
    pub head: ResponseHead,
    pub body: Bytes,
}

/// Why no answer could be had; messages carry no secret (proxy passwords are replaced).
#[derive(Debug, thiserror::Error)]
pub enum SendTestError {
    /// The request could not be built (encoding, compression, credentials, signing).
    #[error("{0}")]
    Prepare(String),
    /// It was sent but no answer came (connection, TLS, proxy, timeout).
    #[error("{0}")]
    Transport(String),
}

impl Output {
    /// Encodes `chunk` (Fluent Bit msgpack events; empty for the format's empty batch) with
    /// `tag`, and sends all of it as one request the way a flush sends a batch, once: no
    /// split, refresh or skew retry, so that the first answer is what the caller sees.
    pub async fn send_test(&self, chunk: &[u8], tag: &str) -> Result<TestExchange, SendTestError> {
        let bodies = ChunkBodies::encode_tagged(
            chunk,
            tag,
            &self.config.body,
            self.config.max_request_bytes,
            self.config.compress,
        )
        .await
        .map_err(|e| SendTestError::Prepare(format!("encoding the test body: {e}")))?;
        let record = ChunkRecord::new(bodies.len());
        let part = Part {
            bodies: &bodies,
            tag,
            record: &record,
            bulk: None,
        };
        let (payload, digest) = self
            .payload(&part, &(0..bodies.len()))
            .map_err(|e| SendTestError::Prepare(format!("compressing the test body: {e}")))?;
        let (head, body) = self
            .send_once(&payload, &hex::encode(digest), tag)
            .await
            .map_err(|e| match e {
                SendError::Credentials(e) => SendTestError::Prepare(e.to_string()),
                SendError::CredentialsTimeout => SendTestError::Prepare(format!(
                    "the credentials provider has not answered within {} s",
                    budget::CREDENTIALS_WAIT.as_secs()
                )),
                SendError::Signing(e) => SendTestError::Prepare(e),
                SendError::Transport(e) => SendTestError::Transport(self.redact(&e)),
            })?;
        Ok(TestExchange {
            payload_bytes: payload.len(),
            head,
            body,
        })
    }
}

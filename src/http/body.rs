//! A request body made of several buffers sent back to back, with an exact `Content-Length`
//! (so no chunked encoding and no copy into one buffer).

use bytes::Bytes;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The bytes of one request body, as zero-copy pieces.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Payload {
    pub fn new(pieces: Vec<Bytes>) -> Payload {
        let pieces: Vec<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let len = pieces.iter().map(Bytes::len).sum();
        Payload { pieces, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// One contiguous buffer: the piece itself when there is only one, else a copy.
    pub fn contiguous(&self) -> Bytes {
        match self.pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = Vec::with_capacity(self.len);
                for p in many {
                    out.extend_from_slice(p);
                }
                Bytes::from(out)
            }
        }
    }

    /// A reqwest body for one attempt (pieces are reference-counted, not copied).
    pub fn to_body(&self) -> reqwest::Body {
        match self.pieces.as_slice() {
            [] => reqwest::Body::from(Bytes::new()),
            [one] => reqwest::Body::from(one.clone()),
            many => reqwest::Body::wrap(PiecesBody {
                pieces: many.iter().cloned().collect(),
                remaining: self.len as u64,
            }),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload::new(vec![b])
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::new(vec![Bytes::from(v)])
    }
}

struct PiecesBody {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for PiecesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.pieces.pop_front() {
            Some(piece) => {
                self.remaining -= piece.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_order_and_length() {
        let p = Payload::new(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(p.len(), 5);
        assert_eq!(p.pieces().len(), 2, "empty pieces are dropped");
        assert_eq!(&p.contiguous()[..], b"abcde");
        assert_eq!(
            http_body::Body::size_hint(&PiecesBody {
                pieces: p.pieces().iter().cloned().collect(),
                remaining: 5
            })
            .exact(),
            Some(5)
        );
        let one = Payload::from(Bytes::from_static(b"xyz"));
        assert_eq!(
            one.contiguous().as_ptr(),
            one.pieces()[0].as_ptr(),
            "no copy"
        );
    }
}

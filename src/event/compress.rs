//! Body compression (`compress` property).

/// `compress none|gzip|zstd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, thiserror::Error)]
#[error("{codec} compression failed: {source}")]
pub struct CompressError {
    pub codec: &'static str,
    #[source]
    pub source: std::io::Error,
}

impl Compression {
    /// The `Content-Encoding` header value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

impl Compression {
    /// `true` for [`Compression::None`].
    pub fn is_none(self) -> bool {
        self == Compression::None
    }

    /// Compresses a body: gzip at level 6 (zlib's default), zstd at level 3. `None` returns a
    /// copy (check [`is_none`](Self::is_none) first to avoid it).
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, CompressError> {
        match self.compressor(Some(data.len()))? {
            None => Ok(data.to_vec()),
            Some(mut c) => {
                c.write(data)?;
                c.finish()
            }
        }
    }

    /// A compressor for a body that arrives in pieces (`None` for [`Compression::None`]).
    /// `exact_len`: the body's length when known, which lets zstd size its window and record
    /// the content size.
    pub fn compressor(self, exact_len: Option<usize>) -> Result<Option<Compressor>, CompressError> {
        let out = Vec::with_capacity(exact_len.unwrap_or(1 << 16) / 4 + 64);
        Ok(match self {
            Compression::None => None,
            Compression::Gzip => Some(Compressor::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(6),
            ))),
            Compression::Zstd => {
                let err = |source| CompressError {
                    codec: "zstd",
                    source,
                };
                let mut enc = zstd::stream::write::Encoder::new(out, 3).map_err(err)?;
                if let Some(len) = exact_len {
                    enc.set_pledged_src_size(Some(len as u64)).map_err(err)?;
                }
                Some(Compressor::Zstd(enc))
            }
        })
    }
}

/// A body being compressed (see [`Compression::compressor`]).
pub enum Compressor {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn error(&self, source: std::io::Error) -> CompressError {
        let codec = match self {
            Compressor::Gzip(_) => "gzip",
            Compressor::Zstd(_) => "zstd",
        };
        CompressError { codec, source }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), CompressError> {
        use std::io::Write as _;
        let r = match self {
            Compressor::Gzip(e) => e.write_all(data),
            Compressor::Zstd(e) => e.write_all(data),
        };
        r.map_err(|e| self.error(e))
    }

    pub fn finish(self) -> Result<Vec<u8>, CompressError> {
        match self {
            Compressor::Gzip(e) => e.finish().map_err(|source| CompressError {
                codec: "gzip",
                source,
            }),
            Compressor::Zstd(e) => e.finish().map_err(|source| CompressError {
                codec: "zstd",
                source,
            }),
        }
    }
}

/// Inverse of [`Compression::compress`], for tests.
#[cfg(test)]
pub(crate) fn decompress(c: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::decode_all(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5000u32 {
            v.extend_from_slice(format!("{{\"i\":{i},\"msg\":\"hello world\"}}\n").as_bytes());
        }
        v
    }

    #[test]
    fn round_trips() {
        for data in [Vec::new(), b"x".to_vec(), sample()] {
            for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
                let z = c.compress(&data).expect("compress");
                assert_eq!(decompress(c, &z).expect("decompress"), data, "{c:?}");
                if c != Compression::None && data.len() > 1000 {
                    assert!(z.len() < data.len() / 4, "{c:?} {}", z.len());
                }
            }
        }
    }

    #[test]
    fn pieces_compress_like_the_whole() {
        let data = sample();
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut z = c.compressor(None).expect("starts").expect("a compressor");
            for piece in data.chunks(7777) {
                z.write(piece).expect("writes");
            }
            let z = z.finish().expect("finishes");
            assert_eq!(decompress(c, &z).expect("decompress"), data, "{c:?}");
        }
        assert!(Compression::None.compressor(None).expect("ok").is_none());
    }

    #[test]
    fn gzip_header_and_encoding_names() {
        let z = Compression::Gzip.compress(b"abc").expect("gzip");
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        let z = Compression::Zstd.compress(b"abc").expect("zstd");
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(Compression::None.is_none());
        assert!(!Compression::Gzip.is_none());
        assert_eq!(Compression::Gzip.content_encoding(), Some("gzip"));
        assert_eq!(Compression::Zstd.content_encoding(), Some("zstd"));
        assert_eq!(Compression::None.content_encoding(), None);
    }
}

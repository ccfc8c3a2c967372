//! Body compression (`compress` and `compress_level` properties).

/// `compress none|gzip|zstd`, with the codec's level (`compress_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip(u32),
    Zstd(i32),
}

/// gzip's default level, chosen by measurement (benches/flush/README.md, "Codec choice"): the
/// cheapest zlib-rs level whose body is no larger than Fluent Bit's `out_http` sends for the
/// same records (miniz level 6, `flb_gzip.c`): on Kubernetes-style logs level 6 is ~1% larger
/// than miniz 6, level 7 ~1-3% smaller, still at ~0.4x out_http's output CPU.
pub const GZIP_DEFAULT_LEVEL: u32 = 7;
/// zstd's default level (same measurement): `out_http` uses level 1 (`flb_zstd.c`); level 3
/// costs ~15% more CPU than 1 for a body ~6% smaller.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
/// Accepted `compress_level` values.
pub const GZIP_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

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
            Compression::Gzip(_) => Some("gzip"),
            Compression::Zstd(_) => Some("zstd"),
        }
    }

    /// gzip at its default level.
    pub const fn gzip() -> Compression {
        Compression::Gzip(GZIP_DEFAULT_LEVEL)
    }

    /// zstd at its default level.
    pub const fn zstd() -> Compression {
        Compression::Zstd(ZSTD_DEFAULT_LEVEL)
    }

    /// The codec's level (`None` for [`Compression::None`]).
    pub fn level(self) -> Option<i32> {
        match self {
            Compression::None => None,
            Compression::Gzip(l) => Some(l as i32),
            Compression::Zstd(l) => Some(l),
        }
    }
}

impl Compression {
    /// `true` for [`Compression::None`].
    pub fn is_none(self) -> bool {
        self == Compression::None
    }

    /// Compresses a body at the configured level. `None` returns a copy (check [`is_none`](Self::is_none) first to avoid it).
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
            Compression::Gzip(level) => Some(Compressor::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level),
            ))),
            Compression::Zstd(level) => {
                let err = |source| CompressError {
                    codec: "zstd",
                    source,
                };
                let mut enc = zstd::stream::write::Encoder::new(out, level).map_err(err)?;
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
        Compression::Gzip(_) => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
            Ok(out)
        }
        Compression::Zstd(_) => zstd::stream::decode_all(data),
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
            for c in [Compression::None, Compression::gzip(), Compression::zstd()] {
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
        for c in [Compression::gzip(), Compression::zstd()] {
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
        let z = Compression::gzip().compress(b"abc").expect("gzip");
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        let z = Compression::zstd().compress(b"abc").expect("zstd");
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(Compression::None.is_none());
        assert!(!Compression::gzip().is_none());
        assert_eq!(Compression::gzip().content_encoding(), Some("gzip"));
        assert_eq!(Compression::zstd().content_encoding(), Some("zstd"));
        assert_eq!(Compression::None.content_encoding(), None);
    }

    /// The level reaches the codec: on compressible data a higher level gives a smaller body,
    /// and each level's output equals the codec's own at that level.
    #[test]
    fn the_level_reaches_the_codec() {
        let data = sample();
        let (g1, g9) = (
            Compression::Gzip(1).compress(&data).expect("gzip 1"),
            Compression::Gzip(9).compress(&data).expect("gzip 9"),
        );
        assert!(g9.len() < g1.len(), "gzip 9 {} vs 1 {}", g9.len(), g1.len());
        for level in [1u32, 4, 9] {
            let mut want =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            std::io::Write::write_all(&mut want, &data).expect("writes");
            let want = want.finish().expect("finishes");
            assert_eq!(
                Compression::Gzip(level).compress(&data).expect("gzip"),
                want
            );
        }
        for level in [1, 3, 19] {
            let want = zstd::bulk::compress(&data, level).expect("zstd");
            let got = Compression::Zstd(level).compress(&data).expect("zstd");
            assert_eq!(
                decompress(Compression::Zstd(level), &got).expect("round trip"),
                data
            );
            // The streaming encoder frames differently from the bulk one; the size shows the
            // level (zstd 19 is far smaller than 1 on this data).
            assert!(
                got.len().abs_diff(want.len()) * 20 <= want.len(),
                "zstd {level}"
            );
        }
        let (z1, z19) = (
            Compression::Zstd(1).compress(&data).expect("zstd 1"),
            Compression::Zstd(19).compress(&data).expect("zstd 19"),
        );
        assert!(
            z19.len() < z1.len(),
            "zstd 19 {} vs 1 {}",
            z19.len(),
            z1.len()
        );
        assert_eq!(Compression::gzip().level(), Some(GZIP_DEFAULT_LEVEL as i32));
        assert_eq!(Compression::None.level(), None);
    }
}

//! Body compression (`compress` and `compress_level` properties).

use crate::ffi::zlib::{DeflateTune, GzipDeflate};

/// `compress none|gzip|zstd`, with the codec's level (`compress_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip(u32),
    Zstd(i32),
}

/// gzip's default level, chosen by measurement (benches/flush/README.md, "Codec choice"): the
/// cheapest setting whose body is no larger than Fluent Bit's `out_http` sends for the same
/// records (miniz level 6, `flb_gzip.c`). zlib-rs level 6 as tuned by [`gzip_tune`] is ~2% smaller
/// than stock level 6 (which is ~1% larger than miniz 6) and within 0.6% of level 7, at ~1.35x
/// level 7's speed on Kubernetes-style logs.
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// zstd's default level (same measurement): `out_http` uses level 1 (`flb_zstd.c`); level 3
/// costs ~15% more CPU than 1 for a body ~6% smaller.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
/// Accepted `compress_level` values.
pub const GZIP_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

/// zlib-rs' settings for gzip `level`, where they differ from its own table: levels 3-6 (its
/// "medium" strategy) index every position of a match. zlib-rs there indexes only matches up to
/// 16 x `max_lazy` bytes (its table's 6-16 make that 96-256, short of deflate's 258), and log
/// records repeat long runs (field names, labels, paths) that later records would match: with
/// `max_lazy` 17 (16 x 17 > 258) bodies are 1-2.5% smaller for 0-7% more CPU. The other three
/// numbers are zlib-rs' own for the level (a test checks they still are).
pub fn gzip_tune(level: u32) -> Option<DeflateTune> {
    let (good_length, nice_length, max_chain) = match level {
        3 => (4, 16, 6),
        4 => (4, 32, 24),
        5 => (8, 32, 32),
        6 => (8, 128, 128),
        _ => return None,
    };
    Some(DeflateTune {
        good_length,
        max_lazy: 17,
        nice_length,
        max_chain,
    })
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
            Compression::Gzip(level) => {
                let stream =
                    GzipDeflate::new(level as i32, gzip_tune(level)).map_err(gzip_error)?;
                Some(Compressor::Gzip(stream, out))
            }
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

fn gzip_error(e: crate::ffi::zlib::ZlibError) -> CompressError {
    CompressError {
        codec: "gzip",
        source: std::io::Error::other(e),
    }
}

/// A body being compressed (see [`Compression::compressor`]).
pub enum Compressor {
    Gzip(GzipDeflate, Vec<u8>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn error(&self, source: std::io::Error) -> CompressError {
        let codec = match self {
            Compressor::Gzip(..) => "gzip",
            Compressor::Zstd(_) => "zstd",
        };
        CompressError { codec, source }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), CompressError> {
        use std::io::Write as _;
        let r = match self {
            Compressor::Gzip(g, out) => g.write(data, out).map_err(std::io::Error::other),
            Compressor::Zstd(e) => e.write_all(data),
        };
        r.map_err(|e| self.error(e))
    }

    pub fn finish(self) -> Result<Vec<u8>, CompressError> {
        match self {
            Compressor::Gzip(mut g, mut out) => {
                g.finish(&mut out).map(|()| out).map_err(gzip_error)
            }
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

    /// The level reaches the codec: on compressible data a higher level gives a smaller body;
    /// levels without a tune give zlib-rs' own output at that level (flate2 runs the same code).
    #[test]
    fn the_level_reaches_the_codec() {
        let data = sample();
        let (g1, g9) = (
            Compression::Gzip(1).compress(&data).expect("gzip 1"),
            Compression::Gzip(9).compress(&data).expect("gzip 9"),
        );
        assert!(g9.len() < g1.len(), "gzip 9 {} vs 1 {}", g9.len(), g1.len());
        for level in [1u32, 2, 7, 9] {
            assert_eq!(gzip_tune(level), None);
            let got = Compression::Gzip(level).compress(&data).expect("gzip");
            assert!(
                same_deflate(&got, &flate2_deflate(&data, level)),
                "level {level}"
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
    }

    /// Raw deflate of `data` through flate2 at `level`, written like a body: the data, then the
    /// end.
    fn flate2_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut e, data).expect("writes");
        e.finish().expect("finishes")
    }

    /// `body` is gzip whose deflate data (between the 10-byte header and the 8-byte trailer)
    /// is `deflate`'s.
    fn same_deflate(body: &[u8], deflate: &[u8]) -> bool {
        body.len() == deflate.len() + 18 && body[10..body.len() - 8] == *deflate
    }

    /// [`gzip_tune`] changes only `max_lazy`: with zlib-rs' own `max_lazy` put back, each tuned
    /// level compresses exactly as zlib-rs' level does (its table has not moved under us), and
    /// the tune itself gives a smaller body on records that repeat long runs.
    #[test]
    fn gzip_tune_differs_from_zlib_rs_only_in_max_lazy() {
        let mut data = Vec::new();
        for i in 0..3000u32 {
            let labels = "\"labels\":{\"app.kubernetes.io/name\":\"checkout\",\"tier\":\"backend\",\"pod-template-hash\":\"f958923fb\"},\"host\":\"ip-10-0-191-36.ec2.internal\",\"container_image\":\"123456789012.dkr.ecr.us-east-1.amazonaws.com/checkout:1.2.3\",\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":\"2023-11-14T22:13:20Z\",\"prometheus.io/scrape\":\"true\"}";
            data.extend_from_slice(
                format!(
                    "{{\"log\":\"request {i} took {}ms\",\"kubernetes\":{{{labels}}}}}\n",
                    i * 7 % 311
                )
                .as_bytes(),
            );
        }
        let zlib_rs_max_lazy = [(3u32, 6u16), (4, 12), (5, 16), (6, 16)];
        for (level, own_lazy) in zlib_rs_max_lazy {
            let tune = gzip_tune(level).expect("tuned level");
            let untuned = DeflateTune {
                max_lazy: own_lazy,
                ..tune
            };
            let body = |t| {
                let mut g = GzipDeflate::new(level as i32, Some(t)).expect("init");
                let mut out = Vec::new();
                g.write(&data, &mut out).expect("write");
                g.finish(&mut out).expect("finish");
                assert_eq!(
                    decompress(Compression::Gzip(level), &out).expect("gunzip"),
                    data
                );
                out
            };
            let own = body(untuned);
            assert!(
                same_deflate(&own, &flate2_deflate(&data, level)),
                "level {level}"
            );
            let tuned = body(tune);
            assert!(
                tuned.len() < own.len(),
                "level {level}: {} vs {}",
                tuned.len(),
                own.len()
            );
            assert!(Compression::Gzip(level).compress(&data).expect("gzip") == tuned);
        }
        assert_eq!(Compression::None.level(), None);
    }
}

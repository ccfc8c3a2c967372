//! A gzip stream through zlib-rs' zlib C API (`libz-rs-sys`): the same zlib-rs deflate that
//! flate2 runs, plus the one call flate2 does not reach, `deflateTune` (see
//! [`crate::event::compress::gzip_tune`] for why). The symbols are not exported from the plugin
//! (`libz-rs-sys` without `export-symbols`), so they cannot clash with a zlib in Fluent Bit.

use libz_rs_sys as z;
use std::ffi::c_int;

/// `deflateTune`'s four numbers (a row of zlib's configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateTune {
    pub good_length: u16,
    pub max_lazy: u16,
    pub nice_length: u16,
    pub max_chain: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("zlib {call} returned {code}")]
pub struct ZlibError {
    pub call: &'static str,
    pub code: i32,
}

/// Output space asked for before each `deflate` call when the buffer has less.
const MIN_SPARE: usize = 16 << 10;

/// One gzip member at a time (`windowBits` 15 + 16: zlib writes the gzip header and trailer).
pub struct GzipDeflate {
    // boxed: zlib's state points back at its stream, which must not move
    strm: Box<z::z_stream>,
    tune: Option<DeflateTune>,
}

// SAFETY: the stream owns its state (allocated in `new`, freed in `drop`) and keeps no pointer
// into caller memory between calls (`next_in`/`next_out` are cleared after each `deflate`), so
// it may move to another thread; `&mut self` on every call keeps it single-threaded.
unsafe impl Send for GzipDeflate {}

impl GzipDeflate {
    /// A stream at zlib `level` (1-9), tuned with `tune` when given.
    pub fn new(level: i32, tune: Option<DeflateTune>) -> Result<GzipDeflate, ZlibError> {
        let mut strm = Box::<z::z_stream>::default();
        // SAFETY: `strm` is a default (zeroed allocator fields) stream that outlives the call;
        // the version and size are this library's own.
        let code = unsafe {
            z::deflateInit2_(
                &mut *strm,
                level,
                z::Z_DEFLATED,
                15 + 16,
                8,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        check("deflateInit2", code)?;
        let mut this = GzipDeflate { strm, tune };
        this.apply_tune()?;
        Ok(this)
    }

    fn apply_tune(&mut self) -> Result<(), ZlibError> {
        let Some(t) = self.tune else { return Ok(()) };
        // SAFETY: the stream is initialised (`new`) and not ended before `drop`.
        let code = unsafe {
            z::deflateTune(
                &mut *self.strm,
                t.good_length.into(),
                t.max_lazy.into(),
                t.nice_length.into(),
                t.max_chain.into(),
            )
        };
        check("deflateTune", code)
    }

    /// Compresses `input`, appending what zlib emits to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ZlibError> {
        self.run(input, out, false)
    }

    /// Ends the member (the rest of the data, the CRC and length), appending to `out`. The
    /// stream then needs [`reset`](Self::reset) before another member.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ZlibError> {
        self.run(&[], out, true)
    }

    /// Starts a new member with the same settings, keeping the allocated state.
    pub fn reset(&mut self) -> Result<(), ZlibError> {
        // SAFETY: the stream is initialised (`new`) and not ended before `drop`.
        check("deflateReset", unsafe { z::deflateReset(&mut *self.strm) })?;
        // zlib's reset puts the level's own numbers back
        self.apply_tune()
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, finish: bool) -> Result<(), ZlibError> {
        if input.is_empty() && !finish {
            return Ok(()); // zlib would answer BUF_ERROR: nothing to do
        }
        loop {
            let take = input.len().min(u32::MAX as usize);
            if out.capacity() - out.len() < MIN_SPARE {
                out.reserve(MIN_SPARE.max(take / 4));
            }
            let spare = out.spare_capacity_mut();
            let room = spare.len().min(u32::MAX as usize);
            let last = take == input.len();
            let flush = if finish && last {
                z::Z_FINISH
            } else {
                z::Z_NO_FLUSH
            };
            self.strm.next_in = input.as_ptr();
            self.strm.avail_in = take as u32;
            self.strm.next_out = spare.as_mut_ptr().cast();
            self.strm.avail_out = room as u32;
            // SAFETY: next_in/avail_in describe `input`, next_out/avail_out the spare capacity
            // of `out`, both alive for the call; zlib only writes through next_out.
            let code = unsafe { z::deflate(&mut *self.strm, flush) };
            let consumed = take - self.strm.avail_in as usize;
            let produced = room - self.strm.avail_out as usize;
            self.strm.next_in = std::ptr::null();
            self.strm.avail_in = 0;
            self.strm.next_out = std::ptr::null_mut();
            self.strm.avail_out = 0;
            // SAFETY: deflate initialised the first `produced` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            input = &input[consumed..];
            match code {
                z::Z_STREAM_END => return Ok(()),
                // progress made (BUF_ERROR: none was possible, which room and input rule out)
                z::Z_OK | z::Z_BUF_ERROR if consumed > 0 || produced > 0 => {}
                other => {
                    return Err(ZlibError {
                        call: "deflate",
                        code: other,
                    })
                }
            }
            if input.is_empty() && !finish {
                return Ok(());
            }
        }
    }
}

impl Drop for GzipDeflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised in `new` (a failed init never builds a value).
        unsafe { z::deflateEnd(&mut *self.strm) };
    }
}

fn check(call: &'static str, code: c_int) -> Result<(), ZlibError> {
    if code == z::Z_OK {
        Ok(())
    } else {
        Err(ZlibError { call, code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut x = 1u64;
        while v.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.extend_from_slice(
                format!("{{\"n\":{},\"m\":\"hello {}\"}}\n", x >> 40, x % 97).as_bytes(),
            );
        }
        v.truncate(n);
        v
    }

    /// Any split of the input, an empty body, output far bigger than the first reservation
    /// (incompressible data), and a reset stream all give valid gzip of exactly the input.
    #[test]
    fn pieces_empty_and_incompressible_round_trip() {
        let text = sample(3 << 20);
        let mut noise = vec![0u8; 1 << 20];
        let mut x = 7u32;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let mut g = GzipDeflate::new(6, None).expect("init");
        for data in [&text[..], &[][..], &noise[..], b"x"] {
            for piece in [1usize, 7777, 1 << 20, usize::MAX] {
                g.reset().expect("reset");
                let mut out = Vec::new();
                for p in data.chunks(piece.min(data.len().max(1))) {
                    g.write(p, &mut out).expect("write");
                }
                g.finish(&mut out).expect("finish");
                assert_eq!(&out[..2], &[0x1f, 0x8b]);
                assert_eq!(gunzip(&out), data, "{} bytes in {piece}", data.len());
            }
        }
    }

    /// The tune reaches the codec: a tune that searches less gives a bigger body than the
    /// level's own settings, and both decode.
    #[test]
    fn the_tune_reaches_the_codec() {
        let data = sample(1 << 20);
        let body = |tune| {
            let mut g = GzipDeflate::new(9, tune).expect("init");
            let mut out = Vec::new();
            g.write(&data, &mut out).expect("write");
            g.finish(&mut out).expect("finish");
            assert_eq!(gunzip(&out), data);
            out.len()
        };
        let weak = DeflateTune {
            good_length: 4,
            max_lazy: 4,
            nice_length: 8,
            max_chain: 4,
        };
        assert!(body(Some(weak)) > body(None) * 21 / 20);
        // a reset stream keeps its tune
        let mut g = GzipDeflate::new(9, Some(weak)).expect("init");
        let mut first = Vec::new();
        g.write(&data, &mut first).expect("write");
        g.finish(&mut first).expect("finish");
        g.reset().expect("reset");
        let mut again = Vec::new();
        g.write(&data, &mut again).expect("write");
        g.finish(&mut again).expect("finish");
        assert!(
            first == again,
            "{} vs {} bytes after reset",
            again.len(),
            first.len()
        );
    }

    #[test]
    fn a_bad_level_is_an_error_not_a_panic() {
        let e = GzipDeflate::new(42, None).err().expect("level 42 refused");
        assert_eq!(e.call, "deflateInit2");
        assert_eq!(
            e.to_string(),
            format!("zlib deflateInit2 returned {}", z::Z_STREAM_ERROR)
        );
    }
}

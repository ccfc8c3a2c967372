#![no_main]
//! See `flb_sigv4_fuzz::checks::check_bulk_response` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flb_sigv4_fuzz::checks::check_bulk_response(data);
});

#![no_main]
//! See `flb_sigv4_fuzz::checks_internal::check_credential_process_json` for the input layout and what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flb_sigv4_fuzz::checks_internal::check_credential_process_json(data);
});

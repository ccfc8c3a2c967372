//! Shared check functions for the fuzz targets in `fuzz_targets/`; tests/fuzz_regressions.rs
//! includes the same files to replay seeds and past crashers on the stable toolchain.
//! `checks` uses the main crate's public API, `checks_internal` its hidden `fuzzing` module
//! (the credential parsers, which are otherwise crate-private).

pub mod checks;
pub mod checks_internal;

/// The targets and their check functions.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("events_json", checks::check_events),
    ("config", checks::check_config),
    ("proxy", checks::check_proxy),
    ("profile_file", checks_internal::check_profile_file),
    (
        "credential_process_json",
        checks_internal::check_credential_process_json,
    ),
    ("metadata_json", checks_internal::check_metadata_json),
];

//! Fuzz regressions: every input under `tests/fuzz_inputs/<target>/` (inputs that once crashed
//! a fuzz target, copied there by `fuzz/run.sh`) and every seed under `fuzz/corpus_seed/<target>/`
//! goes through the same check the fuzz target runs, for all seven targets (the check functions
//! of `fuzz/src/`, shared by `#[path]`). Stable toolchain, no fuzzing dependencies.

#[path = "../fuzz/src/checks.rs"]
mod checks;
#[path = "../fuzz/src/checks_internal.rs"]
mod checks_internal;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs `check` on every regression input and seed of `target`; reports every failing file.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut inputs = files(&root().join("tests/fuzz_inputs").join(target));
    inputs.extend(files(&root().join("fuzz/corpus_seed").join(target)));
    let mut failed = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).expect("read fuzz input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
    inputs.len()
}

#[test]
fn events_json() {
    assert!(replay("events_json", checks::check_events) > 0, "no seeds");
}

#[test]
fn config() {
    assert!(replay("config", checks::check_config) > 0, "no seeds");
}

#[test]
fn proxy() {
    assert!(replay("proxy", checks::check_proxy) > 0, "no seeds");
}

#[test]
fn profile_file() {
    assert!(
        replay("profile_file", checks_internal::check_profile_file) > 0,
        "no seeds"
    );
}

#[test]
fn credential_process_json() {
    let n = replay(
        "credential_process_json",
        checks_internal::check_credential_process_json,
    );
    assert!(n > 0, "no seeds");
}

#[test]
fn metadata_json() {
    assert!(
        replay("metadata_json", checks_internal::check_metadata_json) > 0,
        "no seeds"
    );
}

#[test]
fn bulk_response() {
    assert!(
        replay("bulk_response", checks::check_bulk_response) > 0,
        "no seeds"
    );
}

/// The seeds of the events target really reach the encoders (a seed that no longer decodes
/// would silently weaken the fuzzing).
#[test]
fn events_seeds_decode() {
    let dir = root().join("fuzz/corpus_seed/events_json");
    let decoding = files(&dir)
        .iter()
        .filter(|p| {
            let data = std::fs::read(p).expect("read seed");
            flb_sigv4::event::encode_chunk(&data[1..], &Default::default()).is_ok()
        })
        .count();
    assert!(decoding >= 40, "only {decoding} events seeds decode");
}

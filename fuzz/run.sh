#!/usr/bin/env bash
# Builds and runs every fuzz target for a time budget; fails on any crash, OOM or timeout and
# copies the offending inputs to tests/fuzz_inputs/<target>/ (replayed by `cargo test` through
# tests/fuzz_regressions.rs, and here, before fuzzing, by the target itself).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#
# Environment: FUZZ_JOBS (targets run side by side; default: number of CPUs),
# FUZZ_SANITIZER (address, the default, or none), FUZZ_ARGS (extra libFuzzer flags).
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, as .ci/run does) and a C++ compiler
# (libFuzzer); a stable toolchain is enough: the nightly-only sanitizer flags cargo-fuzz passes
# are accepted with RUSTC_BOOTSTRAP=1, set here. tests/run.sh runs this with 60 s per target.
# Working corpora grow in fuzz/corpus/<target>/ (git-ignored) from the checked-in seeds in
# fuzz/corpus_seed/<target>/; libFuzzer's own artifacts go to fuzz/artifacts/<target>/.
set -euo pipefail
secs="${1:-60}"
shift || true
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
all_targets=(events_json config proxy profile_file credential_process_json metadata_json bulk_response)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
jobs="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

cd "$root"
start=$(date +%s)
cargo fuzz build -O --sanitizer "$sanitizer"
echo "fuzz/run.sh: build took $(($(date +%s) - start)) s"
bindir="$here/target/x86_64-unknown-linux-gnu/release"

dict_for() {
    case "$1" in
        config) echo "$here/dict/config.dict" ;;
        profile_file) echo "$here/dict/profile_file.dict" ;;
        credential_process_json | metadata_json | bulk_response) echo "$here/dict/json.dict" ;;
    esac
}

logdir="$here/artifacts/logs"
mkdir -p "$logdir"

run_one() {
    local t="$1" bin="$bindir/$1" log="$logdir/$1.log"
    local corpus="$here/corpus/$t" seeds="$here/corpus_seed/$t" art="$here/artifacts/$t"
    local known="$root/tests/fuzz_inputs/$t"
    mkdir -p "$corpus" "$art"
    local args=(-rss_limit_mb=512 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1
        -artifact_prefix="$art/")
    [ "$t" = events_json ] && args+=(-max_len=1048576)
    local dict
    dict="$(dict_for "$t")"
    [ -n "$dict" ] && args+=(-dict="$dict")
    # Known crashers first: they must not crash any more.
    if [ -d "$known" ] && [ -n "$(ls -A "$known")" ]; then
        if ! "$bin" -rss_limit_mb=512 -timeout=10 "$known"/* >"$log.known" 2>&1; then
            echo "FAIL $t: an input in tests/fuzz_inputs/$t still fails (see $log.known)"
            return 1
        fi
    fi
    # shellcheck disable=SC2086
    if "$bin" "${args[@]}" -max_total_time="$secs" ${FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1; then
        local execs
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "ok   $t: $execs execs in ${secs}s, corpus $(find "$corpus" -type f | wc -l) files"
        return 0
    fi
    mkdir -p "$known"
    local found=0
    for f in "$art"/crash-* "$art"/oom-* "$art"/timeout-* "$art"/leak-* "$art"/slow-unit-*; do
        [ -e "$f" ] || continue
        case "$f" in */slow-unit-*) continue ;; esac
        cp "$f" "$known/"
        found=1
        echo "FAIL $t: $(basename "$f") -> tests/fuzz_inputs/$t/$(basename "$f")"
    done
    [ $found = 1 ] || echo "FAIL $t: libFuzzer failed without an artifact"
    grep -m1 -A12 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/    /' || true
    echo "    log: $log"
    return 1
}

status=0
pids=()
names=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || status=1
done
echo "fuzz/run.sh: total $(($(date +%s) - start)) s"
exit $status

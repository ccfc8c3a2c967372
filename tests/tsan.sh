#!/usr/bin/env bash
# ThreadSanitizer run of the "Workers 8" concurrency test (8 threads flushing one instance while
# its credentials are renewed): builds the plugin with -Zsanitizer=thread and std rebuilt
# instrumented (-Zbuild-std: a nightly toolchain with rust-src), then runs
# tests/test_soak.py::test_eight_threads_under_thread_sanitizer with it. Why std must be rebuilt:
# see that module's docstring. ~2.5 min to build on 2 CPUs, 15 s to run. Not part of CI.
#
#   tests/tsan.sh [pytest args]      (FLB_SIGV4_TSAN_TOOLCHAIN: the toolchain, default nightly)
set -euo pipefail
cd "$(dirname "$0")/.."
tc="${FLB_SIGV4_TSAN_TOOLCHAIN:-nightly}"
target=x86_64-unknown-linux-gnu
if ! rustup component list --toolchain "$tc" --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "tests/tsan.sh: needs the $tc toolchain with rust-src:" \
        "rustup toolchain install $tc --profile minimal --component rust-src" >&2
    exit 2
fi
CARGO_TARGET_DIR=target/tsan RUSTFLAGS=-Zsanitizer=thread \
    cargo +"$tc" build -Zbuild-std --target "$target" --lib
FLB_SIGV4_TSAN_TOOLCHAIN="$tc" FLB_SIGV4_TSAN_SO="$PWD/target/tsan/$target/debug/libflb_sigv4.so" \
    python3 -m pytest -q -s tests/test_soak.py -k thread_sanitizer "$@"

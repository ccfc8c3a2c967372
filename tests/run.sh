#!/usr/bin/env bash
# The whole test suite: formatting and lints, Rust unit and integration tests, then the Python
# suite that drives the built .so through the C host (tests/host/flb_host.c) against real parts:
# a botocore-verifying receiver, tinyproxy, moto's STS and fake metadata endpoints in network
# namespaces (those need root and skip with a message otherwise), then every fuzz target for a
# short budget (fuzz/run.sh; FUZZ_SECONDS per target, default 60).
# Dependencies: tests/setup.sh installs them (Debian: tinyproxy valgrind iproute2 g++; PyPI:
# tests/requirements.txt and, pinned, tests/requirements-release.txt; cargo-fuzz; Docker,
# docker-compose and mmdebstrap through tests/setup_docker.sh); README's test command is
# `./tests/setup.sh && ./tests/run.sh`.
# With FLB_SIGV4_CI=1 (set by .ci/run) nothing may be skipped: a skipped Python test
# fails the run (tests/conftest.py) and so does a missing cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo build
# The Python suite drives the .so users ship: the release build against glibc 2.31
# (tests/build_release.sh, cargo-zigbuild; incremental when target/ is cached). The glibc floor
# test loads it in a Debian bullseye root; the container tests (tests/test_containers.py) put it
# in images and need a Docker engine (tests/setup_docker.sh).
release_so=$(tests/build_release.sh | grep "/libflb_sigv4.so$")
FLB_SIGV4_SO=$release_so python3 -m pytest -ra tests/ "$@"
if cargo fuzz --version >/dev/null 2>&1; then
    fuzz/run.sh "${FUZZ_SECONDS:-60}"
elif [ "${FLB_SIGV4_CI:-}" = 1 ]; then
    echo "tests/run.sh: cargo-fuzz is missing, and CI (FLB_SIGV4_CI=1) must run the fuzzers" >&2
    exit 1
else
    echo "tests/run.sh: SKIPPED the fuzzers: cargo-fuzz is not installed" \
        "(tests/setup.sh installs it as root or in CI)" >&2
fi

#!/usr/bin/env bash
# The whole test suite: formatting and lints, Rust unit and integration tests, then the Python
# suite that drives the built .so through the C host (tests/host/flb_host.c) against real parts:
# a botocore-verifying receiver, tinyproxy, moto's STS and fake metadata endpoints in network
# namespaces (those need root and skip with a message otherwise).
# Dependencies: see .ci/run (Debian: tinyproxy valgrind iproute2; PyPI: tests/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo build
python3 -m pytest -ra tests/ "$@"

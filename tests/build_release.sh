#!/usr/bin/env bash
# The release build users ship: libflb_sigv4.so linked against glibc 2.31 (Debian bullseye, the
# oldest official fluent/fluent-bit images), with cargo-zigbuild and zig (pinned in
# tests/requirements-release.txt, installed here when missing), so it loads in every official
# image from v2 to v5 (DESIGN.md §13). x86_64 only: an arm64 build is not made or tested here.
#
# Output: target/dist/libflb_sigv4.so (debug info stripped, symbols kept for backtraces), the
# file tests/test_glibc_floor.py checks and loads, the Docker recipes copy and CI runs the C-host
# suite against (FLB_SIGV4_SO); and target/dist/flb-sigv4, the doctor binary (same glibc floor),
# which the images carry as /fluent-bit/bin/flb-sigv4. The cargo build itself stays in
# target/x86_64-unknown-linux-gnu/release/ (incremental between runs; cache target/ in CI).
# Usage: tests/build_release.sh [extra cargo args]
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-gnu
GLIBC=2.31
want_zig=$(sed -n 's/^ziglang==//p' tests/requirements-release.txt)
want_zb=$(sed -n 's/^cargo-zigbuild==//p' tests/requirements-release.txt)
if [ "$(python3 -m ziglang version 2>/dev/null || true)" != "$want_zig" ] ||
   [ "$(cargo-zigbuild --version 2>/dev/null || true)" != "cargo-zigbuild $want_zb" ]; then
    python3 -m pip install -q -r tests/requirements-release.txt
fi
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
cargo zigbuild --release --lib --bin flb-sigv4 --target "$TARGET.$GLIBC" "$@"
mkdir -p target/dist
built=target/$TARGET/release/libflb_sigv4.so
# debug = 1 in the release profile makes the .so ~80 MB; the shipped copy keeps the symbol
# table (names in panic backtraces) and drops the DWARF (~13 MB left).
objcopy --strip-debug "$built" target/dist/libflb_sigv4.so.tmp
mv target/dist/libflb_sigv4.so.tmp target/dist/libflb_sigv4.so
objcopy --strip-debug "target/$TARGET/release/flb-sigv4" target/dist/flb-sigv4.tmp
mv target/dist/flb-sigv4.tmp target/dist/flb-sigv4
# The .so last: tests/run.sh takes the last line as the library the suite drives.
echo "$PWD/target/dist/flb-sigv4"
echo "$PWD/target/dist/libflb_sigv4.so"

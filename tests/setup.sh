#!/usr/bin/env bash
# Installs what the test suite (tests/run.sh) needs; safe to run again (it installs only what is
# missing). README's test command is `./tests/setup.sh && ./tests/run.sh`; .ci/run runs exactly
# that with FLB_SIGV4_CI=1.
#
# Always: the PyPI requirements (tests/requirements.txt, and tests/requirements-release.txt:
# ziglang and cargo-zigbuild, pinned, for the release build) into the current python3.
# As root, or in CI (CI=true or FLB_SIGV4_CI=1): the Debian packages (tinyproxy valgrind iproute2
# gcc g++ libc6-dev procps) and cargo-fuzz (pinned). Otherwise: a list of what the suite will
# skip because it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(tinyproxy valgrind iproute2 gcc g++ libc6-dev procps)
# cargo-fuzz builds on the stable toolchain; fuzz/run.sh sets RUSTC_BOOTSTRAP=1 for the sanitizer
# flags it passes.
CARGO_FUZZ_VERSION=0.13.2

say() { echo "tests/setup.sh: $*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }
in_ci() { [ "${CI:-}" = true ] || [ "${FLB_SIGV4_CI:-}" = 1 ]; }

# A command run as root: directly when root, through sudo otherwise (CI runners without root).
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        say "need root for: $*"
        return 1
    fi
}

missing_debian_packages() {
    local p
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

has_cargo_fuzz() {
    [ "$(cargo fuzz --version 2>/dev/null || true)" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]
}

# --- PyPI requirements (always) ------------------------------------------------------------
if ! python3 -m pip --version >/dev/null 2>&1; then
    say "python3 has no pip: install it (Debian: apt-get install python3-pip python3-venv) or" \
        "use a virtualenv (python3 -m venv .venv && . .venv/bin/activate), then run again"
    exit 1
fi
if ! python3 -m pip install -q -r tests/requirements.txt -r tests/requirements-release.txt; then
    say "pip could not install tests/requirements.txt (a Debian system python refuses with" \
        "'externally-managed-environment'): use a virtualenv (python3 -m venv .venv &&" \
        ". .venv/bin/activate) and run again"
    exit 1
fi

if is_root || in_ci; then
    # --- Debian packages ---------------------------------------------------------------------
    mapfile -t missing < <(missing_debian_packages)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        # g++: libfuzzer-sys compiles libFuzzer (C++) for the fuzz targets.
        as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian starts a tinyproxy service on install where it can; the tests run their own
    # instances.
    (as_root service tinyproxy stop || as_root pkill -x tinyproxy || true) >/dev/null 2>&1

    # --- cargo-fuzz --------------------------------------------------------------------------
    if ! has_cargo_fuzz; then
        say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
    fi

    # --- Docker engine -----------------------------------------------------------------------
    # docker.io, docker-compose and mmdebstrap; starts dockerd when none answers (the container
    # tests and the glibc floor test).
    tests/setup_docker.sh
else
    # Not root and not CI: install nothing system-wide; say what the suite will skip.
    skipped=()
    mapfile -t missing < <(missing_debian_packages)
    for p in "${missing[@]}"; do
        case "$p" in
        tinyproxy) skipped+=("the proxy tests (Debian package tinyproxy is missing)") ;;
        valgrind) skipped+=("the valgrind tests (Debian package valgrind is missing)") ;;
        iproute2) skipped+=("the network-namespace tests (Debian package iproute2 is missing)") ;;
        g++) skipped+=("the fuzzers (g++ is missing: libFuzzer is C++)") ;;
        gcc | libc6-dev) skipped+=("nothing: the C test host cannot even be built without $p (the Python suite fails)") ;;
        *) skipped+=("whatever needs Debian package $p (missing)") ;;
        esac
    done
    skipped+=("the network-namespace tests: credential chain, proxies, metadata endpoints (they need root)")
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 ||
        skipped+=("the container tests and the real glibc-2.31 load (no Docker engine, mmdebstrap: tests/setup_docker.sh as root)")
    if ! has_cargo_fuzz; then
        skipped+=("the fuzzers (cargo-fuzz $CARGO_FUZZ_VERSION is not installed: cargo install cargo-fuzz --locked --version $CARGO_FUZZ_VERSION)")
    fi
    say "not root and not CI: no system packages installed. tests/run.sh will skip:"
    for s in "${skipped[@]}"; do
        echo "  - $s" >&2
    done
    say "run as root (or with CI=true and sudo) to install them"
fi
say "ready"

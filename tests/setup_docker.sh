#!/usr/bin/env bash
# The Docker part of the test set-up (called by tests/setup.sh; runnable alone): makes sure a
# Docker engine answers on this machine for tests/test_containers.py.
#
# * As root or in CI (FLB_SIGV4_CI=1 or CI set): installs Debian's docker.io (the engine, 20.10),
#   docker-compose (1.29, the `docker-compose` command) and mmdebstrap (builds the tests' base
#   root filesystems) when they are missing. Anyone else gets a message of what is missing.
# * Reuses an engine that already answers (`docker info`); else starts `dockerd` itself in the
#   background (log: tests/.build/dockerd.log) and waits up to 60 s for it to answer.
# Idempotent: a second run finds everything in place and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/.build

privileged=0
if [ "$(id -u)" = 0 ] || [ "${FLB_SIGV4_CI:-}" = 1 ] || [ -n "${CI:-}" ]; then
    privileged=1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$privileged" = 1 ]; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "tests/setup_docker.sh: missing ${missing[*]} (apt-get install ${missing[*]});" \
            "the container tests will skip" >&2
        exit 0
    fi
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi
if [ "$privileged" != 1 ]; then
    echo "tests/setup_docker.sh: no Docker engine answers and this user may not start one" >&2
    exit 0
fi
# Debian's package starts the engine through its service where the machine has an init; a
# container or a bare VM has none, so start dockerd ourselves (left running for later runs).
if ! pgrep -x dockerd >/dev/null 2>&1; then
    log=$PWD/tests/.build/dockerd.log
    echo "tests/setup_docker.sh: starting dockerd (log: $log)" >&2
    (setsid dockerd >"$log" 2>&1 </dev/null &)
fi
for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.5
done
echo "tests/setup_docker.sh: dockerd did not answer within 60 s; its log:" >&2
tail -n 30 tests/.build/dockerd.log >&2 || true
exit 1

#!/usr/bin/env bash
# Shows the plugin doing its job on a machine without Fluent Bit: builds libflb_sigv4.so, starts a
# local receiver that verifies every request's SigV4 signature with botocore, loads the .so the
# way Fluent Bit does (the C host in tests/host/, which follows Fluent Bit's exact call sequence
# on a 24 KiB coroutine stack) and ships sample records; then prints what arrived.
# With FLUENT_BIT=/path/to/fluent-bit, the real Fluent Bit runs instead of the C host.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import botocore, msgpack, zstandard' 2>/dev/null || python3 -m pip install -q -r tests/requirements.txt
cargo build --release
so=$PWD/target/release/libflb_sigv4.so
work=$(mktemp -d)

# Demo credentials (not real AWS keys); the receiver only accepts requests signed with them.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLEDEMO AWS_SECRET_ACCESS_KEY=demo-secret-key AWS_SESSION_TOKEN=demo-session-token
export AWS_EC2_METADATA_DISABLED=true
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy AWS_PROFILE 2>/dev/null || true

python3 -m tests.helpers.receiver --port "${DEMO_PORT:-0}" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" --session-token "$AWS_SESSION_TOKEN" --require-token \
  --region us-east-1 --service execute-api --print-records >"$work/receiver.log" 2>&1 &
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q listening "$work/receiver.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/receiver.log")
[ -n "$port" ] || { cat "$work/receiver.log"; echo "the receiver did not start" >&2; exit 1; }

output_section() {
  cat <<CONF
[OUTPUT]
    Name             sigv4_http
    Match            *
    endpoint         http://127.0.0.1:$port/logs
    format           json_lines
    json_date_format iso8601
    compress         gzip
    aws_region       us-east-1
    aws_service      execute-api
    Workers          2
CONF
}

if [ -n "${FLUENT_BIT:-}" ]; then
  echo "== running the real Fluent Bit: $FLUENT_BIT"
  { printf '[SERVICE]\n    Flush 1\n    Log_Level info\n[INPUT]\n    Name dummy\n    Tag demo\n    Dummy {"log":"hello from fluent bit","n":1}\n    Rate 2\n'; output_section; } >"$work/fluent-bit.conf"
  timeout -s INT 6 "$FLUENT_BIT" -e "$so" -c "$work/fluent-bit.conf" 2>&1 | grep -E 'sigv4_http|error' || true
else
  echo "== no FLUENT_BIT set: loading the plugin with the C host (tests/host/flb_host.c)"
  mkdir -p tests/.build
  cc -O1 -g -Wall -Iinclude tests/host/flb_host.c -o tests/.build/flb_host -ldl -lpthread
  python3 - "$work" <<'PY'
import sys
from tests.helpers.chunks import build_chunk, make_records
work = sys.argv[1]
for i, (form, ts) in enumerate([("v2", "ext"), ("legacy", "int")]):
    chunk = build_chunk(make_records(3, prefix=f"demo{i}-"), form=form, ts_kind=ts)
    open(f"{work}/chunk{i}.bin", "wb").write(chunk.data)
PY
  { printf '[SERVICE]\n    Log_Level info\n'; output_section; } >"$work/host.conf"
  tests/.build/flb_host --so "$so" --config "$work/host.conf" --chunk "$work/chunk0.bin" --chunk "$work/chunk1.bin" \
    2> >(grep -v '^\[HOST\] \[debug\]' >&2) >"$work/summary.json"
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("host summary: FLB_OK=%d FLB_RETRY=%d FLB_ERROR=%d" % (s["ok"], s["retry"], s["error"]))' "$work/summary.json"
fi
sleep 1
echo "== the receiver saw (signature verified with botocore):"
cat "$work/receiver.log"

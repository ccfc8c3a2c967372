#!/usr/bin/env python3
"""Output CPU of sigv4_http against Fluent Bit's own out_http (aws_auth on), under a real
Fluent Bit (issue 18's method; results in benches/flush/README.md and README's Performance).

Needs a Fluent Bit binary in FLUENT_BIT (exits with a message when it is unset) and the plugin
(--so, default target/release/libflb_sigv4.so: `cargo build --release` first).

Each run: Fluent Bit's `tail` reads a file of the flush benchmark's Kubernetes-style records as
JSON lines (~1.3 kB each; json parser, `Exit_On_Eof`) into one output, which ships to a loopback sink answering 200 at once. CPU is the
fluent-bit process's user+system time (wait4). Per round, one run of each configuration in turn
(interleaved, so a slower moment of the machine hits all alike); the output's CPU is the run's
minus the same round's `null` run. Printed per codec: the built-in's and ours (median and range
over the rounds), the ratio ours/built-in per round (median and range), and the bytes each sent.
Every run must deliver every record (the sink counts them) or the script fails.

Both outputs: Format/format json_lines, json_date_key date, json_date_format double, the same
compress, Workers 2, SigV4 for service es in us-east-1 with static credentials from the
environment, plain HTTP to 127.0.0.1.

    FLUENT_BIT=/path/to/fluent-bit python3 benches/fluent_bit_cpu.py --runs 5
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODECS = ("none", "gzip", "zstd")


def make_log(path: Path, records: int) -> None:
    """The flush benchmark's Kubernetes-style records (benches/flush/data.rs) as JSON lines
    without a date key, written by the benchmark binary."""
    tmp = path.with_suffix(".tmp")
    subprocess.run(["cargo", "bench", "--bench", "flush", "--", "--write-json-lines", str(tmp),
                    str(records)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    tmp.rename(path)


class Sink:
    """A loopback HTTP/1.1 server: reads each request (Content-Length bodies), counts the body
    bytes and the records in it (newlines of the decompressed body), answers 200."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.reset()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.wire_bytes = 0
            self.records = 0
            self.requests = 0
            self.unsigned = 0

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(1 << 20)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get(b"content-length", b"0"))
                body = bytearray(buf[:length])
                buf = buf[length:]
                while len(body) < length:
                    data = conn.recv(min(1 << 20, length - len(body)))
                    if not data:
                        return
                    body += data
                enc = headers.get(b"content-encoding", b"").lower()
                if enc == b"gzip":
                    plain = gzip.decompress(bytes(body))
                elif enc == b"zstd":
                    import zstandard
                    plain = zstandard.ZstdDecompressor().decompressobj().decompress(bytes(body))
                else:
                    plain = bytes(body)
                with self.lock:
                    self.wire_bytes += length
                    self.records += plain.count(b"\n")
                    self.requests += 1
                    if not headers.get(b"authorization", b"").startswith(b"AWS4-HMAC-SHA256"):
                        self.unsigned += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (ConnectionError, zlib.error):
            return
        finally:
            conn.close()


def output_section(kind: str, codec: str, port: int, extra: list) -> str:
    if kind == "null":
        return "[OUTPUT]\n    Name null\n    Match *\n"
    common = (f"    Match *\n    Workers 2\n    json_date_key date\n    json_date_format double\n"
              f"    aws_region us-east-1\n    aws_service es\n")
    if codec != "none":
        common += f"    compress {codec}\n"
    if kind == "builtin":
        return (f"[OUTPUT]\n    Name http\n    Host 127.0.0.1\n    Port {port}\n    URI /logs\n"
                f"    Format json_lines\n    aws_auth On\n" + common)
    return (f"[OUTPUT]\n    Name sigv4_http\n    endpoint http://127.0.0.1:{port}/logs\n"
            f"    format json_lines\n    aws_imds off\n" + common
            + "".join(f"    {k} {v}\n" for k, v in extra))


def run_once(fluent_bit: str, so: Path, log: Path, kind: str, codec: str, sink: Sink,
             workdir: Path, records: int, extra: list) -> tuple[float, int]:
    conf = workdir / f"{kind}-{codec}.conf"
    (workdir / "parsers.conf").write_text("[PARSER]\n    Name k8sjson\n    Format json\n")
    (workdir / "plugins.conf").write_text(f"[PLUGINS]\n    Path {so}\n")
    conf.write_text(
        "[SERVICE]\n    Flush 1\n    Grace 60\n    Log_Level warn\n"
        f"    Parsers_File {workdir / 'parsers.conf'}\n    Plugins_File {workdir / 'plugins.conf'}\n"
        f"[INPUT]\n    Name tail\n    Path {log}\n    Read_from_Head On\n    Exit_On_Eof On\n"
        "    Parser k8sjson\n    Buffer_Chunk_Size 64k\n    Buffer_Max_Size 64k\n"
        + output_section(kind, codec, sink.port, extra))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               AWS_SESSION_TOKEN="session-token-example", AWS_EC2_METADATA_DISABLED="true",
               AWS_REGION="us-east-1")
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    sink.reset()
    out = open(workdir / f"{kind}-{codec}.log", "w")
    p = subprocess.Popen([fluent_bit, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                         env=env)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    out.close()
    cpu = usage.ru_utime + usage.ru_stime
    if kind != "null":
        with sink.lock:
            got, unsigned = sink.records, sink.unsigned
        if got != records or unsigned:
            tail = (workdir / f"{kind}-{codec}.log").read_text()[-3000:]
            sys.exit(f"{kind} compress {codec}: the sink got {got} of {records} records "
                     f"({unsigned} unsigned requests), exit {p.returncode}; log:\n{tail}")
    return cpu, sink.wire_bytes


def spread(xs):
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--records", type=int, default=124_000,
                    help="lines of the input file (default 124,000: ~161 MB, as issue 18's)")
    ap.add_argument("--so", type=Path, default=ROOT / "target/release/libflb_sigv4.so")
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument("--ours", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra property of the sigv4_http output (repeatable)")
    args = ap.parse_args()
    fluent_bit = os.environ.get("FLUENT_BIT")
    if not fluent_bit:
        print("FLUENT_BIT is not set: no real Fluent Bit to measure against; nothing measured.")
        return 0
    if not args.so.exists():
        sys.exit(f"{args.so} not found: run `cargo build --release` first")
    cache = ROOT / "target/fluent-bit-cpu"
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"k8s-{args.records}.log"
    if not log.exists():
        print(f"writing {log} ...", flush=True)
        make_log(log, args.records)
    print(f"input: {log} ({log.stat().st_size / 1e6:.1f} MB, {args.records} records); "
          f"Fluent Bit: {fluent_bit}; plugin: {args.so}; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    codecs = [c for c in args.codecs.split(",") if c]
    extra = [tuple(p.split("=", 1)) for p in args.ours]
    sink = Sink()
    cpu: dict = {}
    wire: dict = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for r in range(args.runs):
            plan = [("null", "none")] + [(k, c) for c in codecs for k in ("builtin", "ours")]
            for kind, codec in plan:
                t = time.monotonic()
                c, w = run_once(fluent_bit, args.so.resolve(), log, kind, codec, sink, work,
                                args.records, extra)
                cpu.setdefault((kind, codec), []).append(c)
                wire.setdefault((kind, codec), []).append(w)
                print(f"  round {r + 1}: {kind:7} {codec:4}  cpu {c:6.2f} s  wire "
                      f"{w / 1e6:7.1f} MB  ({time.monotonic() - t:.1f} s)", flush=True)
    null = cpu[("null", "none")]
    print(f"\nnull output: cpu {spread(null)} s (the baseline subtracted per round)")
    print(f"{'compress':8} {'built-in output CPU s':24} {'sigv4_http output CPU s':24} "
          f"{'ratio ours/built-in':22} wire MB built-in / ours")
    for c in codecs:
        b = [x - n for x, n in zip(cpu[("builtin", c)], null)]
        o = [x - n for x, n in zip(cpu[("ours", c)], null)]
        ratio = [y / x for x, y in zip(b, o) if x > 0]
        print(f"{c:8} {spread(b):24} {spread(o):24} {spread(ratio):22} "
              f"{statistics.median(wire[('builtin', c)]) / 1e6:.1f} / "
              f"{statistics.median(wire[('ours', c)]) / 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The soak run (issue 5, "Time and resources"): the built plugin, loaded by the C host like
Fluent Bit, flushing from 4 threads into two instances for a while, with credentials renewed every
20 s and 5% of the requests failing; then the checks that nothing was lost and nothing leaked.

    python3 -m tests.soak --seconds 600          # the 10-minute run
    python3 -m tests.soak --seconds 60 --json r.json

Everything stays on loopback (AWS_EC2_METADATA_DISABLED=true, every endpoint explicit):

* instance A ships json_lines + gzip to a verifying receiver (us-east-1/es), signed with
  credentials from ``sts:AssumeRole`` (aws_role_arn) at a fake STS on 127.0.0.1 that issues
  20-second credentials (base credentials: environment keys);
* instance B ships json + zstd to another receiver (eu-west-1/execute-api), signed with
  credentials from a ``credential_process`` profile (aws_profile) whose program issues
  20-second credentials;
* both receivers verify every signature with botocore against the credentials issued so far and
  answer 5% of the requests with a failure (half HTTP 500, half a connection reset before any
  answer — neither processes the records, so each record must arrive exactly once);
* the host runs each instance with 4 worker threads (``--threads 4``: Workers 4 for instances
  without the key), jobs alternating between the instances and round robin over an instance's
  workers, a pause between a worker's jobs (``--flush-interval-ms``), FLB_RETRY re-flushed after
  200 ms.

While it runs, the host process's RSS, thread count and open descriptors are sampled from
``/proc/<pid>`` every second. Checks (exit status 1 when one fails):

* delivered == generated: every record of every flush arrived exactly once (per instance, by id);
  no flush gave up; every accepted request was signed with credentials the fakes issued;
* credentials were renewed: at least ``seconds / 20 - 1`` distinct keys per instance;
* RSS after warm-up (the first quarter of the run, at most 60 s) grows by less than
  ``--rss-bound-mb`` (default 8 MiB) — measured as the median of the last 10% of the samples
  minus the median of the samples around the end of warm-up;
* threads: back to the count before the plugin was loaded once it is unregistered
  (``threads_at_end == threads_before``), and no growth while running after warm-up (at most
  2 more than the warm-up's maximum: tokio's blocking pool retires idle threads after 10 s);
* file descriptors: none left after unregister that was not open before load, except the one
  process-wide socket pair of tokio's signal driver (created once, reused by every later
  runtime: tests/helpers/faults.py PROCESS_WIDE_SOCKETS), and no growth while running after
  warm-up.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Optional

from tests.helpers import faults as F
from tests.helpers import host as H
from tests.helpers.fakes import FakeSTS
from tests.helpers.receiver import CredentialSet, Response

BASE = ("AKIDFLBSOAKBASE00001", "SoakBaseSecretKey/never+logged+0000000001",
        "SoakBaseSessionToken//////////never-logged-000000000000000001")
ROLE = "arn:aws:iam::123456789012:role/flbt-soak"

PROCESS_SCRIPT = r'''#!/usr/bin/env python3
# credential_process for the soak: new 20-second credentials at every call, recorded in ISSUED
import datetime, json, os, secrets, time
issued = {issued!r}
lifetime = {lifetime!r}
akid = "ASIAPROC" + secrets.token_hex(6).upper()
secret = secrets.token_urlsafe(30)[:40]
token = "PROC" + secrets.token_urlsafe(64)
now = time.time()
exp = datetime.datetime.fromtimestamp(now + lifetime, datetime.timezone.utc)
line = json.dumps({{"akid": akid, "secret": secret, "token": token, "issued": now,
                   "expires": now + lifetime}}) + "\n"
fd = os.open(issued, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, line.encode())
os.close(fd)
print(json.dumps({{"Version": 1, "AccessKeyId": akid, "SecretAccessKey": secret,
                  "SessionToken": token, "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}))
'''


class IssuedFile:
    """Credentials the credential_process program recorded (read again when the file grew)."""

    def __init__(self, path: Path):
        self.path = path
        self._size = -1
        self._creds: list = []
        self.entries: list = []
        self._lock = threading.Lock()

    def __call__(self) -> list:
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return []
            if size != self._size:
                self.entries = [json.loads(l) for l in self.path.read_text().splitlines()
                                if l.strip()]
                self._creds = [CredentialSet(e["akid"], e["secret"], e["token"])
                               for e in self.entries]
                self._size = size
            return list(self._creds)


def failure_responder(rate: float, seed: int):
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(req) -> Optional[Response]:
        with lock:
            x = rng.random()
        if x >= rate:
            return None
        if x < rate / 2:
            return Response(status=500, body='{"message":"injected failure"}')
        return Response(reset="before")

    return respond


def _median(xs):
    return statistics.median(xs) if xs else 0


def analyse_samples(samples: list, seconds: float, warmup: float) -> dict:
    after = [s for s in samples if s.t >= warmup]
    before = [s for s in samples if s.t < warmup] or samples[:1]
    around = [s for s in samples if warmup - 5 <= s.t <= warmup] or after[:5]
    tail_n = max(3, len(samples) // 10)
    tail = samples[-tail_n:]
    out = {
        "samples": len(samples),
        "warmup_s": warmup,
        "rss_kb_start": samples[0].rss_kb if samples else None,
        "rss_kb_at_warmup": _median([s.rss_kb for s in around]),
        "rss_kb_end": _median([s.rss_kb for s in tail]),
        "rss_kb_max": max((s.rss_kb for s in samples), default=0),
        "threads_max_warmup": max((s.threads for s in before), default=0),
        "threads_max_after_warmup": max((s.threads for s in after), default=0),
        "threads_min_after_warmup": min((s.threads for s in after), default=0),
        "fds_max_warmup": max((s.fds for s in before), default=0),
        "fds_max_after_warmup": max((s.fds for s in after), default=0),
        "fds_end_running": _median([s.fds for s in tail]),
    }
    out["rss_growth_kb"] = out["rss_kb_end"] - out["rss_kb_at_warmup"]
    return out


def run_soak(seconds: float = 600, threads: int = 4, failure_rate: float = 0.05,
             lifetime: float = 20, records_per_chunk: int = 40, n_chunks: int = 24,
             flush_interval_ms: int = 250, rss_bound_mb: float = 8.0,
             workdir: Optional[Path] = None, log=print) -> dict:
    """Runs the soak; returns the report (``report["ok"]`` and ``report["failures"]``)."""
    wd = Path(workdir or tempfile.mkdtemp(prefix="flb_soak_"))
    wd.mkdir(parents=True, exist_ok=True)
    issued_path = wd / "process-issued.jsonl"
    script = wd / "cred-process.py"
    script.write_text(PROCESS_SCRIPT.format(issued=str(issued_path), lifetime=lifetime))
    script.chmod(0o700)
    aws_config = wd / "aws-config"
    aws_config.write_text(textwrap.dedent(f"""\
        [profile soak]
        credential_process = {sys.executable} {script}
        region = eu-west-1
        """))

    sts = FakeSTS("127.0.0.1", 0, base_credentials=[BASE], lifetime=lifetime).start()
    from_process = IssuedFile(issued_path)
    rcv_a = F.CountingReceiver(credentials=[], region="us-east-1", service="es",
                               require_token=True,
                               extra_credentials=lambda: [i.cred for i in sts.issued()],
                               responder=failure_responder(failure_rate, 1)).start()
    rcv_b = F.CountingReceiver(credentials=[], region="eu-west-1", service="execute-api",
                               require_token=True, extra_credentials=from_process,
                               responder=failure_responder(failure_rate, 2)).start()
    try:
        chunk_list = F.numbered_chunks(n_chunks, records_per_chunk)
        # job j (ordered by k, then instance) runs on thread j % threads; per thread one job
        # per (interval + ~15 ms of flushing)
        jobs_per_thread = max(2, int(seconds * 1000 / (flush_interval_ms + 15)))
        flushes = max(1, jobs_per_thread * threads // 2)
        instances = [
            {"endpoint": rcv_a.endpoint("/_bulk"), "format": "json_lines", "compress": "gzip",
             "aws_region": "us-east-1", "aws_service": "es", "aws_role_arn": ROLE,
             "aws_role_session_name": "soak", "aws_sts_endpoint": sts.url,
             "Test_Tag": "soak.a"},
            {"endpoint": rcv_b.endpoint("/prod/ingest"), "format": "json", "compress": "zstd",
             "aws_region": "eu-west-1", "aws_service": "execute-api", "aws_profile": "soak",
             "Test_Tag": "soak.b"},
        ]
        env = {"AWS_ACCESS_KEY_ID": BASE[0], "AWS_SECRET_ACCESS_KEY": BASE[1],
               "AWS_SESSION_TOKEN": BASE[2], "AWS_CONFIG_FILE": str(aws_config),
               "AWS_SHARED_CREDENTIALS_FILE": str(wd / "no-credentials-file")}
        log(f"soak: {seconds:.0f} s, {threads} threads, 2 instances, {flushes} flushes per "
            f"instance of {records_per_chunk} records, credentials live {lifetime:.0f} s, "
            f"{failure_rate:.0%} failures; workdir {wd}")
        run = F.HostRun(instances, chunk_list, env=env, threads=threads, flushes=flushes,
                        flush_interval_ms=flush_interval_ms, retry_delay_ms=200,
                        max_retries=100, sample_every=1.0, timeout=seconds * 3 + 300,
                        workdir=wd / "host")
        res = run.run()
    finally:
        rcv_a.stop()
        rcv_b.stop()
        sts.stop()

    failures = []
    s = res.summary
    report: dict = {"seconds_requested": seconds, "elapsed_s": round(res.elapsed, 1),
                    "exit": res.returncode, "workdir": str(wd)}
    if s is None:
        failures.append(f"the host printed no summary (exit {res.returncode})")
        report.update(ok=False, failures=failures, stderr_tail=res.stderr[-3000:])
        return report
    if res.returncode != 0:
        failures.append(f"host exit status {res.returncode}")

    # -- delivery ------------------------------------------------------------------------------
    expected = {0: collections.Counter(), 1: collections.Counter()}
    gave_up = [f for f in s["flushes"] if f["final"] != H.FLB_OK or f["gave_up"]]
    for f in s["flushes"]:
        for rec in chunk_list[f["chunk_index"]].records:
            expected[f["instance"]][rec["id"]] += 1
    generated = sum(sum(c.values()) for c in expected.values())
    delivered = 0
    for inst, rcv in ((0, rcv_a), (1, rcv_b)):
        got = rcv.counts
        delivered += sum(got.values())
        missing = {i: (got[i], n) for i, n in expected[inst].items() if got[i] < n}
        extra = {i: (got[i], expected[inst][i]) for i in got if got[i] > expected[inst][i]}
        if missing:
            failures.append(f"instance {inst}: {len(missing)} record ids short, e.g. "
                            f"{list(missing.items())[:3]} (got, expected)")
        if extra:
            failures.append(f"instance {inst}: {len(extra)} record ids over-delivered, e.g. "
                            f"{list(extra.items())[:3]} (got, expected)")
        if rcv.parse_errors:
            failures.append(f"instance {inst}: {len(rcv.parse_errors)} accepted bodies do not "
                            f"decode, e.g. {rcv.parse_errors[:1]}")
        if rcv.auth_failures:
            failures.append(f"instance {inst}: {len(rcv.auth_failures)} requests with a bad "
                            f"signature, e.g. {rcv.auth_failures[:2]}")
    if gave_up:
        failures.append(f"{len(gave_up)} flushes did not end FLB_OK")
    injected = {k: rcv_a.outcomes[k] + rcv_b.outcomes[k] for k in ("scripted", "reset")}
    requests = sum(rcv_a.outcomes.values()) + sum(rcv_b.outcomes.values())

    # -- credentials ---------------------------------------------------------------------------
    keys_a = len([k for k in rcv_a.keys if k])
    keys_b = len([k for k in rcv_b.keys if k])
    min_keys = max(1, int(seconds // lifetime) - 1)
    if keys_a < min_keys or keys_b < min_keys:
        failures.append(f"credentials were not renewed every {lifetime:.0f} s: {keys_a} (STS) / "
                        f"{keys_b} (credential_process) keys signed requests, expected >= "
                        f"{min_keys}")

    # -- resources -----------------------------------------------------------------------------
    warmup = min(60.0, res.elapsed / 4)
    res_stats = analyse_samples(res.samples, res.elapsed, warmup)
    if res_stats["rss_growth_kb"] > rss_bound_mb * 1024:
        failures.append(f"RSS grew by {res_stats['rss_growth_kb']} KiB after warm-up "
                        f"(bound {rss_bound_mb} MiB)")
    if s["threads_at_end"] != s["threads_before"]:
        failures.append(f"threads: {s['threads_before']} before load, {s['threads_at_end']} "
                        f"after unregister")
    # tokio's blocking pool starts and retires threads (10 s idle): allow that much movement
    if res_stats["threads_max_after_warmup"] > res_stats["threads_max_warmup"] + 2:
        failures.append(f"threads grew while running: at most {res_stats['threads_max_warmup']}"
                        f" during warm-up, up to {res_stats['threads_max_after_warmup']} later")
    fds_before, fds_end = s.get("fds_before"), s.get("fds_at_end")
    leftover = F.unexpected_fds(s)
    if fds_before is None or leftover:
        failures.append(f"file descriptors: {fds_before} before load, {fds_end} after "
                        f"unregister; left open: {s.get('fds_new_at_end')}")
    if res_stats["fds_max_after_warmup"] > res_stats["fds_max_warmup"] + 4:
        failures.append(f"file descriptors grew while running: at most "
                        f"{res_stats['fds_max_warmup']} during warm-up, up to "
                        f"{res_stats['fds_max_after_warmup']} later")

    report.update(
        generated=generated, delivered=delivered, requests=requests,
        injected_500=injected["scripted"], injected_resets=injected["reset"],
        flush_calls=s["calls"], flush_ok=s["ok"], flush_retry=s["retry"],
        flush_error=s["error"], gave_up=len(gave_up),
        sts_calls=len(sts.calls_of("AssumeRole")), process_calls=len(from_process.entries),
        keys_sts=keys_a, keys_process=keys_b,
        threads_before=s["threads_before"], threads_at_end=s["threads_at_end"],
        fds_before=fds_before, fds_at_end=fds_end, fds_new_at_end=s.get("fds_new_at_end"),
        **res_stats,
        ok=not failures, failures=failures)
    if failures:
        report["stderr_tail"] = "\n".join(res.stderr.splitlines()[-40:])
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--failure-rate", type=float, default=0.05)
    ap.add_argument("--lifetime", type=float, default=20, help="credential lifetime, seconds")
    ap.add_argument("--flush-interval-ms", type=int, default=250)
    ap.add_argument("--rss-bound-mb", type=float, default=8.0)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path, help="write the report there too")
    args = ap.parse_args(argv)
    report = run_soak(seconds=args.seconds, threads=args.threads,
                      failure_rate=args.failure_rate, lifetime=args.lifetime,
                      flush_interval_ms=args.flush_interval_ms, rss_bound_mb=args.rss_bound_mb,
                      workdir=args.workdir, log=lambda m: print(m, file=sys.stderr, flush=True))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if report.get("ok"):
        if args.workdir is None and report.get("workdir"):
            shutil.rmtree(report["workdir"], ignore_errors=True)
        print(f"soak OK: {report['delivered']} of {report['generated']} records delivered, "
              f"RSS +{report['rss_growth_kb']} KiB after warm-up, threads "
              f"{report['threads_before']}->{report['threads_at_end']}, fds "
              f"{report['fds_before']}->{report['fds_at_end']}", file=sys.stderr)
        return 0
    print("soak FAILED:\n  " + "\n  ".join(report.get("failures", [])), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

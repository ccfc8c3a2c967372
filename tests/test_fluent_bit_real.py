"""The plugin and fluent-bit-config/ against a real Fluent Bit (FLUENT_BIT=/path/to/fluent-bit).

Checks what the C host stands in for: the examples load and start, a real Fluent Bit delivers
botocore-verified records, two instances with Workers 4 flush concurrently, and hot reload
(SIGHUP with --enable-hot-reload: exit, unregister, dlclose, load again) keeps delivering.
Skipped with a message when FLUENT_BIT is unset (CI has no Fluent Bit).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import netns as netns_mod
from tests.helpers.host import plugin_so
from tests.helpers.opensearch import FakeOpenSearch
from tests.helpers.receiver import Receiver

FLUENT_BIT = os.environ.get("FLUENT_BIT")
pytestmark = pytest.mark.skipif(not FLUENT_BIT, reason="FLUENT_BIT is not set: no real Fluent Bit to check against")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "fluent-bit-config"
CREDS = ("AKIDREALFLB", "real-flb-secret", "real-flb-token")


def fb_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update(
        HOME=str(tmp_path),
        AWS_ACCESS_KEY_ID=CREDS[0],
        AWS_SECRET_ACCESS_KEY=CREDS[1],
        AWS_SESSION_TOKEN=CREDS[2],
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def example(name: str, tmp_path: Path, port: int | None = None) -> Path:
    text = (EXAMPLES / name).read_text()
    text = text.replace("/usr/local/lib/fluent-bit/libflb_sigv4.so", str(plugin_so()))
    text = text.replace("/var/log/containers/*.log", str(tmp_path / "none.log"))
    if port is not None:
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    for other in ("plugins.conf",):
        (tmp_path / other).write_text((EXAMPLES / other).read_text().replace(
            "/usr/local/lib/fluent-bit/libflb_sigv4.so", str(plugin_so())))
    path = tmp_path / name
    path.write_text(text)
    return path


def run_fb(args: list, env: dict, seconds: float, prefix: list | None = None) -> tuple[int, str]:
    proc = subprocess.Popen((prefix or []) + [FLUENT_BIT, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += "\n[test] fluent-bit did not exit within 90 s of SIGINT: killed"
    return proc.returncode, out


@pytest.mark.parametrize("name", ["fluent-bit.conf", "fluent-bit.yaml", "opensearch.conf",
                                  "opensearch-serverless.conf", "apigateway.conf"])
def test_examples_start_in_real_fluent_bit(name, tmp_path):
    why = netns_mod.unavailable_reason()
    if why:
        pytest.skip(why)
    cfg = example(name, tmp_path)
    # Inside a namespace with only lo: the AWS host names of the examples cannot be reached.
    with netns_mod.NetNS(addrs=()) as ns:
        code, out = run_fb(["-c", str(cfg)], fb_env(tmp_path), 3, prefix=ns.exec_prefix())
    assert "credentials provider 'environment' chosen" in out, out
    assert "failed to initialize" not in out and "config error" not in out.lower(), out
    assert code == 0, out


def test_real_fluent_bit_delivers_verified_records(tmp_path):
    rcv = Receiver(credentials=[CREDS], require_token=True, region="us-east-1", service="execute-api").start()
    try:
        cfg = example("fluent-bit.conf", tmp_path, port=rcv.port)
        code, out = run_fb(["-c", str(cfg)], fb_env(tmp_path), 4)
        records = rcv.records()
        assert len(records) >= 3, out
        assert not rcv.rejections(), [r.auth_reason for r in rcv.rejections()]
        assert all(r["log"] == "hello from fluent bit" and "date" in r for r in records)
        assert code == 0, out
    finally:
        rcv.stop()


def test_real_fluent_bit_opensearch_each_document_once(tmp_path):
    """dummy inputs -> sigv4_http format opensearch -> the fake OpenSearch, which fails every
    "throttled" document with 429 on its first attempt and every "bad" one with 400: each "ok"
    and "throttled" document is indexed exactly once, "ok" ones are never re-sent, "throttled"
    ones are sent exactly twice (the item retry carries only them), "bad" ones are dropped after
    one attempt, and the per-flush line names the 400."""
    samples = 5
    fake = FakeOpenSearch(credentials=[CREDS], region="us-east-1", service="es").start()
    try:
        fake.fail_items(429, match=lambda a: (a.source or {}).get("kind") == "throttled",
                        attempts=[1])
        fake.fail_items(400, match=lambda a: (a.source or {}).get("kind") == "bad",
                        reason="failed to parse field [kind]")
        inputs = "".join(
            f"[INPUT]\n    Name dummy\n    Tag app.{kind}\n    Dummy {{\"kind\": \"{kind}\"}}\n"
            f"    Rate 5\n    Samples {samples}\n\n" for kind in ("ok", "throttled", "bad"))
        cfg = tmp_path / "os.conf"
        (tmp_path / "plugins.conf").write_text(f"[PLUGINS]\n    Path {plugin_so()}\n")
        cfg.write_text(
            "[SERVICE]\n    Flush 1\n    Grace 5\n    Log_Level info\n"
            "    Plugins_File plugins.conf\n\n" + inputs +
            "[OUTPUT]\n    Name sigv4_http\n    Match app.*\n"
            f"    endpoint {fake.endpoint('/_bulk')}\n    format opensearch\n"
            "    index app-logs\n    aws_region us-east-1\n    aws_service es\n"
            "    Workers 2\n    Retry_Limit 5\n")
        code, out = run_fb(["-c", str(cfg)], fb_env(tmp_path), 6)
        assert code == 0, out
        assert not fake.receiver.rejections(), [r.auth_reason for r in fake.receiver.rejections()]
        docs = fake.documents("app-logs")
        by_kind = {k: [d for d in docs if d.get("kind") == k] for k in ("ok", "throttled", "bad")}
        assert len(by_kind["ok"]) == samples and len(by_kind["throttled"]) == samples, (by_kind, out)
        assert by_kind["bad"] == [], by_kind
        assert len(docs) == 2 * samples
        # distinct documents (their @timestamp differs): none indexed twice
        assert len({d["@timestamp"] for d in docs if d["kind"] == "ok"}) == samples
        assert len({d["@timestamp"] for d in docs if d["kind"] == "throttled"}) == samples
        sent = {k: 0 for k in ("ok", "throttled", "bad")}
        for call in fake.bulk_log:
            for a in call.actions:
                assert a.op == "create" and "_type" not in a.meta, a
                sent[a.source["kind"]] += 1
        assert sent == {"ok": samples, "throttled": 2 * samples, "bad": samples}, sent
        assert "400" in out and "mapper_parsing_exception" in out, out
    finally:
        fake.stop()


# Fluent Bit's own bug (since v2.2.0, commit a5339d0cd; still in v5.1.1 and master): for a proxy
# output both flb_proxy_output_cb_init (src/flb_plugin_proxy.c:588) and flb_output_init_all
# (src/flb_output.c:1809) call flb_output_enable_multi_threading, so `Workers N` starts two pools
# of N threads and ins->tp keeps only the second. flb_output_exit stops and joins that one only and
# frees the instance; the first pool's threads never get work but keep running their 1.5 s timer
# cb_thread_sched_timer -> flb_upstream_conn_timeouts(&ins->upstreams) on the freed instance, so
# after a hot reload Fluent Bit dies with SIGSEGV. Any proxy plugin hits it (a 30-line C plugin
# whose flush returns at once crashes on the 2nd reload); no plugin callback can prevent it.
DOUBLE_POOL = ("Fluent Bit creates a proxy output's worker pool twice (flb_plugin_proxy.c:588 and "
               "flb_output.c:1809) and never stops the first; its threads then read the instance "
               "freed by hot reload in flb_upstream_conn_timeouts (SIGSEGV)")


def pool_started_twice(log: str) -> bool:
    """Whether Fluent Bit's log shows an output instance starting the same worker twice within
    one load (its double pool, DOUBLE_POOL); each reload starts with "reloading instance"."""
    for load in log.split("reloading instance"):
        started = re.findall(r"\[output:[^:\]]+:([^\]]+)\] worker #(\d+) started", load)
        if len(started) != len(set(started)):
            return True
    return False


def out_worker_threads(pid: int) -> int:
    """Output worker threads of a Fluent Bit process (named flb-out-<instance>-w<N>)."""
    n = 0
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            n += comm.read_text().startswith("flb-out-")
        except OSError:  # the thread just ended
            pass
    return n


def test_real_fluent_bit_starts_workers_threads_once(tmp_path):
    rcv = Receiver(credentials=[CREDS], require_token=True).start()
    cfg = tmp_path / "one.conf"
    cfg.write_text(f"""
[SERVICE]
    Flush     0.2
    Log_Level info
[INPUT]
    Name  dummy
    Tag   workers
    Rate  20
[OUTPUT]
    Name        sigv4_http
    Match       *
    endpoint    http://127.0.0.1:{rcv.port}/logs
    aws_region  us-east-1
    aws_service execute-api
    Workers     2
""")
    proc = subprocess.Popen([FLUENT_BIT, "-e", str(plugin_so()), "-c", str(cfg)], env=fb_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rcv.wait_for_records(5, timeout=15)
        threads = out_worker_threads(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        rcv.stop()
    assert proc.returncode == 0, out[-3000:]
    if threads == 4 and out.count("worker #0 started") == 2:
        pytest.xfail(DOUBLE_POOL)
    assert threads == 2, out[-3000:]


def test_real_fluent_bit_workers_and_hot_reload(tmp_path):
    a = Receiver(credentials=[CREDS], require_token=True).start()
    b = Receiver(credentials=[CREDS], require_token=True).start()
    so = plugin_so()
    cfg = tmp_path / "two.conf"
    outputs = "".join(
        f"""
[OUTPUT]
    Name        sigv4_http
    Match       *
    endpoint    http://127.0.0.1:{r.port}/logs
    format      {fmt}
    compress    {comp}
    aws_region  us-east-1
    aws_service execute-api
    Workers     4
"""
        for r, fmt, comp in ((a, "json_lines", "gzip"), (b, "json", "zstd")))
    cfg.write_text(f"""
[SERVICE]
    Flush     0.2
    Log_Level info
[INPUT]
    Name  dummy
    Tag   reload
    Dummy {{"log": "reload test"}}
    Rate  20
{outputs}""")
    proc = subprocess.Popen([FLUENT_BIT, "-e", str(so), "--enable-hot-reload", "-c", str(cfg)],
                            env=fb_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        a.wait_for_records(10, timeout=15)
        b.wait_for_records(10, timeout=15)
        # 2 x Workers 4; 16 means Fluent Bit's double pool (DOUBLE_POOL), whose leftover threads
        # crash once a reload has freed their instance.
        # (counted until it settles: the pools' threads start one by one)
        counts = []
        for _ in range(20):
            counts.append(out_worker_threads(proc.pid))
            if counts[-1] == 16 or (len(counts) > 5 and len(set(counts[-5:])) == 1):
                break
            time.sleep(0.1)
        doubled = counts[-1] > 8
        for _ in range(3):
            before = (len(a.records()), len(b.records()))
            proc.send_signal(signal.SIGHUP)
            time.sleep(3)
            if proc.poll() is not None:
                log = proc.stdout.read()
                # the pool counted from the threads, or from the log when the count was read
                # before the second pool's threads had started
                doubled = doubled or pool_started_twice(log)
                crash = "caught signal (SIGSEGV)" in log or "flb_upstream_conn_timeouts" in log
                if doubled and crash:
                    pytest.xfail(DOUBLE_POOL)
                pytest.fail("Fluent Bit died on hot reload:\n" + log[-4000:])
            a.wait_for_records(before[0] + 10, timeout=15)
            b.wait_for_records(before[1] + 10, timeout=15)
            if not doubled:  # a reload stops every old worker thread
                assert out_worker_threads(proc.pid) == 8
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        a.stop()
        b.stop()
    assert "reload" in out.lower(), out
    assert not a.rejections() and not b.rejections()
    assert proc.returncode == 0, out[-3000:]


def test_real_fluent_bit_hot_reload_without_workers(tmp_path):
    """Hot reload (SIGHUP) re-runs register/init on the reloaded library and unregisters the old
    one: delivery goes on after each reload, no plugin thread survives its unload, and Fluent
    Bit exits cleanly. (Without `Workers`, so Fluent Bit's double worker pool is not in play.)"""
    rcv = Receiver(credentials=[CREDS], require_token=True).start()
    cfg = tmp_path / "reload.conf"
    cfg.write_text(f"""
[SERVICE]
    Flush     0.2
    Log_Level info
[INPUT]
    Name  dummy
    Tag   reload
    Rate  20
[OUTPUT]
    Name        sigv4_http
    Match       *
    endpoint    http://127.0.0.1:{rcv.port}/logs
    aws_region  us-east-1
    aws_service execute-api
""")
    proc = subprocess.Popen([FLUENT_BIT, "-e", str(plugin_so()), "--enable-hot-reload", "-c",
                             str(cfg)], env=fb_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def plugin_threads() -> int:
        n = 0
        for comm in Path(f"/proc/{proc.pid}/task").glob("*/comm"):
            try:
                n += comm.read_text().startswith("flb-sigv4")
            except OSError:
                pass
        return n

    try:
        rcv.wait_for_records(10, timeout=15)
        running = plugin_threads()
        assert running >= 1, "the plugin's runtime threads run while it delivers"
        for _ in range(5):
            before = len(rcv.records())
            proc.send_signal(signal.SIGHUP)
            time.sleep(2)
            assert proc.poll() is None, "Fluent Bit died on hot reload:\n" + proc.stdout.read()[-4000:]
            rcv.wait_for_records(before + 10, timeout=15)
            # the old load's runtime was joined in FLBPluginUnregister: one runtime, not two
            assert plugin_threads() <= running, f"{plugin_threads()} > {running} plugin threads"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        rcv.stop()
    assert "reload" in out.lower(), out[-3000:]
    assert not rcv.rejections()
    assert proc.returncode == 0, out[-3000:]


# ------------------------------------------------------------------------------------------------
# issue 14: a hanging endpoint or STS must not stall Fluent Bit's engine


def _stall_config(tmp_path: Path, port: int, workers: bool, extra: str = "") -> Path:
    """dummy at 10 records/s into sigv4_http and into a second output (`file`), for 20 s."""
    (tmp_path / "plugins.conf").write_text(f"[PLUGINS]\n    Path {plugin_so()}\n")
    cfg = tmp_path / "stall.conf"
    cfg.write_text(f"""[SERVICE]
    Flush        1
    Log_Level    info
    Log_File     {tmp_path / 'fluent-bit.log'}
    Plugins_File plugins.conf

[INPUT]
    Name  dummy
    Tag   app
    Dummy {{"log": "tick"}}
    Rate  10

[OUTPUT]
    Name       sigv4_http
    Match      *
    endpoint   http://127.0.0.1:{port}/logs
    aws_region us-east-1
    aws_service execute-api
    timeout    8s
    Retry_Limit no_limits
{"    Workers    2" if workers else ""}
{extra}

[OUTPUT]
    Name  file
    Match *
    Path  {tmp_path}
    File  second.out
""")
    return cfg


def _second_output_kept(tmp_path: Path) -> int:
    p = tmp_path / "second.out"
    return len(p.read_text().splitlines()) if p.exists() else 0


@pytest.mark.parametrize("workers", [False, True], ids=["no-workers", "workers-2"])
def test_hanging_endpoint_does_not_stall_fluent_bit(workers, tmp_path):
    """The endpoint accepts and never answers: the second output keeps >= 90% of the ~200
    records of 20 s, with and without Workers; the plugin's lines are in Log_File."""
    from tests.helpers.receiver import Response

    rcv = Receiver(credentials=[CREDS], require_token=True, region="us-east-1",
                   service="execute-api").start()
    rcv.set_responder(lambda req: Response(status=200, stall=30, reset="after_stall"))
    try:
        cfg = _stall_config(tmp_path, rcv.port, workers)
        code, out = run_fb(["-c", str(cfg)], fb_env(tmp_path), 20)
    finally:
        rcv.stop()
    kept = _second_output_kept(tmp_path)
    assert kept >= 180, f"the second output kept {kept} of ~200 records\n{out}"
    log = (tmp_path / "fluent-bit.log").read_text(errors="replace")
    assert "[output:sigv4_http] configuration:" in log, log[-3000:]
    if not workers:
        assert "has no Workers" in log, log[-3000:]
        assert "longer than 500 ms on Fluent Bit's engine thread" in log, log[-3000:]


@pytest.mark.parametrize("workers", [False, True], ids=["no-workers", "workers-2"])
def test_hanging_sts_does_not_stall_fluent_bit(workers, tmp_path):
    """aws_role_arn with an STS that never answers: the second output keeps >= 90%."""
    from tests.helpers.fakes import FakeSTS

    sts = FakeSTS("127.0.0.1", 0, base_credentials=[CREDS])
    sts.hang = 1000.0
    sts.start()
    rcv = Receiver(credentials=[CREDS], require_token=True, region="us-east-1",
                   service="execute-api").start()
    try:
        extra = ("    aws_role_arn arn:aws:iam::123456789012:role/flbt-real\n"
                 f"    aws_sts_endpoint {sts.url}")
        cfg = _stall_config(tmp_path, rcv.port, workers, extra)
        code, out = run_fb(["-c", str(cfg)], fb_env(tmp_path), 20)
    finally:
        sts.stop()
        rcv.stop()
    kept = _second_output_kept(tmp_path)
    assert kept >= 180, f"the second output kept {kept} of ~200 records\n{out}"

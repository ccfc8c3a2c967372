"""Flushes on Fluent Bit's engine thread (issue 14): an output without ``Workers`` flushes on the
engine thread ``flb-pipeline``, and a flush that waits for the endpoint or for credentials stops
every input and output. The C host runs such flushes on its engine thread, which between flushes
runs a timer "input" every ``tick_ms`` and counts the ticks it missed (tests/host/flb_host.c).

Scenario → test → what is asserted:
  endpoint accepts, never answers   test_endpoint_hang_on_engine_thread     ticks missed < 10%, RSS
  for 60 s, then recovers                                                   bounded, every record
                                                                            exactly once, plugin
                                                                            lines in Log_File
  STS never answers, then recovers  test_sts_hang_on_engine_thread          ticks missed < 10%,
                                                                            exactly once
  same endpoint hang, Workers 2     test_endpoint_hang_with_workers         no engine stall, flushes
                                                                            wait for the answer
  Fluent Bit's default Retry_Limit  test_default_retry_limit_...            what happens, written
  (1) while a request hangs                                                 down in README
  exit while a request hangs        test_exit_abandons_background_requests  exit bounded, logged
  hot reload, new load first        test_reload_new_load_first_keeps_...    delivery across reloads

Network rule: loopback only (AWS_EC2_METADATA_DISABLED=true, every endpoint explicit).
"""

from __future__ import annotations

import time

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import faults as F
from tests.helpers import host as H
from tests.helpers.fakes import FakeSTS
from tests.helpers.receiver import Response

from tests.test_faults import instance
from tests.test_faults import receiver as fault_receiver

TICK_MS = 100


def receiver(**kw) -> F.FaultReceiver:
    kw.setdefault("require_token", True)
    return fault_receiver(**kw).start()


def hang_between(t_from: float, t_to: float, answer: bool = True):
    """A responder: requests received in [t_from, t_to) get no answer until t_to; then 200
    (``answer``), or the connection is reset (never answered, nothing processed)."""
    def respond(req):
        now = time.time()
        if t_from <= now < t_to:
            return Response(status=200, stall=t_to - now,
                            reset=None if answer else "after_stall")
        return None
    return respond


def missed_share(summary) -> float:
    due = summary["ticks_due"]
    assert due > 0, summary
    return summary["ticks_missed"] / due


def test_endpoint_hang_on_engine_thread():
    """The endpoint accepts requests and answers none for 60 s (no Workers, flush every 500 ms,
    ``timeout 25s``). The first stalled flush returns FLB_RETRY after the 500 ms budget while
    its request goes on; later flushes return FLB_RETRY at once while it is stalled, so the
    engine keeps ticking. Each hung request times out in the background (nothing processed) and
    the next one hangs again; once the endpoint recovers every record arrives exactly once. RSS
    stays bounded; the plugin's lines reach Log_File, also those made on its own threads."""
    rcv = receiver()
    chunk_list = F.numbered_chunks(150, 20, pad=2000)
    run = F.HostRun([instance(rcv.endpoint("/logs"), timeout="25s")], chunk_list,
                    env=CREDS_ENV, threads=0,
                    flush_interval_ms=500, retry_delay_ms=1000, max_retries=200,
                    extra_args=["--tick-ms", str(TICK_MS)], sample_every=0.5,
                    service={"Log_File": "fluent-bit.log"}, log_level="info", timeout=300)
    try:
        t0 = time.time()
        rcv.set_responder(hang_between(t0 + 3, t0 + 63, answer=False))
        res = run.start().wait()
        log_file = (run.dir / "fluent-bit.log").read_text(errors="replace")
    finally:
        run.cleanup()
        rcv.stop()
    assert res.returncode == 0, res.describe()
    s = res.summary
    hung = [r for r in rcv.requests() if r.outcome == "unanswered"]
    assert 2 <= len(hung) <= 3, "one request at a time hung (each until its 25 s timeout)"
    # the engine was held by at most one budget per stall, never by the hang itself
    assert s["engine_max_stall_ms"] < 1500, s["engine_max_stall_ms"]
    assert missed_share(s) < 0.10, (s["ticks_due"], s["ticks_missed"])
    retries = [code for f in s["flushes"] for code in f["results"] if code == H.FLB_RETRY]
    assert len(retries) > 20, "flushes during the hang must have been retried"
    # memory: chunk copies are not piling up while the request hangs
    rss = [smp.rss_kb for smp in res.samples if 5 < smp.t < 60]
    assert rss, res.samples[:3]
    assert max(rss) - min(rss) < 40_000, (min(rss), max(rss))
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    print(rep.line(), "ticks", s["ticks_due"], s["ticks_missed"])
    # Log_File: lines of the plugin made on its own threads were handed back to the engine
    assert "[output:sigv4_http] configuration:" in log_file, log_file[:2000]
    assert "longer than 500 ms on Fluent Bit's engine thread" in log_file
    assert "has no Workers" in log_file
    assert res.summary["log_lines_foreign"] == 0, res.summary


def test_sts_hang_on_engine_thread():
    """``aws_role_arn`` with an STS that accepts connections and never answers for 12 s: no flush
    holds the engine much longer than its budget (the credential fetch goes on in the
    background), ticks are not missed, and once STS answers every record arrives exactly once."""
    sts = FakeSTS("127.0.0.1", 0, base_credentials=[CREDENTIALS], lifetime=3600)
    sts.hang = 1000.0
    sts.start()
    rcv = receiver(extra_credentials=lambda: [i.cred for i in sts.issued()])
    try:
        chunk_list = F.numbered_chunks(40, 10)
        inst = instance(rcv.endpoint("/logs"),
                        aws_role_arn="arn:aws:iam::123456789012:role/flbt-engine",
                        aws_sts_endpoint=sts.url)
        run = F.HostRun([inst], chunk_list, env=CREDS_ENV, threads=0, flush_interval_ms=500,
                        retry_delay_ms=1000, max_retries=100,
                        extra_args=["--tick-ms", str(TICK_MS)], log_level="info", timeout=300)
        try:
            run.start()
            time.sleep(12)
            assert not sts.issued()
            sts.hang = 0.0
            sts._release.set()  # the hung requests end unanswered; the next fetch is answered
            res = run.wait()
        finally:
            run.cleanup()
    finally:
        sts.stop()
        rcv.stop()
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert sts.issued(), "STS answered after the hang"
    assert s["engine_max_stall_ms"] < 1500, s["engine_max_stall_ms"]
    assert missed_share(s) < 0.10, (s["ticks_due"], s["ticks_missed"])
    assert s["retry"] > 0
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    print(rep.line(), "ticks", s["ticks_due"], s["ticks_missed"])


def test_endpoint_hang_with_workers():
    """With Workers nothing changes: a flush on a worker thread waits for its answer (no
    budget), the engine is never held."""
    rcv = receiver()
    chunk_list = F.numbered_chunks(4, 10)
    t0 = time.time()
    rcv.set_responder(hang_between(t0, t0 + 3))
    res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=2,
                     retry_delay_ms=200, max_retries=5,
                     extra_args=["--tick-ms", str(TICK_MS), "--run-ms", "3500"])
    rcv.stop()
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert all(f["thread_name"].startswith("flb-out-") for f in s["flushes"]), s["flushes"]
    first = [f for f in s["flushes"] if f["results"][0] == H.FLB_OK and f["ms"][0] > 1500]
    assert first, "worker flushes waited for the stalled answers: " + str(s["flushes"])
    assert s["ticks_missed"] == 0, s
    F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True,
                     lost_outcomes=("stalled",))


def test_default_retry_limit_while_a_request_hangs():
    """Fluent Bit's default ``Retry_Limit`` is 1. A request that hangs past the budget makes the
    first flush return FLB_RETRY; its one retry finds the request still stalled and returns
    FLB_RETRY at once, so Fluent Bit gives the chunk up while the request is still running.
    What then happens depends on the request alone: answered 200, the records are delivered
    (once); answered 503, they are lost — which is why README says to use Workers, or
    ``Retry_Limit no_limits`` without them."""
    for late_status, delivered in ((200, True), (503, False)):
        rcv = receiver()
        chunk_list = F.numbered_chunks(1, 10)
        t0 = time.time()

        def respond(req, t0=t0, late_status=late_status):
            if req.index == 0:
                return Response(status=late_status, stall=max(0.0, t0 + 3 - time.time()))
            return None

        rcv.set_responder(respond)
        res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV,
                         threads=0, retry_delay_ms=1000, max_retries=1,
                         extra_args=["--run-ms", "4500"])
        rcv.stop()
        assert res.returncode == 0, res.describe()
        (job,) = res.summary["flushes"]
        assert job["results"] == [H.FLB_RETRY, H.FLB_RETRY] and job["gave_up"], job
        # at once, not after the 500 ms budget (slack for a loaded machine)
        assert job["ms"][1] < 400, "the retry returned at once while the request was stalled"
        (req,) = rcv.requests()  # nothing was sent twice
        assert len(req.records) == 10
        warns = res.logs("warn")
        if delivered:
            assert not any("HTTP 503" in l for l in warns), warns
        else:
            # the background request's failure is logged at exit; nobody retries it any more
            assert any("HTTP 503" in l for l in warns), res.describe()


def test_exit_abandons_background_requests_after_a_bound():
    """At exit a request still stalled in the background is waited for a bounded time (5 s),
    then abandoned with a log line saying so; the host exits."""
    rcv = receiver()
    chunk_list = F.numbered_chunks(1, 5)
    t0 = time.time()
    rcv.set_responder(hang_between(t0, t0 + 60))
    started = time.monotonic()
    res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=0,
                     max_retries=0, timeout=60)
    took = time.monotonic() - started
    rcv.stop()
    assert res.returncode == 0, res.describe()
    assert res.summary["flushes"][0]["results"] == [H.FLB_RETRY]
    assert took < 20, f"exit took {took:.1f} s"
    assert any("abandoned after 5000 ms" in l for l in res.logs("warn")), res.describe()


def test_reload_new_load_first_keeps_delivering():
    """Fluent Bit's hot reload registers the new load before it unregisters the old one (same
    library, one copy in memory): the runtime is counted per registration, so the old
    unregister does not stop what the new load uses; every cycle delivers, and after the last
    unregister no plugin thread is left."""
    rcv = receiver()
    chunk_list = F.numbered_chunks(3, 5)
    res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=0,
                     cycles=3, extra_args=["--reload-order", "new-first"])
    rcv.stop()
    assert res.returncode == 0, res.describe()
    assert [f["final"] for f in res.summary["flushes"]] == [H.FLB_OK] * 9
    assert res.summary["threads_at_end"] == 1, res.summary
    F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)

"""Tests of the C host itself (tests/host/flb_host.c), driven with the C mock plugin
(tests/host/mock_plugin.c), so the harness is known to be right before it judges the plugin."""

from __future__ import annotations

import re

import pytest

from tests.helpers import host as H

CHUNK_A = b"\x92\x01\x80"  # [1, {}]
CHUNK_B = b"\x92\x02\x80\x92\x03\x80"


def _props(res, instance=0):
    out = {}
    for line in res.logs("info"):
        m = re.match(rf"instance {instance} prop (\S+)=(.*)$", line)
        if m:
            out[m.group(1)] = None if m.group(2) == "(null)" else m.group(2)
    return out


WITHHELD = ["match", "Match_Regex", "alias", "log_level", "log_suppress_interval", "host",
            "PORT", "ipv6", "retry_limit", "workers", "storage.total_limit_size", "tls",
            "tls.verify", "TLS.ca_file", "tls.anything", "net.keepalive", "Net.connect_timeout",
            "oauth2.enable", "OAuth2_token_url", "name", "Test_Tag"]


def test_properties_withheld_and_lookup_rules(run_mock, monkeypatch):
    inst = [
        ("mock_dump", " ".join(WITHHELD + ["endpoint", "ENDPOINT", "headers", "empty",
                                           "from_env", "with_semicolon", "unknown"])),
        ("endpoint", "http://127.0.0.1:9/first"),
        ("Endpoint", "http://127.0.0.1:9/second"),  # repeated key: the first value wins
        ("headers", "X-A: 1; X-B: two words"),
        ("empty", ""),
        ("from_env", "pre-${FLB_HOST_TEST_VAR}-post"),
        ("with_semicolon", "a;b ; c"),
        ("Match", "*"), ("Match_Regex", ".*"), ("alias", "a"), ("log_level", "info"),
        ("log_suppress_interval", "1"), ("host", "1.2.3.4"), ("PORT", "80"), ("ipv6", "on"),
        ("retry_limit", "3"), ("workers", "2"), ("storage.total_limit_size", "1M"),
        ("tls", "off"), ("tls.verify", "off"), ("TLS.ca_file", "/x"), ("tls.anything", "1"),
        ("net.keepalive", "off"), ("Net.connect_timeout", "5"), ("oauth2.enable", "on"),
        ("OAuth2_token_url", "x"), ("Test_Tag", "my.tag"),
    ]
    res = run_mock([inst], env={"FLB_HOST_TEST_VAR": "val"})
    assert res.returncode == 0, res.describe()
    props = _props(res)
    for k in WITHHELD:
        assert k in props and props[k] is None, (k, props.get(k))
    assert props["endpoint"] == "http://127.0.0.1:9/first"
    assert props["ENDPOINT"] == "http://127.0.0.1:9/first"
    assert props["headers"] == "X-A: 1; X-B: two words"
    assert props["empty"] is None
    assert props["from_env"] == "pre-val-post"
    assert props["with_semicolon"] == "a;b ; c"
    assert props["unknown"] is None
    assert res.summary["api_misuse"] == 0


def test_tls_on_refused_tls_off_accepted(run_mock):
    for v in ("on", "true", "Yes", "1"):
        res = run_mock([{"tls": v}])
        assert res.returncode == H.EXIT_CONFIG, res.describe()
        assert "config error: plugin does not support TLS" in res.stderr
        assert "[MOCK] register" not in res.stderr  # refused before anything is initialised
    res = run_mock([{"tls": "off"}])
    assert res.returncode == 0, res.describe()


def test_config_errors(run_mock, tmp_path):
    res = run_mock([{"Name": "http"}])
    assert res.returncode == H.EXIT_CONFIG
    res = run_mock([{"log_level": "loud"}])
    assert res.returncode == H.EXIT_CONFIG
    p = tmp_path / "empty.conf"
    p.write_text("[SERVICE]\n    Log_Level info\n")
    res = run_mock(p)
    assert res.returncode == H.EXIT_CONFIG


def test_call_sequence_and_hot_reload_flags(run_mock):
    res = run_mock([{}, {}], [CHUNK_A, CHUNK_B], cycles=3, hot_reload=True)
    assert res.returncode == 0, res.describe()
    seq = [l for l in res.stderr.splitlines() if l.startswith("[MOCK]") or "initialized" in l
           or " exit " in l]
    per_cycle = [
        "[MOCK] pre_register hot_reloading={hot}",
        "[MOCK] register preset_type=2",
        "[MOCK] live registrations=1 registered={reg}",
        "[HOST] [info] instance 0 initialized",
        "[HOST] [info] instance 1 initialized",
        "[MOCK] pre_run enable_hot_reload=1",
        "[MOCK] pre_run enable_hot_reload=1",
        "[MOCK] pre_exit shutdown_by_hot_reloading={shut}",
        "[HOST] [info] instance 0 exit flushes=1",
        "[MOCK] pre_exit shutdown_by_hot_reloading={shut}",
        "[HOST] [info] instance 1 exit flushes=1",
        "[MOCK] unregister name=sigv4_http",
        "[MOCK] live registrations=0 registered={reg}",
    ]
    want = []
    for c in range(3):
        # old-first: the image is unmapped at each dlclose, so each load starts afresh
        want += [s.format(hot=int(c > 0), shut=int(c < 2), reg=1) for s in per_cycle]
    assert seq == want
    s = res.summary
    assert s["cycles"] == 3 and s["instances"] == 2
    assert s["description"] == "mock plugin for the flb_host tests"
    assert s["description_stable"] is True
    assert s["threads_before"] == 1 and s["threads_at_end"] == 1
    assert s["threads_after_cycle"] == [1, 1, 1]


def test_without_hot_reload_flags_are_zero(run_mock):
    res = run_mock([{}], [CHUNK_A], cycles=2)
    assert res.returncode == 0
    assert "hot_reloading=1" not in res.stderr and "hot_reload=1" not in res.stderr


def test_flush_assignment_default_and_flushes(run_mock):
    # threads=2: Workers 2 per instance; an instance's jobs go round robin over its workers
    res = run_mock([{}, {}], [CHUNK_A, CHUNK_B, CHUNK_A], threads=2)
    got = [(f["instance"], f["chunk_index"], f["thread"], f["tag"]) for f in res.summary["flushes"]]
    assert got == [(0, 0, 0, "test.0"), (1, 1, 0, "test.1"), (0, 2, 1, "test.0")]
    assert res.summary["workers"] == [2, 2]
    res = run_mock([{}, {"Test_Tag": "app.x"}], [CHUNK_A, CHUNK_B, CHUNK_A], flushes=3, threads=4)
    got = [(f["instance"], f["chunk_index"], f["tag"]) for f in res.summary["flushes"]]
    assert got == [(0, 0, "test.0"), (1, 1, "app.x"), (0, 1, "test.0"), (1, 2, "app.x"),
                   (0, 2, "test.0"), (1, 0, "app.x")]
    assert res.summary["ok"] == 6


def test_retry_error_and_unexpected_codes(run_mock):
    res = run_mock([{"mock_result": "retry:2"}], [CHUNK_A], retry_delay_ms=1)
    assert res.results() == [[2, 2, 1]]
    res = run_mock([{"mock_result": "retry_always"}], [CHUNK_A], retry_delay_ms=1, max_retries=3)
    assert res.results() == [[2, 2, 2, 2]]
    assert res.summary["flushes"][0]["gave_up"] is True and res.summary["gave_up"] == 1
    res = run_mock([{"mock_result": "error"}], [CHUNK_A])
    assert res.results() == [[0]] and res.summary["error"] == 1
    res = run_mock([{"mock_result": "weird"}], [CHUNK_A])
    assert res.results() == [[7]] and res.summary["other"] == 1


def test_init_failure_exits_3_and_cleans_up(run_mock):
    res = run_mock([{}, {"mock_init": "fail"}, {}], [CHUNK_A])
    assert res.returncode == H.EXIT_INIT, res.describe()
    assert "init failed for instance 1" in res.stderr
    assert "instance 0 exit" in res.stderr  # the instance that started is shut down
    assert "instance 2 initialized" not in res.stderr
    assert "[MOCK] unregister" in res.stderr
    assert res.summary["calls"] == 0


def test_bad_definition_refused(run_mock):
    res = run_mock([{}], env={"MOCK_BAD_DEF": "1"})
    assert res.returncode == H.EXIT_LOAD
    assert "bad plugin definition" in res.stderr


def test_stack_measurement_and_overflow(run_mock):
    res = run_mock([{"mock_stack": "8000"}], [CHUNK_A])
    assert res.returncode == 0
    assert 8000 <= res.summary["max_stack_used"] < 24576
    res = run_mock([{"mock_stack": "30000"}], [CHUNK_A])
    assert res.returncode == H.EXIT_STACK, res.describe()
    assert res.summary["stack_overflow"] is True
    assert res.summary["max_stack_used"] >= 30000
    res = run_mock([{"mock_stack": "30000"}], [CHUNK_A], stack=65536)
    assert res.returncode == 0 and res.summary["stack_overflow"] is False


def test_thread_count_reported(run_mock):
    res = run_mock([{}], [CHUNK_A], env={"MOCK_LEAK_THREAD": "1"})
    assert res.returncode == 0
    assert res.summary["threads_at_end"] == 2


def test_log_levels(run_mock):
    inst = {"mock_log": "on"}
    res = run_mock([inst], [CHUNK_A], log_level="info")
    assert not res.logs("debug") and res.logs("info")
    res = run_mock([inst], [CHUNK_A], log_level="debug")
    assert any("flush tag=test.0 size=3" in l for l in res.logs("debug"))
    res = run_mock([dict(inst, log_level="debug")], [CHUNK_A], log_level="error")
    assert res.logs("debug") and res.logs("info")  # the instance's log_level wins
    res = run_mock([dict(inst, log_level="error")], [CHUNK_A], log_level="debug")
    assert not res.logs("debug") and not res.logs("info")


@pytest.mark.valgrind
@pytest.mark.skipif(not H.have_valgrind(), reason="valgrind is not installed")
def test_host_is_valgrind_clean(run_mock):
    res = run_mock([{"mock_result": "retry:1", "mock_log": "on"}, {}], [CHUNK_A, CHUNK_B],
                   flushes=2, threads=2, cycles=2, hot_reload=True, retry_delay_ms=1,
                   log_level="debug", valgrind=True, timeout=300)
    assert res.returncode == 0, res.describe()
    assert "ERROR SUMMARY: 0 errors" in res.valgrind_log, res.describe()


@pytest.mark.valgrind
@pytest.mark.skipif(not H.have_valgrind(), reason="valgrind is not installed")
@pytest.mark.parametrize("fault,evidence", [("MOCK_LEAK_MEM", "definitely lost"),
                                            ("MOCK_KEEP_DATA", "Invalid read")])
def test_valgrind_catches_plugin_faults(run_mock, fault, evidence):
    """The valgrind wiring judges the plugin: a leak or a chunk used after flush fails."""
    res = run_mock([{}], [CHUNK_A], valgrind=True, timeout=300, env={fault: "1"})
    assert res.returncode == 1, res.describe()
    assert evidence in res.valgrind_log


# ------------------------------------------------------------------------------------------------
# threads, the engine's timer input, logging and the reload order (issue 14 items 1 and 7,
# issue 15 §3), as Fluent Bit v5.1.1 does them (see the header of tests/host/flb_host.c)


def _flush_threads(res):
    """(instance, thread name) per flush, as the mock saw it on the thread that flushed."""
    return [(int(m.group(1)), m.group(2)) for m in
            re.finditer(r"^\[MOCK\] instance (\d+) flush thread=(.*)$", res.stderr, re.M)]


def test_thread_names_workers_and_engine(run_mock):
    report = {"mock_report_thread": "on"}
    res = run_mock([dict(report), dict(report, Workers=2)], [CHUNK_A], flushes=3, engine=True)
    assert res.returncode == 0, res.describe()
    seen = _flush_threads(res)
    assert sorted(seen) == [(0, "flb-pipeline")] * 3 + [(1, "flb-out-sigv4_h")] * 3, seen
    by_inst = {}
    for f in res.summary["flushes"]:
        by_inst.setdefault(f["instance"], []).append((f["thread"], f["thread_name"]))
    assert by_inst[0] == [(-1, "flb-pipeline")] * 3
    assert by_inst[1] == [(0, "flb-out-sigv4_h"), (1, "flb-out-sigv4_h"), (0, "flb-out-sigv4_h")]
    assert res.summary["workers"] == [0, 2] and res.summary["engine_flushes"] == 3
    # default (threads=None): Workers 1 for every instance without the key; Workers 0 wins
    res = run_mock([dict(report), dict(report, Workers=0)], [CHUNK_A], flushes=2)
    assert sorted(_flush_threads(res)) == [(0, "flb-out-sigv4_h")] * 2 + [(1, "flb-pipeline")] * 2
    assert res.summary["workers"] == [1, 0]


def test_bad_workers_value_refused(run_mock):
    res = run_mock([{"Workers": "two"}])
    assert res.returncode == H.EXIT_CONFIG and "invalid Workers" in res.stderr


def test_engine_flushes_one_at_a_time(run_mock):
    # two instances on the engine, each flush sleeping 150 ms: never two at once
    res = run_mock([{"mock_sleep_ms": 150}, {"mock_sleep_ms": 150}], [CHUNK_A], flushes=2,
                   engine=True)
    assert res.returncode == 0, res.describe()
    spans = sorted((f["t"], f["t"] + f["ms"][0]) for f in res.summary["flushes"])
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end - 1, spans


def test_ticks_missed_when_engine_flush_sleeps(run_mock):
    res = run_mock([{"mock_sleep_ms": 300}], [CHUNK_A], flushes=4, engine=True, tick_ms=50)
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert s["engine_max_stall_ms"] >= 300
    assert s["ticks_due"] == s["ticks_run"] + s["ticks_missed"]
    # each 300 ms flush swallows about 5 ticks of 50 ms (coalesced into one run)
    assert s["ticks_missed"] >= 12, s
    assert s["tick_max_late_ms"] >= 200, s


def test_no_ticks_missed_when_engine_flush_is_fast(run_mock):
    res = run_mock([{}], [CHUNK_A], flushes=10, engine=True, flush_interval_ms=100, run_ms=1000)
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert s["engine_ms"] >= 1000 and s["engine_flushes"] == 10
    assert s["ticks_due"] >= 10 and s["ticks_due"] == s["ticks_run"] + s["ticks_missed"]
    assert s["ticks_missed"] <= 1, s  # one, at most, for a busy machine's scheduling
    starts = [f["t"] for f in s["flushes"]]
    assert starts[-1] - starts[0] >= 850, starts  # one flush per --flush-interval-ms


def test_sleeping_worker_does_not_stall_the_engine(run_mock):
    res = run_mock([{"mock_sleep_ms": 300, "Workers": 1}], [CHUNK_A], flushes=3, engine=True,
                   tick_ms=50)
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert s["engine_flushes"] == 0 and s["engine_max_stall_ms"] == 0
    assert s["ticks_due"] >= 15 and s["ticks_missed"] <= 1, s


def test_engine_retry_waits_on_the_timer_queue(run_mock):
    # instance 0 always retries (300 ms apart), instance 1 flushes once: its flush runs in the
    # first retry's wait, and the engine keeps ticking through the retries
    res = run_mock([{"mock_result": "retry_always"}, {}], [CHUNK_A], flushes=1, engine=True,
                   retry_delay_ms=300, max_retries=3, tick_ms=50)
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert res.results() == [[2, 2, 2, 2], [1]]
    assert s["flushes"][0]["gave_up"] is True
    assert s["flushes"][1]["t"] - s["flushes"][0]["t"] < 150, s["flushes"]
    assert s["engine_ms"] >= 900  # 3 retry delays
    assert s["engine_max_stall_ms"] < 50
    assert s["ticks_due"] >= 18 and s["ticks_missed"] <= 1, s


def test_worker_retry_sleeps_on_the_worker(run_mock):
    res = run_mock([{"mock_result": "retry:2"}, {}], [CHUNK_A], flushes=1, threads=1,
                   retry_delay_ms=200)
    assert res.results() == [[2, 2, 1], [1]]
    assert res.summary["engine_flushes"] == 0


def test_log_file_takes_lines_of_host_threads_only(run_mock):
    log = {"mock_thread_log": "on"}
    res = run_mock([dict(log), dict(log, Workers=1)], [CHUNK_A], flushes=2, engine=True,
                   log_file=True)
    assert res.returncode == 0, res.describe()
    in_file = res.logs("info", source="file")
    on_stderr = res.logs("info", source="stderr")
    for i in (0, 1):
        assert in_file.count(f"instance {i} line from the flush") == 2, in_file
        assert f"instance {i} initialized" in in_file and f"instance {i} exit flushes=2" in in_file
        assert on_stderr.count(f"instance {i} line from a plugin thread") == 2, on_stderr
    assert not [l for l in in_file if "plugin thread" in l], in_file
    assert not [l for l in on_stderr if "from the flush" in l or "initialized" in l], on_stderr
    s = res.summary
    assert s["log_lines_foreign"] == 4
    assert s["log_lines_file"] == s["log_lines_pipeline"] == len(res.log_file_lines)
    assert s["log_file"].endswith("fluent-bit.log")


def test_without_log_file_every_line_goes_to_stderr(run_mock):
    res = run_mock([{"mock_thread_log": "on"}], [CHUNK_A], engine=True)
    assert res.returncode == 0, res.describe()
    assert res.log_file_lines == [] and res.summary["log_lines_file"] == 0
    lines = res.logs("info")
    assert "instance 0 line from the flush" in lines
    assert "instance 0 line from a plugin thread" in lines
    assert res.summary["log_lines_foreign"] == 1 and res.summary["log_lines_pipeline"] >= 3


def _sequence(res):
    return [l for l in res.stderr.splitlines() if l.startswith("[MOCK]") or "initialized" in l
            or " exit " in l]


def test_reload_order_new_first(run_mock):
    res = run_mock([{}], [CHUNK_A], cycles=3, reload_order="new-first")
    assert res.returncode == 0, res.describe()
    load = ["[MOCK] pre_register hot_reloading={hot}", "[MOCK] register preset_type=2",
            "[MOCK] live registrations={live} registered={reg}"]
    start = ["[HOST] [info] instance 0 initialized", "[MOCK] pre_run enable_hot_reload=1"]
    stop = ["[MOCK] pre_exit shutdown_by_hot_reloading={shut}",
            "[HOST] [info] instance 0 exit flushes=1", "[MOCK] unregister name=sigv4_http",
            "[MOCK] live registrations={live} registered={reg}"]
    want = [x.format(hot=0, live=1, reg=1) for x in load] + start
    for c in (1, 2):
        # the next load is registered while the old instance still runs ...
        want += [x.format(hot=1, live=2, reg=c + 1) for x in load]
        # ... then the old one is stopped, unregistered and dlclosed, then the new one inits
        want += [x.format(shut=1, live=1, reg=c + 1) for x in stop] + start
    want += [x.format(shut=0, live=0, reg=3) for x in stop]
    assert _sequence(res) == want
    s = res.summary
    assert s["reload_order"] == "new-first"
    assert s["reload_same_handle"] == [True, True]
    assert s["so_mapped_after_cycle"] == [True, True, False]
    # the mock's thread lives from the first registration to the last unregistration
    assert s["threads_after_cycle"] == [2, 2, 1] and s["threads_at_end"] == 1


def test_reload_order_old_first_unmaps_between_cycles(run_mock):
    res = run_mock([{}], [CHUNK_A], cycles=2, hot_reload=True)
    assert res.returncode == 0, res.describe()
    assert res.summary["reload_order"] == "old-first"
    assert res.summary["so_mapped_after_cycle"] == [False, False]
    assert res.summary["reload_same_handle"] == []
    seq = _sequence(res)
    assert seq.index("[MOCK] unregister name=sigv4_http") < seq.index(
        "[MOCK] pre_register hot_reloading=1")


@pytest.mark.valgrind
@pytest.mark.skipif(not H.have_valgrind(), reason="valgrind is not installed")
def test_host_is_valgrind_clean_engine_reload_log_file(run_mock):
    res = run_mock([{"mock_result": "retry:1", "mock_thread_log": "on"},
                    {"Workers": 2, "mock_thread_log": "on"}], [CHUNK_A, CHUNK_B], flushes=2,
                   engine=True, cycles=2, reload_order="new-first", retry_delay_ms=50,
                   log_file=True, run_ms=300, valgrind=True, timeout=300)
    assert res.returncode == 0, res.describe()
    assert "ERROR SUMMARY: 0 errors" in res.valgrind_log, res.describe()
    assert res.summary["threads_at_end"] == 1

"""Load/flush/unload cycles (issue 5, "Time and resources"; DESIGN §7): the C host repeats
Fluent Bit's whole sequence — dlopen, register, init, flush, exit, unregister, dlclose — many
times in one process (``--cycles``, what a hot reload does).

* Natively, 50 cycles with two instances and two flushing threads: every cycle delivers, no
  plugin thread survives any FLBPluginUnregister, the descriptor count after each dlclose is the
  same, and RSS does not grow with the cycles.
* Under valgrind memcheck (--leak-check=full), 50 cycles with a leak search after every cycle
  (host option --leak-check-cycles, memcheck's client requests): the bytes leaked (definitely +
  indirectly lost) after cycle 5 and after cycle 50 are equal — a leak that grows with cycles
  would show as a difference — and no memory error. This is the "5 cycles vs 50 cycles"
  comparison done in one process instead of two (half the valgrind time).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess

import pytest

from tests.conftest import CREDS_ENV
from tests.helpers import faults as F
from tests.helpers import host as H

CYCLES = 50


def _instances(rcv_a, rcv_b=None):
    out = [{"endpoint": rcv_a.endpoint("/logs"), "aws_region": "us-east-1", "aws_service": "es",
            "compress": "gzip"}]
    if rcv_b is not None:
        out.append({"endpoint": rcv_b.endpoint("/ingest"), "aws_region": "eu-west-1",
                    "aws_service": "execute-api", "format": "json", "compress": "zstd"})
    return out


def _check_cycles(s: dict, cycles: int, res=None):
    assert s["cycles"] == cycles
    assert all(f["final"] == H.FLB_OK for f in s["flushes"]), s["flushes"][:3]
    assert s["threads_before"] == 1
    left = [line for line in (res.stderr if res else "").splitlines()
            if "after cycle" in line]
    assert s["threads_after_cycle"] == [1] * cycles, (s["threads_after_cycle"], left[:10])
    assert s["threads_at_end"] == 1
    fds = s["fds_after_cycle"]
    assert len(set(fds)) == 1, f"descriptors after each cycle: {fds}"
    assert F.unexpected_fds(s) == [], f"left open after the last unregister: {s['fds_new_at_end']}"


def test_fifty_cycles_native(receiver_factory):
    rcv_a = receiver_factory(region="us-east-1", service="es", require_token=True)
    rcv_b = receiver_factory(region="eu-west-1", service="execute-api", require_token=True)
    chunk_list = F.numbered_chunks(4, 5)
    res = F.run_host(_instances(rcv_a, rcv_b), chunk_list, env=CREDS_ENV, threads=2,
                     cycles=CYCLES, max_retries=0, timeout=300)
    assert res.returncode == 0, res.describe()
    s = res.summary
    _check_cycles(s, CYCLES, res)
    # chunk c goes to instance c % 2, once per cycle
    for rcv, chunks in ((rcv_a, chunk_list[0::2]), (rcv_b, chunk_list[1::2])):
        got = [r["id"] for r in rcv.records()]
        want = sorted(r["id"] for c in chunks for r in c.records)
        assert sorted(set(got)) == sorted(want)
        assert len(got) == len(want) * CYCLES
    # RSS after each dlclose (the host reads it once per cycle, so the count does not depend on
    # how fast the cycles run). Allocator arenas and caches settle over the first ~20 cycles
    # (measured: about +7 MiB, then +-1 MiB of noise); after that the median of the last ten
    # cycles must not exceed the median of cycles 21-30 by more than allocator noise — a leak
    # of 160 KiB per cycle would.
    rss = s["rss_kb_after_cycle"]
    assert len(rss) == CYCLES and all(x > 0 for x in rss), f"RSS after each cycle: {rss}"
    warm = statistics.median(rss[20:30])
    end = statistics.median(rss[-10:])
    growth = end - warm
    print(f"{CYCLES} cycles in {res.elapsed:.1f}s; RSS {rss[0]} KiB after cycle 1, {warm} "
          f"(median) over cycles 21-30, {end} over the last ten (+{growth} KiB); fds per cycle "
          f"{s['fds_after_cycle'][0]}, left open {s['fds_new_at_end']}")
    assert growth < 4096, f"RSS grew by {growth} KiB over the last {CYCLES - 20} cycles: {rss}"


def _stripped_copy(so, tmp_path):
    """The plugin without DWARF (symbol names stay, for valgrind's stacks): valgrind reads the
    debug info at every dlopen, which is most of a cycle's cost with a debug build."""
    if shutil.which("objcopy") is None:
        return so
    out = tmp_path / "libflb_sigv4.so"
    p = subprocess.run(["objcopy", "--strip-debug", str(so), str(out)], capture_output=True)
    return out if p.returncode == 0 else so


def _leak_summary(log: str) -> dict:
    out = {}
    for kind in ("definitely", "indirectly", "possibly"):
        m = re.findall(rf"{kind} lost: ([\d,]+) bytes", log)
        out[kind] = int(m[-1].replace(",", "")) if m else 0
    return out


@pytest.mark.slow
@pytest.mark.valgrind
@pytest.mark.skipif(not H.have_valgrind(), reason="valgrind is not installed (CI installs it)")
def test_fifty_cycles_under_valgrind_no_growing_leak(receiver_factory, plugin_so, tmp_path):
    rcv = receiver_factory(region="us-east-1", service="es", require_token=True)
    so = _stripped_copy(plugin_so, tmp_path)
    res = F.run_host(_instances(rcv), F.numbered_chunks(1, 3), so=so, env=CREDS_ENV,
                     cycles=CYCLES, max_retries=0, valgrind=True,
                     extra_args=["--leak-check-cycles"], timeout=1500)
    log = res.valgrind_log or ""
    assert res.returncode == 0, res.describe()
    assert "ERROR SUMMARY: 0 errors" in log, log[-5000:]
    s = res.summary
    _check_cycles(s, CYCLES, res)
    assert len(rcv.records()) == 3 * CYCLES
    leaked = s["leaked_after_cycle"]
    assert len(leaked) == CYCLES and all(x >= 0 for x in leaked), \
        f"the host did not count leaks under valgrind: {leaked}"
    final = _leak_summary(log)
    print(f"leaked bytes (definite+indirect) after cycles 1, 5, 10, 50: {leaked[0]}, {leaked[4]}, "
          f"{leaked[9]}, {leaked[-1]}; at exit: {final}")
    assert leaked[-1] == leaked[4], (
        f"leaks grow with cycles: {leaked[4]} bytes after 5 cycles, {leaked[-1]} after "
        f"{CYCLES}; per cycle: {leaked}")
    assert sorted(leaked) == leaked or len(set(leaked)) == 1, leaked
    assert final["definitely"] == 0 or final["definitely"] <= leaked[4], final

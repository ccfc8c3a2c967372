"""The plugin (target/debug/libflb_sigv4.so) loaded by the C host exactly as Fluent Bit loads
it, shipping to loopback receivers that verify every SigV4 signature with botocore.

Covers DESIGN.md §1 (ABI, coroutine stack, withheld keys), §2 (properties), §3 (bodies),
§6 (signing and the return-code table) and §7 (several instances, threads, reload cycles).
"""

from __future__ import annotations

import collections
import re
import time

import certifi
import pytest

from tests.conftest import CREDENTIALS, CREDS_ENV, SECRET_KEY, SESSION_TOKEN
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers.receiver import Receiver, Response, parse_body, record_of

STACK = 24576  # Fluent Bit's older coro_stack_size; the plugin must fit in it

FORMATS = ("json_lines", "json", "json_stream", "msgpack")
COMPRESSIONS = ("none", "gzip", "zstd")
DATE_FORMATS = ("double", "epoch", "epoch_ms", "iso8601", "java_sql_timestamp")


# ------------------------------------------------------------------------------------------------
# helpers


def _ids(records):
    return collections.Counter(C.record_id(r) for r in records)


def assert_records(received, events, date_key="date", date_format="double", copies=1,
                   check_date=True):
    """Every expected event arrived exactly ``copies`` times, with the same content and (when
    ``check_date``) the right timestamp under ``date_key``; nothing else arrived."""
    by_id = C.index_by_id(events)
    counts = _ids(received)
    missing = [i for i in by_id if counts.get(i, 0) == 0]
    wrong = {i: n for i, n in counts.items() if n != copies}
    assert not missing, f"{len(missing)} records never arrived, e.g. {missing[:5]}"
    assert not wrong, f"records not delivered exactly {copies}x: {dict(list(wrong.items())[:5])}"
    assert set(counts) == set(by_id), f"unexpected records: {set(counts) - set(by_id)}"
    for rec in received:
        ev = by_id[rec["id"]]
        body = C.strip_key(rec, date_key)
        assert C.normalize(body) == C.normalize(ev.record), (
            f"record {rec['id']} differs:\n got  {body}\n want {ev.record}")
        if date_key is not None and check_date:
            assert date_key in rec, f"record {rec['id']} lacks the date key {date_key!r}"
            C.check_date(rec[date_key], ev, date_format)


def assert_all_signed(rcv: Receiver, *, token=True, encoding=False):
    reqs = rcv.requests()
    assert reqs, "the receiver got no request"
    for r in reqs:
        assert r.auth_ok, f"request #{r.index} {r.path}: {r.auth_reason}"
        signed = set(r.signed_headers)
        want = {"host", "x-amz-date", "x-amz-content-sha256", "content-type"}
        if token:
            want.add("x-amz-security-token")
            assert r.headers.get("x-amz-security-token") == SESSION_TOKEN
        if encoding:
            want.add("content-encoding")
        assert want <= signed, f"request #{r.index} signed {sorted(signed)}, wants {sorted(want)}"
        assert "content-length" not in signed
    assert rcv.rejections() == []


def flush_codes(res):
    return res.results()


# ------------------------------------------------------------------------------------------------
# §1 + §7: two instances, concurrent flushes on small coroutine stacks, reload cycles


def _two_instance_setup(receiver_factory, per_kind=25, mixed=2):
    rcv_a = receiver_factory(region="us-east-1", service="es", require_token=True)
    rcv_b = receiver_factory(region="eu-west-1", service="execute-api", require_token=True)
    chunk_list = []
    for form, ts in C.ALL_KINDS:
        for _inst in (0, 1):
            c = len(chunk_list)
            chunk_list.append(C.build_chunk(C.make_records(per_kind, prefix=f"c{c}", seed=c),
                                            form, ts, name=f"c{c}-{form}-{ts}.bin"))
    for _ in range(mixed * 2):
        c = len(chunk_list)
        chunk_list.append(C.build_mixed_chunk(C.make_records(per_kind, prefix=f"c{c}", seed=c),
                                              name=f"c{c}-mixed.bin"))
    instances = [
        {"endpoint": rcv_a.endpoint("/_bulk?pipeline=logs&refresh=false"), "format": "json_lines",
         "compress": "gzip", "aws_region": "us-east-1", "aws_service": "es",
         "Test_Tag": "app.a"},
        {"endpoint": rcv_b.endpoint("/prod/ingest"), "format": "json", "compress": "zstd",
         "aws_region": "eu-west-1", "aws_service": "execute-api",
         "json_date_key": "@timestamp", "json_date_format": "iso8601"},
    ]
    # default assignment: chunk c -> instance c % 2
    expected = {0: [], 1: []}
    for c, ch in enumerate(chunk_list):
        expected[c % 2].extend(ch.events)
    return rcv_a, rcv_b, instances, chunk_list, expected


def _check_two_instances(res, rcv_a, rcv_b, expected, cycles):
    assert res.returncode == 0, res.describe()
    s = res.summary
    assert s["cycles"] == cycles and s["instances"] == 2
    assert all(f["results"] == [H.FLB_OK] for f in s["flushes"]), res.describe()
    assert s["ok"] == len(s["flushes"]) and s["retry"] == 0 and s["error"] == 0
    assert s["stack_overflow"] is False and s["max_stack_used"] < STACK
    assert s["api_misuse"] == 0
    # no thread of the plugin survives FLBPluginUnregister (DESIGN §7)
    assert s["threads_before"] == 1
    assert s["threads_after_cycle"] == [1] * cycles, s["threads_after_cycle"]
    assert s["threads_at_end"] == 1
    # Fluent Bit keeps the description pointer: it must stay valid for the whole load
    assert s["description"] and s["description_stable"] is True
    # every record exactly once per cycle, at the right receiver, correctly signed
    assert_all_signed(rcv_a, encoding=True)
    assert_all_signed(rcv_b, encoding=True)
    assert all(r.path == "/_bulk?pipeline=logs&refresh=false" for r in rcv_a.requests())
    assert all(r.path == "/prod/ingest" for r in rcv_b.requests())
    assert all(r.content_encoding == "gzip" for r in rcv_a.requests())
    assert all(r.content_encoding == "zstd" for r in rcv_b.requests())
    assert_records(rcv_a.records(), expected[0], "date", "double", copies=cycles)
    assert_records(rcv_b.records(), expected[1], "@timestamp", "iso8601", copies=cycles)


@pytest.mark.slow
def test_two_instances_four_threads_two_cycles(run_plugin, receiver_factory):
    rcv_a, rcv_b, instances, chunk_list, expected = _two_instance_setup(receiver_factory)
    res = run_plugin(instances, chunk_list, threads=4, cycles=2, stack=STACK, max_retries=0)
    _check_two_instances(res, rcv_a, rcv_b, expected, cycles=2)


@pytest.mark.slow
def test_hot_reload_cycles(run_plugin, receiver_factory):
    rcv_a, rcv_b, instances, chunk_list, expected = _two_instance_setup(
        receiver_factory, per_kind=5, mixed=1)
    res = run_plugin(instances, chunk_list, threads=2, cycles=3, stack=STACK, hot_reload=True,
                     max_retries=0)
    _check_two_instances(res, rcv_a, rcv_b, expected, cycles=3)


# ------------------------------------------------------------------------------------------------
# §2/§3: every format x compression


@pytest.fixture(scope="module")
def format_matrix(plugin_so):
    rcv = Receiver(credentials=[CREDENTIALS], region="us-east-1", service="es",
                   require_token=True).start()
    chunk = C.build_mixed_chunk(C.make_records(24, prefix="fm", seed=7), name="fm.bin")
    instances = [{"endpoint": rcv.endpoint(f"/fm/{fmt}/{comp}"), "format": fmt, "compress": comp,
                  "aws_region": "us-east-1", "aws_service": "es"}
                 for fmt in FORMATS for comp in COMPRESSIONS]
    try:
        res = H.run_host(instances, [chunk], so=plugin_so, env=CREDS_ENV, flushes=1, threads=4,
                         stack=STACK, max_retries=0)
        yield rcv, res, chunk
    finally:
        rcv.stop()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_format_and_compression(format_matrix, fmt, comp):
    rcv, res, chunk = format_matrix
    assert res.returncode == 0, res.describe()
    path = f"/fm/{fmt}/{comp}"
    reqs = [r for r in rcv.requests() if r.path == path]
    assert reqs, f"nothing arrived at {path}\n{res.describe()}"
    i = [f"/fm/{f}/{c}" for f in FORMATS for c in COMPRESSIONS].index(path)
    assert res.summary["flushes"][i]["results"] == [H.FLB_OK]
    assert_all_signed(rcv, encoding=False)
    received = []
    for r in reqs:
        assert r.accepted, (r.outcome, r.parse_error)
        if comp == "none":
            assert r.content_encoding in (None, "identity")
        else:
            assert r.content_encoding == comp
            assert "content-encoding" in r.signed_headers
        ct = (r.headers.get("content-type") or "").lower()
        assert ("msgpack" in ct) if fmt == "msgpack" else ("json" in ct), ct
        # the exact framing of the format
        _, objs = parse_body(r.body, None, fmt)
        if fmt == "json_lines":
            assert r.body.endswith(b"\n") and b"\n\n" not in r.body
        elif fmt == "json":
            assert r.body.lstrip().startswith(b"[")
        elif fmt == "json_stream":
            assert not r.body.lstrip().startswith(b"[")
        received.extend(record_of(o) for o in objs)
    if fmt == "msgpack":
        # the date key, if any, is not JSON here: compare the records without it
        assert_records([C.strip_key(r, "date") for r in received], chunk.events, None)
    else:
        assert_records(received, chunk.events, "date", "double")


@pytest.fixture(scope="module")
def date_matrix(plugin_so):
    rcv = Receiver(credentials=[CREDENTIALS], region="us-east-1", service="es").start()
    chunk = C.build_mixed_chunk(C.make_records(12, prefix="dm", seed=3), name="dm.bin")
    base = {"aws_region": "us-east-1", "aws_service": "es", "format": "json_lines"}
    instances = [dict(base, endpoint=rcv.endpoint(f"/date/{df}"), json_date_format=df)
                 for df in DATE_FORMATS]
    instances.append(dict(base, endpoint=rcv.endpoint("/date/none"), json_date_key="false"))
    instances.append(dict(base, endpoint=rcv.endpoint("/date/key_ts"), json_date_key="ts",
                          json_date_format="epoch_ms"))
    instances.append(dict(base, endpoint=rcv.endpoint("/logkey"), log_key="log"))
    try:
        res = H.run_host(instances, [chunk], so=plugin_so, env=CREDS_ENV, flushes=1, threads=2,
                         stack=STACK, max_retries=0)
        yield rcv, res, chunk
    finally:
        rcv.stop()


@pytest.mark.parametrize("df", DATE_FORMATS)
def test_json_date_format(date_matrix, df):
    rcv, res, chunk = date_matrix
    assert res.returncode == 0, res.describe()
    assert_all_signed(rcv)
    assert_records(rcv.records(f"/date/{df}"), chunk.events, "date", df)


def test_json_date_key_false_and_renamed(date_matrix):
    rcv, res, chunk = date_matrix
    assert res.returncode == 0, res.describe()
    recs = rcv.records("/date/none")
    assert recs and all("date" not in r for r in recs)
    assert_records(recs, chunk.events, None)
    assert_records(rcv.records("/date/key_ts"), chunk.events, "ts", "epoch_ms")


def test_log_key_ships_only_that_field(date_matrix):
    rcv, res, chunk = date_matrix
    assert res.returncode == 0, res.describe()
    reqs = [r for r in rcv.requests() if r.path == "/logkey"]
    assert reqs and all(r.accepted for r in reqs)
    body = b"".join(r.body for r in reqs).decode("utf-8")
    for ev in chunk.events:
        assert f"#{ev.record['seq']}" in body  # each record's "log" value ends with #<seq>
    for other in ("kubernetes", "pod_name", '"seq"', '"ratio"'):
        assert other not in body, f"{other} leaked into a log_key body"


# ------------------------------------------------------------------------------------------------
# §2 headers, §1 withheld keys and TLS refusal


def test_headers_and_header_tag(run_plugin, receiver):
    chunk = C.build_chunk(C.make_records(5, prefix="h"))
    inst = {"endpoint": receiver.endpoint("/h"), "aws_region": "us-east-1", "aws_service": "es",
            "headers": "X-Custom-One: alpha; X-Custom-Two: beta gamma",
            "header_tag": "X-Fluent-Tag", "Test_Tag": "app.web"}
    res = run_plugin([inst], [chunk], stack=STACK)
    assert res.returncode == 0 and res.results() == [[H.FLB_OK]], res.describe()
    assert_all_signed(receiver)
    for r in receiver.requests():
        assert r.headers.get("x-custom-one") == "alpha"
        assert r.headers.get("x-custom-two") == "beta gamma"
        assert r.headers.get("x-fluent-tag") == "app.web"
    assert_records(receiver.records(), chunk.events)


def test_tls_on_is_refused_like_fluent_bit(run_plugin, receiver):
    inst = {"endpoint": receiver.endpoint("/t"), "tls": "on", "aws_region": "us-east-1",
            "aws_service": "es"}
    res = run_plugin([inst], [C.build_chunk(C.make_records(1))])
    assert res.returncode == H.EXIT_CONFIG, res.describe()
    assert "config error: plugin does not support TLS" in res.stderr
    assert receiver.requests() == []


def test_host_and_port_are_withheld(run_plugin, receiver):
    """out_http users write Host/Port: Fluent Bit's core swallows them, so the plugin sees no
    endpoint at all and must say which property is missing."""
    inst = {"host": "127.0.0.1", "port": str(receiver.port), "aws_region": "us-east-1",
            "aws_service": "es"}
    res = run_plugin([inst], [C.build_chunk(C.make_records(1))])
    assert res.returncode == H.EXIT_INIT, res.describe()
    assert "init failed for instance 0" in res.stderr
    assert any("endpoint" in l.lower() for l in res.logs("error")), res.describe()
    assert receiver.requests() == []


def test_a_host_without_ca_certificates_is_told_what_to_do(run_plugin, receiver, tmp_path):
    """A minimal image without CA certificates (here: the system bundle pointed elsewhere): init
    fails with the cause and what to install or set, not reqwest's bare "builder error"; with
    SSL_CERT_FILE pointing at a bundle, or tls_ca_file (the endpoint) together with
    AWS_CA_BUNDLE (AWS calls), it starts."""
    no_certs = {"SSL_CERT_FILE": str(tmp_path / "none.pem"), "SSL_CERT_DIR": str(tmp_path)}
    inst = {"endpoint": receiver.endpoint("/ca"), "aws_region": "us-east-1", "aws_service": "es"}
    res = run_plugin([inst], [C.build_chunk(C.make_records(1))], env=no_certs)
    assert res.returncode == H.EXIT_INIT, res.describe()
    errors = " ".join(res.logs("error"))
    for needle in ["No CA certificates were loaded", "ca-certificates", "SSL_CERT_FILE",
                   "tls_ca_file", "AWS_CA_BUNDLE"]:
        assert needle in errors, (needle, errors)
    assert receiver.requests() == []
    bundle = certifi.where()  # any PEM bundle (requests' dependency)
    for fix_inst, fix_env in (({**inst, "tls_ca_file": bundle}, {**no_certs, "AWS_CA_BUNDLE": bundle}),
                              (inst, {**no_certs, "SSL_CERT_FILE": bundle})):
        res = run_plugin([fix_inst], [C.build_chunk(C.make_records(1))], env=fix_env)
        assert res.returncode == 0, res.describe()
    assert len(receiver.requests()) == 2


def test_copied_out_http_and_opensearch_keys_warn_once_naming_the_equivalent(run_plugin, receiver):
    """Keys copied from out_http/out_opensearch sections are not silently ignored: one warning
    per key, naming what to use instead; start-up and delivery go on."""
    chunk = C.build_chunk(C.make_records(2, prefix="fk"))
    inst = {"endpoint": receiver.endpoint("/fk"), "aws_region": "us-east-1",
            "aws_service": "es", "URI": "/other", "Header": "X-Team: a",
            "AWS_Service_Name": "es", "Pipeline": "p1", "http_passwd": "pw-not-logged"}
    res = run_plugin([inst], [chunk], log_level="info")
    assert res.returncode == 0 and res.results() == [[H.FLB_OK]], res.describe()
    warnings = [l for l in res.logs("warn") if "is not a sigv4_http property" in l]
    for key, instead in [("uri", "use 'endpoint' instead"), ("header", "use 'headers' instead"),
                         ("aws_service_name", "use 'aws_service' instead"),
                         ("pipeline", "?pipeline=NAME"), ("http_passwd", "not supported")]:
        hits = [l for l in warnings if f"property '{key}' " in l]
        assert len(hits) == 1, (key, res.describe())
        assert instead in hits[0], hits[0]
    assert len(warnings) == 5, res.describe()
    assert "pw-not-logged" not in res.stderr
    assert [r.path for r in receiver.requests()] == ["/fk"]


def test_log_level_honoured_and_no_secrets_logged(run_plugin, receiver):
    chunk = C.build_chunk(C.make_records(3, prefix="ll"))
    inst = {"endpoint": receiver.endpoint("/ll"), "aws_region": "us-east-1", "aws_service": "es"}
    quiet = run_plugin([inst], [chunk], log_level="error")
    assert quiet.returncode == 0, quiet.describe()
    assert not quiet.logs("info") and not quiet.logs("debug") and not quiet.logs("warn")
    loud = run_plugin([inst], [chunk], log_level="trace")
    assert loud.returncode == 0, loud.describe()
    assert loud.logs("info"), "no info line (which credential provider was chosen) at start-up"
    assert any("environment" in l.lower() or "aws_access_key_id" in l.lower()
               for l in loud.logs("info")), loud.logs("info")
    for out in (quiet.stderr, loud.stderr, quiet.stdout, loud.stdout):
        assert SECRET_KEY not in out and SESSION_TOKEN not in out


# ------------------------------------------------------------------------------------------------
# §6: the return-code table


def _one_chunk(prefix, n=10):
    return C.build_chunk(C.make_records(n, prefix=prefix), name=f"{prefix}.bin")


def _inst(rcv, path="/rc", **kw):
    d = {"endpoint": rcv.endpoint(path), "aws_region": "us-east-1", "aws_service": "es",
         "Test_Tag": "rc.tag"}
    d.update(kw)
    return d


def test_200_is_ok(run_plugin, receiver):
    chunk = _one_chunk("ok")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert_records(receiver.records(), chunk.events)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_status_is_retry_then_delivered(run_plugin, receiver, status):
    receiver.script(Response(status=status, body='{"message":"transient"}'))
    chunk = _one_chunk(f"s{status}")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    # at-least-once: everything arrived in the accepted request(s)
    got = _ids(receiver.records())
    assert set(got) == {e.record["id"] for e in chunk.events}
    assert_all_signed(receiver)


def test_400_is_error_and_logged(run_plugin, receiver):
    receiver.script(Response(status=400, body='{"message":"bad mapping for field kubernetes"}'))
    res = run_plugin([_inst(receiver)], [_one_chunk("bad")], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_ERROR]], res.describe()
    assert receiver.records() == []
    errors = res.logs("error") + res.logs("warn")
    assert any("400" in l and "bad mapping" in l for l in errors), errors


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_error_with_location_logged(run_plugin, receiver, status):
    """Redirects are not followed (a signed POST must not wander) and retrying cannot help:
    FLB_ERROR at once, with the status and Location in the log (DESIGN §6)."""
    target = receiver.endpoint("/moved-here")
    receiver.script(Response(status=status, headers={"Location": target}))
    res = run_plugin([_inst(receiver)], [_one_chunk("redir")], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_ERROR]], res.describe()
    assert [r.path for r in receiver.requests()] == ["/rc"], receiver.requests()
    errors = [l for l in res.logs("error") if f"HTTP {status}" in l]
    assert len(errors) == 1 and target in errors[0] and "not followed" in errors[0], \
        res.describe()


def test_403_without_token_message_is_retry_and_logged(run_plugin, receiver):
    body = ('{"message":"User: arn:aws:iam::123456789012:user/test is not authorized to '
            'perform: es:ESHttpPost"}')
    receiver.script(Response(status=403, body=body))
    chunk = _one_chunk("forbidden")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    assert any("403" in l and "not authorized" in l for l in res.logs("error")), res.logs()
    assert set(_ids(receiver.records())) == {e.record["id"] for e in chunk.events}


def test_403_expired_token_refreshes_and_resends_once(run_plugin, receiver):
    receiver.script(Response(status=403, body='{"__type":"ExpiredTokenException",'
                                              '"message":"The security token included in the '
                                              'request is expired"}'))
    chunk = _one_chunk("expired")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=3)
    # one refresh and one re-send inside the same flush (DESIGN §4)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert len(receiver.requests()) == 2
    assert_records(receiver.records(), chunk.events)


@pytest.mark.parametrize("how", ["before", "mid_body"])
def test_connection_reset_is_retry(run_plugin, receiver, how):
    receiver.script(Response(status=500, reset=how))
    chunk = _one_chunk(f"reset{how}")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    assert set(_ids(receiver.records())) == {e.record["id"] for e in chunk.events}


@pytest.mark.slow
def test_stall_past_timeout_is_retry(run_plugin, receiver):
    receiver.script(Response(stall=6))
    chunk = _one_chunk("stall")
    t0 = time.monotonic()
    res = run_plugin([_inst(receiver, timeout="2s")], [chunk], stack=STACK, max_retries=3)
    elapsed = time.monotonic() - t0
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    assert elapsed < 6, f"the 2s timeout was not honoured ({elapsed:.1f}s)"
    assert set(_ids(receiver.records())) == {e.record["id"] for e in chunk.events}


def test_413_splits_and_delivers_everything(run_plugin, receiver_factory):
    rcv = receiver_factory(region="us-east-1", service="es", max_body_bytes=6000)
    chunk = _one_chunk("split", n=40)  # ~25 KB of JSON
    res = run_plugin([_inst(rcv, compress="none")], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert any(r.status == 413 for r in rcv.requests())
    assert_records(rcv.records(), chunk.events)
    assert_all_signed(rcv)


def test_413_single_record_too_big_is_dropped_and_logged(run_plugin, receiver_factory):
    rcv = receiver_factory(region="us-east-1", service="es", max_body_bytes=6000)
    recs = C.make_records(20, prefix="big")
    recs[7] = C.make_record(7, prefix="big", pad=10000)
    chunk = C.build_chunk(recs, name="big.bin")
    inst = _inst(rcv, compress="none", Test_Tag="big.tag")
    res = run_plugin([inst], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    rest = [e for e in chunk.events if e.record["id"] != "big-7"]
    assert_records(rcv.records(), rest)
    logs = res.logs("error") + res.logs("warn")
    drops = [l for l in logs if "413" in l and "big.tag" in l and "dropped" in l]
    assert len(drops) == 1, f"the drop was not logged (once) with the tag: {logs}"
    # ... and with the record's size: its JSON line is the 10000-byte pad plus the other fields
    sizes = [int(n) for n in re.findall(r"(\d+) bytes", drops[0])]
    assert any(10000 < n < 12000 for n in sizes), f"no record size in {drops[0]!r}"


def test_split_with_failure_does_not_resend_delivered_parts(run_plugin, receiver_factory):
    def fail_second(req):
        return Response(status=500, body='{"message":"boom"}') if req.index == 1 else None

    rcv = receiver_factory(region="us-east-1", service="es", responder=fail_second)
    chunk = _one_chunk("part", n=30)
    inst = _inst(rcv, compress="none", max_request_bytes="4000")
    res = run_plugin([inst], [chunk], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    reqs = rcv.requests()
    assert len(reqs) >= 4, "max_request_bytes did not split the chunk"
    assert all(len(r.raw_body) <= 4000 for r in reqs), [len(r.raw_body) for r in reqs]
    assert reqs[1].status == 500
    # each record exactly once among the accepted requests: the first part was not re-sent
    assert_records(rcv.records(), chunk.events)


@pytest.mark.parametrize("damage", ["trailing_garbage", "truncated"])
def test_invalid_msgpack_is_error_with_offset(run_plugin, receiver, damage):
    good = _one_chunk("inv", n=3).data
    data = good + b"\xc1\xc1\xc1" if damage == "trailing_garbage" else good[:-5]
    res = run_plugin([_inst(receiver)], [data], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_ERROR]], res.describe()
    assert any("offset" in l.lower() for l in res.logs("error") + res.logs("warn")), res.logs()


# ------------------------------------------------------------------------------------------------
# valgrind


@pytest.mark.slow
@pytest.mark.valgrind
@pytest.mark.skipif(not H.have_valgrind(), reason="valgrind is not installed (CI installs it)")
def test_two_instances_under_valgrind(run_plugin, receiver_factory):
    rcv_a, rcv_b, instances, chunk_list, expected = _two_instance_setup(
        receiver_factory, per_kind=4, mixed=1)
    res = run_plugin(instances, chunk_list, threads=4, cycles=2, stack=STACK, max_retries=0,
                     valgrind=True, timeout=600)
    assert res.returncode == 0, res.describe()
    assert "ERROR SUMMARY: 0 errors" in (res.valgrind_log or ""), res.describe()
    _check_two_instances(res, rcv_a, rcv_b, expected, cycles=2)

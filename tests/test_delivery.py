"""Delivery end to end through the C host (DESIGN.md §6, issue 2 items 5–7): delivered-parts
bookkeeping of split chunks, clock-skew correction, the return-code rows not covered by
tests/test_plugin_host.py (401, repeated ExpiredToken, TLS failure, 413 then 500), the TLS
options (CA file, mutual TLS, tls_verify off), keep-alive reuse across flushes, ``aws_auth off``,
a panic in flush (the ``FLB_SIGV4_TEST_PANIC_TAG`` knob) and the fluent-bit-config/ examples.

Every receiver is on loopback (or inside a private network namespace) and checks each
signature with botocore.
"""

from __future__ import annotations

import collections
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers import netns as netns_mod
from tests.helpers.faults import wait_until
from tests.helpers.receiver import Receiver, Response
from tests.helpers.tls import make_openssl_req_x509, make_pki
from tests.test_plugin_host import STACK, assert_all_signed, assert_records

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "fluent-bit-config"


def _chunk(prefix, n=10, **kw):
    return C.build_chunk(C.make_records(n, prefix=prefix, **kw), name=f"{prefix}.bin")


def _inst(rcv, path="/d", **kw):
    d = {"endpoint": rcv.endpoint(path), "aws_region": "us-east-1", "aws_service": "es",
         "Test_Tag": "dl.tag"}
    d.update(kw)
    return d


def _same_record_chunk(n, name="same.bin"):
    """n copies of one record with one integer timestamp: every event has the same bytes."""
    rec = {"id": "same", "msg": "x" * 280}
    data = b"".join(C.encode_event(rec, C.BASE_TS, 0, "v2", "int") for _ in range(n))
    return C.Chunk(data, [C.Event(C.BASE_TS, 0, rec, "v2", "int")] * n, name)


# ------------------------------------------------------------------------------------------------
# delivered-parts bookkeeping (DESIGN §6: not re-sending delivered parts of a retried chunk)


def test_identical_parts_of_one_chunk_are_all_delivered(run_plugin, receiver):
    """Parts with the same bytes at different places of the chunk are different parts."""
    chunk = _same_record_chunk(12)  # ~325 bytes a line: 3 lines a 1024-byte request
    res = run_plugin([_inst(receiver, compress="none", max_request_bytes="1024")], [chunk],
                     stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    reqs = receiver.requests()
    assert len(reqs) >= 2 and all(r.accepted for r in reqs), [r.outcome for r in reqs]
    bodies = collections.Counter(r.raw_body for r in reqs)
    assert max(bodies.values()) >= 2, "the test needs parts with identical bytes"
    assert len(receiver.records()) == 12, [len(r.records) for r in reqs]
    assert_all_signed(receiver)


def test_identical_parts_retry_sends_only_the_missing_ones(run_plugin, receiver_factory):
    """Part 2 (same bytes as part 1) fails: the retry skips part 1 only, not part 2."""
    def fail_second(req):
        return Response(status=500, body='{"message":"boom"}') if req.index == 1 else None

    rcv = receiver_factory(region="us-east-1", service="es", responder=fail_second)
    chunk = _same_record_chunk(12)
    res = run_plugin([_inst(rcv, compress="none", max_request_bytes="1024")], [chunk],
                     stack=STACK, max_retries=2)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    reqs = rcv.requests()
    assert reqs[1].status == 500 and reqs[0].raw_body == reqs[1].raw_body
    # each of the 12 copies exactly once among the accepted requests
    assert len(rcv.records()) == 12, [(r.outcome, len(r.records)) for r in reqs]
    per_part = len(reqs[0].records)
    assert len(reqs) == 1 + 1 + (12 // per_part - 1), [r.outcome for r in reqs]


@pytest.mark.parametrize("first_retried", [False, True])
def test_identical_chunks_one_after_the_other_both_delivered(run_plugin, receiver_factory,
                                                             first_retried):
    """The same bytes flushed twice (same tag) are two chunks: the second is sent in full even
    when the first needed a retry after delivering some parts."""
    def fail_second(req):
        if first_retried and req.index == 1:
            return Response(status=503, body='{"message":"busy"}')
        return None

    rcv = receiver_factory(region="us-east-1", service="es", responder=fail_second)
    chunk = _chunk("twice", n=30)
    res = run_plugin([_inst(rcv, compress="none", max_request_bytes="4000")], [chunk],
                     flushes=2, threads=1, stack=STACK, max_retries=2)
    want = [[H.FLB_RETRY, H.FLB_OK], [H.FLB_OK]] if first_retried else [[H.FLB_OK], [H.FLB_OK]]
    assert res.results() == want, res.describe()
    assert len(rcv.requests()) >= 4, "max_request_bytes did not split the chunk"
    assert_records(rcv.records(), chunk.events, copies=2)
    assert_all_signed(rcv, token=False)


@pytest.mark.parametrize("statuses,want", [
    ((400, None), H.FLB_OK),        # one part dropped for good, the other accepted
    ((None, 400), H.FLB_OK),
    ((400, 400), H.FLB_ERROR),      # nothing accepted
    ((400, 503), H.FLB_RETRY),      # anything retryable wins
])
def test_one_result_for_parts_that_end_differently(run_plugin, receiver_factory, statuses,
                                                   want):
    """DESIGN §6: anything retryable → FLB_RETRY; else FLB_OK with what was dropped logged;
    FLB_ERROR only when nothing of the chunk was accepted. (Before, one rejected part made the
    whole chunk FLB_ERROR although the other part was delivered.)"""
    def respond(req):
        if req.index < len(statuses) and statuses[req.index]:
            return Response(status=statuses[req.index], body='{"message":"no"}')
        return None

    rcv = receiver_factory(region="us-east-1", service="es", responder=respond)
    chunk = _same_record_chunk(6)  # ~325 bytes a line: 3 lines a 1024-byte request, 2 parts
    res = run_plugin([_inst(rcv, compress="none", max_request_bytes="1024")], [chunk],
                     stack=STACK, max_retries=0)
    assert res.results()[0][0] == want, res.describe()
    assert len(rcv.requests()) == 2, [r.outcome for r in rcv.requests()]
    if 400 in statuses and want == H.FLB_OK:
        assert any("they are dropped" in l for l in res.logs("error")), res.describe()


def test_user_content_type_replaces_the_formats_and_is_signed(run_plugin, receiver):
    """``headers Content-Type: application/json`` (OpenSearch Ingestion wants it) is the one
    Content-Type sent, and it is signed (before, it went out next to the plugin's own and the
    signature failed: 403 until Retry_Limit)."""
    chunk = _chunk("ctype", n=3)
    res = run_plugin([_inst(receiver, headers="Content-Type: application/json; X-Team: a")],
                     [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    (req,) = receiver.requests()
    ctypes = [v for k, v in req.header_list if k.lower() == "content-type"]
    assert ctypes == ["application/json"], req.header_list
    assert "content-type" in req.signed_headers
    assert req.headers.get("x-team") == "a"
    assert_all_signed(receiver)


# ------------------------------------------------------------------------------------------------
# clock skew (DESIGN §6)


def _skew_case(style, skew):
    return pytest.param(style, skew, id=f"{style}{'+' if skew > 0 else ''}{skew}")


@pytest.mark.parametrize("style,skew", [
    _skew_case("json", 3600),
    _skew_case("xml", 3600),
    # the client's clock ahead: AWS says "Signature not yet current"
    _skew_case("json", -3600),
])
def test_clock_skew_corrected_from_date_header(run_plugin, receiver_factory, style, skew):
    rcv = receiver_factory(region="us-east-1", service="es", require_token=True,
                           clock_skew=skew, skew_style=style)
    chunk_list = [_chunk(f"skew{i}", n=5) for i in range(3)]
    res = run_plugin([_inst(rcv)], chunk_list, threads=1, stack=STACK, max_retries=0)
    # the first flush: 403, offset corrected from Date, one re-send -> FLB_OK; later flushes
    # are signed with the corrected clock from the start
    assert res.results() == [[H.FLB_OK]] * 3, res.describe()
    reqs = rcv.requests()
    assert [r.outcome for r in reqs] == ["skewed", "accepted", "accepted", "accepted"], \
        [(r.outcome, r.amz_date_skew) for r in reqs]
    assert abs(reqs[0].amz_date_skew + skew) < 60
    for r in reqs[1:]:
        assert abs(r.amz_date_skew) < 10, f"request #{r.index} signed {r.amz_date_skew:.0f}s off"
    assert_all_signed(rcv)  # every request, the refused one too, is validly signed
    assert_records(rcv.records(), [e for c in chunk_list for e in c.events])
    warns = res.logs("warn")
    m = [re.search(r"clock offset of (-?\d+) ms", l) for l in warns]
    offsets = [int(x.group(1)) for x in m if x]
    assert len(offsets) == 1, warns
    assert abs(offsets[0] - skew * 1000) < 5000, offsets


def test_clock_skew_without_date_header_is_retry_after_one_resend(run_plugin, receiver_factory):
    rcv = receiver_factory(region="us-east-1", service="es", clock_skew=3600, send_date=False)
    chunk = _chunk("skewnodate", n=5)
    res = run_plugin([_inst(rcv)], [chunk], stack=STACK, max_retries=1)
    assert res.results() == [[H.FLB_RETRY, H.FLB_RETRY]], res.describe()
    reqs = rcv.requests()
    # one re-send per flush, no more
    assert [r.outcome for r in reqs] == ["skewed"] * 4, [r.outcome for r in reqs]
    assert any("no usable Date header" in l for l in res.logs("warn")), res.logs()
    assert any("403" in l and "Signature expired" in l for l in res.logs("error")), res.logs()
    assert rcv.records() == []


# ------------------------------------------------------------------------------------------------
# return-code rows


def test_plain_401_is_retry_and_logged(run_plugin, receiver):
    receiver.script(Response(status=401, body='{"message":"Unauthorized: no access to '
                                               'scope logs-writer-7"}'))
    chunk = _chunk("u401")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=1)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    # no refresh/re-send inside the flush for a plain 401
    assert [r.status for r in receiver.requests()] == [401, 200]
    errors = res.logs("error")
    assert any("401" in l and "no access to scope logs-writer-7" in l for l in errors), errors
    assert_records(receiver.records(), chunk.events)


def test_403_expired_token_twice_is_one_refresh_then_retry(run_plugin, receiver):
    expired = ('{"__type":"ExpiredTokenException","message":"The security token included in '
               'the request is expired"}')
    receiver.script(Response(status=403, body=expired), Response(status=403, body=expired))
    chunk = _chunk("exp2")
    res = run_plugin([_inst(receiver)], [chunk], stack=STACK, max_retries=1)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    assert [r.status for r in receiver.requests()] == [403, 403, 200]
    refreshes = [l for l in res.logs("info") if "refreshing credentials" in l]
    assert len(refreshes) == 1, res.logs()
    assert any("403" in l and "ExpiredTokenException" in l for l in res.logs("error")), res.logs()
    assert_records(receiver.records(), chunk.events)


def test_413_split_then_500_is_retry_and_resends_only_the_rest(run_plugin, receiver_factory):
    limit = 6000
    fitting = []

    def second_fitting_part_fails(req):
        if len(req.raw_body) <= limit:
            fitting.append(req.index)
            if len(fitting) == 2:
                return Response(status=500, body='{"message":"boom after split"}')
        return None  # too big: the receiver's max_body_bytes answers 413

    rcv = receiver_factory(region="us-east-1", service="es", max_body_bytes=limit,
                           responder=second_fitting_part_fails)
    chunk = _chunk("s413", n=40)  # ~25 KB of JSON
    res = run_plugin([_inst(rcv, compress="none")], [chunk], stack=STACK, max_retries=2)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    statuses = [r.status for r in rcv.requests()]
    assert 413 in statuses and 500 in statuses, statuses
    # the part delivered before the 500 was not sent again by the retry
    assert_records(rcv.records(), chunk.events)
    assert_all_signed(rcv)


# ------------------------------------------------------------------------------------------------
# TLS (DESIGN §2 endpoint options, §6 TLS failure row, §8 verification on by default)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_receiver(receiver_factory, cert, key, **kw):
    return receiver_factory(region="us-east-1", service="es", require_token=True,
                            tls=(cert, key), **kw)


def test_https_with_tls_ca_file_delivers_signed(run_plugin, receiver_factory, pki):
    rcv = _tls_receiver(receiver_factory, pki["server_cert"], pki["server_key"])
    assert rcv.url.startswith("https://")
    chunk = _chunk("tlsca")
    res = run_plugin([_inst(rcv, tls_ca_file=pki["ca"], compress="gzip")], [chunk], stack=STACK,
                     max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert_all_signed(rcv, encoding=True)  # botocore checks the signature made over TLS
    assert_records(rcv.records(), chunk.events)
    assert not any("tls_verify is off" in l for l in res.logs("warn"))


def test_https_self_signed_with_verification_on_is_retry(run_plugin, receiver_factory, pki):
    rcv = _tls_receiver(receiver_factory, pki["self_signed_cert"], pki["self_signed_key"])
    res = run_plugin([_inst(rcv)], [_chunk("tlsbad")], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_RETRY]], res.describe()
    assert rcv.requests() == []
    warns = res.logs("warn")
    assert any("chunk kept for retry" in l and re.search(r"certificate|UnknownIssuer|tls", l, re.I)
               for l in warns), warns
    # the line says what it means and how to fix it
    assert any("UnknownIssuer" in l and "not signed by a CA this host trusts" in l
               and "set tls_ca_file" in l for l in warns), warns
    assert wait_until(lambda: rcv.tls_errors, 5), "the receiver saw no failed handshake"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_openssl_req_x509_certificate_log_says_what_it_means_and_the_fix(
        run_plugin, receiver_factory, tmp_path):
    """`openssl req -x509` marks its certificate CA:TRUE; rustls refuses a CA certificate as a
    server's (CaUsedAsEndEntity) even when tls_ca_file trusts it. The log line says what that
    means and both fixes, and the fix `tls_verify off` delivers."""
    x509 = make_openssl_req_x509(tmp_path)
    rcv = _tls_receiver(receiver_factory, x509["cert"], x509["key"])
    res = run_plugin([_inst(rcv, tls_ca_file=x509["cert"])], [_chunk("x509")], stack=STACK,
                     max_retries=0)
    assert res.results() == [[H.FLB_RETRY]], res.describe()
    lines = [l for l in res.logs("warn") if "CaUsedAsEndEntity" in l]
    assert len(lines) == 1, res.describe()
    for needle in ("chunk kept for retry",
                   "the server's certificate is a CA certificate used as a server certificate",
                   "openssl req -x509", "leaf certificate signed by a CA",
                   "set tls_ca_file to the CA", "or set tls_verify off"):
        assert needle in lines[0], (needle, lines[0])
    assert rcv.requests() == []
    chunk = _chunk("x509off")
    res = run_plugin([_inst(rcv, tls_verify="off")], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert_records(rcv.records(), chunk.events)


def test_certificate_for_another_name_log_says_so(run_plugin, receiver_factory, tmp_path):
    pki = make_pki(tmp_path / "pki", ips=("10.9.9.9",), names=("other.example",))
    rcv = _tls_receiver(receiver_factory, pki["server_cert"], pki["server_key"])
    res = run_plugin([_inst(rcv, tls_ca_file=pki["ca"])], [_chunk("tlsname")], stack=STACK,
                     max_retries=0)
    assert res.results() == [[H.FLB_RETRY]], res.describe()
    assert any("not valid for name" in l and "does not name the endpoint's host" in l
               for l in res.logs("warn")), res.describe()


def test_mutual_tls_with_client_certificate(run_plugin, receiver_factory, pki):
    rcv = _tls_receiver(receiver_factory, pki["server_cert"], pki["server_key"],
                        tls_client_ca=pki["ca"])
    chunk = _chunk("mtls")
    inst = _inst(rcv, tls_ca_file=pki["ca"], tls_crt_file=pki["client_cert"],
                 tls_key_file=pki["client_key"])
    res = run_plugin([inst], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert all(r.tls_peer_cn == "flbt client" for r in rcv.requests())
    assert_all_signed(rcv)
    assert_records(rcv.records(), chunk.events)


def test_mutual_tls_without_client_certificate_is_retry(run_plugin, receiver_factory, pki):
    rcv = _tls_receiver(receiver_factory, pki["server_cert"], pki["server_key"],
                        tls_client_ca=pki["ca"])
    res = run_plugin([_inst(rcv, tls_ca_file=pki["ca"])], [_chunk("nomtls")], stack=STACK,
                     max_retries=0)
    assert res.results() == [[H.FLB_RETRY]], res.describe()
    assert rcv.requests() == []
    assert wait_until(lambda: rcv.tls_errors, 5), "the receiver saw no refused handshake"
    warns = res.logs("warn")
    assert any("chunk kept for retry" in l and re.search(r"CertificateRequired|certificate", l)
               for l in warns), warns


def test_tls_verify_off_accepts_self_signed_and_warns(run_plugin, receiver_factory, pki):
    rcv = _tls_receiver(receiver_factory, pki["self_signed_cert"], pki["self_signed_key"])
    chunk = _chunk("noverify")
    res = run_plugin([_inst(rcv, tls_verify="off")], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert any("tls_verify is off" in l for l in res.logs("warn")), res.logs()
    assert_all_signed(rcv)
    assert_records(rcv.records(), chunk.events)


# ------------------------------------------------------------------------------------------------
# keep-alive, aws_auth off


def test_keep_alive_one_connection_across_flushes(run_plugin, receiver):
    chunk_list = [_chunk(f"ka{i}", n=4) for i in range(5)]
    res = run_plugin([_inst(receiver)], chunk_list, threads=1, stack=STACK, max_retries=0,
                     flush_interval_ms=100)
    assert res.results() == [[H.FLB_OK]] * 5, res.describe()
    reqs = receiver.requests()
    assert len(reqs) == 5
    assert receiver.connections == 1, (receiver.connections, [r.peer for r in reqs])
    assert len({r.peer for r in reqs}) == 1 and {r.connection for r in reqs} == {0}
    assert_records(receiver.records(), [e for c in chunk_list for e in c.events])


def test_aws_auth_off_sends_unsigned(run_plugin, receiver_factory):
    rcv = receiver_factory(auth=False)
    chunk = _chunk("noauth")
    inst = {"endpoint": rcv.endpoint("/open"), "aws_auth": "off", "Test_Tag": "open.tag"}
    res = run_plugin([inst], [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    reqs = rcv.requests()
    assert reqs
    for r in reqs:
        names = {k.lower() for k, _ in r.header_list}
        assert "authorization" not in names, names
        assert not [n for n in names if n.startswith("x-amz-")], names
    assert any("aws_auth off" in l for l in res.logs("info")), res.logs()
    assert_records(rcv.records(), chunk.events)


# ------------------------------------------------------------------------------------------------
# a panic inside flush (DESIGN §7; knob FLB_SIGV4_TEST_PANIC_TAG, README "Test knobs")


def test_panic_in_flush_is_retry_and_logged(run_plugin, receiver):
    boom = _chunk("boom", n=3)
    calm = _chunk("calm", n=3)
    instances = [_inst(receiver, "/boom", Test_Tag="boom.tag"),
                 _inst(receiver, "/calm", Test_Tag="calm.tag")]
    # threads=1: boom's flush (and its retry) runs first, then the normal flush
    # the knob exists only in the test-knobs build, not in the release .so the suite ships
    res = run_plugin(instances, [boom, calm], threads=1, stack=STACK, max_retries=1,
                     env={"FLB_SIGV4_TEST_PANIC_TAG": "boom.tag"}, so=H.knobs_so())
    assert res.returncode == 0, res.describe()
    assert res.results() == [[H.FLB_RETRY, H.FLB_RETRY], [H.FLB_OK]], res.describe()
    errors = res.logs("error")
    panics = [l for l in errors if "panicked" in l and "FLB_SIGV4_TEST_PANIC_TAG" in l]
    assert len(panics) == 2 and all("kept for retry" in l for l in panics), errors
    assert all(r.path == "/calm" for r in receiver.requests())
    assert_records(receiver.records(), calm.events)
    assert res.summary["threads_at_end"] == 1


def test_panic_knob_unset_flushes_normally(run_plugin, receiver):
    chunk = _chunk("nopanic", n=3)
    res = run_plugin([_inst(receiver, Test_Tag="boom.tag")], [chunk], stack=STACK,
                     max_retries=0, env={"FLB_SIGV4_TEST_PANIC_TAG": ""}, so=H.knobs_so())
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert_records(receiver.records(), chunk.events)


# ------------------------------------------------------------------------------------------------
# fluent-bit-config/ examples: init with exactly their [OUTPUT] properties


def _classic_outputs(path: Path) -> list:
    """The sigv4_http [OUTPUT] sections of a classic config, as (key, value) lists, parsed as
    Fluent Bit does (one key and the rest of the line; '#' lines are comments)."""
    outs, cur = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            cur = [] if line.upper() == "[OUTPUT]" else None
            if cur is not None:
                outs.append(cur)
            continue
        if cur is not None:
            key, _, val = line.partition(" ")
            cur.append((key, val.strip()))
    return [o for o in outs if any(k.lower() == "name" and v == "sigv4_http" for k, v in o)]


def _yaml_outputs(path: Path) -> list:
    doc = yaml.safe_load(path.read_text())
    outs = doc["pipeline"]["outputs"]
    return [[(str(k), str(v)) for k, v in o.items()] for o in outs if o.get("name") == "sigv4_http"]


EXAMPLE_CASES = {
    # file: (region, service, local endpoint port or None)
    "fluent-bit.conf": ("us-east-1", "execute-api", 8080),
    "fluent-bit.yaml": ("us-east-1", "execute-api", 8080),
    "opensearch.conf": ("us-east-1", "es", None),  # both inferred from the host name
    "opensearch-serverless.conf": ("us-east-1", "aoss", None),  # both inferred
    "apigateway.conf": ("eu-west-1", "execute-api", None),  # both inferred
}


def test_examples_cover_every_config_file():
    files = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".conf", ".yaml")}
    assert files - {"plugins.conf"} == set(EXAMPLE_CASES), files
    plugins = (EXAMPLES / "plugins.conf").read_text()
    assert re.search(r"^\s*\[PLUGINS\]\s*$", plugins, re.M), plugins
    m = re.search(r"^\s*Path\s+(\S+)\s*$", plugins, re.M)
    assert m and Path(m.group(1)).name == H.plugin_so(build=False).name, plugins


@pytest.mark.parametrize("name", sorted(EXAMPLE_CASES))
def test_example_config_inits_and_delivers(name, plugin_so, tmp_path):
    why = netns_mod.unavailable_reason()
    if why:
        pytest.skip(why)
    region, service, port = EXAMPLE_CASES[name]
    path = EXAMPLES / name
    outputs = _yaml_outputs(path) if name.endswith(".yaml") else _classic_outputs(path)
    assert len(outputs) == 1, outputs
    props = outputs[0]
    # every example flushes on worker threads, never on Fluent Bit's engine thread (issue 14)
    assert dict((k.lower(), v) for k, v in props).get("workers") == "2", props
    endpoint = dict((k.lower(), v) for k, v in props)["endpoint"]
    local = endpoint.startswith("http://127.0.0.1:")
    assert local == (port is not None), endpoint
    config = H.write_config(tmp_path / "example.conf", [props])
    # Only lo exists in the namespace: nothing can leave it, whatever the example points at.
    with netns_mod.NetNS(addrs=()) as ns:
        rcv = None
        chunk_list = []
        if local:
            assert endpoint.startswith(f"http://127.0.0.1:{port}/"), endpoint
            rcv = ns.call(lambda: Receiver(credentials=[CREDENTIALS], region=region,
                                           service=service, require_token=True,
                                           port=port).start())
            chunk_list = [C.build_mixed_chunk(C.make_records(8, prefix="ex"), name="ex.bin")]
        try:
            res = ns.run_host(config, chunk_list, so=plugin_so, env=CREDS_ENV, stack=STACK,
                              max_retries=0)
        finally:
            if rcv is not None:
                rcv.stop()
    assert res.returncode == 0, res.describe()
    infos = res.logs("info")
    assert any(f"region '{region}' service '{service}'" in l for l in infos), infos
    assert any("credentials provider 'environment' chosen" in l for l in infos), infos
    if not local:
        assert res.results() == []
        return
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert_all_signed(rcv, encoding=True)
    assert all(r.content_encoding == "gzip" and r.path == "/logs" for r in rcv.requests())
    assert_records(rcv.records(), chunk_list[0].events, "date", "iso8601")

"""Self-tests of the Python helpers: the verifying receiver must accept what botocore signs and
refuse what it should, and the chunk builder must produce what Fluent Bit produces."""

from __future__ import annotations

import gzip
import hashlib
import json
import time

import msgpack
import pytest
import requests
import zstandard
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ACCESS_KEY, CREDENTIALS, SECRET_KEY, SESSION_TOKEN
from tests.helpers import chunks as C
from tests.helpers.receiver import Response, SIGNATURE_MISMATCH_BODY

SESSION = requests.Session()
SESSION.trust_env = False  # never a proxy from the environment: loopback only


def signed(url, body, region="us-east-1", service="es", creds=CREDENTIALS, headers=None,
           sign_sha=True):
    hdrs = {"Content-Type": "application/x-ndjson"}
    hdrs.update(headers or {})
    if sign_sha:
        hdrs["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    req = AWSRequest(method="POST", url=url, data=body, headers=hdrs)
    SigV4Auth(Credentials(*creds), service, region).add_auth(req)
    return dict(req.headers.items())


def post(url, body, headers):
    return SESSION.post(url, data=body, headers=headers, timeout=10)


def test_receiver_accepts_botocore_signature(receiver):
    body = b'{"a":1}\n{"b":"x"}\n'
    url = receiver.endpoint("/_bulk?pipeline=p&a=b%20c")
    r = post(url, body, signed(url, body))
    assert r.status_code == 200, r.text
    req = receiver.requests()[0]
    assert req.auth_ok, req.auth_reason
    assert req.records == [{"a": 1}, {"b": "x"}]
    assert req.format == "json_lines"
    assert receiver.wait_for_records(2, timeout=1)


@pytest.mark.parametrize("tamper", ["body", "secret", "token", "no_token", "region", "service",
                                    "unsigned_sha", "unknown_key"])
def test_receiver_rejects(receiver, tamper):
    body = b'{"a":1}\n'
    url = receiver.endpoint("/logs")
    creds, region, service = CREDENTIALS, "us-east-1", "es"
    if tamper == "secret":
        creds = (ACCESS_KEY, SECRET_KEY + "x", SESSION_TOKEN)
    elif tamper == "token":
        creds = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN + "x")
    elif tamper == "no_token":
        creds = (ACCESS_KEY, SECRET_KEY, None)
    elif tamper == "region":
        region = "eu-west-1"
    elif tamper == "service":
        service = "aoss"
    elif tamper == "unknown_key":
        creds = ("AKIDOTHER", SECRET_KEY, SESSION_TOKEN)
    hdrs = signed(url, body, region, service, creds, sign_sha=tamper != "unsigned_sha")
    if tamper == "unsigned_sha":
        hdrs["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    if tamper == "body":
        body = b'{"a":2}\n'
    r = post(url, body, hdrs)
    assert r.status_code == 403
    assert r.content == SIGNATURE_MISMATCH_BODY
    assert len(receiver.rejections()) == 1
    assert receiver.records() == []


def test_receiver_rotation_and_no_auth(receiver_factory):
    old = ("AKIDOLD", "oldsecret", None)
    rcv = receiver_factory(credentials=[old, CREDENTIALS])
    body = b"{}"
    url = rcv.endpoint("/x")
    assert post(url, body, signed(url, body, creds=old)).status_code == 200
    assert post(url, body, signed(url, body)).status_code == 200
    open_rcv = receiver_factory(auth=False)
    assert post(open_rcv.endpoint("/"), b'{"z":1}', {}).status_code == 200
    assert open_rcv.records() == [{"z": 1}]


def test_receiver_decodes_compression_and_formats(receiver):
    recs = [{"i": i, "s": "é\n"} for i in range(3)]
    cases = [
        ("gzip", gzip.compress(json.dumps(recs).encode()), "application/json"),
        ("zstd", zstandard.ZstdCompressor().compress(
            b"".join(json.dumps(r).encode() for r in recs)), "application/json"),
        (None, b"".join(msgpack.packb(r) for r in recs), "application/msgpack"),
        (None, b"".join(msgpack.packb([[C.event_time(1, 2), {}], r]) for r in recs),
         "application/msgpack"),
    ]
    url = receiver.endpoint("/f")
    for enc, body, ct in cases:
        h = {"Content-Type": ct}
        if enc:
            h["Content-Encoding"] = enc
        r = post(url, body, signed(url, body, headers=h))
        assert r.status_code == 200, (enc, ct, r.text)
    assert receiver.records() == recs * 4


def test_receiver_scripted_responses(receiver):
    receiver.script(500, Response(status=429, body="slow down"), Response(reset="before"),
                    Response(stall=1.5))
    url = receiver.endpoint("/s")
    body = b"{}"
    assert post(url, body, signed(url, body)).status_code == 500
    r = post(url, body, signed(url, body))
    assert (r.status_code, r.text) == (429, "slow down")
    with pytest.raises(requests.ConnectionError):
        post(url, body, signed(url, body))
    t = time.monotonic()
    with pytest.raises(requests.Timeout):
        SESSION.post(url, data=body, headers=signed(url, body), timeout=0.5)
    assert time.monotonic() - t < 1.4
    assert post(url, body, signed(url, body)).status_code == 200
    assert [r.outcome for r in receiver.requests()] == [
        "scripted", "scripted", "reset", "stalled", "accepted"]


def test_receiver_413(receiver_factory):
    rcv = receiver_factory(max_body_bytes=10)
    url = rcv.endpoint("/")
    body = b'{"long":"xxxxxxxxxxxxxxxx"}'
    assert post(url, body, signed(url, body)).status_code == 413
    assert post(url, b"{}", signed(url, b"{}")).status_code == 200


def test_chunk_builder_forms():
    recs = C.make_records(6, prefix="t")
    assert C.make_records(6, prefix="t") == recs  # deterministic
    assert len({r["id"] for r in recs}) == 6
    ch = C.build_mixed_chunk(recs)
    objs = list(msgpack.Unpacker(__import__("io").BytesIO(ch.data), raw=False))
    assert len(objs) == 6
    for obj, ev in zip(objs, ch.events):
        if ev.form == "v2":
            ts = obj[0][0]
            assert isinstance(obj[0][1], dict)
        else:
            ts = obj[0]
        assert obj[1] == ev.record
        if ev.ts_kind == "ext":
            assert isinstance(ts, msgpack.ExtType) and ts.code == 0 and len(ts.data) == 8
        elif ev.ts_kind == "int":
            assert isinstance(ts, int) and ts == ev.sec
        else:
            assert isinstance(ts, float) and abs(ts - ev.ts) < 1e-6
    assert {(e.form, e.ts_kind) for e in ch.events} == set(C.ALL_KINDS)


def test_date_parsing():
    ev = C.Event(1700000000, 123456789, {})
    C.check_date(1700000000.123456789, ev, "double")
    C.check_date(1700000000, ev, "epoch")
    C.check_date(1700000000123, ev, "epoch_ms")
    C.check_date("2023-11-14T22:13:20.123456Z", ev, "iso8601")
    C.check_date("2023-11-14T22:13:20.123456789Z", ev, "iso8601")
    C.check_date("2023-11-14 22:13:20.123456", ev, "java_sql_timestamp")
    with pytest.raises(AssertionError):
        C.check_date("2023-11-14 22:13:20.123456", ev, "iso8601")
    with pytest.raises(AssertionError):
        C.check_date(1700000001, ev, "epoch")

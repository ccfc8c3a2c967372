"""The fake OpenSearch ``_bulk`` endpoint (tests/helpers/opensearch.py) checked on its own, and
against a real client: opensearch-py's ``helpers.streaming_bulk`` signs with SigV4 (botocore
credentials) and must read the fake's answers per item as it reads OpenSearch's."""

import json

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.helpers.opensearch import FakeOpenSearch

opensearchpy = pytest.importorskip("opensearchpy")
from opensearchpy import helpers  # noqa: E402

AK, SK = "AKIDFAKEOPENSEARCH", "fake/opensearch/secret"
REGION = "us-east-1"


@pytest.fixture
def fake():
    with FakeOpenSearch(credentials=[(AK, SK, None)], region=REGION, service="es",
                        allow_signed_content_length=True) as f:
        yield f


def client(fake, service="es"):
    auth = opensearchpy.RequestsAWSV4SignerAuth(Credentials(AK, SK), REGION, service)
    return opensearchpy.OpenSearch(hosts=[{"host": "127.0.0.1", "port": fake.port}],
                                   http_auth=auth, use_ssl=False,
                                   connection_class=opensearchpy.RequestsHttpConnection,
                                   timeout=10)


def post(fake, body: bytes, path="/_bulk", sign=True):
    """A SigV4-signed POST with botocore (content sha256 signed, as the plugin does)."""
    url = fake.endpoint(path)
    headers = {"Content-Type": "application/x-ndjson"}
    if sign:
        req = AWSRequest(method="POST", url=url, data=body, headers=headers)
        req.context["payload_signing_enabled"] = True
        import hashlib
        req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        SigV4Auth(Credentials(AK, SK), "es", REGION).add_auth(req)
        headers = dict(req.headers.items())
    return requests.post(url, data=body, headers=headers, timeout=10)


def ndjson(*objs) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def test_streaming_bulk_reads_per_item_outcomes_like_opensearch(fake):
    c = client(fake)
    fake.fail_items(400, match=lambda a: a.source.get("n") == 3, reason="failed to parse field [n]")
    docs = [{"_op_type": "create", "_index": "logs", "_id": f"d{i}", "n": i} for i in range(6)]
    # d1 exists already: create answers 409
    fake.indices.setdefault("logs", {})["d1"] = {"n": "old"}
    fake.versions[("logs", "d1")] = 1
    results = list(helpers.streaming_bulk(c, docs, raise_on_error=False, max_retries=0))
    by_id = {item["create"]["_id"]: (ok, item["create"]) for ok, item in results}
    assert [by_id[f"d{i}"][0] for i in range(6)] == [True, False, True, False, True, True]
    assert by_id["d1"][1]["status"] == 409
    assert by_id["d1"][1]["error"]["type"] == "version_conflict_engine_exception"
    assert by_id["d3"][1]["status"] == 400
    assert by_id["d3"][1]["error"]["reason"] == "failed to parse field [n]"
    assert sorted(str(d["n"]) for d in fake.documents("logs")) == ["0", "2", "4", "5", "old"]
    call = fake.bulk_log[-1]
    assert call.errors is True and len(call.items) == 6
    req = fake.receiver.requests()[-1]
    assert req.auth_ok is True and req.service == "es"


def test_streaming_bulk_retries_only_429_items_and_they_land_once(fake):
    c = client(fake)
    # d1 and d4 are refused with 429 on their first attempt only
    fake.fail_items(429, match=lambda a: a.id in ("d1", "d4"), attempts=[1])
    docs = [{"_op_type": "index", "_index": "logs", "_id": f"d{i}", "n": i} for i in range(6)]
    # (opensearch-py retries 429 items only with raise_on_error=False: otherwise the first
    # failed item raises before its retry loop sees it)
    results = list(helpers.streaming_bulk(c, docs, raise_on_error=False, max_retries=2,
                                          initial_backoff=0.01, max_backoff=0.02))
    assert all(ok for ok, _ in results) and len(results) == 6
    assert len(fake.bulk_log) == 2
    retried = [a.id for a in fake.bulk_log[1].actions]
    assert retried == ["d1", "d4"], "the client re-sent only the 429 items"
    assert sorted(d["n"] for d in fake.documents("logs")) == list(range(6))
    assert fake.attempts_of(("logs", "d1")) == 2
    assert fake.attempts_of(("logs", "d0")) == 1


def test_update_upsert_delete_semantics(fake):
    r = post(fake, ndjson(
        {"update": {"_index": "u", "_id": "1", "retry_on_conflict": 3}}, {"doc": {"a": 1}},
        {"update": {"_index": "u", "_id": "1"}}, {"doc": {"a": 1}, "doc_as_upsert": True},
        {"update": {"_index": "u", "_id": "1"}}, {"doc": {"b": {"c": 2}}},
        {"update": {"_index": "u", "_id": "1"}}, {"doc": {"b": {"d": 3}}},
        {"update": {"_index": "u", "_id": "1"}}, {"doc": {"b": {"d": 3}}},
        {"delete": {"_index": "u", "_id": "1"}},
        {"delete": {"_index": "u", "_id": "1"}},
        {"index": {"_id": "2"}}, {"x": 1},
    ), path="/dflt/_bulk")
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(next(iter(i)), next(iter(i.values()))["status"],
            next(iter(i.values())).get("result")) for i in body["items"]]
    assert got == [("update", 404, None), ("update", 201, "created"),
                   ("update", 200, "updated"), ("update", 200, "updated"),
                   ("update", 200, "noop"), ("delete", 200, "deleted"),
                   ("delete", 404, "not_found"), ("index", 201, "created")]
    assert body["errors"] is True
    assert body["items"][0]["update"]["error"]["type"] == "document_missing_exception"
    assert fake.documents("dflt") == [{"x": 1}]
    assert fake.documents("u") == []


@pytest.mark.parametrize("body,needle", [
    (ndjson({"create": {"_index": "a", "_type": "_doc"}}, {"x": 1}), "unknown parameter [_type]"),
    (ndjson({"create": {}}, {"x": 1}), "index is missing"),
    (ndjson({"upsert": {"_index": "a"}}, {"x": 1}), "expected one of"),
    (ndjson({"create": {"_index": "a"}}, {"x": 1})[:-1], "terminated by a newline"),
    (ndjson({"update": {"_index": "a", "_id": "1"}}, {"x": 1}), "script or doc is missing"),
    (ndjson({"update": {"_index": "a"}}, {"doc": {}}), "id is missing"),
    (ndjson({"create": {"_index": "a", "retry_on_conflict": 3}}, {"x": 1}), "only supported"),
    (ndjson({"create": {"_index": "a"}}), "missing the source"),
    (b"not json\n{}\n", "Malformed action"),
])
def test_malformed_requests_are_refused_whole(fake, body, needle):
    r = post(fake, body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["reason"]
    assert fake.doc_count() == 0 and fake.bulk_log == []


def test_empty_body_is_refused_like_opensearch(fake):
    """OpenSearch answers a signed, empty `_bulk` with 400 parse_exception "request body is
    required" (after authentication); an unsigned one is refused first with 403."""
    r = post(fake, b"")
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "parse_exception" and err["reason"] == "request body is required", err
    assert err["root_cause"] == [{"type": "parse_exception", "reason": "request body is required"}]
    assert r.json()["status"] == 400
    assert post(fake, b"", sign=False).status_code == 403
    assert fake.doc_count() == 0 and fake.bulk_log == []


def test_per_item_document_and_index_errors(fake):
    r = post(fake, b'{"create":{"_index":"ok"}}\n[1,2]\n'
                   b'{"create":{"_index":"Upper"}}\n{"x":1}\n'
                   b'{"create":{"_index":"ok"}}\n{"x":2}\n')
    items = r.json()["items"]
    assert [i["create"]["status"] for i in items] == [400, 400, 201]
    assert items[0]["create"]["error"]["type"] == "mapper_parsing_exception"
    assert items[1]["create"]["error"]["type"] == "invalid_index_name_exception"
    assert fake.documents("ok") == [{"x": 2}]


def test_bad_signatures_and_whole_request_failures(fake):
    body = ndjson({"create": {"_index": "a", "_id": "1"}}, {"x": 1})
    assert post(fake, body, sign=False).status_code == 403
    assert fake.receiver.requests()[-1].auth_ok is False
    assert fake.doc_count() == 0
    fake.fail_requests(503, 402)
    assert post(fake, body).status_code == 503
    r = post(fake, body)
    assert r.status_code == 402
    assert r.json()["error"]["type"] == "service_quota_exceeded_exception"
    assert fake.doc_count() == 0
    assert post(fake, body).status_code == 200
    assert post(fake, body).json()["items"][0]["create"]["status"] == 409
    assert fake.doc_count() == 1
    assert post(fake, body, path="/_search").status_code == 404

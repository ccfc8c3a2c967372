"""``format opensearch`` end to end through the C host, against the fake OpenSearch ``_bulk``
endpoint (tests/helpers/opensearch.py: documented bulk semantics, signatures checked with
botocore). The happy path: every document indexed exactly once, logstash index names from each
record's date across midnight, dots replaced, the tag key, generate_id re-sends answered 409 and
counted once, update/upsert bodies accepted. Per-document outcomes: only failed documents are
sent again (by the flush's item retries, then by Fluent Bit's retry of the chunk), rejected ones
are dropped once and summarised, ``errors: true`` is never success, a whole-request 402 is
retried."""

from __future__ import annotations

import collections
import copy
import datetime as dt

import pytest

from tests.conftest import CREDENTIALS
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers.opensearch import FakeOpenSearch
from tests.test_plugin_host import STACK

MIDNIGHT = 1_700_006_400  # 2023-11-15T00:00:00Z
TAG = "kube.var.log.app"


@pytest.fixture
def fake():
    with FakeOpenSearch(credentials=[CREDENTIALS], region="us-east-1", service="es",
                        require_token=True) as f:
        yield f


def _records(n, prefix="os"):
    recs = C.make_records(n, prefix=prefix)
    for r in recs:
        r["app.kubernetes.io/name"] = "shop"
        r["kubernetes"]["labels"]["team.example.com/owner"] = "a.b"
    return recs


def _inst(fake, **kw):
    d = {"endpoint": fake.endpoint("/_bulk"), "aws_region": "us-east-1", "aws_service": "es",
         "format": "opensearch", "Test_Tag": TAG}
    d.update(kw)
    return d


def _chunk(recs, name="os.bin", start=MIDNIGHT - 10):
    # one record a second, from 10 s before midnight
    return C.build_chunk(recs, start=start, step_ns=1_000_000_000, name=name,
                         kinds=C.ALL_KINDS)


def _all_signed(fake):
    reqs = fake.receiver.requests()
    assert reqs, "no request"
    for r in reqs:
        assert r.auth_ok is True, (r.index, r.auth_reason)
        assert r.headers.get("content-type") == "application/x-ndjson"
        assert "x-amz-content-sha256" in r.signed_headers


def _undotted(value):
    if isinstance(value, dict):
        return {k.replace(".", "_"): _undotted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undotted(v) for v in value]
    return value


def test_logstash_indices_across_midnight_tag_key_and_dots(run_plugin, fake):
    recs = _records(20)
    chunk = _chunk(recs)
    res = run_plugin([_inst(fake, logstash_format="on", logstash_prefix="logs",
                            include_tag_key="on", replace_dots="on")],
                     [chunk], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    _all_signed(fake)
    assert fake.doc_count() == 20
    # no action line with _type (the fake refuses the whole request otherwise), all "create"
    actions = [a for call in fake.bulk_log for a in call.actions]
    assert len(actions) == 20 and {a.op for a in actions} == {"create"}
    assert all("_type" not in a.meta and "_id" not in a.meta for a in actions)
    by_id = {}
    for index, docs in fake.indices.items():
        for doc in docs.values():
            assert doc["id"] not in by_id, f"{doc['id']} indexed twice"
            by_id[doc["id"]] = (index, doc)
    for ev in chunk.events:
        index, doc = by_id[ev.record["id"]]
        day = dt.datetime.fromtimestamp(ev.sec, dt.timezone.utc)
        assert index == "logs-" + day.strftime("%Y.%m.%d"), (ev.sec, index)
        assert doc["@timestamp"] == day.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ev.nsec:09d}Z"
        assert doc["flb-key"] == TAG
        want = _undotted(C.normalize(ev.record))
        got = {k: v for k, v in doc.items() if k not in ("@timestamp", "flb-key")}
        assert got == want
        assert doc["kubernetes"]["labels"]["team_example_com/owner"] == "a.b"
    assert collections.Counter(i for i, _ in by_id.values()) == {
        "logs-2023.11.14": 10, "logs-2023.11.15": 10}


def test_generate_id_resends_are_indexed_once(run_plugin, fake):
    chunk = _chunk(_records(12, prefix="gid"))
    for _ in range(2):  # two Fluent Bit runs sending the same chunk
        res = run_plugin([_inst(fake, generate_id="on", index="app-logs")], [chunk],
                         stack=STACK, max_retries=0)
        assert res.results() == [[H.FLB_OK]], res.describe()
    assert fake.doc_count() == 12
    assert sorted(d["id"] for d in fake.documents("app-logs")) == \
        sorted(r["id"] for r in chunk.records)
    first, second = fake.bulk_log[0], fake.bulk_log[-1]
    assert [a.id for a in first.actions] == [a.id for a in second.actions]
    assert all(a.id and len(a.id) == 36 for a in first.actions)
    assert {i["create"]["status"] for i in first.items} == {201}
    assert {i["create"]["status"] for i in second.items} == {409}
    _all_signed(fake)


def test_upsert_then_update_with_id_key(run_plugin, fake):
    recs = _records(6, prefix="up")
    res = run_plugin([_inst(fake, write_operation="upsert", id_key="id", index="state")],
                     [_chunk(recs)], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    call = fake.bulk_log[-1]
    assert [a.op for a in call.actions] == ["update"] * 6
    assert all(a.meta["retry_on_conflict"] == 3 and a.source["doc_as_upsert"] is True
               for a in call.actions)
    assert {i["update"]["status"] for i in call.items} == {201}
    changed = copy.deepcopy(recs)
    for r in changed:
        r["level"] = "changed"
    res = run_plugin([_inst(fake, write_operation="update", id_key="$id", index="state",
                            retry_on_conflict="5")],
                     [_chunk(changed, name="upd.bin")], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    call = fake.bulk_log[-1]
    assert all(a.meta["retry_on_conflict"] == 5 and "doc_as_upsert" not in a.source
               for a in call.actions)
    assert {i["update"]["status"] for i in call.items} == {200}
    docs = fake.indices["state"]
    assert sorted(docs) == sorted(r["id"] for r in recs)
    assert {d["level"] for d in docs.values()} == {"changed"}
    _all_signed(fake)


def test_endpoint_without_bulk_path_fails_init_naming_the_fix(run_plugin, fake):
    res = run_plugin([_inst(fake, endpoint=fake.endpoint("/logs"))], [_chunk(_records(1))],
                     stack=STACK, max_retries=0)
    assert res.returncode == H.EXIT_INIT, res.describe()
    text = "\n".join(res.logs())
    assert "'endpoint'" in text and fake.endpoint("/logs/_bulk") in text, text
    assert fake.receiver.requests() == []


# ------------------------------------------------------------------------------------------------
# per-document outcomes (issue 16 item 4): only failed documents are sent again


def _ids(action_list):
    return [a.source.get("id") for a in action_list if isinstance(a.source, dict)]


def _doc_ids(fake):
    return collections.Counter(d.get("id") for d in fake.documents())


def test_item_retries_carry_only_the_failed_documents(run_plugin, fake):
    """429 for three documents on their first attempt: the same flush re-sends those three
    only, and every document is indexed exactly once (FLB_OK, no Fluent Bit retry)."""
    recs = _records(20)
    failing = {recs[i]["id"] for i in (2, 7, 15)}
    fake.fail_items(429, lambda a: isinstance(a.source, dict) and a.source.get("id") in failing,
                    attempts=[1])
    res = run_plugin([_inst(fake)], [_chunk(recs)], stack=STACK, max_retries=0)
    assert res.results() == [[H.FLB_OK]], res.describe()
    calls = fake.bulk_log
    assert len(calls) == 2, [len(c.actions) for c in calls]
    assert len(calls[0].actions) == 20
    assert sorted(_ids(calls[1].actions)) == sorted(failing)
    assert _doc_ids(fake) == collections.Counter(r["id"] for r in recs)
    _all_signed(fake)


def test_rejected_documents_are_dropped_once_and_summarised(run_plugin, fake):
    """400 (a mapping error) for two documents: they are dropped, never re-sent; the rest is
    indexed; FLB_OK (something was accepted) and one warning line per flush with counts and the
    first reason, without document content."""
    recs = _records(10)
    bad = {recs[1]["id"], recs[4]["id"]}
    fake.fail_items(400, lambda a: isinstance(a.source, dict) and a.source.get("id") in bad,
                    reason="failed to parse field [n] of type [long]")
    res = run_plugin([_inst(fake)], [_chunk(recs)], stack=STACK, max_retries=3)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert len(fake.bulk_log) == 1, "rejected documents are never sent again"
    assert set(_doc_ids(fake)) == {r["id"] for r in recs} - bad
    lines = [l for l in res.logs("warn") if "_bulk:" in l]
    assert len(lines) == 1, res.logs("warn")
    assert "2 rejected" in lines[0] and "400" in lines[0], lines[0]
    for r in recs:
        assert r["id"] not in lines[0], "no document content in the log"


def test_chunk_retry_after_partial_failure_sends_only_the_rest(run_plugin, fake):
    """503 for two documents on their first four attempts (more than the flush's own item
    retries): the flush returns FLB_RETRY, and Fluent Bit's retry of the chunk sends only those
    two documents; each document is indexed exactly once."""
    recs = _records(12)
    slow = {recs[3]["id"], recs[9]["id"]}
    fake.fail_items(503, lambda a: isinstance(a.source, dict) and a.source.get("id") in slow,
                    attempts=[1, 2, 3, 4])
    res = run_plugin([_inst(fake)], [_chunk(recs)], stack=STACK, max_retries=3,
                     retry_delay_ms=100)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    calls = fake.bulk_log
    assert len(calls[0].actions) == 12
    # the flush's own item retries: the two documents, three times
    assert [sorted(_ids(c.actions)) for c in calls[1:4]] == [sorted(slow)] * 3
    # Fluent Bit's retry of the chunk: only the two documents again (one request per
    # contiguous run of records)
    retried = [i for c in calls[4:] for i in _ids(c.actions)]
    assert sorted(retried) == sorted(slow), [_ids(c.actions) for c in calls]
    assert _doc_ids(fake) == collections.Counter(r["id"] for r in recs)


def test_errors_true_is_never_success(run_plugin, fake):
    """Every document refused (400): the answer is 200 with errors true, and the chunk is not
    counted as delivered: FLB_ERROR (nothing accepted), nothing indexed."""
    recs = _records(5)
    fake.fail_items(400, reason="mapper_parsing_exception")
    res = run_plugin([_inst(fake)], [_chunk(recs)], stack=STACK, max_retries=2)
    assert res.results() == [[H.FLB_ERROR]], res.describe()
    assert fake.doc_count() == 0
    assert len(fake.bulk_log) == 1


def test_whole_request_402_is_retried(run_plugin, fake):
    """OpenSearch Serverless answers 402 when the collection is at capacity: transient."""
    recs = _records(4)
    fake.fail_requests(402)
    res = run_plugin([_inst(fake)], [_chunk(recs)], stack=STACK, max_retries=2,
                     retry_delay_ms=100)
    assert res.results() == [[H.FLB_RETRY, H.FLB_OK]], res.describe()
    assert fake.doc_count() == 4

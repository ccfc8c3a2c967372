"""A fake OpenSearch ``_bulk`` endpoint on top of the botocore-verifying :class:`Receiver`.

It follows OpenSearch's documented bulk semantics closely enough for the plugin's tests:

* the request: POST/PUT to ``/_bulk`` or ``/<index>/_bulk``; NDJSON that must end with a
  newline; every action line is one object with exactly one of ``index``, ``create``,
  ``update``, ``delete``, whose metadata has only known parameters (``_type`` is refused as
  OpenSearch 2.x does), an ``_index`` (or one in the path); ``update`` bodies need ``doc``.
  Any of these wrong: the whole request is answered 400 (as OpenSearch does).
* per item: ``create`` on an existing ``_id`` → 409 ``version_conflict_engine_exception``;
  ``index`` creates or replaces (201/200); ``update`` merges ``doc`` into the document (200),
  creates it with ``doc_as_upsert`` (201) or answers 404 ``document_missing_exception``;
  ``delete`` → 200 or 404 ``not_found``; a document that is not a JSON object → 400
  ``mapper_parsing_exception``; a bad index name → 400 ``invalid_index_name_exception``.
* ``errors`` is true when any item has an ``error``.
* fault injection: :meth:`fail_items` makes chosen documents fail with a status (429, 400,
  503, 402, 409…) on chosen attempts (the n-th time the fake sees that document);
  :meth:`fail_requests` answers whole requests with a status.

Signatures are checked by the receiver (botocore): a badly signed request is answered 403 and
touches no document. Every request is recorded (``receiver.requests()``), and every bulk
request's parsed actions and per-item answers in :attr:`bulk_log`.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from .receiver import Receiver, Response, verify_sigv4

OPS = ("index", "create", "update", "delete")
# metadata parameters OpenSearch's bulk parser accepts on an action line
KNOWN_PARAMS = {"_index", "_id", "routing", "pipeline", "require_alias", "if_seq_no",
                "if_primary_term", "version", "version_type", "retry_on_conflict", "_source"}
ERROR_TYPES = {
    400: "mapper_parsing_exception",
    402: "service_quota_exceeded_exception",
    409: "version_conflict_engine_exception",
    429: "es_rejected_execution_exception",
    500: "internal_server_error",
    503: "unavailable_shards_exception",
}
BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')


def _bad_request(reason: str, kind: str = "illegal_argument_exception") -> Response:
    body = {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind,
                      "reason": reason}, "status": 400}
    return Response(status=400, body=json.dumps(body), headers={"Content-Type":
                                                                 "application/json"})


def _index_name_problem(name: str) -> Optional[str]:
    if not name:
        return "must not be empty"
    if name != name.lower():
        return "must be lowercase"
    if name[0] in "_-+":
        return "must not start with '_', '-', or '+'"
    if any(c in BAD_INDEX_CHARS for c in name):
        return 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?, #, :]'
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if len(name.encode()) > 255:
        return "index name is too long"
    return None


@dataclass
class Action:
    """One parsed action of a bulk request."""
    op: str
    index: str
    id: Optional[str]
    meta: dict
    source: Any = None  # the document line, parsed (None for delete; the raw text if invalid)
    source_ok: bool = True


@dataclass
class BulkCall:
    """A bulk request the fake processed (signature valid, framing valid)."""
    request_index: int
    actions: list
    items: list  # the response items, in order
    errors: bool


@dataclass
class _FailRule:
    status: int
    match: Callable[[Action], bool]
    attempts: Optional[set]  # attempt numbers (1 = first time seen); None = every attempt
    reason: str


class FakeOpenSearch:
    """``FakeOpenSearch(credentials=[(ak, sk, token)], region='us-east-1', service='es')``;
    ``auth=False`` accepts unsigned requests; ``allow_signed_content_length`` accepts clients
    that sign Content-Length (opensearch-py; the plugin must not). Use as a context manager or
    start()/stop()."""

    def __init__(self, credentials: Iterable = (), region: Optional[str] = None,
                 service: Optional[str] = "es", auth: bool = True,
                 allow_signed_content_length: bool = False, **receiver_kw):
        self._lock = threading.RLock()
        self.auth = auth
        self.allow_signed_content_length = allow_signed_content_length
        self.receiver = Receiver(credentials=credentials, region=region, service=service,
                                 auth=auth, responder=self._respond, **receiver_kw)
        self.indices: dict[str, dict[str, dict]] = {}
        self.versions: dict[tuple, int] = {}
        self.bulk_log: list[BulkCall] = []
        self._attempts: dict[Any, int] = {}
        self._rules: list[_FailRule] = []
        self._request_failures: list[int] = []
        self._seq = itertools.count()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeOpenSearch":
        self.receiver.start()
        return self

    def stop(self):
        self.receiver.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self.receiver.port

    @property
    def url(self) -> str:
        return self.receiver.url

    def endpoint(self, path: str = "/_bulk") -> str:
        return self.receiver.url + path

    # -- scripting ---------------------------------------------------------------------------

    def fail_items(self, status: int, match: Callable[[Action], bool] = lambda a: True,
                   attempts: Optional[Iterable[int]] = None, reason: Optional[str] = None):
        """Documents for which ``match(action)`` is true fail with ``status`` on the given
        attempts (1 = the first time this fake sees the document; None = always). A document is
        identified by (index, _id), or by its source when it has no _id."""
        with self._lock:
            self._rules.append(_FailRule(status, match, set(attempts) if attempts else None,
                                         reason or f"injected failure {status}"))

    def fail_requests(self, *statuses: int):
        """The next bulk requests (validly signed) are answered with these statuses, whole."""
        with self._lock:
            self._request_failures.extend(statuses)

    # -- accessors ---------------------------------------------------------------------------

    def documents(self, index: Optional[str] = None) -> list[dict]:
        with self._lock:
            if index is not None:
                return list(self.indices.get(index, {}).values())
            return [d for docs in self.indices.values() for d in docs.values()]

    def doc_count(self) -> int:
        with self._lock:
            return sum(len(d) for d in self.indices.values())

    def attempts_of(self, key) -> int:
        with self._lock:
            return self._attempts.get(key, 0)

    # -- request handling --------------------------------------------------------------------

    def _respond(self, req) -> Optional[Response]:
        if self.auth:
            v = verify_sigv4(req.method, req.path, req.header_list, req.raw_body,
                             self.receiver.credentials, self.receiver.region,
                             self.receiver.service, self.receiver.require_token,
                             self.allow_signed_content_length)
            if not v["ok"]:
                req.auth_checked, req.auth_ok, req.auth_reason = True, False, v["reason"]
                return Response(status=403, verify=False,
                                body=b'{"message":"The request signature we calculated does '
                                     b'not match"}')
            req.auth_checked, req.auth_ok, req.service = True, True, v["service"]
            req.access_key, req.region = v["access_key"], v["region"]
            req.signed_headers = v["signed_headers"]
        resp = self._answer(req)
        resp.verify = False  # verified above, with this fake's rule on Content-Length
        return resp

    def _answer(self, req) -> Response:
        path = req.path.split("?", 1)[0]
        if not (path == "/_bulk" or path.endswith("/_bulk")):
            body = {"error": {"type": "invalid_index_name_exception",
                              "reason": f"no handler for {path}"}, "status": 404}
            return Response(status=404, body=json.dumps(body))
        if req.method not in ("POST", "PUT"):
            return Response(status=405, body=b'{"error":"Incorrect HTTP method","status":405}')
        default_index = None
        if path != "/_bulk":
            default_index = path[1:-len("/_bulk")].strip("/") or None
        with self._lock:
            if self._request_failures:
                status = self._request_failures.pop(0)
                kind = ERROR_TYPES.get(status, "exception")
                body = {"error": {"type": kind, "reason": f"injected {status}"},
                        "status": status}
                return Response(status=status, body=json.dumps(body))
            parsed = self._parse(req.body, default_index)
            if isinstance(parsed, Response):
                return parsed
            items = [self._apply(a) for a in parsed]
            errors = any("error" in next(iter(i.values())) for i in items)
            self.bulk_log.append(BulkCall(req.index, parsed, items, errors))
        body = {"took": 3, "errors": errors, "items": items}
        return Response(status=200, body=json.dumps(body),
                        headers={"Content-Type": "application/json; charset=UTF-8"})

    def _parse(self, body: bytes, default_index: Optional[str]):
        if not body:
            # OpenSearch's RestBulkAction refuses an empty body before parsing any line (after
            # the security layer checked the signature): 400 parse_exception.
            return _bad_request("request body is required", "parse_exception")
        if not body.endswith(b"\n"):
            return _bad_request("The bulk request must be terminated by a newline [\\n]")
        lines = body[:-1].split(b"\n")
        actions = []
        i = 0
        while i < len(lines):
            n = i + 1  # 1-based line number, as OpenSearch reports
            try:
                head = json.loads(lines[i])
            except ValueError as e:
                return _bad_request(f"Malformed action/metadata line [{n}]: {e}",
                                    "x_content_parse_exception")
            if not isinstance(head, dict) or len(head) != 1:
                return _bad_request(f"Malformed action/metadata line [{n}], expected a "
                                    "single object with one action")
            op, meta = next(iter(head.items()))
            if op not in OPS:
                return _bad_request(f"Malformed action/metadata line [{n}], expected one of "
                                    f"[create, delete, index, update] but found [{op}]")
            if not isinstance(meta, dict):
                return _bad_request(f"Malformed action/metadata line [{n}]")
            for k in meta:
                if k not in KNOWN_PARAMS:
                    return _bad_request(f"Action/metadata line [{n}] contains an unknown "
                                        f"parameter [{k}]")
            index = meta.get("_index", default_index)
            if not index:
                return _bad_request("Validation Failed: 1: index is missing;",
                                    "action_request_validation_exception")
            if "retry_on_conflict" in meta and op != "update":
                return _bad_request(f"Action/metadata line [{n}]: retry_on_conflict is only "
                                    "supported for update")
            doc_id = meta.get("_id")
            if doc_id is not None and not isinstance(doc_id, str):
                doc_id = str(doc_id)
            if op in ("update",) and doc_id is None:
                return _bad_request("Validation Failed: 1: id is missing;",
                                    "action_request_validation_exception")
            a = Action(op=op, index=index, id=doc_id, meta=meta)
            i += 1
            if op != "delete":
                if i >= len(lines):
                    return _bad_request(f"The bulk request is missing the source of action "
                                        f"line [{n}]")
                raw = lines[i]
                i += 1
                try:
                    a.source = json.loads(raw)
                    a.source_ok = isinstance(a.source, dict)
                except ValueError:
                    a.source, a.source_ok = raw.decode("utf-8", "replace"), False
                if op == "update":
                    if not a.source_ok or not any(k in a.source for k in ("doc", "script")):
                        return _bad_request("Validation Failed: 1: script or doc is missing;",
                                            "action_request_validation_exception")
                    if not isinstance(a.source.get("doc", {}), dict):
                        return _bad_request("Validation Failed: 1: doc must be an object;",
                                            "action_request_validation_exception")
            actions.append(a)
        return actions

    def _key(self, a: Action):
        if a.id is not None:
            return (a.index, a.id)
        return (a.index, json.dumps(a.source, sort_keys=True))

    def _fail(self, a: Action, status: int, kind: str, reason: str) -> dict:
        return {a.op: {"_index": a.index, "_id": a.id, "status": status,
                       "error": {"type": kind, "reason": reason, "index": a.index,
                                 "shard": "0", "index_uuid": "fakeuuid"}}}

    def _ok(self, a: Action, doc_id: str, status: int, result: str) -> dict:
        key = (a.index, doc_id)
        self.versions[key] = self.versions.get(key, 0) + 1
        return {a.op: {"_index": a.index, "_id": doc_id, "_version": self.versions[key],
                       "result": result,
                       "_shards": {"total": 2, "successful": 1, "failed": 0},
                       "_seq_no": next(self._seq), "_primary_term": 1, "status": status}}

    def _apply(self, a: Action) -> dict:
        key = self._key(a)
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        for rule in self._rules:
            if (rule.attempts is None or attempt in rule.attempts) and rule.match(a):
                return self._fail(a, rule.status, ERROR_TYPES.get(rule.status, "exception"),
                                  rule.reason)
        problem = _index_name_problem(a.index)
        if problem:
            return self._fail(a, 400, "invalid_index_name_exception",
                              f"Invalid index name [{a.index}], {problem}")
        docs = self.indices.setdefault(a.index, {})
        if a.op in ("create", "index") and not a.source_ok:
            return self._fail(a, 400, "mapper_parsing_exception", "failed to parse")
        if a.op == "create":
            doc_id = a.id or uuid.uuid4().hex[:20]
            if doc_id in docs:
                return self._fail(a, 409, "version_conflict_engine_exception",
                                  f"[{doc_id}]: version conflict, document already exists "
                                  f"(current version [{self.versions[(a.index, doc_id)]}])")
            docs[doc_id] = a.source
            return self._ok(a, doc_id, 201, "created")
        if a.op == "index":
            doc_id = a.id or uuid.uuid4().hex[:20]
            existed = doc_id in docs
            docs[doc_id] = a.source
            return self._ok(a, doc_id, 200 if existed else 201,
                            "updated" if existed else "created")
        if a.op == "update":
            doc = a.source.get("doc", {})
            if a.id in docs:
                merged = _merge(docs[a.id], doc)
                result = "noop" if merged == docs[a.id] else "updated"
                docs[a.id] = merged
                return self._ok(a, a.id, 200, result)
            if a.source.get("doc_as_upsert") is True:
                docs[a.id] = doc
                return self._ok(a, a.id, 201, "created")
            return self._fail(a, 404, "document_missing_exception",
                              f"[{a.id}]: document missing")
        # delete
        if a.id in docs:
            del docs[a.id]
            return self._ok(a, a.id, 200, "deleted")
        key = (a.index, a.id)
        self.versions[key] = self.versions.get(key, 0) + 1
        return {"delete": {"_index": a.index, "_id": a.id, "_version": self.versions[key],
                           "result": "not_found",
                           "_shards": {"total": 2, "successful": 1, "failed": 0},
                           "_seq_no": next(self._seq), "_primary_term": 1, "status": 404}}


def _merge(old: dict, new: dict) -> dict:
    """OpenSearch's partial-document update: objects merge recursively, other values replace."""
    out = dict(old)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out

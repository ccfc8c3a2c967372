"""A loopback HTTP receiver that verifies AWS SigV4 signatures independently, with botocore.

Every request is recorded (method, path, headers, raw and decoded body, parsed records, the
verification verdict and the response sent). Signatures are recomputed with botocore's
``SigV4Auth`` from exactly the headers the client says it signed and the client's own
``X-Amz-Date`` (never the current clock), so a pass means an AWS service would accept it.

Responses are scriptable per request (status, body, connection reset, stall), which the tests
use to drive the plugin's retry logic (DESIGN.md §6). Optional: HTTPS (``tls=(cert, key)``, with
``tls_client_ca`` requiring a client certificate), a skewed clock (``clock_skew`` seconds: requests
whose X-Amz-Date is more than ``skew_limit`` away from it get AWS's 403 clock-skew answer, and
every ``Date`` header tells the skewed time; ``send_date=False`` omits it), and a count of the TCP
connections accepted (keep-alive reuse).

Also runnable for demos::

    python -m tests.helpers.receiver --port 8080 --access-key AKID --secret-key SECRET \
        [--session-token TOKEN] [--region us-east-1] [--service es] [--no-auth] \
        [--listen 0.0.0.0] [--print-records] [--log-requests]

(``--log-requests``: one ``REQUEST {json}`` line per request with its outcome, as the container
tests read it from the container's log; the file runs as a script too, in the demo image.)
"""

from __future__ import annotations

import argparse
import calendar
import email.utils
import gzip
import hashlib
import hmac
import json
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import msgpack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

try:  # zstd bodies (compress zstd)
    import zstandard
except ImportError:  # pragma: no cover - listed in tests/requirements.txt
    zstandard = None

SIGNATURE_MISMATCH_BODY = b'{"message":"The request signature we calculated does not match"}'

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)


# ------------------------------------------------------------------------------------------------
# scripted responses


@dataclass
class Response:
    """What the receiver does with one request.

    ``reset``: ``"before"`` closes the connection with a TCP RST without answering;
    ``"mid_body"`` sends the status line, headers and half of the body, then resets.
    ``stall``: seconds to sleep before answering (the client is expected to time out); with
    ``reset="after_stall"`` the connection is reset after the stall instead of answered (an
    endpoint that accepts and never answers: nothing processed).
    ``verify``: when False the signature is not checked for this request.
    """

    status: int = 200
    body: Union[bytes, str] = b""
    headers: dict = field(default_factory=dict)
    reset: Optional[str] = None
    stall: float = 0.0
    verify: bool = True

    def body_bytes(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


Responder = Callable[["ReceivedRequest"], Optional[Response]]


@dataclass
class ReceivedRequest:
    index: int
    method: str
    path: str
    headers: dict  # lower-case name -> value (last value wins; see header_list for all)
    header_list: list
    raw_body: bytes
    body: bytes = b""  # after Content-Encoding
    content_encoding: Optional[str] = None
    format: Optional[str] = None
    records: list = field(default_factory=list)
    events: list = field(default_factory=list)  # raw decoded objects (maps or event arrays)
    parse_error: Optional[str] = None
    auth_checked: bool = False
    auth_ok: Optional[bool] = None
    auth_reason: Optional[str] = None
    access_key: Optional[str] = None
    region: Optional[str] = None
    service: Optional[str] = None
    signed_headers: list = field(default_factory=list)
    status: Optional[int] = None  # status sent; None when reset/stalled
    outcome: str = ""  # "accepted", "rejected", "scripted", "reset", "stalled", "skewed", ...
    received_at: float = 0.0
    peer: Optional[tuple] = None  # the client's (address, port)
    connection: Optional[int] = None  # index of the TCP connection (0, 1, ...) it came on
    tls_peer_cn: Optional[str] = None  # CN of the verified client certificate (mutual TLS)
    amz_date_skew: Optional[float] = None  # X-Amz-Date minus the receiver's clock, seconds

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


# ------------------------------------------------------------------------------------------------
# body parsing


def decompress(body: bytes, encoding: Optional[str]) -> bytes:
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "zstd":
        if zstandard is None:
            raise RuntimeError("zstandard is not installed")
        dobj = zstandard.ZstdDecompressor().decompressobj()
        out = dobj.decompress(body)
        return out
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _json_stream(text: str) -> list:
    dec = json.JSONDecoder()
    out = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def record_of(obj: Any) -> Any:
    """The record map of a decoded object: a map itself, or the record of an event array."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, (list, tuple)) and len(obj) == 2 and isinstance(obj[1], dict):
        return obj[1]
    return obj


def parse_body(body: bytes, content_type: Optional[str], fmt: Optional[str] = None):
    """Returns (format, objects). ``fmt`` forces a format; else it is guessed from the
    Content-Type and the body: msgpack, json (one array), json_lines or json_stream."""
    ct = (content_type or "").lower()
    if fmt is None:
        if "msgpack" in ct:
            fmt = "msgpack"
        else:
            stripped = body.lstrip()
            if stripped.startswith(b"["):
                fmt = "json"
            elif "ndjson" in ct or (body.endswith(b"\n") and b"}\n{" in body) or (
                body.count(b"\n") == 1 and body.endswith(b"\n")
            ):
                fmt = "json_lines"
            else:
                fmt = "json_stream"
    if fmt == "msgpack":
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, timestamp=0, ext_hook=_ext_hook
        )
        unpacker.feed(body)
        return fmt, list(unpacker)
    text = body.decode("utf-8")
    if fmt == "json":
        val = json.loads(text)
        if not isinstance(val, list):
            raise ValueError("json body is not an array")
        return fmt, val
    if fmt == "json_lines":
        out = []
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for line in lines:
            out.append(json.loads(line))
        return fmt, out
    return fmt, _json_stream(text)


def _ext_hook(code: int, data: bytes):
    if code == 0 and len(data) == 8:
        sec, nsec = struct.unpack(">II", data)
        return ("EventTime", sec, nsec)
    return msgpack.ExtType(code, data)


# ------------------------------------------------------------------------------------------------
# SigV4 verification


class _ExactHeadersSigV4Auth(SigV4Auth):
    """botocore's SigV4 with the header set taken as given (the client decided what to sign);
    everything else — canonical URI, query, header canonicalisation, string to sign, key
    derivation — is botocore's own."""

    def headers_to_sign(self, request):
        from botocore.compat import HTTPHeaders

        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


@dataclass(frozen=True)
class CredentialSet:
    access_key: str
    secret_key: str
    token: Optional[str] = None


def _as_cred(c) -> CredentialSet:
    if isinstance(c, CredentialSet):
        return c
    if isinstance(c, dict):
        return CredentialSet(c["access_key"], c["secret_key"], c.get("token"))
    c = tuple(c)
    return CredentialSet(c[0], c[1], c[2] if len(c) > 2 else None)


def verify_sigv4(
    method: str,
    path: str,
    header_list: Sequence[tuple],
    raw_body: bytes,
    credentials: Sequence[CredentialSet],
    region: Optional[str] = None,
    service: Optional[str] = None,
    require_token: bool = False,
    allow_signed_content_length: bool = False,
    endpoint_rules: bool = True,
) -> dict:
    """Verify a request's SigV4 signature. Returns a dict with ``ok`` and ``reason`` and the
    parsed scope; never raises for a bad request. ``endpoint_rules`` adds the plugin's own rules
    for log requests (DESIGN §6: ``x-amz-content-sha256`` sent and signed, ``content-length``
    unsigned); without them only what AWS itself requires is checked, as STS does (the AWS SDKs
    sign ``content-length`` and send no ``x-amz-content-sha256`` to STS).
    ``allow_signed_content_length`` keeps the other endpoint rules but accepts a signed
    ``content-length`` (third-party clients such as opensearch-py sign it, and AWS accepts
    that)."""
    res: dict = {"ok": False, "reason": None, "access_key": None, "region": None,
                 "service": None, "signed_headers": []}
    headers_lc: dict = {}
    for k, v in header_list:
        headers_lc.setdefault(k.lower(), []).append(v)

    def one(name):
        vals = headers_lc.get(name)
        return vals[0] if vals else None

    auth = one("authorization")
    if not auth:
        res["reason"] = "missing Authorization header"
        return res
    m = _AUTH_RE.match(auth.strip())
    if not m:
        res["reason"] = f"unparseable Authorization header: {auth[:80]!r}"
        return res
    cred_parts = m.group("cred").split("/")
    if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
        res["reason"] = f"bad credential scope {m.group('cred')!r}"
        return res
    access_key, scope_date, scope_region, scope_service, _ = cred_parts
    signed = m.group("signed").split(";")
    res.update(access_key=access_key, region=scope_region, service=scope_service,
               signed_headers=signed)
    if signed != sorted(signed) or any(h != h.lower() for h in signed):
        res["reason"] = f"SignedHeaders not sorted lower-case: {signed}"
        return res
    required_signed = ("host", "x-amz-date", "x-amz-content-sha256") if endpoint_rules else \
        ("host", "x-amz-date")
    for required in required_signed:
        if required not in signed:
            res["reason"] = f"{required} is not signed (SignedHeaders={';'.join(signed)})"
            return res
    if endpoint_rules and "content-length" in signed and not allow_signed_content_length:
        res["reason"] = "content-length must not be signed"
        return res
    for h in signed:
        if h not in headers_lc:
            res["reason"] = f"signed header {h} is absent from the request"
            return res
    amz_date = one("x-amz-date")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date or ""):
        res["reason"] = f"bad X-Amz-Date {amz_date!r}"
        return res
    if amz_date[:8] != scope_date:
        res["reason"] = f"scope date {scope_date} != X-Amz-Date {amz_date}"
        return res
    if region is not None and scope_region != region:
        res["reason"] = f"region {scope_region!r} in scope, expected {region!r}"
        return res
    if service is not None and scope_service != service:
        res["reason"] = f"service {scope_service!r} in scope, expected {service!r}"
        return res
    content_sha = one("x-amz-content-sha256")
    if (endpoint_rules or content_sha is not None) and \
            content_sha != hashlib.sha256(raw_body).hexdigest():
        res["reason"] = (f"X-Amz-Content-SHA256 {content_sha} != sha256(body) "
                         f"{hashlib.sha256(raw_body).hexdigest()}")
        return res
    cands = [c for c in credentials if c.access_key == access_key]
    if not cands:
        res["reason"] = f"unknown access key {access_key}"
        return res
    token = one("x-amz-security-token")
    if require_token and not token:
        res["reason"] = "X-Amz-Security-Token required but absent"
        return res
    if token is not None and "x-amz-security-token" not in signed:
        res["reason"] = "X-Amz-Security-Token present but not signed"
        return res
    reasons = []
    host = one("host")
    for cred in cands:
        if cred.token and token != cred.token:
            reasons.append("session token missing or different" if token else
                           "X-Amz-Security-Token missing for credentials with a token")
            continue
        if not cred.token and token:
            reasons.append("X-Amz-Security-Token sent for credentials without a token")
            continue
        req_headers = {}
        for h in signed:
            # several values of one header are joined as a client would (botocore joins with ,)
            req_headers[h] = ",".join(headers_lc[h])
        req = AWSRequest(method=method, url=f"http://{host}{path}", data=raw_body,
                         headers=req_headers)
        req.context["timestamp"] = amz_date
        signer = _ExactHeadersSigV4Auth(
            Credentials(cred.access_key, cred.secret_key, cred.token),
            scope_service, scope_region)
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        expected = signer.signature(sts, req)
        if hmac.compare_digest(expected, m.group("sig").lower()):
            res["ok"] = True
            res["reason"] = None
            res["canonical_request"] = canonical
            return res
        reasons.append("signature mismatch")
        res["canonical_request"] = canonical
    res["reason"] = "; ".join(reasons) or "signature mismatch"
    return res


# ------------------------------------------------------------------------------------------------
# the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-receiver/1"
    timeout = 60  # idle keep-alive connections are dropped after this

    def log_message(self, fmt, *args):  # quiet
        if self.server.receiver.verbose:
            super().log_message(fmt, *args)

    def setup(self):
        super().setup()
        self.conn_index = self.server.receiver._new_connection(self)

    def send_response(self, code, message=None):
        # BaseHTTPRequestHandler.send_response with the receiver's own clock in Date
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        date = self.server.receiver._date_header()
        if date is not None:
            self.send_header("Date", date)

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(65537)
            return bytes(out)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        self.server.receiver._handle(self)

    do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _handle

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _send(self, status: int, body: bytes, headers: Optional[dict] = None):
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()


class _TlsHandler(_Handler):
    """The handler behind a TLS listening socket: the handshake runs here, on the connection's
    own thread (not in the accept loop); a failed one is recorded and the connection dropped."""

    def setup(self):
        self.tls_failed = False
        try:
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        except (OSError, ValueError) as e:
            self.tls_failed = True
            self.server.receiver._tls_error(e)
        super().setup()

    def handle(self):
        if not self.tls_failed:
            super().handle()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        # a client that went away (reset, TLS alert) is not a receiver error; others print
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _amz_epoch(amz_date: Optional[str]) -> Optional[float]:
    try:
        return float(calendar.timegm(time.strptime(amz_date or "", "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _amz(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def skew_error_body(style: str, amz_date: str, server_now: float, limit: float) -> tuple:
    """(body, headers) of AWS's answer to a request signed at ``amz_date`` when the server's
    clock says ``server_now``. ``style``: ``"json"`` (JSON-protocol services: CloudWatch Logs,
    Firehose, API Gateway: InvalidSignatureException, "Signature expired" when the request is
    too old, "Signature not yet current" when it is too new) or ``"xml"`` (S3-style
    RequestTimeTooSkewed)."""
    req_t = _amz_epoch(amz_date) or 0.0
    if style == "xml":
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>RequestTimeTooSkewed"
                "</Code><Message>The difference between the request time and the current time "
                f"is too large.</Message><RequestTime>{amz_date}</RequestTime><ServerTime>"
                f"{_amz(server_now)}</ServerTime><MaxAllowedSkewMilliseconds>"
                f"{int(limit * 1000)}</MaxAllowedSkewMilliseconds></Error>")
        return body.encode(), {"Content-Type": "application/xml"}
    minutes = int(limit // 60)
    if req_t < server_now:
        msg = (f"Signature expired: {amz_date} is now earlier than "
               f"{_amz(server_now - limit)} ({_amz(server_now)} - {minutes} min.)")
    else:
        msg = (f"Signature not yet current: {amz_date} is still later than "
               f"{_amz(server_now + limit)} ({_amz(server_now)} + {minutes} min.)")
    body = json.dumps({"__type": "InvalidSignatureException", "message": msg}).encode()
    return body, {"Content-Type": "application/x-amz-json-1.1",
                  "x-amzn-ErrorType": "InvalidSignatureException"}


class Receiver:
    """A threaded HTTP receiver on 127.0.0.1 that records and verifies requests.

    ``credentials``: a list of (access_key, secret_key, token-or-None) accepted (several sets
    support rotation). ``auth=False`` accepts unsigned requests (no verification).
    ``responses``: a list of :class:`Response` (or status ints) consumed one per request;
    ``responder``: a callable ``f(request) -> Response | None`` consulted first. When neither
    decides, the request is verified and answered 200 (or 403 on a bad signature).
    ``max_body_bytes``: bodies larger than this (as received, before decompression) get 413.
    A body that does not parse is still answered 200 (``parse_error`` is recorded and it has no
    records) unless ``strict_body=True``, which answers 400.
    ``tls``: (certfile, keyfile) serves HTTPS; ``tls_client_ca``: a CA file, and the receiver
    then requires a client certificate signed by it (failed handshakes go to ``tls_errors``).
    ``clock_skew``: seconds the receiver's clock is ahead of the real one (negative: behind);
    when non-zero (or ``check_time=True``) a request whose X-Amz-Date is more than
    ``skew_limit`` seconds from that clock is answered 403 in ``skew_style`` (see
    :func:`skew_error_body`), outcome ``"skewed"``. Every response's ``Date`` header tells the
    receiver's clock, unless ``send_date=False`` (no Date header at all).
    ``connections``: how many TCP connections were accepted.
    """

    def __init__(
        self,
        credentials: Iterable = (),
        region: Optional[str] = None,
        service: Optional[str] = None,
        auth: bool = True,
        require_token: bool = False,
        responses: Optional[Iterable] = None,
        responder: Optional[Responder] = None,
        max_body_bytes: Optional[int] = None,
        fmt: Optional[str] = None,
        strict_body: bool = False,
        port: int = 0,
        verbose: bool = False,
        tls: Optional[tuple] = None,
        tls_client_ca: Optional[str] = None,
        clock_skew: float = 0.0,
        check_time: Optional[bool] = None,
        skew_limit: float = 300.0,
        skew_style: str = "json",
        send_date: bool = True,
        listen: str = "127.0.0.1",
    ):
        self.credentials = [_as_cred(c) for c in credentials]
        self.region = region
        self.service = service
        self.auth = auth
        self.require_token = require_token
        self.max_body_bytes = max_body_bytes
        self.fmt = fmt
        self.strict_body = strict_body
        self.verbose = verbose
        self._responses: list = [self._as_response(r) for r in (responses or [])]
        self._responder = responder
        self._lock = threading.RLock()  # a responder may call the accessors
        self._cond = threading.Condition(self._lock)
        self._requests: list[ReceivedRequest] = []
        self.tls = tuple(str(x) for x in tls) if tls else None
        self.clock_skew = clock_skew
        self.check_time = bool(clock_skew) if check_time is None else check_time
        self.skew_limit = skew_limit
        self.skew_style = skew_style
        self.send_date = send_date
        self._connections = 0
        self.tls_errors: list[str] = []
        # listen: 0.0.0.0 only inside a container (tests/test_containers.py), else loopback
        self.listen = listen
        self._server = _Server((listen, port), _TlsHandler if self.tls else _Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            if tls_client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(str(tls_client_ca))
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self._server.receiver = self
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.listen in ("0.0.0.0", "") else self.listen
        return f"{scheme}://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (TLS: those whose handshake succeeded)."""
        with self._lock:
            return self._connections

    def now(self) -> float:
        """The receiver's clock (real time plus ``clock_skew``)."""
        return time.time() + self.clock_skew

    def _date_header(self) -> Optional[str]:
        if not self.send_date:
            return None
        return email.utils.formatdate(self.now(), usegmt=True)

    def _new_connection(self, h) -> int:
        with self._lock:
            n = self._connections
            self._connections += 1
            return n

    def _tls_error(self, e: BaseException):
        with self._lock:
            self.tls_errors.append(f"{type(e).__name__}: {e}")

    def endpoint(self, path: str = "/logs") -> str:
        return self.url + path

    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"receiver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    @staticmethod
    def _as_response(r) -> Response:
        if isinstance(r, Response):
            return r
        if isinstance(r, int):
            return Response(status=r, body=b'{"message":"scripted %d"}' % r)
        raise TypeError(f"not a Response: {r!r}")

    def script(self, *responses):
        """Queue responses for the next requests, in order."""
        with self._lock:
            self._responses.extend(self._as_response(r) for r in responses)

    def set_responder(self, responder: Optional[Responder]):
        with self._lock:
            self._responder = responder

    # -- accessors ---------------------------------------------------------------------------

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[ReceivedRequest]:
        return [r for r in self.requests() if r.accepted]

    def records(self, path: Optional[str] = None) -> list:
        """Records of accepted requests (the ones the client was told were delivered)."""
        out = []
        for r in self.requests():
            if r.accepted and (path is None or r.path == path):
                out.extend(r.records)
        return out

    def rejections(self) -> list[ReceivedRequest]:
        return [r for r in self.requests() if r.outcome == "rejected"]

    def clear(self):
        with self._lock:
            self._requests.clear()
            self._responses.clear()

    def wait_for_records(self, n: int, timeout: float = 10.0, path: Optional[str] = None) -> list:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                recs = [x for r in self._requests
                        if r.accepted and (path is None or r.path == path) for x in r.records]
                if len(recs) >= n:
                    return recs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(recs)} of {n} records arrived in {timeout}s")
                self._cond.wait(left)

    # -- request handling --------------------------------------------------------------------

    def _handle(self, h: _Handler):
        try:
            raw = h._read_body()
        except (OSError, ValueError):
            h.close_connection = True
            return
        header_list = list(h.headers.items())
        with self._lock:
            idx = len(self._requests)
        req = ReceivedRequest(
            index=idx, method=h.command, path=h.path,
            headers={k.lower(): v for k, v in header_list}, header_list=header_list,
            raw_body=raw, received_at=time.time(), peer=tuple(h.client_address[:2]),
            connection=getattr(h, "conn_index", None))
        if isinstance(h.connection, ssl.SSLSocket):
            try:
                cert = h.connection.getpeercert() or {}
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            req.tls_peer_cn = v
            except (OSError, ValueError):
                pass
        amz_t = _amz_epoch(req.headers.get("x-amz-date"))
        if amz_t is not None:
            req.amz_date_skew = amz_t - (req.received_at + self.clock_skew)
        skewed = (self.check_time and req.amz_date_skew is not None
                  and abs(req.amz_date_skew) > self.skew_limit)
        req.content_encoding = req.headers.get("content-encoding")
        try:
            req.body = decompress(raw, req.content_encoding)
            req.format, req.events = parse_body(req.body, req.headers.get("content-type"),
                                                self.fmt)
            req.records = [record_of(o) for o in req.events]
        except Exception as e:  # noqa: BLE001 - recorded for the test to see
            req.parse_error = f"{type(e).__name__}: {e}"

        with self._lock:
            self._requests.append(req)
            resp = None
            # a request refused for its time consumes no scripted response
            if not skewed and self._responder is not None:
                resp = self._responder(req)
                if resp is not None:
                    resp = self._as_response(resp)
            if not skewed and resp is None and self._responses:
                resp = self._responses.pop(0)

        verify = self.auth and (resp is None or resp.verify)
        if verify:
            v = verify_sigv4(req.method, req.path, header_list, raw, self.credentials,
                             self.region, self.service, self.require_token)
            req.auth_checked = True
            req.auth_ok = v["ok"]
            req.auth_reason = v["reason"]
            req.access_key = v["access_key"]
            req.region = v["region"]
            req.service = v["service"]
            req.signed_headers = v["signed_headers"]

        try:
            if skewed:
                body, hdrs = skew_error_body(self.skew_style, req.headers["x-amz-date"],
                                             req.received_at + self.clock_skew, self.skew_limit)
                self._finish(req, "skewed", 403)
                h._send(403, body, hdrs)
            elif verify and not req.auth_ok:
                self._finish(req, "rejected", 403)
                h._send(403, SIGNATURE_MISMATCH_BODY)
            elif resp is not None and resp.reset == "before":
                self._finish(req, "reset", None)
                h._reset()
            elif resp is not None and resp.reset == "mid_body":
                self._finish(req, "reset", None)
                body = resp.body_bytes() or b'{"message":"' + b"x" * 200 + b'"}'
                h.send_response(resp.status)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h._reset()
            elif resp is not None and resp.stall:
                self._finish(req, "stalled", None)
                time.sleep(resp.stall)
                if resp.reset == "after_stall":
                    req.outcome = "unanswered"
                    h._reset()
                else:
                    h._send(resp.status, resp.body_bytes(), resp.headers)
            elif self.max_body_bytes is not None and len(raw) > self.max_body_bytes:
                self._finish(req, "too_large", 413)
                h._send(413, b'{"message":"Request Entity Too Large"}')
            elif resp is not None:
                ok = 200 <= resp.status < 300
                self._finish(req, "accepted" if ok else "scripted", resp.status)
                h._send(resp.status, resp.body_bytes(), resp.headers)
            elif req.parse_error is not None and self.strict_body:
                self._finish(req, "bad_body", 400)
                h._send(400, json.dumps({"message": req.parse_error}).encode())
            else:
                self._finish(req, "accepted", 200)
                h._send(200, b'{"errors":false}')
        except OSError:
            h.close_connection = True
        if self.verbose:
            print(f"[receiver] #{req.index} {req.method} {req.path} -> {req.outcome} "
                  f"{req.status} records={len(req.records)} auth={req.auth_ok} "
                  f"{req.auth_reason or ''}", flush=True)

    def _finish(self, req: ReceivedRequest, outcome: str, status: Optional[int]):
        with self._cond:
            req.outcome = outcome
            req.status = status
            self._cond.notify_all()


def main(argv: Optional[list] = None):
    ap = argparse.ArgumentParser(description="SigV4-verifying HTTP receiver (botocore)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--access-key")
    ap.add_argument("--secret-key")
    ap.add_argument("--session-token")
    ap.add_argument("--region")
    ap.add_argument("--service")
    ap.add_argument("--no-auth", action="store_true", help="accept unsigned requests")
    ap.add_argument("--require-token", action="store_true")
    ap.add_argument("--print-records", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    ap.add_argument("--log-requests", action="store_true",
                    help="print a REQUEST {json} line per request: path, outcome, key id, records")
    args = ap.parse_args(argv)
    if not args.no_auth and not (args.access_key and args.secret_key):
        ap.error("--access-key and --secret-key are required unless --no-auth")
    creds = [] if args.no_auth else [(args.access_key, args.secret_key, args.session_token)]
    rcv = Receiver(credentials=creds, region=args.region, service=args.service,
                   auth=not args.no_auth, require_token=args.require_token,
                   port=args.port, verbose=True, listen=args.listen)
    rcv.start()
    print(f"listening on {rcv.url}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            reqs = rcv.requests()
            for r in reqs[seen:]:
                if args.log_requests:
                    print("REQUEST " + json.dumps({
                        "index": r.index, "method": r.method, "path": r.path,
                        "outcome": r.outcome, "status": r.status, "auth_ok": r.auth_ok,
                        "auth_reason": r.auth_reason, "access_key": r.access_key,
                        "records": len(r.records)}), flush=True)
                for rec in (r.records if args.print_records and r.accepted else []):
                    print(json.dumps(rec, ensure_ascii=False), flush=True)
            seen = len(reqs)
    except KeyboardInterrupt:
        pass
    finally:
        rcv.stop()


if __name__ == "__main__":
    main()

"""Fake credential endpoints for the end-to-end credential tests: EC2 instance metadata (IMDS),
the ECS / EKS Pod Identity container endpoint, and a short-lived STS — each recording every
request and able to fail on demand.

Each fake is a small threaded HTTP server. ``ns`` (a :class:`tests.helpers.netns.NetNS`, or
anything with ``call(fn)``) makes it bind inside that namespace, which is how the metadata
addresses 169.254.169.254 / 169.254.170.2 / 169.254.170.23 are served without a packet leaving
the test's namespace. Every response carries ``Connection: close``, so :meth:`FakeServer.stop`
really takes the source down (no keep-alive connection survives it).

Credentials issued by the fakes are unique per issue (``ASIA…`` key ids with a per-fake prefix)
and recorded as :class:`Issued` (key, issue time, expiry, who issued it), so tests can check
that every request a receiver saw was signed with a key that was valid at that moment.

Failure modes (attributes, changeable while running): ``hang`` (seconds to stall before
answering; released at stop), ``fail`` (a :class:`Failure`: status + body), ``lifetime``
(seconds credentials live), ``delay`` (seconds before every answer, e.g. a slow STS).

CLI (for demos; the tests use the classes in-process)::

    python -m tests.helpers.fakes imds --host 169.254.169.254 --port 80 [--lifetime 3600]
    python -m tests.helpers.fakes container --host 169.254.170.2 --port 80 --path /v2/creds/x
    python -m tests.helpers.fakes sts --host 127.0.0.1 --port 4566 --base-key AKID:SECRET
"""

from __future__ import annotations

import argparse
import calendar
import datetime as _dt
import itertools
import json
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from tests.helpers import leaks
from tests.helpers.receiver import CredentialSet, _as_cred, verify_sigv4

_AKID_RE = re.compile(r"Credential=([A-Z0-9]+)/")


def iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Issued:
    """One set of credentials a fake handed out."""

    access_key: str
    secret_key: str
    token: str
    issued_at: float
    expires_at: float
    issuer: str  # "imds", "container", "sts"
    role: Optional[str] = None
    action: Optional[str] = None

    @property
    def cred(self) -> CredentialSet:
        return CredentialSet(self.access_key, self.secret_key, self.token)

    def valid_at(self, t: float) -> bool:
        return self.issued_at - 1 <= t < self.expires_at


@dataclass
class Call:
    """One request a fake received."""

    index: int
    time: float
    method: str
    path: str
    headers: dict  # lower-case name -> value
    body: bytes
    status: Optional[int] = None
    note: str = ""
    # STS only
    action: Optional[str] = None
    params: dict = field(default_factory=dict)
    signing_key: Optional[str] = None
    auth_ok: Optional[bool] = None
    auth_reason: Optional[str] = None
    issued: Optional[Issued] = None


@dataclass
class Failure:
    status: int
    body: str
    content_type: str = "text/xml"


_counter = itertools.count(1)


def make_tls(directory: Path, ip: str) -> tuple:
    """A throw-away CA and a server certificate for ``ip`` signed by it. Returns (ca_pem_path,
    server SSLContext)."""
    from tests.helpers.tls import make_pki

    pki = make_pki(directory, ips=(ip,), names=())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki["server_cert"]), str(pki["server_key"]))
    return pki["ca"], ctx


def new_credentials(prefix: str, issuer: str, lifetime: float, role: Optional[str] = None,
                    action: Optional[str] = None) -> Issued:
    n = next(_counter)
    # ASIA + 16 characters: <prefix padded to 6><counter 6><random 4>, all [A-Z0-9]
    p = re.sub(r"[^A-Z0-9]", "", prefix.upper())[:6].ljust(6, "X")
    akid = f"ASIA{p}{n:06d}{secrets.token_hex(2).upper()}"
    now = time.time()
    iss = Issued(
        access_key=akid,
        secret_key=secrets.token_urlsafe(30)[:40],
        token="FQoG" + secrets.token_urlsafe(96),
        issued_at=now,
        expires_at=now + lifetime,
        issuer=issuer,
        role=role,
        action=action,
    )
    leaks.register_issued(iss)  # every host run's output is searched for it
    return iss


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flbt-fake/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _any(self):
        fake: FakeServer = self.server.fake
        try:
            body = self._body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        fake._dispatch(self, body)

    do_GET = do_PUT = do_POST = do_DELETE = _any


class FakeServer:
    """A recording HTTP server; subclasses implement :meth:`respond`."""

    kind = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ns=None,
                 tls: Optional[ssl.SSLContext] = None):
        self.host = host
        self.port = port
        self.ns = ns
        self.tls = tls
        self.hang: float = 0.0
        self.delay: float = 0.0
        # seconds this server's clock is ahead of the real one (its Date header says so)
        self.clock_skew: float = 0.0
        self.fail: Optional[Failure] = None
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._issued: list[Issued] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._release = threading.Event()
        self.on_issue: list[Callable[[Issued], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def _bind(self):
        srv = ThreadingHTTPServer((self.host, self.port), _Handler)
        if self.tls is not None:
            srv.socket = self.tls.wrap_socket(srv.socket, server_side=True)
        srv.daemon_threads = True
        srv.block_on_close = False
        srv.fake = self
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"{self.kind}-{self.host}:{srv.server_address[1]}",
                                  daemon=True)
        thread.start()
        return srv, thread

    def start(self) -> "FakeServer":
        self._release.clear()
        srv, thread = self.ns.call(self._bind) if self.ns is not None else self._bind()
        self._server, self._thread = srv, thread
        self.port = srv.server_address[1]
        return self

    def stop(self):
        """Takes the server down: the port refuses connections until :meth:`start`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- records ---------------------------------------------------------------------------

    def calls(self, method: Optional[str] = None, path: Optional[str] = None) -> list[Call]:
        with self._lock:
            out = list(self._calls)
        return [c for c in out if (method is None or c.method == method)
                and (path is None or c.path == path)]

    def issued(self) -> list[Issued]:
        with self._lock:
            return list(self._issued)

    def issued_by_key(self) -> dict:
        return {i.access_key: i for i in self.issued()}

    def clear(self):
        with self._lock:
            self._calls.clear()

    def _record_issue(self, issued: Issued):
        with self._lock:
            self._issued.append(issued)
        for cb in list(self.on_issue):
            cb(issued)

    # -- request handling ------------------------------------------------------------------

    def _dispatch(self, h: _Handler, body: bytes):
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            call = Call(index=len(self._calls), time=time.time(), method=h.command,
                        path=h.path, headers=headers, body=body)
            self._calls.append(call)
        if self.hang:
            self._release.wait(self.hang)
            h.close_connection = True
            return
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            status, ctype, out = self.fail.status, self.fail.content_type, self.fail.body
            call.note = "scripted failure"
        else:
            status, ctype, out = self.respond(call)
        call.status = status
        data = out.encode() if isinstance(out, str) else out
        try:
            h.send_response_only(status)
            h.send_header("Server", h.version_string())
            h.send_header("Date", h.date_time_string(time.time() + self.clock_skew))
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True

    def respond(self, call: Call):  # pragma: no cover - overridden
        return 404, "text/plain", "not found"


# ------------------------------------------------------------------------------------------------
# EC2 instance metadata


class FakeIMDS(FakeServer):
    """IMDSv2 (token, then role, then credentials) on ``host:port`` (169.254.169.254:80 in the
    tests). ``v1``: the token PUT is refused with 403 and requests without a token are served
    (an IMDSv1-only instance); otherwise requests without a valid token get 401."""

    kind = "imds"
    CREDS_PATH = "/latest/meta-data/iam/security-credentials/"

    def __init__(self, host="169.254.169.254", port=80, ns=None, role="flbt-instance-role",
                 lifetime: float = 3600, region="eu-west-3", v1: bool = False):
        super().__init__(host, port, ns)
        self.role = role
        self.lifetime = lifetime
        self.region = region
        self.v1 = v1
        self.tokens: set = set()
        # when set: the body served for the role's credentials (a broken document)
        self.broken_credentials: Optional[str] = None

    def credential_calls(self) -> list[Call]:
        return [c for c in self.calls("GET") if c.path == self.CREDS_PATH + self.role]

    def respond(self, call: Call):
        if call.method == "PUT" and call.path == "/latest/api/token":
            if self.v1:
                return 403, "text/plain", "Forbidden"
            ttl = call.headers.get("x-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                call.note = "token PUT without a valid TTL header"
                return 400, "text/plain", "Bad Request"
            tok = "IMDSTOKEN-" + secrets.token_urlsafe(24)
            leaks.register("IMDS session token", tok)
            with self._lock:
                self.tokens.add(tok)
            return 200, "text/plain", tok
        if call.method != "GET":
            return 405, "text/plain", "Method Not Allowed"
        if not self.v1:
            tok = call.headers.get("x-aws-ec2-metadata-token")
            with self._lock:
                ok = tok in self.tokens
            if not ok:
                call.note = "missing or unknown session token"
                return 401, "text/plain", "Unauthorized"
        if call.path == self.CREDS_PATH:
            return 200, "text/plain", self.role + "\n"
        if call.path == self.CREDS_PATH + self.role:
            if self.broken_credentials is not None:
                return 200, "application/json", self.broken_credentials
            iss = new_credentials("IMDS", "imds", self.lifetime, role=self.role)
            self._record_issue(iss)
            doc = {"Code": "Success", "LastUpdated": iso(iss.issued_at), "Type": "AWS-HMAC",
                   "AccessKeyId": iss.access_key, "SecretAccessKey": iss.secret_key,
                   "Token": iss.token, "Expiration": iso(iss.expires_at)}
            return 200, "application/json", json.dumps(doc)
        if call.path == "/latest/meta-data/placement/region":
            return 200, "text/plain", self.region
        return 404, "text/plain", "Not Found"


# ------------------------------------------------------------------------------------------------
# ECS / EKS Pod Identity container endpoint


class FakeContainer(FakeServer):
    """``GET path`` → container credentials JSON. ``auth_token``: the exact ``Authorization``
    value required (EKS Pod Identity); a request without it, or with another value, gets 401
    / 403 and is recorded with a note."""

    kind = "container"

    def __init__(self, host="169.254.170.2", port=80, ns=None, path="/v2/credentials/flbt",
                 auth_token: Optional[str] = None, lifetime: float = 3600,
                 prefix: str = "ECS"):
        super().__init__(host, port, ns)
        self.path = path
        self.auth_token = auth_token
        self.lifetime = lifetime
        self.prefix = prefix

    def respond(self, call: Call):
        if call.method != "GET" or call.path != self.path:
            return 404, "application/json", '{"message":"not found"}'
        if self.auth_token is not None:
            got = call.headers.get("authorization")
            if got is None:
                call.note = "no Authorization header"
                return 401, "application/json", '{"message":"missing authorization"}'
            if got != self.auth_token:
                call.note = "wrong Authorization header"
                return 403, "application/json", '{"message":"bad authorization"}'
        iss = new_credentials(self.prefix, "container", self.lifetime,
                              role="arn:aws:iam::123456789012:role/flbt-task")
        self._record_issue(iss)
        doc = {"AccessKeyId": iss.access_key, "SecretAccessKey": iss.secret_key,
               "Token": iss.token, "Expiration": iso(iss.expires_at),
               "RoleArn": iss.role}
        return 200, "application/json", json.dumps(doc)


# ------------------------------------------------------------------------------------------------
# STS


def sts_error(code: str, message: str, status: int = 403, type_: str = "Sender") -> Failure:
    body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            f"<Type>{type_}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>")
    return Failure(status, body)


class FakeSTS(FakeServer):
    """``AssumeRole`` and ``AssumeRoleWithWebIdentity`` (Query API, POST form) issuing
    credentials that live ``lifetime`` seconds (whatever ``DurationSeconds`` asks).

    ``AssumeRole`` must be SigV4-signed (service ``sts``) by a key in ``base_credentials`` or by
    a key this STS issued; the signature is verified with botocore. Like AWS it refuses:
    a bad signature (403 ``SignatureDoesNotMatch``), an expired signing key (403
    ``ExpiredToken``), and — the rule the tests rely on — an ``AssumeRole`` signed with an
    assumed-role session of the *same* role (403 ``AccessDenied``). ``web_identity_token``:
    the token ``AssumeRoleWithWebIdentity`` must carry (else 400 ``InvalidIdentityToken``);
    None accepts any non-empty token. ``malformed``: answer 200 with broken XML.
    ``clock_skew``: seconds STS's clock is ahead of the real one; like AWS, an ``AssumeRole``
    whose ``X-Amz-Date`` is more than 5 minutes off that clock is refused (403
    ``SignatureDoesNotMatch``, "Signature expired" / "Signature not yet current"), and ``Date``
    tells the skewed time.
    """

    kind = "sts"

    def __init__(self, host="127.0.0.1", port=0, ns=None, base_credentials: Iterable = (),
                 lifetime: float = 3600, web_identity_token: Optional[str] = None,
                 tls: Optional[ssl.SSLContext] = None, clock_skew: float = 0.0):
        super().__init__(host, port, ns, tls=tls)
        self.clock_skew = clock_skew
        self.base_credentials = [_as_cred(c) for c in base_credentials]
        self.lifetime = lifetime
        self.web_identity_token = web_identity_token
        self.malformed = False

    def _time_refusal(self, amz_date: str) -> Optional[str]:
        """AWS's message when ``amz_date`` is more than 5 minutes from this STS's clock."""
        try:
            signed = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None
        now = time.time() + self.clock_skew
        fmt = lambda t: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))  # noqa: E731
        if signed < now - 300:
            return (f"Signature expired: {amz_date} is now earlier than {fmt(now - 300)} "
                    f"({fmt(now)} - 5 min.)")
        if signed > now + 300:
            return (f"Signature not yet current: {amz_date} is still later than "
                    f"{fmt(now + 300)} ({fmt(now)} + 5 min.)")
        return None

    def role_tag(self, role_arn: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "", role_arn.rsplit("/", 1)[-1])[:6] or "ROLE"

    def calls_of(self, action: str) -> list[Call]:
        return [c for c in self.calls("POST") if c.action == action]

    def issued_for(self, role_arn: str) -> list[Issued]:
        return [i for i in self.issued() if i.role == role_arn]

    def _xml(self, action: str, iss: Issued, role_arn: str, session: str) -> str:
        extra = ""
        if action == "AssumeRoleWithWebIdentity":
            extra = ("<SubjectFromWebIdentityToken>system:serviceaccount:ns:sa"
                     "</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>"
                     "<Provider>oidc.example</Provider>")
        return (f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<{action}Result>{extra}<Credentials>"
                f"<AccessKeyId>{iss.access_key}</AccessKeyId>"
                f"<SecretAccessKey>{iss.secret_key}</SecretAccessKey>"
                f"<SessionToken>{iss.token}</SessionToken>"
                f"<Expiration>{iso(iss.expires_at)}</Expiration></Credentials>"
                f"<AssumedRoleUser><AssumedRoleId>AROAFLBT:{session}</AssumedRoleId>"
                f"<Arn>{role_arn.replace(':iam:', ':sts:').replace(':role/', ':assumed-role/')}"
                f"/{session}</Arn></AssumedRoleUser></{action}Result>"
                f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId>"
                f"</ResponseMetadata></{action}Response>")

    def respond(self, call: Call):
        if call.method != "POST":
            return 405, "text/plain", "Method Not Allowed"
        params = {k: v[0] for k, v in urllib.parse.parse_qs(
            call.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        call.params = params
        call.action = action = params.get("Action")
        role_arn = params.get("RoleArn", "")
        session = params.get("RoleSessionName", "s")
        if action == "AssumeRole":
            skewed = self._time_refusal(call.headers.get("x-amz-date", ""))
            if skewed is not None:
                call.note = "request time too far from STS's clock"
                f = sts_error("SignatureDoesNotMatch", skewed)
                return f.status, "text/xml", f.body
            auth = call.headers.get("authorization", "")
            m = _AKID_RE.search(auth)
            call.signing_key = m.group(1) if m else None
            issued = self.issued_by_key()
            creds = self.base_credentials + [i.cred for i in issued.values()]
            v = verify_sigv4("POST", call.path, list(call.headers.items()), call.body, creds,
                             service="sts", endpoint_rules=False)
            call.auth_ok, call.auth_reason = v["ok"], v["reason"]
            if not v["ok"]:
                known = {c.access_key for c in creds}
                if call.signing_key and call.signing_key not in known:
                    f = sts_error("InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
                else:
                    f = sts_error("SignatureDoesNotMatch",
                                  "The request signature we calculated does not match the "
                                  "signature you provided.")
                return f.status, "text/xml", f.body
            signer = issued.get(call.signing_key)
            if signer is not None and time.time() >= signer.expires_at:
                call.note = "signed with an expired key"
                f = sts_error("ExpiredToken", "The security token included in the request is "
                                              "expired")
                return f.status, "text/xml", f.body
            if signer is not None and signer.role == role_arn:
                call.note = "signed with an assumed-role session of the same role"
                f = sts_error("AccessDenied",
                              f"User: {role_arn} assumed-role session is not authorized to "
                              f"perform: sts:AssumeRole on resource: {role_arn}")
                return f.status, "text/xml", f.body
        elif action == "AssumeRoleWithWebIdentity":
            tok = params.get("WebIdentityToken", "")
            if not tok or (self.web_identity_token is not None
                           and tok != self.web_identity_token):
                call.note = "bad web identity token"
                f = sts_error("InvalidIdentityToken", "Couldn't retrieve verification key "
                                                      "from your identity provider", 400)
                return f.status, "text/xml", f.body
        else:
            f = sts_error("InvalidAction", f"Could not find operation {action}", 400)
            return f.status, "text/xml", f.body
        if not role_arn.startswith("arn:"):
            f = sts_error("ValidationError", "RoleArn is not an ARN", 400)
            return f.status, "text/xml", f.body
        if self.malformed:
            return 200, "text/xml", f"<{action}Response><{action}Result><Credentials>" \
                                    "<AccessKeyId>ASIATRUNCATED"
        iss = new_credentials(self.role_tag(role_arn), "sts", self.lifetime, role=role_arn,
                              action=action)
        call.issued = iss
        self._record_issue(iss)
        return 200, "text/xml", self._xml(action, iss, role_arn, session)


# ------------------------------------------------------------------------------------------------
# CLI


def main(argv: Optional[Sequence[str]] = None):
    ap = argparse.ArgumentParser(description="fake IMDS / container / STS endpoints")
    ap.add_argument("kind", choices=["imds", "container", "sts"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=3600)
    ap.add_argument("--path", default="/v2/credentials/flbt")
    ap.add_argument("--auth-token")
    ap.add_argument("--base-key", action="append", default=[],
                    help="AKID:SECRET[:TOKEN] allowed to sign AssumeRole (sts)")
    args = ap.parse_args(argv)
    if args.kind == "imds":
        fake = FakeIMDS(args.host, args.port or 80, lifetime=args.lifetime)
    elif args.kind == "container":
        fake = FakeContainer(args.host, args.port or 80, path=args.path,
                             auth_token=args.auth_token, lifetime=args.lifetime)
    else:
        base = [tuple(k.split(":", 2)) for k in args.base_key]
        fake = FakeSTS(args.host, args.port, base_credentials=base, lifetime=args.lifetime)
    fake.start()
    print(f"{args.kind} listening on {fake.url}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            calls = fake.calls()
            for c in calls[seen:]:
                print(f"[{args.kind}] {c.method} {c.path} -> {c.status} {c.action or ''} "
                      f"{c.signing_key or ''} {c.note}", flush=True)
            seen = len(calls)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

"""IAM Identity Center (SSO) for the end-to-end credential tests: a fake SSO portal (and SSO-OIDC
token endpoint) that the plugin reaches under its real host names, the AWS CLI's token cache,
and the TLS material for it.

* :func:`make_tls` — a throw-away CA and a server certificate for DNS names (tests/helpers/tls.py); the
  tests trust the CA with ``AWS_CA_BUNDLE``.
* :func:`write_token_cache` — ``$HOME/.aws/sso/cache/<sha1(key)>.json`` as ``aws sso login``
  writes it; ``key`` is the ``sso_session`` name, or the ``sso_start_url`` for legacy profiles
  (aws-config 1.x ``sso/cache.rs``: ``cached_token_path``).
* :class:`FakeIdentityCenter` — ``GET /federation/credentials?account_id=…&role_name=…`` with
  the ``x-amz-sso_bearer_token`` header (``sso:GetRoleCredentials``, what the portal
  ``portal.sso.<region>.amazonaws.com`` serves) answering
  ``{"roleCredentials": {accessKeyId, secretAccessKey, sessionToken, expiration (ms)}}``, and
  ``POST /token`` (``sso-oidc:CreateToken`` with ``grantType refresh_token``, what
  ``oidc.<region>.amazonaws.com`` serves). Both names can point at one server (its certificate
  carries both). Every request is recorded (:class:`tests.helpers.fakes.Call`); credentials
  are issued as :class:`tests.helpers.fakes.Issued`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Optional, Sequence

from tests.helpers import leaks
from tests.helpers.fakes import Call, FakeServer, new_credentials

ROLE_CREDENTIALS_PATH = "/federation/credentials"
# in the portal's error bodies beyond the message: a log line that shows it dumped the raw body
RAW_BODY_MARKER = "flbt-raw-portal-response-body"


def portal_host(region: str) -> str:
    return f"portal.sso.{region}.amazonaws.com"


def oidc_host(region: str) -> str:
    return f"oidc.{region}.amazonaws.com"


def make_tls(directory: Path, dns_names: Sequence[str], ips: Iterable[str] = ()) -> tuple:
    """A throw-away CA and a server certificate for ``dns_names`` (and ``ips``) signed by it.
    Returns (ca_pem_path, server SSLContext)."""
    from tests.helpers.tls import make_pki

    pki = make_pki(directory, ips=tuple(ips), names=tuple(dns_names))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki["server_cert"]), str(pki["server_key"]))
    return pki["ca"], ctx


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cache_path(home: Path, key: str) -> Path:
    """Where the AWS CLI (and aws-config) keep the token for ``key``."""
    name = hashlib.sha1(key.encode("utf-8")).hexdigest() + ".json"
    return Path(home) / ".aws" / "sso" / "cache" / name


def write_token_cache(home: Path, key: str, access_token: str, expires_at: float, *,
                      start_url: str, region: str, client_id: Optional[str] = None,
                      client_secret: Optional[str] = None,
                      refresh_token: Optional[str] = None,
                      registration_expires_at: Optional[float] = None) -> Path:
    """Writes the cached token file ``aws sso login`` leaves behind (mode 0600). The refresh
    fields (all four needed) make the token refreshable through SSO-OIDC."""
    doc = {"startUrl": start_url, "region": region, "accessToken": access_token,
           "expiresAt": _iso(expires_at)}
    if client_id is not None:
        doc.update(clientId=client_id, clientSecret=client_secret, refreshToken=refresh_token,
                   registrationExpiresAt=_iso(registration_expires_at or time.time() + 86400))
    # every host run's output is searched for these (tests/helpers/leaks.py)
    leaks.register("SSO access token", access_token)
    for name, value in (("SSO client secret", client_secret), ("SSO refresh token", refresh_token)):
        if value:
            leaks.register(name, value)
    p = cache_path(home, key)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))
    p.chmod(0o600)
    return p


def read_token_cache(home: Path, key: str) -> dict:
    return json.loads(cache_path(home, key).read_text())


class FakeIdentityCenter(FakeServer):
    """The SSO portal's ``GetRoleCredentials`` and SSO-OIDC's ``CreateToken`` (refresh).

    ``access_tokens``: bearer tokens the portal accepts (a request without one of them gets 401
    ``UnauthorizedException``); ``account_id`` / ``role_name``: the only role it serves (another
    gets 403 ``ForbiddenException``). ``client`` = (client_id, client_secret, refresh_token):
    what ``CreateToken`` must receive; it then issues a new access token (accepted from then
    on) and a new refresh token. Credentials live ``lifetime`` seconds."""

    kind = "sso"

    def __init__(self, host: str, port: int = 443, ns=None, tls: Optional[ssl.SSLContext] = None,
                 access_tokens: Iterable[str] = (), account_id: str = "111122223333",
                 role_name: str = "FlbtWriter", lifetime: float = 3600,
                 client: Optional[tuple] = None):
        super().__init__(host, port, ns, tls=tls)
        self.access_tokens = set(access_tokens)
        self.account_id = account_id
        self.role_name = role_name
        self.lifetime = lifetime
        self.client = client
        self.minted_tokens: list[str] = []
        self._mint_lock = threading.Lock()

    def credential_calls(self) -> list[Call]:
        return [c for c in self.calls("GET")
                if urllib.parse.urlsplit(c.path).path == ROLE_CREDENTIALS_PATH]

    def token_calls(self) -> list[Call]:
        return self.calls("POST", "/token")

    def respond(self, call: Call):
        url = urllib.parse.urlsplit(call.path)
        if call.method == "GET" and url.path == ROLE_CREDENTIALS_PATH:
            q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            call.params = q
            bearer = call.headers.get("x-amz-sso_bearer_token")
            if bearer is None or bearer not in self.access_tokens:
                call.note = "missing or unknown x-amz-sso_bearer_token"
                return 401, "application/json", json.dumps(
                    {"__type": "UnauthorizedException",
                     "message": "Session token not found or invalid",
                     "detail": RAW_BODY_MARKER})
            if q.get("account_id") != self.account_id or q.get("role_name") != self.role_name:
                call.note = f"no such role {q.get('account_id')}/{q.get('role_name')}"
                return 403, "application/json", json.dumps(
                    {"__type": "ForbiddenException", "message": "No access"})
            iss = new_credentials("SSO", "sso", self.lifetime,
                                  role=f"arn:aws:iam::{self.account_id}:role/{self.role_name}")
            call.issued = iss
            self._record_issue(iss)
            doc = {"roleCredentials": {"accessKeyId": iss.access_key,
                                       "secretAccessKey": iss.secret_key,
                                       "sessionToken": iss.token,
                                       "expiration": int(iss.expires_at * 1000)}}
            return 200, "application/json", json.dumps(doc)
        if call.method == "POST" and url.path == "/token":
            try:
                req = json.loads(call.body or b"{}")
            except ValueError:
                return 400, "application/json", json.dumps(
                    {"error": "invalid_request", "__type": "InvalidRequestException"})
            call.params = {k: v for k, v in req.items() if k in ("clientId", "grantType")}
            want = self.client
            if (want is None or req.get("grantType") != "refresh_token"
                    or (req.get("clientId"), req.get("clientSecret"),
                        req.get("refreshToken")) != tuple(want)):
                call.note = "bad client or refresh token"
                return 400, "application/json", json.dumps(
                    {"error": "invalid_grant", "__type": "InvalidGrantException"})
            with self._mint_lock:
                new_access = "SSOACCESS-" + secrets.token_urlsafe(32)
                new_refresh = "SSOREFRESH-" + secrets.token_urlsafe(32)
                leaks.register("SSO refreshed access token", new_access)
                leaks.register("SSO refreshed refresh token", new_refresh)
                self.access_tokens.add(new_access)
                self.minted_tokens.append(new_access)
                self.client = (want[0], want[1], new_refresh)
            return 200, "application/json", json.dumps(
                {"accessToken": new_access, "tokenType": "Bearer", "expiresIn": 3600,
                 "refreshToken": new_refresh})
        return 404, "application/json", json.dumps({"message": "not found"})

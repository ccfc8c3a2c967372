"""Suite-wide secret scan (issue 5, "Secrets"; DESIGN §8).

Every host run of the suite (:func:`tests.helpers.host.run_host` and
:class:`tests.helpers.faults.HostRun`, hence every test and the soak command) ends with
:func:`check_run`: every byte the host process wrote (stdout with the summary, stderr with every
plugin log line, panic message and child-process output) is searched for every secret known at
that moment, and a hit raises :class:`SecretLeak` (an ``AssertionError``: the test fails).

The secrets searched for:

* the registry (:func:`register`): the suite's fixed credentials (tests/conftest.py), every
  test module's secret-looking globals (:func:`register_module`, called by tests/conftest.py at
  collection: ``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*`` strings, credential tuples
  ``(AKID…, secret[, token])``, and ``user:password`` Basic auth for ``X_USER``/``X_PASSWORD``
  pairs), and every credential set the fake IMDS / container / STS endpoints issue
  (tests/helpers/fakes.py registers them when issued), IMDS session tokens included;
* what the run itself was given (:func:`secrets_of_run`): secret environment variables
  (``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` …), the
  contents of token files (``AWS_WEB_IDENTITY_TOKEN_FILE``,
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``), ``aws_secret_access_key`` / ``aws_session_token``
  of the shared config and credentials files, the secrets in the JSON a ``credential_process``
  script prints (read from the script's text), secret-named properties of the Fluent Bit
  config, and the password of every ``scheme://user:password@`` URL in the environment or the
  config (with its Basic-auth base64).

Each is searched in its raw form, JSON-escaped, URL-quoted (``quote`` and ``quote_plus``) and as
any 16-character piece of those (a truncated or partly masked secret still counts); pieces with
fewer than 5 distinct characters are skipped (``xxxx…`` padding is not a secret). Values shorter
than 8 characters are not registered.

``FLB_SIGV4_LEAK_SCAN=0`` turns the scan off (for debugging a leak with the full output).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Mapping, Optional

WINDOW = 16
_STRIDE = WINDOW // 2
MIN_LEN = 8
MIN_DISTINCT = 5


class SecretLeak(AssertionError):
    pass


def forms(secret: str) -> set:
    """The ways a secret could show up in text."""
    out = {secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
           urllib.parse.quote_plus(secret)}
    return {f for f in out if f}


def pieces(secret: str) -> set:
    if len(secret) <= WINDOW:
        return {secret}
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Secrets:
    """A set of named secrets with a fast search for any 16-character piece of any form."""

    def __init__(self, items: Optional[Mapping[str, str]] = None):
        self._lock = threading.Lock()
        self.values: dict = {}  # value -> name
        self._whole: dict = {}  # form shorter than WINDOW -> name
        self._p16: dict = {}  # 16-char piece -> name
        self._p8: set = set()  # the aligned 8-char halves of the 16-char pieces
        for name, value in (items or {}).items():
            self.add(name, value)

    def add(self, name: str, value, min_len: int = MIN_LEN) -> bool:
        if not isinstance(value, str):
            return False
        value = value.strip()
        if len(value) < min_len:
            return False
        with self._lock:
            if value in self.values:
                return False
            self.values[value] = name
            for f in forms(value):
                if len(f) < WINDOW:
                    self._whole.setdefault(f, name)
                    continue
                for p in pieces(f):
                    if len(set(p)) < MIN_DISTINCT:
                        continue
                    self._p16.setdefault(p, name)
                    for j in range(WINDOW - _STRIDE + 1):
                        self._p8.add(p[j:j + _STRIDE])
        return True

    def update(self, other: "Secrets"):
        with other._lock:
            items = list(other.values.items())
        for value, name in items:
            self.add(name, value)

    def __len__(self):
        return len(self.values)

    def find(self, blob, limit: int = 10) -> list:
        """(name, piece, context) for secrets found in ``blob`` (bytes or str)."""
        text = blob.decode("utf-8", "replace") if isinstance(blob, (bytes, bytearray)) else blob
        with self._lock:
            whole, p16, p8 = dict(self._whole), dict(self._p16), set(self._p8)
        hits, seen = [], set()

        def hit(name, p, i):
            if name not in seen:
                seen.add(name)
                hits.append((name, p, text[max(0, i - 80):i + len(p) + 80]))

        for f, name in whole.items():
            i = text.find(f)
            if i >= 0:
                hit(name, f, i)
        # Any 16-character substring of the text covers an 8-aligned block of 8 characters, so
        # looking up only the aligned blocks finds every candidate; each is then checked.
        n = len(text)
        for k in range(0, n - _STRIDE + 1, _STRIDE):
            if text[k:k + _STRIDE] not in p8:
                continue
            for s in range(max(0, k - (WINDOW - _STRIDE)), min(k, n - WINDOW) + 1):
                name = p16.get(text[s:s + WINDOW])
                if name is not None:
                    hit(name, text[s:s + WINDOW], s)
                    break
            if len(hits) >= limit:
                break
        return hits


REGISTRY = Secrets()


def register(name: str, value) -> bool:
    """Adds a secret every host run of the session is searched for."""
    return REGISTRY.add(name, value)


def register_issued(iss) -> None:
    """Registers the secret key and session token of a :class:`tests.helpers.fakes.Issued`."""
    register(f"{iss.issuer} issued secret key", iss.secret_key)
    register(f"{iss.issuer} issued session token", iss.token)


_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD")
_NOT_SECRET_NAME = re.compile(r"(_FILE|_PATH|_URL|_URI|_ENV|_RE|_BODY|_NAME|_HEADER|_VAR|S)$")
_AKID = re.compile(r"^(AKIA|ASIA|AKID)[A-Z0-9]{4,}$")


def register_module(module) -> list:
    """Registers the secret-looking globals of a test module; returns their names."""
    found = []
    g = vars(module)
    for name, value in g.items():
        if not name.isupper() or name.startswith("_"):
            continue
        label = f"{module.__name__}.{name}"
        if isinstance(value, str) and _SECRET_NAME.search(name) \
                and not _NOT_SECRET_NAME.search(name):
            if register(label, value):
                found.append(name)
        elif isinstance(value, tuple) and value and isinstance(value[0], str) \
                and _AKID.match(value[0]):
            for i, v in enumerate(value[1:], 1):
                if register(f"{label}[{i}]", v):
                    found.append(f"{name}[{i}]")
        if name.endswith("_PASSWORD") and isinstance(value, str):
            user = g.get(name[: -len("PASSWORD")] + "USER")
            if isinstance(user, str) and register(f"{label} (Basic auth)",
                                                  basic_auth(user, value)):
                found.append(f"{name} (Basic auth)")
    return found


# ------------------------------------------------------------------------------------------------
# what a run was given

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
              "AWS_CONTAINER_AUTHORIZATION_TOKEN")
TOKEN_FILE_ENV = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
_USERINFO = re.compile(r"://([^:/@\s\[\]]*):([^@\s]+)@")
_INI_SECRET = re.compile(r"(?im)^\s*(aws_secret_access_key|aws_session_token|aws_security_token)"
                         r"\s*=\s*(\S.*?)\s*$")
_INI_PROCESS = re.compile(r"(?im)^\s*credential_process\s*=\s*(\S+)")
_JSON_SECRET = re.compile(r'"(SecretAccessKey|SessionToken|Token)"\s*:\s*"([^"$%\\]+)"')
_CONF_SECRET = re.compile(r"(?im)^\s*(\S*(?:secret|token|password|passwd)\S*)\s+(\S.*?)\s*$")
_CONF_NOT_SECRET = re.compile(r"(?i)(file|path|url|uri|endpoint|arn|name)$")


def _read(path, limit: int = 1 << 16) -> str:
    try:
        p = Path(path)
        if p.is_file() and p.stat().st_size <= limit:
            return p.read_text(errors="replace")
    except OSError:
        pass
    return ""


def _urls(text: str, where: str, out: Secrets):
    for m in _USERINFO.finditer(text):
        user, pw = m.group(1), urllib.parse.unquote(m.group(2))
        out.add(f"password in a URL ({where})", pw)
        out.add(f"password in a URL ({where}), as the raw userinfo", m.group(2))
        out.add(f"Basic auth of a URL ({where})", basic_auth(urllib.parse.unquote(user), pw))


def secrets_of_run(env: Mapping[str, str], config: Optional[Path] = None) -> Secrets:
    """The secrets a host run was handed: see the module docstring."""
    out = Secrets()
    for k in SECRET_ENV:
        if env.get(k):
            out.add(f"${k}", env[k])
    for k in TOKEN_FILE_ENV:
        if env.get(k):
            out.add(f"contents of ${k}", _read(env[k]))
    for k, v in env.items():
        if "proxy" in k.lower() and v:
            _urls(v, f"${k}", out)
    home = env.get("HOME")
    files = [env.get("AWS_SHARED_CREDENTIALS_FILE"), env.get("AWS_CONFIG_FILE")]
    if home:
        files += [os.path.join(home, ".aws", "credentials"), os.path.join(home, ".aws", "config")]
    for f in filter(None, files):
        text = _read(f)
        for m in _INI_SECRET.finditer(text):
            out.add(f"{m.group(1)} in {f}", m.group(2))
        for m in _INI_PROCESS.finditer(text):
            for j in _JSON_SECRET.finditer(_read(m.group(1))):
                out.add(f"{j.group(1)} printed by credential_process {m.group(1)}", j.group(2))
    if config is not None:
        text = _read(config)
        _urls(text, "config", out)
        for m in _CONF_SECRET.finditer(text):
            if not _CONF_NOT_SECRET.search(m.group(1)):
                out.add(f"config property {m.group(1)}", m.group(2))
    return out


def enabled() -> bool:
    return os.environ.get("FLB_SIGV4_LEAK_SCAN", "1") != "0"


def check_run(blob: bytes, env: Mapping[str, str], config: Optional[Path] = None,
              what: str = "host") -> int:
    """Raises :class:`SecretLeak` when ``blob`` (the host's stdout + stderr) contains a registered
    secret or one the run was given; returns how many secrets were searched for."""
    if not enabled():
        return 0
    found = secrets_of_run(env, config)
    found.update(REGISTRY)
    hits = found.find(blob)
    if hits:
        raise SecretLeak(f"secrets in the {what}'s output (DESIGN §8):\n" + "\n".join(
            f"  {name}: {piece!r} in ...{ctx!r}..." for name, piece, ctx in hits))
    return len(found)


def find_leaks(blob, secrets: Mapping[str, str]) -> list:
    """(name, piece, context) for every secret of ``secrets`` (name -> value), or 16-character
    piece of one, found in ``blob``; values of any length are searched."""
    s = Secrets()
    for name, value in secrets.items():
        s.add(name, value, min_len=1)
    return s.find(blob, limit=len(secrets) + 1)

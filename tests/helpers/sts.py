"""moto's server as a real STS for the tests (``python3 -m moto.server -H HOST -p PORT``), run
inside the test's network namespace.

moto accepts any signature, so it cannot tell WHICH key signed an ``AssumeRole`` (the tests use
:class:`tests.helpers.fakes.FakeSTS` for that); what it offers is a real STS implementation
whose issued credentials can be read back from ``/moto-api/data.json``
(:meth:`MotoServer.assumed_roles`), so a verifying receiver can check that records were signed
with exactly the credentials moto issued.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Optional

from tests.helpers.receiver import CredentialSet


def available() -> bool:
    return (importlib.util.find_spec("moto") is not None
            and importlib.util.find_spec("flask") is not None)


class MotoServer:
    def __init__(self, ns, workdir: Path, host: str = "127.0.0.1", port: Optional[int] = None):
        self.ns = ns
        self.host = host
        self.port = port or ns.free_port(host)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "moto.out"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> "MotoServer":
        out = open(self.out, "wb")
        try:
            self.proc = self.ns.popen([sys.executable, "-m", "moto.server", "-H", self.host,
                                       "-p", str(self.port)], stdout=out,
                                      stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.ns.wait_port(self.host, self.port, timeout=timeout, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.ns.forget(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _get(self, path: str) -> bytes:
        def fetch():
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(self.url + path, timeout=10) as r:
                return r.read()

        return self.ns.call(fetch)

    def assumed_roles(self) -> list[dict]:
        """moto's record of every AssumeRole it served (access_key_id, secret_access_key,
        session_token, role_arn, session_name, ...)."""
        data = json.loads(self._get("/moto-api/data.json"))
        return list(data.get("sts", {}).get("AssumedRole", []))

    def assumed_credentials(self) -> list[CredentialSet]:
        return [CredentialSet(r["access_key_id"], r["secret_access_key"], r["session_token"])
                for r in self.assumed_roles()]

    def log_text(self) -> str:
        try:
            return self.out.read_text(errors="replace")
        except FileNotFoundError:
            return ""

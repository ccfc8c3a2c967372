"""A real forward proxy for the tests: Debian's tinyproxy, run in the foreground (``-d``) with a
config of our own, inside the test's network namespace, with its log at level Connect (every
accepted client, every request line and every upstream connection is a line).

:meth:`Tinyproxy.requests` parses the request lines (``CONNECT host:port`` for tunnels,
``METHOD http://host:port/path`` for plain http) and :meth:`Tinyproxy.upstreams` the upstream
connections tinyproxy established, so a test can assert what went through the proxy — and what
did not.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

_REQ_RE = re.compile(r"Request \(file descriptor \d+\): (?P<method>[A-Z]+) (?P<target>\S+)")
_UP_RE = re.compile(r'Established connection to host "(?P<host>[^"]+)"')


def available() -> bool:
    return shutil.which("tinyproxy") is not None


@dataclass
class ProxyRequest:
    method: str
    target: str  # absolute URL, or host:port for CONNECT

    @property
    def host(self) -> str:
        if self.method == "CONNECT":
            return self.target.rsplit(":", 1)[0]
        m = re.match(r"^[a-z]+://(\[[^\]]+\]|[^/:]+)", self.target)
        return m.group(1) if m else self.target


class Tinyproxy:
    """tinyproxy on ``listen:port`` inside ``ns`` (a NetNS). ``user``/``password`` enable
    BasicAuth (requests without them get 407). ``connect_ports``: ports CONNECT may reach."""

    def __init__(self, ns, workdir: Path, port: Optional[int] = None,
                 listen: str = "127.0.0.1", user: Optional[str] = None,
                 password: Optional[str] = None, connect_ports: Iterable[int] = (443,)):
        self.ns = ns
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.listen = listen
        self.port = port or ns.free_port(listen)
        self.user = user
        self.password = password
        self.connect_ports = list(connect_ports)
        self.conf = self.dir / "tinyproxy.conf"
        self.log = self.dir / "tinyproxy.log"
        self.out = self.dir / "tinyproxy.out"
        self.proc: Optional[subprocess.Popen] = None

    def url(self, with_auth: bool = True) -> str:
        auth = ""
        if with_auth and self.user:
            auth = f"{self.user}:{self.password}@"
        return f"http://{auth}{self.listen}:{self.port}"

    def write_conf(self):
        lines = [
            f"Port {self.port}",
            f"Listen {self.listen}",
            "Timeout 30",
            "Allow 127.0.0.1",
            f'LogFile "{self.log}"',
            "LogLevel Connect",
            "MaxClients 50",
            "DisableViaHeader Yes",
        ]
        lines += [f"ConnectPort {p}" for p in self.connect_ports]
        if self.user:
            lines.append(f"BasicAuth {self.user} {self.password}")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Tinyproxy":
        self.write_conf()
        self.log.write_text("")
        out = open(self.out, "wb")
        try:
            self.proc = self.ns.popen(["tinyproxy", "-d", "-c", str(self.conf)], stdout=out,
                                      stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.ns.wait_port(self.listen, self.port, timeout=10, proc=self.proc)
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

    # -- log -------------------------------------------------------------------------------

    def log_text(self, settle: float = 0.3) -> str:
        time.sleep(settle)  # tinyproxy writes its log lines as it goes; let the last land
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self) -> list[ProxyRequest]:
        return [ProxyRequest(m.group("method"), m.group("target"))
                for m in _REQ_RE.finditer(self.log_text())]

    def upstreams(self) -> list[str]:
        return [m.group("host") for m in _UP_RE.finditer(self.log_text())]

    def describe(self) -> str:
        return f"tinyproxy log ({self.log}):\n" + "\n".join(self.log_text(0).splitlines()[-40:])

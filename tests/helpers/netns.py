"""Private network namespaces for the end-to-end credential tests.

Every packet of these tests stays inside a namespace the test created: the metadata addresses
(169.254.169.254, 169.254.170.2, 169.254.170.23) and the "remote" addresses used to force a
proxy (10.200.0.1, 10.200.0.2) exist only on that namespace's ``lo``, and the namespace has no
other interface and no route out.

Two ways to put something inside:

* :meth:`NetNS.popen` / :meth:`NetNS.run` run a program under ``ip netns exec NS …``
  (tinyproxy, moto's server);
* :meth:`NetNS.call` runs a Python callable on a helper thread that first joined the namespace
  with ``setns(2)``. Sockets created there belong to the namespace for their whole life, and
  threads and processes started there inherit it. The tests bind their in-process servers (the
  verifying receiver, fake IMDS/ECS/EKS/STS) this way, and run the C host the same way
  (:meth:`NetNS.run_host`: ``subprocess`` forks from the joined thread), so the servers keep
  their Python API while living in the namespace. :meth:`NetNS.call` checks through
  ``/proc/thread-self/ns/net`` that the thread really is in the namespace before running
  anything.

Host names: :meth:`NetNS.set_hosts` writes ``/etc/netns/<name>/hosts``, which ``ip netns exec``
bind-mounts over ``/etc/hosts`` (so tinyproxy resolves those names to addresses inside the
namespace); :meth:`NetNS.call` then does the same for its thread — a private mount namespace
(``unshare(CLONE_NEWNS)``, ``/`` made recursively private) with the file bind-mounted over
``/etc/hosts`` — so the C host, forked from that thread, resolves them too. The machine's own
``/etc/hosts`` is never written.

Needs root (CAP_SYS_ADMIN); :func:`unavailable_reason` says why namespaces cannot be used.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
NETNS_DIR = "/var/run/netns"
ETC_NETNS_DIR = "/etc/netns"  # per-namespace /etc overrides of `ip netns exec`

# Addresses added to the namespace's lo by default.
IMDS_ADDR = "169.254.169.254"
ECS_ADDR = "169.254.170.2"
EKS_ADDR = "169.254.170.23"
STS_ADDR = "10.200.0.1"  # not loopback: requests to it go through a configured proxy
REMOTE_ADDR = "10.200.0.2"  # a "remote" log endpoint, also proxied
DEFAULT_ADDRS = (IMDS_ADDR, ECS_ADDR, EKS_ADDR, STS_ADDR, REMOTE_ADDR)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_probe_lock = threading.Lock()
_probe_result: Optional[str] = None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def unavailable_reason() -> Optional[str]:
    """None when network namespaces work here; else why not (cached)."""
    global _probe_result
    with _probe_lock:
        if _probe_result is not None:
            return _probe_result or None
        if os.geteuid() != 0:
            _probe_result = "needs root to create network namespaces (ip netns add)"
        elif shutil.which("ip") is None:
            _probe_result = "the 'ip' command (iproute2) is not installed"
        else:
            name = "flbt-probe-" + secrets.token_hex(3)
            try:
                p = _ip("netns", "add", name, check=False)
                if p.returncode != 0:
                    _probe_result = f"'ip netns add' failed: {p.stderr.strip()}"
                else:
                    p = _ip("netns", "exec", name, "ip", "link", "set", "lo", "up", check=False)
                    _probe_result = "" if p.returncode == 0 else (
                        f"'ip netns exec' failed: {p.stderr.strip()}")
            finally:
                _ip("netns", "del", name, check=False)
        return _probe_result or None


class NetNS:
    """A named network namespace ``flbt-<random>`` with ``lo`` up and ``addrs`` on it.

    Use as a context manager or call :meth:`delete`; processes started with :meth:`popen` are
    killed (by their own pid) at delete.
    """

    def __init__(self, addrs: Iterable[str] = DEFAULT_ADDRS, prefix: str = "flbt"):
        self.name = f"{prefix}-{secrets.token_hex(4)}"
        self.addrs = list(addrs)
        self._procs: list[subprocess.Popen] = []
        self._created = False
        self._inode: Optional[int] = None
        self._hosts_file: Optional[str] = None

    # -- lifecycle -------------------------------------------------------------------------

    def create(self) -> "NetNS":
        _ip("netns", "add", self.name)
        self._created = True
        try:
            self.run(["ip", "link", "set", "lo", "up"], check=True)
            for a in self.addrs:
                self.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], check=True)
            self._inode = os.stat(os.path.join(NETNS_DIR, self.name)).st_ino
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self):
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        self._procs.clear()
        if self._created:
            _ip("netns", "del", self.name, check=False)
            self._created = False
        if self._hosts_file is not None:
            shutil.rmtree(os.path.join(ETC_NETNS_DIR, self.name), ignore_errors=True)
            self._hosts_file = None

    def __enter__(self) -> "NetNS":
        return self.create()

    def __exit__(self, *exc):
        self.delete()

    def set_hosts(self, names: Mapping[str, str]):
        """Makes ``names`` (host name -> address) resolve inside the namespace: writes
        ``/etc/netns/<name>/hosts`` (localhost plus these), used by :meth:`popen` / :meth:`run`
        (``ip netns exec``) and, from now on, by :meth:`call` (see the module docstring).
        Removed at :meth:`delete`."""
        d = os.path.join(ETC_NETNS_DIR, self.name)
        os.makedirs(d, exist_ok=True)
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{addr} {host}" for host, addr in names.items()]
        path = os.path.join(d, "hosts")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._hosts_file = path

    def _mount_hosts(self):
        """In the calling thread: a private mount namespace with our hosts file over
        /etc/hosts (what `ip netns exec` does for its child)."""
        path = self._hosts_file
        if _libc.unshare(CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
        if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount --make-rprivate /: {os.strerror(err)}")
        if _libc.mount(path.encode(), b"/etc/hosts", None, MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bind-mount {path} on /etc/hosts: {os.strerror(err)}")
        with open("/etc/hosts") as f, open(path) as want:
            if f.read() != want.read():
                raise RuntimeError(f"/etc/hosts in thread is not {path}")

    # -- running things inside -------------------------------------------------------------

    def exec_prefix(self) -> list:
        return ["ip", "netns", "exec", self.name]

    def run(self, argv: Sequence[str], check: bool = False, timeout: float = 30,
            **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([*self.exec_prefix(), *argv], check=check, timeout=timeout, **kw)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        """Starts a long-running program inside; it is killed at :meth:`delete`."""
        p = subprocess.Popen([*self.exec_prefix(), *argv], **kw)
        self._procs.append(p)
        return p

    def forget(self, proc: subprocess.Popen):
        if proc in self._procs:
            self._procs.remove(proc)

    def call(self, fn: Callable[[], T], timeout: Optional[float] = None) -> T:
        """Runs ``fn`` on a new thread that joined this namespace; returns its result (or
        raises its exception)."""
        if self._inode is None:
            raise RuntimeError(f"namespace {self.name} is not created")
        box: dict = {}

        def body():
            try:
                fd = os.open(os.path.join(NETNS_DIR, self.name), os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
                finally:
                    os.close(fd)
                if os.stat("/proc/thread-self/ns/net").st_ino != self._inode:
                    raise RuntimeError(f"thread did not join namespace {self.name}")
                if self._hosts_file is not None:
                    self._mount_hosts()
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                box["error"] = e

        t = threading.Thread(target=body, name=f"netns-{self.name}", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"call inside {self.name} did not finish in {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def run_host(self, *args, **kw):
        """:func:`tests.helpers.host.run_host` with the host process inside this namespace."""
        from tests.helpers import host as H

        return self.call(lambda: H.run_host(*args, **kw))

    # -- probes ----------------------------------------------------------------------------

    def wait_port(self, host: str, port: int, timeout: float = 15.0,
                  proc: Optional[subprocess.Popen] = None):
        """Waits until ``host:port`` accepts TCP connections inside the namespace."""
        deadline = time.monotonic() + timeout

        def probe() -> bool:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                return False

        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening "
                                   f"on {host}:{port}")
            if self.call(probe):
                return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on {host}:{port} in {self.name} after {timeout}s")

    def free_port(self, host: str = "127.0.0.1") -> int:
        """A TCP port free on ``host`` inside the namespace (the namespace is private, so it
        stays free unless the test itself takes it)."""

        def pick() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                return s.getsockname()[1]

        return self.call(pick)

    def addresses(self) -> str:
        return self.run(["ip", "-br", "addr"]).stdout

"""Fault injection and delivery accounting for the reliability tests (issue 5: tests/test_faults.py,
tests/test_soak.py, tests/test_cycles.py, tests/test_secrets.py and the standalone soak command
tests/soak.py).

* :class:`HostRun` runs the C host (tests/host/flb_host.c) in the background — optionally inside a
  network namespace — with extra host options, samples the host process's RSS, thread and file
  descriptor counts from ``/proc/<pid>`` while it runs, and returns a
  :class:`tests.helpers.host.HostResult` (plus ``samples`` and ``elapsed``).
* :class:`FaultReceiver` is the botocore-verifying receiver (tests/helpers/receiver.py) that can
  be killed (listening socket closed, every open connection reset) and revived on the same
  port, bound to any address (a "remote" address inside a namespace), optionally over TLS; it
  marks the requests whose response was lost in a kill, so duplicates can be accounted for.
* :class:`CountingReceiver` folds accepted records into counters and drops bodies (long runs).
* :class:`TcpFaultProxy` is a TCP forwarder that resets chosen requests in the middle of their
  body (the server never sees the whole request).
* :class:`RawFaultServer` is a TCP server that hangs, closes, resets or answers garbage — a broken
  instance-metadata or container-credentials endpoint.
* :func:`numbered_chunks` and :func:`check_delivery`: numbered records and the check that every
  record generated was delivered exactly once — or at least once, with every duplicate traced
  to a request whose response was lost and whose chunk was retried.
* :func:`make_tls_files`: a throw-away CA and server certificate.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers.receiver import Receiver
from tests.helpers.receiver import _Handler as _ReceiverHandler

# ------------------------------------------------------------------------------------------------
# /proc sampling


@dataclass
class Sample:
    t: float  # seconds since the host started
    rss_kb: int
    threads: int
    fds: int


def proc_sample(pid: int, t0: float) -> Optional[Sample]:
    """RSS (VmRSS, KiB), thread count and open descriptors of a live process; None once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
    thr = re.search(r"^Threads:\s+(\d+)", status, re.M)
    if not rss or not thr:
        return None  # a zombie has no VmRSS
    return Sample(time.monotonic() - t0, int(rss.group(1)), int(thr.group(1)), fds)


# ------------------------------------------------------------------------------------------------
# running the host in the background


class HostRun:
    """The C host in the background. ``instances``: a config path or a list of instances (see
    :func:`tests.helpers.host.config_text`); ``chunks``: chunk objects/bytes/paths; ``env`` adds
    to :func:`tests.helpers.host.host_env` (None values remove); ``extra_args``: more host
    options (e.g. ``--leak-check-cycles``); ``sample_every``: seconds between /proc samples of
    the host process (``samples`` of the result); ``ns``: a
    :class:`tests.helpers.netns.NetNS` to run the host in. ``log_level``: the config's
    Log_Level (default :func:`tests.helpers.host.default_log_level`, ``trace`` in the suite).
    :meth:`wait` searches the host's whole output for secrets
    (:func:`tests.helpers.host.scan_output`) and fails on a hit."""

    def __init__(self, instances, chunks: Sequence = (), *, so: Optional[Path] = None,
                 env: Optional[Mapping[str, Optional[str]]] = None,
                 threads: Optional[int] = None, flushes: Optional[int] = None,
                 cycles: Optional[int] = None, stack: Optional[int] = None,
                 retry_delay_ms: Optional[int] = 100, max_retries: Optional[int] = None,
                 flush_interval_ms: Optional[int] = None, extra_args: Sequence[str] = (),
                 log_level: Optional[str] = None,
                 service: Optional[Mapping[str, object]] = None,
                 valgrind: bool = False, valgrind_tool_args: Optional[Sequence[str]] = None,
                 sample_every: Optional[float] = None, ns=None, timeout: float = 600,
                 workdir: Optional[Path] = None):
        self.host = H.host_binary()
        self.so = Path(so) if so else H.plugin_so()
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="flb_fault_"))
        self._own_dir = workdir is None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        if isinstance(instances, (str, Path)):
            config = Path(instances)
        else:
            config = H.write_config(self.dir / "fluent-bit.conf", instances, log_level=log_level,
                                    service=service)
        self.config = config
        cmd = H.host_command(self.host, self.so, config, H.write_chunks(self.dir, chunks),
                             threads=threads, flushes=flushes, cycles=cycles, stack=stack,
                             retry_delay_ms=retry_delay_ms, max_retries=max_retries,
                             flush_interval_ms=flush_interval_ms)
        cmd += list(extra_args)
        self.vg_log: Optional[Path] = None
        if valgrind:
            self.vg_log = self.dir / "valgrind.log"
            tool = list(valgrind_tool_args) if valgrind_tool_args is not None else [
                "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite"]
            vg = ["valgrind", "--error-exitcode=1", "--num-callers=40",
                  f"--log-file={self.vg_log}", *tool]
            if H.SUPPRESSIONS.exists() and not any(a.startswith("--tool=") for a in tool):
                vg.append(f"--suppressions={H.SUPPRESSIONS}")
            cmd = vg + cmd
        self.cmd = cmd
        self.env = H.host_env(env, self.home)
        self.sample_every = sample_every
        self.ns = ns
        self.timeout = timeout
        self.samples: list[Sample] = []
        self.pid: Optional[int] = None
        self.started = threading.Event()
        self.t0 = 0.0
        self._thread: Optional[threading.Thread] = None
        self._box: dict = {}

    # -- running -------------------------------------------------------------------------------

    def _body(self):
        out = open(self.dir / "stdout", "wb")
        err = open(self.dir / "stderr", "wb")
        try:
            self.t0 = time.monotonic()
            proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=err,
                                    cwd=self.dir)
        finally:
            out.close()
            err.close()
        self.pid = proc.pid
        self.started.set()
        deadline = self.t0 + self.timeout
        step = self.sample_every or 0.05
        while True:
            try:
                rc = proc.wait(timeout=step)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.sample_every:
                s = proc_sample(proc.pid, self.t0)
                if s is not None:
                    self.samples.append(s)
            if time.monotonic() > deadline:
                proc.kill()  # our own child, by its pid
                proc.wait()
                raise TimeoutError(f"host did not finish in {self.timeout}s: {self.cmd}")
        return rc, time.monotonic() - self.t0

    def _run(self):
        try:
            if self.ns is not None:
                self._box["value"] = self.ns.call(self._body)
            else:
                self._box["value"] = self._body()
        except BaseException as e:  # noqa: BLE001 - re-raised by wait()
            self._box["error"] = e
            self.started.set()

    def start(self) -> "HostRun":
        self._thread = threading.Thread(target=self._run, name="host-run", daemon=True)
        self._thread.start()
        self.started.wait(60)
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def stderr_text(self) -> str:
        """What the host wrote to stderr so far (it is still running)."""
        try:
            return (self.dir / "stderr").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float) -> bool:
        """Waits until a stderr line matches ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.stderr_text()) is not None, timeout, 0.1)

    def wait(self, timeout: Optional[float] = None) -> H.HostResult:
        assert self._thread is not None, "not started"
        self._thread.join(timeout if timeout is not None else self.timeout + 30)
        if self._thread.is_alive():
            raise TimeoutError("host run did not finish")
        if "error" in self._box:
            raise self._box["error"]
        rc, elapsed = self._box["value"]
        stdout = (self.dir / "stdout").read_bytes().decode("utf-8", "replace")
        stderr = (self.dir / "stderr").read_bytes().decode("utf-8", "replace")
        summary = None
        for line in reversed(stdout.splitlines()):
            if line.startswith("{"):
                try:
                    summary = json.loads(line)
                except ValueError:
                    summary = None
                break
        vg = None
        if self.vg_log is not None and self.vg_log.exists():
            vg = self.vg_log.read_text(errors="replace")
        raw_stdout = (self.dir / "stdout").read_bytes()
        raw_stderr = (self.dir / "stderr").read_bytes()
        H.scan_output(raw_stdout + raw_stderr, self.env, self.config)
        res = H.HostResult(returncode=rc, summary=summary, stdout=stdout, stderr=stderr,
                           cmd=self.cmd, valgrind_log=vg, workdir=self.dir,
                           log_lines=[l for l in stderr.splitlines() if l.startswith("[HOST] ")])
        res.samples = list(self.samples)
        res.elapsed = elapsed
        res.raw_stdout = raw_stdout
        res.raw_stderr = raw_stderr
        return res

    def run(self) -> H.HostResult:
        return self.start().wait()

    def cleanup(self):
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def run_host(*args, **kw) -> H.HostResult:
    """:class:`HostRun` in the foreground."""
    hr = HostRun(*args, **kw)
    try:
        return hr.run()
    finally:
        hr.cleanup()


# ------------------------------------------------------------------------------------------------
# receivers that can be killed and revived


_tl = threading.local()


class _TrackingHandler(_ReceiverHandler):
    """The receiver's handler, telling its server which connections are busy with a request."""

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def _handle(self):
        srv = self.server
        self.cur_req = None
        self.killed = False
        _tl.handler = self
        with srv.track_lock:
            srv.busy.add(self)
            if srv.dead:  # the server was killed while this request came in
                self.killed = True
        try:
            srv.receiver._handle(self)
        finally:
            with srv.track_lock:
                srv.busy.discard(self)
            _tl.handler = None

    do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _handle


class _TrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, addr, handler):
        self.track_lock = threading.Lock()
        self.dead = False
        self.conns: set = set()
        self.busy: set = set()
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        with self.track_lock:
            self.conns.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self.track_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # quiet: resets are the point here
        pass


def reset_socket(sock: socket.socket):
    """Closes a socket with a TCP RST (and wakes any thread blocked on it)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        # SHUT_RD sends nothing but wakes a thread blocked reading this socket, so that the
        # close below really releases it (and sends the RST) now; SHUT_WR would send a FIN
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultReceiver(Receiver):
    """The verifying receiver on ``bind_host:port`` (a fixed port survives :meth:`kill` /
    :meth:`revive`), TLS when ``tls=(certfile, keyfile)``.

    :meth:`kill` closes the listening socket, resets every connection busy with a request and
    closes the idle ones: the port refuses connections until :meth:`revive`. A request that was
    being handled at that moment (or arrived after) gets ``lost = True``: its answer, if any,
    never reached the client. Requests accumulate
    across kills. ``extra_credentials``: a callable returning more accepted credential sets,
    consulted at every request (keys issued while the test runs)."""

    def __init__(self, bind_host: str = "127.0.0.1", tls: Optional[tuple] = None,
                 extra_credentials: Optional[Callable[[], Iterable]] = None, **kw):
        super().__init__(**kw)
        self.bind_host = bind_host
        self.tls = tls
        self._extra_credentials = extra_credentials
        port = self._server.server_address[1] if bind_host == "127.0.0.1" else kw.get("port", 0)
        self._server.server_close()
        self._server = self._make_server(port)
        self._fixed_port = self._server.server_address[1]
        self.kills: list = []  # monotonic times of kill()

    # dynamic credential list (read by Receiver._handle for every request)
    @property
    def credentials(self):
        creds = list(self._base_credentials)
        if self._extra_credentials is not None:
            from tests.helpers.receiver import _as_cred

            creds += [_as_cred(c) for c in self._extra_credentials()]
        return creds

    @credentials.setter
    def credentials(self, value):
        self._base_credentials = list(value)

    def _make_server(self, port: int) -> _TrackingServer:
        srv = _TrackingServer((self.bind_host, port), _TrackingHandler)
        srv.receiver = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                         do_handshake_on_connect=False)
        return srv

    @property
    def port(self) -> int:
        return self._fixed_port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.bind_host}:{self._fixed_port}"

    def _finish(self, req, outcome, status):
        h = getattr(_tl, "handler", None)
        if h is not None:
            h.cur_req = req
            if h.killed:
                req.lost = True
        super()._finish(req, outcome, status)

    def kill(self):
        """Down: no listener, every connection reset."""
        srv = self._server
        if srv is None:
            return
        self.kills.append(time.monotonic())
        if self._thread is not None:  # shutdown() waits for serve_forever: only when serving
            srv.shutdown()
        srv.server_close()
        with srv.track_lock:
            srv.dead = True
            busy = list(srv.busy)
            for h in busy:
                h.killed = True
                if h.cur_req is not None:
                    h.cur_req.lost = True
            conns = list(srv.conns)
            srv.conns.clear()
        busy_socks = {id(h.request) for h in busy}
        for s in conns:
            if id(s) in busy_socks:
                reset_socket(s)  # mid-request: RST, the answer (if any) is lost
            else:
                try:  # idle keep-alive connection: answers already written still arrive
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def revive(self) -> "FaultReceiver":
        """Up again on the same address and port."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = self._make_server(self._fixed_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return self.start()

    @property
    def alive(self) -> bool:
        return self._server is not None

    def stop(self):
        if self._server is not None:
            self.kill()


class CountingReceiver(FaultReceiver):
    """A :class:`FaultReceiver` for long runs: once a request is answered its records are
    folded into :attr:`counts` (record id -> copies accepted) and its bodies are dropped, so
    memory stays flat. ``responder`` still sees every request whole."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.counts: collections.Counter = collections.Counter()
        self.outcomes: collections.Counter = collections.Counter()
        self.keys: collections.Counter = collections.Counter()  # access keys of accepted requests
        self.records_accepted = 0
        self.auth_failures: list = []
        self.parse_errors: list = []  # accepted requests whose body did not decode

    def _finish(self, req, outcome, status):
        super()._finish(req, outcome, status)
        with self._lock:
            self.outcomes[outcome] += 1
            if req.auth_checked and not req.auth_ok:
                self.auth_failures.append(req.auth_reason)
            if outcome == "accepted" and req.parse_error:
                self.parse_errors.append(req.parse_error)
            if outcome == "accepted" and not getattr(req, "lost", False):
                for rec in req.records:
                    self.counts[C.record_id(rec)] += 1
                self.records_accepted += len(req.records)
                self.keys[req.access_key] += 1
            req.raw_body = b""
            req.body = b""
            req.events = []
            req.records = []
            req.header_list = []
            req.headers = {}
            # keep only recent request objects
            if len(self._requests) > 2000:
                del self._requests[:1000]


# ------------------------------------------------------------------------------------------------
# a TCP forwarder that resets requests in the middle of their body


class TcpFaultProxy:
    """Listens on ``listen_host`` (port 0: any) and forwards every connection to ``target``.
    ``policy(n)`` decides for the n-th request (0-based, over all connections) what happens:
    ``"pass"`` forwards it, ``"reset_mid_body"`` forwards its headers and half of its body and
    then resets both connections (the server never gets the whole request). :attr:`actions`
    lists what was done."""

    def __init__(self, target: tuple, policy: Callable[[int], str],
                 listen_host: str = "127.0.0.1", port: int = 0):
        self.target = target
        self.policy = policy
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen_host, port))
        self.sock.listen(64)
        self.host = listen_host
        self.port = self.sock.getsockname()[1]
        self._n = 0
        self._lock = threading.Lock()
        self.actions: list = []
        self._stop = threading.Event()
        self._socks: set = set()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcp-fault")

    def start(self) -> "TcpFaultProxy":
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            reset_socket(s)

    def url(self, path: str = "/logs") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c: socket.socket):
        try:
            u = socket.create_connection(self.target, timeout=10)
        except OSError:
            reset_socket(c)
            return
        u.settimeout(None)
        with self._lock:
            self._socks.update((c, u))
        threading.Thread(target=self._pump, args=(u, c), daemon=True).start()
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        raise EOFError
                    buf += d
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                while len(rest) < length:
                    d = c.recv(65536)
                    if not d:
                        raise EOFError
                    rest += d
                body, buf = rest[:length], rest[length:]
                with self._lock:
                    n = self._n
                    self._n += 1
                action = self.policy(n)
                self.actions.append((n, action, len(body)))
                if action == "reset_mid_body":
                    u.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
                    time.sleep(0.05)
                    reset_socket(c)
                    reset_socket(u)
                    return
                u.sendall(head + b"\r\n\r\n" + body)
        except (OSError, EOFError):
            pass
        finally:
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _pump(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------
# broken metadata endpoints


class RawFaultServer:
    """A TCP server on ``host:port`` (inside ``ns`` when given) that misbehaves on every
    connection. ``mode``: ``hang`` (accepts, reads, never answers), ``close`` (reads the request,
    closes without a byte), ``reset`` (reads, then TCP RST), ``garbage`` (answers bytes that are
    not HTTP), ``http_garbage`` (a well-formed ``200 OK`` whose body is not what was asked: no
    JSON, no token). :attr:`connections` counts accepted connections."""

    GARBAGE = b"\x16\x03\x01\x00\xff\xfe GARBAGE \x00\x01 not http at all\r\n\r\n"
    HTTP_GARBAGE_BODY = b"<html>{{{ not json, not a token ]]] \x00\x7f</html>"

    def __init__(self, host: str, port: int, mode: str, ns=None):
        assert mode in ("hang", "close", "reset", "garbage", "http_garbage"), mode
        self.host, self.port, self.mode, self.ns = host, port, mode, ns
        self.connections = 0
        self.requests: list = []
        self._stop = threading.Event()
        self._held: list = []
        self._lock = threading.Lock()
        self.sock: Optional[socket.socket] = None

    def _bind(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        return s

    def start(self) -> "RawFaultServer":
        self.sock = self.ns.call(self._bind) if self.ns is not None else self._bind()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"raw-{self.mode}").start()
        return self

    def stop(self):
        """Down: the port is free again when this returns (a healthy server may take it)."""
        self._stop.set()
        if self.sock is not None:
            try:  # wakes the thread blocked in accept(), which would keep the port listening
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
        with self._lock:
            held = list(self._held)
            self._held.clear()
        for c in held:
            reset_socket(c)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, c: socket.socket) -> bytes:
        c.settimeout(5)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
        except OSError:
            pass
        line = buf.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        with self._lock:
            self.requests.append(line)
        return buf

    def _serve(self, c: socket.socket):
        self._read_request(c)
        try:
            if self.mode == "hang":
                with self._lock:
                    self._held.append(c)
                return  # closed (reset) at stop
            if self.mode == "close":
                c.close()
            elif self.mode == "reset":
                reset_socket(c)
            elif self.mode == "garbage":
                c.sendall(self.GARBAGE)
                c.close()
            elif self.mode == "http_garbage":
                body = self.HTTP_GARBAGE_BODY
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() +
                          b"\r\nConnection: close\r\n\r\n" + body)
                c.close()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------
# records and the delivery check


def numbered_chunks(n_chunks: int, per_chunk: int, prefix: str = "c", pad: int = 0,
                    start: int = 0) -> list:
    """``n_chunks`` chunks of ``per_chunk`` records; record ``i`` of chunk ``c`` has id
    ``{prefix}{c}-{i}`` (so a record names its chunk)."""
    out = []
    for c in range(start, start + n_chunks):
        recs = C.make_records(per_chunk, prefix=f"{prefix}{c}", seed=c, pad=pad)
        out.append(C.build_chunk(recs, name=f"{prefix}{c}.bin"))
    return out


def chunk_of(record_id: str, prefix: str = "c") -> int:
    m = re.match(rf"^{re.escape(prefix)}(\d+)-\d+$", record_id or "")
    if not m:
        raise AssertionError(f"unexpected record id {record_id!r}")
    return int(m.group(1))


@dataclass
class DeliveryReport:
    generated: int  # records the host flushed (per flush job, ids may repeat across jobs)
    unique_ids: int
    delivered: int  # copies received in processed requests
    duplicates: int  # copies beyond the expected count
    duplicated_ids: list
    requests: int
    processed_requests: int
    lost_requests: int  # processed, but the response never reached the client
    attempts: int  # flush calls made by the host
    retries: int  # flush calls that returned FLB_RETRY
    detail: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"generated={self.generated} delivered={self.delivered} "
                f"duplicates={self.duplicates} requests={self.requests} "
                f"lost_responses={self.lost_requests} flush_calls={self.attempts} "
                f"retries={self.retries}")


def _processed(req, lost_outcomes: Iterable[str]) -> tuple:
    """(processed, lost): whether the server processed the request's records, and whether the
    client never got the answer (so a retry is expected to repeat them)."""
    lost = bool(getattr(req, "lost", False)) or req.outcome in lost_outcomes
    return (req.accepted or req.outcome in lost_outcomes), lost


def check_delivery(res: H.HostResult, chunk_list: Sequence, requests: Sequence,
                   exactly_once: bool = True, lost_outcomes: Iterable[str] = (),
                   prefix: str = "c") -> DeliveryReport:
    """Asserts that every record of every flushed chunk reached the receiver(s), that nothing
    else arrived, and that no flush gave up or was dropped. ``requests``: the receivers'
    recorded requests (all of them). A request counts as processed when the receiver accepted it,
    or when its outcome is in ``lost_outcomes`` (e.g. ``stalled`` when a stalled request is
    answered 200 after the client gave up), or when a :class:`FaultReceiver` kill cut its
    response. With ``exactly_once``, every record arrived exactly as many times as it was
    flushed. Otherwise duplicates are allowed but each must be explained: the record's requests
    beyond the expected count had their response lost, its chunk was flushed at least that many
    times, and no request repeats a record it already carries."""
    lost_outcomes = tuple(lost_outcomes)
    s = res.summary
    assert s is not None, res.describe()
    jobs = s["flushes"]
    bad = [j for j in jobs if j["final"] != H.FLB_OK or j["gave_up"]]
    assert not bad, (f"{len(bad)} flushes did not end FLB_OK (records lost), e.g. {bad[:3]}\n"
                     + res.describe())
    by_chunk_jobs = collections.Counter(j["chunk_index"] for j in jobs)
    attempts_by_chunk = collections.Counter()
    for j in jobs:
        attempts_by_chunk[j["chunk_index"]] += len(j["results"])
    expected: collections.Counter = collections.Counter()
    for ci, n in by_chunk_jobs.items():
        for rec in chunk_list[ci].records:
            expected[rec["id"]] += n

    got_ok: collections.Counter = collections.Counter()  # from requests answered normally
    got_lost: collections.Counter = collections.Counter()  # from requests whose answer was lost
    n_processed = n_lost = 0
    for r in requests:
        processed, lost = _processed(r, lost_outcomes)
        if not processed:
            continue
        n_processed += 1
        n_lost += lost
        ids = [C.record_id(x) for x in r.records]
        rep = [i for i, n in collections.Counter(ids).items() if n > 1]
        assert not rep, f"request #{r.index} carries records twice: {rep[:5]}"
        for i in ids:
            (got_lost if lost else got_ok)[i] += 1
    got = got_ok + got_lost
    unparsed = [r for r in requests if _processed(r, lost_outcomes)[0] and r.parse_error]
    assert not unparsed, (
        f"{len(unparsed)} of the requests the receiver processed carry a body that does not "
        f"decode ({unparsed[0].content_encoding or 'identity'}, "
        f"{unparsed[0].headers.get('content-type')}): {unparsed[0].parse_error}; "
        f"body starts {unparsed[0].body[:120]!r}")
    unknown = set(got) - set(expected)
    assert not unknown, f"records nobody generated arrived: {sorted(unknown)[:5]}"
    missing = [i for i in expected if got[i] < expected[i]]
    assert not missing, (f"{len(missing)} records never arrived (or too few copies), e.g. "
                         f"{[(i, got[i], expected[i]) for i in missing[:5]]}\n" + res.describe())
    dup_ids = sorted(i for i in expected if got[i] > expected[i])
    duplicates = sum(got[i] - expected[i] for i in dup_ids)
    if exactly_once:
        assert not dup_ids, (f"{len(dup_ids)} records arrived more than once: "
                             f"{[(i, got[i]) for i in dup_ids[:5]]}")
    for i in dup_ids:
        ci = chunk_of(i, prefix)
        # answered normally no more often than flushed: the plugin never re-sends after a 2xx
        assert got_ok[i] <= expected[i], (
            f"record {i} was accepted {got_ok[i]}x with the answer delivered, flushed "
            f"{expected[i]}x: a duplicate not caused by a lost response")
        assert got[i] - expected[i] <= got_lost[i], (
            f"record {i}: {got[i] - expected[i]} extra copies but only {got_lost[i]} requests "
            f"carrying it lost their response")
        assert attempts_by_chunk[ci] >= got[i], (
            f"record {i} arrived {got[i]}x but its chunk was flushed only "
            f"{attempts_by_chunk[ci]}x")
    retries = sum(1 for j in jobs for x in j["results"] if x == H.FLB_RETRY)
    return DeliveryReport(
        generated=sum(expected.values()), unique_ids=len(expected), delivered=sum(got.values()),
        duplicates=duplicates, duplicated_ids=dup_ids, requests=len(requests),
        processed_requests=n_processed, lost_requests=n_lost,
        attempts=sum(len(j["results"]) for j in jobs), retries=retries)


# ------------------------------------------------------------------------------------------------
# TLS files


def make_tls_files(directory: Path, ips: Sequence[str] = ("127.0.0.1",),
                   names: Sequence[str] = ("localhost",)) -> dict:
    """A CA (``ca``) and a server certificate/key signed by it (``cert``, ``key``) for ``ips`` and
    ``names``, as PEM files (see :func:`tests.helpers.tls.make_pki`)."""
    from tests.helpers.tls import make_pki

    pki = make_pki(directory, ips=ips, names=names)
    return {"ca": pki["ca"], "cert": pki["server_cert"], "key": pki["server_key"]}


# ------------------------------------------------------------------------------------------------
# descriptors left after unregister

# tokio's signal driver keeps one process-wide AF_UNIX socket pair (tokio::signal::registry
# globals, created by the first runtime built with the signal driver, which the "process"
# feature brings) for the life of the process; later runtimes reuse it. It is a fixed cost, not
# a leak: these are the only descriptors allowed to outlive FLBPluginUnregister.
PROCESS_WIDE_SOCKETS = 2


def unexpected_fds(summary: dict) -> list:
    """The descriptors open after the last unregister that were not open before the first
    load, less the allowance above: [] when nothing leaked."""
    new = summary.get("fds_new_at_end")
    if new is None:
        return [["?", "the host did not report fds_new_at_end"]]
    sockets = [x for x in new if str(x[1]).startswith("socket:")]
    others = [x for x in new if not str(x[1]).startswith("socket:")]
    return others + sockets[PROCESS_WIDE_SOCKETS:]


# ------------------------------------------------------------------------------------------------
# misc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()

"""Build and run the C test host (tests/host/flb_host.c) against the plugin.

* :func:`plugin_so` builds the plugin with ``cargo build`` when target/debug/libflb_sigv4.so is
  missing or older than the sources (``FLB_SIGV4_SO`` points at another .so and skips the
  build; ``FLB_SIGV4_NO_BUILD=1`` skips the build).
* :func:`host_binary` compiles the host once per session into tests/.build/.
* :func:`write_config` writes a Fluent Bit classic config.
* :func:`run_host` runs the host with an explicit environment and returns a :class:`HostResult`.

Threads, as in Fluent Bit v5.1.1 (the host's usage text, ``flb_host --help``, has the details):
an [OUTPUT] with ``Workers N`` (N >= 1) flushes on N worker threads named ``flb-out-sigv4_h``
(``flb-out-sigv4_http.<i>-w<k>`` cut to 15 characters); one without Workers flushes on the engine
thread ``flb-pipeline``, one flush at a time, between the ticks of the engine's timer input.
``run_host(threads=T)`` (default 1) gives ``Workers T`` to every instance that has no Workers key
(the host's ``--threads T``), so a test keeps its concurrency on worker threads;
``run_host(engine=True)`` (the same as ``threads=0``) leaves those instances without Workers, so
they flush on the engine thread as under a real Fluent Bit with the default config. A ``Workers``
key in an instance always wins (``Workers 0``: engine thread).

Logging, as flb_log_print: lines logged on the engine or a worker thread go to the log pipeline
(``[SERVICE] Log_File`` when set: ``run_host(log_file=True)`` sets one in the run's directory and
:attr:`HostResult.log_file_lines` holds its lines), lines from any other thread (the main thread's
register/unregister, the plugin's own threads) go straight to stderr.

Every run's output is searched for secrets (tests/helpers/leaks.py: :func:`scan_output`); a hit
fails the test. The host's ``Log_Level`` defaults to :func:`default_log_level`:
``$FLB_SIGV4_TEST_LOG_LEVEL``, which tests/conftest.py sets to ``trace`` for the whole suite (so
the scan sees the most verbose output), else ``info``; tests about log levels pass their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from tests.helpers import leaks

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
BUILD = TESTS / ".build"
HOST_SRC = TESTS / "host" / "flb_host.c"
MOCK_SRC = TESTS / "host" / "mock_plugin.c"
HEADER = REPO / "include" / "flb_sigv4.h"
SUPPRESSIONS = TESTS / "host" / "valgrind.supp"

FLB_ERROR, FLB_OK, FLB_RETRY = 0, 1, 2

# host exit codes (tests/host/flb_host.c)
EXIT_OK, EXIT_USAGE, EXIT_INIT, EXIT_CONFIG, EXIT_STACK, EXIT_LOAD = 0, 2, 3, 4, 5, 6

_build_lock = threading.Lock()
_built = False


class BuildError(RuntimeError):
    pass


def _newest_mtime(paths: Iterable[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_dir():
            for sub in p.rglob("*"):
                if sub.is_file():
                    newest = max(newest, sub.stat().st_mtime)
        elif p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def knobs_so() -> Path:
    """The debug .so built with the ``test-knobs`` feature (``FLB_SIGV4_TEST_PANIC_TAG``), even
    when ``FLB_SIGV4_SO`` points the rest of the suite at the release .so, which has no knobs."""
    saved = os.environ.pop("FLB_SIGV4_SO", None)
    try:
        return plugin_so()
    finally:
        if saved is not None:
            os.environ["FLB_SIGV4_SO"] = saved


def plugin_so(build: bool = True) -> Path:
    """Path to the plugin .so, built once per test session with the ``test-knobs`` feature (a
    plain ``cargo build`` in between would leave a .so without the knobs at the same path, so
    the build is not skipped on modification times; cargo makes it a no-op when fresh)."""
    override = os.environ.get("FLB_SIGV4_SO")
    if override:
        return Path(override)
    so = REPO / "target" / "debug" / "libflb_sigv4.so"
    if not build or os.environ.get("FLB_SIGV4_NO_BUILD") == "1":
        return so
    with _build_lock:
        sources = [REPO / "src", REPO / "Cargo.toml", REPO / "Cargo.lock", REPO / "build.rs",
                   REPO / "include"]
        global _built
        if not _built or not so.exists() or so.stat().st_mtime < _newest_mtime(sources):
            proc = subprocess.run(["cargo", "build", "--lib", "--features", "test-knobs"],
                                  cwd=REPO, capture_output=True,
                                  text=True, timeout=1800)
            if proc.returncode != 0:
                raise BuildError("cargo build failed:\n" + proc.stderr[-6000:])
            _built = True
        if not so.exists():
            raise BuildError(f"{so} not found after cargo build")
    return so


def _compile(src: Path, out: Path, extra: Sequence[str]) -> Path:
    with _build_lock:
        BUILD.mkdir(parents=True, exist_ok=True)
        if out.exists() and out.stat().st_mtime >= _newest_mtime([src, HEADER]):
            return out
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        cmd = ["cc", "-O1", "-g", "-Wall", "-Werror", "-I", str(REPO / "include"),
               str(src), "-o", str(tmp), *extra]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        tmp.replace(out)
        return out


def host_binary() -> Path:
    """The compiled host: cc -O1 -g -Wall -Werror -I include tests/host/flb_host.c -o
    tests/.build/flb_host -ldl -lpthread."""
    return _compile(HOST_SRC, BUILD / "flb_host", ["-ldl", "-lpthread"])


def mock_plugin_so() -> Path:
    """A tiny C plugin implementing the ABI, to test the host itself."""
    return _compile(MOCK_SRC, BUILD / "libmock_plugin.so", ["-shared", "-fPIC", "-lpthread"])


# ------------------------------------------------------------------------------------------------
# configuration

Instance = Union[Mapping[str, object], Sequence[tuple]]


def _items(inst: Instance) -> list:
    if isinstance(inst, Mapping):
        return list(inst.items())
    return list(inst)


def default_log_level() -> str:
    """The host's Log_Level when a test does not choose one: $FLB_SIGV4_TEST_LOG_LEVEL (the suite
    sets ``trace``), else ``info``."""
    return os.environ.get("FLB_SIGV4_TEST_LOG_LEVEL") or "info"


def config_text(instances: Sequence[Instance], service: Optional[Mapping[str, object]] = None,
                log_level: Optional[str] = None) -> str:
    """A Fluent Bit classic config. Each instance is a dict or a list of (key, value) pairs
    (a list allows repeated keys); ``Name sigv4_http`` is added unless given. ``log_level``:
    :func:`default_log_level` unless given."""
    lines = ["[SERVICE]", f"    Log_Level {log_level or default_log_level()}"]
    for k, v in (service or {}).items():
        lines.append(f"    {k} {v}")
    for inst in instances:
        items = _items(inst)
        lines.append("")
        lines.append("[OUTPUT]")
        if not any(str(k).lower() == "name" for k, _ in items):
            lines.append("    Name sigv4_http")
        for k, v in items:
            if v is None:
                lines.append(f"    {k}")
            else:
                if isinstance(v, bool):
                    v = "on" if v else "off"
                lines.append(f"    {k} {v}")
    return "\n".join(lines) + "\n"


def write_config(path: Path, instances: Sequence[Instance], **kw) -> Path:
    path = Path(path)
    path.write_text(config_text(instances, **kw))
    return path


# ------------------------------------------------------------------------------------------------
# running


@dataclass
class HostResult:
    returncode: int
    summary: Optional[dict]
    stdout: str
    stderr: str
    cmd: list
    valgrind_log: Optional[str] = None
    workdir: Optional[Path] = None
    log_lines: list = field(default_factory=list)
    # the Log_File's lines ([HOST] [level] message) when the run had one (run_host(log_file=...))
    log_file_lines: list = field(default_factory=list)
    log_file: Optional[Path] = None  # its path (gone after the run unless workdir was given)

    def logs(self, level: Optional[str] = None, source: str = "all") -> list:
        """The plugin's log lines ([HOST] [level] message), optionally of one level. ``source``:
        ``"stderr"`` (lines printed to stderr: every line without Log_File; with it, those
        logged on threads Fluent Bit did not create), ``"file"`` (the Log_File's lines) or
        ``"all"`` (both, stderr first)."""
        if source not in ("all", "stderr", "file"):
            raise ValueError(f"source must be all, stderr or file, not {source!r}")
        lines = (self.log_lines if source in ("all", "stderr") else []) + \
            (self.log_file_lines if source in ("all", "file") else [])
        out = []
        for line in lines:
            m = re.match(r"^\[HOST\] \[(\w+)\] (.*)$", line)
            if m and (level is None or m.group(1) == level):
                out.append(m.group(2))
        return out

    def results(self) -> list:
        """Per flush: the list of return codes (in job order)."""
        return [f["results"] for f in (self.summary or {}).get("flushes", [])]

    def describe(self) -> str:
        # without Rust backtrace frames, which drown the log lines
        lines = [l for l in self.stderr.splitlines()
                 if not re.match(r"^\s+(\d+: |at /)", l)]
        tail = "\n".join(lines[-60:])
        s = f"cmd: {' '.join(map(str, self.cmd))}\nexit: {self.returncode}\nstderr (tail):\n{tail}"
        if self.log_file_lines:
            s += "\nLog_File (tail):\n" + "\n".join(self.log_file_lines[-30:])
        if self.summary is not None:
            s += "\nsummary: " + json.dumps(self.summary)[:2500]
        if self.valgrind_log:
            s += "\nvalgrind (tail):\n" + "\n".join(self.valgrind_log.splitlines()[-80:])
        return s


_DROP_ENV = re.compile(r"^(AWS_.*|.*_PROXY|.*_proxy|no_proxy|NO_PROXY|RUST_LOG)$")


def host_env(extra: Optional[Mapping[str, Optional[str]]] = None, home: Optional[Path] = None) -> dict:
    """The environment for a host run: the inherited one less AWS_* and proxy variables, plus
    AWS_EC2_METADATA_DISABLED=true and a private HOME; ``extra`` adds (or, with None, removes)
    variables."""
    env = {k: v for k, v in os.environ.items() if not _DROP_ENV.match(k)}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.setdefault("RUST_BACKTRACE", "1")
    if home is not None:
        env["HOME"] = str(home)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def write_chunks(directory: Path, chunks: Sequence) -> list:
    """Paths of ``chunks`` (paths, bytes, or objects with ``.data`` and ``.name``), writing those
    that are not files yet into ``directory``."""
    paths = []
    for i, c in enumerate(chunks):
        if isinstance(c, (str, Path)):
            paths.append(Path(c))
            continue
        data = c if isinstance(c, (bytes, bytearray)) else c.data
        p = Path(directory) / f"{i:04d}-{getattr(c, 'name', None) or 'chunk.bin'}"
        p.write_bytes(bytes(data))
        paths.append(p)
    return paths


def host_command(host: Path, so: Path, config: Path, chunk_paths: Sequence[Path], **opts) -> list:
    """The C host's command line: ``opts`` are its valued options by keyword (``threads``,
    ``flushes``, ``cycles``, ``stack``, ``retry_delay_ms``, ``max_retries``,
    ``flush_interval_ms``, ``tick_ms``, ``run_ms``, ``reload_order``); ``None`` leaves the
    host's default."""
    cmd = [str(host), "--so", str(so), "--config", str(config)]
    for p in chunk_paths:
        cmd += ["--chunk", str(p)]
    for key, val in opts.items():
        if val is not None:
            cmd += ["--" + key.replace("_", "-"), str(val)]
    return cmd


def run_host(
    config: Union[Path, Sequence[Instance]],
    chunks: Sequence[Union[Path, bytes, object]] = (),
    *,
    so: Optional[Path] = None,
    threads: Optional[int] = None,
    flushes: Optional[int] = None,
    cycles: Optional[int] = None,
    stack: Optional[int] = None,
    retry_delay_ms: Optional[int] = 100,
    max_retries: Optional[int] = None,
    flush_interval_ms: Optional[int] = None,
    hot_reload: bool = False,
    engine: bool = False,
    tick_ms: Optional[int] = None,
    run_ms: Optional[int] = None,
    reload_order: Optional[str] = None,
    service: Optional[Mapping[str, object]] = None,
    log_file: Union[bool, Path, str] = False,
    env: Optional[Mapping[str, Optional[str]]] = None,
    log_level: Optional[str] = None,
    timeout: float = 120,
    valgrind: bool = False,
    valgrind_args: Sequence[str] = (),
    workdir: Optional[Path] = None,
) -> HostResult:
    """Run the host. ``config`` is a path or a list of instances (see :func:`config_text`);
    ``chunks`` are paths, bytes or objects with ``.data`` (and ``.name``), written to files.
    Returns the parsed JSON summary (None if the host printed none) and the stderr.

    ``threads``: Workers of instances without a Workers key (host default 1); ``engine=True``
    (or ``threads=0``): those instances flush on the engine thread ``flb-pipeline``.
    ``tick_ms``: the engine's timer input period (host default 100); ``run_ms``: the engine runs
    at least this long per cycle (summary: ticks_due, ticks_run, ticks_missed,
    tick_max_late_ms, engine_max_stall_ms, engine_flushes, engine_ms). ``reload_order``:
    ``"old-first"`` (default) or ``"new-first"`` (Fluent Bit's SIGHUP order, implies
    hot_reload). ``service``: more [SERVICE] keys (config given as instances only).
    ``log_file``: True puts ``Log_File`` at <run dir>/fluent-bit.log, a path puts it there;
    the result's :attr:`HostResult.log_file_lines` holds the file's lines."""
    if engine:
        if threads not in (None, 0):
            raise ValueError("engine=True leaves Workers unset: do not pass threads too")
        threads = 0
    host = host_binary()
    so = Path(so) if so else plugin_so()
    own_dir = workdir is None
    wd = Path(workdir or tempfile.mkdtemp(prefix="flb_host_"))
    home = wd / "home"
    home.mkdir(exist_ok=True)
    try:
        log_path = None
        if log_file:
            log_path = wd / "fluent-bit.log" if log_file is True else Path(log_file)
        if not isinstance(config, (str, Path)):
            svc = dict(service or {})
            if log_path is not None:
                svc["Log_File"] = log_path
            config = write_config(wd / "fluent-bit.conf", config, log_level=log_level,
                                  service=svc)
        elif service or log_path is not None:
            raise ValueError("service/log_file need the config as a list of instances")
        cmd = host_command(host, so, config, write_chunks(wd, chunks), threads=threads,
                           flushes=flushes, cycles=cycles, stack=stack,
                           retry_delay_ms=retry_delay_ms, max_retries=max_retries,
                           flush_interval_ms=flush_interval_ms, tick_ms=tick_ms, run_ms=run_ms,
                           reload_order=reload_order)
        if hot_reload:
            cmd.append("--hot-reload")
        vg_log = None
        if valgrind:
            vg_log = wd / "valgrind.log"
            vg = ["valgrind", "--error-exitcode=1", "--leak-check=full",
                  "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                  "--num-callers=40", f"--log-file={vg_log}"]
            if SUPPRESSIONS.exists():
                vg.append(f"--suppressions={SUPPRESSIONS}")
            cmd = vg + list(valgrind_args) + cmd
        cmd_env = host_env(env, home)
        proc = subprocess.run(cmd, env=cmd_env, capture_output=True, timeout=timeout, cwd=wd)
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        summary = None
        for line in reversed(stdout.splitlines()):
            if line.startswith("{"):
                summary = json.loads(line)
                break
        file_blob = b""
        if log_path is not None and log_path.exists():
            file_blob = log_path.read_bytes()
        scan_output(proc.stdout + proc.stderr + file_blob, cmd_env, config)
        file_text = file_blob.decode("utf-8", "replace")
        return HostResult(
            returncode=proc.returncode, summary=summary, stdout=stdout, stderr=stderr, cmd=cmd,
            valgrind_log=vg_log.read_text(errors="replace") if vg_log and vg_log.exists() else None,
            workdir=None if own_dir else wd,
            log_lines=[l for l in stderr.splitlines() if l.startswith("[HOST] ")],
            log_file_lines=[l for l in file_text.splitlines() if l.startswith("[HOST] ")],
            log_file=log_path)
    finally:
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)


def scan_output(blob: bytes, env: Mapping[str, str], config=None) -> int:
    """Fails (:class:`tests.helpers.leaks.SecretLeak`) when the host's output ``blob`` contains a
    secret of the suite's registry or one this run was given (its environment ``env``, the
    files it names, the ``config``): see tests/helpers/leaks.py."""
    return leaks.check_run(bytes(blob), env, Path(config) if config is not None else None)


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None

"""Debian root filesystems made with Debian's ``mmdebstrap``, cached under tests/.build/roots/.

* :func:`debian_root` — a directory (for ``chroot``): e.g. a bullseye root (glibc 2.31, the
  oldest official Fluent Bit images) in which tests/test_glibc_floor.py loads the release .so.
* :func:`debian_tarball` — the same as a tar file, for ``docker import`` (tests/helpers/docker.py:
  no registry is reachable, so every test image starts from one of these).

A root is built once per (suite, variant, packages) and reused by later runs; a half-built one
(interrupted run) is never used: the finished root is renamed into place. The mirror is
``$FLB_SIGV4_DEBIAN_MIRROR`` or http://deb.debian.org/debian. Building needs root (or
mmdebstrap's unshare mode) and takes 30-90 s.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from tests.helpers.host import BUILD

ROOTS = BUILD / "roots"


class RootfsError(RuntimeError):
    pass


def available() -> bool:
    return shutil.which("mmdebstrap") is not None


def mirror() -> str:
    return os.environ.get("FLB_SIGV4_DEBIAN_MIRROR") or "http://deb.debian.org/debian"


def _key(suite: str, variant: str, include: Sequence[str]) -> str:
    pk = ",".join(sorted(include))
    digest = hashlib.sha256(f"{suite}|{variant}|{pk}".encode()).hexdigest()[:12]
    return f"{suite}-{variant}-{digest}"


def _mmdebstrap(suite: str, variant: str, include: Sequence[str], out: Path, timeout: float):
    cmd = ["mmdebstrap", "--quiet", f"--variant={variant}"]
    if include:
        cmd.append("--include=" + ",".join(include))
    cmd += [suite, str(out), mirror()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RootfsError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def _cached(name: str, build) -> Path:
    """ROOTS/name, made by build(tmp_path) under a lock when missing."""
    ROOTS.mkdir(parents=True, exist_ok=True)
    final = ROOTS / name
    with open(ROOTS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            return final
        # the name ends like the final one: mmdebstrap picks its output format by the extension
        tmp = ROOTS / f".tmp{os.getpid()}-{name}"
        if tmp.is_dir():
            shutil.rmtree(tmp)
        try:
            build(tmp)
            tmp.rename(final)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()
    return final


def debian_root(suite: str, include: Sequence[str] = (), variant: str = "essential",
                timeout: float = 900) -> Path:
    """A Debian ``suite`` root directory with ``include`` packages (cached)."""
    return _cached(_key(suite, variant, include),
                   lambda tmp: _mmdebstrap(suite, variant, include, tmp, timeout))


def debian_tarball(suite: str, include: Sequence[str] = (), variant: str = "minbase",
                   timeout: float = 900) -> Path:
    """A Debian ``suite`` root as a tar file (for ``docker import``; cached)."""
    return _cached(_key(suite, variant, include) + ".tar",
                   lambda tmp: _mmdebstrap(suite, variant, include, tmp, timeout))

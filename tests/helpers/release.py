"""The release build (tests/build_release.sh): the .so users ship, linked against glibc 2.31.

* :func:`release_so` — its path (``$FLB_SIGV4_RELEASE_SO`` or target/dist/libflb_sigv4.so);
  tests never build it (a release build takes minutes): they tell how when it is missing.
* :func:`so_requirements` — what a shared object asks of the dynamic loader (readelf): NEEDED
  libraries and the symbol versions per library.
* :func:`host_for_glibc` — the C test host compiled with ``zig cc`` against an older glibc, so it
  runs in an old root (tests/test_glibc_floor.py) next to the release .so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.host import BUILD, HEADER, HOST_SRC, REPO, BuildError, _build_lock, _newest_mtime

DIST_SO = REPO / "target" / "dist" / "libflb_sigv4.so"
GLIBC_FLOOR = (2, 31)
# What every official fluent/fluent-bit image (distroless Debian, v2 to v5) provides.
ALLOWED_NEEDED = ("libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
                  "libpthread.so.0", "libdl.so.2", "librt.so.1")
BUILD_HINT = "build it with tests/build_release.sh (cargo-zigbuild against glibc 2.31)"


def release_so() -> Path:
    return Path(os.environ.get("FLB_SIGV4_RELEASE_SO") or DIST_SO)


@dataclass
class SoRequirements:
    needed: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)  # library -> [version names]

    def glibc_versions(self) -> list:
        """(major, minor) of every GLIBC_x.y the object needs, from any glibc library."""
        out = []
        for names in self.versions.values():
            for n in names:
                m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", n)
                if m:
                    out.append((int(m.group(1)), int(m.group(2))))
        return sorted(set(out))


def so_requirements(path: Path) -> SoRequirements:
    """NEEDED entries (``readelf -d``) and version needs (``readelf -V``: the .gnu.version_r
    section, which is what the loader checks)."""
    dyn = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True,
                         check=True).stdout
    req = SoRequirements(needed=re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
    ver = subprocess.run(["readelf", "-V", "-W", str(path)], capture_output=True, text=True,
                         check=True).stdout
    current = None
    for line in ver.splitlines():
        m = re.search(r"File: (\S+)\s+Cnt:", line)
        if m:
            current = m.group(1)
            req.versions.setdefault(current, [])
            continue
        m = re.search(r"Name: (\S+)\s+Flags:", line)
        if m and current is not None:
            req.versions[current].append(m.group(1))
    return req


def floor_violations(path: Path, floor=GLIBC_FLOOR, allowed=ALLOWED_NEEDED) -> list:
    """What keeps ``path`` from loading in an image with glibc ``floor``: one line per newer
    GLIBC version and per NEEDED library outside ``allowed``."""
    req = so_requirements(path)
    bad = [f"needs GLIBC_{v[0]}.{v[1]} (newer than {floor[0]}.{floor[1]})"
           for v in req.glibc_versions() if v > tuple(floor)]
    bad += [f"needs {lib}, which the official images lack" for lib in req.needed
            if lib not in allowed]
    return bad


def zig_available() -> bool:
    return subprocess.run([sys.executable, "-m", "ziglang", "version"],
                          capture_output=True).returncode == 0


def host_for_glibc(glibc: str = "2.31") -> Path:
    """tests/host/flb_host.c built with ``zig cc -target x86_64-linux-gnu.<glibc>``."""
    out = BUILD / f"flb_host-glibc{glibc}"
    with _build_lock:
        BUILD.mkdir(parents=True, exist_ok=True)
        if out.exists() and out.stat().st_mtime >= _newest_mtime([HOST_SRC, HEADER]):
            return out
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        cmd = [sys.executable, "-m", "ziglang", "cc", "-target", f"x86_64-linux-gnu.{glibc}",
               "-O1", "-g", "-Wall", "-Werror", "-I", str(REPO / "include"), str(HOST_SRC),
               "-o", str(tmp), "-ldl", "-lpthread"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
        tmp.replace(out)
    return out

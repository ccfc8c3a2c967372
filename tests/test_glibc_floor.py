"""The glibc floor (DESIGN.md §13, issue 17): the release .so (tests/build_release.sh) loads in
every official fluent/fluent-bit image, v2 (Debian bullseye, glibc 2.31) to v5.

* what it asks of the loader (readelf): no GLIBC symbol version newer than 2.31, no NEEDED
  library beyond libc, libm, libgcc_s, ld-linux, libpthread, libdl, librt — and the check itself
  rejects an object built on this machine (bookworm, glibc 2.36) the ordinary way;
* a real load: a Debian bullseye root made with mmdebstrap (cached in tests/.build/roots/), in
  which the C host (built with zig cc for glibc 2.31) loads the release .so and ships a chunk to
  the verifying receiver on 127.0.0.1 (chroot keeps the host's network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers import release as R
from tests.helpers import rootfs
from tests.helpers.receiver import Receiver


@pytest.fixture(scope="module")
def release_so():
    so = R.release_so()
    if not so.exists():
        pytest.skip(f"the release .so {so} is missing: {R.BUILD_HINT}")
    return so


def test_release_so_needs_nothing_newer_than_glibc_2_31(release_so):
    req = R.so_requirements(release_so)
    assert req.glibc_versions(), f"no GLIBC version needs read from {release_so}: {req}"
    assert R.floor_violations(release_so) == [], req


def test_release_so_exports_the_proxy_abi(release_so):
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", str(release_so)], capture_output=True,
                          text=True, check=True).stdout
    for name in ("FLBPluginRegister", "FLBPluginInit", "FLBPluginFlushCtx", "FLBPluginExitCtx",
                 "FLBPluginUnregister"):
        assert f" {name}\n" in syms or syms.rstrip().endswith(f" {name}"), name


def test_floor_check_rejects_an_ordinary_build_on_this_machine(tmp_path):
    """The check can fail: a library compiled here the usual way (glibc 2.36; pthread_create is
    GLIBC_2.34 since glibc merged libpthread) and one needing libstdc++ are both refused."""
    src = tmp_path / "x.c"
    src.write_text("#include <pthread.h>\n"
                   "static void *f(void *a) { return a; }\n"
                   "int start(void) { pthread_t t; return pthread_create(&t, 0, f, 0); }\n")
    so = tmp_path / "libx.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(so), "-lpthread",
                    "-Wl,--no-as-needed", "-lstdc++"], check=True)
    bad = R.floor_violations(so)
    assert any("GLIBC_2.34" in b for b in bad), bad
    assert any("libstdc++" in b for b in bad), bad


@pytest.fixture(scope="module")
def bullseye_root():
    if os.geteuid() != 0:
        pytest.skip("the bullseye load test needs root (mmdebstrap, chroot)")
    if not rootfs.available():
        pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap; tests/setup_docker.sh)")
    # ca-certificates: every official image carries /etc/ssl/certs, and the plugin builds its
    # HTTP client from the system roots at start-up (without any it refuses to start)
    root = rootfs.debian_root("bullseye", include=["ca-certificates"])
    libc = list((root / "lib" / "x86_64-linux-gnu").glob("libc-2.*.so"))
    assert [p.name for p in libc] == ["libc-2.31.so"], libc
    return root


def test_release_so_loads_and_ships_in_a_glibc_2_31_root(release_so, bullseye_root, tmp_path):
    if not R.zig_available():
        pytest.skip("ziglang is not installed (pip install -r tests/requirements-release.txt)")
    host = R.host_for_glibc("2.31")
    assert R.floor_violations(host) == [], "the host itself must run in the bullseye root"
    rcv = Receiver(credentials=[CREDENTIALS], region="us-east-1", service="es",
                   require_token=True).start()
    run_dir = bullseye_root / "flbt" / uuid.uuid4().hex
    try:
        run_dir.mkdir(parents=True)
        shutil.copy2(host, run_dir / "flb_host")
        shutil.copy2(release_so, run_dir / "libflb_sigv4.so")
        chunk = C.build_chunk(C.make_records(20, prefix="bullseye"), name="bullseye.bin")
        (run_dir / "chunk.bin").write_bytes(chunk.data)
        H.write_config(run_dir / "fluent-bit.conf", [{
            "endpoint": rcv.endpoint("/bullseye"), "aws_region": "us-east-1",
            "aws_service": "es", "compress": "gzip", "Test_Tag": "bullseye"}])
        inside = "/" + str(run_dir.relative_to(bullseye_root))
        cmd = ["chroot", str(bullseye_root), f"{inside}/flb_host", "--so",
               f"{inside}/libflb_sigv4.so", "--config", f"{inside}/fluent-bit.conf", "--chunk",
               f"{inside}/chunk.bin", "--retry-delay-ms", "100", "--max-retries", "2"]
        env = H.host_env(CREDS_ENV, home=None)
        env["HOME"] = "/root"
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        H.scan_output(proc.stdout + proc.stderr, env)
        assert proc.returncode == H.EXIT_OK, out[-4000:]
        assert '"results":[1]' in proc.stdout.decode().replace(" ", ""), out[-4000:]
        got = rcv.wait_for_records(20, timeout=10)
        assert sorted(r["id"] for r in got) == sorted(r["id"] for r in chunk.records)
        assert rcv.requests() and all(r.accepted for r in rcv.requests()), \
            [(r.outcome, r.auth_reason) for r in rcv.requests()]
    finally:
        rcv.stop()
        shutil.rmtree(run_dir, ignore_errors=True)

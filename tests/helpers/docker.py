"""Docker for the container tests (tests/test_containers.py): images built locally, compose runs.

No image registry is reachable, so every image starts from a Debian root made with mmdebstrap
(tests/helpers/rootfs.py) and ``docker import``ed (:func:`base_image`, cached by its content);
builds run with ``--network none`` and the legacy builder (``DOCKER_BUILDKIT=0``: no buildx
here). :class:`Compose` runs fluent-bit-config/docker/docker-compose.yml under its own project
name with the settings a test gives (``docker-compose`` 1.29, or ``docker compose``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Mapping, Optional, Sequence

from tests.helpers import rootfs

# What the tests' images need: the verifying receiver (botocore, msgpack, zstandard), tinyproxy
# and the C host (libc only).
BASE_PACKAGES = ("python3", "python3-botocore", "python3-msgpack", "python3-zstandard",
                 "tinyproxy-bin", "ca-certificates")


class DockerError(RuntimeError):
    pass


def _env() -> dict:
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "0"
    env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
    return env


def run(args: Sequence[str], timeout: float = 600, check: bool = True,
        env: Optional[Mapping[str, str]] = None, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout,
                          env=dict(env) if env is not None else _env(), **kw)
    if check and proc.returncode != 0:
        raise DockerError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                          + proc.stdout.decode(errors="replace")[-3000:]
                          + proc.stderr.decode(errors="replace")[-3000:])
    return proc


def compose_command() -> Optional[list]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def unavailable_reason() -> Optional[str]:
    """Why the container tests cannot run here, or None."""
    if not shutil.which("docker"):
        return "docker is not installed (tests/setup_docker.sh installs docker.io)"
    if run(["docker", "info"], timeout=30, check=False).returncode != 0:
        return "no Docker engine answers (tests/setup_docker.sh starts dockerd)"
    if compose_command() is None:
        return "docker-compose is not installed (tests/setup_docker.sh installs it)"
    if not rootfs.available():
        return "mmdebstrap is not installed (tests/setup_docker.sh installs it)"
    return None


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False, timeout=30).returncode == 0


def base_image(packages: Sequence[str] = BASE_PACKAGES) -> str:
    """A Debian bookworm image with ``packages``: an mmdebstrap tarball ``docker import``ed once
    (the tag names the tarball's key)."""
    tar = rootfs.debian_tarball("bookworm", list(packages))
    tag = f"flbt-base:{tar.stem.split('-')[-1]}"
    if not image_exists(tag):
        run(["docker", "import", str(tar), tag], timeout=600)
    return tag


def build(tag: str, dockerfile: Path, context: Path,
          build_args: Optional[Mapping[str, str]] = None, timeout: float = 900) -> str:
    """``docker build --network none`` with the legacy builder; returns ``tag``."""
    cmd = ["docker", "build", "--network", "none", "-q", "-f", str(dockerfile), "-t", tag]
    for k, v in (build_args or {}).items():
        cmd += ["--build-arg", f"{k}={v}"]
    run(cmd + [str(context)], timeout=timeout)
    return tag


def image_has_file(image: str, path: str) -> bool:
    """Whether ``path`` exists in ``image`` (no container is started: the file system is read
    through ``docker create`` + ``docker cp``, which works for distroless images too)."""
    cid = run(["docker", "create", image], timeout=60).stdout.decode().strip()
    try:
        return run(["docker", "cp", f"{cid}:{path}", "-"], check=False,
                   timeout=60).returncode == 0
    finally:
        run(["docker", "rm", "-f", cid], check=False, timeout=60)


class Compose:
    """One run of a compose file (plus ``overrides``, merged in order) under a project name of
    its own; :meth:`down` removes its containers, network and volumes."""

    def __init__(self, file: Path, env: Mapping[str, str], project: Optional[str] = None,
                 overrides: Sequence[Path] = ()):
        self.files = [Path(file), *map(Path, overrides)]
        self.project = project or f"flbt{uuid.uuid4().hex[:10]}"
        self.env = _env()
        self.env.update({k: str(v) for k, v in env.items()})
        self.cmd = compose_command() or ["docker-compose"]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True):
        files = [a for f in self.files for a in ("-f", str(f))]
        return run([*self.cmd, *files, "-p", self.project, *args],
                   timeout=timeout, check=check, env=self.env)

    def up(self, *services: str):
        self("up", "-d", "--no-build", *services)

    def logs(self, service: str) -> str:
        return self("logs", "--no-color", service, check=False).stdout.decode(errors="replace")

    def container(self, service: str) -> str:
        return self("ps", "-q", service).stdout.decode().strip()

    def state(self, service: str) -> dict:
        """Docker's State of the service's container (Status, ExitCode, Restarting...)."""
        import json
        cid = self.container(service)
        out = run(["docker", "inspect", "-f", "{{json .State}}", cid], timeout=60)
        return json.loads(out.stdout)

    def wait_exit(self, service: str, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(service)
            if st.get("Status") == "exited":
                return int(st.get("ExitCode", -1))
            if time.monotonic() > deadline:
                raise DockerError(f"{service} still {st.get('Status')} after {timeout} s:\n"
                                  + self.logs(service)[-3000:])
            time.sleep(0.5)

    def down(self):
        self("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)

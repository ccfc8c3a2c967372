"""README's test command is what CI runs, and tests/setup.sh on a machine where it may not install
anything says what the suite will skip (issue 15 §4)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    cmds = [l.split("#")[0].strip() for l in block.splitlines() if "tests/run.sh" in l]
    assert len(cmds) == 1, cmds
    return cmds[0]


def test_ci_runs_exactly_readmes_test_command():
    cmd = readme_test_command()
    assert cmd == "./tests/setup.sh && ./tests/run.sh"
    ci = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()
          if l.strip() and not l.strip().startswith("#")]
    assert cmd in ci, ci
    assert "export FLB_SIGV4_CI=1" in ci
    assert ci.index("export FLB_SIGV4_CI=1") < ci.index(cmd)
    assert os.access(REPO / "tests" / "setup.sh", os.X_OK)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("su") is None,
                    reason="needs root to run setup.sh as an unprivileged user")
def test_setup_without_root_installs_nothing_and_lists_what_is_skipped():
    # A python3 that accepts everything: the pip step is not what this test is about. In a
    # directory the unprivileged user can reach (pytest's tmp_path is root's alone).
    shim = Path(tempfile.mkdtemp(prefix="flbt-setup-"))
    shim.chmod(0o755)
    (shim / "python3").write_text("#!/bin/sh\nexit 0\n")
    (shim / "python3").chmod(0o755)
    env_cmd = (f"PATH={shim}:/usr/bin:/bin CI= FLB_SIGV4_CI= "
               f"bash {REPO / 'tests' / 'setup.sh'}")
    try:
        proc = subprocess.run(["su", "nobody", "-s", "/bin/bash", "-c", env_cmd],
                              capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(shim, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert "not root and not CI: no system packages installed" in proc.stderr, proc.stderr
    assert "network-namespace tests" in proc.stderr and "need root" in proc.stderr
    assert "the fuzzers (cargo-fuzz 0.13.2 is not installed" in proc.stderr, proc.stderr
    assert "apt-get" not in proc.stderr.replace("apt-get install python3-pip", "")

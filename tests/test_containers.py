"""Docker end to end (DESIGN.md §10, §13; issue 17): the compose demo
(fluent-bit-config/docker/docker-compose.yml) run as it ships, with images built here.

No registry is reachable, so every image is built locally with ``--network none``: a Debian
bookworm root made with mmdebstrap and ``docker import``ed (python3-botocore, tinyproxy, ...),
then the demo's tools image (verifying receiver + tinyproxy, fluent-bit-config/docker/
tools.Dockerfile) and the plugin image (fluent-bit-config/docker/Dockerfile.prebuilt with the
release .so, target/dist/libflb_sigv4.so) on top of a Fluent Bit image:

* ``FLUENT_BIT_IMAGE`` unset: a stand-in laid out like the official image (tests/docker/standin:
  the C host as /fluent-bit/bin/fluent-bit) that flushes fixed chunks once and exits;
* ``FLUENT_BIT_IMAGE=fluent/fluent-bit:5.1.1`` (or any image with /fluent-bit/bin/fluent-bit,
  already pulled): the real Fluent Bit runs the demo's pipeline, and the restart test runs too.

Also with tests/docker/pod-identity/docker-compose.override.yml: an EKS Pod Identity Agent
stand-in at 169.254.170.23 on the compose network. The compose network is ``internal: true``:
containers reach each other only. Results are read
from the receiver's ``REQUEST {json}`` lines, tinyproxy's log and the Fluent Bit container's
output (searched for secrets, tests/helpers/leaks.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import chunks as C
from tests.helpers import docker as D
from tests.helpers import host as H
from tests.helpers import release as R

REPO = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO / "fluent-bit-config" / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
STANDIN_DIR = REPO / "tests" / "docker" / "standin"
DOCTOR_BIN = REPO / "target" / "dist" / "flb-sigv4"

# made-up credentials: the receiver accepts only requests signed with the ones it is given
ENV_KEY_ID = "AKIDFLBSIGV4DOCKER01"
ENV_SECRET_KEY = "dockerEnvSecretKey/FLBSIGV4+0000000000001"
ENV_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFlbDockerEnvSessionToken0001=="
FILE_KEY_ID = "AKIDFLBSIGV4DOCKER02"
FILE_SECRET_KEY = "dockerFileSecretKey/FLBSIGV4+000000000002"
FILE_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFlbDockerFileSessionToken0002=="

POD_KEY_ID = "ASIAFLBSIGV4DOCKER03"
POD_SECRET_KEY = "dockerPodIdentitySecret/FLBSIGV4+00000003"
POD_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFlbDockerPodIdentityToken0003=="
POD_AUTH_TOKEN = "eyJhbGciOiJSUzI1NiJ9.ZmxiLXNpZ3Y0LWRvY2tlcg.c2lnbmF0dXJlMDAwMw"
POD_IDENTITY_DIR = REPO / "tests" / "docker" / "pod-identity"

STANDIN_CHUNKS = [C.build_chunk(C.make_records(25, prefix=f"docker{i}"), name=f"c{i}.bin")
                  for i in range(3)]
STANDIN_IDS = sorted(r["id"] for c in STANDIN_CHUNKS for r in c.records)


def real_fluent_bit_image():
    return os.environ.get("FLUENT_BIT_IMAGE") or None


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Tags of the images the compose file runs: tools (receiver + proxy) and the plugin image
    (the stand-in or FLUENT_BIT_IMAGE, with the release .so)."""
    reason = D.unavailable_reason()
    if reason:
        pytest.skip(f"the container tests need Docker: {reason}")
    so = R.release_so()
    if not so.exists():
        pytest.skip(f"the release .so {so} is missing: {R.BUILD_HINT}")
    if so.resolve() != R.DIST_SO.resolve():
        pytest.skip(f"the image recipe copies {R.DIST_SO}; FLB_SIGV4_RELEASE_SO={so} differs")
    if not DOCTOR_BIN.exists():
        pytest.skip(f"the release doctor binary {DOCTOR_BIN} is missing: {R.BUILD_HINT}")
    session = uuid.uuid4().hex[:8]
    base = D.base_image()
    tools = D.build(f"flbt-tools:{session}", DOCKER_DIR / "tools.Dockerfile", REPO,
                    {"BASE_IMAGE": base})
    fluent_bit = real_fluent_bit_image()
    if fluent_bit:
        if not D.image_has_file(fluent_bit, "/fluent-bit/bin/fluent-bit"):
            pytest.fail(f"FLUENT_BIT_IMAGE={fluent_bit} has no /fluent-bit/bin/fluent-bit "
                        "(the official layout)", pytrace=False)
    else:
        ctx = tmp_path_factory.mktemp("standin")
        shutil.copy2(STANDIN_DIR / "Dockerfile", ctx / "Dockerfile")
        shutil.copy2(STANDIN_DIR / "fluent-bit", ctx / "fluent-bit")
        shutil.copy2(H.host_binary(), ctx / "flb_host")
        (ctx / "chunks").mkdir()
        (ctx / "etc").mkdir()
        for c in STANDIN_CHUNKS:
            (ctx / "chunks" / c.name).write_bytes(c.data)
        # like the official image: a fluent-bit.conf naming plugins.conf (replaced by the recipe)
        (ctx / "etc" / "fluent-bit.conf").write_text(
            "[SERVICE]\n    Plugins_File plugins.conf\n")
        (ctx / "etc" / "plugins.conf").write_text("[PLUGINS]\n")
        fluent_bit = D.build(f"flbt-standin:{session}", ctx / "Dockerfile", ctx,
                             {"BASE_IMAGE": base})
    plugin = D.build(f"flbt-plugin:{session}", DOCKER_DIR / "Dockerfile.prebuilt", REPO,
                     {"FLUENT_BIT_IMAGE": fluent_bit})
    yield {"tools": tools, "plugin": plugin, "real": bool(real_fluent_bit_image())}
    for tag in {tools, plugin} | ({fluent_bit} if not real_fluent_bit_image() else set()):
        D.run(["docker", "rmi", "-f", tag], check=False)


def receiver_requests(compose) -> list:
    reqs = []
    for line in compose.logs("receiver").splitlines():
        _, sep, rest = line.partition("REQUEST ")
        if sep:
            reqs.append(json.loads(rest))
    return reqs


def received_records(compose) -> list:
    out = []
    for line in compose.logs("receiver").splitlines():
        _, sep, rest = line.partition("| ")
        rest = rest.strip()
        if sep and rest.startswith("{"):  # --print-records: one JSON record a line
            out.append(json.loads(rest))
    return out


def scan_fluent_bit_output(compose, env):
    H.scan_output(compose.logs("fluent-bit").encode(), env)


@pytest.fixture
def demo(images, tmp_path):
    """make(**settings) -> a started Compose of the demo file (down at teardown)."""
    made = []

    def make(services=("receiver", "proxy", "fluent-bit"), overrides=(), **settings):
        env = {
            "FLB_SIGV4_TOOLS_IMAGE": images["tools"], "FLB_SIGV4_IMAGE": images["plugin"],
            "DEMO_KEY_ID": ENV_KEY_ID, "DEMO_SECRET_KEY": ENV_SECRET_KEY,
            "DEMO_SESSION_TOKEN": ENV_SESSION_TOKEN,
            "DEMO_FLB_KEY_ID": ENV_KEY_ID, "DEMO_FLB_SECRET_KEY": ENV_SECRET_KEY,
            "DEMO_FLB_SESSION_TOKEN": ENV_SESSION_TOKEN,
        }
        env.update({k: str(v) for k, v in settings.items()})
        c = D.Compose(COMPOSE_FILE, env, overrides=overrides)
        made.append(c)
        # receiver and proxy first: the stand-in flushes at once (and retries if too early)
        c.up(*[s for s in services if s != "fluent-bit"])
        if "fluent-bit" in services:
            c.up("fluent-bit")
        return c

    yield make
    for c in made:
        c.down()


def wait_delivered(compose, images, timeout: float = 90) -> list:
    """Waits until the receiver accepted the stand-in's chunks (exactly those, and the container
    exits 0), or 10 records of the real Fluent Bit's dummy input (2 a second); returns the
    REQUEST lines."""
    want = 10 if images["real"] else len(STANDIN_IDS)
    deadline = time.monotonic() + timeout
    while True:
        reqs = receiver_requests(compose)
        if sum(r["records"] for r in reqs if r["outcome"] == "accepted") >= want:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{want} records not delivered in {timeout} s:\nreceiver:\n"
                                 f"{compose.logs('receiver')[-3000:]}\nfluent-bit:\n"
                                 f"{compose.logs('fluent-bit')[-4000:]}")
        time.sleep(0.5)
    if not images["real"]:
        assert compose.wait_exit("fluent-bit", 60) == H.EXIT_OK, compose.logs("fluent-bit")
        ids = sorted(r["id"] for r in received_records(compose))
        assert ids == STANDIN_IDS, compose.logs("receiver")[-3000:]
    return reqs


def assert_all_accepted(reqs, key_id):
    assert reqs, "no request reached the receiver"
    bad = [r for r in reqs if r["outcome"] != "accepted"]
    assert not bad, bad
    assert {r["access_key"] for r in reqs} == {key_id}
    assert all(r["auth_ok"] for r in reqs), reqs


def test_signed_delivery_from_a_container_with_environment_credentials(demo, images):
    c = demo(DEMO_HTTP_PROXY="")  # direct: no proxy
    reqs = wait_delivered(c, images)
    assert_all_accepted(reqs, ENV_KEY_ID)
    assert "CONNECT" not in c.logs("proxy") and "receiver:8080" not in c.logs("proxy")
    scan_fluent_bit_output(c, {"AWS_SECRET_ACCESS_KEY": ENV_SECRET_KEY,
                               "AWS_SESSION_TOKEN": ENV_SESSION_TOKEN})


def test_delivery_through_the_proxy_container(demo, images):
    """The demo as it ships: HTTP_PROXY=http://proxy:8888 (tinyproxy); the receiver is http, so
    the requests go through the proxy as absolute-URI requests, signed for the receiver's
    host (not the proxy's)."""
    c = demo()
    reqs = wait_delivered(c, images)
    assert_all_accepted(reqs, ENV_KEY_ID)
    proxy_log = c.logs("proxy")
    proxied = [l for l in proxy_log.splitlines() if "POST http://receiver:8080/logs" in l]
    assert len(proxied) >= len(reqs), proxy_log[-3000:]


def test_no_credentials_is_a_start_up_error(demo, images, tmp_path):
    empty_aws = tmp_path / "aws"
    empty_aws.mkdir()
    c = demo(DEMO_FLB_KEY_ID="", DEMO_FLB_SECRET_KEY="", DEMO_FLB_SESSION_TOKEN="",
             DEMO_AWS_DIR=str(empty_aws))
    code = c.wait_exit("fluent-bit", 60)
    logs = c.logs("fluent-bit")
    assert code != 0, logs
    assert "no AWS credentials configured" in logs, logs[-3000:]
    if not images["real"]:
        assert code == H.EXIT_INIT, logs
    assert receiver_requests(c) == []


def test_credentials_from_a_mounted_aws_directory(demo, images, tmp_path):
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        f"[default]\naws_access_key_id = {FILE_KEY_ID}\n"
        f"aws_secret_access_key = {FILE_SECRET_KEY}\naws_session_token = {FILE_SESSION_TOKEN}\n")
    c = demo(DEMO_FLB_KEY_ID="", DEMO_FLB_SECRET_KEY="", DEMO_FLB_SESSION_TOKEN="",
             DEMO_AWS_DIR=str(aws), DEMO_KEY_ID=FILE_KEY_ID, DEMO_SECRET_KEY=FILE_SECRET_KEY,
             DEMO_SESSION_TOKEN=FILE_SESSION_TOKEN)
    reqs = wait_delivered(c, images)
    assert_all_accepted(reqs, FILE_KEY_ID)
    assert "profile" in c.logs("fluent-bit"), c.logs("fluent-bit")[-3000:]
    scan_fluent_bit_output(c, {"AWS_SECRET_ACCESS_KEY": FILE_SECRET_KEY,
                               "AWS_SESSION_TOKEN": FILE_SESSION_TOKEN})


def test_credentials_from_eks_pod_identity_direct_despite_the_proxy(demo, images, tmp_path):
    """As EKS injects them: AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/... and a
    token file; the agent stand-in sits at that address on the internal compose network. The
    credential call goes direct although HTTP_PROXY is set; the deliveries go through the proxy."""
    token_dir = tmp_path / "token"
    token_dir.mkdir()
    (token_dir / "eks-pod-identity-token").write_text(POD_AUTH_TOKEN)
    c = demo(services=("receiver", "proxy", "pod-identity", "fluent-bit"),
             overrides=[POD_IDENTITY_DIR / "docker-compose.override.yml"],
             DEMO_FLB_KEY_ID="", DEMO_FLB_SECRET_KEY="", DEMO_FLB_SESSION_TOKEN="",
             DEMO_KEY_ID=POD_KEY_ID, DEMO_SECRET_KEY=POD_SECRET_KEY,
             DEMO_SESSION_TOKEN=POD_SESSION_TOKEN,
             POD_IDENTITY_KEY_ID=POD_KEY_ID, POD_IDENTITY_SECRET_KEY=POD_SECRET_KEY,
             POD_IDENTITY_SESSION_TOKEN=POD_SESSION_TOKEN, POD_IDENTITY_AUTH_TOKEN=POD_AUTH_TOKEN,
             POD_IDENTITY_DIR=str(POD_IDENTITY_DIR), POD_IDENTITY_TOKEN_DIR=str(token_dir))
    reqs = wait_delivered(c, images)
    assert_all_accepted(reqs, POD_KEY_ID)
    agent = c.logs("pod-identity")
    assert "CALL GET /v1/credentials 200" in agent, agent[-2000:]
    assert " 401" not in agent and " 403" not in agent, agent[-2000:]
    proxy_log = c.logs("proxy")
    assert "169.254.170.23" not in proxy_log, proxy_log[-3000:]
    assert "POST http://receiver:8080/logs" in proxy_log, proxy_log[-3000:]
    scan_fluent_bit_output(c, {"AWS_SECRET_ACCESS_KEY": POD_SECRET_KEY,
                               "AWS_SESSION_TOKEN": POD_SESSION_TOKEN,
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN": POD_AUTH_TOKEN})


RESTART_CONFIG = """\
[SERVICE]
    Flush                 1
    Log_Level             info
    Plugins_File          /fluent-bit/etc/plugins.conf
    storage.path          /fluent-bit/storage
    storage.sync          full

[INPUT]
    Name              tail
    Path              /fluent-bit/etc/demo/app.log
    DB                /fluent-bit/storage/tail.db
    Read_from_Head    on
    Refresh_Interval  1
    storage.type      filesystem

[OUTPUT]
    Name          sigv4_http
    Match         *
    endpoint      http://receiver:8080/logs
    aws_region    us-east-1
    aws_service   execute-api
    format        json_lines
    Retry_Limit   no_limits
"""


def test_container_restart_mid_run_loses_nothing(demo, images, tmp_path):
    """At least once across a restart: tail's offsets and the chunks are on the storage volume;
    lines written while Fluent Bit is down arrive after it is back."""
    if not images["real"]:
        pytest.skip("needs the real Fluent Bit image: set FLUENT_BIT_IMAGE (e.g. "
                    "fluent/fluent-bit:5.1.1, pulled beforehand); the stand-in has no input "
                    "or storage to restart")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "fluent-bit.conf").write_text(RESTART_CONFIG)
    log = conf / "app.log"

    def write(lo, hi):
        with open(log, "a") as f:
            for i in range(lo, hi):
                f.write(f"line-{i:05d}\n")

    write(0, 200)
    c = demo(DEMO_HTTP_PROXY="", DEMO_CONFIG_DIR=str(conf))
    deadline = time.monotonic() + 60
    while not receiver_requests(c) and time.monotonic() < deadline:
        time.sleep(0.5)
    c("stop", "-t", "10", "fluent-bit")
    write(200, 400)  # while it is down
    c("start", "fluent-bit")
    write(400, 600)
    want = {f"line-{i:05d}" for i in range(600)}
    deadline = time.monotonic() + 90
    while True:
        got = {r.get("log") for r in received_records(c)}
        if want <= got:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"missing after the restart: {sorted(want - got)[:20]} ...\n"
                                 + c.logs("fluent-bit")[-3000:])
        time.sleep(1)
    assert_all_accepted(receiver_requests(c), ENV_KEY_ID)


def test_doctor_runs_inside_the_fluent_bit_image(images):
    """The image carries the doctor (/fluent-bit/bin/flb-sigv4): run in the plugin image
    (the stand-in or FLUENT_BIT_IMAGE, no network) against the image's own config, it reads
    the [OUTPUT], names the provider the plugin would use and hides the secret."""
    env = {"SIGV4_ENDPOINT": "http://receiver:8080/logs", "SIGV4_SERVICE": "execute-api",
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": ENV_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": ENV_SECRET_KEY, "AWS_SESSION_TOKEN": ENV_SESSION_TOKEN,
           "AWS_EC2_METADATA_DISABLED": "true"}
    args = ["docker", "run", "--rm", "--network", "none",
            "--entrypoint", "/fluent-bit/bin/flb-sigv4"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    base = args + [images["plugin"], "doctor", "-c", "/fluent-bit/etc/flb-sigv4.conf"]
    text = D.run(base, timeout=120, check=False)
    out = text.stdout.decode() + text.stderr.decode()
    assert text.returncode == 0, out
    assert "provider: environment" in out, out
    assert "/fluent-bit/etc/flb-sigv4.conf" in out, out
    assert "region:  us-east-1" in out, out
    as_json = D.run(base + ["--json"], timeout=120, check=False)
    report = json.loads(as_json.stdout.decode())
    assert report["ok"] and report["outputs"][0]["credentials"]["provider"] == "environment", \
        report
    for secret in (ENV_SECRET_KEY, ENV_SESSION_TOKEN):
        assert secret not in out and secret not in as_json.stdout.decode()


def test_build_context_holds_what_the_recipes_copy_and_not_target(images, tmp_path):
    """The repo's .dockerignore: the context the recipes build from has the sources, the build
    script and the release .so, and none of target/'s build trees (gigabytes)."""
    df = tmp_path / "Dockerfile"
    df.write_text(f"FROM {images['tools']}\nCOPY . /ctx\n"
                  "RUN cd /ctx && find . -maxdepth 3 | sort > /ctx.list\n")
    tag = D.build(f"flbt-ctx:{uuid.uuid4().hex[:8]}", df, REPO)
    try:
        listing = D.run(["docker", "run", "--rm", "--network", "none", tag, "cat", "/ctx.list"],
                        timeout=120).stdout.decode().split()
    finally:
        D.run(["docker", "rmi", "-f", tag], check=False)
    for need in ("./Cargo.toml", "./Cargo.lock", "./src/lib.rs", "./include",
                 "./tests/build_release.sh", "./tests/requirements-release.txt",
                 "./tests/helpers/receiver.py", "./fluent-bit-config/docker",
                 "./target/dist/libflb_sigv4.so", "./target/dist/flb-sigv4"):
        assert need in listing, (need, listing)
    assert not [p for p in listing if p.startswith(("./target/debug", "./target/release",
                                                    "./target/x86_64", "./tests/.build"))]

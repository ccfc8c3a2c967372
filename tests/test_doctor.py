"""`flb-sigv4 doctor` (issue 19, DESIGN §14), the built binary target/debug/flb-sigv4, run inside
the network-namespace setups of tests/test_credentials_e2e.py (proxy off EC2 with keys in
~/.aws/config, EC2 with IMDS behind a proxy, nothing configured, assume role with moto's STS, bad
property values). Each run is checked in text and JSON, and every verbosity's output is searched
for every secret (tests/helpers/leaks.py). One test runs the C host (the plugin's init log) and
the doctor on the same configuration and checks they agree on provider, region and proxy.

Network rule: as in tests/test_credentials_e2e.py, nothing leaves loopback or the test's own
namespace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Optional

import pytest

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import host as H
from tests.helpers import leaks
from tests.helpers.netns import REMOTE_ADDR
from tests.test_credentials_e2e import (PROFILE_KEY, PROXY_PASSWORD, PROXY_USER, REGION, ROLE_A,
                                        Lab, _proxied, _proxy_env, accept_issued, chunk,
                                        instance, lab, profile_config, provider_line)

__all__ = ["lab"]  # the fixture, imported for pytest

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "target" / "debug" / "flb-sigv4"
_lock = threading.Lock()


def doctor_bin() -> Path:
    """target/debug/flb-sigv4, built first when missing or older than the sources."""
    with _lock:
        sources = [REPO / "src", REPO / "Cargo.toml", REPO / "Cargo.lock"]
        newest = max(p.stat().st_mtime for s in sources
                     for p in ([s] if s.is_file() else s.rglob("*")) if p.is_file())
        if not BIN.exists() or BIN.stat().st_mtime < newest:
            proc = subprocess.run(["cargo", "build", "--bin", "flb-sigv4"], cwd=REPO,
                                  capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, proc.stderr[-4000:]
    return BIN


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self) -> dict:
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout[-6000:]}\nstderr:\n{self.stderr[-2000:]}"


VERBOSITIES = ([], ["-v"], ["-vv"], ["--json"], ["--json", "-vv"])


def doctor(lab: Lab, args: list, env: dict, config: Optional[Path] = None,
           verbosity: list = (), timeout: float = 90) -> Run:
    """One doctor run inside the lab's namespace with the host environment the C host would get
    (tests/helpers/host.py host_env); its output is scanned for secrets."""
    full_env = H.host_env(env, home=lab.home)
    argv = [str(doctor_bin()), "doctor", *args, *verbosity]
    proc = lab.ns.run(argv, env=full_env, timeout=timeout, cwd=str(lab.dir))
    leaks.check_run((proc.stdout + proc.stderr).encode(), full_env, config, what="doctor")
    return Run(proc)


def every_verbosity(lab: Lab, args: list, env: dict, config: Optional[Path] = None) -> dict:
    """Runs at every verbosity (text and JSON); returns {"text": Run, "json": dict, "runs": …}.
    Every run's output was scanned for secrets; the exit status is the same in all."""
    runs = {tuple(v): doctor(lab, args, env, config, v) for v in VERBOSITIES}
    codes = {r.code for r in runs.values()}
    assert len(codes) == 1, {k: r.code for k, r in runs.items()}
    return {"text": runs[("-vv",)], "plain": runs[()], "json": runs[("--json",)].json(),
            "code": codes.pop(), "runs": runs}


def write_conf(lab: Lab, text: str, name: str = "fluent-bit.conf") -> Path:
    p = lab.dir / name
    p.write_text(text)
    return p


def output_conf(props: dict, workers: int = 2) -> str:
    lines = ["[SERVICE]", "    Flush 1", "", "[OUTPUT]", "    Name sigv4_http", "    Match *",
             f"    Workers {workers}"]
    lines += [f"    {k} {v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def plugin_lines(res: H.HostResult, level: str) -> list:
    """The host's log lines of ``level`` without Fluent Bit's ``[output:…]`` instance prefix."""
    return [re.sub(r"^\[output:[^\]]*\] ", "", l) for l in res.logs(level)]


def conn(report_output: dict, target: str) -> dict:
    found = [c for c in report_output["connections"] if c["target"] == target]
    assert found, f"no {target} connection in {report_output['connections']}"
    return found[0]


# ------------------------------------------------------------------------------------------------


def test_proxy_off_ec2_profile_in_config(lab):
    """Keys only in ~/.aws/config, HTTP(S)_PROXY → tinyproxy with a password, not EC2: the
    doctor names the profile provider and the file, the endpoint's proxy (password redacted)
    and its rule, IMDS direct, the EC2 detection's evidence; --send-test goes through the proxy,
    is verified by the receiver (signed with the profile key) and is accepted."""
    tp = lab.tinyproxy()
    # the receiver verifies the signature for the profile's region, the doctor's decision
    rcv = lab.receiver(REMOTE_ADDR, credentials=[PROFILE_KEY], region="eu-west-1")
    imds = lab.imds()
    lab.home_file(".aws/config", profile_config("default", extra="region = eu-west-1\n"))
    conf = write_conf(lab, output_conf({"endpoint": rcv.endpoint("/bulk"),
                                        "aws_service": "es"}))
    env = _proxy_env(lab, tp)
    r = every_verbosity(lab, [str(conf)], env, conf)
    assert r["code"] == 0, r["text"].describe()
    out = r["json"]["outputs"][0]
    assert out["would_start"] and r["json"]["ok"]
    assert out["credentials"]["provider"] == "profile:default", out["credentials"]
    assert str(lab.home / ".aws" / "config") in out["credentials"]["reason"]
    assert out["region"] == {"value": "eu-west-1",
                             "source": "the region of profile 'default' in the shared config files"}
    assert out["service"]["source"] == "property aws_service"
    ep = conn(out, "endpoint")
    assert ep["route"] == "proxy" and ep["proxy"] == f"http://{PROXY_USER}:***@127.0.0.1:{tp.port}"
    assert "from HTTP_PROXY" in ep["rule"], ep
    assert "not EC2" in out["credentials"]["ec2_detection"]
    assert [(c["source"], c["outcome"]) for c in out["credentials"]["checks"]] == [
        ("environment", "skipped"), ("web identity", "skipped"), ("profile:default", "chosen")]
    assert out["credentials"]["fetched"] is True and "expires" not in out["credentials"]
    text = r["text"].stdout
    assert "provider: profile:default" in text and "region:  eu-west-1" in text, text
    assert f"{PROXY_USER}:***@127.0.0.1:{tp.port} (from HTTP_PROXY)" in text, text
    assert imds.calls() == []

    sent = doctor(lab, [str(conf), "--send-test", "--json"], env, conf)
    assert sent.code == 0, sent.describe()
    st = sent.json()["outputs"][0]["send_test"]
    assert st["status"] == 200 and st["accepted"] and st["verdict"] == "Delivered", st
    reqs = rcv.requests()
    assert len(reqs) == 1 and reqs[0].accepted and reqs[0].access_key == PROFILE_KEY[0], \
        [(x.outcome, x.auth_reason) for x in reqs]
    assert rcv.records() == []  # an empty batch
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()


def test_on_ec2_imds_behind_proxy(lab):
    """EC2 by its DMI files, proxies in the environment: the doctor picks IMDS (the evidence
    named), shows the metadata endpoint reached directly whatever the proxy variables say, and
    fetches the role's credentials with their expiry; no metadata request touches the proxy."""
    tp = lab.tinyproxy()
    imds = lab.imds()
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, imds)
    conf = write_conf(lab, output_conf({"endpoint": rcv.endpoint("/bulk"), "aws_region": REGION,
                                        "aws_service": "es"}))
    env = lab.env(ec2=True, HTTP_PROXY=tp.url(), HTTPS_PROXY=tp.url(), NO_PROXY="", no_proxy="")
    r = every_verbosity(lab, ["-c", str(conf)], env, conf)
    assert r["code"] == 0, r["text"].describe()
    out = r["json"]["outputs"][0]
    creds = out["credentials"]
    assert creds["provider"] == "imds", creds
    assert "EC2" in creds["reason"] and "sys_vendor" in creds["reason"], creds
    assert "direct (metadata endpoint)" in creds["reason"], creds
    assert creds["fetched"] and re.search(r"\(in \d+ min\)", creds["expires"]), creds
    assert conn(out, "endpoint")["route"] == "proxy"
    for target in ("imds", "container"):  # proxies set, metadata always direct
        c = conn(out, target)
        assert c["route"] == "direct" and c["rule"] == "direct (metadata endpoint)", c
    assert conn(out, "imds")["url"] == "http://169.254.169.254"
    assert conn(out, "sts")["route"] == "proxy", conn(out, "sts")
    calls = imds.calls()
    assert calls and calls[0].method == "PUT" and calls[0].path == "/latest/api/token"
    assert not [x for x in tp.requests() if x.host.startswith("169.254.")], tp.describe()
    assert "provider: imds" in r["text"].stdout


def test_imds_token_timeout_hints_at_hop_limit(lab):
    """On EC2 with IMDS not answering (as when the token PUT's answer is dropped at hop limit
    1 inside a container): the output would start (the chain committed to IMDS) but credentials
    cannot be fetched, exit 1, and the hop-limit hint is printed."""
    imds = lab.imds()
    imds.hang = 60
    conf = write_conf(lab, output_conf({"endpoint": "http://127.0.0.1:9/x", "aws_region": REGION,
                                        "aws_service": "es"}))
    r = doctor(lab, ["--json", str(conf)], lab.env(ec2=True), conf)
    assert r.code == 1, r.describe()
    creds = r.json()["outputs"][0]["credentials"]
    assert creds["provider"] == "imds" and creds["fetched"] is False, creds
    assert "IMDSv2 token request" in creds["error"], creds
    assert any("hop limit" in h for h in creds["hints"]), creds
    text = doctor(lab, [str(conf)], lab.env(ec2=True), conf)
    assert "hint: the IMDSv2 token request timed out" in text.stdout, text.describe()


def test_nothing_configured(lab):
    """Nothing configured, not EC2: exit 1, the output would not start, the init error is the
    plugin's own one-line message listing every check, and the text says so."""
    imds = lab.imds()
    conf = write_conf(lab, output_conf({"endpoint": "http://127.0.0.1:9/x", "aws_region": REGION,
                                        "aws_service": "es"}))
    r = every_verbosity(lab, [str(conf)], lab.env(ec2=False), conf)
    assert r["code"] == 1, r["text"].describe()
    out = r["json"]["outputs"][0]
    assert not out["would_start"] and not r["json"]["ok"]
    msg = out["init_error"]
    for needle in ["no AWS credentials configured", "AWS_ACCESS_KEY_ID",
                   "AWS_WEB_IDENTITY_TOKEN_FILE", str(lab.home / ".aws" / "config"),
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "not EC2", "QEMU"]:
        assert needle in msg, f"{needle!r} missing from {msg}"
    checks = out["credentials"]["checks"]
    assert [c["source"] for c in checks] == ["environment", "web identity", "shared files",
                                             "container", "EC2 instance metadata"], checks
    assert all(c["outcome"] == "skipped" for c in checks) and "QEMU" in checks[-1]["reason"]
    assert "[skipped] EC2 instance metadata: not used (aws_imds auto and not EC2" \
        in r["plain"].stdout
    assert "init would fail with: no AWS credentials configured" in r["plain"].stdout
    assert "FAILED" in r["plain"].stdout
    assert imds.calls() == []


def test_assume_role_with_moto(lab):
    """Profile keys + aws_role_arn with moto's STS: the doctor fetches the assumed credentials
    (signed with the base keys) and shows the role and the expiry, no secret."""
    moto = lab.moto()
    lab.home_file(".aws/config", profile_config("default"))
    conf = write_conf(lab, output_conf({"endpoint": "http://127.0.0.1:9/x", "aws_region": REGION,
                                        "aws_service": "es", "aws_role_arn": ROLE_A,
                                        "aws_sts_endpoint": moto.url + "/"}))
    r = every_verbosity(lab, [str(conf)], lab.env(ec2=False), conf)
    assert r["code"] == 0, r["text"].describe()
    creds = r["json"]["outputs"][0]["credentials"]
    assert creds["fetched"] and creds["role_arn"] == ROLE_A, creds
    assert ROLE_A in creds["provider"] or ROLE_A in creds["reason"], creds
    assert "expires" in creds
    sts = conn(r["json"]["outputs"][0], "sts")
    assert sts["url"] == moto.url and sts["route"] == "direct", sts
    roles = moto.assumed_roles()
    assert roles and all(x["role_arn"] == ROLE_A for x in roles), roles
    for run in r["runs"].values():  # moto's issued secrets are not in any output
        for x in roles:
            assert x["access_key_id"][:-4] not in run.stdout
    assert f"role: {ROLE_A}" in r["text"].stdout
    # The session STS created (AssumedRoleUser/Arn), not the configured role ARN.
    account, role = ROLE_A.split(":")[4], ROLE_A.split("/")[-1]
    assumed = creds["assumed_role_arn"]
    assert re.fullmatch(rf"arn:aws:sts::{account}:assumed-role/{role}/[^/]+", assumed), creds
    assert any(assumed.endswith("/" + x["session_name"]) for x in roles), (assumed, roles)
    # each run assumes the role anew (its session name carries the time): each run's own line
    pattern = rf"arn:aws:sts::{account}:assumed-role/{role}/[^/\s]+"
    for name in ("text", "plain"):
        m = re.search(rf"assumed role: ({pattern})", r[name].stdout)
        assert m, r[name].stdout
        assert any(m.group(1).endswith("/" + x["session_name"]) for x in roles), (m.group(1), roles)


BAD_PROPS = [
    (["-p", "endpoint=ftp://x/"], "property 'endpoint' has invalid value 'ftp://x'"),
    (["-p", "endpoint=https://h/", "-p", "format=yaml"],
     "property 'format' has invalid value 'yaml'"),
    (["-p", "endpoint=https://h/", "-p", "proxy=http://u:" + PROXY_PASSWORD + "@:3128"],
     "property 'proxy' has invalid value 'http://u:***@:3128'"),
    (["-p", "aws_region=us-east-1"], "property 'endpoint' is required"),
    (["-p", "endpoint=http://127.0.0.1:1/x", "-p", "aws_imds=off"],
     "property 'aws_service' is not set"),
]


@pytest.mark.parametrize("args,want", BAD_PROPS, ids=[w.split("'")[1] + str(i) for i, (_, w)
                                                      in enumerate(BAD_PROPS)])
def test_bad_property_values(lab, args, want):
    """-p properties with a bad value: exit 1 and the init error exactly as the plugin logs
    it (the C host run on the same properties prints the same line)."""
    r = every_verbosity(lab, args, lab.env(ec2=False))
    assert r["code"] == 1, r["text"].describe()
    err = r["json"]["outputs"][0]["init_error"]
    assert err.startswith(want), err
    props = {}
    for i in range(0, len(args), 2):
        k, v = args[i + 1].split("=", 1)
        props[k] = v
    res = lab.run([props], [], env=lab.env(ec2=False))
    assert res.returncode == H.EXIT_INIT, res.describe()
    assert err in plugin_lines(res, "error"), (err, res.logs("error"))
    assert PROXY_PASSWORD not in r["text"].stdout


def test_host_and_doctor_agree(lab):
    """The C host (the plugin's init log) and the doctor on the same config file and
    environment: the same provider and reason, region, and proxy decision for the endpoint."""
    tp = lab.tinyproxy()
    rcv = lab.receiver(REMOTE_ADDR, credentials=[PROFILE_KEY], region="eu-west-1")
    lab.home_file(".aws/config", profile_config("default", extra="region = eu-west-1\n"))
    env = _proxy_env(lab, tp)
    inst = instance(rcv.endpoint("/bulk"))
    inst.pop("aws_region")
    res = lab.run([inst], [chunk()], env=env)
    assert res.returncode == 0, res.describe()
    conf = res.config if getattr(res, "config", None) else None
    if conf is None:
        conf = write_conf(lab, H.config_text([inst]))
    r = doctor(lab, ["--json", str(conf)], env, conf)
    assert r.code == 0, r.describe()
    out = r.json()["outputs"][0]
    line = provider_line(res)
    m = re.search(r"region '([^']+)' service '([^']+)'; credentials provider '([^']+)' "
                  r"chosen because (.*)$", line)
    assert m, line
    assert (out["region"]["value"], out["service"]["value"]) == (m.group(1), m.group(2))
    assert out["credentials"]["provider"] == m.group(3)
    assert out["credentials"]["reason"] == m.group(4)
    info = plugin_lines(res, "info")
    host_proxy = [l for l in info if l.startswith("proxy for the endpoint: ")]
    assert host_proxy, res.logs("info")
    assert conn(out, "endpoint")["rule"] == host_proxy[0][len("proxy for the endpoint: "):]
    chain = [l[len("credentials chain: "):] for l in info if l.startswith("credentials chain: ")]
    # the plugin logs every step but the chosen one, which its provider line above states
    assert chain == [f"{c['source']} {c['outcome']}: {c['reason']}"
                     for c in out["credentials"]["checks"] if c["outcome"] != "chosen"], \
        (chain, out["credentials"])
    assert [c for c in out["credentials"]["checks"] if c["outcome"] == "chosen"][-1][
        "source"] == m.group(3)
    summary = [l for l in info if l.startswith("configuration: ")]
    assert summary and summary[0] == "configuration: " + out["configuration"]


# ------------------------------------------------------------------------------------------------
# configuration files (no network needed beyond the namespace)


def test_classic_includes_tls_on_and_warnings(lab):
    """@INCLUDE of a glob relative to the main file, @SET and ${VAR}: the output is found and
    its endpoint expanded; `tls on` makes the run fail (Fluent Bit rejects the config), host and
    a repeated key are flagged, Workers missing is flagged."""
    (lab.dir / "outputs").mkdir()
    (lab.dir / "outputs" / "a.conf").write_text(
        "[OUTPUT]\n    Name sigv4_http\n    Match *\n    endpoint ${EP}\n    aws_region eu-west-1\n"
        "    aws_service es\n    tls on\n    host example.com\n    compress gzip\n"
        "    compress zstd\n")
    main = write_conf(lab, "@SET EP=http://127.0.0.1:9/logs\n@INCLUDE outputs/*.conf\n")
    r = every_verbosity(lab, [str(main)], lab.env(ec2=False, **CREDS_ENV), main)
    assert r["code"] == 1, r["text"].describe()
    out = r["json"]["outputs"][0]
    assert out["configuration"].startswith("endpoint=http://127.0.0.1:9/logs ")
    assert "compress=gzip" in out["configuration"]
    msgs = " | ".join(f["message"] for f in out["findings"])
    for needle in ["tls on: Fluent Bit rejects", "'host' is Fluent Bit's own key",
                   "'compress' is given again", "Workers is not set"]:
        assert needle in msgs, msgs
    assert any(f["at"].endswith("outputs/a.conf:7") for f in out["findings"]
               if f["message"].startswith("tls on")), out["findings"]
    assert len(r["json"]["input"]["files"]) == 2
    for run in r["runs"].values():
        assert CREDENTIALS[1] not in run.stdout


def test_yaml_env_includes_and_hot_reload(lab):
    """YAML: env, includes and pipeline.outputs; Workers with service hot_reload on is
    flagged; the environment comes from --env-from-pid (a process started with the keys)."""
    (lab.dir / "out.yaml").write_text(
        "pipeline:\n  outputs:\n    - name: sigv4_http\n      match: '*'\n      workers: 2\n"
        "      endpoint: ${EP}\n      aws_region: eu-west-1\n      aws_service: es\n")
    main = write_conf(lab, "env:\n  EP: http://127.0.0.1:9/y\nincludes:\n  - out.yaml\n"
                      "service:\n  hot_reload: on\n", name="fluent-bit.yaml")
    # a stand-in for Fluent Bit: a process with the credentials in its environment
    sleeper = subprocess.Popen(["sleep", "60"], env=H.host_env(dict(CREDS_ENV)))
    try:
        r = every_verbosity(lab, [str(main), "--env-from-pid", str(sleeper.pid)],
                            lab.env(ec2=False), main)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert r["code"] == 0, r["text"].describe()
    j = r["json"]
    assert j["input"]["syntax"] == "yaml" and f"process {sleeper.pid}" in j["input"]["environment"]
    out = j["outputs"][0]
    assert out["credentials"]["provider"] == "environment", out["credentials"]
    assert out["configuration"].startswith("endpoint=http://127.0.0.1:9/y ")
    assert any("hot reload" in f["message"] for f in out["findings"]), out["findings"]
    assert "AWS_SECRET_ACCESS_KEY" in j["input"]["variables_set"]


def _doctor_direct(args: list, env: dict, tmp: Path) -> Run:
    """A doctor run on loopback only (no namespace needed), scanned for secrets."""
    full_env = H.host_env(env, home=tmp)
    proc = subprocess.run([str(doctor_bin()), "doctor", *args], env=full_env, cwd=str(tmp),
                          capture_output=True, text=True, timeout=90)
    leaks.check_run((proc.stdout + proc.stderr).encode(), full_env, None, what="doctor")
    return Run(proc)


def test_send_test_empty_bulk_counts_as_authenticated(tmp_path):
    """format opensearch: the empty `_bulk` body is refused by (the fake) OpenSearch with 400
    "request body is required" after the signature was checked: accepted, exit 0. A wrong key
    gets 403 first: not accepted, exit 1."""
    from tests.helpers.opensearch import FakeOpenSearch
    with FakeOpenSearch(credentials=[CREDENTIALS], region="eu-west-1", service="es") as fake:
        props = ["-p", f"endpoint={fake.endpoint()}", "-p", "format=opensearch",
                 "-p", "aws_region=eu-west-1", "-p", "aws_service=es"]
        r = _doctor_direct([*props, "--send-test", "--json"], dict(CREDS_ENV), tmp_path)
        assert r.code == 0, r.describe()
        st = r.json()["outputs"][0]["send_test"]
        assert st["status"] == 400 and st["accepted"], st
        assert "request body is required" in st["response"], st
        assert st["meaning"].startswith("authentication passed"), st
        reqs = fake.receiver.requests()
        assert len(reqs) == 1 and reqs[0].auth_ok and reqs[0].raw_body == b"", \
            [(x.auth_ok, x.auth_reason) for x in reqs]
        assert reqs[0].headers["content-type"] == "application/x-ndjson"
        assert fake.doc_count() == 0

        text = _doctor_direct([*props, "--send-test"], dict(CREDS_ENV), tmp_path)
        assert text.code == 0 and "authentication passed" in text.stdout, text.describe()

        wrong = dict(CREDS_ENV, AWS_ACCESS_KEY_ID="AKIDNOTKNOWNTOFAKE")
        bad = _doctor_direct([*props, "--send-test", "--json"], wrong, tmp_path)
        assert bad.code == 1, bad.describe()
        st = bad.json()["outputs"][0]["send_test"]
        assert st["status"] == 403 and not st["accepted"], st


def test_send_test_sends_what_the_plugin_sends(tmp_path):
    """The test request is the plugin's own (Output::send_test): the user's Content-Type
    replaces the format's and is signed, `headers` and `header_tag` are sent, the body is
    compressed as configured, and the receiver verifies the signature."""
    from tests.helpers.receiver import Receiver
    with Receiver(credentials=[CREDENTIALS], region="eu-west-1", service="es") as rcv:
        props = ["-p", f"endpoint={rcv.endpoint('/in')}", "-p", "aws_region=eu-west-1",
                 "-p", "aws_service=es", "-p", "compress=gzip",
                 "-p", "headers=Content-Type: application/vnd.test+json; X-Team: logs",
                 "-p", "header_tag=X-Tag"]
        r = _doctor_direct([*props, "--send-test", "--record", "--json"], dict(CREDS_ENV),
                           tmp_path)
        assert r.code == 0, r.describe()
        st = r.json()["outputs"][0]["send_test"]
        assert st["status"] == 200 and st["accepted"] and "gzip" in st["body"], st
        reqs = rcv.requests()
        assert len(reqs) == 1 and reqs[0].accepted, [(x.outcome, x.auth_reason) for x in reqs]
        req = reqs[0]
        assert req.headers["content-type"] == "application/vnd.test+json"
        assert "content-type" in req.signed_headers, req.signed_headers
        assert req.headers["x-team"] == "logs"
        assert req.headers["x-tag"] == "flb-sigv4.doctor"
        assert req.headers["content-encoding"] == "gzip"
        assert [r.get("message") for r in rcv.records()] == ["flb-sigv4 doctor test record"]

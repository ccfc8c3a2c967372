"""End-to-end tests of the credential chain (DESIGN §4, §5; issue 3 "Rules that the tests must
prove" 1–10): the built .so, driven by the C host like Fluent Bit, inside a private network
namespace per test, against a botocore-verifying receiver, a real tinyproxy, moto's STS and
fake IMDS / ECS / EKS Pod Identity / STS endpoints that record every request.

Network rule: nothing here sends a packet outside loopback or the test's own namespace. The
metadata addresses 169.254.169.254, 169.254.170.2 and 169.254.170.23 and the "remote" addresses
10.200.0.1 (STS) and 10.200.0.2 (a proxied log endpoint) exist only on the namespace's ``lo``;
the receiver, the fakes, tinyproxy, moto and the host all run in it (tests/helpers/netns.py).
EC2 detection reads a fake sysfs tree (``FLB_SIGV4_SYS_ROOT``), never the machine's. The SSO
tests serve the real host names portal.sso.<region>.amazonaws.com / oidc.<region>.amazonaws.com
from 10.200.0.3 in the namespace: the names resolve there only (``NetNS.set_hosts``, a hosts file
bind-mounted over /etc/hosts for the namespace's processes, never the machine's /etc/hosts).

Rules → tests:
 1 first configured provider  test_env_keys_win_no_files_no_network,
                              test_explicit_profile_beats_env_container_and_imds,
                              test_ambient_profile_before_container_and_imds,
                              test_configured_provider_failure_is_not_replaced[...],
                              test_half_env_pair_is_an_error_not_a_fall_through,
                              test_file_location_variables_beat_home[...]
 2 proxy off EC2              test_proxy_off_ec2_profile_in_config_only,
                              test_proxy_off_ec2_assume_role_through_proxy[fake-sts|moto],
                              test_https_sts_through_proxy_with_connect,
                              test_no_proxy_property_applies_to_sts_as_well,
                              test_proxy_auth_refused_is_retried_not_dropped[...]
 3 on EC2, metadata direct    test_on_ec2_imds_direct_despite_proxy, test_ecs_direct_despite_proxy,
                              test_eks_pod_identity_direct_despite_proxy, test_imds_gating[...],
                              test_imdsv1_fallback[...],
                              test_region_discovery_respects_imds_gating[...]
 4 session tokens             test_session_token_reaches_endpoint[...] (every provider, SSO too)
 5 refresh before expiry      tests/test_cred_refresh.py::test_refresh_before_expiry_and_outage
 6 assumed role from base     tests/test_cred_refresh.py::test_assumed_roles_refreshed_with_base_*,
                              test_fake_sts_refuses_same_role_session (the fake's AWS rule)
    (token files re-read)     tests/test_cred_refresh.py::test_web_identity_token_file_*,
                              ::test_pod_identity_token_file_reread_at_each_fetch
 7 403 ExpiredToken           test_expired_token_403_refreshes_once[...]
 8 nothing configured         test_nothing_configured_lists_what_was_checked[...]
 9 bad input                  test_bad_input[...]
10 start-up line              test_startup_line_*, and every proxy test (password never shown)
 SSO (IAM Identity Center)    test_sso_credentials_end_to_end[...] (sso_session, legacy
                              sso_start_url, via HTTPS_PROXY, SSO-OIDC token refresh),
                              test_sso_failure_names_the_profile_and_is_not_replaced[...]
 credential_source + role     test_profile_credential_source_assume_role[...]
"""

from __future__ import annotations

import hashlib
import re
import stat
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest

from tests.conftest import ACCESS_KEY, CREDENTIALS, CREDS_ENV, SECRET_KEY, SESSION_TOKEN
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers import proxy as proxy_mod
from tests.helpers import sts as sts_mod
from tests.helpers.fakes import (FakeContainer, FakeIMDS, FakeServer, FakeSTS, Failure, Issued,
                                 make_tls, sts_error)
from tests.helpers.netns import (ECS_ADDR, EKS_ADDR, IMDS_ADDR, REMOTE_ADDR, STS_ADDR, NetNS,
                                 unavailable_reason)
from tests.helpers.receiver import CredentialSet, Receiver
from tests.helpers.receiver import _Handler as _ReceiverHandler

REGION = "us-east-1"
SERVICE = "es"
PROXY_USER = "flbuser"
PROXY_PASSWORD = "Pr0xyPassw0rdNeverLogged"
ROLE_A = "arn:aws:iam::123456789012:role/flbt-writer-a"
ROLE_B = "arn:aws:iam::123456789012:role/flbt-writer-b"

# static keys of the shared-file profiles
PROFILE_KEY = ("AKIDPROFILEFLBT00001", "ProfileSecretKeyFLBT/never+logged0000001")
PROFILE_KEY_B = ("AKIDPROFILEFLBT00002", "ProfileSecretKeyFLBT/never+logged0000002")
OTHER_ENV_KEY = ("AKIDENVIRONMENTFLBT9", "EnvSecretKeyFLBT/never+logged000000000009")


def _skip_reason() -> Optional[str]:
    reason = unavailable_reason()
    if reason:
        return f"end-to-end credential tests {reason}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


# ------------------------------------------------------------------------------------------------
# the lab: one namespace with its servers, per test


class BoundReceiver(Receiver):
    """The verifying receiver listening on another address than 127.0.0.1 (a "remote"
    endpoint inside the namespace, so a configured proxy is really used: loopback is always
    reached directly by design)."""

    def __init__(self, bind_host: str, **kw):
        super().__init__(**kw)
        srv = ThreadingHTTPServer((bind_host, 0), _ReceiverHandler)
        srv.daemon_threads = True
        srv.block_on_close = False
        srv.receiver = self
        self._server.server_close()
        self._server = srv
        self.bind_host = bind_host

    @property
    def url(self) -> str:
        return f"http://{self.bind_host}:{self.port}"


class Lab:
    def __init__(self, tmp_path: Path, plugin_so: Path):
        self.dir = tmp_path
        self.so = plugin_so
        self.hostdir = tmp_path / "host"
        self.home = self.hostdir / "home"
        self.home.mkdir(parents=True)
        self.ns = NetNS().create()
        self._stoppers: list = []
        self.proxy: Optional[proxy_mod.Tinyproxy] = None

    def close(self):
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort teardown
                pass
        self.ns.delete()

    # -- servers ---------------------------------------------------------------------------

    def receiver(self, host: str = "127.0.0.1", **kw) -> Receiver:
        kw.setdefault("region", REGION)
        kw.setdefault("service", SERVICE)
        kw.setdefault("credentials", [])
        if host == "127.0.0.1":
            rcv = self.ns.call(lambda: Receiver(**kw).start())
        else:
            rcv = self.ns.call(lambda: BoundReceiver(host, **kw).start())
        self._stoppers.append(rcv.stop)
        return rcv

    def _fake(self, fake):
        fake.start()
        self._stoppers.append(fake.stop)
        return fake

    def imds(self, **kw) -> FakeIMDS:
        return self._fake(FakeIMDS(IMDS_ADDR, 80, ns=self.ns, **kw))

    def ecs(self, **kw) -> FakeContainer:
        return self._fake(FakeContainer(ECS_ADDR, 80, ns=self.ns, **kw))

    def eks(self, **kw) -> FakeContainer:
        kw.setdefault("path", "/v1/credentials")
        kw.setdefault("prefix", "EKS")
        return self._fake(FakeContainer(EKS_ADDR, 80, ns=self.ns, **kw))

    def sts(self, host: str = STS_ADDR, **kw) -> FakeSTS:
        return self._fake(FakeSTS(host, 0, ns=self.ns, **kw))

    def tinyproxy(self, auth: bool = True, connect_ports=(443,)) -> proxy_mod.Tinyproxy:
        if not proxy_mod.available():
            pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
        tp = proxy_mod.Tinyproxy(self.ns, self.dir / "tinyproxy",
                                 user=PROXY_USER if auth else None,
                                 password=PROXY_PASSWORD if auth else None,
                                 connect_ports=connect_ports)
        tp.start()
        self._stoppers.append(tp.stop)
        self.proxy = tp
        return tp

    def moto(self) -> sts_mod.MotoServer:
        if not sts_mod.available():
            pytest.skip("moto[server] is not installed (pip install -r tests/requirements.txt)")
        m = sts_mod.MotoServer(self.ns, self.dir / "moto", host=STS_ADDR)
        m.start()
        self._stoppers.append(m.stop)
        return m

    # -- files -----------------------------------------------------------------------------

    def sysfs(self, ec2: bool) -> Path:
        root = self.dir / ("sys-ec2" if ec2 else "sys-other")
        dmi = root / "class" / "dmi" / "id"
        dmi.mkdir(parents=True, exist_ok=True)
        if ec2:
            (dmi / "sys_vendor").write_text("Amazon EC2\n")
            (dmi / "bios_vendor").write_text("Amazon EC2\n")
            (dmi / "board_asset_tag").write_text("i-0123456789abcdef0\n")
            (dmi / "product_uuid").write_text("EC2E1916-9099-7CAF-FD21-012345678901\n")
        else:
            (dmi / "sys_vendor").write_text("QEMU\n")
            (dmi / "bios_vendor").write_text("SeaBIOS\n")
            (dmi / "product_uuid").write_text("4c4c4544-0042-4b10-8053-b4c04f4a4e32\n")
        return root

    def home_file(self, rel: str, text: str, mode: Optional[int] = None) -> Path:
        p = self.home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if mode is not None:
            p.chmod(mode)
        return p

    def script(self, name: str, body: str) -> Path:
        p = self.dir / "bin" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return p

    # -- running ---------------------------------------------------------------------------

    def env(self, ec2: bool = False, **extra) -> dict:
        """Host environment: nothing AWS-related but what the test adds (host_env removes the
        inherited AWS_* and proxy variables), IMDS not disabled (this is a namespace), the fake
        sysfs."""
        env = {"AWS_EC2_METADATA_DISABLED": None, "FLB_SIGV4_SYS_ROOT": str(self.sysfs(ec2))}
        env.update(extra)
        return env

    def run(self, instances, chunk_list=(), env=None, **kw) -> H.HostResult:
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 120)
        if not isinstance(instances, (list, tuple)):
            instances = [instances]
        return self.ns.run_host(list(instances), list(chunk_list), so=self.so,
                                env=env if env is not None else self.env(),
                                workdir=self.hostdir, **kw)


@pytest.fixture
def lab(tmp_path, plugin_so, host_bin):
    lab = Lab(tmp_path, plugin_so)
    try:
        yield lab
    finally:
        lab.close()


# ------------------------------------------------------------------------------------------------
# helpers


def instance(endpoint: str, **props) -> dict:
    inst = {"endpoint": endpoint, "aws_region": REGION, "aws_service": SERVICE,
            "format": "json_lines"}
    inst.update(props)
    return inst


def chunk(n: int = 5, prefix: str = "c") -> C.Chunk:
    return C.build_chunk(C.make_records(n, prefix=prefix), name=f"{prefix}.bin")


def output(res: H.HostResult) -> str:
    return res.stdout + "\n" + res.stderr


def assert_no_secret(res: H.HostResult, *secrets: str, extra: str = ""):
    text = output(res) + extra
    for s in secrets:
        if s:
            assert s not in text, f"secret {s[:6]}… appears in the output:\n{res.describe()}"


def assert_no_crash(res: H.HostResult):
    assert "panicked" not in res.stderr, res.describe()
    assert res.returncode in (H.EXIT_OK, H.EXIT_INIT), res.describe()


def provider_line(res: H.HostResult) -> str:
    lines = [l for l in res.logs("info") if "credentials provider" in l and "chosen because" in l]
    assert len(lines) == 1, f"want one 'credentials provider … chosen because' info line, got " \
                            f"{lines}\n{res.describe()}"
    return lines[0]


def assert_delivered(res: H.HostResult, rcv: Receiver, chunks, *, keys=None, token=True):
    """Exit 0, every flush FLB_OK at once, every record delivered once, every request signed
    correctly (the receiver verified it) with one of ``keys`` (access key ids)."""
    assert res.returncode == 0, res.describe()
    assert res.results() and all(r == [H.FLB_OK] for r in res.results()), res.describe()
    reqs = rcv.requests()
    assert reqs, f"the receiver got nothing\n{res.describe()}"
    bad = [(r.index, r.auth_reason) for r in reqs if not r.accepted]
    assert not bad, f"rejected requests: {bad}\n{res.describe()}"
    for r in reqs:
        if keys is not None:
            assert r.access_key in keys, f"request signed with {r.access_key}, want {keys}"
        if token:
            assert "x-amz-security-token" in r.signed_headers, r.signed_headers
    got = sorted(C.record_id(x) for x in rcv.records())
    want = sorted(e.record["id"] for c in chunks for e in c.events)
    assert got == want, f"records: got {len(got)}, want {len(want)}"


def accept_issued(rcv: Receiver, fake, role: Optional[str] = None):
    """Make the receiver accept the credentials ``fake`` issues (for ``role``), and only
    those: it learns each one when issued, before the plugin can sign with it."""

    def learn(iss: Issued):
        if role is None or iss.role == role:
            rcv.credentials.append(iss.cred)

    fake.on_issue.append(learn)


def all_logs(res: H.HostResult) -> str:
    return "\n".join(res.logs())


def profile_config(name: str = "default", key=PROFILE_KEY, extra: str = "",
                   in_config: bool = True) -> str:
    header = (f"[profile {name}]" if name != "default" else "[default]") if in_config \
        else f"[{name}]"
    return f"{header}\naws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n{extra}"


def process_script(lab: Lab, name: str, lifetime: float = 3600, token: bool = True) -> tuple:
    """A credential_process script printing fresh credentials (the key id is fixed so the
    receiver can know it; the expiry is computed when it runs)."""
    akid = "ASIAPROCESSFLBT00001"
    secret = "ProcessSecretFLBT/never+logged00000000001"
    tok = "ProcessSessionTokenFLBT" + "x" * 40
    tok_field = f'"SessionToken":"{tok}",' if token else ""
    body = (f'exp=$(date -u -d "@$(( $(date +%s) + {int(lifetime)} ))" +%Y-%m-%dT%H:%M:%SZ)\n'
            f'echo "$(date +%s)" >> "{lab.dir}/{name}.calls"\n'
            f'printf \'{{"Version":1,"AccessKeyId":"{akid}","SecretAccessKey":"{secret}",'
            f'{tok_field}"Expiration":"%s"}}\\n\' "$exp"\n')
    return lab.script(name, body), CredentialSet(akid, secret, tok if token else None)


# ------------------------------------------------------------------------------------------------
# self-test of the fakes: the STS rule rule 6 relies on


def test_fake_sts_refuses_same_role_session(lab):
    """The fake STS accepts AssumeRole signed with a base key, refuses one signed with an
    assumed-role session of the same role (403 AccessDenied), and records the signing key."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    sts = lab.sts(base_credentials=[PROFILE_KEY], lifetime=60)

    def assume(creds) -> tuple:
        body = (f"Action=AssumeRole&Version=2011-06-15&RoleArn={ROLE_A}"
                "&RoleSessionName=t").encode()
        req = AWSRequest("POST", sts.url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
        SigV4Auth(Credentials(*creds), "sts", REGION).add_auth(req)

        def send():
            r = urllib.request.Request(sts.url + "/", data=body, method="POST",
                                       headers=dict(req.headers.items()))
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(r, timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        return lab.ns.call(send)

    status, text = assume(PROFILE_KEY)
    assert status == 200 and "<AccessKeyId>ASIA" in text, text
    issued = sts.issued()[0]
    status, text = assume((issued.access_key, issued.secret_key, issued.token))
    assert status == 403 and "AccessDenied" in text, text
    status, text = assume((PROFILE_KEY[0], "wrong-secret"))
    assert status == 403 and "SignatureDoesNotMatch" in text, text
    calls = sts.calls_of("AssumeRole")
    assert [c.signing_key for c in calls] == [PROFILE_KEY[0], issued.access_key, PROFILE_KEY[0]]
    assert [c.status for c in calls] == [200, 403, 403]


# ------------------------------------------------------------------------------------------------
# rule 1: the first configured provider, and only it


def test_env_keys_win_no_files_no_network(lab):
    """Environment keys: garbage shared files (and a missing AWS_PROFILE) do not matter, and
    IMDS / container / STS endpoints — all configured and reachable — get zero requests."""
    rcv = lab.receiver(credentials=[CREDENTIALS], require_token=True)
    imds, ecs, sts = lab.imds(), lab.ecs(), lab.sts()
    garbage = lab.dir / "garbage.ini"
    garbage.write_text("[default\nthis is = = not ini\n\x00\x01 [[[\n")
    env = lab.env(ec2=True, **CREDS_ENV,
                  AWS_CONFIG_FILE=garbage, AWS_SHARED_CREDENTIALS_FILE=garbage,
                  AWS_PROFILE="does-not-exist",
                  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path,
                  AWS_ENDPOINT_URL_STS=sts.url)
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=env)
    assert_delivered(res, rcv, [c], keys={ACCESS_KEY})
    assert imds.calls() == [] and ecs.calls() == [] and sts.calls() == []
    line = provider_line(res)
    assert "'environment'" in line and "AWS_ACCESS_KEY_ID" in line, line
    assert_no_secret(res, SECRET_KEY, SESSION_TOKEN)


def test_explicit_profile_beats_env_container_and_imds(lab):
    """aws_profile selects that profile alone: not the environment keys (also set), and the
    container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI set) and IMDS (EC2 host) get
    zero requests."""
    rcv = lab.receiver(credentials=[PROFILE_KEY])  # the env keys would be rejected
    imds, ecs = lab.imds(), lab.ecs()
    lab.home_file(".aws/credentials", profile_config("prod", in_config=False))
    env = lab.env(ec2=True, AWS_ACCESS_KEY_ID=OTHER_ENV_KEY[0],
                  AWS_SECRET_ACCESS_KEY=OTHER_ENV_KEY[1],
                  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path)
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), aws_profile="prod"), [c], env=env)
    assert_delivered(res, rcv, [c], keys={PROFILE_KEY[0]}, token=False)
    assert imds.calls() == [] and ecs.calls() == []
    line = provider_line(res)
    assert "profile:prod" in line and "aws_profile" in line, line
    assert_no_secret(res, PROFILE_KEY[1], OTHER_ENV_KEY[1])


def test_ambient_profile_before_container_and_imds(lab):
    """No env keys: the default profile (credential_process) is configured, so the container
    endpoint and IMDS, configured too, get zero requests."""
    script, cred = process_script(lab, "proc")
    rcv = lab.receiver(credentials=[cred], require_token=True)
    imds, ecs = lab.imds(), lab.ecs()
    lab.home_file(".aws/config", f"[default]\ncredential_process = {script} --flag\n")
    env = lab.env(ec2=True, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path)
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=env)
    assert_delivered(res, rcv, [c], keys={cred.access_key})
    assert imds.calls() == [] and ecs.calls() == []
    assert "credential_process" in provider_line(res)
    assert_no_secret(res, cred.secret_key, cred.token)


def _process_failing(lab: Lab, name: str = "failing") -> Path:
    return lab.script(name, 'echo "credential helper: vault unreachable" >&2\nexit 1\n')


@pytest.mark.parametrize("case", ["explicit_profile", "ambient_profile", "web_identity",
                                  "container", "imds"])
def test_configured_provider_failure_is_not_replaced(lab, case):
    """A configured provider that fails is reported by its name and never silently replaced
    by a later provider (or by the environment keys): no record is delivered with other
    credentials and the later providers' endpoints get zero requests."""
    fallback = [CREDENTIALS, PROFILE_KEY]  # what a fall-through would sign with
    rcv = lab.receiver(credentials=fallback)
    imds, ecs = lab.imds(), lab.ecs()
    sts = lab.sts(base_credentials=[PROFILE_KEY])
    env = lab.env(ec2=True, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path,
                  AWS_ENDPOINT_URL_STS=sts.url)
    props = {}
    if case == "explicit_profile":
        lab.home_file(".aws/config", f"[profile bad]\ncredential_process = {_process_failing(lab)}\n"
                      + profile_config("default"))
        env.update(CREDS_ENV)
        props["aws_profile"] = "bad"
        name, must_be_silent = "profile:bad", [imds, ecs, sts]
    elif case == "ambient_profile":
        lab.home_file(".aws/config", f"[default]\ncredential_process = {_process_failing(lab)}\n")
        name, must_be_silent = "profile:default", [imds, ecs, sts]
    elif case == "web_identity":
        lab.home_file(".aws/config", profile_config("default"))
        env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(lab.dir / "no-such-token"),
                   AWS_ROLE_ARN=ROLE_A)
        name, must_be_silent = "web-identity", [imds, ecs, sts]
    elif case == "container":
        ecs.fail = Failure(500, '{"message":"agent down"}', "application/json")
        name, must_be_silent = "container", [imds, sts]
    else:  # imds: the last provider, failing: nothing after it, but no env fallback either
        env.pop("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        imds.fail = Failure(500, "internal error", "text/plain")
        name, must_be_silent = "imds", [ecs, sts]
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), **props), [c], env=env, max_retries=1,
                  retry_delay_ms=200)
    assert_no_crash(res)
    assert rcv.requests() == [], f"records were sent with fall-through credentials\n" \
                                 f"{res.describe()}"
    for fake in must_be_silent:
        assert fake.calls() == [], f"{fake.kind} got requests: {fake.calls()}"
    if res.returncode == H.EXIT_INIT:
        errors = "\n".join(res.logs("error"))
    else:
        assert all(H.FLB_OK not in r for r in res.results()), res.describe()
        assert all(r and set(r) == {H.FLB_RETRY} for r in res.results()), res.describe()
        errors = "\n".join(res.logs("warn") + res.logs("error"))
    assert f"'{name}'" in errors, f"the failure does not name provider '{name}':\n{errors}"
    assert_no_secret(res, SECRET_KEY, PROFILE_KEY[1])


@pytest.mark.parametrize("which", ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"])
def test_file_location_variables_beat_home(lab, which):
    """AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE (with ~ expanded) name the file read, not
    the one under ~/.aws (which holds another key here)."""
    rcv = lab.receiver(credentials=[PROFILE_KEY_B])
    in_config = which == "AWS_CONFIG_FILE"
    lab.home_file(".aws/config" if in_config else ".aws/credentials",
                  profile_config("default", PROFILE_KEY, in_config=in_config))
    lab.home_file("custom/file", profile_config("default", PROFILE_KEY_B, in_config=in_config))
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=lab.env(**{which: "~/custom/file"}))
    assert_delivered(res, rcv, [c], keys={PROFILE_KEY_B[0]}, token=False)
    assert str(lab.home / "custom" / "file") in provider_line(res)
    assert_no_secret(res, PROFILE_KEY[1], PROFILE_KEY_B[1])


def test_half_env_pair_is_an_error_not_a_fall_through(lab):
    rcv = lab.receiver(credentials=[PROFILE_KEY])
    lab.home_file(".aws/config", profile_config("default"))
    env = lab.env(AWS_ACCESS_KEY_ID=ACCESS_KEY)
    res = lab.run(instance(rcv.endpoint()), [chunk()], env=env)
    assert res.returncode == H.EXIT_INIT, res.describe()
    err = "\n".join(res.logs("error"))
    assert "environment" in err and "AWS_SECRET_ACCESS_KEY" in err, err
    assert rcv.requests() == []


# ------------------------------------------------------------------------------------------------
# rule 2: proxy off EC2


def _proxy_env(lab: Lab, tp: proxy_mod.Tinyproxy, **extra) -> dict:
    return lab.env(ec2=False, HTTPS_PROXY=tp.url(), HTTP_PROXY=tp.url(), **extra)


def _proxied(tp: proxy_mod.Tinyproxy, host: str, port: int, method: str = "POST") -> list:
    return [r for r in tp.requests()
            if r.method == method and r.target.startswith(f"http://{host}:{port}/")]


def test_proxy_off_ec2_profile_in_config_only(lab):
    """HTTPS_PROXY/HTTP_PROXY → tinyproxy (with a password), keys only in ~/.aws/config, not
    EC2: records arrive through the proxy signed with the profile key; the fake IMDS on
    169.254.169.254:80 gets nothing; the proxy password is never printed."""
    tp = lab.tinyproxy()
    rcv = lab.receiver(REMOTE_ADDR, credentials=[PROFILE_KEY])
    imds = lab.imds()
    lab.home_file(".aws/config", profile_config("default", extra="region = eu-west-1\n"))
    assert not (lab.home / ".aws" / "credentials").exists()
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk")), [c], env=_proxy_env(lab, tp))
    assert_delivered(res, rcv, [c], keys={PROFILE_KEY[0]}, token=False)
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    assert REMOTE_ADDR in tp.upstreams(), tp.describe()
    assert imds.calls() == []
    assert not [r for r in tp.requests() if r.host.startswith("169.254.")], tp.describe()
    line = provider_line(res)
    assert "profile:default" in line and str(lab.home / ".aws" / "config") in line, line
    endpoint_proxy = [l for l in res.logs("info") if "proxy for the endpoint" in l]
    assert endpoint_proxy and f"{PROXY_USER}:***@127.0.0.1:{tp.port}" in endpoint_proxy[0], \
        endpoint_proxy
    assert_no_secret(res, PROXY_PASSWORD, PROFILE_KEY[1])


@pytest.mark.parametrize("sts_kind", ["fake-sts", "moto"])
def test_proxy_off_ec2_assume_role_through_proxy(lab, sts_kind):
    """aws_role_arn + aws_sts_endpoint on a non-loopback address: the STS call goes through
    the proxy (its log shows it), AssumeRole is signed with the profile key, and the records
    arrive signed with the assumed credentials (and only those)."""
    tp = lab.tinyproxy()
    rcv = lab.receiver(REMOTE_ADDR, credentials=[], require_token=True)
    imds = lab.imds()
    lab.home_file(".aws/config", profile_config("default"))
    if sts_kind == "fake-sts":
        sts = lab.sts(base_credentials=[PROFILE_KEY], lifetime=900)
        accept_issued(rcv, sts, ROLE_A)
        sts_url, sts_port = sts.url, sts.port
    else:
        moto = lab.moto()
        sts_url, sts_port = moto.url, moto.port

        def learn_from_moto(req):
            # called before the receiver verifies the request: learn moto's keys first
            m = re.search(r"Credential=([A-Z0-9]+)/", req.headers.get("authorization", ""))
            if m and m.group(1) not in {c.access_key for c in rcv.credentials}:
                rcv.credentials.extend(moto.assumed_credentials())
            return None

        rcv.set_responder(learn_from_moto)
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk"), aws_role_arn=ROLE_A,
                           aws_sts_endpoint=sts_url + "/"), [c], env=_proxy_env(lab, tp))
    if sts_kind == "fake-sts":
        keys = {i.access_key for i in sts.issued_for(ROLE_A)}
        calls = sts.calls_of("AssumeRole")
        assert calls and all(x.signing_key == PROFILE_KEY[0] and x.status == 200
                             for x in calls), [(x.signing_key, x.status, x.note) for x in calls]
    else:
        roles = moto.assumed_roles()
        assert roles and all(r["role_arn"] == ROLE_A for r in roles), roles
        keys = {r["access_key_id"] for r in roles}
    assert_delivered(res, rcv, [c], keys=keys)
    assert _proxied(tp, STS_ADDR, sts_port), tp.describe()
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    assert imds.calls() == []
    line = provider_line(res)
    assert ROLE_A in line and f"{PROXY_USER}:***@127.0.0.1:{tp.port}" in line, line
    assert_no_secret(res, PROXY_PASSWORD, PROFILE_KEY[1])


def test_https_sts_through_proxy_with_connect(lab):
    """An https STS (its CA given with AWS_CA_BUNDLE) is reached through HTTPS_PROXY with
    CONNECT — HTTP_PROXY, pointing nowhere, is not used for an https target — and the
    AssumeRole call is signed with the environment keys."""
    ca, ctx = make_tls(lab.dir / "tls", STS_ADDR)
    sts = lab.sts(base_credentials=[CREDENTIALS], lifetime=900, tls=ctx)
    tp = lab.tinyproxy(connect_ports=(443, sts.port))
    dead = f"http://u:x@127.0.0.1:{lab.ns.free_port()}"
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, sts)
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), aws_role_arn=ROLE_A, aws_sts_endpoint=sts.url),
                  [c], env=lab.env(**CREDS_ENV, HTTPS_PROXY=tp.url(), HTTP_PROXY=dead,
                                   AWS_CA_BUNDLE=ca))
    assert_delivered(res, rcv, [c], keys={i.access_key for i in sts.issued()})
    assert [r for r in tp.requests() if r.method == "CONNECT"
            and r.target == f"{STS_ADDR}:{sts.port}"], tp.describe()
    calls = sts.calls_of("AssumeRole")
    assert calls and all(x.signing_key == CREDENTIALS[0] and x.status == 200 for x in calls)
    assert "from HTTPS_PROXY" in provider_line(res)
    assert_no_secret(res, PROXY_PASSWORD, SECRET_KEY)


def test_no_proxy_property_applies_to_sts_as_well(lab):
    """One resolver for every client: the `no_proxy` property (a CIDR) exempts the STS address
    while the log endpoint still goes through the proxy."""
    tp = lab.tinyproxy()
    sts = lab.sts(base_credentials=[CREDENTIALS], lifetime=900)
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, sts)
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk"), aws_role_arn=ROLE_A, aws_sts_endpoint=sts.url,
                           no_proxy="10.200.0.0/31"), [c], env=_proxy_env(lab, tp, **CREDS_ENV))
    assert_delivered(res, rcv, [c], keys={i.access_key for i in sts.issued()})
    assert sts.calls_of("AssumeRole") and not _proxied(tp, STS_ADDR, sts.port), tp.describe()
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    assert "10.200.0.0/31" in provider_line(res)


def test_lenient_no_proxy_environment_skips_bad_entry_and_exempts_wildcard_domain(lab):
    """NO_PROXY=192.168.*,*.corp.example (what users write for curl, Go and Python requests):
    init succeeds, one warning names the skipped entry, and `*.corp.example` really exempts
    logs.corp.example (resolved to a "remote" address in the namespace): the records reach it
    directly while a host outside the list still goes through the proxy."""
    # names first: tinyproxy resolves them through the namespace's hosts file too
    lab.ns.set_hosts({"logs.corp.example": REMOTE_ADDR, "logs.other.example": REMOTE_ADDR})
    tp = lab.tinyproxy()
    rcv = lab.receiver(REMOTE_ADDR, credentials=[CREDENTIALS], require_token=True)
    env = _proxy_env(lab, tp, **CREDS_ENV, NO_PROXY="192.168.*,*.corp.example")
    c = chunk(prefix="np")
    exempt = f"http://logs.corp.example:{rcv.port}/bulk"
    res = lab.run(instance(exempt), [c], env=env)
    assert_delivered(res, rcv, [c], keys={CREDENTIALS[0]})
    warnings = [l for l in res.logs("warn") if "'192.168.*'" in l]
    assert len(warnings) == 1, res.describe()
    assert "NO_PROXY entry '192.168.*' skipped: not a host name" in warnings[0], warnings[0]
    assert "192.168.0.0/16" in warnings[0], warnings[0]
    line = [l for l in res.logs("info") if "proxy for the endpoint" in l]
    assert len(line) == 1 and line[0].endswith(
        "proxy for the endpoint: direct (NO_PROXY entry '*.corp.example')"), line
    assert not [r for r in tp.requests() if "corp.example" in r.target], tp.describe()
    # the control: the same receiver under a name outside NO_PROXY goes through the proxy
    res = lab.run(instance(f"http://logs.other.example:{rcv.port}/bulk"), [chunk(prefix="np2")],
                  env=env)
    assert res.returncode == 0 and res.results() == [[H.FLB_OK]], res.describe()
    assert _proxied(tp, "logs.other.example", rcv.port), tp.describe()


@pytest.mark.parametrize("proxy_kind", ["tinyproxy", "clean-407"])
def test_proxy_auth_refused_is_retried_not_dropped(lab, proxy_kind):
    """A proxy that refuses our credentials (HTTP 407 for a plain-http target) is a proxy
    failure: DESIGN §6 says FLB_RETRY (the chunk is kept), never FLB_ERROR (dropped); and the
    wrong password is not printed. tinyproxy resets the connection after its 407; a proxy
    that answers a clean 407 (``clean-407``, a fake) must be treated the same."""
    wrong = "WrongProxyPasswordFLBT"
    rcv = lab.receiver(REMOTE_ADDR, credentials=[CREDENTIALS])
    if proxy_kind == "tinyproxy":
        tp = lab.tinyproxy()
        port = tp.port
    else:
        strict = lab._fake(FakeServer("127.0.0.1", 0, ns=lab.ns))
        strict.fail = Failure(407, "<html><body>Proxy Authentication Required</body></html>",
                              "text/html")
        port = strict.port
    bad_url = f"http://{PROXY_USER}:{wrong}@127.0.0.1:{port}"
    res = lab.run(instance(rcv.endpoint("/bulk")), [chunk()],
                  env=lab.env(**CREDS_ENV, HTTP_PROXY=bad_url, HTTPS_PROXY=bad_url),
                  max_retries=1)
    assert_no_crash(res)
    assert rcv.requests() == []
    if proxy_kind == "tinyproxy":
        assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()  # it reached the proxy
    else:
        assert strict.calls() and strict.calls()[0].path.startswith(f"http://{REMOTE_ADDR}:")
    assert res.results() == [[H.FLB_RETRY, H.FLB_RETRY]], \
        f"a proxy authentication failure dropped the chunk: {res.results()}\n{res.describe()}"
    assert_no_secret(res, wrong, SECRET_KEY)


# ------------------------------------------------------------------------------------------------
# rule 3: on EC2, metadata endpoints are reached directly


def _assert_no_metadata_via_proxy(tp: proxy_mod.Tinyproxy):
    reqs = tp.requests()
    leaked = [r for r in reqs if r.host.startswith("169.254.") or "fd00:ec2" in r.target]
    assert not leaked, f"metadata requests went through the proxy: {leaked}\n{tp.describe()}"
    assert not [u for u in tp.upstreams() if u.startswith("169.254.")], tp.describe()


def test_on_ec2_imds_direct_despite_proxy(lab):
    """EC2 by its (fake) DMI files, HTTP_PROXY/HTTPS_PROXY set, NO_PROXY empty: IMDSv2 is
    reached directly (token PUT first), the proxy sees no metadata request (but does carry the
    records), and the records are signed with the IMDS credentials and token."""
    tp = lab.tinyproxy()
    imds = lab.imds()
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, imds)
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk")), [c],
                  env=lab.env(ec2=True, HTTP_PROXY=tp.url(), HTTPS_PROXY=tp.url(), NO_PROXY="",
                              no_proxy=""))
    assert_delivered(res, rcv, [c], keys={i.access_key for i in imds.issued()})
    calls = imds.calls()
    assert calls and calls[0].method == "PUT" and calls[0].path == "/latest/api/token", \
        [(x.method, x.path) for x in calls]
    assert all(x.headers.get("x-aws-ec2-metadata-token") in imds.tokens
               for x in calls if x.method == "GET"), [(x.path, x.note) for x in calls]
    assert imds.credential_calls(), [(x.method, x.path) for x in calls]
    _assert_no_metadata_via_proxy(tp)
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    line = provider_line(res)
    assert "'imds'" in line and "EC2" in line and "direct (metadata endpoint)" in line, line
    assert_no_secret(res, PROXY_PASSWORD, *imds.tokens, *[i.secret_key for i in imds.issued()])


def test_ecs_direct_despite_proxy(lab):
    tp = lab.tinyproxy()
    imds, ecs = lab.imds(), lab.ecs(path="/v2/credentials/3f1c-task")
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, ecs)
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk")), [c],
                  env=lab.env(ec2=True, HTTP_PROXY=tp.url(), HTTPS_PROXY=tp.url(), NO_PROXY="",
                              AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path))
    assert_delivered(res, rcv, [c], keys={i.access_key for i in ecs.issued()})
    assert ecs.calls() and all(x.status == 200 for x in ecs.calls())
    assert imds.calls() == []
    _assert_no_metadata_via_proxy(tp)
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    assert "'container'" in provider_line(res)


def test_eks_pod_identity_direct_despite_proxy(lab):
    tp = lab.tinyproxy()
    pod_token = "eyJhbGciOiJSUzI1NiJ9.PodIdentityTokenFLBT.never-logged"
    imds, eks = lab.imds(), lab.eks(auth_token=pod_token)
    token_file = lab.dir / "eks-pod-identity-token"
    token_file.write_text(pod_token + "\n")
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, eks)
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk")), [c],
                  env=lab.env(ec2=True, HTTP_PROXY=tp.url(), HTTPS_PROXY=tp.url(), NO_PROXY="",
                              AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://{EKS_ADDR}/v1/credentials",
                              AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file))
    assert_delivered(res, rcv, [c], keys={i.access_key for i in eks.issued()})
    assert eks.calls() and all(x.headers.get("authorization") == pod_token and x.status == 200
                               for x in eks.calls()), [(x.status, x.note) for x in eks.calls()]
    assert imds.calls() == []
    _assert_no_metadata_via_proxy(tp)
    assert_no_secret(res, pod_token, PROXY_PASSWORD)


@pytest.mark.parametrize("case", ["auto-not-ec2", "off-on-ec2", "disabled-on-ec2",
                                  "on-not-ec2", "endpoint-var"])
def test_imds_gating(lab, case):
    """aws_imds auto|on|off, AWS_EC2_METADATA_DISABLED and AWS_EC2_METADATA_SERVICE_ENDPOINT
    decide whether IMDS is asked at all; when it is not, it gets zero requests and init fails
    with the reason."""
    imds = lab.imds()
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, imds)
    props, env = {}, None
    if case == "auto-not-ec2":
        env, used, reason = lab.env(ec2=False), False, "not EC2"
    elif case == "off-on-ec2":
        props["aws_imds"] = "off"
        env, used, reason = lab.env(ec2=True), False, "aws_imds off"
    elif case == "disabled-on-ec2":
        props["aws_imds"] = "on"
        env, used, reason = lab.env(ec2=True, AWS_EC2_METADATA_DISABLED="true"), False, \
            "AWS_EC2_METADATA_DISABLED"
    elif case == "on-not-ec2":
        props["aws_imds"] = "on"
        env, used, reason = lab.env(ec2=False), True, "aws_imds on"
    else:
        env, used, reason = lab.env(ec2=False, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url), \
            True, "AWS_EC2_METADATA_SERVICE_ENDPOINT"
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), **props), [c], env=env)
    if used:
        assert_delivered(res, rcv, [c], keys={i.access_key for i in imds.issued()})
        assert reason in provider_line(res)
    else:
        assert res.returncode == H.EXIT_INIT, res.describe()
        assert imds.calls() == []
        assert reason in "\n".join(res.logs("error")), res.describe()


@pytest.mark.parametrize("v1_disabled", [False, True])
def test_imdsv1_fallback(lab, v1_disabled):
    """IMDSv1 only when the token PUT is refused, and never with AWS_EC2_METADATA_V1_DISABLED."""
    imds = lab.imds(v1=True)
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, imds)
    env = lab.env(ec2=True)
    if v1_disabled:
        env["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=env)
    assert imds.calls()[0].method == "PUT"
    if not v1_disabled:
        assert_delivered(res, rcv, [c], keys={i.access_key for i in imds.issued()})
    else:
        assert_no_crash(res)
        assert rcv.requests() == [] and imds.issued() == []
        assert "AWS_EC2_METADATA_V1_DISABLED" in all_logs(res), res.describe()


@pytest.mark.parametrize("case", ["imds-on-ec2", "profile-region", "not-ec2"])
def test_region_discovery_respects_imds_gating(lab, case):
    """Without aws_region the region comes from the profile, else from IMDS — only where the
    chain may use IMDS (EC2); off EC2 init fails naming aws_region and IMDS gets nothing."""
    rcv = lab.receiver(credentials=[CREDENTIALS], region=None)
    imds = lab.imds(region="eu-west-3")
    inst = instance(rcv.endpoint())
    del inst["aws_region"]
    env = lab.env(ec2=case != "not-ec2", **CREDS_ENV)
    if case == "profile-region":
        lab.home_file(".aws/config", "[default]\nregion = ap-south-1\n")
    c = chunk()
    res = lab.run(inst, [c], env=env)
    if case == "not-ec2":
        assert res.returncode == H.EXIT_INIT, res.describe()
        assert "aws_region" in "\n".join(res.logs("error")), res.describe()
        assert imds.calls() == []
        return
    assert_delivered(res, rcv, [c], keys={ACCESS_KEY})
    want = "eu-west-3" if case == "imds-on-ec2" else "ap-south-1"
    assert {r.region for r in rcv.requests()} == {want}
    if case == "imds-on-ec2":
        assert [(x.method, x.path) for x in imds.calls()] == [
            ("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/placement/region")]
    else:
        assert imds.calls() == []


# ------------------------------------------------------------------------------------------------
# rule 4: session tokens from every provider with temporary credentials

TOKEN_PROVIDERS = ["env", "profile-static", "credential-process", "web-identity",
                   "assume-role", "profile-role", "imds", "ecs", "eks", "sso"]


@pytest.mark.parametrize("provider", TOKEN_PROVIDERS)
def test_session_token_reaches_endpoint(lab, provider):
    """Temporary credentials reach the endpoint with a signed X-Amz-Security-Token; the
    receiver rejects requests without it (require_token) and rejects none."""
    rcv = lab.receiver(require_token=True)
    env = lab.env(ec2=provider == "imds")
    props = {}
    expect_token = None
    fake = None
    if provider == "env":
        env.update(CREDS_ENV)
        rcv.credentials.append(CredentialSet(*CREDENTIALS))
        expect_token = SESSION_TOKEN
    elif provider == "profile-static":
        tok = "ProfileSessionTokenFLBT" + "y" * 30
        lab.home_file(".aws/credentials", profile_config(
            "default", in_config=False, extra=f"aws_session_token = {tok}\n"))
        rcv.credentials.append(CredentialSet(*PROFILE_KEY, tok))
        expect_token = tok
    elif provider == "credential-process":
        script, cred = process_script(lab, "proc", lifetime=900)
        lab.home_file(".aws/config", f"[default]\ncredential_process = {script}\n")
        rcv.credentials.append(cred)
        expect_token = cred.token
    elif provider == "web-identity":
        jwt = "eyJhbGciOiJSUzI1NiJ9.WebIdentityFLBT.sig"
        (lab.dir / "token").write_text(jwt)
        fake = lab.sts(web_identity_token=jwt, lifetime=900)
        env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(lab.dir / "token"), AWS_ROLE_ARN=ROLE_A,
                   AWS_ENDPOINT_URL_STS=fake.url)
    elif provider == "assume-role":
        fake = lab.sts(base_credentials=[CREDENTIALS], lifetime=900)
        env.update(CREDS_ENV)
        props.update(aws_role_arn=ROLE_A, aws_sts_endpoint=fake.url)
    elif provider == "profile-role":
        fake = lab.sts(base_credentials=[PROFILE_KEY], lifetime=900)
        lab.home_file(".aws/config", f"[default]\nrole_arn = {ROLE_B}\nsource_profile = base\n"
                      + profile_config("base"))
        env.update(AWS_ENDPOINT_URL_STS=fake.url)
    elif provider == "imds":
        fake = lab.imds()
    elif provider == "ecs":
        fake = lab.ecs()
        env.update(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=fake.path)
    elif provider == "eks":
        fake = lab.eks(auth_token="pod-identity-token-flbt")
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://{EKS_ADDR}/v1/credentials",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN="pod-identity-token-flbt")
    elif provider == "sso":
        access = "SSOACCESS-token-test-" + "s" * 30
        fake, ca = _sso_lab(lab, access_tokens=[access])
        lab.home_file(".aws/config", _sso_profile(name="default"))
        _sso_token(lab, access)
        env.update(AWS_CA_BUNDLE=ca)
    if fake is not None:
        accept_issued(rcv, fake)
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), **props), [c], env=env)
    if fake is not None:
        issued = fake.issued()
        assert issued, f"{fake.kind} issued nothing\n{res.describe()}"
        tokens = {i.token for i in issued}
    else:
        tokens = {expect_token}
    assert_delivered(res, rcv, [c])
    for r in rcv.requests():
        assert r.headers.get("x-amz-security-token") in tokens
    if provider == "profile-role":
        assert [x.signing_key for x in fake.calls_of("AssumeRole")] == [PROFILE_KEY[0]]
    if provider == "web-identity":
        wi = fake.calls_of("AssumeRoleWithWebIdentity")
        assert wi and all(x.params.get("RoleArn") == ROLE_A for x in wi)
        assert "authorization" not in wi[0].headers
    assert_no_secret(res, *tokens)


# ------------------------------------------------------------------------------------------------
# rule 7: 403 ExpiredToken → one refresh, one re-send


EXPIRED_BODY = ('<?xml version="1.0"?><ErrorResponse><Error><Code>ExpiredToken</Code>'
                "<Message>The security token included in the request is expired</Message>"
                "</Error></ErrorResponse>")


@pytest.mark.parametrize("provider", ["assume-role", "imds", "ecs"])
def test_expired_token_403_refreshes_once(lab, provider):
    rcv = lab.receiver(require_token=True)
    env = lab.env(ec2=provider == "imds")
    props = {}
    if provider == "assume-role":
        fake = lab.sts(base_credentials=[CREDENTIALS], lifetime=3600)
        env.update(CREDS_ENV)
        props.update(aws_role_arn=ROLE_A, aws_sts_endpoint=fake.url)

        def fetches():
            return len(fake.calls_of("AssumeRole"))
    elif provider == "imds":
        fake = lab.imds()

        def fetches():
            return len(fake.credential_calls())
    else:
        fake = lab.ecs()
        env.update(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=fake.path)

        def fetches():
            return len(fake.calls())
    accept_issued(rcv, fake)
    from tests.helpers.receiver import Response

    rcv.script(Response(403, EXPIRED_BODY, headers={"Content-Type": "text/xml"}))
    c = chunk()
    res = lab.run(instance(rcv.endpoint(), **props), [c], env=env)
    assert res.returncode == 0, res.describe()
    assert res.results() == [[H.FLB_OK]], res.describe()
    reqs = rcv.requests()
    assert len(reqs) == 2, [(r.index, r.outcome, r.access_key) for r in reqs]
    assert reqs[0].outcome == "scripted" and reqs[0].status == 403 and reqs[1].accepted, \
        [(r.outcome, r.auth_reason) for r in reqs]
    issued = fake.issued()
    assert fetches() == 2 and len(issued) == 2, f"{fetches()} fetches, want 2 (one refresh)"
    assert reqs[0].access_key == issued[0].access_key
    assert reqs[1].access_key == issued[1].access_key, "the re-send did not use the new key"
    got = sorted(C.record_id(x) for x in rcv.records())
    assert got == sorted(e.record["id"] for e in c.events)


# ------------------------------------------------------------------------------------------------
# rule 8: nothing configured


@pytest.mark.parametrize("case", ["not-ec2", "metadata-disabled"])
def test_nothing_configured_lists_what_was_checked(lab, case):
    imds = lab.imds()
    rcv = lab.receiver(credentials=[CREDENTIALS])
    env = lab.env(ec2=False)
    if case == "metadata-disabled":
        env = lab.env(ec2=True, AWS_EC2_METADATA_DISABLED="true")
    res = lab.run(instance(rcv.endpoint()), [chunk()], env=env)
    assert res.returncode == H.EXIT_INIT, res.describe()
    assert "panicked" not in res.stderr
    errors = [l for l in res.logs("error") if "credentials" in l.lower()]
    assert len(errors) == 1, f"want one error line, got {errors}\n{res.describe()}"
    msg = errors[0]
    for needle in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   str(lab.home / ".aws" / "config"), str(lab.home / ".aws" / "credentials"),
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI", "instance metadata"]:
        assert needle in msg, f"{needle!r} missing from: {msg}"
    if case == "not-ec2":
        assert "not EC2" in msg and "sys_vendor" in msg and "QEMU" in msg, msg
    else:
        assert "AWS_EC2_METADATA_DISABLED" in msg, msg
    assert re.search(r"\bfix\b", msg, re.I), f"no fix in: {msg}"
    assert imds.calls() == [] and rcv.requests() == []


# ------------------------------------------------------------------------------------------------
# rule 9: bad input — a clear error naming the source, no crash, no secret


BAD_CASES = ["garbage-ini", "garbage-ini-explicit", "profile-loop", "process-exit-1",
             "process-non-json", "process-hang", "process-expired", "web-identity-missing-file",
             "web-identity-empty-file", "sts-error-xml", "sts-malformed-xml", "imds-hang",
             "imds-hang-region-lookup", "imds-malformed-json", "web-identity-rejected",
             "container-error-echoes-token", "sts-proxy-down", "proxy-url-garbage",
             "container-url-refused", "unknown-aws-profile"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input(lab, case):
    secret = "TopSecretValueFLBT/never+in+logs/00001"
    secrets = [secret]
    rcv = lab.receiver(credentials=[CREDENTIALS, PROFILE_KEY])
    env = lab.env()
    props = {}
    init_fails = False
    max_seconds = 20.0
    cfg = lab.home / ".aws" / "config"
    if case in ("garbage-ini", "garbage-ini-explicit"):
        lab.home_file(".aws/config", f"[default]\naws_access_key_id = {PROFILE_KEY[0]}\n"
                      f"aws_secret_access_key = {secret}\n[profile broken\nno equals sign here\n")
        if case == "garbage-ini-explicit":
            props["aws_profile"] = "default"
        init_fails, needles = True, ["config file", str(cfg), "cannot be parsed", "line"]
    elif case == "profile-loop":
        lab.home_file(".aws/config", f"[default]\nrole_arn = {ROLE_A}\nsource_profile = a\n"
                      f"[profile a]\nrole_arn = {ROLE_B}\nsource_profile = default\n")
        init_fails, needles = True, ["profile:default", "profile loop"]
    elif case.startswith("process-"):
        body = {
            "process-exit-1": f'echo \'{{"Version":1,"AccessKeyId":"AKIDX","SecretAccessKey":'
                              f'"{secret}"}}\'\necho "helper failed: no session" >&2\nexit 1\n',
            "process-non-json": f"echo 'AccessKeyId={secret} this is not json'\n",
            "process-hang": f'echo $$ > "{lab.dir}/hang.pid"\nsleep 600\n',
            "process-expired": f'echo \'{{"Version":1,"AccessKeyId":"ASIAEXPIRED","SecretAccess'
                               f'Key":"{secret}","SessionToken":"{secret}T","Expiration":'
                               '"2020-01-01T00:00:00Z"}\'\n',
        }[case]
        script = lab.script("helper", body)
        lab.home_file(".aws/config", f"[default]\ncredential_process = {script} --arg {secret}2\n")
        secrets.append(secret + "2")
        needles = ["profile:default", "credential_process", {
            "process-exit-1": "exited with status 1", "process-non-json": "not JSON",
            "process-hang": "did not finish within 1.0 s",
            "process-expired": "already expired"}[case]]
        if case == "process-hang":
            env["FLB_SIGV4_CREDENTIAL_PROCESS_TIMEOUT"] = "1"
            max_seconds = 10.0
    elif case.startswith("web-identity"):
        token_file = lab.dir / "wi-token"
        if case.endswith("empty-file"):
            token_file.write_text("\n")
        sts = lab.sts()
        env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE_A,
                   AWS_ENDPOINT_URL_STS=sts.url)
        needles = ["web-identity", str(token_file),
                   "is empty" if case.endswith("empty-file") else "cannot read"]
    elif case.startswith("sts-"):
        sts = lab.sts(base_credentials=[CREDENTIALS])
        env.update(CREDS_ENV)
        props.update(aws_role_arn=ROLE_A, aws_sts_endpoint=sts.url)
        if case == "sts-error-xml":
            sts.fail = sts_error("AccessDenied", "User: arn:aws:iam::123456789012:user/x is "
                                 "not authorized to perform: sts:AssumeRole")
            needles = [f"assume-role:{ROLE_A}", "AccessDenied", "not authorized"]
        else:
            sts.malformed = True
            needles = [f"assume-role:{ROLE_A}", "XML"]
        secrets += [SECRET_KEY, SESSION_TOKEN]
    elif case == "imds-hang":
        imds = lab.imds()
        imds.hang = 60
        env = lab.env(ec2=True)
        needles = ["imds", "169.254.169.254"]
        max_seconds = 15.0
    elif case == "imds-hang-region-lookup":
        # no aws_region: on EC2 the region is looked up in IMDS at init, which hangs
        imds = lab.imds()
        imds.hang = 60
        env = lab.env(ec2=True, **CREDS_ENV)
        init_fails, needles = True, ["imds", "169.254.169.254"]
        max_seconds = 15.0
    elif case == "imds-malformed-json":
        imds = lab.imds()
        imds.broken_credentials = ('{"Code":"Success","AccessKeyId":"ASIABROKEN",'
                                   f'"SecretAccessKey":"{secret}","Token":')
        env = lab.env(ec2=True)
        needles = ["imds", "not JSON"]
    elif case == "web-identity-rejected":
        token_file = lab.dir / "wi-token"
        token_file.write_text(secret)
        sts = lab.sts(web_identity_token="some-other-token")
        env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE_A,
                   AWS_ENDPOINT_URL_STS=sts.url)
        needles = ["web-identity", "AssumeRoleWithWebIdentity", "InvalidIdentityToken"]
    elif case == "container-error-echoes-token":
        eks = lab.eks(auth_token="expected-token")
        eks.fail = Failure(403, f'{{"message":"token {secret} is not valid"}}',
                           "application/json")
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://{EKS_ADDR}/v1/credentials",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN=secret)
        needles = ["container", "HTTP 403", "169.254.170.23"]
    elif case == "sts-proxy-down":
        # the proxy (with a password) refuses connections: STS cannot be reached
        sts = lab.sts(base_credentials=[CREDENTIALS])
        dead = f"http://{PROXY_USER}:{secret}@127.0.0.1:{lab.ns.free_port()}"
        env.update(CREDS_ENV, HTTP_PROXY=dead)
        props.update(aws_role_arn=ROLE_A, aws_sts_endpoint=sts.url)
        needles = [f"assume-role:{ROLE_A}", "STS AssumeRole", f"{PROXY_USER}:***@127.0.0.1"]
        secrets += [SECRET_KEY, SESSION_TOKEN]
    elif case == "proxy-url-garbage":
        env.update(CREDS_ENV, HTTP_PROXY=f"http://{PROXY_USER}:{secret}@[not-a-host:3128")
        init_fails, needles = True, ["HTTP_PROXY"]
    elif case == "container-url-refused":
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://{STS_ADDR}/creds",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN=secret)
        init_fails, needles = True, ["container", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                     "refused"]
    elif case == "unknown-aws-profile":
        lab.home_file(".aws/config", profile_config("default"))
        props["aws_profile"] = "nope"
        init_fails, needles = True, ["profile:nope", "does not exist", str(cfg)]
    inst = instance(rcv.endpoint(), **props)
    if case == "imds-hang-region-lookup":
        del inst["aws_region"]
    t0 = time.monotonic()
    res = lab.run(inst, [chunk()], env=env, timeout=90)
    elapsed = time.monotonic() - t0
    assert_no_crash(res)
    assert rcv.requests() == [], "something was delivered despite the bad input"
    if init_fails:
        assert res.returncode == H.EXIT_INIT, res.describe()
        text = "\n".join(res.logs("error"))
        assert elapsed < max_seconds, f"init took {elapsed:.1f}s (bounded by short timeouts?)"
    else:
        assert res.returncode == 0, res.describe()
        assert res.results() == [[H.FLB_RETRY]], res.describe()
        text = "\n".join(res.logs("warn") + res.logs("error"))
        assert elapsed < max_seconds, f"took {elapsed:.1f}s (bounded by short timeouts?)"
    for n in needles:
        assert n in text, f"{n!r} missing from the error:\n{text}\n{res.describe()}"
    assert_no_secret(res, *secrets)
    if case == "process-hang":
        pid = int((lab.dir / "hang.pid").read_text())
        time.sleep(0.5)
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), \
            "the hung credential_process was not killed"


# ------------------------------------------------------------------------------------------------
# rule 10: the start-up line


def test_startup_line_names_provider_reason_and_redacted_proxies(lab):
    """The explicit `proxy` property (with a password) beats HTTP_PROXY (another password,
    pointing nowhere); one info line names the provider (assume-role over the environment
    keys), why, and the STS proxy; another the endpoint's proxy; no password anywhere."""
    tp = lab.tinyproxy()
    other_pw = "EnvProxyPasswordFLBTNever"
    dead_port = lab.ns.free_port()
    sts = lab.sts(base_credentials=[CREDENTIALS], lifetime=900)
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, sts)
    env = lab.env(**CREDS_ENV, HTTP_PROXY=f"http://u:{other_pw}@127.0.0.1:{dead_port}",
                  HTTPS_PROXY=f"http://u:{other_pw}@127.0.0.1:{dead_port}")
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk"), proxy=tp.url(), aws_role_arn=ROLE_A,
                           aws_sts_endpoint=sts.url, aws_role_session_name="flbt-session"),
                  [c], env=env)
    assert_delivered(res, rcv, [c], keys={i.access_key for i in sts.issued()})
    assert _proxied(tp, STS_ADDR, sts.port) and _proxied(tp, REMOTE_ADDR, rcv.port), \
        tp.describe()
    line = provider_line(res)
    redacted = f"{PROXY_USER}:***@127.0.0.1:{tp.port}"
    for needle in [f"assume-role:{ROLE_A}", "aws_role_arn", "flbt-session", sts.url,
                   "environment", "AWS_ACCESS_KEY_ID", redacted]:
        assert needle in line, f"{needle!r} missing from: {line}"
    ep = [l for l in res.logs("info") if "proxy for the endpoint" in l]
    assert len(ep) == 1 and redacted in ep[0], ep
    assert_no_secret(res, PROXY_PASSWORD, other_pw, SECRET_KEY, SESSION_TOKEN,
                     *[i.secret_key for i in sts.issued()], *[i.token for i in sts.issued()])


def test_startup_line_off_ec2_names_profile_and_direct_metadata(lab):
    """Ambient profile: the line says which profile, which file and key, and why."""
    rcv = lab.receiver(credentials=[PROFILE_KEY])
    lab.home_file(".aws/credentials", profile_config("ops", in_config=False))
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=lab.env(AWS_PROFILE="ops"))
    assert_delivered(res, rcv, [c], keys={PROFILE_KEY[0]}, token=False)
    line = provider_line(res)
    for needle in ["profile:ops", "AWS_PROFILE", str(lab.home / ".aws" / "credentials"),
                   "aws_access_key_id", "static keys"]:
        assert needle in line, f"{needle!r} missing from: {line}"
    assert_no_secret(res, PROFILE_KEY[1])


# ------------------------------------------------------------------------------------------------
# SSO (IAM Identity Center), end to end: the real aws-config provider, our HTTP client, the
# portal's real host name (resolved inside the namespace through /etc/netns/<ns>/hosts), TLS
# trusted through AWS_CA_BUNDLE, and the proxy resolver.

SSO_ADDR = "10.200.0.3"  # not loopback: a configured proxy is really used for it
SSO_REGION = "eu-west-1"  # the portal's region (sso_region), not the endpoint's (REGION)
SSO_START_URL = "https://d-90670flbt1.awsapps.com/start"
SSO_ACCOUNT = "111122223333"
SSO_ROLE = "FlbtWriter"
SSO_SESSION = "corp"


def _sso_lab(lab: Lab, **portal_kw):
    """The fake IAM Identity Center on SSO_ADDR:443 under portal.sso.<SSO_REGION>.amazonaws.com
    and oidc.<SSO_REGION>.amazonaws.com (both names resolve to it inside the namespace only),
    with a certificate from a CA of the test's own. Returns (portal, ca_pem)."""
    from tests.helpers import sso as sso_mod

    lab.ns.run(["ip", "addr", "add", f"{SSO_ADDR}/32", "dev", "lo"], check=True)
    names = [sso_mod.portal_host(SSO_REGION), sso_mod.oidc_host(SSO_REGION)]
    lab.ns.set_hosts({n: SSO_ADDR for n in names})
    ca, ctx = sso_mod.make_tls(lab.dir / "sso-tls", names)
    portal = lab._fake(sso_mod.FakeIdentityCenter(SSO_ADDR, 443, ns=lab.ns, tls=ctx,
                                                  account_id=SSO_ACCOUNT, role_name=SSO_ROLE,
                                                  **portal_kw))
    return portal, ca


def _sso_profile(legacy: bool = False, name: str = "dev") -> str:
    header = "[default]" if name == "default" else f"[profile {name}]"
    if legacy:
        return (f"{header}\nsso_start_url = {SSO_START_URL}\nsso_region = {SSO_REGION}\n"
                f"sso_account_id = {SSO_ACCOUNT}\nsso_role_name = {SSO_ROLE}\n")
    return (f"{header}\nsso_session = {SSO_SESSION}\nsso_account_id = {SSO_ACCOUNT}\n"
            f"sso_role_name = {SSO_ROLE}\n[sso-session {SSO_SESSION}]\n"
            f"sso_region = {SSO_REGION}\nsso_start_url = {SSO_START_URL}\n"
            "sso_registration_scopes = sso:account:access\n")


def _sso_token(lab: Lab, token: str, expires_in: float = 3600, legacy: bool = False,
               client: Optional[tuple] = None) -> Path:
    from tests.helpers import sso as sso_mod

    kw = {}
    if client is not None:
        kw = dict(client_id=client[0], client_secret=client[1], refresh_token=client[2])
    return sso_mod.write_token_cache(lab.home, SSO_START_URL if legacy else SSO_SESSION, token,
                                     time.time() + expires_in, start_url=SSO_START_URL,
                                     region=SSO_REGION, **kw)


SSO_CASES = ["sso-session", "legacy-start-url", "via-https-proxy", "oidc-refresh"]


@pytest.mark.parametrize("case", SSO_CASES)
def test_sso_credentials_end_to_end(lab, case):
    """A profile with sso_session (or the legacy sso_start_url) and the CLI's cached token:
    the plugin calls GetRoleCredentials at https://portal.sso.<sso_region>.amazonaws.com
    (TLS verified against AWS_CA_BUNDLE) with the cached token as x-amz-sso_bearer_token, and
    the records arrive signed with the role credentials, their session token signed.
    ``via-https-proxy``: HTTPS_PROXY (tinyproxy) carries the portal call with CONNECT.
    ``oidc-refresh``: the cached token expires within the 5-minute window and is refreshable,
    so it is first renewed at https://oidc.<sso_region>.amazonaws.com/token (same client) and
    the new token is the one the portal sees."""
    from tests.helpers import sso as sso_mod

    access = "SSOACCESS-cached-" + "t" * 40
    client = ("flbt-client-id", "FlbtClientSecretNeverLogged", "SSOREFRESH-cached-" + "r" * 30)
    portal, ca = _sso_lab(lab, access_tokens=[access],
                          client=client if case == "oidc-refresh" else None)
    legacy = case == "legacy-start-url"
    lab.home_file(".aws/config", _sso_profile(legacy=legacy))
    cache = _sso_token(lab, access, expires_in=120 if case == "oidc-refresh" else 3600,
                       legacy=legacy, client=client if case == "oidc-refresh" else None)
    imds, ecs = lab.imds(), lab.ecs()
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, portal)
    env = lab.env(ec2=True, AWS_PROFILE="dev", AWS_CA_BUNDLE=ca,
                  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path)
    tp = None
    if case == "via-https-proxy":
        tp = lab.tinyproxy()
        env.update(HTTPS_PROXY=tp.url(), NO_PROXY="", no_proxy="")
    c = chunk()
    res = lab.run(instance(rcv.endpoint()), [c], env=env)
    issued = portal.issued()
    seen = [(x.path, x.status, x.note) for x in portal.calls()]
    assert issued, f"the portal issued nothing: {seen}\n{res.describe()}"
    assert_delivered(res, rcv, [c], keys={i.access_key for i in issued})
    tokens = {i.token for i in issued}
    for r in rcv.requests():
        assert r.headers.get("x-amz-security-token") in tokens, r.headers
    calls = portal.credential_calls()
    assert calls and all(x.status == 200 for x in calls), \
        [(x.path, x.status, x.note) for x in portal.calls()]
    want_bearer = portal.minted_tokens[-1] if case == "oidc-refresh" else access
    for x in calls:
        assert x.headers.get("host") == sso_mod.portal_host(SSO_REGION), x.headers
        assert x.headers.get("x-amz-sso_bearer_token") == want_bearer, x.headers
        assert x.params == {"account_id": SSO_ACCOUNT, "role_name": SSO_ROLE}, x.params
        assert "authorization" not in x.headers  # GetRoleCredentials is not SigV4-signed
    if case == "oidc-refresh":
        tc = portal.token_calls()
        assert len(tc) == 1 and tc[0].status == 200 and tc[0].params == {
            "clientId": client[0], "grantType": "refresh_token"}, \
            [(x.status, x.note, x.params) for x in tc]
        assert tc[0].headers.get("host") == sso_mod.oidc_host(SSO_REGION)
        saved = sso_mod.read_token_cache(lab.home, SSO_SESSION)
        assert saved["accessToken"] == portal.minted_tokens[-1], "refreshed token not saved"
    else:
        assert portal.token_calls() == []
        assert sso_mod.read_token_cache(lab.home, SSO_START_URL if legacy else SSO_SESSION)[
            "accessToken"] == access
    assert cache.exists()
    assert imds.calls() == [] and ecs.calls() == []
    if tp is not None:
        connects = [r for r in tp.requests() if r.method == "CONNECT"]
        assert [r.target for r in connects] == [f"{sso_mod.portal_host(SSO_REGION)}:443"] \
            * len(calls), tp.describe()
        assert sso_mod.portal_host(SSO_REGION) in tp.upstreams(), tp.describe()
    line = provider_line(res)
    for needle in ["'profile:dev'", "AWS_PROFILE", f"SSO start URL {SSO_START_URL}",
                   f"region {SSO_REGION}", f"account {SSO_ACCOUNT}", f"role {SSO_ROLE}"]:
        assert needle in line, f"{needle!r} missing from: {line}"
    assert_no_secret(res, access, *client, *portal.minted_tokens, *tokens,
                     *[i.secret_key for i in issued], PROXY_PASSWORD)


@pytest.mark.parametrize("case", ["expired-token", "unknown-token", "no-cache-file"])
def test_sso_failure_names_the_profile_and_is_not_replaced(lab, case):
    """An SSO profile whose cached token is expired (not refreshable), refused by the portal,
    or missing: a clear error naming 'profile:dev' and `aws sso login`, without the portal's
    raw response (DESIGN §8); nothing delivered, no fall-through to the container or IMDS; an
    expired or missing token never reaches the portal."""
    from tests.helpers import sso as sso_mod

    access = "SSOACCESS-cached-" + "e" * 40
    portal, ca = _sso_lab(lab, access_tokens=[] if case == "unknown-token" else [access])
    lab.home_file(".aws/config", _sso_profile())
    if case != "no-cache-file":
        _sso_token(lab, access, expires_in=-60 if case == "expired-token" else 3600)
    imds, ecs = lab.imds(), lab.ecs()
    rcv = lab.receiver(credentials=[CREDENTIALS])
    env = lab.env(ec2=True, AWS_PROFILE="dev", AWS_CA_BUNDLE=ca,
                  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=ecs.path)
    res = lab.run(instance(rcv.endpoint()), [chunk()], env=env, max_retries=1,
                  retry_delay_ms=200, timeout=90)
    assert_no_crash(res)
    assert rcv.requests() == [] and imds.calls() == [] and ecs.calls() == []
    if case == "unknown-token":
        calls = portal.credential_calls()
        assert calls and all(x.status == 401 for x in calls), [(x.status, x.note) for x in calls]
    else:
        assert portal.calls() == [], [(x.path, x.status) for x in portal.calls()]
    if res.returncode == H.EXIT_INIT:
        text = "\n".join(res.logs("error"))
    else:
        assert res.results() and all(r and set(r) == {H.FLB_RETRY} for r in res.results()), \
            res.describe()
        text = "\n".join(res.logs("warn") + res.logs("error"))
    needles = ["'profile:dev'", "SSO", "aws sso login", {
        "expired-token": "expired", "unknown-token": "Unauthorized",
        "no-cache-file": "sso/cache"}[case]]
    for n in needles:
        assert n in text, f"{n!r} missing from:\n{text}\n{res.describe()}"
    assert sso_mod.RAW_BODY_MARKER not in output(res), "the raw portal response was logged"
    assert_no_secret(res, access)


# ------------------------------------------------------------------------------------------------
# role_arn + credential_source = Ec2InstanceMetadata / EcsContainer: base credentials from the
# metadata endpoint (directly), AssumeRole signed with them (through the proxy)


@pytest.mark.parametrize("source", ["Ec2InstanceMetadata", "EcsContainer"])
def test_profile_credential_source_assume_role(lab, source):
    """[default] role_arn + credential_source: the base credentials come from the fake IMDS
    (IMDSv2) / ECS endpoint, reached directly although HTTP_PROXY/HTTPS_PROXY are set and
    NO_PROXY is empty; every AssumeRole (through the proxy) is signed with the metadata-issued
    key and its session token; the records are signed with the assumed role's credentials
    only."""
    tp = lab.tinyproxy()
    imds, ecs = lab.imds(), lab.ecs()
    base = imds if source == "Ec2InstanceMetadata" else ecs
    other = ecs if base is imds else imds
    sts = lab.sts(lifetime=900)
    # the STS knows the base credentials once the metadata endpoint issued them (and only
    # those: no other key can sign an AssumeRole there)
    base.on_issue.append(lambda iss: sts.base_credentials.append(iss.cred))
    rcv = lab.receiver(REMOTE_ADDR, require_token=True)
    accept_issued(rcv, sts, ROLE_A)
    lab.home_file(".aws/config", f"[default]\nrole_arn = {ROLE_A}\ncredential_source = {source}\n"
                                 "role_session_name = flbt-cs\n")
    env = lab.env(ec2=base is imds, HTTP_PROXY=tp.url(), HTTPS_PROXY=tp.url(), NO_PROXY="",
                  no_proxy="", AWS_ENDPOINT_URL_STS=sts.url)
    if base is ecs:
        env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = ecs.path
    c = chunk()
    res = lab.run(instance(rcv.endpoint("/bulk")), [c], env=env)
    assumed = sts.issued_for(ROLE_A)
    assert_delivered(res, rcv, [c], keys={i.access_key for i in assumed})
    base_issued = {i.access_key: i for i in base.issued()}
    assert base_issued, f"{base.kind} issued nothing\n{res.describe()}"
    calls = sts.calls_of("AssumeRole")
    assert calls, f"no AssumeRole\n{res.describe()}"
    for x in calls:
        assert x.status == 200 and x.auth_ok, (x.status, x.auth_reason, x.note)
        assert x.signing_key in base_issued, f"AssumeRole signed with {x.signing_key}, not " \
                                             f"with the {base.kind} key"
        assert x.headers.get("x-amz-security-token") == base_issued[x.signing_key].token
        assert "x-amz-security-token" in x.headers.get("authorization", "")  # signed
        assert x.params.get("RoleArn") == ROLE_A and x.params.get("RoleSessionName") == "flbt-cs"
    if base is imds:
        first = imds.calls()[0]
        assert (first.method, first.path) == ("PUT", "/latest/api/token"), imds.calls()
        assert imds.credential_calls()
    else:
        assert ecs.calls() and all(x.status == 200 for x in ecs.calls())
    assert other.calls() == []
    _assert_no_metadata_via_proxy(tp)
    assert _proxied(tp, STS_ADDR, sts.port), tp.describe()
    assert _proxied(tp, REMOTE_ADDR, rcv.port), tp.describe()
    line = provider_line(res)
    for needle in ["'profile:default'", f"credential_source {source}", ROLE_A]:
        assert needle in line, f"{needle!r} missing from: {line}"
    assert_no_secret(res, PROXY_PASSWORD, *[i.secret_key for i in base.issued()],
                     *[i.token for i in base.issued()], *[i.secret_key for i in assumed],
                     *[i.token for i in assumed])

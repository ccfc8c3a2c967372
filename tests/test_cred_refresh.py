"""Credential refresh end to end (issue 3, rules 5 and 6), in a private network namespace per
test (see tests/test_credentials_e2e.py for the lab): short-lived credentials from a fake STS,
long host runs flushing once a second (tests/host/flb_host.c --flush-interval-ms), the
verifying receiver checking every signature, and the fake STS recording who signed each call
and when each key it issued expires.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers.netns import unavailable_reason
from tests.test_credentials_e2e import (PROFILE_KEY, PROFILE_KEY_B, ROLE_A, ROLE_B, Lab,
                                        accept_issued, assert_no_secret, instance, lab,
                                        profile_config, provider_line)

__all__ = ["lab"]  # the fixture, imported for the tests below

_SKIP = unavailable_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=f"end-to-end credential tests {_SKIP}")


def _in_background(fn):
    box: dict = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


def _result(t: threading.Thread, box: dict, timeout: float):
    t.join(timeout)
    assert not t.is_alive(), "the host run did not finish in time"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _wait(cond, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _check_keys_valid_at_receipt(rcv, issued_by_key: dict):
    for r in rcv.requests():
        iss = issued_by_key.get(r.access_key)
        assert iss is not None, f"request #{r.index} signed with unknown key {r.access_key}"
        assert iss.valid_at(r.received_at), (
            f"request #{r.index} signed with {r.access_key} at {r.received_at:.2f}, "
            f"which lives {iss.issued_at:.2f}..{iss.expires_at:.2f}")


# ------------------------------------------------------------------------------------------------
# rule 5


LIFETIME = 20.0
STS_DELAY = 2.5  # a slow STS: a flush that waited for a refresh would take this long
RUN_SECONDS = 90
TOTAL_CHUNKS = 115


@pytest.mark.slow
def test_refresh_before_expiry_and_outage(lab: Lab):
    """20-second credentials, one flush a second for 90 s, then the STS goes down and comes
    back: no request rejected, each signed with a key valid at that moment, ≈ 90/10 STS calls
    (background refreshes: no flush waits for the slow STS), still-valid credentials used
    after the STS went down, FLB_RETRY once they expired, and every record delivered exactly
    once after the STS came back."""
    sts = lab.sts(base_credentials=[CREDENTIALS], lifetime=LIFETIME)
    sts.delay = STS_DELAY
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, sts, ROLE_A)
    chunk_list = [C.build_chunk(C.make_records(3, prefix=f"k{i}"), name=f"k{i}.bin")
                  for i in range(TOTAL_CHUNKS)]
    env = lab.env(**CREDS_ENV)
    t_host = time.time()
    thread, box = _in_background(lambda: lab.run(
        instance(rcv.endpoint(), aws_role_arn=ROLE_A, aws_sts_endpoint=sts.url),
        chunk_list, env=env, flush_interval_ms=1000, retry_delay_ms=1000, max_retries=120,
        timeout=240))

    # phase 1: 90 s of flushes with the STS up
    _wait(lambda: time.time() - t_host >= RUN_SECONDS or not thread.is_alive(), RUN_SECONDS + 5)
    if not thread.is_alive() or len(rcv.accepted()) < RUN_SECONDS * 2 // 3:
        sts.stop()
        res = _result(thread, box, 150)
        pytest.fail(f"{len(rcv.accepted())} deliveries in {time.time() - t_host:.0f}s "
                    f"(want about {RUN_SECONDS}); STS calls: "
                    f"{[(round(c.time - t_host, 1), c.status, c.note) for c in sts.calls()]}\n"
                    f"{res.describe()}")
    t_stop = time.time()
    sts.stop()
    calls_up = [c for c in sts.calls_of("AssumeRole") if c.time < t_stop]
    keys_before_stop = {i.access_key for i in sts.issued()}

    # phase 2: the STS is down; still-valid credentials keep working, then flushes stall
    def stalled() -> bool:
        acc = rcv.accepted()
        return bool(acc) and time.time() - acc[-1].received_at > 3.5

    assert _wait(stalled, LIFETIME + 10), "deliveries never stopped after the STS went down"
    t_stalled = time.time()
    time.sleep(3)
    sts.start()  # same port
    t_back = time.time()
    res = _result(thread, box, 150)

    assert res.returncode == 0, res.describe()
    flushes = res.summary["flushes"]
    assert all(f["final"] == H.FLB_OK and not f["gave_up"] for f in flushes), res.describe()
    assert rcv.rejections() == [], [(r.index, r.auth_reason) for r in rcv.rejections()]
    _check_keys_valid_at_receipt(rcv, sts.issued_by_key())
    ids = sorted(C.record_id(x) for x in rcv.records())
    assert ids == sorted(e.record["id"] for c in chunk_list for e in c.events), \
        "records lost or duplicated"

    first_try_ok = [f["ms"][0] for f in flushes[1:] if f["results"] == [H.FLB_OK]]
    print(f"[refresh] STS calls while up: {len(calls_up)}; first-try flush ms: max "
          f"{max(first_try_ok):.0f} median {statistics.median(first_try_ok):.1f}; deliveries "
          f"after the STS went down: "
          f"{len([r for r in rcv.accepted() if t_stop < r.received_at < t_stalled])}; "
          f"retried flushes: {[f['results'] for f in flushes if H.FLB_RETRY in f['results']]}")
    # ≈ 90/10 provider calls, every one signed with the base key and served
    assert 6 <= len(calls_up) <= 14, f"{len(calls_up)} AssumeRole calls in {RUN_SECONDS}s"
    assert all(c.signing_key == CREDENTIALS[0] and c.status == 200 for c in calls_up)

    # no latency spike at refresh: apart from the first flush (which waits for the first
    # credentials) and the one that waited out the outage, no flush took the STS's time
    assert len(first_try_ok) >= TOTAL_CHUNKS - 12, res.describe()
    assert max(first_try_ok) < STS_DELAY * 1000 * 0.6, \
        f"a flush took {max(first_try_ok):.0f} ms (waited for a refresh?)"
    assert statistics.median(first_try_ok) < 200

    # still-valid credentials were used after the STS went down
    after_stop = [r for r in rcv.accepted() if t_stop < r.received_at < t_stalled]
    assert len(after_stop) >= 4 and all(r.access_key in keys_before_stop for r in after_stop), \
        f"{len(after_stop)} deliveries between the STS going down and the credentials expiring"
    # then FLB_RETRY until the STS came back, and delivery resumed
    retried = [f for f in flushes if H.FLB_RETRY in f["results"]]
    assert retried, "no flush returned FLB_RETRY while the credentials were expired"
    for f in retried:
        assert f["results"][-1] == H.FLB_OK and set(f["results"][:-1]) == {H.FLB_RETRY}
        assert t_host + f["t"] / 1000 > t_stop, "a flush was retried before the STS went down"
    assert sum(len(f["results"]) - 1 for f in retried) >= 2
    assert [r for r in rcv.accepted() if r.received_at > t_back], "delivery did not resume"
    assert [c for c in sts.calls_of("AssumeRole") if c.time >= t_back]
    warn = "\n".join(res.logs("warn"))
    assert f"assume-role:{ROLE_A}" in warn and "refreshing credentials" in warn, warn
    assert_no_secret(res, CREDENTIALS[1], *[i.secret_key for i in sts.issued()],
                     *[i.token for i in sts.issued()])


# ------------------------------------------------------------------------------------------------
# rule 6


@pytest.mark.slow
def test_assumed_roles_refreshed_with_base_keys_two_instances(lab: Lab):
    """Two instances, each aws_role_arn over its own profile; 8-second credentials over a
    30-second run (≥ 3 refreshes each). The STS refuses AssumeRole signed with an assumed-role
    session of the same role, as AWS does; every call was signed with the profile's base key
    and served, and each receiver only ever saw its own role's keys."""
    sts = lab.sts(base_credentials=[PROFILE_KEY, PROFILE_KEY_B], lifetime=8)
    rcv_a = lab.receiver(require_token=True)
    rcv_b = lab.receiver(require_token=True)
    accept_issued(rcv_a, sts, ROLE_A)
    accept_issued(rcv_b, sts, ROLE_B)
    lab.home_file(".aws/config", profile_config("basea", PROFILE_KEY)
                  + profile_config("baseb", PROFILE_KEY_B))
    n = 30
    chunk_list = [C.build_chunk(C.make_records(2, prefix=f"r{i}"), name=f"r{i}.bin")
                  for i in range(2 * n)]
    # default assignment: chunk c -> instance c % 2, on thread c % 2
    res = lab.run([instance(rcv_a.endpoint("/a"), aws_profile="basea", aws_role_arn=ROLE_A,
                            aws_sts_endpoint=sts.url),
                   instance(rcv_b.endpoint("/b"), aws_profile="baseb", aws_role_arn=ROLE_B,
                            aws_sts_endpoint=sts.url)],
                  chunk_list, env=lab.env(), threads=2, flush_interval_ms=1000,
                  retry_delay_ms=500, max_retries=5, timeout=120)
    assert res.returncode == 0, res.describe()
    assert all(f["results"] == [H.FLB_OK] for f in res.summary["flushes"]), res.describe()

    base_of = {ROLE_A: PROFILE_KEY[0], ROLE_B: PROFILE_KEY_B[0]}
    calls = sts.calls_of("AssumeRole")
    for role, base in base_of.items():
        mine = [c for c in calls if c.params.get("RoleArn") == role]
        assert len(mine) >= 4, f"{len(mine)} AssumeRole calls for {role}: fewer than 3 refreshes"
        bad = [(c.signing_key, c.status, c.note) for c in mine
               if c.signing_key != base or c.status != 200]
        assert not bad, f"AssumeRole into {role} not signed with base key {base}: {bad}"
    assert len(calls) == len(sts.issued())

    issued = sts.issued_by_key()
    for rcv, role, path, idx in ((rcv_a, ROLE_A, "/a", 0), (rcv_b, ROLE_B, "/b", 1)):
        assert rcv.rejections() == [], [(r.index, r.auth_reason) for r in rcv.rejections()]
        keys = {r.access_key for r in rcv.requests()}
        assert keys and all(issued[k].role == role for k in keys), \
            f"receiver {path} saw keys of another role: {keys}"
        assert len(keys) >= 3, f"receiver {path} saw only {len(keys)} keys in 30s of 8s keys"
        _check_keys_valid_at_receipt(rcv, issued)
        want = sorted(e.record["id"] for c in chunk_list[idx::2] for e in c.events)
        assert sorted(C.record_id(x) for x in rcv.records()) == want
    lines = [l for l in res.logs("info") if "chosen because" in l]
    assert len(lines) == 2 and "profile:basea" in lines[0] and "profile:baseb" in lines[1], lines
    assert_no_secret(res, PROFILE_KEY[1], PROFILE_KEY_B[1])


@pytest.mark.slow
def test_web_identity_token_file_reread_at_each_refresh(lab: Lab):
    """Web identity with 6-second credentials: the token file is read again at each refresh
    (Kubernetes rotates it), so calls after the rotation carry the new token."""
    sts = lab.sts(lifetime=6)
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, sts, ROLE_A)
    token_file = lab.dir / "token"
    old, new = "eyJ.OldProjectedToken.sig", "eyJ.NewProjectedToken.sig"
    token_file.write_text(old)
    chunk_list = [C.build_chunk(C.make_records(2, prefix=f"w{i}"), name=f"w{i}.bin")
                  for i in range(14)]
    env = lab.env(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE_A,
                  AWS_ENDPOINT_URL_STS=sts.url, AWS_ROLE_SESSION_NAME="flbt-irsa")
    thread, box = _in_background(lambda: lab.run(instance(rcv.endpoint()), chunk_list, env=env,
                                                 flush_interval_ms=1000, timeout=60))
    assert _wait(lambda: len(rcv.accepted()) >= 5, 20)
    token_file.write_text(new + "\n")
    t_rotated = time.time()
    res = _result(thread, box, 60)
    assert res.returncode == 0, res.describe()
    assert all(f["results"] == [H.FLB_OK] for f in res.summary["flushes"]), res.describe()
    calls = sts.calls_of("AssumeRoleWithWebIdentity")
    assert calls and all(c.status == 200 for c in calls)
    assert all(c.params.get("RoleSessionName") == "flbt-irsa" for c in calls)
    before = [c.params["WebIdentityToken"] for c in calls if c.time < t_rotated]
    after = [c.params["WebIdentityToken"] for c in calls if c.time > t_rotated + 0.5]
    assert before and set(before) == {old}, before
    assert after and set(after) == {new}, f"tokens after the rotation: {after}"
    _check_keys_valid_at_receipt(rcv, sts.issued_by_key())
    assert "web-identity" in provider_line(res)
    assert_no_secret(res, old, new)


@pytest.mark.slow
def test_pod_identity_token_file_reread_at_each_fetch(lab: Lab):
    """EKS Pod Identity with 6-second credentials: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is
    read again at every fetch, so after the file rotates (and the agent stops accepting the old
    token) refreshes keep working."""
    old, new = "pod-identity-token-OLD-flbt", "pod-identity-token-NEW-flbt"
    eks = lab.eks(auth_token=old, lifetime=6)
    token_file = lab.dir / "eks-token"
    token_file.write_text(old)
    rcv = lab.receiver(require_token=True)
    accept_issued(rcv, eks)
    chunk_list = [C.build_chunk(C.make_records(2, prefix=f"p{i}"), name=f"p{i}.bin")
                  for i in range(14)]
    env = lab.env(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://169.254.170.23/v1/credentials",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    thread, box = _in_background(lambda: lab.run(instance(rcv.endpoint()), chunk_list, env=env,
                                                 flush_interval_ms=1000, timeout=60))
    assert _wait(lambda: len(rcv.accepted()) >= 5, 20)
    token_file.write_text(new)
    eks.auth_token = new
    t_rotated = time.time()
    res = _result(thread, box, 60)
    assert res.returncode == 0, res.describe()
    assert all(f["results"] == [H.FLB_OK] for f in res.summary["flushes"]), res.describe()
    after = [c for c in eks.calls() if c.time > t_rotated + 0.5]
    assert after and all(c.headers.get("authorization") == new and c.status == 200
                         for c in after), [(c.status, c.note) for c in after]
    _check_keys_valid_at_receipt(rcv, eks.issued_by_key())
    assert_no_secret(res, old, new)

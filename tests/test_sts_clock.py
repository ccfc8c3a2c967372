"""STS and the log requests share one skew-corrected clock (DESIGN §6, issue 15 §2).

The host's clock is two hours behind (equivalently: STS and the endpoint are two hours ahead).
A fake STS refuses an ``AssumeRole`` dated more than 5 minutes from its clock the way AWS does
("Signature expired", its own time in ``Date``); the plugin corrects its one clock from that
``Date``, calls STS once more, and then signs the log requests with the same corrected clock, so
the endpoint (as skewed as STS) accepts the very first request.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import CREDENTIALS
from tests.helpers import chunks as C
from tests.helpers import host as H
from tests.helpers.faults import FaultReceiver
from tests.helpers.fakes import FakeSTS
from tests.test_plugin_host import STACK, assert_records

ROLE = "arn:aws:iam::123456789012:role/flbt-skew"


@pytest.mark.parametrize("skew", [7200, -7200], ids=["sts-ahead", "sts-behind"])
def test_sts_skew_corrects_the_clock_the_log_requests_use(run_plugin, skew):
    sts = FakeSTS("127.0.0.1", 0, base_credentials=[CREDENTIALS], lifetime=3600,
                  clock_skew=skew).start()
    rcv = FaultReceiver(region="us-east-1", service="es", credentials=[], require_token=True,
                        clock_skew=skew,
                        extra_credentials=lambda: [i.cred for i in sts.issued()]).start()
    try:
        chunk = C.build_chunk(C.make_records(5, prefix="stsskew"), name="stsskew.bin")
        inst = {"endpoint": rcv.endpoint("/d"), "aws_region": "us-east-1", "aws_service": "es",
                "aws_role_arn": ROLE, "aws_sts_endpoint": sts.url}
        res = run_plugin([inst], [chunk], threads=1, stack=STACK, max_retries=0)
    finally:
        sts.stop()
        rcv.stop()
    assert res.results() == [[H.FLB_OK]], res.describe()
    calls = sts.calls_of("AssumeRole")
    assert [c.status for c in calls] == [403, 200], [(c.status, c.note) for c in calls]
    assert calls[0].note == "request time too far from STS's clock"
    # the log request went out with the corrected clock at once: no skew refusal there
    assert [r.outcome for r in rcv.requests()] == ["accepted"], \
        [(r.outcome, r.amz_date_skew) for r in rcv.requests()]
    assert abs(rcv.requests()[0].amz_date_skew) < 10
    req = rcv.requests()[0]
    assert req.auth_ok, req.auth_reason
    assert req.headers.get("x-amz-security-token") == sts.issued()[0].token, \
        "not signed with the assumed credentials"
    assert_records(rcv.records(), chunk.events)
    warns = res.logs("warn")
    offsets = [int(m.group(1)) for m in
               (re.search(r"STS AssumeRole reports clock skew; signing with a clock offset of "
                          r"(-?\d+) ms", line) for line in warns) if m]
    assert len(offsets) == 1, warns
    assert abs(offsets[0] - skew * 1000) < 5000, offsets

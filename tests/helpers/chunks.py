"""Fluent Bit chunks (concatenated msgpack events) for the tests, with the expected records.

Event forms (DESIGN.md §1):

* ``v2``     ``[[timestamp, metadata_map], record_map]`` (Fluent Bit v2+)
* ``legacy`` ``[timestamp, record_map]``

Timestamp encodings: ``ext`` (msgpack ext type 0, 8 bytes: big-endian u32 seconds, u32
nanoseconds — Fluent Bit's EventTime), ``int`` (seconds) and ``float`` (seconds).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import re
import struct
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import msgpack

FORMS = ("v2", "legacy")
TS_KINDS = ("ext", "int", "float")
ALL_KINDS = tuple(itertools.product(FORMS, TS_KINDS))

BASE_TS = 1_700_000_000  # 2023-11-14T22:13:20Z


@dataclass(frozen=True)
class Event:
    """One expected event: the timestamp as seconds + nanoseconds, and the record."""

    sec: int
    nsec: int
    record: dict
    form: str = "v2"
    ts_kind: str = "ext"

    @property
    def ts(self) -> float:
        return self.sec + self.nsec / 1e9


@dataclass
class Chunk:
    data: bytes
    events: list  # list[Event]
    name: str = "chunk.bin"

    @property
    def records(self) -> list:
        return [e.record for e in self.events]

    def __len__(self):
        return len(self.events)


def event_time(sec: int, nsec: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def _encode_ts(sec: int, nsec: int, kind: str):
    if kind == "ext":
        return event_time(sec, nsec)
    if kind == "int":
        return sec
    if kind == "float":
        return sec + nsec / 1e9
    raise ValueError(kind)


def _expected_ts(sec: int, nsec: int, kind: str) -> tuple:
    """What the timestamp decodes to: integers lose the nanoseconds, floats round."""
    if kind == "int":
        return sec, 0
    if kind == "float":
        f = sec + nsec / 1e9
        s = math.floor(f)
        return s, int(round((f - s) * 1e9))
    return sec, nsec


def encode_event(record: dict, sec: int, nsec: int, form: str = "v2", ts_kind: str = "ext",
                 metadata: Optional[dict] = None) -> bytes:
    ts = _encode_ts(sec, nsec, ts_kind)
    if form == "v2":
        obj = [[ts, metadata or {}], record]
    elif form == "legacy":
        obj = [ts, record]
    else:
        raise ValueError(form)
    return msgpack.packb(obj, use_bin_type=True)


def build_chunk(records: Sequence[dict], form: str = "v2", ts_kind: str = "ext",
                start: int = BASE_TS, step_ns: int = 1_234_567, name: str = "chunk.bin",
                kinds: Optional[Sequence[tuple]] = None) -> Chunk:
    """A chunk of ``records``; event i has timestamp ``start + i*step_ns`` ns. With ``kinds``
    (a list of (form, ts_kind)), event i uses ``kinds[i % len(kinds)]`` (a mixed chunk)."""
    parts = []
    events = []
    for i, rec in enumerate(records):
        f, k = (kinds[i % len(kinds)] if kinds else (form, ts_kind))
        total = start * 1_000_000_000 + i * step_ns + 123_456_789
        sec, nsec = divmod(total, 1_000_000_000)
        meta = {"m": i} if (f == "v2" and i % 3 == 1) else {}
        parts.append(encode_event(rec, sec, nsec, f, k, meta))
        esec, ensec = _expected_ts(sec, nsec, k)
        events.append(Event(esec, ensec, rec, f, k))
    return Chunk(b"".join(parts), events, name)


def build_mixed_chunk(records: Sequence[dict], name: str = "mixed.bin", **kw) -> Chunk:
    """Every event form and timestamp encoding, in turn."""
    return build_chunk(records, kinds=ALL_KINDS, name=name, **kw)


# ------------------------------------------------------------------------------------------------
# deterministic records

_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
_UNICODE = ["café", "naïve façade", "日本語のログ", "Ελληνικά", "emoji 🎉🚀", "Zürich – ½ €",
            "кириллица", "עברית"]
_ESCAPES = ['quote " and backslash \\', "new\nline", "tab\tchar", "ctrl \x01\x1f end",
            "slash / and </script>", "cr\r\nlf", "nul\x00byte", "del\x7f"]


class _Rng:
    """A tiny deterministic generator (xorshift), independent of Python's random module."""

    def __init__(self, seed: int):
        self.s = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF or 1

    def next(self) -> int:
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.s = x
        return x

    def pick(self, seq):
        return seq[self.next() % len(seq)]


def make_record(i: int, prefix: str = "r", seed: int = 0, pad: int = 0) -> dict:
    """A deterministic record with a unique ``id`` (``{prefix}-{i}``): unicode, escapes,
    nested maps and arrays, integers, exactly representable floats, booleans and null.
    ``pad`` adds a ``pad`` field of that many characters."""
    rng = _Rng(seed * 1_000_003 + i)
    rec = {
        "id": f"{prefix}-{i}",
        "seq": i,
        "log": f"{rng.pick(_WORDS)} {rng.pick(_UNICODE)} {rng.pick(_ESCAPES)} #{i}",
        "level": rng.pick(["info", "warn", "error", "debug"]),
        "count": rng.next() % 100000,
        "negative": -(rng.next() % 1000) - 1,
        "big": 2**40 + i,
        "ratio": (rng.next() % 64) / 8.0 + 0.25,  # exact in binary
        "ok": bool(rng.next() % 2),
        "none": None,
        "tags": [rng.pick(_WORDS), rng.pick(_UNICODE), i],
        "kubernetes": {
            "pod_name": f"app-{i % 7}-{rng.next() % 1000:03d}",
            "namespace_name": rng.pick(["default", "kube-system", "prod"]),
            "labels": {"app": rng.pick(_WORDS), "tier": rng.pick(["web", "db"]),
                       "unicode": rng.pick(_UNICODE)},
            "nested": {"deep": {"deeper": [1, {"x": rng.pick(_ESCAPES)}]}},
        },
    }
    if pad:
        rec["pad"] = ("0123456789abcdef" * (pad // 16 + 1))[:pad]
    return rec


def make_records(n: int, prefix: str = "r", seed: int = 0, pad: int = 0) -> list:
    return [make_record(i, prefix, seed, pad) for i in range(n)]


# ------------------------------------------------------------------------------------------------
# checking what a receiver got


def record_id(rec) -> Optional[str]:
    return rec.get("id") if isinstance(rec, dict) else None


def strip_key(rec: dict, key: Optional[str]) -> dict:
    if key is None or not isinstance(rec, dict):
        return rec
    return {k: v for k, v in rec.items() if k != key}


def normalize(value):
    """JSON-equivalent form of a value (tuples -> lists), for comparisons."""
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


_ISO_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z)?$")


def parse_date_value(value, date_format: str) -> tuple:
    """(seconds, nanoseconds) of a date value written in ``date_format``, and the precision in
    nanoseconds that the encoding keeps."""
    if date_format == "double":
        if not isinstance(value, (int, float)):
            raise AssertionError(f"double date is not a number: {value!r}")
        s = math.floor(value)
        return s, int(round((value - s) * 1e9)), 1000  # a double keeps ~µs at 1.7e9
    if date_format == "epoch":
        if not isinstance(value, int) or isinstance(value, bool):
            raise AssertionError(f"epoch date is not an integer: {value!r}")
        return value, 0, 1_000_000_000
    if date_format == "epoch_ms":
        if not isinstance(value, int) or isinstance(value, bool):
            raise AssertionError(f"epoch_ms date is not an integer: {value!r}")
        return value // 1000, (value % 1000) * 1_000_000, 1_000_000
    if date_format in ("iso8601", "java_sql_timestamp"):
        if not isinstance(value, str):
            raise AssertionError(f"{date_format} date is not a string: {value!r}")
        m = _ISO_RE.match(value)
        if not m:
            raise AssertionError(f"{date_format} date has a bad shape: {value!r}")
        y, mo, d, h, mi, s, frac, z = m.groups()
        if date_format == "iso8601" and (z is None or "T" not in value):
            raise AssertionError(f"iso8601 date must look like YYYY-MM-DDTHH:MM:SS[.f]Z: {value!r}")
        if date_format == "java_sql_timestamp" and (z is not None or "T" in value):
            raise AssertionError(f"java_sql_timestamp must look like YYYY-MM-DD HH:MM:SS[.f]: "
                                 f"{value!r}")
        dt = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                          tzinfo=_dt.timezone.utc)
        nsec = int((frac or "0").ljust(9, "0"))
        prec = 10 ** (9 - len(frac)) if frac else 1_000_000_000
        return int(dt.timestamp()), nsec, prec
    raise ValueError(date_format)


def check_date(value, event: Event, date_format: str):
    """Assert a date value encodes ``event``'s timestamp (to the precision of the format)."""
    sec, nsec, prec = parse_date_value(value, date_format)
    got = sec * 1_000_000_000 + nsec
    want = event.sec * 1_000_000_000 + event.nsec
    # the encoding may truncate or round to its precision; 1 µs of slack for float noise
    truncated = want // prec * prec
    rounded = (want + prec // 2) // prec * prec
    assert min(abs(got - truncated), abs(got - rounded)) <= 1000, (
        f"date {value!r} ({date_format}) != expected {event.sec}.{event.nsec:09d}")


def index_by_id(events: Iterable[Event]) -> dict:
    return {e.record["id"]: e for e in events}

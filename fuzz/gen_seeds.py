#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus_seed/<target>/ (checked in; rerun after editing).
Only the standard library: msgpack is written by the small encoder below."""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_seed")


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


class F32(float):
    pass


def mp(v):
    """Minimal msgpack encoder (smallest encodings, as Fluent Bit writes)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for fmt, tag in (("B", 0xCC), (">H", 0xCD), (">I", 0xCE), (">Q", 0xCF)):
                try:
                    return bytes([tag]) + struct.pack(fmt, v)
                except struct.error:
                    pass
        for fmt, tag in (("b", 0xD0), (">h", 0xD1), (">i", 0xD2), (">q", 0xD3)):
            try:
                return bytes([tag]) + struct.pack(fmt, v)
            except struct.error:
                pass
        raise ValueError(v)
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        v = v.encode()
        return hdr(len(v), 0xA0, 31, 0xD9, 0xDA, 0xDB) + v
    if isinstance(v, RawStr):
        return hdr(len(v.b), 0xA0, 31, 0xD9, 0xDA, 0xDB) + v.b
    if isinstance(v, bytes):
        return hdr(len(v), None, -1, 0xC4, 0xC5, 0xC6) + v
    if isinstance(v, Ext):
        n = len(v.data)
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
        if n in fixed:
            return bytes([fixed[n], v.code & 0xFF]) + v.data
        return hdr(n, None, -1, 0xC7, 0xC8, 0xC9) + bytes([v.code & 0xFF]) + v.data
    if isinstance(v, (list, tuple)):
        return hdr(len(v), 0x90, 15, None, 0xDC, 0xDD) + b"".join(mp(x) for x in v)
    if isinstance(v, Map):
        return hdr(len(v.items), 0x80, 15, None, 0xDE, 0xDF) + b"".join(
            mp(k) + mp(x) for k, x in v.items
        )
    if isinstance(v, dict):
        return mp(Map(list(v.items())))
    raise TypeError(type(v))


class Map:
    """A map with any keys, in order, duplicates allowed."""

    def __init__(self, items):
        self.items = items


class RawStr:
    """A msgpack str with arbitrary (possibly invalid UTF-8) bytes."""

    def __init__(self, b):
        self.b = b


def hdr(n, fix, fixmax, t8, t16, t32):
    if fix is not None and n <= fixmax:
        return bytes([fix | n])
    if t8 is not None and n < 256:
        return bytes([t8, n])
    if n < 65536:
        return bytes([t16]) + struct.pack(">H", n)
    return bytes([t32]) + struct.pack(">I", n)


def event_time(secs, nanos):
    return Ext(0, struct.pack(">II", secs, nanos))


def v1(ts, rec):
    return mp([ts, rec])


def v2(ts, rec, meta=None):
    return mp([[ts, meta if meta is not None else {}], rec])


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def events():
    deep = {"k": 1}
    for _ in range(70):
        deep = {"d": [deep]}
    chunks = {
        "v1_int": v1(1700000000, {"log": "hello", "n": 1})
        + v1(1700000001, {"log": "world", "n": -7, "f": 1.5}),
        "v2_eventtime": v2(event_time(1700000000, 123456789),
                           {"log": "x", "nested": {"a": [1, 2.5, None, True, False]}}),
        "groups": v2(-1, {}, {"group": "attrs"}) + v2(event_time(1, 5), {"log": "in group"})
        + v2(-2, {}) + v2(event_time(0xFFFFFFFF, 0), {"log": "group start ext"}),
        "timestamps": v1(-1.5, {"a": 1}) + v1(F32(1.25), {"a": 2}) + v1(2**63 + 5, {"a": 3})
        + v1(-(2**63), {"a": 4}) + v1(253402300800, {"a": 5}) + v1(-62167219201, {"a": 6})
        + v1(event_time(5, 1999999999), {"a": 7}) + v1(float("nan"), {"a": 8}),
        "values": v1(1, Map([
            ("s", RawStr(b"bad \xff\xfe utf8 \xe2\x82")),
            ("ctl", "q\"\\\n\r\t\x00\x1f\x7f\u2028"),
            ("bin", b"\x00\x01\xff"),
            ("ext", Ext(5, b"abc")),
            ("nan", float("nan")),
            ("inf", float("-inf")),
            ("f32", F32(0.1)),
            ("big", 2**64 - 1),
            ("neg", -(2**63)),
            (RawStr(b"log"), "bin-like key"),
            (7, "int key"),
            (None, "nil key"),
            (True, "bool key"),
            (2.5, "float key"),
            (b"\xff", "bin key"),
            ([1, "a"], "array key"),
            (Map([("x", 1)]), "map key"),
            ("date", "record field named like the date key"),
            ("log", Map([("inner", [1, 2])])),
        ])),
        "deep": v1(1, deep),
        "empty_map": v1(0, {}) + v2(event_time(0, 0), {}),
        "log_key_types": v1(1, {"log": 1}) + v1(2, {"log": b"raw bin"}) + v1(3, {"other": 1})
        + v1(4, {"log": None}) + v1(5, {"log": "{\"json\": true}"}),
        "truncated": v1(1, {"log": "hello"})[:-2],
        "not_array": mp({"a": 1}),
    }
    for name, chunk in chunks.items():
        for opt in (0x08, 0x0B, 0x14, 0x1A, 0x03, 0x21, 0x61, 0x7C):
            write("events_json", f"{name}_{opt:02x}", bytes([opt]) + chunk)


def config():
    write("config", "minimal", "endpoint=https://logs.example.com/ingest\naws_region=us-east-1\n")
    write("config", "full", "\n".join([
        "endpoint=http://127.0.0.1:8080/path?q=1",
        "tls_verify=off", "timeout=1500ms", "connect_timeout=2m", "format=json",
        "json_date_key=@timestamp", "json_date_format=iso8601", "log_key=message",
        "compress=zstd", "headers=X-A: 1, X-B: two", "header_tag=X-Tag",
        "max_request_bytes=1MiB", "proxy=http://u:p@proxy:3128", "no_proxy=.internal,10.0.0.0/8",
        "aws_auth=on", "aws_region=eu-west-1", "aws_service=logs", "aws_profile=prod",
        "aws_role_arn=arn:aws:iam::123456789012:role/x", "aws_external_id=ext",
        "aws_role_session_name=s", "aws_sts_endpoint=https://sts.eu-west-1.amazonaws.com",
        "aws_imds=off", "workers=2", "tls.verify=off",
    ]) + "\n")
    write("config", "auth_off", "endpoint=https://x/\naws_auth=off\nformat=msgpack\njson_date_key=false\n")
    write("config", "indexed", "@0=https://h/\n@7=json_stream\n@9=epoch_ms\n@11=gzip\n@14=0\n")
    write("config", "bad", "endpoint=ftp://x\ntimeout=-1\nmax_request_bytes=99999999999999gib\n")


def proxy():
    write("proxy", "env", "\n".join([
        "", "", "http://user:secretpass@proxy:3128", "", "proxy2:8080", "",
        "socks5://s:1", "", "localhost,.corp,10.0.0.0/8,[::1]:443,*.x,host:80", "",
        "https://api.corp/", "http://10.1.2.3:8080/", "https://example.com:443/a",
        "http://169.254.169.254/", "http://[fd00:ec2::23]/",
    ]) + "\n")
    write("proxy", "explicit", "\n".join([
        "https://u:pw@explicit.proxy:8443", "example.com, 192.168.0.0/16", "", "", "", "",
        "", "", "*", "", "https://example.com/", "http://192.168.1.1/",
    ]) + "\n")
    write("proxy", "bad", "\n".join(["ftp://x", "10.0.0.0/33", "http://", ":::", "", "", "", "",
                                       "[::1", ",,,", "http://[::ffff:127.0.0.1]/"]) + "\n")


def profile():
    config_file = """[default]
region = us-east-1
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = defaultsecretvalue123

[profile chain]
role_arn = arn:aws:iam::123456789012:role/one
source_profile = default
external_id = ext
duration_seconds = 900
role_session_name = sess

[profile chain2]
role_arn = arn:aws:iam::123456789012:role/two
source_profile = chain

[profile loop1]
role_arn = arn:aws:iam::123456789012:role/l1
source_profile = loop2

[profile loop2]
role_arn = arn:aws:iam::123456789012:role/l2
source_profile = loop1

[profile env]
role_arn = arn:aws:iam::123456789012:role/e
credential_source = Environment

[profile ec2]
role_arn = arn:aws:iam::123456789012:role/e
credential_source = Ec2InstanceMetadata

[profile ecs]
role_arn = arn:aws:iam::123456789012:role/e
credential_source = EcsContainer

[profile proc]
credential_process = /usr/bin/get-creds --profile "x y"

[profile web]
role_arn = arn:aws:iam::123456789012:role/w
web_identity_token_file = ~/token

[profile sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Admin

[profile legacy-sso]
sso_start_url = https://x.awsapps.com/start
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = Admin

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1

[services dev]
s3 =
  endpoint_url = http://localhost:9000
"""
    credentials_file = """[default]
aws_session_token = sessiontokenvalue123
[self]
aws_access_key_id = AKIDSELF
aws_secret_access_key = selfsecretvalue12345
role_arn = arn:aws:iam::123456789012:role/s
source_profile = self
"""
    write("profile_file", "full", config_file + "\0" + credentials_file)
    write("profile_file", "config_only", "[default]\nregion = eu-west-1\n")
    write("profile_file", "garbage", "[default\nno equals\n  continued\n\0[x]\n=v\n")


def process():
    write("credential_process_json", "full", '{"Version": 1, "AccessKeyId": "AKIDPROC",'
          ' "SecretAccessKey": "procsecretvalue1234", "SessionToken": "proctokenvalue12345",'
          ' "Expiration": "2099-01-01T00:00:00Z"}')
    write("credential_process_json", "static", '{"Version":"1","accesskeyid":"A","SecretAccessKey":"S"}')
    write("credential_process_json", "expired", '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S",'
          '"Expiration":"2001-01-01T00:00:00+02:00"}')
    write("credential_process_json", "bad", '{"Version":2,"AccessKeyId":5}')


def metadata():
    write("metadata_json", "ok", '{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAMETA",'
          '"SecretAccessKey":"metasecretvalue1234","Token":"metatokenvalue12345",'
          '"Expiration":"2099-01-01T00:00:00Z","LastUpdated":"2024-01-01T00:00:00Z"}')
    write("metadata_json", "pod_identity", '{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T",'
          '"AccountId":"123456789012","Expiration":"2099-01-01T00:00:00.123+01:00"}')
    write("metadata_json", "error", '{"Code":"AssumeRoleUnauthorizedAccess","Message":"nope"}')
    write("metadata_json", "bad", '{"AccessKeyId":["x"],"Expiration":"tomorrow"}')


def bulk():
    fixtures = os.path.join(os.path.dirname(OUT), "..", "tests", "fixtures", "opensearch")
    for name in sorted(os.listdir(fixtures)):
        if name.endswith(".json"):
            with open(os.path.join(fixtures, name), encoding="utf-8") as f:
                write("bulk_response", name[:-5], f.read())
    write("bulk_response", "ok", '{"took":1,"errors":false,"items":[{"create":{"_index":"a","_id":"1","status":201}}]}')
    write("bulk_response", "string_error", '{"items":[{"index":{"status":400,"error":"bad"}}],"errors":true}')


if __name__ == "__main__":
    events()
    config()
    proxy()
    profile()
    process()
    metadata()
    bulk()
    print(f"seeds written under {OUT}", file=sys.stderr)

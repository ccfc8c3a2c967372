//! Tests of `format opensearch` (`cargo test --lib event::bulk_tests`): every line parsed back
//! with serde_json.

use super::*;
use crate::opensearch::{BulkOptions, DatePattern, IndexName, KeyPath, WriteOperation};
use rmp::encode as mp;
use serde_json::{json, Value};

const T0: u32 = 1_700_006_399; // 2023-11-14T23:59:59Z

fn event(b: &mut Vec<u8>, v2: bool, secs: u32, nanos: u32, record: &dyn Fn(&mut Vec<u8>)) {
    mp::write_array_len(b, 2).expect("arr");
    if v2 {
        mp::write_array_len(b, 2).expect("arr");
    }
    mp::write_ext_meta(b, 8, 0).expect("ext");
    b.extend_from_slice(&secs.to_be_bytes());
    b.extend_from_slice(&nanos.to_be_bytes());
    if v2 {
        mp::write_map_len(b, 0).expect("map");
    }
    record(b);
}

/// A record of string pairs.
fn rec(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&mut Vec<u8>) {
    move |b| {
        mp::write_map_len(b, pairs.len() as u32).expect("map");
        for (k, v) in pairs {
            mp::write_str(b, k).expect("k");
            mp::write_str(b, v).expect("v");
        }
    }
}

fn body(bulk: BulkOptions) -> BodyOptions {
    BodyOptions {
        format: Format::OpenSearch,
        date_key: Some("@timestamp".into()),
        date_format: DateFormat::Iso8601,
        log_key: None,
        bulk: Some(bulk),
    }
}

fn logstash(prefix_key: Option<&str>, current_time: bool) -> IndexName {
    IndexName::Logstash {
        prefix: "logstash".into(),
        prefix_key: prefix_key.map(|k| KeyPath::parse(k).expect("path")),
        separator: "-".into(),
        date: DatePattern::parse("%Y.%m.%d").expect("pattern"),
        current_time,
    }
}

const CTX: ChunkContext<'static> = ChunkContext {
    tag: b"kube.var.log",
    now: 1_600_000_000, // 2020-09-13T12:26:40Z
};

/// Encodes and checks the framing: every record is exactly an action line and a document line,
/// newline-terminated; returns (action, document) per record.
fn encode(chunk: &[u8], o: &BodyOptions) -> Vec<(Value, Value)> {
    let r = encode_chunk_with(chunk, o, CTX).expect("encodes");
    assert_eq!(r.buf.len(), *r.ends.last().unwrap_or(&0));
    (0..r.len())
        .map(|i| {
            let text = std::str::from_utf8(r.record(i)).expect("utf-8");
            assert!(text.ends_with('\n'), "{text}");
            let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
            assert_eq!(lines.len(), 2, "{text}");
            let a: Value = serde_json::from_str(lines[0]).expect("action JSON");
            let d: Value = serde_json::from_str(lines[1]).expect("document JSON");
            (a, d)
        })
        .collect()
}

#[test]
fn create_with_fixed_index_both_event_forms() {
    let mut c = Vec::new();
    event(&mut c, true, T0, 5, &rec(&[("msg", "a")]));
    event(&mut c, false, T0 + 1, 0, &rec(&[("msg", "b")]));
    let got = encode(&c, &body(BulkOptions::default()));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, json!({"create": {"_index": "fluent-bit"}}));
    assert_eq!(
        got[0].1,
        json!({"@timestamp": "2023-11-14T23:59:59.000000005Z", "msg": "a"})
    );
    assert_eq!(got[1].0, json!({"create": {"_index": "fluent-bit"}}));
    assert_eq!(
        got[1].1,
        json!({"@timestamp": "2023-11-15T00:00:00.000000000Z", "msg": "b"})
    );
    assert_eq!(Format::OpenSearch.content_type(), "application/x-ndjson");
}

#[test]
fn fixed_index_is_filled_from_the_encoding_time_and_escaped() {
    let mut c = Vec::new();
    event(&mut c, true, T0, 0, &rec(&[("msg", "a")]));
    let o = body(BulkOptions {
        operation: WriteOperation::Index,
        index: IndexName::Fixed(DatePattern::parse("app\"-%Y.%m").expect("p")),
        ..BulkOptions::default()
    });
    let got = encode(&c, &o);
    assert_eq!(got[0].0, json!({"index": {"_index": "app\"-2020.09"}}));
}

#[test]
fn logstash_index_dates_cross_midnight_and_prefix_key() {
    let mut c = Vec::new();
    let ns: &dyn Fn(&mut Vec<u8>) = &|b| {
        mp::write_map_len(b, 2).expect("map");
        mp::write_str(b, "kubernetes").expect("k");
        mp::write_map_len(b, 2).expect("map");
        mp::write_str(b, "pod").expect("k");
        mp::write_array_len(b, 1).expect("arr");
        mp::write_str(b, "x").expect("v");
        mp::write_str(b, "namespace_name").expect("k");
        mp::write_str(b, "prod").expect("v");
        mp::write_str(b, "msg").expect("k");
        mp::write_str(b, "m").expect("v");
    };
    event(&mut c, true, T0, 999_999_999, ns);
    event(&mut c, true, T0 + 1, 0, ns);
    event(&mut c, true, T0 + 1, 0, &rec(&[("msg", "no namespace")]));
    let int_ns: &dyn Fn(&mut Vec<u8>) = &|b| {
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "kubernetes").expect("k");
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "namespace_name").expect("k");
        mp::write_sint(b, -7).expect("v");
    };
    event(&mut c, true, T0 + 1 + 86_400, 0, int_ns);

    let o = body(BulkOptions {
        index: logstash(Some("$kubernetes['namespace_name']"), false),
        ..BulkOptions::default()
    });
    let idx: Vec<Value> = encode(&c, &o)
        .into_iter()
        .map(|(a, _)| a["create"]["_index"].clone())
        .collect();
    assert_eq!(
        idx,
        [
            "prod-2023.11.14",
            "prod-2023.11.15",
            "logstash-2023.11.15",
            "-7-2023.11.16"
        ]
    );

    let o = body(BulkOptions {
        index: logstash(None, false),
        ..BulkOptions::default()
    });
    let got = encode(&c, &o);
    assert_eq!(got[0].0["create"]["_index"], "logstash-2023.11.14");
    assert_eq!(got[1].0["create"]["_index"], "logstash-2023.11.15");

    let o = body(BulkOptions {
        index: logstash(None, true),
        ..BulkOptions::default()
    });
    for (a, _) in encode(&c, &o) {
        assert_eq!(a["create"]["_index"], "logstash-2020.09.13");
    }
}

fn ids(c: &[u8], o: &BodyOptions) -> Vec<String> {
    encode(c, o)
        .into_iter()
        .map(|(a, _)| {
            let op = a.as_object().and_then(|m| m.values().next()).expect("op");
            op["_id"].as_str().expect("an _id").to_string()
        })
        .collect()
}

#[test]
fn generated_ids_are_deterministic_and_ignore_replace_dots_and_tag() {
    let mut c = Vec::new();
    event(&mut c, true, T0, 1, &rec(&[("a.b", "x")]));
    event(&mut c, false, T0, 1, &rec(&[("a.b", "x")])); // same record, legacy form
    event(&mut c, true, T0, 2, &rec(&[("a.b", "x")])); // another nanosecond
    event(&mut c, true, T0, 1, &rec(&[("a.b", "y")])); // another value
    let plain = body(BulkOptions {
        generate_id: true,
        ..BulkOptions::default()
    });
    let a = ids(&c, &plain);
    assert_eq!(
        a[0], a[1],
        "identical records with the same timestamp: one id"
    );
    assert_ne!(a[0], a[2]);
    assert_ne!(a[0], a[3]);
    assert_ne!(a[2], a[3]);
    for id in &a {
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert!(id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_uppercase()));
    }
    let dressed = body(BulkOptions {
        generate_id: true,
        replace_dots: true,
        tag_key: Some("tag".into()),
        index: logstash(None, false),
        ..BulkOptions::default()
    });
    assert_eq!(ids(&c, &dressed), a);
    // a known value: SHA-256(secs BE i64, nanos BE u32, record msgpack)
    let mut rec_mp = Vec::new();
    rec(&[("a.b", "x")])(&mut rec_mp);
    let mut h = sha2::Sha256::new();
    sha2::Digest::update(&mut h, i64::from(T0).to_be_bytes());
    sha2::Digest::update(&mut h, 1u32.to_be_bytes());
    sha2::Digest::update(&mut h, &rec_mp);
    let d = hex::encode_upper(&sha2::Digest::finalize(h)[..16]);
    let want = format!(
        "{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    );
    assert_eq!(a[0], want);
}

use sha2::Digest as _;

#[test]
fn update_and_upsert_wrap_the_document_and_carry_retry_on_conflict() {
    let mut c = Vec::new();
    event(&mut c, true, T0, 0, &rec(&[("id", "doc-1"), ("v", "1")]));
    let int_id: &dyn Fn(&mut Vec<u8>) = &|b| {
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "id").expect("k");
        mp::write_uint(b, 42).expect("v");
    };
    event(&mut c, true, T0, 0, int_id);
    event(&mut c, true, T0, 0, &rec(&[("v", "no id")]));
    for (op, wrap) in [
        (WriteOperation::Update, json!({})),
        (WriteOperation::Upsert, json!({"doc_as_upsert": true})),
    ] {
        let o = body(BulkOptions {
            operation: op,
            id_key: KeyPath::parse("id"),
            retry_on_conflict: 5,
            ..BulkOptions::default()
        });
        let got = encode(&c, &o);
        let mut doc = wrap.clone();
        doc["doc"] =
            json!({"@timestamp": "2023-11-14T23:59:59.000000000Z", "id": "doc-1", "v": "1"});
        assert_eq!(
            got[0].0,
            json!({"update": {"_index": "fluent-bit", "_id": "doc-1", "retry_on_conflict": 5}})
        );
        assert_eq!(got[0].1, doc);
        assert_eq!(got[1].0["update"]["_id"], "42");
        // no id_key value: the generated id (update/upsert need one)
        let generated = got[2].0["update"]["_id"].as_str().expect("id");
        assert_eq!(generated.len(), 36);
        assert_eq!(got[2].1["doc"]["v"], "no id");
        if op == WriteOperation::Upsert {
            assert_eq!(got[2].1["doc_as_upsert"], true);
        }
    }
    // create with id_key: the id where present, none where missing
    let o = body(BulkOptions {
        id_key: KeyPath::parse("id"),
        ..BulkOptions::default()
    });
    let got = encode(&c, &o);
    assert_eq!(
        got[0].0,
        json!({"create": {"_index": "fluent-bit", "_id": "doc-1"}})
    );
    assert_eq!(got[2].0, json!({"create": {"_index": "fluent-bit"}}));
}

#[test]
fn replace_dots_in_keys_at_every_depth_not_in_values_and_tag_key() {
    let mut c = Vec::new();
    let dotted: &dyn Fn(&mut Vec<u8>) = &|b| {
        mp::write_map_len(b, 3).expect("map");
        mp::write_str(b, "app.kubernetes.io/name").expect("k");
        mp::write_str(b, "v.1").expect("v");
        mp::write_str(b, "labels").expect("k");
        mp::write_array_len(b, 1).expect("arr");
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "a.b").expect("k");
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "c.d").expect("k");
        mp::write_str(b, "e.f").expect("v");
        // a container key: stringified, its text kept as is
        mp::write_array_len(b, 1).expect("arr");
        mp::write_str(b, "k.k").expect("v");
        mp::write_str(b, "x.y").expect("v");
    };
    event(&mut c, true, T0, 0, dotted);
    let o = body(BulkOptions {
        replace_dots: true,
        tag_key: Some("_flb.tag".into()),
        ..BulkOptions::default()
    });
    let got = encode(&c, &o);
    assert_eq!(
        got[0].1,
        json!({
            "@timestamp": "2023-11-14T23:59:59.000000000Z",
            "_flb.tag": "kube.var.log",
            "app_kubernetes_io/name": "v.1",
            "labels": [{"a_b": {"c_d": "e.f"}}],
            "[\"k.k\"]": "x.y",
        })
    );
    // without a date key the tag comes first
    let mut o = o;
    o.date_key = None;
    let got = encode(&c, &o);
    let text = serde_json::to_string(&got[0].1).expect("json");
    assert!(got[0].1.get("@timestamp").is_none(), "{text}");
    assert_eq!(got[0].1["_flb.tag"], "kube.var.log");
}

#[test]
fn odd_records_stay_two_valid_lines_and_ranges_are_bodies() {
    let mut c = Vec::new();
    event(&mut c, true, T0, 0, &|b| {
        mp::write_map_len(b, 0).expect("map");
    });
    event(&mut c, true, T0, 0, &|b| {
        mp::write_map_len(b, 4).expect("map");
        mp::write_str(b, "nl\nkey\"").expect("k");
        mp::write_str(b, "line1\nline2\r\u{0}").expect("v");
        mp::write_bin(b, &[0xff, b'.']).expect("k");
        mp::write_bin(b, &[0, 1, 2]).expect("v");
        mp::write_uint(b, 7).expect("k");
        mp::write_nil(b).expect("v");
        // invalid UTF-8 in a key
        b.extend_from_slice(&[0xa2, 0xc3, 0x28]);
        mp::write_f64(b, f64::NAN).expect("v");
    });
    let o = body(BulkOptions {
        replace_dots: true,
        generate_id: true,
        index: logstash(Some("nl\nkey\""), false),
        ..BulkOptions::default()
    });
    let got = encode(&c, &o);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].1,
        json!({"@timestamp": "2023-11-14T23:59:59.000000000Z"})
    );
    assert_eq!(
        got[1].0["create"]["_index"],
        "line1\nline2\r\u{0}-2023.11.14"
    );
    let d = &got[1].1;
    assert_eq!(d["nl\nkey\""], "line1\nline2\r\u{0}");
    assert_eq!(d["/y4="], "AAEC"); // base64 of the bin key and value
    assert_eq!(d["7"], Value::Null);
    assert_eq!(d["\u{fffd}("], Value::Null);

    // any range of records is a complete NDJSON body
    let r = encode_chunk_with(&c, &o, CTX).expect("encodes");
    for range in [0..1, 1..2, 0..2] {
        let b = assemble_body(&r, range.clone(), Format::OpenSearch);
        assert_eq!(b.len(), r.body_len(range.clone(), Format::OpenSearch));
        let text = std::str::from_utf8(&b).expect("utf-8");
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 2 * range.len());
        for line in text.lines() {
            serde_json::from_str::<Value>(line).expect("a JSON line");
        }
    }
}

#[test]
fn log_key_does_not_apply_and_piecewise_encoding_matches() {
    let mut c = Vec::new();
    for i in 0..200u32 {
        event(
            &mut c,
            i % 2 == 0,
            T0 + i,
            i,
            &rec(&[("log", "text"), ("k.x", "v")]),
        );
    }
    let mut o = body(BulkOptions {
        replace_dots: true,
        ..BulkOptions::default()
    });
    o.log_key = Some("log".into());
    let whole = encode_chunk_with(&c, &o, CTX).expect("encodes");
    assert_eq!(whole.len(), 200);
    assert_eq!(encode(&c, &o)[0].1["log"], "text");
    let mut enc = ChunkEncoder::with_context(&c, &o, CTX);
    let mut pieces = EncodedRecords::default();
    loop {
        let target = pieces.buf.len() + 500;
        if !enc.encode_some(&mut pieces, target).expect("ok") {
            break;
        }
    }
    assert_eq!(pieces, whole);
}

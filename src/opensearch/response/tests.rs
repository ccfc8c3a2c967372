//! `cargo test --lib opensearch::response`

use super::*;

const DOCS_EXAMPLE: &[u8] = include_bytes!("../../../tests/fixtures/opensearch/docs_example.json");
const MIXED: &[u8] = include_bytes!("../../../tests/fixtures/opensearch/mixed_failures.json");

/// The items read one by one (panics when they were only counted).
fn each(r: &BulkResponse) -> &[BulkItem] {
    match &r.items {
        Items::Each(items) => items,
        Items::AllDelivered(n) => panic!("{n} items only counted"),
    }
}

fn statuses(r: &BulkResponse) -> Vec<(BulkOp, u16, Outcome)> {
    each(r)
        .iter()
        .map(|i| (i.op, i.status, i.outcome()))
        .collect()
}

#[test]
fn the_documented_example_response() {
    let r = parse_bulk_response(DOCS_EXAMPLE, Some(4)).expect("parses");
    assert!(r.errors);
    assert_eq!(
        statuses(&r),
        [
            (BulkOp::Delete, 404, Outcome::Rejected),
            (BulkOp::Index, 201, Outcome::Delivered),
            (BulkOp::Create, 409, Outcome::Delivered),
            (BulkOp::Update, 404, Outcome::Rejected),
        ]
    );
    // delivered items keep nothing
    assert_eq!(each(&r)[1].index, None);
    assert_eq!(each(&r)[2].error, None);
    assert_eq!(each(&r)[3].index.as_deref(), Some("movies"));
    assert_eq!(
        each(&r)[3].error,
        Some(ItemError {
            kind: "document_missing_exception".into(),
            reason: "[_doc][tt0816711]: document missing".into(),
        })
    );
    assert_eq!(r.counts(), (2, 0, 2));
}

#[test]
fn errors_last_and_every_class_of_failure() {
    let r = parse_bulk_response(MIXED, None).expect("parses");
    assert!(r.errors, "errors comes after items here");
    assert_eq!(
        statuses(&r),
        [
            (BulkOp::Create, 201, Outcome::Delivered),
            (BulkOp::Create, 400, Outcome::Rejected),
            (BulkOp::Create, 429, Outcome::Retryable),
            (BulkOp::Create, 503, Outcome::Retryable),
            (BulkOp::Create, 402, Outcome::Retryable),
            (BulkOp::Update, 409, Outcome::Retryable),
            (BulkOp::Index, 400, Outcome::Rejected),
            (BulkOp::Create, 400, Outcome::Rejected),
            (BulkOp::Update, 200, Outcome::Delivered),
        ]
    );
    // the field-value preview (document content) is cut off
    let e = each(&r)[1].error.as_ref().expect("error");
    assert_eq!(
        e.reason,
        "failed to parse field [n] of type [long] in document with id 'b'"
    );
    assert!(!format!("{r:?}").contains("secret-value"));
    // control characters escaped
    assert_eq!(each(&r)[6].index.as_deref(), Some("bad\\u{0}index"));
    assert_eq!(
        parse_bulk_response(MIXED, Some(8)),
        Err(ResponseError::ItemCount { got: 9, sent: 8 })
    );
}

#[test]
fn classification_by_status_only() {
    use BulkOp::*;
    use Outcome::*;
    let cases = [
        (Create, 200, Delivered),
        (Index, 201, Delivered),
        (Create, 409, Delivered),
        (Index, 409, Rejected),
        (Update, 409, Retryable),
        (Delete, 409, Rejected),
        (Create, 429, Retryable),
        (Create, 402, Retryable),
        (Create, 500, Retryable),
        (Update, 503, Retryable),
        (Create, 400, Rejected),
        (Update, 404, Rejected),
        (Create, 413, Rejected),
        (Create, 301, Retryable),
        (Create, 0, Retryable),
    ];
    for (op, status, want) in cases {
        assert_eq!(classify(op, status), want, "{op:?} {status}");
    }
}

#[test]
fn odd_but_valid_responses() {
    let r = parse_bulk_response(br#"{"errors":true,"items":[]}"#, Some(0)).expect("ok");
    assert_eq!(r.items, Items::Each(Vec::new()));
    // no errors key; escaped keys and strings; a string error; unknown fields of any shape
    let body = br#" {"took":1,"x":{"errors":true,"items":[1]},"ite\u006ds":[
        {"create":{"status":400,"_index":"i\"x","error":"plain text reason","extra":[[{}]]}},
        {"index":{"error":{"reason":null,"type":null},"status":500}}
    ]} "#;
    let r = parse_bulk_response(body, Some(2)).expect("ok");
    assert!(!r.errors);
    assert_eq!(each(&r)[0].index.as_deref(), Some("i\"x"));
    assert_eq!(
        each(&r)[0].error,
        Some(ItemError {
            kind: String::new(),
            reason: "plain text reason".into()
        })
    );
    assert_eq!(
        each(&r)[1].error,
        Some(ItemError {
            kind: String::new(),
            reason: String::new()
        })
    );
    let long = format!(
        r#"{{"items":[{{"create":{{"status":400,"error":{{"type":"t","reason":"{}"}}}}}}]}}"#,
        "é".repeat(500)
    );
    let r = parse_bulk_response(long.as_bytes(), Some(1)).expect("ok");
    let reason = &each(&r)[0].error.as_ref().expect("e").reason;
    assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
    assert!(reason.ends_with('…'));
}

#[test]
fn malformed_responses_are_errors() {
    let bad: &[&[u8]] = &[
        b"",
        b"[]",
        b"{\"errors\":true}",
        b"{\"items\":[{}]}",
        b"{\"items\":[{\"create\":{}}]}",
        b"{\"items\":[{\"create\":{\"status\":200},\"index\":{\"status\":200}}]}",
        b"{\"items\":[{\"upsert\":{\"status\":200}}]}",
        b"{\"items\":[{\"create\":{\"status\":\"200\"}}]}",
        b"{\"items\":[{\"create\":{\"status\":70000}}]}",
        b"{\"items\":[]} trailing",
        b"{\"items\":[{\"create\":{\"status\":200}}]",
        b"{\"error\":{\"type\":\"security_exception\"},\"status\":403}",
    ];
    for b in bad {
        assert!(
            parse_bulk_response(b, None).is_err(),
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    // deep nesting in skipped parts is refused by serde_json's depth limit, not the stack
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_bulk_response(deep.as_bytes(), None).is_err());
}

#[test]
fn summary_line_counts_kinds_and_names_the_first_failure() {
    let mut s = FlushSummary::new();
    assert_eq!(s.line(), None);
    s.add_response(&parse_bulk_response(DOCS_EXAMPLE, None).expect("ok"));
    s.add_response(&parse_bulk_response(MIXED, None).expect("ok"));
    assert_eq!((s.delivered(), s.retryable(), s.rejected()), (4, 4, 5));
    let line = s.line().expect("a line");
    assert_eq!(
        line,
        "_bulk: 9 of 13 documents not delivered (5 rejected, dropped; 4 to retry): \
         400 invalid_index_name_exception x1, 400 mapper_parsing_exception x2, \
         402 service_quota_exceeded_exception x1, 404 (no type) x1, \
         404 document_missing_exception x1, 409 version_conflict_engine_exception x1, \
         429 es_rejected_execution_exception x1, 503 unavailable_shards_exception x1; \
         first: index \"movies\", status 404"
    );
    assert!(!line.contains("secret-value"));
    let mut s = FlushSummary::new();
    s.add_response(&parse_bulk_response(MIXED, None).expect("ok"));
    let line = s.line().expect("a line");
    assert!(
        line.ends_with(
            "first: index \"logs-2023.11.14\", status 400, mapper_parsing_exception: \
             failed to parse field [n] of type [long] in document with id 'b'"
        ),
        "{line}"
    );
    // bounded whatever the server sends
    let mut s = FlushSummary::new();
    for status in 400..480u16 {
        s.add(&BulkItem {
            op: BulkOp::Create,
            status,
            index: None,
            error: Some(ItemError {
                kind: format!("k{status}"),
                reason: "r".into(),
            }),
        });
    }
    let line = s.line().expect("line");
    assert!(line.contains(", other x"), "{line}");
    assert!(line.len() < 1000, "{line}");
}

#[test]
fn items_after_errors_false_are_counted_not_read() {
    let item = r#"{"create":{"_index":"a","_id":"x","result":"created","_shards":{"total":2},"status":201}}"#;
    let items = [item; 3].join(",");
    let fast = format!(r#"{{"took":3,"errors":false,"items":[{items}]}}"#);
    let r = parse_bulk_response(fast.as_bytes(), Some(3)).expect("ok");
    assert_eq!(r.items, Items::AllDelivered(3));
    assert!(!r.errors);
    assert_eq!(r.counts(), (3, 0, 0));
    assert_eq!(
        parse_bulk_response(fast.as_bytes(), Some(4)),
        Err(ResponseError::ItemCount { got: 3, sent: 4 })
    );
    let mut summary = FlushSummary::new();
    summary.add_response(&r);
    assert_eq!(summary.delivered(), 3);
    assert_eq!(summary.line(), None, "nothing failed");
    // `errors` after the items: they were read already, one by one
    let late = format!(r#"{{"items":[{items}],"errors":false}}"#);
    let r = parse_bulk_response(late.as_bytes(), Some(3)).expect("ok");
    assert_eq!(each(&r).len(), 3);
    // a later duplicate `errors: true` wins (as in serde_json's own reading): read one by one
    let failed = r#"{"create":{"_index":"a","status":400,"error":{"type":"t","reason":"r"}}}"#;
    let dup = format!(r#"{{"errors":false,"items":[{item},{failed}],"errors":true}}"#);
    let r = parse_bulk_response(dup.as_bytes(), Some(2)).expect("ok");
    assert!(r.errors);
    assert_eq!(r.counts(), (1, 0, 1));
    // counted items still have to be JSON values in an array
    for bad in [
        r#"{"errors":false,"items":{"create":{"status":201}}}"#,
        r#"{"errors":false,"items":[{"create":{"status":201}},]}"#,
        r#"{"errors":false,"items":[{"create":{"status":201}}"#,
        r#"{"errors":false,"items":[{"create":{"status":2x01}}]}"#,
        "{\"errors\":false,\"items\":[\"\u{1}\"]}",
    ] {
        assert!(parse_bulk_response(bad.as_bytes(), None).is_err(), "{bad}");
    }
    // what RFC 8259 leaves to implementations is not checked in skipped values (module docs)
    for lenient in [
        r#"{"took":1e400,"errors":false,"items":[]}"#,
        r#"{"errors":false,"items":[{"create":{"_id":"\ud800","status":201}}]}"#,
    ] {
        assert!(
            parse_bulk_response(lenient.as_bytes(), None).is_ok(),
            "{lenient}"
        );
    }
    // invalid UTF-8 anywhere, even in a part that is skipped
    let mut raw = br#"{"errors":false,"items":[{"create":{"status":201,"x":""}}]}"#.to_vec();
    let at = raw.len() - 5;
    raw.insert(at, 0xff);
    assert!(parse_bulk_response(&raw, None).is_err());
}

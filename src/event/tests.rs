//! Tests of decoding, transcoding and body assembly (`cargo test --lib event::`).

use super::decode::{Reader, Timestamp};
use super::encode::civil_from_days;
use super::*;
use rmp::encode as mp;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// chunk builders

#[derive(Clone, Copy, Debug)]
enum Ts {
    Ext(u32, u32),
    UInt(u64),
    Int(i64),
    F64(f64),
    F32(f32),
}

fn write_ts(b: &mut Vec<u8>, ts: Ts) {
    match ts {
        Ts::Ext(s, n) => {
            mp::write_ext_meta(b, 8, 0).expect("ext");
            b.extend_from_slice(&s.to_be_bytes());
            b.extend_from_slice(&n.to_be_bytes());
        }
        Ts::UInt(u) => {
            mp::write_uint(b, u).expect("uint");
        }
        Ts::Int(i) => {
            mp::write_sint(b, i).expect("sint");
        }
        Ts::F64(f) => mp::write_f64(b, f).expect("f64"),
        Ts::F32(f) => mp::write_f32(b, f).expect("f32"),
    }
}

/// Appends one event; `record` writes the record map (header included).
fn event(b: &mut Vec<u8>, v2: bool, ts: Ts, record: impl FnOnce(&mut Vec<u8>)) {
    mp::write_array_len(b, 2).expect("arr");
    if v2 {
        mp::write_array_len(b, 2).expect("arr");
        write_ts(b, ts);
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "meta").expect("str");
        mp::write_str(b, "ignored").expect("str");
    } else {
        write_ts(b, ts);
    }
    record(b);
}

/// A record `{"msg": msg, "n": n}`.
fn simple(msg: &str, n: i64) -> impl FnOnce(&mut Vec<u8>) + '_ {
    move |b| {
        mp::write_map_len(b, 2).expect("map");
        mp::write_str(b, "msg").expect("str");
        mp::write_str(b, msg).expect("str");
        mp::write_str(b, "n").expect("str");
        mp::write_sint(b, n).expect("int");
    }
}

fn opts(format: Format, date_format: DateFormat) -> BodyOptions {
    BodyOptions {
        format,
        date_key: Some("date".into()),
        date_format,
        log_key: None,
        bulk: None,
    }
}

const ALL_FORMATS: [Format; 5] = [
    Format::JsonLines,
    Format::Json,
    Format::JsonStream,
    Format::Msgpack,
    Format::OpenSearch,
];
const ALL_DATES: [DateFormat; 5] = [
    DateFormat::Double,
    DateFormat::Epoch,
    DateFormat::EpochMs,
    DateFormat::Iso8601,
    DateFormat::JavaSqlTimestamp,
];

fn text(r: &EncodedRecords, i: usize) -> &str {
    std::str::from_utf8(r.record(i)).expect("utf-8 output")
}

/// Parses a JSON record (trailing `\n` allowed).
fn parse(r: &EncodedRecords, i: usize) -> Value {
    serde_json::from_slice(r.record(i)).expect("valid JSON record")
}

/// Checks that the whole output is valid for its format; returns the records as JSON values
/// (msgpack converted).
fn validate(r: &EncodedRecords, format: Format) -> Vec<Value> {
    let n = r.len();
    assert_eq!(r.ends.last().copied().unwrap_or(0), r.buf.len());
    assert!(r.ends.windows(2).all(|w| w[0] <= w[1]));
    let body = assemble_body(r, 0..n, format);
    assert_eq!(body.len(), r.body_len(0..n, format));
    match format {
        Format::JsonLines => {
            let mut out = Vec::new();
            for i in 0..n {
                let rec = r.record(i);
                assert_eq!(rec.last(), Some(&b'\n'));
                assert!(!rec[..rec.len() - 1].contains(&b'\n'));
                out.push(parse(r, i));
            }
            let lines = body
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            assert_eq!(lines, n);
            out
        }
        Format::Json => match serde_json::from_slice::<Value>(&body).expect("valid JSON array") {
            Value::Array(a) => {
                assert_eq!(a.len(), n);
                a
            }
            v => panic!("not an array: {v}"),
        },
        Format::JsonStream => {
            let out: Vec<Value> = serde_json::Deserializer::from_slice(&body)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .expect("valid JSON stream");
            assert_eq!(out.len(), n);
            out
        }
        Format::Msgpack => (0..n)
            .map(|i| {
                let mut rd = r.record(i);
                let v = mp_to_json(&mut rd);
                assert!(rd.is_empty(), "trailing bytes in msgpack record {i}");
                v
            })
            .collect(),
        // the documents (each record: action line, document line)
        Format::OpenSearch => (0..n)
            .map(|i| {
                let rec = r.record(i);
                assert_eq!(rec.last(), Some(&b'\n'));
                let lines: Vec<&[u8]> = rec[..rec.len() - 1].split(|&b| b == b'\n').collect();
                assert_eq!(lines.len(), 2, "record {i}");
                let action: Value = serde_json::from_slice(lines[0]).expect("action line");
                assert!(action["create"]["_index"].is_string(), "{action}");
                serde_json::from_slice(lines[1]).expect("document line")
            })
            .collect(),
    }
}

/// Independent msgpack reader (rmp) for checking msgpack output; recursive, test-only.
fn mp_to_json(rd: &mut &[u8]) -> Value {
    use rmp::Marker as M;
    fn take<'a>(rd: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (a, b) = rd.split_at(n);
        *rd = b;
        a
    }
    fn be(rd: &mut &[u8], n: usize) -> u64 {
        take(rd, n).iter().fold(0u64, |a, &b| a << 8 | u64::from(b))
    }
    fn key(v: Value) -> String {
        match v {
            Value::String(s) => s,
            v => v.to_string(),
        }
    }
    let m = rmp::decode::read_marker(rd).expect("marker");
    let (len, kind) = match m {
        M::Null => return Value::Null,
        M::True => return Value::Bool(true),
        M::False => return Value::Bool(false),
        M::FixPos(v) => return Value::from(v),
        M::FixNeg(v) => return Value::from(v),
        M::U8 => return Value::from(be(rd, 1)),
        M::U16 => return Value::from(be(rd, 2)),
        M::U32 => return Value::from(be(rd, 4)),
        M::U64 => return Value::from(be(rd, 8)),
        M::I8 => return Value::from(be(rd, 1) as u8 as i8),
        M::I16 => return Value::from(be(rd, 2) as u16 as i16),
        M::I32 => return Value::from(be(rd, 4) as u32 as i32),
        M::I64 => return Value::from(be(rd, 8) as i64),
        M::F32 => return Value::from(f32::from_bits(be(rd, 4) as u32)),
        M::F64 => return Value::from(f64::from_bits(be(rd, 8))),
        M::FixStr(n) => (usize::from(n), 's'),
        M::Str8 => (be(rd, 1) as usize, 's'),
        M::Str16 => (be(rd, 2) as usize, 's'),
        M::Str32 => (be(rd, 4) as usize, 's'),
        M::Bin8 => (be(rd, 1) as usize, 'b'),
        M::Bin16 => (be(rd, 2) as usize, 'b'),
        M::Bin32 => (be(rd, 4) as usize, 'b'),
        M::FixArray(n) => (usize::from(n), 'a'),
        M::Array16 => (be(rd, 2) as usize, 'a'),
        M::Array32 => (be(rd, 4) as usize, 'a'),
        M::FixMap(n) => (usize::from(n), 'm'),
        M::Map16 => (be(rd, 2) as usize, 'm'),
        M::Map32 => (be(rd, 4) as usize, 'm'),
        M::FixExt1 => (2, 'e'),
        M::FixExt2 => (3, 'e'),
        M::FixExt4 => (5, 'e'),
        M::FixExt8 => (9, 'e'),
        M::FixExt16 => (17, 'e'),
        M::Ext8 => (be(rd, 1) as usize + 1, 'e'),
        M::Ext16 => (be(rd, 2) as usize + 1, 'e'),
        M::Ext32 => (be(rd, 4) as usize + 1, 'e'),
        M::Reserved => panic!("reserved marker"),
    };
    match kind {
        's' => Value::String(String::from_utf8_lossy(take(rd, len)).into_owned()),
        'b' | 'e' => Value::String(format!("<{} bytes>", take(rd, len).len())),
        'a' => Value::Array((0..len).map(|_| mp_to_json(rd)).collect()),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..len {
                let k = key(mp_to_json(rd));
                let v = mp_to_json(rd);
                m.insert(k, v);
            }
            Value::Object(m)
        }
    }
}

fn encode(data: &[u8], o: &BodyOptions) -> EncodedRecords {
    encode_chunk(data, o).expect("valid chunk")
}

// ---------------------------------------------------------------------------------------------
// events and timestamps

#[test]
fn both_event_forms_and_three_timestamp_encodings() {
    let mut c = Vec::new();
    event(
        &mut c,
        true,
        Ts::Ext(1_700_000_000, 123_456_789),
        simple("a", 1),
    );
    event(&mut c, false, Ts::Ext(1_700_000_000, 5), simple("b", 2));
    event(&mut c, true, Ts::UInt(1_700_000_001), simple("c", 3));
    event(&mut c, false, Ts::UInt(1_700_000_002), simple("d", 4));
    event(&mut c, true, Ts::F64(1_700_000_003.25), simple("e", 5));
    event(&mut c, false, Ts::F32(2.5), simple("f", 6));
    let r = encode(&c, &opts(Format::JsonLines, DateFormat::Double));
    assert_eq!(r.len(), 6);
    let dates: Vec<&str> = (0..6)
        .map(|i| {
            let t = text(&r, i);
            &t[8..t.find(',').expect("comma")]
        })
        .collect();
    assert_eq!(
        dates,
        [
            "1700000000.123457",
            "1700000000.0",
            "1700000001.0",
            "1700000002.0",
            "1700000003.25",
            "2.5",
        ]
    );
    assert_eq!(
        text(&r, 0),
        "{\"date\":1700000000.123457,\"msg\":\"a\",\"n\":1}\n"
    );
    let vals = validate(&r, Format::JsonLines);
    let msgs: Vec<&str> = vals
        .iter()
        .map(|v| v["msg"].as_str().expect("msg"))
        .collect();
    assert_eq!(msgs, ["a", "b", "c", "d", "e", "f"]);

    // the iterator API sees the same records, with offsets and raw record bytes
    let evs: Vec<Event> = events(&c).collect::<Result<_, _>>().expect("events");
    assert_eq!(evs.len(), 6);
    assert_eq!(evs[0].offset, 0);
    assert_eq!(
        evs[0].timestamp,
        Timestamp {
            secs: 1_700_000_000,
            nanos: 123_456_789
        }
    );
    // v2 event: 2 array headers, fixext8 (10 bytes), metadata map (14 bytes), record
    assert_eq!(evs[1].offset, 1 + 1 + 10 + 14 + evs[0].record.len());
    for e in &evs {
        assert_eq!(e.entries, 2);
        assert_eq!(e.record[0], 0x82);
    }
}

#[test]
fn timestamp_float_conversion() {
    let t = Timestamp::from_f64;
    assert_eq!(
        t(1.5),
        Timestamp {
            secs: 1,
            nanos: 500_000_000
        }
    );
    assert_eq!(
        t(-1.5),
        Timestamp {
            secs: -2,
            nanos: 500_000_000
        }
    );
    assert_eq!(
        t(1.001),
        Timestamp {
            secs: 1,
            nanos: 1_000_000
        }
    );
    assert_eq!(t(1.999_999_999_9), Timestamp { secs: 2, nanos: 0 });
    assert_eq!(t(-0.000_000_000_1), Timestamp { secs: 0, nanos: 0 });
    assert_eq!(t(f64::NAN), Timestamp::default());
    assert_eq!(t(f64::INFINITY).secs, i64::MAX);
    assert_eq!(t(f64::NEG_INFINITY).secs, i64::MIN);
    assert_eq!(t(1e300).secs, i64::MAX);
    // 1700000000.123456789 is not representable: nearest f64, rounded to the nanosecond
    assert_eq!(
        t("1700000000.123456789".parse().expect("f64")),
        Timestamp {
            secs: 1_700_000_000,
            nanos: 123_456_717
        }
    );
    assert_eq!(
        Timestamp::new(5, 2_500_000_000),
        Timestamp {
            secs: 7,
            nanos: 500_000_000
        }
    );
    assert_eq!(
        Timestamp {
            secs: -1,
            nanos: 999_000_000
        }
        .epoch_millis(),
        -1
    );
    assert_eq!(
        Timestamp {
            secs: -2,
            nanos: 999_999_999
        }
        .epoch_millis(),
        -1001
    );
    assert_eq!(
        Timestamp {
            secs: i64::MAX,
            nanos: 0
        }
        .epoch_millis(),
        i64::MAX
    );
}

#[test]
fn ext_nanos_overflow_carries() {
    let mut c = Vec::new();
    event(&mut c, true, Ts::Ext(10, 1_500_000_000), simple("x", 1));
    let r = encode(&c, &opts(Format::JsonStream, DateFormat::Double));
    assert!(text(&r, 0).starts_with("{\"date\":11.5,"));
}

/// The record's date text for `ts` in `df` (JSON formats).
fn date_json(ts: Ts, df: DateFormat) -> String {
    let mut c = Vec::new();
    event(&mut c, true, ts, |b| {
        mp::write_map_len(b, 0).expect("map");
    });
    let r = encode(&c, &opts(Format::JsonStream, df));
    let t = text(&r, 0);
    assert!(t.starts_with("{\"date\":") && t.ends_with('}'), "{t}");
    serde_json::from_str::<Value>(t).expect("valid JSON");
    t[8..t.len() - 1].to_string()
}

#[test]
fn every_date_format_with_known_values() {
    use DateFormat::*;
    let cases: &[(Ts, [&str; 5])] = &[
        (
            Ts::Ext(1_700_000_000, 123_456_789),
            [
                "1700000000.123457",
                "1700000000",
                "1700000000123",
                "\"2023-11-14T22:13:20.123456789Z\"",
                "\"2023-11-14 22:13:20.123456789\"",
            ],
        ),
        (
            Ts::UInt(0),
            [
                "0.0",
                "0",
                "0",
                "\"1970-01-01T00:00:00.000000000Z\"",
                "\"1970-01-01 00:00:00.000000000\"",
            ],
        ),
        (
            Ts::F64(-86_400.5),
            [
                "-86400.5",
                "-86401",
                "-86400500",
                "\"1969-12-30T23:59:59.500000000Z\"",
                "\"1969-12-30 23:59:59.500000000\"",
            ],
        ),
        (
            Ts::F64(-0.25),
            [
                "-0.25",
                "-1",
                "-250",
                "\"1969-12-31T23:59:59.750000000Z\"",
                "\"1969-12-31 23:59:59.750000000\"",
            ],
        ),
        (
            Ts::Int(-62_135_596_800), // 0001-01-01
            [
                "-62135596800.0",
                "-62135596800",
                "-62135596800000",
                "\"0001-01-01T00:00:00.000000000Z\"",
                "\"0001-01-01 00:00:00.000000000\"",
            ],
        ),
        (
            Ts::Int(-62_167_219_201), // one second before 0000-01-01
            [
                "-62167219201.0",
                "-62167219201",
                "-62167219201000",
                "\"-0001-12-31T23:59:59.000000000Z\"",
                "\"-0001-12-31 23:59:59.000000000\"",
            ],
        ),
        (
            Ts::UInt(253_402_300_799),
            [
                "253402300799.0",
                "253402300799",
                "253402300799000",
                "\"9999-12-31T23:59:59.000000000Z\"",
                "\"9999-12-31 23:59:59.000000000\"",
            ],
        ),
        (
            Ts::UInt(253_402_300_800),
            [
                "253402300800.0",
                "253402300800",
                "253402300800000",
                "\"+10000-01-01T00:00:00.000000000Z\"",
                "\"+10000-01-01 00:00:00.000000000\"",
            ],
        ),
        (
            Ts::Ext(951_782_400, 999_999_999), // 2000-02-29, leap day of a /400 year
            [
                "951782401.0",
                "951782400",
                "951782400999",
                "\"2000-02-29T00:00:00.999999999Z\"",
                "\"2000-02-29 00:00:00.999999999\"",
            ],
        ),
        (
            Ts::Ext(u32::MAX - 2, 0), // unsigned EventTime seconds, 2106
            [
                "4294967293.0",
                "4294967293",
                "4294967293000",
                "\"2106-02-07T06:28:13.000000000Z\"",
                "\"2106-02-07 06:28:13.000000000\"",
            ],
        ),
    ];
    for (ts, want) in cases {
        for (df, w) in [Double, Epoch, EpochMs, Iso8601, JavaSqlTimestamp]
            .iter()
            .zip(want)
        {
            assert_eq!(date_json(*ts, *df), *w, "{ts:?} {df:?}");
        }
    }
    // extremes do not panic and stay valid JSON
    for ts in [
        Ts::Int(i64::MIN),
        Ts::Int(i64::MAX),
        Ts::UInt(u64::MAX - 2),
        Ts::F64(f64::MAX),
    ] {
        for df in ALL_DATES {
            let _ = date_json(ts, df);
        }
    }
    assert_eq!(
        date_json(Ts::Int(i64::MIN), Double),
        "-9223372036854775808.0"
    );
    assert_eq!(
        date_json(Ts::Int(i64::MIN), EpochMs),
        "-9223372036854775808"
    );
    assert_eq!(
        date_json(Ts::F64(f64::MIN), Double),
        "-9223372036854775808.0"
    );
}

/// `double` rounds to microseconds like `out_http`'s `%.16g` of today's seconds, drops trailing
/// zeros, and carries a fraction that rounds up into the whole seconds, on both signs.
#[test]
fn double_rounds_to_microseconds() {
    let cases: &[(Ts, &str)] = &[
        (Ts::Ext(1_796_677_643, 403_416_000), "1796677643.403416"),
        (Ts::Ext(1_700_000_000, 499), "1700000000.0"),
        (Ts::Ext(1_700_000_000, 500), "1700000000.000001"),
        (Ts::Ext(1_700_000_000, 120_000_000), "1700000000.12"),
        (Ts::Ext(1_700_000_000, 999_999_499), "1700000000.999999"),
        (Ts::Ext(1_700_000_000, 999_999_500), "1700000001.0"),
        (Ts::Ext(u32::MAX - 2, 999_999_999), "4294967294.0"),
        (Ts::F64(-1.999_999_999_5), "-2.0"),
        (Ts::F64(-0.000_000_1), "0.0"),
        (Ts::F64(-0.000_000_6), "-0.000001"),
        (Ts::F64(-1.5), "-1.5"),
    ];
    for (ts, want) in cases {
        assert_eq!(date_json(*ts, DateFormat::Double), *want, "{ts:?}");
    }
    // the same as out_http's text for every microsecond of a second's first and last 2 ms
    for nanos in (0..2_000_000u32)
        .chain(998_000_000..1_000_000_000)
        .step_by(997)
    {
        let got = date_json(Ts::Ext(1_700_000_000, nanos), DateFormat::Double);
        let micros = (u64::from(nanos) + 500) / 1000;
        let v = 1_700_000_000.0 + micros as f64 / 1e6;
        let want = if v.fract() == 0.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.6}").trim_end_matches('0').to_string()
        };
        assert_eq!(got, want, "{nanos}");
    }
}

#[test]
fn civil_from_days_matches_day_by_day_walk() {
    fn leap(y: i64) -> bool {
        y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
    }
    fn month_len(y: i64, m: u32) -> u32 {
        match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
    // forward from 1970-01-01 for ~1100 years
    let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
    for days in 0..400_000i64 {
        assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        d += 1;
        if d > month_len(y, m) {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    // backward for ~1100 years
    let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
    for days in (-400_000i64..=0).rev() {
        assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        if d == 1 {
            if m == 1 {
                m = 12;
                y -= 1;
            } else {
                m -= 1;
            }
            d = month_len(y, m);
        } else {
            d -= 1;
        }
    }
    // the extremes of i64 seconds do not overflow
    let _ = civil_from_days(i64::MIN.div_euclid(86_400));
    let _ = civil_from_days(i64::MAX.div_euclid(86_400));
}

#[test]
fn msgpack_date_values() {
    let mut c = Vec::new();
    event(
        &mut c,
        true,
        Ts::Ext(1_700_000_000, 123_456_789),
        simple("a", 1),
    );
    let want = [
        Value::from("1700000000.123456789".parse::<f64>().expect("f64")),
        Value::from(1_700_000_000i64),
        Value::from(1_700_000_000_123i64),
        Value::from("2023-11-14T22:13:20.123456789Z"),
        Value::from("2023-11-14 22:13:20.123456789"),
    ];
    for (df, w) in ALL_DATES.iter().zip(want) {
        let r = encode(&c, &opts(Format::Msgpack, *df));
        let v = validate(&r, Format::Msgpack);
        assert_eq!(v[0]["date"], w, "{df:?}");
        // date key first, then the record entries copied byte for byte
        let rec = r.record(0);
        assert_eq!(rec[0], 0x83);
        assert_eq!(&rec[1..6], b"\xa4date");
        let ev = events(&c).next().expect("one").expect("ok");
        assert!(rec.ends_with(&ev.record[1..]));
    }
    // negative epoch values
    let mut c = Vec::new();
    event(&mut c, false, Ts::F64(-86_400.5), simple("a", 1));
    let r = encode(&c, &opts(Format::Msgpack, DateFormat::EpochMs));
    assert_eq!(
        validate(&r, Format::Msgpack)[0]["date"],
        Value::from(-86_400_500i64)
    );
    let r = encode(&c, &opts(Format::Msgpack, DateFormat::Double));
    assert_eq!(
        validate(&r, Format::Msgpack)[0]["date"],
        Value::from(-86_400.5f64)
    );
    // no date key
    let mut o = opts(Format::Msgpack, DateFormat::Double);
    o.date_key = None;
    let r = encode(&c, &o);
    assert_eq!(
        r.record(0),
        events(&c).next().expect("one").expect("ok").record
    );
}

#[test]
fn group_markers_are_skipped() {
    let mut c = Vec::new();
    let attrs = |b: &mut Vec<u8>| {
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "resource").expect("str");
        mp::write_str(b, "x").expect("str");
    };
    event(&mut c, true, Ts::Ext(u32::MAX, 0), attrs);
    event(&mut c, true, Ts::Ext(1, 0), simple("one", 1));
    event(&mut c, true, Ts::Ext(u32::MAX - 1, 0), attrs);
    event(&mut c, true, Ts::Int(-1), attrs);
    event(&mut c, false, Ts::Int(-2), attrs);
    event(&mut c, false, Ts::UInt(u64::MAX), attrs);
    event(&mut c, false, Ts::UInt(u64::MAX - 1), attrs);
    event(&mut c, true, Ts::F64(-1.0), attrs);
    // a marker body that is not a map is skipped too
    event(&mut c, true, Ts::Ext(u32::MAX, 0), |b| {
        mp::write_array_len(b, 1).expect("arr");
        mp::write_nil(b).expect("nil");
    });
    event(&mut c, true, Ts::Ext(2, 0), simple("two", 2));
    // not markers: non-zero nanoseconds, other values
    event(&mut c, true, Ts::Ext(u32::MAX, 1), simple("three", 3));
    event(&mut c, true, Ts::Int(-3), simple("four", 4));
    for f in ALL_FORMATS {
        let r = encode(&c, &opts(f, DateFormat::Epoch));
        let v = validate(&r, f);
        let msgs: Vec<&str> = v.iter().map(|v| v["msg"].as_str().expect("msg")).collect();
        assert_eq!(msgs, ["one", "two", "three", "four"], "{f:?}");
        assert_eq!(v[2]["date"], Value::from(u32::MAX));
        assert_eq!(v[3]["date"], Value::from(-3));
    }
    assert_eq!(events(&c).count(), 4);
}

/// The events of `usual_event_form_reads_like_any_other`, with empty metadata (Fluent Bit's own
/// form, read by the decoder's direct path) or not (read token by token).
fn usual_form_chunk(empty_metadata: bool) -> Vec<u8> {
    let mut c = Vec::new();
    let mut ev = |ts: (u32, u32), record: &dyn Fn(&mut Vec<u8>)| {
        c.extend_from_slice(&[0x92, 0x92]);
        write_ts(&mut c, Ts::Ext(ts.0, ts.1));
        if empty_metadata {
            c.push(0x80);
        } else {
            mp::write_map_len(&mut c, 1).expect("map");
            mp::write_str(&mut c, "meta").expect("str");
            mp::write_str(&mut c, "ignored").expect("str");
        }
        record(&mut c);
    };
    let fields = |n: u32| {
        move |b: &mut Vec<u8>| {
            mp::write_map_len(b, n).expect("map");
            for i in 0..n {
                mp::write_str(b, &format!("k{i}")).expect("str");
                mp::write_uint(b, u64::from(i)).expect("uint");
            }
        }
    };
    let msg = |m: &'static str| {
        move |b: &mut Vec<u8>| {
            mp::write_map_len(b, 1).expect("map");
            mp::write_str(b, "msg").expect("str");
            mp::write_str(b, m).expect("str");
        }
    };
    ev((u32::MAX, 0), &fields(1)); // group start
    ev((1_700_000_000, 123_456_789), &msg("one"));
    ev((7, 1_500_000_000), &msg("nanos carry"));
    ev((u32::MAX - 1, 0), &fields(2)); // group end
    ev((u32::MAX, 1), &msg("not a marker"));
    ev((8, 0), &fields(0));
    ev((9, 0), &fields(15)); // the biggest fixmap
    ev((10, 0), &fields(16)); // map16
    c
}

#[test]
fn usual_event_form_reads_like_any_other() {
    let (usual, other) = (usual_form_chunk(true), usual_form_chunk(false));
    assert_ne!(usual, other);
    for f in ALL_FORMATS {
        for df in [DateFormat::Double, DateFormat::Iso8601] {
            let o = opts(f, df);
            let (a, b) = (encode(&usual, &o), encode(&other, &o));
            assert_eq!(a.buf, b.buf, "{f:?} {df:?}");
            assert_eq!(a.len(), 6, "{f:?}");
        }
    }
    let v = validate(
        &encode(&usual, &opts(Format::JsonLines, DateFormat::Double)),
        Format::JsonLines,
    );
    assert_eq!(v[1]["msg"], "nanos carry");
    assert_eq!(v[1]["date"], Value::from(8.5));
    assert_eq!(v[5]["k15"], 15);
    // cut anywhere in the last event: an error at that event's offset
    let head = [0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 10];
    let last = usual
        .windows(8)
        .rposition(|w| w == head)
        .expect("the last event");
    for cut in last + 1..usual.len() {
        let e = encode_chunk(&usual[..cut], &BodyOptions::default()).expect_err("truncated");
        assert_eq!(e.offset, last, "cut at {cut}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// log_key

#[test]
fn log_key_present_missing_and_non_string() {
    let mut c = Vec::new();
    let rec = |log: Option<&'static str>| {
        move |b: &mut Vec<u8>| {
            mp::write_map_len(b, if log.is_some() { 2 } else { 1 }).expect("map");
            mp::write_str(b, "other").expect("str");
            mp::write_str(b, "x").expect("str");
            if let Some(l) = log {
                mp::write_str(b, "log").expect("str");
                mp::write_str(b, l).expect("str");
            }
        }
    };
    event(&mut c, true, Ts::UInt(1), rec(Some("{\"a\":1}")));
    event(&mut c, true, Ts::UInt(2), rec(None));
    event(&mut c, true, Ts::UInt(3), rec(Some("[\"q\\\"uote\"]")));
    // non-string values: a map (with a key container before it), an integer, nil
    event(&mut c, true, Ts::UInt(4), |b| {
        mp::write_map_len(b, 2).expect("map");
        mp::write_array_len(b, 1).expect("arr");
        mp::write_uint(b, 1).expect("uint");
        mp::write_uint(b, 2).expect("uint");
        mp::write_str(b, "log").expect("str");
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "k").expect("str");
        mp::write_str(b, "v\n").expect("str");
    });
    event(&mut c, true, Ts::UInt(5), |b| {
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "log").expect("str");
        mp::write_uint(b, 42).expect("uint");
    });
    // first match wins; a bin key matches too
    event(&mut c, true, Ts::UInt(6), |b| {
        mp::write_map_len(b, 2).expect("map");
        mp::write_bin(b, b"log").expect("bin");
        mp::write_str(b, "\"first\"").expect("str");
        mp::write_str(b, "log").expect("str");
        mp::write_str(b, "\"second\"").expect("str");
    });
    let mut o = opts(Format::JsonLines, DateFormat::Double);
    o.log_key = Some("log".into());
    let r = encode(&c, &o);
    assert_eq!(
        std::str::from_utf8(&r.buf).expect("utf-8"),
        "{\"a\":1}\n[\"q\\\"uote\"]\n{\"k\":\"v\\n\"}\n42\n\"first\"\n"
    );
    assert_eq!(r.len(), 5);
    validate(&r, Format::JsonLines);
    for f in [Format::Json, Format::JsonStream] {
        o.format = f;
        let r = encode(&c, &o);
        let v = validate(&r, f);
        assert_eq!(v[0], serde_json::json!({"a": 1}));
        assert_eq!(v[2], serde_json::json!({"k": "v\n"}));
        assert_eq!(v[3], Value::from(42));
        assert_eq!(v[4], Value::from("first"));
    }
    o.format = Format::Msgpack;
    let r = encode(&c, &o);
    assert_eq!(r.len(), 5);
    assert_eq!(r.record(0), b"\xa7{\"a\":1}");
    assert_eq!(r.record(3), b"\x2a");
    let v = validate(&r, Format::Msgpack);
    assert_eq!(v[2], serde_json::json!({"k": "v\n"}));

    // raw strings: invalid UTF-8 replaced, bytes otherwise verbatim
    let mut c = Vec::new();
    event(&mut c, false, Ts::UInt(1), |b| {
        mp::write_map_len(b, 1).expect("map");
        mp::write_str(b, "log").expect("str");
        mp::write_str_len(b, 5).expect("len");
        b.extend_from_slice(b"a\xffb\"\t");
    });
    o.format = Format::JsonLines;
    let r = encode(&c, &o);
    assert_eq!(r.buf, "a\u{FFFD}b\"\t\n".as_bytes());
    // nobody has the key
    o.log_key = Some("nope".into());
    let r = encode(&c, &o);
    assert!(r.is_empty());
    assert_eq!(assemble_body(&r, 0..0, Format::JsonLines).len(), 0);
}

// ---------------------------------------------------------------------------------------------
// values

#[test]
fn strings_escapes_invalid_utf8_binary_ext() {
    let mut c = Vec::new();
    let long: String = "abcdefgh\"ij\\kl\u{1}mn\u{7f}é😀\n".repeat(20);
    let long2 = long.clone();
    event(&mut c, true, Ts::UInt(1), move |b| {
        mp::write_map_len(b, 7).expect("map");
        mp::write_str(b, "ctl").expect("str");
        mp::write_str(b, "\u{0}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} \"\\/").expect("str");
        mp::write_str(b, "bad").expect("str");
        mp::write_str_len(b, 9).expect("len");
        b.extend_from_slice(b"ok\xc3(\xff\xed\xa0\x80z"); // bad 2-byte, 0xff, surrogate
        mp::write_str(b, "long").expect("str");
        mp::write_str(b, &long2).expect("str");
        mp::write_str(b, "bin").expect("str");
        mp::write_bin(b, b"\x00\x01\xfe\xff").expect("bin");
        mp::write_str(b, "ext").expect("str");
        mp::write_ext_meta(b, 3, 7).expect("ext");
        b.extend_from_slice(b"abc");
        mp::write_str(b, "ts_ext_in_value").expect("str");
        write_ts(b, Ts::Ext(1, 2));
        mp::write_str_len(b, 3).expect("len");
        b.extend_from_slice(b"k\x80y"); // invalid key
        mp::write_str(b, "").expect("str");
    });
    let r = encode(&c, &opts(Format::JsonLines, DateFormat::Epoch));
    let t = text(&r, 0);
    assert!(
        t.contains(r#""ctl":"\u0000\b\t\n\u000b\f\r\u001f \"\\/""#),
        "{t}"
    );
    let v = parse(&r, 0);
    assert_eq!(v["ctl"], "\u{0}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} \"\\/");
    assert_eq!(v["bad"], "ok\u{FFFD}(\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}z");
    assert_eq!(
        v["bad"],
        Value::from(String::from_utf8_lossy(b"ok\xc3(\xff\xed\xa0\x80z").into_owned())
    );
    assert_eq!(v["long"], Value::from(long));
    assert_eq!(v["bin"], "AAH+/w==");
    assert_eq!(v["ext"], "YWJj");
    assert_eq!(v["ts_ext_in_value"], "AAAAAQAAAAI=");
    assert_eq!(v["k\u{FFFD}y"], "");
    for f in ALL_FORMATS {
        validate(&encode(&c, &opts(f, DateFormat::Iso8601)), f);
    }
}

#[test]
fn escape_every_byte_position() {
    // each special byte at every offset of a 20-byte string (exercises the 8-byte fast path)
    for special in [0u8, 0x1f, b'"', b'\\', b'\n', 0x7f, b'a'] {
        for pos in 0..20 {
            let mut s = vec![b'x'; 20];
            s[pos] = special;
            let mut c = Vec::new();
            event(&mut c, false, Ts::UInt(1), |b| {
                mp::write_map_len(b, 1).expect("map");
                mp::write_str(b, "s").expect("str");
                mp::write_str_len(b, 20).expect("len");
                b.extend_from_slice(&s);
            });
            let r = encode(&c, &opts(Format::Json, DateFormat::Epoch));
            let v = validate(&r, Format::Json);
            assert_eq!(v[0]["s"].as_str().expect("s").as_bytes(), &s[..]);
        }
    }
}

#[test]
fn numbers_and_non_string_keys() {
    let mut c = Vec::new();
    event(&mut c, true, Ts::UInt(1), |b| {
        mp::write_map_len(b, 16).expect("map");
        mp::write_uint(b, 5).expect("k");
        mp::write_uint(b, u64::MAX).expect("v");
        mp::write_sint(b, -7).expect("k");
        mp::write_sint(b, i64::MIN).expect("v");
        mp::write_bool(b, true).expect("k");
        mp::write_f64(b, 0.1).expect("v");
        mp::write_bool(b, false).expect("k");
        mp::write_f32(b, 0.1).expect("v");
        mp::write_nil(b).expect("k");
        mp::write_f64(b, f64::NAN).expect("v");
        mp::write_f64(b, 1.5).expect("k");
        mp::write_f64(b, f64::INFINITY).expect("v");
        mp::write_f64(b, f64::NAN).expect("k");
        mp::write_f32(b, f32::NEG_INFINITY).expect("v");
        mp::write_bin(b, b"\xff").expect("k");
        mp::write_f64(b, 1e300).expect("v");
        // array key containing a map whose key is itself an array
        mp::write_array_len(b, 3).expect("k");
        mp::write_uint(b, 1).expect("i");
        mp::write_str(b, "a\"").expect("s");
        mp::write_map_len(b, 1).expect("m");
        mp::write_array_len(b, 1).expect("mk");
        mp::write_bool(b, true).expect("b");
        mp::write_nil(b).expect("mv");
        mp::write_f64(b, -0.0).expect("v");
        mp::write_map_len(b, 0).expect("k");
        mp::write_array_len(b, 0).expect("v");
        mp::write_array_len(b, 0).expect("k");
        mp::write_map_len(b, 0).expect("v");
        mp::write_ext_meta(b, 1, 1).expect("k");
        b.push(b'z');
        mp::write_uint(b, 0).expect("v");
        mp::write_str(b, "f").expect("k");
        mp::write_f64(b, 100.0).expect("v");
        mp::write_str(b, "g").expect("k");
        mp::write_f64(b, 1.0e-7).expect("v");
        mp::write_str(b, "h").expect("k");
        mp::write_f64(b, 123_456_789_012_345_680.0).expect("v");
        mp::write_str(b, "i").expect("k");
        mp::write_i8(b, 5).expect("v");
    });
    let mut o = opts(Format::JsonStream, DateFormat::Epoch);
    o.date_key = None;
    let r = encode(&c, &o);
    let t = text(&r, 0);
    let want = concat!(
        r#"{"5":18446744073709551615,"-7":-9223372036854775808,"true":0.1,"false":0.1,"#,
        r#""null":null,"1.5":null,"null":null,"/w==":1e300,"#,
        // a key inside a stringified key is written as is: the outer key escapes it once
        r#""[1,\"a\\\"\",{[true]:null}]":-0.0,"{}":[],"[]":{},"eg==":0,"#,
        r#""f":100.0,"g":1e-7,"h":1.2345678901234568e17,"i":5}"#
    );
    assert_eq!(t, want);
    let v = parse(&r, 0);
    assert_eq!(v["[1,\"a\\\"\",{[true]:null}]"], Value::from(-0.0));
    assert_eq!(v["5"], Value::from(u64::MAX));
    for f in ALL_FORMATS {
        validate(&encode(&c, &opts(f, DateFormat::Double)), f);
    }
}

/// Maps used as keys of maps used as keys…: each level used to escape the level below again,
/// doubling its backslashes (a 30-byte fuzz input became 16 KB). Now linear, and valid JSON.
#[test]
fn keys_nested_in_keys_stay_linear() {
    let depth = 40u32;
    let mut c = Vec::new();
    event(&mut c, true, Ts::UInt(1), |b| {
        mp::write_map_len(b, 1).expect("record");
        for _ in 0..depth {
            mp::write_map_len(b, 1).expect("key map");
        }
        mp::write_str(b, "a\"b").expect("innermost key");
        for _ in 0..depth {
            mp::write_u8(b, 1).expect("value");
        }
        mp::write_u8(b, 2).expect("record value");
    });
    for f in ALL_FORMATS {
        let r = encode(&c, &opts(f, DateFormat::Epoch));
        if f == Format::Msgpack {
            // `validate`'s checker stringifies keys level by level (exponential here): check
            // that the record is one whole msgpack value with rmpv instead.
            let mut rd = r.record(0);
            rmpv::decode::read_value(&mut rd).expect("valid msgpack");
            assert!(rd.is_empty(), "trailing bytes");
        } else {
            validate(&r, f);
        }
        assert!(r.buf.len() < 20 * c.len(), "{f:?}: {} bytes", r.buf.len());
    }
}

/// `depth` nested arrays around `1`, as the value of key "deep".
fn deep_chunk(depth: usize, maps: bool) -> Vec<u8> {
    let mut c = Vec::new();
    event(&mut c, true, Ts::UInt(1), |b| {
        mp::write_map_len(b, 2).expect("map");
        mp::write_str(b, "deep").expect("str");
        for _ in 0..depth {
            if maps {
                mp::write_map_len(b, 1).expect("map");
                mp::write_str(b, "k").expect("str");
            } else {
                mp::write_array_len(b, 1).expect("arr");
            }
        }
        mp::write_uint(b, 1).expect("uint");
        mp::write_str(b, "after").expect("str");
        mp::write_bool(b, true).expect("bool");
    });
    c
}

/// Nesting depth of a JSON value, and its innermost value.
fn depth_of(v: &Value) -> (usize, &Value) {
    let mut d = 0;
    let mut cur = v;
    loop {
        match cur {
            Value::Array(a) if !a.is_empty() => cur = &a[0],
            Value::Object(m) if m.contains_key("k") => cur = &m["k"],
            _ => return (d, cur),
        }
        d += 1;
    }
}

#[test]
fn deep_nesting_is_bounded() {
    for maps in [false, true] {
        // exactly at the limit: kept; one more: the innermost container becomes null
        for (depth, nulled) in [(MAX_DEPTH - 1, false), (MAX_DEPTH, true), (100_000, true)] {
            let c = deep_chunk(depth, maps);
            for f in ALL_FORMATS {
                let r = encode(&c, &opts(f, DateFormat::Epoch));
                let v = validate(&r, f);
                assert_eq!(v[0]["after"], Value::Bool(true));
                // the record is level 1; containers at levels 2..=MAX_DEPTH survive and the
                // first one deeper becomes null
                let (d, leaf) = depth_of(&v[0]["deep"]);
                assert_eq!(d, MAX_DEPTH - 1, "{f:?} {depth}");
                let want = if nulled { Value::Null } else { Value::from(1) };
                assert_eq!(*leaf, want, "{f:?} {depth}");
            }
        }
    }
    // deep nesting in a key position, and log_key pointing at a deep value
    let mut c = Vec::new();
    event(&mut c, true, Ts::UInt(1), |b| {
        mp::write_map_len(b, 2).expect("map");
        for _ in 0..100_000 {
            mp::write_array_len(b, 1).expect("arr");
        }
        mp::write_nil(b).expect("nil");
        mp::write_uint(b, 1).expect("uint");
        mp::write_str(b, "log").expect("str");
        for _ in 0..100_000 {
            mp::write_map_len(b, 1).expect("map");
            mp::write_map_len(b, 0).expect("key");
        }
        mp::write_nil(b).expect("nil");
    });
    for f in ALL_FORMATS {
        validate(&encode(&c, &opts(f, DateFormat::Epoch)), f);
        let mut o = opts(f, DateFormat::Epoch);
        o.log_key = Some("log".into());
        let r = encode(&c, &o);
        assert_eq!(r.len(), 1);
        validate(&r, f);
    }
}

// ---------------------------------------------------------------------------------------------
// errors

#[test]
fn truncated_and_invalid_input_is_an_error_with_offset() {
    let mut c = Vec::new();
    event(&mut c, true, Ts::Ext(1, 0), simple("first", 1));
    let second = c.len();
    event(&mut c, false, Ts::UInt(2), simple("second record", 2));
    for cut in second + 1..c.len() {
        let e = encode_chunk(&c[..cut], &BodyOptions::default()).expect_err("truncated");
        assert_eq!(e.offset, second, "cut at {cut}: {e}");
        assert!(e.to_string().contains("byte offset"), "{e}");
        let errs: Vec<_> = events(&c[..cut]).collect();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].as_ref().expect_err("error").offset, second);
    }
    assert!(encode_chunk(&c[..second], &BodyOptions::default()).is_ok());
    assert_eq!(encode(&[], &BodyOptions::default()).len(), 0);

    let bad = |tail: &[u8]| {
        let mut d = c.clone();
        d.extend_from_slice(tail);
        let e = encode_chunk(&d, &BodyOptions::default()).expect_err("invalid");
        assert_eq!(e.offset, c.len(), "{e}");
        e.reason
    };
    // lengths beyond the input: str32, bin32, array32, map32, ext32
    assert!(bad(b"\x92\x01\x81\xa1k\xdb\xff\xff\xff\xff").contains("exceeds"));
    assert!(bad(b"\x92\x01\x81\xa1k\xc6\x7f\xff\xff\xff").contains("exceeds"));
    assert!(bad(b"\x92\x01\x81\xa1k\xdd\xff\xff\xff\xff").contains("exceeds"));
    assert!(bad(b"\x92\x01\xdf\xff\xff\xff\xff").contains("exceeds"));
    assert!(bad(b"\x92\x01\x81\xa1k\xc9\xff\xff\xff\xff\x05").contains("exceeds"));
    assert!(bad(b"\x92\x92\x01\xdf\x7f\xff\xff\xff\x80").contains("exceeds"));
    // structure
    assert!(bad(b"\x01").contains("not an array"));
    assert!(bad(b"\x93\x01\x80\x80").contains("2-element"));
    assert!(bad(b"\x92\x93\x01\x80\x80\x80").contains("header"));
    assert!(bad(b"\x92\xa1x\x80").contains("timestamp"));
    assert!(bad(b"\x92\xc0\x80").contains("timestamp"));
    assert!(bad(b"\x92\x92\x80\x80\x80").contains("timestamp"));
    assert!(bad(b"\x92\xd6\x00\x00\x00\x00\x01\x80").contains("timestamp")); // ext 0, 4 bytes
    assert!(bad(b"\x92\xd7\x05\x00\x00\x00\x00\x00\x00\x00\x01\x80").contains("timestamp"));
    assert!(bad(b"\x92\x01\x90").contains("not a map"));
    assert!(bad(b"\x92\x01\xa1x").contains("not a map"));
    assert!(bad(b"\x92\x01\x81\xc1\x01").contains("0xc1"));
    assert!(bad(b"\xc1").contains("0xc1"));
}

// ---------------------------------------------------------------------------------------------
// bodies

#[test]
fn assemble_body_ranges_for_every_format() {
    let mut c = Vec::new();
    for i in 0..7 {
        event(&mut c, i % 2 == 0, Ts::UInt(i as u64), simple("m", i));
    }
    for f in ALL_FORMATS {
        let r = encode(&c, &opts(f, DateFormat::Epoch));
        assert_eq!(r.len(), 7);
        validate(&r, f);
        for a in 0..=7 {
            for b in a..=7 {
                let body = assemble_body(&r, a..b, f);
                assert_eq!(body.len(), r.body_len(a..b, f), "{f:?} {a}..{b}");
                let ns: Vec<i64> = match f {
                    Format::Json => serde_json::from_slice::<Vec<Value>>(&body)
                        .expect("array")
                        .iter()
                        .map(|v| v["n"].as_i64().expect("n"))
                        .collect(),
                    Format::JsonLines | Format::JsonStream => {
                        serde_json::Deserializer::from_slice(&body)
                            .into_iter::<Value>()
                            .map(|v| v.expect("value")["n"].as_i64().expect("n"))
                            .collect()
                    }
                    Format::OpenSearch => serde_json::Deserializer::from_slice(&body)
                        .into_iter::<Value>()
                        .skip(1)
                        .step_by(2)
                        .map(|v| v.expect("value")["n"].as_i64().expect("n"))
                        .collect(),
                    Format::Msgpack => {
                        let mut rd: &[u8] = &body;
                        let mut ns = Vec::new();
                        while !rd.is_empty() {
                            ns.push(mp_to_json(&mut rd)["n"].as_i64().expect("n"));
                        }
                        ns
                    }
                };
                assert_eq!(
                    ns,
                    (a as i64..b as i64).collect::<Vec<_>>(),
                    "{f:?} {a}..{b}"
                );
                if f == Format::JsonLines && a < b {
                    assert!(body.ends_with(b"}\n"));
                }
            }
        }
    }
    assert_eq!(
        &*assemble_body(&EncodedRecords::default(), 0..0, Format::Json),
        b"[]"
    );
    assert_eq!(EncodedRecords::default().body_len(0..0, Format::Json), 2);
    assert_eq!(EncodedRecords::default().body_len(0..0, Format::Msgpack), 0);
}

#[test]
fn content_types() {
    assert_eq!(Format::JsonLines.content_type(), "application/x-ndjson");
    assert_eq!(Format::Json.content_type(), "application/json");
    assert_eq!(Format::Msgpack.content_type(), "application/msgpack");
}

// ---------------------------------------------------------------------------------------------
// fuzz

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn random_value(g: &mut Lcg, b: &mut Vec<u8>, depth: u32) {
    let pick = if depth == 0 { g.below(11) } else { g.below(14) };
    match pick {
        0 => mp::write_nil(b).expect("nil"),
        1 => mp::write_bool(b, g.below(2) == 0).expect("bool"),
        2 => {
            mp::write_uint(b, g.next() << g.below(32)).expect("uint");
        }
        3 => {
            mp::write_sint(b, -((g.next() << g.below(32)) as i64).abs()).expect("sint");
        }
        4 => mp::write_f64(b, f64::from_bits(g.next() << 31 ^ g.next())).expect("f64"),
        5 => mp::write_f32(b, f32::from_bits(g.next() as u32)).expect("f32"),
        6 => {
            let n = g.below(40) as usize;
            let s: String = (0..n)
                .map(|_| char::from_u32(g.below(0x300) as u32).unwrap_or('x'))
                .collect();
            mp::write_str(b, &s).expect("str");
        }
        7 => {
            let n = g.below(300) as u32;
            mp::write_str_len(b, n).expect("len");
            b.extend(g.bytes(n as usize));
        }
        8 => {
            let n = g.below(20) as usize;
            mp::write_bin(b, &g.bytes(n)).expect("bin")
        }
        9 => {
            let n = g.below(20) as u32;
            mp::write_ext_meta(b, n, g.next() as i8).expect("ext");
            b.extend(g.bytes(n as usize));
        }
        10 => {
            mp::write_i8(b, g.next() as i8).expect("i8");
        }
        11 | 12 => {
            let n = g.below(5) as u32;
            mp::write_map_len(b, n).expect("map");
            for _ in 0..n {
                if g.below(3) == 0 {
                    random_value(g, b, depth - 1);
                } else {
                    mp::write_str(b, ["a", "log", "date", "b"][g.below(4) as usize]).expect("k");
                }
                random_value(g, b, depth - 1);
            }
        }
        _ => {
            let n = g.below(5) as u32;
            mp::write_array_len(b, n).expect("arr");
            for _ in 0..n {
                random_value(g, b, depth - 1);
            }
        }
    }
}

fn random_chunk(g: &mut Lcg) -> Vec<u8> {
    let mut c = Vec::new();
    for _ in 0..g.below(6) {
        let ts = match g.below(6) {
            0 => Ts::Ext(g.next() as u32, g.next() as u32),
            1 => Ts::UInt(g.next() << g.below(40)),
            2 => Ts::Int(-(g.next() as i64)),
            3 => Ts::F64(f64::from_bits(g.next() << 31 ^ g.next())),
            4 => Ts::F32(f32::from_bits(g.next() as u32)),
            _ => Ts::Ext(u32::MAX - g.below(2) as u32, 0),
        };
        let depth = g.below(5) as u32;
        event(&mut c, g.below(2) == 0, ts, |b| {
            let n = g.below(6) as u32;
            mp::write_map_len(b, n).expect("map");
            for _ in 0..n {
                if g.below(4) == 0 {
                    random_value(g, b, depth);
                } else {
                    mp::write_str(b, ["a", "log", "date", "b"][g.below(4) as usize]).expect("k");
                }
                random_value(g, b, depth);
            }
        });
    }
    c
}

fn random_opts(g: &mut Lcg) -> BodyOptions {
    BodyOptions {
        format: ALL_FORMATS[g.below(5) as usize],
        date_key: if g.below(4) == 0 {
            None
        } else {
            Some(["date", "@t\"", ""][g.below(3) as usize].into())
        },
        date_format: ALL_DATES[g.below(5) as usize],
        log_key: if g.below(4) == 0 {
            Some("log".into())
        } else {
            None
        },
        bulk: None,
    }
}

/// Output must be valid for its format (log_key strings are raw, so only checked for
/// msgpack and when absent).
fn check_output(r: &EncodedRecords, o: &BodyOptions) {
    if o.log_key.is_none() || matches!(o.format, Format::Msgpack | Format::OpenSearch) {
        validate(r, o.format);
    } else {
        assert_eq!(r.ends.last().copied().unwrap_or(0), r.buf.len());
        std::str::from_utf8(&r.buf).expect("log_key output is UTF-8");
    }
}

#[test]
fn fuzz_random_bytes_and_random_valid_chunks() {
    let mut g = Lcg(0x5eed_f1b5_1947_0001);
    let mut ok = 0;
    for i in 0..4000 {
        let o = random_opts(&mut g);
        // valid chunks decode, and the output is valid
        let c = random_chunk(&mut g);
        let r = encode_chunk(&c, &o).unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        check_output(&r, &o);
        let n = events(&c)
            .collect::<Result<Vec<_>, _>>()
            .expect("events")
            .len();
        if o.log_key.is_none() {
            assert_eq!(r.len(), n);
        }
        // random bytes, and mutated / truncated valid chunks: no panic, Ok output valid
        let junk = match i % 3 {
            0 => {
                let n = g.below(64) as usize;
                g.bytes(n)
            }
            1 if !c.is_empty() => {
                let mut m = c.clone();
                for _ in 0..=g.below(4) {
                    let p = g.below(m.len() as u64) as usize;
                    m[p] = g.next() as u8;
                }
                m
            }
            _ if !c.is_empty() => c[..g.below(c.len() as u64) as usize].to_vec(),
            _ => Vec::new(),
        };
        if let Ok(r) = encode_chunk(&junk, &o) {
            check_output(&r, &o);
            ok += 1;
        }
        let _ = events(&junk).count();
        let mut rd = Reader::new(&junk);
        let _ = rd.skip_values(3);
    }
    assert!(ok > 100, "{ok}");
}

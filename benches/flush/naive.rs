//! The naive reference pipeline: decode each event into a value tree (rmpv), convert it to
//! `serde_json::Value` and serialise that with serde_json, one line per record.

use rmpv::Value as Mp;
use serde_json::Value as Js;

fn key(v: Mp) -> String {
    match v {
        Mp::String(s) => s.into_str().unwrap_or_default(),
        other => other.to_string(),
    }
}

fn to_json(v: Mp) -> Js {
    match v {
        Mp::Nil => Js::Null,
        Mp::Boolean(b) => Js::Bool(b),
        Mp::Integer(i) => i
            .as_i64()
            .map(Js::from)
            .or_else(|| i.as_u64().map(Js::from))
            .unwrap_or(Js::Null),
        Mp::F32(f) => Js::from(f64::from(f)),
        Mp::F64(f) => Js::from(f),
        Mp::String(s) => Js::String(s.into_str().unwrap_or_default()),
        Mp::Binary(b) => Js::String(String::from_utf8_lossy(&b).into_owned()),
        Mp::Array(a) => Js::Array(a.into_iter().map(to_json).collect()),
        Mp::Map(m) => Js::Object(m.into_iter().map(|(k, v)| (key(k), to_json(v))).collect()),
        Mp::Ext(..) => Js::Null,
    }
}

fn timestamp(v: &Mp) -> f64 {
    match v {
        Mp::Ext(0, b) if b.len() == 8 => {
            let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let nanos = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            f64::from(secs) + f64::from(nanos) / 1e9
        }
        other => other
            .as_f64()
            .or_else(|| other.as_i64().map(|i| i as f64))
            .unwrap_or(0.0),
    }
}

/// json_lines of every record, with the timestamp under `date` first; the record count.
pub fn json_lines(chunk: &[u8], out: &mut Vec<u8>) -> usize {
    let mut rd = chunk;
    let mut n = 0;
    while !rd.is_empty() {
        let event = rmpv::decode::read_value(&mut rd).expect("valid event");
        let Mp::Array(mut parts) = event else {
            panic!("event is not an array")
        };
        let record = parts.pop().expect("record");
        let ts = match parts.pop().expect("header") {
            Mp::Array(mut header) => {
                header.truncate(1);
                timestamp(&header[0])
            }
            other => timestamp(&other),
        };
        let mut obj = serde_json::Map::new();
        obj.insert("date".to_string(), Js::from(ts));
        if let Mp::Map(entries) = record {
            for (k, v) in entries {
                obj.insert(key(k), to_json(v));
            }
        }
        serde_json::to_writer(&mut *out, &Js::Object(obj)).expect("serialise");
        out.push(b'\n');
        n += 1;
    }
    n
}

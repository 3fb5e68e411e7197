//! The JSON-RPC object written for one event (reference §1.8 and §4.3).
//!
//! `{"jsonrpc":"2.0","method":M,"params":P}`: compact, keys in this order, `params` omitted
//! when the event has none, an object when the first param is named, else an array. With
//! `event_param` the event name is inserted first in `params`. In reliable mode the sender
//! puts `"id":N,` right after the `{` when it writes the object (ids are per connection).

use evi_sdk::{Event, Value};
use std::io::Write;

/// The object for `event`. Without a method override or `event_param` it is the host's shared
/// payload, copied as is (built once per event for every JSON transport).
pub fn notification(event: &Event<'_>, method: Option<&str>, event_param: Option<&str>) -> Vec<u8> {
    let shared = event.json();
    if method.is_none() && event_param.is_none() && shared.first() == Some(&b'{') {
        return shared.to_vec();
    }
    build(event, method, event_param)
}

/// Build the object from the params (same bytes as the host's builder for the plain case).
pub fn build(event: &Event<'_>, method: Option<&str>, event_param: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + event.len() * 32);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    string(&mut out, method.unwrap_or(event.name()).as_bytes());
    let mut params = event.params().peekable();
    if let Some(first) = params.peek() {
        let named = first.name.is_some();
        out.extend_from_slice(br#","params":"#);
        out.push(if named { b'{' } else { b'[' });
        let mut sep = false;
        if let Some(key) = event_param {
            if named {
                string(&mut out, key.as_bytes());
                out.push(b':');
            }
            string(&mut out, event.name().as_bytes());
            sep = true;
        }
        for p in params {
            if sep {
                out.push(b',');
            }
            sep = true;
            if named {
                // A positional param after a named one has no name: cJSON wrote "".
                string(&mut out, p.name.unwrap_or("").as_bytes());
                out.push(b':');
            }
            match p.value {
                Value::Int(i) => {
                    let _ = write!(out, "{i}");
                }
                Value::Str(s) => string(&mut out, s),
                Value::Null => out.extend_from_slice(b"null"),
            }
        }
        out.push(if named { b'}' } else { b']' });
    }
    out.push(b'}');
    out
}

/// A JSON string as cJSON prints it: `"` `\` and control characters escaped, `/` and
/// non-ASCII passed through; invalid UTF-8 becomes U+FFFD so consumers always get valid JSON.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                escape(out, valid.as_bytes());
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                escape(out, valid);
                out.extend_from_slice("\u{FFFD}".as_bytes());
                let skip = e.error_len().unwrap_or(after.len());
                rest = &after[skip..];
            }
        }
    }
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// `payload` with `"id":N,` inserted after its opening `{` (reliable mode).
pub fn with_id(out: &mut Vec<u8>, id: u64, payload: &[u8]) {
    let _ = write!(out, "{{\"id\":{id},");
    out.extend_from_slice(payload.get(1..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use evi_sdk::testing::TestEvent;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8_lossy(&v).into_owned()
    }

    fn golden0() -> TestEvent {
        TestEvent::new("E_GOLDEN")
            .int(Some("id"), 42)
            .str(Some("user"), "alice")
            .str(Some("msg"), "hello world")
    }

    #[test]
    fn plain_build_is_the_shared_payload() {
        let want = r#"{"jsonrpc":"2.0","method":"E_GOLDEN","params":{"id":42,"user":"alice","msg":"hello world"}}"#;
        assert_eq!(golden0().with(|e| s(build(e, None, None))), want);
        let ev = golden0().json("{\"shared\":1}");
        assert_eq!(
            ev.with(|e| s(notification(e, None, None))),
            "{\"shared\":1}"
        );
        let none = TestEvent::new("E_GOLDEN");
        assert_eq!(
            none.with(|e| s(build(e, None, Some("ev")))),
            r#"{"jsonrpc":"2.0","method":"E_GOLDEN"}"#
        );
        let pos = TestEvent::new("E").str(None, "x").str(None, "1");
        assert_eq!(
            pos.with(|e| s(build(e, None, None))),
            r#"{"jsonrpc":"2.0","method":"E","params":["x","1"]}"#
        );
    }

    #[test]
    fn method_event_param_and_id() {
        let ev = TestEvent::new("E_PIKE_BLOCKED")
            .str(Some("ip"), "192.0.2.10")
            .json("{}");
        let p = ev.with(|e| notification(e, Some("block_ip"), Some("opensips_event")));
        let mut out = Vec::new();
        with_id(&mut out, 915243442, &p);
        assert_eq!(
            s(out),
            r#"{"id":915243442,"jsonrpc":"2.0","method":"block_ip","params":{"opensips_event":"E_PIKE_BLOCKED","ip":"192.0.2.10"}}"#
        );
        let pos = TestEvent::new("E").int(None, -1).null(None);
        assert_eq!(
            pos.with(|e| s(build(e, None, Some("k")))),
            r#"{"jsonrpc":"2.0","method":"E","params":["E",-1,null]}"#
        );
    }

    #[test]
    fn strings_escape_like_cjson() {
        let ev = TestEvent::new("E").str(None, b"q\"b\\/\n\x01 caf\xc3\xa9 \xff");
        assert_eq!(ev.with(|e| s(build(e, None, None))), "{\"jsonrpc\":\"2.0\",\"method\":\"E\",\"params\":[\"q\\\"b\\\\/\\n\\u0001 café \u{FFFD}\"]}");
    }
}

//! The JSON-RPC object written for one event (reference §1.8 and §4.3).
//!
//! `{"jsonrpc":"2.0","method":M,"params":P}`: compact, keys in this order, `params` omitted
//! when the event has none, an object when the first param is named, else an array. With
//! `event_param` the event name is inserted first in `params`. In reliable mode the sender
//! puts `"id":N,` right after the `{` when it writes the object (ids are per connection).

use evi_sdk::Event;
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

/// Build the object from the params, with the shared builder (same bytes as the host's).
pub fn build(event: &Event<'_>, method: Option<&str>, event_param: Option<&str>) -> Vec<u8> {
    evi_sdk::abi::payload::notification(
        method.unwrap_or(event.name()),
        event.raw_params(),
        event_param.map(|k| (k, event.name())),
    )
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

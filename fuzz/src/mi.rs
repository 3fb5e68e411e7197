//! `mi`: any bytes as one MI request to the daemon's JSON-RPC engine (what mi_http, mi_datagram
//! and mi_fifo hand it), on a host with no modules. No panic; a reply is one JSON-RPC 2.0
//! response object (`jsonrpc`, exactly one of `result`/`error`, `id`), and no reply only for a
//! well-formed notification (a JSON object without `id`).

use evi_host::Host;
use serde_json::Value;
use std::sync::OnceLock;

/// One host for the whole run (its start-up is the slow part); MI state (subscriptions, log
/// level) carries over between inputs, as it does in the daemon.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let h = Host::new(64);
        h.set_ready();
        h
    })
}

pub fn check(data: &[u8]) {
    let reply = host().mi_execute(data);
    let Some(reply) = reply else {
        let req: Value =
            serde_json::from_slice(data).expect("no reply to a request that is not JSON");
        let obj = req
            .as_object()
            .expect("no reply to a request that is not an object");
        assert!(!obj.contains_key("id"), "no reply to a request with an id");
        return;
    };
    let v: Value = serde_json::from_slice(&reply).unwrap_or_else(|e| {
        panic!(
            "reply is not JSON ({e}): {}",
            String::from_utf8_lossy(&reply)
        )
    });
    let obj = v.as_object().expect("reply is a JSON object");
    assert_eq!(obj.get("jsonrpc"), Some(&Value::from("2.0")), "{v}");
    assert!(obj.contains_key("id"), "reply without id: {v}");
    assert!(
        matches!(
            obj.get("id"),
            Some(Value::Null | Value::String(_) | Value::Number(_))
        ),
        "bad id in {v}"
    );
    match (obj.get("result"), obj.get("error")) {
        (Some(_), None) => {}
        (None, Some(Value::Object(e))) => {
            assert!(
                e.get("code").is_some_and(Value::is_i64),
                "error without code: {v}"
            );
            assert!(
                e.get("message").is_some_and(Value::is_string),
                "error without message: {v}"
            );
        }
        _ => panic!("reply needs exactly one of result and error: {v}"),
    }
}

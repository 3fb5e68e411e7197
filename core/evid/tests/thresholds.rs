//! Bottleneck warnings as events: a slow delivery raises E_CORE_THRESHOLD, a filling module
//! queue raises E_EVI_QUEUE_THRESHOLD (once above, once back below).

use evi_testkit::{Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn slow_deliveries_and_full_queues_raise_core_events() {
    let d = Daemon::start(
        r#"
evi_queue_size = 16
evi_queue_threshold = 50
exec_delivery_threshold = 2000
max_while_loops = 100000000
loadmodule "event_datagram.so"
event_route[E_SLOW, sync] {
    $var(i) = 0;
    while ($var(i) < 1000000) { $var(i) = $var(i) + 1; }
}
"#,
    );
    let rx = UdpReceiver::new();
    for e in ["E_CORE_THRESHOLD", "E_EVI_QUEUE_THRESHOLD"] {
        d.mi("event_subscribe", json!([e, rx.uri()]))
            .unwrap_or_else(|err| panic!("{e}: {err}"));
    }
    for _ in 0..14 {
        d.mi("raise_event", json!(["E_SLOW"]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Collect until both thresholds and both queue states were seen (or a quiet minute).
    let mut got: Vec<Value> = Vec::new();
    let done = |g: &[Value]| {
        let has =
            |m: &str, k: &str, v: &str| g.iter().any(|e| e["method"] == m && e["params"][k] == v);
        has("E_CORE_THRESHOLD", "source", "delivery")
            && has("E_CORE_THRESHOLD", "source", "event_route")
            && has("E_EVI_QUEUE_THRESHOLD", "state", "below")
    };
    while !done(&got) {
        let batch = rx.recv_n(1, Duration::from_secs(60));
        if batch.is_empty() {
            break;
        }
        got.extend(
            batch
                .iter()
                .filter_map(|b| serde_json::from_slice::<Value>(b).ok()),
        );
    }
    let slow = got
        .iter()
        .find(|e| e["method"] == "E_CORE_THRESHOLD" && e["params"]["source"] == "delivery")
        .unwrap_or_else(|| panic!("{got:?}\n{}", d.log()));
    assert_eq!(slow["params"]["extra"], "route:E_SLOW;sync for E_SLOW");
    assert!(
        slow["params"]["time"].as_i64().is_some_and(|t| t > 2000),
        "{slow}"
    );
    let route = got
        .iter()
        .find(|e| e["params"]["source"] == "event_route")
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(route["params"]["extra"], "event_route[E_SLOW]");
    let states: Vec<&Value> = got
        .iter()
        .filter(|e| e["method"] == "E_EVI_QUEUE_THRESHOLD")
        .map(|e| &e["params"]["state"])
        .collect();
    assert_eq!(states, ["above", "below"], "{got:?}\n{}", d.log());
    let above = got
        .iter()
        .find(|e| e["params"]["state"] == "above")
        .cloned()
        .unwrap_or_default();
    assert_eq!(above["params"]["module"], "event_route");
    // The destination that fills the queue is named, with its share of it.
    assert_eq!(above["params"]["socket"], "route:E_SLOW;sync", "{above}");
    assert!(
        above["params"]["socket_queue_len"]
            .as_i64()
            .is_some_and(|n| n >= 8),
        "{above}"
    );
    let below = got
        .iter()
        .find(|e| e["params"]["state"] == "below")
        .cloned()
        .unwrap_or_default();
    assert!(below["params"].get("socket").is_none(), "{below}");
    assert_eq!(above["params"]["capacity"], 16);
    assert_eq!(above["params"]["threshold"], 50);
}

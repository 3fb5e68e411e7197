//! Statistics over MI: counts a user can check against what the peers received.

use evi_testkit::{wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn deliveries_failures_and_raises_are_counted() {
    let d = Daemon::start("loadmodule \"event_datagram.so\"\nstartup_route { subscribe_event(\"E_X\", \"udp:127.0.0.1:9\", 1); }");
    let rx = UdpReceiver::new();
    let missing = d.dir.join("nobody.sock");
    d.mi("event_subscribe", json!(["E_X", rx.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    d.mi(
        "event_subscribe",
        json!(["E_X", format!("unix:{}", missing.display())]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    wait_for(Duration::from_secs(5), || {
        d.mi("subscribers_list", json!(["E_X", "udp:127.0.0.1:9"]))
            .is_err()
    });
    for i in 0..3 {
        d.mi("raise_event", json!(["E_X", [i]]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(rx.recv_n(3, Duration::from_secs(5)).len(), 3);
    let stats = |sel: Value| {
        d.mi("get_statistics", json!([sel]))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(
        wait_for(Duration::from_secs(5), || stats(json!([
            "event_datagram:failed"
        ]))["event_datagram:failed"]
            == 3),
        "{}",
        stats(json!(["all"]))
    );
    let all = stats(json!(["all"]));
    assert_eq!(all["event_datagram:delivered"], 3, "{all}");
    assert_eq!(all["event_datagram:dropped"], 0, "{all}");
    assert_eq!(all["evi_events:E_X"], 3, "{all}");
    assert_eq!(all["evi:subscribers"], 2, "{all}");
    // A group selects all of its statistics.
    let group = stats(json!(["event_datagram:"]));
    let names: Vec<&String> = group
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "event_datagram:delivered",
            "event_datagram:failed",
            "event_datagram:dropped",
            "event_datagram:queue_len",
            "event_datagram:held"
        ]
    );

    // The same counters for Prometheus.
    let metrics_url = d.mi_url.replace("/mi", "/metrics");
    let m = evid::mi_client::request(&metrics_url, "GET", b"", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (m.status, m.header("content-type")),
        (200, Some("text/plain; version=0.0.4"))
    );
    let text = String::from_utf8_lossy(&m.body);
    for line in [
        "# TYPE evid_module_delivered_total counter",
        "evid_module_delivered_total{module=\"event_datagram\"} 3",
        "evid_module_failed_total{module=\"event_datagram\"} 3",
        "evid_event_raised_total{event=\"E_X\"} 3",
        "evid_subscribers 2",
        // Every outcome, delivered or failed, is timed from its raise.
        "# TYPE evid_delivery_latency_seconds histogram",
        "evid_delivery_latency_seconds_bucket{module=\"event_datagram\",le=\"+Inf\"} 6",
        "evid_delivery_latency_seconds_count{module=\"event_datagram\"} 6",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    let latency = d
        .mi("delivery_latency", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    let dgram = latency["Modules"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == "event_datagram"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(dgram["count"], 6, "{latency}");
    let buckets = dgram["buckets"].as_array().cloned().unwrap_or_default();
    let counts: Vec<u64> = buckets.iter().filter_map(|b| b[1].as_u64()).collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]) && counts.last() == Some(&6),
        "buckets are cumulative up to +Inf: {latency}"
    );

    // Per subscriber: who failed and why.
    let subs = d
        .mi("subscriber_stats", json!(["E_X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let list = subs["Subscribers"].as_array().cloned().unwrap_or_default();
    let bad = list
        .iter()
        .find(|s| s["socket"].as_str().is_some_and(|x| x.starts_with("unix:")))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (bad["delivered"].clone(), bad["failed"].clone()),
        (json!(0), json!(3)),
        "{subs}"
    );
    assert!(
        bad["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&missing.display().to_string())),
        "{subs}"
    );

    assert_eq!(
        d.mi(
            "list_statistics",
            json!([["event_datagram:queue_len", "evi_events:E_X"]])
        )
        .ok(),
        Some(
            json!({"event_datagram:queue_len": "non-incremental", "evi_events:E_X": "incremental"})
        )
    );
    assert_eq!(
        d.mi("reset_statistics", json!([["event_datagram:"]])).ok(),
        Some(json!("OK"))
    );
    assert_eq!(
        stats(json!(["event_datagram:failed"]))["event_datagram:failed"],
        0
    );
    assert_eq!(
        d.mi("get_statistics", json!([["nope:nothing"]]))
            .err()
            .map(|e| e.to_string()),
        Some("404 Statistics Not Found".into())
    );
}

/// An async transport's outcomes arrive later through `delivery_status`; they are timed from the
/// raise too (the delivery ticket carries the raise time).
#[test]
fn async_outcomes_are_timed_from_their_raise() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let d = Daemon::start(&format!(
        "loadmodule \"event_stream.so\"\nstartup_route {{ subscribe_event(\"E_X\", \"tcp:127.0.0.1:{port}\"); }}"
    ));
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        // JSON-RPC objects back to back, no framing: count their "method" members.
        let objects = |b: &[u8]| String::from_utf8_lossy(b).matches("\"method\"").count();
        while objects(&all) < 4 {
            match std::io::Read::read(&mut conn, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    for i in 0..4 {
        d.mi("raise_event", json!(["E_X", [i]]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let got = reader.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("\"method\"").count(), 4, "{text}\n{}", d.log());
    let count = || {
        d.mi("delivery_latency", json!([]))
            .ok()
            .and_then(|l| {
                l["Modules"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["name"] == "event_stream"))
                    .and_then(|m| m["count"].as_u64())
            })
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(10), || count() == 4),
        "{} outcomes timed\n{}",
        count(),
        d.log()
    );
    let stats = d
        .mi("get_statistics", json!([["event_stream:delivered"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats["event_stream:delivered"], 4, "{stats}");
}

/// A subscriber behind a slow route: its own queue depth and drops are visible over MI, and
/// another subscriber of the same module shows only its own share of the shared queue.
#[test]
fn a_slow_subscriber_shows_its_queue_depth_and_drops() {
    let d = Daemon::start(
        r#"
evi_queue_size = 16
evi_raise_wait = 0
max_while_loops = 100000000
event_route[E_SLOW, sync] {
    $var(i) = 0;
    while ($var(i) < 300000) { $var(i) = $var(i) + 1; }
}
event_route[E_FAST, sync] { $var(x) = 1; }
"#,
    );
    let sub = |event: &str| {
        let s = d
            .mi("subscriber_stats", json!([event]))
            .unwrap_or_else(|e| panic!("{e}"));
        s["Subscribers"][0].clone()
    };
    let raised = 40;
    for i in 0..raised {
        d.mi("raise_event", json!(["E_SLOW"]))
            .unwrap_or_else(|e| panic!("{e}"));
        if i % 10 == 0 {
            d.mi("raise_event", json!(["E_FAST"]))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let (slow, fast) = (sub("E_SLOW"), sub("E_FAST"));
    let depth = slow["queue_len"].as_u64().unwrap_or_default();
    assert!(
        (1..=16).contains(&depth),
        "the slow route's events wait in the queue: {slow}"
    );
    assert!(
        fast["queue_len"].as_u64().unwrap_or(99) <= 4,
        "E_FAST has at most its own 4 events queued, not the module's {depth}+: {fast}"
    );
    let dropped = slow["dropped"].as_u64().unwrap_or_default();
    assert!(
        dropped > 0,
        "a 16-slot queue cannot hold 40 slow events: {slow}"
    );

    // Drained: every raise was either delivered or counted as dropped, and nothing waits.
    let settled = |s: &Value| {
        s["delivered"].as_u64().unwrap_or_default() + s["dropped"].as_u64().unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(60), || settled(&sub("E_SLOW"))
            == raised),
        "not every raise was accounted for: {}",
        sub("E_SLOW")
    );
    for s in [sub("E_SLOW"), sub("E_FAST")] {
        assert_eq!(
            (&s["queue_len"], &s["module_queue_len"]),
            (&json!(0), &json!(0)),
            "{s}"
        );
    }
    assert_eq!(settled(&sub("E_FAST")), 4);
}

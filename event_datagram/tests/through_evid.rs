//! event_datagram loaded by the real evid: subscribed over MI and from the script, events
//! raised over MI, datagrams received on real UDP and UNIX sockets.

use evi_testkit::{golden, wait_for, Daemon, TempDir, UdpReceiver, UnixReceiver};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn daemon() -> Daemon {
    Daemon::start("loadmodule \"event_datagram.so\"\nstartup_route { subscribe_event(\"E_GOLDEN\", \"udp:127.0.0.1:9\", 1); }")
}

#[test]
fn mi_raises_arrive_byte_identical_to_opensips() {
    let mut d = daemon();
    let rx = UdpReceiver::new();
    d.mi("event_subscribe", json!(["E_GOLDEN", rx.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let raises = [
        json!([
            "E_GOLDEN",
            r#"{"id":42,"user":"alice","msg":"hello world"}"#
        ]),
        // OpenSIPS's sample 1 shows "a b;c": its flatstore had rewritten the shared value.
        // evid never mutates a value for other subscribers.
        json!([
            "E_GOLDEN",
            r#"{"id":-7,"user":"bob \"the\" builder","msg":"a b;c"}"#
        ]),
        json!(["E_GOLDEN"]),
        json!(["E_GOLDEN", []]),
        json!({"event": "E_GOLDEN", "params": ["x", "1"]}),
    ];
    for r in &raises {
        assert_eq!(
            d.mi("raise_event", r.clone()).ok(),
            Some(json!("OK")),
            "{r}"
        );
    }
    let got = rx.recv_n(5, T);
    let want: Vec<Vec<u8>> = (0..5)
        .map(|i| golden(&format!("event_datagram_{i}.json")))
        .collect();
    assert_eq!(got.len(), 5, "log:\n{}", d.log());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(w),
            "datagram {i}"
        );
    }
    assert!(d.stop().0.success());
}

#[test]
fn unix_and_ipv6_destinations_receive_events() {
    let d = daemon();
    let dir = TempDir::new("dgram");
    let ux = UnixReceiver::bind(dir.join("ev.sock"));
    d.mi("event_subscribe", json!(["E_GOLDEN", ux.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let v6 = std::net::UdpSocket::bind("[::1]:0")
        .ok()
        .map(|_| UdpReceiver::bind("[::1]:0"));
    if let Some(v6) = &v6 {
        d.mi("event_subscribe", json!(["E_GOLDEN", v6.uri()]))
            .unwrap_or_else(|e| panic!("{}: {e}", v6.uri()));
    }
    d.mi("raise_event", json!(["E_GOLDEN", ["via", 7]]))
        .unwrap_or_else(|e| panic!("{e}"));
    let want = br#"{"jsonrpc":"2.0","method":"E_GOLDEN","params":["via",7]}"#.to_vec();
    assert_eq!(ux.recv_n(1, T), vec![want.clone()]);
    if let Some(v6) = &v6 {
        assert_eq!(v6.recv_n(1, T), vec![want]);
    }
}

#[test]
fn refresh_matches_exactly_and_unsubscribe_takes_effect_at_once() {
    let d = daemon();
    let a = UdpReceiver::new();
    let port = a.port;
    // 127.0.0.1 must not refresh 127.0.0.10 (OpenSIPS's prefix match did).
    for sock in [
        format!("udp:127.0.0.10:{port}"),
        format!("udp:127.0.0.1:{port}"),
        format!("udp:127.0.0.1:{port}"),
    ] {
        d.mi("event_subscribe", json!(["E_GOLDEN", sock, 60]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let list = d
        .mi("subscribers_list", json!(["E_GOLDEN"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let socks: Vec<_> = list["Event"]["Subscribers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["socket"].clone())
        .collect();
    assert_eq!(
        socks,
        vec![
            json!(format!("udp:127.0.0.1:{port}")),
            json!(format!("udp:127.0.0.10:{port}")),
            json!("udp:127.0.0.1:9")
        ]
    );
    d.mi("raise_event", json!(["E_GOLDEN", ["one"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.recv_n(2, Duration::from_millis(500)).len(),
        1,
        "exactly one subscription for the refreshed socket"
    );
    d.mi(
        "event_subscribe",
        json!(["E_GOLDEN", format!("udp:127.0.0.1:{port}"), 0]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    d.mi("raise_event", json!(["E_GOLDEN", ["two"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        a.recv_n(1, Duration::from_millis(500)).is_empty(),
        "unsubscribed socket still got an event"
    );
}

#[test]
fn subscriptions_expire_by_timer() {
    let d = daemon();
    let a = UdpReceiver::new();
    d.mi("event_subscribe", json!(["E_GOLDEN", a.uri(), 1]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || {
            let l = d.mi("subscribers_list", json!(["E_GOLDEN", a.uri()]));
            matches!(l, Err(e) if e.to_string() == "404 Subscriber does not exist")
        }),
        "subscription did not expire"
    );
    // Gone from the full list too, not only hidden.
    let all = d
        .mi("subscribers_list", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!all.to_string().contains(&a.uri()), "{all}");
}

#[test]
fn oversized_events_fail_with_a_clear_log_and_others_still_flow() {
    let d = daemon();
    let a = UdpReceiver::new();
    d.mi("event_subscribe", json!(["E_GOLDEN", a.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let big = "x".repeat(65_500);
    d.mi("raise_event", json!(["E_GOLDEN", [big]]))
        .unwrap_or_else(|e| panic!("{e}"));
    d.mi("raise_event", json!(["E_GOLDEN", ["small"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = a.recv_n(1, T);
    assert_eq!(
        got,
        vec![br#"{"jsonrpc":"2.0","method":"E_GOLDEN","params":["small"]}"#.to_vec()]
    );
    assert!(
        wait_for(T, || d
            .log()
            .contains(&format!("delivery to {} failed", a.uri()))
            && d.log().contains("exceeds the")),
        "{}",
        d.log()
    );
}

#[test]
fn batched_sends_are_counted_exactly_per_subscriber() {
    let dir = TempDir::new("dgram-count");
    // Never read until the end: its queue (10 datagrams by default) overflows mid-batch.
    let stuck = UnixReceiver::bind(dir.join("stuck.sock"));
    let live = UdpReceiver::new();
    let n = 100;
    let d = Daemon::start(&format!(
        r#"loadmodule "event_datagram.so"
max_while_loops = 1000
startup_route {{
    subscribe_event("E_CNT", "{}");
    subscribe_event("E_CNT", "{}");
    $avp(bn) = "seq"; $avp(bv) = 1;
    $var(i) = 0;
    while ($var(i) < {n}) {{
        raise_event("E_CNT", $avp(bn), $avp(bv));
        $var(i) = $var(i) + 1;
    }}
}}"#,
        stuck.uri(),
        live.uri()
    ));
    let stats = |uri: &str| {
        let all = d
            .mi("subscriber_stats", json!(["E_CNT"]))
            .unwrap_or_else(|e| panic!("{e}"));
        all["Subscribers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["socket"] == json!(uri))
            .cloned()
            .unwrap_or_else(|| panic!("{uri} not in {all}"))
    };
    let count = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or(0);
    let settled = |uri: &str| {
        let s = stats(uri);
        count(&s, "delivered") + count(&s, "failed") + count(&s, "dropped") == n
    };
    assert!(
        wait_for(T, || settled(&stuck.uri()) && settled(&live.uri())),
        "{}\n{}",
        stats(&stuck.uri()),
        d.log()
    );
    let udp = stats(&live.uri());
    assert_eq!(
        (count(&udp, "delivered"), count(&udp, "failed")),
        (n, 0),
        "{udp}"
    );
    assert_eq!(
        live.recv_n(n as usize + 1, Duration::from_millis(300))
            .len(),
        n as usize
    );
    let unix = stats(&stuck.uri());
    let got = stuck.recv_n(n as usize, Duration::from_millis(300)).len() as u64;
    assert_eq!(count(&unix, "dropped"), 0, "{unix}");
    assert_eq!(count(&unix, "delivered"), got, "{unix}");
    assert!(count(&unix, "failed") > 0, "{unix}");
    assert!(
        unix["last_error"]
            .as_str()
            .is_some_and(|e| e.ends_with("receiver's socket buffer full, event dropped")),
        "{unix}"
    );
    assert!(
        d.log()
            .contains(&format!("delivery to {} failed", stuck.uri())),
        "{}",
        d.log()
    );
}

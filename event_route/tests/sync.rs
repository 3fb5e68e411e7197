//! The 2.x `event_route[E_X, sync]` form: the host subscribes `route:E_X;sync`, and the route
//! runs inline on the event_route module thread, one event at a time in raise order.

use evi_testkit::{wait_for, Daemon};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

const CONFIG: &str = r#"
loadmodule "event_flatstore.so"
modparam("event_route", "workers", 4)
startup_route {
    subscribe_event("E_OUT", "flatstore:{dir}/out.log");
    $var(i) = 0;
    while ($var(i) < 300) {
        $avp(v) = $var(i);
        raise_event("E_SYNC", $avp(v), $avp(v));
        $avp(v) := $null;
        $var(i) = $var(i) + 1;
    }
}
event_route[E_SYNC, sync] {
    $avp(o) = $param(1);
    raise_event("E_OUT", , $avp(o));
}
event_route[E_ASYNC, async] {
    xlog("L_INFO", "async $param(x)\n");
}
event_route[E_FAIL, sync] {
    $var(x) = 1 / $param(zero);
}
"#;

#[test]
fn sync_routes_are_subscribed_as_sync_and_run_in_raise_order() {
    let d = Daemon::start(CONFIG);
    let out = d.dir.join("out.log");
    let want: String = (0..300).map(|i| format!("E_OUT,{i}\n")).collect();
    // Four workers would interleave; the sync route runs them one by one, in order.
    assert!(
        wait_for(T, || read(&out).len() >= want.len()),
        "{:?}\n{}",
        read(&out),
        d.log()
    );
    assert_eq!(read(&out), want, "{}", d.log());

    let subs = |e: &str| {
        d.mi("subscribers_list", json!([e]))
            .unwrap_or_else(|err| panic!("{err}"))["Event"]["Subscribers"]
            .clone()
    };
    assert_eq!(
        subs("E_SYNC"),
        json!([{"socket": "route:E_SYNC;sync", "expire": "never"}])
    );
    // `async` is the 3.x behaviour and prints as the plain socket.
    assert_eq!(
        subs("E_ASYNC"),
        json!([{"socket": "route:E_ASYNC", "expire": "never"}])
    );
}

#[test]
fn a_failing_sync_route_is_logged_and_the_module_keeps_serving() {
    let d = Daemon::start(CONFIG);
    d.mi("raise_event", json!(["E_FAIL", r#"{"zero":0}"#]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || d
            .log()
            .contains("event_route[E_FAIL] failed for E_FAIL: ")
            && d.log().contains("evid.cfg:")),
        "{}",
        d.log()
    );
    // The module thread is still there: a sync raise after the failure is delivered.
    let out = d.dir.join("out.log");
    d.mi("raise_event", json!(["E_SYNC", r#"{"v":"after"}"#]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || read(&out).ends_with("E_OUT,after\n")),
        "{:?}\n{}",
        read(&out),
        d.log()
    );
}

#[test]
fn mi_chooses_the_mode_of_its_route_sockets() {
    let d = Daemon::start(CONFIG);
    for (socket, ok) in [
        ("route:E_ASYNC;sync", true),
        ("route:E_SYNC;async", true),
        ("route:E_SYNC;later", false),
    ] {
        let r = d.mi("event_subscribe", json!(["E_OUT", socket]));
        assert_eq!(r.is_ok(), ok, "{socket}: {r:?}");
    }
    let err = d
        .mi("event_subscribe", json!(["E_OUT", "route:E_SYNC;later"]))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("400 Bad parameter value: route: unknown mode \"later\" (expected route:NAME, route:NAME;sync or route:NAME;async)")
    );
    let subs = d
        .mi("subscribers_list", json!(["E_OUT"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let sockets: Vec<String> = subs["Event"]["Subscribers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["socket"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        sockets.contains(&"route:E_ASYNC;sync".to_string()),
        "{sockets:?}"
    );
    assert!(sockets.contains(&"route:E_SYNC".to_string()), "{sockets:?}");
}

//! event_route blocks run by the real evid: params in `$param` and `fetch_event_params`, raises
//! from a route, errors that keep the daemon running, the nested-raise limit.

use evi_testkit::{wait_for, Daemon};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

const CONFIG: &str = r#"
loadmodule "event_flatstore.so"
startup_route {
    subscribe_event("E_OUT", "flatstore:{dir}/out.log");
}
event_route[E_PIKE_BLOCKED] {
    $avp(n) = "ip";
    $avp(v) = $param(ip);
    $avp(n) = "n";
    $avp(v) = $param(n) + 1;
    raise_event("E_OUT", $avp(n), $avp(v));
    xlog("L_INFO", "IP $param(ip) has been blocked\n");
}
event_route[E_OLD, async] {
    fetch_event_params("ip=$avp(pike-ip);$var(second)");
    $avp(v) = $avp(pike-ip) + "/" + $var(second);
    raise_event("E_OUT", , $avp(v));
}
event_route[E_BAD] {
    $var(x) = 1 / $param(zero);
}
event_route[E_LOOP] {
    raise_event("E_LOOP");
}
"#;

#[test]
fn routes_see_params_and_raise_further() {
    let d = Daemon::start(CONFIG);
    let out = d.dir.join("out.log");
    // Declaring event_route[E_X] subscribed route:E_X, permanently.
    let subs = d
        .mi("subscribers_list", json!(["E_PIKE_BLOCKED"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        subs["Event"]["Subscribers"],
        json!([{"socket": "route:E_PIKE_BLOCKED", "expire": "never"}])
    );

    d.mi(
        "raise_event",
        json!(["E_PIKE_BLOCKED", r#"{"ip":"192.0.2.10","n":41}"#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || read(&out) == "E_OUT,42,192.0.2.10\n"),
        "{:?}\n{}",
        read(&out),
        d.log()
    );
    assert!(
        wait_for(T, || d
            .log()
            .contains("[script] IP 192.0.2.10 has been blocked")),
        "{}",
        d.log()
    );

    // The 2.x form: event_route[E, async] and fetch_event_params (named and positional).
    d.mi(
        "raise_event",
        json!(["E_OLD", r#"{"ip":"198.51.100.7","other":"x"}"#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || read(&out).ends_with("E_OUT,198.51.100.7/x\n")),
        "{:?}\n{}",
        read(&out),
        d.log()
    );
}

#[test]
fn a_failing_route_is_logged_with_its_location_and_the_daemon_keeps_serving() {
    let d = Daemon::start(CONFIG);
    d.mi("raise_event", json!(["E_BAD", r#"{"zero":0}"#]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || d
            .log()
            .contains("event_route[E_BAD] failed for E_BAD: ")
            && d.log().contains("evid.cfg:")),
        "{}",
        d.log()
    );
    // A raise loop stops at depth 100 with an error, not a hang or a storm.
    d.mi("raise_event", json!(["E_LOOP"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || d
            .log()
            .contains("E_LOOP not raised: raises nested 100 deep")),
        "{}",
        d.log()
    );
    assert_eq!(d.mi("version", json!([])).map(|_| ()).ok(), Some(()));
}

#[test]
fn route_sockets_must_name_a_block() {
    let d = Daemon::start(CONFIG);
    let err = d
        .mi("event_subscribe", json!(["E_OUT", "route:E_NOWHERE"]))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("400 Bad parameter value: route: the script has no event_route[E_NOWHERE] block")
    );
    // Any event can be routed to an existing block over MI.
    assert_eq!(
        d.mi("event_subscribe", json!(["E_OUT", "route:E_BAD"]))
            .ok(),
        Some(json!("OK"))
    );
}

#[test]
fn route_names_with_a_semicolon() {
    // A quoted block name may hold a `;`: the daemon subscribes `route:a;b;async` (the mode is
    // always written), which prints and parses back (found by fuzz/, target uris).
    let d = Daemon::start(
        r#"
loadmodule "event_flatstore.so"
startup_route {
    subscribe_event("E_OUT", "flatstore:{dir}/out.log");
}
event_route["E;X"] {
    raise_event("E_OUT");
}
"#,
    );
    let subs = d
        .mi("subscribers_list", json!(["E;X"]))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    assert_eq!(
        subs["Event"]["Subscribers"],
        json!([{"socket": "route:E;X;async", "expire": "never"}])
    );
    d.mi("raise_event", json!(["E;X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = d.dir.join("out.log");
    assert!(
        wait_for(T, || read(&out) == "E_OUT\n"),
        "{:?}\n{}",
        read(&out),
        d.log()
    );
}

//! `evictl stats` and `evictl reload` against a running evid.

use evi_testkit::{evictl_at, wait_for, Daemon};
use serde_json::json;
use std::time::Duration;

#[test]
fn stats_and_reload() {
    let d = Daemon::start("loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
    for i in 0..2 {
        d.mi("raise_event", json!(["E_X", [i]]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(wait_for(Duration::from_secs(5), || {
        let (_, out, _) = evictl_at(&d.mi_url, &["stats", "event_flatstore:"]);
        out.lines().any(|l| l == "event_flatstore:delivered 2")
    }));
    let (code, out, err) = evictl_at(&d.mi_url, &["stats", "evi_events:E_X"]);
    assert_eq!((code, out.trim()), (0, "evi_events:E_X 2"), "{err}");
    let (code, _, err) = evictl_at(&d.mi_url, &["reload", "event_flatstore"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "500 Reload failed: modules are reloaded only in development mode (evid --dev)"
        ),
        "{err}"
    );
}

/// In development mode `evictl reload` swaps the module in place: the subscription survives
/// and the next event lands in the same file.
#[test]
fn reload_in_development_mode() {
    let d = Daemon::start_with_args(
        "loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }",
        &["--dev"],
    );
    let file = d.dir.join("x.log");
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    d.mi("raise_event", json!(["E_X", ["before"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = evictl_at(&d.mi_url, &["reload", "event_flatstore"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "event_flatstore reloaded");
    // The daemon's log: the instance was replaced, not merely acknowledged.
    assert!(
        d.log().contains("module event_flatstore reloaded: "),
        "{}",
        d.log()
    );
    d.mi("raise_event", json!(["E_X", ["after"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || read()
            == "E_X,before\nE_X,after\n"),
        "{:?}\n{}",
        read(),
        d.log()
    );
}

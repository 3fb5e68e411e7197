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

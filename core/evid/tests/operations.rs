//! Running evid as a service: systemd readiness, log level at run time.

use evi_testkit::{wait_for, Daemon, TempDir};
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn systemd_is_told_ready_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
    let _ = sock.set_read_timeout(Some(Duration::from_secs(20)));
    // Inherited by the daemon this test starts (and harmless for any other).
    std::env::set_var("NOTIFY_SOCKET", &path);
    let mut d = Daemon::start("");
    let mut buf = [0u8; 256];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY from evid: {e}\n{}", d.log()));
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("READY=1\nMAINPID={}", d.pid())
    );
    let (status, _) = d.stop();
    assert!(status.success());
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no STOPPING from evid: {e}"));
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn log_level_changes_at_run_time() {
    let d =
        Daemon::start("event_route[E_X, sync] { xlog(\"L_DBG\", \"debug line $param(n)\\n\"); }");
    let raise = |n: i64| {
        d.mi("raise_event", json!(["E_X", {"n": n}]))
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let logged = |n: i64| d.log().contains(&format!("debug line {n}"));
    // The route runs on its module's thread: wait until it handled `k` events in all.
    let handled = |k: u64| {
        assert!(wait_for(Duration::from_secs(10), || {
            d.mi("subscriber_stats", json!(["E_X"]))
                .is_ok_and(|v| v["Subscribers"][0]["delivered"] == k)
        }));
    };
    assert_eq!(
        d.mi("log_level", json!([])).ok(),
        Some(json!({"log_level": 3}))
    );
    raise(0);
    handled(1);
    assert_eq!(
        d.mi("log_level", json!([4])).ok(),
        Some(json!({"log_level": 4}))
    );
    assert!(
        d.log().contains("log level set to 4 over MI"),
        "{}",
        d.log()
    );
    // Debug lines appear once the level allows them, and stop when it is lowered again.
    raise(1);
    handled(2);
    assert!(logged(1), "{}", d.log());
    assert_eq!(
        d.mi("log_level", json!([3])).ok(),
        Some(json!({"log_level": 3}))
    );
    raise(3);
    handled(3);
    d.mi("log_level", json!([4]))
        .unwrap_or_else(|e| panic!("{e}"));
    raise(4);
    handled(4);
    assert!(logged(4), "{}", d.log());
    assert!(
        !logged(0) && !logged(3),
        "a debug line at level 3:\n{}",
        d.log()
    );
    assert_eq!(
        d.mi("log_level", json!([9])).err().map(|e| e.to_string()),
        Some("-32602 Invalid params: level must be from -3 (alert) to 4 (debug)".into())
    );
}

#[test]
fn logs_can_be_json_lines() {
    let mut d = Daemon::start("log_format = \"json\"");
    let (status, log) = d.stop();
    assert!(status.success());
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !lines.is_empty() && lines.len() == log.lines().count(),
        "not all JSON:\n{log}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["module"] == "core"
            && l["msg"]
                .as_str()
                .is_some_and(|m| m.contains("started with"))),
        "{log}"
    );
}

//! The script as the daemon runs it: startup_route, timer_route, and OpenSIPS's golden config.

use evi_testkit::{golden, wait_for, Daemon};
use std::time::Duration;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn timer_routes_run_periodically() {
    let d = Daemon::start(
        r#"
loadmodule "event_flatstore.so"
startup_route { subscribe_event("E_TICK", "flatstore:{dir}/tick.log"); }
timer_route[tick, 1] {
    $var(n) = $var(n) + 1;
    raise_event("E_TICK");
}
"#,
    );
    let f = d.dir.join("tick.log");
    assert!(
        wait_for(Duration::from_secs(10), || read(&f).lines().count() >= 2),
        "{:?}\n{}",
        read(&f),
        d.log()
    );
    assert!(read(&f).lines().all(|l| l == "E_TICK"));
}

/// The startup_route of the config that produced ../shared/conformance's samples, run by evid:
/// the same AVP rules give the same flatstore lines (minus the transports evid lacks).
#[test]
fn the_golden_startup_route_gives_the_golden_lines() {
    let cfg = String::from_utf8_lossy(&golden("opensips.cfg")).into_owned();
    let start = cfg
        .find("startup_route {")
        .unwrap_or_else(|| panic!("no startup_route"));
    let end = cfg[start..]
        .find("\n}\n")
        .map(|e| start + e + 3)
        .unwrap_or_else(|| panic!("unterminated"));
    let route = cfg[start..end]
        .replace("/tmp/golden_flat_A.log", "{dir}/golden_flat_A.log")
        .replace("/tmp/mi_bench.log", "{dir}/mi_bench.log")
        .lines()
        .filter(|l| !l.contains("xmlrpc:") && !l.contains("rabbitmq:"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut d = Daemon::start(&format!(
        "loadmodule \"event_datagram.so\"\nloadmodule \"event_flatstore.so\"\n{route}\n"
    ));
    let f = d.dir.join("golden_flat_A.log");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    // Sample 4 came from an MI raise, not from this route.
    let want = String::from_utf8_lossy(&golden("event_flatstore_default.log"))
        .replace("E_GOLDEN,x,1\n", "");
    assert_eq!(read(&f), want, "{log}");
    assert!(log.contains("[script] GOLDEN raised"), "{log}");
}

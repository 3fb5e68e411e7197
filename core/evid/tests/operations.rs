//! Running evid as a service: systemd readiness, log level at run time.

use evi_testkit::{evid_bin, wait_for, Daemon, TempDir};
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
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

#[test]
fn logs_are_human_lines_by_default() {
    let mut d = Daemon::start("");
    let (status, log) = d.stop();
    assert!(status.success());
    // `2026-11-27T01:02:03.456Z INFO  [core] evid ... started with ...`
    let started = log
        .lines()
        .find(|l| l.contains("started with"))
        .unwrap_or_else(|| panic!("no start line:\n{log}"));
    let (time, rest) = started.split_at(24);
    assert!(
        time.starts_with("20") && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{started}"
    );
    assert!(rest.starts_with(" INFO  [core] "), "{started}");
}

/// `scripts/evid.service` as systemd would run it, with this build's binary and a test config in
/// place of the installed paths: systemd reads it without a complaint (where `systemd-analyze`
/// is installed), `ExecStartPre` checks the config, `ExecStart` tells readiness, `ExecReload`
/// reopens the files, and `KillSignal` stops it cleanly.
#[test]
fn the_systemd_unit_runs_evid_as_written() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/evid.service"
    ))
    .unwrap_or_else(|e| panic!("scripts/evid.service: {e}"));
    let dir = TempDir::new("unit");
    let (cfg, events, moved) = (
        dir.join("evid.cfg"),
        dir.join("events.log"),
        dir.join("events.log.1"),
    );
    let port = evi_testkit::free_port();
    let text = format!(
        "loadmodule \"mi_http.so\"\nmodparam(\"mi_http\", \"port\", {port})\n\
         loadmodule \"event_flatstore.so\"\n\
         startup_route {{ subscribe_event(\"E_UNIT\", \"flatstore:{}\"); }}\n",
        events.display()
    );
    std::fs::write(&cfg, text).unwrap_or_else(|e| panic!("{e}"));
    let unit = unit
        .replace(
            "/usr/local/lib/evid/evid",
            &evid_bin().display().to_string(),
        )
        .replace("/etc/evid/evid.cfg", &cfg.display().to_string());
    let unit_file = dir.join("evid.service");
    std::fs::write(&unit_file, &unit).unwrap_or_else(|e| panic!("{e}"));
    let key = |k: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {k}= in the unit"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(key("Type"), ["notify"]);
    assert_eq!(key("KillSignal"), ["SIGTERM"]);

    match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_file)
        .output()
    {
        Ok(out) => {
            // Only what it says of this unit: it may also warn about the host's own units.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ours: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("evid.service"))
                .collect();
            assert!(
                out.status.success() && ours.is_empty(),
                "systemd-analyze verify:\n{stderr}"
            );
        }
        Err(e) => eprintln!("systemd-analyze not run ({e}): the unit's syntax is not checked"),
    }

    let run = |argv: &[&str]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    };
    let pre = run(&key("ExecStartPre"));
    assert!(pre.status.success(), "ExecStartPre: {pre:?}");

    let notify = UnixDatagram::bind(dir.join("notify.sock")).unwrap_or_else(|e| panic!("{e}"));
    let _ = notify.set_read_timeout(Some(Duration::from_secs(20)));
    let start = key("ExecStart");
    let mut evid = KillOnDrop(
        Command::new(start[0])
            .args(&start[1..])
            .env("NOTIFY_SOCKET", dir.join("notify.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ExecStart: {e}")),
    );
    let pid = evid.0.id().to_string();
    let mut buf = [0u8; 256];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY from ExecStart: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("READY=1\nMAINPID={pid}")
    );

    let mi = format!("http://127.0.0.1:{port}/mi");
    let raise = |n: i64| {
        evid::mi_client::call(
            &mi,
            "raise_event",
            json!(["E_UNIT", { "n": n }]),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    let holds = |path: &std::path::Path, line: &str| {
        wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(path).is_ok_and(|t| t == format!("E_UNIT,{line}\n"))
        })
    };
    raise(1);
    assert!(holds(&events, "1"));
    // logrotate renames the file, then runs ExecReload.
    std::fs::rename(&events, &moved).unwrap_or_else(|e| panic!("{e}"));
    let reload: Vec<String> = key("ExecReload")
        .iter()
        .map(|a| a.replace("$MAINPID", &pid))
        .collect();
    let reload: Vec<&str> = reload.iter().map(String::as_str).collect();
    assert!(run(&reload).status.success(), "ExecReload {reload:?}");
    // The signal is handled after `kill` returns: the reopen creates the file again.
    assert!(wait_for(Duration::from_secs(10), || events.exists()));
    raise(2);
    assert!(holds(&events, "2"), "no new file after ExecReload");
    assert!(holds(&moved, "1"));

    assert!(run(&["/bin/kill", "-TERM", &pid]).status.success());
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no STOPPING: {e}"));
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = evid.0.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status:?}");
}

/// A daemon started by hand, killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

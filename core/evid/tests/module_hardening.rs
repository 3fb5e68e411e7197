//! ABI hardening through the real daemon: a module built for an older ABI minor loads, and a
//! module that panics in `raise`, `parse` or an MI command fails only that call, is disabled
//! until a `module_reload`, and leaves the daemon and the other modules working.

use evi_testkit::{fixture_path, wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::time::Duration;

fn load(fixture: &str) -> String {
    format!("loadmodule \"{}\"\n", fixture_path(fixture).display())
}

/// A module built against ABI 1.0 (shorter transport entries, 1.0's layout hash) loads into
/// this evid of a later minor, serves subscriptions on both of its transports and gets events.
#[test]
fn a_module_built_for_an_older_minor_loads_and_works() {
    let d = Daemon::start(&format!(
        "{}startup_route {{\n  subscribe_event(\"E_X\", \"oldminor:a\");\n  subscribe_event(\"E_X\", \"oldminor2:b\");\n}}",
        load("fixture_old_minor")
    ));
    let listed = d
        .mi("subscribers_list", json!(["E_X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        subscriber(&listed["Event"], "oldminor:a").is_object(),
        "{listed}"
    );
    assert!(
        subscriber(&listed["Event"], "oldminor2:b").is_object(),
        "{listed}"
    );
    d.mi("raise_event", json!(["E_X", [1]]))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    let stats = || {
        d.mi("get_statistics", json!([["fixture_old_minor:delivered"]]))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(
        wait_for(Duration::from_secs(10), || stats()
            ["fixture_old_minor:delivered"]
            == 2),
        "{}\n{}",
        stats(),
        d.log()
    );
    let described = std::process::Command::new(evi_testkit::evid_bin())
        .arg("--describe-module")
        .arg(fixture_path("fixture_old_minor"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(text.contains("1.0"), "{text}");
    assert!(text.contains("oldminor2"), "{text}");
}

fn subscriber<'a>(list: &'a Value, socket: &str) -> &'a Value {
    list["Subscribers"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["socket"] == socket))
        .unwrap_or(&Value::Null)
}

/// The panicking fixture next to event_datagram, under `--dev`.
struct Rig {
    d: Daemon,
    rx: UdpReceiver,
    raised: usize,
}

impl Rig {
    fn start() -> Rig {
        let rx = UdpReceiver::new();
        let d = Daemon::start_with_args(
            &format!(
                "loadmodule \"event_datagram.so\"\n{}startup_route {{\n  subscribe_event(\"E_X\", \"{}\");\n  subscribe_event(\"E_X\", \"panic:a\");\n}}",
                load("fixture_panic_raise"),
                rx.uri()
            ),
            &["--dev"],
        );
        Rig { d, rx, raised: 0 }
    }

    fn stats(&self) -> Value {
        self.d
            .mi("subscriber_stats", json!(["E_X"]))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.d.log()))
    }

    /// Raise E_X (with a `boom` param when `boom`); the UDP subscriber must get it either way.
    fn raise(&mut self, boom: bool) {
        let params = if boom {
            json!({"boom": 1})
        } else {
            json!({"n": self.raised})
        };
        self.d
            .mi("raise_event", json!(["E_X", params]))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.d.log()));
        self.raised += 1;
        let got = self.rx.recv_n(1, Duration::from_secs(10));
        assert_eq!(
            got.len(),
            1,
            "event_datagram kept delivering\n{}",
            self.d.log()
        );
    }

    /// Wait until `panic:a` has `failed` failures and its last error contains `why`.
    fn expect_failed(&self, failed: u64, why: &str) {
        let ok = wait_for(Duration::from_secs(10), || {
            let s = self.stats();
            let sub = subscriber(&s, "panic:a");
            sub["failed"] == failed && sub["last_error"].as_str().is_some_and(|e| e.contains(why))
        });
        assert!(ok, "{}\n{}", self.stats(), self.d.log());
    }

    fn mi_err(&self, cmd: &str) -> String {
        match self.d.mi(cmd, json!([])) {
            Ok(v) => panic!("{cmd} answered {v}\n{}", self.d.log()),
            Err(e) => e.to_string(),
        }
    }

    fn healthy(&self) -> bool {
        self.d.mi("fixture_ok", json!([])).ok() == Some(json!("OK"))
    }

    fn reload(&self) {
        assert_eq!(
            self.d
                .mi("module_reload", json!(["fixture_panic_raise"]))
                .map_err(|e| e.to_string()),
            Ok(json!("OK")),
            "{}",
            self.d.log()
        );
        assert!(
            self.healthy(),
            "reloaded instance answers\n{}",
            self.d.log()
        );
    }
}

#[test]
fn a_panic_in_raise_disables_the_module_until_reload() {
    let mut r = Rig::start();
    assert!(r.healthy());
    r.raise(true);
    r.expect_failed(1, "module panicked: fixture raise exploded");
    // Disabled: later raises fail closed, so do its MI commands.
    r.raise(false);
    r.expect_failed(2, "module is disabled after a panic");
    let err = r.mi_err("fixture_ok");
    assert!(
        err.starts_with("500 ") && err.contains("disabled after a panic"),
        "{err}"
    );
    // The daemon itself is fine.
    assert!(r.d.mi("version", json!([])).is_ok());

    // A reload brings it back, with its subscription.
    r.reload();
    r.raise(false);
    assert!(
        wait_for(Duration::from_secs(10), || subscriber(
            &r.stats(),
            "panic:a"
        )["delivered"]
            == 1),
        "{}\n{}",
        r.stats(),
        r.d.log()
    );
    let (status, log) = r.d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_panic_in_parse_fails_the_subscribe_and_disables_the_module() {
    let mut r = Rig::start();
    let err =
        r.d.mi("event_subscribe", json!(["E_X", "panic:boom"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(
        err.starts_with("400 ") && err.contains("fixture parse exploded"),
        "{err}\n{}",
        r.d.log()
    );
    assert!(!r.healthy(), "disabled after the panic");
    // Other transports still subscribe and deliver.
    let rx2 = UdpReceiver::new();
    r.d.mi("event_subscribe", json!(["E_X", rx2.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    r.raise(false);
    assert_eq!(rx2.recv_n(1, Duration::from_secs(10)).len(), 1);
    r.reload();
    r.d.mi("event_subscribe", json!(["E_X", "panic:b"]))
        .unwrap_or_else(|e| panic!("{e}\n{}", r.d.log()));
}

#[test]
fn a_panic_in_an_mi_command_answers_an_error_and_disables_the_module() {
    let mut r = Rig::start();
    let err = r.mi_err("fixture_panic");
    assert!(
        err.starts_with("500 ") && err.contains("fixture MI command exploded"),
        "{err}"
    );
    assert!(!r.healthy());
    r.raise(false);
    r.expect_failed(1, "module is disabled after a panic");
    assert!(r.d.mi("version", json!([])).is_ok());
    r.reload();
    r.raise(false);
    assert!(
        wait_for(Duration::from_secs(10), || subscriber(
            &r.stats(),
            "panic:a"
        )["delivered"]
            == 1),
        "{}",
        r.stats()
    );
}

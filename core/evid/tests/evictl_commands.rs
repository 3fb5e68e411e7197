//! `evictl` subcommands against a running evid: what they print and what they change.

use evi_testkit::{evictl_at, evictl_bin, free_port, wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

const CONFIG: &str = "loadmodule \"event_datagram.so\"\n\
    startup_route { subscribe_event(\"E_X\", \"udp:127.0.0.1:9\"); }";

#[test]
fn events_lists_the_published_events() {
    let d = Daemon::start(CONFIG);
    let (code, text, err) = evictl_at(&d.mi_url, &["events"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = evictl_at(&d.mi_url, &["--json", "events"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        v,
        d.mi("events_list", json!([]))
            .unwrap_or_else(|e| panic!("{e}"))
    );
    // One line per event, id right-aligned, in the daemon's order.
    let want: Vec<String> = v["Events"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|e| {
            format!(
                "{:>4}  {}",
                e["id"].as_i64().unwrap_or(-1),
                e["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
    assert!(
        want.iter().any(|l| l.ends_with("  E_CORE_THRESHOLD")),
        "{text}"
    );
    assert!(want.iter().any(|l| l.ends_with("  E_X")), "{text}");
}

#[test]
fn subscribe_raise_subscribers_unsubscribe() {
    let d = Daemon::start(CONFIG);
    let rx = UdpReceiver::new();
    let uri = rx.uri();

    let (code, out, err) = evictl_at(&d.mi_url, &["subscribe", "E_X", &uri, "--expire", "60"]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("subscribed {uri} to E_X for 60 s").as_str()),
        "{err}"
    );
    assert!(d.sockets("E_X").contains(&uri));

    // Ints stay ints, everything else is a string; a value may contain '='.
    let (code, out, err) = evictl_at(
        &d.mi_url,
        &["raise", "E_X", "n=3", "s=abc", "eq=a=b", "neg=-2"],
    );
    assert_eq!((code, out.trim()), (0, "raised E_X"), "{err}");
    assert_eq!(
        rx.recv_n(1, WAIT),
        vec![
            br#"{"jsonrpc":"2.0","method":"E_X","params":{"n":3,"s":"abc","eq":"a=b","neg":-2}}"#
                .to_vec()
        ]
    );
    // No params at all.
    assert_eq!(evictl_at(&d.mi_url, &["raise", "E_X"]).0, 0);
    assert_eq!(
        rx.recv_n(1, WAIT),
        vec![br#"{"jsonrpc":"2.0","method":"E_X"}"#.to_vec()]
    );

    let (code, out, _) = evictl_at(&d.mi_url, &["subscribers", "E_X"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "E_X", "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("  {uri}  expire 60, ttl "))),
        "{out}"
    );
    assert!(lines.contains(&"  udp:127.0.0.1:9  expire never"), "{out}");
    let (code, out, _) = evictl_at(&d.mi_url, &["subscribers"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("E_X\n") && out.contains(&uri), "{out}");
    let (_, out, _) = evictl_at(&d.mi_url, &["subscribers", "E_CORE_THRESHOLD"]);
    assert_eq!(out.trim(), "E_CORE_THRESHOLD: no subscribers");

    let (code, out, _) = evictl_at(&d.mi_url, &["unsubscribe", "E_X", &uri]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("unsubscribed {uri} from E_X").as_str())
    );
    assert!(!d.sockets("E_X").contains(&uri));
}

#[test]
fn errors_are_one_line_and_usage_is_exit_2() {
    let d = Daemon::start(CONFIG);
    let (code, _, err) = evictl_at(&d.mi_url, &["raise", "E_NOPE", "a=1"]);
    assert_eq!(
        (code, err.trim()),
        (1, "evictl: raise_event: 404 Event not registered")
    );
    let (code, _, err) = evictl_at(&d.mi_url, &["subscribe", "E_X", "nope:x"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("evictl: event_subscribe: 400 Bad parameter value"),
        "{err}"
    );
    for args in [
        &["raise", "E_X", "novalue"][..],
        &["raise", "E_X", "=1"],
        &["subscribe", "E_X"],
        &["subscribe", "E_X", "udp:127.0.0.1:1", "--expire", "soon"],
        &["unsubscribe", "E_X"],
        &["events", "extra"],
        &["watch"],
        &["frobnicate"],
        &[],
    ] {
        let (code, out, err) = evictl_at(&d.mi_url, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert!(
            err.starts_with("evictl: ") && err.contains("usage: evictl"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn commands_say_so_when_evid_is_not_running() {
    let url = format!("http://127.0.0.1:{}/mi", free_port());
    for args in [&["events"][..], &["raise", "E_X", "a=1"], &["watch", "E_X"]] {
        let (code, out, err) = evictl_at(&url, args);
        assert_eq!((code, out.as_str()), (1, ""), "{args:?}");
        assert!(
            err.starts_with(&format!("evictl: cannot reach evid at {url}: "))
                && err.trim_end().ends_with("(is evid running? see --url)"),
            "{args:?}: {err}"
        );
    }
    // $EVID_MI_URL is used without --url.
    let out = Command::new(evictl_bin())
        .arg("events")
        .env("EVID_MI_URL", &url)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&url));
}

#[test]
fn watch_prints_events_and_unsubscribes_on_sigint() {
    let d = Daemon::start(CONFIG);
    let mut child = Command::new(evictl_bin())
        .args([
            "--url",
            &d.mi_url,
            "watch",
            "E_X",
            "E_CORE_THRESHOLD",
            "--expire",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // The watcher's socket is the E_X subscriber that is not the config's.
    let mut watcher = None;
    assert!(
        wait_for(WAIT, || {
            watcher = d
                .sockets("E_X")
                .into_iter()
                .find(|s| s != "udp:127.0.0.1:9");
            watcher
                .as_ref()
                .is_some_and(|w| d.sockets("E_CORE_THRESHOLD").contains(w))
        }),
        "evictl watch did not subscribe to both events: {watcher:?}"
    );
    let watcher = watcher.unwrap_or_default();
    d.mi("raise_event", json!(["E_X", {"a": 1, "b": "two"}]))
        .unwrap_or_else(|e| panic!("{e}"));
    let line = lines
        .recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("no event printed: {e}"));
    // Piped: one compact JSON per line.
    assert_eq!(
        line,
        r#"{"jsonrpc":"2.0","method":"E_X","params":{"a":1,"b":"two"}}"#
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut status = None;
    wait_for(WAIT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("evictl watch did not exit on SIGINT")
    });
    assert_eq!(status.code(), Some(0));
    let _ = reader.join();
    assert!(
        !d.sockets("E_X").contains(&watcher),
        "still subscribed to E_X"
    );
    assert!(!d.sockets("E_CORE_THRESHOLD").contains(&watcher));
}

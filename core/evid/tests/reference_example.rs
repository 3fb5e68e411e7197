//! The example configuration of reference section 3.6 (in `reference_example.cfg`, minus what
//! evid does not have yet) is valid for `evid -c` and runs: its event_route, its
//! subscriptions and its flatstore modparams (delimiter, dated suffix) behave as documented.

use evi_testkit::{check_config, wait_for, Daemon, UdpReceiver};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn config() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference_example.cfg");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_reference_example_is_valid() {
    let (code, out, err, _) = check_config("opensips.cfg", &config());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is valid"), "{out}");
}

#[test]
fn the_reference_example_runs() {
    // The daemon harness loads mi_http itself, on a free port.
    let cfg = config().replace("loadmodule \"mi_http.so\"\n", "");
    let d = Daemon::start(&cfg);

    // Declaring event_route[E_PIKE_BLOCKED] subscribed route:E_PIKE_BLOCKED next to the
    // startup_route's udp subscriber (newest first, as the reference's MI sample shows).
    let subs = d
        .mi("subscribers_list", json!({"event": "E_PIKE_BLOCKED"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        subs["Event"]["Subscribers"],
        json!([
            {"socket": "udp:127.0.0.1:8888", "expire": "never"},
            {"socket": "route:E_PIKE_BLOCKED", "expire": "never"}
        ]),
        "{}",
        d.log()
    );

    d.mi(
        "raise_event",
        json!(["E_PIKE_BLOCKED", r#"{"ip":"192.0.2.10"}"#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || d.log().contains("[script] blocked 192.0.2.10")),
        "{}",
        d.log()
    );

    // E_MY_EVENT goes to {dir}/ev.log + the $time(%Y%m%d) suffix, fields joined by "|".
    d.mi(
        "raise_event",
        json!(["E_MY_EVENT", r#"{"caller":"alice","code":404}"#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dated = || {
        std::fs::read_dir(d.dir.path())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|n| n.starts_with("ev.log") && n.len() == "ev.log".len() + 8)
    };
    let mut content = String::new();
    assert!(
        wait_for(T, || {
            content = dated()
                .and_then(|n| std::fs::read_to_string(d.dir.join(&n)).ok())
                .unwrap_or_default();
            !content.is_empty()
        }),
        "{:?}\n{}",
        dated(),
        d.log()
    );
    assert_eq!(content, "E_MY_EVENT|alice|404\n");
    let suffix = &dated().unwrap_or_default()["ev.log".len()..];
    assert!(suffix.bytes().all(|b| b.is_ascii_digit()), "{suffix}");
}

/// The udp subscriber of the startup_route gets the JSON-RPC notification.
#[test]
fn the_reference_example_sends_pike_blocked_over_udp() {
    let rx = UdpReceiver::new();
    let cfg = config()
        .replace("loadmodule \"mi_http.so\"\n", "")
        .replace("udp:127.0.0.1:8888", &rx.uri());
    let d = Daemon::start(&cfg);
    d.mi(
        "raise_event",
        json!(["E_PIKE_BLOCKED", r#"{"ip":"192.0.2.10"}"#]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let got = rx.recv_n(1, T);
    assert_eq!(got.len(), 1, "{}", d.log());
    let v: serde_json::Value = serde_json::from_slice(&got[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "method": "E_PIKE_BLOCKED", "params": {"ip": "192.0.2.10"}})
    );
}

//! A real evid's mi_http driven by the PyPI `opensips` package's MI client
//! (`opensips-mi -t http`), as OpenSIPS operators use it; mi_datagram and mi_fifo have the same
//! test in their own folders.

use evi_testkit::{Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::time::Duration;

/// `opensips-mi -t http` against the daemon's MI; (exit code, stdout, stderr).
fn opensips_mi(d: &Daemon, cmd: &[&str]) -> (i32, String, String) {
    // The client always posts to http://IP:PORT/mi, the path evid's mi_http serves by default.
    let port = d
        .mi_url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/mi");
    let mut args = vec!["-t", "http", "-i", "127.0.0.1", "-p", port];
    args.extend_from_slice(cmd);
    evi_testkit::opensips_mi(d.dir.path(), &args)
}

fn mi_ok(d: &Daemon, cmd: &[&str]) -> Value {
    let (code, out, err) = opensips_mi(d, cmd);
    assert_eq!(code, 0, "{cmd:?}: {out}{err}\nevid log:\n{}", d.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd:?}: {e}: {out}"))
}

#[test]
fn http_with_the_opensips_client() {
    let d = Daemon::start("loadmodule \"event_datagram.so\"\nevent_route[E_X] { $var(x) = 1; }");
    let events = mi_ok(&d, &["events_list"]);
    assert!(events.to_string().contains(r#""name":"E_X""#), "{events}");

    let rx = UdpReceiver::new();
    assert_eq!(
        mi_ok(&d, &["event_subscribe", "E_X", &rx.uri(), "60"]),
        json!("OK")
    );
    let listed = mi_ok(&d, &["subscribers_list", "E_X"]);
    assert!(listed.to_string().contains(&rx.uri()), "{listed}");

    let raise = r#"{"event":"E_X","params":{"n":3,"s":"abc"}}"#;
    assert_eq!(mi_ok(&d, &["raise_event", "-j", raise]), json!("OK"));
    assert_eq!(
        rx.recv_n(1, Duration::from_secs(20)),
        vec![br#"{"jsonrpc":"2.0","method":"E_X","params":{"n":3,"s":"abc"}}"#.to_vec()]
    );

    let (code, out, _) = opensips_mi(&d, &["raise_event", "E_NOPE"]);
    assert_eq!(
        (code, out.trim()),
        (
            1,
            "ERROR:  Error executing command: 404: Event not registered"
        )
    );
    assert_eq!(
        mi_ok(&d, &["event_subscribe", "E_X", &rx.uri(), "0"]),
        json!("OK")
    );
    let listed = mi_ok(&d, &["subscribers_list", "E_X"]);
    assert!(!listed.to_string().contains(&rx.uri()), "{listed}");
}

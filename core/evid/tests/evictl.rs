//! `evictl mi` against a running evid, and against none.

use evi_testkit::{evictl_at, free_port, Daemon, UdpReceiver};

#[test]
fn evictl_runs_mi_commands() {
    let d = Daemon::start("loadmodule \"event_datagram.so\"\nstartup_route { subscribe_event(\"E_X\", \"udp:127.0.0.1:9\"); }");
    let rx = UdpReceiver::new();
    let (code, out, err) = evictl_at(
        &d.mi_url,
        &["mi", "event_subscribe", "E_X", &rx.uri(), "60"],
    );
    assert_eq!((code, out.trim()), (0, "\"OK\""), "{err}");
    // ints stay ints, strings stay strings, a JSON object is sent as one.
    let (code, _, err) = evictl_at(
        &d.mi_url,
        &["mi", "raise_event", "E_X", r#"{"ip":"192.0.2.10","n":3}"#],
    );
    assert_eq!(code, 0, "{err}");
    let got = rx.recv_n(1, std::time::Duration::from_secs(5));
    assert_eq!(
        got,
        vec![br#"{"jsonrpc":"2.0","method":"E_X","params":{"ip":"192.0.2.10","n":3}}"#.to_vec()]
    );
    let (code, out, _) = evictl_at(&d.mi_url, &["mi", "subscribers_list", "E_X"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&rx.uri()) && out.contains("\"expire\": 60"),
        "{out}"
    );
    // An MI error: code, message and data on stderr, exit 1.
    let (code, _, err) = evictl_at(&d.mi_url, &["mi", "raise_event", "E_NOPE"]);
    assert_eq!(
        (code, err.trim()),
        (1, "evictl: raise_event: 404 Event not registered")
    );
}

#[test]
fn evictl_says_so_when_evid_is_not_running() {
    let url = format!("http://127.0.0.1:{}/mi", free_port());
    let (code, out, err) = evictl_at(&url, &["mi", "events_list"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with(&format!("evictl: cannot reach evid at {url}: "))
            && err.contains("is evid running?"),
        "{err}"
    );
}

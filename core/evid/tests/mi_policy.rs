//! What MI clients may do: the subscription policy, request limits and the bearer token.
//! Config-file subscriptions are trusted and not limited.

use evi_testkit::{Daemon, UdpReceiver};
use serde_json::{json, Value};

const POLICY: &str = r#"
mi_allowed_protos = "udp,flatstore"
mi_max_expire = 600
mi_max_subscribers_per_event = 3
mi_flatstore_dir = "{dir}/events"
mi_max_params = 4
mi_max_param_len = 100
mi_max_request = 2000
loadmodule "event_datagram.so"
loadmodule "event_flatstore.so"
loadmodule "event_stream.so"
startup_route {
    # Trusted: outside mi_flatstore_dir, a proto MI may not use.
    subscribe_event("E_X", "flatstore:{dir}/trusted.log");
    subscribe_event("E_Y", "tcp:127.0.0.1:9");
}
"#;

fn refused(d: &Daemon, params: Value) -> String {
    d.mi("event_subscribe", params.clone())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("{params} was accepted"))
}

#[test]
fn mi_subscriptions_follow_the_policy() {
    let d = Daemon::start(POLICY);
    let _ = std::fs::create_dir_all(d.dir.join("events"));
    let dir = d.dir.path().display().to_string();
    assert!(refused(&d, json!(["E_X", "tcp:127.0.0.1:9", 60]))
        .contains("proto \"tcp\" is not allowed over MI"));
    assert!(refused(&d, json!(["E_X", "udp:127.0.0.1:9", 601]))
        .contains("above the maximum of 600 seconds"));
    assert!(
        refused(&d, json!(["E_X", "flatstore:/etc/evid-owned.log", 60]))
            .contains("outside the allowed directory")
    );
    assert!(refused(
        &d,
        json!(["E_X", format!("flatstore:{dir}/events/../x.log"), 60])
    )
    .contains(". or .."));
    // A symlink inside the directory that points out of it is refused too.
    let _ = std::os::unix::fs::symlink("/tmp", d.dir.join("events/out"));
    assert!(refused(
        &d,
        json!(["E_X", format!("flatstore:{dir}/events/out/x.log"), 60])
    )
    .contains("symbolic link"));
    assert_eq!(
        d.mi(
            "event_subscribe",
            json!(["E_X", format!("flatstore:{dir}/events/x.log"), 600])
        )
        .ok(),
        Some(json!("OK"))
    );

    // E_X has the trusted subscriber and one from MI: room for one more, then full.
    let a = UdpReceiver::new();
    let b = UdpReceiver::new();
    assert_eq!(
        d.mi("event_subscribe", json!(["E_X", a.uri(), 60])).ok(),
        Some(json!("OK")),
        "{}",
        d.log()
    );
    let full = refused(&d, json!(["E_X", b.uri(), 60]));
    assert!(
        full.contains("E_X already has 3 subscribers (mi_max_subscribers_per_event)"),
        "{full}"
    );
    // A refresh of an existing subscription, and an unsubscribe, are always allowed.
    assert_eq!(
        d.mi("event_subscribe", json!(["E_X", a.uri(), 120])).ok(),
        Some(json!("OK"))
    );
    assert_eq!(
        d.mi("event_subscribe", json!(["E_X", a.uri(), 0])).ok(),
        Some(json!("OK"))
    );
    assert_eq!(
        d.mi("event_subscribe", json!(["E_X", b.uri(), 60])).ok(),
        Some(json!("OK"))
    );
}

#[test]
fn request_limits_give_clear_errors() {
    let d = Daemon::start(POLICY);
    let cases = [
        (
            json!({"jsonrpc":"2.0","id":1,"method":"raise_event","params":["E_X", ["a","b"], 1, 2, 3]}),
            json!({"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":"5 parameters, at most 4 (mi_max_params)"},"id":1}),
        ),
        (
            json!({"jsonrpc":"2.0","id":2,"method":"raise_event","params":["E_X", ["x".repeat(101)]]}),
            json!({"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":"a parameter of 101 bytes, at most 100 (mi_max_param_len)"},"id":2}),
        ),
    ];
    for (req, want) in cases {
        let r = d.mi_raw(req.to_string().as_bytes());
        let got: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!(got, want);
    }
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"version","params":["{}"]}}"#,
        "y".repeat(3000)
    );
    let got: Value = serde_json::from_slice(&d.mi_raw(big.as_bytes()).body).unwrap_or_default();
    assert_eq!(got["error"]["code"], -32600);
    assert!(
        got["error"]["data"]
            .as_str()
            .is_some_and(|s| s.contains("larger than 2000 (mi_max_request)")),
        "{got}"
    );
    // Still serving.
    assert!(d.mi("version", json!([])).is_ok());
}

#[test]
fn a_bearer_token_guards_mi_http() {
    // evid's MI client (and so evictl and this test kit) sends $EVID_MI_TOKEN; a daemon without
    // auth_token ignores it, so setting it here cannot disturb other tests.
    std::env::set_var("EVID_MI_TOKEN", "t0ken");
    let d = Daemon::start("modparam(\"mi_http\", \"auth_token\", \"t0ken\")");
    assert!(d.mi("version", json!([])).is_ok(), "{}", d.log());
    let addr = d
        .mi_url
        .trim_start_matches("http://")
        .trim_end_matches("/mi")
        .to_string();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"version"}"#;
    let mut s = std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{out}");
    assert!(out.contains("WWW-Authenticate: Bearer"), "{out}");
}

const DESTINATIONS: &str = r#"
mi_allowed_destinations = "127.0.0.1, 192.0.2.0/24, 0.0.0.0/0"
mi_flatstore_dir = "{dir}/events"
loadmodule "event_stream.so"
loadmodule "event_flatstore.so"
loadmodule "event_virtual.so"
loadmodule "event_datagram.so"
startup_route {
    # Trusted: a destination MI may not use.
    subscribe_event("E_X", "tcp:127.0.0.2:9");
}
"#;

#[test]
fn mi_subscriptions_reach_only_allowed_destinations_virtual_members_included() {
    let d = Daemon::start(DESTINATIONS);
    let _ = std::fs::create_dir_all(d.dir.join("events"));
    let dir = d.dir.path().display().to_string();
    let ok = |socket: String| {
        let got = d
            .mi("event_subscribe", json!(["E_X", &socket, 60]))
            .map_err(|e| e.to_string());
        assert_eq!(got, Ok(json!("OK")), "{socket}\n{}", d.log())
    };
    ok("tcp:127.0.0.1:9".into());
    ok("tcp:192.0.2.44:9".into());
    ok("tcp:198.51.100.1:9".into());
    ok(format!(
        "virtual:PARALLEL tcp:127.0.0.1:10 flatstore:{dir}/events/v.log"
    ));
    let not_allowed = |peer: &str, socket: String| {
        let why = refused(&d, json!(["E_X", socket, 60]));
        assert!(
            why.contains(&format!(
                "destination {peer} is not allowed over MI (mi_allowed_destinations)"
            )),
            "{why}"
        );
    };
    // 0.0.0.0/0 admits the internet, not the host's own networks.
    not_allowed("127.0.0.2:9", "tcp:127.0.0.2:9".into());
    not_allowed("10.0.0.1:9", "tcp:10.0.0.1:9".into());
    not_allowed("169.254.169.254:80", "tcp:169.254.169.254:80".into());
    // udp: the address resolved at subscribe time is checked; a unix socket has no peer.
    ok("udp:127.0.0.1:9".into());
    not_allowed("127.0.0.3:9", "udp:127.0.0.3:9".into());
    not_allowed("[::1]:9", "udp:[::1]:9".into());
    ok(format!("unix:{dir}/events/x.sock"));
    // A virtual socket's members are held to the whole policy.
    not_allowed(
        "10.0.0.1:9",
        "virtual:FAILOVER tcp:127.0.0.1:9 tcp:10.0.0.1:9".to_string(),
    );
    let why = refused(
        &d,
        json!([
            "E_X",
            "virtual:PARALLEL tcp:127.0.0.1:9 flatstore:/etc/evid-owned.log",
            60
        ]),
    );
    assert!(why.contains("outside the allowed directory"), "{why}");
    assert!(
        !std::path::Path::new("/etc/evid-owned.log").exists(),
        "a refused member must not have created its file"
    );
    // Refused sockets left no subscriber behind; the trusted one is there.
    let listed = d
        .mi("subscribers_list", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = listed.to_string();
    assert!(!text.contains("10.0.0.1"), "{text}");
    assert!(!text.contains("169.254"), "{text}");
    assert!(text.contains("tcp:127.0.0.2:9"), "{text}");
}

/// The race the host's own check cannot close: a directory inside `mi_flatstore_dir` is swapped
/// with a symlink to the outside (atomically, `renameat2(RENAME_EXCHANGE)`) while MI subscribes
/// files in it. flatstore opens each file with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
/// beneath the directory, so however the swaps fall, no file is ever created outside.
#[test]
fn a_symlink_swapped_in_after_the_check_cannot_lead_outside() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let d = Daemon::start(
        "mi_flatstore_dir = \"{dir}/events\"\nmi_max_subscribers_per_event = 100000\n\
         loadmodule \"event_flatstore.so\"\n\
         startup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/trusted.log\"); }",
    );
    let events = d.dir.join("events");
    let outside = d.dir.join("outside");
    for p in [events.join("d"), outside.clone()] {
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    std::os::unix::fs::symlink(&outside, events.join("swap")).expect("symlink");
    let c = |p: std::path::PathBuf| CString::new(p.as_os_str().as_bytes()).expect("path");
    let (a, b) = (c(events.join("d")), c(events.join("swap")));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two valid paths; the call only renames.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let dir = d.dir.path().display().to_string();
    let (mut accepted, mut refused_n) = (0, 0);
    for i in 0..400 {
        let socket = format!("flatstore:{dir}/events/d/f{i}.log");
        match d.mi("event_subscribe", json!(["E_X", socket, 60])) {
            Ok(_) => accepted += 1,
            Err(_) => refused_n += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = flipper.join().expect("flipper");
    // A lookup parses the socket too (and flatstore opens files when parsing): it is held to
    // the policy as well, so it creates nothing outside either.
    let probe = format!("flatstore:{dir}/outside/probe.log");
    assert!(d.mi("subscribers_list", json!(["E_X", probe])).is_err());
    let escaped: Vec<_> = std::fs::read_dir(&outside)
        .expect("outside")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        escaped.is_empty(),
        "{} file(s) created outside mi_flatstore_dir: {escaped:?}\n{}",
        escaped.len(),
        d.log()
    );
    eprintln!("{swaps} swaps; {accepted} accepted, {refused_n} refused");
    assert!(
        accepted > 0 && refused_n > 0,
        "both sides of the race were hit: {accepted} accepted, {refused_n} refused"
    );
}

//! A real evid with mi_datagram, driven by the PyPI `opensips` package's MI client
//! (`opensips-mi -t datagram`) and by raw sockets for the exact wire bytes.

use evi_testkit::{opensips_mi, wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `opensips-mi` over UDP to `port`, which must succeed; its printed result as JSON.
fn udp_mi(d: &Daemon, port: u16, cmd: &[&str]) -> Value {
    let port = port.to_string();
    let mut args = vec![
        "-t",
        "datagram",
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-dt",
        "20",
    ];
    args.extend_from_slice(cmd);
    let (code, out, err) = opensips_mi(d.dir.path(), &args);
    assert_eq!(code, 0, "{cmd:?}: {out}{err}\nevid log:\n{}", d.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd:?}: {e}: {out}"))
}

fn config(socket_name: &str, extra: &str) -> String {
    format!(
        "loadmodule \"event_datagram.so\"\nloadmodule \"mi_datagram.so\"\n\
         modparam(\"mi_datagram\", \"socket_name\", \"{socket_name}\")\n{extra}\n\
         startup_route {{ subscribe_event(\"E_X\", \"udp:127.0.0.1:9\"); }}"
    )
}

#[test]
fn udp_with_the_opensips_client() {
    let port = free_udp_port();
    let d = Daemon::start(&config(&format!("udp:127.0.0.1:{port}"), ""));

    let events = udp_mi(&d, port, &["events_list"]);
    let names: Vec<&str> = events["Events"]
        .as_array()
        .unwrap_or_else(|| panic!("{events}"))
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.contains(&"E_CORE_THRESHOLD") && names.contains(&"E_X"),
        "{names:?}"
    );

    let rx = UdpReceiver::new();
    let uri = rx.uri();
    assert_eq!(
        udp_mi(&d, port, &["event_subscribe", "E_X", &uri, "60"]),
        json!("OK")
    );
    let raise = r#"{"event":"E_X","params":{"n":3,"s":"abc"}}"#;
    assert_eq!(udp_mi(&d, port, &["raise_event", "-j", raise]), json!("OK"));
    assert_eq!(
        rx.recv_n(1, WAIT),
        vec![br#"{"jsonrpc":"2.0","method":"E_X","params":{"n":3,"s":"abc"}}"#.to_vec()]
    );

    // A JSON-RPC error reaches the client as one, which it prints and exits 1 on.
    let p = port.to_string();
    let args = [
        "-t",
        "datagram",
        "-i",
        "127.0.0.1",
        "-p",
        &p,
        "-dt",
        "20",
        "raise_event",
        "E_NOPE",
    ];
    let (code, out, _) = opensips_mi(d.dir.path(), &args);
    assert_eq!(
        (code, out.trim()),
        (
            1,
            "ERROR:  Error executing command: 404: Event not registered"
        )
    );

    // The exact wire bytes, from a raw socket.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let daemon = ("127.0.0.1", port);
    let mut buf = [0u8; 70_000];
    let mut ask = |req: &[u8]| {
        c.send_to(req, daemon).unwrap();
        let n = c.recv(&mut buf).unwrap_or_else(|e| panic!("no reply: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(ask(b"{\"jsonrpc\":\"2.0\",\"id\":"), "400 Parse_error");
    // An empty datagram is ignored, as OpenSIPS does: the next reply is the next request's.
    c.send_to(b"", daemon).unwrap();
    assert_eq!(ask(b"  \n"), "400 Parse_error");
    assert_eq!(
        ask(b"[1]"),
        r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#
    );
    assert_eq!(
        ask(br#"{"jsonrpc":"2.0","id":"7","method":"nope"}"#),
        r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"7"}"#
    );
    // A notification is run and not answered: the next reply is the next request's.
    let notify = r#"{"jsonrpc":"2.0","method":"raise_event","params":["E_X",{"k":1}]}"#;
    c.send_to(notify.as_bytes(), daemon).unwrap();
    assert_eq!(
        ask(br#"{"jsonrpc":"2.0","id":8,"method":"raise_event","params":["E_X",{"k":2}]}"#),
        r#"{"jsonrpc":"2.0","result":"OK","id":8}"#
    );
    let got = rx.recv_n(2, WAIT);
    assert_eq!(got.len(), 2);
    assert!(got.iter().any(|g| g.ends_with(br#"{"k":1}}"#)), "{got:?}");
}

#[test]
fn unix_socket_with_the_opensips_client() {
    let d0 = evi_testkit::TempDir::new("mi_datagram_unix");
    let path = d0.join("mi.sock");
    let body = config(
        &path.display().to_string(),
        "modparam(\"mi_datagram\", \"unix_socket_mode\", 0600)\n\
         modparam(\"mi_datagram\", \"socket_buf_size\", 1024)",
    );
    let mut d = Daemon::start(&body);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);

    let sock = path.display().to_string();
    let args = [
        "-t",
        "datagram",
        "-ds",
        &sock,
        "-dt",
        "20",
        "-db",
        "65535",
        "events_list",
    ];
    let (code, out, err) = opensips_mi(d.dir.path(), &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"E_X\""), "{out}");

    let c = UnixDatagram::bind(d.dir.join("client.sock")).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 70_000];
    let mut ask = |req: &[u8]| {
        c.send_to(req, &path).unwrap();
        let n = c.recv(&mut buf).unwrap_or_else(|e| panic!("no reply: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(ask(b"not json"), "400 Parse_error");
    // A reply over socket_buf_size (1024) is the plain-text internal error.
    for port in 10..40 {
        let req = json!({"jsonrpc":"2.0","id":port,"method":"event_subscribe",
            "params":["E_X", format!("udp:127.0.0.1:{port}"), 600]});
        assert!(ask(req.to_string().as_bytes()).contains("\"OK\""));
    }
    assert_eq!(
        ask(br#"{"jsonrpc":"2.0","id":1,"method":"subscribers_list","params":["E_X"]}"#),
        "500 Internal error"
    );

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        wait_for(WAIT, || !path.exists()),
        "the socket file is left behind"
    );
}

//! The real server on 127.0.0.1, driven by a raw TCP client, with a fake MI engine.

mod common;

use common::Client;
use mi_http::{Config, MiFn, Server};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const EVENTS_LIST: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"events_list"}"#;

/// The body of shared/conformance/opensips/mi/mi_events_list.response.http (OpenSIPS 3.x).
const EVENTS_REPLY: &str = r#"{"jsonrpc":"2.0","result":{"Events":[{"name":"E_CORE_SR_STATUS_CHANGED","id":0},{"name":"E_CORE_THRESHOLD","id":1},{"name":"E_CORE_SHM_THRESHOLD","id":2},{"name":"E_CORE_PKG_THRESHOLD","id":3},{"name":"E_CORE_PROC_AUTO_SCALE","id":4},{"name":"E_CORE_TCP_DISCONNECT","id":5},{"name":"E_FLATSTORE_ROTATION","id":6},{"name":"E_GOLDEN","id":7},{"name":"E_BENCH","id":8},{"name":"E_CORE_LOG","id":9}]},"id":1}"#;

/// Held `"hold"` calls wait until this is set; `HOLDING` counts those waiting.
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static HOLDING: AtomicUsize = AtomicUsize::new(0);

/// A fake engine: `events_list` gets the OpenSIPS reply, a request without `"id"` is a
/// notification, `"panic"` panics, `"slow"` takes 300 ms, `"hold"` waits for [`RELEASE`],
/// anything else is echoed back.
fn fake() -> Arc<MiFn> {
    Arc::new(|req: &[u8]| {
        let text = String::from_utf8_lossy(req);
        if text.contains("panic") {
            panic!("fake MI engine asked to panic");
        }
        if text.contains("slow") {
            thread::sleep(Duration::from_millis(300));
        }
        if text.contains("hold") {
            HOLDING.fetch_add(1, Ordering::SeqCst);
            while !RELEASE.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(5));
            }
        }
        if !text.contains("\"id\"") {
            return None;
        }
        if text.contains("events_list") {
            return Some(EVENTS_REPLY.as_bytes().to_vec());
        }
        Some(req.to_vec())
    })
}

fn start_with(config: Config) -> Server {
    Server::start("127.0.0.1:0", config, fake()).expect("server starts")
}

fn start() -> Server {
    start_with(Config::new("mi", 2, 4096))
}

#[test]
fn events_list_reply_matches_opensips_on_the_wire() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.post("/mi", EVENTS_LIST);
    let raw = String::from_utf8(c.raw_response()).unwrap();
    // Byte for byte the OpenSIPS response, Date aside.
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{head}");
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert!(
        lines[1].starts_with("Date: ") && lines[1].ends_with(" GMT"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "Content-Type: application/json");
    assert_eq!(lines[3], "Content-Length: 404");
    assert_eq!(body, EVENTS_REPLY);
    server.stop();
}

#[test]
fn notification_is_202_without_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.post("/mi", br#"{"jsonrpc":"2.0","method":"events_list"}"#);
    let r = c.response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 202 Accepted");
    assert_eq!(r.names(), ["Date", "Content-Length"]);
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(r.body.is_empty());
}

#[test]
fn routing_method_and_empty_body_errors() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.post("/other", EVENTS_LIST);
    let r = c.response().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert!(!r.body.is_empty());

    c.send(b"GET /mi HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(r.header("Allow"), Some("POST"));

    c.post("/mi", b"");
    assert_eq!(c.response().unwrap().status(), 400);

    // Query strings are ignored and sub-paths match; the connection survived all of the above.
    c.post("/mi/x?pretty=1", br#"{"id":2}"#);
    let r = c.response().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, br#"{"id":2}"#);
}

#[test]
fn head_gets_405_headers_without_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /mi HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(b"POST /mi HTTP/1.1\r\nContent-Length: 8\r\n\r\n{\"id\":3}");
    // The HEAD response announces its body length but sends none, so the next bytes on the
    // wire are the POST's response.
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&raw).contains("{\"id\":3}") && Instant::now() < deadline {
        let mut b = [0u8; 1024];
        let n = std::io::Read::read(&mut c.reader, &mut b).unwrap();
        raw.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    let second = text.find("HTTP/1.1 200 OK\r\n").expect("second response");
    assert!(
        text[..second].ends_with("\r\n\r\n"),
        "HEAD response carried a body: {text}"
    );
}

#[test]
fn declared_oversize_body_is_413_without_reading_it() {
    // The request that aborts a tiny_http 0.12 server (it drains into vec![0; declared]).
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n");
    c.send(&[b'x'; 3000]);
    let r = c.response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    // Still serving.
    let mut c = Client::connect(server.local_addr());
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);
}

#[test]
fn oversize_wrong_path_is_still_404() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /nope HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n");
    assert_eq!(c.response().unwrap().status(), 404);
}

#[test]
fn body_at_the_limit_passes_one_more_byte_is_413() {
    let server = start_with(Config::new("mi", 1, 1024));
    let mut at = br#"{"id":1,"pad":""#.to_vec();
    at.resize(1024 - 2, b'a');
    at.extend_from_slice(b"\"}");
    let mut c = Client::connect(server.local_addr());
    c.post("/mi", &at);
    let r = c.response().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, at);
    at.push(b' ');
    c.post("/mi", &at);
    assert_eq!(c.response().unwrap().status(), 413);
}

#[test]
fn chunked_bodies() {
    let server = start_with(Config::new("mi", 1, 1024));
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"id\r\n4;x=y\r\n\":5}\r\n0\r\n\r\n");
    let r = c.response().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, b"{\"id\":5}");
    // Oversize chunked: reading stops at the limit, 413, connection closed.
    c.send(b"POST /mi HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n");
    c.send(&[b'a'; 1024]);
    c.send(b"\r\n1\r\n");
    let r = c.response().unwrap();
    assert_eq!(r.status(), 413);
    assert!(c.closed());
}

#[test]
fn keep_alive_two_requests_on_one_connection() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    for id in 1..=2 {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"x"}}"#);
        c.post("/mi", body.as_bytes());
        let r = c.response().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("Connection"), None);
        assert_eq!(r.body, body.as_bytes());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let mut wire = Vec::new();
    for id in 1..=3 {
        let body = format!(r#"{{"id":{id}}}"#);
        wire.extend(
            format!(
                "POST /mi HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .bytes(),
        );
    }
    c.send(&wire);
    for id in 1..=3 {
        assert_eq!(
            c.response().unwrap().body,
            format!(r#"{{"id":{id}}}"#).as_bytes()
        );
    }
}

#[test]
fn connection_close_and_http10() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.1\r\nConnection: close\r\nContent-Length: 8\r\n\r\n{\"id\":1}");
    let r = c.response().unwrap();
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());

    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.0\r\nContent-Length: 8\r\n\r\n{\"id\":1}");
    let r = c.response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());

    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 8\r\n\r\n{\"id\":1}");
    assert_eq!(
        c.response().unwrap().header("Connection"),
        Some("keep-alive")
    );
    c.send(b"POST /mi HTTP/1.0\r\nContent-Length: 8\r\n\r\n{\"id\":2}");
    assert_eq!(c.response().unwrap().body, b"{\"id\":2}");
}

#[test]
fn expect_100_continue() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 8\r\n\r\n");
    let interim = c.response().unwrap();
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    c.send(b"{\"id\":7}");
    assert_eq!(c.response().unwrap().body, b"{\"id\":7}");
    // A request that would be refused is refused at once, without inviting the body.
    c.send(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 8\r\n\r\n");
    assert_eq!(c.response().unwrap().status(), 404);
    assert!(c.closed());
}

#[test]
fn malformed_requests_get_400_and_close() {
    let server = start();
    for wire in [
        &b"GARBAGE\r\n\r\n"[..],
        b"POST /mi HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let mut c = Client::connect(server.local_addr());
        c.send(wire);
        assert_eq!(c.response().unwrap().status(), 400, "{wire:?}");
        assert!(c.closed());
    }
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/2.0\r\n\r\n");
    assert_eq!(c.response().unwrap().status(), 505);
    let mut c = Client::connect(server.local_addr());
    c.send(format!("POST /mi HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)).as_bytes());
    assert_eq!(c.response().unwrap().status(), 431);
}

#[test]
fn timeouts_408_mid_request_and_silent_close_when_idle() {
    let mut config = Config::new("mi", 1, 4096);
    config.timeout = Duration::from_millis(300);
    let server = start_with(config);
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /mi HTTP/1.1\r\nContent-Le");
    assert_eq!(c.response().unwrap().status(), 408);
    assert!(c.closed());

    let mut c = Client::connect(server.local_addr());
    c.post("/mi", b"{\"id\":1}");
    assert_eq!(c.response().unwrap().status(), 200);
    let t = Instant::now();
    assert!(
        c.response().is_none(),
        "idle connection closed without a response"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn engine_panic_is_500_and_the_worker_survives() {
    let server = start_with(Config::new("mi", 1, 4096));
    let mut c = Client::connect(server.local_addr());
    c.post("/mi", br#"{"id":1,"method":"panic"}"#);
    assert_eq!(c.response().unwrap().status(), 500);
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);
}

#[test]
fn concurrent_clients_get_their_own_replies() {
    let server = start_with(Config::new("mi", 3, 4096));
    let addr = server.local_addr();
    let ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let ok = ok.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..25 {
                    let body = format!(r#"{{"jsonrpc":"2.0","id":"{t}-{i}","method":"m"}}"#);
                    c.post("/mi", body.as_bytes());
                    let r = c.response().unwrap();
                    assert_eq!(r.body, body.as_bytes());
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), 200);
}

#[test]
fn stop_joins_everything_with_clients_still_connected() {
    let server = start();
    let addr = server.local_addr();
    // An idle keep-alive client, a client stuck mid-head, and one whose request is being run.
    let mut idle = Client::connect(addr);
    idle.post("/mi", EVENTS_LIST);
    assert_eq!(idle.response().unwrap().status(), 200);
    let mut partial = Client::connect(addr);
    partial.send(b"POST /mi HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"i");
    let mut busy = Client::connect(addr);
    busy.post("/mi", br#"{"id":1,"method":"slow"}"#);
    thread::sleep(Duration::from_millis(100));

    let t = Instant::now();
    server.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(idle.closed());
    assert!(partial.closed());
    // The busy request finished (stop waited for the worker) but its reply could not be sent.
    assert!(busy.response().is_none());
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after stop"
    );
}

#[test]
fn drop_stops_too_and_the_port_can_be_reused() {
    let server = start();
    let addr = server.local_addr();
    let mut c = Client::connect(addr);
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);
    drop(server);
    let again =
        Server::start(addr, Config::new("mi", 1, 4096), fake()).expect("rebind the same port");
    let mut c = Client::connect(again.local_addr());
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);
}

/// Slowloris: a full house of clients that never finish a request does not lock anyone out;
/// the one that has waited longest is closed to make room.
#[test]
fn slow_clients_at_the_limit_make_room_for_a_new_one() {
    let server = start();
    let addr = server.local_addr();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..mi_http::MAX_CONNECTIONS {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"POST /mi HTTP/1.1\r\nContent-Le").unwrap();
        slow.push(s);
    }
    for _ in 0..20 {
        let mut c = Client::connect(addr);
        c.post("/mi", EVENTS_LIST);
        let r = c.response().expect("a response");
        assert_eq!(
            (r.status(), String::from_utf8_lossy(&r.body).as_ref()),
            (200, EVENTS_REPLY)
        );
    }
    // Some slow ones were closed (at most one per newcomer), the rest are still open.
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!((1..=20).contains(&closed), "{closed} closed");
    server.stop();
}

/// When every connection has a request in an MI call, there is no one to evict: 503.
#[test]
fn when_every_connection_is_in_an_mi_call_the_next_gets_503() {
    // One MI slot per connection, so the test can see when all of them are inside a call.
    let server = start_with(Config::new("mi", mi_http::MAX_CONNECTIONS, 4096));
    let addr = server.local_addr();
    let mut busy: Vec<Client> = Vec::new();
    for _ in 0..mi_http::MAX_CONNECTIONS {
        let mut c = Client::connect(addr);
        c.post("/mi", br#"{"jsonrpc":"2.0","id":1,"method":"hold"}"#);
        busy.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while HOLDING.load(Ordering::SeqCst) < mi_http::MAX_CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "{} calls held",
            HOLDING.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(10));
    }
    let mut c = Client::connect(addr);
    assert_eq!(c.response().map(|r| r.status()), Some(503));
    RELEASE.store(true, Ordering::Release);
    for c in &mut busy {
        assert_eq!(c.response().map(|r| r.status()), Some(200));
    }
    server.stop();
}

#[test]
fn bind_conflict_is_an_error() {
    let server = start();
    let err = Server::start(server.local_addr(), Config::new("mi", 1, 4096), fake())
        .err()
        .expect("bind fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn auth_token_is_required_when_set() {
    let mut config = Config::new("mi", 2, 4096);
    config.token = Some("s3cret-token".into());
    let server = start_with(config);
    let ask = |auth: Option<&str>| {
        let mut s = TcpStream::connect(server.local_addr()).expect("connect");
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let req = format!(
            "POST /mi HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            EVENTS_LIST.len()
        );
        s.write_all(req.as_bytes())
            .and_then(|_| s.write_all(EVENTS_LIST))
            .expect("send");
        let mut c = common::Client {
            reader: std::io::BufReader::new(s),
        };
        c.response().expect("a response")
    };
    for bad in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-tokenX"),
        Some("Basic s3cret-token"),
    ] {
        let r = ask(bad);
        assert_eq!(r.status(), 401, "{bad:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"evid MI\""),
            "{bad:?}"
        );
    }
    let ok = ask(Some("Bearer s3cret-token"));
    assert_eq!(ok.status(), 200);
    assert_eq!(String::from_utf8_lossy(&ok.body), EVENTS_REPLY);
    server.stop();
}

#[test]
fn at_most_threads_mi_calls_run_at_once() {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let mi: Arc<MiFn> = Arc::new(move |req: &[u8]| {
        let running = n.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(running, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(100));
        n.fetch_sub(1, Ordering::SeqCst);
        Some(req.to_vec())
    });
    let server =
        Server::start("127.0.0.1:0", Config::new("mi", 2, 4096), mi).expect("server starts");
    let addr = server.local_addr();
    thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(move || {
                let mut c = Client::connect(addr);
                c.post("/mi", EVENTS_LIST);
                assert_eq!(c.response().map(|r| r.status()), Some(200));
            });
        }
    });
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "threads = 2 caps the MI calls running at once"
    );
    server.stop();
}

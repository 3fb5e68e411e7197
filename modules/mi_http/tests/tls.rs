//! HTTPS: the real server with certificates made for the test, a real rustls client trusting
//! only their CA, and the same limits as plain HTTP.

mod common;

use common::pki::Pki;
use common::Client;
use evi_sdk::testing::FakeHost;
use evi_sdk::{Host, Module, ParamValue, Params};
use mi_http::{Config, MiFn, MiHttp, Server, TlsConfig};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const EVENTS_LIST: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"events_list"}"#;
const EVENTS_REPLY: &str = r#"{"jsonrpc":"2.0","result":{"Events":[{"name":"E_CORE_SR_STATUS_CHANGED","id":0},{"name":"E_CORE_THRESHOLD","id":1}]},"id":1}"#;

static RELEASE: AtomicBool = AtomicBool::new(false);
static HOLDING: AtomicUsize = AtomicUsize::new(0);

/// Sets [`RELEASE`] when dropped.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        RELEASE.store(true, Ordering::Release);
    }
}

/// `events_list` gets [`EVENTS_REPLY`], `"hold"` waits for [`RELEASE`], anything else is echoed.
fn fake() -> Arc<MiFn> {
    Arc::new(|req: &[u8]| {
        let text = String::from_utf8_lossy(req);
        if text.contains("hold") {
            HOLDING.fetch_add(1, Ordering::SeqCst);
            while !RELEASE.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(5));
            }
        }
        if text.contains("events_list") {
            return Some(EVENTS_REPLY.as_bytes().to_vec());
        }
        Some(req.to_vec())
    })
}

fn start(mut config: Config, tls: Option<TlsConfig>) -> Server {
    config.tls = tls;
    Server::start("127.0.0.1:0", config, fake()).expect("server starts")
}

/// A response with its `Date` line dropped (the only line that may differ between two servers).
fn without_date(raw: Vec<u8>) -> String {
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let date = lines.iter().position(|l| l.starts_with("Date: "));
    lines.remove(date.expect("a Date header"));
    lines.join("\r\n")
}

/// Whether the server has closed `s` (EOF or reset) within `wait`; bytes it sent are dropped.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    let end = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        s.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Send `bytes` one at a time, `gap` apart, until the server closes the connection; how long
/// that took, or `None` if every byte went out and the connection was still open.
fn drip(s: &mut TcpStream, bytes: &[u8], gap: Duration) -> Option<Duration> {
    let t = Instant::now();
    for b in bytes {
        if s.write_all(&[*b]).is_err() || closed_within(s, gap) {
            return Some(t.elapsed());
        }
    }
    None
}

#[test]
fn json_rpc_over_tls_gets_the_same_reply_as_plain_http() {
    let pki = Pki::new();
    let plain = start(Config::new("mi", 2, 4096), None);
    let tls = start(Config::new("mi", 2, 4096), Some(pki.server(false)));

    let mut c = Client::connect(plain.local_addr());
    c.post("/mi", EVENTS_LIST);
    let over_tcp = c.raw_response();
    let mut t = pki.connect(tls.local_addr());
    t.post("/mi", EVENTS_LIST);
    let over_tls = t.raw_response();

    assert_eq!(without_date(over_tls.clone()), without_date(over_tcp));
    let text = String::from_utf8(over_tls).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&format!("\r\n\r\n{EVENTS_REPLY}")), "{text}");
    assert_eq!(
        t.reader.get_ref().conn.alpn_protocol(),
        Some(&b"http/1.1"[..])
    );

    // Keep-alive: a second request on the same TLS connection.
    t.post("/mi", br#"{"id":2}"#);
    assert_eq!(t.response().unwrap().body, br#"{"id":2}"#);
    // And a clean close: close_notify, then EOF.
    t.send(b"POST /mi HTTP/1.1\r\nConnection: close\r\nContent-Length: 8\r\n\r\n{\"id\":3}");
    let r = t.response().unwrap();
    assert_eq!(r.header("Connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(t.reader.read_to_end(&mut rest).expect("close_notify"), 0);
}

#[test]
fn plain_http_on_the_tls_port_gets_no_http_answer_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let server = start(Config::new("mi", 2, 4096), Some(pki.server(false)));
    let addr = server.local_addr();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = Instant::now();
        let head = format!(
            "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            EVENTS_LIST.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(EVENTS_LIST).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // Refused at once (not left to the 30 s timeout) with one record: a fatal TLS alert
        // (type 21, 2 bytes: level 2 = fatal, then the description).
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(
            matches!(answer[..], [21, 3, _, 0, 2, 2, _]),
            "not a fatal TLS alert: {answer:?} {:?}",
            String::from_utf8_lossy(&answer)
        );

        let mut c = pki.connect(addr);
        c.post("/mi", EVENTS_LIST);
        let r = c.response().expect("a response over TLS");
        assert_eq!(
            (r.status(), r.body.as_slice()),
            (200, EVENTS_REPLY.as_bytes())
        );
    }
}

#[test]
fn auth_token_and_max_body_apply_over_tls() {
    let pki = Pki::new();
    let mut config = Config::new("mi", 2, 1024);
    config.token = Some("s3cret-token".into());
    let server = start(config, Some(pki.server(false)));
    let addr = server.local_addr();

    let mut c = pki.connect(addr);
    c.post("/mi", EVENTS_LIST);
    let r = c.response().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"evid MI\"")
    );
    c.send(
        b"POST /mi HTTP/1.1\r\nAuthorization: Bearer wrong\r\nContent-Length: 8\r\n\r\n{\"id\":1}",
    );
    assert_eq!(c.response().unwrap().status(), 401);

    let post = |c: &mut Client<common::pki::TlsStream>, body: &[u8]| {
        let head = format!(
            "POST /mi HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.send(head.as_bytes());
        c.send(body);
        c.response().expect("a response")
    };
    let r = post(&mut c, EVENTS_LIST);
    assert_eq!(
        (r.status(), r.body.as_slice()),
        (200, EVENTS_REPLY.as_bytes())
    );
    let at_limit = vec![b' '; 1024];
    assert_eq!(post(&mut c, &at_limit).status(), 200);
    let r = post(&mut c, &[b' '; 1025]);
    assert_eq!(r.status(), 413);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn tls_ca_list_requires_a_client_certificate_from_that_ca() {
    let pki = Pki::new();
    let server = start(Config::new("mi", 2, 4096), Some(pki.server(true)));
    let addr = server.local_addr();

    let mut ok = pki
        .try_connect(addr, pki.client(true))
        .expect("handshake with a client certificate");
    ok.post("/mi", EVENTS_LIST);
    assert_eq!(ok.response().unwrap().status(), 200);

    // Another CA's client certificate, and none at all: no HTTP reply. (In TLS 1.3 the client
    // finishes its side before the server has checked it, so the refusal shows on first read.)
    let other = Pki::new();
    for config in [pki.client(false), pki.client_as(Some(&other))] {
        match pki.try_connect(addr, config) {
            Err(_) => {}
            Ok(mut c) => {
                let _ = c
                    .reader
                    .get_mut()
                    .write_all(b"POST /mi HTTP/1.1\r\nContent-Length: 8\r\n\r\n{\"id\":1}");
                assert!(c.response().is_none(), "served without a valid client cert");
            }
        }
    }
    let mut ok = pki
        .try_connect(addr, pki.client(true))
        .expect("still serving");
    ok.post("/mi", EVENTS_LIST);
    assert_eq!(ok.response().unwrap().status(), 200);
}

/// The handshake runs under the same deadline as a request: a silent client and one dripping a
/// real ClientHello a byte at a time are both closed after `timeout`, and neither holds up
/// anyone else meanwhile.
#[test]
fn the_handshake_is_bounded_by_the_timeout_and_blocks_no_one() {
    let pki = Pki::new();
    let mut config = Config::new("mi", 1, 4096);
    config.timeout = Duration::from_millis(400);
    let server = start(config, Some(pki.server(false)));
    let addr = server.local_addr();

    let silent = TcpStream::connect(addr).unwrap();
    let mut hello = Vec::new();
    ClientConnection::new(
        pki.client(false),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap()
    .write_tls(&mut hello)
    .unwrap();
    assert!(hello.len() > 100, "ClientHello of {} bytes", hello.len());
    let dripper = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        drip(&mut s, &hello, Duration::from_millis(50))
    });

    // Served while both are stuck in their handshakes.
    let mut c = pki.connect(addr);
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);

    assert!(closed_within(&silent, Duration::from_secs(3)));
    let took = dripper.join().unwrap().expect("dripping client closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

/// After the handshake too: TLS record bytes dripped slower than any one read times out, but
/// never completing a record, do not hold the connection past the deadline.
#[test]
fn a_request_dripped_as_partial_tls_records_is_cut_at_the_timeout() {
    let pki = Pki::new();
    let mut config = Config::new("mi", 1, 4096);
    config.timeout = Duration::from_millis(400);
    let server = start(config, Some(pki.server(false)));

    let mut sock = TcpStream::connect(server.local_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut conn = ClientConnection::new(
        pki.client(false),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    conn.writer()
        .write_all(
            format!(
                "POST /mi HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
                "p".repeat(100)
            )
            .as_bytes(),
        )
        .unwrap();
    let mut record = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut record).unwrap();
    }
    let took = drip(&mut sock, &record, Duration::from_millis(50)).expect("connection closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

/// Slowloris over TLS: a full house of clients that never send a ClientHello does not lock
/// anyone out; the longest-waiting ones are closed to make room.
#[test]
fn clients_stuck_before_the_handshake_are_evicted_at_the_limit() {
    let pki = Pki::new();
    let server = start(Config::new("mi", 2, 4096), Some(pki.server(false)));
    let addr = server.local_addr();
    let stuck: Vec<TcpStream> = (0..mi_http::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for _ in 0..10 {
        let mut c = pki.connect(addr);
        c.post("/mi", EVENTS_LIST);
        let r = c.response().expect("a response");
        assert_eq!(
            (r.status(), r.body.as_slice()),
            (200, EVENTS_REPLY.as_bytes())
        );
    }
    let closed = stuck
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(20)))
        .count();
    assert!((1..=10).contains(&closed), "{closed} closed");

    // Stop ends the handshakes still waiting, at once.
    let t = Instant::now();
    server.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(stuck
        .iter()
        .all(|s| closed_within(s, Duration::from_secs(1))));
}

/// With every connection inside an MI call there is no one to evict; a TLS newcomer cannot be
/// sent a 503 without a handshake on the accept thread, so it is closed without a byte.
#[test]
fn when_every_tls_connection_is_in_an_mi_call_the_next_is_closed() {
    let pki = Pki::new();
    let max = mi_http::MAX_CONNECTIONS;
    let server = start(Config::new("mi", max, 4096), Some(pki.server(false)));
    // Dropped before `server`, even on a failed assertion: a call still held would keep the
    // server's drop (which joins every thread) from ever returning.
    let _release = Release;
    let addr = server.local_addr();
    let mut busy: Vec<_> = (0..max)
        .map(|_| {
            let mut c = pki.connect(addr);
            c.post("/mi", br#"{"jsonrpc":"2.0","id":1,"method":"hold"}"#);
            c
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while HOLDING.load(Ordering::SeqCst) < max {
        assert!(
            Instant::now() < deadline,
            "{} held",
            HOLDING.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(10));
    }
    let mut late = TcpStream::connect(addr).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = late.read_to_end(&mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    RELEASE.store(true, Ordering::Release);
    for c in &mut busy {
        assert_eq!(c.response().map(|r| r.status()), Some(200));
    }
}

// --- The module: modparams in, HTTPS out, bad files named. ---

fn host() -> Host {
    static HOST: std::sync::OnceLock<&'static FakeHost> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        FakeHost::with_mi(|req| {
            String::from_utf8_lossy(req)
                .contains("events_list")
                .then(|| EVENTS_REPLY.as_bytes().to_vec())
        })
    })
    .host()
}

fn init(pairs: &[(&str, &str)]) -> Result<MiHttp, String> {
    let mut params: Vec<(&str, ParamValue)> = pairs
        .iter()
        .map(|(k, v)| (*k, ParamValue::Str((*v).into())))
        .collect();
    params.push(("port", ParamValue::Int(common::free_port().into())));
    MiHttp::init(host(), &Params::from_pairs(&params))
}

fn init_error(pairs: &[(&str, &str)]) -> String {
    init(pairs).err().expect("init must fail")
}

#[test]
fn modparams_turn_tls_on_and_off() {
    let pki = Pki::new();
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let mut m = init(&[
        ("tls_certificate", cert),
        ("tls_private_key", key),
        ("auth_token", "t"),
    ])
    .expect("init with TLS");
    let addr: SocketAddr = m.local_addr().unwrap();
    let mut c = pki.connect(addr);
    let head = format!(
        "POST /mi HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\n\r\n",
        EVENTS_LIST.len()
    );
    c.send(head.as_bytes());
    c.send(EVENTS_LIST);
    let r = c.response().unwrap();
    assert_eq!(
        (r.status(), r.body.as_slice()),
        (200, EVENTS_REPLY.as_bytes())
    );
    m.destroy();

    // With the tls_* params unset (or empty), plain HTTP as before.
    let mut m = init(&[("tls_certificate", ""), ("tls_private_key", " ")]).expect("plain init");
    let mut c = Client::connect(m.local_addr().unwrap());
    c.post("/mi", EVENTS_LIST);
    assert_eq!(c.response().unwrap().status(), 200);
    m.destroy();
}

#[test]
fn bad_tls_modparams_fail_init_naming_the_param_and_the_file() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        pki.ca.to_str().unwrap(),
    );
    let has = |e: &str, parts: &[&str]| {
        for p in parts {
            assert!(e.contains(p), "{p:?} not in {e:?}");
        }
    };
    let both = ["tls_certificate", "tls_private_key"];
    has(&init_error(&[("tls_certificate", cert)]), &both);
    has(&init_error(&[("tls_private_key", key)]), &both);
    has(
        &init_error(&[("tls_ca_list", ca)]),
        &["tls_ca_list", "tls_certificate"],
    );

    let missing = pki.dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let e = init_error(&[("tls_certificate", missing), ("tls_private_key", key)]);
    has(&e, &["tls_certificate", missing, "cannot read"]);
    let e = init_error(&[("tls_certificate", cert), ("tls_private_key", missing)]);
    has(&e, &["tls_private_key", missing, "cannot read"]);

    let junk = pki.dir.join("junk.txt");
    std::fs::write(&junk, "this is not PEM\n").unwrap();
    let junk = junk.to_str().unwrap();
    let e = init_error(&[("tls_certificate", junk), ("tls_private_key", key)]);
    has(&e, &["tls_certificate", junk, "no PEM certificate"]);
    let e = init_error(&[("tls_certificate", cert), ("tls_private_key", junk)]);
    has(&e, &["tls_private_key", junk, "no PEM private key"]);
    // Swapped files: each is PEM, of the wrong kind.
    let e = init_error(&[("tls_certificate", key), ("tls_private_key", cert)]);
    has(&e, &["tls_certificate", key, "no PEM certificate"]);
    let e = init_error(&[("tls_certificate", cert), ("tls_private_key", ca)]);
    has(&e, &["tls_private_key", ca, "no PEM private key"]);
    // Well-formed, but the key of another certificate.
    let e = init_error(&[
        ("tls_certificate", cert),
        ("tls_private_key", pki.client_key.to_str().unwrap()),
    ]);
    has(
        &e,
        &["tls_private_key", "tls_certificate", cert, "not the key"],
    );
    // A PEM block whose base64 is broken.
    let broken = pki.dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let e = init_error(&[("tls_certificate", broken), ("tls_private_key", key)]);
    has(&e, &["tls_certificate", broken]);
    let e = init_error(&[
        ("tls_certificate", cert),
        ("tls_private_key", key),
        ("tls_ca_list", junk),
    ]);
    has(&e, &["tls_ca_list", junk, "no PEM certificate"]);
    // A directory is not a file.
    let dir = pki.dir.to_str().unwrap();
    let e = init_error(&[("tls_certificate", dir), ("tls_private_key", key)]);
    has(&e, &["tls_certificate", dir, "cannot read"]);
}

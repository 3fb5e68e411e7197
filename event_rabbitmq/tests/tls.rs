//! `tls_domain`: event_rabbitmq speaks AMQPS. The broker on this machine listens in plain AMQP
//! only, so the test puts a real TLS server in front of it (rustls, a throwaway CA from rcgen)
//! that forwards the decrypted bytes to 127.0.0.1:5672: every event that reaches the queue
//! crossed a real TLS session, and a wrong CA or host name gets no further than the handshake.

mod support;

use evi_testkit::{run_to_exit, wait_for, Daemon};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{raise, status, status_json, Queue};

const T: Duration = Duration::from_secs(30);

/// A CA and a server certificate it signed for `localhost` / 127.0.0.1.
struct Pki {
    ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: cert.der().clone(),
        server_key: key.serialize_der(),
    }
}

/// A TLS listener forwarding every session to the broker; counts finished handshakes.
struct TlsFront {
    port: u16,
    handshakes: Arc<AtomicUsize>,
}

impl TlsFront {
    fn start(pki: &Pki) -> TlsFront {
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![pki.server_cert.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
                )
                .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = handshakes.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (config, count) = (config.clone(), count.clone());
                std::thread::spawn(move || forward(client, config, &count));
            }
        });
        TlsFront { port, handshakes }
    }
}

/// Pump one session both ways on one thread (a rustls connection cannot be split), polling each
/// side with a short read timeout.
fn forward(client: TcpStream, config: Arc<ServerConfig>, handshakes: &AtomicUsize) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, client);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return; // a plain-AMQP client or a refused certificate ends here
        }
    }
    handshakes.fetch_add(1, Ordering::Relaxed);
    let Ok(mut broker) = TcpStream::connect(support::ADDR) else {
        return;
    };
    let tick = Some(Duration::from_millis(2));
    if tls.sock.set_read_timeout(tick).is_err() || broker.set_read_timeout(tick).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if broker.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        match broker.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn write_ca(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.display().to_string()
}

#[test]
fn events_cross_a_real_tls_session_and_a_wrong_ca_is_refused() {
    let _lock = support::shared();
    let pki = pki();
    let front = TlsFront::start(&pki);
    let other = pki_ca_only();
    let q = Queue::new("tls", None);
    let dir = evi_testkit::TempDir::new("rmq-tls");
    let ca = write_ca(dir.path(), "ca.pem", &pki.ca_pem);
    let wrong = write_ca(dir.path(), "wrong-ca.pem", &other);
    let port = front.port;
    let mut d = Daemon::start(&format!(
        "loadmodule \"event_rabbitmq.so\"\n\
         modparam(\"event_rabbitmq\", \"use_tls\", 1)\n\
         modparam(\"event_rabbitmq\", \"tls_domain\", \"[rmq] ca_list={ca}; server_name=localhost\")\n\
         modparam(\"event_rabbitmq\", \"tls_domain\", \"[wrong] ca_list={wrong}\")\n\
         startup_route {{\n\
         subscribe_event(\"E_TLS\", \"rabbitmq:127.0.0.1:{port}/tls_domain=rmq?{q}\");\n\
         subscribe_event(\"E_BAD\", \"rabbitmq:127.0.0.1:{port}/tls_domain=wrong?{q}\");\n}}",
        q = q.0
    ));
    for i in 0..3 {
        raise(&d, json!(["E_TLS", format!(r#"{{"i":{i}}}"#)]));
    }
    let got = support::get(&q.0, 3, T);
    let bodies: Vec<String> = got
        .iter()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..3)
            .map(|i| format!(r#"{{"jsonrpc":"2.0","method":"E_TLS","params":{{"i":{i}}}}}"#))
            .collect::<Vec<_>>(),
        "{}\n{}",
        status_json(&d),
        d.log()
    );
    assert!(front.handshakes.load(Ordering::Relaxed) >= 1);
    assert!(
        wait_for(T, || status(&d, "confirmed") == 3),
        "{}",
        status_json(&d)
    );
    // The print form keeps the domain, and the TLS port is shown (it is not 5671).
    let subs = d.sockets("E_TLS");
    assert_eq!(
        subs,
        vec![format!(
            "rabbitmq:guest@127.0.0.1:{port}/tls_domain=rmq?{}",
            q.0
        )]
    );

    // A CA that did not sign the broker's certificate: no session, counted, nothing published.
    let before = front.handshakes.load(Ordering::Relaxed);
    raise(&d, json!(["E_BAD", ["x"]]));
    assert!(
        wait_for(T, || status(&d, "connect_failures") > 0),
        "{}",
        status_json(&d)
    );
    let s = status_json(&d).to_string();
    assert!(
        s.contains("certificate") || s.contains("UnknownIssuer"),
        "the error names the certificate: {s}"
    );
    assert_eq!(front.handshakes.load(Ordering::Relaxed), before);
    // The daemon keeps serving, and the good domain still delivers.
    raise(&d, json!(["E_TLS", ["after"]]));
    assert_eq!(support::get(&q.0, 1, T).len(), 1);
    assert!(d.stop().0.success());
}

fn pki_ca_only() -> String {
    pki().ca_pem
}

#[test]
fn bad_tls_domains_stop_the_start_naming_what_is_wrong() {
    let dir = evi_testkit::TempDir::new("rmq-tls-bad");
    let not_pem = write_ca(dir.path(), "not.pem", "just some text\n");
    for (spec, want) in [
        ("[x] ca_list=/nonexistent/ca.pem", "/nonexistent/ca.pem"),
        ("x ca_list=/x", "expected '[NAME]'"),
        ("[x] verify_cert=2", "verify_cert must be 0 or 1"),
        ("[x] colour=red", "unknown setting 'colour'"),
        ("[x]", "ca_list=FILE is required"),
        (&format!("[x] ca_list={not_pem}"), "no PEM certificate"),
        (
            &format!("[x] verify_cert=0; certificate={not_pem}"),
            "go together",
        ),
    ] {
        let (code, out) = run_to_exit(&format!(
            "loadmodule \"event_rabbitmq.so\"\nmodparam(\"event_rabbitmq\", \"tls_domain\", \"{spec}\")\n"
        ));
        assert_ne!(code, 0, "{spec}: {out}");
        assert!(out.contains(want), "{spec}: wanted '{want}' in: {out}");
        assert!(out.contains("tls_domain"), "{spec}: names the param: {out}");
    }
    // A socket naming an undeclared domain is refused when subscribing.
    let mut d = Daemon::start(
        "loadmodule \"event_rabbitmq.so\"\nstartup_route { subscribe_event(\"E_GOLDEN\", \"rabbitmq:127.0.0.1/k\"); }",
    );
    let e = d
        .mi(
            "event_subscribe",
            json!(["E_GOLDEN", "rabbitmq:127.0.0.1/tls_domain=nope?k"]),
        )
        .expect_err("unknown domain");
    assert!(e.to_string().contains("unknown tls_domain 'nope'"), "{e}");
    assert!(d.stop().0.success());
}

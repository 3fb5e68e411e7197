//! Events/s through the module (raise → queue → sender thread → HTTP keep-alive) to a local
//! XML-RPC server written here (reads each request, answers a methodResponse), counting
//! statuses. `cargo bench -p event_xmlrpc`; EVID_BENCH_N overrides the count (default 200,000).

use event_xmlrpc::config::Config;
use event_xmlrpc::EventXmlrpc;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Module, Transport};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn serve(mut s: std::net::TcpStream) {
    let body = "<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>";
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let Some(end) = buf
            .windows(4)
            .position(|w: &[u8]| w == b"\r\n\r\n")
            .map(|i| i + 4)
        else {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        buf.drain(..end + len);
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn main() {
    let n: u64 = std::env::var("EVID_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || serve(s));
        }
    });
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f) = (ok.clone(), failed.clone());
    let cfg = Config {
        queue_size: 65536,
        ..Config::default()
    };
    let mut m = EventXmlrpc::new(
        cfg,
        Arc::new(move |_: Delivery, r: Result<(), &str>| {
            if r.is_ok() { &o } else { &f }.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let mut sock = m
        .parse("xmlrpc", &format!("127.0.0.1:{port}:on_event"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = TestEvent::new("E_PIKE_BLOCKED").str(Some("ip"), "192.0.2.10");
    let start = Instant::now();
    let mut full = 0u64;
    for i in 0..n {
        // The host would drop on a full queue; here the raiser retries so every event counts.
        while ev.with(|e| m.raise(&mut sock, e, Delivery(i))).is_err() {
            full += 1;
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    while ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    m.free(&mut sock);
    m.destroy();
    println!(
        "event_xmlrpc: {n} events in {secs:.3} s = {:.0} events/s (ok {}, failed {}, queue-full retries {full})",
        n as f64 / secs,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

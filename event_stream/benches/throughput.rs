//! Events/s through the module (raise → queue → sender thread → TCP) to a local consumer that
//! reads and discards, counting statuses. `cargo bench -p event_stream`; EVID_BENCH_N overrides
//! the event count (default 1,000,000).

use event_stream::config::Config;
use event_stream::EventStream;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Module, Transport};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let n: u64 = std::env::var("EVID_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    let bytes = Arc::new(AtomicU64::new(0));
    let b = bytes.clone();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                b.fetch_add(k as u64, Ordering::Relaxed);
            }
        }
    });
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f) = (ok.clone(), failed.clone());
    let cfg = Config {
        timeout: Duration::from_secs(60),
        queue_size: 65536,
        ..Config::default()
    };
    let mut m = EventStream::new(
        cfg,
        Arc::new(move |_: Delivery, r: Result<(), &str>| {
            if r.is_ok() { &o } else { &f }.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let mut sock = m
        .parse("tcp", &format!("127.0.0.1:{port}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = TestEvent::new("E_PIKE_BLOCKED")
        .str(Some("ip"), "192.0.2.10")
        .json(r#"{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"192.0.2.10"}}"#);
    let start = Instant::now();
    let mut dropped = 0u64;
    for i in 0..n {
        // The host would drop on a full queue; here the raiser retries so every event counts.
        while ev.with(|e| m.raise(&mut sock, e, Delivery(i))).is_err() {
            dropped += 1;
            std::thread::yield_now();
        }
    }
    while ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    m.free(&mut sock);
    m.destroy();
    println!(
        "event_stream: {n} events in {secs:.3} s = {:.0} events/s (ok {}, failed {}, queue-full retries {dropped}, {} bytes)",
        n as f64 / secs,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
}

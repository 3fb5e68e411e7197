//! The module in-process with a recording reporter, and the output buffer's invariants.

use crate::config::Config;
use crate::conn::Conn;
use crate::EventStream;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Module, Raised, Transport};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Log = Arc<Mutex<Vec<(u64, Result<(), String>)>>>;

fn module(cfg: Config) -> (EventStream, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let m = EventStream::new(
        cfg,
        Arc::new(move |d: Delivery, r: Result<(), &str>| {
            l.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((d.0, r.map_err(str::to_string)));
        }),
    );
    (m, log)
}

#[test]
fn every_accepted_raise_gets_one_status_and_bytes_arrive_whole() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.read_to_end(&mut all);
        }
        all
    });
    // A generous timeout: on a loaded machine no event may fail for waiting in the queue.
    let cfg = Config {
        timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let (mut m, log) = module(cfg);
    let mut sock = m
        .parse("tcp", &format!("127.0.0.1:{port}"))
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..1000 {
        let ev = TestEvent::new("E")
            .int(None, i)
            .json(format!("{{\"n\":{i}}}"));
        let r = ev.with(|e| m.raise(&mut sock, e, Delivery(i as u64)));
        assert_eq!(r, Ok(Raised::Pending));
    }
    m.free(&mut sock);
    m.destroy();
    let want: String = (0..1000).map(|i| format!("{{\"n\":{i}}}")).collect();
    let got = reader.join().unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&got), want);
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(log.len(), 1000);
    assert!(
        log.iter().all(|(_, r)| r.is_ok()),
        "{:?}",
        log.iter().find(|(_, r)| r.is_err())
    );
}

#[test]
fn expiry_removes_only_whole_unstarted_objects() {
    // A listener that never reads: a big first object is only partly written.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Conn::default();
    let now = Instant::now();
    let later = now + Duration::from_secs(60);
    let big = vec![b'a'; 16 << 20];
    c.push(|o| o.extend_from_slice(&big), (Delivery(1), 0, now));
    c.push(|o| o.extend_from_slice(b"{expired}"), (Delivery(2), 0, now));
    c.push(|o| o.extend_from_slice(b"{kept}"), (Delivery(3), 0, later));
    c.connect(addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let done = c.write().unwrap_or_else(|e| panic!("{e}"));
    assert!(done.is_empty(), "16 MiB cannot fit in the socket buffers");
    assert!(c.unwritten() > 0 && c.unwritten() < big.len() + 15);
    // The first object is started, so it stays although its deadline passed.
    let expired: Vec<u64> = c
        .expire_unstarted(Instant::now())
        .iter()
        .map(|f| f.delivery.0)
        .collect();
    assert_eq!(expired, vec![2]);
    // After a lost connection the started object is rewritten from its first byte.
    c.close();
    assert_eq!(c.unwritten(), big.len() + b"{kept}".len());
    let all: Vec<u64> = c.take_all().iter().map(|f| f.delivery.0).collect();
    assert_eq!(all, vec![1, 3]);
}

//! The module in-process with a recording reporter: exactly one status per accepted raise,
//! also at shutdown, and `destroy` joins every thread without waiting out retries.

use crate::config::Config;
use crate::EventXmlrpc;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Module, Raised, Transport};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<(u64, Result<(), String>)>>>;

fn module(cfg: Config) -> (EventXmlrpc, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let m = EventXmlrpc::new(
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
fn every_accepted_raise_gets_one_status_even_at_shutdown() {
    let cfg = Config {
        retries: 50,
        ..Config::default()
    };
    let (mut m, log) = module(cfg);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    // Nothing listens any more: connects are refused, and each event would retry 50 times.
    let mut sock = m
        .parse("xmlrpc", &format!("127.0.0.1:{dead}:m"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = TestEvent::new("E").str(Some("a"), "<&>");
    for i in 0..20 {
        let r = ev.with(|e| m.raise(&mut sock, e, Delivery(i)));
        assert_eq!(r, Ok(Raised::Pending));
    }
    m.free(&mut sock);
    m.destroy();
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut ids: Vec<u64> = log.iter().map(|(d, _)| *d).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>(), "{log:?}");
    assert!(log.iter().all(|(_, r)| r.is_err()), "{log:?}");
}

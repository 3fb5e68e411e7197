//! Helpers shared by the integration tests: raising numbered events over MI, reading what each
//! destination got, checking that nothing was lost and that each destination kept the order.

#![allow(dead_code)]

pub mod fault_server;

use evi_testkit::{wait_for, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const T: Duration = Duration::from_secs(60);

/// Raise `E_V` with `{"i": i}` over MI.
pub fn raise(d: &Daemon, i: i64) {
    let params = json!(["E_V", format!(r#"{{"i":{i}}}"#)]);
    assert_eq!(
        d.mi("raise_event", params.clone()).ok(),
        Some(json!("OK")),
        "{params}"
    );
}

/// `event_virtual:stats`.
pub fn stats(d: &Daemon) -> Value {
    d.mi("event_virtual:stats", json!([]))
        .unwrap_or_else(|e| panic!("event_virtual:stats: {e}"))
}

/// A group counter of the first virtual socket.
pub fn group(d: &Daemon, field: &str) -> u64 {
    stats(d)[0][field].as_u64().unwrap_or(0)
}

/// A counter of member `m` of the first virtual socket.
pub fn member(d: &Daemon, m: usize, field: &str) -> u64 {
    stats(d)[0]["members"][m][field].as_u64().unwrap_or(0)
}

/// Wait until the group has an outcome for `n` events.
pub fn wait_settled(d: &Daemon, n: u64) {
    assert!(
        wait_for(T, || group(d, "delivered") + group(d, "failed") >= n
            && group(d, "pending") == 0),
        "{}",
        stats(d)
    );
}

/// `i` of a JSON-RPC notification body.
pub fn id_of_json(body: &[u8]) -> Option<i64> {
    serde_json::from_slice::<Value>(body).ok()?["params"]["i"].as_i64()
}

/// `i` of each flatstore line `E_V,i`, in file order.
pub fn ids_in_file(p: &Path) -> Vec<i64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("E_V,")?.trim().parse().ok())
        .collect()
}

/// Datagrams read by a thread as they come (a socket buffer must not overflow meanwhile).
pub struct Collector {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    pub fn udp(sock: &UdpSocket) -> Collector {
        let s = sock.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        Self::spawn(move |buf| s.recv(buf).ok())
    }

    pub fn unix(sock: &UnixDatagram) -> Collector {
        let s = sock.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        Self::spawn(move |buf| s.recv(buf).ok())
    }

    fn spawn(mut recv: impl FnMut(&mut [u8]) -> Option<usize> + Send + 'static) -> Collector {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while !s.load(Ordering::Relaxed) {
                if let Some(n) = recv(&mut buf) {
                    g.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(buf[..n].to_vec());
                }
            }
        });
        Collector {
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// The `i` of every datagram so far, in arrival order.
    pub fn ids(&self) -> Vec<i64> {
        self.got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|b| id_of_json(b))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Each destination in raise order (first copies; a duplicate may come later), and every
/// event of `0..n` somewhere. Returns how many duplicates there were, for the test to report.
pub fn check_complete_and_ordered(n: i64, dests: &[(&str, &[i64])]) -> usize {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for (name, ids) in dests {
        let mut last = -1;
        let mut first = std::collections::BTreeSet::new();
        for &i in ids.iter() {
            *seen.entry(i).or_insert(0) += 1;
            if first.insert(i) {
                assert!(i > last, "{name}: {i} after {last}: order lost in {ids:?}");
                last = i;
            }
        }
    }
    let missing: Vec<i64> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "lost {} events: {missing:?}",
        missing.len()
    );
    seen.values().map(|c| c - 1).sum()
}

//! Real-socket tests of the transport through its `Transport` impl (no host, no mocks).

use crate::sender::{Sent, Target, BATCH_BYTES, BATCH_MSGS, UDP4_MAX, UDP6_MAX};
use crate::Datagram;
use evi_sdk::testing::{FakeHost, TestEvent};
use evi_sdk::{Delivery, Module, Raised, Transport};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What OpenSIPS 3.6.8 sent for the conformance events 0..=4 (see the conformance README).
const GOLDEN: [&[u8]; 5] = [
    include_bytes!("../../../shared/conformance/opensips/event_datagram_0.json"),
    include_bytes!("../../../shared/conformance/opensips/event_datagram_1.json"),
    include_bytes!("../../../shared/conformance/opensips/event_datagram_2.json"),
    include_bytes!("../../../shared/conformance/opensips/event_datagram_3.json"),
    include_bytes!("../../../shared/conformance/opensips/event_datagram_4.json"),
];

const TIMEOUT: Duration = Duration::from_secs(5);

/// The module on a fake host that records the delivery reports, as the real host counts them.
struct Rig {
    m: Datagram,
    host: &'static FakeHost,
    next: u64,
}

fn module() -> Rig {
    let host = FakeHost::new();
    Rig {
        m: Datagram::new(host.host()).unwrap_or_else(|e| panic!("init: {e}")),
        host,
        next: 0,
    }
}

impl Rig {
    fn parse(&mut self, uri: &str) -> Target {
        let (proto, body) = uri.split_once(':').unwrap_or((uri, ""));
        self.m
            .parse(proto, body)
            .unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    /// A unix receiver bound at `name` in `dir`, and a target sending to it.
    fn unix_peer(&mut self, dir: &TempDir, name: &str) -> (UnixDatagram, Target) {
        let path = dir.sock(name);
        let rx = unix_receiver(&path);
        (rx, self.parse(&format!("unix:{path}")))
    }

    fn parse_err(&mut self, uri: &str) -> String {
        let (proto, body) = uri.split_once(':').unwrap_or((uri, ""));
        self.m.parse(proto, body).expect_err(uri)
    }

    fn delivery(&mut self) -> Delivery {
        self.next += 1;
        Delivery(self.next)
    }

    /// Raise `ev` and return the transport's own answer (`Pending` for a queued event).
    fn raise_event(
        &mut self,
        t: &mut Target,
        ev: &TestEvent,
    ) -> (Delivery, Result<Raised, String>) {
        let d = self.delivery();
        (d, ev.with(|e| self.m.raise(t, e, d)))
    }

    /// Raise `payload` without flushing; `Ok` is the delivery the outcome will be reported for.
    fn queue(&mut self, t: &mut Target, payload: &[u8]) -> Delivery {
        let (d, r) = self.raise_event(t, &TestEvent::new("E_TEST").json(payload));
        assert_eq!(r, Ok(Raised::Pending));
        d
    }

    /// Raise `ev` and flush: the outcome the host ends up counting for it.
    fn deliver(&mut self, t: &mut Target, ev: &TestEvent) -> Result<(), String> {
        let (d, r) = self.raise_event(t, ev);
        match r? {
            Raised::Done => {
                assert_eq!(
                    self.reports_for(d),
                    vec![],
                    "a synchronous outcome is not reported"
                );
                Ok(())
            }
            Raised::Pending => {
                self.m.flush();
                self.outcome(d)
            }
        }
    }

    fn raise(&mut self, t: &mut Target, payload: &[u8]) -> Result<(), String> {
        self.deliver(t, &TestEvent::new("E_TEST").json(payload))
    }

    fn reports_for(&self, d: Delivery) -> Vec<Result<(), String>> {
        self.host
            .statuses()
            .into_iter()
            .filter(|(id, _)| *id == d.0)
            .map(|(_, r)| r)
            .collect()
    }

    /// The one outcome reported for `d`.
    fn outcome(&self, d: Delivery) -> Result<(), String> {
        let mut r = self.reports_for(d);
        assert_eq!(
            r.len(),
            1,
            "delivery {d:?} must be reported exactly once: {r:?}"
        );
        r.remove(0)
    }

    fn reported(&self) -> usize {
        self.host.statuses().len()
    }
}

/// Golden event 0 as the host would hand it over: its params and its prebuilt JSON.
fn golden_event() -> TestEvent {
    TestEvent::new("E_GOLDEN")
        .int(Some("id"), 42)
        .str(Some("user"), "alice")
        .str(Some("msg"), "hello world")
        .json(GOLDEN[0])
}

fn udp_receiver(addr: &str) -> Option<(UdpSocket, String)> {
    let rx = UdpSocket::bind(addr).ok()?;
    rx.set_read_timeout(Some(TIMEOUT)).ok()?;
    let local = rx.local_addr().ok()?;
    Some((rx, local.to_string()))
}

fn recv(rx: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let n = rx.recv(&mut buf).expect("datagram within the timeout");
    buf.truncate(n);
    buf
}

/// A fresh directory for unix sockets, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("evi-dgram-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("temp dir");
        TempDir(p)
    }

    fn sock(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix_receiver(path: &str) -> UnixDatagram {
    let rx = UnixDatagram::bind(path).expect("bind unix receiver");
    rx.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    rx
}

#[test]
fn golden_path_resolves() {
    assert!(GOLDEN[0].starts_with(br#"{"jsonrpc":"2.0","method":"E_GOLDEN","params":{"id":42"#));
    assert!(GOLDEN.iter().all(|g| !g.ends_with(b"\n")));
}

#[test]
fn udp_v4_sends_the_golden_bytes() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind 127.0.0.1");
    let mut t = m.parse(&format!("udp:{addr}"));
    assert_eq!(m.deliver(&mut t, &golden_event()), Ok(()));
    assert_eq!(recv(&rx), GOLDEN[0]);
    // Every golden payload goes out byte for byte, one datagram each.
    for g in GOLDEN {
        assert_eq!(m.raise(&mut t, g), Ok(()));
        assert_eq!(recv(&rx), g);
    }
}

#[test]
fn udp_v6_loopback() {
    let mut m = module();
    let Some((rx, addr)) = udp_receiver("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let mut t = m.parse(&format!("udp:{addr}"));
    let mut printed = String::new();
    m.m.print(&t, &mut printed);
    assert_eq!(printed, addr);
    match m.deliver(&mut t, &golden_event()) {
        Ok(()) => assert_eq!(recv(&rx), GOLDEN[0]),
        // An IPv6 stack without a usable socket on this host: the error must say so.
        Err(e) => assert!(e.contains("IPv6 is unavailable"), "{e}"),
    }
}

#[test]
fn unix_sends_the_golden_bytes() {
    let mut m = module();
    let dir = TempDir::new("unix");
    let (rx, mut t) = m.unix_peer(&dir, "rx.sock");
    assert_eq!(m.deliver(&mut t, &golden_event()), Ok(()));
    let mut buf = vec![0u8; 4096];
    let n = rx.recv(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], GOLDEN[0]);
}

#[test]
fn transport_parse_match_print() {
    let mut m = module();
    assert_eq!(
        m.parse_err("udp:127.0.0.1:0"),
        "bad port '0' in udp:127.0.0.1:0 (expected 1-65535)"
    );
    assert_eq!(
        m.parse_err("unix:"),
        "missing path in unix: (expected unix:/path/to/socket)"
    );
    let a = m.parse("udp:127.0.0.1:9000");
    let b = m.parse("udp:127.0.0.10:9000");
    let c = m.parse("udp:localhost:9000");
    let (u1, u2) = (m.parse("unix:/tmp/a"), m.parse("unix:/tmp/ab"));
    let m = &m.m;
    assert!(m.matches(&a, &a));
    assert!(!m.matches(&a, &b));
    assert!(m.matches(&a, &c));
    assert!(!m.matches(&u1, &u2) && !m.matches(&u2, &u1) && !m.matches(&u1, &a));
    let mut out = String::new();
    m.print(&c, &mut out);
    assert_eq!(out, "localhost:9000");
}

#[test]
fn udp_size_limits() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    let max = vec![b'x'; UDP4_MAX];
    assert_eq!(m.raise(&mut t, &max), Ok(()));
    assert_eq!(recv(&rx).len(), UDP4_MAX);
    let over = vec![b'x'; UDP4_MAX + 1];
    assert_eq!(
        m.raise(&mut t, &over),
        Err(format!("udp:{addr}: event of 65508 bytes exceeds the UDP/IPv4 datagram limit of 65507 bytes, event dropped"))
    );
    let mut t6 = m.parse("udp:[::1]:9");
    let over6 = vec![b'x'; UDP6_MAX + 1];
    assert_eq!(
        m.raise(&mut t6, &over6),
        Err("udp:[::1]:9: event of 65528 bytes exceeds the UDP/IPv6 datagram limit of 65527 bytes, event dropped"
            .to_string())
    );
    // Refused before queueing: nothing is left for a flush to report.
    m.m.flush();
    assert_eq!(m.reported(), 1);
}

#[test]
fn empty_payload_is_an_error() {
    let mut m = module();
    let mut t = m.parse("udp:127.0.0.1:9");
    assert_eq!(
        m.raise(&mut t, b""),
        Err("udp:127.0.0.1:9: event has no JSON payload, nothing sent".into())
    );
}

#[test]
fn missing_ipv6_fails_only_v6_sends() {
    let mut m = module();
    m.m = m.m.without_ipv6();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t4 = m.parse(&format!("udp:{addr}"));
    let mut t6 = m.parse("udp:[::1]:9");
    assert_eq!(m.raise(&mut t4, GOLDEN[2]), Ok(()));
    assert_eq!(recv(&rx), GOLDEN[2]);
    assert_eq!(
        m.raise(&mut t6, GOLDEN[2]),
        Err("udp:[::1]:9: IPv6 is unavailable (disabled by test), event dropped".into())
    );
}

#[test]
fn unix_peer_missing_names_the_path() {
    let mut m = module();
    let dir = TempDir::new("missing");
    let path = dir.sock("nobody.sock");
    let mut t = m.parse(&format!("unix:{path}"));
    assert_eq!(
        m.raise(&mut t, GOLDEN[3]),
        Err(format!(
            "unix:{path}: no socket at this path (ENOENT), event dropped"
        ))
    );
    // A socket file whose owner has closed it (a crashed subscriber).
    drop(unix_receiver(&path));
    assert_eq!(
        m.raise(&mut t, GOLDEN[3]),
        Err(format!(
            "unix:{path}: nothing is bound to this socket (ECONNREFUSED), event dropped"
        ))
    );
    // Once a subscriber binds the path, the same subscription starts working.
    std::fs::remove_file(&path).expect("remove stale socket");
    let rx = unix_receiver(&path);
    assert_eq!(m.raise(&mut t, GOLDEN[3]), Ok(()));
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], GOLDEN[3]);
}

/// Send to `t` until the receiver (which never reads) is full; returns the error and the
/// slowest single raise and flush.
fn fill(m: &mut Rig, t: &mut Target, payload: &[u8]) -> (String, Duration) {
    let mut slowest = Duration::ZERO;
    for _ in 0..100_000 {
        let start = Instant::now();
        let r = m.raise(t, payload);
        slowest = slowest.max(start.elapsed());
        if let Err(e) = r {
            return (e, slowest);
        }
    }
    panic!("receiver never filled up");
}

#[test]
fn unix_receiver_that_never_reads_gets_eagain_without_blocking() {
    let mut m = module();
    let dir = TempDir::new("full");
    let (_rx, mut t) = m.unix_peer(&dir, "stuck.sock");
    let path = dir.sock("stuck.sock");
    let (e, slowest) = fill(&mut m, &mut t, GOLDEN[0]);
    assert_eq!(
        e,
        format!("unix:{path}: receiver's socket buffer full, event dropped")
    );
    assert!(
        slowest < Duration::from_millis(100),
        "a raise took {slowest:?}"
    );
    // Still full: fails again at once, no retry loop.
    let start = Instant::now();
    assert!(m.raise(&mut t, GOLDEN[0]).is_err());
    assert!(start.elapsed() < Duration::from_millis(100));
}

/// A batch larger than the kernel's unix queue (`max_dgram_qlen`, 10 by default) to a receiver
/// that reads as datagrams come: the batch waits for the queue to drain, and every event gets
/// there.
#[test]
fn a_batch_larger_than_the_unix_queue_reaches_a_reading_receiver() {
    let mut m = module();
    let dir = TempDir::new("burst");
    let (rx, mut t) = m.unix_peer(&dir, "rx.sock");
    let n = BATCH_MSGS;
    let reader = std::thread::spawn(move || {
        // Late by a moment, as a receiver busy elsewhere would be: the queue fills first.
        std::thread::sleep(Duration::from_micros(200));
        let mut buf = [0u8; 512];
        (0..n)
            .map(|_| rx.recv(&mut buf).map(|len| buf[..len].to_vec()))
            .collect::<Result<Vec<_>, _>>()
    });
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{{\"i\":{i}}}").into_bytes())
        .collect();
    let ds: Vec<Delivery> = payloads.iter().map(|p| m.queue(&mut t, p)).collect();
    m.m.flush();
    for d in ds {
        assert_eq!(m.outcome(d), Ok(()));
    }
    let got = reader
        .join()
        .unwrap_or_else(|_| panic!("reader panicked"))
        .unwrap_or_else(|e| panic!("reader: {e}"));
    assert_eq!(got, payloads, "every event, in order");
}

#[test]
fn stuck_unix_receiver_does_not_starve_others() {
    let mut m = module();
    let dir = TempDir::new("starve");
    let (stuck, live) = (dir.sock("stuck.sock"), dir.sock("live.sock"));
    let _stuck_rx = unix_receiver(&stuck);
    let live_rx = unix_receiver(&live);
    let mut ts = m.parse(&format!("unix:{stuck}"));
    let mut tl = m.parse(&format!("unix:{live}"));
    // Large events fill the sending socket's buffer before the receiver's queue limit: with a
    // shared sending socket the live subscriber would get EAGAIN as well.
    let big = vec![b'x'; 30_000];
    let (e, _) = fill(&mut m, &mut ts, &big);
    assert!(e.ends_with("socket buffer full, event dropped"), "{e}");
    assert_eq!(m.raise(&mut tl, &big), Ok(()));
    let mut buf = vec![0u8; 40_000];
    assert_eq!(live_rx.recv(&mut buf).expect("datagram"), big.len());
}

#[test]
fn unix_oversized_names_size_and_limit() {
    let mut m = module();
    let dir = TempDir::new("big");
    let (_rx, mut t) = m.unix_peer(&dir, "rx.sock");
    let path = dir.sock("rx.sock");
    let e = m
        .raise(&mut t, &vec![b'x'; 4_000_000])
        .expect_err("too large");
    let head = format!("unix:{path}: event of 4000000 bytes exceeds the unix datagram limit of ");
    let tail = " bytes (send buffer size), event dropped";
    assert!(e.starts_with(&head) && e.ends_with(tail), "{e}");
    let limit = &e[head.len()..e.len() - tail.len()];
    assert!(limit.parse::<usize>().is_ok_and(|l| l > 1000), "{e}");
}

/// `n` bytes that say which destination and which event they are.
fn numbered(dest: usize, seq: usize) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","method":"E_SEQ","params":[{dest},{seq}]}}"#).into_bytes()
}

#[test]
fn queued_events_go_out_at_flush_in_order_with_one_report_each() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    let ds: Vec<Delivery> = (0..10).map(|i| m.queue(&mut t, &numbered(0, i))).collect();
    rx.set_nonblocking(true).expect("nonblocking");
    assert!(rx.recv(&mut [0u8; 256]).is_err(), "sent before the flush");
    assert_eq!(m.reported(), 0);
    m.m.flush();
    let reports = m.host.statuses();
    let want: Vec<(u64, Result<(), String>)> = ds.iter().map(|d| (d.0, Ok(()))).collect();
    assert_eq!(reports, want);
    rx.set_nonblocking(false).expect("blocking");
    for i in 0..10 {
        assert_eq!(recv(&rx), numbered(0, i));
    }
    // An empty flush sends and reports nothing.
    m.m.flush();
    assert_eq!(m.reported(), 10);
}

#[test]
fn a_full_batch_is_sent_before_the_next_event_is_queued() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    for i in 0..BATCH_MSGS {
        m.queue(&mut t, &numbered(0, i));
    }
    assert_eq!(m.reported(), 0);
    let last = m.queue(&mut t, &numbered(0, BATCH_MSGS));
    assert_eq!(m.reported(), BATCH_MSGS);
    assert_eq!(
        m.reports_for(last),
        vec![],
        "reported before its raise returned"
    );
    for i in 0..BATCH_MSGS {
        assert_eq!(recv(&rx), numbered(0, i));
    }
    m.m.flush();
    assert_eq!(m.outcome(last), Ok(()));
    assert_eq!(recv(&rx), numbered(0, BATCH_MSGS));

    // The byte bound: a payload that would overflow the buffer sends the batch first.
    let chunk = vec![b'y'; BATCH_BYTES / 2 - 1];
    let a = m.queue(&mut t, &chunk);
    let b = m.queue(&mut t, &chunk);
    assert_eq!(m.reports_for(a), vec![]);
    let c = m.queue(&mut t, &chunk);
    assert_eq!((m.outcome(a), m.outcome(b)), (Ok(()), Ok(())));
    m.m.flush();
    assert_eq!(m.outcome(c), Ok(()));
    for _ in 0..3 {
        assert_eq!(recv(&rx), chunk);
    }
}

#[test]
fn interleaved_destinations_keep_their_order() {
    let mut m = module();
    let dir = TempDir::new("order");
    let udp: Vec<(UdpSocket, String)> = (0..2)
        .map(|_| udp_receiver("127.0.0.1:0").expect("bind"))
        .collect();
    let unix: Vec<(UnixDatagram, String)> = (0..2)
        .map(|i| {
            let p = dir.sock(&format!("rx{i}.sock"));
            (unix_receiver(&p), p)
        })
        .collect();
    let uris: Vec<String> = udp
        .iter()
        .map(|(_, a)| format!("udp:{a}"))
        .chain(unix.iter().map(|(_, p)| format!("unix:{p}")))
        .collect();
    let mut targets: Vec<Target> = uris.iter().map(|u| m.parse(u)).collect();
    // UDP: across several batches. Unix: within the default receive queue of 10 datagrams
    // (net.unix.max_dgram_qlen), as nobody reads until the end.
    let (udp_n, unix_n) = (3 * BATCH_MSGS, 8);
    let mut ds = Vec::new();
    for seq in 0..udp_n {
        for (dest, t) in targets.iter_mut().enumerate() {
            if dest < 2 || seq < unix_n {
                ds.push(m.queue(t, &numbered(dest, seq)));
            }
        }
    }
    m.m.flush();
    for d in ds {
        assert_eq!(m.outcome(d), Ok(()));
    }
    for (dest, (rx, _)) in udp.iter().enumerate() {
        for seq in 0..udp_n {
            assert_eq!(recv(rx), numbered(dest, seq));
        }
    }
    let mut buf = [0u8; 256];
    for (dest, (rx, _)) in unix.iter().enumerate() {
        for seq in 0..unix_n {
            let n = rx.recv(&mut buf).expect("datagram");
            assert_eq!(&buf[..n], numbered(dest + 2, seq));
        }
    }
}

/// A busy destination goes out on its own connected socket, which learns of an ICMP "port
/// unreachable" on its next send: a receiver that stops and comes back must still get every
/// event sent once it is back, and no event is failed for what an earlier datagram met.
#[test]
fn a_busy_receiver_that_restarts_gets_every_event_once_back() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    let batch = crate::sender::CONNECTED_FROM as usize + 2;
    let mut send = |m: &mut Rig, round: usize| -> Vec<Delivery> {
        let ds = (0..batch)
            .map(|i| m.queue(&mut t, &numbered(round, i)))
            .collect();
        m.m.flush();
        ds
    };
    let mut ds = send(&mut m, 0);
    for i in 0..batch {
        assert_eq!(recv(&rx), numbered(0, i));
    }
    drop(rx);
    // Nobody listens: fire-and-forget, as with any UDP receiver that is gone.
    ds.extend(send(&mut m, 1));
    let (rx, again) = udp_receiver(&addr).expect("bind the same port again");
    assert_eq!(again, addr);
    ds.extend(send(&mut m, 2));
    for d in ds {
        assert_eq!(m.outcome(d), Ok(()));
    }
    for i in 0..batch {
        assert_eq!(recv(&rx), numbered(2, i));
    }
}

/// Once a destination has its own socket, every later datagram to it leaves from that socket,
/// busy batch or not: one flow, so nothing on the way can reorder two of them.
#[test]
fn a_busy_destination_keeps_one_source_port() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    let busy = crate::sender::CONNECTED_FROM as usize;
    let mut seq = 0;
    for batch in [busy, 1, busy, 2] {
        for _ in 0..batch {
            m.queue(&mut t, &numbered(0, seq));
            seq += 1;
        }
        m.m.flush();
    }
    let mut buf = [0u8; 256];
    let mut from = std::collections::BTreeSet::new();
    for i in 0..seq {
        let (n, src) = rx.recv_from(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], numbered(0, i));
        from.insert(src);
    }
    assert_eq!(from.len(), 1, "{from:?}");
}

#[test]
fn a_refusal_inside_a_batch_fails_that_event_only() {
    let mut m = module();
    let dir = TempDir::new("partial");
    let path = dir.sock("stuck.sock");
    let stuck = unix_receiver(&path);
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut tu = m.parse(&format!("unix:{path}"));
    let mut tl = m.parse(&format!("udp:{addr}"));
    // More than the unix receiver's queue holds, interleaved with a live UDP subscriber, all in
    // one batch: the unix sendmmsg stops part-way and every later message must be accounted.
    let n = 30;
    let mut unix_ds = Vec::new();
    let mut udp_ds = Vec::new();
    for seq in 0..n {
        unix_ds.push(m.queue(&mut tu, &numbered(0, seq)));
        udp_ds.push(m.queue(&mut tl, &numbered(1, seq)));
    }
    m.m.flush();
    assert_eq!(m.reported(), 2 * n);
    let outcomes: Vec<Result<(), String>> = unix_ds.iter().map(|d| m.outcome(*d)).collect();
    let ok = outcomes.iter().take_while(|r| r.is_ok()).count();
    assert!(ok > 0 && ok < n, "{outcomes:?}");
    let full = format!("unix:{path}: receiver's socket buffer full, event dropped");
    assert!(
        outcomes[ok..].iter().all(|r| r.as_ref() == Err(&full)),
        "{outcomes:?}"
    );
    // What was reported delivered is exactly what the receiver has, in order.
    stuck.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    for seq in 0..ok {
        let len = stuck.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..len], numbered(0, seq));
    }
    assert!(stuck.recv(&mut buf).is_err(), "more than reported");
    for (seq, d) in udp_ds.iter().enumerate() {
        assert_eq!(m.outcome(*d), Ok(()));
        assert_eq!(recv(&rx), numbered(1, seq));
    }
}

#[test]
fn free_and_destroy_send_what_is_queued() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = m.parse(&format!("udp:{addr}"));
    let mut other = m.parse("udp:127.0.0.1:9");
    let ds: Vec<Delivery> = (0..3).map(|i| m.queue(&mut t, &numbered(0, i))).collect();
    // Freeing another socket leaves the batch alone.
    m.m.free(&mut other);
    assert_eq!(m.reported(), 0);
    m.m.free(&mut t);
    for (i, d) in ds.iter().enumerate() {
        assert_eq!(m.outcome(*d), Ok(()));
        assert_eq!(recv(&rx), numbered(0, i));
    }
    let mut t = m.parse(&format!("udp:{addr}"));
    let d = m.queue(&mut t, GOLDEN[1]);
    m.m.destroy();
    assert_eq!(m.outcome(d), Ok(()));
    assert_eq!(recv(&rx), GOLDEN[1]);
}

#[test]
fn events_larger_than_the_batch_go_out_after_it() {
    let mut m = module();
    let dir = TempDir::new("large");
    let (rx, mut t) = m.unix_peer(&dir, "rx.sock");
    let small = [m.queue(&mut t, GOLDEN[0]), m.queue(&mut t, GOLDEN[1])];
    let big = vec![b'z'; BATCH_BYTES + 1];
    let (d, r) = m.raise_event(&mut t, &TestEvent::new("E_BIG").json(&big));
    assert_eq!(r, Ok(Raised::Done));
    assert_eq!(m.reports_for(d), vec![]);
    assert_eq!((m.outcome(small[0]), m.outcome(small[1])), (Ok(()), Ok(())));
    let mut buf = vec![0u8; 2 * BATCH_BYTES];
    for want in [GOLDEN[0], GOLDEN[1], &big] {
        let n = rx.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], want);
    }
}

/// Counts heap allocations per thread, to prove the raise path does none.
struct CountingAlloc;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn raise_and_flush_do_not_allocate() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let dir = TempDir::new("alloc");
    let path = dir.sock("rx.sock");
    let urx = unix_receiver(&path);
    let mut targets = [
        m.parse(&format!("udp:{addr}")),
        m.parse(&format!("unix:{path}")),
    ];
    let ev = golden_event();
    // Through the Transport: queueing only (the fake host's reports allocate).
    let allocs = ev.with(|ev| {
        let before = ALLOCS.with(Cell::get);
        for t in &mut targets {
            for i in 0..5 {
                assert_eq!(m.m.raise(t, ev, Delivery(i)), Ok(Raised::Pending));
            }
        }
        ALLOCS.with(Cell::get) - before
    });
    assert_eq!(allocs, 0);
    // The sender with a report that does not allocate: queueing, full batches and flushes.
    let mut ok = [0u64; 2];
    let mut report = |_: Delivery, r: Result<(), &str>| ok[usize::from(r.is_err())] += 1;
    let before = ALLOCS.with(Cell::get);
    m.m.sender.flush(&mut report);
    for i in 0..3 * BATCH_MSGS as u64 {
        let r =
            m.m.sender
                .send(&targets[0], GOLDEN[0], Delivery(i), &mut report);
        assert_eq!(r, Ok(Sent::Queued));
    }
    m.m.sender.flush(&mut report);
    assert_eq!(ALLOCS.with(Cell::get) - before, 0);
    assert_eq!(ok, [10 + 3 * BATCH_MSGS as u64, 0]);
    // The counter itself works.
    let before = ALLOCS.with(Cell::get);
    std::hint::black_box(vec![0u8; 16]);
    assert!(ALLOCS.with(Cell::get) > before);
    for _ in 0..5 + 3 * BATCH_MSGS {
        assert_eq!(recv(&rx), GOLDEN[0]);
    }
    let mut buf = [0u8; 256];
    for _ in 0..5 {
        let n = urx.recv(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], GOLDEN[0]);
    }
}

#[test]
fn exports_two_protos_with_json_and_expires() {
    extern "C" {
        static evi_module: evi_sdk::abi::EviModuleDecl;
    }
    // SAFETY: the static written by export_module! in this crate; its strings are 'static.
    let (name, protos) = unsafe {
        let d = &evi_module;
        let ts = std::slice::from_raw_parts(d.transports, d.n_transports);
        let protos: Vec<(Vec<u8>, u32)> = ts
            .iter()
            .map(|t| (t.proto.as_bytes().to_vec(), t.flags))
            .collect();
        (d.name.as_bytes().to_vec(), protos)
    };
    assert_eq!(name, b"event_datagram");
    let flags = evi_sdk::EXPIRES | evi_sdk::JSON;
    assert_eq!(
        protos,
        vec![(b"udp".to_vec(), flags), (b"unix".to_vec(), flags)]
    );
}

/// Raise rate to one UDP receiver, with a flush every 256 raises as the host does:
/// `cargo test -p event_datagram --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_udp() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        while rx.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    let mut t = m.parse(&format!("udp:{addr}"));
    let total = 2_000_000u64;
    // [delivered, failed]
    let mut counts = [0u64; 2];
    let start = Instant::now();
    golden_event().with(|ev| {
        let mut report = |_: Delivery, r: Result<(), &str>| counts[usize::from(r.is_err())] += 1;
        for i in 0..total {
            match m.m.sender.send(&t, ev.json(), Delivery(i), &mut report) {
                Ok(Sent::Queued) => {}
                Ok(Sent::Now) => report(Delivery(i), Ok(())),
                Err(e) => report(Delivery(i), Err(&e)),
            }
            if i % 256 == 255 {
                m.m.sender.flush(&mut report);
            }
        }
        m.m.sender.flush(&mut report);
    });
    let secs = start.elapsed().as_secs_f64();
    let received = reader.join().unwrap_or(0);
    m.m.free(&mut t);
    eprintln!(
        "{total} raises in {secs:.3}s = {:.0}/s; delivered {}, failed {}; received {received}",
        total as f64 / secs,
        counts[0],
        counts[1]
    );
}

#[test]
fn readme_matches_the_export_table() {
    extern "C" {
        /// Written by `export_module!` in lib.rs; linked into this test binary.
        static evi_module: evi_sdk::abi::EviModuleDecl;
    }
    // SAFETY: immutable static data defined in this crate.
    let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
    evi_sdk::testing::check_readme(decl, include_str!("../README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
}

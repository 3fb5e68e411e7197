//! Real-socket tests of the transport through its `Transport` impl (no host, no mocks).

use crate::sender::{Target, UDP4_MAX, UDP6_MAX};
use crate::Datagram;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Raised, Transport};
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

fn module() -> Datagram {
    Datagram::new().unwrap_or_else(|e| panic!("init: {e}"))
}

fn parse(m: &mut Datagram, uri: &str) -> Target {
    let (proto, body) = uri.split_once(':').unwrap_or((uri, ""));
    m.parse(proto, body)
        .unwrap_or_else(|e| panic!("{uri}: {e}"))
}

fn parse_err(m: &mut Datagram, uri: &str) -> String {
    let (proto, body) = uri.split_once(':').unwrap_or((uri, ""));
    m.parse(proto, body).expect_err(uri)
}

fn raise(m: &mut Datagram, t: &mut Target, payload: &[u8]) -> Result<Raised, String> {
    TestEvent::new("E_TEST")
        .json(payload)
        .with(|ev| m.raise(t, ev, Delivery(0)))
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
    let mut t = parse(&mut m, &format!("udp:{addr}"));
    let r = golden_event().with(|ev| m.raise(&mut t, ev, Delivery(1)));
    assert_eq!(r, Ok(Raised::Done));
    assert_eq!(recv(&rx), GOLDEN[0]);
    // Every golden payload goes out byte for byte, one datagram each.
    for g in GOLDEN {
        assert_eq!(raise(&mut m, &mut t, g), Ok(Raised::Done));
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
    let mut t = parse(&mut m, &format!("udp:{addr}"));
    let mut printed = String::new();
    m.print(&t, &mut printed);
    assert_eq!(printed, addr);
    match golden_event().with(|ev| m.raise(&mut t, ev, Delivery(1))) {
        Ok(Raised::Done) => assert_eq!(recv(&rx), GOLDEN[0]),
        // An IPv6 stack without a usable socket on this host: the error must say so.
        Err(e) => assert!(e.contains("IPv6 is unavailable"), "{e}"),
        Ok(other) => panic!("{other:?}"),
    }
}

#[test]
fn unix_sends_the_golden_bytes() {
    let mut m = module();
    let dir = TempDir::new("unix");
    let path = dir.sock("rx.sock");
    let rx = unix_receiver(&path);
    let mut t = parse(&mut m, &format!("unix:{path}"));
    assert_eq!(
        golden_event().with(|ev| m.raise(&mut t, ev, Delivery(1))),
        Ok(Raised::Done)
    );
    let mut buf = vec![0u8; 4096];
    let n = rx.recv(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], GOLDEN[0]);
}

#[test]
fn transport_parse_match_print() {
    let mut m = module();
    assert_eq!(
        parse_err(&mut m, "udp:127.0.0.1:0"),
        "bad port '0' in udp:127.0.0.1:0 (expected 1-65535)"
    );
    assert_eq!(
        parse_err(&mut m, "unix:"),
        "missing path in unix: (expected unix:/path/to/socket)"
    );
    let a = parse(&mut m, "udp:127.0.0.1:9000");
    let b = parse(&mut m, "udp:127.0.0.10:9000");
    let c = parse(&mut m, "udp:localhost:9000");
    assert!(m.matches(&a, &a));
    assert!(!m.matches(&a, &b));
    assert!(m.matches(&a, &c));
    let (u1, u2) = (parse(&mut m, "unix:/tmp/a"), parse(&mut m, "unix:/tmp/ab"));
    assert!(!m.matches(&u1, &u2) && !m.matches(&u2, &u1) && !m.matches(&u1, &a));
    let mut out = String::new();
    m.print(&c, &mut out);
    assert_eq!(out, "localhost:9000");
}

#[test]
fn udp_size_limits() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t = parse(&mut m, &format!("udp:{addr}"));
    let max = vec![b'x'; UDP4_MAX];
    assert_eq!(raise(&mut m, &mut t, &max), Ok(Raised::Done));
    assert_eq!(recv(&rx).len(), UDP4_MAX);
    let over = vec![b'x'; UDP4_MAX + 1];
    assert_eq!(
        raise(&mut m, &mut t, &over),
        Err(format!("udp:{addr}: event of 65508 bytes exceeds the UDP/IPv4 datagram limit of 65507 bytes, event dropped"))
    );
    let mut t6 = parse(&mut m, "udp:[::1]:9");
    let over6 = vec![b'x'; UDP6_MAX + 1];
    assert_eq!(
        raise(&mut m, &mut t6, &over6),
        Err("udp:[::1]:9: event of 65528 bytes exceeds the UDP/IPv6 datagram limit of 65527 bytes, event dropped"
            .to_string())
    );
}

#[test]
fn empty_payload_is_an_error() {
    let mut m = module();
    let mut t = parse(&mut m, "udp:127.0.0.1:9");
    assert_eq!(
        raise(&mut m, &mut t, b""),
        Err("udp:127.0.0.1:9: event has no JSON payload, nothing sent".into())
    );
}

#[test]
fn missing_ipv6_fails_only_v6_sends() {
    let mut m = module().without_ipv6();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let mut t4 = parse(&mut m, &format!("udp:{addr}"));
    let mut t6 = parse(&mut m, "udp:[::1]:9");
    assert_eq!(raise(&mut m, &mut t4, GOLDEN[2]), Ok(Raised::Done));
    assert_eq!(recv(&rx), GOLDEN[2]);
    assert_eq!(
        raise(&mut m, &mut t6, GOLDEN[2]),
        Err("udp:[::1]:9: IPv6 is unavailable (disabled by test), event dropped".into())
    );
}

#[test]
fn unix_peer_missing_names_the_path() {
    let mut m = module();
    let dir = TempDir::new("missing");
    let path = dir.sock("nobody.sock");
    let mut t = parse(&mut m, &format!("unix:{path}"));
    assert_eq!(
        raise(&mut m, &mut t, GOLDEN[3]),
        Err(format!(
            "unix:{path}: no socket at this path (ENOENT), event dropped"
        ))
    );
    // A socket file whose owner has closed it (a crashed subscriber).
    drop(unix_receiver(&path));
    assert_eq!(
        raise(&mut m, &mut t, GOLDEN[3]),
        Err(format!(
            "unix:{path}: nothing is bound to this socket (ECONNREFUSED), event dropped"
        ))
    );
    // Once a subscriber binds the path, the same subscription starts working.
    std::fs::remove_file(&path).expect("remove stale socket");
    let rx = unix_receiver(&path);
    assert_eq!(raise(&mut m, &mut t, GOLDEN[3]), Ok(Raised::Done));
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], GOLDEN[3]);
}

/// Send to `t` until the receiver (which never reads) is full; returns the error and the
/// slowest single raise.
fn fill(m: &mut Datagram, t: &mut Target, payload: &[u8]) -> (String, Duration) {
    let mut slowest = Duration::ZERO;
    for _ in 0..100_000 {
        let start = Instant::now();
        let r = raise(m, t, payload);
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
    let path = dir.sock("stuck.sock");
    let _rx = unix_receiver(&path);
    let mut t = parse(&mut m, &format!("unix:{path}"));
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
    assert!(raise(&mut m, &mut t, GOLDEN[0]).is_err());
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[test]
fn stuck_unix_receiver_does_not_starve_others() {
    let mut m = module();
    let dir = TempDir::new("starve");
    let (stuck, live) = (dir.sock("stuck.sock"), dir.sock("live.sock"));
    let _stuck_rx = unix_receiver(&stuck);
    let live_rx = unix_receiver(&live);
    let mut ts = parse(&mut m, &format!("unix:{stuck}"));
    let mut tl = parse(&mut m, &format!("unix:{live}"));
    // Large events fill the sending socket's buffer before the receiver's queue limit: with a
    // shared sending socket the live subscriber would get EAGAIN as well.
    let big = vec![b'x'; 30_000];
    let (e, _) = fill(&mut m, &mut ts, &big);
    assert!(e.ends_with("socket buffer full, event dropped"), "{e}");
    assert_eq!(raise(&mut m, &mut tl, &big), Ok(Raised::Done));
    let mut buf = vec![0u8; 40_000];
    assert_eq!(live_rx.recv(&mut buf).expect("datagram"), big.len());
}

#[test]
fn unix_oversized_names_size_and_limit() {
    let mut m = module();
    let dir = TempDir::new("big");
    let path = dir.sock("rx.sock");
    let _rx = unix_receiver(&path);
    let mut t = parse(&mut m, &format!("unix:{path}"));
    let e = raise(&mut m, &mut t, &vec![b'x'; 4_000_000]).expect_err("too large");
    let head = format!("unix:{path}: event of 4000000 bytes exceeds the unix datagram limit of ");
    let tail = " bytes (send buffer size), event dropped";
    assert!(e.starts_with(&head) && e.ends_with(tail), "{e}");
    let limit = &e[head.len()..e.len() - tail.len()];
    assert!(limit.parse::<usize>().is_ok_and(|l| l > 1000), "{e}");
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
fn raise_path_does_not_allocate() {
    let mut m = module();
    let (rx, addr) = udp_receiver("127.0.0.1:0").expect("bind");
    let dir = TempDir::new("alloc");
    let path = dir.sock("rx.sock");
    let urx = unix_receiver(&path);
    let mut targets = [
        parse(&mut m, &format!("udp:{addr}")),
        parse(&mut m, &format!("unix:{path}")),
    ];
    let ev = golden_event();
    let allocs = ev.with(|ev| {
        let before = ALLOCS.with(Cell::get);
        for t in &mut targets {
            for _ in 0..5 {
                assert_eq!(m.raise(t, ev, Delivery(0)), Ok(Raised::Done));
            }
        }
        ALLOCS.with(Cell::get) - before
    });
    assert_eq!(allocs, 0);
    // The counter itself works.
    let before = ALLOCS.with(Cell::get);
    std::hint::black_box(vec![0u8; 16]);
    assert!(ALLOCS.with(Cell::get) > before);
    assert_eq!(recv(&rx), GOLDEN[0]);
    let mut buf = [0u8; 256];
    let n = urx.recv(&mut buf).expect("datagram");
    assert_eq!(&buf[..n], GOLDEN[0]);
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

/// Raise rate to one UDP receiver: `cargo test -p event_datagram --release -- --ignored --nocapture`.
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
    let mut t = parse(&mut m, &format!("udp:{addr}"));
    let total = 2_000_000u64;
    let mut failed = 0u64;
    let start = Instant::now();
    golden_event().with(|ev| {
        for _ in 0..total {
            if m.raise(&mut t, ev, Delivery(0)).is_err() {
                failed += 1;
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let received = reader.join().unwrap_or(0);
    eprintln!(
        "{total} raises in {secs:.3}s = {:.0}/s; send errors {failed}; received {received}",
        total as f64 / secs
    );
}

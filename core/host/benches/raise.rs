//! Raise throughput and latency through the real host and the real module `.so` files:
//! N events with K params to one flatstore subscriber, then to one UDP subscriber.
//!
//! Run with `scripts/bench` (it builds the release modules first). Prints events/s (from the
//! first raise until the module has handed the last event to the OS) and the raise latency seen
//! by the raiser (p50/p99/max), plus delivered/failed/dropped counts.

use evi_host::loader::Library;
use evi_host::modparam::ModparamValue;
use evi_host::{Host, ParamRef, ValueRef};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// As in the evid binary: events are allocated by the raiser and freed by a module thread.
#[global_allocator]
static ALLOC: evi_host::alloc::MiMalloc = evi_host::alloc::MiMalloc;

fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

fn arg(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(host: &Host, module: &str) {
    let path = build_dir().join(format!("lib{module}.so"));
    let lib = Library::open(&path)
        .unwrap_or_else(|e| panic!("{e} (run scripts/bench, which builds the modules)"));
    host.start_module(lib, &[])
        .unwrap_or_else(|e| panic!("{e}"));
}

struct Report {
    name: String,
    n: usize,
    elapsed: Duration,
    lat: Vec<u32>,
}

impl Report {
    fn print(&mut self, extra: &str) {
        self.lat.sort_unstable();
        let q = |f: f64| self.lat[((self.lat.len() as f64 - 1.0) * f) as usize];
        println!(
            "{:<28} {:>10.0} events/s   raise latency p50 {:>5} ns  p99 {:>6} ns  max {:>8} ns   {extra}",
            self.name,
            self.n as f64 / self.elapsed.as_secs_f64(),
            q(0.50),
            q(0.99),
            q(1.0),
        );
    }
}

/// Raise `n` events with `k` params (ints and strings alternating) and time each raise.
/// `paced`: wait whenever the module's queue is 3/4 full (a producer that respects
/// backpressure, which measures the pipeline's capacity with no drops); otherwise flood: the
/// raiser never waits and overflow is counted as drops.
fn run(host: &Host, name: &str, n: usize, k: usize, paced: bool) -> Report {
    // Flood: the raiser never waits, overflow is dropped and counted.
    if !paced {
        host.set_raise_wait_ms(0);
    }
    let module = host
        .modules()
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("no module"));
    let high = module.queue_capacity() * 3 / 4;
    let strings: Vec<String> = (0..k).map(|i| format!("value-{i}-of-the-event")).collect();
    let names: Vec<String> = (0..k).map(|i| format!("p{i}")).collect();
    let id = host
        .registry()
        .lookup("E_BENCH")
        .unwrap_or_else(|| panic!("E_BENCH not published"));
    let mut lat = Vec::with_capacity(n);
    let mut params: Vec<ParamRef<'_>> = Vec::with_capacity(k);
    let t0 = Instant::now();
    for i in 0..n {
        params.clear();
        params.extend((0..k).map(|j| {
            let v = if j % 2 == 0 {
                ValueRef::Int(i as i64)
            } else {
                ValueRef::Str(strings[j].as_bytes())
            };
            ParamRef::named(&names[j], v)
        }));
        // Sleep rather than spin: on 2 cores a spinning raiser steals the module's CPU.
        if paced && i % 64 == 0 && module.queue_len() > high {
            while module.queue_len() > high / 3 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let s = Instant::now();
        let _ = host.raise_id(id, &params);
        lat.push(s.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    host.wait_idle(Duration::from_secs(120));
    // Async transports answer later: the clock stops when every event has an outcome.
    let end = Instant::now() + Duration::from_secs(300);
    while outcomes(host) < n as u64 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    Report {
        name: name.into(),
        n,
        elapsed: t0.elapsed(),
        lat,
    }
}

/// Delivered + failed + dropped over E_BENCH's subscribers: events that have an outcome.
fn outcomes(host: &Host) -> u64 {
    let Some(e) = host.registry().by_name("E_BENCH") else {
        return 0;
    };
    let subs = e.subscribers.load();
    subs.iter()
        .map(|s| {
            s.stats.delivered.load(Ordering::Relaxed)
                + s.stats.failed.load(Ordering::Relaxed)
                + s.stats.dropped.load(Ordering::Relaxed)
        })
        .sum()
}

fn counts(host: &Host) -> String {
    let e = host
        .registry()
        .by_name("E_BENCH")
        .unwrap_or_else(|| panic!("E_BENCH"));
    let subs = e.subscribers.load();
    let (mut d, mut f, mut x) = (0, 0, 0);
    for s in subs.iter() {
        d += s.stats.delivered.load(Ordering::Relaxed);
        f += s.stats.failed.load(Ordering::Relaxed);
        x += s.stats.dropped.load(Ordering::Relaxed);
    }
    format!("delivered {d} failed {f} dropped {x}")
}

fn main() {
    evi_host::alloc::tune();
    let n = arg("EVID_BENCH_N", 1_000_000);
    let k = arg("EVID_BENCH_K", 3);
    let dir = std::env::temp_dir().join(format!("evid-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    println!(
        "evid raise benchmark: {n} events, {k} params each, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    for paced in [true, false] {
        let mode = if paced { "paced" } else { "flood" };
        let only = std::env::var("EVID_BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "flatstore" {
            bench_flatstore(&dir, n, k, paced, mode);
        }
        if only.is_empty() || only == "udp" {
            bench_udp(n, k, paced, mode);
        }
        if paced && (only.is_empty() || only == "virtual") {
            bench_virtual(&dir, n, k);
        }
        if paced && (only.is_empty() || only == "rabbitmq") {
            bench_rabbitmq(n, k);
            bench_rabbitmq_down(n, k);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench_flatstore(dir: &std::path::Path, n: usize, k: usize, paced: bool, mode: &str) {
    {
        let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
        start(&host, "event_flatstore");
        host.publish("E_BENCH").unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("bench.log");
        host.subscribe("E_BENCH", &format!("flatstore:{}", file.display()), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = run(&host, &format!("flatstore, 1 file, {mode}"), n, k, paced);
        let c = counts(&host);
        host.shutdown();
        let lines = std::fs::read(&file)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        r.print(&format!("{c}, {lines} lines in the file"));
        let _ = std::fs::remove_file(&file);
    }
}

fn bench_udp(n: usize, k: usize, paced: bool, mode: &str) {
    {
        let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
        start(&host, "event_datagram");
        host.publish("E_BENCH").unwrap_or_else(|e| panic!("{e}"));
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        // A consumer built for volume: a large receive buffer, drained in a non-blocking loop
        // that naps when empty, so the sender does not pay a wake-up per datagram.
        set_rcvbuf(&sock, 32 << 20);
        let _ = sock.set_nonblocking(true);
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rx = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(_) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => std::thread::sleep(Duration::from_micros(500)),
                    }
                }
            })
        };
        host.subscribe("E_BENCH", &format!("udp:127.0.0.1:{port}"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = run(&host, &format!("udp, 1 receiver, {mode}"), n, k, paced);
        let c = counts(&host);
        host.shutdown();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let _ = rx.join();
        r.print(&format!(
            "{c}, {} received",
            received.load(Ordering::Relaxed)
        ));
    }
}

fn set_rcvbuf(sock: &std::net::UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket we own, with a pointer to a local int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &bytes as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// PARALLEL fan-out of every event to three flatstore files through event_virtual.
fn bench_virtual(dir: &std::path::Path, n: usize, k: usize) {
    let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
    start(&host, "event_flatstore");
    start(&host, "event_virtual");
    host.publish("E_BENCH").unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<_> = (0..3).map(|i| dir.join(format!("member{i}.log"))).collect();
    let members: Vec<String> = files
        .iter()
        .map(|f| format!("flatstore:{}", f.display()))
        .collect();
    host.subscribe(
        "E_BENCH",
        &format!("virtual:PARALLEL {}", members.join(" ")),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut r = run(&host, "virtual PARALLEL to 3 files", n, k, true);
    let c = counts(&host);
    host.shutdown();
    let lines: Vec<usize> = files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0)
        })
        .collect();
    r.print(&format!("{c}, lines per member file {lines:?}"));
    assert!(
        lines.iter().all(|&l| l == n),
        "a member lost events: {lines:?} of {n}"
    );
}

/// Confirmed publishes to a local RabbitMQ (default exchange, a routing key no queue binds: the
/// broker confirms and discards, so this measures evid's publish-and-confirm path).
///
/// The raiser offers events far faster than any broker confirms them, so the module's buffer
/// holds the backlog: it is sized to N (`buffer_events` = N, `buffer_bytes` = 1 KiB per event)
/// so that the figure is the confirmed rate of every event, with nothing dropped. The run fails
/// unless every event was confirmed.
fn bench_rabbitmq(n: usize, k: usize) {
    if std::net::TcpStream::connect("127.0.0.1:5672").is_err() {
        println!("rabbitmq: no broker on 127.0.0.1:5672 (scripts/test-deps starts one); skipped");
        return;
    }
    let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
    let path = build_dir().join("libevent_rabbitmq.so");
    let lib = Library::open(&path)
        .unwrap_or_else(|e| panic!("{e} (run scripts/bench, which builds the modules)"));
    let params = [
        (
            "buffer_events".to_string(),
            ModparamValue::Int(n.max(1) as i64),
        ),
        (
            "buffer_bytes".to_string(),
            ModparamValue::Int((n.max(64) * 1024) as i64),
        ),
    ];
    host.start_module(lib, &params)
        .unwrap_or_else(|e| panic!("{e}"));
    host.publish("E_BENCH").unwrap_or_else(|e| panic!("{e}"));
    let key = format!("evid-bench-{}", std::process::id());
    host.subscribe("E_BENCH", &format!("rabbitmq:127.0.0.1/{key}"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut r = run(&host, "rabbitmq, confirmed", n, k, true);
    let (delivered, failed, dropped) = stats(&host);
    let c = counts(&host);
    host.shutdown();
    r.print(&format!("{c}, buffer_events {n}"));
    assert!(
        delivered == n as u64 && failed == 0 && dropped == 0,
        "rabbitmq: not every event was confirmed: {c} of {n}"
    );
}

/// The dead path: the same raises with the broker down (127.0.0.1:1 refuses at once) and a small
/// buffer, full after its first 1000 events, so every later raise drops the oldest event. The
/// clock stops when the module has taken every event: what an outage costs the raiser (latency)
/// and the module thread (events/s). Every dropped event must be reported failed.
fn bench_rabbitmq_down(n: usize, k: usize) {
    const HELD: usize = 1000;
    let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
    let path = build_dir().join("libevent_rabbitmq.so");
    let lib = Library::open(&path)
        .unwrap_or_else(|e| panic!("{e} (run scripts/bench, which builds the modules)"));
    let params = [
        ("buffer_events".to_string(), ModparamValue::Int(HELD as i64)),
        ("drain_timeout".to_string(), ModparamValue::Int(0)),
    ];
    host.start_module(lib, &params)
        .unwrap_or_else(|e| panic!("{e}"));
    host.publish("E_BENCH").unwrap_or_else(|e| panic!("{e}"));
    host.subscribe("E_BENCH", "rabbitmq:127.0.0.1:1/evid-bench-down", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let module = host
        .modules()
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("no module"));
    let high = module.queue_capacity() * 3 / 4;
    let id = host
        .registry()
        .lookup("E_BENCH")
        .unwrap_or_else(|| panic!("E_BENCH not published"));
    let names: Vec<String> = (0..k).map(|i| format!("p{i}")).collect();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let params: Vec<ParamRef<'_>> = names
            .iter()
            .map(|name| ParamRef::named(name, ValueRef::Int(i as i64)))
            .collect();
        if i % 64 == 0 && module.queue_len() > high {
            while module.queue_len() > high / 3 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let s = Instant::now();
        let _ = host.raise_id(id, &params);
        lat.push(s.elapsed().as_nanos().min(u32::MAX as u128) as u32);
    }
    host.wait_idle(Duration::from_secs(120));
    let mut r = Report {
        name: "rabbitmq, broker down".into(),
        n,
        elapsed: t0.elapsed(),
        lat,
    };
    let (_, failed, _) = stats(&host);
    host.shutdown();
    r.print(&format!(
        "failed {failed} (dropped by the full buffer of {HELD})"
    ));
    assert!(
        failed as usize >= n.saturating_sub(HELD),
        "rabbitmq down: {failed} drops reported of {}",
        n.saturating_sub(HELD)
    );
}

/// (delivered, failed, dropped) summed over E_BENCH's subscribers.
fn stats(host: &Host) -> (u64, u64, u64) {
    let Some(e) = host.registry().by_name("E_BENCH") else {
        return (0, 0, 0);
    };
    let subs = e.subscribers.load();
    subs.iter().fold((0, 0, 0), |(d, f, x), s| {
        (
            d + s.stats.delivered.load(Ordering::Relaxed),
            f + s.stats.failed.load(Ordering::Relaxed),
            x + s.stats.dropped.load(Ordering::Relaxed),
        )
    })
}

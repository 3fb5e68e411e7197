//! Routed-event throughput: N events raised to `event_route[E_IN]`, whose script does two
//! `$param` reads, one `if`, one assignment and a `raise_event` to a flatstore file, through
//! the real host, the real script engine and the real release module `.so` files.
//!
//! Run with `scripts/bench` (it builds the release modules first). Prints routed events/s, from
//! the first raise until the flatstore file holds every line, with the host's counts.
//! `EVID_BENCH_N` (events, default 1M), `EVID_BENCH_WORKERS` (event_route workers, default 2),
//! `EVID_BENCH_SYNC=1` (use `event_route[E_IN, sync]`: the route runs on the module thread).

use evi_host::{Host, ParamRef, ValueRef};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// As in the evid binary.
#[global_allocator]
static ALLOC: evi_host::alloc::MiMalloc = evi_host::alloc::MiMalloc;

/// Events raised but not yet routed before the raiser waits; below both queues' sizes.
const IN_FLIGHT: usize = 32_768;

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

fn lines(p: &std::path::Path) -> usize {
    std::fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn start(cfg: &str) -> Host {
    let script = evi_script::parse_str("bench.cfg", cfg)
        .unwrap_or_else(|e| panic!("{}", evi_script::render(&e)));
    let prepared = evi_host::config::prepare(script, &[build_dir()])
        .unwrap_or_else(|e| panic!("{} (run scripts/bench)", evi_script::render(&e)));
    prepared
        .start()
        .unwrap_or_else(|e| panic!("{}", evi_script::render(&e)))
}

fn counts(host: &Host, event: &str) -> String {
    let e = host
        .registry()
        .by_name(event)
        .unwrap_or_else(|| panic!("{event}"));
    let subs = e.subscribers.load();
    let (mut d, mut f, mut x) = (0, 0, 0);
    for s in subs.iter() {
        d += s.stats.delivered.load(Ordering::Relaxed);
        f += s.stats.failed.load(Ordering::Relaxed);
        x += s.stats.dropped.load(Ordering::Relaxed);
    }
    format!("{event}: delivered {d} failed {f} dropped {x}")
}

fn main() {
    let n = arg("EVID_BENCH_N", 1_000_000);
    let workers = arg("EVID_BENCH_WORKERS", 2);
    let sync = std::env::var("EVID_BENCH_SYNC").is_ok_and(|v| v == "1");
    let dir = std::env::temp_dir().join(format!("evid-route-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("out.log");
    let cfg = format!(
        r#"
loadmodule "event_flatstore.so"
modparam("event_route", "workers", {workers})
modparam("event_route", "queue_size", 65536)
startup_route {{
    subscribe_event("E_OUT", "flatstore:{file}");
}}
event_route[E_IN{mode}] {{
    if ($param(port) > 1024) {{
        $avp(v) = $param(ip);
    }}
    raise_event("E_OUT", , $avp(v));
}}
"#,
        file = file.display(),
        mode = if sync { ", sync" } else { "" },
    );
    let host = start(&cfg);
    let id = host
        .registry()
        .lookup("E_IN")
        .unwrap_or_else(|| panic!("E_IN not published"));
    // Routes finished so far: each raises E_OUT once.
    let out = host
        .registry()
        .by_name("E_OUT")
        .unwrap_or_else(|| panic!("E_OUT not published"));
    let done = || out.raised.load(Ordering::Relaxed) as usize;
    println!(
        "evid event_route benchmark: {n} events, {} route, {workers} workers, {} CPUs",
        if sync { "sync" } else { "async" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let t0 = Instant::now();
    for i in 0..n {
        let params = [
            ParamRef::named("ip", ValueRef::Str(b"192.0.2.10")),
            ParamRef::named("port", ValueRef::Int(5060 + (i % 2) as i64)),
        ];
        // A producer that respects backpressure (the module queue, then the workers' queue):
        // sleep while more than IN_FLIGHT events wait for their route, so nothing is dropped.
        if i % 64 == 0 && i.saturating_sub(done()) > IN_FLIGHT {
            while i.saturating_sub(done()) > IN_FLIGHT / 4 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let _ = host.raise_id(id, &params);
    }
    let raised = t0.elapsed();
    // Done when the file holds every line (or nothing moved for 10 s).
    let (mut last, mut since) = (0, Instant::now());
    loop {
        host.wait_idle(Duration::from_millis(50));
        let l = lines(&file);
        if l >= n {
            break;
        }
        if l != last {
            (last, since) = (l, Instant::now());
        } else if since.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed();
    let c_in = counts(&host, "E_IN");
    let c_out = counts(&host, "E_OUT");
    host.shutdown();
    let got = lines(&file);
    println!(
        "{:<28} {:>10.0} routed events/s   (raising took {:.2} s)   {c_in}; {c_out}; {got} lines in the file",
        format!("event_route → flatstore"),
        got as f64 / elapsed.as_secs_f64(),
        raised.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

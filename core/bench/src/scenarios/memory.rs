//! Scenarios 8, 16-18: resident memory idle, under load and beside dead destinations for a
//! while, and the start-up time with every module loaded.

use super::dead::check_dead;
use super::{check_flatstore, check_udp, loop_cfg, loop_stats, lost, settle, Dead, STALL, TIMEOUT};
use crate::daemon::{stat, threads, vm_rss_kib, wait_sinks, Daemon, Scratch};
use crate::sinks::{udp_rcvbuf_errors, LineCounter, UdpSink};
use crate::{opensips, Options, Row};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every transport module, as `idle_memory` and `startup` load them (plus `mi_http`).
const TRANSPORTS: [&str; 7] = [
    "event_flatstore",
    "event_datagram",
    "event_xmlrpc",
    "event_stream",
    "event_rabbitmq",
    "event_route",
    "event_virtual",
];

/// The default config (`scripts/evid.cfg`: mi_http, flatstore, datagram) on a free MI port and
/// a scratch file, plus every other transport module.
fn all_modules_cfg() -> String {
    let default = include_str!("../../../../scripts/evid.cfg")
        .replace(
            "modparam(\"mi_http\", \"port\", 8888)",
            "modparam(\"mi_http\", \"port\", {mi_port})",
        )
        .replace("/tmp/evid-demo.log", "{dir}/demo.log");
    let mut body = default + "\n";
    for m in &TRANSPORTS[2..] {
        body += &format!("loadmodule \"{m}.so\"\n");
    }
    body
}

/// Check every transport module is loaded (its statistics exist).
fn check_loaded(d: &Daemon, what: &str) -> Result<(), String> {
    let mods = d.mi("list_statistics", json!([]))?.to_string();
    for m in TRANSPORTS {
        if !mods.contains(&format!("\"{m}:delivered\"")) {
            return Err(format!("{what}: module {m} is not loaded:\n{mods}"));
        }
    }
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// 8: resident memory of the idle daemon: the default config plus every transport loaded.
pub fn idle_memory(o: &Options) -> Result<Vec<Row>, String> {
    let mut d = Daemon::spawn(&o.bin_dir, "rss", &all_modules_cfg())?;
    d.wait_mi(Duration::from_secs(20))?;
    check_loaded(&d, "scenario 8")?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = d.pid();
    let kib = vm_rss_kib(pid).ok_or("scenario 8: no VmRSS")?;
    let threads = threads(pid).unwrap_or(0);
    d.stop();
    Ok(vec![Row {
        id: "8".into(),
        scenario: "resident memory, idle, all transports".into(),
        value: mb(kib),
        unit: "MB",
        opensips: Some(opensips::RSS_MB),
        lower_is_better: true,
        notes: format!(
            "VmRSS of the one evid process after 2 s idle ({threads} threads); default config + xmlrpc, stream, rabbitmq, route, virtual"
        ),
        ..Row::default()
    }])
}

/// `VmRSS` of a process sampled by a thread every `period` until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(f64, u64)>>>,
}

impl RssSampler {
    fn start(pid: u32, from: Instant, period: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                loop {
                    if let Some(k) = vm_rss_kib(pid) {
                        v.push((from.elapsed().as_secs_f64(), k));
                    }
                    if stop.load(Ordering::Relaxed) {
                        return v;
                    }
                    std::thread::sleep(period);
                }
            })
        };
        RssSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop; the samples as (seconds since `from`, KiB).
    fn finish(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn max_kib(s: &[(f64, u64)]) -> u64 {
    s.iter().map(|p| p.1).max().unwrap_or(0)
}

fn series(s: &[(f64, u64)]) -> Vec<(f64, f64)> {
    s.iter().map(|&(t, k)| (t, mb(k))).collect()
}

/// 16: resident memory under load: every transport loaded, and the script loop of scenario 3
/// (N events into a flatstore file and a UDP receiver) running; VmRSS sampled every 20 ms from
/// the spawn until the last event arrived, then once more 1 s later. Counts as in scenario 3.
pub fn load_memory(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 16 (RSS under load)";
    let mut rx = UdpSink::new(1)?;
    let k0 = udp_rcvbuf_errors();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "rssload",
        &loop_cfg(
            n,
            &TRANSPORTS,
            &["flatstore:{dir}/out.log".into(), rx.uri(0)],
        ),
    )?;
    let sampler = RssSampler::start(d.pid(), d.started, Duration::from_millis(20));
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, _) = wait_sinks(&mut d, &mut [&mut file, &mut rx], &[n, n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    check_loaded(&d, what)?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    check_udp(what, rx.total(), n, &st, udp_rcvbuf_errors() - k0)?;
    std::thread::sleep(Duration::from_secs(1));
    let samples = sampler.finish();
    let end = samples.last().map_or(0, |p| p.1);
    let max = max_kib(&samples);
    let threads = threads(d.pid()).unwrap_or(0);
    d.stop();
    Ok(vec![Row {
        failure,
        id: "16".into(),
        scenario: "resident memory, under load (loop → flatstore + UDP)".into(),
        value: mb(max),
        unit: "MB",
        lower_is_better: true,
        raised: n,
        delivered: c[0],
        lost_counted: lost(&st, "event_datagram") + lost(&st, "event_flatstore"),
        notes: format!(
            "max VmRSS over {} samples (every 20 ms) while all {n} events were raised and delivered; {:.1} MB 1 s after the run; {threads} threads; every transport loaded",
            samples.len(),
            mb(end)
        ),
        series: series(&samples),
        ..Row::default()
    }])
}

/// The dead subscribers of scenario 17 (port 1 on loopback: connects are refused at once).
const DEAD: [Dead; 3] = [Dead::Rabbitmq, Dead::Xmlrpc, Dead::Stream];

/// Events a second the timer of scenario 17 raises (in one burst a second).
const DEAD_RATE: u64 = 20_000;

/// Growth allowed over the whole run of scenario 17 before it counts as unbounded: the dead
/// RabbitMQ keeps up to `buffer_events` (100,000 by default) events, the dead XML-RPC 4,096,
/// and each module's host queue up to 65,536 while its thread lags (measured: about 50 MB).
pub const DEAD_BOUND_MB: f64 = 96.0;
/// Growth allowed once the dead RabbitMQ's buffer is full (`FILLED_S` into the run): from the
/// highest sample of the first half of that stretch to the end.
const DEAD_PLATEAU_MB: f64 = 8.0;
/// When the buffers are full: 100,000 events at `DEAD_RATE` a second, plus 2 s.
const FILLED_S: f64 = 100_000.0 / DEAD_RATE as f64 + 2.0;

/// Whether the VmRSS `samples` of scenario 17 stayed bounded; `Err` says how not. `Ok(false)`:
/// the window was too short for the plateau check (only the overall bound was checked).
fn bounded(samples: &[(f64, u64)]) -> Result<bool, String> {
    let start = samples.first().map_or(0, |p| p.1);
    let end = samples.last().map_or(0, |p| p.1);
    if mb(end) > mb(start) + DEAD_BOUND_MB {
        return Err(format!(
            "VmRSS not bounded: start {:.1} MB, end {:.1} MB (allowed: start + {DEAD_BOUND_MB} MB)",
            mb(start),
            mb(end)
        ));
    }
    let filled: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|p| p.0 >= FILLED_S)
        .collect();
    if filled.len() < 4 {
        return Ok(false);
    }
    let early = max_kib(&filled[..filled.len() / 2]);
    if mb(end) > mb(early) + DEAD_PLATEAU_MB {
        return Err(format!(
            "VmRSS still growing once the buffers were full: {:.1} MB at most in {FILLED_S:.0}-{:.0} s, {:.1} MB at the end (allowed: + {DEAD_PLATEAU_MB} MB)",
            mb(early),
            filled[filled.len() / 2].0,
            mb(end)
        ));
    }
    Ok(true)
}

/// 17: resident memory with dead destinations for a while (60 s; 15 s with `--quick`): a
/// timer_route raises `DEAD_RATE` events a second into a live flatstore file and dead RabbitMQ,
/// XML-RPC and TCP stream subscribers, and stops raising after the window. VmRSS is sampled every
/// 2 s (1 s under 60 s). Bounded means (`bounded`): the end is at most `DEAD_BOUND_MB` above the
/// start, and, once the dead RabbitMQ's buffer is full, grows by at most `DEAD_PLATEAU_MB`.
/// Counts: the file has every event raised; every dead subscriber accounts for all of them.
pub fn dead_memory(o: &Options) -> Result<Vec<Row>, String> {
    let what = "scenario 17 (RSS with dead destinations)";
    let secs = o.dead_secs;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The timer raises while $Ts < stop: about `secs` one-second bursts after start-up.
    let stop = unix_now + 1 + secs;
    let mut cfg = String::from("log_level = 1\nmax_while_loops = 10000000\n");
    cfg += "loadmodule \"event_flatstore.so\"\n";
    for dead in DEAD {
        cfg += &format!("loadmodule \"{}.so\"\n", dead.module());
    }
    cfg += "startup_route {\n    subscribe_event(\"E_BENCH\", \"flatstore:{dir}/out.log\");\n";
    for dead in DEAD {
        cfg += &format!(
            "    subscribe_event(\"E_BENCH\", \"{}\");\n",
            dead.socket(1)
        );
    }
    cfg += &format!(
        r#"}}
timer_route[load, 1] {{
    if ($Ts < {stop}) {{
        $avp(bn) = "msg";  $avp(bv) = "hello world";
        $avp(bn) = "user"; $avp(bv) = "alice";
        $avp(bn) = "id";   $avp(bv) = 42;
        $var(i) = 0;
        while ($var(i) < {DEAD_RATE}) {{
            raise_event("E_BENCH", $avp(bn), $avp(bv));
            $var(i) = $var(i) + 1;
        }}
    }}
}}
"#
    );
    let mut d = Daemon::spawn(&o.bin_dir, "rssdead", &cfg)?;
    d.wait_mi(Duration::from_secs(20))?;
    let period = if secs < 60 { 1 } else { 2 };
    let sampler = RssSampler::start(d.pid(), Instant::now(), Duration::from_secs(period));
    // The window, then 2 s for the last burst to settle.
    let end = Instant::now() + Duration::from_secs(secs + 3);
    while Instant::now() < end {
        if d.exited() {
            return Err(format!("{what}: evid exited:\n{}", d.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let samples = sampler.finish();
    let st = d.stats()?;
    let n = stat(&st, "evi_events:E_BENCH");
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, _) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
    let st = settle(&d, "event_flatstore", n, Duration::from_secs(10))?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    let mut dead_notes = Vec::new();
    let mut counted = 0;
    for dead in DEAD {
        let (failed, dropped, held) = check_dead(&d, dead, n, what)?;
        counted += failed + dropped;
        dead_notes.push(format!(
            "{} failed {failed} dropped {dropped} held {held}",
            dead.label()
        ));
    }
    d.stop();
    let (start, max) = (samples.first().map_or(0, |p| p.1), max_kib(&samples));
    let last = samples.last().map_or(0, |p| p.1);
    let (failure, plateau) = match (failure, bounded(&samples)) {
        (Some(f), _) => (Some(f), String::new()),
        (None, Err(why)) => (Some(why), String::new()),
        (None, Ok(true)) => (
            None,
            format!(" and + {DEAD_PLATEAU_MB} MB after {FILLED_S:.0} s"),
        ),
        (None, Ok(false)) => (
            None,
            format!(
                " (window too short for the + {DEAD_PLATEAU_MB} MB after {FILLED_S:.0} s check)"
            ),
        ),
    };
    Ok(vec![Row {
        failure,
        id: "17".into(),
        scenario: format!("resident memory, dead destinations, {secs} s"),
        value: mb(max),
        unit: "MB",
        lower_is_better: true,
        raised: n,
        delivered: c[0],
        lost_counted: counted,
        notes: format!(
            "VmRSS start {:.1} / max {:.1} / end {:.1} MB (every {period} s); {DEAD_RATE} events/s for {secs} s into flatstore (all {} lines) + dead {}; bounded: end ≤ start + {DEAD_BOUND_MB} MB{plateau}",
            mb(start),
            mb(max),
            mb(last),
            c[0],
            dead_notes.join(", ")
        ),
        series: series(&samples),
        ..Row::default()
    }])
}

/// 18: start-up time with every module loaded (the config of scenario 8): from the spawn to
/// MI answering, and to the systemd `READY=1` (`NOTIFY_SOCKET`), median of several runs.
pub fn startup(o: &Options) -> Result<Vec<Row>, String> {
    let what = "scenario 18 (start-up time)";
    let runs = o.startup_runs.max(1);
    let mut to_mi = Vec::new();
    let mut to_ready = Vec::new();
    for _ in 0..runs {
        let scratch = Scratch::new("notify");
        let path = scratch.0.join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path)
            .map_err(|e| format!("{what}: bind {}: {e}", path.display()))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let path = path.display().to_string();
        let mut d = Daemon::spawn_env(
            &o.bin_dir,
            "start",
            &all_modules_cfg(),
            &[("NOTIFY_SOCKET", path.as_str())],
        )?;
        let (mut mi, mut ready) = (None, None);
        let deadline = d.started + Duration::from_secs(20);
        let mut buf = [0u8; 256];
        while mi.is_none() || ready.is_none() {
            if ready.is_none() {
                if let Ok(k) = sock.recv(&mut buf) {
                    if String::from_utf8_lossy(&buf[..k]).contains("READY=1") {
                        ready = Some(d.started.elapsed());
                    }
                }
            }
            if mi.is_none() && d.mi_answers() {
                mi = Some(d.started.elapsed());
            }
            if d.exited() || Instant::now() > deadline {
                return Err(format!(
                    "{what}: MI answered: {mi:?}, READY=1: {ready:?} after 20 s\n{}",
                    d.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        check_loaded(&d, what)?;
        d.stop();
        to_mi.extend(mi);
        to_ready.extend(ready);
    }
    let ms = |v: &mut Vec<Duration>| -> (f64, f64, f64) {
        v.sort_unstable();
        let f = |d: Duration| d.as_secs_f64() * 1e3;
        (f(v[v.len() / 2]), f(v[0]), f(v[v.len() - 1]))
    };
    let (mi_med, mi_min, mi_max) = ms(&mut to_mi);
    let (ready_med, _, _) = ms(&mut to_ready);
    Ok(vec![Row {
        id: "18".into(),
        scenario: "start-up time, all modules, to MI answering".into(),
        value: mi_med,
        unit: "ms",
        lower_is_better: true,
        notes: format!(
            "median of {runs} runs (min {mi_min:.1}, max {mi_max:.1} ms); READY=1 (sd_notify) after {ready_med:.1} ms (median); the config of scenario 8"
        ),
        ..Row::default()
    }])
}

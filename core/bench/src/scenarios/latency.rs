//! Scenarios 9 and 15, in-process (the only place a raise can be timed): raise latency and
//! throughput against the number of UDP subscribers, and beside a dead destination.

use super::{Dead, SENDING, STALL};
use crate::sinks::{udp_rcvbuf_errors, Sink, UdpSink};
use crate::{Options, Row};
use evi_host::loader::Library;
use evi_host::module::Module;
use evi_host::{Host, ParamRef, ValueRef};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Start the module `lib{name}.so` of `bin_dir` in `host`.
fn start(host: &Host, bin_dir: &Path, name: &str, what: &str) -> Result<Arc<Module>, String> {
    let lib = Library::open(&bin_dir.join(format!("lib{name}.so")))
        .map_err(|e| format!("{what}: {e}"))?;
    host.start_module(lib, &[])
        .map_err(|e| format!("{what}: {e}"))?;
    host.module(name)
        .ok_or_else(|| format!("{what}: {name} not running"))
}

/// Raise `events` E_BENCH events with the 3 params of the loop, timing each `raise`. The raiser
/// respects backpressure of the `live` module only (`fanout` jobs per event): it naps while that
/// queue is 3/4 full (sleep, not spin: on 2 cores a spinning raiser steals the module's CPU).
/// A raise error aborts when `strict`. Returns the latencies (ns) and when the first raise began.
fn paced_raises(
    host: &Host,
    id: u32,
    events: u64,
    live: &Module,
    fanout: usize,
    strict: bool,
    what: &str,
) -> Result<(Vec<u32>, Instant), String> {
    let high = live.queue_capacity() * 3 / 4;
    let mut lat: Vec<u32> = Vec::with_capacity(events as usize);
    let t0 = Instant::now();
    for _ in 0..events {
        if live.queue_len() + fanout > high {
            while live.queue_len() > high / 3 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let params = [
            ParamRef::named("id", ValueRef::Int(42)),
            ParamRef::named("user", ValueRef::Str(b"alice")),
            ParamRef::named("msg", ValueRef::Str(b"hello world")),
        ];
        let s = Instant::now();
        let r = host.raise_id(id, &params);
        lat.push(s.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        if strict && r.is_err() {
            return Err(format!("{what}: raise failed: {r:?}"));
        }
    }
    Ok((lat, t0))
}

/// p50, p99 and p99.9 of `lat` (sorted in place).
fn percentiles(lat: &mut [u32]) -> (u64, u64, u64) {
    lat.sort_unstable();
    let q = |f: f64| {
        lat.get(((lat.len() as f64 - 1.0) * f).round() as usize)
            .copied()
            .unwrap_or(0) as u64
    };
    (q(0.50), q(0.99), q(0.999))
}

/// 9: in-process host, raise latency and throughput with 1, 4, 16, 64 UDP subscribers.
pub fn scaling(o: &Options) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for subs in [1usize, 4, 16, 64] {
        let what = format!("scenario 9 ({subs} UDP subscribers)");
        // About N datagrams per point, at least 1000 events (or N when smaller).
        let events = (o.n / subs as u64).max(o.n.min(1000));
        let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
        let module = start(&host, &o.bin_dir, "event_datagram", &what)?;
        let id = host.publish("E_BENCH")?;
        let mut rx = UdpSink::new(subs)?;
        for i in 0..subs {
            host.subscribe("E_BENCH", &rx.uri(i), None)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        let k0 = udp_rcvbuf_errors();
        let (mut lat, t0) = paced_raises(&host, id, events, &module, subs, true, &what)?;
        host.wait_idle(Duration::from_secs(120));
        let expect = events * subs as u64;
        let end = Instant::now() + STALL;
        while rx.count() < expect && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        let last = rx.last().unwrap_or(t0);
        let received = rx.total();
        let (mut del, mut fail, mut drop_) = (0, 0, 0);
        if let Some(e) = host.registry().by_name("E_BENCH") {
            for s in e.subscribers.load().iter() {
                del += s.stats.delivered.load(Ordering::Relaxed);
                fail += s.stats.failed.load(Ordering::Relaxed);
                drop_ += s.stats.dropped.load(Ordering::Relaxed);
            }
        }
        host.shutdown();
        let per = rx.per_socket();
        drop(rx);
        if received != del || del + fail + drop_ != expect {
            return Err(format!(
                "{what}: {events} events × {subs} subscribers = {expect}; evid delivered {del}, failed {fail}, dropped {drop_}; the receivers got {received} (per socket {per:?}); kernel receive-buffer drops {}: events lost without a count",
                udp_rcvbuf_errors() - k0
            ));
        }
        let (p50, p99, p999) = percentiles(&mut lat);
        let secs = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);
        rows.push(Row {
            id: format!("9/{subs}"),
            scenario: format!("in-process raise → {subs} UDP subscribers"),
            value: events as f64 / secs,
            unit: "events/s",
            p50_ns: Some(p50),
            p99_ns: Some(p99),
            p999_ns: Some(p999),
            raised: events,
            delivered: received,
            lost_counted: fail + drop_,
            notes: format!(
                "{:.0} datagrams/s; raiser paced by the module queue (no drops expected)",
                received as f64 / secs
            ),
            ..Row::default()
        });
    }
    Ok(rows)
}

/// An MI call to an in-process host: the `result` of `method`, or the error.
fn host_mi(host: &Host, method: &str, params: Value) -> Result<Value, String> {
    let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let out = host
        .mi_execute(req.to_string().as_bytes())
        .ok_or_else(|| format!("MI {method}: no answer"))?;
    let v: Value = serde_json::from_slice(&out).map_err(|e| format!("MI {method}: {e}"))?;
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(format!("MI {method}: {v}")),
    }
}

fn outcome(s: &evi_host::registry::Subscriber) -> (u64, u64, u64) {
    (
        s.stats.delivered.load(Ordering::Relaxed),
        s.stats.failed.load(Ordering::Relaxed),
        s.stats.dropped.load(Ordering::Relaxed),
    )
}

/// 15: in-process raise latency with one live UDP subscriber, alone and beside a dead RabbitMQ
/// (the broker outage: 127.0.0.1:1), XML-RPC or TCP stream subscriber; N events per case, the
/// raiser paced by the live module's queue only (a dead destination must not slow it). Counts:
/// the receiver gets every event; after shutdown the dead subscriber has none delivered and
/// every event failed or dropped (counted).
pub fn dead_latency(o: &Options) -> Result<Vec<Row>, String> {
    let events = o.n;
    let mut rows = Vec::new();
    for dead in [
        None,
        Some(Dead::Rabbitmq),
        Some(Dead::Xmlrpc),
        Some(Dead::Stream),
    ] {
        let label = dead.map_or("none", |d| d.label());
        let what = format!("scenario 15 (raise latency, dead {label})");
        let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
        let live = start(&host, &o.bin_dir, "event_datagram", &what)?;
        if let Some(dd) = dead {
            start(&host, &o.bin_dir, dd.module(), &what)?;
        }
        let id = host.publish("E_BENCH")?;
        let mut rx = UdpSink::new(1)?;
        host.subscribe("E_BENCH", &rx.uri(0), None)
            .map_err(|e| format!("{what}: {e}"))?;
        if let Some(dd) = dead {
            host.subscribe("E_BENCH", &dd.socket(1), None)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        // MI (the dead module's status, below) answers once the host is ready.
        host.set_ready();
        let k0 = udp_rcvbuf_errors();
        let (mut lat, t0) = paced_raises(&host, id, events, &live, 1, false, &what)?;
        let raised_in = t0.elapsed();
        host.wait_idle(Duration::from_secs(120));
        let end = Instant::now() + STALL;
        while rx.count() < events && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        let received = rx.total();
        let subs: Vec<Arc<evi_host::registry::Subscriber>> = host
            .registry()
            .by_name("E_BENCH")
            .map(|e| e.subscribers.load().iter().cloned().collect())
            .unwrap_or_default();
        let held = dead.map_or(0, |dd| dd.held(&|m, p| host_mi(&host, m, p)));
        // Shutdown gives every event still queued or buffered its outcome.
        host.shutdown();
        drop(rx);
        let live_sub = subs.iter().find(|s| s.socket.starts_with("udp:"));
        let (ld, lf, lx) = live_sub.map_or((0, 0, 0), |s| outcome(s));
        if received != ld || ld + lf + lx != events {
            return Err(format!(
                "{what}: {events} raised; the live UDP subscriber delivered {ld}, failed {lf}, dropped {lx}; the receiver got {received}; kernel receive-buffer drops {}: events lost without a count",
                udp_rcvbuf_errors() - k0
            ));
        }
        let (mut df, mut dx) = (0, 0);
        if let Some(dd) = dead {
            let s = subs
                .iter()
                .find(|s| !s.socket.starts_with("udp:"))
                .ok_or_else(|| format!("{what}: the dead subscriber is gone"))?;
            let (d, f, x) = outcome(s);
            if d > 0 || d + f + x > events || d + f + x + SENDING < events {
                return Err(format!(
                    "{what}: {events} raised; the dead {} delivered {d}, failed {f}, dropped {x} after shutdown: events unaccounted",
                    dd.label()
                ));
            }
            (df, dx) = (f, x);
        }
        let (p50, p99, p999) = percentiles(&mut lat);
        let short = match dead {
            None => "live",
            Some(Dead::Rabbitmq) => "rmq",
            Some(Dead::Xmlrpc) => "xmlrpc",
            Some(Dead::Stream) => "tcp",
        };
        rows.push(Row {
            id: format!("15/{short}"),
            scenario: match dead {
                None => "raise latency, 1 live UDP subscriber".into(),
                Some(dd) => format!("raise latency, live UDP + dead {}", dd.label()),
            },
            value: events as f64 / raised_in.as_secs_f64().max(1e-9),
            unit: "events/s",
            p50_ns: Some(p50),
            p99_ns: Some(p99),
            p999_ns: Some(p999),
            raised: events,
            delivered: received,
            lost_counted: lf + lx + df + dx,
            notes: match dead {
                None => "in-process; raised/s; the baseline of the dead cases".into(),
                Some(dd) => format!(
                    "in-process; raised/s; UDP got all {received}; the dead {} failed {df}, dropped {dx} (held {held} by the module before shutdown)",
                    dd.label()
                ),
            },
            ..Row::default()
        });
    }
    Ok(rows)
}

//! Scenarios 10-12 and 14: the script loop into the other transports (13, RabbitMQ, has its own
//! file): a unix datagram receiver, `event_route` writing to flatstore, a TCP `event_stream`
//! consumer and a `virtual:PARALLEL` group of three flatstore files.

use super::{
    accounted, check_flatstore, check_payload, loop_cfg, loop_cfg_ext, loop_stats, lost, rate,
    settle, STALL, TIMEOUT,
};
use crate::daemon::{stat, wait_sinks, Daemon, Scratch};
use crate::sinks::{LineCounter, Sink, TcpSink, UnixSink};
use crate::{Options, Row};
use std::collections::BTreeMap;
use std::time::Duration;

/// The kernel's bound on a unix datagram socket's receive queue (datagrams).
fn unix_qlen() -> String {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A module's outcome counts as `delivered D, failed F, dropped X`.
fn outcomes(st: &BTreeMap<String, u64>, module: &str) -> String {
    format!(
        "delivered {}, failed {}, dropped {}",
        stat(st, &format!("{module}:delivered")),
        stat(st, &format!("{module}:failed")),
        stat(st, &format!("{module}:dropped"))
    )
}

/// 10: script loop → one unix datagram receiver. As for UDP (2): what the receiver got must be
/// what evid delivered, and evid must count the rest as failed/dropped. A unix sender sees a
/// full receiver (EAGAIN: more than `net.unix.max_dgram_qlen` datagrams waiting) and
/// `event_datagram` never waits or retries, so a burst can lose events; they are counted, shown
/// in the row, and (as for UDP) not a failure.
pub fn loop_unix(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 10 (loop → unix)";
    let scratch = Scratch::new("unixrx");
    let mut rx = UnixSink::new(scratch.0.join("rx.sock"))?;
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "unix",
        &loop_cfg(n, &["event_datagram"], &[rx.uri()]),
    )?;
    let (_, last) = wait_sinks(&mut d, &mut [&mut rx], &[n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    // Let the receiver drain what the kernel still holds.
    std::thread::sleep(Duration::from_millis(100));
    let received = rx.count();
    let delivered = stat(&st, "event_datagram:delivered");
    if received != delivered || accounted(&st, "event_datagram") != n {
        return Err(format!(
            "{what}: {n} raised, evid {}, the receiver got {received}: events lost without a count\n{}",
            outcomes(&st, "event_datagram"),
            d.log_tail()
        ));
    }
    check_payload(what, &rx.first().unwrap_or_default())?;
    let dropped = lost(&st, "event_datagram");
    let qlen = unix_qlen();
    let row = Row {
        id: "10".into(),
        scenario: "script loop → unix datagram".into(),
        value: rate(received, d.started, last),
        unit: "events/s",
        raised: n,
        delivered: received,
        lost_counted: dropped,
        notes: format!(
            "received/s from process start to the last datagram; one receiver thread blocked in recv{}; evid counted {dropped} failed (receiver queue full, EAGAIN; net.unix.max_dgram_qlen = {qlen})",
            if rx.realtime { " (SCHED_FIFO)" } else { "" }
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

/// The block of scenario 11: reads a param and raises E_ROUTED with it, which a flatstore file
/// counts.
const ROUTE_BLOCK: &str = r#"
event_route[E_BENCH{mode}] {
    $avp(u) = $param(user);
    raise_event("E_ROUTED", , $avp(u));
}
"#;

/// 11: script loop → `event_route[E_BENCH]`, whose route raises E_ROUTED into a flatstore file:
/// the file must get every event, and event_route must have run the route N times. `sync` runs
/// the route on the module's thread (backpressure reaches the script loop); async runs it on 2
/// workers and the default `queue_size`: a full workers' queue holds the module's thread, so
/// the script raiser waits instead of routes being lost.
pub fn loop_route(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let mut rows = Vec::new();
    for sync in [true, false] {
        let mode = if sync { "sync" } else { "async" };
        let what = format!("scenario 11 (loop → event_route, {mode})");
        let params = if sync {
            String::new()
        } else {
            "modparam(\"event_route\", \"workers\", 2)\n".to_string()
        };
        let block = ROUTE_BLOCK.replace("{mode}", if sync { ", sync" } else { "" });
        let mut d = Daemon::spawn(
            &o.bin_dir,
            "route",
            &loop_cfg_ext(
                n,
                &["event_flatstore", "event_route"],
                &params,
                &[("E_ROUTED", "flatstore:{dir}/routed.log")],
                &block,
            ),
        )?;
        let mut file = LineCounter::new(d.dir.0.join("routed.log"));
        let (c, last) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
        loop_stats(&mut d, n, &what)?;
        let mut st = settle(&d, "event_route", n, Duration::from_secs(10))?;
        // Async: event_route counts an event delivered when a worker queue takes it; the route
        // (and its E_ROUTED) runs a moment later.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while stat(&st, "evi_events:E_ROUTED") < stat(&st, "event_route:delivered")
            && std::time::Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(50));
            st = d.stats()?;
        }
        let routed = stat(&st, "evi_events:E_ROUTED");
        let route_ok = stat(&st, "event_route:delivered");
        if accounted(&st, "event_route") != n || routed != route_ok {
            return Err(format!(
                "{what}: {n} raised; event_route {}; the route raised E_ROUTED {routed} times: events lost without a count\n{}",
                outcomes(&st, "event_route"),
                d.log_tail()
            ));
        }
        let route_lost = lost(&st, "event_route");
        // The file is checked against the routes that ran; routes that never ran are counted.
        let mut failure = check_flatstore(&what, c[0], routed, &st, &d)?;
        if route_lost > 0 && failure.is_none() {
            failure = Some(format!(
                "the route ran for {route_ok} of {n} events: event_route counted {route_lost} failed/dropped"
            ));
        }
        rows.push(Row {
            failure,
            id: if sync { "11".into() } else { "11/async".into() },
            scenario: format!("script loop → event_route ({mode}) → flatstore"),
            value: rate(c[0], d.started, last),
            unit: "events/s",
            raised: n,
            delivered: c[0],
            lost_counted: route_lost + lost(&st, "event_flatstore"),
            notes: if sync {
                "event_route[E_BENCH, sync] reads $param(user) and raises E_ROUTED into flatstore; lines/s from process start".into()
            } else {
                "2 route workers, default queue_size (the loop is held back when it is full); lines/s from process start".to_string()
            },
            ..Row::default()
        });
        d.stop();
    }
    Ok(rows)
}

/// 12: script loop → a TCP `event_stream` consumer in the bench, counting the JSON objects it
/// reads (written back to back, no framing). Every event must arrive: the consumer's count must
/// equal what evid delivered, and evid must have delivered all N.
pub fn loop_stream(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 12 (loop → tcp stream)";
    let mut rx = TcpSink::new()?;
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "stream",
        // The destination's queue is the buffer between a loop raising a million events at
        // once and one TCP connection: sized to hold them (the default 16,384 would count drops).
        &loop_cfg_ext(
            n,
            &["event_stream"],
            &format!("modparam(\"event_stream\", \"queue_size\", {})\n", n.max(1)),
            &[("E_BENCH", &format!("tcp:127.0.0.1:{}", rx.port))],
            "",
        ),
    )?;
    let (c, last) = wait_sinks(&mut d, &mut [&mut rx], &[n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_stream", n, Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(100));
    let got = rx.count().max(c[0]);
    let delivered = stat(&st, "event_stream:delivered");
    if got != delivered || accounted(&st, "event_stream") != n || rx.stray() > 0 {
        return Err(format!(
            "{what}: {n} raised, evid {}; the consumer read {got} objects on {} connection(s), {} stray bytes: events lost (or split) without a count\n{}",
            outcomes(&st, "event_stream"),
            rx.connections(),
            rx.stray(),
            d.log_tail()
        ));
    }
    check_payload(what, &rx.first().unwrap_or_default())?;
    let dropped = lost(&st, "event_stream");
    let failure = (dropped > 0)
        .then(|| format!("the consumer got {got} of {n}: evid counted {dropped} failed/dropped"));
    let row = Row {
        failure,
        id: "12".into(),
        scenario: "script loop → TCP event_stream".into(),
        value: rate(got, d.started, last),
        unit: "events/s",
        raised: n,
        delivered: got,
        lost_counted: dropped,
        notes: format!(
            "objects read/s from process start; notification mode, {} connection(s)",
            rx.connections()
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

/// 14: script loop → `virtual:PARALLEL` of three flatstore files: every file must get every
/// event, and the group must report N delivered.
pub fn loop_virtual(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 14 (loop → virtual PARALLEL of 3)";
    let sock =
        "virtual:PARALLEL flatstore:{dir}/m0.log flatstore:{dir}/m1.log flatstore:{dir}/m2.log";
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "virtual",
        &loop_cfg(
            n,
            &["event_flatstore", "event_virtual"],
            &[sock.to_string()],
        ),
    )?;
    let mut files: Vec<LineCounter> = (0..3)
        .map(|i| LineCounter::new(d.dir.0.join(format!("m{i}.log"))))
        .collect();
    let (c, last) = {
        let mut sinks: Vec<&mut dyn Sink> = files.iter_mut().map(|f| f as &mut dyn Sink).collect();
        wait_sinks(&mut d, &mut sinks, &[n, n, n], STALL, TIMEOUT)
    };
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_virtual", n, Duration::from_secs(10))?;
    let group_ok = stat(&st, "event_virtual:delivered");
    let flat_ok = stat(&st, "event_flatstore:delivered");
    let lines: u64 = c.iter().sum();
    if accounted(&st, "event_virtual") != n || lines != flat_ok {
        return Err(format!(
            "{what}: {n} raised; the group {}; flatstore {}; lines per file {c:?}: events lost without a count\n{}",
            outcomes(&st, "event_virtual"),
            outcomes(&st, "event_flatstore"),
            d.log_tail()
        ));
    }
    let group_lost = lost(&st, "event_virtual");
    let failure = (c.iter().any(|&l| l != n) || group_ok != n).then(|| {
        format!(
            "lines per member file {c:?} of {n}: the group {}, flatstore {}",
            outcomes(&st, "event_virtual"),
            outcomes(&st, "event_flatstore")
        )
    });
    let row = Row {
        failure,
        id: "14".into(),
        scenario: "script loop → virtual PARALLEL, 3 flatstore".into(),
        value: rate(n, d.started, last),
        unit: "events/s",
        raised: n,
        delivered: c.iter().copied().min().unwrap_or(0),
        lost_counted: group_lost,
        notes: format!(
            "raised/s until the last line of the last member file; lines per file {c:?}; the group delivered {group_ok}"
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

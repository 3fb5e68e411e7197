//! The scenarios of issue 10. Each returns its rows or an error saying which count was wrong.

use crate::daemon::{stat, udp_rcvbuf_errors, wait_sinks, Daemon, LineCounter, Sink, UdpSink};
use crate::{opensips, Options, Row};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// How long no sink may move before the bench decides the rest was lost.
const STALL: Duration = Duration::from_secs(3);
/// The one event a dead destination's sender thread is working on is in no queue and no count.
const SENDING: u64 = 1;
/// Upper bound on one loop run.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The OpenSIPS loop of issue 10: AVPs filled once, then N `raise_event`s with 3 params, in
/// `startup_route`, with `max_while_loops` raised; `subs` are subscribed first.
fn loop_cfg(n: u64, modules: &[&str], subs: &[String]) -> String {
    let mut s = format!("log_level = 2\nmax_while_loops = {}\n", n + 10);
    for m in modules {
        s += &format!("loadmodule \"{m}.so\"\n");
    }
    s += "startup_route {\n";
    for sub in subs {
        s += &format!("    subscribe_event(\"E_BENCH\", \"{sub}\");\n");
    }
    s += &format!(
        r#"    $avp(bn) = "msg";  $avp(bv) = "hello world";
    $avp(bn) = "user"; $avp(bv) = "alice";
    $avp(bn) = "id";   $avp(bv) = 42;
    $var(i) = 0;
    while ($var(i) < {n}) {{
        raise_event("E_BENCH", $avp(bn), $avp(bv));
        $var(i) = $var(i) + 1;
    }}
}}
"#
    );
    s
}

fn rate(count: u64, from: Instant, to: Instant) -> f64 {
    let secs = to.saturating_duration_since(from).as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Wait for MI, then for the loop to have raised all `n` events; returns the statistics.
fn loop_stats(d: &mut Daemon, n: u64, what: &str) -> Result<BTreeMap<String, u64>, String> {
    d.wait_mi(Duration::from_secs(300))
        .map_err(|e| format!("{what}: {e}"))?;
    let st = d.stats()?;
    let raised = stat(&st, "evi_events:E_BENCH");
    if raised != n {
        return Err(format!(
            "{what}: the script loop raised {raised} events, expected {n}\n{}",
            d.log_tail()
        ));
    }
    Ok(st)
}

/// Poll the statistics until `module`'s delivered + failed + dropped reach `n` (async
/// transports report late) or `patience` passes; returns the last statistics.
fn settle(
    d: &Daemon,
    module: &str,
    n: u64,
    patience: Duration,
) -> Result<BTreeMap<String, u64>, String> {
    let end = Instant::now() + patience;
    loop {
        let st = d.stats()?;
        if accounted(&st, module) >= n || Instant::now() > end {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn accounted(st: &BTreeMap<String, u64>, module: &str) -> u64 {
    ["delivered", "failed", "dropped"]
        .iter()
        .map(|k| stat(st, &format!("{module}:{k}")))
        .sum()
}

fn lost(st: &BTreeMap<String, u64>, module: &str) -> u64 {
    stat(st, &format!("{module}:failed")) + stat(st, &format!("{module}:dropped"))
}

/// Check a flatstore file got every one of `n` events. A shortfall that evid counted (dropped or
/// failed) is a failed requirement (`Ok(Some(why))`); one it did not count is an error.
fn check_flatstore(
    what: &str,
    lines: u64,
    n: u64,
    st: &BTreeMap<String, u64>,
    d: &Daemon,
) -> Result<Option<String>, String> {
    let delivered = stat(st, "event_flatstore:delivered");
    if lines == delivered && accounted(st, "event_flatstore") == n && delivered < n {
        return Ok(Some(format!(
            "flatstore got {lines} of {n}: evid dropped {} (module queue full), failed {}",
            stat(st, "event_flatstore:dropped"),
            stat(st, "event_flatstore:failed")
        )));
    }
    if lines != n || delivered != n {
        return Err(format!(
            "{what}: {n} events raised but {lines} lines in the flatstore file (flatstore delivered {}, failed {}, dropped {}): events lost\n{}",
            stat(st, "event_flatstore:delivered"),
            stat(st, "event_flatstore:failed"),
            stat(st, "event_flatstore:dropped"),
            d.log_tail()
        ));
    }
    Ok(None)
}

/// Check UDP: what the receivers got is what evid handed to the kernel, and evid accounts for
/// every one of `n` (delivered, or counted as failed/dropped).
fn check_udp(
    what: &str,
    received: u64,
    n: u64,
    st: &BTreeMap<String, u64>,
    kernel_drops: u64,
) -> Result<(), String> {
    let delivered = stat(st, "event_datagram:delivered");
    let acc = accounted(st, "event_datagram");
    if received != delivered || acc != n {
        return Err(format!(
            "{what}: {n} raised, evid delivered {delivered} (failed {}, dropped {}), the receiver got {received}; kernel receive-buffer drops during the run: {kernel_drops}: events lost without a count",
            stat(st, "event_datagram:failed"),
            stat(st, "event_datagram:dropped"),
        ));
    }
    Ok(())
}

/// 1: script loop → one flatstore file.
pub fn loop_flatstore(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 1 (loop → flatstore)";
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "flat",
        &loop_cfg(n, &["event_flatstore"], &["flatstore:{dir}/out.log".into()]),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
    let st = loop_stats(&mut d, n, what)?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    let row = Row {
        failure,
        lost_counted: lost(&st, "event_flatstore"),
        id: "1".into(),
        scenario: "script loop → flatstore".into(),
        value: rate(n, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::FLATSTORE),
        raised: n,
        delivered: c[0],
        notes: "from process start to the last line of the file".into(),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

/// 2: script loop → one UDP receiver, plus the raw `sendto` rate for the same payload.
pub fn loop_udp(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 2 (loop → udp)";
    let mut rx = UdpSink::new(1)?;
    let k0 = udp_rcvbuf_errors();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "udp",
        &loop_cfg(n, &["event_datagram"], &[rx.uri(0)]),
    )?;
    let (c, last) = wait_sinks(&mut d, &mut [&mut rx], &[n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    let received = rx.total().max(c[0]);
    check_udp(what, received, n, &st, udp_rcvbuf_errors() - k0)?;
    let dropped = lost(&st, "event_datagram");
    let mut rows = vec![Row {
        id: "2".into(),
        scenario: "script loop → UDP".into(),
        value: rate(received, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::UDP),
        raised: n,
        delivered: received,
        lost_counted: dropped,
        notes: format!(
            "received/s from process start to the last datagram; evid counted {dropped} dropped (queue full)"
        ),
        ..Row::default()
    }];
    d.stop();
    let payload = rx.first().unwrap_or_default();
    drop(rx);
    rows.push(raw_sendto(n, &payload)?);
    Ok(rows)
}

/// The raw rate of `sendto` of `payload` from one thread to one receiver like scenario 2's.
fn raw_sendto(n: u64, payload: &[u8]) -> Result<Row, String> {
    let mut rx = UdpSink::new(1)?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let to = format!("127.0.0.1:{}", rx.ports[0]);
    let k0 = udp_rcvbuf_errors();
    let t0 = Instant::now();
    let mut sent = 0u64;
    for _ in 0..n {
        if tx.send_to(payload, &to).is_ok() {
            sent += 1;
        }
    }
    let sent_at = Instant::now();
    let end = Instant::now() + Duration::from_secs(5);
    while rx.count() < sent && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = rx.count();
    let last = rx.last().unwrap_or(sent_at);
    Ok(Row {
        id: "2/raw".into(),
        scenario: "raw sendto, same payload (baseline)".into(),
        value: rate(got, t0, last.max(sent_at)),
        unit: "events/s",
        raised: n,
        delivered: got,
        lost_counted: sent.saturating_sub(got),
        notes: format!(
            "{} bytes/datagram; {} lost in the kernel (receiver too slow)",
            payload.len(),
            udp_rcvbuf_errors() - k0
        ),
        ..Row::default()
    })
}

/// 3: flatstore and UDP subscribed together.
pub fn loop_flatstore_udp(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 3 (loop → flatstore + udp)";
    let mut rx = UdpSink::new(1)?;
    let k0 = udp_rcvbuf_errors();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "flatudp",
        &loop_cfg(
            n,
            &["event_flatstore", "event_datagram"],
            &["flatstore:{dir}/out.log".into(), rx.uri(0)],
        ),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file, &mut rx], &[n, n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    let received = rx.total();
    check_udp(what, received, n, &st, udp_rcvbuf_errors() - k0)?;
    let dropped = lost(&st, "event_datagram");
    let row = Row {
        failure,
        id: "3".into(),
        scenario: "script loop → flatstore + UDP".into(),
        value: rate(n, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::FLATSTORE_UDP),
        raised: n,
        delivered: c[0] + received,
        lost_counted: dropped,
        notes: format!(
            "raised/s until the last arrival anywhere; flatstore {} lines, udp received {received}, udp dropped {dropped} (counted)",
            c[0]
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

/// The dead destinations of scenarios 4-6.
#[derive(Debug, Clone, Copy)]
pub enum Dead {
    Rabbitmq,
    Xmlrpc,
    Stream,
}

impl Dead {
    fn module(self) -> &'static str {
        match self {
            Dead::Rabbitmq => "event_rabbitmq",
            Dead::Xmlrpc => "event_xmlrpc",
            Dead::Stream => "event_stream",
        }
    }
    fn socket(self, port: u16) -> String {
        match self {
            Dead::Rabbitmq => format!("rabbitmq:127.0.0.1:{port}/x"),
            Dead::Xmlrpc => format!("xmlrpc:127.0.0.1:{port}:x"),
            Dead::Stream => format!("tcp:127.0.0.1:{port}"),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Dead::Rabbitmq => "RabbitMQ",
            Dead::Xmlrpc => "XML-RPC",
            Dead::Stream => "TCP event_stream",
        }
    }
    fn number(self) -> u32 {
        match self {
            Dead::Rabbitmq => 4,
            Dead::Xmlrpc => 5,
            Dead::Stream => 6,
        }
    }
    fn opensips(self) -> f64 {
        match self {
            Dead::Rabbitmq => opensips::DEAD_RABBITMQ,
            Dead::Xmlrpc => opensips::DEAD_XMLRPC,
            Dead::Stream => opensips::DEAD_STREAM,
        }
    }

    /// Events the module still holds (its own queues), from its MI status command.
    fn held(self, d: &Daemon) -> u64 {
        let sum = |v: &Value, list: &str, keys: &[&str]| -> u64 {
            v[list]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            keys.iter()
                                .map(|k| x[*k].as_u64().unwrap_or(0))
                                .sum::<u64>()
                        })
                        .sum()
                })
                .unwrap_or(0)
        };
        match self {
            Dead::Rabbitmq => d
                .mi("event_rabbitmq:status", json!([]))
                .map(|v| {
                    // A list of brokers, or an object holding one.
                    let v = if v.is_array() {
                        json!({ "Brokers": v })
                    } else {
                        v
                    };
                    let key = v
                        .as_object()
                        .and_then(|m| m.keys().next().cloned())
                        .unwrap_or_default();
                    sum(&v, &key, &["buffered", "in_flight"])
                })
                .unwrap_or(0),
            Dead::Xmlrpc => d
                .mi("event_xmlrpc:stats", json!([]))
                .map(|v| sum(&v, "Destinations", &["queued"]))
                .unwrap_or(0),
            Dead::Stream => d
                .mi("event_stream:stats", json!([]))
                .map(|v| {
                    let key = v
                        .as_object()
                        .and_then(|m| m.keys().next().cloned())
                        .unwrap_or_default();
                    sum(&v, &key, &["queued"])
                })
                .unwrap_or(0),
        }
    }
}

/// 4-6: flatstore with a dead subscriber beside it. Flatstore must get every event; the dead
/// one's events must all be accounted for (failed/dropped, or still held by the module).
pub fn loop_dead(o: &Options, dead: Dead) -> Result<Vec<Row>, String> {
    let n = o.n;
    let k = dead.number();
    let what = format!("scenario {k} (loop → flatstore + dead {})", dead.label());
    let module = dead.module();
    // Port 1 on loopback: nobody listens, connects are refused at once.
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "dead",
        &loop_cfg(
            n,
            &["event_flatstore", module],
            &["flatstore:{dir}/out.log".into(), dead.socket(1)],
        ),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
    let value = rate(c[0], d.started, last);
    loop_stats(&mut d, n, &what)?;
    let st = settle(&d, module, n, Duration::from_secs(10))?;
    let failure = check_flatstore(&what, c[0], n, &st, &d)?;
    // Consistent view: what the module counted, what it still holds, what the host queue holds.
    let (mut acc, mut held, mut queued) = (0, 0, 0);
    for _ in 0..20 {
        let st = d.stats()?;
        held = dead.held(&d);
        let st2 = d.stats()?;
        acc = accounted(&st2, module);
        queued = stat(&st2, &format!("{module}:queue_len"));
        if accounted(&st, module) == acc && acc + held + queued + SENDING >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = d.stats()?;
    if acc + held + queued > n || acc + held + queued + SENDING < n {
        return Err(format!(
            "{what}: {n} raised; the dead {} subscriber accounts for {acc} (delivered+failed+dropped), its module holds {held}, the host queue {queued}: {} events unaccounted\n{}",
            dead.label(),
            n as i64 - (acc + held + queued) as i64,
            d.log_tail()
        ));
    }
    let delivered = stat(&st, &format!("{module}:delivered"));
    if delivered > 0 {
        return Err(format!(
            "{what}: the dead destination got {delivered} deliveries: it is not dead"
        ));
    }
    let failed = stat(&st, &format!("{module}:failed"));
    let dropped = stat(&st, &format!("{module}:dropped"));
    let row = Row {
        failure,
        id: k.to_string(),
        scenario: format!("flatstore + dead {}", dead.label()),
        value,
        unit: "events/s",
        opensips: Some(dead.opensips()),
        raised: n,
        delivered: c[0],
        lost_counted: failed + dropped,
        notes: format!(
            "flatstore lines {}; the dead {} failed {failed}, dropped (host queue full) {dropped}, still held by the module {} (after 10 s)",
            c[0],
            dead.label(),
            n - failed - dropped
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

const MI_BODY: &str = r#"{"jsonrpc":"2.0","method":"raise_event","params":["E_BENCH",{"id":42,"user":"alice","msg":"hello world"}],"id":1}"#;

/// The MI client of scenario 7: `wrk` when installed (the client of the OpenSIPS figures),
/// otherwise (or with `EVID_BENCH_CLIENT=rust`) keep-alive connections from this process.
fn use_wrk() -> bool {
    std::env::var("EVID_BENCH_CLIENT").map_or(true, |v| v != "rust")
        && std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok()
}

struct Load {
    ok: u64,
    errors: u64,
    secs: f64,
    client: String,
}

fn wrk(url: &str, conns: usize, secs: u64, dir: &std::path::Path) -> Result<Load, String> {
    let lua = dir.join("post.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{MI_BODY}'\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let out = std::process::Command::new("wrk")
        .args([
            "-t",
            &conns.min(2).to_string(),
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
            "-s",
        ])
        .arg(&lua)
        .arg(url)
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "  123456 requests in 5.00s, 12.34MB read"
    let line = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .ok_or_else(|| format!("wrk printed no result:\n{text}"))?;
    let mut it = line.split_whitespace();
    let total: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let secs: f64 = line
        .split(" requests in ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(secs as f64);
    let bad: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let sock: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(Load {
        ok: total.saturating_sub(bad),
        errors: bad + sock,
        secs,
        client: format!("wrk -t{} -c{conns}", conns.min(2)),
    })
}

/// Keep-alive POSTs of `MI_BODY` on `conns` connections for `secs`; every answer must be a 200
/// with a `result`.
fn rust_load(addr: &str, path: &str, conns: usize, secs: u64) -> Result<Load, String> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{MI_BODY}",
        MI_BODY.len()
    );
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (req, addr) = (req.clone(), addr.to_string());
            std::thread::spawn(move || -> Result<(u64, u64), String> {
                let mut s = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let (mut ok, mut bad) = (0u64, 0u64);
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                while Instant::now() < deadline {
                    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                    buf.clear();
                    let (head_end, len) = loop {
                        let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
                        if k == 0 {
                            return Err("MI closed the connection".into());
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..e]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            break (e + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
                        if k == 0 {
                            return Err("MI closed the connection".into());
                        }
                        buf.extend_from_slice(&chunk[..k]);
                    }
                    let good = buf.starts_with(b"HTTP/1.1 200")
                        && buf[head_end..].windows(8).any(|w| w == b"\"result\"");
                    if good {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
                Ok((ok, bad))
            })
        })
        .collect();
    let (mut ok, mut errors) = (0, 0);
    for w in workers {
        let (a, b) = w.join().map_err(|_| "load thread panicked".to_string())??;
        ok += a;
        errors += b;
    }
    Ok(Load {
        ok,
        errors,
        secs: t0.elapsed().as_secs_f64(),
        client: format!("evid-bench keep-alive client, {conns} connections"),
    })
}

/// 7: MI `raise_event` over HTTP, 1 and 4 keep-alive connections; every accepted raise must be
/// a line in the flatstore file.
pub fn mi_http(o: &Options) -> Result<Vec<Row>, String> {
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "mi",
        "log_level = 2\nloadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_BENCH\", \"flatstore:{dir}/mi.log\"); }\n",
    )?;
    d.wait_mi(Duration::from_secs(20))?;
    let mut file = LineCounter::new(d.dir.0.join("mi.log"));
    let wrk_ok = use_wrk();
    let (addr, path) = evid::mi_client::split_url(&d.mi_url)?;
    let mut rows = Vec::new();
    for (conns, os) in [(1usize, opensips::MI_1), (4, opensips::MI_4)] {
        let what = format!("scenario 7 (MI raise_event, {conns} connections)");
        let before_lines = file.count();
        let before = stat(&d.stats()?, "evi_events:E_BENCH");
        let load = if wrk_ok {
            wrk(&d.mi_url, conns, o.mi_secs, &d.dir.0)?
        } else {
            rust_load(&addr, &path, conns, o.mi_secs)?
        };
        let raised = stat(&d.stats()?, "evi_events:E_BENCH") - before;
        let mut lines = 0;
        crate::daemon::wait_sinks(
            &mut d,
            &mut [&mut file],
            &[before_lines + raised],
            STALL,
            TIMEOUT,
        );
        lines += file.count() - before_lines;
        // wrk does not count requests still in flight when its time is up (at most one per
        // connection); our own client counts exactly.
        let slack = if wrk_ok { conns as u64 } else { 0 };
        if load.errors > 0
            || lines != raised
            || raised < load.ok
            || raised > load.ok + slack
            || load.ok == 0
        {
            return Err(format!(
                "{what}: client {} got {} OK answers and {} errors; evid raised {raised}; the file has {lines} new lines",
                load.client, load.ok, load.errors
            ));
        }
        rows.push(Row {
            id: format!("7/{conns}"),
            scenario: format!("MI raise_event over HTTP, {conns} conn"),
            value: load.ok as f64 / load.secs,
            unit: "req/s",
            opensips: Some(os),
            raised,
            delivered: lines,
            notes: format!(
                "{}, {:.1} s; every OK answer is a line in the flatstore file",
                load.client, load.secs
            ),
            ..Row::default()
        });
    }
    d.stop();
    Ok(rows)
}

/// 8: resident memory of the idle daemon: the default config plus every transport loaded.
pub fn idle_memory(o: &Options) -> Result<Vec<Row>, String> {
    let default = include_str!("../../../scripts/evid.cfg")
        .replace(
            "modparam(\"mi_http\", \"port\", 8888)",
            "modparam(\"mi_http\", \"port\", {mi_port})",
        )
        .replace("/tmp/evid-demo.log", "{dir}/demo.log");
    let body = format!(
        "{default}\nloadmodule \"event_xmlrpc.so\"\nloadmodule \"event_stream.so\"\nloadmodule \"event_rabbitmq.so\"\nloadmodule \"event_route.so\"\n"
    );
    let mut d = Daemon::spawn(&o.bin_dir, "rss", &body)?;
    d.wait_mi(Duration::from_secs(20))?;
    let mods = d.mi("list_statistics", json!([]))?.to_string();
    for m in [
        "event_flatstore",
        "event_datagram",
        "event_xmlrpc",
        "event_stream",
        "event_rabbitmq",
        "event_route",
    ] {
        if !mods.contains(&format!("\"{m}:delivered\"")) {
            return Err(format!("scenario 8: module {m} is not loaded:\n{mods}"));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = d.pid();
    let kib = crate::daemon::vm_rss_kib(pid).ok_or("scenario 8: no VmRSS")?;
    let threads = crate::daemon::threads(pid).unwrap_or(0);
    d.stop();
    Ok(vec![Row {
        id: "8".into(),
        scenario: "resident memory, idle, all transports".into(),
        value: kib as f64 / 1024.0,
        unit: "MB",
        opensips: Some(opensips::RSS_MB),
        lower_is_better: true,
        notes: format!(
            "VmRSS of the one evid process after 2 s idle ({threads} threads); default config + xmlrpc, stream, rabbitmq, route"
        ),
        ..Row::default()
    }])
}

/// 9: in-process host, raise latency and throughput with 1, 4, 16, 64 UDP subscribers.
pub fn scaling(o: &Options) -> Result<Vec<Row>, String> {
    use evi_host::{Host, ParamRef, ValueRef};
    use std::sync::atomic::Ordering;
    let mut rows = Vec::new();
    for subs in [1usize, 4, 16, 64] {
        let what = format!("scenario 9 ({subs} UDP subscribers)");
        // About N datagrams per point, at least 1000 events (or N when smaller).
        let events = (o.n / subs as u64).max(o.n.min(1000));
        let host = Host::new(evi_host::DEFAULT_QUEUE_SIZE);
        let lib = evi_host::loader::Library::open(&o.bin_dir.join("libevent_datagram.so"))
            .map_err(|e| format!("{what}: {e}"))?;
        host.start_module(lib, &[])
            .map_err(|e| format!("{what}: {e}"))?;
        let id = host.publish("E_BENCH")?;
        let mut rx = UdpSink::new(subs)?;
        for i in 0..subs {
            host.subscribe("E_BENCH", &rx.uri(i), None)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        let module = host
            .module("event_datagram")
            .ok_or_else(|| format!("{what}: event_datagram not running"))?;
        let high = module.queue_capacity() * 3 / 4;
        let k0 = udp_rcvbuf_errors();
        let mut lat: Vec<u32> = Vec::with_capacity(events as usize);
        let t0 = Instant::now();
        for _ in 0..events {
            // A producer that respects backpressure: nap while the module queue is 3/4 full
            // (sleep, not spin: on 2 cores a spinning raiser steals the module's CPU).
            if module.queue_len() + subs > high {
                while module.queue_len() > high / 3 {
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
            if r.is_err() {
                return Err(format!("{what}: raise failed: {r:?}"));
            }
        }
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
        lat.sort_unstable();
        let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f).round() as usize] as u64;
        let secs = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);
        rows.push(Row {
            id: format!("9/{subs}"),
            scenario: format!("in-process raise → {subs} UDP subscribers"),
            value: events as f64 / secs,
            unit: "events/s",
            p50_ns: Some(q(0.50)),
            p99_ns: Some(q(0.99)),
            p999_ns: Some(q(0.999)),
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

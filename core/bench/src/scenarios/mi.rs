//! Scenario 7: MI `raise_event` over HTTP with keep-alive (wrk, or the suite's own client).

use super::http_baseline::{exchange, NoWorkServer};
use super::{per_round, STALL, TIMEOUT};
use crate::daemon::{stat, Daemon};
use crate::sinks::{LineCounter, Sink};
use crate::{opensips, Options, Row};
use std::time::{Duration, Instant};

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

/// The keep-alive POST of `MI_BODY` to `path` on `addr`.
fn mi_request(addr: &str, path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{MI_BODY}",
        MI_BODY.len()
    )
}

/// `conns` keep-alive connections POSTing `MI_BODY` to `url` for `mi_secs`: `wrk` when
/// `wrk_ok`, else the suite's own client.
fn load(
    o: &Options,
    wrk_ok: bool,
    url: &str,
    conns: usize,
    dir: &std::path::Path,
) -> Result<Load, String> {
    if wrk_ok {
        wrk(url, conns, o.mi_secs, dir)
    } else {
        rust_load(url, conns, o.mi_secs)
    }
}

/// Keep-alive POSTs of `MI_BODY` on `conns` connections for `secs`; every answer must be a 200
/// with a `result`.
fn rust_load(url: &str, conns: usize, secs: u64) -> Result<Load, String> {
    let (addr, path) = evid::mi_client::split_url(url)?;
    let req = mi_request(&addr, &path);
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
                while Instant::now() < deadline {
                    let resp = exchange(&mut s, req.as_bytes())?;
                    let good = evid::mi_client::parse_response(&resp).is_some_and(|r| {
                        r.status == 200 && r.body.windows(8).any(|w| w == b"\"result\"")
                    });
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

/// 7: MI `raise_event` over HTTP, 1 and 4 keep-alive connections, and the no-work server
/// (`7/raw`) with 4, in alternating rounds (each row is the median of `rounds`: single runs on
/// a shared VM swing by a third); every accepted raise must be a line in the flatstore file.
pub fn mi_http(o: &Options) -> Result<Vec<Row>, String> {
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "mi",
        "log_level = 2\nloadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_BENCH\", \"flatstore:{dir}/mi.log\"); }\n",
    )?;
    d.wait_mi(Duration::from_secs(20))?;
    let mut file = LineCounter::new(d.dir.0.join("mi.log"));
    let wrk_ok = use_wrk();
    let baseline = NoWorkServer::start(evid_reply(&d.mi_url)?)?;
    let mut runs: [Vec<Row>; 3] = Default::default();
    // runs[0]: evid -c1, runs[1]: evid -c4, runs[2]: the no-work server -c4. The no-work
    // server goes first in odd rounds: neither side always follows the other.
    for round in 0..o.rounds.max(1) {
        let order = if round % 2 == 1 { [2, 0, 1] } else { [0, 1, 2] };
        for k in order {
            runs[k].push(match k {
                0 => mi_run(o, &mut d, &mut file, wrk_ok, 1, opensips::MI_1)?,
                1 => mi_run(o, &mut d, &mut file, wrk_ok, 4, opensips::MI_4)?,
                _ => baseline_run(o, &baseline, &d.mi_url, wrk_ok, &d.dir.0)?,
            });
        }
    }
    d.stop();
    let share = per_round(&runs[1], &runs[2]);
    let [one, four, raw] = runs;
    let mut four = super::median(four);
    four.notes = format!(
        "{}; per round, evid against the no-work server: {share}",
        four.notes
    );
    Ok(vec![super::median(one), four, super::median(raw)])
}

/// The whole response evid gives to one `MI_BODY` request (the no-work server sends the same).
fn evid_reply(url: &str) -> Result<Vec<u8>, String> {
    let (addr, path) = evid::mi_client::split_url(url)?;
    let mut s = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let reply = exchange(&mut s, mi_request(&addr, &path).as_bytes())?;
    if !reply.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "scenario 7: evid answered {:?}",
            String::from_utf8_lossy(&reply)
        ));
    }
    Ok(reply)
}

/// `7/raw`: the no-work server under the same client and path as evid, with 4 connections.
fn baseline_run(
    o: &Options,
    server: &NoWorkServer,
    mi_url: &str,
    wrk_ok: bool,
    dir: &std::path::Path,
) -> Result<Row, String> {
    let (_, path) = evid::mi_client::split_url(mi_url)?;
    let l = load(o, wrk_ok, &server.url(&path), 4, dir)?;
    if l.errors > 0 || l.ok == 0 {
        return Err(format!(
            "scenario 7/raw: client {} got {} OK answers and {} errors from the no-work server",
            l.client, l.ok, l.errors
        ));
    }
    Ok(Row {
        id: "7/raw".into(),
        scenario: "no-work HTTP server, 4 conn (baseline)".into(),
        value: l.ok as f64 / l.secs,
        unit: "req/s",
        notes: format!(
            "{}, {:.1} s; one thread per connection, answers evid's reply bytes",
            l.client, l.secs
        ),
        ..Row::default()
    })
}

/// One load run of scenario 7 with `conns` connections (`wrk` or the suite's own client), its
/// counts checked.
fn mi_run(
    o: &Options,
    d: &mut Daemon,
    file: &mut LineCounter,
    wrk_ok: bool,
    conns: usize,
    os: f64,
) -> Result<Row, String> {
    let what = format!("scenario 7 (MI raise_event, {conns} connections)");
    let before_lines = file.count();
    let before = stat(&d.stats()?, "evi_events:E_BENCH");
    let load = load(o, wrk_ok, &d.mi_url, conns, &d.dir.0)?;
    let raised = stat(&d.stats()?, "evi_events:E_BENCH") - before;
    crate::daemon::wait_sinks(d, &mut [file], &[before_lines + raised], STALL, TIMEOUT);
    let lines = file.count() - before_lines;
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
    Ok(Row {
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
    })
}

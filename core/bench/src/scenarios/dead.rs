//! Scenarios 4-6: the script loop into flatstore beside a dead RabbitMQ, XML-RPC or TCP stream
//! subscriber; `Dead` is shared with the latency (15) and memory (17) scenarios.

use super::{
    accounted, check_flatstore, loop_cfg_ext, loop_flatstore, loop_stats, median, per_round, rate,
    settle, SENDING, STALL, TIMEOUT,
};
use crate::daemon::{stat, wait_sinks, Daemon};
use crate::sinks::LineCounter;
use crate::{opensips, Options, Row};
use serde_json::{json, Value};
use std::time::Duration;

/// The dead destinations of scenarios 4-6.
#[derive(Debug, Clone, Copy)]
pub enum Dead {
    Rabbitmq,
    Xmlrpc,
    Stream,
}

impl Dead {
    pub(crate) fn module(self) -> &'static str {
        match self {
            Dead::Rabbitmq => "event_rabbitmq",
            Dead::Xmlrpc => "event_xmlrpc",
            Dead::Stream => "event_stream",
        }
    }
    pub(crate) fn socket(self, port: u16) -> String {
        match self {
            Dead::Rabbitmq => format!("rabbitmq:127.0.0.1:{port}/x"),
            Dead::Xmlrpc => format!("xmlrpc:127.0.0.1:{port}:x"),
            Dead::Stream => format!("tcp:127.0.0.1:{port}"),
        }
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            Dead::Rabbitmq => "RabbitMQ",
            Dead::Xmlrpc => "XML-RPC",
            Dead::Stream => "TCP event_stream",
        }
    }
    pub(crate) fn number(self) -> u32 {
        match self {
            Dead::Rabbitmq => 4,
            Dead::Xmlrpc => 5,
            Dead::Stream => 6,
        }
    }
    pub(crate) fn opensips(self) -> f64 {
        match self {
            Dead::Rabbitmq => opensips::DEAD_RABBITMQ,
            Dead::Xmlrpc => opensips::DEAD_XMLRPC,
            Dead::Stream => opensips::DEAD_STREAM,
        }
    }

    /// Events the module still holds (its own queues), from its MI status command, called
    /// through `mi` (a daemon's MI, or an in-process host's).
    pub(crate) fn held(self, mi: &dyn Fn(&str, Value) -> Result<Value, String>) -> u64 {
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
            Dead::Rabbitmq => mi("event_rabbitmq:status", json!([]))
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
            Dead::Xmlrpc => mi("event_xmlrpc:stats", json!([]))
                .map(|v| sum(&v, "Destinations", &["queued"]))
                .unwrap_or(0),
            Dead::Stream => mi("event_stream:stats", json!([]))
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

/// Check that every one of the `n` events raised to the one `dead` subscriber of a daemon is
/// accounted for: failed or dropped (counted), still held by its module (its MI status) or in
/// its host queue; none delivered. Returns (failed, dropped, held + queued).
pub(crate) fn check_dead(
    d: &Daemon,
    dead: Dead,
    n: u64,
    what: &str,
) -> Result<(u64, u64, u64), String> {
    let module = dead.module();
    // Consistent view: what the module counted, what it still holds, what the host queue holds.
    let (mut acc, mut held, mut queued) = (0, 0, 0);
    for _ in 0..20 {
        let st = d.stats()?;
        held = dead.held(&|m, p| d.mi(m, p));
        let st2 = d.stats()?;
        acc = accounted(&st2, module);
        // The host queue, and what the host holds for the module while its destination is
        // down (`delivery_hold`).
        queued = stat(&st2, &format!("{module}:queue_len")) + stat(&st2, &format!("{module}:held"));
        if accounted(&st, module) == acc && acc + held + queued + SENDING >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = d.stats()?;
    if acc + held + queued > n || acc + held + queued + SENDING < n {
        return Err(format!(
            "{what}: {n} raised; the dead {} subscriber accounts for {acc} (delivered+failed+dropped), its module holds {held}, the host queue and hold {queued}: {} events unaccounted\n{}",
            dead.label(),
            n as i64 - (acc + held + queued) as i64,
            d.log_tail()
        ));
    }
    let delivered = stat(&st, &format!("{module}:delivered"));
    if delivered > 0 {
        return Err(format!(
            "{what}: the dead {} got {delivered} deliveries: it is not dead",
            dead.label()
        ));
    }
    let failed = stat(&st, &format!("{module}:failed"));
    let dropped = stat(&st, &format!("{module}:dropped"));
    Ok((failed, dropped, n.saturating_sub(failed + dropped)))
}

/// Scenarios 1 and 4-6 (those selected) in alternating rounds: each round runs the flatstore
/// loop alone, then beside each dead destination, so each dead row is compared with a baseline
/// measured minutes, not a whole suite, apart (this VM's rate swings 2x between runs). Each row
/// is its median round; a dead row's notes give, per round, its rate as a share of the same
/// round's flatstore-alone rate. Returns (scenario 1's rows, scenario 4-6's rows).
pub fn flatstore_rounds(o: &Options) -> Result<(Vec<Row>, Vec<Row>), String> {
    let deads: Vec<Dead> = [Dead::Rabbitmq, Dead::Xmlrpc, Dead::Stream]
        .into_iter()
        .filter(|d| o.wants(d.number()))
        .collect();
    let mut alone = Vec::new();
    // One list of rounds per dead row (4 and 4b are two).
    let mut beside: Vec<Vec<Row>> = Vec::new();
    for _ in 0..o.rounds.max(1) {
        if o.wants(1) {
            alone.extend(loop_flatstore(o)?);
        }
        let rows: Vec<Row> = deads
            .iter()
            .map(|&d| loop_dead(o, d))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        beside.resize_with(rows.len(), Vec::new);
        for (k, row) in rows.into_iter().enumerate() {
            beside[k].push(row);
        }
    }
    let dead_rows = beside
        .into_iter()
        .map(|rounds| {
            let shares = (alone.len() == rounds.len() && rounds.len() > 1)
                .then(|| per_round(&rounds, &alone));
            let mut row = median(rounds);
            if let Some(s) = shares {
                row.notes += &format!("; per round, share of the flatstore loop alone: {s}");
            }
            row
        })
        .collect();
    let alone = if alone.is_empty() {
        Vec::new()
    } else {
        vec![median(alone)]
    };
    Ok((alone, dead_rows))
}

/// 4-6: flatstore with a dead subscriber beside it. Flatstore must get every event; the dead
/// one's events must all be accounted for (failed/dropped, or still held by the module). For
/// RabbitMQ also 4b: the same with `buffer_full_drop = "newest"` (the buffer refuses new events
/// once full and the daemon fails them while the broker is down).
pub fn loop_dead(o: &Options, dead: Dead) -> Result<Vec<Row>, String> {
    let mut rows = vec![loop_dead_with(o, dead, "", "")?];
    if let Dead::Rabbitmq = dead {
        rows.push(loop_dead_with(
            o,
            dead,
            "modparam(\"event_rabbitmq\", \"buffer_full_drop\", \"newest\")\n",
            "b",
        )?);
    }
    Ok(rows)
}

fn loop_dead_with(o: &Options, dead: Dead, params: &str, variant: &str) -> Result<Row, String> {
    let n = o.n;
    let k = format!("{}{variant}", dead.number());
    let what = format!("scenario {k} (loop → flatstore + dead {})", dead.label());
    let module = dead.module();
    // Port 1 on loopback: nobody listens, connects are refused at once.
    let subs = ["flatstore:{dir}/out.log".to_string(), dead.socket(1)];
    let subs: Vec<(&str, &str)> = subs.iter().map(|s| ("E_BENCH", s.as_str())).collect();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "dead",
        &loop_cfg_ext(n, &["event_flatstore", module], params, &subs, ""),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
    let value = rate(c[0], d.started, last);
    loop_stats(&mut d, n, &what)?;
    let st = settle(&d, module, n, Duration::from_secs(10))?;
    let failure = check_flatstore(&what, c[0], n, &st, &d)?;
    let (failed, dropped, held) = check_dead(&d, dead, n, &what)?;
    let row = Row {
        failure,
        id: k,
        scenario: format!(
            "flatstore + dead {}{}",
            dead.label(),
            if variant.is_empty() {
                ""
            } else {
                " (buffer_full_drop newest)"
            }
        ),
        value,
        unit: "events/s",
        opensips: Some(dead.opensips()),
        raised: n,
        delivered: c[0],
        lost_counted: failed + dropped,
        notes: format!(
            "flatstore lines {}; the dead {} failed {failed}, dropped (host queue full) {dropped}, still held (by the module, or by the daemon for it) {held} (after 10 s)",
            c[0],
            dead.label(),
        ),
        ..Row::default()
    };
    d.stop();
    Ok(row)
}

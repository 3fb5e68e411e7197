//! The scenarios of issue 10, one file per family. Each returns its rows or an error saying
//! which count was wrong. This file holds what they share: the script loop's config, and the
//! checks of what evid counted against what the sinks saw.

mod dead;
mod http_baseline;
mod latency;
mod loops;
mod memory;
mod mi;
mod rabbitmq;
mod transports;

pub use dead::{flatstore_rounds, Dead};
pub use latency::{dead_latency, scaling};
pub use loops::{loop_flatstore, loop_flatstore_udp, loop_udp};
pub use memory::{dead_memory, idle_memory, load_memory, startup, DEAD_BOUND_MB};
pub use mi::mi_http;
pub use rabbitmq::{loop_rabbitmq, require_broker};
pub use transports::{loop_route, loop_stream, loop_unix, loop_virtual};

use crate::daemon::{stat, Daemon};
use crate::Row;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long no sink may move before the bench decides the rest was lost.
const STALL: Duration = Duration::from_secs(3);
/// The one event a dead destination's sender thread is working on is in no queue and no count.
const SENDING: u64 = 1;
/// Upper bound on one loop run.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The OpenSIPS loop of issue 10: AVPs filled once, then N `raise_event`s with 3 params, in
/// `startup_route`, with `max_while_loops` raised; `subs` are subscribed to E_BENCH first.
fn loop_cfg(n: u64, modules: &[&str], subs: &[String]) -> String {
    let subs: Vec<(&str, &str)> = subs.iter().map(|s| ("E_BENCH", s.as_str())).collect();
    loop_cfg_ext(n, modules, "", &subs, "")
}

/// `loop_cfg` with `params` (modparam lines) after the `loadmodule`s, `subs` as (event, socket)
/// pairs, and `tail` (e.g. an `event_route` block) after the `startup_route`.
fn loop_cfg_ext(
    n: u64,
    modules: &[&str],
    params: &str,
    subs: &[(&str, &str)],
    tail: &str,
) -> String {
    let mut s = format!("log_level = 2\nmax_while_loops = {}\n", n + 10);
    for m in modules {
        s += &format!("loadmodule \"{m}.so\"\n");
    }
    s += params;
    s += "startup_route {\n";
    for (event, sub) in subs {
        s += &format!("    subscribe_event(\"{event}\", \"{sub}\");\n");
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
    s + tail
}

/// The row with the median value, its notes listing every round's value.
fn median(mut rows: Vec<Row>) -> Row {
    let all: Vec<String> = rows.iter().map(|r| format!("{:.0}", r.value)).collect();
    rows.sort_by(|a, b| a.value.total_cmp(&b.value));
    let n = rows.len();
    let mut row = rows.swap_remove(n / 2);
    if n > 1 {
        row.notes = format!("median of {n} rounds ({}); {}", all.join(", "), row.notes);
    }
    row
}

/// Each round's `rows` value as a share of the same round's `base`, and their median: a pair
/// run back to back shares the VM's state, so the median share is steadier than the ratio of
/// the two medians when single rounds swing by 2x (an even count takes the upper middle, as
/// `median` does).
fn per_round(rows: &[Row], base: &[Row]) -> String {
    let mut shares: Vec<f64> = rows
        .iter()
        .zip(base)
        .map(|(r, b)| 100.0 * r.value / b.value.max(1.0))
        .collect();
    let listed: Vec<String> = shares.iter().map(|p| format!("{p:.0}%")).collect();
    shares.sort_by(f64::total_cmp);
    match shares.get(shares.len() / 2) {
        Some(mid) if shares.len() > 1 => format!("{} (median {mid:.0}%)", listed.join(", ")),
        _ => listed.join(", "),
    }
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

/// Check one payload a sink received is the loop's event: JSON-RPC, method E_BENCH, the 3 params.
fn check_payload(what: &str, bytes: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "{what}: the payload received is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })?;
    let p = &v["params"];
    if v["jsonrpc"] != "2.0"
        || v["method"] != "E_BENCH"
        || p["id"] != 42
        || p["user"] != "alice"
        || p["msg"] != "hello world"
    {
        return Err(format!("{what}: unexpected payload received: {v}"));
    }
    Ok(())
}

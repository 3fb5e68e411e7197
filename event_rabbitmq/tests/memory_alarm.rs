//! The broker's memory alarm, for real: RabbitMQ blocks the publishing connection, the daemon
//! keeps answering and delivering to its other transports, the events wait in event_rabbitmq's
//! buffer, and every one of them reaches the queue once the alarm clears.

mod support;

use evi_testkit::{wait_for, Daemon};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{raise, status, status_json, MemoryAlarm, Queue};

const T: Duration = Duration::from_secs(60);
const N: usize = 2000;

fn body(i: usize) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"E_ALARM","params":{{"i":{i}}}}}"#)
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn a_blocked_broker_stalls_nothing_and_loses_nothing() {
    // Exclusive: the alarm blocks every publisher on the broker, other tests' too.
    let _lock = support::exclusive();
    let q = Queue::new("alarm", None);
    // E_WARM opens the connection before the alarm (its routing key has no queue: the broker
    // confirms and discards it); E_ALARM goes to the queue and to a file.
    let d = Daemon::start(&format!(
        "loadmodule \"event_rabbitmq.so\"\nloadmodule \"event_flatstore.so\"\n\
         modparam(\"event_rabbitmq\", \"heartbeat\", 2)\n\
         startup_route {{\n\
         subscribe_event(\"E_WARM\", \"rabbitmq:127.0.0.1/{q}-warm\");\n\
         subscribe_event(\"E_ALARM\", \"rabbitmq:127.0.0.1/{q}\");\n\
         subscribe_event(\"E_ALARM\", \"flatstore:{{dir}}/alarm.log\");\n}}",
        q = q.0
    ));
    let file = d.dir.join("alarm.log");
    raise(&d, json!(["E_WARM", ["warm"]]));
    assert!(
        wait_for(T, || status(&d, "confirmed") == 1),
        "{}",
        status_json(&d)
    );

    let alarm = MemoryAlarm::raise();
    // Every MI raise is answered and the file gets every event while the broker blocks.
    for i in 0..N {
        raise(&d, json!(["E_ALARM", format!(r#"{{"i":{i}}}"#)]));
    }
    assert!(wait_for(T, || lines(&file) == N), "{} lines", lines(&file));
    assert!(
        wait_for(T, || status(&d, "blocked") == 1),
        "{}",
        status_json(&d)
    );
    let s = status_json(&d);
    eprintln!("during the alarm: {s}");
    let held = status(&d, "buffered") as usize;
    let confirmed = status(&d, "confirmed") as usize - 1;
    assert_eq!(held + confirmed, N, "{s}");
    assert!(held > 0 && status(&d, "in_flight") > 0, "{s}");
    assert_eq!((status(&d, "failed"), status(&d, "dropped")), (0, 0), "{s}");
    assert_eq!(
        status(&d, "connected"),
        1,
        "a blocked connection is not a broken one: {s}"
    );

    drop(alarm);
    assert!(
        wait_for(T * 2, || status(&d, "confirmed") as usize == N + 1),
        "{}",
        status_json(&d)
    );
    let mut got = support::get(&q.0, N, T);
    // Copies sent again after a reconnect, if any, are counted in `resent`.
    let resent = status(&d, "resent") as usize;
    if resent > 0 {
        got.extend(support::get(&q.0, resent, Duration::from_secs(2)));
    }
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (b, _) in &got {
        *seen.entry(b.clone()).or_insert(0) += 1;
    }
    let missing: Vec<usize> = (0..N)
        .filter(|&i| !seen.contains_key(body(i).as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} events: {missing:?}",
        missing.len()
    );
    assert_eq!(seen.len(), N, "only the raised bodies, byte for byte");
    let dups = got.len() - seen.len();
    let s = status_json(&d);
    assert!(
        dups as u64 <= status(&d, "resent"),
        "{dups} duplicates: {s}"
    );
    assert!(
        wait_for(T, || status(&d, "blocked") == 0),
        "{}",
        status_json(&d)
    );
    eprintln!("after the alarm: {s}; {dups} duplicate(s)");
}

#[test]
fn stopping_while_the_broker_blocks_ends_at_the_drain_timeout_and_counts_what_was_left() {
    let _lock = support::exclusive();
    let q = Queue::new("alarm-stop", None);
    let mut d = Daemon::start(&format!(
        "loadmodule \"event_rabbitmq.so\"\n\
         modparam(\"event_rabbitmq\", \"drain_timeout\", 1000)\n\
         startup_route {{ subscribe_event(\"E_ALARM\", \"rabbitmq:127.0.0.1/{q}\"); }}",
        q = q.0
    ));
    raise(&d, json!(["E_ALARM", ["warm"]]));
    assert!(
        wait_for(T, || status(&d, "confirmed") == 1),
        "{}",
        status_json(&d)
    );
    let _alarm = MemoryAlarm::raise();
    for i in 0..50 {
        raise(&d, json!(["E_ALARM", format!(r#"{{"i":{i}}}"#)]));
    }
    assert!(
        wait_for(T, || status(&d, "blocked") == 1),
        "{}",
        status_json(&d)
    );
    // lapin cannot close a connection whose close frame the broker does not read; the module
    // cuts the socket once the drain timeout has passed (it used to wait ~22 s for timeouts).
    let t0 = std::time::Instant::now();
    let (exit, log) = d.stop();
    let took = t0.elapsed();
    assert!(exit.success(), "{log}");
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?} with drain_timeout 1 s:\n{log}"
    );
    assert!(
        log.contains("50 event(s) not confirmed before shutdown"),
        "the events left are counted and reported failed:\n{log}"
    );
}

//! event_nats loaded into the real evid, publishing to the real NATS at 127.0.0.1:4222, with a
//! real NATS client as the consumer: the `nats-py` package (tests/consumer.py, in the venv that
//! scripts/test-deps makes).

mod common;

use common::{unique, wait_for, Daemon, PyConsumer, NATS};
use evi_sdk::json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// The exact payload evid publishes for event `n` raised below.
fn expected(n: usize) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"E_NATS_PY","params":{{"n":{n},"who":"alice"}}}}"#)
}

fn text(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// evid with `nats:.../subject` subscribed to E_NATS_PY, after three raises of it.
fn raise_three(subject: &str) -> (Daemon, String) {
    let socket = format!("nats:{NATS}/{subject}");
    let d = Daemon::start(&format!(
        "startup_route {{ subscribe_event(\"E_NATS_PY\", \"{socket}\"); }}"
    ));
    for i in 0..3 {
        d.mi(
            "raise_event",
            json!(["E_NATS_PY", {"n": i, "who": "alice"}]),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    (d, socket)
}

#[test]
fn nats_py_subscriber_gets_each_json_rpc_payload_byte_for_byte() {
    let subject = unique("evid.test.natspy");
    let mut consumer = PyConsumer::start(&subject, 3, T, None);
    let (d, socket) = raise_three(&subject);
    let got = consumer.recv_n(3, T);
    let want: Vec<String> = (0..3).map(expected).collect();
    assert_eq!(text(&got), want, "{}\n{}", consumer.stderr(), d.log());
    assert!(consumer.wait(T), "consumer.py: {}", consumer.stderr());
    assert!(
        wait_for(T, || d.sub_stats("E_NATS_PY", &socket)["delivered"] == 3),
        "{}\n{}",
        d.sub_stats("E_NATS_PY", &socket),
        d.log()
    );
    let (clean, log) = d.stop();
    assert!(clean, "{log}");
}

#[test]
fn nats_py_reads_the_acked_events_back_from_the_jetstream_stream() {
    let subject = unique("evid.test.natspy_js");
    let stream = unique("EVIDPY").replace('.', "_");
    // consumer.py creates the stream (deleting it at exit) and pulls from it.
    let mut consumer = PyConsumer::start(&subject, 3, T, Some(&stream));
    let (d, socket) = raise_three(&subject);
    // Delivered means the stream acked each one: stored.
    assert!(
        wait_for(T, || d.sub_stats("E_NATS_PY", &socket)["delivered"] == 3),
        "{}\n{}",
        d.sub_stats("E_NATS_PY", &socket),
        d.log()
    );
    let got = consumer.recv_n(3, T);
    let want: Vec<String> = (0..3).map(expected).collect();
    assert_eq!(text(&got), want, "{}\n{}", consumer.stderr(), d.log());
    assert!(consumer.wait(T), "consumer.py: {}", consumer.stderr());
    let (clean, log) = d.stop();
    assert!(clean, "{log}");
}

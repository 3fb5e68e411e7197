//! event_nats loaded into the real evid, publishing to the real NATS at 127.0.0.1:4222, with a
//! raw NATS client as the consumer.

mod common;

use common::{unique, wait_for, Daemon, NatsClient, Stream, NATS};
use evi_sdk::json::{self, json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn plain_subject_gets_the_json_rpc_payload_and_each_event_is_confirmed() {
    let subject = unique("evid.test.plain");
    let mut consumer = NatsClient::connect();
    consumer.sub(&subject);
    let socket = format!("nats:{NATS}/{subject}");
    let d = Daemon::start(&format!(
        "startup_route {{ subscribe_event(\"E_NATS\", \"{socket}\"); }}"
    ));
    for i in 0..3 {
        d.mi("raise_event", json!(["E_NATS", {"n": i, "who": "alice"}]))
            .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    let got = consumer.recv_n(3, T);
    assert_eq!(got.len(), 3, "{}", d.log());
    for (i, p) in got.iter().enumerate() {
        let v: Value = json::from_slice(p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "method": "E_NATS", "params": {"n": i, "who": "alice"}})
        );
    }
    // Each event's async status came back as delivered.
    assert!(
        wait_for(T, || d.sub_stats("E_NATS", &socket)["delivered"] == 3),
        "{}\n{}",
        d.sub_stats("E_NATS", &socket),
        d.log()
    );
    let st = d
        .mi("nats_status", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st["Servers"][0]["server"], NATS, "{st}");
    assert_eq!(st["Servers"][0]["connected"], true, "{st}");
    let (clean, log) = d.stop();
    assert!(clean, "{log}");
}

#[test]
fn jetstream_subject_is_confirmed_by_the_stream_ack() {
    let subject = unique("evid.test.js");
    let stream = Stream::create(&subject, json!({}));
    let socket = format!("nats:{NATS}/{subject}");
    let d = Daemon::start(&format!(
        "startup_route {{ subscribe_event(\"E_NATS\", \"{socket}\"); }}"
    ));
    for i in 0..5 {
        d.mi("raise_event", json!(["E_NATS", [i]]))
            .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    }
    assert!(
        wait_for(T, || d.sub_stats("E_NATS", &socket)["delivered"] == 5),
        "{}\n{}",
        d.sub_stats("E_NATS", &socket),
        d.log()
    );
    assert_eq!(stream.messages(), 5);
}

#[test]
fn a_stream_that_refuses_the_event_fails_that_delivery_with_its_reason() {
    let subject = unique("evid.test.full");
    let _stream = Stream::create(&subject, json!({"max_msgs": 2, "discard": "new"}));
    let socket = format!("nats:{NATS}/{subject}");
    let d = Daemon::start(&format!(
        "startup_route {{ subscribe_event(\"E_NATS\", \"{socket}\"); }}"
    ));
    for i in 0..3 {
        d.mi("raise_event", json!(["E_NATS", [i]]))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        wait_for(T, || {
            let s = d.sub_stats("E_NATS", &socket);
            s["delivered"] == 2 && s["failed"] == 1
        }),
        "{}\n{}",
        d.sub_stats("E_NATS", &socket),
        d.log()
    );
    let s = d.sub_stats("E_NATS", &socket);
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("JetStream refused the event: maximum messages")),
        "{s}"
    );
}

#[test]
fn an_unreachable_server_fails_the_event_and_the_daemon_goes_on() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = format!("nats:127.0.0.1:{port}/x");
    let d = Daemon::start(&format!(
        "startup_route {{ subscribe_event(\"E_NATS\", \"{socket}\"); }}"
    ));
    d.mi("raise_event", json!(["E_NATS", [1]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(T, || d.sub_stats("E_NATS", &socket)["failed"] == 1),
        "{}\n{}",
        d.sub_stats("E_NATS", &socket),
        d.log()
    );
    let s = d.sub_stats("E_NATS", &socket);
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{s}"
    );
    // Bad sockets are refused at subscribe time, naming the bad part.
    let err = d
        .mi(
            "event_subscribe",
            json!(["E_NATS", "nats:127.0.0.1:4222/a.*"]),
        )
        .err()
        .unwrap_or_default();
    assert!(err.contains("wildcard"), "{err}");
    let (clean, log) = d.stop();
    assert!(clean, "{log}");
}

#[test]
fn describe_module_reads_the_declaration() {
    let out = std::process::Command::new(common::evid_build_dir().join("evid"))
        .arg("--describe-module")
        .arg(common::module_so())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "event_nats",
        "queue_size",
        "ack_timeout_ms",
        "jetstream",
        "nats_status",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
}

//! The module in-process, with the SDK's FakeHost standing in for the daemon and the real NATS
//! at 127.0.0.1:4222: the async status of each event arrives through `Host::delivery_status`.

mod common;

use common::{unique, wait_for, NatsClient, NATS};
use event_nats::EventNats;
use evi_sdk::testing::{FakeHost, TestEvent};
use evi_sdk::{Delivery, Module, ParamValue, Params, Raised, Transport};
use std::time::Duration;

fn params() -> Params {
    Params::from_pairs(&[
        ("queue_size", ParamValue::Int(100)),
        ("ack_timeout_ms", ParamValue::Int(5000)),
        ("jetstream", ParamValue::Str("auto".into())),
        ("client_name", ParamValue::Str("evid fake host test".into())),
    ])
}

#[test]
fn raise_is_pending_then_reported_delivered() {
    let host = FakeHost::new();
    let mut m = EventNats::init(host.host(), &params()).unwrap_or_else(|e| panic!("{e}"));
    let subject = unique("evid.test.fake");
    let mut consumer = NatsClient::connect();
    consumer.sub(&subject);
    let mut sock = m
        .parse("nats", &format!("{NATS}/{subject}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = TestEvent::new("E_X")
        .int(Some("n"), 1)
        .json(r#"{"jsonrpc":"2.0","method":"E_X","params":{"n":1}}"#);
    let r = ev.with(|e| m.raise(&mut sock, e, Delivery(7)));
    assert_eq!(r, Ok(Raised::Pending));
    assert!(
        wait_for(Duration::from_secs(20), || !host.statuses().is_empty()),
        "no delivery status"
    );
    assert_eq!(host.statuses(), [(7, Ok(()))]);
    assert_eq!(
        consumer.recv_n(1, Duration::from_secs(10)),
        [br#"{"jsonrpc":"2.0","method":"E_X","params":{"n":1}}"#.to_vec()]
    );
    m.free(&mut sock);
    m.destroy();
}

#[test]
fn bad_params_are_refused_naming_the_param() {
    let p = Params::from_pairs(&[
        ("queue_size", ParamValue::Int(100)),
        ("ack_timeout_ms", ParamValue::Int(5000)),
        ("jetstream", ParamValue::Str("sometimes".into())),
        ("client_name", ParamValue::Str("x".into())),
    ]);
    let err = EventNats::init(FakeHost::new().host(), &p)
        .err()
        .unwrap_or_default();
    assert!(
        err.starts_with("modparam \"jetstream\": unknown variant `sometimes`"),
        "{err}"
    );
}

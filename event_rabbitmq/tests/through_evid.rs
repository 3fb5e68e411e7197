//! event_rabbitmq loaded by the real evid, publishing to the real RabbitMQ on 127.0.0.1:5672,
//! checked with a real AMQP consumer. Build the workspace first (`scripts/test` does).

mod support;

use evi_testkit::{golden, wait_for, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{rabbitmqctl, raise, status, status_json, Outage, Queue};

const T: Duration = Duration::from_secs(30);

fn start(queue_sockets: &[(&str, String)], modparams: &str) -> Daemon {
    let subs: String = queue_sockets
        .iter()
        .map(|(ev, sock)| format!("subscribe_event(\"{ev}\", \"rabbitmq:{sock}\");\n"))
        .collect();
    Daemon::start(&format!(
        "loadmodule \"event_rabbitmq.so\"\n{modparams}\nstartup_route {{\n{subs}}}"
    ))
}

#[test]
fn bodies_match_the_opensips_golden_files() {
    let _lock = support::shared();
    let q = Queue::new("golden", None);
    let mut d = start(
        &[("E_GOLDEN", format!("guest:guest@127.0.0.1:5672/{}", q.0))],
        "",
    );
    raise(
        &d,
        json!([
            "E_GOLDEN",
            r#"{"id":42,"user":"alice","msg":"hello world"}"#
        ]),
    );
    raise(
        &d,
        json!([
            "E_GOLDEN",
            r#"{"id":-7,"user":"bob \"the\" builder","msg":"a,b;c"}"#
        ]),
    );
    raise(&d, json!(["E_GOLDEN"]));
    raise(&d, json!(["E_GOLDEN"]));
    raise(&d, json!({"event": "E_GOLDEN", "params": ["x", "1"]}));
    let got = support::get(&q.0, 5, T);
    let bodies: Vec<Vec<u8>> = got.iter().map(|(b, _)| b.clone()).collect();
    let want: Vec<Vec<u8>> = (0..5)
        .map(|i| golden(&format!("event_rabbitmq_{i}.body")))
        .collect();
    assert_eq!(
        bodies
            .iter()
            .map(|b| String::from_utf8_lossy(b))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|b| String::from_utf8_lossy(b))
            .collect::<Vec<_>>()
    );
    for (_, p) in &got {
        assert_eq!(
            p.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(*p.delivery_mode(), Some(1), "transient without persistent");
    }
    assert!(
        wait_for(T, || status(&d, "confirmed") == 5),
        "{}",
        status_json(&d)
    );
    assert_eq!(status(&d, "failed"), 0);
    // The print form re-parses (OpenSIPS's dropped the port and `exchange=`).
    let subs = d
        .mi("subscribers_list", json!(["E_GOLDEN"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        subs.to_string()
            .contains(&format!("rabbitmq:guest:guest@127.0.0.1/{}", q.0)),
        "{subs}"
    );
    assert!(d.stop().0.success());
}

#[test]
fn persistent_exchange_and_mandatory_as_the_socket_says() {
    let _lock = support::shared();
    let key = support::unique("key");
    let q = Queue::new("direct", Some(("amq.direct", &key)));
    let d = start(
        &[
            (
                "E_P",
                format!("127.0.0.1/exchange=amq.direct;persistent?{key}"),
            ),
            ("E_T", format!("127.0.0.1/exchange=amq.direct?{key}")),
            (
                "E_M",
                format!("127.0.0.1/exchange=amq.direct;mandatory?{key}-unbound"),
            ),
            ("E_NOEX", format!("127.0.0.1/exchange={key}-missing?{key}")),
        ],
        "",
    );
    raise(&d, json!(["E_P", ["p"]]));
    raise(&d, json!(["E_T", ["t"]]));
    let got = support::get(&q.0, 2, T);
    let modes: BTreeMap<String, Option<u8>> = got
        .iter()
        .map(|(b, p)| (String::from_utf8_lossy(b).into_owned(), *p.delivery_mode()))
        .collect();
    assert_eq!(
        modes.get(r#"{"jsonrpc":"2.0","method":"E_P","params":["p"]}"#),
        Some(&Some(2))
    );
    assert_eq!(
        modes.get(r#"{"jsonrpc":"2.0","method":"E_T","params":["t"]}"#),
        Some(&Some(1))
    );
    // Unroutable + mandatory: returned, counted, failed. Unknown exchange: failed, not retried.
    raise(&d, json!(["E_M", ["m"]]));
    assert!(
        wait_for(T, || status(&d, "returned") == 1),
        "{}",
        status_json(&d)
    );
    raise(&d, json!(["E_NOEX", ["x"]]));
    assert!(
        wait_for(T, || status(&d, "failed") == 2),
        "{}",
        status_json(&d)
    );
    // The broker recovers from the channel the unknown exchange closed.
    raise(&d, json!(["E_T", ["after"]]));
    assert_eq!(support::get(&q.0, 1, T).len(), 1);
    assert!(
        wait_for(T, || status(&d, "confirmed") == 3),
        "{}",
        status_json(&d)
    );
    // Failed once, not resent on every reconnect (a reconnect storm once hid behind a race).
    assert_eq!(status(&d, "failed"), 2, "{}", status_json(&d));
    assert!(status(&d, "connects") <= 3, "{}", status_json(&d));
}

#[test]
fn bad_credentials_and_unknown_vhost_are_reported_and_the_daemon_keeps_running() {
    let _lock = support::shared();
    let q = Queue::new("creds", None);
    let mut d = start(
        &[
            ("E_BAD", format!("guest:wrong@127.0.0.1/{}", q.0)),
            ("E_VH", format!("127.0.0.1/vhost=no-such-vhost?{}", q.0)),
        ],
        "modparam(\"event_rabbitmq\", \"drain_timeout\", 100)",
    );
    raise(&d, json!(["E_BAD", ["a"]]));
    raise(&d, json!(["E_VH", ["b"]]));
    assert!(
        wait_for(T, || {
            // last_error only: the vhost is in the broker's label too.
            let errors: Vec<String> = status_json(&d)
                .as_array()
                .map(|a| a.iter().map(|b| b["last_error"].to_string()).collect())
                .unwrap_or_default();
            errors.iter().any(|e| e.contains("ACCESS_REFUSED"))
                && errors.iter().any(|e| e.contains("no-such-vhost"))
        }),
        "{}",
        status_json(&d)
    );
    assert!(status(&d, "connect_failures") >= 2, "{}", status_json(&d));
    assert_eq!(status(&d, "buffered"), 2, "kept for a later reconnect");
    let (st, log) = d.stop();
    assert!(st.success(), "{log}");
    assert!(log.contains("ACCESS_REFUSED"), "{log}");
}

#[test]
fn subscriptions_expire_and_are_removed_over_mi() {
    let _lock = support::shared();
    let q = Queue::new("expiry", None);
    // The flatstore subscription makes E_X known; its rabbitmq subscriptions come over MI.
    let d = Daemon::start(
        "loadmodule \"event_rabbitmq.so\"\nloadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:/dev/null\"); }",
    );
    let sock = format!("rabbitmq:127.0.0.1/{}", q.0);
    d.mi("event_subscribe", json!(["E_X", sock, 2]))
        .unwrap_or_else(|e| panic!("{e}"));
    raise(&d, json!(["E_X", ["one"]]));
    assert_eq!(support::get(&q.0, 1, T).len(), 1);
    let listed = || {
        d.mi("subscribers_list", json!(["E_X"]))
            .map(|v| v.to_string().contains("rabbitmq:"))
            .unwrap_or(false)
    };
    assert!(wait_for(T, || !listed()), "expired");
    raise(&d, json!(["E_X", ["not delivered"]]));
    // Subscribe again and remove it with expire 0.
    d.mi("event_subscribe", json!(["E_X", sock]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(listed());
    d.mi("event_subscribe", json!(["E_X", sock, 0]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_for(T, || !listed()), "removed");
    raise(&d, json!(["E_X", ["not delivered either"]]));
    // With its last socket gone the broker closes its connection and leaves the status.
    assert!(
        wait_for(T, || status_json(&d) == json!([])),
        "{}",
        status_json(&d)
    );
    assert!(support::get(&q.0, 1, Duration::from_secs(2)).is_empty());
}

fn ids_in(msgs: &[(Vec<u8>, lapin::BasicProperties)]) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    for (b, _) in msgs {
        let v: Value = serde_json::from_slice(b).unwrap_or_default();
        if let Some(i) = v["params"]["i"].as_i64() {
            *seen.entry(i).or_insert(0) += 1;
        }
    }
    seen
}

/// Everything that stops the broker or kills its connections, in one test under the exclusive
/// lock: an outage mid-stream (raises keep answering, nothing is lost) and a connection killed
/// from the broker side (delivery resumes).
#[test]
fn broker_outages_lose_nothing_and_never_block_the_raiser() {
    let _lock = support::exclusive();
    let q = Queue::new("outage", None);
    let d = start(
        &[("E_S", format!("127.0.0.1/persistent?{}", q.0))],
        "modparam(\"event_rabbitmq\", \"reconnect_max\", 500)\nmodparam(\"event_rabbitmq\", \"heartbeat\", 5)",
    );
    let ev = |i: i64| json!(["E_S", format!(r#"{{"i":{i}}}"#)]);
    // The broker stops while these are still being published and confirmed.
    for i in 0..50 {
        raise(&d, ev(i));
    }
    {
        let _outage = Outage::begin();
        // Every MI raise answers OK while the broker is down (a raise that waited on the broker
        // would make these 1000 calls time out).
        for i in 50..1050 {
            raise(&d, ev(i));
        }
        assert!(wait_for(T, || status(&d, "connected") == 0));
        assert_eq!(status(&d, "dropped"), 0);
        // Waiting in the buffer, or held by the daemon once a reconnect failed.
        let held = d
            .mi("subscriber_stats", json!(["E_S"]))
            .map_or(0, |v| v["Subscribers"][0]["held"].as_u64().unwrap_or(0));
        assert!(
            status(&d, "buffered") + held >= 1000,
            "{held} held; {}",
            status_json(&d)
        );
    }
    assert!(
        wait_for(Duration::from_secs(120), || status(&d, "confirmed") == 1050),
        "{}",
        status_json(&d)
    );
    let got = support::get(&q.0, 1050, T);
    let seen = ids_in(&got);
    let missing: Vec<i64> = (0..1050).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "lost {} events: {missing:?}",
        missing.len()
    );
    let dups = got.len() - seen.len();
    eprintln!("outage: 1050 raised, 0 lost, {dups} duplicate(s) at the consumer");
    assert_eq!(status(&d, "failed"), 0);

    // The broker closes every connection: the next events still arrive.
    rabbitmqctl(&[
        "close_all_connections",
        "evid test: killed from the broker side",
    ]);
    for i in 2000..2010 {
        raise(&d, ev(i));
    }
    assert!(
        wait_for(Duration::from_secs(60), || status(&d, "confirmed") == 1060),
        "{}",
        status_json(&d)
    );
    let seen = ids_in(&support::get(&q.0, 10, T));
    assert!((2000..2010).all(|i| seen.contains_key(&i)), "{seen:?}");
    assert!(status(&d, "connects") >= 3, "{}", status_json(&d));
}

/// Drop-oldest through an outage longer than the buffer: once a reconnect failed (or the buffer
/// is full and the broker down), the daemon holds the newest events itself; when the broker is back, the newest
/// `buffer_events` are published and the rest were failed, counted.
#[test]
fn an_outage_past_a_full_buffer_delivers_the_newest_events_once_back() {
    let _lock = support::exclusive();
    let q = Queue::new("newest", None);
    let d = start(
        &[("E_N", format!("127.0.0.1/{}", q.0))],
        "modparam(\"event_rabbitmq\", \"buffer_events\", 5)\n\
         modparam(\"event_rabbitmq\", \"reconnect_max\", 500)",
    );
    let ev = |i: i64| json!(["E_N", format!(r#"{{"i":{i}}}"#)]);
    raise(&d, ev(-1));
    assert!(wait_for(T, || status(&d, "confirmed") == 1));
    let sub = |field: &str| {
        d.mi("subscriber_stats", json!(["E_N"]))
            .map_or(0, |v| v["Subscribers"][0][field].as_u64().unwrap_or(0))
    };
    {
        let _outage = Outage::begin();
        assert!(wait_for(T, || status(&d, "connected") == 0));
        // Once a reconnect has failed, the first event waits in the buffer and starts the
        // daemon's hold; the daemon keeps the newest 5 of the 39 after it.
        assert!(wait_for(T, || status(&d, "connect_failures") >= 1));
        raise(&d, ev(0));
        assert!(wait_for(T, || status(&d, "buffered") == 1));
        for i in 1..40 {
            raise(&d, ev(i));
        }
        assert!(
            wait_for(T, || sub("held") == 5),
            "{} held; {}",
            sub("held"),
            status_json(&d)
        );
        assert_eq!(status(&d, "buffered"), 1, "{}", status_json(&d));
        assert_eq!(sub("failed"), 34, "{}", status_json(&d));
    }
    // Back: the 5 held (the newest) push the buffer's one out, and are published.
    assert!(
        wait_for(Duration::from_secs(60), || sub("delivered") + sub("failed")
            == 41),
        "{} delivered, {} failed; {}",
        sub("delivered"),
        sub("failed"),
        status_json(&d)
    );
    assert_eq!(sub("held"), 0);
    // The newest 5, and perhaps the one the buffer held when the broker came back (published
    // before the held ones pushed it out): the 34 in between were failed, counted.
    let got = support::get(&q.0, 7, Duration::from_secs(3));
    let seen = ids_in(&got);
    assert!((35..40).all(|i| seen.contains_key(&i)), "{seen:?}");
    assert!(seen.keys().all(|&i| i == 0 || i >= 35), "{seen:?}");
    assert!(sub("failed") >= 34, "{}", sub("failed"));
}

#[test]
fn a_full_buffer_drops_the_oldest_or_refuses_the_newest_as_configured() {
    // Nothing listens on port 1: the broker is down for the whole test (no lock needed).
    for policy in ["oldest", "newest"] {
        let mut d = start(
            &[("E_FULL", "127.0.0.1:1/full".to_string())],
            &format!(
                "modparam(\"event_rabbitmq\", \"buffer_events\", 5)\n\
                 modparam(\"event_rabbitmq\", \"buffer_full_drop\", \"{policy}\")"
            ),
        );
        // The first raise starts the broker's connection; once a connect has failed, the
        // daemon holds the next events itself (oldest) or the buffer fills (newest).
        raise(&d, json!(["E_FULL", r#"{"i":0}"#]));
        assert!(wait_for(T, || status(&d, "connect_failures") >= 1));
        // The next one reaches the module with the broker known unreachable: it waits in the
        // buffer, and (oldest) the module asks the daemon to hold the ones after it.
        raise(&d, json!(["E_FULL", r#"{"i":1}"#]));
        assert!(wait_for(T, || status(&d, "buffered") == 2));
        for i in 2..20 {
            raise(&d, json!(["E_FULL", format!(r#"{{"i":{i}}}"#)]));
        }
        let sub = |field: &str| {
            d.mi("subscriber_stats", json!(["E_FULL"]))
                .map_or(0, |v| v["Subscribers"][0][field].as_u64().unwrap_or(0))
        };
        // Every event is accounted for: in the module's buffer, held by the daemon for it
        // (oldest: once a connect failed, the daemon keeps the newest 5 itself; the buffer has
        // what came before), or failed and counted.
        assert!(
            wait_for(T, || sub("failed") + sub("held") + status(&d, "buffered")
                == 20),
            "{policy}: {} failed, {} held; {}",
            sub("failed"),
            sub("held"),
            status_json(&d)
        );
        let held = sub("held");
        if policy == "oldest" {
            // The first event, and the one that found the broker unreachable and started
            // the hold; the daemon holds the newest 5 of the other 18.
            assert_eq!(status(&d, "buffered"), 2, "{}", status_json(&d));
            assert_eq!(held, 5, "{policy}");
            assert_eq!(sub("failed"), 13, "{policy}");
        } else {
            assert_eq!(status(&d, "buffered"), 5, "{policy}");
            assert_eq!(held, 0, "{policy}");
        }
        let all = d
            .mi("get_statistics", json!([["event_rabbitmq:held"]]))
            .unwrap_or_default();
        assert_eq!(all["event_rabbitmq:held"], held, "{all}");
        let stats = d
            .mi("subscriber_stats", json!(["E_FULL"]))
            .unwrap_or_default();
        let why = stats["Subscribers"][0]["last_error"].to_string();
        let expected = if policy == "oldest" {
            "dropped: "
        } else {
            "the newest event is refused"
        };
        assert!(why.contains(expected), "{policy}: {why}");
        assert!(d.stop().0.success());
    }
    let (code, out) = evi_testkit::run_to_exit(
        "loadmodule \"event_rabbitmq.so\"\nmodparam(\"event_rabbitmq\", \"buffer_full_drop\", \"middle\")\n",
    );
    assert_ne!(code, 0);
    assert!(out.contains("expected \"oldest\" or \"newest\""), "{out}");
}

//! Unit tests: socket grammar, params, buffer, README, and the module without a reachable broker.

use crate::broker::{DropLog, DROP_LOG_INTERVAL};
use crate::buffer::{Buffer, Limits, Message, Refused, Target};
use crate::config::{Config, FullDrop};
use crate::uri::RabbitUri;
use crate::{connection, EventRabbitmq, Socket};
use evi_sdk::abi::EviModuleDecl;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, ParamValue, Params, Raised, Transport};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn parse(s: &str) -> RabbitUri {
    RabbitUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn printed(u: &RabbitUri) -> String {
    let mut s = String::new();
    u.print(&mut s);
    s
}

#[test]
fn grammar_and_defaults_of_the_reference() {
    let u = parse("127.0.0.1/pike");
    assert_eq!(
        (
            u.user.as_str(),
            u.password.as_str(),
            u.port,
            u.vhost.as_str()
        ),
        ("guest", "guest", 5672, "/")
    );
    assert_eq!((u.exchange.as_str(), u.routing_key.as_str()), ("", "pike"));
    assert!(!u.persistent && !u.mandatory);

    let u = parse("u:p@mq.local/exchange=events;persistent?opensips.pike");
    assert_eq!((u.user.as_str(), u.password.as_str()), ("u", "p"));
    assert_eq!(
        (u.host.as_str(), u.exchange.as_str()),
        ("mq.local", "events")
    );
    assert_eq!(u.routing_key, "opensips.pike");
    assert!(u.persistent);

    let u = parse("alice@h:5673/vhost=prod%2Fa;mandatory?k%3Fx");
    assert_eq!((u.password.as_str(), u.port), ("guest", 5673));
    assert_eq!(
        (u.vhost.as_str(), u.routing_key.as_str()),
        ("prod/a", "k?x")
    );
    assert!(u.mandatory);

    let u = parse("guest:guest@[::1]:5672/ebench");
    assert_eq!(u.host, "::1");
}

#[test]
fn errors_name_the_bad_part() {
    for (body, part) in [
        ("127.0.0.1", "missing '/'"),
        ("127.0.0.1/", "empty routing key"),
        ("127.0.0.1/exchange=x?", "empty routing key"),
        ("h:99999/k", "bad port '99999'"),
        ("h:0/k", "bad port '0'"),
        ("/k", "empty host"),
        ("@h/k", "empty user"),
        ("h/exchange?k", "'exchange' needs a value"),
        ("h/persistent=1?k", "'persistent' takes no value"),
        ("h/colour=red?k", "unknown parameter 'colour'"),
        ("h/tls_domain=?k", "tls_domain: empty"),
        ("h/k%zz", "routing key: bad %-escape"),
        ("[::1/k", "missing ']'"),
    ] {
        let e = RabbitUri::parse(body).expect_err(body);
        assert!(e.contains(part), "{body}: {e}");
        assert!(e.contains(body), "{body}: the error quotes the socket: {e}");
    }
}

#[test]
fn errors_are_one_line() {
    // Found by fuzz/ (uris): the socket was quoted raw, so a newline split the error.
    for body in ["\n", "h:1\r\n/k%zz", "h/colour\n=red?k", "h/\u{1b}[2J?k%"] {
        let e = RabbitUri::parse(body).expect_err(body);
        assert!(!e.contains(char::is_control), "{body:?}: {e:?}");
    }
    assert_eq!(
        RabbitUri::parse("a\nb").unwrap_err(),
        r"rabbitmq socket 'a\nb': missing '/' before the routing key"
    );
}

#[test]
fn print_re_parses_to_an_equal_socket() {
    for body in [
        "127.0.0.1/pike",
        "guest:guest@127.0.0.1:5672/ebench",
        "u:p%40ss@mq.local:5673/exchange=ev%3Bx;vhost=v1;persistent;mandatory?a/b?c",
        "user@[::1]:5680/k",
        "h/exchange=amq.direct?key with space",
    ] {
        let u = parse(body);
        let p = printed(&u);
        assert_eq!(parse(&p), u, "{body} printed as {p}");
    }
    // Found by fuzz/ (uris): hosts with a ':' were always bracketed, and brackets cannot hold
    // a ']', '/' or '@'.
    for body in ["a]:b:5680/k", "x%2F%3Ay/k", "x%40:y:1/k", "%5B::1%5D:9/k"] {
        let u = parse(body);
        let p = printed(&u);
        assert_eq!(parse(&p), u, "{body} printed as {p}");
    }
    assert_eq!(printed(&parse("127.0.0.1/pike")), "guest@127.0.0.1/pike");
    assert_eq!(
        printed(&parse("u:p@h:5673/exchange=x;persistent?k")),
        "u:p@h:5673/exchange=x;persistent?k"
    );
}

#[test]
fn matching_follows_the_reference_plus_vhost() {
    let a = parse("u:p@h/exchange=x?k");
    assert!(a.same_destination(&parse("u:other@h:5672/exchange=x;persistent?k")));
    assert!(!a.same_destination(&parse("u@h:5673/exchange=x?k")));
    assert!(!a.same_destination(&parse("u@h/exchange=y?k")));
    assert!(!a.same_destination(&parse("u@h/exchange=x?k2")));
    assert!(!a.same_destination(&parse("v@h/exchange=x?k")));
    assert!(!a.same_destination(&parse("u@h/exchange=x;vhost=v?k")));
}

#[test]
fn params_are_typed_and_range_checked() {
    let d = Config::from_params(&Params::from_pairs(&[])).expect("defaults");
    assert_eq!(d, Config::default());
    let c = Config::from_params(&Params::from_pairs(&[
        ("heartbeat", ParamValue::Int(10)),
        ("timeout", ParamValue::Int(0)),
        ("buffer_events", ParamValue::Int(7)),
    ]))
    .expect("valid");
    assert_eq!((c.heartbeat, c.timeout, c.buffer_events), (10, None, 7));
    for (name, v) in [
        ("heartbeat", 65536),
        ("frame_max", 100),
        ("buffer_events", 0),
        ("connect_timeout", 0),
    ] {
        let e = Config::from_params(&Params::from_pairs(&[(name, ParamValue::Int(v))]))
            .expect_err(name);
        assert!(e.contains(name) && e.contains("out of range"), "{e}");
    }
    let e = Config::from_params(&Params::from_pairs(&[
        ("reconnect_min", ParamValue::Int(500)),
        ("reconnect_max", ParamValue::Int(100)),
    ]))
    .expect_err("min > max");
    assert!(e.contains("reconnect_min"), "{e}");
    let mut b = c.reconnect_min;
    for _ in 0..20 {
        b = c.next_backoff(b);
    }
    assert_eq!(b, c.reconnect_max, "capped");
}

fn msg(n: u64, len: usize) -> Message {
    Message {
        delivery: Some(Delivery(n)),
        target: Arc::new(Target {
            exchange: String::new(),
            routing_key: "k".into(),
            persistent: false,
            mandatory: false,
            content_type: None,
        }),
        body: vec![b'x'; len].into(),
        sends: 0,
    }
}

fn ids(v: impl IntoIterator<Item = Message>) -> Vec<u64> {
    v.into_iter()
        .map(|m| m.delivery.map_or(u64::MAX, |d| d.0))
        .collect()
}

#[test]
fn buffer_keeps_order_requeues_and_drops_the_oldest() {
    let mut b = Buffer::new(Limits {
        events: 3,
        bytes: 100,
        full_drop: FullDrop::Oldest,
    });
    for i in 0..3 {
        assert!(b.push(msg(i, 10)).expect("fits").is_empty());
    }
    let (s0, m0) = b.next_unsent().expect("one");
    let (s1, _) = b.next_unsent().expect("two");
    assert_eq!((m0.delivery.map_or(u64::MAX, |d| d.0), m0.sends), (0, 1));
    assert_eq!(
        b.resolve(s0).map(|m| m.delivery.map_or(u64::MAX, |d| d.0)),
        Some(0)
    );
    assert_eq!(
        b.resolve(s0).map(|m| m.delivery.map_or(u64::MAX, |d| d.0)),
        None,
        "answered once"
    );
    assert_eq!(b.requeue(), 1);
    assert_eq!(
        b.resolve(s1).map(|m| m.delivery.map_or(u64::MAX, |d| d.0)),
        None,
        "stale after requeue"
    );
    let (_, again) = b.next_unsent().expect("resent first");
    assert_eq!(
        (again.delivery.map_or(u64::MAX, |d| d.0), again.sends),
        (1, 2)
    );
    // Full: 1 (in flight), 2, 3 → pushing 4 drops 1, the oldest.
    assert!(b.push(msg(3, 10)).expect("fits").is_empty());
    assert_eq!(ids(b.push(msg(4, 10)).expect("fits")), [1]);
    // Bytes: 2, 3, 4 hold 30; a 90-byte event drops only as many as needed.
    assert_eq!(ids(b.push(msg(5, 90)).expect("fits")), [2, 3]);
    assert_eq!((b.len(), b.bytes()), (2, 100));
    assert!(b.push(msg(6, 101)).is_err(), "larger than the whole buffer");
    assert_eq!(ids(b.drain()), [4, 5]);
    assert_eq!((b.len(), b.bytes()), (0, 0));
}

#[test]
fn a_full_buffer_set_to_drop_the_newest_keeps_what_it_holds() {
    let mut b = Buffer::new(Limits {
        events: 2,
        bytes: 100,
        full_drop: FullDrop::Newest,
    });
    assert!(b.push(msg(0, 10)).expect("fits").is_empty());
    assert!(b.push(msg(1, 10)).expect("fits").is_empty());
    assert!(matches!(b.push(msg(2, 10)), Err(Refused::Full(m)) if m.delivery == Some(Delivery(2))));
    assert!(matches!(b.push(msg(3, 101)), Err(Refused::TooBig(_))));
    assert_eq!(ids(b.drain()), [0, 1]);
}

#[test]
fn drop_log_writes_at_most_one_line_per_interval_with_the_count() {
    let mut log = DropLog::default();
    let t0 = Instant::now();
    assert_eq!(log.due(t0), None, "nothing dropped");
    log.add(1);
    assert_eq!(
        log.due(t0),
        Some((1, None)),
        "the first drop is logged at once"
    );
    for i in 1..=500u64 {
        log.add(1);
        assert_eq!(log.due(t0 + Duration::from_millis(i)), None, "rate limited");
    }
    log.add(2);
    let later = t0 + DROP_LOG_INTERVAL;
    assert_eq!(
        log.due(later),
        Some((502, Some(DROP_LOG_INTERVAL))),
        "then one line with every drop since"
    );
    assert_eq!(log.due(later + DROP_LOG_INTERVAL), None, "nothing new");
}

#[test]
fn missing_exchange_is_read_from_the_broker_error() {
    let e = "protocol error: AMQPError { kind: Soft(NOTFOUND), message: \"NOT_FOUND - no exchange 'nope' in vhost '/'\" }";
    assert_eq!(connection::missing_exchange(e).as_deref(), Some("nope"));
    assert_eq!(connection::missing_exchange("connection reset"), None);
}

type Outcomes = Arc<Mutex<Vec<(u64, Result<(), String>)>>>;

fn module(params: &[(&str, ParamValue)]) -> (EventRabbitmq, Outcomes) {
    let seen: Outcomes = Arc::default();
    let s = seen.clone();
    let cfg = Config::from_params(&Params::from_pairs(params)).expect("config");
    let m = EventRabbitmq::new(
        cfg,
        crate::tls::Domains::new(),
        Arc::new(move |d: Delivery, r: Result<(), &str>| {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((d.0, r.map_err(str::to_string)));
        }),
    )
    .expect("module");
    (m, seen)
}

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .filter(|c| c.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn unreachable_broker_never_blocks_drops_the_oldest_and_reports_each_event_once() {
    // Port 1 on loopback refuses at once: the broker is "down" for the whole test.
    let (mut m, seen) = module(&[
        ("buffer_events", ParamValue::Int(5)),
        ("drain_timeout", ParamValue::Int(300)),
    ]);
    let mut sock: Socket = m.parse("rabbitmq", "127.0.0.1:1/q").expect("parse");
    let ev = TestEvent::new("E_X").json(br#"{"jsonrpc":"2.0","method":"E_X"}"#);
    let start = Instant::now();
    for i in 0..20 {
        let r = ev.with(|e| m.raise(&mut sock, e, Delivery(i)));
        assert_eq!(r, Ok(Raised::Pending));
    }
    // Generous: only a raise that waited on the network could take this long.
    assert!(start.elapsed() < Duration::from_secs(5));
    let dropped: Vec<u64> = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(d, r)| {
            assert!(
                r.as_ref().is_err_and(|e| e.contains("buffer full")),
                "{r:?}"
            );
            *d
        })
        .collect();
    assert_eq!(
        dropped,
        (0..15).collect::<Vec<_>>(),
        "the oldest were dropped"
    );
    let status = m.status();
    assert_eq!(status[0]["dropped"], 15, "{status}");
    assert!(evi_testkit::wait_for(Duration::from_secs(20), || {
        m.status()[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect"))
    }));
    m.free(&mut sock);
    m.shutdown();
    let all = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(all.len(), 20, "exactly one status per event: {all:?}");
    for (d, r) in &all[15..] {
        assert!(
            r.as_ref().is_err_and(|e| e.contains("before shutdown")),
            "{d}: {r:?}"
        );
    }
    assert_eq!(threads_named("evid-rabbitmq"), 0, "runtime thread joined");
}

extern "C" {
    /// Written by `export_module!` in lib.rs; linked into this test binary.
    static evi_module: EviModuleDecl;
}

#[test]
fn readme_matches_the_export_table() {
    // SAFETY: immutable static data defined in this crate.
    let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
    let readme = include_str!("../README.md");
    evi_sdk::testing::check_readme(decl, readme).unwrap_or_else(|e| panic!("{e}"));
    assert!(readme.contains("`event_rabbitmq:status`"));
}

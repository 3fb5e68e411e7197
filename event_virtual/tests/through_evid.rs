//! event_virtual loaded by the real evid over real udp, unix and flatstore members: events
//! raised over MI, received by real sockets and read from real files. The RabbitMQ cases are in
//! `with_rabbitmq.rs`. Build the workspace first (`scripts/test` does).

mod common;

use common::fault_server::FaultServer;
use common::{check_complete_and_ordered, group, ids_in_file, member, raise, stats, Collector, T};
use evi_testkit::{wait_for, Daemon, UdpReceiver, UnixReceiver};
use serde_json::json;
use std::time::Duration;

const MODULES: &str = "loadmodule \"event_datagram.so\"\nloadmodule \"event_flatstore.so\"\nloadmodule \"event_virtual.so\"\n";

/// Transports whose failures come back after `raise` answered Pending (async status).
const ASYNC_MODULES: &str = "loadmodule \"event_xmlrpc.so\"\nloadmodule \"event_stream.so\"\n";

/// evid with `MODULES`, then `extra` config lines (more modules, modparams), subscribing `E_V`.
fn start(extra: &str, socket: &str) -> Daemon {
    Daemon::start(&format!(
        "{MODULES}{extra}\nstartup_route {{ subscribe_event(\"E_V\", \"{socket}\"); }}"
    ))
}

#[test]
fn bad_uris_are_refused_at_subscribe_time_naming_the_problem() {
    let d = start("", "flatstore:/dev/null");
    let cases = [
        (
            "virtual:failover udp:127.0.0.1:9",
            "unknown mode \"failover\"",
        ),
        ("virtual:FAILOVERS udp:127.0.0.1:9", "unknown mode"),
        ("virtual:FAILOVER", "empty member list"),
        ("virtual:", "needs a mode"),
        (
            "virtual:PARALLEL udp:127.0.0.1:9 virtual:FAILOVER udp:127.0.0.1:9",
            "nested virtual",
        ),
        (
            "virtual:ROUND-ROBIN udp:127.0.0.1:9 nosuch:x",
            "unknown proto \"nosuch\"",
        ),
        (
            "virtual:FAILOVER flatstore:/dev/null udp:nohost",
            "member 2 \"udp:nohost\"",
        ),
    ];
    for (uri, why) in cases {
        match d.mi("event_subscribe", json!(["E_V", uri])) {
            Err(evi_testkit::MiCallError::Rpc { code, data, .. }) => {
                assert_eq!(code, 400, "{uri}");
                let data = data.unwrap_or_default();
                assert!(data.contains(why), "{uri}: {data}");
            }
            other => panic!("{uri}: {other:?}"),
        }
    }
    // Nothing was left subscribed, and the members opened before a bad one were closed (no
    // way to see that from outside but the daemon's log staying clean of errors).
    let listed = d
        .mi("subscribers_list", json!(["E_V"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!listed.to_string().contains("virtual:"), "{listed}");
}

#[test]
fn print_reparses_and_a_reordered_parallel_group_refreshes() {
    let d = start("", "flatstore:/dev/null");
    let dir = &d.dir;
    let spaced = format!("flatstore:{}/with space.log", dir.path().display());
    let a = format!("virtual:PARALLEL \"{spaced}\" udp:127.0.0.1:9");
    let b = format!("virtual:PARALLEL udp:127.0.0.1:9 \"{spaced}\"");
    for uri in [&a, &b] {
        d.mi("event_subscribe", json!(["E_V", uri, 60]))
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
    let list = d
        .mi("subscribers_list", json!(["E_V"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let socks: Vec<String> = list["Event"]["Subscribers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["socket"].as_str().map(str::to_string))
        .filter(|s| s.starts_with("virtual:"))
        .collect();
    assert_eq!(socks, [a.as_str()], "one group, printed as first given");
    // The printed form subscribes the same group again (refresh, not a second one).
    d.mi("event_subscribe", json!(["E_V", socks[0], 60]))
        .unwrap_or_else(|e| panic!("{e}"));
    raise(&d, 1);
    let file = dir.join("with space.log");
    assert!(wait_for(T, || ids_in_file(&file) == [1]), "{}", stats(&d));
}

#[test]
fn round_robin_over_three_udp_receivers_adds_up() {
    let rx: Vec<UdpReceiver> = (0..3).map(|_| UdpReceiver::new()).collect();
    let members: Vec<String> = rx.iter().map(UdpReceiver::uri).collect();
    let d = start("", &format!("virtual:ROUND-ROBIN {}", members.join(" ")));
    let cols: Vec<Collector> = rx.iter().map(|r| Collector::udp(&r.sock)).collect();
    let n = 300;
    for i in 0..n {
        raise(&d, i);
    }
    common::wait_settled(&d, n as u64);
    assert!(wait_for(T, || cols
        .iter()
        .map(|c| c.ids().len())
        .sum::<usize>()
        >= n as usize));
    let got: Vec<Vec<i64>> = cols.iter().map(Collector::ids).collect();
    let counts: Vec<usize> = got.iter().map(Vec::len).collect();
    eprintln!("round-robin over 3 udp receivers: {counts:?} of {n}");
    assert_eq!(counts.iter().sum::<usize>(), n as usize, "{counts:?}");
    for c in &counts {
        assert!(*c >= n as usize / 6, "roughly a third each: {counts:?}");
    }
    let dests: Vec<(&str, &[i64])> = got.iter().map(|g| ("udp", g.as_slice())).collect();
    check_complete_and_ordered(n, &dests);
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
}

#[test]
fn round_robin_with_a_missing_unix_socket_sends_everything_to_the_live_one() {
    let dir = evi_testkit::TempDir::new("virtual-rr");
    let live = UnixReceiver::bind(dir.join("live.sock"));
    let missing = format!("unix:{}", dir.join("missing.sock").display());
    let d = start("", &format!("virtual:ROUND-ROBIN {missing} {}", live.uri()));
    let col = Collector::unix(&live.sock);
    let n = 200;
    for i in 0..n {
        raise(&d, i);
    }
    common::wait_settled(&d, n as u64);
    assert!(
        wait_for(T, || col.ids().len() >= n as usize),
        "{}",
        stats(&d)
    );
    let mut got = col.ids();
    got.sort();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "every event, once");
    assert_eq!(group(&d, "delivered"), n as u64, "{}", stats(&d));
    assert!(member(&d, 0, "failed") >= 1, "{}", stats(&d));
    assert_eq!(member(&d, 1, "failed"), 0, "{}", stats(&d));
}

/// /dev/full takes the open but fails every write (ENOSPC): a flatstore file on a full disk.
/// flatstore reports each line's outcome once its write decides it, so round-robin learns that
/// the member failed and sends the event to the other file.
#[test]
fn round_robin_over_two_flatstore_files_with_one_unwritable_adds_up() {
    let d = start(
        "",
        "virtual:ROUND-ROBIN flatstore:/dev/full flatstore:{dir}/rr.log",
    );
    let n = 300;
    for i in 0..n {
        raise(&d, i);
    }
    common::wait_settled(&d, n as u64);
    let file = d.dir.join("rr.log");
    let all: Vec<i64> = (0..n).collect();
    assert!(
        wait_for(T, || {
            let mut got = ids_in_file(&file);
            got.sort();
            got == all
        }),
        "{:?}\n{}",
        ids_in_file(&file).len(),
        stats(&d)
    );
    assert_eq!(group(&d, "delivered"), n as u64, "{}", stats(&d));
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
    // What the full disk refused is counted against it, never lost.
    assert!(member(&d, 0, "failed") >= 1, "{}", stats(&d));
    assert_eq!(member(&d, 0, "delivered"), 0, "{}", stats(&d));
    assert_eq!(member(&d, 1, "delivered"), n as u64, "{}", stats(&d));
}

/// FAILOVER from a file on a full disk to a good one: every event ends up in the good file, in
/// raise order.
#[test]
fn failover_from_a_full_disk_to_another_file_keeps_every_event_in_order() {
    // A long rest, and the first event settled before the others: only that one ever reaches
    // /dev/full, so the failover count is exact (no probe, nothing else in flight there).
    let d = start(
        "modparam(\"event_virtual\", \"failover_timeout\", 3600)",
        "virtual:FAILOVER flatstore:/dev/full flatstore:{dir}/fo.log",
    );
    let n = 300;
    raise(&d, 0);
    common::wait_settled(&d, 1);
    for i in 1..n {
        raise(&d, i);
    }
    common::wait_settled(&d, n as u64);
    let file = d.dir.join("fo.log");
    assert!(
        wait_for(T, || ids_in_file(&file).len() == n as usize),
        "{}",
        stats(&d)
    );
    assert_eq!(ids_in_file(&file), (0..n).collect::<Vec<_>>());
    assert_eq!(group(&d, "delivered"), n as u64, "{}", stats(&d));
    assert_eq!(member(&d, 0, "failed"), 1, "{}", stats(&d));
    assert_eq!(member(&d, 0, "failed_over"), 1, "{}", stats(&d));
    assert_eq!(member(&d, 1, "failed_over"), 0, "{}", stats(&d));
}

/// `n` events raised to a FAILOVER group whose first member fails them asynchronously: all in
/// the second member's file `name`, once each, in raise order; the first member's failures
/// (its last error containing `why`) each moved an event on.
fn every_event_fails_over_to_the_file(d: &Daemon, name: &str, why: &str) {
    let n = 100;
    for i in 0..n {
        raise(d, i);
    }
    common::wait_settled(d, n as u64);
    let file = d.dir.join(name);
    assert!(
        wait_for(T, || ids_in_file(&file).len() >= n as usize),
        "{}",
        stats(d)
    );
    assert_eq!(ids_in_file(&file), (0..n).collect::<Vec<_>>());
    assert_eq!(group(d, "delivered"), n as u64, "{}", stats(d));
    assert_eq!(group(d, "failed"), 0, "{}", stats(d));
    assert!(member(d, 0, "failed") >= 1, "{}", stats(d));
    assert!(member(d, 0, "failed_over") >= 1, "{}", stats(d));
    let last = stats(d)[0]["members"][0]["last_error"].to_string();
    assert!(last.contains(why), "{}", stats(d));
}

/// An XML-RPC server answering every call with a fault: event_xmlrpc took each event
/// (Pending) and reports the fault later, the async failure FAILOVER must act on.
#[test]
fn failover_from_an_xmlrpc_member_answering_faults_to_a_file() {
    let server = FaultServer::start();
    let d = start(
        ASYNC_MODULES,
        &format!(
            "virtual:FAILOVER {} flatstore:{{dir}}/xmlrpc.log",
            server.uri("ev")
        ),
    );
    every_event_fails_over_to_the_file(&d, "xmlrpc.log", "XML-RPC fault 4");
    assert!(server.calls() >= 1, "the calls reached the server");
}

/// A tcp: (event_stream) member with nothing listening on its port. event_stream's `raise`
/// only queues the event (Pending); its sender thread then fails the connect and reports each
/// queued event failed: an async failure. A peer that accepts and closes at once would not do:
/// in notification mode bytes handed to the kernel before the close is seen count as
/// delivered, so those events would be lost, not failed over.
#[test]
fn failover_from_a_stream_member_with_a_dead_peer_to_a_file() {
    // Free a moment ago and closed again: connecting is refused.
    let port = evi_testkit::free_port();
    let d = start(
        ASYNC_MODULES,
        &format!("virtual:FAILOVER tcp:127.0.0.1:{port} flatstore:{{dir}}/stream.log"),
    );
    every_event_fails_over_to_the_file(&d, "stream.log", "connect");
}

#[test]
fn parallel_members_all_get_every_event_even_with_one_failing() {
    let rx = UdpReceiver::new();
    let d = Daemon::start(&format!(
        "{MODULES}startup_route {{ subscribe_event(\"E_V\", \"virtual:PARALLEL unix:{{dir}}/missing.sock flatstore:{{dir}}/p.log {}\"); }}",
        rx.uri()
    ));
    let col = Collector::udp(&rx.sock);
    let n = 100;
    for i in 0..n {
        raise(&d, i);
    }
    common::wait_settled(&d, n as u64);
    let file = d.dir.join("p.log");
    let all: Vec<i64> = (0..n).collect();
    assert!(wait_for(T, || col.ids() == all), "udp: {:?}", col.ids());
    assert!(wait_for(T, || ids_in_file(&file) == all), "{}", stats(&d));
    // Every group outcome is a failure naming the missing member, and the host counts them.
    assert_eq!(group(&d, "failed"), n as u64, "{}", stats(&d));
    assert_eq!(member(&d, 0, "failed"), n as u64);
    assert_eq!(member(&d, 1, "delivered"), n as u64);
    assert_eq!(member(&d, 2, "delivered"), n as u64);
    let subs = d
        .mi("subscriber_stats", json!(["E_V"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(subs.to_string().contains("missing.sock"), "{subs}");
}

#[test]
fn failover_goes_back_to_the_first_member_once_it_works() {
    let dir = evi_testkit::TempDir::new("virtual-fo");
    let sock = dir.join("first.sock");
    let d = Daemon::start(&format!(
        "{MODULES}modparam(\"event_virtual\", \"failover_timeout\", 1)\nstartup_route {{ subscribe_event(\"E_V\", \"virtual:FAILOVER unix:{} flatstore:{{dir}}/fo.log\"); }}",
        sock.display()
    ));
    let file = d.dir.join("fo.log");
    for i in 0..50 {
        raise(&d, i);
    }
    common::wait_settled(&d, 50);
    assert_eq!(ids_in_file(&file), (0..50).collect::<Vec<_>>());
    // The first member comes to life; after failover_timeout a probe finds it.
    let first = UnixReceiver::bind(sock);
    let col = Collector::unix(&first.sock);
    let mut i = 50;
    assert!(
        wait_for(T, || {
            raise(&d, i);
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
            !col.ids().is_empty()
        }),
        "{}",
        stats(&d)
    );
    for _ in 0..50 {
        raise(&d, i);
        i += 1;
    }
    common::wait_settled(&d, i as u64);
    assert!(
        wait_for(T, || col.ids().last() == Some(&(i - 1))),
        "{:?}",
        col.ids()
    );
    let (unix, flat) = (col.ids(), ids_in_file(&file));
    let dups = check_complete_and_ordered(i, &[("unix", &unix), ("flatstore", &flat)]);
    assert_eq!(dups, 0);
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
}

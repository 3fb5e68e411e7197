//! event_virtual with a real RabbitMQ member (127.0.0.1:5672), the broker stopped and started
//! with `rabbitmqctl` in the middle of a stream of raises. Uses event_rabbitmq's test support
//! (broker locks: these tests take the exclusive one, so no other test sees the outage; an
//! `Outage` guard always starts the broker again; unique, durable queues deleted at the end).
//! Messages are persistent: a broker restart drops transient messages already queued.

mod common;
#[path = "../../event_rabbitmq/tests/support/mod.rs"]
mod support;

use common::{
    check_complete_and_ordered, group, id_of_json, ids_in_file, member, raise, stats, Collector, T,
};
use evi_testkit::{wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use support::{Outage, Queue};

const MODULES: &str = "loadmodule \"event_datagram.so\"\nloadmodule \"event_flatstore.so\"\nloadmodule \"event_rabbitmq.so\"\nloadmodule \"event_virtual.so\"\nmodparam(\"event_rabbitmq\", \"reconnect_max\", 500)\nmodparam(\"event_virtual\", \"failover_timeout\", 1)\nmodparam(\"event_virtual\", \"member_timeout\", 1000)\n";

fn start(socket: &str) -> Daemon {
    Daemon::start(&format!(
        "{MODULES}startup_route {{ subscribe_event(\"E_V\", \"{socket}\"); }}"
    ))
}

fn rabbit_status(d: &Daemon) -> Value {
    d.mi("event_rabbitmq:status", json!([]))
        .unwrap_or_else(|e| panic!("event_rabbitmq:status: {e}"))
}

/// The broker has confirmed everything it holds (what is in the queue is final).
fn rabbit_idle(d: &Daemon) -> bool {
    rabbit_status(d).as_array().is_some_and(|a| {
        a.iter()
            .all(|b| b["buffered"].as_u64() == Some(0) && b["in_flight"].as_u64() == Some(0))
    })
}

/// Every message in the queue, as event ids in queue order.
fn drain_queue(q: &str) -> Vec<i64> {
    support::get(q, usize::MAX, Duration::from_secs(5))
        .iter()
        .filter_map(|(b, _)| id_of_json(b))
        .collect()
}

#[test]
fn failover_to_flatstore_while_the_broker_is_down_and_back_after() {
    let _lock = support::exclusive();
    let q = Queue::new("virtual-fo", None);
    let d = start(&format!(
        "virtual:FAILOVER rabbitmq:127.0.0.1/persistent?{} flatstore:{{dir}}/fo.log",
        q.0
    ));
    let file = d.dir.join("fo.log");
    let next = AtomicI64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The steady stream: one raise every ~10 ms, whatever the broker does.
        let raiser = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                raise(&d, next.fetch_add(1, Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let ok = (|| {
            if !wait_for(T, || member(&d, 0, "delivered") >= 100) {
                return Err("RabbitMQ never took 100 events");
            }
            let outage = Outage::begin();
            let before = ids_in_file(&file).len();
            if !wait_for(T, || ids_in_file(&file).len() >= before + 100) {
                return Err("events did not continue into the file");
            }
            drop(outage); // starts the broker and waits for it
            let back = member(&d, 0, "delivered");
            if !wait_for(Duration::from_secs(120), || {
                member(&d, 0, "delivered") >= back + 100
            }) {
                return Err("events did not return to RabbitMQ");
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let _ = raiser.join();
        if let Err(why) = ok {
            panic!("{why}: {}\n{}", stats(&d), rabbit_status(&d));
        }
    });
    let n = next.load(Ordering::Relaxed);
    common::wait_settled(&d, n as u64);
    assert!(wait_for(T, || rabbit_idle(&d)), "{}", rabbit_status(&d));
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
    let (rabbit, flat) = (drain_queue(&q.0), ids_in_file(&file));
    let dups = check_complete_and_ordered(n, &[("rabbitmq", &rabbit), ("flatstore", &flat)]);
    eprintln!(
        "FAILOVER rabbitmq+flatstore with an outage: {n} raised, 0 lost, {} in RabbitMQ, {} in the file, {dups} duplicate(s); {}",
        rabbit.len(),
        flat.len(),
        stats(&d)
    );
    assert!(
        rabbit.iter().any(|&i| i > *flat.iter().max().unwrap_or(&0)),
        "back to RabbitMQ"
    );
}

#[test]
fn parallel_rabbitmq_flatstore_udp_and_the_broker_down() {
    let _lock = support::exclusive();
    let q = Queue::new("virtual-par", None);
    let rx = UdpReceiver::new();
    let d = start(&format!(
        "virtual:PARALLEL rabbitmq:127.0.0.1/persistent?{} flatstore:{{dir}}/p.log {}",
        q.0,
        rx.uri()
    ));
    let col = Collector::udp(&rx.sock);
    let file = d.dir.join("p.log");
    for i in 0..50 {
        raise(&d, i);
    }
    common::wait_settled(&d, 50);
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
    let first: Vec<i64> = (0..50).collect();
    assert!(wait_for(T, || col.ids() == first), "udp {:?}", col.ids());
    assert_eq!(ids_in_file(&file), first);
    let mut rabbit = drain_queue(&q.0);
    assert_eq!(rabbit, first);
    {
        let _outage = Outage::begin();
        for i in 50..100 {
            raise(&d, i);
        }
        let all: Vec<i64> = (0..100).collect();
        assert!(wait_for(T, || col.ids() == all), "udp {:?}", col.ids());
        assert!(wait_for(T, || ids_in_file(&file) == all), "{}", stats(&d));
        // RabbitMQ's part fails at member_timeout: each group outcome says so.
        common::wait_settled(&d, 100);
        assert_eq!(group(&d, "failed"), 50, "{}", stats(&d));
        assert_eq!(member(&d, 0, "timeouts"), 50, "{}", stats(&d));
    }
    // event_rabbitmq kept them buffered: after the restart they arrive late (counted).
    assert!(
        wait_for(Duration::from_secs(120), || rabbit_idle(&d)),
        "{}",
        rabbit_status(&d)
    );
    rabbit.extend(drain_queue(&q.0));
    let dups = check_complete_and_ordered(100, &[("rabbitmq", &rabbit)]);
    eprintln!(
        "PARALLEL with an outage: udp 100/100, file 100/100, RabbitMQ {} ({dups} duplicate(s)) after the restart; {}",
        rabbit.len(),
        stats(&d)
    );
    assert!(member(&d, 0, "late_delivered") >= 50, "{}", stats(&d));
}

/// The broker itself refuses the member's publishes (an exchange that does not exist closes the
/// channel with NOT_FOUND): event_rabbitmq reports each one failed, and FAILOVER moves it to the
/// file at once, well before `member_timeout` (set high here so a timeout cannot be what moved it).
#[test]
fn failover_from_a_rabbitmq_member_the_broker_refuses_to_a_file() {
    let _lock = support::shared();
    let key = support::unique("key");
    let d = Daemon::start(&format!(
        "{}startup_route {{ subscribe_event(\"E_V\", \"virtual:FAILOVER rabbitmq:127.0.0.1/exchange={key}-missing?{key} flatstore:{{dir}}/nx.log\"); }}",
        MODULES.replace("\"member_timeout\", 1000", "\"member_timeout\", 60000")
    ));
    let file = d.dir.join("nx.log");
    let all: Vec<i64> = (0..20).collect();
    for &i in &all {
        raise(&d, i);
    }
    assert!(wait_for(T, || ids_in_file(&file) == all), "{}", stats(&d));
    common::wait_settled(&d, 20);
    assert_eq!(group(&d, "delivered"), 20, "{}", stats(&d));
    assert_eq!(group(&d, "failed"), 0, "{}", stats(&d));
    assert_eq!(member(&d, 0, "delivered"), 0, "{}", stats(&d));
    assert!(member(&d, 0, "failed") >= 1, "{}", stats(&d));
    assert_eq!(member(&d, 0, "timeouts"), 0, "{}", stats(&d));
    // The first refusal moves every event then in flight on the member, in raise order.
    assert!(member(&d, 0, "failed_over") >= 1, "{}", stats(&d));
    assert_eq!(member(&d, 1, "delivered"), 20, "{}", stats(&d));
    assert!(
        stats(&d)[0]["members"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("NOT_FOUND")),
        "{}",
        stats(&d)
    );
}

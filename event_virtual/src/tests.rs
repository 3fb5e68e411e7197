//! The state machine against a scripted host (no daemon): who gets each event, what is
//! reported, and what the counters say. Also checks README.md against the export table.

use crate::state::{Engine, Net, Timing};
use crate::uri::VirtualUri;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Delivery, Event, MemberSocket, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Records sends, reports and closes; refuses sends to `refuse` synchronously.
#[derive(Default)]
struct FakeNet {
    /// (member socket, event param `i`, token)
    sent: Vec<(u64, i64, u64)>,
    reports: Vec<(u64, Result<(), String>)>,
    closed: Vec<u64>,
    refuse: HashSet<u64>,
}

impl Net for FakeNet {
    fn raise(&mut self, m: MemberSocket, ev: &Event<'_>, token: u64) -> Result<(), String> {
        if self.refuse.contains(&m.0) {
            return Err(format!("queue of {} full", m.0));
        }
        let i = ev
            .params()
            .find_map(|p| match p.value {
                Value::Int(i) => Some(i),
                _ => None,
            })
            .unwrap_or(-1);
        self.sent.push((m.0, i, token));
        Ok(())
    }
    fn report(&mut self, d: Delivery, r: Result<(), &str>) {
        self.reports.push((d.0, r.map_err(str::to_string)));
    }
    fn close(&mut self, m: MemberSocket) {
        self.closed.push(m.0);
    }
}

impl FakeNet {
    /// The token of the last send of event `i` to member `m`.
    fn token(&self, m: u64, i: i64) -> u64 {
        self.sent
            .iter()
            .rev()
            .find(|(s, e, _)| *s == m && *e == i)
            .map(|(_, _, t)| *t)
            .unwrap_or_else(|| panic!("event {i} never sent to {m}: {:?}", self.sent))
    }
    /// Events sent to member `m`, in order.
    fn to(&self, m: u64) -> Vec<i64> {
        self.sent
            .iter()
            .filter(|(s, _, _)| *s == m)
            .map(|(_, i, _)| *i)
            .collect()
    }
}

const REST: Duration = Duration::from_secs(30);
const ANSWER: Duration = Duration::from_secs(5);

/// An engine with one group over members with sockets 1, 2, 3...
fn setup(uri: &str) -> (Engine, u64, FakeNet, Instant) {
    let mut e = Engine::new(Timing {
        rest: REST,
        answer: Some(ANSWER),
    });
    let uri = VirtualUri::parse(uri).unwrap_or_else(|err| panic!("{err}"));
    let sockets = (1..=uri.members.len() as u64).map(MemberSocket).collect();
    let g = e.add_group(uri, sockets);
    (e, g, FakeNet::default(), Instant::now())
}

fn raise(e: &mut Engine, g: u64, i: i64, net: &mut FakeNet, now: Instant) {
    TestEvent::new("E_T")
        .int(Some("i"), i)
        .with(|ev| e.raise(g, ev, Delivery(i as u64), net, now))
        .unwrap_or_else(|err| panic!("{err}"));
}

fn ok(e: &mut Engine, net: &mut FakeNet, m: u64, i: i64, now: Instant) {
    let t = net.token(m, i);
    e.member_status(t, Ok(()), net, now);
}

fn fail(e: &mut Engine, net: &mut FakeNet, m: u64, i: i64, now: Instant) {
    let t = net.token(m, i);
    e.member_status(t, Err("broken"), net, now);
}

fn member_stat(e: &Engine, g: u64, m: usize) -> crate::stats::MemberStats {
    e.group(g)
        .map(|g| g.members[m].stats.clone())
        .unwrap_or_default()
}

#[test]
fn failover_moves_a_failed_event_to_the_next_member_and_reports_once() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, now);
    assert_eq!(net.to(1), [1]);
    fail(&mut e, &mut net, 1, 1, now);
    assert_eq!(net.to(2), [1], "retried on the next member");
    assert!(net.reports.is_empty());
    ok(&mut e, &mut net, 2, 1, now);
    assert_eq!(net.reports, [(1, Ok(()))]);
    // The failed member is skipped while it rests.
    raise(&mut e, g, 2, &mut net, now + Duration::from_secs(1));
    assert_eq!(net.to(1), [1]);
    assert_eq!(net.to(2), [1, 2]);
    let s = member_stat(&e, g, 0);
    assert_eq!((s.failed, s.failed_over, s.delivered), (1, 1, 0));
    assert_eq!(member_stat(&e, g, 1).delivered, 1);
}

#[test]
fn failover_probes_after_the_rest_and_holds_later_events_for_order() {
    let (mut e, g, mut net, t0) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, t0);
    fail(&mut e, &mut net, 1, 1, t0);
    ok(&mut e, &mut net, 2, 1, t0);
    let later = t0 + REST;
    raise(&mut e, g, 2, &mut net, later);
    assert_eq!(net.to(1), [1, 2], "probe");
    raise(&mut e, g, 3, &mut net, later);
    raise(&mut e, g, 4, &mut net, later);
    assert_eq!(net.to(1), [1, 2], "held behind the probe");
    assert_eq!(e.group(g).map(|g| g.held.len()), Some(2));
    // The probe fails: it and the held events go to b, in raise order.
    fail(&mut e, &mut net, 1, 2, later);
    assert_eq!(net.to(2), [1, 2, 3, 4]);
    // Another rest, a successful probe: the held events follow it to a.
    let again = later + REST;
    raise(&mut e, g, 5, &mut net, again);
    raise(&mut e, g, 6, &mut net, again);
    ok(&mut e, &mut net, 1, 5, again);
    assert_eq!(net.to(1), [1, 2, 5, 6]);
    raise(&mut e, g, 7, &mut net, again);
    assert_eq!(net.to(1), [1, 2, 5, 6, 7]);
}

#[test]
fn a_failure_moves_every_event_in_flight_on_that_member_in_order() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2");
    for i in 1..=4 {
        raise(&mut e, g, i, &mut net, now);
    }
    ok(&mut e, &mut net, 1, 1, now);
    fail(&mut e, &mut net, 1, 3, now);
    assert_eq!(net.to(2), [2, 3, 4]);
    // A late success of a moved event is only counted: it may be a duplicate.
    ok(&mut e, &mut net, 1, 2, now);
    for i in 2..=4 {
        ok(&mut e, &mut net, 2, i, now);
    }
    let mut got: Vec<_> = net.reports.iter().map(|(d, r)| (*d, r.is_ok())).collect();
    got.sort();
    assert_eq!(got, [(1, true), (2, true), (3, true), (4, true)]);
    let s = member_stat(&e, g, 0);
    assert_eq!((s.failed_over, s.late_delivered), (3, 1));
}

#[test]
fn a_refused_send_tries_the_next_member_at_once() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2 udp:c:3");
    net.refuse.insert(1);
    raise(&mut e, g, 1, &mut net, now);
    assert_eq!(net.to(2), [1]);
    assert_eq!(member_stat(&e, g, 0).failed, 1);
}

#[test]
fn every_member_failed_is_one_error_naming_them() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, now);
    fail(&mut e, &mut net, 1, 1, now);
    fail(&mut e, &mut net, 2, 1, now);
    assert_eq!(net.reports.len(), 1);
    let err = net.reports[0].1.clone().expect_err("failed");
    assert!(err.contains("udp:a:1") && err.contains("udp:b:2"), "{err}");
    // Both marked failed: the next event still tries the least recently failed one (a).
    raise(&mut e, g, 2, &mut net, now + Duration::from_millis(1));
    assert_eq!(net.to(1), [1, 2]);
}

/// `failed_over` counts events that moved on, not failures: the last member's failure, with
/// no member left to try, is only `failed`.
#[test]
fn failed_over_is_not_counted_when_no_member_is_left() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, now);
    fail(&mut e, &mut net, 1, 1, now);
    fail(&mut e, &mut net, 2, 1, now);
    assert!(net.reports[0].1.is_err());
    let (a, b) = (member_stat(&e, g, 0), member_stat(&e, g, 1));
    assert_eq!((a.failed, a.failed_over), (1, 1), "moved from a to b");
    assert_eq!((b.failed, b.failed_over), (1, 0), "given up at b");
    // The same when both refuse at once (dispatch's synchronous path).
    let (mut e, g, mut net, now) = setup("ROUND-ROBIN udp:a:1 udp:b:2");
    net.refuse.extend([1, 2]);
    raise(&mut e, g, 1, &mut net, now);
    assert!(net.reports[0].1.is_err());
    let (a, b) = (member_stat(&e, g, 0), member_stat(&e, g, 1));
    assert_eq!((a.failed, a.failed_over), (1, 1));
    assert_eq!((b.failed, b.failed_over), (1, 0));
}

#[test]
fn an_unanswered_member_times_out_and_recovers_on_a_late_success() {
    let (mut e, g, mut net, t0) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, t0);
    e.expire(&mut net, t0 + ANSWER / 2);
    assert!(net.to(2).is_empty());
    e.expire(&mut net, t0 + ANSWER);
    assert_eq!(net.to(2), [1]);
    let s = member_stat(&e, g, 0);
    assert_eq!((s.timeouts, s.failed_over), (1, 1));
    ok(&mut e, &mut net, 1, 1, t0 + ANSWER);
    assert_eq!(member_stat(&e, g, 0).late_delivered, 1);
    raise(&mut e, g, 2, &mut net, t0 + ANSWER);
    assert_eq!(net.to(1), [1, 2], "healthy again after the late success");
}

#[test]
fn round_robin_rotates_and_skips_failed_members() {
    let (mut e, g, mut net, now) = setup("ROUND-ROBIN udp:a:1 udp:b:2 udp:c:3");
    for i in 1..=6 {
        raise(&mut e, g, i, &mut net, now);
    }
    assert_eq!(
        (net.to(1), net.to(2), net.to(3)),
        (vec![1, 4], vec![2, 5], vec![3, 6])
    );
    fail(&mut e, &mut net, 2, 2, now);
    // 2 and 5 were in flight on b: they move on to c, and b is skipped from now on.
    assert_eq!(net.to(3), [3, 6, 2, 5]);
    for i in 7..=10 {
        raise(&mut e, g, i, &mut net, now);
    }
    assert_eq!(net.to(2), [2, 5]);
    assert_eq!(net.to(1).len() + net.to(3).len(), 2 + 4 + 4);
}

#[test]
fn parallel_sends_to_all_and_one_failure_starves_nobody() {
    let (mut e, g, mut net, now) = setup("PARALLEL udp:a:1 udp:b:2 udp:c:3");
    net.refuse.insert(1);
    raise(&mut e, g, 1, &mut net, now);
    assert_eq!((net.to(2), net.to(3)), (vec![1], vec![1]));
    ok(&mut e, &mut net, 2, 1, now);
    ok(&mut e, &mut net, 3, 1, now);
    let err = net.reports[0].1.clone().expect_err("a failed");
    assert!(err.contains("udp:a:1") && !err.contains("udp:b:2"), "{err}");
    net.refuse.clear();
    raise(&mut e, g, 2, &mut net, now);
    for m in 1..=3 {
        ok(&mut e, &mut net, m, 2, now);
    }
    assert_eq!(net.reports[1], (2, Ok(())));
    // One member never answers: the group fails at member_timeout, naming it.
    raise(&mut e, g, 3, &mut net, now);
    ok(&mut e, &mut net, 1, 3, now);
    ok(&mut e, &mut net, 2, 3, now);
    e.expire(&mut net, now + ANSWER);
    let err = net.reports[2].1.clone().expect_err("c timed out");
    assert!(
        err.contains("udp:c:3") && err.contains("no answer"),
        "{err}"
    );
}

#[test]
fn freeing_closes_members_and_pending_events_still_end_once() {
    let (mut e, g, mut net, now) = setup("FAILOVER udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, now);
    raise(&mut e, g, 2, &mut net, now);
    e.close_group(g, &mut net, now);
    assert_eq!(net.closed, [1, 2]);
    assert!(e.groups().next().is_none());
    ok(&mut e, &mut net, 1, 1, now);
    fail(&mut e, &mut net, 1, 2, now);
    assert_eq!(net.reports.len(), 2);
    assert!(net.reports[0].1.is_ok() && net.reports[1].1.is_err());
    assert!(e.group(g).is_none(), "gone with its last event");
}

#[test]
fn shutdown_reports_every_pending_event() {
    let (mut e, g, mut net, now) = setup("PARALLEL udp:a:1 udp:b:2");
    raise(&mut e, g, 1, &mut net, now);
    e.shutdown(&mut net);
    assert_eq!(net.reports.len(), 1);
    assert!(net.reports[0]
        .1
        .clone()
        .expect_err("stopping")
        .contains("stopping"));
    assert_eq!(net.closed, [1, 2]);
}

mod readme {
    use evi_sdk::abi::EviModuleDecl;

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
        assert!(readme.contains("`event_virtual:stats`"));
    }
}

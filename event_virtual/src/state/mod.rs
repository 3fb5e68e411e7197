//! The groups, and every event still in flight: which members it was sent to, what came back,
//! where it goes next. All on the module's thread; the host is reached through [`Net`] so the
//! whole state machine runs in unit tests against a scripted fake.
//!
//! Ids: groups, flights (one per raised event) and tokens (one per member send) come from one
//! counter. Flight ids grow in raise order, so retrying pending flights smallest-id first keeps
//! the raise order within each destination.

mod dispatch;
mod lifecycle;

use crate::policy::Health;
use crate::stats::{GroupStats, MemberStats};
use crate::uri::{Mode, VirtualUri};
use evi_sdk::{Delivery, Event, MemberSocket, OwnedEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the engine needs from the daemon.
pub trait Net {
    /// `Host::socket_raise`: `Ok` means exactly one later [`Engine::member_status`] for `token`.
    fn raise(&mut self, member: MemberSocket, event: &Event<'_>, token: u64) -> Result<(), String>;
    /// `Host::delivery_status` of the group's subscriber.
    fn report(&mut self, delivery: Delivery, result: Result<(), &str>);
    /// `Host::socket_close`.
    fn close(&mut self, member: MemberSocket);
}

/// Timing settings (modparams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a failed member is skipped before it is probed again (`failover_timeout`).
    pub rest: Duration,
    /// How long a member may leave an event unanswered before it counts as failed
    /// (`member_timeout`); `None` waits for ever.
    pub answer: Option<Duration>,
}

pub struct Member {
    pub uri: String,
    pub socket: MemberSocket,
    pub health: Health,
    /// Token → when it was sent; tokens grow, so the first entry is the oldest.
    pub in_flight: BTreeMap<u64, Instant>,
    pub stats: MemberStats,
}

pub struct Group {
    pub uri: VirtualUri,
    pub members: Vec<Member>,
    /// ROUND-ROBIN: the member the next new event starts from.
    cursor: usize,
    /// FAILOVER: flights waiting for the probe of a preferred member.
    pub held: VecDeque<u64>,
    /// `free` ran: members are closed, nothing new is sent; kept until its flights end.
    closed: bool,
    pub flights: usize,
    pub stats: GroupStats,
}

struct Flight {
    group: u64,
    delivery: Delivery,
    /// The copy retries are sent from (FAILOVER, ROUND-ROBIN).
    event: Option<OwnedEvent>,
    tried: Vec<bool>,
    /// The member last tried (ROUND-ROBIN retries continue after it).
    last: Option<usize>,
    /// The member that failed this event last. Its `failed_over` is counted only when the event
    /// is sent on to another member: an event given up after its last member is no failover.
    from: Option<usize>,
    /// PARALLEL: member sends whose outcome is still due.
    outstanding: usize,
    /// Why members failed this event, for the group's error.
    failed: Vec<String>,
}

struct Sent {
    flight: u64,
    group: u64,
    member: usize,
}

pub struct Engine {
    pub timing: Timing,
    groups: BTreeMap<u64, Group>,
    flights: HashMap<u64, Flight>,
    tokens: HashMap<u64, Sent>,
    /// Tokens given up on (timeout, or their member failed): a late answer is only counted.
    orphans: HashMap<u64, (u64, usize)>,
    /// Flights to (re)dispatch, oldest first.
    work: BTreeSet<u64>,
    next: u64,
}

impl Engine {
    pub fn new(timing: Timing) -> Engine {
        Engine {
            timing,
            groups: BTreeMap::new(),
            flights: HashMap::new(),
            tokens: HashMap::new(),
            orphans: HashMap::new(),
            work: BTreeSet::new(),
            next: 1,
        }
    }

    pub(super) fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A new group over members already opened, in URI order.
    pub fn add_group(&mut self, uri: VirtualUri, sockets: Vec<MemberSocket>) -> u64 {
        let members = uri
            .members
            .iter()
            .zip(sockets)
            .map(|(m, socket)| Member {
                uri: m.clone(),
                socket,
                health: Health::default(),
                in_flight: BTreeMap::new(),
                stats: MemberStats::default(),
            })
            .collect();
        let id = self.id();
        self.groups.insert(
            id,
            Group {
                uri,
                members,
                cursor: 0,
                held: VecDeque::new(),
                closed: false,
                flights: 0,
                stats: GroupStats::default(),
            },
        );
        id
    }

    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// Live groups (not freed), for MI.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values().filter(|g| !g.closed)
    }

    /// One raised event for group `id`. The outcome is always reported through `net.report`,
    /// exactly once (possibly before this returns).
    pub fn raise(
        &mut self,
        id: u64,
        event: &Event<'_>,
        delivery: Delivery,
        net: &mut impl Net,
        now: Instant,
    ) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(&id)
            .filter(|g| !g.closed)
            .ok_or("the virtual socket was freed")?;
        g.stats.raised += 1;
        g.flights += 1;
        let n = g.members.len();
        let mode = g.uri.mode;
        let fid = self.id();
        let mut flight = Flight {
            group: id,
            delivery,
            event: None,
            tried: vec![false; n],
            last: None,
            from: None,
            outstanding: 0,
            failed: Vec::new(),
        };
        if mode == Mode::Parallel {
            // No retries, so no copy: every member gets the borrowed event now.
            for i in 0..n {
                let token = self.id();
                let Some(g) = self.groups.get_mut(&id) else {
                    break;
                };
                let m = &mut g.members[i];
                match net.raise(m.socket, event, token) {
                    Ok(()) => {
                        m.in_flight.insert(token, now);
                        self.tokens.insert(
                            token,
                            Sent {
                                flight: fid,
                                group: id,
                                member: i,
                            },
                        );
                        flight.outstanding += 1;
                    }
                    Err(e) => {
                        note_failure(&mut m.stats, &e);
                        flight.failed.push(format!("{}: {e}", m.uri));
                    }
                }
            }
            let done = flight.outstanding == 0;
            self.flights.insert(fid, flight);
            if done {
                self.finish(fid, false, net);
            }
        } else {
            flight.event = Some(event.to_owned());
            self.flights.insert(fid, flight);
            self.work.insert(fid);
            self.drain(net, now);
        }
        Ok(())
    }

    /// The outcome of the member send `token`.
    pub fn member_status(
        &mut self,
        token: u64,
        result: Result<(), &str>,
        net: &mut impl Net,
        now: Instant,
    ) {
        if let Some(sent) = self.tokens.remove(&token) {
            self.answered(sent, token, result, now, net);
        } else if let Some((gid, mi)) = self.orphans.remove(&token) {
            let Some(m) = self
                .groups
                .get_mut(&gid)
                .and_then(|g| g.members.get_mut(mi))
            else {
                return;
            };
            match result {
                Ok(()) => {
                    m.stats.late_delivered += 1;
                    // It works again (a broker back from an outage confirms its backlog): no
                    // need to wait for failover_timeout. A pending probe stays in flight.
                    m.health.failed_at = None;
                    if m.health.probe.take().is_some() {
                        self.release_held(gid);
                    }
                }
                Err(_) => m.stats.late_failed += 1,
            }
        }
        self.drain(net, now);
    }

    fn answered(
        &mut self,
        sent: Sent,
        token: u64,
        result: Result<(), &str>,
        now: Instant,
        net: &mut impl Net,
    ) {
        let Some(g) = self.groups.get_mut(&sent.group) else {
            return;
        };
        let mode = g.uri.mode;
        let Some(m) = g.members.get_mut(sent.member) else {
            return;
        };
        m.in_flight.remove(&token);
        let was_probe = m.health.probe == Some(token);
        let Some(flight) = self.flights.get_mut(&sent.flight) else {
            return;
        };
        match result {
            Ok(()) => {
                m.stats.delivered += 1;
                if mode != Mode::Parallel {
                    m.health.recovered();
                }
            }
            Err(e) => {
                note_failure(&mut m.stats, e);
                flight.failed.push(format!("{}: {e}", m.uri));
                if mode != Mode::Parallel {
                    flight.from = Some(sent.member);
                }
            }
        }
        if mode == Mode::Parallel {
            flight.outstanding = flight.outstanding.saturating_sub(1);
            if flight.outstanding == 0 {
                let ok = flight.failed.is_empty();
                self.finish(sent.flight, ok, net);
            }
            return;
        }
        match result {
            Ok(()) => {
                self.finish(sent.flight, true, net);
                if was_probe {
                    self.release_held(sent.group);
                }
            }
            Err(_) => {
                self.work.insert(sent.flight);
                self.member_failed(sent.group, sent.member, "failed", now);
            }
        }
    }

    /// A FAILOVER/ROUND-ROBIN member failed: mark it, and move every event still in flight on
    /// it to the next member now (so the next destination gets them in raise order, before
    /// newer events; a late success at this member is a duplicate, counted as late).
    pub(super) fn member_failed(&mut self, gid: u64, mi: usize, why: &str, now: Instant) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        let Some(m) = g.members.get_mut(mi) else {
            return;
        };
        let had_probe = m.health.probe.is_some();
        m.health.failed(now);
        for token in std::mem::take(&mut m.in_flight).into_keys() {
            let Some(sent) = self.tokens.remove(&token) else {
                continue;
            };
            self.orphans.insert(token, (gid, mi));
            if let Some(f) = self.flights.get_mut(&sent.flight) {
                f.failed.push(format!("{}: {why}", m.uri));
                f.from = Some(mi);
            }
            self.work.insert(sent.flight);
        }
        if had_probe {
            self.release_held(gid);
        }
    }

    pub(super) fn release_held(&mut self, gid: u64) {
        if let Some(g) = self.groups.get_mut(&gid) {
            self.work.extend(g.held.drain(..));
        }
    }

    /// Report flight `fid`'s outcome (once) and forget it; a freed group goes with its last
    /// flight.
    pub(super) fn finish(&mut self, fid: u64, ok: bool, net: &mut impl Net) {
        let Some(f) = self.flights.remove(&fid) else {
            return;
        };
        if ok {
            net.report(f.delivery, Ok(()));
        } else if f.failed.is_empty() {
            net.report(f.delivery, Err("no member could take the event"));
        } else {
            net.report(f.delivery, Err(&f.failed.join("; ")));
        }
        let Some(g) = self.groups.get_mut(&f.group) else {
            return;
        };
        if ok {
            g.stats.delivered += 1;
        } else {
            g.stats.failed += 1;
        }
        g.flights = g.flights.saturating_sub(1);
        if g.closed && g.flights == 0 {
            self.groups.remove(&f.group);
        }
    }
}

fn note_failure(s: &mut MemberStats, why: &str) {
    s.failed += 1;
    s.last_error = Some(why.to_string());
}

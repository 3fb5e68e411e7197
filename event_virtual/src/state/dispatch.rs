//! Sending a FAILOVER / ROUND-ROBIN event to its next member.

use super::{note_failure, Engine, Net, Sent};
use crate::policy::{pick, rotation, Health, Pick};
use crate::uri::Mode;
use std::time::Instant;

impl Engine {
    /// Dispatch queued flights, oldest first.
    pub(super) fn drain(&mut self, net: &mut impl Net, now: Instant) {
        while let Some(fid) = self.work.pop_first() {
            self.dispatch(fid, net, now);
        }
    }

    /// Send flight `fid` to its next member (FAILOVER, ROUND-ROBIN), trying further members on
    /// a refusal; hold it behind a probe, or end it when every member failed.
    fn dispatch(&mut self, fid: u64, net: &mut impl Net, now: Instant) {
        loop {
            let Some(f) = self.flights.get_mut(&fid) else {
                return;
            };
            let gid = f.group;
            let Some(g) = self.groups.get_mut(&gid) else {
                return;
            };
            if g.closed {
                f.failed.push("the virtual socket was freed".into());
                self.finish(fid, false, net);
                return;
            }
            let n = g.members.len();
            let health: Vec<Health> = g.members.iter().map(|m| m.health.clone()).collect();
            let choice = match g.uri.mode {
                Mode::Failover => pick(
                    0..n,
                    &health,
                    &f.tried,
                    now,
                    self.timing.rest,
                    self.timing.answer.is_some(),
                ),
                _ => {
                    let start = f.last.map_or(g.cursor, |l| l + 1);
                    pick(
                        rotation(start, n),
                        &health,
                        &f.tried,
                        now,
                        self.timing.rest,
                        false,
                    )
                }
            };
            let (mi, probe) = match choice {
                Pick::Hold => {
                    g.held.push_back(fid);
                    return;
                }
                Pick::Exhausted => {
                    self.finish(fid, false, net);
                    return;
                }
                Pick::Send { member, probe } => (member, probe),
            };
            // The event really moves on now: count the failover against the member it left.
            if let Some(prev) = f.from.take().and_then(|p| g.members.get_mut(p)) {
                prev.stats.failed_over += 1;
            }
            if f.last.is_none() && g.uri.mode == Mode::RoundRobin {
                g.cursor = (mi + 1) % n;
            }
            f.tried[mi] = true;
            f.last = Some(mi);
            // Not `self.id()`: `f` and `g` borrow other fields of `self`.
            self.next += 1;
            let token = self.next;
            let m = &mut g.members[mi];
            let sent = match &f.event {
                Some(ev) => ev.with(|ev| net.raise(m.socket, ev, token)),
                None => Err("no copy of the event".into()),
            };
            match sent {
                Ok(()) => {
                    m.in_flight.insert(token, now);
                    if probe {
                        m.health.probe = Some(token);
                    }
                    self.tokens.insert(
                        token,
                        Sent {
                            flight: fid,
                            group: gid,
                            member: mi,
                        },
                    );
                    return;
                }
                Err(e) => {
                    note_failure(&mut m.stats, &e);
                    f.failed.push(format!("{}: {e}", m.uri));
                    f.from = Some(mi);
                    self.member_failed(gid, mi, &e, now);
                }
            }
        }
    }
}

//! What happens without a new event: a group freed, members that stopped answering, shutdown.

use super::{note_failure, Engine, Net};
use crate::uri::Mode;
use std::time::Instant;

impl Engine {
    /// `free`: close the members; flights still in flight end as their answers come.
    pub fn close_group(&mut self, id: u64, net: &mut impl Net, now: Instant) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        g.closed = true;
        for m in &g.members {
            net.close(m.socket);
        }
        self.work.extend(g.held.drain(..));
        if g.flights == 0 {
            self.groups.remove(&id);
        }
        self.drain(net, now);
    }

    /// Give up on members that left an event unanswered for `member_timeout`. Called whenever
    /// the module runs (each raise, each answer, each flush, MI): the SDK has no timer.
    pub fn expire(&mut self, net: &mut impl Net, now: Instant) {
        let Some(limit) = self.timing.answer else {
            return;
        };
        let why = format!("no answer within {} ms", limit.as_millis());
        let mut late: Vec<(u64, usize, u64)> = Vec::new();
        for (&gid, g) in &self.groups {
            for (mi, m) in g.members.iter().enumerate() {
                for (&token, &at) in &m.in_flight {
                    if now.saturating_duration_since(at) < limit {
                        break;
                    }
                    late.push((gid, mi, token));
                    if g.uri.mode != Mode::Parallel {
                        break; // member_failed moves the others
                    }
                }
            }
        }
        for (gid, mi, token) in late {
            let parallel = self
                .groups
                .get(&gid)
                .is_some_and(|g| g.uri.mode == Mode::Parallel);
            if let Some(m) = self
                .groups
                .get_mut(&gid)
                .and_then(|g| g.members.get_mut(mi))
            {
                m.stats.timeouts += 1;
                note_failure(&mut m.stats, &why);
            }
            if parallel {
                self.give_up_parallel(gid, mi, token, &why, net);
            } else {
                self.member_failed(gid, mi, &why, now);
            }
        }
        self.drain(net, now);
    }

    fn give_up_parallel(&mut self, gid: u64, mi: usize, token: u64, why: &str, net: &mut impl Net) {
        let Some(sent) = self.tokens.remove(&token) else {
            return;
        };
        self.orphans.insert(token, (gid, mi));
        let Some(m) = self
            .groups
            .get_mut(&gid)
            .and_then(|g| g.members.get_mut(mi))
        else {
            return;
        };
        m.in_flight.remove(&token);
        if let Some(f) = self.flights.get_mut(&sent.flight) {
            f.failed.push(format!("{}: {why}", m.uri));
            f.outstanding = f.outstanding.saturating_sub(1);
            if f.outstanding == 0 {
                let ok = f.failed.is_empty();
                self.finish(sent.flight, ok, net);
            }
        }
    }

    /// Shutdown: every event still in flight gets its one (failed) outcome.
    pub fn shutdown(&mut self, net: &mut impl Net) {
        let ids: Vec<u64> = self.groups.keys().copied().collect();
        for id in ids {
            if let Some(g) = self.groups.get_mut(&id) {
                if !g.closed {
                    g.closed = true;
                    for m in &g.members {
                        net.close(m.socket);
                    }
                }
            }
        }
        let fids: Vec<u64> = self.flights.keys().copied().collect();
        for fid in fids {
            if let Some(f) = self.flights.get_mut(&fid) {
                f.failed.push("evid is stopping".into());
            }
            self.finish(fid, false, net);
        }
        self.work.clear();
        self.tokens.clear();
        self.orphans.clear();
    }
}

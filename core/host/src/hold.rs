//! Events the host keeps for a subscriber whose transport asked it to (`delivery_hold`): the
//! destination is down and the transport keeps only its newest events, so instead of handing
//! every new event to the module's thread, only to drop its oldest one, the raiser keeps the
//! newest `max` itself and fails the ones pushed out.
//!
//! Why: a dead RabbitMQ with its buffer full made every raise cross to the module's thread (the
//! JSON built, queued, copied, an old event dropped and reported), which on 2 cores cost the
//! flatstore beside it ~45% of its rate. Held, an event costs the raiser a push into this ring.
//! The result is the same as dropping the oldest: the module's own buffer still holds its
//! older events, and the held ones push them out when they arrive after the release.

use crate::event::{Compact, KeptMeta, RaisedEvent, Slot};
use crate::registry::{EventEntry, Own, Subscriber};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The failure recorded for an event pushed out of a hold.
pub const PUSHED_OUT: &str =
    "dropped: held while the destination is down, pushed out by newer events (the transport keeps the newest)";

/// Push-outs are added to the shared failure counts in batches of this many: two atomic adds
/// per held event were a tenth of its cost. Statistics readers count the rest first
/// ([`settle`]), so what they show is exact.
const COUNT_EVERY: u64 = 256;

/// Room for this many records is made when a hold starts (fewer when `max` is smaller): a
/// ring grown by doubling while the raiser fills it copied each half again and touched fresh
/// pages twice over, system time the raiser paid for (~10% of it beside a dead RabbitMQ
/// holding 100,000 events). Memory is only reserved here; pages count as resident when the
/// raiser writes them.
const RESERVE_RECORDS: usize = 1 << 17;

/// One subscriber's hold. Empty and off unless its transport called `delivery_hold`.
#[derive(Default)]
pub(crate) struct Hold {
    /// Read by the raiser for every event: alone on its line.
    on: Own<AtomicBool>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    max: usize,
    /// The held events, oldest first: small ones in one record each, larger ones as a header
    /// here and their params packed into two rings. Appending one and dropping the oldest
    /// allocate nothing (two allocations and two frees per event with boxed copies).
    events: VecDeque<HeldEvent>,
    slots: VecDeque<Slot>,
    bytes: VecDeque<u8>,
    /// Whether this hold has pushed an event out yet (the reason is recorded once per hold).
    pushing_out: bool,
    /// Events pushed out and not yet in the failure counts (see [`COUNT_EVERY`]).
    uncounted: u64,
    /// The subscription is being freed: no hold may start again (its events would outlive it).
    closed: bool,
}

// The record is inline on purpose: boxing it would bring back an allocation per held event.
#[allow(clippy::large_enum_variant)]
enum HeldEvent {
    Compact(Compact),
    /// Too large for a record: its slots and bytes are in the rings.
    Spilled(KeptMeta),
}

impl Held {
    fn push(&mut self, event: &RaisedEvent) {
        if let Some(c) = event.compact() {
            self.events.push_back(HeldEvent::Compact(c));
            return;
        }
        self.events.push_back(HeldEvent::Spilled(event.kept_meta()));
        self.slots.extend(event.slots());
        self.bytes.extend(event.bytes());
    }

    fn pop_oldest(&mut self) {
        if let Some(HeldEvent::Spilled(m)) = self.events.pop_front() {
            self.slots.drain(..m.n_slots as usize);
            self.bytes.drain(..m.n_bytes as usize);
        }
    }

    /// Every held event built again, in raise order; the rings are emptied (and freed).
    fn revive_all(&mut self) -> VecDeque<Arc<RaisedEvent>> {
        let events = std::mem::take(&mut self.events);
        let mut slots = std::mem::take(&mut self.slots);
        let mut bytes = std::mem::take(&mut self.bytes);
        let (slots, bytes) = (slots.make_contiguous(), bytes.make_contiguous());
        let (mut s, mut b) = (0, 0);
        events
            .iter()
            .map(|e| match e {
                HeldEvent::Compact(c) => c.revive(),
                HeldEvent::Spilled(m) => {
                    let (ns, nb) = (m.n_slots as usize, m.n_bytes as usize);
                    let ev = RaisedEvent::revive(
                        m,
                        slots.get(s..s + ns).unwrap_or_default(),
                        bytes.get(b..b + nb).unwrap_or_default(),
                    );
                    (s, b) = (s + ns, b + nb);
                    ev
                }
            })
            .collect()
    }
}

/// What [`Hold::keep`] did with an event.
pub(crate) enum Kept {
    /// Held; `count` older events pushed out to make room are to be counted now (`first`: the
    /// hold's first push-out).
    Held { count: u64, first: bool },
    /// Not holding (released meanwhile): queue it as usual.
    No,
}

impl Hold {
    /// Whether new events should go to [`Hold::keep`] (a hint: `keep` decides under the lock).
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Events held now.
    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start (or resize) the hold: keep at most the newest `max` events from now on.
    /// Returns how many held events a smaller `max` pushed out.
    pub(crate) fn start(&self, max: usize) -> u64 {
        let mut h = self.lock();
        if h.closed {
            return 0;
        }
        h.max = max.max(1);
        let room = h.max.min(RESERVE_RECORDS).saturating_sub(h.events.len());
        h.events.reserve(room);
        let mut out = 0;
        while h.events.len() > h.max {
            h.pop_oldest();
            out += 1;
        }
        self.on.store(true, Ordering::Release);
        out
    }

    /// Keep `event` if holding.
    pub(crate) fn keep(&self, event: &Arc<RaisedEvent>) -> Kept {
        let mut h = self.lock();
        if !self.on.load(Ordering::Relaxed) {
            return Kept::No;
        }
        let mut pushed_out = 0;
        while h.events.len() >= h.max {
            h.pop_oldest();
            pushed_out += 1;
        }
        h.push(event);
        h.uncounted += pushed_out;
        let first = pushed_out > 0 && !std::mem::replace(&mut h.pushing_out, true);
        let count = if first || h.uncounted >= COUNT_EVERY {
            std::mem::take(&mut h.uncounted)
        } else {
            0
        };
        Kept::Held { count, first }
    }

    /// Take the push-outs not yet counted.
    fn take_uncounted(&self) -> u64 {
        if !self.is_on() {
            // `release` took them before turning the hold off.
            return 0;
        }
        std::mem::take(&mut self.lock().uncounted)
    }

    /// End the hold: `deliver` gets the held events in raise order, under the lock, so that no
    /// raise can queue a newer event before them. `close`: for good (the subscription goes).
    /// Returns the push-outs not counted yet.
    pub(crate) fn release(
        &self,
        close: bool,
        deliver: impl FnOnce(VecDeque<Arc<RaisedEvent>>),
    ) -> u64 {
        let mut h = self.lock();
        h.closed |= close;
        let events = h.revive_all();
        h.pushing_out = false;
        deliver(events);
        self.on.store(false, Ordering::Release);
        std::mem::take(&mut h.uncounted)
    }
}

impl crate::host::Shared {
    /// `delivery_hold`: start, resize or (`max_events` = 0) release the hold of `delivery`'s
    /// subscriber.
    pub(crate) fn hold_delivery(&self, delivery: u64, max_events: u32) {
        // A member raise (event_virtual's) has its own delivery ids: its group decides.
        if delivery >> 63 == 1 {
            return;
        }
        let Some(sub) = self
            .registry
            .subscriber(crate::latency::ticket_sub(delivery))
        else {
            return;
        };
        if max_events == 0 {
            release(&sub);
            return;
        }
        let was_on = sub.stats.hold.is_on();
        let out = sub.stats.hold.start(max_events as usize);
        if out > 0 {
            pushed_out(&sub, out, true);
        }
        if !was_on {
            log::info!(
                "{}: its destination is down; the daemon keeps its newest {max_events} events until it is back",
                sub.socket
            );
        }
    }
}

/// Count `n` held events of `sub` pushed out by newer ones: on the raiser's path once per
/// [`COUNT_EVERY`] events of an outage. The reason is recorded on the hold's `first` push-out,
/// and a line logged at most every 1,024 push-outs and once a second.
pub(crate) fn pushed_out(sub: &Subscriber, n: u64, first: bool) {
    let before = sub.stats.failed.fetch_add(n, Ordering::Relaxed);
    sub.module.failed.fetch_add(n, Ordering::Relaxed);
    if first {
        *sub.stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(PUSHED_OUT.to_string());
    }
    if first || before / 1024 != (before + n) / 1024 {
        crate::dispatch::warn_failures(sub, before + n, PUSHED_OUT);
    }
}

/// Hand `sub`'s held events to its module, in raise order and as one job, before any later
/// raise; end the hold. A no-op when nothing is held.
pub(crate) fn release(sub: &Arc<Subscriber>) {
    if sub.stats.hold.is_on() {
        let n = sub.stats.hold.release(false, |events| deliver(sub, events));
        count_late(sub, n);
    }
}

/// Bring `sub`'s failure counts up to date with its hold's push-outs (statistics readers).
pub(crate) fn settle(sub: &Subscriber) {
    count_late(sub, sub.stats.hold.take_uncounted());
}

/// [`settle`] every subscriber of `events`.
pub(crate) fn settle_all(events: &[Arc<EventEntry>]) {
    for e in events {
        e.subscribers.load().iter().for_each(|s| settle(s));
    }
}

fn count_late(sub: &Subscriber, n: u64) {
    if n > 0 {
        pushed_out(sub, n, false);
    }
}

/// As [`release`], for a subscription being freed: its module may no longer hold it (a hold
/// started after this, by an event queued before the free, would keep events no one releases).
pub(crate) fn close(sub: &Arc<Subscriber>) {
    let n = sub.stats.hold.release(true, |events| deliver(sub, events));
    count_late(sub, n);
}

fn deliver(sub: &Arc<Subscriber>, events: VecDeque<Arc<RaisedEvent>>) {
    if !events.is_empty() {
        sub.module.enqueue_held(events, Arc::clone(sub));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ParamRef, ValueRef};

    /// Event `i` with `i % 4` params of varying sizes: from `i` = 12 on, those with words are
    /// too large for a record, so the rings wrap unevenly between records.
    fn event(i: usize) -> Arc<RaisedEvent> {
        let words: Vec<Vec<u8>> = (0..i % 4)
            .map(|k| vec![b'a' + k as u8; 8 * i + k])
            .collect();
        let params: Vec<ParamRef<'_>> = words
            .iter()
            .map(|w| ParamRef::named("w", ValueRef::Str(w)))
            .chain([ParamRef::named("i", ValueRef::Int(i as i64))])
            .collect();
        RaisedEvent::shared(1, "E_H", &params, i as i64, 0)
    }

    #[test]
    fn the_newest_are_kept_and_come_back_as_raised() {
        let hold = Hold::default();
        hold.start(3);
        let mut counted = 0;
        for i in 0..50 {
            match hold.keep(&event(i)) {
                Kept::Held { count, .. } => counted += count,
                Kept::No => panic!("not held"),
            }
        }
        // The first push-out is counted at once, the rest in batches or when settled.
        assert_eq!((counted, hold.len()), (1, 3));
        assert_eq!(hold.take_uncounted(), 46);
        assert_eq!(hold.take_uncounted(), 0);
        hold.keep(&event(50));
        let mut back = Vec::new();
        assert_eq!(hold.release(false, |events| back.extend(events)), 1);
        assert!(!hold.is_on());
        let want: Vec<Vec<u8>> = (48..51).map(|i| event(i).json().to_vec()).collect();
        let got: Vec<Vec<u8>> = back.iter().map(|e| e.json().to_vec()).collect();
        assert_eq!(got, want);
        assert_eq!(back[2].raised_at_us, 50);
        assert_eq!(hold.take_uncounted(), 0);
    }

    /// A started hold has its records' room already: filling it moves nothing (the ring's
    /// buffer stays where it is), and a huge `max` reserves no more than `RESERVE_RECORDS`.
    #[test]
    fn a_started_hold_fills_without_growing() {
        let hold = Hold::default();
        hold.start(1000);
        assert!(hold.lock().events.capacity() >= 1000);
        let buffer = |h: &Hold| h.lock().events.as_slices().0.as_ptr() as usize;
        hold.keep(&event(0));
        let at = buffer(&hold);
        for i in 1..1000 {
            hold.keep(&event(i));
        }
        assert_eq!((hold.len(), buffer(&hold)), (1000, at));
        let huge = Hold::default();
        huge.start(usize::MAX);
        let room = huge.lock().events.capacity();
        assert!(
            (RESERVE_RECORDS..2 * RESERVE_RECORDS).contains(&room),
            "{room}"
        );
    }

    /// Small events (one record each) and large ones (params in the rings) interleaved, held
    /// past several push-outs: all come back in raise order with their params.
    #[test]
    fn records_and_spilled_events_come_back_in_order() {
        let hold = Hold::default();
        hold.start(17);
        let big = vec![b'x'; 200];
        let raise = |i: usize| {
            let p = [
                ParamRef::named("i", ValueRef::Int(i as i64)),
                ParamRef::named(
                    "s",
                    ValueRef::Str(if i.is_multiple_of(3) { &big } else { b"ab" }),
                ),
            ];
            RaisedEvent::shared(1, "E_M", &p[..1 + (i % 2)], i as i64, 0)
        };
        for i in 0..100 {
            assert!(matches!(hold.keep(&raise(i)), Kept::Held { .. }));
        }
        let mut back = Vec::new();
        hold.release(false, |events| back.extend(events));
        let want: Vec<Vec<u8>> = (83..100).map(|i| raise(i).json().to_vec()).collect();
        let got: Vec<Vec<u8>> = back.iter().map(|e| e.json().to_vec()).collect();
        assert_eq!(got, want);
    }
}

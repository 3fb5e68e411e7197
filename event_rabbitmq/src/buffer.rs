//! The bounded per-broker buffer: every accepted event stays here until the broker confirms it
//! (or it is dropped), so a lost connection only means "send again" (at-least-once).
//!
//! Events are either unsent (in raise order) or in flight (published on the current channel,
//! waiting for a confirm, keyed by a send sequence). Sends always take the oldest unsent event,
//! so every in-flight event is older than every unsent one; [`Buffer::requeue`] puts the
//! in-flight ones back in front after a reconnect. Full = the oldest event is dropped.

use crate::config::FullDrop;
use evi_sdk::Delivery;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Where and how a socket publishes; shared by all events raised to it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub exchange: String,
    pub routing_key: String,
    pub persistent: bool,
    pub mandatory: bool,
    /// `application/json` for events; what the script says for `rabbitmq_publish()`.
    pub content_type: Option<String>,
}

/// One accepted event. Cheap to clone (for publishing outside the lock).
#[derive(Clone, Debug)]
pub struct Message {
    /// The host's ticket; `None` for a `rabbitmq_publish()` from the script, which nobody
    /// waits on (its outcome is counted and, when it fails, logged).
    pub delivery: Option<Delivery>,
    pub target: Arc<Target>,
    pub body: Arc<[u8]>,
    /// Times it was handed to a channel (2+ means a possible duplicate at the consumer).
    pub sends: u32,
}

/// Size limits, and what goes when they are reached.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
    pub full_drop: FullDrop,
}

/// Why [`Buffer::push`] did not take a message (it is given back).
#[derive(Debug)]
pub enum Refused {
    /// Larger than the whole byte limit.
    TooBig(Message),
    /// Full, and the limits say to refuse the newest rather than drop the oldest.
    Full(Message),
}

/// The events one push dropped. A full buffer drops on every raise while the broker is down, and
/// almost always exactly one event (several only when a large body needs the bytes of several
/// small ones), so the first is held inline and only a second one allocates.
#[derive(Debug, Default)]
pub struct Dropped {
    first: Option<Message>,
    more: Vec<Message>,
}

impl Dropped {
    fn push(&mut self, m: Message) {
        if self.first.is_none() {
            self.first = Some(m);
        } else {
            self.more.push(m);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Dropped {
    type Item = Message;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Message>, std::vec::IntoIter<Message>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.more)
    }
}

#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    unsent: VecDeque<Message>,
    in_flight: BTreeMap<u64, Message>,
    bytes: usize,
    next_seq: u64,
}

impl Buffer {
    pub fn new(limits: Limits) -> Buffer {
        Buffer {
            limits,
            unsent: VecDeque::new(),
            in_flight: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// How many events of `body_len` bytes a full buffer keeps (its newest), when it drops
    /// the oldest to make room; `None` when it refuses the newest instead.
    pub fn newest_kept(&self, body_len: usize) -> Option<usize> {
        (self.limits.full_drop == FullDrop::Oldest)
            .then(|| self.limits.events.min(self.limits.bytes / body_len.max(1)))
    }

    /// Accept `m`, dropping the oldest events to make room (`FullDrop::Oldest`); returns the
    /// dropped ones (each must get a failed delivery status). `Err` when `m` alone exceeds the
    /// byte limit, or when the buffer is full and `FullDrop::Newest` refuses it.
    pub fn push(&mut self, m: Message) -> Result<Dropped, Refused> {
        if m.body.len() > self.limits.bytes {
            return Err(Refused::TooBig(m));
        }
        let full =
            |b: &Buffer| b.len() >= b.limits.events || b.bytes + m.body.len() > b.limits.bytes;
        if self.limits.full_drop == FullDrop::Newest && full(self) {
            return Err(Refused::Full(m));
        }
        let mut dropped = Dropped::default();
        while full(self) {
            match self.pop_oldest() {
                Some(old) => dropped.push(old),
                None => break,
            }
        }
        self.bytes += m.body.len();
        self.unsent.push_back(m);
        Ok(dropped)
    }

    fn pop_oldest(&mut self) -> Option<Message> {
        let m = match self.in_flight.pop_first() {
            Some((_, m)) => m,
            None => self.unsent.pop_front()?,
        };
        self.bytes -= m.body.len();
        Some(m)
    }

    /// Move the oldest unsent event in flight; returns its send sequence and a copy to publish.
    pub fn next_unsent(&mut self) -> Option<(u64, Message)> {
        let mut m = self.unsent.pop_front()?;
        m.sends += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert(seq, m.clone());
        Some((seq, m))
    }

    /// The broker answered for send `seq`: remove and return it, unless it was dropped or
    /// requeued meanwhile (a stale answer from an older channel).
    pub fn resolve(&mut self, seq: u64) -> Option<Message> {
        let m = self.in_flight.remove(&seq)?;
        self.bytes -= m.body.len();
        Some(m)
    }

    /// The channel is gone: everything in flight becomes unsent again, ahead of the rest.
    /// Returns how many events will be sent again.
    pub fn requeue(&mut self) -> usize {
        let n = self.in_flight.len();
        for (_, m) in std::mem::take(&mut self.in_flight).into_iter().rev() {
            self.unsent.push_front(m);
        }
        n
    }

    /// Remove in-flight events matching `pred` (e.g. those sent to an exchange that does not
    /// exist), oldest first.
    pub fn take_in_flight(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let seqs: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, m)| pred(m))
            .map(|(s, _)| *s)
            .collect();
        seqs.into_iter().filter_map(|s| self.resolve(s)).collect()
    }

    /// Empty the buffer (shutdown); oldest first.
    pub fn drain(&mut self) -> Vec<Message> {
        self.requeue();
        self.bytes = 0;
        self.unsent.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.unsent.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events waiting for their first (or next) send.
    pub fn unsent(&self) -> usize {
        self.unsent.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

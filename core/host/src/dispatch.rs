//! The raise path: snapshot → one shared event → one queued job per live subscriber.

use crate::event::{ParamRef, RaisedEvent};
use crate::host::Shared;
use crate::registry::Subscriber;
use evi_abi::EviStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What happened to a raise, from the raiser's point of view (delivery happens later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// Subscribers whose transport queue took the event.
    pub queued: usize,
    /// Subscribers that lost it because their module's queue was full.
    pub dropped: usize,
}

impl Shared {
    /// Raise event `id`. Never blocks: each subscriber's module queue either takes the event or
    /// the drop is counted on that subscriber.
    pub(crate) fn raise(&self, id: u32, params: &[ParamRef<'_>]) -> Result<Raised, String> {
        self.registry
            .with_event(id, |entry| {
                entry.raised.fetch_add(1, Ordering::Relaxed);
                let mut out = Raised {
                    queued: 0,
                    dropped: 0,
                };
                let subs = entry.subscribers.load();
                if subs.is_empty() {
                    return out;
                }
                let now = self.clock.now();
                let event = Arc::new(RaisedEvent::new(
                    id,
                    entry.name,
                    params,
                    self.clock.now_us(),
                ));
                for sub in subs.iter() {
                    if sub.is_expired(now) {
                        continue;
                    }
                    if sub.module.enqueue_raise(event.clone(), sub.clone()) {
                        out.queued += 1;
                    } else {
                        out.dropped += 1;
                    }
                }
                out
            })
            .ok_or_else(|| format!("no event with id {id}"))
    }
}

/// Count the outcome of one transport `raise` (called on the module's thread).
pub(crate) fn record(sub: &Subscriber, st: EviStatus, err: &[u8]) {
    match st {
        EviStatus::OK => {
            sub.stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
        EviStatus::PENDING => {}
        _ => {
            let n = sub.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
            let why = String::from_utf8_lossy(err);
            let why = if why.is_empty() {
                format!("transport returned {}", st.0)
            } else {
                why.into_owned()
            };
            let now = crate::clock::unix_now();
            if sub.stats.last_logged.swap(now, Ordering::Relaxed) != now {
                log::warn!(
                    "delivery to {} failed ({n} failures so far): {why}",
                    sub.socket
                );
            }
            *sub.stats
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(why);
        }
    }
}

impl Shared {
    /// An async transport's late outcome for delivery `delivery` (the subscriber id).
    pub(crate) fn delivery_status(&self, delivery: u64, status: EviStatus, msg: &[u8]) {
        let sub = self.registry.subscriber(delivery);
        match sub {
            Some(sub) => record(
                &sub,
                if status == EviStatus::PENDING {
                    EviStatus::ERROR
                } else {
                    status
                },
                msg,
            ),
            None => log::debug!("delivery status for a subscriber that is gone ({delivery})"),
        }
    }
}

//! The raise path: snapshot → one shared event → one queued job per live subscriber.

use crate::event::{AsParamRef, RaisedEvent};
use crate::hold::Kept;
use crate::host::Shared;
use crate::registry::Subscriber;
use evi_abi::EviStatus;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// What happened to a raise, from the raiser's point of view (delivery happens later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// Subscribers whose transport queue took the event.
    pub queued: usize,
    /// Subscribers that lost it because their module's queue was full.
    pub dropped: usize,
    /// Subscribers whose destination their transport reported down (`delivery_suspend`): the
    /// event failed at once, counted on the subscriber.
    pub failed: usize,
}

/// OpenSIPS's limit on raises nested inside event routes (`MAX_REC_LEV`).
pub const MAX_ROUTE_DEPTH: u32 = 100;

thread_local! {
    /// Depth of the `event_route` this thread is running (0 outside any): a raise made by the
    /// route is one level deeper. A plain `Cell`: no destructor, so module threads never pin
    /// anything at exit.
    static ROUTE_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Run `f` as part of a route handling an event of depth `depth`.
pub(crate) fn in_route<R>(depth: u32, f: impl FnOnce() -> R) -> R {
    let before = ROUTE_DEPTH.with(|d| d.replace(depth + 1));
    let r = f();
    ROUTE_DEPTH.with(|d| d.set(before));
    r
}

impl Shared {
    /// Raise event `id`. Never blocks: each subscriber's module queue either takes the event or
    /// the drop is counted on that subscriber.
    pub(crate) fn raise<P: AsParamRef>(&self, id: u32, params: &[P]) -> Result<Raised, String> {
        let depth = ROUTE_DEPTH.with(|d| d.get());
        if depth >= MAX_ROUTE_DEPTH {
            let name = self.registry.with_event(id, |e| e.name).unwrap_or("?");
            return Err(format!(
                "{name} not raised: raises nested {MAX_ROUTE_DEPTH} deep in event routes (a route raising the event it handles?)"
            ));
        }
        self.registry
            .with_event(id, |entry| {
                entry.raised.fetch_add(1, Ordering::Relaxed);
                let mut out = Raised {
                    queued: 0,
                    dropped: 0,
                    failed: 0,
                };
                let subs = entry.subscribers.load();
                if subs.is_empty() {
                    return out;
                }
                let now = self.clock.now();
                let event = RaisedEvent::shared(id, entry.name, params, self.clock.now_us(), depth);
                let mut json = false;
                for sub in subs.iter() {
                    if sub.is_expired(now) {
                        continue;
                    }
                    // A destination known to be down costs this load and two counts, not a
                    // job for its module (which would build a payload only to fail it).
                    if sub.stats.suspended_until_us.load(Ordering::Relaxed) > event.raised_at_us {
                        sub.stats.failed.fetch_add(1, Ordering::Relaxed);
                        sub.module.failed.fetch_add(1, Ordering::Relaxed);
                        out.failed += 1;
                        continue;
                    }
                    // Held (its destination is down, its transport keeps the newest): kept
                    // here, no JSON, no job (see hold.rs).
                    if sub.stats.hold.is_on() {
                        if let Kept::Held { count, first } = sub.stats.hold.keep(&event) {
                            if count > 0 {
                                crate::hold::pushed_out(sub, count, first);
                            }
                            out.queued += 1;
                            continue;
                        }
                    }
                    // The payload is built here, once, before any module can see the event:
                    // a module thread's time goes to its I/O (a UDP sender spent ~15% of its
                    // thread building JSON), while the raiser has time to spare.
                    if sub.wants_json && !json {
                        event.json();
                        json = true;
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
            sub.module.delivered.fetch_add(1, Ordering::Relaxed);
        }
        EviStatus::PENDING => {}
        _ => {
            // A dead destination fails every event with the same reason: it is copied only
            // when it changes, and logged at most once a second per subscriber. The reason
            // before the count: whoever sees the count also sees why.
            {
                let mut last = sub
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if last.as_deref().map(str::as_bytes) != Some(err) || err.is_empty() {
                    *last = Some(match String::from_utf8_lossy(err) {
                        w if w.is_empty() => format!("transport returned {}", st.0),
                        w => w.into_owned(),
                    });
                }
                let n = sub.stats.failed.load(Ordering::Relaxed) + 1;
                warn_failures(sub, n, last.as_deref().unwrap_or_default());
            }
            sub.module.failed.fetch_add(1, Ordering::Relaxed);
            sub.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Log `sub`'s failures (`n` so far, the latest because of `why`), at most once a second.
pub(crate) fn warn_failures(sub: &Subscriber, n: u64, why: &str) {
    let now = crate::clock::unix_now();
    if sub.stats.last_logged.swap(now, Ordering::Relaxed) != now {
        log::warn!(
            "delivery to {} failed ({n} failures so far): {why}",
            sub.socket
        );
    }
}

thread_local! {
    /// The subscriber of the previous outcome reported on this thread, keyed by its registry
    /// and id: transports report runs of outcomes for one subscriber (a file's lines), and a
    /// hit skips the registry's lock and hash lookup (~10% of flatstore's thread).
    static LAST_OUTCOME: RefCell<(usize, u64, Weak<Subscriber>)> =
        const { RefCell::new((0, 0, Weak::new())) };
}

impl Shared {
    /// The live subscriber `id`, as `delivery_status` needs it.
    fn outcome_subscriber(&self, id: u64) -> Option<Arc<Subscriber>> {
        let registry = std::ptr::addr_of!(self.registry) as usize;
        LAST_OUTCOME.with(|last| {
            let mut last = last.borrow_mut();
            if last.0 == registry && last.1 == id {
                if let Some(sub) = last.2.upgrade() {
                    return Some(sub);
                }
            }
            let sub = self.registry.subscriber(id)?;
            *last = (registry, id, Arc::downgrade(&sub));
            Some(sub)
        })
    }

    /// An async transport's late outcome for delivery `delivery` (the subscriber id).
    /// `delivery_suspend`: fail the subscriber's events at the raiser for `millis`.
    pub(crate) fn suspend_delivery(&self, delivery: u64, millis: u32) {
        // A member raise (event_virtual's) has its own delivery ids: the group's policy already
        // skips a failed member, so there is nothing to suspend.
        if delivery >> 63 == 1 {
            return;
        }
        if let Some(sub) = self
            .registry
            .subscriber(crate::latency::ticket_sub(delivery))
        {
            let until = crate::clock::unix_now_us() + i64::from(millis.min(60_000)) * 1000;
            sub.stats.suspended_until_us.store(until, Ordering::Relaxed);
        }
    }

    /// The outcome of a `PENDING` raise, reported by module `module`.
    pub(crate) fn delivery_status(
        &self,
        module: &str,
        delivery: u64,
        status: EviStatus,
        msg: &[u8],
    ) {
        if self.member_delivery_status(delivery, status, msg) {
            return;
        }
        let sub = self.outcome_subscriber(crate::latency::ticket_sub(delivery));
        match sub {
            Some(sub) => {
                let now = crate::clock::outcome_now_us();
                sub.module
                    .latency
                    .record(crate::latency::ticket_age_us(delivery, now));
                record(
                    &sub,
                    if status == EviStatus::PENDING {
                        EviStatus::ERROR
                    } else {
                        status
                    },
                    msg,
                )
            }
            // The subscription ended while its event was in flight: the module's totals still
            // count the outcome, so raised = delivered + failed + dropped holds per module.
            None => {
                if let Some(m) = self.module_named(module) {
                    let c = if status == EviStatus::OK {
                        &m.delivered
                    } else {
                        &m.failed
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

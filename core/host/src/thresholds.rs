//! Core events that warn about bottlenecks (OpenSIPS's `E_CORE_THRESHOLD`, and a queue alarm):
//! a delivery or an event route slower than `exec_delivery_threshold` µs, and a module queue
//! fuller than `evi_queue_threshold` percent (raised once when it crosses, once when it recovers).

use crate::event::{ParamRef, ValueRef};
use crate::host::Shared;
use crate::module::Module;
use crate::registry::Subscriber;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The queue alarm's event, published only when `evi_queue_threshold` is set.
pub const QUEUE_EVENT: &str = "E_EVI_QUEUE_THRESHOLD";

#[derive(Default)]
pub(crate) struct Thresholds {
    /// µs; 0 = off.
    pub delivery_us: AtomicU64,
    /// Percent of a module queue; 0 = off.
    pub queue_pct: AtomicU64,
    /// Unix second of the last E_CORE_THRESHOLD from an event route (one per second at most).
    route_logged: AtomicI64,
}

impl Shared {
    /// The delivery threshold, if set (read once per batch by module threads).
    pub(crate) fn delivery_threshold(&self) -> Option<Duration> {
        let us = self.thresholds.delivery_us.load(Ordering::Relaxed);
        (us > 0).then(|| Duration::from_micros(us))
    }

    /// A delivery to `sub` took `took`, over the threshold: raise `E_CORE_THRESHOLD` (at most
    /// once a second per subscriber, so a slow subscriber of the event itself cannot loop).
    pub(crate) fn slow_delivery(&self, sub: &Subscriber, event: &str, took: Duration) {
        let now = crate::clock::unix_now();
        if sub.stats.last_threshold.swap(now, Ordering::Relaxed) == now {
            return;
        }
        self.threshold_event("delivery", took, &format!("{} for {event}", sub.socket));
    }

    /// An event route ran longer than the threshold.
    pub(crate) fn slow_route(&self, route: &str, took: Duration) {
        let now = crate::clock::unix_now();
        if self.thresholds.route_logged.swap(now, Ordering::Relaxed) == now {
            return;
        }
        self.threshold_event("event_route", took, &format!("event_route[{route}]"));
    }

    fn threshold_event(&self, source: &str, took: Duration, extra: &str) {
        log::warn!("{source} took {} µs: {extra}", took.as_micros());
        let Some(id) = self.registry.lookup("E_CORE_THRESHOLD") else {
            return;
        };
        let time = i64::try_from(took.as_micros()).unwrap_or(i64::MAX);
        let params = [
            ParamRef::named("source", ValueRef::Str(source.as_bytes())),
            ParamRef::named("time", ValueRef::Int(time)),
            ParamRef::named("extra", ValueRef::Str(extra.as_bytes())),
        ];
        let _ = self.raise(id, &params);
    }

    /// The subscriber of module `m` with the most events waiting in its queue, and how many.
    fn top_destination(&self, m: &Arc<Module>) -> Option<(String, u64)> {
        let mut top: Option<(String, u64)> = None;
        for e in self.registry.events().iter() {
            for s in e.subscribers.load().iter() {
                let n = s.stats.queued.load(Ordering::Relaxed);
                if Arc::ptr_eq(&s.module, m) && n > top.as_ref().map_or(0, |t| t.1) {
                    top = Some((s.socket.clone(), n));
                }
            }
        }
        top
    }

    /// Timer tick: raise the queue alarm for every module whose fill crossed the threshold.
    pub(crate) fn check_queues(&self) {
        let pct = self.thresholds.queue_pct.load(Ordering::Relaxed);
        if pct == 0 {
            return;
        }
        let Some(id) = self.registry.lookup(QUEUE_EVENT) else {
            return;
        };
        let modules = self
            .modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for m in modules {
            let (len, cap) = (m.queue_len(), m.queue_capacity().max(1));
            let fill = (len * 100 / cap) as u64;
            let above = fill >= pct;
            if m.queue_alarm.swap(above, Ordering::Relaxed) == above {
                continue;
            }
            let state: &[u8] = if above { b"above" } else { b"below" };
            // The destination holding most of the queue: the one the operator has to look at.
            let top = if above {
                self.top_destination(&m)
            } else {
                None
            };
            let (socket, socket_len) = top
                .as_ref()
                .map_or(("", 0), |(s, n)| (s.as_str(), *n as i64));
            log::warn!(
                "module {}: queue {len}/{cap} ({fill}%) is {} the threshold of {pct}%{}",
                m.name,
                if above { "above" } else { "back below" },
                if socket.is_empty() {
                    String::new()
                } else {
                    format!(", {socket_len} of them for {socket}")
                }
            );
            let mut params = vec![
                ParamRef::named("module", ValueRef::Str(m.name.as_bytes())),
                ParamRef::named("queue_len", ValueRef::Int(len as i64)),
                ParamRef::named("capacity", ValueRef::Int(cap as i64)),
                ParamRef::named("usage", ValueRef::Int(fill as i64)),
                ParamRef::named("threshold", ValueRef::Int(pct as i64)),
                ParamRef::named("state", ValueRef::Str(state)),
            ];
            if !socket.is_empty() {
                params.push(ParamRef::named("socket", ValueRef::Str(socket.as_bytes())));
                params.push(ParamRef::named(
                    "socket_queue_len",
                    ValueRef::Int(socket_len),
                ));
            }
            let _ = self.raise(id, &params);
        }
    }
}

/// Per-module alarm state.
pub(crate) type QueueAlarm = AtomicBool;

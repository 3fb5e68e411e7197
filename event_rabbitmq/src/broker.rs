//! One broker: the state shared between the module thread (which only enqueues) and the broker's
//! task on the module's runtime (which connects, publishes and collects confirms).

use crate::buffer::{Buffer, Limits, Message};
use crate::uri::BrokerKey;
use evi_sdk::json::{json, Value};
use evi_sdk::Delivery;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Where delivery outcomes go: the host's `delivery_status`, or a recorder in unit tests.
/// Called exactly once per accepted event, from the module thread or the runtime thread.
pub type Sink = Arc<dyn Fn(Delivery, Result<(), &str>) + Send + Sync>;

/// Counters, all monotonic except `connected`.
#[derive(Default)]
pub struct Counters {
    pub confirmed: AtomicU64,
    /// Nacked, returned (mandatory), refused by the broker, or failed at shutdown.
    pub failed: AtomicU64,
    pub returned: AtomicU64,
    /// Dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Events handed to a new channel again after a connection loss (possible duplicates).
    pub resent: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
}

pub struct Broker {
    pub key: BrokerKey,
    buffer: Mutex<Buffer>,
    /// Wakes the task: new event, stop, retire, or a broken channel.
    pub wake: Notify,
    pub counters: Counters,
    pub connected: AtomicBool,
    /// A confirm failed with a connection error: reconnect.
    pub broken: AtomicBool,
    /// No socket uses this broker any more: finish the buffer, then close.
    pub retired: AtomicBool,
    /// The module is stopping: drain until the deadline, then fail the rest.
    pub stopping: AtomicBool,
    last_error: Mutex<String>,
    sink: Sink,
}

impl Broker {
    pub fn new(key: BrokerKey, limits: Limits, sink: Sink) -> Broker {
        Broker {
            key,
            buffer: Mutex::new(Buffer::new(limits)),
            wake: Notify::new(),
            counters: Counters::default(),
            connected: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
            sink,
        }
    }

    /// The buffer; held only for short, non-blocking operations.
    pub fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accept an event (module thread). Never waits on the network. `Err` when it can never fit.
    pub fn enqueue(&self, m: Message) -> Result<(), String> {
        let pushed = self.buffer().push(m);
        match pushed {
            Ok(dropped) => {
                if !dropped.is_empty() {
                    self.counters
                        .dropped
                        .fetch_add(dropped.len() as u64, Ordering::Relaxed);
                    log::warn!(
                        "rabbitmq {}: buffer full, dropped the {} oldest event(s)",
                        self.key.label(),
                        dropped.len()
                    );
                }
                for old in dropped {
                    (self.sink)(old.delivery, Err("dropped: rabbitmq buffer full"));
                }
                self.wake.notify_one();
                Ok(())
            }
            Err(m) => Err(format!(
                "event of {} bytes is larger than the rabbitmq buffer (buffer_bytes)",
                m.body.len()
            )),
        }
    }

    /// Report the outcome of a message that has left the buffer.
    pub fn report(&self, m: &Message, result: Result<(), &str>) {
        let c = if result.is_ok() {
            &self.counters.confirmed
        } else {
            &self.counters.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
        (self.sink)(m.delivery, result);
    }

    /// Remember the latest error and log it when it changes (a broker that stays down is
    /// logged once, not at every attempt).
    pub fn set_error(&self, err: &str) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if *last != err {
            log::warn!("rabbitmq {}: {err}", self.key.label());
            *last = err.to_string();
        }
    }

    pub fn clear_error(&self) {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Ask the task to stop (module `destroy`).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// No socket uses this broker any more.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// The MI view (`event_rabbitmq:status`).
    pub fn status(&self) -> Value {
        let (buffered, in_flight, bytes) = {
            let b = self.buffer();
            (b.len(), b.in_flight(), b.bytes())
        };
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "broker": self.key.label(),
            "connected": self.connected.load(Ordering::Relaxed),
            "buffered": buffered,
            "in_flight": in_flight,
            "buffered_bytes": bytes,
            "confirmed": n(&c.confirmed),
            "failed": n(&c.failed),
            "returned": n(&c.returned),
            "dropped": n(&c.dropped),
            "resent": n(&c.resent),
            "connects": n(&c.connects),
            "connect_failures": n(&c.connect_failures),
            "last_error": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }
}

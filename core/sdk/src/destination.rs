//! One sender thread per destination, fed by a bounded queue: the shape of a transport whose
//! peers are servers (a TCP consumer, an HTTP server).
//!
//! Every subscriber socket that names the same destination shares its [`Route`]: its queue, its
//! counters and its thread. The module's thread only builds the payload and queues it
//! ([`Route::send`] never blocks), so a slow or dead destination fills its own queue (then
//! drops, counted) and never delays the raiser or another destination. The thread's body is the
//! transport's own (connection, framing, retries); this module owns what is the same for all:
//! starting threads on first use, the queue bound, the counters, retiring a destination no
//! socket names any more, and joining every thread on stop.
//!
//! ## Owner, lifetime, thread
//! - [`Destinations`] lives in the module struct and is called on the module's thread only.
//!   [`Destinations::stop`] must run in [`Module::destroy`](crate::Module::destroy): it joins
//!   every thread it started (the library is unloaded right after).
//! - A [`Route`] is held by the sockets (`Arc`) and used on the module's thread; its
//!   [`Stats`] are shared with the destination's thread, which writes them, and with whoever
//!   reads them (an MI command).
//! - The thread's body gets the queue's receiving end, the route's [`Stats`] and the module's
//!   stop flag. It ends when the queue is closed and empty: the last socket let go of the route
//!   (the route is retired: [`Stats::closing`] is set) or the module stopped
//!   ([`Destinations::stop`] sets the stop flag first).
//! - The body's duties: take one from [`Stats::queued`] per job it receives, report each job's
//!   outcome exactly once (with the module's [`Report`]) and count it in `delivered` or
//!   `failed`, and keep [`Stats::down`] true while the destination cannot be reached (what
//!   [`Route::admit`] reads).
//!
//! ```
//! use evi_sdk::destination::Destinations;
//! use evi_sdk::Delivery;
//! use std::sync::atomic::Ordering;
//!
//! // Jobs are strings; one destination per server name; each thread prints what it gets.
//! let mut servers: Destinations<String, String> = Destinations::new("demo", "demo-sender", 64);
//! let route = servers.route("a.example:80".into(), "a.example:80", |rx, stats, _stopping| {
//!     while let Some(line) = rx.recv() {
//!         stats.queued.fetch_sub(1, Ordering::Relaxed);
//!         println!("{line}");
//!         stats.delivered.fetch_add(1, Ordering::Relaxed);
//!     }
//! })?;
//! // In `raise`: may the event be built (`Some(host)` in a module), then queue it.
//! route.admit(None, Delivery(1))?;
//! route.send("hello".into())?;
//! // In `free`, then in `destroy`:
//! let stats = route.stats.clone();
//! servers.release(route);
//! servers.stop();
//! assert_eq!(stats.delivered.load(Ordering::Relaxed), 1);
//! # Ok::<(), String>(())
//! ```

use crate::queue::{Receiver, Sender};
use crate::{json, Delivery, Host, MiResult};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a destination's thread reports the outcome of each job: the host's
/// [`Host::delivery_status`] in the module, a test's own closure in unit tests.
pub type Report = Arc<dyn Fn(Delivery, Result<(), &str>) + Send + Sync>;

/// How long the daemon fails a down destination's events itself before the next one probes it
/// (see [`Route::admit`]).
pub const DOWN_FOR: Duration = Duration::from_millis(100);

/// Counters of one destination: written by its thread and by [`Route`], read by MI.
#[derive(Default, Debug)]
pub struct Stats {
    /// Events in the queue now: [`Route::send`] adds one, the thread's body takes one off.
    pub queued: AtomicU64,
    /// Events the destination took (for a transport that reads replies: answered without error).
    pub delivered: AtomicU64,
    /// Events reported failed.
    pub failed: AtomicU64,
    /// Events refused because the queue was full (or the thread had ended).
    pub dropped: AtomicU64,
    /// Extra attempts, for transports that retry (counted by the body).
    pub retries: AtomicU64,
    /// Connections opened (counted by the body).
    pub connections: AtomicU64,
    /// The last connection attempt failed (set and cleared by the body).
    pub down: AtomicBool,
    /// No socket names this destination any more: its thread finishes its queue and ends (a
    /// transport that retries should give up sooner).
    pub closing: AtomicBool,
}

/// A destination's queue, shared by the sockets that name it.
pub struct Route<J> {
    tx: Sender<J>,
    /// Its counters, shared with its thread.
    pub stats: Arc<Stats>,
    /// The destination as messages name it, after the transport's prefix (`host:port`).
    pub name: String,
    proto: &'static str,
    capacity: usize,
}

impl<J> Route<J> {
    /// Whether the destination is unreachable now (its last connection attempt failed).
    pub fn is_down(&self) -> bool {
        self.stats.down.load(Ordering::Relaxed)
    }

    /// Whether an event may be built for this destination: `Err` (counted as dropped) when
    /// the queue is full, so that a dead or slow destination costs a raise one load and a
    /// count, not a payload. While the destination is down, the daemon is told to fail the next
    /// events itself for [`DOWN_FOR`]; this one still goes to the thread, whose connection
    /// attempt probes the destination.
    pub fn admit(&self, host: Option<Host>, delivery: Delivery) -> Result<(), String> {
        if self.is_down() {
            if let Some(host) = host {
                host.suspend(delivery, DOWN_FOR);
            }
        }
        if self.tx.len() < self.capacity {
            return Ok(());
        }
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        Err(self.full())
    }

    fn full(&self) -> String {
        format!(
            "{}:{}: queue full ({} events waiting), event dropped",
            self.proto, self.name, self.capacity
        )
    }

    /// Queue `job`; never blocks. A full queue drops the event and counts it.
    pub fn send(&self, job: J) -> Result<(), String> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(job).map_err(|_| {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if self.tx.len() >= self.capacity {
                self.full()
            } else {
                format!(
                    "{}:{}: sender stopped, event dropped",
                    self.proto, self.name
                )
            }
        })
    }
}

/// The body of a destination's thread: it gets the queue's receiving end, the route's counters
/// and the module's stop flag, and returns once the queue is closed and it is done (its duties:
/// the module docs above). Any `FnOnce` closure of that shape is one.
pub trait ThreadBody<J>: FnOnce(Receiver<J>, Arc<Stats>, Arc<AtomicBool>) + Send + 'static {}

impl<J, F> ThreadBody<J> for F where
    F: FnOnce(Receiver<J>, Arc<Stats>, Arc<AtomicBool>) + Send + 'static
{
}

struct Entry<J> {
    route: Arc<Route<J>>,
    thread: JoinHandle<()>,
}

/// Every destination's thread, started on first use and joined in [`Destinations::stop`].
pub struct Destinations<K, J> {
    proto: &'static str,
    thread_name: &'static str,
    capacity: usize,
    stopping: Arc<AtomicBool>,
    routes: HashMap<K, Entry<J>>,
    /// Threads of destinations whose last socket was freed: they finish their queue and end.
    retired: Vec<JoinHandle<()>>,
}

impl<K: Hash + Eq + Clone, J: Send + 'static> Destinations<K, J> {
    /// Destinations of transport `proto` (the prefix of its messages), each with a queue of
    /// `capacity` events and a thread named `thread_name`.
    pub fn new(proto: &'static str, thread_name: &'static str, capacity: usize) -> Self {
        Destinations {
            proto,
            thread_name,
            capacity: capacity.max(1),
            stopping: Arc::new(AtomicBool::new(false)),
            routes: HashMap::new(),
            retired: Vec::new(),
        }
    }

    /// The route of destination `key`, called `name` in messages. The first time, its thread
    /// starts: `body` gets the queue, the route's counters and the module's stop flag.
    pub fn route(
        &mut self,
        key: K,
        name: &str,
        body: impl ThreadBody<J>,
    ) -> Result<Arc<Route<J>>, String> {
        if let Some(e) = self.routes.get(&key) {
            return Ok(e.route.clone());
        }
        let (tx, rx) = crate::queue::bounded(self.capacity);
        let route = Arc::new(Route {
            tx,
            stats: Arc::new(Stats::default()),
            name: name.to_string(),
            proto: self.proto,
            capacity: self.capacity,
        });
        let (stats, stopping) = (route.stats.clone(), self.stopping.clone());
        let thread = std::thread::Builder::new()
            .name(self.thread_name.into())
            .spawn(move || body(rx, stats, stopping))
            .map_err(|e| format!("{}:{name}: cannot start sender thread: {e}", self.proto))?;
        self.routes.insert(
            key,
            Entry {
                route: route.clone(),
                thread,
            },
        );
        self.reap();
        Ok(route)
    }

    /// A socket let go of its route: when none uses it any more, its thread finishes what is
    /// queued and ends (joined later, never waited for here).
    pub fn release(&mut self, route: Arc<Route<J>>) {
        drop(route);
        let idle: Vec<K> = self
            .routes
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.route) == 1)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(e) = self.routes.remove(&k) {
                e.route.stats.closing.store(true, Ordering::Release);
                // The last sender: dropping it closes the queue.
                drop(e.route);
                self.retired.push(e.thread);
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) =
            self.retired.drain(..).partition(|t| t.is_finished());
        self.retired = running;
        for t in done {
            let _ = t.join();
        }
    }

    /// Set the stop flag, close every queue and join every thread; each thread first deals
    /// with what is queued (how is the transport's: a transport that retries stops retrying).
    /// Every socket must have let go of its route first (the daemon frees every socket before
    /// `destroy`): a queue closes when its last route is dropped.
    pub fn stop(&mut self) {
        stop_all(&self.stopping, &mut self.routes, &mut self.retired);
    }

    /// `(destination, counters)` for every live destination, sorted by name.
    pub fn stats(&self) -> Vec<(String, Arc<Stats>)> {
        let mut v: Vec<_> = self
            .routes
            .values()
            .map(|e| (e.route.name.clone(), e.route.stats.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The reply of a `<module>:stats` MI command: `{"Destinations": [{"destination", "queued",
    /// "delivered", "failed", "dropped", ["retries",] "connections"}, ...]}`, `retries` only
    /// for a transport that retries.
    pub fn mi_stats(&self, with_retries: bool) -> MiResult {
        let n = |a: &AtomicU64| json::Value::from(a.load(Ordering::Relaxed));
        let list: Vec<json::Value> = self
            .stats()
            .into_iter()
            .map(|(name, s)| {
                let mut o = json::Map::new();
                o.insert("destination".into(), name.into());
                o.insert("queued".into(), n(&s.queued));
                o.insert("delivered".into(), n(&s.delivered));
                o.insert("failed".into(), n(&s.failed));
                o.insert("dropped".into(), n(&s.dropped));
                if with_retries {
                    o.insert("retries".into(), n(&s.retries));
                }
                o.insert("connections".into(), n(&s.connections));
                json::Value::Object(o)
            })
            .collect();
        Ok(json::json!({ "Destinations": list }))
    }
}

impl<K, J> Drop for Destinations<K, J> {
    /// A safety net for a module that forgot [`Destinations::stop`] in `destroy`: its threads
    /// must not outlive the library.
    fn drop(&mut self) {
        stop_all(&self.stopping, &mut self.routes, &mut self.retired);
    }
}

/// [`Destinations::stop`], also for `drop` (which knows nothing of `K: Hash`).
fn stop_all<K, J>(
    stopping: &AtomicBool,
    routes: &mut HashMap<K, Entry<J>>,
    retired: &mut Vec<JoinHandle<()>>,
) {
    stopping.store(true, Ordering::Release);
    let mut threads = std::mem::take(retired);
    for (_, e) in routes.drain() {
        // The last sender: dropping it closes the queue.
        drop(e.route);
        threads.push(e.thread);
    }
    for t in threads {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(String, u32)>>>;

    /// A destination thread that records each job under its destination's name.
    fn recorder(
        seen: &Seen,
        name: &str,
    ) -> impl FnOnce(Receiver<u32>, Arc<Stats>, Arc<AtomicBool>) {
        let (seen, name) = (seen.clone(), name.to_string());
        move |rx, stats, _stopping| {
            while let Some(job) = rx.recv() {
                stats.queued.fetch_sub(1, Ordering::Relaxed);
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = seen.lock() {
                    s.push((name.clone(), job));
                }
            }
        }
    }

    #[test]
    fn sockets_share_a_destination_and_its_last_release_ends_the_thread() {
        let seen: Seen = Arc::default();
        let mut d: Destinations<&str, u32> = Destinations::new("t", "evid-test", 4);
        let a1 = d
            .route("a", "a:1", recorder(&seen, "a:1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let a2 = d
            .route("a", "a:1", recorder(&seen, "other"))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = d
            .route("b", "b:2", recorder(&seen, "b:2"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&a1, &a2));
        for (r, job) in [(&a1, 1), (&a2, 2), (&b, 3)] {
            r.admit(None, Delivery(0)).unwrap_or_else(|e| panic!("{e}"));
            r.send(job).unwrap_or_else(|e| panic!("{e}"));
        }
        let stats = a1.stats.clone();
        d.release(a1);
        assert!(!stats.closing.load(Ordering::Acquire), "a2 still names it");
        d.release(a2);
        assert!(stats.closing.load(Ordering::Acquire));
        assert_eq!(d.stats().len(), 1);
        d.release(b);
        d.stop();
        let mut got = seen.lock().map(|s| s.clone()).unwrap_or_default();
        got.sort();
        assert_eq!(
            got,
            [("a:1".into(), 1), ("a:1".into(), 2), ("b:2".into(), 3)]
        );
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_refuses_and_counts() {
        let mut d: Destinations<u8, u32> = Destinations::new("t", "evid-test", 2);
        let (hold, wait) = std::sync::mpsc::channel::<()>();
        let r = d
            .route(1, "h:1", move |rx: Receiver<u32>, _, _| {
                let _ = wait.recv();
                while rx.recv().is_some() {}
            })
            .unwrap_or_else(|e| panic!("{e}"));
        for job in 0..2 {
            r.send(job).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            r.admit(None, Delivery(0)),
            Err("t:h:1: queue full (2 events waiting), event dropped".into())
        );
        assert_eq!(
            r.send(9),
            Err("t:h:1: queue full (2 events waiting), event dropped".into())
        );
        assert_eq!(r.stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(r.stats.queued.load(Ordering::Relaxed), 2);
        let _ = hold.send(());
        let text = |with_retries| {
            let v = d.mi_stats(with_retries).unwrap_or_else(|e| panic!("{e:?}"));
            json::to_string(&v).unwrap_or_default()
        };
        assert_eq!(
            text(true),
            r#"{"Destinations":[{"destination":"h:1","queued":2,"delivered":0,"failed":0,"dropped":2,"retries":0,"connections":0}]}"#
        );
        assert_eq!(
            text(false),
            r#"{"Destinations":[{"destination":"h:1","queued":2,"delivered":0,"failed":0,"dropped":2,"connections":0}]}"#
        );
        drop(r);
        d.stop();
    }

    #[test]
    fn a_down_destination_is_suspended_and_an_ended_thread_refuses() {
        let fake = crate::testing::FakeHost::new();
        let mut d: Destinations<u8, u32> = Destinations::new("t", "evid-test", 1 << 16);
        // A body that ends at once, as after a failure to run: once it has, sends are refused.
        let r = d
            .route(1, "h:1", |_, _, _| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let stopped = Err("t:h:1: sender stopped, event dropped".to_string());
        let t0 = std::time::Instant::now();
        while r.send(1) != stopped && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(r.send(2), stopped);
        assert_eq!(r.admit(Some(fake.host()), Delivery(7)), Ok(()));
        assert!(fake.suspensions().is_empty());
        r.stats.down.store(true, Ordering::Relaxed);
        assert_eq!(r.admit(Some(fake.host()), Delivery(8)), Ok(()));
        assert_eq!(fake.suspensions(), [(8, DOWN_FOR.as_millis() as u32)]);
        drop(r);
        // No `stop`: dropping joins the threads as well.
        drop(d);
    }
}

//! The event registry and its subscribers.
//!
//! Events are append-only (ids are never reused). Each event's subscriber list is an immutable
//! snapshot behind an `ArcSwap`: a raise reads it without a lock; a subscribe, unsubscribe or
//! expiry builds a new list under the registry's write lock and swaps it in.

use crate::module::Module;
use arc_swap::ArcSwap;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// OpenSIPS's limit on event names (`MAX_EVENT_NAME`).
pub const MAX_EVENT_NAME: usize = 64;

/// `expire` value of a subscription that never expires.
pub const NEVER: i64 = -1;

/// Delivery counters of one subscriber.
///
/// The raiser and the module's thread each touch some of these for every event, on different
/// cores: the hot ones sit on cache lines of their own ([`Own`]), so a write on one side never
/// takes a line the other side reads or writes next. Sharing a line cost ~6-8% of the
/// loop -> flatstore rate (the raiser's `queued` beside the module's `delivered`).
#[derive(Default)]
pub struct SubscriberStats {
    /// Raises the transport accepted (or confirmed, for async transports). Module side.
    pub delivered: Own<AtomicU64>,
    /// Raises the transport refused, or async deliveries reported failed.
    pub failed: AtomicU64,
    /// Events never handed to the transport: its module's queue was full or stopped.
    pub dropped: AtomicU64,
    /// Events waiting in its module's queue for this subscriber (the module's queue is shared
    /// by all its subscribers; this is one subscriber's share of it).
    /// Raiser side (lowered by the module's thread once per run of jobs).
    pub queued: Own<AtomicU64>,
    /// The latest failure reason (copied only when it changes).
    pub last_error: Mutex<Option<String>>,
    /// Until this time (µs, the clock of `raised_at_us`) the host fails this subscriber's events
    /// itself: its transport said the destination is down (`delivery_suspend`). 0 = never.
    /// Read by the raiser for every event.
    pub(crate) suspended_until_us: Own<AtomicI64>,
    /// Events the host keeps for it while its transport holds it (`delivery_hold`).
    pub(crate) hold: crate::hold::Hold,
    /// Unix second of the last failure log line (failures are logged at most once a second).
    pub(crate) last_logged: AtomicI64,
    /// Unix second of the last drop log line (likewise).
    pub(crate) last_drop_logged: AtomicI64,
    /// Unix second of the last slow-delivery event (likewise).
    pub(crate) last_threshold: AtomicI64,
}

/// A value alone on its cache line (64 bytes, x86-64's and most arm64 cores' line).
#[derive(Default)]
#[repr(align(64))]
pub struct Own<T>(pub T);

impl<T> std::ops::Deref for Own<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One subscription of one socket to one event.
pub struct Subscriber {
    pub id: u64,
    pub event: u32,
    /// `proto:body` as printed by the transport.
    pub socket: String,
    pub module: Arc<Module>,
    /// Index of the transport in the module's declaration.
    pub transport: usize,
    /// Its transport declared `EVI_TRANSPORT_JSON`: the raiser builds the event's JSON payload
    /// before queueing it (see `Shared::raise`).
    pub(crate) wants_json: bool,
    /// The module's parsed socket; dereferenced only on the module's thread. Replaced when a
    /// reload parses the socket again in the new instance.
    pub(crate) handle: AtomicPtr<c_void>,
    /// Set on the module's thread when `free` ran; later raises to it are skipped.
    pub(crate) freed: AtomicBool,
    /// Seconds, or `NEVER`.
    pub expire: AtomicI64,
    pub subscribed_at: AtomicI64,
    pub stats: SubscriberStats,
    /// The MI policy the subscription was made under (`None`: trusted, from the config): a
    /// reload parses the socket again under it, so its files stay confined.
    pub(crate) mi_policy: Option<std::sync::Arc<crate::policy::Policy>>,
}

impl Subscriber {
    /// Seconds left, or `None` for a permanent subscription. OpenSIPS's rule: expired when
    /// `subscribed_at + expire < now`.
    pub fn ttl(&self, now: i64) -> Option<i64> {
        let e = self.expire.load(Ordering::Relaxed);
        (e != NEVER).then(|| self.subscribed_at.load(Ordering::Relaxed) + e - now)
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.ttl(now).is_some_and(|t| t < 0)
    }
}

/// One published event.
pub struct EventEntry {
    pub id: u32,
    /// Event names live as long as the daemon: events are never unpublished, and a `'static`
    /// name costs the raise path no reference count.
    pub name: &'static str,
    /// Newest first, as OpenSIPS delivers and lists them.
    pub subscribers: ArcSwap<Vec<Arc<Subscriber>>>,
    pub raised: AtomicU64,
}

#[derive(Default)]
pub struct Registry {
    events: ArcSwap<Vec<Arc<EventEntry>>>,
    /// Read on every script `raise_event` (a name): lock-free, with a hasher for short keys.
    /// Written only under `write`, by copy and swap (events are published rarely).
    by_name: ArcSwap<HashMap<&'static str, u32, BuildHasherDefault<NameHasher>>>,
    /// Serialises every change to events and subscriber lists (subscribe must parse and match
    /// on the module's thread and then insert, as one step).
    pub(crate) write: Mutex<()>,
    next_sub_id: AtomicU64,
    /// Subscriber id → subscriber, for async delivery reports (the delivery ticket carries the
    /// subscriber id, see `latency.rs`). Weak: a report for a subscriber that is gone is ignored.
    by_id: RwLock<HashMap<u64, Weak<Subscriber>>>,
    /// Tells this registry's entries in a thread's lookup cache from another's (tests and
    /// benches run several hosts in one process, one after another, possibly at one address).
    serial: Serial,
}

/// A number no other registry of this process has.
struct Serial(u64);

impl Default for Serial {
    fn default() -> Serial {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Serial(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

thread_local! {
    /// The last (registry, name, id) this thread looked up. A script raising one event in a
    /// loop skips the hash and the map's snapshot (~220 instructions a raise); events are never
    /// unpublished, so a hit stays right. A plain `Cell` of plain data: no destructor.
    static LAST_LOOKUP: Cell<(u64, &'static str, u32)> = const { Cell::new((0, "", 0)) };
    /// The last (registry, id, entry) this thread raised: a raise in a loop skips the events
    /// list's snapshot (an `ArcSwap` load, ~50 instructions a raise).
    static LAST_EVENT: Cell<(u64, u32, *const EventEntry)> =
        const { Cell::new((0, 0, std::ptr::null())) };
}

impl Registry {
    /// Publish `name` (idempotent) and return its id.
    pub fn publish(&self, name: &str) -> Result<u32, String> {
        validate_event_name(name)?;
        if let Some(id) = self.lookup(name) {
            return Ok(id);
        }
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.publish_locked(name)
    }

    pub(crate) fn publish_locked(&self, name: &str) -> Result<u32, String> {
        if let Some(id) = self.lookup(name) {
            return Ok(id);
        }
        let mut events = Vec::clone(&self.events.load());
        let id = u32::try_from(events.len()).map_err(|_| "too many events".to_string())?;
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        events.push(Arc::new(EventEntry {
            id,
            name,
            subscribers: ArcSwap::from_pointee(Vec::new()),
            raised: AtomicU64::new(0),
        }));
        self.events.store(Arc::new(events));
        let mut names = HashMap::clone(&self.by_name.load());
        names.insert(name, id);
        self.by_name.store(Arc::new(names));
        Ok(id)
    }

    pub fn lookup(&self, name: &str) -> Option<u32> {
        let (serial, last, id) = LAST_LOOKUP.get();
        if serial == self.serial.0 && last == name {
            return Some(id);
        }
        let (&name, &id) = self.by_name.load().get_key_value(name)?;
        LAST_LOOKUP.set((self.serial.0, name, id));
        Some(id)
    }

    pub fn get(&self, id: u32) -> Option<Arc<EventEntry>> {
        self.events.load().get(id as usize).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<EventEntry>> {
        self.lookup(name).and_then(|id| self.get(id))
    }

    /// Every event, in id order.
    pub fn events(&self) -> Arc<Vec<Arc<EventEntry>>> {
        self.events.load_full()
    }

    /// Run `f` on event `id` without taking a reference (the raise path).
    pub(crate) fn with_event<R>(&self, id: u32, f: impl FnOnce(&EventEntry) -> R) -> Option<R> {
        let (serial, last, entry) = LAST_EVENT.get();
        if serial == self.serial.0 && last == id {
            // SAFETY: the pointer came from this registry's events list (same serial), whose
            // entries are never removed (events are never unpublished: `publish_locked` only
            // appends, to a copy holding the same `Arc`s), so the entry lives as long as the
            // registry, which `&self` keeps alive for this call.
            return Some(f(unsafe { &*entry }));
        }
        let events = self.events.load();
        let e = events.get(id as usize)?;
        LAST_EVENT.set((self.serial.0, id, Arc::as_ptr(e)));
        Some(f(e))
    }

    pub(crate) fn next_subscriber_id(&self) -> u64 {
        self.next_sub_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Remember a new subscriber for [`Registry::subscriber`].
    pub(crate) fn track(&self, sub: &Arc<Subscriber>) {
        let mut m = self.by_id.write().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 1024 && m.len().is_power_of_two() {
            m.retain(|_, w| w.strong_count() > 0);
        }
        m.insert(sub.id, Arc::downgrade(sub));
    }

    /// A subscriber by id, while anything still holds it.
    pub fn subscriber(&self, id: u64) -> Option<Arc<Subscriber>> {
        let m = self.by_id.read().unwrap_or_else(|p| p.into_inner());
        m.get(&id).and_then(Weak::upgrade)
    }
}

/// FNV-1a: event names are at most 64 bytes and chosen by the config's author, not by clients
/// (MI can only look up names, never add them), so SipHash's flooding resistance buys nothing
/// on a lookup made per raise.
#[derive(Default)]
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Event names: 1..=64 bytes of printable ASCII without spaces (OpenSIPS takes any bytes; names
/// end up in JSON, file lines and MI replies, so we keep them plain).
pub fn validate_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty event name".into());
    }
    if name.len() > MAX_EVENT_NAME {
        return Err(format!(
            "event name {name:?} is longer than {MAX_EVENT_NAME} bytes"
        ));
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "event name {name:?} contains {c:?}; use letters, digits and _"
        ));
    }
    Ok(())
}

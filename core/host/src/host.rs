//! The host: owns the registry, the running modules, the MI command table and the timer thread.

use crate::clock::Clock;
use crate::dispatch::Raised;
use crate::event::ParamRef;
use crate::loader::Library;
use crate::mi::MiTable;
use crate::modparam::ModparamValue;
use crate::module::{Module, SocketPtr};
use crate::registry::{Registry, Subscriber, NEVER};
use evi_abi::{EVI_TRANSPORT_EXPIRES, EVI_TRANSPORT_JSON};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Core events, published first, in OpenSIPS's order (reference §1.1), so ids match.
pub const CORE_EVENTS: &[&str] = &[
    "E_CORE_SR_STATUS_CHANGED",
    "E_CORE_THRESHOLD",
    "E_CORE_SHM_THRESHOLD",
    "E_CORE_PKG_THRESHOLD",
    "E_CORE_PROC_AUTO_SCALE",
    "E_CORE_TCP_DISCONNECT",
];

/// Default `evi_raise_wait`: a script or MI raiser waits up to this long for room.
pub const DEFAULT_RAISE_WAIT_MS: u64 = 100;

/// Default capacity of each module's queue, in jobs.
pub const DEFAULT_QUEUE_SIZE: usize = 65536;

pub(crate) struct Shared {
    pub registry: Registry,
    pub modules: RwLock<Vec<Arc<Module>>>,
    /// proto → (module, transport index).
    pub protos: RwLock<HashMap<String, (Arc<Module>, usize)>>,
    pub mi: MiTable,
    pub clock: Clock,
    pub started: SystemTime,
    pub stopping: AtomicBool,
    pub queue_size: usize,
    /// Set once start-up (modules, `startup_route`) is done; MI requests wait for it, so a
    /// client never sees a half-configured daemon.
    pub ready: (std::sync::Mutex<bool>, std::sync::Condvar),
    /// `ready`'s flag, also kept outside the mutex: every MI request checks readiness, and
    /// locking per request made the connection threads all write the mutex's word.
    ready_unlocked: std::sync::atomic::AtomicBool,
    /// What MI clients may subscribe, and MI request limits. Read on every MI request: an
    /// `ArcSwap`, not a lock, so that connection threads do not all write one lock word.
    pub policy: arc_swap::ArcSwap<crate::policy::Policy>,
    /// How long a raiser that is not a module thread waits for room in a full module queue
    /// (`evi_raise_wait`, ms; 0 = never wait).
    pub raise_wait_ms: std::sync::atomic::AtomicU64,
    /// `exec_delivery_threshold`, `evi_queue_threshold`.
    pub(crate) thresholds: crate::thresholds::Thresholds,
    /// Sockets modules raise to directly (event_virtual's members).
    pub(crate) members: crate::members::Members,
    /// `evid --dev`: modules may be reloaded.
    pub dev: AtomicBool,
    /// The config's script, for `event_route` runs (set once, before modules start).
    pub script: std::sync::OnceLock<ScriptState>,
}

pub(crate) struct ScriptState {
    pub script: Arc<evi_script::Script>,
    pub max_while_loops: Option<u64>,
}

/// The evid host. Dropping it without [`Host::shutdown`] stops it too.
pub struct Host {
    pub(crate) shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    timer_routes: Option<JoinHandle<()>>,
    pub(crate) watcher: Option<JoinHandle<()>>,
}

/// Why a subscribe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    UnknownEvent(String),
    UnknownProto(String),
    BadSocket(String),
    Internal(String),
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscribeError::UnknownEvent(e) => write!(f, "unknown event {e}"),
            SubscribeError::UnknownProto(s) => write!(f, "{s}"),
            SubscribeError::BadSocket(s) | SubscribeError::Internal(s) => f.write_str(s),
        }
    }
}

/// What a subscribe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    Added,
    Refreshed,
    Removed,
    /// An unsubscribe (expire 0) that matched nothing.
    NotFound,
}

impl Host {
    pub fn new(queue_size: usize) -> Host {
        let shared = Arc::new(Shared {
            registry: Registry::default(),
            modules: RwLock::new(Vec::new()),
            protos: RwLock::new(HashMap::new()),
            mi: MiTable::default(),
            clock: Clock::default(),
            started: SystemTime::now(),
            stopping: AtomicBool::new(false),
            queue_size: queue_size.max(1),
            ready: Default::default(),
            ready_unlocked: Default::default(),
            script: Default::default(),
            dev: AtomicBool::new(false),
            members: Default::default(),
            thresholds: Default::default(),
            policy: Default::default(),
            raise_wait_ms: std::sync::atomic::AtomicU64::new(DEFAULT_RAISE_WAIT_MS),
        });
        for e in CORE_EVENTS {
            let _ = shared.registry.publish(e);
        }
        crate::mi::core::register(&shared.mi);
        let weak = Arc::downgrade(&shared);
        let timer = std::thread::Builder::new()
            .name("evid:timer".into())
            .spawn(move || timer(weak))
            .ok();
        Host {
            shared,
            timer,
            timer_routes: None,
            watcher: None,
        }
    }

    /// Start a checked library as a module: its thread, `init`, its protos, events and MI commands.
    pub fn start_module(
        &self,
        lib: Library,
        params: &[(String, ModparamValue)],
    ) -> Result<Arc<Module>, String> {
        let info = lib.info();
        {
            let protos = self.shared.protos.read().unwrap_or_else(|p| p.into_inner());
            for t in &info.transports {
                if let Some((m, _)) = protos.get(&t.proto) {
                    return Err(format!(
                        "module {}: proto {}: is already provided by module {}",
                        info.name, t.proto, m.name
                    ));
                }
            }
        }
        if self.module(&info.name).is_some() {
            return Err(format!("module {} is already loaded", info.name));
        }
        for e in &info.events {
            self.shared
                .registry
                .publish(e)
                .map_err(|why| format!("module {}: {why}", info.name))?;
        }
        let module = Module::start(
            lib,
            params,
            Arc::downgrade(&self.shared),
            self.shared.queue_size,
        )
        .map_err(|why| format!("module {}: init failed: {why}", info.name))?;
        let mut protos = self
            .shared
            .protos
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for (i, t) in info.transports.iter().enumerate() {
            protos.insert(t.proto.clone(), (module.clone(), i));
        }
        drop(protos);
        self.shared.mi.set_module_commands(&module, &info.mi_cmds);
        self.shared
            .modules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(module.clone());
        log::info!(
            "loaded module {} {} from {}",
            info.name,
            info.version,
            module.path().display()
        );
        Ok(module)
    }

    pub fn module(&self, name: &str) -> Option<Arc<Module>> {
        self.shared
            .modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.name == name)
            .cloned()
    }

    pub fn modules(&self) -> Vec<Arc<Module>> {
        self.shared
            .modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Publish an event name (idempotent).
    pub fn publish(&self, name: &str) -> Result<u32, String> {
        self.shared.registry.publish(name)
    }

    /// Subscribe `socket` to `event`. `expire`: `None` = permanent for a new subscription and
    /// unchanged for a refreshed one; `Some(0)` = unsubscribe; `Some(n)` = n seconds.
    pub fn subscribe(
        &self,
        event: &str,
        socket: &str,
        expire: Option<i64>,
    ) -> Result<Subscribed, SubscribeError> {
        self.shared.subscribe(event, socket, expire)
    }

    /// Raise an event by name to its subscribers. Never blocks.
    pub fn raise(&self, event: &str, params: &[ParamRef<'_>]) -> Result<Raised, String> {
        let id = self
            .shared
            .registry
            .lookup(event)
            .ok_or_else(|| format!("unknown event {event}"))?;
        self.shared.raise(id, params)
    }

    /// Raise by id (for raisers that looked the id up once).
    pub fn raise_id(&self, id: u32, params: &[ParamRef<'_>]) -> Result<Raised, String> {
        self.shared.raise(id, params)
    }

    /// Set `exec_delivery_threshold` (µs) and `evi_queue_threshold` (%); 0 turns one off. The
    /// queue alarm's event is published when its threshold is set.
    pub fn set_thresholds(&self, delivery_us: u64, queue_pct: u64) -> Result<(), String> {
        self.shared
            .thresholds
            .delivery_us
            .store(delivery_us, Ordering::Relaxed);
        self.shared
            .thresholds
            .queue_pct
            .store(queue_pct, Ordering::Relaxed);
        if queue_pct > 0 {
            self.publish(crate::thresholds::QUEUE_EVENT)?;
        }
        Ok(())
    }

    /// Set `evi_raise_wait` (ms; 0 = raisers never wait).
    pub fn set_raise_wait_ms(&self, ms: u64) {
        self.shared.raise_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// Set the MI subscription policy and request limits.
    pub fn set_policy(&self, policy: crate::policy::Policy) {
        self.shared.policy.store(Arc::new(policy));
    }

    /// Give the host the config's script (once): `event_route` blocks run from it.
    pub fn set_script(&self, script: Arc<evi_script::Script>, max_while_loops: Option<u64>) {
        let _ = self.shared.script.set(ScriptState {
            script,
            max_while_loops,
        });
    }

    /// Run the script's `startup_route`, if any.
    pub fn run_startup(&self) -> Result<(), evi_script::Diagnostic> {
        self.shared
            .with_interpreter(|i| i.run_startup())
            .unwrap_or(Ok(()))
    }

    /// Run the script's `timer_route[name, secs]` blocks every `secs` seconds, on one thread,
    /// until the host stops. A route that fails is logged and runs again next time.
    pub fn start_timer_routes(&mut self) {
        let Some(state) = self.shared.script.get() else {
            return;
        };
        let routes = state.script.timer_routes();
        if routes.is_empty() || self.timer_routes.is_some() {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        self.timer_routes = std::thread::Builder::new()
            .name("evid:timer_route".into())
            .spawn(move || crate::script_host::run_timer_routes(weak, routes))
            .map_err(|e| log::error!("cannot start the timer_route thread: {e}"))
            .ok();
    }

    /// SIGHUP: run every module's `MODULE:reopen` MI command (flatstore reopens its files after
    /// a logrotate), logging each outcome.
    pub fn reopen(&self) {
        for name in self
            .shared
            .mi
            .names()
            .into_iter()
            .filter(|n| n.ends_with(":reopen"))
        {
            let req = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{name}"}}"#);
            let reply = crate::mi::execute(&self.shared, req.as_bytes()).unwrap_or_default();
            log::info!("{name}: {}", String::from_utf8_lossy(&reply));
        }
    }

    /// Start-up is complete: let MI requests through.
    pub fn set_ready(&self) {
        let (lock, cv) = &self.shared.ready;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.ready_unlocked.store(true, Ordering::Release);
        cv.notify_all();
    }

    /// Execute one JSON-RPC MI request; `None` for a notification.
    pub fn mi_execute(&self, request: &[u8]) -> Option<Vec<u8>> {
        crate::mi::execute(&self.shared, request)
    }

    /// Wait until every module's queue is empty (tests and benchmarks; not a delivery guarantee
    /// for async transports).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let busy = self.modules().iter().any(|m| m.queue_len() > 0);
            if !busy {
                // One more round trip through each module: the last batch is flushed.
                for m in self.modules() {
                    let _ = m.call(|_| ());
                }
                // Holds count their push-outs in batches: bring every count up to date.
                crate::hold::settle_all(&self.shared.registry.events());
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stop cleanly: MI and other service modules first (no new requests), then every
    /// subscription is released after the events queued before it, then each transport module
    /// drains its queue, flushes and is destroyed. Libraries are never unloaded.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.ready.1.notify_all();
        for t in [self.timer.take(), self.timer_routes.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        let modules = std::mem::take(
            &mut *self
                .shared
                .modules
                .write()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for m in modules
            .iter()
            .rev()
            .filter(|m| m.info().transports.is_empty())
        {
            m.stop();
        }
        self.shared.close_all_members();
        {
            let _w = self
                .shared
                .registry
                .write
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for entry in self.shared.registry.events().iter() {
                let old = entry.subscribers.swap(Arc::new(Vec::new()));
                for sub in old.iter() {
                    free_later(sub.clone());
                }
            }
        }
        for m in modules
            .iter()
            .rev()
            .filter(|m| !m.info().transports.is_empty())
        {
            m.stop();
        }
        self.shared
            .protos
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.shared.mi.clear_module_commands();
        // Production never unloads a library: a module's leftovers (thread-locals, atexit
        // handlers) must not outlive its code.
        for m in modules {
            std::mem::forget(m);
        }
        log::info!("stopped");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Release a removed subscriber's socket on its module's thread, after the raises queued before.
pub(crate) fn free_later(sub: Arc<Subscriber>) {
    // What the host held for it goes first, like every event queued before the free.
    crate::hold::close(&sub);
    let module = sub.module.clone();
    module.post(move |inst| {
        if !sub.freed.swap(true, Ordering::AcqRel) {
            inst.free(sub.transport, SocketPtr(sub.handle.load(Ordering::Acquire)));
        }
    });
}

impl Shared {
    /// The module and transport index serving `proto`.
    pub(crate) fn transport(&self, proto: &str) -> Option<(Arc<Module>, usize)> {
        self.protos
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(proto)
            .cloned()
    }

    /// Wait (at most `timeout`) until start-up is done; false if it is not, or the host stops.
    pub(crate) fn wait_ready(&self, timeout: Duration) -> bool {
        if self.ready_unlocked.load(Ordering::Acquire) {
            return !self.stopping.load(Ordering::Relaxed);
        }
        let (lock, cv) = &self.ready;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |ready| {
                !*ready && !self.stopping.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|p| p.into_inner());
        *guard && !self.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn subscribe(
        &self,
        event: &str,
        socket: &str,
        expire: Option<i64>,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_as(event, socket, expire, None)
    }

    /// [`Self::subscribe`] for an MI client held to `mi_policy`: the socket's destinations, and
    /// every socket its transport opens while parsing it, are checked against the policy.
    pub(crate) fn subscribe_as(
        &self,
        event: &str,
        socket: &str,
        expire: Option<i64>,
        mi_policy: Option<Arc<crate::policy::Policy>>,
    ) -> Result<Subscribed, SubscribeError> {
        let entry = self
            .registry
            .by_name(event)
            .ok_or_else(|| SubscribeError::UnknownEvent(event.to_string()))?;
        let (proto, body) = socket.split_once(':').unwrap_or((socket, ""));
        let (module, tidx) = self.transport(proto).ok_or_else(|| {
            SubscribeError::UnknownProto(format!("unknown proto {proto:?} in socket {socket:?}"))
        })?;
        let _w = self
            .registry
            .write
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = entry.subscribers.load_full();
        let candidates = same_transport(&current, &module, tidx);
        let body = body.to_string();
        let unsubscribe = expire == Some(0);
        let policy = mi_policy.clone();
        let outcome = module
            .call(move |inst| -> Result<Parsed, String> {
                let new = inst.parse_for(tidx, &body, policy.as_ref())?;
                if let Some(&(id, _)) = candidates.iter().find(|(_, h)| inst.matches(tidx, new, *h))
                {
                    inst.free(tidx, new);
                    return Ok(Parsed::Matches(id));
                }
                if unsubscribe {
                    inst.free(tidx, new);
                    return Ok(Parsed::Nothing);
                }
                Ok(Parsed::New(new, inst.print(tidx, new)))
            })
            .map_err(SubscribeError::Internal)?
            .map_err(|why| SubscribeError::BadSocket(format!("{proto}: {why}")))?;
        let now = self.clock.now();
        match outcome {
            Parsed::Nothing => Ok(Subscribed::NotFound),
            Parsed::Matches(id) => {
                let Some(sub) = current.iter().find(|s| s.id == id).cloned() else {
                    return Err(SubscribeError::Internal("subscriber vanished".into()));
                };
                if unsubscribe {
                    let rest: Vec<_> = current.iter().filter(|s| s.id != id).cloned().collect();
                    entry.subscribers.store(Arc::new(rest));
                    free_later(sub);
                    return Ok(Subscribed::Removed);
                }
                sub.subscribed_at.store(now, Ordering::Relaxed);
                if let Some(e) = expire {
                    sub.expire.store(e, Ordering::Relaxed);
                }
                Ok(Subscribed::Refreshed)
            }
            Parsed::New(handle, printed) => {
                let flags = module.info().transports.get(tidx).map_or(0, |t| t.flags);
                let expires = flags & EVI_TRANSPORT_EXPIRES != 0;
                let sub = Arc::new(Subscriber {
                    id: self.registry.next_subscriber_id(),
                    event: entry.id,
                    socket: format!("{proto}:{printed}"),
                    module: module.clone(),
                    transport: tidx,
                    wants_json: flags & EVI_TRANSPORT_JSON != 0,
                    handle: std::sync::atomic::AtomicPtr::new(handle.0),
                    freed: AtomicBool::new(false),
                    expire: AtomicI64::new(match expire {
                        Some(e) if expires => e,
                        _ => NEVER,
                    }),
                    subscribed_at: AtomicI64::new(now),
                    stats: Default::default(),
                    mi_policy,
                });
                self.registry.track(&sub);
                let mut list = Vec::with_capacity(current.len() + 1);
                list.push(sub);
                list.extend(current.iter().cloned());
                entry.subscribers.store(Arc::new(list));
                Ok(Subscribed::Added)
            }
        }
    }

    /// The subscriber of `entry` that `socket` matches: the same text, else parsed and compared
    /// by its transport. For an MI client the parse is held to `mi_policy` like a subscription's
    /// (a transport may open files while parsing: a lookup must not create one outside
    /// `mi_flatstore_dir`).
    pub(crate) fn find_subscriber(
        &self,
        entry: &crate::registry::EventEntry,
        socket: &str,
        mi_policy: Option<Arc<crate::policy::Policy>>,
    ) -> Option<Arc<Subscriber>> {
        if let Some(same) = entry.subscribers.load().iter().find(|s| s.socket == socket) {
            return Some(same.clone());
        }
        let (proto, body) = socket.split_once(':').unwrap_or((socket, ""));
        let (module, tidx) = self.transport(proto)?;
        // Under the write lock: candidates' sockets cannot be freed while we compare.
        let _w = self
            .registry
            .write
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = entry.subscribers.load_full();
        let candidates = same_transport(&current, &module, tidx);
        let body = body.to_string();
        let id = module
            .call(move |inst| {
                let new = inst.parse_for(tidx, &body, mi_policy.as_ref()).ok()?;
                let found = candidates
                    .iter()
                    .find(|(_, h)| inst.matches(tidx, new, *h))
                    .map(|(id, _)| *id);
                inst.free(tidx, new);
                found
            })
            .ok()??;
        current.iter().find(|s| s.id == id).cloned()
    }

    /// Remove every expired subscriber now.
    fn expire(&self) {
        let now = self.clock.now();
        let events = self.registry.events();
        let stale = events
            .iter()
            .any(|e| e.subscribers.load().iter().any(|s| s.is_expired(now)));
        if !stale {
            return;
        }
        let _w = self
            .registry
            .write
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for entry in events.iter() {
            let current = entry.subscribers.load_full();
            if !current.iter().any(|s| s.is_expired(now)) {
                continue;
            }
            let (gone, keep): (Vec<_>, Vec<_>) =
                current.iter().cloned().partition(|s| s.is_expired(now));
            entry.subscribers.store(Arc::new(keep));
            for sub in gone {
                log::info!("subscription of {} to {} expired", sub.socket, entry.name);
                free_later(sub);
            }
        }
    }
}

/// The (id, socket) of the subscribers in `list` that belong to transport `tidx` of `module`:
/// the only ones a new socket of that transport can match.
fn same_transport(
    list: &[Arc<Subscriber>],
    module: &Arc<Module>,
    tidx: usize,
) -> Vec<(u64, SocketPtr)> {
    list.iter()
        .filter(|s| Arc::ptr_eq(&s.module, module) && s.transport == tidx)
        .map(|s| (s.id, SocketPtr(s.handle.load(Ordering::Acquire))))
        .collect()
}

enum Parsed {
    New(SocketPtr, String),
    Matches(u64),
    Nothing,
}

fn timer(shared: Weak<Shared>) {
    let mut ticks = 0u64;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(s) = shared.upgrade() else { return };
        if s.stopping.load(Ordering::Relaxed) {
            return;
        }
        s.clock.tick();
        s.check_queues();
        ticks += 1;
        if ticks.is_multiple_of(5) {
            s.expire();
        }
    }
}

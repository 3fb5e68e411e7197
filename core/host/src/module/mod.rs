//! A running module and the host-owned thread that makes every call into it.
//!
//! The thread is fed by one bounded queue: raises (dropped and counted when the queue is full,
//! so a raiser never waits) and control calls (subscribe-time parse/match/print, free, MI
//! commands, stop), which wait for room. One queue keeps a subscriber's events in raise order and
//! lets a socket be freed only after every raise queued before it. The queue belongs to the
//! `Module`, not to an instance: in development a new instance of a rebuilt library takes it over
//! (`replace`), so events raised during a reload wait in it.

mod instance;
mod thread;

pub(crate) use instance::{Instance, SocketPtr};

use crate::event::RaisedEvent;
use crate::host::Shared;
use crate::loader::{Library, ModuleInfo};
use crate::modparam::{self, ModparamValue};
use crate::registry::Subscriber;
use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// How long a control call waits for the module's thread.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Job {
    /// `member`: a raise another module made with `socket_raise`; its outcome goes back to it.
    Raise {
        event: Arc<RaisedEvent>,
        sub: Arc<Subscriber>,
        member: Option<Box<MemberRaise>>,
    },
    /// Events the host held for `sub` (see `hold.rs`), released in raise order.
    Held {
        events: std::collections::VecDeque<Arc<RaisedEvent>>,
        sub: Arc<Subscriber>,
    },
    Call(Box<dyn FnOnce(&Instance) + Send>),
    /// Flush, destroy, end the thread (shutdown; sockets were freed before).
    Stop,
    /// Free these sockets, flush, destroy, end the thread (a reload follows).
    Retire(Vec<Arc<Subscriber>>),
    /// Nothing: wakes an idle thread so it takes the member outcomes waiting for it.
    Wake,
}

/// The outcome of a `socket_raise`, for the owner module: token, success, message.
pub(crate) type Status = (u64, bool, Vec<u8>);

/// What a module thread reads: its bounded job queue, and the unbounded queue of member
/// outcomes (bounded in practice by the raises in flight). Outcomes never wait for room in a
/// full job queue, so neither of two modules raising to each other can stall the other.
#[derive(Clone)]
pub(crate) struct Inbox {
    pub jobs: evi_queue::Receiver<Job>,
    pub statuses: Receiver<Status>,
}

/// Who gets the outcome of a `socket_raise`: the owner module, its token, and the delivery id
/// the transport reports an async outcome with.
pub(crate) struct MemberRaise {
    pub owner: Arc<Module>,
    pub token: u64,
    pub delivery: u64,
}

/// The current instance: its library and its thread.
struct Life {
    lib: Option<Library>,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
}

/// A loaded, initialised module.
pub struct Module {
    pub name: String,
    info: ArcSwap<ModuleInfo>,
    /// The file `loadmodule` named (a reload copies it; see `reload.rs`).
    path: PathBuf,
    /// The modparams as the config set them; checked again against a reloaded version.
    pub(crate) config_params: Vec<(String, ModparamValue)>,
    jobs: evi_queue::Sender<Job>,
    rx: Inbox,
    statuses: Sender<Status>,
    life: Mutex<Life>,
    /// Raises lost because the queue was full or the module had stopped.
    pub queue_drops: AtomicU64,
    /// Set by `stop`: its queue is served no more.
    stopped: std::sync::atomic::AtomicBool,
    /// Deliveries its transports reported done, and failed (all subscribers, ever).
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Raise-to-outcome time of its deliveries (see `latency.rs`).
    pub latency: crate::latency::Histogram,
    /// Whether the queue is above `evi_queue_threshold` (see `thresholds.rs`).
    pub(crate) queue_alarm: crate::thresholds::QueueAlarm,
    queue_size: usize,
    // Stable for every instance: init gets `api`, whose ctx points to `ctx`.
    api: Box<evi_abi::EviHost>,
    ctx: Box<crate::host_api::ModuleCtx>,
}

impl Module {
    /// Start the module's thread and run `init` on it with the config's params (defaults filled in).
    pub(crate) fn start(
        lib: Library,
        config_params: &[(String, ModparamValue)],
        shared: Weak<Shared>,
        queue_size: usize,
    ) -> Result<Arc<Module>, String> {
        let info = lib.info();
        let name = info.name.clone();
        let ctx = Box::new(crate::host_api::ModuleCtx {
            shared,
            module: name.clone(),
        });
        let api = Box::new(crate::host_api::table(&*ctx as *const _ as *mut c_void));
        // Memory follows the backlog: an idle module keeps no preallocated slots resident.
        let (jobs, job_rx) = evi_queue::bounded(queue_size);
        let (statuses, status_rx) = crossbeam_channel::unbounded::<Status>();
        let rx = Inbox {
            jobs: job_rx,
            statuses: status_rx,
        };
        let params = modparam::resolve(&info, config_params);
        let (thread, id) = thread::spawn(
            &name,
            &lib,
            &*api,
            params,
            rx.clone(),
            Vec::new(),
            ctx.shared.clone(),
        )?;
        Ok(Arc::new(Module {
            name,
            path: lib.origin.clone(),
            info: ArcSwap::from_pointee(info),
            config_params: config_params.to_vec(),
            jobs,
            rx,
            statuses,
            life: Mutex::new(Life {
                lib: Some(lib),
                thread: Some(thread),
                thread_id: Some(id),
            }),
            queue_drops: AtomicU64::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Default::default(),
            queue_alarm: Default::default(),
            queue_size,
            api,
            ctx,
        }))
    }

    /// What the running version's declaration says.
    pub fn info(&self) -> Arc<ModuleInfo> {
        self.info.load_full()
    }

    /// The file `loadmodule` named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size and time of the file the running development copy was made from.
    pub(crate) fn origin_stamp(&self) -> Option<(u64, std::time::SystemTime)> {
        self.life().lib.as_ref().and_then(|l| l.origin_stamp)
    }

    /// Jobs waiting in the module's queue.
    pub fn queue_len(&self) -> usize {
        self.jobs.len()
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_size
    }

    fn life(&self) -> std::sync::MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_own_thread(&self) -> bool {
        self.life().thread_id == Some(std::thread::current().id())
    }

    /// Queue one raise; never blocks. Returns false (and counts it) when the queue is full.
    pub(crate) fn enqueue_raise(&self, event: Arc<RaisedEvent>, sub: Arc<Subscriber>) -> bool {
        self.enqueue(event, sub, None)
    }

    /// Queue the events the host held for `sub`, as one job past the queue's bound: their
    /// number was bounded by the hold, and none may be lost to a queue the release fills.
    pub(crate) fn enqueue_held(
        &self,
        events: std::collections::VecDeque<Arc<RaisedEvent>>,
        sub: Arc<Subscriber>,
    ) {
        let n = events.len() as u64;
        // The module keeps a receiver of its own queue: a send succeeds even when no thread
        // will serve it any more (stopped).
        let stopped = self.stopped.load(Ordering::Acquire);
        if stopped
            || self
                .jobs
                .send_always(Job::Held {
                    events,
                    sub: sub.clone(),
                })
                .is_err()
        {
            sub.stats.dropped.fetch_add(n, Ordering::Relaxed);
            self.queue_drops.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Queue a raise that another module made (see `MemberRaise`); never blocks.
    pub(crate) fn enqueue_member_raise(
        &self,
        event: Arc<RaisedEvent>,
        sub: Arc<Subscriber>,
        member: MemberRaise,
    ) -> bool {
        self.enqueue(event, sub, Some(Box::new(member)))
    }

    fn enqueue(
        &self,
        event: Arc<RaisedEvent>,
        sub: Arc<Subscriber>,
        member: Option<Box<MemberRaise>>,
    ) -> bool {
        // Counted before the send: the module thread may take the job before try_send returns.
        sub.stats.queued.fetch_add(1, Ordering::Relaxed);
        let job = Job::Raise { event, sub, member };
        let refused = match self.jobs.try_send(job) {
            Ok(()) => return true,
            // Backpressure for raisers that may wait (script, MI): a bounded wait for room.
            // A module thread never waits: two modules waiting on each other's full queues
            // would stall both.
            Err(job) if !thread::on_module_thread() && self.raise_wait() > Duration::ZERO => {
                match self.jobs.send_timeout(job, self.raise_wait()) {
                    Ok(()) => return true,
                    Err(j) => j,
                }
            }
            Err(j) => j,
        };
        match refused {
            Job::Raise { sub, .. } => {
                sub.stats.queued.fetch_sub(1, Ordering::Relaxed);
                let n = sub.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.queue_drops.fetch_add(1, Ordering::Relaxed);
                let now = crate::clock::unix_now();
                if sub.stats.last_drop_logged.swap(now, Ordering::Relaxed) != now {
                    log::warn!(
                        "module {}: queue full ({} jobs), dropping events for {} ({n} so far)",
                        self.name,
                        self.queue_size,
                        sub.socket
                    );
                }
                false
            }
            _ => false,
        }
    }

    /// `evi_raise_wait`, read only when a queue is full.
    fn raise_wait(&self) -> Duration {
        self.ctx.shared.upgrade().map_or(Duration::ZERO, |s| {
            Duration::from_millis(s.raise_wait_ms.load(Ordering::Relaxed))
        })
    }

    /// Run `f` on the module's thread and wait for its result.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Instance) -> R + Send + 'static,
    ) -> Result<R, String> {
        if self.on_own_thread() {
            return Err(format!(
                "module {} called itself through the host",
                self.name
            ));
        }
        let (tx, rx) = bounded(1);
        let job = Job::Call(Box::new(move |inst| {
            let _ = tx.send(f(inst));
        }));
        self.jobs.send_timeout(job, CALL_TIMEOUT).map_err(|_| {
            format!(
                "module {} is not answering (queue full or stopped)",
                self.name
            )
        })?;
        self.jobs.wake();
        rx.recv_timeout(CALL_TIMEOUT).map_err(|_| {
            format!(
                "module {} did not answer within {CALL_TIMEOUT:?}",
                self.name
            )
        })
    }

    /// Queue a control job without waiting for it (used to free sockets).
    pub(crate) fn post(&self, f: impl FnOnce(&Instance) + Send + 'static) {
        let _ = self.jobs.send_timeout(Job::Call(Box::new(f)), CALL_TIMEOUT);
        self.jobs.wake();
    }

    /// Deliver a `socket_raise` outcome to this (owner) module, on its thread.
    pub(crate) fn post_member_status(&self, token: u64, ok: bool, msg: Vec<u8>) {
        if self.statuses.send((token, ok, msg)).is_ok() {
            // A full queue means the thread is busy and takes the outcome after its batch.
            let _ = self.jobs.try_send(Job::Wake);
            self.jobs.wake();
        }
    }

    /// Drain the queue, flush, `destroy`, join the thread. Idempotent. The library stays
    /// loaded: production never unloads one.
    pub(crate) fn stop(&self) {
        if self.on_own_thread() {
            return;
        }
        let Some(t) = self.life().thread.take() else {
            return;
        };
        self.stopped.store(true, Ordering::Release);
        self.end(t, Job::Stop);
        // Never unloaded (see `Host::shutdown`).
        std::mem::forget(self.life().lib.take());
    }

    /// Send `last` to the thread and join it.
    fn end(&self, t: JoinHandle<()>, last: Job) {
        if self.jobs.send_always(last).is_err() {
            log::warn!("module {}: its thread was already gone", self.name);
        }
        if t.join().is_err() {
            log::error!("module {}: its thread panicked while stopping", self.name);
        }
    }

    /// Replace the running instance by one of `lib` (a reload): the old instance frees `subs`'
    /// sockets after the events queued before, and is destroyed; the new one parses them again
    /// and serves the same queue. If the new one fails to start, the old library is started
    /// again and the error returned. The caller holds the registry's write lock.
    pub(crate) fn replace(
        &self,
        lib: Library,
        subs: Vec<Arc<Subscriber>>,
    ) -> Result<Library, String> {
        let mut life = self.life();
        let (Some(old_thread), Some(old_lib)) = (life.thread.take(), life.lib.take()) else {
            return Err(format!("module {} is not running", self.name));
        };
        drop(life);
        self.end(old_thread, Job::Retire(subs.clone()));
        let info = lib.info();
        let params = modparam::resolve(&info, &self.config_params);
        match thread::spawn(
            &self.name,
            &lib,
            &*self.api,
            params,
            self.rx.clone(),
            subs.clone(),
            self.ctx.shared.clone(),
        ) {
            Ok((t, id)) => {
                *self.life() = Life {
                    lib: Some(lib),
                    thread: Some(t),
                    thread_id: Some(id),
                };
                self.info.store(Arc::new(info));
                Ok(old_lib)
            }
            Err(why) => {
                let params = modparam::resolve(&old_lib.info(), &self.config_params);
                let restarted = thread::spawn(
                    &self.name,
                    &old_lib,
                    &*self.api,
                    params,
                    self.rx.clone(),
                    subs,
                    self.ctx.shared.clone(),
                );
                match restarted {
                    Ok((t, id)) => {
                        *self.life() = Life {
                            lib: Some(old_lib),
                            thread: Some(t),
                            thread_id: Some(id),
                        };
                        Err(format!(
                            "the new version did not start ({why}); the old version keeps running"
                        ))
                    }
                    Err(again) => {
                        *self.life() = Life {
                            lib: Some(old_lib),
                            thread: None,
                            thread_id: None,
                        };
                        Err(format!("the new version did not start ({why}) and the old one failed to restart ({again}); module {} is down", self.name))
                    }
                }
            }
        }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        self.stop();
    }
}

//! The host-owned thread of one module instance: `init`, re-parsing sockets after a reload,
//! then serving the queue until told to stop or retire, then `flush` and `destroy`.

use super::instance::{writer, Instance, SocketPtr};
use super::{Inbox, Job, MemberRaise};
use crate::event::RaisedEvent;
use crate::host::Shared;
use crate::loader::Library;
use crate::modparam::{self, ModparamValue};
use crate::registry::Subscriber;
use crossbeam_channel::bounded;
use evi_abi::{EviHost, EviModuleDecl, EviStatus, EVI_TRANSPORT_JSON};
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};

thread_local! {
    /// Set on every module's own thread (no destructor: nothing pins a module library).
    static MODULE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the caller runs on a module's own thread (which must never wait on a queue).
pub(crate) fn on_module_thread() -> bool {
    MODULE_THREAD.with(|m| m.get())
}

/// Jobs handled between two `flush` calls while the queue stays full (a batch also ends when the
/// queue is empty, so a slower stream is flushed at once). Why 1024 and not 256: flatstore
/// writes its buffered lines at each flush, and under the script loop one `write` per 1024
/// lines instead of per 256 made the loop faster in 40 of 58 alternating pairs of runs (medians
/// +15%, -5%, +6% in three sets; session 10's VM). Delivery waits at most one batch more: ~0.5 ms
/// at 2M events/s.
const BATCH: usize = 1024;

/// Start an instance of `lib` on a new thread that serves `rx`: `init` with `params`, then parse
/// every socket of `subs` again (after a reload), then the queue.
pub(super) fn spawn(
    name: &str,
    lib: &Library,
    api: *const EviHost,
    params: Vec<(String, ModparamValue)>,
    rx: Inbox,
    subs: Vec<Arc<Subscriber>>,
    shared: Weak<Shared>,
) -> Result<(JoinHandle<()>, ThreadId), String> {
    let (init_tx, init_rx) = bounded::<Result<(), String>>(1);
    let decl = lib.decl() as *const EviModuleDecl as usize;
    let api = api as usize;
    let thread = std::thread::Builder::new()
        .name(format!("evid:{name}"))
        .spawn(move || {
            MODULE_THREAD.with(|m| m.set(true));
            let inst = match init(decl as *const EviModuleDecl, api as *const EviHost, &params) {
                Ok(inst) => inst,
                Err(why) => {
                    let _ = init_tx.send(Err(why));
                    return;
                }
            };
            if let Err(why) = reparse(&inst, &subs) {
                inst.destroy();
                let _ = init_tx.send(Err(why));
                return;
            }
            let _ = init_tx.send(Ok(()));
            run(inst, &rx, &shared);
        })
        .map_err(|e| format!("cannot start a thread for module {name}: {e}"))?;
    let id = thread.thread().id();
    let started = init_rx
        .recv()
        .unwrap_or_else(|_| Err("init did not return (the module thread died)".into()));
    match started {
        Ok(()) => Ok((thread, id)),
        Err(why) => {
            let _ = thread.join();
            Err(why)
        }
    }
}

fn init(
    decl: *const EviModuleDecl,
    api: *const EviHost,
    params: &[(String, ModparamValue)],
) -> Result<Instance, String> {
    let raw = modparam::to_raw(params);
    let mut ptr: *mut c_void = std::ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY: decl was checked by the loader; api and raw outlive the call.
    let st = unsafe { ((*decl).init)(api, raw.as_ptr(), raw.len(), &mut ptr, writer(&mut err)) };
    if st == EviStatus::OK {
        // SAFETY: the loader checked the transport table.
        let transports = unsafe { crate::loader::transport_table(&*decl) };
        return Ok(Instance {
            decl,
            ptr,
            transports,
        });
    }
    let why = String::from_utf8_lossy(&err).into_owned();
    Err(if why.is_empty() {
        format!("init returned {}", st.0)
    } else {
        why
    })
}

/// Give every subscriber a socket of this instance (its printed form, parsed again).
fn reparse(inst: &Instance, subs: &[Arc<Subscriber>]) -> Result<(), String> {
    for (i, sub) in subs.iter().enumerate() {
        let body = sub.socket.split_once(':').map_or("", |(_, b)| b);
        match inst.parse_for(sub.transport, body, sub.mi_policy.as_ref()) {
            Ok(p) => {
                sub.handle.store(p.0, Ordering::Release);
                sub.freed.store(false, Ordering::Release);
            }
            Err(why) => {
                for done in &subs[..i] {
                    retire(inst, done);
                }
                return Err(format!(
                    "the new version cannot parse {}: {why}",
                    sub.socket
                ));
            }
        }
    }
    Ok(())
}

/// Free a subscriber's socket in this instance (once).
fn retire(inst: &Instance, sub: &Subscriber) {
    if !sub.freed.swap(true, Ordering::AcqRel) {
        inst.free(sub.transport, SocketPtr(sub.handle.load(Ordering::Acquire)));
    }
}

fn run(inst: Instance, inbox: &Inbox, shared: &Weak<Shared>) {
    let mut err = Vec::new();
    let rx = &inbox.jobs;
    let outcomes = || {
        while let Ok((token, ok, msg)) = inbox.statuses.try_recv() {
            inst.member_status(token, ok, &msg);
        }
    };
    let mut taken = Taken::default();
    'outer: while let Some(mut job) = next_job(rx) {
        let mut n = 0;
        // Read once per batch: the slow-delivery threshold (None = not timing).
        let slow = shared.upgrade().and_then(|s| s.delivery_threshold());
        loop {
            match job {
                Job::Raise { event, sub, member } => {
                    let t0 = slow.map(|_| std::time::Instant::now());
                    raise(&inst, &event, &sub, member, shared, &mut err);
                    if let (Some(limit), Some(t0)) = (slow, t0) {
                        let took = t0.elapsed();
                        if took > limit {
                            if let Some(s) = shared.upgrade() {
                                s.slow_delivery(&sub, event.name, took);
                            }
                        }
                    }
                    taken.add(sub);
                }
                Job::Held { events, sub } => {
                    for event in &events {
                        raise(&inst, event, &sub, None, shared, &mut err);
                    }
                }
                Job::Call(f) => f(&inst),
                Job::Wake => {}
                Job::Stop => break 'outer,
                Job::Retire(subs) => {
                    taken.settle();
                    for sub in &subs {
                        retire(&inst, sub);
                    }
                    break 'outer;
                }
            }
            n += 1;
            if n == BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(j) => job = j,
                Err(_) => break,
            }
        }
        taken.settle();
        outcomes();
        crate::clock::sharing_outcome_time(|| inst.flush());
    }
    taken.settle();
    outcomes();
    crate::clock::sharing_outcome_time(|| inst.flush());
    inst.destroy();
}

/// How long a module thread that ended a batch on an empty queue sleeps before it looks again;
/// only a look that finds nothing leads to blocking on the queue (where each event wakes it).
///
/// Why: a thread blocked on its queue is woken by every event of a stream that arrives slower
/// than it works, and each wake-up costs the raiser a futex call, the module a context switch
/// and a flush (one `write`, one `sendmmsg`) for one event; the scheduler also wakes a thread
/// on the waker's CPU, so under a steady stream the module thread kept landing on the raiser's
/// core and the two took turns on one CPU while the other idled. Polling instead (50 µs, the
/// previous rule) kept batches whole but burned a core whenever events came every few tens of
/// µs: 40% of evid's CPU under MI `raise_event` at 60k requests/s went to the flatstore thread
/// polling, CPU the HTTP connections needed. A dozing thread is not woken by events
/// (`evi_queue::Receiver::doze`): a stream is taken in batches of what arrived in one doze,
/// with no system call on the raiser's side, and this is the longest a streamed event waits
/// before its batch starts. An isolated event is taken at once (the thread was blocked in
/// `recv`); calls, control jobs and a full queue end a doze at once.
const DOZE: std::time::Duration = std::time::Duration::from_micros(200);

/// The next job: at once if one is queued; else after one [`DOZE`]; else when one comes.
fn next_job(rx: &evi_queue::Receiver<Job>) -> Option<Job> {
    if let Ok(job) = rx.try_recv() {
        return Some(job);
    }
    rx.doze(DOZE);
    rx.try_recv().ok().or_else(|| rx.recv())
}

/// Jobs taken off the queue whose subscriber's `queued` count is not lowered yet. The raiser
/// raises that count for every event; lowering it here for every job too made its cache line
/// travel between the two cores twice per event (~8% of the loop -> flatstore rate). A run of
/// jobs for one subscriber is settled with one subtraction, at the latest when the batch ends.
#[derive(Default)]
struct Taken {
    sub: Option<Arc<Subscriber>>,
    n: u64,
}

impl Taken {
    fn add(&mut self, sub: Arc<Subscriber>) {
        if self.sub.as_ref().is_some_and(|s| Arc::ptr_eq(s, &sub)) {
            self.n += 1;
            return;
        }
        self.settle();
        self.sub = Some(sub);
        self.n = 1;
    }

    fn settle(&mut self) {
        if let Some(sub) = self.sub.take() {
            sub.stats.queued.fetch_sub(self.n, Ordering::Relaxed);
        }
        self.n = 0;
    }
}

fn raise(
    inst: &Instance,
    event: &RaisedEvent,
    sub: &Subscriber,
    member: Option<Box<MemberRaise>>,
    shared: &Weak<Shared>,
    err: &mut Vec<u8>,
) {
    if sub.freed.load(Ordering::Acquire) {
        if let Some(m) = member {
            if let Some(s) = shared.upgrade() {
                s.forget_member_delivery(m.delivery);
            }
            m.owner
                .post_member_status(m.token, false, b"socket closed".to_vec());
        }
        return;
    }
    let t = inst.transport(sub.transport);
    let handle = sub.handle.load(Ordering::Acquire);
    let delivery = member.as_ref().map_or_else(
        || crate::latency::ticket(sub.id, event.raised_at_us),
        |m| m.delivery,
    );
    err.clear();
    let st = event.with_view(t.flags & EVI_TRANSPORT_JSON != 0, |view| {
        // SAFETY: handle came from this instance's parse and is not freed (checked above).
        unsafe { (t.raise)(inst.ptr, handle, view, delivery, writer(err)) }
    });
    crate::dispatch::record(sub, st, err);
    if st != EviStatus::PENDING {
        let took = crate::clock::unix_now_us() - event.raised_at_us;
        sub.module.latency.record(took.max(0) as u64);
    }
    if let Some(m) = member {
        if st != EviStatus::PENDING {
            // A synchronous outcome: the async path will never see this delivery.
            if let Some(s) = shared.upgrade() {
                s.forget_member_delivery(m.delivery);
            }
            m.owner
                .post_member_status(m.token, st == EviStatus::OK, err.clone());
        }
    }
}

//! A running module instance and the host-owned thread that makes every call into it.
//!
//! The thread is fed by one bounded queue: raises (dropped and counted when the queue is full, so
//! a raiser never waits) and control calls (subscribe-time parse/match/print, free, MI commands,
//! stop), which wait for room. One queue keeps a subscriber's events in raise order and lets a
//! socket be freed only after every raise queued before it.

use crate::event::RaisedEvent;
use crate::host::Shared;
use crate::loader::{Library, ModuleInfo};
use crate::modparam::{self, ModparamValue};
use crate::registry::Subscriber;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use evi_abi::{
    EviMiReply, EviModuleDecl, EviStatus, EviStr, EviTransport, EviWriter, EVI_TRANSPORT_JSON,
};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// Raises handled between two `flush` calls.
const BATCH: usize = 256;
/// How long a control call waits for the module's thread.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Job {
    Raise {
        event: Arc<RaisedEvent>,
        sub: Arc<Subscriber>,
    },
    Call(Box<dyn FnOnce(&Instance) + Send>),
    Stop,
}

/// The module side of an instance, only ever touched on its thread.
pub(crate) struct Instance {
    decl: *const EviModuleDecl,
    ptr: *mut c_void,
}

/// A loaded, initialised module.
pub struct Module {
    pub name: String,
    pub info: ModuleInfo,
    jobs: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: OnceLock<ThreadId>,
    /// Raises lost because the queue was full or the module had stopped.
    pub queue_drops: AtomicU64,
    /// Deliveries its transports reported done, and failed (all subscribers, ever).
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    queue_size: usize,
    // Drop order: the library goes last, after everything that points into it.
    _api: Box<evi_abi::EviHost>,
    _ctx: Box<crate::host_api::ModuleCtx>,
    lib: Library,
}

impl Module {
    /// Start the module's thread and run `init` on it with the checked params.
    pub(crate) fn start(
        lib: Library,
        params: &[(String, ModparamValue)],
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
        let (tx, rx) = bounded::<Job>(queue_size);
        let (init_tx, init_rx) = bounded::<Result<(), String>>(1);

        let decl = lib.decl() as *const EviModuleDecl as usize;
        let api_ptr = &*api as *const evi_abi::EviHost as usize;
        let values = params.to_vec();
        let thread = std::thread::Builder::new()
            .name(format!("evid:{name}"))
            .spawn(move || {
                let decl = decl as *const EviModuleDecl;
                let raw = modparam::to_raw(&values);
                let mut ptr: *mut c_void = std::ptr::null_mut();
                let mut err = Vec::new();
                // SAFETY: decl was checked by the loader; api and raw outlive the call.
                let st = unsafe {
                    ((*decl).init)(
                        api_ptr as *const evi_abi::EviHost,
                        raw.as_ptr(),
                        raw.len(),
                        &mut ptr,
                        writer(&mut err),
                    )
                };
                if st != EviStatus::OK {
                    let why = String::from_utf8_lossy(&err).into_owned();
                    let why = if why.is_empty() {
                        format!("init returned {}", st.0)
                    } else {
                        why
                    };
                    let _ = init_tx.send(Err(why));
                    return;
                }
                let _ = init_tx.send(Ok(()));
                run(Instance { decl, ptr }, rx);
            })
            .map_err(|e| format!("cannot start a thread for module {name}: {e}"))?;
        let thread_id = thread.thread().id();
        match init_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let _ = thread.join();
                return Err(why);
            }
            Err(_) => {
                let _ = thread.join();
                return Err("init did not return (the module thread died)".into());
            }
        }
        let m = Module {
            name,
            info,
            jobs: tx,
            thread: Mutex::new(Some(thread)),
            thread_id: OnceLock::new(),
            queue_drops: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            queue_size,
            _api: api,
            _ctx: ctx,
            lib,
        };
        let _ = m.thread_id.set(thread_id);
        Ok(Arc::new(m))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.lib.path
    }

    /// Jobs waiting in the module's queue.
    pub fn queue_len(&self) -> usize {
        self.jobs.len()
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_size
    }

    pub(crate) fn transport(&self, idx: usize) -> &EviTransport {
        let d = self.lib.decl();
        // SAFETY: idx comes from the declaration's own transport table.
        unsafe { &*d.transports.add(idx) }
    }

    /// Queue one raise; never blocks. Returns false (and counts it) when the queue is full.
    pub(crate) fn enqueue_raise(&self, event: Arc<RaisedEvent>, sub: Arc<Subscriber>) -> bool {
        match self.jobs.try_send(Job::Raise { event, sub }) {
            Ok(()) => true,
            Err(TrySendError::Full(Job::Raise { sub, .. }))
            | Err(TrySendError::Disconnected(Job::Raise { sub, .. })) => {
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
            Err(_) => false,
        }
    }

    /// Run `f` on the module's thread and wait for its result.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Instance) -> R + Send + 'static,
    ) -> Result<R, String> {
        if self.thread_id.get() == Some(&std::thread::current().id()) {
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
    }

    /// Drain the queue, flush, `destroy`, join the thread. Idempotent.
    pub(crate) fn stop(&self) {
        if self.thread_id.get() == Some(&std::thread::current().id()) {
            return;
        }
        let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        if self.jobs.send(Job::Stop).is_err() {
            log::warn!("module {}: its thread was already gone", self.name);
        }
        if t.join().is_err() {
            log::error!("module {}: its thread panicked while stopping", self.name);
        }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(inst: Instance, rx: Receiver<Job>) {
    let mut err = Vec::new();
    'outer: while let Ok(mut job) = rx.recv() {
        let mut n = 0;
        loop {
            match job {
                Job::Raise { event, sub } => raise(&inst, &event, &sub, &mut err),
                Job::Call(f) => f(&inst),
                Job::Stop => break 'outer,
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
        inst.flush();
    }
    inst.flush();
    // SAFETY: last call into the instance, on its thread.
    unsafe { ((*inst.decl).destroy)(inst.ptr) };
}

fn raise(inst: &Instance, event: &RaisedEvent, sub: &Subscriber, err: &mut Vec<u8>) {
    if sub.freed.load(Ordering::Acquire) {
        return;
    }
    let t = inst.transport(sub.transport);
    err.clear();
    let st = event.with_view(t.flags & EVI_TRANSPORT_JSON != 0, |view| {
        // SAFETY: handle came from this transport's parse and is not freed (checked above).
        unsafe { (t.raise)(inst.ptr, sub.handle, view, sub.id, writer(err)) }
    });
    crate::dispatch::record(sub, st, err);
}

impl Instance {
    fn decl(&self) -> &EviModuleDecl {
        // SAFETY: the library outlives the module thread.
        unsafe { &*self.decl }
    }

    fn transport(&self, idx: usize) -> &EviTransport {
        // SAFETY: idx comes from the declaration's own transport table.
        unsafe { &*self.decl().transports.add(idx) }
    }

    fn flush(&self) {
        if let Some(f) = self.decl().flush {
            // SAFETY: on the module's thread, with its instance.
            unsafe { f(self.ptr) }
        }
    }

    pub(crate) fn parse(&self, idx: usize, body: &str) -> Result<SocketPtr, String> {
        let t = self.transport(idx);
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut err = Vec::new();
        // SAFETY: arguments valid for the call.
        let st = unsafe {
            (t.parse)(
                self.ptr,
                t.proto,
                EviStr::new(body.as_bytes()),
                &mut out,
                writer(&mut err),
            )
        };
        if st == EviStatus::OK && !out.is_null() {
            Ok(SocketPtr(out))
        } else {
            let why = String::from_utf8_lossy(&err).into_owned();
            Err(if why.is_empty() {
                "invalid socket".into()
            } else {
                why
            })
        }
    }

    pub(crate) fn matches(&self, idx: usize, a: SocketPtr, b: SocketPtr) -> bool {
        let t = self.transport(idx);
        // SAFETY: both sockets are live sockets of this transport.
        unsafe { (t.matches)(self.ptr, a.0, b.0) }
    }

    pub(crate) fn print(&self, idx: usize, s: SocketPtr) -> String {
        let t = self.transport(idx);
        let mut out = Vec::new();
        // SAFETY: s is a live socket of this transport.
        unsafe { (t.print)(self.ptr, s.0, writer(&mut out)) };
        String::from_utf8_lossy(&out).into_owned()
    }

    pub(crate) fn free(&self, idx: usize, s: SocketPtr) {
        let t = self.transport(idx);
        // SAFETY: s is a live socket of this transport, freed once.
        unsafe { (t.free)(self.ptr, s.0) }
    }

    /// Run an exported MI command: `Ok(result json)` or `Err((code, message, data))`.
    pub(crate) fn mi(
        &self,
        name: &str,
        params: &str,
    ) -> Result<String, (i32, String, Option<String>)> {
        let Some(cmd) = (0..self.decl().n_mi_cmds)
            // SAFETY: index within the declaration's table.
            .map(|i| unsafe { &*self.decl().mi_cmds.add(i) })
            .find(|c| unsafe { c.name.as_bytes() } == name.as_bytes())
        else {
            return Err((-32601, "Method not found".into(), None));
        };
        let mut reply = MiOutcome::None;
        let r = EviMiReply {
            ctx: &mut reply as *mut MiOutcome as *mut c_void,
            result: mi_result,
            error: mi_error,
        };
        // SAFETY: arguments valid for the call.
        let st = unsafe {
            (cmd.handler)(
                self.ptr,
                EviStr::new(name.as_bytes()),
                EviStr::new(params.as_bytes()),
                &r,
            )
        };
        match reply {
            MiOutcome::Result(json) if st == EviStatus::OK => Ok(json),
            MiOutcome::Error(code, msg, data) => Err((code, msg, data)),
            _ => Err((
                -32000,
                "Server error".into(),
                Some("Command handler returned null".into()),
            )),
        }
    }
}

/// A module-owned socket pointer, passed between the host's threads but dereferenced only on
/// the module's thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SocketPtr(pub *mut c_void);
// SAFETY: see above.
unsafe impl Send for SocketPtr {}

enum MiOutcome {
    None,
    Result(String),
    Error(i32, String, Option<String>),
}

unsafe extern "C" fn mi_result(ctx: *mut c_void, json: EviStr) {
    // SAFETY: ctx is the MiOutcome of the current call.
    let out = unsafe { &mut *(ctx as *mut MiOutcome) };
    *out = MiOutcome::Result(String::from_utf8_lossy(unsafe { json.as_bytes() }).into_owned());
}

unsafe extern "C" fn mi_error(ctx: *mut c_void, code: i32, msg: EviStr, data: EviStr) {
    // SAFETY: ctx is the MiOutcome of the current call.
    let out = unsafe { &mut *(ctx as *mut MiOutcome) };
    let data = unsafe { data.as_bytes() };
    *out = MiOutcome::Error(
        code,
        String::from_utf8_lossy(unsafe { msg.as_bytes() }).into_owned(),
        (!data.is_empty()).then(|| String::from_utf8_lossy(data).into_owned()),
    );
}

unsafe extern "C" fn write_vec(ctx: *mut c_void, bytes: EviStr) {
    // SAFETY: ctx is the Vec given to writer(), alive for the call.
    let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
    v.extend_from_slice(unsafe { bytes.as_bytes() });
}

/// A writer appending to `v`, valid while `v` is borrowed.
pub(crate) fn writer(v: &mut Vec<u8>) -> EviWriter {
    EviWriter {
        ctx: v as *mut Vec<u8> as *mut c_void,
        write: write_vec,
    }
}

//! The module's handle on the daemon, and the `log` facade that forwards to it.

use crate::value::Param;
use evi_abi::{EviHost, EviParam, EviStatus, EviStr, EviWriter};
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A socket of another transport, opened with [`Host::socket_open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberSocket(pub u64);

/// The daemon, as seen from a module: raise and publish events, report async deliveries, run MI
/// requests. Cheap to clone; usable from any thread the module owns, until `destroy` returns.
#[derive(Clone, Copy)]
pub struct Host {
    raw: *const EviHost,
}

// SAFETY: every EviHost function is thread-safe (see evi-abi).
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl Host {
    /// # Safety
    /// `raw` must be the pointer passed to `init`, valid until `destroy` returns.
    pub unsafe fn from_raw(raw: *const EviHost) -> Self {
        Host { raw }
    }

    fn api(&self) -> &EviHost {
        // SAFETY: valid until destroy (see from_raw).
        unsafe { &*self.raw }
    }

    /// Publish an event name (idempotent); returns its id.
    pub fn publish_event(&self, name: &str) -> Result<u32, String> {
        let mut err = String::new();
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        let id = unsafe {
            (api.publish_event)(
                api.ctx,
                EviStr::new(name.as_bytes()),
                string_writer(&mut err),
            )
        };
        u32::try_from(id).map_err(|_| err)
    }

    /// Raise an event to its subscribers. Never blocks.
    pub fn raise_event(&self, name: &str, params: &[Param<'_>]) -> Result<(), String> {
        let raw: Vec<EviParam> = params.iter().map(|p| p.to_raw()).collect();
        let mut err = String::new();
        let api = self.api();
        // SAFETY: `raw` borrows `params`, both alive for the call.
        let st = unsafe {
            (api.raise_event)(
                api.ctx,
                EviStr::new(name.as_bytes()),
                raw.as_ptr(),
                raw.len(),
                string_writer(&mut err),
            )
        };
        if st == EviStatus::OK {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Report the outcome of a raise that returned [`crate::Raised::Pending`].
    pub fn delivery_status(&self, delivery: crate::Delivery, result: Result<(), &str>) {
        let (st, msg) = match result {
            Ok(()) => (EviStatus::OK, ""),
            Err(m) => (EviStatus::ERROR, m),
        };
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        unsafe { (api.delivery_status)(api.ctx, delivery.0, st, EviStr::new(msg.as_bytes())) }
    }

    /// The destination of `delivery`'s socket is down: for `for_how_long` (at most a minute),
    /// the daemon fails the socket's new events itself, counted as failures, instead of handing
    /// each one to [`crate::Transport::raise`]; the first one after that reaches `raise` again.
    /// Call it from `raise` when refusing an event because the destination is unreachable (not
    /// merely slow: a slow one's queue drains). A no-op on a daemon without it.
    pub fn suspend(&self, delivery: crate::Delivery, for_how_long: std::time::Duration) {
        let api = self.api();
        let has = api.size
            >= std::mem::offset_of!(evi_abi::EviHost, delivery_suspend)
                + std::mem::size_of::<usize>();
        if has {
            let ms = for_how_long.as_millis().min(60_000) as u32;
            // SAFETY: the field exists (checked against the host's size); ctx is this module's.
            unsafe { (api.delivery_suspend)(api.ctx, delivery.0, ms) }
        }
    }

    /// The destination of `delivery`'s socket is down and the transport keeps only its newest
    /// `max_events` events (a full buffer dropping its oldest): until [`Host::release`], the
    /// daemon keeps the socket's new events itself, at most the newest `max_events`, instead
    /// of handing each one to [`crate::Transport::raise`]; each one pushed out fails, counted.
    /// The result equals dropping the oldest, without a hand-over per event while nothing can
    /// be sent. Returns false on a daemon without it (then keep taking every event).
    pub fn hold(&self, delivery: crate::Delivery, max_events: u32) -> bool {
        let api = self.api();
        let has = api.size
            >= std::mem::offset_of!(evi_abi::EviHost, delivery_hold) + std::mem::size_of::<usize>();
        if has && max_events > 0 {
            // SAFETY: the field exists (checked against the host's size); ctx is this module's.
            unsafe { (api.delivery_hold)(api.ctx, delivery.0, max_events) }
        }
        has && max_events > 0
    }

    /// End a [`Host::hold`]: the events the daemon kept for `delivery`'s socket reach
    /// [`crate::Transport::raise`] in raise order, before any newer one. Any thread.
    pub fn release(&self, delivery: crate::Delivery) {
        let api = self.api();
        let has = api.size
            >= std::mem::offset_of!(evi_abi::EviHost, delivery_hold) + std::mem::size_of::<usize>();
        if has {
            // SAFETY: as in `hold`.
            unsafe { (api.delivery_hold)(api.ctx, delivery.0, 0) }
        }
    }

    /// Call from [`crate::Transport::parse`]: the directory that the files of the socket being
    /// parsed must stay beneath (an MI subscription under the daemon's `mi_flatstore_dir`), or
    /// `None` for a trusted socket. Open such files with [`crate::fs::open_beneath`], at every
    /// (re)open: the daemon checked the path, but only the module's own open can keep a symlink
    /// made afterwards from leading outside.
    pub fn mi_file_root(&self) -> Option<std::path::PathBuf> {
        let api = self.api();
        let has = api.size
            >= std::mem::offset_of!(evi_abi::EviHost, mi_file_root) + std::mem::size_of::<usize>();
        if !has {
            return None;
        }
        let mut out = Vec::new();
        // SAFETY: the field exists (checked against the host's size); ctx is this module's.
        let some = unsafe { (api.mi_file_root)(api.ctx, bytes_writer(&mut out)) };
        use std::os::unix::ffi::OsStringExt;
        some.then(|| std::ffi::OsString::from_vec(out).into())
    }

    /// Execute one JSON-RPC MI request; `None` for a notification (no reply).
    pub fn mi_execute(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut reply = Vec::new();
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        let st =
            unsafe { (api.mi_execute)(api.ctx, EviStr::new(request), bytes_writer(&mut reply)) };
        (st != EviStatus::NO_REPLY).then_some(reply)
    }

    /// Whether the script has an `event_route[name]` block.
    pub fn has_event_route(&self, name: &str) -> bool {
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        unsafe { (api.has_event_route)(api.ctx, EviStr::new(name.as_bytes())) }
    }

    /// Run the script's `event_route[name]` with `event`'s params, on this thread.
    pub fn run_event_route(&self, name: &str, event: &crate::Event<'_>) -> Result<(), String> {
        let mut err = String::new();
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        let st = unsafe {
            (api.run_event_route)(
                api.ctx,
                EviStr::new(name.as_bytes()),
                event.raw(),
                string_writer(&mut err),
            )
        };
        if st == EviStatus::OK {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Open a socket of any loaded transport (`proto:body`) to raise to; see
    /// [`Host::socket_raise`]. The error names what is wrong with `uri`.
    pub fn socket_open(&self, uri: &str) -> Result<MemberSocket, String> {
        let mut err = String::new();
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        let h = unsafe {
            (api.socket_open)(
                api.ctx,
                EviStr::new(uri.as_bytes()),
                string_writer(&mut err),
            )
        };
        if h == 0 {
            Err(err)
        } else {
            Ok(MemberSocket(h))
        }
    }

    /// Release a socket from [`Host::socket_open`] (after the raises already sent to it).
    pub fn socket_close(&self, socket: MemberSocket) {
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        unsafe { (api.socket_close)(api.ctx, socket.0) }
    }

    /// Send `event` to `socket`; never blocks. `Ok`: the outcome arrives once through
    /// [`crate::Module::member_status`] with `token`. `Err`: not queued, no callback.
    pub fn socket_raise(
        &self,
        socket: MemberSocket,
        event: &crate::Event<'_>,
        token: u64,
    ) -> Result<(), String> {
        let mut err = String::new();
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        let st = unsafe {
            (api.socket_raise)(
                api.ctx,
                socket.0,
                event.raw(),
                token,
                string_writer(&mut err),
            )
        };
        if st == EviStatus::OK {
            Ok(())
        } else {
            Err(err)
        }
    }

    pub(crate) fn log(&self, level: log::Level, msg: &str) {
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        unsafe { (api.log)(api.ctx, level as u32, EviStr::new(msg.as_bytes())) }
    }

    pub(crate) fn log_enabled(&self, level: log::Level) -> bool {
        let api = self.api();
        // SAFETY: arguments are valid for the call.
        unsafe { (api.log_enabled)(api.ctx, level as u32) }
    }
}

unsafe extern "C" fn write_string(ctx: *mut c_void, bytes: EviStr) {
    // SAFETY: ctx is the &mut String given to string_writer, alive for the call.
    let s = unsafe { &mut *(ctx as *mut String) };
    s.push_str(&String::from_utf8_lossy(unsafe { bytes.as_bytes() }));
}

unsafe extern "C" fn write_bytes(ctx: *mut c_void, bytes: EviStr) {
    // SAFETY: ctx is the &mut Vec given to bytes_writer, alive for the call.
    let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
    v.extend_from_slice(unsafe { bytes.as_bytes() });
}

/// A writer appending to `s`; valid while `s` is borrowed.
pub(crate) fn string_writer(s: &mut String) -> EviWriter {
    EviWriter {
        ctx: s as *mut String as *mut c_void,
        write: write_string,
    }
}

pub(crate) fn bytes_writer(v: &mut Vec<u8>) -> EviWriter {
    EviWriter {
        ctx: v as *mut Vec<u8> as *mut c_void,
        write: write_bytes,
    }
}

/// Write `s` to a writer the host handed over.
pub(crate) fn write(w: EviWriter, s: &str) {
    // SAFETY: the writer is valid for the current call.
    unsafe { (w.write)(w.ctx, EviStr::new(s.as_bytes())) }
}

/// The module's `log` facade: every `log::info!` etc. in module code goes to the host's log with
/// the module's name. Set at `init`, cleared at `destroy` (later lines are dropped).
static LOG_HOST: AtomicPtr<EviHost> = AtomicPtr::new(std::ptr::null_mut());

struct HostLogger;
static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        let p = LOG_HOST.load(Ordering::Acquire);
        // SAFETY: non-null only between init and destroy.
        !p.is_null() && unsafe { Host::from_raw(p) }.log_enabled(meta.level())
    }

    fn log(&self, record: &log::Record<'_>) {
        let p = LOG_HOST.load(Ordering::Acquire);
        if p.is_null() {
            return;
        }
        // SAFETY: non-null only between init and destroy.
        let host = unsafe { Host::from_raw(p) };
        if host.log_enabled(record.level()) {
            host.log(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

pub(crate) fn install_logger(host: *const EviHost) {
    LOG_HOST.store(host as *mut EviHost, Ordering::Release);
    // Fails only if already set in this image (a second instance); the pointer swap above suffices.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
}

pub(crate) fn remove_logger() {
    LOG_HOST.store(std::ptr::null_mut(), Ordering::Release);
}

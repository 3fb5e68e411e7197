//! The host API: what a module may ask of the daemon.

use crate::{AbiLayout, EviEvent, EviParam, EviStatus, EviStr, EviWriter};
use core::ffi::c_void;

/// Log levels, as in the `log` crate.
pub const EVI_LOG_ERROR: u32 = 1;
pub const EVI_LOG_WARN: u32 = 2;
pub const EVI_LOG_INFO: u32 = 3;
pub const EVI_LOG_DEBUG: u32 = 4;
pub const EVI_LOG_TRACE: u32 = 5;

/// The host API handed to `init`.
///
/// Owner: the host. Lifetime: from `init` until `destroy` returns; a module must not call it after
/// that. Every function is thread-safe: a module may call it from any thread it owns. `ctx` is
/// this module instance's handle and goes first in every call.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviHost {
    /// `size_of::<EviHost>()` as the host was built; later minors only append.
    pub size: usize,
    pub ctx: *mut c_void,
    /// Log one line at `level` (`EVI_LOG_*`); the host adds the module name.
    pub log: unsafe extern "C" fn(ctx: *mut c_void, level: u32, msg: EviStr),
    /// Whether a line at `level` would be logged (lets the module skip formatting).
    pub log_enabled: unsafe extern "C" fn(ctx: *mut c_void, level: u32) -> bool,
    /// Publish an event name (idempotent); returns its id, or -1 with the reason in `err`.
    pub publish_event: unsafe extern "C" fn(ctx: *mut c_void, name: EviStr, err: EviWriter) -> i64,
    /// Raise an event to its subscribers. Never blocks. `OK` when accepted (also when the event
    /// has no subscribers); `ERROR` for an unknown event or bad params (reason in `err`).
    pub raise_event: unsafe extern "C" fn(
        ctx: *mut c_void,
        name: EviStr,
        params: *const EviParam,
        n_params: usize,
        err: EviWriter,
    ) -> EviStatus,
    /// Report the outcome of a raise that returned `PENDING` (`OK` or `ERROR`, with a reason).
    pub delivery_status:
        unsafe extern "C" fn(ctx: *mut c_void, delivery: u64, status: EviStatus, msg: EviStr),
    /// Execute one JSON-RPC MI request (MI transports). Writes the reply JSON to `reply` and
    /// returns `OK`, or returns `NO_REPLY` for a notification. May block while a module command
    /// runs; call it from the MI transport's own threads.
    pub mi_execute:
        unsafe extern "C" fn(ctx: *mut c_void, request: EviStr, reply: EviWriter) -> EviStatus,
    /// Whether the script has an `event_route[name]` block.
    pub has_event_route: unsafe extern "C" fn(ctx: *mut c_void, name: EviStr) -> bool,
    /// Run the script's `event_route[name]` with `event`'s params (`$param`), synchronously on
    /// the calling thread. Raises made by the route are nested one level deeper than `event`.
    /// `ERROR` with the reason (and its FILE:LINE:COL) in `err` when the route fails.
    pub run_event_route: unsafe extern "C" fn(
        ctx: *mut c_void,
        name: EviStr,
        event: *const EviEvent,
        err: EviWriter,
    ) -> EviStatus,
    /// Open a socket of any loaded transport (`proto:body`, as a subscriber would give it) for
    /// this module to raise to (event_virtual's members). The host parses it on that transport's
    /// thread. Returns a handle (> 0), or 0 with the reason in `err`. Owner: this module, until
    /// `socket_close`.
    pub socket_open: unsafe extern "C" fn(ctx: *mut c_void, uri: EviStr, err: EviWriter) -> u64,
    /// Release a socket from `socket_open`, after the raises already sent to it.
    pub socket_close: unsafe extern "C" fn(ctx: *mut c_void, socket: u64),
    /// Send `event` to a socket from `socket_open`. Never blocks. `OK`: queued; its outcome comes
    /// back exactly once through the module's `member_status` with `token`, on the module's
    /// thread. `ERROR`: not queued (queue full, socket closed), reason in `err`, no callback.
    pub socket_raise: unsafe extern "C" fn(
        ctx: *mut c_void,
        socket: u64,
        event: *const EviEvent,
        token: u64,
        err: EviWriter,
    ) -> EviStatus,
    /// ABI 1.1. The destination of `delivery`'s subscriber is down (its transport knows: a
    /// refused connection, a failing disk): for `millis`, the host fails that subscriber's new
    /// events itself, counted like failures the transport reported, instead of queueing each one
    /// to this module. The first event after it reaches the module again (a probe). Call it from
    /// `raise` with the delivery being refused. Read `size` before calling: a 1.0 host has no
    /// such field.
    pub delivery_suspend: unsafe extern "C" fn(ctx: *mut c_void, delivery: u64, millis: u32),
    /// ABI 1.2. Call from a transport's `parse` (on the module's thread): when the socket being
    /// parsed comes from an MI subscription that must stay inside a directory (the core's
    /// `mi_flatstore_dir`), writes that directory to `out` and returns true. The module then
    /// opens the socket's files beneath it, now and at every reopen, with
    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so that a symlink or rename made after
    /// the host checked the path cannot lead outside. Returns false (nothing written) for
    /// trusted sockets (config file) and outside `parse`. Read `size` before calling.
    pub mi_file_root: unsafe extern "C" fn(ctx: *mut c_void, out: EviWriter) -> bool,
    /// ABI 1.3. The destination of `delivery`'s subscriber is down, and this transport keeps
    /// only its newest `max_events` events for it (a full buffer dropping its oldest): until
    /// released, the host keeps that subscriber's new events itself instead of queueing each
    /// one to this module, at most the newest `max_events`; each event pushed out of the hold
    /// fails, counted like a failure the transport reported. `max_events` = 0 releases: the
    /// held events reach this module in raise order, before any event raised after. The host
    /// also releases them when the subscription is removed, the module reloaded or the daemon
    /// stopped. Call it from any thread of this module; it never blocks on the module's thread.
    /// Each held event costs the host a compact copy of it (~0.2 KiB for 3 small params).
    /// Read `size` before calling.
    pub delivery_hold: unsafe extern "C" fn(ctx: *mut c_void, delivery: u64, max_events: u32),
}

// SAFETY: every function is documented thread-safe; ctx is an opaque handle.
unsafe impl Send for EviHost {}
unsafe impl Sync for EviHost {}

//! The transport vtable: OpenSIPS's verbs `parse`, `matches`, `print`, `free`, `raise`.
//!
//! A socket is `<proto>:<body>`; the host splits off the proto and hands the body to that
//! transport. Every function is called on the module's thread, with the instance pointer that
//! `init` returned. A socket pointer is owned by the module: created by `parse`, released by
//! `free`, and passed back unchanged in between.

use crate::{AbiLayout, EviEvent, EviStatus, EviStr, EviWriter};
use core::ffi::c_void;

/// Sockets of this proto can expire (MI `expire`); without it they are permanent.
pub const EVI_TRANSPORT_EXPIRES: u32 = 1;
/// `raise` reads `EviEvent::json`, so the host builds the shared JSON-RPC payload.
pub const EVI_TRANSPORT_JSON: u32 = 2;
/// `raise` may answer `PENDING` and report the outcome later with `delivery_status`.
pub const EVI_TRANSPORT_ASYNC: u32 = 4;

/// Parse the body of a socket URI of `proto` (one of the module's protos). On success store the
/// new socket in `*socket` and return `OK`; on failure write a message naming the bad part to
/// `err` and return `ERROR`.
pub type EviParseFn = unsafe extern "C" fn(
    instance: *mut c_void,
    proto: EviStr,
    body: EviStr,
    socket: *mut *mut c_void,
    err: EviWriter,
) -> EviStatus;

/// Whether two sockets of this transport are the same destination (a re-subscribe refreshes the
/// existing subscription instead of adding one). Must be reflexive and symmetric.
pub type EviMatchesFn =
    unsafe extern "C" fn(instance: *mut c_void, a: *const c_void, b: *const c_void) -> bool;

/// Write the socket's body (no proto) to `out`. `parse(print(s))` must match `s`.
pub type EviPrintFn =
    unsafe extern "C" fn(instance: *mut c_void, socket: *const c_void, out: EviWriter);

/// Release a socket. Called once per socket, after its last `raise`.
pub type EviFreeFn = unsafe extern "C" fn(instance: *mut c_void, socket: *mut c_void);

/// Deliver one event to one socket. Must not block: send with a non-blocking call, or enqueue to
/// the module's own worker and return `PENDING` (then report `delivery` through
/// `EviHost::delivery_status`, exactly once). `ERROR` means this event failed for this socket;
/// the reason goes to `err`.
pub type EviRaiseFn = unsafe extern "C" fn(
    instance: *mut c_void,
    socket: *mut c_void,
    event: *const EviEvent,
    delivery: u64,
    err: EviWriter,
) -> EviStatus;

/// One transport (proto) provided by a module.
///
/// Owner: the module (static data). Lifetime: while the library is loaded.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviTransport {
    /// `size_of::<EviTransport>()` as built; later minors only append fields.
    pub size: usize,
    /// The proto, e.g. `udp`; unique across loaded modules.
    pub proto: EviStr,
    /// `EVI_TRANSPORT_*` flags.
    pub flags: u32,
    pub parse: EviParseFn,
    pub matches: EviMatchesFn,
    pub print: EviPrintFn,
    pub free: EviFreeFn,
    pub raise: EviRaiseFn,
}

// SAFETY: immutable static data.
unsafe impl Sync for EviTransport {}

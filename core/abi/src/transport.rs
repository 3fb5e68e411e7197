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

/// Write where a socket sends (ABI 1.1), one destination per line: `ip:port` (`[ip]:port` for
/// IPv6) when the transport resolved the host itself and will send to that address, `host:port`
/// when it connects by name later. The host checks every line against `mi_allowed_destinations`
/// before it accepts a subscription made over MI. Called on the module's thread.
pub type EviDestinationsFn =
    unsafe extern "C" fn(instance: *mut c_void, socket: *const c_void, out: EviWriter);

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
    /// ABI 1.1. `None`: sockets of this transport reach no network host of their own (files,
    /// script routes, other sockets). Absent (the module's `size` ends before it) in 1.0 modules.
    pub destinations: Option<EviDestinationsFn>,
}

/// `size` of an [`EviTransport`] built against ABI 1.0, the smallest the host accepts.
pub const EVI_TRANSPORT_SIZE_1_0: usize = core::mem::offset_of!(EviTransport, destinations);

impl EviTransport {
    /// Entry `i` of a module's transport table, read with the stride the module was built with
    /// (its `size`), fields the module's minor does not have left `None`.
    ///
    /// # Safety
    /// `table` points at `n > i` entries of one module's transport table whose first entry's
    /// `size` is at least [`EVI_TRANSPORT_SIZE_1_0`] (the loader checks this), valid for reads.
    pub unsafe fn read(table: *const EviTransport, i: usize) -> EviTransport {
        // SAFETY: `size` is the first field of every minor's layout.
        let stride = unsafe { *(table as *const usize) };
        let take = stride.min(core::mem::size_of::<EviTransport>());
        let mut out = core::mem::MaybeUninit::<EviTransport>::zeroed();
        // SAFETY: entry i lies within the table (caller); `take` bytes of it are this layout's
        // prefix. Every field past EVI_TRANSPORT_SIZE_1_0 is an `Option<fn>`, for which all-zero
        // bytes are `None`, so the zeroed remainder is a valid value.
        unsafe {
            let src = (table as *const u8).add(i * stride);
            core::ptr::copy_nonoverlapping(src, out.as_mut_ptr() as *mut u8, take);
            out.assume_init()
        }
    }
}

// SAFETY: immutable static data.
unsafe impl Sync for EviTransport {}

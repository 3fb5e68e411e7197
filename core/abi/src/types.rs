//! The plain data that crosses the boundary: byte strings, values, event parameters, events,
//! writers and statuses.

use crate::AbiLayout;
use core::ffi::c_void;

/// A borrowed byte string (not NUL-terminated, not necessarily UTF-8).
///
/// Owner: whoever created it; the receiver borrows it only for the duration of the call it is
/// passed to, unless the item that carries it says otherwise (strings in a module declaration are
/// `'static` for as long as the library is loaded). `ptr` may be null when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviStr {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: an EviStr is a read-only view; the item that hands it over states its lifetime.
unsafe impl Send for EviStr {}
unsafe impl Sync for EviStr {}

impl EviStr {
    pub const EMPTY: EviStr = EviStr {
        ptr: core::ptr::null(),
        len: 0,
    };

    pub const fn from_static(s: &'static str) -> EviStr {
        EviStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrow `b` for a call; the caller keeps `b` alive until the callee returns.
    pub fn new(b: &[u8]) -> EviStr {
        EviStr {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// # Safety
    /// `ptr..ptr+len` must be valid for `'a` (see the owner rules above).
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// Kinds of [`EviValue`].
pub const EVI_VALUE_NULL: u32 = 0;
pub const EVI_VALUE_INT: u32 = 1;
pub const EVI_VALUE_STR: u32 = 2;
pub const EVI_VALUE_BOOL: u32 = 3;

/// A typed value: an event parameter value (`NULL`, `INT`, `STR`) or a modparam value
/// (`INT`, `STR`, `BOOL`, where a bool is `int` 0 or 1).
///
/// Only the member named by `kind` is meaningful. Owner and lifetime: as for the [`EviStr`] in it.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviValue {
    pub kind: u32,
    pub int: i64,
    pub str: EviStr,
}

impl EviValue {
    pub const NULL: EviValue = EviValue {
        kind: EVI_VALUE_NULL,
        int: 0,
        str: EviStr::EMPTY,
    };
    pub const fn int(v: i64) -> EviValue {
        EviValue {
            kind: EVI_VALUE_INT,
            int: v,
            str: EviStr::EMPTY,
        }
    }
    pub const fn bool(v: bool) -> EviValue {
        EviValue {
            kind: EVI_VALUE_BOOL,
            int: v as i64,
            str: EviStr::EMPTY,
        }
    }
    pub const fn str(s: EviStr) -> EviValue {
        EviValue {
            kind: EVI_VALUE_STR,
            int: 0,
            str: s,
        }
    }
}

/// A named value: an event parameter or a modparam.
///
/// An empty `name` means "unnamed" (a positional event parameter). As in OpenSIPS, an event whose
/// first parameter is named is rendered as a JSON object, otherwise as an array. In an event the
/// host hands to a module, `name` is valid UTF-8 (the host refuses other names when they are
/// raised), so modules may read it without checking.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviParam {
    pub name: EviStr,
    pub value: EviValue,
}

/// One raised event, as a transport's `raise` sees it.
///
/// The event name and every param name are valid UTF-8 (the host checks them when an event is
/// published or raised); param values are arbitrary bytes. Owner: the host. Lifetime: the `raise` call it is passed to; a transport that delivers later
/// copies what it needs. Calling thread: the module's thread.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviEvent {
    /// The event's id in the host registry (stable for the daemon's lifetime).
    pub id: u32,
    pub name: EviStr,
    pub params: *const EviParam,
    pub n_params: usize,
    /// The shared JSON-RPC notification (`{"jsonrpc":"2.0","method":NAME,"params":...}`), built
    /// once per event by the host; empty unless the transport sets [`crate::EVI_TRANSPORT_JSON`].
    pub json: EviStr,
    /// Wall-clock time of the raise, microseconds since the Unix epoch.
    pub raised_at_us: i64,
    /// How many script routes this raise is nested in: 0 for a raise from outside any
    /// `event_route`; the host refuses raises deeper than 100 (OpenSIPS's limit).
    pub depth: u32,
}

/// An output sink the callee writes bytes into; the caller owns the buffer behind `ctx`.
///
/// Valid only during the call it is passed to. `write` may be called any number of times; the
/// pieces are concatenated.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviWriter {
    pub ctx: *mut c_void,
    pub write: unsafe extern "C" fn(ctx: *mut c_void, bytes: EviStr),
}

/// Result of a call across the boundary.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, AbiLayout)]
pub struct EviStatus(pub i32);

impl EviStatus {
    /// Done (for `raise`: delivered, or handed to the OS).
    pub const OK: EviStatus = EviStatus(0);
    /// Accepted; the outcome is reported later through `EviHost::delivery_status`.
    pub const PENDING: EviStatus = EviStatus(1);
    /// Failed; the writer passed to the call holds the reason.
    pub const ERROR: EviStatus = EviStatus(-1);
    /// The module panicked; the instance is poisoned and fails every later call.
    pub const PANICKED: EviStatus = EviStatus(-2);
    /// MI only: the request was a notification; there is no reply.
    pub const NO_REPLY: EviStatus = EviStatus(2);
}

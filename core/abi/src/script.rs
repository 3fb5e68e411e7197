//! Script functions exported by modules (ABI 1.2), e.g. event_rabbitmq's `rabbitmq_publish()`.

use crate::{AbiLayout, EviStatus, EviStr, EviValue, EviWriter};
use core::ffi::c_void;

/// Run an exported script function. `name` is the function (one handler may serve several);
/// `args` are the call's arguments (ints, strings or null), valid for this call only.
///
/// Calling thread: the module's thread; the script that called it waits (bounded) for the
/// answer, so the handler must not block. Returns `OK` when the function succeeded (the script
/// sees a positive result), `ERROR` with the reason written to `err` (the script sees a negative
/// result and the daemon logs the reason with the call's file:line), or `PANICKED`.
pub type EviScriptFnHandler = unsafe extern "C" fn(
    instance: *mut c_void,
    name: EviStr,
    args: *const EviValue,
    n_args: usize,
    err: EviWriter,
) -> EviStatus;

/// One exported script function.
///
/// Owner: the module (static data). Lifetime: while the library is loaded. The host checks each
/// call's argument count against `min_args..=max_args` when it checks the config.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviScriptFn {
    pub name: EviStr,
    /// One line for `evid --describe-module`.
    pub doc: EviStr,
    pub min_args: u32,
    pub max_args: u32,
    pub handler: EviScriptFnHandler,
}

/// The ABI 1.2 extension table, at [`crate::EviModuleDecl::ext`] (null in 1.0 and 1.1 modules).
///
/// Owner: the module (static data). Lifetime: while the library is loaded. Later minors append
/// fields; the host reads only the fields that `size` covers.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviModuleExt {
    /// `size_of::<EviModuleExt>()` as the module was built.
    pub size: usize,
    pub script_fns: *const EviScriptFn,
    pub n_script_fns: usize,
}

// SAFETY: immutable static data.
unsafe impl Sync for EviScriptFn {}
unsafe impl Sync for EviModuleExt {}

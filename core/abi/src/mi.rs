//! MI commands exported by modules.

use crate::{AbiLayout, EviStatus, EviStr};
use core::ffi::c_void;

/// One accepted parameter list of an MI command (OpenSIPS's "recipe"): the host binds positional
/// or named JSON-RPC params to a recipe before it calls the handler.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviMiRecipe {
    pub params: *const EviStr,
    pub n_params: usize,
}

/// Where an MI handler puts its answer: exactly one of `result` or `error`, once.
///
/// Owner: the host. Lifetime: the handler call. Calling thread: the module's thread.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviMiReply {
    pub ctx: *mut c_void,
    /// `json` is the JSON text of the result (e.g. `"OK"` with its quotes).
    pub result: unsafe extern "C" fn(ctx: *mut c_void, json: EviStr),
    /// An OpenSIPS-style error: `code` (e.g. 400), `message`, optional `data` (empty = absent).
    pub error: unsafe extern "C" fn(ctx: *mut c_void, code: i32, message: EviStr, data: EviStr),
}

/// Run an MI command. `name` is the command (one handler may serve several); `params` is a JSON
/// object text holding the params of the matched recipe. Return `OK` after calling `reply`.
pub type EviMiHandlerFn = unsafe extern "C" fn(
    instance: *mut c_void,
    name: EviStr,
    params: EviStr,
    reply: *const EviMiReply,
) -> EviStatus;

/// One exported MI command.
///
/// Owner: the module (static data). Lifetime: while the library is loaded. The handler runs on
/// the module's thread, in order with the module's raises.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviMiCmd {
    pub name: EviStr,
    pub doc: EviStr,
    pub recipes: *const EviMiRecipe,
    pub n_recipes: usize,
    pub handler: EviMiHandlerFn,
}

// SAFETY: immutable static data.
unsafe impl Sync for EviMiCmd {}
unsafe impl Sync for EviMiRecipe {}

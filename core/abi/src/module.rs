//! The module declaration: the one symbol a module exports.

use crate::{
    AbiLayout, EviHost, EviMiCmd, EviModuleExt, EviParam, EviStatus, EviStr, EviTransport,
    EviValue, EviWriter,
};
use core::ffi::c_void;

/// The fixed header that starts every module declaration. It never changes, in any ABI version:
/// the host reads it before it trusts anything else in the declaration.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EviHeader {
    /// [`crate::EVI_MAGIC`].
    pub magic: u64,
    pub abi_major: u32,
    pub abi_minor: u32,
    /// `size_of::<EviModuleDecl>()` as the module was built.
    pub decl_size: u32,
    /// Entries in `type_hashes`.
    pub n_type_hashes: u32,
    /// `<EviModuleDecl as AbiLayout>::LAYOUT_HASH` as the module was built.
    pub layout_hash: u64,
    /// Per-type hashes, so that a mismatch names the type that changed.
    pub type_hashes: *const EviTypeHash,
}

/// One entry of the per-type hash table. Frozen like [`EviHeader`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EviTypeHash {
    pub name: EviStr,
    pub hash: u64,
}

/// Modparam types.
pub const EVI_PARAM_INT: u32 = 1;
pub const EVI_PARAM_STR: u32 = 2;
pub const EVI_PARAM_BOOL: u32 = 3;

/// The param may be given several times (each `modparam` line adds a value).
pub const EVI_PARAM_REPEATABLE: u32 = 1;

/// One declared modparam.
///
/// Owner: the module (static data). Lifetime: while the library is loaded. The host checks every
/// `modparam` line against this spec (name, type, range) before it calls `init`.
#[repr(C)]
#[derive(Clone, Copy, AbiLayout)]
pub struct EviParamSpec {
    pub name: EviStr,
    /// `EVI_PARAM_INT`, `EVI_PARAM_STR` or `EVI_PARAM_BOOL`.
    pub kind: u32,
    /// `EVI_PARAM_*` flags.
    pub flags: u32,
    /// Used when the config does not set the param; `EviValue::NULL` means "unset".
    pub default: EviValue,
    /// Inclusive range for `INT` params.
    pub min: i64,
    pub max: i64,
    /// One line for `evid --describe-module` and the module README.
    pub doc: EviStr,
}

/// `init`: create one module instance.
///
/// Called once, on the module's thread, after every check passed. `host` stays valid until
/// `destroy` returns. `params` holds every declared param in spec order (defaults filled in; a
/// repeatable param appears once per value; an unset param with no default is absent), valid for
/// this call only. On success the module stores its instance pointer in `*instance` (owned by the
/// module, released by `destroy`). On failure it writes the reason to `err`.
pub type EviInitFn = unsafe extern "C" fn(
    host: *const EviHost,
    params: *const EviParam,
    n_params: usize,
    instance: *mut *mut c_void,
    err: EviWriter,
) -> EviStatus;

/// `destroy`: stop the instance. Called once, on the module's thread, after the host stopped
/// sending work and freed every socket. The module joins every thread it started before returning.
pub type EviDestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// `flush`: called on the module's thread after each batch of raises (at most a few hundred, and
/// whenever its queue runs empty) and before `destroy`; write out anything buffered.
pub type EviFlushFn = unsafe extern "C" fn(instance: *mut c_void);

/// `member_status`: the outcome (`OK` or `ERROR` with a reason) of the `socket_raise` made with
/// `token`. Called once per queued `socket_raise`, on the module's thread.
pub type EviMemberStatusFn =
    unsafe extern "C" fn(instance: *mut c_void, token: u64, status: EviStatus, msg: EviStr);

/// The module declaration, exported under [`crate::EVI_MODULE_SYMBOL`] (written by
/// `evi_sdk::export_module!`).
///
/// Owner: the module (static data). Lifetime: while the library is loaded. Read by the host on
/// its loader thread before any module code runs.
#[repr(C)]
#[derive(AbiLayout)]
pub struct EviModuleDecl {
    pub header: EviHeaderHash,
    /// The module's name; must equal the file stem (`event_flatstore` for `event_flatstore.so`
    /// or `libevent_flatstore.so`).
    pub name: EviStr,
    pub version: EviStr,
    /// Free text: compiler and profile it was built with.
    pub build: EviStr,
    /// One paragraph for `evid --describe-module`.
    pub doc: EviStr,
    pub params: *const EviParamSpec,
    pub n_params: usize,
    pub mi_cmds: *const EviMiCmd,
    pub n_mi_cmds: usize,
    /// Events the module raises; the host publishes them when the module loads.
    pub events: *const EviStr,
    pub n_events: usize,
    /// The transports (protos) the module provides; may be empty.
    pub transports: *const EviTransport,
    pub n_transports: usize,
    pub init: EviInitFn,
    pub destroy: EviDestroyFn,
    pub flush: Option<EviFlushFn>,
    /// The outcome of a `socket_raise` (see `EviHost::socket_raise`); needed only by modules
    /// that raise to other transports' sockets.
    pub member_status: Option<EviMemberStatusFn>,
    /// Tables added by later minors (starting with their own size): script functions since
    /// 1.2. Null in 1.0 and 1.1 modules, and read by the host only for modules of minor ≥ 2.
    pub ext: *const EviModuleExt,
}

// SAFETY: a declaration is immutable static data.
unsafe impl Sync for EviModuleDecl {}
unsafe impl Sync for EviParamSpec {}

/// [`EviHeader`] as a field of the declaration. The layout hash covers only the header's size,
/// never its fields' meaning: the header is frozen across every ABI version.
#[repr(transparent)]
pub struct EviHeaderHash(pub EviHeader);

// SAFETY: hand-written leaf: the header is frozen, so its size is all that can change.
unsafe impl AbiLayout for EviHeaderHash {
    const TYPE_NAME: &'static str = "EviHeader";
    const LAYOUT_HASH: u64 = crate::layout::Fnv::new()
        .str("EviHeader")
        .u64(core::mem::size_of::<EviHeader>() as u64)
        .finish();
}

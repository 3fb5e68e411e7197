//! # evi-abi: the evid module contract
//!
//! The one contract between the evid daemon (the host) and its loadable modules (`.so` files).
//! It is small on purpose: `#[repr(C)]` data, fn-pointer tables and constants, no I/O.
//!
//! A module exports exactly one symbol, [`EVI_MODULE_SYMBOL`], a static [`EviModuleDecl`]. The
//! declaration starts with a frozen [`EviHeader`] (magic, ABI major/minor, size, layout hash,
//! per-type hashes). The host checks all of it before it calls any module code:
//!
//! dlopen → symbol → magic → major equal → minor not above the host's → size → layout hash →
//! name equals the file stem → every `modparam` checked against [`EviParamSpec`] → `init`.
//!
//! ## Threads
//! The host owns one thread per module instance and makes every call into the module on it:
//! `init`, transport verbs, `flush`, MI handlers, `destroy`. So a module never sees two calls at
//! once and needs no locking for its instance. A module may start its own threads (for blocking
//! I/O); it joins them in `destroy`. [`EviHost`] functions may be called from any module thread.
//!
//! ## Panics
//! A panic must never unwind across an `extern "C"` function. `evi-sdk` catches it at every
//! entry point, returns [`EviStatus::PANICKED`] and poisons the instance.
//!
//! ## Versioning
//! Within a major version, fields are only appended to tables that carry their own `size`, and
//! new tables hang off `ext`. A module built for minor N loads in a host of minor ≥ N: the host
//! checks the module's layout against [`LAYOUT_HASHES`]`[N]`, reads its tables with the
//! module's own `size`, and treats the fields a later minor added as absent (`None`).
//!
//! Write modules with `evi-sdk`, not against this crate directly.

extern crate self as evi_abi;

mod host;
pub mod layout;
mod mi;
mod module;
pub mod payload;
mod script;
mod transport;
mod types;

pub use evi_abi_derive::AbiLayout;
pub use host::*;
pub use layout::AbiLayout;
pub use mi::*;
pub use module::*;
pub use script::*;
pub use transport::*;
pub use types::*;

/// `b"EVIDMOD\x01"` as a little-endian u64: the first field of every declaration.
pub const EVI_MAGIC: u64 = u64::from_le_bytes(*b"EVIDMOD\x01");
/// Bumped on any incompatible change; the host loads only its own major.
pub const EVI_ABI_MAJOR: u32 = 1;
/// Bumped on additive changes; the host loads modules of its minor or lower.
///
/// 1.1: `EviTransport::destinations`, `EviHost::delivery_suspend`.
/// 1.2: `EviModuleDecl::ext` points at an [`EviModuleExt`]: exported script functions.
/// 1.3: `EviHost::delivery_hold`.
pub const EVI_ABI_MINOR: u32 = 3;

/// The declaration layout hash of each minor of this major (index = minor). A module of minor
/// `m` must carry `LAYOUT_HASHES[m]`. Past entries are frozen: they are what modules already
/// built carry. The last is this build's own.
pub const LAYOUT_HASHES: [u64; EVI_ABI_MINOR as usize + 1] = [
    0x8edc_73b6_6a57_2c33,
    0x6bf1_fa6d_19a2_f51e,
    0x0f67_abfb_caf3_8925,
    <EviModuleDecl as AbiLayout>::LAYOUT_HASH,
];

/// `size_of::<EviModuleDecl>()` of each minor (index = minor); frozen like [`LAYOUT_HASHES`].
/// (1.0: a 32-byte header plus 22 pointer-sized fields; 1.1, 1.2 and 1.3 did not grow the
/// declaration.)
pub const DECL_SIZES: [usize; EVI_ABI_MINOR as usize + 1] = [
    32 + 22 * core::mem::size_of::<usize>(),
    32 + 22 * core::mem::size_of::<usize>(),
    32 + 22 * core::mem::size_of::<usize>(),
    core::mem::size_of::<EviModuleDecl>(),
];
/// The name of the exported declaration symbol.
pub const EVI_MODULE_SYMBOL: &str = "evi_module";

macro_rules! type_hashes {
    ($($t:ty),* $(,)?) => {
        /// The per-type hashes of this ABI build, as carried in [`EviHeader::type_hashes`].
        pub const TYPE_HASHES: &[EviTypeHash] = &[
            $(EviTypeHash {
                name: EviStr::from_static(<$t as AbiLayout>::TYPE_NAME),
                hash: <$t as AbiLayout>::LAYOUT_HASH,
            }),*
        ];
        /// Entries in [`TYPE_HASHES`].
        pub const N_TYPE_HASHES: usize = [$(stringify!($t)),*].len();
    };
}

type_hashes!(
    EviModuleDecl,
    EviTransport,
    EviMiCmd,
    EviMiRecipe,
    EviMiReply,
    EviHost,
    EviParamSpec,
    EviParam,
    EviValue,
    EviEvent,
    EviWriter,
    EviStr,
    EviStatus,
    EviModuleExt,
    EviScriptFn,
);

/// The header a module built against this crate carries (written by `export_module!`).
pub const fn header() -> EviHeader {
    EviHeader {
        magic: EVI_MAGIC,
        abi_major: EVI_ABI_MAJOR,
        abi_minor: EVI_ABI_MINOR,
        decl_size: core::mem::size_of::<EviModuleDecl>() as u32,
        n_type_hashes: N_TYPE_HASHES as u32,
        layout_hash: <EviModuleDecl as AbiLayout>::LAYOUT_HASH,
        type_hashes: TYPE_HASHES.as_ptr(),
    }
}

// SAFETY: the header points only at static data.
unsafe impl Sync for EviHeader {}
unsafe impl Sync for EviTypeHash {}
unsafe impl Sync for EviHeaderHash {}

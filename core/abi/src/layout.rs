//! Layout hashing: how the host proves, before running any module code, that a module was built
//! against the same `#[repr(C)]` types as itself.
//!
//! Every ABI type implements [`AbiLayout`] (derived with `#[derive(AbiLayout)]`, or by hand below
//! for primitives, pointers and fn pointers). The hash is computed at compile time, so a module
//! carries the hashes of the ABI it was compiled against in its declaration.

use core::ffi::c_void;

/// A `const` description of a type's memory layout.
///
/// # Safety
/// `LAYOUT_HASH` must change whenever the size, alignment, field order, field offsets or field
/// types change. Use the derive; hand-written impls exist only for leaf types in this file.
pub unsafe trait AbiLayout {
    /// The type's name, as reported in a mismatch error.
    const TYPE_NAME: &'static str;
    /// FNV-1a over the layout description.
    const LAYOUT_HASH: u64;
}

/// A `const` FNV-1a 64-bit hasher.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub const fn bytes(self, b: &[u8]) -> Self {
        let mut h = self.0;
        let mut i = 0;
        while i < b.len() {
            h ^= b[i] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        Fnv(h)
    }
    pub const fn str(self, s: &str) -> Self {
        // The length goes in first so that ("ab","c") and ("a","bc") differ.
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    pub const fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! leaf {
    ($($t:ty),*) => {$(
        unsafe impl AbiLayout for $t {
            const TYPE_NAME: &'static str = stringify!($t);
            const LAYOUT_HASH: u64 = Fnv::new()
                .str(stringify!($t))
                .u64(core::mem::size_of::<$t>() as u64)
                .u64(core::mem::align_of::<$t>() as u64)
                .finish();
        }
    )*};
}
leaf!(u8, u16, u32, u64, i32, i64, usize, bool, c_void, ());

unsafe impl<T: AbiLayout> AbiLayout for *const T {
    const TYPE_NAME: &'static str = "*const T";
    const LAYOUT_HASH: u64 = Fnv::new().str("*const").u64(T::LAYOUT_HASH).finish();
}

unsafe impl<T: AbiLayout> AbiLayout for *mut T {
    const TYPE_NAME: &'static str = "*mut T";
    const LAYOUT_HASH: u64 = Fnv::new().str("*mut").u64(T::LAYOUT_HASH).finish();
}

unsafe impl<T: AbiLayout> AbiLayout for Option<T> {
    // Only meaningful for fn pointers, where Option<fn> is a nullable pointer.
    const TYPE_NAME: &'static str = "Option<T>";
    const LAYOUT_HASH: u64 = Fnv::new().str("Option").u64(T::LAYOUT_HASH).finish();
}

macro_rules! fn_ptr {
    ($($a:ident),*) => {
        unsafe impl<R: AbiLayout, $($a: AbiLayout),*> AbiLayout for unsafe extern "C" fn($($a),*) -> R {
            const TYPE_NAME: &'static str = "unsafe extern \"C\" fn";
            const LAYOUT_HASH: u64 = Fnv::new()
                .str("fn")
                $(.u64($a::LAYOUT_HASH))*
                .str("->")
                .u64(R::LAYOUT_HASH)
                .finish();
        }
    };
}
fn_ptr!();
fn_ptr!(A);
fn_ptr!(A, B);
fn_ptr!(A, B, C);
fn_ptr!(A, B, C, D);
fn_ptr!(A, B, C, D, E);
fn_ptr!(A, B, C, D, E, F);
fn_ptr!(A, B, C, D, E, F, G);

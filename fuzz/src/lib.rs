//! The checks behind evid's fuzz targets, one function per target; each `fuzz_targets/NAME.rs`
//! only calls its function. A broken invariant panics, which libFuzzer reports as a crash with
//! the input saved under `fuzz/artifacts/NAME/`.

pub mod config;
pub mod mi;
pub mod payload;
pub mod uris;

/// Defines `getaddrinfo` in the fuzz binary so that it always fails with `EAI_NONAME`: a
/// definition in the executable wins over libc's at link time, so no input can make a parser
/// query DNS. IP literals never reach it (std parses those itself), so sockets with literal
/// hosts still parse all the way. Use once, in a target's own file (a definition in this rlib
/// would not be linked unless something else in its object file were).
#[macro_export]
macro_rules! no_dns {
    () => {
        /// Always `EAI_NONAME`; see [`evid_fuzz::no_dns`].
        ///
        /// # Safety
        /// `res` is null or valid for a write, as for libc's.
        #[no_mangle]
        pub unsafe extern "C" fn getaddrinfo(
            _node: *const $crate::libc::c_char,
            _service: *const $crate::libc::c_char,
            _hints: *const $crate::libc::addrinfo,
            res: *mut *mut $crate::libc::addrinfo,
        ) -> $crate::libc::c_int {
            if !res.is_null() {
                // SAFETY: the caller passes a valid out pointer.
                unsafe { *res = std::ptr::null_mut() };
            }
            $crate::libc::EAI_NONAME
        }
    };
}

#[doc(hidden)]
pub use libc;

/// Text from fuzz bytes: lossy UTF-8, so every input reaches the parser as some `&str`.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Whether `s` is one line: no CR or LF (errors and printed sockets end up in log lines and MI
/// replies).
pub fn one_line(s: &str) -> bool {
    !s.contains(['\n', '\r'])
}

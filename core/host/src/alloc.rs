//! The allocator evid and its benchmarks install: mimalloc, entered by `mi_malloc` for every
//! request it aligns anyway.
//!
//! Why mimalloc: events are allocated by raisers and freed on module threads; glibc malloc
//! serialises such cross-thread frees on an arena lock, mimalloc does not.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it asks `mi_malloc_aligned` for every
//! allocation, and mimalloc v3 answers an aligned request whose size is not a power of two (a
//! raised event: ~670 bytes, align 8) by over-allocating whenever the page at hand has no free
//! block, which, with events freed on other threads, was one raise in five: ~600 instructions
//! each where the plain path takes ~30 (callgrind, loop → flatstore, 154 instructions per
//! event's allocation on average), and a larger block than asked for.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long, c_void};

/// `mi_option_page_reclaim_on_free` in mimalloc v3's `mi_option_t` (mimalloc.h); the
/// `libmimalloc-sys` bindings name only v2's options. The test below pins the neighbours'
/// defaults, so a different enum fails it.
const PAGE_RECLAIM_ON_FREE: c_int = 35;

extern "C" {
    fn mi_version() -> c_int;
    fn mi_option_set_default(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Let a thread that frees into another thread's abandoned page take that page over. Call
/// once, first thing in `main`. Does nothing on a mimalloc older than v3 (another enum).
///
/// Why: a module thread frees the events a raiser allocated, and a raiser that runs ahead of it
/// abandons the pages they sit in. By default every free into such a page claims it, collects
/// it and lets it go again (~155 instructions and several atomics per event, callgrind, loop
/// → flatstore); taking the page over makes the page's later frees local (~80 per event).
/// mimalloc takes a page over only while it is at most 7/8 full and the freeing thread owns at
/// most 16 pages of that size; the page then serves only that thread until its last block is
/// freed and it returns to the arena. `MIMALLOC_PAGE_RECLAIM_ON_FREE` still overrides this.
pub fn tune() {
    // SAFETY: plain C calls: a version read and a process-wide option's default.
    unsafe {
        // `MI_MALLOC_VERSION`: major, then two digits each of minor and patch.
        if mi_version() >= 30000 {
            mi_option_set_default(PAGE_RECLAIM_ON_FREE, 1)
        }
    }
}

/// Every `mi_malloc` block is aligned to a machine word at least.
const WORD: usize = std::mem::size_of::<usize>();

/// Install with `#[global_allocator] static ALLOC: MiMalloc = MiMalloc;`.
pub struct MiMalloc;

// SAFETY: every block comes from mimalloc with at least `layout.align()` alignment (a word by
// `mi_malloc`, more by `mi_*_aligned`), and goes back to it through `mi_free` / `mi_realloc*`,
// which accept blocks from either family.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C allocation calls; a null result is passed on as failure.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's promise).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's promise).
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PAGE_RECLAIM_ON_FREE` is the option `tune` means: it and its neighbours have v3's
    /// defaults (`page_reclaim_on_free` 0, `page_full_retain` 2, `page_max_candidates` 4),
    /// and `tune` sets it.
    #[test]
    fn tune_sets_page_reclaim_on_free() {
        let set_outside = [
            "PAGE_RECLAIM_ON_FREE",
            "PAGE_FULL_RETAIN",
            "PAGE_MAX_CANDIDATES",
        ]
        .iter()
        .any(|o| std::env::var_os(format!("MIMALLOC_{o}")).is_some());
        if set_outside {
            return;
        }
        // SAFETY: reads of process-wide option values.
        unsafe {
            assert!(mi_version() >= 30000);
            assert_eq!(mi_option_get(PAGE_RECLAIM_ON_FREE), 0);
            assert_eq!(mi_option_get(PAGE_RECLAIM_ON_FREE + 1), 2);
            assert_eq!(mi_option_get(PAGE_RECLAIM_ON_FREE + 2), 4);
            tune();
            assert_eq!(mi_option_get(PAGE_RECLAIM_ON_FREE), 1);
        }
    }

    /// Blocks of every alignment up to a page come back aligned, zeroed when asked, and keep
    /// their bytes through a realloc.
    #[test]
    fn blocks_are_aligned_zeroed_and_kept_through_realloc() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 64, 4096] {
            for size in [1, 7, 24, 670, 5000] {
                let Ok(l) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a non-zero-sized layout; each block is freed once, by this allocator.
                unsafe {
                    let p = a.alloc_zeroed(l);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size}/{align}"
                    );
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    p.write_bytes(0xab, size);
                    let q = a.realloc(p, l, size * 3);
                    assert!(
                        !q.is_null() && (q as usize).is_multiple_of(align),
                        "{size}/{align} realloc"
                    );
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|&b| b == 0xab));
                    a.dealloc(q, Layout::from_size_align_unchecked(size * 3, align));
                    let r = a.alloc(l);
                    assert!(!r.is_null() && (r as usize).is_multiple_of(align));
                    a.dealloc(r, l);
                }
            }
        }
    }
}

//! The binary's global allocator: mimalloc, called the way its fast paths expect. (A module of
//! the binary, not of the library, which forbids `unsafe`.)
//!
//! mimalloc's blocks are aligned to 16 bytes, or to their size below that, so an allocation asking
//! for no more needs plain `mi_malloc`. The `mimalloc` crate (0.1.52) sends every allocation
//! through `mi_malloc_aligned` instead, and mimalloc 3 serves that from its fast path only for
//! blocks up to 1 KiB: a larger block whose size is not a power of two (a connection's boxed
//! future, a response buffer) went to an over-allocating path. callgrind, pipelined `/plaintext`:
//! 1 to 2 such allocations a request at ~210 instructions each, where `mi_malloc` takes ~40.
//!
//! The process also opts out of transparent huge pages ([`keep_small_pages`]): mimalloc reserves
//! its arena as one 1 GiB mapping and asks for huge pages on it (`MADV_HUGEPAGE`, which the usual
//! `madvise` THP setting honours), so a 2 MiB range holding a few live blocks is a whole 2 MiB
//! of RSS, and khugepaged refills the holes mimalloc purges. 10,000 parked connections
//! (bench/RESULTS.md, "Session 7"): RSS grew by 3.3-3.7 KiB each and kept growing while they
//! sat idle; with small pages 1.1-1.3 KiB each, flat.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every mimalloc block of at least this size has (`MI_MAX_ALIGN_SIZE` on 64-bit
/// targets); smaller blocks are aligned to their size rounded up to a word.
const MIN_ALIGN: usize = 16;

/// Whether a plain (unaligned) mimalloc call returns a block aligned as `layout` needs for a
/// block of `size` bytes.
fn plain_call_suffices(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`), for the mappings it
/// has and those it will make: mimalloc's arena would otherwise be backed by 2 MiB pages (see
/// the module doc). Call it first thing in `main`: huge pages already faulted in stay, and
/// mimalloc's constructor has by then touched the arena's first 4 MiB as two of them (measured;
/// they hold the heap's first blocks and stay resident anyway).
pub fn keep_small_pages() -> std::io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_THP_DISABLE takes plain integers and touches no memory of
    // this process; it only sets a flag of the process's memory map.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// mimalloc as the global allocator.
pub struct MiMalloc;

// SAFETY: every method forwards to mimalloc, whose functions are thread-safe and return either
// null or a block of at least the requested size; the plain calls are used only where
// `plain_call_suffices` (mimalloc's documented alignment of its blocks), the aligned calls
// otherwise, so the returned block always meets `layout.align()` (the test below checks it for
// every size class and alignment). `mi_free` takes blocks from any of these calls.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl; mimalloc has no preconditions on sizes or (power-of-two) alignments.
        unsafe {
            if plain_call_suffices(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain_call_suffices(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract), so from mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract); the
        // block keeps `layout.align()` under the same rule as `alloc`.
        unsafe {
            if plain_call_suffices(layout.align(), new_size) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_small_pages_turns_transparent_huge_pages_off() {
        keep_small_pages().expect("PR_SET_THP_DISABLE (Linux 3.15)");
        // SAFETY: PR_GET_THP_DISABLE reads the flag and touches no memory.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }

    /// Sizes from each alignment (up to 4 KiB) to 64 KiB, including sizes that are not multiples
    /// of it (a valid `Layout`, unlike a type's), allocated, grown and shrunk: every block is
    /// aligned. (With the plain calls allowed at every alignment, this fails at 32 bytes.)
    #[test]
    fn every_block_meets_its_layouts_alignment() {
        let a = MiMalloc;
        let mut align = 1;
        while align <= 4096 {
            let mut size = align;
            while size <= 64 * 1024 {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is freed with the layout it has.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc size {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grow size {size} align {align}");
                    assert_eq!(*grown.add(size - 1), 0xa5, "contents kept");
                    let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                    let shrunk = a.realloc(grown, grown_layout, size);
                    assert_eq!(
                        shrunk as usize % align,
                        0,
                        "shrink size {size} align {align}"
                    );
                    a.dealloc(shrunk, layout);
                    a.dealloc(z, layout);
                }
                size += if size < align + 512 { 8 } else { size / 3 };
            }
            align *= 2;
        }
    }
}

//! A global allocator that survives absurd sizes decoded from outside bytes.
//!
//! The protocol codecs pre-allocate arrays from the element count a message
//! claims (`Vec::with_capacity(n)`), before it knows whether the elements are
//! there. A 20-byte garbage frame can claim two billion elements: hundreds of
//! gigabytes, which the system allocator refuses, and a refused allocation
//! aborts the process — one bad client would kill the broker.
//!
//! Allocations of 1 GiB or more are therefore served from an anonymous
//! `MAP_NORESERVE` mapping: address space only, no memory until touched. The
//! decoder then fails on the first missing element, returns an error, and the
//! mapping is released untouched. Everything smaller goes to the system
//! allocator unchanged, so the hot path is not affected.
//!
//! A library never declares it: each binary (`starlog`, `starlog-mirror`,
//! `starlog-bench`) and each test binary that decodes outside bytes does:
//! `#[global_allocator] static GLOBAL: starlog_alloc::GuardedAllocator =
//! starlog_alloc::GuardedAllocator;`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests at or above this size are mapped lazily.
const HUGE: usize = 1 << 30;
/// Alignment an anonymous mapping guarantees.
const PAGE: usize = 4096;

/// The global allocator of every Starlog binary (`starlog`, `starlog-mirror`,
/// `starlog-bench`): a broker or registry that sends garbage cannot make a
/// client's decoder abort the process either.
#[derive(Debug)]
pub struct GuardedAllocator;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE && align <= PAGE
}

// SAFETY: huge blocks come from mmap and go back to munmap with the same
// length (the layout's size, which the caller must pass unchanged); all other
// blocks are delegated to `System` with the caller's layout untouched.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            }
        } else {
            // SAFETY: forwarded with the caller's valid layout.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's valid layout.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: `ptr` came from our mmap of exactly `layout.size()` bytes.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !is_huge(layout.size(), layout.align()) && !is_huge(new_size, layout.align()) {
            // SAFETY: both sizes stay with `System`, which owns `ptr`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocate, copy the overlapping prefix, free the old block
        // through the backend that owns it.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    /// This crate's own test binary uses the allocator too.
    #[global_allocator]
    static GLOBAL: super::GuardedAllocator = super::GuardedAllocator;

    #[test]
    fn an_absurd_capacity_does_not_abort() {
        // 2^31 elements of 64 bytes: 128 GiB of address space, never touched.
        let v: Vec<[u8; 64]> = Vec::with_capacity(i32::MAX as usize);
        assert!(v.capacity() >= i32::MAX as usize);
        let mut small: Vec<u8> = Vec::with_capacity(16);
        small.extend_from_slice(b"still works");
        assert_eq!(&small, b"still works");
    }

    #[test]
    fn growing_across_the_threshold_keeps_contents() {
        let mut v = vec![5u8; (1 << 30) - 8];
        v.reserve(1 << 20);
        assert_eq!(v[0], 5);
        assert_eq!(v[(1 << 30) - 9], 5);
    }
}

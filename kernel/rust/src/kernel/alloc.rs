//! The global allocator: kvmalloc/kvrealloc/kvfree through the C glue.
//!
//! kvmalloc, not kmalloc: what grows with a patch (its descriptions, the records, the
//! handler's table: ~800 KiB at 10,000 functions) need not be physically contiguous, so a
//! large patch does not depend on finding high-order pages on a fragmented machine. Small
//! blocks are kmalloc's all the same.
//!
//! Every allocation in the core must be fallible: the crate is built with
//! `--cfg no_global_oom_handling`, so only the `try_*` APIs of `alloc` exist.

use super::ffi;
use core::alloc::{GlobalAlloc, Layout};

/// kmalloc's guaranteed alignment for any size (ARCH_KMALLOC_MINALIGN on x86_64).
const MIN_ALIGN: usize = 8;
/// kmalloc aligns power-of-two sizes naturally up to a page (vmalloc: to a page); past that
/// we do not go.
const MAX_ALIGN: usize = 4096;

/// The size to ask kvmalloc for so the result honours `layout.align()`.
fn kmalloc_size(layout: Layout) -> Option<usize> {
    let size = layout.size().max(1);
    if layout.align() <= MIN_ALIGN {
        return Some(size);
    }
    if layout.align() > MAX_ALIGN {
        return None;
    }
    size.max(layout.align()).checked_next_power_of_two()
}

pub struct KernelAllocator;

unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match kmalloc_size(layout) {
            // SAFETY: kvmalloc with GFP_KERNEL may sleep; the core allocates only in process
            // context (module init, sysfs stores, module notifier, API calls).
            Some(size) => unsafe { ffi::lpatch_kvmalloc(size) as *mut u8 },
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from kvmalloc/kvrealloc above (GlobalAlloc's contract); the core
        // frees in process context only.
        unsafe { ffi::kvfree(ptr as *const core::ffi::c_void) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(old) = kmalloc_size(layout) else {
            return core::ptr::null_mut();
        };
        if layout.align() > MIN_ALIGN {
            // Grown or shrunk, the block must keep its alignment: allocate, copy, free.
            let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                return core::ptr::null_mut();
            };
            // SAFETY: as for alloc; the copy is within both blocks' sizes.
            unsafe {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                return new;
            }
        }
        // SAFETY: ptr came from kvmalloc/kvrealloc, `old` bytes long (the size asked for
        // it); kvrealloc copies min(old, new) bytes and keeps the old block on failure.
        unsafe { ffi::lpatch_kvrealloc(ptr as *mut core::ffi::c_void, old, new_size.max(1)) as *mut u8 }
    }
}

//! Raw declarations: the layouts and functions bindgen generated from the target kernel's
//! own headers, plus the C glue's helpers (for what is a macro or a static inline in C).
//! Nothing here is safe to call directly outside `kernel`: the safe wrappers sit beside it.

mod generated {
    #![allow(warnings, clippy::all)]
    include!(env!("LPATCH_BINDINGS"));
}
pub use generated::*;

extern "C" {
    /// kmalloc(size, GFP_KERNEL).
    pub fn lpatch_kmalloc(size: usize) -> *mut core::ffi::c_void;
    /// krealloc(p, size, GFP_KERNEL).
    pub fn lpatch_krealloc(p: *mut core::ffi::c_void, size: usize) -> *mut core::ffi::c_void;
    /// BUG(): the end of a Rust panic. It never returns, but is declared as returning so the
    /// caller can end with `ud2` where objtool expects the function to end.
    pub fn lpatch_bug();
}

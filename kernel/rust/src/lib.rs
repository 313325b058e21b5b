//! lpatch: the live patching core, in Rust, linked into lpatch.ko.
//!
//! The C glue (lpatch_glue.c) owns the module boilerplate and calls in through the
//! `lpr_*` entry points; everything that touches the kernel sits in [`kernel`].
#![no_std]
#![feature(vec_push_within_capacity)]

extern crate alloc;

#[macro_use]
pub mod kernel;

use core::ffi::c_int;

#[global_allocator]
static ALLOCATOR: kernel::alloc::KernelAllocator = kernel::alloc::KernelAllocator;

/// The core's version, as MODULE_VERSION and the log show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    pr_err!("Rust panic: {}", info);
    kernel::bug()
}

/// Module init, called by the C glue. Returns 0 or a negative errno.
#[no_mangle]
pub extern "C" fn lpr_init() -> c_int {
    let greeting = match kernel::str::try_format(format_args!("lpatch {} (Rust core) loaded", VERSION)) {
        Ok(s) => s,
        Err(_) => return -12,
    };
    pr_info!("{}", greeting);
    0
}

/// Module exit, called by the C glue.
#[no_mangle]
pub extern "C" fn lpr_exit() {
    pr_info!("lpatch {} unloaded", VERSION);
}

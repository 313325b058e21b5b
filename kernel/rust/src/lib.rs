//! lpatch: the live patching core, in Rust, linked into lpatch.ko.
//!
//! The C glue (lpatch_glue.c) owns the module boilerplate and calls in through the
//! `lpr_*` entry points. Everything that touches the kernel sits in [`kernel`]; the rest is
//! the core's own logic:
//! - [`core`]: the state machine (register, enable, disable, modules coming and going)
//! - [`model`]: the core's records of patches, objects and functions
//! - [`resolve`]: finding old functions through kallsyms
//! - [`redirect`]: per-function replacement stacks and the lockless ftrace lookup
//! - [`sysfs`]: what the attributes show and accept
#![no_std]
#![feature(vec_push_within_capacity, allocator_api)]

extern crate alloc;

#[macro_use]
pub mod kernel;

pub mod core;
pub mod error;
pub mod model;
pub mod redirect;
pub mod resolve;
pub mod sysfs;

use ::core::ffi::c_int;

#[global_allocator]
static ALLOCATOR: kernel::alloc::KernelAllocator = kernel::alloc::KernelAllocator;

/// The core's version, as MODULE_VERSION and the log show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[panic_handler]
fn panic(info: &::core::panic::PanicInfo<'_>) -> ! {
    pr_err!("Rust panic: {}", info);
    kernel::bug()
}

/// Module init, called by the C glue. Returns 0 or a negative errno.
#[no_mangle]
pub extern "C" fn lpr_init() -> c_int {
    match crate::core::init() {
        Ok(()) => {
            pr_info!("lpatch {} (Rust core) loaded", VERSION);
            0
        }
        Err(e) => {
            pr_err!("lpatch {} failed to start: {}", VERSION, e);
            e.to_errno()
        }
    }
}

/// Module exit, called by the C glue.
#[no_mangle]
pub extern "C" fn lpr_exit() {
    crate::core::exit();
    pr_info!("lpatch {} unloaded", VERSION);
}

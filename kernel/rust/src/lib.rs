//! lpatch: the live patching core, in Rust, linked into lpatch.ko.
//!
//! Three layers, each calling only the one below:
//! - [`entry`]: the `lpr_*` entry points the C glue (lpatch_glue.c) calls — module init and
//!   exit, the lpatch.h API, the module notifier, sysfs show/store, the ftrace handler's
//!   lookup — and the core's one lock around the state.
//! - the core's logic, the `lpatch_logic` crate (kernel/logic): the state machine, records,
//!   symbol resolution, redirection bookkeeping, sysfs formatting, over one interface to
//!   the kernel (`lpatch_logic::seam::Kernel`); the host tests run it over a fake kernel.
//! - [`kernel`]: that interface over the real kernel — FFI and thin safe wrappers. Every
//!   `unsafe` of the module lives there, but for the entry points' own: turning the
//!   pointers C passes them into safe types. (The logic crate forbids `unsafe` outright.)
#![no_std]
#![feature(allocator_api)]

extern crate alloc;

#[macro_use]
pub mod kernel;

pub mod entry;

#[global_allocator]
static ALLOCATOR: kernel::alloc::KernelAllocator = kernel::alloc::KernelAllocator;

/// The core's version, as MODULE_VERSION and the log show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[panic_handler]
fn panic(info: &::core::panic::PanicInfo<'_>) -> ! {
    pr_err!("Rust panic: {}", info);
    kernel::bug()
}

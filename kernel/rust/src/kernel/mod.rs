//! The one layer that touches the kernel: FFI declarations and thin safe wrappers, and
//! over them the kernel interface of the core's logic ([`real::Real`]). Every `unsafe`
//! block of the crate lives below this module; nothing here calls up into the logic.
#[macro_use]
pub mod print;
pub mod alloc;
pub mod ffi;
pub mod ftrace;
pub mod kallsyms;
pub mod modules;
pub mod patch_abi;
pub mod rcu;
pub mod real;
pub mod sync;
pub mod sysfs;
pub mod tasks;
pub mod thread;

/// Ends a Rust panic: BUG() in C, then `ud2` so objtool sees the function end in a
/// dead end rather than falling off its section.
pub fn bug() -> ! {
    // SAFETY: lpatch_bug takes no arguments and never returns (it is BUG()); the ud2 after
    // it is never reached and only marks the end of the path for objtool.
    unsafe {
        ffi::lpatch_bug();
        core::arch::asm!("ud2", options(noreturn));
    }
}

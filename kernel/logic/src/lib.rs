//! lpatch's core logic, apart from the kernel it runs in: the kernel crate (kernel/rust)
//! links it into lpatch.ko over the real kernel, and the host tests (crates/) run it over a
//! fake one. Everything it needs of the kernel goes through one interface, [`seam::Kernel`].
//! - [`core`]: the state machine (register, enable, disable, modules coming and going)
//! - [`model`]: the patch as its module describes it, and the core's records of it
//! - [`resolve`]: finding old functions through kallsyms; [`code`]: checking their code
//! - [`redirect`]: per-function replacement stacks and the table the ftrace handler reads
//! - [`transition`]: the consistency model's per-task switch from old to new code
//! - [`reloc`]: a patch module's relocations against module objects' symbols
//! - [`sysfs`]: what the attributes show and accept
//! - [`seam`]: the interface to the kernel; [`log`]: log lines through it
//! - [`error`]: errno values; [`fallible`]: growing collections without panicking
//!
//! No `unsafe` here: the kernel's services are behind the
//! seam, and their `unsafe` lives in the kernel crate's one layer that implements it.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(no_global_oom_handling, feature(vec_push_within_capacity))]

extern crate alloc;

#[macro_use]
pub mod log;

pub mod code;
pub mod core;
pub mod error;
pub mod fallible;
pub mod model;
pub mod redirect;
pub mod reloc;
pub mod resolve;
pub mod seam;
pub mod sysfs;
pub mod transition;

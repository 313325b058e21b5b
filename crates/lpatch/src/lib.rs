// SPDX-License-Identifier: GPL-2.0-only
//! The lpatch command-line tool, as a library so that its logic can be tested against fake
//! /sys, /proc and kernel log trees and a fake syscall layer ([`ops::KernelOps`]).

pub mod app;
pub mod build;
pub mod cli;
pub mod elf;
pub mod errno;
pub mod ftrace_users;
pub mod klp_convert;
pub mod kmsg;
pub mod ops;
pub mod procmods;
pub mod render;
pub mod syms;
pub mod sysfs;
pub mod taint;
pub mod unresolved;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

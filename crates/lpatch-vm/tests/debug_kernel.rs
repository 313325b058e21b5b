// SPDX-License-Identifier: GPL-2.0-only
//! Proves the debug kernel (scripts/debug-kernel.sh, `make test-debug`) catches what it
//! should, and that the rig's clean-log check fails on each class of report: one tiny
//! module per checker (samples/debug-*), loaded in a guest, must leave the expected
//! report in the kernel log.
//!
//! These tests only mean something on the debug kernel: their names hold
//! `needs_debug_kernel`, so `make test-debug` runs them and `make test` skips them
//! (README, "Tests"); selected on any other kernel, each fails
//! ([`require_debug_kernel`]: the kernel directory's `config` has CONFIG_PROVE_LOCKING=y
//! and CONFIG_KASAN=y). The modules come from `$LPATCH_BUILD/samples/<name>/` (built
//! against the debug tree by the top Makefile).

use lpatch_vm::{require_debug_kernel, Vm, VmRun};
use std::path::PathBuf;

/// `$LPATCH_BUILD/samples/<dir>/<dir>.ko`.
fn sample_ko(dir: &str) -> PathBuf {
    let build = std::env::var_os("LPATCH_BUILD")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../build/current"))
        });
    let ko = build.join("samples").join(dir).join(format!("{dir}.ko"));
    assert!(
        ko.is_file(),
        "{} is missing: `make test-debug` builds it against the debug kernel",
        ko.display()
    );
    ko
}

/// Loads samples/<dir> in a guest of the debug kernel; the load itself succeeds.
fn load(dir: &str, module: &str) -> VmRun {
    let run = Vm::new()
        .ko(sample_ko(dir))
        .script(&format!(
            "insmod {dir}.ko && echo loaded\nrmmod {module} && echo removed\n"
        ))
        .timeout(180)
        .run()
        .unwrap();
    assert_eq!(run.status, Some(0), "{}", run.report());
    assert_eq!(run.output, "loaded\nremoved\n", "{}", run.report());
    run
}

/// The run has a splat line containing every one of `needles`, and is not clean.
#[track_caller]
fn assert_caught(run: &VmRun, needles: &[&str]) {
    let splats = run.splats();
    assert!(
        splats.iter().any(|l| needles.iter().all(|n| l.contains(n))),
        "no splat line with {needles:?}: {splats:#?}\n{}",
        run.report()
    );
    assert!(
        std::panic::catch_unwind(|| run.assert_clean()).is_err(),
        "assert_clean must fail"
    );
}

/// A clean guest of the debug kernel has no splat at all: the checkers' boot messages
/// are no reports.
#[test]
fn needs_debug_kernel_boots_clean() {
    require_debug_kernel();
    let run = Vm::new().script("uname -r\n").timeout(180).run().unwrap();
    run.assert_ok();
    eprintln!(
        "needs_debug_kernel_boots_clean: {} MiB, boot {:?}, wall {:?}",
        Vm::new().memory_mb(),
        run.boot,
        run.wall
    );
}

/// lockdep (PROVE_LOCKING): two mutexes taken in both orders.
#[test]
fn needs_debug_kernel_lock_inversion_is_caught() {
    require_debug_kernel();
    let run = load("debug-lockinv", "debug_lockinv");
    assert_caught(
        &run,
        &["WARNING: possible circular locking dependency detected"],
    );
    assert!(
        run.kernel_log.contains("debug_lockinv_a"),
        "{}",
        run.report()
    );
}

/// KASAN: a read after kfree().
#[test]
fn needs_debug_kernel_use_after_free_is_caught() {
    require_debug_kernel();
    let run = load("debug-uaf", "debug_uaf");
    assert_caught(&run, &["BUG: KASAN: use-after-free in debug_uaf_init"]);
}

/// DEBUG_ATOMIC_SLEEP: a GFP_KERNEL allocation under a spinlock.
#[test]
fn needs_debug_kernel_sleep_in_atomic_is_caught() {
    require_debug_kernel();
    let run = load("debug-sleep", "debug_sleep");
    assert_caught(
        &run,
        &["BUG: sleeping function called from invalid context"],
    );
}

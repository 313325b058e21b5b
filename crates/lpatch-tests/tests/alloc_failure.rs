// SPDX-License-Identifier: GPL-2.0-only
//! Allocation failure, everywhere the core allocates. lp_test's `fail_walk=1` registers and
//! enables its patch with the kernel's per-task fail-nth armed, for N = 1, 2, ... in turn
//! within one init, until the Nth slab allocation is no longer reached: every N must fail
//! whole (and the patch is then not registered: unregistering it fails) or succeed (then it
//! is disabled and unregistered again), and the last N succeeds. Nothing may be left behind
//! by any of them: the same patch registers again at once each time (its name, its sysfs
//! directory), and after the final disable no ftrace site is left and the original code
//! runs. Needs a kernel with CONFIG_FAILSLAB, the debug kernel: `make test-debug` runs it, `make
//! test` skips it (its name holds needs_debug_kernel); selected elsewhere it fails.
//!
//! Another patch (lp_test_c) stays enabled under each walk, so the core's ftrace_ops is
//! registered throughout and the walked enables and disables are filter updates. The
//! register of the ops itself (the first patched function) allocates ftrace's trampoline
//! with module_alloc(), whose failure ftrace absorbs (its list function serves the ops)
//! but reports with a stack dump; the host tests cover the core's side of that path
//! (crates/lpatch-fake-kernel/tests/ftrace_ops.rs).

use lpatch_tests::{vm, Facts};
use lpatch_vm::{config_on, require_debug_kernel, Boot};

const SCRIPT: &str = r#"
F=/sys/kernel/debug/failslab
echo 0 > $F/verbose
# GFP_KERNEL allocations may sleep: by default failslab leaves them alone
echo N > $F/ignore-gfp-wait
ORIG=$(cat /proc/cmdline)
same() { [ "$(cat /proc/cmdline)" = "$ORIG" ] && echo y || echo n; }
run base insmod lp_test_c.ko func=version_proc_show
run walk insmod lp_test_a.ko func=cmdline_proc_show repl=1 fail_walk=1
show enabled cat $R/lp_test_a/enabled
show cmdline cat /proc/cmdline
show traced traced cmdline_proc_show
run off sh -c "echo 0 > $R/lp_test_a/enabled"
run base-off sh -c "echo 0 > $R/lp_test_c/enabled"
show sites patched_sites
show orig same
"#;

/// Kernel lines an injected allocation failure rightly causes: kobject_create_and_add()
/// reports its own failure (they would otherwise count as splats).
fn expected_line(line: &str) -> bool {
    line.contains("kobject_add_internal failed for ") && line.contains("(error: -12 ")
        || line.contains("kobject_create_and_add: kobject_add error: -12")
}

#[test]
fn needs_debug_kernel_every_allocation_failure_refuses_whole_or_applies_whole() {
    let dir = require_debug_kernel();
    assert!(
        config_on(&dir, "CONFIG_FAILSLAB"),
        "{} has no CONFIG_FAILSLAB",
        dir.display()
    );
    let run = vm(Boot::Pvh, SCRIPT).run().unwrap();
    let f = Facts::of(&run);
    assert!(
        !run.timed_out && run.status == Some(0),
        "script failed\n{}",
        f.report
    );
    let unexpected: Vec<String> = run
        .splats()
        .into_iter()
        .filter(|l| !expected_line(l))
        .collect();
    assert!(
        unexpected.is_empty(),
        "kernel log not clean: {unexpected:#?}\n{}",
        f.report
    );

    // The walk's own account, one line per N.
    let steps: Vec<&str> = run
        .kernel_log
        .lines()
        .filter_map(|l| l.split_once("lp_test_a: walk ").map(|(_, r)| r))
        .collect();
    let last = steps
        .last()
        .unwrap_or_else(|| panic!("no walk lines\n{}", f.report));
    assert!(
        last.ends_with(": not reached, returned 0"),
        "walk ended {last:?}\n{}",
        f.report
    );
    let (mut refused, mut absorbed) = (0, 0);
    for (i, s) in steps[..steps.len() - 1].iter().enumerate() {
        let n = i + 1;
        assert!(
            s.starts_with(&format!("{n}: ")),
            "step {n} is {s:?}\n{}",
            f.report
        );
        if s.ends_with(": absorbed, disable 0, unregister 0") {
            absorbed += 1;
        } else {
            // ENOMEM, and the patch was not left registered (unregister: -EINVAL).
            assert!(
                s.ends_with(": returned -12, unregister then -22"),
                "step {n}: {s:?}\n{}",
                f.report
            );
            refused += 1;
        }
    }
    eprintln!(
        "alloc_failure: {} slab allocations in register + enable; {refused} refused whole, {absorbed} absorbed",
        steps.len() - 1
    );
    assert!(
        refused > 0,
        "no allocation failure was refused\n{}",
        f.report
    );
    assert!(
        run.kernel_log.contains("nothing of it is applied"),
        "no log line names the cause\n{}",
        f.report
    );
    f.ok("base");
    f.ok("walk");
    f.eq("enabled", "1");
    f.eq("cmdline", "lp_test_a");
    f.eq("traced", "1");
    f.ok("off");
    f.ok("base-off");
    f.eq("sites", "");
    f.eq("orig", "y");
}

const REMOVAL_SCRIPT: &str = r#"
F=/sys/kernel/debug/failslab
echo 0 > $F/verbose
echo N > $F/ignore-gfp-wait
ORIG=$(cat /proc/cmdline)
same() { [ "$(cat /proc/cmdline)" = "$ORIG" ] && echo y || echo n; }
run base insmod lp_test_c.ko func=version_proc_show
run walk insmod lp_test_b.ko func=cmdline_proc_show repl=1 fail_walk=2
show dirs ls $R
run base-off sh -c "echo 0 > $R/lp_test_c/enabled"
run last insmod lp_test_d.ko func=cmdline_proc_show repl=1 fail_walk=2
show sites patched_sites
show orig same
"#;

/// Removal never fails for want of memory (issue 21, item 2): lp_test's `fail_walk=2`
/// registers and enables its patch, then disables and unregisters it with the Nth slab
/// allocation failing, for N = 1, 2, ... until no allocation is reached. lpatch allocates
/// nothing there; ftrace's own filter update does (it copies the filter), and when that
/// fails the core absorbs it: disable and unregister still succeed, the function runs its
/// own code, and the next change takes it out of the filter. Then the same walk with no
/// other patch enabled (lp_test_d): disabling the last patch unregisters the core's
/// ftrace_ops instead, and nothing there allocates at all. Needs CONFIG_FAILSLAB: the
/// debug kernel.
#[test]
fn needs_debug_kernel_removal_succeeds_with_every_allocation_failing() {
    let dir = require_debug_kernel();
    assert!(
        config_on(&dir, "CONFIG_FAILSLAB"),
        "{} has no CONFIG_FAILSLAB",
        dir.display()
    );
    let run = vm(Boot::Pvh, REMOVAL_SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let steps: Vec<&str> = run
        .kernel_log
        .lines()
        .filter_map(|l| l.split_once("lp_test_b: removal walk ").map(|(_, r)| r))
        .collect();
    let last = steps
        .last()
        .unwrap_or_else(|| panic!("no walk lines\n{}", f.report));
    assert!(
        last.ends_with(": not reached, disable 0, unregister 0"),
        "walk ended {last:?}\n{}",
        f.report
    );
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        assert!(
            s.starts_with(&format!("{n}: ")) && s.ends_with(", disable 0, unregister 0"),
            "step {n}: {s:?}\n{}",
            f.report
        );
    }
    // The failures the walk reached were ftrace's, absorbed and logged.
    assert!(
        steps.len() > 1,
        "no allocation reached in disable + unregister: is failslab on?\n{}",
        f.report
    );
    assert!(
        run.kernel_log.contains(
            "lpatch: ftrace cannot take 1 unpatched function out of lpatch's filter (-ENOMEM"
        ),
        "no log line for ftrace's failure\n{}",
        f.report
    );
    eprintln!(
        "removal walk: {} slab allocations reached in disable + unregister, {} of them in ftrace's filter update; each absorbed",
        steps.len() - 1,
        run.kernel_log.matches("lpatch: ftrace cannot take").count()
    );
    f.ok("base");
    f.ok("walk");
    f.eq("dirs", "lp_test_c");
    f.ok("base-off");
    // The last patch's removal (the ops unregistered) reaches no allocation at all.
    let last: Vec<&str> = run
        .kernel_log
        .lines()
        .filter_map(|l| l.split_once("lp_test_d: removal walk ").map(|(_, r)| r))
        .collect();
    assert_eq!(
        last,
        ["1: not reached, disable 0, unregister 0"],
        "{}",
        f.report
    );
    f.ok("last");
    f.eq("sites", "");
    f.eq("orig", "y");
}

// SPDX-License-Identifier: GPL-2.0-only
//! References and windows on the real kernel (issue 19; the host tests in
//! crates/lpatch-fake-kernel/tests/references.rs cover the same logic in milliseconds):
//! a patch module going away with its patch enabled leaves no reference on the module it
//! patched, `enabled` cannot be written while the patch module's init runs, and the core
//! unloads and loads again cleanly.

use lpatch_tests::{log_count, log_has, on_debug_kernel, vm, Facts};
use lpatch_vm::Boot;

const GOING: &str = r#"
run tload insmod lpt_target.ko
run failinit insmod lp_test_c.ko obj=lpt_target func=lpt_target_message repl=2 fail_after_enable=1
show ref1 cat /sys/module/lpt_target/refcnt
show msg1 cat /proc/lpt_target
show dir1 ls -d $R/lp_test_c
run rmmod1 rmmod lpt_target
run tload2 insmod lpt_target.ko
run d insmod lp_test_d.ko obj=lpt_target func=lpt_target_message repl=2
show msg2 cat /proc/lpt_target
show ref2 cat /sys/module/lpt_target/refcnt
run force rmmod -f lp_test_d
show ref3 cat /sys/module/lpt_target/refcnt
show msg3 cat /proc/lpt_target
show sites3 patched_sites
run rmmod3 rmmod lpt_target
"#;

/// A patch module whose patch is enabled goes away — its init fails after enabling, or it
/// is removed by force — and the module it patched can be unloaded afterwards.
#[test]
fn patch_module_going_while_enabled_leaves_no_reference_on_its_target() {
    let run = vm(Boot::Pvh, GOING).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("tload");
    f.errno("failinit", 11); // EAGAIN, from its init, after enabling
    f.eq("ref1", "0");
    f.eq("msg1", "original");
    f.has("dir1", &["No such file"]);
    f.ok("rmmod1");
    f.ok("tload2");
    f.ok("d");
    f.eq("msg2", "patched by lp_test_d");
    f.eq("ref2", "1");
    f.ok("force");
    f.eq("ref3", "0");
    f.eq("msg3", "original");
    f.eq("sites3", "");
    f.ok("rmmod3");
    log_has(
        &run,
        "patch module lp_test_d is going away with its patch enabled",
    );
}

const WINDOW: &str = r#"
export ORIG="$(cat /proc/cmdline)"
insmod lp_test_a.ko func=cmdline_proc_show repl=1 pause_ms=$PAUSE > /tmp/ins.out 2>&1 &
ins=$!
n=0; until [ -e $R/lp_test_a/enabled ] || [ $n -ge 500 ]; do n=$((n+1)); usleep 10000; done
put early 1 $R/lp_test_a/enabled
put early-off 0 $R/lp_test_a/enabled
show early-enabled cat $R/lp_test_a/enabled
show early-same sh -c '[ "$(cat /proc/cmdline)" = "$ORIG" ] && echo y || echo n'
show inwindow sh -c "kill -0 $ins 2>/dev/null && echo y || echo n"
wait $ins
echo "@ins rc=$? $(cat /tmp/ins.out | oneline)"
show enabled cat $R/lp_test_a/enabled
show cmdline cat /proc/cmdline
put off 0 $R/lp_test_a/enabled
put on 1 $R/lp_test_a/enabled
"#;

/// Between the patch module's lp_register_patch and its lp_enable_patch, the patch's
/// sysfs directory exists, but a write to `enabled` is refused (EBUSY): the init owns the
/// patch until it returns. Afterwards sysfs works as always.
#[test]
fn enabled_is_refused_while_the_patch_module_initialises() {
    // The init's pause must outlast the checks made in it: the debug kernel is several
    // times slower (the test asserts the window was still open after them).
    let pause = if on_debug_kernel() { 15000 } else { 3000 };
    let run = vm(Boot::Pvh, &format!("PAUSE={pause}\n{WINDOW}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.failed("early", "busy");
    f.failed("early-off", "busy");
    f.eq("early-enabled", "0");
    f.eq("early-same", "y");
    f.eq("inwindow", "y");
    f.ok("ins");
    f.eq("enabled", "1");
    f.eq("cmdline", "lp_test_a");
    f.ok("off");
    f.ok("on");
    log_has(
        &run,
        "patch lp_test_a: its module is still initialising; its init enables the patch",
    );
}

const RELOAD: &str = r#"
show root0 ls -d $R
run rm1 rmmod lpatch
show root1 ls -d $R
show mod1 grep -c "^lpatch " /proc/modules
show sites1 cat $T/enabled_functions
run ld2 insmod lpatch.ko
show root2 ls -d $R
show sites2 patched_sites
run rm2 rmmod lpatch
show root2b ls -d $R
show sites2b cat $T/enabled_functions
run ld3 insmod lpatch.ko
run s insmod livepatch-sample.ko
show cmdline3 cat /proc/cmdline
show ref3 cat /sys/module/lpatch/refcnt
"#;

/// `rmmod lpatch` with no patches, and loading it again, twice: the sysfs root goes and
/// comes back, nothing is left in ftrace, and the reloaded core patches as before.
#[test]
fn core_unloads_and_reloads_cleanly() {
    let run = vm(Boot::Pvh, RELOAD).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.eq("root0", "/sys/kernel/lpatch");
    f.ok("rm1");
    f.has("root1", &["No such file"]);
    f.eq("mod1", "0");
    f.eq("sites1", "");
    f.ok("ld2");
    f.eq("root2", "/sys/kernel/lpatch");
    f.eq("sites2", "");
    f.ok("rm2");
    f.has("root2b", &["No such file"]);
    f.eq("sites2b", "");
    f.ok("ld3");
    f.ok("s");
    f.eq("cmdline3", "this has been live patched");
    f.eq("ref3", "1");
    let unloads = run
        .kernel_log
        .lines()
        .filter(|l| l.contains("lpatch: lpatch ") && l.ends_with(" unloaded"))
        .count();
    assert_eq!(unloads, 2, "{}", f.report);
}

const STRADDLE: &str = r#"
run rm0 rmmod lpatch
insmod lpt_target.ko init_ms=4000 > /tmp/t.out 2>&1 &
tgt=$!
n=0; until grep -q "^lpt_target " /proc/modules || [ $n -ge 500 ]; do n=$((n+1)); usleep 10000; done
show state0 grep -o "^lpt_target [0-9]* [0-9]* - [A-Za-z]*" /proc/modules
run ld insmod lpatch.ko
run a insmod lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2
show traced1 traced lpt_target_message
wait $tgt
echo "@tload rc=$? $(cat /tmp/t.out | oneline)"
show msg2 cat /proc/lpt_target
show traced2 traced lpt_target_message
show ref2 cat /sys/module/lpt_target/refcnt
"#;

/// A module whose load straddles the core's own start (its COMING notification went out
/// before the core was there) and whose patch is enabled while its init still runs: the
/// core patches it when it turns LIVE.
#[test]
fn module_loading_across_the_core_start_is_patched_once_live() {
    let run = vm(Boot::Pvh, STRADDLE).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("rm0");
    f.has("state0", &["Loading"]);
    f.ok("ld");
    f.ok("a");
    f.eq("traced1", "0");
    f.ok("tload");
    f.eq("msg2", "patched by lp_test_a");
    f.eq("traced2", "1");
    f.eq("ref2", "1");
}

const RECURSION: &str = r#"
run h insmod recursion_hold.ko
run a insmod lp_test_a.ko obj=recursion_hold func=rh_message repl=2
put run1 1 /sys/module/recursion_hold/parameters/run
put run2 1 /sys/module/recursion_hold/parameters/run
put off 0 $R/lp_test_a/enabled
put run3 1 /sys/module/recursion_hold/parameters/run
"#;

/// A patched function called while ftrace's recursion guard is held runs its original:
/// the core says so in the log, once per function, naming it (a line, not a WARN).
#[test]
fn recursion_bypass_is_logged_once_per_function() {
    let run = vm(Boot::Pvh, RECURSION).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("h");
    f.ok("a");
    f.ok("run1");
    f.ok("run2");
    f.ok("off");
    f.ok("run3");
    let results: Vec<&str> = run
        .kernel_log
        .lines()
        .filter_map(|l| l.split_once("recursion_hold: plain: ").map(|(_, r)| r))
        .collect();
    assert_eq!(
        results,
        [
            "patched by lp_test_a; under the recursion guard: original",
            "patched by lp_test_a; under the recursion guard: original",
            "original; under the recursion guard: original",
        ],
        "{}",
        f.report
    );
    let noted = log_count(&run, "lpatch: rh_message [recursion_hold] called recursively inside ftrace: its original ran, not the replacement");
    assert_eq!(noted, 1, "{}", f.report);
}

// SPDX-License-Identifier: GPL-2.0-only
//! Several patches on one function: the last enabled wins, only the most recently enabled
//! may be disabled, disabling restores the patch below; a patch module whose init fails
//! after enabling takes its patch away with it.

use lpatch_tests::{log_has, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
run s insmod livepatch-sample.ko
run a insmod lp_test_a.ko func=cmdline_proc_show repl=1
show c1 cat /proc/cmdline
put s-off 0 $R/livepatch_sample/enabled
show c2 cat /proc/cmdline
run b insmod lp_test_b.ko func=cmdline_proc_show repl=1
show c3 cat /proc/cmdline
show traced3 traced cmdline_proc_show
put a-off 0 $R/lp_test_a/enabled
put b-off 0 $R/lp_test_b/enabled
show c4 cat /proc/cmdline
put a-off2 0 $R/lp_test_a/enabled
show c5 cat /proc/cmdline
put s-off2 0 $R/livepatch_sample/enabled
show c6 cat /proc/cmdline
show traced6 traced cmdline_proc_show
put a-on 1 $R/lp_test_a/enabled
put s-on 1 $R/livepatch_sample/enabled
show c7 cat /proc/cmdline
run c insmod lp_test_c.ko func=cmdline_proc_show repl=1 fail_after_enable=1
show c8 cat /proc/cmdline
show cdir ls $R
show traced8 traced cmdline_proc_show
"#;

#[test]
fn stacked_patches_last_enabled_wins_and_unwinds_in_order() {
    let run = vm(Boot::Pvh, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("s");
    f.ok("a");
    f.eq("c1", "lp_test_a");
    f.failed("s-off", "Device or resource busy");
    log_has(&run, "cannot disable patch livepatch_sample: patch lp_test_a was enabled after it; disable lp_test_a first");
    f.eq("c2", "lp_test_a");
    f.ok("b");
    f.eq("c3", "lp_test_b");
    // One record, one ftrace site, however many patches.
    f.eq("traced3", "1");
    f.failed("a-off", "Device or resource busy");
    f.ok("b-off");
    f.eq("c4", "lp_test_a");
    f.ok("a-off2");
    f.eq("c5", "this has been live patched");
    f.ok("s-off2");
    assert!(
        !f.get("c6").contains("live patched") && !f.get("c6").contains("lp_test"),
        "{}",
        f.report
    );
    f.eq("traced6", "0");
    // Re-enabled in another order: the last enabled wins again.
    f.ok("a-on");
    f.ok("s-on");
    f.eq("c7", "this has been live patched");
    // lp_test_c enables, then its init fails: its module is freed, so its patch must go.
    f.errno("c", 11);
    log_has(
        &run,
        "patch module lp_test_c is going away with its patch enabled: removing the patch",
    );
    f.eq("c8", "this has been live patched");
    assert!(!f.get("cdir").contains("lp_test_c"), "{}", f.report);
    f.eq("traced8", "1");
}

// SPDX-License-Identifier: GPL-2.0-only
//! The core's ftrace_ops is held only while something is patched (issue 24, item 2): with
//! nothing patched ftrace routes nothing to lpatch and `sysctl kernel.ftrace_enabled=0`
//! works, lpatch loads with it 0, and a patch enabled then is refused (EBUSY) with a log
//! line naming the sysctl and nothing left of it; while a patch is enabled ftrace refuses
//! the sysctl (the ops is permanent), as it does for the in-kernel livepatch.

use lpatch_tests::{log_has, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
S=/proc/sys/kernel/ftrace_enabled
show sites0 patched_sites
put off0 0 $S
run reload sh -c 'rmmod lpatch && insmod lpatch.ko'
run load-off insmod livepatch-sample.ko
show left-off ls $R
show mod-off ls -d /sys/module/livepatch_sample
show cmdline-off cat /proc/cmdline
put on1 1 $S
run load insmod livepatch-sample.ko
show cmdline1 cat /proc/cmdline
show sites1 patched_sites
put off1 0 $S
show ftrace1 cat $S
show cmdline2 cat /proc/cmdline
put dis 0 $R/livepatch_sample/enabled
show sites2 patched_sites
put off2 0 $S
put en-off 1 $R/livepatch_sample/enabled
show enabled-off cat $R/livepatch_sample/enabled
put on3 1 $S
put en 1 $R/livepatch_sample/enabled
show cmdline3 cat /proc/cmdline
"#;

#[test]
fn ftrace_can_be_switched_off_exactly_while_nothing_is_patched() {
    let run = vm(Boot::Pvh, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    // Nothing patched: ftrace routes nothing to lpatch, and may be switched off.
    f.eq("sites0", "");
    f.ok("off0");
    f.ok("reload");
    // A patch enabled with ftrace off is refused whole, saying why.
    f.errno("load-off", 16);
    log_has(
        &run,
        "lpatch: patch livepatch_sample: ftrace is switched off (sysctl kernel.ftrace_enabled=0)",
    );
    f.eq("left-off", "");
    assert!(f.get("mod-off").contains("No such file"), "{}", f.report);
    assert!(
        !f.get("cmdline-off").contains("live patched"),
        "{}",
        f.report
    );
    f.ok("on1");
    f.ok("load");
    f.eq("cmdline1", "this has been live patched");
    assert!(
        f.get("sites1").starts_with("cmdline_proc_show "),
        "{}",
        f.report
    );
    // Patched: ftrace refuses to be switched off, and the patch keeps working.
    f.failed("off1", "Device or resource busy");
    f.eq("ftrace1", "1");
    f.eq("cmdline2", "this has been live patched");
    // Disabled (the last patch): the ops is gone, and ftrace may be switched off again.
    f.ok("dis");
    f.eq("sites2", "");
    f.ok("off2");
    f.failed("en-off", "Device or resource busy");
    f.eq("enabled-off", "0");
    f.ok("on3");
    f.ok("en");
    f.eq("cmdline3", "this has been live patched");
}

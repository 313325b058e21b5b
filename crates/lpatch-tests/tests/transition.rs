// SPDX-License-Identifier: GPL-2.0-only
//! The consistency model in the VM (issue 27, slice a): a kernel thread asleep inside the
//! function a patch replaces (samples/lpt-sleeper) holds the patch's transition — the
//! patch is enabled, `transition` reads 1 and stays 1 over repeated walks, and a disable
//! meanwhile is refused (EBUSY) with a log line; woken, the thread leaves the function and
//! the next walk ends the transition (`transition` 0, the log counts the walks). Disabling
//! then ends at once (nothing is inside the replacement). The per-task state is the
//! in-kernel livepatch's: the kernel log stays clean of lockdep reports on the debug kernel.

use lpatch_tests::{log_count, log_has, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
P=$R/lp_test_a
run sleeper insmod lpt_sleeper.ko
i=0; while ! grep -q waiting /proc/lpt_sleeper && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
show where0 cat /proc/lpt_sleeper
run load insmod lp_test_a.ko obj=lpt_sleeper func=lpt_sleeper_wait repl=0
show enabled1 cat $P/enabled
show trans1 cat $P/transition
show mode stat -c '%a' $P/transition
sleep 2
show trans2 cat $P/transition
put off-busy 0 $P/enabled
show where1 cat /proc/lpt_sleeper
echo release > /proc/lpt_sleeper
i=0; while [ "$(cat $P/transition)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
show trans3 cat $P/transition
show where2 cat /proc/lpt_sleeper
put off 0 $P/enabled
show trans4 cat $P/transition
show enabled4 cat $P/enabled
run unload rmmod lpt_sleeper
"#;

#[test]
fn a_kernel_thread_inside_the_old_function_holds_the_transition_until_woken() {
    let run = vm(Boot::Kaslr, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("sleeper");
    f.eq("where0", "waiting");
    f.ok("load");
    f.eq("enabled1", "1");
    f.eq("trans1", "1");
    f.eq("mode", "444");
    // Still blocked after two seconds of walks.
    f.eq("trans2", "1");
    f.failed("off-busy", "Device or resource busy");
    log_has(
        &run,
        "cannot disable patch lp_test_a: patch lp_test_a is in a transition to enabled; wait for it to end",
    );
    f.eq("where1", "waiting");
    // Woken, it left lpt_sleeper_wait: the transition ended.
    f.eq("trans3", "0");
    f.eq("where2", "resting");
    let done = "patch lp_test_a: transition to enabled complete (";
    assert_eq!(log_count(&run, done), 1, "{}", run.report());
    let walks: u32 = run
        .kernel_log
        .lines()
        .find_map(|l| l.split(done).nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no walk count\n{}", run.report()));
    assert!(walks > 2, "{walks} walks\n{}", run.report());
    f.ok("off");
    f.eq("trans4", "0");
    f.eq("enabled4", "0");
    log_has(
        &run,
        "patch lp_test_a: transition to disabled complete (1 walk)",
    );
    log_has(&run, "disabled patch lp_test_a");
    f.ok("unload");
}

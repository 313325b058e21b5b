// SPDX-License-Identifier: GPL-2.0-only
//! The consistency model in the VM (issue 27). samples/lpt-sleeper's kernel thread asleep
//! inside the function a patch replaces holds the patch's transition (`transition` reads 1
//! over repeated walks); another (loaded) patch's enable meanwhile is refused (EBUSY, a
//! log line); writing 0 reverses it, and it ends at once (the thread never left the old
//! code); the disabled patch's module unloads. Loaded again, its transition is held again while a
//! module load, a module unload and the in-kernel livepatch's patch load wait (the in-kernel
//! livepatch's mutex, which lpatch holds for the transition); woken, the thread leaves and
//! all of them go on. The other order: a transition of the in-kernel livepatch running
//! refuses lpatch's enable. A task asleep inside a patch's new code (samples/lpt-sleeper's
//! napper in lp_test's repl=4) holds a disable: its module cannot be unloaded meanwhile;
//! writing 1 reverses the disable. Each test's kernel log is clean (lockdep too, on the
//! debug kernel). Further scenarios: a stalled transition named and nudged out (with a fork
//! storm), getpid under 128 processes, a protocol change under 64 threads.

use lpatch_tests::{log_count, log_has, vm, Facts};
use lpatch_vm::Boot;

/// Shell helpers of these scripts: `waitfor COND` polls a condition for up to 20 s.
const HELPERS: &str = r#"
waitfor() { i=0; while ! eval "$1" && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; }
K=/sys/kernel/livepatch/klp_cmdline
# The in-kernel livepatch puts its patch module from a work item after the transition.
klp_unload() {
    echo 0 > $K/enabled
    waitfor 'rmmod klp_cmdline 2>/dev/null'
    show klp-unloaded grep -c "^klp_cmdline " /proc/modules
}
run sleeper insmod lpt_sleeper.ko
waitfor 'grep -q waiting /proc/lpt_sleeper'
show where0 cat /proc/lpt_sleeper
"#;

const HELD_SCRIPT: &str = r#"
P=$R/lp_test_a
# Sleeping user tasks, for the walks to check (and to let go of the task list between).
pids=
for i in $(seq 300); do sleep 600 >/dev/null 2>&1 & pids="$pids $!"; done
run target insmod lpt_target.ko
run other-load insmod lp_test_b.ko func=cmdline_proc_show repl=1 enable=0
run load insmod lp_test_a.ko obj=lpt_sleeper func=lpt_sleeper_wait repl=0
show enabled1 cat $P/enabled
show trans1 cat $P/transition
show mode stat -c '%a' $P/transition
sleep 1
show trans2 cat $P/transition
put other 1 $R/lp_test_b/enabled
run rmmod-busy rmmod lp_test_a
put reverse 0 $P/enabled
settle
show enabled2 cat $P/enabled
show trans3 cat $P/transition
show where1 cat /proc/lpt_sleeper
run unload-a rmmod lp_test_a
show gone ls $R
run load2 insmod lp_test_a.ko obj=lpt_sleeper func=lpt_sleeper_wait repl=0
show trans4 cat $P/transition
(rmmod lpt_target; echo "rc=$?") > /tmp/rmmod.out 2>&1 &
(insmod klp_cmdline.ko; echo "rc=$?") > /tmp/klp.out 2>&1 &
sleep 1
show rmmod-waits cat /tmp/rmmod.out
show klp-waits cat /tmp/klp.out
show klp-dir1 ls /sys/kernel/livepatch
show trans5 cat $P/transition
echo release > /proc/lpt_sleeper
settle
show trans6 cat $P/transition
show where2 cat /proc/lpt_sleeper
waitfor '[ -s /tmp/klp.out ] && [ -s /tmp/rmmod.out ]'
show rmmod-done cat /tmp/rmmod.out
show klp-done cat /tmp/klp.out
waitfor '[ "$(cat $K/transition)" = 0 ]'
show klp-cmdline cat /proc/cmdline
put off 0 $P/enabled
settle
run unload rmmod lp_test_a
klp_unload
run other-unload rmmod lp_test_b
kill $pids
"#;

#[test]
fn a_kernel_thread_in_the_old_function_holds_the_transition_and_a_disable_reverses_it() {
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{HELD_SCRIPT}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("sleeper");
    f.eq("where0", "waiting");
    f.ok("target");
    f.ok("other-load");
    f.ok("load");
    f.eq("enabled1", "1");
    f.eq("trans1", "1");
    f.eq("mode", "444");
    // Still blocked after a second of walks.
    f.eq("trans2", "1");
    // One transition at a time.
    f.failed("other", "Device or resource busy");
    log_has(
        &run,
        "cannot enable patch lp_test_b: patch lp_test_a is in a transition to enabled; wait for it to end, or reverse it (write 0 to its enabled)",
    );
    // Its code may run: its module stays.
    assert!(!f.get("rmmod-busy").starts_with("rc=0"), "{}", run.report());
    // Reversed: the thread never left the old code, so the transition back ends at once.
    f.ok("reverse");
    log_has(
        &run,
        "patch lp_test_a: transition reversed, to disabled now",
    );
    f.eq("enabled2", "0");
    f.eq("trans3", "0");
    f.eq("where1", "waiting");
    log_has(&run, "disabled patch lp_test_a");
    // Disabled, its transition over: the patch module unloads.
    f.ok("unload-a");
    f.eq("gone", "lp_test_b");
    f.ok("load2");
    f.eq("trans4", "1");
    // While lpatch's transition runs, a module unload, a module load and the in-kernel
    // livepatch's patch wait (the kernel takes klp_mutex for each).
    f.eq("rmmod-waits", "");
    f.eq("klp-waits", "");
    f.eq("klp-dir1", "");
    f.eq("trans5", "1");
    // Woken, the thread left lpt_sleeper_wait: the transition ended, and they went on.
    f.eq("trans6", "0");
    f.eq("where2", "resting");
    f.eq("rmmod-done", "rc=0");
    f.eq("klp-done", "rc=0");
    f.eq("klp-cmdline", "patched by the in-kernel livepatch");
    let done = "patch lp_test_a: transition to enabled complete (";
    assert_eq!(log_count(&run, done), 1, "{}", run.report());
    let rest = run
        .kernel_log
        .lines()
        .find_map(|l| l.split(done).nth(1))
        .unwrap_or_else(|| panic!("no completion line\n{}", run.report()));
    let walks: u32 = rest
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no walk count\n{}", run.report()));
    assert!(walks > 2, "{walks} walks\n{}", run.report());
    let held_us: u64 = rest
        .split("locked ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lock hold\n{}", run.report()));
    eprintln!(
        "longest hold of tasklist_lock by a walk over ~350 tasks: {held_us} us ({walks} walks)"
    );
    // A few stack checks at a time: far below a whole walk of these tasks under the lock.
    assert!(held_us < 20_000, "{held_us} us\n{}", run.report());
    f.ok("off");
    log_has(
        &run,
        "patch lp_test_a: transition to disabled complete (1 walk;",
    );
    f.ok("unload");
    f.eq("klp-unloaded", "0");
    f.ok("other-unload");
}

const KLP_FIRST_SCRIPT: &str = r#"
run klp insmod klp_cmdline.ko sleeper=1
sleep 1
show ktrans1 cat $K/transition
run refused insmod lp_test_a.ko func=cmdline_proc_show repl=1
echo release > /proc/lpt_sleeper
waitfor '[ "$(cat $K/transition)" = 0 ]'
show ktrans2 cat $K/transition
run load insmod lp_test_a.ko func=cmdline_proc_show repl=1
settle
show cmdline cat /proc/cmdline
put off 0 $R/lp_test_a/enabled
settle
run unload rmmod lp_test_a
klp_unload
"#;

#[test]
fn a_transition_of_the_in_kernel_livepatch_refuses_an_enable() {
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{KLP_FIRST_SCRIPT}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.eq("where0", "waiting");
    f.ok("klp");
    // The sleeping thread holds the in-kernel livepatch's transition.
    f.eq("ktrans1", "1");
    f.failed("refused", "Device or resource busy");
    log_has(
        &run,
        "patch lp_test_a: the per-task patch state is in use (-EBUSY (16)): the in-kernel livepatch is in a transition; try again when it ends",
    );
    assert_eq!(
        log_count(&run, "another ftrace user"),
        0,
        "{}",
        run.report()
    );
    // Nothing of it stayed.
    log_has(
        &run,
        "patch lp_test_a not enabled (-EBUSY (16)); nothing of it is applied",
    );
    f.eq("ktrans2", "0");
    f.ok("load");
    f.eq("cmdline", "lp_test_a");
    f.ok("off");
    f.ok("unload");
    f.eq("klp-unloaded", "0");
}

const NEW_CODE_SCRIPT: &str = r#"
P=$R/lp_test_b
N=/sys/module/lp_test_b/parameters
run load insmod lp_test_b.ko obj=lpt_sleeper func=lpt_sleeper_nap repl=4
settle
waitfor '[ "$(cat $N/naps)" -ge 1 ]'
show naps cat $N/naps
put off 0 $P/enabled
sleep 1
show trans1 cat $P/transition
show enabled1 cat $P/enabled
run rmmod-busy rmmod lp_test_b
put on 1 $P/enabled
settle
show trans2 cat $P/transition
show enabled2 cat $P/enabled
put off2 0 $P/enabled
sleep 1
show trans3 cat $P/transition
echo 0 > $N/hold
settle
show trans4 cat $P/transition
run unload rmmod lp_test_b
run again insmod lp_test_b.ko obj=lpt_sleeper func=lpt_sleeper_nap repl=4 hold=0
settle
show enabled3 cat $P/enabled
put off3 0 $P/enabled
settle
run unload2 rmmod lp_test_b
run sleeper-unload rmmod lpt_sleeper
"#;

#[test]
fn a_task_in_the_new_code_holds_a_disable_and_an_enable_reverses_it() {
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{NEW_CODE_SCRIPT}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("load");
    assert_ne!(f.get("naps"), "0", "{}", run.report());
    // The napper sleeps inside the replacement: the disable cannot end.
    f.ok("off");
    f.eq("trans1", "1");
    f.eq("enabled1", "0");
    assert!(!f.get("rmmod-busy").starts_with("rc=0"), "{}", run.report());
    // Writing 1 reverses it: the napper is where the transition goes now.
    f.ok("on");
    log_has(&run, "patch lp_test_b: transition reversed, to enabled now");
    f.eq("trans2", "0");
    f.eq("enabled2", "1");
    f.ok("off2");
    f.eq("trans3", "1");
    // Let go, the napper leaves the new code: the disable ends, the module unloads.
    f.eq("trans4", "0");
    // Final once for this disable (the reversed one never was), once for the last.
    assert_eq!(
        log_count(&run, "disabled patch lp_test_b"),
        2,
        "{}",
        run.report()
    );
    f.ok("unload");
    // And loads again.
    f.ok("again");
    f.eq("enabled3", "1");
    f.ok("off3");
    f.ok("unload2");
    f.ok("sleeper-unload");
}

const STALL_SCRIPT: &str = r#"
S=/sys/module/lpt_sleeper/parameters
P=$R/lp_test_a
echo release > /proc/lpt_sleeper
(echo hold > /proc/lpt_sleeper; echo "rc=$?") > /tmp/hold.out 2>&1 &
waitfor '[ "$(cat $S/holds)" -ge 1 ] && [ "$(cat $S/dozes)" -ge 1 ]'
run load insmod lp_test_a.ko obj=lpt_sleeper func=lpt_sleeper_doze func2=lpt_sleeper_hold repl=0
show trans1 cat $P/transition
sleep 1
show trans2 cat $P/transition
show hold-waits cat /tmp/hold.out
# A fork storm during the transition: children inherit their parent's state, exit
# while walks let go of the task list, and are born behind their cursors.
i=0; while [ $i -lt 300 ]; do (sleep 0.2) & i=$((i+1)); done
waitfor '[ "$(cat $P/transition)" = 0 ]'
show trans3 cat $P/transition
waitfor '[ -s /tmp/hold.out ]'
show hold-done cat /tmp/hold.out
show holds cat $S/holds
put off 0 $P/enabled
settle
run unload rmmod lp_test_a
run sleeper-unload rmmod lpt_sleeper
"#;

#[test]
fn a_stalled_transition_names_its_tasks_and_nudges_them_out_after_15_s() {
    // (And a fork storm runs during it.)
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{STALL_SCRIPT}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("load");
    // A kernel thread and a user task asleep in the patched functions hold it.
    f.eq("trans1", "1");
    f.eq("trans2", "1");
    f.eq("hold-waits", "");
    log_has(
        &run,
        "patch lp_test_a: transition to enabled not complete after 15 s: 2 tasks not switched (2 in the patch's code, 0 running, 0 with an unreliable stack)",
    );
    let named = |comm: &str, func: &str| {
        run.kernel_log.lines().any(|l| {
            l.contains(&format!("({comm}) is in {func}+0x")) && l.contains("[lpt_sleeper]")
        })
    };
    assert!(named("lpt_dozer", "lpt_sleeper_doze"), "{}", run.report());
    assert!(named("sh", "lpt_sleeper_hold"), "{}", run.report());
    log_has(
        &run,
        "patch lp_test_a: woke 1 kernel thread and sent 1 user task a fake signal",
    );
    // Woken, the kernel thread left; signalled, the user task's write restarted in the
    // new code (which returns at once: the old one was entered once).
    f.eq("trans3", "0");
    f.eq("hold-done", "rc=0");
    f.eq("holds", "1");
    log_has(&run, "patch lp_test_a: transition to enabled complete (");
    f.ok("off");
    f.ok("unload");
    f.ok("sleeper-unload");
}

const GETPID_SCRIPT: &str = r#"
P=$R/lp_test_c
(lpatch-probe getpid-storm 128 10 > /tmp/storm.out 2>&1; echo "rc=$?" >> /tmp/storm.out) &
sleep 2
run on1 insmod lp_test_c.ko func=__x64_sys_getpid repl=5
settle
sleep 1
put off1 0 $P/enabled
settle
sleep 1
put on2 1 $P/enabled
settle
sleep 1
put off2 0 $P/enabled
put on3 1 $P/enabled
settle
sleep 1
put off3 0 $P/enabled
settle
waitfor 'grep -q rc= /tmp/storm.out'
show storm cat /tmp/storm.out
run unload rmmod lp_test_c
"#;

/// The upstream selftest's idea: getpid hammered by 128 processes while a patch of it is
/// enabled, disabled, enabled, reversed halfway (or enabled again, if that transition had
/// ended) and disabled: every call returns the old value or the new one, and no process
/// turns between them more often than the patch changed.
#[test]
fn getpid_under_128_processes_returns_the_old_or_the_new_value() {
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{GETPID_SCRIPT}"))
        .file(
            lpatch_vm::static_binary("lpatch-probe", "lpatch-probe", "LPATCH_PROBE"),
            "/bin/lpatch-probe",
        )
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    for k in ["on1", "off1", "on2", "off2", "on3", "off3", "unload"] {
        f.ok(k);
    }
    let storm = f.get("storm");
    let field = |name: &str| -> u64 {
        storm
            .split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {storm:?}\n{}", run.report()))
    };
    eprintln!("getpid storm: {storm}");
    assert_eq!(field("procs"), 128, "{}", run.report());
    assert_eq!(field("rc"), 0, "{}", run.report());
    assert_eq!(field("other"), 0, "{}", run.report());
    assert!(field("old") > 0 && field("new") > 0, "{}", run.report());
    assert!(field("most-turns") <= 6, "{}", run.report());
    log_has(&run, "patch lp_test_c: transition to enabled complete (");
}

const PROTO_SCRIPT: &str = r#"
M=/sys/module
run target insmod lpt_proto.ko
sleep 1
run on1 insmod lp_proto.ko
settle
sleep 1
put off1 0 $R/lp_proto/enabled
settle
sleep 1
put on2 1 $R/lp_proto/enabled
put off2 0 $R/lp_proto/enabled
settle
show counts cat $M/lpt_proto/parameters/old_calls $M/lpt_proto/parameters/old_violations $M/lp_proto/parameters/new_calls $M/lp_proto/parameters/new_violations
run unload rmmod lp_proto
run target-unload rmmod lpt_proto
"#;

/// A change of protocol between two functions (samples/lpt-proto: the caller's token must
/// match the callee's) patched, unpatched, and patched with a reversal halfway, under 64
/// kernel threads calling them and sleeping inside the chain: no chain ever mixes old and
/// new code, in any thread.
#[test]
fn a_protocol_change_under_64_threads_never_mixes_old_and_new() {
    let run = vm(Boot::Kaslr, &format!("{HELPERS}{PROTO_SCRIPT}"))
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    for k in [
        "target",
        "on1",
        "off1",
        "on2",
        "off2",
        "unload",
        "target-unload",
    ] {
        f.ok(k);
    }
    let counts: Vec<u64> = f
        .get("counts")
        .split(' ')
        .map(|n| n.parse().unwrap_or(u64::MAX))
        .collect();
    eprintln!("protocol change: old calls, violations; new calls, violations: {counts:?}");
    let [old, old_bad, new, new_bad] = counts[..] else {
        panic!("counts: {counts:?}\n{}", run.report());
    };
    assert!(old > 0 && new > 0, "{}", run.report());
    assert_eq!((old_bad, new_bad), (0, 0), "{}", run.report());
    log_has(&run, "patch lp_proto: transition to enabled complete (");
    log_has(&run, "patch lp_proto: transition to disabled complete (");
}

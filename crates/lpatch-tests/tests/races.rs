// SPDX-License-Identifier: GPL-2.0-only
//! Races, on two vCPUs (this test binary has one test, so it runs alone): 32 writers on one
//! `enabled`, and a target module loaded and unloaded 200 times while its patch is enabled
//! and disabled in a loop (the unload succeeds only while the patch is disabled). On the
//! debug kernel 40 times: every rmmod there waits for the module's delayed kobject
//! releases (DEBUG_KOBJECT_RELEASE), seconds per round under TCG.
//! Each ends consistent, with a clean kernel log.

use lpatch_tests::{log_count, on_debug_kernel, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
run s insmod livepatch-sample.ko
E=$R/livepatch_sample/enabled
for i in $(seq 32); do
  ( for j in $(seq 10); do echo $((j % 2)) > $E; done ) 2>/dev/null &
done
wait
show e1 cat $E
show c1 cat /proc/cmdline
show t1 traced cmdline_proc_show

run a insmod lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2
A=$R/lp_test_a/enabled
( while [ ! -e /tmp/stop ]; do echo 0 > $A; usleep 3000; echo 1 > $A; usleep 3000; done ) 2>/dev/null &
flip=$!
bad=0; loads=0; patched=0
for i in $(seq $ROUNDS); do
  if insmod lpt_target.ko 2>/dev/null; then
    loads=$((loads+1))
    m=$(cat /proc/lpt_target)
    [ "$m" = "patched by lp_test_a" ] && patched=$((patched+1))
    case "$m" in original|"patched by lp_test_a") ;; *) bad=$((bad+1)); echo "bad message $m";; esac
    n=0; until rmmod lpt_target 2>/dev/null || [ $n -ge 500 ]; do n=$((n+1)); usleep 500; done
  fi
done
touch /tmp/stop
wait $flip
show bad echo $bad
show loads echo $loads
show patched echo $patched
run final-off sh -c "echo 0 > $A"
rmmod lpt_target 2>/dev/null
show t2 traced lpt_target_message
run tload insmod lpt_target.ko
show m2 cat /proc/lpt_target
run final-on sh -c "echo 1 > $A"
show m3 cat /proc/lpt_target
show ref3 cat /sys/module/lpt_target/refcnt
show t3 traced lpt_target_message
run rmmod-held rmmod lpt_target
run final-off2 sh -c "echo 0 > $A"
run rmmod rmmod lpt_target
show t4 traced lpt_target_message
"#;

#[test]
fn concurrent_writers_and_module_load_unload_loops_end_consistent() {
    let rounds = if on_debug_kernel() { 40 } else { 200 };
    let script = format!("ROUNDS={rounds}\n{SCRIPT}");
    let run = vm(Boot::Pvh, &script).smp(2).timeout(600).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("s");
    // Whatever order the writers landed in, enabled, the redirection and ftrace agree.
    match f.get("e1") {
        "1" => {
            f.eq("c1", "this has been live patched");
            f.eq("t1", "1");
        }
        "0" => {
            assert!(!f.get("c1").contains("live patched"), "{}", f.report);
            f.eq("t1", "0");
        }
        other => panic!("enabled reads {other:?}\n{}", f.report),
    }
    f.ok("a");
    f.eq("bad", "0");
    let loads: u32 = f.get("loads").parse().unwrap();
    assert!(
        loads >= rounds / 2,
        "the target loaded only {loads} times in {rounds} rounds\n{}",
        f.report
    );
    // The race window: a module's arrival racing the flip loop. Both sides of it must be
    // hit, often enough to count: the target arriving while its patch is enabled (the core
    // patches it as it loads, and says so) and while it is disabled. (What /proc reads a
    // moment later says little: the rounds fall into step with the flips, the unload
    // waiting for a disable, and it read "original" in nearly every round.)
    let arrivals = log_count(
        &run,
        "lpatch: patch lp_test_a: patched module lpt_target as it loads",
    ) as u32;
    eprintln!(
        "races: target loaded {loads} times in {rounds} rounds: {arrivals} while the patch was enabled, \
         {} while disabled; /proc read patched {} times",
        loads - arrivals.min(loads),
        f.get("patched")
    );
    assert!(
        arrivals >= 5,
        "the target arrived while its patch was enabled only {arrivals} times\n{}",
        f.report
    );
    assert!(
        loads >= arrivals + 5,
        "the target arrived while its patch was disabled only {} times\n{}",
        loads - arrivals.min(loads),
        f.report
    );
    f.eq("t2", "0");
    f.ok("tload");
    f.eq("m2", "original");
    f.ok("final-on");
    f.eq("m3", "patched by lp_test_a");
    f.eq("ref3", "1");
    f.eq("t3", "1");
    assert!(!f.get("rmmod-held").starts_with("rc=0"), "{}", f.report);
    f.ok("final-off2");
    f.ok("rmmod");
    f.eq("t4", "0");
}

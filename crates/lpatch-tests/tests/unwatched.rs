// SPDX-License-Identifier: GPL-2.0-only
//! A patched function where RCU is not watching (issue 24, item 1): `arch_cpu_idle`, which
//! the idle loop calls after `ct_idle_enter()`, replaced by a polling one (lp_test repl=3)
//! so one vCPU runs it, and the core's ftrace handler before it, over and over, while the
//! other vCPU enables and disables two more patches in a loop. Each enable builds a new
//! redirection table and frees the old one once every CPU has scheduled; had the core
//! waited with `synchronize_rcu()` only, which does not wait for the idle CPU, the handler
//! there could read a freed table. The race is nanoseconds wide, so this cannot fail
//! reliably when the wait is wrong; on the debug kernel (KASAN, lockdep, RCU debugging) it
//! must stay clean, with every round's redirection right. This test binary has one test,
//! so it runs alone (two vCPUs).
//!
//! The two vCPUs share one host thread (`Vm::one_thread`): with a thread each, qemu 7.2's
//! MTTCG can leave the idle CPU looping at `arch_cpu_idle`'s first byte for good after
//! the other CPU's ftrace rewrote that call site (a stale translation of the breakpoint,
//! interrupts off: the guest hangs without a word; seen once in ~30 enables of the idle
//! patch, both vCPUs' RIP at `arch_cpu_idle`), which real CPUs never do.

use lpatch_tests::{vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
run idle insmod lp_test_a.ko func=arch_cpu_idle repl=3
show traced traced arch_cpu_idle
run b insmod lp_test_b.ko func=cmdline_proc_show repl=1 enable=0
run c insmod lp_test_c.ko func=version_proc_show enable=0
N=/sys/module/lp_test_a/parameters/idle_calls
show calls0 cat $N
bad=0
for i in $(seq $ROUNDS); do
  echo 1 > $R/lp_test_b/enabled || bad=$((bad+1))
  echo 1 > $R/lp_test_c/enabled || bad=$((bad+1))
  [ "$(cat /proc/cmdline)" = lp_test_b ] || bad=$((bad+1))
  [ -z "$(cat /proc/version)" ] || bad=$((bad+1))
  echo 0 > $R/lp_test_c/enabled || bad=$((bad+1))
  echo 0 > $R/lp_test_b/enabled || bad=$((bad+1))
  grep -q lp_test_b /proc/cmdline && bad=$((bad+1))
done
show bad echo $bad
show calls1 cat $N
show version cat /proc/version
put idle-off 0 $R/lp_test_a/enabled
show traced-off traced arch_cpu_idle
show calls2 cat $N
sleep 1
show calls3 cat $N
"#;

#[test]
fn needs_debug_kernel_idle_function_patched_while_other_patches_churn_stays_clean() {
    let rounds = 150;
    let script = format!("ROUNDS={rounds}\n{SCRIPT}");
    let run = vm(Boot::Pvh, &script)
        .smp(2)
        .one_thread()
        .timeout(600)
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("idle");
    f.eq("traced", "1");
    f.ok("b");
    f.ok("c");
    f.eq("bad", "0");
    let calls = |k: &str| -> u64 {
        f.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k}\n{}", f.report))
    };
    // The replacement ran where RCU is not watching, throughout the churn.
    assert!(
        calls("calls1") > calls("calls0") + rounds,
        "the idle replacement barely ran\n{}",
        f.report
    );
    assert!(f.get("version").contains("Linux version"), "{}", f.report);
    f.ok("idle-off");
    f.eq("traced-off", "0");
    assert_eq!(
        calls("calls2"),
        calls("calls3"),
        "the idle replacement runs after its patch was disabled\n{}",
        f.report
    );
    eprintln!(
        "unwatched: {rounds} rounds; the idle replacement ran {} times meanwhile",
        calls("calls1") - calls("calls0")
    );
}

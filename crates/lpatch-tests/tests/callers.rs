// SPDX-License-Identifier: GPL-2.0-only
//! Callers during every state change (issue 21, item 5), on two vCPUs (this test binary has
//! one test, so it runs alone): a patched function is called in a loop on the other CPU
//! while its patch is enabled, disabled, stacked under another and removed with its module,
//! and while its target module comes and goes (each change waits for its transition to
//! end: with a caller always running the function, a disable's transition ends only at
//! that caller's next syscall exit, and its module reference goes with it). Every call
//! returns the old or the new result — both are seen, counted — and nothing else; the
//! kernel log stays clean. On the
//! stock kernel and the debug kernel (fewer rounds there: every rmmod waits for delayed
//! kobject releases).
//!
//! The guest's two vCPUs share one host thread (`Vm::one_thread`): with a thread each
//! (qemu 7.2's MTTCG), a CPU calling a function while another CPU's ftrace rewrites its
//! call site can be left spinning at the site for good — a soft lockup at its first byte.
//! That needs no lpatch (the function tracer switched on and off does it within a few
//! dozen rounds, on this kernel), and real CPUs do not do it: it is the emulator's.

use lpatch_tests::{on_debug_kernel, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
# The driver on CPU 0, the callers on CPU 1.
taskset -p -c 0 $$ >/dev/null
read -r ORIG < /proc/cmdline

# vmlinux: cmdline_proc_show, through /proc/cmdline (read is a shell builtin: no fork).
taskset -c 1 sh -c '
  o=0; a=0; b=0; bad=0
  while [ ! -e /tmp/stop1 ]; do
    read -r m < /proc/cmdline
    case "$m" in
      "$0") o=$((o+1));;
      lp_test_a) a=$((a+1));;
      lp_test_b) b=$((b+1));;
      *) bad=$((bad+1)); echo "$m" >> /tmp/bad1;;
    esac
  done
  echo "$o $a $b $bad" > /tmp/counts1' "$ORIG" &
caller=$!
run a insmod lp_test_a.ko func=cmdline_proc_show repl=1
A=$R/lp_test_a/enabled
fails=0
for i in $(seq $ROUNDS); do
  echo 0 > $A; settle; echo 1 > $A; settle
  # Registers, enables on top of lp_test_a, disables, enables again, then its init fails:
  # the patch is removed with its module, while enabled.
  insmod lp_test_b.ko func=cmdline_proc_show repl=1 extra=3 fail_after_enable=1 2>/dev/null || fails=$((fails+1))
done
echo 0 > $A; settle
touch /tmp/stop1
wait $caller
show counts1 cat /tmp/counts1
show bad1 cat /tmp/bad1
show b-refused echo $fails
show t1 traced cmdline_proc_show

# A module's function, through /proc/lpt_target, while the module comes and goes.
taskset -c 1 sh -c '
  o=0; p=0; absent=0; bad=0
  while [ ! -e /tmp/stop2 ]; do
    if read -r m 2>/dev/null < /proc/lpt_target; then
      case "$m" in
        original) o=$((o+1));;
        "patched by lp_test_c") p=$((p+1));;
        *) bad=$((bad+1)); echo "$m" >> /tmp/bad2;;
      esac
    else
      absent=$((absent+1))
    fi
  done
  echo "$o $p $absent $bad" > /tmp/counts2' &
caller=$!
run c insmod lp_test_c.ko obj=lpt_target func=lpt_target_message repl=2
C=$R/lp_test_c/enabled
loads=0
for i in $(seq $ROUNDS); do
  insmod lpt_target.ko && loads=$((loads+1))
  echo 0 > $C; settle; echo 1 > $C; settle; echo 0 > $C; settle
  rmmod lpt_target
  echo 1 > $C; settle
done
touch /tmp/stop2
wait $caller
show counts2 cat /tmp/counts2
show bad2 cat /tmp/bad2
show loads echo $loads
echo 0 > $C; settle
show sites patched_sites
"#;

/// The four counts a caller loop wrote ("o a b bad", or "o p absent bad").
fn counts(f: &Facts, key: &str) -> [u64; 4] {
    let v: Vec<u64> = f
        .get(key)
        .split_whitespace()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("{key}: {n:?}\n{}", f.report))
        })
        .collect();
    v.try_into()
        .unwrap_or_else(|v| panic!("{key}: {v:?} is not four counts\n{}", f.report))
}

#[test]
fn callers_see_old_or_new_through_every_state_change() {
    let rounds = if on_debug_kernel() { 5 } else { 40 };
    let script = format!("ROUNDS={rounds}\n{SCRIPT}");
    let run = vm(Boot::Pvh, &script)
        .smp(2)
        .one_thread()
        .timeout(600)
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);

    f.ok("a");
    let c1 = counts(&f, "counts1");
    let [orig, a, b, bad] = c1;
    eprintln!(
        "callers, vmlinux: {} calls: {orig} original, {a} lp_test_a, {b} lp_test_b, {bad} else",
        orig + a + b + bad
    );
    assert_eq!(
        bad,
        0,
        "calls returned something else: {}\n{}",
        f.get("bad1"),
        f.report
    );
    assert!(
        orig > 0 && a > 0,
        "both results not seen: {c1:?}\n{}",
        f.report
    );
    // Each lp_test_b load ends in its init's failure (on request), never anything else.
    f.eq("b-refused", &rounds.to_string());
    f.eq("t1", "0");

    f.ok("c");
    let c2 = counts(&f, "counts2");
    let [orig, patched, absent, bad] = c2;
    eprintln!(
        "callers, module: {} reads: {orig} original, {patched} patched, {absent} with the module away, {bad} else",
        orig + patched + absent + bad
    );
    assert_eq!(
        bad,
        0,
        "calls returned something else: {}\n{}",
        f.get("bad2"),
        f.report
    );
    assert!(
        orig > 0 && patched > 0,
        "both results not seen: {c2:?}\n{}",
        f.report
    );
    f.eq("loads", &rounds.to_string());
    f.eq("sites", "");
}

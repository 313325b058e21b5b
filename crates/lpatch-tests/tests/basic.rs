// SPDX-License-Identifier: GPL-2.0-only
//! A vmlinux function patched, shown in sysfs, disabled and re-enabled, with every bad
//! write to `enabled` refused and the patch module held while enabled. KASLR boot: addresses
//! are checked.

use lpatch_tests::{log_has, tainted_k, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
P=$R/livepatch_sample
F=$P/vmlinux/cmdline_proc_show,1
show livepatch-dir ls -d /sys/kernel/livepatch
show taint0 cat /proc/sys/kernel/tainted
show sites0 patched_sites
show cmdline0 cat /proc/cmdline
run load insmod livepatch-sample.ko
show cmdline1 cat /proc/cmdline
show enabled1 cat $P/enabled
show modes stat -c '%n=%a' $P/enabled $F/old_addr $F/new_addr
show old_addr cat $F/old_addr
show new_addr cat $F/new_addr
show sym_old sym cmdline_proc_show
show sym_new modsym livepatch_cmdline_proc_show livepatch_sample
show traced1 traced cmdline_proc_show
show taint1 cat /proc/sys/kernel/tainted
for v in 2 abc 1xyz yes 1 "1
" " 1" "0 " "0
0" "$(printf '%5000s' | tr ' ' 0)"; do
  n=$((n+1)); put bad$n "$v" $P/enabled
done
put empty "" $P/enabled
show enabled2 cat $P/enabled
show cmdline2 cat /proc/cmdline
put w0 0 $P/enabled
show cmdline3 cat /proc/cmdline
show enabled3 cat $P/enabled
show traced3 traced cmdline_proc_show
show old_addr3 cat $F/old_addr
put w0again "0
" $P/enabled
put w1 "1
" $P/enabled
show cmdline4 cat /proc/cmdline
show traced4 traced cmdline_proc_show
run rmmod rmmod livepatch_sample
show still ls -d /sys/module/livepatch_sample
show refcnt cat /sys/module/livepatch_sample/refcnt
"#;

#[test]
fn vmlinux_patch_sysfs_disable_enable_and_bad_writes() {
    let run = vm(Boot::Kaslr, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    // The in-kernel core owns /sys/kernel/livepatch here, so lpatch uses /sys/kernel/lpatch.
    f.eq("livepatch-dir", "/sys/kernel/livepatch");
    assert!(
        !tainted_k(f.get("taint0")),
        "K before any patch\n{}",
        f.report
    );
    // With nothing patched the core's ftrace_ops is not registered: ftrace routes nothing.
    f.eq("sites0", "");
    assert!(!f.get("cmdline0").contains("live patched"));
    f.ok("load");
    f.eq("cmdline1", "this has been live patched");
    f.eq("enabled1", "1");
    f.has("modes", &["enabled=644", "old_addr=400", "new_addr=400"]);
    // Runtime addresses, KASLR included, as kallsyms shows them.
    assert_eq!(f.addr("old_addr"), f.addr("sym_old"), "{}", f.report);
    assert_eq!(f.addr("new_addr"), f.addr("sym_new"), "{}", f.report);
    f.eq("traced1", "1");
    assert!(
        tainted_k(f.get("taint1")),
        "no K after enable\n{}",
        f.report
    );
    // Everything but exactly 0 or 1 (plus one newline) is refused; so is the current state.
    for i in 1..=10 {
        f.failed(&format!("bad{i}"), "Invalid argument");
    }
    // A zero-length write never reaches the store: accepted by the VFS, no change.
    f.ok("empty");
    f.eq("enabled2", "1");
    f.eq("cmdline2", "this has been live patched");
    f.ok("w0");
    assert!(!f.get("cmdline3").contains("live patched"), "{}", f.report);
    f.eq("enabled3", "0");
    f.eq("traced3", "0");
    // vmlinux stays resolved while disabled.
    assert_eq!(f.addr("old_addr3"), f.addr("sym_old"));
    f.failed("w0again", "Invalid argument");
    f.ok("w1");
    f.eq("cmdline4", "this has been live patched");
    f.eq("traced4", "1");
    // Held while enabled: its code runs in place of the old.
    assert!(!f.get("rmmod").starts_with("rc=0"), "{}", f.report);
    f.eq("still", "/sys/module/livepatch_sample");
    assert!(f.get("refcnt").parse::<u32>().unwrap() >= 1);
    log_has(&run, "lpatch: enabled patch livepatch_sample (1 function)");
    log_has(
        &run,
        "lpatch: patch livepatch_sample: enabled: invalid value",
    );
    log_has(&run, "lpatch: patch livepatch_sample is already enabled");
    log_has(&run, "lpatch: patch livepatch_sample is not enabled");
}

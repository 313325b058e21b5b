// SPDX-License-Identifier: GPL-2.0-only
//! A function already claimed by another ip-modifying ftrace user — a kprobe with a post
//! handler, or the kernel's own livepatch core — is refused with -EBUSY, nothing applied.
//! A patch registered but never enabled can be unloaded.

use lpatch_tests::{log_has, tainted_k, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
run kp insmod kprobe_post.ko
run s1 insmod livepatch-sample.ko
show c1 cat /proc/cmdline
show dir1 ls $R
show taint1 cat /proc/sys/kernel/tainted
show mod1 ls /sys/module/livepatch_sample
run kp-off rmmod kprobe_post
run klp insmod klp_cmdline.ko
show c2 cat /proc/cmdline
run s2 insmod livepatch-sample.ko
show c3 cat /proc/cmdline
show dir3 ls $R
run a insmod lp_test_a.ko func=cmdline_proc_show func2=elf_core_dump sympos=0
show dir4 ls $R
show klp-traced grep -c cmdline_proc_show $T/enabled_functions
run reg-only insmod lp_test_b.ko func=elf_core_dump sympos=1 enable=0
show reg-enabled cat $R/lp_test_b/enabled
show reg-old cat $R/lp_test_b/vmlinux/elf_core_dump,1/old_addr
run reg-rmmod rmmod lp_test_b
show reg-dir ls $R
"#;

#[test]
fn ipmodify_conflicts_are_refused_whole() {
    let run = vm(Boot::Pvh, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("kp");
    f.errno("s1", 16); // EBUSY
    log_has(&run, "lpatch: patch livepatch_sample: a function of it (vmlinux:cmdline_proc_show) is already modified by another ftrace user");
    assert!(!f.get("c1").contains("live patched"), "{}", f.report);
    f.eq("dir1", "");
    assert!(!tainted_k(f.get("taint1")), "{}", f.report);
    assert!(f.get("mod1").contains("No such file"), "{}", f.report);
    f.ok("kp-off");
    f.ok("klp");
    f.eq("c2", "patched by the in-kernel livepatch");
    f.errno("s2", 16);
    f.eq("c3", "patched by the in-kernel livepatch");
    f.eq("dir3", "");
    // The second function of lp_test_a is ambiguous: refused before ftrace is touched.
    f.errno("a", 22);
    f.eq("dir4", "");
    f.eq("klp-traced", "1");
    // Registered, never enabled: shown disabled, resolved, and unloadable (its exit
    // unregisters and the directory goes).
    f.ok("reg-only");
    f.eq("reg-enabled", "0");
    assert_ne!(f.get("reg-old"), "0x0", "{}", f.report);
    f.ok("reg-rmmod");
    f.eq("reg-dir", "");
    log_has(&run, "lpatch: unregistered patch lp_test_b");
}

// SPDX-License-Identifier: GPL-2.0-only
//! Patches of a module: references taken and dropped, a module loaded after its patch
//! patched before its init runs, a patched module whose init fails, `rmmod -f` of a patched
//! module, and a module whose enabled patch cannot patch it (a missing function, its
//! `__init` code) refused at load.

use lpatch_tests::{log_has, vm, Facts};
use lpatch_vm::Boot;

const BEFORE: &str = r#"
P=$R/lp_test_a
F=$P/lpt_target/lpt_target_message,1
run tload insmod lpt_target.ko
show msg0 cat /proc/lpt_target
show ref0 cat /sys/module/lpt_target/refcnt
run load insmod lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2
show msg1 cat /proc/lpt_target
show ref1 cat /sys/module/lpt_target/refcnt
show old1 cat $F/old_addr
show sym1 modsym lpt_target_message lpt_target
show new1 cat $F/new_addr
show symnew modsym lp_test_message lp_test_a
show traced1 traced lpt_target_message
run rmmod-held rmmod lpt_target
put off 0 $P/enabled
show msg2 cat /proc/lpt_target
show ref2 cat /sys/module/lpt_target/refcnt
show traced2 traced lpt_target_message
run rmmod rmmod lpt_target
show old3 cat $F/old_addr
show dir3 ls -d $R/lp_test_a/lpt_target
put on "1
" $P/enabled
show enabled4 cat $P/enabled
show traced4 traced lpt_target_message
run tload2 insmod lpt_target.ko
show msg5 cat /proc/lpt_target
show ref5 cat /sys/module/lpt_target/refcnt
show old5 cat $F/old_addr
show sym5 modsym lpt_target_message lpt_target
show traced5 traced lpt_target_message
put off2 0 $P/enabled
show msg6 cat /proc/lpt_target
show ref6 cat /sys/module/lpt_target/refcnt
"#;

#[test]
fn module_patched_when_loaded_before_and_after() {
    let run = vm(Boot::Kaslr, BEFORE).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("tload");
    f.eq("msg0", "original");
    let ref0: u32 = f.get("ref0").parse().unwrap();
    f.ok("load");
    f.eq("msg1", "patched by lp_test_a");
    f.eq("ref1", &(ref0 + 1).to_string());
    assert_eq!(f.addr("old1"), f.addr("sym1"), "{}", f.report);
    assert_eq!(f.addr("new1"), f.addr("symnew"), "{}", f.report);
    f.eq("traced1", "1");
    // The reference keeps the target loaded while the patch is enabled.
    assert!(!f.get("rmmod-held").starts_with("rc=0"), "{}", f.report);
    f.ok("off");
    f.eq("msg2", "original");
    f.eq("ref2", &ref0.to_string());
    f.eq("traced2", "0");
    f.ok("rmmod");
    // The object directory stays; its addresses read 0 while the module is away.
    f.eq("old3", "0x0");
    f.eq("dir3", "/sys/kernel/lpatch/lp_test_a/lpt_target");
    // Enabling with the target absent patches nothing for it...
    f.ok("on");
    f.eq("enabled4", "1");
    f.eq("traced4", "0");
    // ...until it loads: patched on arrival, reference taken.
    f.ok("tload2");
    log_has(
        &run,
        "lpatch: patch lp_test_a: patched module lpt_target as it loads (1 function)",
    );
    f.eq("msg5", "patched by lp_test_a");
    f.eq("ref5", &(ref0 + 1).to_string());
    assert_eq!(f.addr("old5"), f.addr("sym5"), "{}", f.report);
    f.eq("traced5", "1");
    f.ok("off2");
    f.eq("msg6", "original");
    f.eq("ref6", &ref0.to_string());
}

const AFTER: &str = r#"
P=$R/lp_test_a
F=$P/lpt_target/lpt_target_message,1
run load insmod lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2
show old0 cat $F/old_addr
show traced0 traced lpt_target_message
run failinit insmod lpt_target.ko fail_init=1
show traced1 traced lpt_target_message
show old1 cat $F/old_addr
show gone1 ls /sys/module/lpt_target
run tload insmod lpt_target.ko
show msg2 cat /proc/lpt_target
show traced2 traced lpt_target_message
run force rmmod -f lpt_target
show gone3 ls /sys/module/lpt_target
show traced3 traced lpt_target_message
show old3 cat $F/old_addr
show enabled3 cat $P/enabled
show taint3 cat /proc/sys/kernel/tainted
run tload4 insmod lpt_target.ko
show msg4 cat /proc/lpt_target
show traced4 traced lpt_target_message
put off 0 $P/enabled
run rmmod5 rmmod lpt_target
run load-b insmod lp_test_b.ko obj=lpt_target func=no_such_function
show enabled-b cat $R/lp_test_b/enabled
run refused insmod lpt_target.ko
show gone6 ls /sys/module/lpt_target
show traced6 patched_sites
put off-b 0 $R/lp_test_b/enabled
run load-c insmod lp_test_c.ko obj=lpt_target func=lpt_target_setup
run refused-init insmod lpt_target.ko
show gone7 ls /sys/module/lpt_target
show traced7 patched_sites
"#;

#[test]
fn module_loaded_after_its_patch_init_failure_forced_unload_and_refusal() {
    let run = vm(Boot::Pvh, AFTER).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("load");
    f.eq("old0", "0x0");
    f.eq("traced0", "0");
    // Its init ran with the patch already in place, then failed: the module went away
    // despite our reference, and nothing of it is left in ftrace or sysfs.
    f.errno("failinit", 11); // EAGAIN, from its init
    log_has(
        &run,
        "lpt_target: init sees message 'patched by lp_test_a', failing on request",
    );
    f.eq("traced1", "0");
    f.eq("old1", "0x0");
    assert!(f.get("gone1").contains("No such file"), "{}", f.report);
    f.ok("tload");
    f.eq("msg2", "patched by lp_test_a");
    f.eq("traced2", "1");
    // rmmod -f ignores our reference (MODULE_FORCE_UNLOAD): the core lets the module go.
    f.ok("force");
    assert!(f.get("gone3").contains("No such file"), "{}", f.report);
    f.eq("traced3", "0");
    f.eq("old3", "0x0");
    f.eq("enabled3", "1");
    let taint: u64 = f.get("taint3").parse().unwrap();
    assert!(
        taint & (1 << 3) != 0,
        "forced unload taints R\n{}",
        f.report
    );
    // It comes back and is patched again.
    f.ok("tload4");
    f.eq("msg4", "patched by lp_test_a");
    f.eq("traced4", "1");
    f.ok("off");
    f.ok("rmmod5");
    // An enabled patch that cannot patch the module: the module's load is refused.
    f.ok("load-b");
    f.eq("enabled-b", "1");
    f.errno("refused", 2); // ENOENT
    log_has(
        &run,
        "lpatch: patch lp_test_b: function no_such_function not found in lpt_target",
    );
    log_has(
        &run,
        "lpatch: refusing to load module lpt_target: patch lp_test_b cannot patch it",
    );
    assert!(f.get("gone6").contains("No such file"), "{}", f.report);
    f.eq("traced6", "");
    // An enabled patch of the module's __init code: freed once its init returns, it cannot
    // be patched, and the load is refused.
    f.ok("off-b");
    f.ok("load-c");
    f.errno("refused-init", 22);
    log_has(&run, "lpatch: patch lp_test_c: function lpt_target_setup");
    log_has(
        &run,
        "in lpt_target is __init code, freed once the module's init returns: it cannot be patched",
    );
    log_has(
        &run,
        "lpatch: refusing to load module lpt_target: patch lp_test_c cannot patch it",
    );
    assert!(f.get("gone7").contains("No such file"), "{}", f.report);
    f.eq("traced7", "");
}

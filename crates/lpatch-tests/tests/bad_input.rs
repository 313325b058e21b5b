// SPDX-License-Identifier: GPL-2.0-only
//! Every bad input of the API: its errno, a log line naming the cause, and nothing left
//! half-applied — checked from the kernel's own view (tracefs, module list, taint, sysfs).
//! Then the good uses of old_sympos and old_addr on a duplicated static symbol, in a
//! KASLR boot (old_addr is a link-time address: the core must add the KASLR offset).

use lpatch_tests::{log_has, tainted_k, vm, Facts};
use lpatch_vm::Boot;

/// A static function vmlinux has twice (fs/binfmt_elf.c and fs/compat_binfmt_elf.c), traceable,
/// only called for core dumps, which the scenarios never make.
const DUP: &str = "elf_core_dump";

/// After every refused load: no patch directory, the module gone, ftrace untouched.
const NOTHING_LEFT: &str = r#"
left() { echo "@left-$1 dir=$(ls $R | oneline) mod=$(ls -d /sys/module/lp_test_* 2>/dev/null | oneline) traced=$(patched_sites | wc -l)"; }
"#;

fn bad_script() -> String {
    format!(
        r#"{NOTHING_LEFT}
for b in 1 2 3 4 5; do run bad$b insmod lp_test_a.ko func=cmdline_proc_show bad=$b; left bad$b; done
run missing insmod lp_test_a.ko func=no_such_function; left missing
run ambiguous insmod lp_test_a.ko func={DUP}; left ambiguous
run sympos-big insmod lp_test_a.ko func={DUP} sympos=3; left sympos-big
run modaddr insmod lp_test_a.ko obj=lpt_target func=lpt_target_message old_addr=0xffffffff81000000; left modaddr
run untraceable insmod lp_test_a.ko func=do_syscall_64; left untraceable
run second-bad insmod lp_test_a.ko func=cmdline_proc_show func2=no_such_function; left second-bad
run listed-twice insmod lp_test_a.ko func=cmdline_proc_show func2=cmdline_proc_show; left listed-twice
run alias-target insmod lpt_target.ko
run alias insmod lp_test_a.ko obj=lpt_target func=lpt_target_twin func2=lpt_target_twin_alias; left alias
show alias-message cat /proc/lpt_target
run alias-target-gone rmmod lpt_target
show taint0 cat /proc/sys/kernel/tainted
run twice insmod lp_test_a.ko func=cmdline_proc_show twice=1 repl=1
run extra1 insmod lp_test_b.ko func=cmdline_proc_show extra=1 repl=1
run extra2 insmod lp_test_c.ko func=cmdline_proc_show extra=2 repl=1
run extra3 insmod lp_test_d.ko func=cmdline_proc_show extra=3 repl=1
show cmdline cat /proc/cmdline
show traced grep -c cmdline_proc_show $T/enabled_functions
run notop-api rmmod lp_test_a
"#
    )
}

#[test]
fn bad_api_inputs_are_refused_with_errno_log_and_nothing_left() {
    let run = vm(Boot::Pvh, &bad_script()).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let clean = "dir= mod= traced=0";
    for b in 1..=5 {
        f.errno(&format!("bad{b}"), 22);
        f.eq(&format!("left-bad{b}"), clean);
    }
    log_has(&run, "lpatch: register: NULL patch");
    log_has(
        &run,
        "lpatch: register: patch->mod is NULL (set it to THIS_MODULE)",
    );
    log_has(&run, "lpatch: register: patch lp_test_a: objs is NULL");
    log_has(&run, "has funcs == NULL");
    log_has(
        &run,
        "lpatch: patch lp_test_a: function cmdline_proc_show has new_func == NULL",
    );
    f.errno("missing", 2);
    log_has(
        &run,
        "lpatch: patch lp_test_a: function no_such_function not found in vmlinux",
    );
    f.errno("ambiguous", 22);
    log_has(&run, &format!("lpatch: patch lp_test_a: function {DUP} is ambiguous in vmlinux: 2 symbols have that name"));
    f.errno("sympos-big", 2);
    log_has(
        &run,
        &format!("function {DUP} has old_sympos 3 but vmlinux has only 2 symbol(s)"),
    );
    f.errno("modaddr", 22);
    log_has(&run, "old_addr is for vmlinux only");
    f.errno("untraceable", 22);
    log_has(&run, "lpatch: patch lp_test_a: function do_syscall_64");
    log_has(&run, "is not traceable by ftrace");
    // One good function and one bad: none applied.
    f.errno("second-bad", 2);
    f.errno("listed-twice", 22);
    log_has(
        &run,
        "lpatch: patch lp_test_a: function cmdline_proc_show is listed twice in vmlinux",
    );
    // Two names of one function (lpt_target_twin_alias is an alias): one record per
    // address, so it is refused, naming both.
    f.ok("alias-target");
    f.errno("alias", 22);
    log_has(
        &run,
        "lpatch: patch lp_test_a: functions lpt_target_twin and lpt_target_twin_alias are one function in lpt_target",
    );
    f.eq("alias-message", "original");
    f.ok("alias-target-gone");
    for k in [
        "alias",
        "missing",
        "ambiguous",
        "sympos-big",
        "modaddr",
        "untraceable",
        "second-bad",
        "listed-twice",
    ] {
        f.eq(&format!("left-{k}"), clean);
    }
    assert!(
        !tainted_k(f.get("taint0")),
        "K without a patch\n{}",
        f.report
    );
    // Registered twice: -EEXIST, the first registration unharmed.
    f.ok("twice");
    log_has(&run, "lp_test_a: second register: -17");
    log_has(&run, "lpatch: patch lp_test_a is already registered");
    // Enable an enabled patch: -EINVAL; unregister an enabled one: -EBUSY;
    // disable twice: 0 then -EINVAL; enable again after: 0.
    f.ok("extra1");
    log_has(&run, "lp_test_b: enable again: -22");
    f.ok("extra2");
    log_has(&run, "lp_test_c: unregister while enabled: -16");
    log_has(&run, "cannot unregister patch lp_test_c: it is enabled");
    f.ok("extra3");
    log_has(&run, "lp_test_d: disable: 0");
    log_has(&run, "lp_test_d: disable again: -22");
    log_has(&run, "lp_test_d: enable after disable: 0");
    f.eq("cmdline", "lp_test_d");
    f.eq("traced", "1");
}

/// Link-time address of the second `DUP` (a PVH boot runs at the link address).
fn link_address_of_second_dup() -> u64 {
    let run = vm(
        Boot::Pvh,
        &format!("show dup grep ' {DUP}$' /proc/kallsyms"),
    )
    .run()
    .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let addrs: Vec<&str> = f
        .get("dup")
        .split_whitespace()
        .filter(|w| w.len() == 16)
        .collect();
    assert_eq!(addrs.len(), 2, "{}", f.report);
    u64::from_str_radix(addrs[1], 16).unwrap()
}

#[test]
fn sympos_and_old_addr_pick_one_of_two_same_named_functions() {
    let link = link_address_of_second_dup();
    let script = format!(
        r#"{NOTHING_LEFT}
show dups grep ' {DUP}$' /proc/kallsyms
show text sym _text
run wrong insmod lp_test_a.ko func={DUP} old_addr={wrong:#x}; left wrong
run sympos insmod lp_test_a.ko func={DUP} sympos=2
show sympos-dirs ls $R/lp_test_a/vmlinux
show sympos-old cat $R/lp_test_a/vmlinux/{DUP},2/old_addr
run addr insmod lp_test_b.ko func={DUP} old_addr={link:#x} sympos=2
show addr-old cat $R/lp_test_b/vmlinux/{DUP},2/old_addr
show traced traced {DUP}
"#,
        wrong = link + 16
    );
    // KASLR must really move the kernel, so a missing offset cannot pass unnoticed. It picks
    // one of some 500 slots, the link address among them: on a match, boot once more (as
    // hello_kaslr does) before calling KASLR off.
    let mut attempt = 1;
    let (run, addrs) = loop {
        let run = vm(Boot::Kaslr, &script).run().unwrap();
        run.assert_ok();
        let f = Facts::of(&run);
        let addrs: Vec<u64> = f
            .get("dups")
            .split_whitespace()
            .filter(|w| w.len() == 16)
            .map(|w| u64::from_str_radix(w, 16).unwrap())
            .collect();
        assert_eq!(addrs.len(), 2, "{}", f.report);
        if addrs[1] != link {
            break (run, addrs);
        }
        assert!(
            attempt < 2,
            "KASLR left the kernel at its link address twice: KASLR is off\n{}",
            f.report
        );
        attempt += 1;
    };
    let f = Facts::of(&run);
    f.errno("wrong", 22);
    log_has(&run, "is not that function in vmlinux");
    f.eq("left-wrong", "dir= mod= traced=0");
    f.ok("sympos");
    f.eq("sympos-dirs", &format!("{DUP},2"));
    assert_eq!(f.addr("sympos-old"), addrs[1], "{}", f.report);
    f.ok("addr");
    assert_eq!(f.addr("addr-old"), addrs[1], "{}", f.report);
    f.eq("traced", "1");
}

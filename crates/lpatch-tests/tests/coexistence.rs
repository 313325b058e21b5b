// SPDX-License-Identifier: GPL-2.0-only
//! The kernel's other ftrace users on a patched function, in both orders (issue 25, slice
//! b): lpatch's patch of cmdline_proc_show (livepatch-sample) is either in effect or
//! refused with EBUSY and a log line naming the cause — never "enabled" while the old
//! code runs.
//! - a generic ftrace direct call (register_ftrace_direct: no sharing with an IPMODIFY
//!   user in 6.1): refused in both orders; with another patch already enabled, lpatch's
//!   filter update would skip ftrace's sharing handshake, so the core refuses it itself;
//! - a kprobe without a post handler: both in effect, in both orders; with a post handler
//!   (which modifies the ip): the second of the two refused;
//! - the function tracer and the function-graph tracer: both in effect, in both orders;
//! - the in-kernel livepatch on the same function: the second of the two refused.

use lpatch_tests::{log_has, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
S=0x$(sym cmdline_proc_show)
P=$R/livepatch_sample/enabled
D=/sys/module/ftrace_direct_hits/parameters/hits
K=/sys/module/kprobe_post/parameters/hits
patched() { grep -q "live patched" /proc/cmdline && echo y || echo n; }
# 1. a direct call first, nothing patched: lpatch's ops registration meets it (EBUSY)
run d1 insmod ftrace_direct_hits.ko addr=$S
cat /proc/cmdline > /dev/null
show d1-hits cat $D
run s1 insmod livepatch-sample.ko
show p1 patched
# 2. a direct call first, another patch enabled: a filter update, refused by the core
run other insmod lp_test_a.ko func=version_proc_show
run s2 insmod livepatch-sample.ko
show p2 patched
put other-off 0 $R/lp_test_a/enabled
run d-off rmmod ftrace_direct_hits
# 3. lpatch first, then the direct call: ftrace refuses it
run s3 insmod livepatch-sample.ko
show p3 patched
run d3 insmod ftrace_direct_hits.ko addr=$S
show p3b patched
# 4. a kprobe without a post handler, after lpatch and before it
run k4 insmod kprobe_post.ko post=0
show p4 patched
show k4-hits cat $K
put off4 0 $P
show p4off patched
put on4 1 $P
show p4on patched
show k4-hits2 cat $K
run k4-off rmmod kprobe_post
# 5. a kprobe with a post handler after lpatch: refused
run k5 insmod kprobe_post.ko
show p5 patched
# 6. the function tracer, after lpatch and before it
echo cmdline_proc_show > $T/set_ftrace_filter
put ft6 function $T/current_tracer
echo > $T/trace
show p6 patched
show ft6-calls grep -c 'cmdline_proc_show <-' $T/trace
put off6 0 $P
put on6 1 $P
echo > $T/trace
show p6on patched
show ft6-calls2 grep -c 'cmdline_proc_show <-' $T/trace
# 7. the function-graph tracer likewise
put fg7 function_graph $T/current_tracer
echo > $T/trace
show p7 patched
show fg7-calls grep -c 'cmdline_proc_show' $T/trace
put off7 0 $P
put on7 1 $P
echo > $T/trace
show p7on patched
show fg7-calls2 grep -c 'cmdline_proc_show' $T/trace
put nop nop $T/current_tracer
echo > $T/set_ftrace_filter
# 8. the in-kernel livepatch after lpatch: refused
run klp8 insmod klp_cmdline.ko
show p8 patched
show klp8-dir ls /sys/kernel/livepatch
"#;

#[test]
fn other_ftrace_users_coexist_or_are_refused_in_both_orders() {
    let run = vm(Boot::Pvh, SCRIPT).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let count = |k: &str| -> u64 {
        f.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("@{k}\n{}", f.report))
    };
    // 1.
    f.ok("d1");
    assert!(
        count("d1-hits") > 0,
        "the direct call never ran\n{}",
        f.report
    );
    f.errno("s1", 16);
    f.eq("p1", "n");
    log_has(&run, "lpatch: patch livepatch_sample: a function of it (vmlinux:cmdline_proc_show) is already modified by another ftrace user");
    // 2.
    f.ok("other");
    f.errno("s2", 16);
    f.eq("p2", "n");
    log_has(
        &run,
        "lpatch: cmdline_proc_show: called through an ftrace direct call",
    );
    f.ok("other-off");
    f.ok("d-off");
    // 3.
    f.ok("s3");
    f.eq("p3", "y");
    f.errno("d3", 16);
    f.eq("p3b", "y");
    // 4.
    f.ok("k4");
    f.eq("p4", "y");
    assert!(count("k4-hits") > 0, "the kprobe never ran\n{}", f.report);
    f.ok("off4");
    f.eq("p4off", "n");
    f.ok("on4");
    f.eq("p4on", "y");
    assert!(count("k4-hits2") > count("k4-hits"), "{}", f.report);
    f.ok("k4-off");
    // 5.
    assert!(!f.get("k5").starts_with("rc=0"), "{}", f.report);
    f.eq("p5", "y");
    // 6.
    f.ok("ft6");
    f.eq("p6", "y");
    assert!(count("ft6-calls") > 0, "{}", f.report);
    f.ok("off6");
    f.ok("on6");
    f.eq("p6on", "y");
    assert!(count("ft6-calls2") > 0, "{}", f.report);
    // 7.
    f.ok("fg7");
    f.eq("p7", "y");
    assert!(count("fg7-calls") > 0, "{}", f.report);
    f.ok("off7");
    f.ok("on7");
    f.eq("p7on", "y");
    assert!(count("fg7-calls2") > 0, "{}", f.report);
    f.ok("nop");
    // 8.
    f.errno("klp8", 16);
    f.eq("p8", "y");
    f.eq("klp8-dir", "");
}

// SPDX-License-Identifier: GPL-2.0-only
//! A real BPF fexit program on a function lpatch patches, in every order (issue 25, slice
//! a): `lpatch-fexit` attaches `count_exit` (a counter of returns) to cmdline_proc_show,
//! which livepatch-sample replaces. Where 6.1 lets the two share the function, both are in
//! effect — /proc/cmdline shows the patch and the program counts the calls; where it
//! does not, the patch is refused with EBUSY and a log line naming the direct call, the
//! program keeps counting, and the old code runs. Debian's stock kernel only: the debug
//! kernel is built without BPF.

use lpatch_tests::{bpf_count_exit_object, log_has, vm, Facts};
use lpatch_vm::Boot;

const SCRIPT: &str = r#"
F=/tmp/fexit
P=$R/livepatch_sample/enabled
patched() { grep -q "live patched" /proc/cmdline && echo y || echo n; }
# Attach the program and wait for its status ("attached" or "error: ...").
fx_start() {
    rm -rf $F; mkdir -p $F
    /bin/lpatch-fexit /lib/lpatch/count_exit.o cmdline_proc_show $F > $F/log 2>&1 &
    i=0; while [ ! -s $F/status ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    cat $F/status
}
# How many more returns the program counted over three calls (the loader rewrites its
# count every 10 ms).
fx_delta() {
    a=$(cat $F/hits); sleep 0.1; a=$(cat $F/hits)
    cat /proc/cmdline /proc/cmdline /proc/cmdline > /dev/null
    sleep 0.2
    echo $(( $(cat $F/hits) - a ))
}
fx_stop() {
    touch $F/stop
    i=0; while ! grep -q detached $F/status && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    cat $F/status
}
# 1. lpatch first, then the program: BPF's registration negotiates with lpatch's ops.
run s1 insmod livepatch-sample.ko
show b1 fx_start
show p1 patched
show h1 fx_delta
show e1 cat /sys/kernel/tracing/enabled_functions
# the patch goes and comes back under the program
put off1 0 $P
show p1off patched
show h1off fx_delta
put on1 1 $P
show p1on patched
show h1on fx_delta
show stop1 fx_stop
show p1stop patched
put off1b 0 $P
# 2. the program first, nothing else patched: lpatch's ops registers, and negotiates.
show b2 fx_start
put on2 1 $P
show p2 patched
show h2 fx_delta
put off2 0 $P
show p2off patched
show h2off fx_delta
# 3. the program first, another patch enabled: the core refuses (a filter update would
# skip ftrace's negotiation and leave the trampoline calling the old code).
run other insmod lp_test_a.ko func=version_proc_show
put on3 1 $P
show p3 patched
show h3 fx_delta
show en3 cat $P
show stop3 fx_stop
put on3b 1 $P
show p3b patched
"#;

#[test]
fn fexit_program_and_patch_share_or_refuse_in_every_order_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let run = vm(Boot::Pvh, SCRIPT)
        .file(
            lpatch_vm::static_binary("lpatch-fexit", "lpatch-fexit", "LPATCH_FEXIT"),
            "/bin/lpatch-fexit",
        )
        .file(bpf_count_exit_object(), "/lib/lpatch/count_exit.o")
        .run()
        .unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let delta = |k: &str| -> i64 {
        f.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("@{k}\n{}", f.report))
    };
    // 1.
    f.ok("s1");
    f.eq("b1", "attached");
    f.eq("p1", "y");
    assert!(delta("h1") >= 3, "the program missed calls\n{}", f.report);
    // ftrace's view: two users, lpatch's ip-modifying ops and the BPF direct call.
    f.has(
        "e1",
        &["cmdline_proc_show (2) R I D", "direct-->bpf_trampoline_"],
    );
    f.ok("off1");
    f.eq("p1off", "n");
    assert!(delta("h1off") >= 3, "{}", f.report);
    f.ok("on1");
    f.eq("p1on", "y");
    assert!(delta("h1on") >= 3, "{}", f.report);
    f.eq("stop1", "detached");
    f.eq("p1stop", "y");
    f.ok("off1b");
    // 2.
    f.eq("b2", "attached");
    f.ok("on2");
    f.eq("p2", "y");
    assert!(delta("h2") >= 3, "{}", f.report);
    f.ok("off2");
    f.eq("p2off", "n");
    assert!(delta("h2off") >= 3, "{}", f.report);
    // 3.
    f.ok("other");
    f.failed("on3", "Device or resource busy");
    f.eq("p3", "n");
    assert!(delta("h3") >= 3, "{}", f.report);
    f.eq("en3", "0");
    log_has(
        &run,
        "lpatch: cmdline_proc_show: called through an ftrace direct call",
    );
    f.eq("stop3", "detached");
    f.ok("on3b");
    f.eq("p3b", "y");
}

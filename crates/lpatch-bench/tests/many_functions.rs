// SPDX-License-Identifier: GPL-2.0-only
//! A patch of 10,000 functions through its whole life in one guest, checked the way a user
//! would: every function's result from user space (/proc/lpb_check calls each of the
//! target's 10,000 functions), the patch's sysfs directories, and a clean kernel log.
//! Runs on both kernels (`make test` and `make test-debug`).
//!
//! The patch is the benchmark's (`lpb_lp_10000` on `lpb_target_big`, generated and built by
//! [`lpatch_bench::prepare`], about 20 s of kbuild the first time, nothing after). Every
//! enable and disable is a transition (the consistency model) over the ranges of 20,000
//! functions, old and new. The test:
//! 1. registers it without enabling (`register_only=1`): 10,000 function directories,
//!    `enabled` 0, every function still the original; rmmod unregisters it (the module's
//!    exit) and its sysfs directory goes;
//! 2. loads it with `cycle=1`: its init registers, enables, disables and unregisters the
//!    patch, counting in the kernel the functions patched after the enable (all 10,000) and
//!    after the disable (none), then registers and enables it as a patch module does;
//! 3. from user space: all 10,000 return the patched value, sysfs shows 10,000 function
//!    directories with the right addresses, `echo 0 > enabled` brings every original back,
//!    `echo 1` every replacement, and `echo 0` the originals again;
//! 4. once that disable's transition has ended the core no longer holds the patch module:
//!    rmmod unloads it (its exit unregisters the patch) and its sysfs directory goes.
//!
//! Needs `make all` (lpatch.ko).

use lpatch_bench::gen::{self, BIG};
use lpatch_bench::plan::Core;
use lpatch_bench::{prepare, Env};
use lpatch_vm::Vm;
use std::collections::BTreeMap;
use std::time::Instant;

const N: usize = gen::MAX_SIZE;

/// The guest script. Every check prints one `@key value` line.
fn script() -> String {
    let p = gen::lp_module(N);
    let t = BIG.module;
    let first = BIG.func(0);
    let last = BIG.func(N - 1);
    let w = BIG.digits();
    let last_new = format!("lpb_new_{:0w$}", N - 1);
    format!(
        r#"set -u
P={p}
T={t}
fail() {{ echo "@fail $*"; dmesg | tail -40; exit 1; }}
# patched, leading run of patched, wrong: over every function of the target
check() {{ read cp cq cb < /proc/lpb_check; echo "@check-$1 $cp $cq $cb"; }}
# the patch's function directories, and those named like the target's functions
funcs() {{ n=$(ls $D/$T | wc -l); m=$(ls $D/$T | grep -c '^lpb_f_[0-9]*,1$'); echo "@funcs-$1 $n $m"; }}
ksym() {{ awk -v s="$1" -v m="[$2]" '$3 == s && $4 == m {{ print $1; exit }}' /proc/kallsyms; }}
echo 0 > /proc/sys/kernel/kptr_restrict
insmod lpatch.ko || fail insmod lpatch.ko
R=/sys/kernel/lpatch; [ -d $R ] || R=/sys/kernel/livepatch
D=$R/$P
insmod $T.ko || fail insmod $T.ko
check loaded

# 1. registered, never enabled; rmmod unregisters it
insmod $P.ko register_only=1 || fail insmod $P.ko register_only=1
echo "@registered-enabled $(cat $D/enabled)"
funcs registered
check registered
rmmod $P || fail rmmod $P
if [ -e $D ]; then echo "@unregistered-dir present"; else echo "@unregistered-dir gone"; fi
check unregistered

# 2. and 3. register, enable, disable, unregister in init; then registered and enabled
insmod $P.ko cycle=1 || fail insmod $P.ko cycle=1
echo "@enabled $(cat $D/enabled)"
funcs enabled
ls -d $D/$T/{first},1 $D/$T/{last},1 >/dev/null || fail no directory of {first} or {last}
echo "@old-addr $(cat $D/$T/{last},1/old_addr) 0x$(ksym {last} $T)"
echo "@new-addr $(cat $D/$T/{last},1/new_addr) 0x$(ksym {last_new} $P)"
check enabled
echo 0 > $D/enabled || fail disable
echo "@disabled $(cat $D/enabled)"
funcs disabled
check disabled
echo 1 > $D/enabled || fail enable again
echo "@reenabled $(cat $D/enabled)"
check reenabled
echo 0 > $D/enabled || fail disable again
echo "@redisabled $(cat $D/enabled)"
check redisabled
while grep -qs 1 $D/transition; do sleep 0.1; done
if rmmod $P; then echo "@unloaded yes"; else echo "@unloaded no"; fi
if [ -e $D ]; then echo "@unloaded-dir present"; else echo "@unloaded-dir gone"; fi
echo "@done"
"#
    )
}

#[test]
fn patch_of_10000_functions_registers_enables_disables_unregisters() {
    let env = Env::detect().unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let modules = prepare(&env, "gen-many", &[(Core::Lpatch, N)]).unwrap_or_else(|e| panic!("{e}"));
    let built = start.elapsed();
    let mut vm = Vm::new()
        .kernel_dir(&env.kernel_dir)
        .timeout(300)
        .script(&script());
    for m in [
        "lpatch.ko".to_string(),
        format!("{}.ko", BIG.module),
        format!("{}.ko", gen::lp_module(N)),
    ] {
        vm = vm.ko(modules
            .get(&m)
            .unwrap_or_else(|| panic!("{m} not prepared")));
    }
    let run = vm
        .run()
        .unwrap_or_else(|e| panic!("the VM could not run: {e}"));
    eprintln!(
        "many_functions: modules ready in {:.1?}, guest {:.1?} (boot {:?}), {:.1?} in all",
        built,
        run.wall,
        run.boot,
        start.elapsed()
    );
    // No WARNING, BUG, Oops, lockdep report, RCU stall, KASAN report...; the script ran
    // to its end.
    run.assert_ok();

    let facts: BTreeMap<&str, &str> = run
        .output
        .lines()
        .filter_map(|l| l.strip_prefix('@'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let report = run.report();
    let get = |k: &str| -> &str {
        facts
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("no @{k} line\n{report}"))
    };
    let eq = |k: &str, want: &str| {
        assert_eq!(get(k), want, "@{k}\n{report}");
    };
    assert!(
        facts.contains_key("done"),
        "the script did not finish\n{report}"
    );
    let n = N.to_string();
    // /proc/lpb_check: "<patched> <leading run of patched> <wrong values>" over all 10,000
    let all_patched = format!("{n} {n} 0");
    let none_patched = "0 0 0";
    let dirs = format!("{n} {n}");

    eq("check-loaded", none_patched);
    // 1. registered, not enabled: the directories are there, the code is the old
    eq("registered-enabled", "0");
    eq("funcs-registered", &dirs);
    eq("check-registered", none_patched);
    // unregistered: its sysfs directory went with it
    eq("unregistered-dir", "gone");
    eq("check-unregistered", none_patched);
    // 2. the init's own cycle, its counts made in the kernel
    let cycle = format!(
        "{}: cycle: enabled, {n} of {n} functions patched; disable 0, then 0 patched; unregister 0",
        gen::lp_module(N)
    );
    assert!(
        run.kernel_log.contains(&cycle),
        "no line {cycle:?} in the kernel log\n{report}"
    );
    // 3. enabled: every function redirected, and shown
    eq("enabled", "1");
    eq("funcs-enabled", &dirs);
    eq("check-enabled", &all_patched);
    for k in ["old-addr", "new-addr"] {
        let v: Vec<u64> = get(k)
            .split_whitespace()
            .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap_or(0))
            .collect();
        assert!(
            v.len() == 2 && v[0] != 0 && v[0] == v[1],
            "@{k}: sysfs and kallsyms disagree\n{report}"
        );
    }
    // disabled: every original back; the patch stays registered
    eq("disabled", "0");
    eq("funcs-disabled", &dirs);
    eq("check-disabled", none_patched);
    eq("reenabled", "1");
    eq("check-reenabled", &all_patched);
    eq("redisabled", "0");
    eq("check-redisabled", none_patched);
    // 4. disabled for good: its module unloads
    eq("unloaded", "yes");
    eq("unloaded-dir", "gone");
}

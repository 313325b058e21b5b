// SPDX-License-Identifier: GPL-2.0-only
//! Removal never allocates (issue 21, items 2 and 3), on the host over the fake kernel:
//! disable, unregister, a target module going and a patch module going while enabled all
//! complete with every allocation failing; a removed patch's sysfs directories are removed
//! by the caller after the lock, never inside the call; and when ftrace itself cannot
//! update its filter (it copies the filter to change it), the functions unpatched run their
//! own code at once, the log says so, and the next state change takes them out of the
//! filter — also those of a module freed meanwhile, whose address a new module reuses.

use lpatch_fake_kernel::fail_nth::{self, FailNth};
use lpatch_fake_kernel::{call_site, patch_desc, Fake, ModId, ModState};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::Error;

#[global_allocator]
static ALLOC: FailNth = FailNth;

const A: usize = 0xa000;
const B: usize = 0xb000;

/// Two vmlinux functions and a live target module; patch A on all three (and on a module
/// not loaded), patch B on one of the vmlinux functions, both enabled (B on top).
struct Machine {
    k: Fake,
    c: Core<Fake>,
    v: Vec<usize>,
    t: ModId,
    ta: usize,
    pa: ModId,
    pb: ModId,
}

fn machine() -> Machine {
    let k = Fake::new();
    let v = vec![
        k.vmlinux_fn("cmdline_proc_show"),
        k.vmlinux_fn("meminfo_proc_show"),
    ];
    let (t, ta) = k.module_live("lpt_target", &["lpt_target_message"]);
    let (pa, _) = k.module_live("lp_test_a", &[]);
    let (pb, _) = k.module_live("lp_test_b", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        A,
        pa,
        "lp_test_a",
        &[
            (
                None,
                &[("cmdline_proc_show", 0, 0), ("meminfo_proc_show", 0, 0)],
            ),
            (Some("lpt_target"), &[("lpt_target_message", 0, 0)]),
            (Some("not_loaded"), &[("later_fn", 0, 0)]),
        ],
    ))
    .unwrap();
    c.enable(A).unwrap();
    c.register(patch_desc(
        B,
        pb,
        "lp_test_b",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.enable(B).unwrap();
    k.check_invariants(&c, &[(pa, 1), (pb, 1), (t, 1)]);
    Machine {
        k,
        c,
        v,
        t,
        ta: ta[0],
        pa,
        pb,
    }
}

/// Runs `f` with every allocation failing; asserts none was even attempted.
fn without_memory<R>(what: &str, f: impl FnOnce() -> R) -> R {
    fail_nth::arm_from(1);
    let r = f();
    assert!(!fail_nth::disarm(), "{what} allocated");
    r
}

#[test]
fn disable_module_going_and_unregister_allocate_nothing() {
    let Machine {
        k,
        mut c,
        v,
        t,
        ta,
        pa,
        pb,
    } = machine();
    let b_on_cmdline = k.call(v[0]);

    without_memory("disable", || c.disable(B)).unwrap();
    assert_eq!(k.refs(pb), 0, "disabled, B's module is still held");
    assert_ne!(k.call(v[0]), b_on_cmdline, "B's replacement still runs");
    assert_ne!(k.call(v[0]), v[0], "A's replacement is back on top");
    k.check_invariants(&c, &[(pa, 1), (t, 1)]);

    k.set_state(t, ModState::Going);
    without_memory("a target module going", || {
        c.module_event(ModuleEvent::Going, t)
    })
    .unwrap();
    assert_eq!(k.call(ta), ta);
    k.module_freed(t);
    k.check_invariants(&c, &[(pa, 1)]);

    without_memory("disable", || c.disable(A)).unwrap();
    assert_eq!(k.call(v[0]), v[0]);
    assert_eq!(k.call(v[1]), v[1]);
    assert!(k.filter().is_empty(), "filter left: {:x?}", k.filter());

    // Unregistered under the lock, its directories removed only after it: they are still
    // there when the call returns, and go when the caller drops what was buried.
    without_memory("unregister", || c.unregister(B)).unwrap();
    without_memory("unregister", || c.unregister(A)).unwrap();
    assert!(c.patches.is_empty());
    assert!(
        k.dirs().iter().any(|d| d.starts_with("lpatch/lp_test_a")),
        "a directory was removed inside the call (under the lock)"
    );
    without_memory("taking what was buried", || {
        while let Some(p) = c.take_buried() {
            drop(p);
        }
    });
    assert_eq!(k.dirs(), ["lpatch"]);
    assert!(!k.logged(&["leak"]), "{:#?}", k.log());
    k.check_invariants(&c, &[]);
}

#[test]
fn patch_module_going_while_enabled_allocates_nothing() {
    let Machine {
        k,
        mut c,
        v,
        t,
        ta,
        pa,
        pb,
    } = machine();
    c.disable(B).unwrap();
    assert_eq!(k.refs(pb), 0, "disabled, B's module is still held");
    // lp_test_a goes away with its patch enabled (rmmod -f, or its init failed after
    // enabling).
    k.set_state(pa, ModState::Going);
    without_memory("a patch module going", || {
        c.module_event(ModuleEvent::Going, pa)
    })
    .unwrap();
    assert_eq!(k.call(v[0]), v[0]);
    assert_eq!(k.call(ta), ta);
    assert_eq!(k.refs(t), 0, "its reference on lpt_target leaked");
    assert!(k.filter().is_empty());
    // Taken still enabled: the caller waits for calls still inside its replacements
    // before the module's text goes.
    let p = c.take_buried().expect("the patch is buried");
    assert!(p.enabled && p.name == "lp_test_a");
    drop(p);
    assert!(c.take_buried().is_none());
    k.module_freed(pa);
    assert_eq!(
        k.dirs(),
        [
            "lpatch",
            "lpatch/lp_test_b",
            "lpatch/lp_test_b/vmlinux",
            "lpatch/lp_test_b/vmlinux/cmdline_proc_show,1"
        ]
    );
    k.check_invariants(&c, &[]);
}

/// ftrace cannot update its filter on disable: the functions run their own code at once,
/// the log says so, and the next state change takes them out.
#[test]
fn ftrace_failing_to_update_its_filter_on_disable_is_retried() {
    // A on two functions, B on a third: disabling A leaves B's (with none left, the ops
    // would be unregistered instead of its filter updated).
    let k = Fake::new();
    let v = [
        k.vmlinux_fn("cmdline_proc_show"),
        k.vmlinux_fn("meminfo_proc_show"),
        k.vmlinux_fn("version_proc_show"),
    ];
    let (pa, _) = k.module_live("lp_test_a", &[]);
    let (pb, _) = k.module_live("lp_test_b", &[]);
    let mut c = k.core();
    let a_funcs: &[(&str, usize, usize)] =
        &[("cmdline_proc_show", 0, 0), ("meminfo_proc_show", 0, 0)];
    c.register(patch_desc(A, pa, "lp_test_a", &[(None, a_funcs)]))
        .unwrap();
    c.register(patch_desc(
        B,
        pb,
        "lp_test_b",
        &[(None, &[("version_proc_show", 0, 0)])],
    ))
    .unwrap();
    // Patches are disabled newest first: B, then A on top.
    c.enable(B).unwrap();
    c.enable(A).unwrap();
    k.clear_log();
    k.fail_next_filter_set(Error::ENOMEM);
    c.disable(A).unwrap();
    assert!(
        k.filter().contains(&call_site(v[1])),
        "the fake did not fail the update"
    );
    for f in [v[0], v[1]] {
        assert_eq!(k.call(f), f, "a disabled patch's replacement runs");
    }
    assert_ne!(k.call(v[2]), v[2], "B's replacement no longer runs");
    assert!(
        k.logged(&["2 unpatched functions", "ENOMEM", "retried"]),
        "{:#?}",
        k.log()
    );
    k.check_invariants(&c, &[(pb, 1)]);

    // The next change retries: A enabled and disabled again leaves only B's function.
    c.enable(A).unwrap();
    c.disable(A).unwrap();
    assert_eq!(
        k.filter().into_iter().collect::<Vec<_>>(),
        [call_site(v[2])]
    );
    assert_ne!(k.call(v[2]), v[2]);
    assert_eq!(k.call(v[1]), v[1]);
    c.disable(B).unwrap();
    assert!(k.filter().is_empty());
    assert!(!k.ops_registered());
    k.check_invariants(&c, &[]);
}

/// ftrace cannot update its filter while a patched module goes: its call site stays in
/// the filter after the module is freed. A module loaded later at the same address runs
/// its own code, not the old replacement, and the next change clears the stale entry
/// (which ftrace could no longer remove by address: the function is gone).
#[test]
fn ftrace_failing_while_a_module_goes_never_redirects_its_successor() {
    let Machine {
        k,
        mut c,
        v,
        t,
        ta,
        pa,
        pb,
    } = machine();
    k.fail_next_filter_set(Error::ENOMEM);
    k.set_state(t, ModState::Going);
    c.module_event(ModuleEvent::Going, t).unwrap();
    k.module_freed(t);
    assert!(k.filter().contains(&call_site(ta)));
    k.check_invariants(&c, &[(pa, 1), (pb, 1)]);

    // Another module, placed where lpt_target was.
    let (o, oa) = k.module_coming_at(ta, "other", &["other_fn"]);
    assert_eq!(oa[0], ta);
    c.module_event(ModuleEvent::Coming, o).unwrap();
    k.set_state(o, ModState::Live);
    c.module_event(ModuleEvent::Live, o).unwrap();
    assert_eq!(
        k.call(oa[0]),
        oa[0],
        "a new module's function runs an old patch's replacement"
    );

    // The next change sets the filter to what is redirected: the stale site goes.
    c.disable(B).unwrap();
    assert!(!k.filter().contains(&call_site(ta)), "stale site kept");
    assert_eq!(k.filter().len(), 2, "A's two vmlinux functions");
    assert_ne!(k.call(v[0]), v[0]);
    k.check_invariants(&c, &[(pa, 1)]);
}

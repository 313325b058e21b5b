// SPDX-License-Identifier: GPL-2.0-only
//! Every state change of the seed's model, on the host over the fake kernel: register,
//! enable, disable, re-enable, unregister; stacking (only the top may be disabled); a
//! target module coming before, during and after enable, going while enabled, patched when
//! it comes back. Each test ends with the fake's invariants: the ftrace filter holds
//! exactly what the core redirects, and every module reference is one the core accounts for.

use lpatch_fake_kernel::{patch_desc, Fake, ModId, ModState, ObjectSpec};
use lpatch_logic::core::Core;
use lpatch_logic::core::ModuleEvent;
use lpatch_logic::error::Error;
use lpatch_logic::seam::DirKind;

const KEY_A: usize = 0xa000;
const KEY_B: usize = 0xb000;

/// A machine with a loaded patch module `name` and its patch of `objects` registered.
fn registered(name: &str, objects: &[ObjectSpec<'_>]) -> (Fake, Core<Fake>, ModId) {
    let k = Fake::new();
    let (pm, _) = k.module_live(name, &[]);
    let mut c = k.core();
    c.register(patch_desc(KEY_A, pm, name, objects)).unwrap();
    (k, c, pm)
}

#[test]
fn register_enable_disable_reenable_unregister() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pm, _) = k.module_live("livepatch_sample", &[]);
    let mut c = k.core();

    c.register(patch_desc(
        KEY_A,
        pm,
        "livepatch_sample",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    assert_eq!(
        k.dirs(),
        [
            "lpatch",
            "lpatch/livepatch_sample",
            "lpatch/livepatch_sample/vmlinux",
            "lpatch/livepatch_sample/vmlinux/cmdline_proc_show,1"
        ]
    );
    assert_eq!(k.dir_kind("lpatch/livepatch_sample"), Some(DirKind::Patch));
    assert_eq!(
        k.dir_kind("lpatch/livepatch_sample/vmlinux/cmdline_proc_show,1"),
        Some(DirKind::Func)
    );
    // Registered is not applied.
    assert_eq!(k.call(f), f);
    assert!(!k.tainted());
    k.check_invariants(&c, &[]);

    c.enable(KEY_A).unwrap();
    let new = c.patches[0].objects[0].funcs[0].new_func;
    assert_eq!(k.call(f), new);
    assert!(k.tainted());
    assert!(k.logged(&["enabled patch livepatch_sample"]));
    // The patch module is pinned while its patch is enabled.
    k.check_invariants(&c, &[(pm, 1)]);

    assert_eq!(c.enable(KEY_A), Err(Error::EINVAL), "enabled twice");
    assert_eq!(
        c.unregister(KEY_A),
        Err(Error::EBUSY),
        "unregistered while enabled"
    );
    assert!(k.logged(&["cannot unregister patch livepatch_sample: it is enabled"]));

    c.disable(KEY_A).unwrap();
    assert_eq!(k.call(f), f);
    assert!(k.filter().is_empty());
    k.check_invariants(&c, &[]);
    assert_eq!(c.disable(KEY_A), Err(Error::EINVAL), "disabled twice");

    c.enable(KEY_A).unwrap();
    assert_eq!(k.call(f), new);
    k.check_invariants(&c, &[(pm, 1)]);
    c.disable(KEY_A).unwrap();

    c.unregister(KEY_A).unwrap();
    assert!(c.patches.is_empty());
    while c.take_buried().is_some() {}
    assert_eq!(k.dirs(), ["lpatch"]);
    assert_eq!(
        c.enable(KEY_A),
        Err(Error::EINVAL),
        "enable after unregister"
    );
    k.check_invariants(&c, &[]);
}

#[test]
fn sysfs_enabled_shows_and_takes_zero_or_one() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pm, _) = k.module_live("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY_A,
        pm,
        "p",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    let dir = k.dir_id("lpatch/p").unwrap();
    let func = k.dir_id("lpatch/p/vmlinux/cmdline_proc_show,1").unwrap();
    let show = |c: &lpatch_logic::core::Core<Fake>, d: usize, a: &str| {
        let mut s = String::new();
        lpatch_logic::sysfs::show(c, d, a.as_bytes(), &mut s).map(|_| s)
    };
    assert_eq!(show(&c, dir, "enabled").unwrap(), "0\n");
    assert_eq!(show(&c, func, "old_addr").unwrap(), format!("{f:#x}\n"));
    for bad in ["2", "abc", "1xyz", "yes", " 1", "0 ", "0\n0", ""] {
        assert_eq!(
            lpatch_logic::sysfs::store(&mut c, dir, b"enabled", bad.as_bytes()),
            Err(Error::EINVAL),
            "{bad:?}"
        );
    }
    assert!(k.logged(&["patch p: enabled: invalid value"]));
    assert_eq!(show(&c, dir, "enabled").unwrap(), "0\n");
    lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"1\n").unwrap();
    assert_eq!(show(&c, dir, "enabled").unwrap(), "1\n");
    assert_ne!(k.call(f), f);
    assert_eq!(
        lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"1"),
        Err(Error::EINVAL)
    );
    lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"0").unwrap();
    assert_eq!(k.call(f), f);
    assert_eq!(
        lpatch_logic::sysfs::store(&mut c, func, b"old_addr", b"0"),
        Err(Error::EINVAL)
    );
    k.check_invariants(&c, &[]);
}

#[test]
fn stacked_patches_only_the_top_may_be_disabled() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pa, _) = k.module_live("a", &[]);
    let (pb, _) = k.module_live("b", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY_A,
        pa,
        "a",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.register(patch_desc(
        KEY_B,
        pb,
        "b",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.enable(KEY_A).unwrap();
    let new_a = c.patches[0].objects[0].funcs[0].new_func;
    let new_b = c.patches[1].objects[0].funcs[0].new_func;
    let updates = k.filter_updates();
    c.enable(KEY_B).unwrap();
    assert_eq!(k.call(f), new_b, "the last enabled wins");
    assert_eq!(
        k.filter_updates(),
        updates,
        "a site already redirected needs no ftrace update"
    );
    assert_eq!(c.disable(KEY_A), Err(Error::EBUSY));
    assert!(k.logged(&["cannot disable patch a: patch b was enabled after it; disable b first"]));
    assert_eq!(k.call(f), new_b, "a refused disable changes nothing");
    c.disable(KEY_B).unwrap();
    assert_eq!(k.call(f), new_a, "unwinding restores the patch below");
    assert_eq!(k.filter().len(), 1);
    c.disable(KEY_A).unwrap();
    assert_eq!(k.call(f), f);
    k.check_invariants(&c, &[]);
}

/// A patch enabled before its target module loads: the module is patched as it comes,
/// holds a reference while patched, loses it on disable, regains it on enable; going away
/// (its init failed, or rmmod -f) unpatches it; loaded again, it is patched again.
#[test]
fn target_module_coming_after_enable_going_and_back() {
    let (k, mut c, pm) = registered(
        "lp_test_a",
        &[(Some("lpt_target"), &[("lpt_target_message", 0, 0)])],
    );
    c.enable(KEY_A).unwrap();
    assert!(
        k.filter().is_empty(),
        "nothing to redirect while the target is away"
    );
    assert!(!c.patches[0].objects[0].redirected);
    k.check_invariants(&c, &[(pm, 1)]);

    let (m, addrs) = k.module_coming("lpt_target", &["lpt_target_message"]);
    c.module_event(ModuleEvent::Coming, m).unwrap();
    let new = c.patches[0].objects[0].funcs[0].new_func;
    assert_eq!(k.call(addrs[0]), new, "patched before its init runs");
    assert!(k.logged(&["patch lp_test_a: patched module lpt_target as it loads (1 function)"]));
    k.check_invariants(&c, &[(pm, 1), (m, 1)]);
    k.set_state(m, ModState::Live);

    c.disable(KEY_A).unwrap();
    assert_eq!(k.call(addrs[0]), addrs[0]);
    k.check_invariants(&c, &[]);
    c.enable(KEY_A).unwrap();
    assert_eq!(k.call(addrs[0]), new);
    k.check_invariants(&c, &[(pm, 1), (m, 1)]);

    // rmmod -f while patched: GOING, then freed.
    k.set_state(m, ModState::Going);
    c.module_event(ModuleEvent::Going, m).unwrap();
    assert!(k.filter().is_empty());
    assert!(!c.patches[0].objects[0].redirected);
    assert_eq!(
        c.patches[0].objects[0].funcs[0].addr, 0,
        "old_addr reads 0x0 while the module is away"
    );
    k.module_freed(m);
    k.check_invariants(&c, &[(pm, 1)]);

    let (m2, addrs2) = k.module_coming("lpt_target", &["lpt_target_message"]);
    c.module_event(ModuleEvent::Coming, m2).unwrap();
    assert_eq!(k.call(addrs2[0]), new, "patched again when it comes back");
    k.check_invariants(&c, &[(pm, 1), (m2, 1)]);
}

/// A module already loaded when the patch is enabled is patched by the enable, and holds a
/// reference; a module still COMING whose notification has not reached the core yet is
/// left to that notification (ftrace has not enabled its call sites before it).
#[test]
fn target_module_loaded_before_and_during_enable() {
    let k = Fake::new();
    let (pm, _) = k.module_live("p", &[]);
    let (live, la) = k.module_live("first", &["f1"]);
    let (coming, ca) = k.module_coming("second", &["f2"]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY_A,
        pm,
        "p",
        &[
            (Some("first"), &[("f1", 0, 0)]),
            (Some("second"), &[("f2", 0, 0)]),
        ],
    ))
    .unwrap();
    c.enable(KEY_A).unwrap();
    assert_ne!(
        k.call(la[0]),
        la[0],
        "a live module is patched by the enable"
    );
    assert_eq!(
        k.call(ca[0]),
        ca[0],
        "a COMING module waits for its notification"
    );
    k.check_invariants(&c, &[(pm, 1), (live, 1)]);
    c.module_event(ModuleEvent::Coming, coming).unwrap();
    assert_ne!(k.call(ca[0]), ca[0]);
    k.check_invariants(&c, &[(pm, 1), (live, 1), (coming, 1)]);
    c.disable(KEY_A).unwrap();
    k.check_invariants(&c, &[]);
}

/// A module that comes while a patch of it is disabled gets addresses (sysfs shows them)
/// and no redirection; enabling the patch then redirects it.
#[test]
fn target_module_coming_while_disabled() {
    let k = Fake::new();
    let (pm, _) = k.module_live("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(KEY_A, pm, "p", &[(Some("t"), &[("tf", 0, 0)])]))
        .unwrap();
    let (m, a) = k.module_coming("t", &["tf"]);
    c.module_event(ModuleEvent::Coming, m).unwrap();
    k.set_state(m, ModState::Live);
    assert_eq!(c.patches[0].objects[0].funcs[0].addr, a[0]);
    assert_eq!(k.call(a[0]), a[0]);
    k.check_invariants(&c, &[]);
    c.enable(KEY_A).unwrap();
    assert_ne!(k.call(a[0]), a[0]);
    k.check_invariants(&c, &[(pm, 1), (m, 1)]);
}

/// A module whose patch cannot be applied as it comes (its function is missing) is
/// refused its load, with a log line naming patch and cause, and nothing is left.
#[test]
fn target_module_that_cannot_be_patched_is_refused() {
    let (k, mut c, pm) = registered("p", &[(Some("t"), &[("missing_fn", 0, 0)])]);
    c.enable(KEY_A).unwrap();
    let (m, _) = k.module_coming("t", &["other_fn"]);
    assert_eq!(c.module_event(ModuleEvent::Coming, m), Err(Error::ENOENT));
    assert!(k.logged(&["refusing to load module t: patch p cannot patch it"]));
    assert!(k.logged(&["function missing_fn not found in t"]));
    // Its load fails: the loader sends GOING to the notifiers that said yes, not to us.
    k.module_freed(m);
    k.check_invariants(&c, &[(pm, 1)]);
}

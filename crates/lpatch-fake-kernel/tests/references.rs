// SPDX-License-Identifier: GPL-2.0-only
//! References and windows (issue 19), on the host over the fake kernel: no module
//! reference leaks when a patch module goes away with its patch enabled, no sysfs write
//! makes a patch live behind its module's init, and a coming module the core cannot
//! patch is refused, never let through unpatched.

use lpatch_fake_kernel::{patch_desc, Fake, ModState};
use lpatch_logic::core::ModuleEvent;
use lpatch_logic::error::Error;

const KEY: usize = 0xa000;

/// A patch module whose patch is enabled goes away (its init failed after enabling, or
/// rmmod -f): the patch is removed, and the reference it held on a target module that
/// stays is put, not forgotten — `rmmod lpt_target` works afterwards.
#[test]
fn patch_module_going_while_enabled_puts_its_target_references() {
    let k = Fake::new();
    let (t, ta) = k.module_live("lpt_target", &["lpt_target_message"]);
    let v = k.vmlinux_fn("cmdline_proc_show");
    let (pm, _) = k.module_coming("lp_test_c", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY,
        pm,
        "lp_test_c",
        &[
            (None, &[("cmdline_proc_show", 0, 0)]),
            (Some("lpt_target"), &[("lpt_target_message", 0, 0)]),
        ],
    ))
    .unwrap();
    c.enable(KEY).unwrap();
    assert_ne!(k.call(ta[0]), ta[0]);
    k.check_invariants(&c, &[(pm, 1), (t, 1)]);

    // Its init fails after enabling: the loader sends GOING for it.
    k.set_state(pm, ModState::Going);
    c.module_event(ModuleEvent::Going, pm).unwrap();
    while c.take_buried().is_some() {}
    assert!(c.patches.is_empty());
    assert!(k.logged(&["patch module lp_test_c is going away with its patch enabled"]));
    assert_eq!(k.call(ta[0]), ta[0]);
    assert_eq!(k.call(v), v);
    assert_eq!(k.refs(t), 0, "the reference on lpt_target leaked");
    assert_eq!(k.dirs(), ["lpatch"]);
    k.module_freed(pm);
    k.check_invariants(&c, &[]);
}

/// While the patch module's init runs (it is COMING), `enabled` cannot be written: its
/// init owns the patch until it returns (a write there would make the patch live, the
/// init's own enable fail, and the module be freed with its code in use).
#[test]
fn enabled_is_not_writable_while_the_patch_module_initialises() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pm, _) = k.module_coming("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY,
        pm,
        "p",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    let dir = k.dir_id("lpatch/p").unwrap();
    assert_eq!(
        lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"1"),
        Err(Error::EBUSY)
    );
    assert!(
        k.logged(&["patch p: its module is still initialising"]),
        "{:#?}",
        k.log()
    );
    assert_eq!(k.call(f), f);
    assert!(!k.tainted());
    k.check_invariants(&c, &[]);
    // The init's own enable works, and once the module is live, so does sysfs.
    c.enable(KEY).unwrap();
    assert_eq!(
        lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"0"),
        Err(Error::EBUSY)
    );
    k.set_state(pm, ModState::Live);
    lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"0").unwrap();
    assert_eq!(k.call(f), f);
    lpatch_logic::sysfs::store(&mut c, dir, b"enabled", b"1").unwrap();
    assert_ne!(k.call(f), f);
    k.check_invariants(&c, &[(pm, 1)]);
}

/// A coming module no reference can be taken on (or that ftrace refuses, e.g. with
/// ftrace disabled) is refused its load with a log line naming module, patch and cause —
/// never loaded unpatched while its patch reads enabled.
#[test]
fn coming_module_the_core_cannot_patch_is_refused() {
    for failure in ["reference", "ftrace"] {
        let k = Fake::new();
        let (pm, _) = k.module_live("p", &[]);
        let mut c = k.core();
        c.register(patch_desc(KEY, pm, "p", &[(Some("t"), &[("tf", 0, 0)])]))
            .unwrap();
        c.enable(KEY).unwrap();
        let (m, a) = k.module_coming("t", &["tf"]);
        match failure {
            "reference" => k.fail_next_try_get(),
            _ => k.fail_next_filter_add(Error::ENODEV),
        }
        assert_eq!(
            c.module_event(ModuleEvent::Coming, m),
            Err(Error::ENODEV),
            "{failure}"
        );
        assert!(
            k.logged(&[
                "refusing to load module t: patch p cannot patch it",
                "ENODEV"
            ]),
            "{failure}: {:#?}",
            k.log()
        );
        assert_eq!(k.call(a[0]), a[0]);
        k.module_freed(m);
        k.check_invariants(&c, &[(pm, 1)]);
    }
}

/// A module whose load straddles the core's start — its COMING notification went out
/// before the core's notifier was registered — is patched when it turns LIVE, if a patch
/// of it was enabled meanwhile (the enable itself leaves a COMING module to its
/// notification, which for this one never comes).
#[test]
fn module_loading_across_the_core_start_is_patched_at_live() {
    let k = Fake::new();
    let (m, a) = k.module_coming("t", &["tf"]); // COMING already sent, before the core
    let (pm, _) = k.module_live("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(KEY, pm, "p", &[(Some("t"), &[("tf", 0, 0)])]))
        .unwrap();
    c.enable(KEY).unwrap();
    assert_eq!(
        k.call(a[0]),
        a[0],
        "a COMING module is left to its notification"
    );
    k.set_state(m, ModState::Live);
    c.module_event(ModuleEvent::Live, m).unwrap();
    assert_ne!(k.call(a[0]), a[0], "caught up at LIVE");
    k.check_invariants(&c, &[(pm, 1), (m, 1)]);
    // A module the core saw come is not patched twice at LIVE.
    let (m2, a2) = k.module_coming("t2", &["tf2"]);
    let (qm, _) = k.module_live("q", &[]);
    c.register(patch_desc(
        KEY + 1,
        qm,
        "q",
        &[(Some("t2"), &[("tf2", 0, 0)])],
    ))
    .unwrap();
    c.enable(KEY + 1).unwrap();
    c.module_event(ModuleEvent::Coming, m2).unwrap();
    k.set_state(m2, ModState::Live);
    let updates = k.filter_updates();
    c.module_event(ModuleEvent::Live, m2).unwrap();
    assert_eq!(k.filter_updates(), updates);
    assert_ne!(k.call(a2[0]), a2[0]);
    k.check_invariants(&c, &[(pm, 1), (qm, 1), (m, 1), (m2, 1)]);
}

/// An enable between the module turning live and its LIVE notification patches it; the
/// notification then changes nothing (no second reference, no second redirection).
#[test]
fn enable_just_before_the_live_notification_patches_once() {
    let k = Fake::new();
    let (m, a) = k.module_coming("t", &["tf"]);
    let (pm, _) = k.module_live("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(KEY, pm, "p", &[(Some("t"), &[("tf", 0, 0)])]))
        .unwrap();
    k.set_state(m, ModState::Live);
    c.enable(KEY).unwrap();
    assert_ne!(k.call(a[0]), a[0]);
    c.module_event(ModuleEvent::Live, m).unwrap();
    assert_ne!(k.call(a[0]), a[0]);
    k.check_invariants(&c, &[(pm, 1), (m, 1)]);
    c.disable(KEY).unwrap();
    assert_eq!(k.call(a[0]), a[0]);
    k.check_invariants(&c, &[]);
}

/// The handler's note of a call it could not redirect (ftrace's recursion guard tripped):
/// worth a log line once per redirected call site, never for a site not redirected.
#[test]
fn recursion_bypass_is_noted_once_per_redirected_site() {
    use lpatch_fake_kernel::call_site;
    use lpatch_logic::seam::Kernel;
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let g = k.vmlinux_fn("meminfo_proc_show");
    let (pm, _) = k.module_live("p", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        KEY,
        pm,
        "p",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.enable(KEY).unwrap();
    let mut seen = Vec::new();
    k.with_published(&mut |t| {
        seen.push(t.note_bypass(call_site(f)));
        seen.push(t.note_bypass(call_site(f)));
        seen.push(t.note_bypass(call_site(g)));
    });
    assert_eq!(seen, [true, false, false]);
    k.check_invariants(&c, &[(pm, 1)]);
}

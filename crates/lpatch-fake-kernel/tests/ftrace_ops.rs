// SPDX-License-Identifier: GPL-2.0-only
//! The core's ftrace_ops is registered only while some function is redirected (issue 24,
//! item 2), on the host over the fake kernel: the first function patched registers it, the
//! last one gone unregisters it and frees the handler's table; with nothing patched
//! `sysctl kernel.ftrace_enabled=0` is allowed, and then enabling a patch is refused with
//! EBUSY and a log line naming the sysctl, leaving nothing applied; an unregister ftrace
//! refuses is logged and retried at the next change.

use lpatch_fake_kernel::{patch_desc, Fake};
use lpatch_logic::error::Error;

const A: usize = 0xa000;
const B: usize = 0xb000;

#[test]
fn the_ops_is_registered_exactly_while_something_is_patched() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let g = k.vmlinux_fn("meminfo_proc_show");
    let (pa, _) = k.module_live("lp_test_a", &[]);
    let (pb, _) = k.module_live("lp_test_b", &[]);
    let mut c = k.core();
    assert!(!k.ops_registered(), "registered with nothing patched");
    c.register(patch_desc(
        A,
        pa,
        "lp_test_a",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.register(patch_desc(
        B,
        pb,
        "lp_test_b",
        &[(None, &[("meminfo_proc_show", 0, 0)])],
    ))
    .unwrap();
    assert!(!k.ops_registered(), "registered by a register alone");

    let updates = k.filter_updates();
    c.enable(A).unwrap();
    assert!(k.ops_registered());
    assert_eq!(
        k.filter_updates(),
        updates + 1,
        "first enable: one ftrace update"
    );
    assert_ne!(k.call(f), f);
    c.enable(B).unwrap();
    assert_eq!(
        k.filter_updates(),
        updates + 2,
        "second enable: one ftrace update"
    );
    // While anything is patched, ftrace refuses to be switched off.
    assert!(!k.set_ftrace_off(true));
    // Patches are disabled newest first.
    c.disable(B).unwrap();
    assert!(k.ops_registered());
    assert!(!k.set_ftrace_off(true));
    assert_eq!(k.call(g), g);
    assert_ne!(k.call(f), f);
    c.disable(A).unwrap();
    assert!(!k.ops_registered(), "still registered with nothing patched");
    assert!(
        !k.table_published(),
        "the table outlives the last patched function"
    );
    assert_eq!(k.call(f), f);
    assert!(k.set_ftrace_off(true), "refused with nothing patched");
    assert!(k.set_ftrace_off(false));
    k.check_invariants(&c, &[]);

    // Enabled again from nothing: registered again.
    c.enable(B).unwrap();
    assert!(k.ops_registered());
    assert_ne!(k.call(g), g);
    k.check_invariants(&c, &[(pb, 1)]);
}

#[test]
fn with_ftrace_switched_off_enable_is_refused_naming_the_sysctl() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pa, _) = k.module_live("lp_test_a", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        A,
        pa,
        "lp_test_a",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    assert!(k.set_ftrace_off(true), "refused with nothing patched");
    assert_eq!(c.enable(A), Err(Error::EBUSY));
    assert!(
        k.logged(&["lp_test_a", "sysctl kernel.ftrace_enabled=0"]),
        "{:#?}",
        k.log()
    );
    assert!(
        !k.logged(&["another ftrace user"]),
        "EBUSY blamed on a conflict: {:#?}",
        k.log()
    );
    assert!(!k.ops_registered());
    assert_eq!(k.call(f), f);
    assert!(!c.patches[0].enabled);
    // Nothing was left half-applied: with ftrace back on, the same enable works.
    assert!(k.set_ftrace_off(false));
    c.enable(A).unwrap();
    assert_ne!(k.call(f), f);
    k.check_invariants(&c, &[(pa, 1)]);
}

#[test]
fn an_unregister_ftrace_refuses_is_logged_and_retried() {
    let k = Fake::new();
    let f = k.vmlinux_fn("cmdline_proc_show");
    let (pa, _) = k.module_live("lp_test_a", &[]);
    let mut c = k.core();
    c.register(patch_desc(
        A,
        pa,
        "lp_test_a",
        &[(None, &[("cmdline_proc_show", 0, 0)])],
    ))
    .unwrap();
    c.enable(A).unwrap();
    k.fail_next_unregister(Error::ENODEV);
    c.disable(A).unwrap();
    assert!(k.ops_registered());
    assert_eq!(k.call(f), f, "a disabled patch's replacement runs");
    assert!(
        k.logged(&["cannot unregister", "ENODEV", "retried"]),
        "{:#?}",
        k.log()
    );
    k.check_invariants(&c, &[]);
    c.enable(A).unwrap();
    assert_ne!(k.call(f), f);
    c.disable(A).unwrap();
    assert!(!k.ops_registered());
    assert!(k.filter().is_empty());
    k.check_invariants(&c, &[]);
}

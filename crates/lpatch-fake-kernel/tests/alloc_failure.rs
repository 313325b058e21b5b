// SPDX-License-Identifier: GPL-2.0-only
//! Every allocation of register, enable and a module coming, failed in turn (fail-nth over
//! the whole path, as the debug kernel's failslab walk does in the VM): each attempt is
//! refused with ENOMEM and leaves exactly the state before, and the walk ends with the
//! attempt that meets no failure and succeeds. Each walk runs twice: failing the n-th
//! allocation only, and failing it and every one after it — then the rollback of what the
//! attempt had done must complete without memory (removal never allocates; tests/removal.rs
//! walks disable, unregister and a module going the same way).

use lpatch_fake_kernel::fail_nth::{self, FailNth, Suspended};
use lpatch_fake_kernel::{patch_desc, Fake, ModId, ModState};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::Error;

#[global_allocator]
static ALLOC: FailNth = FailNth;

const KEY: usize = 0xa000;

/// A machine with two vmlinux functions, a loaded module with one, and a patch module.
fn machine() -> (Fake, Core<Fake>, ModId, ModId, Vec<usize>) {
    let k = Fake::new();
    let v = vec![
        k.vmlinux_fn("cmdline_proc_show"),
        k.vmlinux_fn("meminfo_proc_show"),
    ];
    let (t, _) = k.module_live("lpt_target", &["lpt_target_message"]);
    let (pm, _) = k.module_live("lp_test_a", &[]);
    let c = k.core();
    (k, c, pm, t, v)
}

fn desc(pm: ModId) -> lpatch_logic::model::PatchDesc<ModId> {
    patch_desc(
        KEY,
        pm,
        "lp_test_a",
        &[
            (
                None,
                &[("cmdline_proc_show", 0, 0), ("meminfo_proc_show", 0, 0)],
            ),
            (Some("lpt_target"), &[("lpt_target_message", 0, 0)]),
            (Some("not_loaded"), &[("later_fn", 0, 0)]),
        ],
    )
}

/// Walks n = 1, 2, ... over `attempt` (which runs with the n-th allocation failing) on a
/// fresh machine each time: each failing attempt must satisfy `refused`, the first attempt
/// the failure never reaches must succeed, `succeeded` is checked then. Returns how many
/// allocations the path makes.
fn walk<S>(
    sticky: bool,
    setup: impl Fn() -> S,
    attempt: impl Fn(&mut S) -> Result<(), Error>,
    refused: impl Fn(&mut S, u64),
    succeeded: impl Fn(&mut S),
) -> u64 {
    for n in 1..10_000 {
        let mut s = setup();
        if sticky {
            fail_nth::arm_from(n);
        } else {
            fail_nth::arm(n);
        }
        let r = attempt(&mut s);
        let fired = fail_nth::disarm();
        if !fired {
            assert_eq!(r, Ok(()), "no allocation failed at n = {n}, yet it failed");
            succeeded(&mut s);
            return n - 1;
        }
        assert_eq!(
            r,
            Err(Error::ENOMEM),
            "allocation {n} failed: the attempt must be refused whole"
        );
        refused(&mut s, n);
    }
    panic!("the walk did not end");
}

#[test]
fn every_allocation_of_register_and_enable_refused_whole() {
    for sticky in [false, true] {
        register_and_enable_walk(sticky);
    }
}

fn register_and_enable_walk(sticky: bool) {
    let allocations = walk(
        sticky,
        || {
            let (k, c, pm, t, v) = machine();
            k.clear_log();
            (k, c, pm, t, v)
        },
        |(_, c, pm, _, _)| {
            // The description is the patch module's (read before the core allocates).
            let d = {
                let _s = Suspended::new();
                desc(*pm)
            };
            c.register(d)?;
            c.enable(KEY).inspect_err(|_| {
                // As lpatch.h asks of an init whose enable failed.
                c.unregister(KEY).unwrap();
            })
        },
        |(k, c, _, _, v), n| {
            while c.take_buried().is_some() {}
            assert!(
                c.patches.is_empty(),
                "n = {n}: the patch is left registered"
            );
            assert_eq!(k.dirs(), ["lpatch"], "n = {n}: directories left");
            assert!(k.filter().is_empty(), "n = {n}: filter entries left");
            assert_eq!(k.call(v[0]), v[0], "n = {n}");
            assert!(!k.tainted(), "n = {n}: tainted");
            k.check_invariants(c, &[]);
        },
        |(k, c, pm, t, v)| {
            assert_ne!(k.call(v[0]), v[0]);
            assert_ne!(k.call(v[1]), v[1]);
            assert_eq!(k.filter().len(), 3);
            k.check_invariants(c, &[(*pm, 1), (*t, 1)]);
        },
    );
    eprintln!("register + enable: {allocations} allocations, each failure refused whole");
    assert!(
        allocations >= 10,
        "only {allocations} allocations walked: is the allocator installed?"
    );
}

#[test]
fn every_allocation_of_a_module_coming_refuses_its_load_whole() {
    for sticky in [false, true] {
        module_coming_walk(sticky);
    }
}

fn module_coming_walk(sticky: bool) {
    let allocations = walk(
        sticky,
        || {
            let (k, mut c, pm, t, v) = machine();
            c.register(desc(pm)).unwrap();
            c.enable(KEY).unwrap();
            let (m, a) = k.module_coming("not_loaded", &["later_fn"]);
            (k, c, pm, t, v, m, a)
        },
        |(_, c, _, _, _, m, _)| c.module_event(ModuleEvent::Coming, *m),
        |(k, c, pm, t, _, m, a), n| {
            assert_eq!(
                k.call(a[0]),
                a[0],
                "n = {n}: a refused module is not patched"
            );
            assert!(!c.patches[0].objects[2].redirected, "n = {n}");
            assert!(
                k.logged(&["not_loaded"]),
                "n = {n}: no log line names the module"
            );
            k.check_invariants(c, &[(*pm, 1), (*t, 1)]);
            // Its load failed: the loader frees it; nothing is left in the way of the next.
            k.module_freed(*m);
            let (m2, a2) = k.module_coming("not_loaded", &["later_fn"]);
            c.module_event(ModuleEvent::Coming, m2).unwrap();
            assert_ne!(
                k.call(a2[0]),
                a2[0],
                "n = {n}: the next load is not patched"
            );
            k.check_invariants(c, &[(*pm, 1), (*t, 1), (m2, 1)]);
        },
        |(k, c, pm, t, _, m, a)| {
            assert_ne!(k.call(a[0]), a[0]);
            k.set_state(*m, ModState::Live);
            k.check_invariants(c, &[(*pm, 1), (*t, 1), (*m, 1)]);
        },
    );
    eprintln!("a module coming: {allocations} allocations, each failure refused whole");
    assert!(allocations >= 3, "only {allocations} allocations walked");
}

/// Two enabled patches of a module not loaded yet: when it comes, the first patches it and
/// the second fails for want of memory, so the first's redirection is rolled back — with
/// every allocation failing from there on.
#[test]
fn a_refused_module_load_rolls_back_the_patches_applied_without_memory() {
    const KEY_B: usize = 0xb000;
    for sticky in [false, true] {
        let allocations = walk(
            sticky,
            || {
                let (k, mut c, pm, t, v) = machine();
                let (pb, _) = k.module_live("lp_test_b", &[]);
                c.register(desc(pm)).unwrap();
                c.enable(KEY).unwrap();
                c.register(patch_desc(
                    KEY_B,
                    pb,
                    "lp_test_b",
                    &[(Some("not_loaded"), &[("later_fn", 0, 0)])],
                ))
                .unwrap();
                c.enable(KEY_B).unwrap();
                let (m, a) = k.module_coming("not_loaded", &["later_fn"]);
                (k, c, pm, pb, t, v, m, a)
            },
            |(_, c, _, _, _, _, m, _)| c.module_event(ModuleEvent::Coming, *m),
            |(k, c, pm, pb, t, v, m, a), n| {
                assert_eq!(k.call(a[0]), a[0], "n = {n}: a refused module is patched");
                assert!(
                    !k.filter().contains(&lpatch_fake_kernel::call_site(a[0])),
                    "n = {n}"
                );
                assert_ne!(k.call(v[0]), v[0], "n = {n}: vmlinux lost its patch");
                k.check_invariants(c, &[(*pm, 1), (*pb, 1), (*t, 1)]);
                k.module_freed(*m);
            },
            |(k, c, pm, pb, t, _, m, a)| {
                let b_new = c.patches[1].objects[0].funcs[0].new_func;
                assert_eq!(k.call(a[0]), b_new, "B's replacement on top");
                k.set_state(*m, ModState::Live);
                k.check_invariants(c, &[(*pm, 1), (*pb, 1), (*t, 1), (*m, 2)]);
            },
        );
        assert!(allocations >= 4, "only {allocations} allocations walked");
    }
}

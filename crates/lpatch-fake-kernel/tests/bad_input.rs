// SPDX-License-Identifier: GPL-2.0-only
//! Bad input at the API, on the host over the fake kernel: each is refused with the errno
//! the VM tests expect, a log line naming the cause, and nothing left — no directory, no
//! filter entry, no reference, no taint — so the same patch registers cleanly afterwards.

use lpatch_fake_kernel::{call_site, patch_desc, Fake, ModId, ModState, ObjectSpec};
use lpatch_logic::core::Core;
use lpatch_logic::error::Error;

const KEY: usize = 0xa000;

/// A machine with the functions the cases name: `dup` twice (two same-named statics),
/// `solo` once and also named `solo_alias`, `notrace_fn` untraceable; a live module `mod_t`
/// with `mf`, also named `mf_alias`.
fn machine() -> (Fake, Core<Fake>, ModId) {
    let k = Fake::new();
    let solo = k.vmlinux_fn("solo");
    k.alias("solo_alias", solo);
    k.vmlinux_fn("dup");
    k.vmlinux_fn("other");
    k.vmlinux_fn("dup");
    k.vmlinux_untraceable("notrace_fn");
    let (_, mf) = k.module_live("mod_t", &["mf"]);
    k.alias("mf_alias", mf[0]);
    let (pm, _) = k.module_live("patchmod", &[]);
    let c = k.core();
    (k, c, pm)
}

/// Registers (and, if that works, enables) a patch of `objects`; the whole attempt must
/// fail with `errno` and a log line holding `says`, leaving nothing behind.
#[track_caller]
fn refused(objects: &[ObjectSpec<'_>], errno: Error, says: &str) {
    let (k, mut c, pm) = machine();
    let r = c
        .register(patch_desc(KEY, pm, "bad", objects))
        .and_then(|_| c.enable(KEY));
    assert_eq!(r, Err(errno), "log: {:#?}", k.log());
    assert!(
        k.logged(&[says]),
        "no log line with {says:?}: {:#?}",
        k.log()
    );
    // Refused at enable: the patch stays registered (the module's init unregisters it).
    if c.patches.len() == 1 {
        c.unregister(KEY).unwrap();
    }
    while c.take_buried().is_some() {}
    assert_eq!(k.dirs(), ["lpatch"], "directories left");
    assert!(k.filter().is_empty(), "filter entries left");
    assert!(!k.tainted(), "tainted by a refused patch");
    k.check_invariants(&c, &[]);
    // Nothing left in the way: the same name registers and applies at once.
    c.register(patch_desc(KEY, pm, "bad", &[(None, &[("solo", 0, 0)])]))
        .unwrap();
    c.enable(KEY).unwrap();
    k.check_invariants(&c, &[(pm, 1)]);
}

#[test]
fn missing_symbol_is_enoent() {
    refused(
        &[(None, &[("no_such_fn", 0, 0)])],
        Error::ENOENT,
        "function no_such_fn not found in vmlinux",
    );
}

#[test]
fn ambiguous_symbol_is_einval_with_its_count() {
    refused(
        &[(None, &[("dup", 0, 0)])],
        Error::EINVAL,
        "function dup is ambiguous in vmlinux: 2 symbols have that name",
    );
}

#[test]
fn sympos_past_the_candidates_is_enoent() {
    refused(
        &[(None, &[("dup", 3, 0)])],
        Error::ENOENT,
        "has old_sympos 3 but vmlinux has only 2 symbol(s)",
    );
}

#[test]
fn old_addr_of_another_function_is_einval() {
    refused(
        &[(None, &[("solo", 0, 0x1234)])],
        Error::EINVAL,
        "old_addr 0x1234 of solo",
    );
}

#[test]
fn old_addr_in_a_module_is_einval() {
    refused(
        &[(Some("mod_t"), &[("mf", 0, 0x1234)])],
        Error::EINVAL,
        "old_addr is for vmlinux only",
    );
}

#[test]
fn untraceable_function_is_einval() {
    refused(
        &[(None, &[("notrace_fn", 0, 0)])],
        Error::EINVAL,
        "is not traceable by ftrace",
    );
}

#[test]
fn function_listed_twice_is_einval() {
    refused(
        &[(None, &[("solo", 0, 0), ("solo", 1, 0)])],
        Error::EINVAL,
        "function solo is listed twice in vmlinux",
    );
}

/// Two names of one function in one patch would put two records on one address: after a
/// disable, a later patch of it was stacked on the stale one, never entered the filter, and
/// read enabled while the old code ran.
#[test]
fn two_names_for_one_address_are_einval() {
    refused(
        &[(None, &[("solo", 0, 0), ("solo_alias", 0, 0)])],
        Error::EINVAL,
        "functions solo and solo_alias are one function in vmlinux",
    );
    refused(
        &[(Some("mod_t"), &[("mf_alias", 0, 0), ("mf", 0, 0)])],
        Error::EINVAL,
        "functions mf_alias and mf are one function in mod_t",
    );
}

#[test]
fn object_listed_twice_is_einval() {
    refused(
        &[(None, &[("solo", 0, 0)]), (None, &[("other", 0, 0)])],
        Error::EINVAL,
        "object vmlinux is listed twice",
    );
}

#[test]
fn empty_patch_is_einval() {
    refused(
        &[(None, &[])],
        Error::EINVAL,
        "patch bad: no functions to patch",
    );
}

/// One good function and one missing: nothing of the patch is applied.
#[test]
fn one_bad_function_refuses_the_whole_patch() {
    refused(
        &[(None, &[("solo", 0, 0), ("no_such_fn", 0, 0)])],
        Error::ENOENT,
        "no_such_fn not found",
    );
}

#[test]
fn missing_symbol_in_a_loaded_module_is_enoent() {
    refused(
        &[(Some("mod_t"), &[("nope", 0, 0)])],
        Error::ENOENT,
        "function nope not found in mod_t",
    );
}

#[test]
fn patch_registered_twice_is_eexist() {
    let (k, mut c, pm) = machine();
    c.register(patch_desc(KEY, pm, "p", &[(None, &[("solo", 0, 0)])]))
        .unwrap();
    assert_eq!(
        c.register(patch_desc(KEY, pm, "p", &[(None, &[("other", 0, 0)])])),
        Err(Error::EEXIST)
    );
    assert_eq!(
        c.register(patch_desc(KEY + 1, pm, "p", &[(None, &[("other", 0, 0)])])),
        Err(Error::EEXIST)
    );
    assert!(k.logged(&["patch p is already registered"]));
    assert_eq!(c.patches.len(), 1);
    k.check_invariants(&c, &[]);
}

#[test]
fn calls_for_an_unregistered_patch_are_einval() {
    let (k, mut c, _) = machine();
    assert_eq!(c.enable(KEY), Err(Error::EINVAL));
    assert_eq!(c.disable(KEY), Err(Error::EINVAL));
    assert_eq!(c.unregister(KEY), Err(Error::EINVAL));
    assert!(k.logged(&["enable: patch 0xa000 is not registered"]));
    k.check_invariants(&c, &[]);
}

/// A function another ftrace user modifies (a kprobe with a post handler, the in-kernel
/// livepatch): EBUSY, the log names the patch's functions, and nothing is applied — not
/// even the patch's other functions.
#[test]
fn function_owned_by_another_ftrace_user_is_ebusy() {
    let (k, mut c, pm) = machine();
    let addr_other = k.symbol_addrs("other")[0];
    k.owned_elsewhere(addr_other);
    c.register(patch_desc(
        KEY,
        pm,
        "p",
        &[(None, &[("solo", 0, 0), ("other", 0, 0)])],
    ))
    .unwrap();
    assert_eq!(c.enable(KEY), Err(Error::EBUSY));
    assert!(k.logged(&["patch p: a function of it (vmlinux:solo, vmlinux:other) is already modified by another ftrace user"]));
    assert!(k.logged(&["patch p not enabled", "nothing of it is applied"]));
    assert!(k.filter().is_empty());
    assert!(!k.filter().contains(&call_site(addr_other)));
    assert!(!c.patches[0].enabled);
    assert!(!k.tainted());
    k.check_invariants(&c, &[]);
}

/// A module's `__init` function (issue 21, item 4): its text is freed once the module's
/// init returns, and a call site of it left in the filter would redirect whatever is
/// placed there next. A patch naming one is refused: the module's load, when the patch is
/// enabled before it comes; the registration, while the module is COMING; and once it is
/// LIVE the function is gone from kallsyms.
#[test]
fn a_module_init_function_is_refused() {
    use lpatch_logic::core::ModuleEvent;
    let k = Fake::new();
    k.vmlinux_fn("solo");
    let (pm, _) = k.module_live("patchmod", &[]);
    let mut c = k.core();
    let desc = || {
        patch_desc(
            KEY,
            pm,
            "p",
            &[
                (None, &[("solo", 0, 0)]),
                (Some("tgt"), &[("tgt_setup", 0, 0)]),
            ],
        )
    };
    c.register(desc()).unwrap();
    c.enable(KEY).unwrap();
    let (m, _) = k.module_coming("tgt", &["tgt_fn"]);
    let init = k.init_fn(m, "tgt_setup");
    assert_eq!(
        c.module_event(ModuleEvent::Coming, m),
        Err(Error::EINVAL),
        "{:#?}",
        k.log()
    );
    assert!(
        k.logged(&["tgt_setup", "in tgt is __init code", "cannot be patched"]),
        "{:#?}",
        k.log()
    );
    assert!(k.logged(&["refusing to load module tgt"]));
    assert!(!k.filter().contains(&call_site(init)));
    k.check_invariants(&c, &[(pm, 1)]);
    k.module_freed(m);

    // Registered while the module is COMING (the core has seen it arrive).
    c.disable(KEY).unwrap();
    c.unregister(KEY).unwrap();
    while c.take_buried().is_some() {}
    let (m, _) = k.module_coming("tgt", &["tgt_fn"]);
    k.init_fn(m, "tgt_setup");
    c.module_event(ModuleEvent::Coming, m).unwrap();
    assert_eq!(c.register(desc()), Err(Error::EINVAL));
    assert_eq!(k.dirs(), ["lpatch"]);

    // LIVE: the init text is freed, the name gone.
    k.set_state(m, ModState::Live);
    c.module_event(ModuleEvent::Live, m).unwrap();
    assert_eq!(c.register(desc()), Err(Error::ENOENT));
    assert!(k.logged(&["function tgt_setup not found in tgt"]));
    assert_eq!(k.dirs(), ["lpatch"]);
    // Disabled and unregistered: the patch module is no longer pinned.
    k.check_invariants(&c, &[]);
}

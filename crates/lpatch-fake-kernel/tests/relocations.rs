// SPDX-License-Identifier: GPL-2.0-only
//! A patch module's relocations against a module object's symbols (issue 22, item 1), on
//! the host over the fake kernel: applied at register when the target is loaded, or as it
//! comes (before its functions are redirected); cleared as it goes and applied again at its
//! next load, at its new addresses; symbols resolved within their object by name and
//! sympos; all or nothing — a symbol missing or ambiguous refuses the register or the
//! module's load with nothing written; and every malformed section refused at register.

use lpatch_fake_kernel::fail_nth::{self, FailNth};
use lpatch_fake_kernel::{patch_desc, rela_section, Fake, ModId, ModState, RelaSpec};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::Error;
use lpatch_logic::model::PatchDesc;
use lpatch_logic::reloc::RelaSectionDesc;

#[global_allocator]
static ALLOC: FailNth = FailNth;

const KEY: usize = 0xa000;
/// Where the patch module's relocated section (its .text) is loaded.
const TEXT: usize = 0xffff_ffff_c100_0000;
const R_X86_64_64: u32 = 1;
const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;

fn u32_at(k: &Fake, addr: usize) -> u32 {
    u32::from_le_bytes(k.mem(addr, 4).try_into().unwrap())
}

fn u64_at(k: &Fake, addr: usize) -> u64 {
    u64::from_le_bytes(k.mem(addr, 8).try_into().unwrap())
}

/// The patch of lpt_target's lpt_target_message, whose replacement calls the module's
/// static helper (PLT32 at +0x10) and updates its static counter (PC32 at +0x20, and an
/// absolute pointer to it at +0x30), with `extra` relocations too.
fn desc(pmod: ModId, extra: &[RelaSpec<'_>]) -> PatchDesc<ModId> {
    let mut relas = vec![
        (0x10, R_X86_64_PLT32, -4, ".klp.sym.lpt_target.lpt_helper,0"),
        (0x20, R_X86_64_PC32, -4, ".klp.sym.lpt_target.lpt_count,0"),
        (0x30, R_X86_64_64, 8, ".klp.sym.lpt_target.lpt_count,0"),
    ];
    relas.extend_from_slice(extra);
    with_sections(
        pmod,
        vec![rela_section(
            ".klp.rela.lpt_target..text",
            ".text",
            TEXT,
            0x100,
            &relas,
        )],
    )
}

fn with_sections(pmod: ModId, sections: Vec<RelaSectionDesc>) -> PatchDesc<ModId> {
    let mut d = patch_desc(
        KEY,
        pmod,
        "lp_reloc",
        &[
            (None, &[("cmdline_proc_show", 0, 0)]),
            (Some("lpt_target"), &[("lpt_target_message", 0, 0)]),
        ],
    );
    d.relocs = sections;
    d
}

struct Machine {
    k: Fake,
    c: Core<Fake>,
    pmod: ModId,
}

fn machine() -> Machine {
    let k = Fake::new();
    k.vmlinux_fn("cmdline_proc_show");
    let (pmod, _) = k.module_live("lp_reloc", &[]);
    let c = k.core();
    Machine { k, c, pmod }
}

/// lpt_target COMING with its function, its static helper and counter; their addresses.
fn target_coming(k: &Fake) -> (ModId, usize, usize) {
    let (t, _) = k.module_coming("lpt_target", &["lpt_target_message"]);
    let helper = k.module_data(t, "lpt_helper");
    let count = k.module_data(t, "lpt_count");
    (t, helper, count)
}

fn assert_applied(k: &Fake, helper: usize, count: usize) {
    let pc = |loc: usize, s: usize| (s as i64 - 4 - loc as i64) as i32 as u32;
    assert_eq!(
        u32_at(k, TEXT + 0x10),
        pc(TEXT + 0x10, helper),
        "call to lpt_helper"
    );
    assert_eq!(
        u32_at(k, TEXT + 0x20),
        pc(TEXT + 0x20, count),
        "PC32 to lpt_count"
    );
    assert_eq!(
        u64_at(k, TEXT + 0x30),
        count as u64 + 8,
        "absolute pointer to lpt_count"
    );
}

fn assert_clear(k: &Fake) {
    assert_eq!(
        k.mem(TEXT, 0x100),
        vec![0; 0x100],
        "relocation targets zeroed"
    );
}

#[test]
fn applied_at_register_when_the_target_is_loaded_and_cleared_at_unregister() {
    let Machine { k, mut c, pmod } = machine();
    let (t, helper, count) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);
    c.register(desc(pmod, &[])).unwrap();
    assert_applied(&k, helper, count);
    assert!(k.logged(&["patch lp_reloc: applied 3 relocations to lpt_target"]));
    c.enable(KEY).unwrap();
    c.disable(KEY).unwrap();
    assert_applied(&k, helper, count);
    c.unregister(KEY).unwrap();
    assert_clear(&k);
    assert!(k.violations().is_empty());
}

#[test]
fn applied_as_the_target_comes_cleared_as_it_goes_and_applied_again_twice() {
    let Machine { k, mut c, pmod } = machine();
    c.register(desc(pmod, &[])).unwrap();
    c.enable(KEY).unwrap();
    assert_eq!(
        k.pokes().0,
        0,
        "nothing written while the target is not loaded"
    );
    let mut last = None;
    for round in 0..3 {
        let (t, helper, count) = target_coming(&k);
        c.module_event(ModuleEvent::Coming, t).unwrap();
        assert_applied(&k, helper, count);
        let target_fn = k.symbol_addrs("lpt_target_message")[0];
        assert_ne!(k.call(target_fn), target_fn, "round {round}: redirected");
        k.set_state(t, ModState::Live);
        c.module_event(ModuleEvent::Live, t).unwrap();
        assert_ne!(last, Some(helper), "a new load, new addresses");
        last = Some(helper);
        k.set_state(t, ModState::Going);
        c.module_event(ModuleEvent::Going, t).unwrap();
        assert_clear(&k);
        k.module_freed(t);
    }
    assert!(k.violations().is_empty());
}

#[test]
fn a_disabled_patch_is_relocated_too_so_a_later_enable_works() {
    let Machine { k, mut c, pmod } = machine();
    c.register(desc(pmod, &[])).unwrap();
    let (t, helper, count) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    assert_applied(&k, helper, count);
    k.set_state(t, ModState::Live);
    c.enable(KEY).unwrap();
    assert!(k.violations().is_empty());
}

#[test]
fn sympos_picks_one_of_two_same_named_statics_and_without_it_the_name_is_refused() {
    let Machine { k, mut c, pmod } = machine();
    let (t, helper, count) = target_coming(&k);
    let _first = k.module_data(t, "state");
    let second = k.module_data(t, "state");
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);

    let ambiguous = desc(
        pmod,
        &[(0x40, R_X86_64_64, 0, ".klp.sym.lpt_target.state,0")],
    );
    assert_eq!(c.register(ambiguous), Err(Error::EINVAL));
    assert!(k.logged(&[
        "relocation symbol state (sympos 0) is ambiguous in lpt_target",
        "2 symbols"
    ]));
    assert_eq!(k.pokes().0, 0, "nothing written");
    assert!(c.patches.is_empty());

    let past = desc(
        pmod,
        &[(0x40, R_X86_64_64, 0, ".klp.sym.lpt_target.state,3")],
    );
    assert_eq!(c.register(past), Err(Error::ENOENT));
    assert!(k.logged(&[
        "relocation symbol state (sympos 3) not found in lpt_target",
        "only 2"
    ]));
    assert_eq!(k.pokes().0, 0, "nothing written");

    c.register(desc(
        pmod,
        &[(0x40, R_X86_64_64, 0, ".klp.sym.lpt_target.state,2")],
    ))
    .unwrap();
    assert_applied(&k, helper, count);
    assert_eq!(u64_at(&k, TEXT + 0x40), second as u64);
    assert!(k.violations().is_empty());
}

#[test]
fn a_missing_symbol_refuses_the_register_when_loaded_and_the_load_when_not() {
    let Machine { k, mut c, pmod } = machine();
    let missing = || {
        desc(
            pmod,
            &[(0x40, R_X86_64_PC32, -4, ".klp.sym.lpt_target.gone,0")],
        )
    };
    // Not loaded: the register is accepted (nothing to resolve yet) ...
    c.register(missing()).unwrap();
    c.enable(KEY).unwrap();
    // ... and the module's load refused, nothing written, nothing redirected.
    let (t, _, _) = target_coming(&k);
    assert_eq!(c.module_event(ModuleEvent::Coming, t), Err(Error::ENOENT));
    assert!(k.logged(&["relocation symbol gone (sympos 0) not found in lpt_target"]));
    assert!(k.logged(&[
        "refusing to load module lpt_target: patch lp_reloc cannot relocate against it"
    ]));
    assert_clear(&k);
    let target_fn = k.symbol_addrs("lpt_target_message")[0];
    assert_eq!(k.call(target_fn), target_fn);
    k.module_freed(t);
    c.disable(KEY).unwrap();
    c.unregister(KEY).unwrap();

    // Loaded: the register is refused.
    let (t, _, _) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);
    k.clear_log();
    assert_eq!(c.register(missing()), Err(Error::ENOENT));
    assert!(k.logged(&["relocation symbol gone (sympos 0) not found in lpt_target"]));
    assert_clear(&k);
    assert!(c.patches.is_empty());
    assert!(k.violations().is_empty());
}

#[test]
fn a_refused_load_clears_what_another_patch_had_applied_to_it() {
    let Machine { k, mut c, pmod } = machine();
    c.register(desc(pmod, &[])).unwrap();
    // A second patch, whose relocations cannot be resolved.
    let (pmod2, _) = k.module_live("lp_reloc2", &[]);
    let mut d2 = patch_desc(
        0xb000,
        pmod2,
        "lp_reloc2",
        &[(Some("lpt_target"), &[("lpt_target_message", 0, 0)])],
    );
    d2.relocs = vec![rela_section(
        ".klp.rela.lpt_target..text",
        ".text",
        TEXT + 0x1000,
        0x100,
        &[(0, R_X86_64_64, 0, ".klp.sym.lpt_target.gone,0")],
    )];
    c.register(d2).unwrap();
    let (t, _, _) = target_coming(&k);
    assert_eq!(c.module_event(ModuleEvent::Coming, t), Err(Error::ENOENT));
    assert_clear(&k);
    assert!(k.logged(&["patch lp_reloc: cleared its relocations to lpt_target"]));
}

#[test]
fn a_target_already_written_is_refused_and_a_failed_write_undone() {
    let Machine { k, mut c, pmod } = machine();
    let (t, _, _) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);
    k.set_mem(TEXT + 0x20, &[1, 0, 0, 0]);
    assert_eq!(c.register(desc(pmod, &[])), Err(Error::EINVAL));
    assert!(k.logged(&["already holds a value: refusing to write it twice"]));
    assert_eq!(k.pokes().0, 0);
    k.set_mem(TEXT + 0x20, &[0, 0, 0, 0]);

    k.fail_poke_after(2);
    assert_eq!(c.register(desc(pmod, &[])), Err(Error::EINVAL));
    assert!(k.logged(&["cannot write relocation target", "undoing"]));
    assert_clear(&k);
    assert!(c.patches.is_empty());
}

#[test]
fn vmlinux_sections_are_the_loaders_and_left_alone() {
    let Machine { k, mut c, pmod } = machine();
    let d = with_sections(
        pmod,
        vec![rela_section(
            ".klp.rela.vmlinux..text",
            ".text",
            TEXT,
            0x100,
            &[(
                0x10,
                R_X86_64_PC32,
                -4,
                ".klp.sym.vmlinux.saved_command_line,0",
            )],
        )],
    );
    k.set_mem(TEXT + 0x10, &[9, 9, 9, 9]); // what the loader wrote
    c.register(d).unwrap();
    c.enable(KEY).unwrap();
    assert_eq!(k.pokes().0, 0);
    assert_eq!(k.mem(TEXT + 0x10, 4), vec![9, 9, 9, 9]);
}

#[test]
fn going_clears_without_allocating() {
    let Machine { k, mut c, pmod } = machine();
    c.register(desc(pmod, &[])).unwrap();
    c.enable(KEY).unwrap();
    let (t, _, _) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);
    k.set_state(t, ModState::Going);
    fail_nth::arm_from(1);
    c.module_event(ModuleEvent::Going, t).unwrap();
    assert!(!fail_nth::disarm(), "a module going allocated");
    assert_clear(&k);
}

/// One malformed section (or entry) per case: each refused at register with EINVAL, the
/// log naming the section and the cause, nothing registered and nothing written.
#[test]
fn malformed_relocations_are_refused_at_register() {
    let entry = |sym: &str, kind: u32, offset: u64| {
        rela_section(
            ".klp.rela.lpt_target..text",
            ".text",
            TEXT,
            0x100,
            &[(offset, kind, 0, sym)],
        )
    };
    let good = ".klp.sym.lpt_target.lpt_helper,0";
    let mut not_livepatch = entry(good, R_X86_64_64, 0);
    not_livepatch.relas[0].sym_shndx = 3;
    let mut into_init = entry(good, R_X86_64_64, 0);
    into_init.target_name = ".init.text".to_string();
    let mut not_alloc = entry(good, R_X86_64_64, 0);
    not_alloc.target_flags = 0;
    let mut overlapping = entry(good, R_X86_64_64, 0);
    overlapping
        .relas
        .push(entry(good, R_X86_64_PC32, 4).relas.remove(0));
    let mut unlisted = entry(".klp.sym.other_mod.x,0", R_X86_64_64, 0);
    unlisted.name = ".klp.rela.other_mod..text".to_string();
    let mut no_object = entry(good, R_X86_64_64, 0);
    no_object.name = ".klp.rela.text".to_string();
    let cases: Vec<(&str, RelaSectionDesc, &[&str])> = vec![
        (
            "unlisted object",
            unlisted,
            &["it is for module other_mod, which the patch does not list"],
        ),
        (
            "unknown type",
            entry(good, 42, 0),
            &["entry 0: unknown relocation type 42"],
        ),
        (
            "offset outside",
            entry(good, R_X86_64_64, 0xfc),
            &["offset 0xfc is outside section .text (0x100 bytes)"],
        ),
        (
            "no sympos separator",
            entry(".klp.sym.lpt_target.lpt_helper", R_X86_64_64, 0),
            &["is not .klp.sym.<object>.<name>,<sympos>"],
        ),
        (
            "sympos not a number",
            entry(".klp.sym.lpt_target.lpt_helper,x", R_X86_64_64, 0),
            &["is not .klp.sym."],
        ),
        (
            "not SHN_LIVEPATCH",
            not_livepatch,
            &["not a livepatch symbol"],
        ),
        (
            "another object's symbol",
            entry(".klp.sym.vmlinux.jiffies,0", R_X86_64_64, 0),
            &["is of object vmlinux, in a section of module lpt_target"],
        ),
        (
            "init section",
            into_init,
            &["relocates section .init.text, which the core will not write"],
        ),
        (
            "section not loaded",
            not_alloc,
            &["which the core will not write"],
        ),
        (
            "overlapping entries",
            overlapping,
            &["two relocations write the bytes at"],
        ),
        (
            "no object in the name",
            no_object,
            &["the name is not .klp.rela.<object>.<section>"],
        ),
    ];
    for (what, section, expect) in cases {
        let Machine { k, mut c, pmod } = machine();
        let (t, _, _) = target_coming(&k);
        c.module_event(ModuleEvent::Coming, t).unwrap();
        k.set_state(t, ModState::Live);
        assert_eq!(
            c.register(with_sections(pmod, vec![section])),
            Err(Error::EINVAL),
            "{what}"
        );
        let mut parts = vec!["patch lp_reloc: relocation"];
        parts.extend_from_slice(expect);
        assert!(k.logged(&parts), "{what}: {:?}", k.log());
        assert!(c.patches.is_empty(), "{what}");
        assert_eq!(k.pokes().0, 0, "{what}");
        assert!(k.dirs().len() <= 1, "{what}: only the root directory");
    }
}

/// A register that fails after its relocations were applied (any allocation of it, in turn,
/// the sysfs directories' included) leaves nothing written: the patch module may register
/// again, and the targets must be unwritten then.
#[test]
fn a_register_failing_late_leaves_no_relocation_written() {
    let Machine { k, mut c, pmod } = machine();
    let (t, helper, count) = target_coming(&k);
    c.module_event(ModuleEvent::Coming, t).unwrap();
    k.set_state(t, ModState::Live);
    let mut n = 1;
    loop {
        let d = desc(pmod, &[]);
        fail_nth::arm(n);
        let r = c.register(d);
        let reached = fail_nth::disarm();
        if !reached {
            r.unwrap();
            break;
        }
        assert_eq!(r, Err(Error::ENOMEM), "allocation {n}");
        assert!(c.patches.is_empty(), "allocation {n}");
        while let Some(p) = c.take_buried() {
            drop(p);
        }
        assert_clear(&k);
        n += 1;
    }
    assert_applied(&k, helper, count);
    assert!(k.violations().is_empty());
}

// SPDX-License-Identifier: GPL-2.0-only
//! Patches reaching what the kernel does not export (issue 22), on the stock kernel with
//! KASLR: the samples name statics with LPATCH_SYM and were converted by `lpatch
//! klp-convert` at build time.
//! - vmlinux (samples/reloc-vmlinux): the module loader applies the relocations; the
//!   replacement's static variable is the kernel's own, read back through its own path.
//! - a module of ours (samples/reloc-mod on samples/lpt-target): the core applies them —
//!   target loaded before the patch, then unloaded and loaded again twice after it, the
//!   relocations cleared and applied anew each time; a static picked by sympos among two of
//!   one name; the same name without sympos, and a symbol that does not exist, refused with
//!   the log naming symbol, object and sympos, nothing applied.

use lpatch_tests::{log_count, log_has, vm, Facts};
use lpatch_vm::Boot;

const VMLINUX: &str = r#"
S=/proc/sys/kernel/random
show seed0 cat $S/urandom_min_reseed_secs
run load insmod lp_reloc_vmlinux.ko
show uuid1 cat $S/uuid
show seed1 cat $S/urandom_min_reseed_secs
show uuid2 cat $S/boot_id
show seed2 cat $S/urandom_min_reseed_secs
put off 0 $R/lp_reloc_vmlinux/enabled
show uuid3 cat $S/uuid
show seed3 cat $S/urandom_min_reseed_secs
"#;

#[test]
fn vmlinux_statics_through_the_loaders_relocations() {
    let run = vm(Boot::Kaslr, VMLINUX).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    let seed0: u32 = f.get("seed0").parse().unwrap();
    f.ok("load");
    // The replacement bumps random.c's static and prints it with random.c's static helper;
    // the kernel's own handler of another file shows the same int.
    f.eq("uuid1", &(seed0 + 1).to_string());
    f.eq("seed1", &(seed0 + 1).to_string());
    f.eq("uuid2", &(seed0 + 2).to_string());
    f.eq("seed2", &(seed0 + 2).to_string());
    f.ok("off");
    let uuid = f.get("uuid3");
    assert!(
        uuid.len() == 36 && uuid.matches('-').count() == 4,
        "a UUID again: {uuid:?}\n{}",
        f.report
    );
    f.eq("seed3", &(seed0 + 2).to_string());
    // The loader applied them: the core never writes a vmlinux relocation.
    assert_eq!(log_count(&run, "relocation"), 0, "{}", run.report());
}

const MODULE: &str = r#"
P=$R/lp_reloc_mod
run tload insmod lpt_target.ko
show hits0 cat /proc/lpt_target_hits
show twins lpatch_syms_twins
run load insmod lp_reloc_mod.ko
show msg1 cat /proc/lpt_target
show hits1 cat /proc/lpt_target_hits
put off 0 $P/enabled
show msg2 cat /proc/lpt_target
run rmmod1 rmmod lpt_target
put on 1 $P/enabled
run tload2 insmod lpt_target.ko
show msg3 cat /proc/lpt_target
show hits3 cat /proc/lpt_target_hits
put off2 0 $P/enabled
run rmmod2 rmmod lpt_target
run tload3 insmod lpt_target.ko
show msg4 cat /proc/lpt_target
put on3 1 $P/enabled
show msg5 cat /proc/lpt_target
show msg5b cat /proc/lpt_target
show hits5 cat /proc/lpt_target_hits
"#;

/// The guest's kallsyms order of lpt_target's two statics named lpt_twin_name: which one
/// sympos 2 is.
const TWINS: &str = r#"
lpatch_syms_twins() { grep ' lpt_twin_name	\[lpt_target\]$' /proc/kallsyms | wc -l; }
"#;

#[test]
fn module_statics_relocated_before_and_after_and_again_on_reload() {
    let run = vm(Boot::Kaslr, &format!("{TWINS}{MODULE}")).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("tload");
    f.eq("hits0", "0 main other");
    f.eq("twins", "2");
    f.ok("load");
    // lpt_bump(1) after lpt_hits += 100, and the second lpt_twin_name (sympos 2).
    f.eq("msg1", "relocated 101 other");
    f.eq("hits1", "101 main other");
    f.ok("off");
    f.eq("msg2", "original");
    f.ok("rmmod1");
    f.ok("on");
    // Loaded again after the patch: a new copy, relocated anew before its init.
    f.ok("tload2");
    f.eq("msg3", "relocated 101 other");
    f.eq("hits3", "101 main other");
    f.ok("off2");
    f.ok("rmmod2");
    // Loaded a third time with the patch disabled: relocated all the same, so enabling works.
    f.ok("tload3");
    f.eq("msg4", "original");
    f.ok("on3");
    f.eq("msg5", "relocated 101 other");
    f.eq("msg5b", "relocated 202 other");
    f.eq("hits5", "202 main other");
    // Applied at each of the three loads (how many relocations depends on the compiler's
    // code: KASAN's instrumentation adds some on the debug kernel).
    let applied = run
        .kernel_log
        .lines()
        .filter(|l| {
            l.contains("lpatch: patch lp_reloc_mod: applied ")
                && l.ends_with(" relocations to lpt_target")
        })
        .count();
    assert_eq!(applied, 3, "{}", run.report());
    assert_eq!(
        log_count(
            &run,
            "lpatch: patch lp_reloc_mod: cleared its relocations to lpt_target"
        ),
        2,
        "{}",
        run.report()
    );
}

const REFUSED: &str = r#"
run tload insmod lpt_target.ko
run ambig insmod lp_reloc_ambig.ko
show ambig-gone ls /sys/module/lp_reloc_ambig
run missing insmod lp_reloc_missing.ko
show msg cat /proc/lpt_target
show hits cat /proc/lpt_target_hits
run rmmod rmmod lpt_target
run missing2 insmod lp_reloc_missing.ko
run refused insmod lpt_target.ko
show gone ls /sys/module/lpt_target
show enabled cat $R/lp_reloc_missing/enabled
"#;

#[test]
fn unresolvable_relocation_symbols_refuse_the_patch_or_the_target() {
    let run = vm(Boot::Kaslr, REFUSED).run().unwrap();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("tload");
    // Two statics of that name, no sympos: the register (the patch module's load) refused.
    f.errno("ambig", 22);
    log_has(
        &run,
        "lpatch: patch lp_reloc_ambig: relocation symbol lpt_twin_name (sympos 0) is ambiguous in lpt_target: 2 symbols have that name; give its sympos",
    );
    f.has("ambig-gone", &["No such file"]);
    f.errno("missing", 2);
    log_has(
        &run,
        "lpatch: patch lp_reloc_missing: relocation symbol lpt_no_such_symbol (sympos 0) not found in lpt_target",
    );
    // Nothing of either applied.
    f.eq("msg", "original");
    f.eq("hits", "0 main other");
    f.ok("rmmod");
    // With the target away the patch loads; the target's load is then refused.
    f.ok("missing2");
    f.errno("refused", 2);
    log_has(
        &run,
        "lpatch: refusing to load module lpt_target: patch lp_reloc_missing cannot relocate against it (-ENOENT (2))",
    );
    f.has("gone", &["No such file"]);
    f.eq("enabled", "1");
}

/// Malformed variants of the converted lp_reloc_mod.ko, each with one field of its
/// relocation section changed in place (same sizes, so the rest of the file stays valid).
mod malformed {
    use object::{Object, ObjectSection};
    use std::path::{Path, PathBuf};

    /// Elf64_Shdr: where sh_info sits, and the header's size.
    const SH_INFO: usize = 44;
    const SHDR: usize = 64;

    struct Ko {
        bytes: Vec<u8>,
        /// The section `.klp.rela.lpt_target.<...>`: its index, file offset, and its name's
        /// file offset.
        index: usize,
        data: usize,
        name: usize,
    }

    fn find(bytes: &[u8], needle: &[u8]) -> usize {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{:?} not in the module", String::from_utf8_lossy(needle)))
    }

    fn read(path: &Path) -> Ko {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = object::File::parse(&*bytes).unwrap();
        let sec = file
            .sections()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| n.starts_with(".klp.rela.lpt_target."))
            })
            .expect("lp_reloc_mod.ko has a .klp.rela.lpt_target section (converted at build)");
        let (index, data) = (sec.index().0, sec.file_range().unwrap().0 as usize);
        let name = sec.name().unwrap().as_bytes().to_vec();
        drop(file);
        let name = find(&bytes, &name);
        Ko {
            bytes,
            index,
            data,
            name,
        }
    }

    fn shdr(bytes: &[u8], index: usize) -> usize {
        let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
        shoff + index * SHDR
    }

    /// The variants, written under `dir`: (file name, what the core's log line says).
    pub fn write(ko: &Path, dir: &Path) -> Vec<(PathBuf, &'static str)> {
        let base = read(ko);
        let file = object::File::parse(&*base.bytes).unwrap();
        let init = file
            .sections()
            .find(|s| s.name() == Ok(".init.text"))
            .expect("a .init.text section")
            .index()
            .0 as u32;
        drop(file);
        let mut out = Vec::new();
        let mut variant = |name: &str, why: &'static str, edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = base.bytes.clone();
            edit(&mut b);
            let p = dir.join(name);
            std::fs::write(&p, b).unwrap();
            out.push((p, why));
        };
        variant(
            "bad_object.ko",
            "it is for module lpt_targex, which the patch does not list",
            &|b| {
                let at = base.name + ".klp.rela.lpt_targe".len();
                b[at] = b'x';
            },
        );
        variant("bad_type.ko", "entry 0: unknown relocation type 42", &|b| {
            let at = base.data + 8;
            b[at..at + 4].copy_from_slice(&42u32.to_le_bytes());
        });
        variant("bad_offset.ko", "is outside section", &|b| {
            b[base.data..base.data + 8].copy_from_slice(&0x10_0000u64.to_le_bytes());
        });
        variant(
            "bad_symbol.ko",
            "is not .klp.sym.<object>.<name>,<sympos>",
            &|b| {
                let at = find(b, b".klp.sym.lpt_target.lpt_bump,0\0")
                    + ".klp.sym.lpt_target.lpt_bump".len();
                b[at] = b'_';
            },
        );
        variant(
            "bad_section.ko",
            "relocates section .init.text, which the core will not write",
            &|b| {
                let at = shdr(b, base.index) + SH_INFO;
                b[at..at + 4].copy_from_slice(&init.to_le_bytes());
            },
        );
        out
    }
}

#[test]
fn malformed_relocation_sections_are_refused_with_nothing_applied() {
    let ko = lpatch_tests::build_dir().join("samples/reloc-mod/lp_reloc_mod.ko");
    let dir = std::env::temp_dir().join(format!("lpatch-reloc-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let variants = malformed::write(&ko, &dir);
    let mut script = String::from("run tload insmod lpt_target.ko\n");
    let mut v = vm(Boot::Kaslr, "");
    for (i, (p, _)) in variants.iter().enumerate() {
        let name = p.file_name().unwrap().to_str().unwrap();
        v = v.file(p, &format!("/lib/lpatch/{name}"));
        script += &format!(
            "run bad{i} insmod {name}\nshow msg{i} cat /proc/lpt_target\nshow gone{i} ls /sys/module/lp_reloc_mod\n"
        );
    }
    script += "show hits cat /proc/lpt_target_hits\nrun good insmod lp_reloc_mod.ko\nshow msg cat /proc/lpt_target\n";
    let run = v
        .script(&format!("{}\n{script}", lpatch_tests::PRELUDE))
        .run()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    run.assert_ok();
    let f = Facts::of(&run);
    f.ok("tload");
    for (i, (p, why)) in variants.iter().enumerate() {
        f.errno(&format!("bad{i}"), 22);
        log_has(&run, why);
        f.eq(&format!("msg{i}"), "original");
        f.has(&format!("gone{i}"), &["No such file"]);
        eprintln!("{}: refused as expected", p.display());
    }
    f.eq("hits", "0 main other");
    // The file they were made from loads: each refusal was the one field changed.
    f.ok("good");
    f.eq("msg", "relocated 101 other");
}

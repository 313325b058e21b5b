// SPDX-License-Identifier: GPL-2.0-only
//! The corpus of real fixes (crates/lpatch-build/tests/corpus/, issue 23) the whole way
//! (issue 26): each fix lpatch build accepts is built into a patch module for the older
//! kernel its users would live-patch ($CORPUS_KERNEL, 6.1.0-50-amd64; one is refused at
//! build, see REFUSED_AT_BUILD), and all of them are
//! loaded with `lpatch load` in one KASLR guest of that kernel, next to the modules they
//! patch (Debian's own, from the image package, with what they depend on). Each must load,
//! each replaced function must be redirected (its sysfs `old_addr` is the running
//! function's), then disable; the kernel log stays clean. Where user space can see a fix,
//! it is seen before, during and after (EFFECTS, through the static `lpatch-probe`): fcntl's
//! F_SET_RW_HINT on an immutable file is refused only while the fix is live, and a short
//! PR_SET_MM_AUXV replaces the whole saved vector only then, and SIOCGARP finds a device
//! named by 16 bytes with no NUL (by its first 15) only then. The others are not visible
//! from user space without a race or a setup the guest cannot make (fspick on a
//! kernel-internal superblock no path reaches, a PI futex race, tc and iptables rules): for them what is checked is that each goes live and
//! comes off cleanly on the kernel it is for.
//!
//! Needs that kernel set up beside the current one and the core built for it (`make test`
//! does both: the corpus-kernel target).

mod common;

use common::{cli, repo};
use lpatch_vm::{Boot, Vm};
use std::path::PathBuf;
use std::process::Command;

fn kernel() -> String {
    std::env::var("CORPUS_KERNEL").unwrap_or_else(|_| "6.1.0-50-amd64".into())
}

/// The fixes lpatch build makes a module of (the others are refused, see corpus.rs), and
/// the modules to load first, in order, each after what it depends on: the module the fix
/// patches (none for vmlinux), and what modprobe would load by alias (libcrc32c's
/// `softdep: pre: crc32c`, which is crc32c_generic).
const FIXES: &[(&str, &[&str])] = &[
    ("arp_devname", &[]),
    ("fcntl_rw_hint", &[]),
    ("fspick_nouser", &[]),
    ("prctl_auxv", &[]),
    ("rtmutex_proxy", &[]),
    ("sch_plug_overflow", &["sch_plug"]),
    ("xt_cluster_template", &["crc32c_generic", "xt_cluster"]),
];

/// A fix's effect as user space sees it: the guest command, and what it prints without and
/// with the fix.
const EFFECTS: &[(&str, &str, &str, &str)] = &[
    (
        "arp_devname",
        "lpatch-probe arp-long-devname",
        "arp-long-devname ENODEV",
        "arp-long-devname ENXIO",
    ),
    (
        "fcntl_rw_hint",
        "lpatch-probe rw-hint-on-immutable /mnt/t/f",
        "rw-hint-on-immutable 0",
        "rw-hint-on-immutable EPERM",
    ),
    (
        "prctl_auxv",
        "lpatch-probe short-auxv",
        "short-auxv old-entries-kept",
        "short-auxv only-the-pair",
    ),
];

/// Fixes the dry run accepts whose module the build refuses, and the words of the refusal:
/// ocfs2_clear_inode's tracepoint is ocfs2's own, and its jump label would need ocfs2's
/// key before the core can resolve it (kpatch refuses the same).
const REFUSED_AT_BUILD: &[(&str, &str)] = &[(
    "ocfs2_checkpoint",
    "__jump_table: an entry about the copied code needs __tracepoint_ocfs2_clear_inode of module ocfs2",
)];

fn lpatch_build(
    kver: &str,
    build: &std::path::Path,
    fix: &str,
    ko: &std::path::Path,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lpatch"))
        .arg("build")
        .arg("--kernel")
        .arg(kver)
        .arg(repo().join(format!("crates/lpatch-build/tests/corpus/{fix}.patch")))
        .arg("-o")
        .arg(ko)
        .arg("--core-symvers")
        .arg(build.join("kernel/Module.symvers"))
        .output()
        .expect("running lpatch build")
}

#[test]
fn needs_stock_kernel_each_fix_of_the_corpus_loads_on_its_kernel() {
    lpatch_vm::require_stock_kernel();
    let kver = kernel();
    let cache = lpatch_build::default_cache();
    let kernel_dir = cache.join("kernel").join(&kver);
    let build = repo().join("build").join(format!("linux-headers-{kver}"));
    assert!(
        kernel_dir.join(".complete").is_file() && build.join("kernel/lpatch.ko").is_file(),
        "{kver} is not set up beside the current kernel, or the core is not built for it (make corpus-kernel)"
    );
    let dir = std::env::temp_dir().join(format!("lpatch-corpus-vm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kos: Vec<PathBuf> = Vec::new();
    let mut script = String::from(
        "cd /lib/lpatch\nlpatch load lpatch.ko > /dev/null || echo \"@core-failed\"\n\
         mkdir -p /mnt/t && mount -t tmpfs none /mnt/t\n",
    );
    let mut loaded_targets: Vec<String> = Vec::new();
    for (fix, target) in FIXES {
        let ko = dir.join(format!("{fix}.ko"));
        let built = lpatch_build(&kver, &build, fix, &ko);
        assert!(
            built.status.success(),
            "{fix}: {}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        kos.push(ko);
        for m in *target {
            // The module and what it depends on, dependencies first.
            let modules = lpatch_build::image_modules::fetch(
                &lpatch_build::tree::kernel_dir(&cache, &kver),
                &kver,
                m,
            )
            .unwrap();
            for (name, path) in modules.iter().rev() {
                if loaded_targets.contains(name) {
                    continue;
                }
                loaded_targets.push(name.clone());
                script.push_str(&format!(
                    "insmod {name}.ko || echo \"@insmod-failed {name}\"\n"
                ));
                kos.push(path.clone());
            }
        }
        let effect = EFFECTS.iter().find(|e| e.0 == *fix);
        if let Some((_, probe, _, _)) = effect {
            script.push_str(&format!("echo \"@effect-before {fix} $({probe})\"\n"));
        }
        // Each replaced function's old_addr must be where kallsyms has it.
        script.push_str(&format!(
            "lpatch load {fix}.ko > /dev/null; echo \"@load {fix} $?\"\n\
             for f in /sys/kernel/lpatch/{fix}/*/*/old_addr; do\n\
             \tn=${{f%/old_addr}}; n=${{n##*/}}; n=${{n%,*}}; a=$(cat $f)\n\
             \tgrep -q \"^${{a#0x}} [tT] $n\\b\" /proc/kallsyms && echo \"@at {fix} $n\" || echo \"@not-at {fix} $n $a\"\n\
             done\n\
             lpatch disable {fix} > /dev/null; echo \"@disable {fix} $?\"\n"
        ));
        if let Some((_, probe, _, _)) = effect {
            // Enabled again to see it live, then off again.
            script.push_str(&format!(
                "lpatch enable {fix} > /dev/null\n\
                 echo \"@effect-on {fix} $({probe})\"\n\
                 lpatch disable {fix} > /dev/null\n\
                 echo \"@effect-off {fix} $({probe})\"\n"
            ));
        }
    }
    for (fix, words) in REFUSED_AT_BUILD {
        let built = lpatch_build(&kver, &build, fix, &dir.join(format!("{fix}.ko")));
        let stderr = String::from_utf8_lossy(&built.stderr);
        assert!(
            !built.status.success() && stderr.contains(words),
            "{fix}: {}{stderr}",
            String::from_utf8_lossy(&built.stdout)
        );
    }
    let mut vm = Vm::new()
        .boot(Boot::Kaslr)
        .kernel_dir(&kernel_dir)
        .memory(768)
        .ko(build.join("kernel/lpatch.ko"));
    for ko in &kos {
        vm = vm.ko(ko);
    }
    let run = vm
        .file(cli(), "/bin/lpatch")
        .file(
            lpatch_vm::static_binary("lpatch-probe", "lpatch-probe", "LPATCH_PROBE"),
            "/bin/lpatch-probe",
        )
        .script(&script)
        .run()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_ok();
    let out = &run.output;
    assert!(!out.contains("@core-failed"), "{}", run.report());
    assert!(!out.contains("@insmod-failed"), "{}", run.report());
    assert!(!out.contains("@not-at"), "{}", run.report());
    for (fix, _, without, with) in EFFECTS {
        for (when, want) in [("before", without), ("on", with), ("off", without)] {
            assert!(
                out.contains(&format!("@effect-{when} {fix} {want}\n")),
                "{fix} {when}: wanted {want}\n{}",
                run.report()
            );
        }
    }
    for (fix, _) in FIXES {
        assert!(
            out.contains(&format!("@load {fix} 0\n")),
            "{fix}\n{}",
            run.report()
        );
        assert!(
            out.contains(&format!("@at {fix} ")),
            "{fix}\n{}",
            run.report()
        );
        assert!(
            out.contains(&format!("@disable {fix} 0\n")),
            "{fix}\n{}",
            run.report()
        );
    }
}

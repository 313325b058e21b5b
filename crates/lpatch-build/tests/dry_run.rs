// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch build --dry-run` on the real prepared tree of the kernel set-up targets (Debian's
//! stock kernel): fixes written here against files Debian builds, each with the exact list a
//! user would check. The tree is prepared and cached by `make test` before the suite runs
//! (`lpatch build --prepare-only`); a test that finds none prepares it.
//! Named needs_stock_kernel: they build for Debian's kernel, and `make test-debug` would only
//! repeat them.

use lpatch_build::error::Error;
use lpatch_build::report::{Added, ObjectReport, Reason, Replaced, Report};
use lpatch_build::target::Request;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One build at a time in this file: the builds share the tree's lock anyway, and some tests
/// look at the tree and at the kept objects between builds.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cache() -> PathBuf {
    lpatch_build::default_cache()
}

/// The prepared tree, found through the target set-up recorded.
fn tree_root() -> PathBuf {
    let t = lpatch_build::target::resolve(&Request::Default, &cache())
        .expect("the target kernel resolves");
    lpatch_build::tree::kernel_dir(&cache(), &t.kver).join("tree")
}

/// A diff of `path` replacing `old` (which must occur exactly once) with `new`, made with
/// diff(1) from the tree's own file so its context is the kernel's.
fn fix(name: &str, edits: &[(&str, &str, &str)]) -> PathBuf {
    let root = tree_root();
    let dir = std::env::temp_dir().join(format!("lpatch-build-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for (path, old, new) in edits {
        let orig = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("{path} in the tree: {e}"));
        assert_eq!(
            orig.matches(old).count(),
            1,
            "{old:?} must occur once in {path}"
        );
        let changed = orig.replacen(old, new, 1);
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, &orig).unwrap();
        std::fs::write(&b, &changed).unwrap();
        let out = Command::new("diff")
            .args([
                "-u",
                "--label",
                &format!("a/{path}"),
                "--label",
                &format!("b/{path}"),
            ])
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "diff found the change");
        text.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    let p = dir.join(format!("{name}.patch"));
    std::fs::write(&p, text).unwrap();
    p
}

fn dry_run(patch: &Path) -> Result<Report, Error> {
    dry_run_for(patch, Request::Default)
}

fn options(patch: &Path, target: Request) -> lpatch_build::Options {
    lpatch_build::Options {
        patch: patch.to_path_buf(),
        target,
        jobs: 2,
        cache: cache(),
        progress: lpatch_build::progress::Progress::hidden(),
        external: None,
    }
}

fn dry_run_for(patch: &Path, target: Request) -> Result<Report, Error> {
    lpatch_build::dry_run(&options(patch, target))
}

/// Runs the build and checks that the tree's files the fix touches are back as they were.
fn built(patch: &Path, files: &[&str]) -> Result<Report, Error> {
    built_with(patch, files, &|p| dry_run(p))
}

/// The whole report, refusals listed in it rather than failing the build.
fn compared(patch: &Path, files: &[&str]) -> Result<Report, Error> {
    built_with(patch, files, &|p| {
        lpatch_build::compare_diff(&options(p, Request::Default))
    })
}

fn built_with(
    patch: &Path,
    files: &[&str],
    build: &dyn Fn(&Path) -> Result<Report, Error>,
) -> Result<Report, Error> {
    let root = tree_root();
    let before: Vec<Option<Vec<u8>>> = files
        .iter()
        .map(|f| std::fs::read(root.join(f)).ok())
        .collect();
    let r = build(patch);
    let after: Vec<Option<Vec<u8>>> = files
        .iter()
        .map(|f| std::fs::read(root.join(f)).ok())
        .collect();
    assert!(before == after, "the build left the tree's sources changed");
    r
}

/// The error of a build of one edit that must be refused, in words.
fn refused(name: &str, edit: (&str, &str, &str)) -> String {
    let p = fix(name, &[edit]);
    built(&p, &[edit.0]).unwrap_err().to_string()
}

fn object<'a>(r: &'a Report, name: &str) -> &'a ObjectReport {
    r.objects
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no object {name} in {}", r.text()))
}

fn replaced(function: &str, unit: &str, reason: Reason) -> Replaced {
    Replaced {
        function: function.into(),
        unit: unit.into(),
        reason,
    }
}

fn added(name: &str, unit: &str) -> Added {
    Added {
        name: name.into(),
        unit: unit.into(),
    }
}

#[test]
fn needs_stock_kernel_changed_function_in_vmlinux() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    let p = fix(
        "cmdline",
        &[(
            "fs/proc/cmdline.c",
            "\tseq_puts(m, saved_command_line);\n",
            "\tseq_puts(m, saved_command_line);\n\tseq_puts(m, \" lpatched\");\n",
        )],
    );
    let r = built(&p, &["fs/proc/cmdline.c"]).unwrap();
    assert_eq!(r.objects.len(), 1, "{}", r.text());
    let v = object(&r, "vmlinux");
    assert_eq!(v.units, vec!["fs/proc/cmdline.c"]);
    assert_eq!(
        v.replace,
        vec![replaced(
            "cmdline_proc_show",
            "fs/proc/cmdline.c",
            Reason::ChangedCode
        )]
    );
    assert!(
        v.new_functions.is_empty() && v.new_data.is_empty(),
        "{}",
        r.text()
    );
    assert!(
        r.text()
            .contains("replace       cmdline_proc_show  fs/proc/cmdline.c  changed code"),
        "{}",
        r.text()
    );
}

#[test]
fn needs_stock_kernel_inlined_static_helper_replaces_its_caller() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    // show_val_kb is inlined into meminfo_proc_show: the caller's code is what changes.
    let p = fix(
        "meminfo",
        &[(
            "fs/proc/meminfo.c",
            "\tseq_write(m, \" kB\\n\", 4);\n",
            "\tseq_write(m, \" KiB\\n\", 5);\n",
        )],
    );
    let r = built(&p, &["fs/proc/meminfo.c"]).unwrap();
    let v = object(&r, "vmlinux");
    assert_eq!(
        v.replace,
        vec![replaced(
            "meminfo_proc_show",
            "fs/proc/meminfo.c",
            Reason::InlinedCalleeChanged {
                callees: vec!["show_val_kb".into()]
            }
        )],
        "{}",
        r.text()
    );
}

#[test]
fn needs_stock_kernel_module_unit_names_its_module() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    let p = fix(
        "nls",
        &[("fs/nls/nls_utf8.c", "\tif (n < 0) {\n", "\tif (n <= 0) {\n")],
    );
    let r = built(&p, &["fs/nls/nls_utf8.c"]).unwrap();
    assert_eq!(r.objects.len(), 1, "{}", r.text());
    let m = object(&r, "nls_utf8");
    assert_eq!(m.units, vec!["fs/nls/nls_utf8.c"]);
    assert_eq!(
        m.replace,
        vec![replaced(
            "uni2char",
            "fs/nls/nls_utf8.c",
            Reason::ChangedCode
        )],
        "{}",
        r.text()
    );
}

#[test]
fn needs_stock_kernel_new_function_and_new_data_with_vmlinux_and_a_module() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    let p = fix(
        "new",
        &[
            (
                "fs/proc/cmdline.c",
                "static int cmdline_proc_show(struct seq_file *m, void *v)\n{\n",
                "static unsigned long lpatch_shows;\n\nstatic noinline void lpatch_count(void)\n{\n\tlpatch_shows++;\n}\n\n\
                 static int cmdline_proc_show(struct seq_file *m, void *v)\n{\n\tlpatch_count();\n",
            ),
            ("fs/nls/nls_utf8.c", "\tif (n < 0) {\n", "\tif (n <= 0) {\n"),
        ],
    );
    let r = built(&p, &["fs/proc/cmdline.c", "fs/nls/nls_utf8.c"]).unwrap();
    assert_eq!(
        r.objects
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        vec!["vmlinux", "nls_utf8"]
    );
    let v = object(&r, "vmlinux");
    assert_eq!(
        v.replace,
        vec![replaced(
            "cmdline_proc_show",
            "fs/proc/cmdline.c",
            Reason::ChangedCode
        )],
        "{}",
        r.text()
    );
    assert_eq!(
        v.new_functions,
        vec![added("lpatch_count", "fs/proc/cmdline.c")],
        "{}",
        r.text()
    );
    assert_eq!(
        v.new_data,
        vec![added("lpatch_shows", "fs/proc/cmdline.c")],
        "{}",
        r.text()
    );
    assert_eq!(object(&r, "nls_utf8").replace.len(), 1);
}

#[test]
fn needs_stock_kernel_refusals_name_the_cause_and_leave_the_tree_clean() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    // A hunk whose context is not this kernel's.
    let dir = std::env::temp_dir().join(format!("lpatch-build-test-{}-bad", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.patch");
    std::fs::write(
        &bad,
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -7,3 +7,3 @@\n static int cmdline_proc_show(struct seq_file *m, void *v)\n {\n-\tseq_puts(m, not_this_kernels_line);\n+\tseq_puts(m, x);\n",
    )
    .unwrap();
    let e = built(&bad, &["fs/proc/cmdline.c"]).unwrap_err();
    assert!(matches!(e, Error::Patch(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("does not apply to linux-source-6.1") && msg.contains("Hunk #1 FAILED"),
        "{msg}"
    );

    // Each edit, and the words its refusal must say.
    let cases = [
        // A comment changes no code.
        (
            "comment",
            (
                "fs/proc/cmdline.c",
                "\tseq_putc(m, '\\n');\n",
                "\t/* nothing to see */\n\tseq_putc(m, '\\n');\n",
            ),
            "changes no function's code",
        ),
        // Blank lines above fs/namei.c's code (15 WARN_ON/BUG_ON and friends below) shift
        // every line number its bug table records: the objects differ (checked below), the
        // code does not.
        (
            "blank",
            (
                "fs/namei.c",
                "#include <linux/export.h>\n",
                "#include <linux/export.h>\n\n\n\n",
            ),
            "no functional change: the diff changes no function's code",
        ),
        // A file this config does not build (Debian mounts ext2 with ext4: EXT2_FS is off).
        (
            "ext2",
            (
                "fs/ext2/super.c",
                "#include <linux/string.h>\n",
                "#include <linux/string.h>\n#include <linux/types.h>\n",
            ),
            "fs/ext2/super.c is not built in",
        ),
        // A header's type: a data layout, which a live patch cannot change.
        (
            "struct",
            (
                "include/linux/seq_file.h",
                "\tsize_t pad_until;\n",
                "\tsize_t pad_until;\n\tint lpatch;\n",
            ),
            "include/linux/seq_file.h:23 changes the type seq_file",
        ),
        // Not .c: a Makefile.
        (
            "makefile",
            (
                "fs/proc/Makefile",
                "proc-y\t+= cmdline.o\n",
                "proc-y\t+= cmdline.o\nproc-y\t+= x.o\n",
            ),
            "cannot be live patched",
        ),
    ];
    for (name, edit, words) in cases {
        let msg = refused(name, edit);
        assert!(msg.contains(words), "{name}: {msg}");
        if name == "blank" {
            let objects = tree_root().parent().unwrap().join("objects");
            let (b, a) = (
                objects.join("before/fs/namei.o"),
                objects.join("after/fs/namei.o"),
            );
            assert!(
                std::fs::read(&b).unwrap() != std::fs::read(&a).unwrap(),
                "the line shift changed the objects"
            );
        }
    }
}

/// What a live patch cannot carry (issue 23): each refused by name, also under --dry-run,
/// with the tree left as it was.
#[test]
fn needs_stock_kernel_what_a_live_patch_cannot_carry_is_refused_by_name() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    let cases = [
        // The initial value of existing data: the running kernel keeps its copy.
        (
            "data",
            (
                "fs/pipe.c",
                "static unsigned int pipe_max_size = 1048576;\n",
                "static unsigned int pipe_max_size = 2097152;\n",
            ),
            "fs/pipe.c: pipe_max_size: the diff changes the initial value of this existing variable",
        ),
        // __init code: run and freed long ago.
        (
            "init",
            (
                "fs/proc/cmdline.c",
                "proc_create_single(\"cmdline\", 0, NULL",
                "proc_create_single(\"cmdline\", 0444, NULL",
            ),
            "fs/proc/cmdline.c: proc_cmdline_init: the diff changes .init.text code (__init or __exit)",
        ),
        // kernel/trace/ is built without -pg: nothing there has a __fentry__ call.
        (
            "notrace",
            (
                "kernel/trace/trace_clock.c",
                "\tclock = sched_clock();\n\tpreempt_enable_notrace();\n\n\treturn clock;\n}\nEXPORT_SYMBOL_GPL(trace_clock_local);",
                "\tclock = sched_clock() | 1;\n\tpreempt_enable_notrace();\n\n\treturn clock;\n}\nEXPORT_SYMBOL_GPL(trace_clock_local);",
            ),
            "kernel/trace/trace_clock.c: trace_clock_local: the running kernel's trace_clock_local makes no __fentry__ call",
        ),
        // An entry about a changed function in a section lpatch build does not know.
        (
            "section",
            (
                "fs/proc/cmdline.c",
                "\tseq_putc(m, '\\n');\n\treturn 0;\n}\n",
                "\tseq_putc(m, ' ');\n\tseq_putc(m, '\\n');\n\treturn 0;\n}\nstatic int (*const lpatch_entry)(struct seq_file *, void *)\n\t__attribute__((used, section(\"__lpatch_unknown\"))) = cmdline_proc_show;\n",
            ),
            "fs/proc/cmdline.c: cmdline_proc_show: section __lpatch_unknown holds entries about this function",
        ),
    ];
    for (name, edit, words) in cases {
        let p = fix(name, &[edit]);
        let e = built(&p, &[edit.0]).unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{name}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("a live patch cannot carry what this diff changes"),
            "{name}: {msg}"
        );
        assert!(msg.contains(words), "{name}: {msg}");
    }

    // An exported function's prototype (kern_sys_bpf is declared in its own file only: a
    // header's declaration is refused before anything is compiled): `unsigned int` to the
    // same type by another name, `u32`. The code stays, the CRC changes, so modules built
    // against the running kernel would no longer match the patched symbol.
    let crc = (
        "kernel/bpf/syscall.c",
        "int kern_sys_bpf(int cmd, union bpf_attr *attr, unsigned int size);\n\nint kern_sys_bpf(int cmd, union bpf_attr *attr, unsigned int size)\n",
        "int kern_sys_bpf(int cmd, union bpf_attr *attr, u32 size);\n\nint kern_sys_bpf(int cmd, union bpf_attr *attr, u32 size)\n",
    );
    let e = built(&fix("crc", &[crc]), &[crc.0]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Refused(_)), "{msg}");
    assert!(
        msg.contains(
            "kernel/bpf/syscall.c: kern_sys_bpf: the diff changes this exported symbol's CRC"
        ),
        "{msg}"
    );

    // A diff of this very file, but with its line numbers off: made against another version.
    let p = fix(
        "offset",
        &[(
            "fs/proc/cmdline.c",
            "\tseq_putc(m, '\\n');\n",
            "\tseq_putc(m, ' ');\n\tseq_putc(m, '\\n');\n",
        )],
    );
    let text = std::fs::read_to_string(&p).unwrap();
    let (head, rest) = text.split_once("@@ -").unwrap();
    let (start, tail) = rest.split_once(',').unwrap();
    let moved = format!("{head}@@ -{},{tail}", start.parse::<u32>().unwrap() + 3);
    std::fs::write(&p, moved).unwrap();
    let e = built(&p, &["fs/proc/cmdline.c"]).unwrap_err();
    let msg = e.to_string();
    let t = lpatch_build::target::resolve(&Request::Default, &cache()).unwrap();
    assert!(
        msg.contains(&format!(
            "was made against another version of the source than {} {}",
            t.source_package, t.package_version
        )) && msg.contains("(offset -3 lines)"),
        "{msg}"
    );
}

#[test]
fn needs_stock_kernel_static_inline_in_a_header_replaces_its_callers_in_every_unit() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    // seq_has_overflowed() is a static inline of include/linux/seq_file.h that many units
    // use; the diff touches only the header.
    let p = fix(
        "seq_overflow",
        &[(
            "include/linux/seq_file.h",
            "\treturn m->count == m->size;\n",
            "\treturn m->count >= m->size;\n",
        )],
    );
    let r = compared(&p, &["include/linux/seq_file.h"]).unwrap();
    // One of its callers cannot be replaced: kernel/trace/ is built without -pg, so
    // bpf_seq_printf has no __fentry__ call. The whole fix is refused (the running
    // kernel would keep the old code there), with everything else it would replace listed.
    assert_eq!(r.refused.len(), 1, "{:?}", r.refused);
    assert!(
        r.refused[0].starts_with("kernel/trace/bpf_trace.c: bpf_seq_printf: the running kernel's bpf_seq_printf makes no __fentry__ call"),
        "{:?}",
        r.refused
    );
    let why = Reason::InlinedCalleeChanged {
        callees: vec!["seq_has_overflowed".into()],
    };
    // Every unit compared names the function (or one that uses it), and every replaced function
    // is replaced because of it.
    assert!(
        r.compared.contains(&"fs/seq_file.c".to_string()),
        "{:?}",
        r.compared
    );
    for o in &r.objects {
        for f in &o.replace {
            assert_eq!(f.reason, why, "{} in {}: {}", f.function, o.name, r.text());
        }
        assert!(
            o.new_functions.is_empty() && o.new_data.is_empty(),
            "{}",
            r.text()
        );
    }
    let v = object(&r, "vmlinux");
    assert!(
        v.units.contains(&"fs/seq_file.c".to_string()),
        "{}",
        r.text()
    );
    let has =
        |o: &ObjectReport, f: &str, unit: &str| o.replace.contains(&replaced(f, unit, why.clone()));
    // fs/seq_file.c calls it from seq_read_iter, seq_hex_dump and traverse (which GCC clones).
    assert!(
        has(v, "seq_read_iter", "fs/seq_file.c") && has(v, "seq_hex_dump", "fs/seq_file.c"),
        "{}",
        r.text()
    );
    assert!(
        v.replace
            .iter()
            .any(|f| f.function.starts_with("traverse.")),
        "{}",
        r.text()
    );
    // Two static seq_show()s of two units: each is its own entry.
    assert!(has(v, "seq_show", "fs/proc/fd.c"), "{}", r.text());
    // Modules too: units Debian builds as modules, each named as its module.
    assert!(
        has(
            object(&r, "nf_conntrack"),
            "ct_seq_show",
            "net/netfilter/nf_conntrack_standalone.c"
        ),
        "{}",
        r.text()
    );
    assert!(
        has(
            object(&r, "xt_hashlimit"),
            "dl_seq_show",
            "net/netfilter/xt_hashlimit.c"
        ),
        "{}",
        r.text()
    );
    // Units this config does not build are not compiled (the goku UDC driver is off).
    assert!(
        !r.compared.iter().any(|u| u.contains("goku_udc")),
        "{:?}",
        r.compared
    );
    assert!(r.text().contains("seq_read_iter"), "{}", r.text());
}

/// The fix the --kernel-tree tests build: in a unit no other test compiles, since they check
/// that the tree's object for it is put back.
const UPTIME: (&str, &str, &str) = (
    "fs/proc/uptime.c",
    "\tseq_printf(m, \"%lu.%02lu %lu.%02lu\\n\",",
    "\tseq_printf(m, \"%lu.%02lu %lu.%02lu (lpatched)\\n\",",
);

/// Runs the uptime fix against a user's tree and checks the report and that the tree's
/// sources and the objects the build overwrote are back as they were.
fn kernel_tree_build(objtree: &Path, srctree: &Path) {
    let p = fix("user-tree", &[UPTIME]);
    let obj = objtree.join("fs/proc/uptime.o");
    let (obj_before, src_before) = (
        std::fs::read(&obj).ok(),
        std::fs::read(srctree.join(UPTIME.0)).unwrap(),
    );
    let r = dry_run_for(&p, Request::Tree(objtree.to_path_buf())).unwrap();
    assert!(
        std::fs::read(&obj).ok() == obj_before,
        "the tree's own object is put back (or removed)"
    );
    assert!(
        std::fs::read(srctree.join(UPTIME.0)).unwrap() == src_before,
        "the sources are put back"
    );
    let release = std::fs::read_to_string(objtree.join("include/config/kernel.release")).unwrap();
    assert_eq!(r.kernel, release.trim());
    assert!(r.source.starts_with("the kernel tree at "), "{}", r.source);
    assert_eq!(
        object(&r, "vmlinux").replace,
        vec![replaced(
            "uptime_proc_show",
            "fs/proc/uptime.c",
            Reason::ChangedCode
        )],
        "{}",
        r.text()
    );
}

#[test]
fn needs_stock_kernel_kernel_tree_built_in_place() {
    lpatch_vm::require_stock_kernel();
    let _serial = serial();
    // The builder's prepared tree is such a tree: built in place, sources and objects together.
    let root = tree_root();
    kernel_tree_build(&root, &root);
}

#[test]
fn needs_debug_kernel_kernel_tree_built_with_o() {
    // The debug kernel is built with O=: its objects in the cache, its sources elsewhere
    // (the `source` link), and the debug info names them by absolute paths.
    let dir = lpatch_vm::require_debug_kernel();
    let _serial = serial();
    let src = std::fs::canonicalize(dir.join("source")).expect("an O= tree links its source");
    assert_ne!(src, std::fs::canonicalize(&dir).unwrap());
    kernel_tree_build(&dir, &src);
}

#[test]
fn kernels_that_cannot_be_built_for_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("lpatch-build-test-{}-target", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("x.patch");
    std::fs::write(
        &p,
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    // A Debian release apt does not know.
    let e = dry_run_for(&p, Request::Debian("6.1.0-999-amd64".into())).unwrap_err();
    assert!(matches!(e, Error::Target(_)), "{e}");
    assert!(
        e.to_string()
            .contains("apt knows no package linux-image-6.1.0-999-amd64"),
        "{e}"
    );
    // Not a release name at all.
    let e = dry_run_for(&p, Request::Debian("../etc".into())).unwrap_err();
    assert!(
        e.to_string().contains("is not a kernel release name"),
        "{e}"
    );
    // A directory that is no prepared kernel tree.
    let e = dry_run_for(&p, Request::Tree(dir.clone())).unwrap_err();
    assert!(
        e.to_string()
            .contains("is not a prepared kernel tree: it has no .config"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// lpt_target, the repository's own test module, as the build of the core made it for the
/// target kernel (`make all`), and its source.
fn lpt_target() -> (PathBuf, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let build = std::env::var_os("LPATCH_BUILD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("build/current"));
    (
        build.join("samples/lpt-target/lpt_target.ko"),
        repo.join("samples/lpt-target"),
    )
}

fn dry_run_external(patch: &Path, ko: &Path, src: &Path) -> Result<Report, Error> {
    let mut o = options(patch, Request::Default);
    o.external = Some(lpatch_build::external::External {
        ko: ko.to_path_buf(),
        src: src.to_path_buf(),
    });
    lpatch_build::dry_run(&o)
}

fn files_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn needs_stock_kernel_an_out_of_tree_module_is_compiled_from_a_copy_of_its_source() {
    let _g = serial();
    let (ko, src) = lpt_target();
    let patch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/patches/oot_lpt_target.patch");
    let listed = files_of(&src);
    let r = dry_run_external(&patch, &ko, &src).unwrap();
    assert_eq!(
        files_of(&src),
        listed,
        "the module's own directory was written"
    );
    assert_eq!(r.source, "module lpt_target's source");
    assert_eq!(
        object(&r, "lpt_target").replace,
        vec![
            replaced("lpt_show", "lpt_target_main.c", Reason::ChangedCode),
            replaced(
                "lpt_target_message",
                "lpt_target_main.c",
                Reason::ChangedCode
            ),
            replaced(
                "lpt_target_other_name",
                "lpt_target_other.c",
                Reason::ChangedCode
            ),
        ]
    );
    assert_eq!(r.objects.len(), 1, "{}", r.text());
}

#[test]
fn needs_stock_kernel_an_out_of_tree_module_for_another_kernel_or_file_is_refused() {
    let _g = serial();
    let (ko, src) = lpt_target();
    let dir = std::env::temp_dir().join(format!("lpatch-build-test-{}-oot", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let patch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/patches/oot_lpt_target.patch");

    // The same module with another kernel's release in its vermagic.
    let kver = lpatch_build::target::resolve(&Request::Default, &cache())
        .unwrap()
        .kver;
    let mut bytes = std::fs::read(&ko).unwrap();
    let magic = format!("vermagic={kver} ").into_bytes();
    let at = bytes
        .windows(magic.len())
        .position(|w| w == magic.as_slice())
        .expect("the module's vermagic names the target kernel");
    // A release of the same length that is not the target's.
    let other = format!("vermagic={} ", kver.replacen("6.1.0-", "6.1.9-", 1)).into_bytes();
    assert_ne!(other, magic);
    bytes[at..at + magic.len()].copy_from_slice(&other);
    let foreign = dir.join("lpt_target.ko");
    std::fs::write(&foreign, &bytes).unwrap();
    let e = dry_run_external(&patch, &foreign, &src).unwrap_err();
    assert!(matches!(e, Error::Target(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("but the patch is built for {kver}")),
        "{e}"
    );

    // A file of the directory that kbuild does not link into the module.
    let copy = dir.join("src");
    std::fs::create_dir_all(&copy).unwrap();
    for f in files_of(&src) {
        std::fs::copy(src.join(&f), copy.join(&f)).unwrap();
    }
    std::fs::write(
        copy.join("extra.c"),
        "int lpt_extra(void)\n{\n\treturn 1;\n}\n",
    )
    .unwrap();
    let extra = dir.join("extra.patch");
    std::fs::write(
        &extra,
        "--- a/extra.c\n+++ b/extra.c\n@@ -1,4 +1,4 @@\n int lpt_extra(void)\n {\n-\treturn 1;\n+\treturn 2;\n }\n",
    )
    .unwrap();
    let e = dry_run_external(&extra, &ko, &copy).unwrap_err();
    assert!(
        e.to_string()
            .contains("extra.c: not a file of module lpt_target (its Kbuild does not link it into the module)"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

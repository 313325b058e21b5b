// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch build` end to end (issue 26): a diff against Debian's fs/proc/cmdline.c
//! that changes `cmdline_proc_show`, adds a function it calls, a global it counts in, string
//! literals and `__func__`, and reads `saved_command_line`, which the kernel does not
//! export. Built on the host into a patch module for Debian's stock kernel, loaded in a
//! guest of that kernel (KASLR) with `lpatch load`, its effect read from /proc/cmdline;
//! disabled, the old text returns. The module records the code it was built against, so
//! its load also proves that the running kernel's `cmdline_proc_show` is that code once
//! the masked bytes are left out; a copy whose recorded hash is changed by one bit is
//! refused at load (ENOEXEC) with a log line naming the function. A second diff touches two
//! files, one of them a syscall (getppid's SYSCALL_DEFINE0 wrappers, and version_proc_show
//! reading the unexported linux_proc_banner): both take effect and go. A third keeps using a
//! static local of the running kernel (get_next_ino's counter) and replaces a static
//! function whose name the kernel has three times (/proc/consoles' c_start, the second by
//! address), both placed through the kernel's symbol table. A fourth changes a compiler
//! clone (sysinfo's `do_sysinfo.isra.0`, seen through `uptime`) and a static inline that
//! two functions inline (`get_task_state`: /proc/<pid>/status and /proc/<pid>/stat): each
//! caller is replaced. A fifth patches a function of one of Debian's own modules (zram,
//! from the image package with zsmalloc, which it depends on), reading two of the module's
//! statics and an unexported global of vmlinux: the module loaded before the patch, and
//! loaded again while the patch is enabled. A sixth copies code with entries in every table
//! the kernel keeps about code (a WARN's bug entry, a tracepoint's jump label and static
//! call, alternatives and exception-table entries of user access, paravirt sites) and
//! proves each at work: getdents with SMAP on (stac is an alternative), a tracepoint
//! enabled before the patch loads firing in the copied code, and a WARN reported with its
//! file and line (the one splat that test allows). A seventh is written to kpatch-build's
//! conventions (`#include "kpatch-syscall.h"`, KPATCH_SYSCALL_DEFINE1) and keeps a count
//! in a shadow variable through the kernel's klp_shadow_* API. An eighth patches a module
//! built out of the kernel's tree (the repository's lpt_target, `--oot-module`): functions
//! of its two files, one reading the static the module has twice by its position, the
//! module loaded before the patch and again while it is enabled. Needs the builder's
//! prepared tree (`make test` prepares it) and the built core (`make all`).

mod common;

use common::{build_dir, cli, repo};
use lpatch_vm::{Boot, Vm};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `lpatch build` on `crates/lpatch-build/tests/patches/<name>.patch` into a temporary
/// directory; returns the module and what the build printed.
fn build(name: &str) -> (PathBuf, String) {
    build_with(name, &[])
}

/// [`build`] with more arguments for `lpatch build`.
fn build_with(name: &str, args: &[&std::ffi::OsStr]) -> (PathBuf, String) {
    let out_dir =
        std::env::temp_dir().join(format!("lpatch-build-vm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let ko = out_dir.join(format!("{name}.ko"));
    let patch = repo().join(format!("crates/lpatch-build/tests/patches/{name}.patch"));
    let built = Command::new(env!("CARGO_BIN_EXE_lpatch"))
        .arg("build")
        .arg(&patch)
        .arg("-o")
        .arg(&ko)
        .arg("--core-symvers")
        .arg(build_dir().join("kernel/Module.symvers"))
        .args(args)
        .output()
        .expect("running lpatch build");
    let stdout = String::from_utf8_lossy(&built.stdout).into_owned();
    assert!(
        built.status.success(),
        "lpatch build failed: {stdout}\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    (ko, stdout)
}

/// A KASLR guest of the stock kernel with the core, `kos` and the static CLI, running
/// `script`; its kernel log must stay clean.
fn guest(kos: &[&Path], script: &str) -> lpatch_vm::VmRun {
    let run = guest_unchecked(kos, script);
    run.assert_ok();
    run
}

/// [`guest`], leaving the checks to the caller.
fn guest_unchecked(kos: &[&Path], script: &str) -> lpatch_vm::VmRun {
    let mut vm = Vm::new()
        .boot(Boot::Kaslr)
        .ko(build_dir().join("kernel/lpatch.ko"));
    for ko in kos {
        vm = vm.ko(ko);
    }
    vm.file(cli(), "/bin/lpatch").script(script).run().unwrap()
}

/// The value of `@key value` lines a guest script printed.
fn fact(run: &lpatch_vm::VmRun, k: &str) -> String {
    run.output
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("@{k} "))
                .or((l == format!("@{k}")).then_some(""))
        })
        .unwrap_or_else(|| panic!("no @{k} in the output\n{}", run.report()))
        .to_string()
}

#[test]
fn built_from_a_diff_loads_and_works_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("cmdline_new_code");
    assert!(
        stdout.contains("patch cmdline_new_code replaces:\n  vmlinux: cmdline_proc_show\n"),
        "{stdout}"
    );
    let out_dir = ko.parent().unwrap().to_path_buf();
    // A copy built "for other code": one bit of the recorded hash flipped.
    let bad = out_dir.join("cmdline_other_code.ko");
    let mut bytes = std::fs::read(&ko).unwrap();
    let at = {
        let file = object::File::parse(&*bytes).expect("the module parses");
        let s = file
            .symbols()
            .find(|s| s.name() == Ok("lpatch_code_0"))
            .expect("the module records the code of cmdline_proc_show");
        let sec = file.section_by_index(s.section_index().unwrap()).unwrap();
        let (offset, _) = sec.file_range().expect("in the file");
        // struct lp_code: size (8 bytes), then the hash.
        (offset + s.address() + 8) as usize
    };
    bytes[at] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let script = r#"
cd /lib/lpatch
echo "@before $(cat /proc/cmdline)"
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
lpatch load cmdline_other_code.ko > /tmp/bad.out 2>&1; echo "@bad-rc $?"
echo "@bad-out $(tr '\n' ' ' < /tmp/bad.out)"
echo "@bad-cmdline $(cat /proc/cmdline)"
lpatch load cmdline_new_code.ko; echo "@load-rc $?"
echo "@read1 $(cat /proc/cmdline)"
echo "@read2 $(cat /proc/cmdline)"
lpatch disable cmdline_new_code; echo "@disable-rc $?"
echo "@after $(cat /proc/cmdline)"
lpatch enable cmdline_new_code; echo "@enable-rc $?"
echo "@read3 $(cat /proc/cmdline)"
"#;
    let run = guest(&[&ko, &bad], script);
    let _ = std::fs::remove_dir_all(&out_dir);
    let get = |k: &str| fact(&run, k);
    let before = get("before");
    assert!(!before.contains('['), "{}", run.report());
    assert_eq!(get("bad-rc"), "1", "{}", run.report());
    assert!(get("bad-out").contains("ENOEXEC"), "{}", run.report());
    assert!(
        run.kernel_log.contains("lpatch: patch cmdline_new_code: function cmdline_proc_show in vmlinux: the running kernel's code differs from the code the patch was built against"),
        "{}",
        run.report()
    );
    assert_eq!(get("bad-cmdline"), before);
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // The new function's strings, __func__ and the new counter, after the kernel's own
    // (unexported) saved_command_line.
    assert_eq!(
        get("read1"),
        format!("{before} [built by lpatch cmdline_proc_show 1]"),
        "{}",
        run.report()
    );
    assert_eq!(
        get("read2"),
        format!("{before} [lpatch-built cmdline_proc_show 2]")
    );
    assert_eq!(get("disable-rc"), "0");
    assert_eq!(get("after"), before);
    assert_eq!(get("enable-rc"), "0");
    assert_eq!(
        get("read3"),
        format!("{before} [built by lpatch cmdline_proc_show 3]")
    );
}

#[test]
fn two_files_and_a_syscall_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("two_files_syscall");
    assert!(
        stdout.contains(
            "patch two_files_syscall replaces:\n  vmlinux: version_proc_show, __ia32_sys_getppid\n"
        ),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
echo "@ppid0 $(sh -c 'echo $PPID') $$"
lpatch load two_files_syscall.ko; echo "@load-rc $?"
echo "@version $(cat /proc/version)"
echo "@ppid1 $(sh -c 'echo $PPID') $$"
lpatch disable two_files_syscall; echo "@disable-rc $?"
echo "@version-off $(cat /proc/version)"
echo "@ppid2 $(sh -c 'echo $PPID') $$"
"#;
    let run = guest(&[&ko], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    let pair = |k: &str| -> (u64, u64) {
        let v = get(k);
        let mut it = v.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    // A child's getppid is the script shell's pid, then that plus the patch's mark.
    let (p0, me) = pair("ppid0");
    assert_eq!(p0, me, "{}", run.report());
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    assert!(
        get("version").starts_with("lpatch: Linux version "),
        "{}",
        run.report()
    );
    let (p1, me) = pair("ppid1");
    assert_eq!(p1, me + 1_000_000, "{}", run.report());
    assert_eq!(get("disable-rc"), "0");
    assert!(
        get("version-off").starts_with("Linux version "),
        "{}",
        run.report()
    );
    let (p2, me) = pair("ppid2");
    assert_eq!(p2, me, "{}", run.report());
}

#[test]
fn a_static_local_and_an_ambiguous_name_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("static_local_sympos");
    assert!(
        stdout
            .contains("patch static_local_sympos replaces:\n  vmlinux: get_next_ino, c_start,2\n"),
        "{stdout}"
    );
    // Pipe inode numbers come from get_next_ino: the kernel's in per-CPU batches taken from
    // its static local counter, the patch's one by one from the same counter.
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
inos() { for i in 1 2 3 4 5 6; do echo | readlink /proc/self/fd/0; done | tr -dc '0-9\n' | tr '\n' ' '; }
echo "@ino0 $(inos)"
echo "@consoles0 $(head -n1 /proc/consoles)"
lpatch load static_local_sympos.ko; echo "@load-rc $?"
echo "@funcs $(ls /sys/kernel/lpatch/static_local_sympos/vmlinux | tr '\n' ' ')"
echo "@ino1 $(inos)"
echo "@consoles1 $(head -n1 /proc/consoles)"
lpatch disable static_local_sympos; echo "@disable-rc $?"
echo "@ino2 $(inos)"
echo "@consoles2 $(head -n1 /proc/consoles)"
"#;
    let run = guest(&[&ko], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    let numbers = |k: &str| -> Vec<u64> {
        let v: Vec<u64> = get(k)
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(v.len(), 6, "{k}: {}", run.report());
        v
    };
    let before = numbers("ino0");
    assert!(!get("consoles0").starts_with('#'), "{}", run.report());
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    assert_eq!(
        get("funcs"),
        "c_start,2 get_next_ino,1 ",
        "{}",
        run.report()
    );
    // One counter, the kernel's: above every number of the batches handed out before (a
    // fresh copy would start again at 1), in order.
    let patched = numbers("ino1");
    let top = *before.iter().max().unwrap();
    assert!(patched[0] > top, "{before:?} then {patched:?}");
    assert!(
        patched.windows(2).all(|w| w[0] < w[1]),
        "{before:?} then {patched:?}"
    );
    assert_eq!(
        get("consoles1"),
        "# consoles, listed by a live patch",
        "{}",
        run.report()
    );
    assert_eq!(get("disable-rc"), "0");
    // The kernel's own batches again: the per-CPU batch in use before continues below the
    // patch's numbers.
    let after = numbers("ino2");
    let last = *patched.last().unwrap();
    assert!(
        after.iter().any(|n| *n < last),
        "{before:?}, {patched:?}, {after:?}"
    );
    assert_eq!(get("consoles2"), get("consoles0"));
}

#[test]
fn a_clone_and_an_inlined_static_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("clone_inlined");
    assert!(
        stdout.contains(
            "patch clone_inlined replaces:\n  vmlinux: do_task_stat, proc_pid_status, do_sysinfo.isra.0\n"
        ),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
facts() {
    echo "@uptime$1 $(uptime)"
    echo "@status$1 $(grep State: /proc/self/status | cut -f2)"
    echo "@stat$1 $(cut -d' ' -f3 /proc/self/stat)"
}
facts 0
lpatch load clone_inlined.ko; echo "@load-rc $?"
facts 1
lpatch disable clone_inlined; echo "@disable-rc $?"
facts 2
"#;
    let run = guest(&[&ko], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    for off in ["0", "2"] {
        assert!(
            !get(&format!("uptime{off}")).contains("days"),
            "{}",
            run.report()
        );
        assert_eq!(
            get(&format!("status{off}")),
            "R (running)",
            "{}",
            run.report()
        );
        assert_eq!(get(&format!("stat{off}")), "R", "{}", run.report());
    }
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // The clone: sysinfo's uptime, 100 days on.
    assert!(get("uptime1").contains("up 100 days"), "{}", run.report());
    // Both functions the changed static inline was inlined into.
    assert_eq!(
        get("status1"),
        "r (running, live-patched)",
        "{}",
        run.report()
    );
    assert_eq!(get("stat1"), "r", "{}", run.report());
    assert_eq!(get("disable-rc"), "0");
}

#[test]
fn a_debian_module_before_and_after_the_patch_needs_stock_kernel() {
    let kernel = lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("module_zram");
    assert!(
        stdout.contains("patch module_zram replaces:\n  zram: max_comp_streams_show\n"),
        "{stdout}"
    );
    // The build took zram and what it depends on out of the image package.
    let kver = lpatch_vm::kernel_release(&kernel).unwrap();
    let modules = lpatch_build::image_modules::dir(&lpatch_build::tree::kernel_dir(
        &lpatch_build::default_cache(),
        &kver,
    ));
    let (zram, zsmalloc) = (modules.join("zram.ko"), modules.join("zsmalloc.ko"));
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
S=/sys/block/zram0/max_comp_streams
echo "@cpus $(grep -c ^processor /proc/cpuinfo)"
insmod zsmalloc.ko && insmod zram.ko; echo "@insmod-rc $?"
echo "@before $(cat $S)"
lpatch load module_zram.ko; echo "@load-rc $?"
echo "@patched $(cat $S)"
lpatch disable module_zram; echo "@disable-rc $?"
echo "@disabled $(cat $S)"
rmmod zram; echo "@rmmod-rc $?"
lpatch enable module_zram; echo "@enable-rc $?"
insmod zram.ko; echo "@reload-rc $?"
echo "@reloaded $(cat $S)"
"#;
    let run = guest(&[&ko, &zram, &zsmalloc], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    assert_eq!(get("insmod-rc"), "0", "{}", run.report());
    let cpus = get("cpus");
    assert_eq!(get("before"), cpus, "{}", run.report());
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // zram's own num_devices and vmlinux's unexported nr_threads, through the module's and
    // vmlinux's livepatch relocations. zram's init counts its num_devices down to 0 as it
    // adds the devices: the module's storage reads 0, where a copy would read 1.
    let patched = get("patched");
    let threads: u32 = patched
        .strip_prefix(&format!(
            "{cpus} (live-patched: num_devices 0, lzo-rle by default, "
        ))
        .and_then(|r| r.strip_suffix(" threads)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{patched:?}\n{}", run.report()));
    assert!(threads > 10, "{patched}");
    assert_eq!(get("disable-rc"), "0");
    assert_eq!(get("disabled"), cpus);
    assert_eq!(get("rmmod-rc"), "0", "{}", run.report());
    assert_eq!(get("enable-rc"), "0", "{}", run.report());
    assert_eq!(get("reload-rc"), "0", "{}", run.report());
    assert!(
        get("reloaded").starts_with(&format!(
            "{cpus} (live-patched: num_devices 0, lzo-rle by default, "
        )),
        "{}",
        run.report()
    );
}

#[test]
fn tables_about_the_copied_code_are_carried_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("special_sections");
    assert!(
        stdout
            .contains("patch special_sections replaces:\n  vmlinux: __set_task_comm, filldir64\n"),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
mkdir -p /tmp/d && touch /tmp/d/lpatch-hidden-a /tmp/d/seen
rename() { sh -c "echo -n $1 > /proc/\$\$/comm; read c < /proc/\$\$/comm; echo \$c"; }
T=/sys/kernel/tracing
mount -t tracefs nodev $T 2>/dev/null
echo 1 > $T/events/task/task_rename/enable; echo "@trace-on $?"
echo "@ls0 $(ls /tmp/d | tr '\n' ' ')"
echo "@comm0 $(rename lpatch-name)"
lpatch load special_sections.ko; echo "@load-rc $?"
echo "@ls1 $(ls /tmp/d | tr '\n' ' ')"
echo "@comm1 $(rename lpatch-name)"
echo "@traced $(grep -c 'newcomm=lpatch-renamed' $T/trace)"
echo "@warn $(rename lpatch-warn)"
lpatch disable special_sections; echo "@disable-rc $?"
echo "@ls2 $(ls /tmp/d | tr '\n' ' ')"
echo "@comm2 $(rename lpatch-name)"
"#;
    let run = guest_unchecked(&[&ko], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    assert!(!run.timed_out && run.status == Some(0), "{}", run.report());
    let get = |k: &str| fact(&run, k);
    assert_eq!(get("trace-on"), "0", "{}", run.report());
    assert_eq!(get("ls0"), "lpatch-hidden-a seen ", "{}", run.report());
    assert_eq!(get("comm0"), "lpatch-name");
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // getdents' filldir64 writes user memory between stac and clac (alternatives, with
    // SMAP on) through unsafe_put_user (exception-table entries).
    assert_eq!(get("ls1"), "seen ", "{}", run.report());
    // The copied __set_task_comm, its paravirt sites patched, fires the tracepoint
    // enabled before it was loaded (its jump label and static call site).
    assert_eq!(get("comm1"), "lpatch-renamed", "{}", run.report());
    assert_eq!(get("traced"), "1", "{}", run.report());
    assert_eq!(get("warn"), "lpatch-warn", "{}", run.report());
    assert_eq!(get("disable-rc"), "0");
    assert_eq!(get("ls2"), "lpatch-hidden-a seen ");
    assert_eq!(get("comm2"), "lpatch-name");
    // The WARN in the copied code: reported from its bug entry, with its file and line
    // (1237: the WARN_ONCE of the patched fs/exec.c), and the kernel went on. Its two
    // lines are all the log holds of a splat.
    let splats = run.splats();
    assert_eq!(splats.len(), 2, "{}", run.report());
    assert!(
        splats[0].contains("WARNING: CPU: ")
            && splats[0].contains(" at fs/exec.c:1237 __lpatch_new.__set_task_comm+")
            && splats[0].ends_with("[special_sections]"),
        "{}",
        run.report()
    );
    assert!(splats[1].ends_with("Call Trace:"), "{}", run.report());
    assert!(
        run.kernel_log
            .contains("lpatch: a warning from patched code"),
        "{}",
        run.report()
    );
}

#[test]
fn a_patch_written_for_kpatch_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let (ko, stdout) = build("kpatch_conventions");
    assert!(
        stdout.contains(
            "patch kpatch_conventions replaces:\n  vmlinux: __ia32_sys_newuname, __x64_sys_newuname\n"
        ),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
echo "@u0 $(uname -s)"
lpatch load kpatch_conventions.ko; echo "@load-rc $?"
echo "@u1 $(uname -s)"
echo "@u2 $(uname -s)"
lpatch disable kpatch_conventions; echo "@disable-rc $?"
echo "@u3 $(uname -s)"
lpatch enable kpatch_conventions; echo "@enable-rc $?"
echo "@u4 $(uname -s)"
"#;
    let run = guest(&[&ko], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    assert_eq!(get("u0"), "Linux", "{}", run.report());
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // The count lives in the kernel's shadow variable of the UTS namespace: it survives
    // the patch being disabled and enabled again.
    assert_eq!(get("u1"), "Linux.lpatch1", "{}", run.report());
    assert_eq!(get("u2"), "Linux.lpatch2");
    assert_eq!(get("disable-rc"), "0");
    assert_eq!(get("u3"), "Linux");
    assert_eq!(get("enable-rc"), "0");
    assert_eq!(get("u4"), "Linux.lpatch3");
}

#[test]
fn an_out_of_tree_module_before_and_after_the_patch_needs_stock_kernel() {
    let _ = lpatch_vm::require_stock_kernel();
    let target = build_dir().join("samples/lpt-target/lpt_target.ko");
    let src = repo().join("samples/lpt-target");
    let (ko, stdout) = build_with(
        "oot_lpt_target",
        &[
            "--oot-module".as_ref(),
            target.as_os_str(),
            "--oot-module-src".as_ref(),
            src.as_os_str(),
        ],
    );
    assert!(
        stdout.contains(
            "patch oot_lpt_target replaces:\n  lpt_target: lpt_show, lpt_target_message, lpt_target_other_name\n"
        ),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
show() { echo "$(cat /proc/lpt_target) | $(cat /proc/lpt_target_hits)"; }
insmod lpt_target.ko; echo "@insmod-rc $?"
echo "@before $(show)"
lpatch load oot_lpt_target.ko; echo "@load-rc $?"
echo "@patched $(cat /proc/lpt_target)"
echo "@patched-again $(show)"
lpatch disable oot_lpt_target; echo "@disable-rc $?"
echo "@disabled $(show)"
rmmod lpt_target; echo "@rmmod-rc $?"
lpatch enable oot_lpt_target; echo "@enable-rc $?"
insmod lpt_target.ko; echo "@reload-rc $?"
echo "@reloaded $(show)"
"#;
    let run = guest(&[&ko, &target], script);
    let _ = std::fs::remove_dir_all(ko.parent().unwrap());
    let get = |k: &str| fact(&run, k);
    assert_eq!(get("insmod-rc"), "0", "{}", run.report());
    assert_eq!(get("before"), "original | 0 main other", "{}", run.report());
    assert_eq!(get("load-rc"), "0", "{}", run.report());
    // The new lpt_show counts in the module's own lpt_hits (its reader, which no patch
    // replaces, sees the count), and the new lpt_target_other_name reads the second
    // lpt_twin_name of the module (its own file's, "other"), not main.c's.
    assert_eq!(
        get("patched"),
        "patched out of tree, read 1",
        "{}",
        run.report()
    );
    assert_eq!(
        get("patched-again"),
        "patched out of tree, read 2 | 2 main other, patched",
        "{}",
        run.report()
    );
    assert_eq!(get("disable-rc"), "0");
    assert_eq!(
        get("disabled"),
        "original | 2 main other",
        "{}",
        run.report()
    );
    assert_eq!(get("rmmod-rc"), "0", "{}", run.report());
    assert_eq!(get("enable-rc"), "0", "{}", run.report());
    // Loaded while the patch is enabled: patched as it loads, its counter new.
    assert_eq!(get("reload-rc"), "0", "{}", run.report());
    assert_eq!(
        get("reloaded"),
        "patched out of tree, read 1 | 1 main other, patched",
        "{}",
        run.report()
    );
}

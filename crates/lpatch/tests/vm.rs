// SPDX-License-Identifier: GPL-2.0-only
//! The real static `lpatch` binary against the real core, in a guest of the stock kernel
//! (crates/lpatch-vm). Each test boots one guest (4 s PVH, 10 s KASLR under TCG), so
//! the checks are grouped into few boots; every guest must end with a clean kernel log.
//!
//! Needs the built modules: `$LPATCH_BUILD` (the top Makefile exports it), else
//! `<repo>/build/current` (`make all`). The binary: `$LPATCH_CLI`, else built here with
//! `cargo build --release --target x86_64-unknown-linux-gnu -p lpatch` and crt-static
//! (a no-op when it is up to date).

mod common;

use common::{build_dir, cli};
use lpatch_vm::{Boot, Vm, VmRun};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// A built module, relative to the build directory.
fn ko(rel: &str) -> PathBuf {
    let p = build_dir().join(rel);
    assert!(
        p.is_file(),
        "{} is missing: run `make all` at the top of the tree (or set LPATCH_BUILD)",
        p.display()
    );
    p
}

/// One command of the guest script: what it printed (stdout and stderr) and its status.
#[derive(Debug)]
struct Step {
    cmd: String,
    out: String,
    rc: i32,
}

/// Shell text that runs each (label, command) and frames its output with markers.
fn script(steps: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "step() { printf '@@@ BEGIN %s\\n' \"$1\"; eval \"$2\" 2>&1; \
         printf '\\n@@@ END %s %d\\n' \"$1\" $?; }\n",
    );
    for (label, cmd) in steps {
        assert!(!label.contains(char::is_whitespace) && !cmd.contains('\''));
        s.push_str(&format!("step {label} '{cmd}'\n"));
    }
    s.push_str("true\n");
    s
}

/// The steps in the guest's output, by label (LPATCH_TEST_SHOW=1 prints the output and
/// the kernel log); panics (with the run's report) when one
/// did not run to its end marker.
fn steps(run: &VmRun, wanted: &[(&str, &str)]) -> HashMap<String, Step> {
    if std::env::var_os("LPATCH_TEST_SHOW").is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "---- guest output ----\n{}\n---- kernel log ----\n{}",
            run.output, run.kernel_log
        );
    }
    run.assert_ok();
    let mut map = HashMap::new();
    let mut cur: Option<(String, Vec<&str>)> = None;
    for line in run.output.lines() {
        if let Some(label) = line.strip_prefix("@@@ BEGIN ") {
            cur = Some((label.to_string(), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("@@@ END ") {
            let (label, rc) = rest.rsplit_once(' ').expect("END marker");
            let (l, lines) = cur.take().expect("END without BEGIN");
            assert_eq!(l, label);
            let cmd = wanted.iter().find(|(w, _)| *w == label).unwrap().1;
            let out = lines.join("\n").trim_end_matches('\n').to_string();
            map.insert(
                l,
                Step {
                    cmd: cmd.to_string(),
                    out,
                    rc: rc.parse().unwrap(),
                },
            );
        } else if let Some((_, lines)) = cur.as_mut() {
            lines.push(line);
        }
    }
    for (label, _) in wanted {
        assert!(
            map.contains_key(*label),
            "step {label} did not finish\n{}",
            run.report()
        );
    }
    map
}

struct Checker<'a> {
    run: &'a VmRun,
    steps: HashMap<String, Step>,
}

impl Checker<'_> {
    fn get(&self, label: &str) -> &Step {
        &self.steps[label]
    }

    #[track_caller]
    fn fail(&self, label: &str, why: &str) -> ! {
        let s = self.get(label);
        panic!(
            "step {label} `{}`: {why}\n---- its output (exit {}) ----\n{}\n{}",
            s.cmd,
            s.rc,
            s.out,
            self.run.report()
        )
    }

    /// The step exited `rc` and its output has every one of `needles`.
    #[track_caller]
    fn check(&self, label: &str, rc: i32, needles: &[&str]) -> &str {
        let s = self.get(label);
        if s.rc != rc {
            self.fail(label, &format!("exit {} instead of {rc}", s.rc));
        }
        for n in needles {
            if !s.out.contains(n) {
                self.fail(label, &format!("no {n:?} in the output"));
            }
        }
        &s.out
    }

    #[track_caller]
    fn lacks(&self, label: &str, needle: &str) {
        if self.get(label).out.contains(needle) {
            self.fail(label, &format!("{needle:?} in the output"));
        }
    }

    #[track_caller]
    fn json(&self, label: &str) -> Value {
        let out = self.check(label, 0, &[]);
        serde_json::from_str(out).unwrap_or_else(|e| self.fail(label, &format!("not JSON: {e}")))
    }
}

/// `<addr> <type> <name>[\t[module]]` lines of /proc/kallsyms, by name.
fn kallsyms(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?;
            let _kind = f.next()?;
            let name = f.next()?;
            Some((name.to_string(), format!("0x{addr}")))
        })
        .collect()
}

fn patch<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no patch {name} in {list:#}"))
}

fn function<'a>(list: &'a Value, patch_name: &str, object: &str) -> &'a Value {
    let p = patch(list, patch_name);
    let o = p["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == object)
        .unwrap_or_else(|| panic!("no object {object} in {p:#}"));
    &o["functions"][0]
}

const ORIGINAL_CMDLINE: &str = "console=ttyS0";
const PATCHED_CMDLINE: &str = "this has been live patched";
const SYMS: &str = "echo 0 > /proc/sys/kernel/kptr_restrict; \
    grep -E \" (cmdline_proc_show|livepatch_cmdline_proc_show|lpt_target_message|lp_test_message)([[:space:]]|$)\" /proc/kallsyms";

/// The whole life of lpatch patches through the CLI, KASLR on so that the addresses
/// it shows are compared with kallsyms at a randomized base.
#[test]
fn cli_drives_the_core() {
    let steps_wanted: &[(&str, &str)] = &[
        ("status_none", "lpatch status"),
        ("load_early", "lpatch load livepatch-sample.ko"),
        ("load_core", "lpatch load lpatch.ko"),
        ("status_core", "lpatch status"),
        ("status_core_json", "lpatch status --json"),
        ("list_empty", "lpatch list"),
        ("cmdline_0", "cat /proc/cmdline"),
        ("load_sample", "lpatch load livepatch-sample.ko"),
        ("cmdline_1", "cat /proc/cmdline"),
        ("load_again", "lpatch load livepatch-sample.ko"),
        (
            "load_a",
            "lpatch load lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2",
        ),
        ("list_a_waiting", "lpatch list"),
        ("insmod_target", "insmod lpt_target.ko"),
        ("target_1", "cat /proc/lpt_target"),
        ("list", "lpatch list"),
        ("list_json", "lpatch list --json"),
        ("syms", SYMS),
        ("syms_cmdline", "lpatch syms cmdline_proc_show"),
        ("syms_json", "lpatch syms cmdline_proc_show vmlinux --json"),
        ("syms_dup", "lpatch syms elf_core_dump vmlinux"),
        ("syms_module", "lpatch syms lpt_target_message lpt_target"),
        ("syms_none", "lpatch syms no_such_symbol_xyz"),
        ("info", "lpatch info livepatch_sample"),
        ("info_json", "lpatch info livepatch_sample --json"),
        ("kprobe_on", "insmod kprobe_post.ko post=0"),
        ("info_kprobe", "lpatch info livepatch_sample"),
        ("kprobe_off", "rmmod kprobe_post"),
        ("status_k", "lpatch status"),
        ("status_k_json", "lpatch status --json"),
        ("disable_under", "lpatch disable livepatch_sample"),
        ("cmdline_2", "cat /proc/cmdline"),
        ("disable_a", "lpatch disable lp_test_a"),
        ("target_2", "cat /proc/lpt_target"),
        ("disable_sample", "lpatch disable livepatch_sample"),
        ("cmdline_3", "cat /proc/cmdline"),
        ("disable_again", "lpatch disable livepatch_sample"),
        ("enable_sample", "lpatch enable livepatch_sample"),
        ("cmdline_4", "cat /proc/cmdline"),
        ("unload_sample", "lpatch unload livepatch_sample"),
        ("cmdline_5", "cat /proc/cmdline"),
        (
            "after_unload",
            "grep -c \"^livepatch_sample \" /proc/modules; ls -1 /sys/kernel/lpatch",
        ),
        ("load_bad", "lpatch load lp_test_b.ko func=no_such_function"),
        (
            "after_bad",
            "grep -c \"^lp_test_b \" /proc/modules; ls -1 /sys/kernel/lpatch",
        ),
        ("info_missing", "lpatch info lp_test_b"),
        ("load_not_patch", "lpatch load kprobe_post.ko"),
        (
            "load_reloc_vmlinux",
            "lpatch load lp_reloc_vmlinux_missing.ko",
        ),
        ("load_reloc_module", "lpatch load lp_reloc_missing.ko"),
    ];
    let run = Vm::new()
        .boot(Boot::Kaslr)
        .ko(ko("kernel/lpatch.ko"))
        .ko(ko("samples/livepatch-sample/livepatch-sample.ko"))
        .ko(ko("samples/lp-test/lp_test_a.ko"))
        .ko(ko("samples/lp-test/lp_test_b.ko"))
        .ko(ko("samples/lpt-target/lpt_target.ko"))
        .ko(ko("samples/kprobe-post/kprobe_post.ko"))
        .ko(ko("samples/reloc-vmlinux/lp_reloc_vmlinux_missing.ko"))
        .ko(ko("samples/reloc-mod/lp_reloc_missing.ko"))
        .file(cli(), "/bin/lpatch")
        .script(&script(steps_wanted))
        .run()
        .unwrap();
    let c = Checker {
        steps: steps(&run, steps_wanted),
        run: &run,
    };

    // Before the core.
    c.check(
        "status_none",
        3,
        &[
            "lpatch core:       not loaded",
            "kernel livepatch:  present, /sys/kernel/livepatch (0 patches",
            "taint:             0 (G: not tainted)",
            "error: the lpatch core is not loaded",
        ],
    );
    c.check(
        "load_early",
        3,
        &[
            "cannot load patch livepatch_sample: the lpatch core is not loaded",
            "lpatch load /path/to/lpatch.ko",
        ],
    );

    // The core.
    c.check(
        "load_core",
        0,
        &["lpatch core loaded, version 0.1.0; patches register in /sys/kernel/lpatch"],
    );
    c.check(
        "status_core",
        0,
        &[
            "lpatch core:       loaded, version 0.1.0",
            "sysfs root:        /sys/kernel/lpatch (0 patches, 0 enabled)",
            "kernel livepatch:  present, /sys/kernel/livepatch (0 patches",
            "O: externally-built",
        ],
    );
    c.lacks("status_core", "K: kernel live patched");
    let st = c.json("status_core_json");
    assert_eq!(st["core_loaded"], true, "{st:#}");
    assert_eq!(st["core_version"], "0.1.0", "{st:#}");
    assert_eq!(st["sysfs_root"], "/sys/kernel/lpatch", "{st:#}");
    assert_eq!(st["kernel_livepatch_present"], true, "{st:#}");
    assert_eq!(
        st["kernel_livepatch_root"], "/sys/kernel/livepatch",
        "{st:#}"
    );
    assert_eq!(st["patches"], 0, "{st:#}");
    c.check("list_empty", 0, &["no patches"]);

    // A patch of vmlinux.
    let original = c.check("cmdline_0", 0, &[ORIGINAL_CMDLINE]).to_string();
    c.check(
        "load_sample",
        0,
        &[
            "loaded livepatch-sample.ko: patch livepatch_sample enabled",
            "  vmlinux: cmdline_proc_show,1",
            "lpatch: enabled patch livepatch_sample",
        ],
    );
    c.check("cmdline_1", 0, &[PATCHED_CMDLINE]);
    c.check(
        "load_again",
        1,
        &[
            "loading livepatch-sample.ko failed: EEXIST (File exists)",
            "patch livepatch_sample is registered: lpatch info livepatch_sample",
        ],
    );

    // A patch of a module that is not loaded yet: patched when it arrives.
    c.check(
        "load_a",
        0,
        &[
            "loaded lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2: patch lp_test_a enabled",
            "  lpt_target (module not loaded; patched when it loads): lpt_target_message,1",
        ],
    );
    c.check(
        "list_a_waiting",
        0,
        &[
            "lp_test_a: enabled",
            "lpt_target_message,1  old 0x0 (target not loaded)",
        ],
    );
    c.check("insmod_target", 0, &[]);
    c.check("target_1", 0, &["patched by lp_test_a"]);
    c.check(
        "list",
        0,
        &[
            "livepatch_sample: enabled\n  vmlinux\n    cmdline_proc_show,1  old 0x",
            "lp_test_a: enabled\n  lpt_target (module loaded)\n    lpt_target_message,1  old 0x",
        ],
    );

    // Addresses, against kallsyms of a randomized kernel.
    let syms = kallsyms(c.check("syms", 0, &[]));
    // lpatch syms: object, sympos, local or not (a module's unexported symbols are local in
    // kallsyms), address, the relocation's name.
    c.check(
        "syms_cmdline",
        0,
        &[&format!(
            "vmlinux      cmdline_proc_show,1  local function (t)  {}  .klp.sym.vmlinux.cmdline_proc_show,0",
            syms["cmdline_proc_show"]
        )],
    );
    let sj = c.json("syms_json");
    assert_eq!(sj[0]["object"], "vmlinux", "{sj:#}");
    assert_eq!(sj[0]["sympos"], 1, "{sj:#}");
    assert_eq!(sj[0]["count"], 1, "{sj:#}");
    c.check(
        "syms_dup",
        0,
        &[
            "elf_core_dump,1  local function (t)",
            "elf_core_dump,2  local function (t)",
            ".klp.sym.vmlinux.elf_core_dump,2",
            "vmlinux has several symbols named elf_core_dump: name one by its sympos",
        ],
    );
    c.check(
        "syms_module",
        0,
        &[&format!(
            "lpt_target   lpt_target_message,1  local function (t)  {}  .klp.sym.lpt_target.lpt_target_message,0",
            syms["lpt_target_message"]
        )],
    );
    c.check(
        "syms_none",
        3,
        &["error: no symbol named no_such_symbol_xyz in the running kernel"],
    );
    let list = c.json("list_json");
    assert_eq!(list["core_loaded"], true);
    assert_eq!(list["sysfs_root"], "/sys/kernel/lpatch");
    let names: Vec<&str> = list["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["livepatch_sample", "lp_test_a"], "{list:#}");
    let sample = patch(&list, "livepatch_sample");
    assert_eq!(sample["core"], "lpatch");
    assert_eq!(sample["enabled"], true);
    let f = function(&list, "livepatch_sample", "vmlinux");
    assert_eq!(f["name"], "cmdline_proc_show");
    assert_eq!(f["sympos"], 1);
    assert_eq!(
        f["old_addr"].as_str(),
        syms.get("cmdline_proc_show").map(String::as_str),
        "{syms:?}"
    );
    assert_eq!(
        f["new_addr"].as_str(),
        syms.get("livepatch_cmdline_proc_show").map(String::as_str),
        "{syms:?}"
    );
    let f = function(&list, "lp_test_a", "lpt_target");
    assert_eq!(patch(&list, "lp_test_a")["objects"][0]["loaded"], true);
    assert_eq!(
        f["old_addr"].as_str(),
        syms.get("lpt_target_message").map(String::as_str),
        "{syms:?}"
    );
    assert_eq!(
        f["new_addr"].as_str(),
        syms.get("lp_test_message").map(String::as_str),
        "{syms:?}"
    );

    c.check(
        "info",
        0,
        &[
            "patch:       livepatch_sample",
            "core:        lpatch",
            "directory:   /sys/kernel/lpatch/livepatch_sample",
            "enabled:     enabled",
            "module:      livepatch_sample: Live",
            "cmdline_proc_show (sympos 1)",
            &format!("old_addr  {}", syms["cmdline_proc_show"]),
            // lpatch's ops alone, modifying the ip (it needs no saved registers).
            "    cmdline_proc_show (sympos 1)\n      ftrace    1 user (I)\n",
            "ftrace lines: how many ftrace users trace the function",
        ],
    );
    // A kprobe (no post handler) shares the function: ftrace counts two users.
    c.check("kprobe_on", 0, &[]);
    c.check(
        "info_kprobe",
        0,
        &[
            "    cmdline_proc_show (sympos 1)\n      ftrace    2 users (",
            " I)\n",
        ],
    );
    c.check("kprobe_off", 0, &[]);
    let info = c.json("info_json");
    assert_eq!(info["ftrace"][0]["function"], "cmdline_proc_show,1");
    assert_eq!(info["ftrace"][0]["sites"][0]["ops"], 1);
    assert_eq!(info["ftrace"][0]["sites"][0]["ipmodify"], true);
    assert_eq!(info["name"], "livepatch_sample");
    assert_eq!(info["module"]["name"], "livepatch_sample");
    assert_eq!(info["module"]["state"], "Live");

    c.check(
        "status_k",
        0,
        &[
            "sysfs root:        /sys/kernel/lpatch (2 patches, 2 enabled)",
            "K: kernel live patched",
        ],
    );
    let st = c.json("status_k_json");
    assert!(
        st["taint"]["letters"].as_str().unwrap().contains('K'),
        "{st:#}"
    );
    assert_eq!(st["patches_enabled"], 2);

    // Patches stack: the one enabled first cannot go first.
    c.check(
        "disable_under",
        1,
        &[
            "cannot disable patch livepatch_sample: EBUSY (Device or resource busy)",
            "disable lp_test_a first: lpatch disable lp_test_a",
            "lpatch: cannot disable patch livepatch_sample: patch lp_test_a was enabled after it",
        ],
    );
    c.check("cmdline_2", 0, &[PATCHED_CMDLINE]);
    c.check("disable_a", 0, &["patch lp_test_a disabled"]);
    c.check("target_2", 0, &["original"]);
    c.check("disable_sample", 0, &["patch livepatch_sample disabled"]);
    let restored = c.check("cmdline_3", 0, &[]);
    assert_eq!(restored, original);
    c.check(
        "disable_again",
        0,
        &["patch livepatch_sample is already disabled"],
    );
    c.check("enable_sample", 0, &["patch livepatch_sample enabled"]);
    c.check("cmdline_4", 0, &[PATCHED_CMDLINE]);

    // Unload: disabled, its transition waited for, the module gone.
    c.check(
        "unload_sample",
        0,
        &[
            "patch livepatch_sample disabled",
            "module livepatch_sample unloaded",
        ],
    );
    assert_eq!(c.check("cmdline_5", 0, &[]), original);
    assert_eq!(c.check("after_unload", 0, &[]), "0\nlp_test_a");

    // A patch of a function that does not exist.
    c.check(
        "load_bad",
        1,
        &[
            "loading lp_test_b.ko func=no_such_function failed: ENOENT (No such file or directory)",
            "lpatch: patch lp_test_b: function no_such_function not found in vmlinux",
        ],
    );
    let after = c.check("after_bad", 0, &[]);
    assert_eq!(after, "0\nlp_test_a");
    c.check(
        "info_missing",
        3,
        &["no patch named lp_test_b", "registered patches: lp_test_a"],
    );

    // A module that is no patch.
    c.check(
        "load_not_patch",
        1,
        &[
            "module kprobe_post loaded, but no patch named kprobe_post appeared",
            "module kprobe_post stays loaded",
        ],
    );

    // A relocation the loader (vmlinux) or the core (a module) cannot resolve: explained.
    c.check(
        "load_reloc_vmlinux",
        1,
        &[
            "loading lp_reloc_vmlinux_missing.ko failed: EINVAL",
            "the kernel has no symbol lpt_no_such_kernel_symbol: the module refers to it through a relocation to vmlinux (LPATCH_SYM)",
            "lpatch syms lpt_no_such_kernel_symbol",
            "livepatch: symbol 'lpt_no_such_kernel_symbol' not found in symbol table",
        ],
    );
    c.check(
        "load_reloc_module",
        1,
        &[
            "loading lp_reloc_missing.ko failed: ENOENT",
            "module lpt_target has no symbol lpt_no_such_symbol at sympos 0",
            "lpatch syms lpt_no_such_symbol lpt_target",
            "lpatch: patch lp_reloc_missing: relocation symbol lpt_no_such_symbol (sympos 0) not found in lpt_target",
        ],
    );
    eprintln!(
        "cli_drives_the_core: boot {:?}, wall {:?}",
        run.boot, run.wall
    );
}

/// A patch of the kernel's own livepatch core: shown, never changed; and the lpatch
/// core cannot take a function that a kernel livepatch already redirects.
#[test]
fn cli_and_kernel_livepatch() {
    let steps_wanted: &[(&str, &str)] = &[
        ("list_nocore", "lpatch list"),
        ("insmod_core", "insmod lpatch.ko"),
        ("load_klp", "lpatch load klp_cmdline.ko"),
        ("cmdline_klp", "cat /proc/cmdline"),
        ("list", "lpatch list"),
        ("list_json", "lpatch list --json"),
        ("info", "lpatch info klp_cmdline"),
        ("disable_klp", "lpatch disable klp_cmdline"),
        ("enable_klp", "lpatch enable klp_cmdline"),
        ("unload_klp", "lpatch unload klp_cmdline"),
        ("klp_enabled", "cat /sys/kernel/livepatch/klp_cmdline/enabled"),
        ("load_sample", "lpatch load livepatch-sample.ko"),
        ("cmdline_still", "cat /proc/cmdline"),
        ("status", "lpatch status"),
        // The kernel's patch off (through its own sysfs): now the sample takes the function.
        // Its directory goes when klp's transition is over and the patch's kobjects are
        // released: up to 30 s here, since the debug kernel delays every release by 1-4 s
        // (DEBUG_KOBJECT_RELEASE) and a busy host slows the guest's transition (5 s was
        // once too short there).
        ("klp_off", "echo 0 > /sys/kernel/livepatch/klp_cmdline/enabled; \
                     i=0; while [ -e /sys/kernel/livepatch/klp_cmdline ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
                     ls -1 /sys/kernel/livepatch"),
        ("load_sample_2", "lpatch load livepatch-sample.ko"),
        ("cmdline_sample", "cat /proc/cmdline"),
        ("disable_sample", "lpatch disable livepatch_sample"),
        ("reenable_klp", "rmmod klp_cmdline && insmod klp_cmdline.ko; echo insmod $?"),
        ("enable_sample", "lpatch enable livepatch_sample"),
        ("cmdline_end", "cat /proc/cmdline"),
    ];
    let run = Vm::new()
        .boot(Boot::Pvh)
        .ko(ko("kernel/lpatch.ko"))
        .ko(ko("samples/livepatch-sample/livepatch-sample.ko"))
        .ko(ko("samples/klp-cmdline/klp_cmdline.ko"))
        .file(cli(), "/bin/lpatch")
        .script(&script(steps_wanted))
        .run()
        .unwrap();
    let c = Checker {
        steps: steps(&run, steps_wanted),
        run: &run,
    };
    c.check(
        "list_nocore",
        0,
        &["warning: the lpatch core is not loaded", "no patches"],
    );
    c.check("insmod_core", 0, &[]);
    c.check(
        "load_klp",
        1,
        &[
            "module klp_cmdline loaded, but no patch named klp_cmdline appeared",
            "it registered with the kernel's own livepatch core instead: /sys/kernel/livepatch/klp_cmdline",
        ],
    );
    c.check("cmdline_klp", 0, &["patched by the in-kernel livepatch"]);
    c.check(
        "list",
        0,
        &["klp_cmdline (kernel livepatch): enabled\n  vmlinux (patched)\n    cmdline_proc_show,1"],
    );
    let list = c.json("list_json");
    let klp = patch(&list, "klp_cmdline");
    assert_eq!(klp["core"], "kernel-livepatch", "{list:#}");
    assert_eq!(klp["enabled"], true);
    assert_eq!(klp["path"], "/sys/kernel/livepatch/klp_cmdline");
    assert_eq!(klp["objects"][0]["patched"], true);
    c.check(
        "info",
        0,
        &["core:        the kernel's own livepatch core (kernel livepatch); lpatch only shows it"],
    );
    for (label, verb) in [
        ("disable_klp", "disable"),
        ("enable_klp", "enable"),
        ("unload_klp", "unload"),
    ] {
        c.check(
            label,
            2,
            &[&format!(
                "patch klp_cmdline belongs to the kernel's own livepatch core, not to lpatch; lpatch does not {verb} it"
            )],
        );
    }
    c.check("klp_enabled", 0, &["1"]);

    // The function is the kernel livepatch's: the core refuses, nothing changes.
    c.check(
        "load_sample",
        1,
        &["loading livepatch-sample.ko failed: EBUSY (Device or resource busy)"],
    );
    c.check("cmdline_still", 0, &["patched by the in-kernel livepatch"]);
    c.check(
        "status",
        0,
        &[
            "sysfs root:        /sys/kernel/lpatch (0 patches, 0 enabled)",
            "kernel livepatch:  present, /sys/kernel/livepatch (1 patch;",
            "K: kernel live patched",
        ],
    );

    c.check("klp_off", 0, &[]);
    c.lacks("klp_off", "klp_cmdline");
    c.check("load_sample_2", 0, &["patch livepatch_sample enabled"]);
    c.check("cmdline_sample", 0, &[PATCHED_CMDLINE]);
    c.check("disable_sample", 0, &["patch livepatch_sample disabled"]);
    c.check("reenable_klp", 0, &["insmod 0"]);
    // Now the kernel livepatch holds it again: enabling ours names the owner.
    c.check(
        "enable_sample",
        1,
        &[
            "cannot enable patch livepatch_sample: EBUSY",
            "vmlinux: cmdline_proc_show is patched by klp_cmdline (kernel livepatch)",
        ],
    );
    c.check("cmdline_end", 0, &["patched by the in-kernel livepatch"]);
    eprintln!(
        "cli_and_kernel_livepatch: boot {:?}, wall {:?}",
        run.boot, run.wall
    );
}

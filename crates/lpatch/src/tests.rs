// SPDX-License-Identifier: GPL-2.0-only
//! The commands end to end, against fake /sys, /proc and kmsg trees and a fake kernel.

use crate::elf::testelf;
use crate::testutil::{log, FakeOps, TempTree};
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Env {
    t: TempTree,
}

impl Env {
    fn new() -> Env {
        let t = TempTree::new();
        t.mkdir("sys/kernel");
        t.mkdir("sys/module");
        t.write("proc/modules", "");
        t.write("proc/sys/kernel/tainted", "0\n");
        t.write(
            "kmsg",
            "6,1,0,-;Linux version 6.1.0\n6,2,0,-;lpatch: an old line\n",
        );
        Env { t }
    }

    /// The core loaded on a kernel with its own livepatch core (Debian's case).
    fn core(self) -> Env {
        self.t.write("sys/module/lpatch/version", "0.1.0\n");
        self.t.mkdir("sys/kernel/lpatch");
        self.t
            .write("proc/modules", "lpatch 40960 0 - Live 0x0 (OE)\n");
        self
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.t.path(&format!("sys/{rel}"))
    }

    fn kmsg(&self) -> PathBuf {
        self.t.path("kmsg")
    }

    /// A patch of ours with functions given as (object, "func,pos", old_addr, new_addr).
    fn patch(&self, name: &str, enabled: bool, funcs: &[(&str, &str, &str, &str)]) {
        write_patch(&self.t.root, name, enabled, funcs);
    }

    fn add_module(&self, name: &str) {
        add_module(&self.t.root, name);
    }

    /// A patch of the kernel's own livepatch core.
    fn klp(&self, name: &str, enabled: bool) {
        let d = format!("sys/kernel/livepatch/{name}");
        self.t
            .write(&format!("{d}/enabled"), if enabled { "1\n" } else { "0\n" });
        self.t.write(&format!("{d}/transition"), "0\n");
        self.t.write(&format!("{d}/replace"), "0\n");
        self.t.write(&format!("{d}/force"), "");
        self.t.write(&format!("{d}/vmlinux/patched"), "1\n");
        self.t.mkdir(&format!("{d}/vmlinux/meminfo_proc_show,1"));
    }

    fn enabled(&self, name: &str) -> String {
        self.t.read(&format!("sys/kernel/lpatch/{name}/enabled"))
    }

    fn run(&self, ops: &FakeOps, args: &[&str]) -> (i32, String, String) {
        let mut argv: Vec<String> = vec!["lpatch".into()];
        argv.extend(args.iter().map(|s| s.to_string()));
        argv.extend([
            "--sysfs-root".into(),
            self.t.path("sys").display().to_string(),
            "--proc-root".into(),
            self.t.path("proc").display().to_string(),
            "--kmsg".into(),
            self.kmsg().display().to_string(),
        ]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = crate::cli::run(argv, ops, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn run0(&self, args: &[&str]) -> (i32, String, String) {
        self.run(&FakeOps::new(), args)
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn add_module(root: &Path, name: &str) {
    let mut m = std::fs::read_to_string(root.join("proc/modules")).unwrap();
    m.push_str(&format!("{name} 16384 1 - Live 0x0 (OEK)\n"));
    write(root, "proc/modules", &m);
}

/// Writes a patch of ours (as the core would on registration) under `root`, the test tree.
fn write_patch(root: &Path, name: &str, enabled: bool, funcs: &[(&str, &str, &str, &str)]) {
    write(
        root,
        &format!("sys/kernel/lpatch/{name}/enabled"),
        if enabled { "1\n" } else { "0\n" },
    );
    for (obj, func, old, new) in funcs {
        let d = format!("sys/kernel/lpatch/{name}/{obj}/{func}");
        write(root, &format!("{d}/old_addr"), &format!("{old}\n"));
        write(root, &format!("{d}/new_addr"), &format!("{new}\n"));
    }
    add_module(root, name);
}

fn sample(env: &Env) {
    sample_at(&env.t.root);
}

fn sample_at(root: &Path) {
    write_patch(
        root,
        "livepatch_sample",
        true,
        &[
            (
                "vmlinux",
                "cmdline_proc_show,0",
                "0xffffffff81234560",
                "0xffffffffc0a01000",
            ),
            ("nfsd", "nfsd_open,2", "0x0", "0xffffffffc0a01100"),
        ],
    );
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

// ---------------------------------------------------------------- command line

#[test]
fn help_documents_exit_codes() {
    let env = Env::new();
    let (code, out, _) = env.run0(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "status",
        "list",
        "info",
        "load",
        "enable",
        "disable",
        "unload",
        "Exit codes",
        "4  permission denied",
    ] {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
    for sub in [
        "status", "list", "info", "load", "enable", "disable", "unload",
    ] {
        let (code, out, _) = env.run0(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub}");
        assert!(out.contains("Exit codes"), "{sub}:\n{out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.run0(&[]).0, 2);
    assert_eq!(env.run0(&["frobnicate"]).0, 2);
    assert_eq!(env.run0(&["info"]).0, 2);
    assert_eq!(env.run0(&["list", "--bogus"]).0, 2);
    let (code, _, err) = env.core().run0(&["info", "../../etc"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a patch name"), "{err}");
}

#[test]
fn version_flag() {
    let (code, out, _) = Env::new().run0(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("lpatch "), "{out}");
}

#[test]
fn global_options_go_anywhere() {
    let env = Env::new().core();
    let argv = vec![
        "lpatch".to_string(),
        "--sysfs-root".into(),
        env.t.path("sys").display().to_string(),
        "list".into(),
        "--proc-root".into(),
        env.t.path("proc").display().to_string(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        crate::cli::run(argv, &FakeOps::new(), &mut out, &mut err),
        0
    );
    assert_eq!(String::from_utf8(out).unwrap(), "no patches\n");
}

// ---------------------------------------------------------------- status

#[test]
fn status_without_core() {
    let env = Env::new();
    let (code, out, err) = env.run0(&["status"]);
    assert_eq!(code, 3);
    assert!(out.contains("lpatch core:       not loaded"), "{out}");
    assert!(out.contains("sysfs root:        none"), "{out}");
    assert!(out.contains("kernel livepatch:  absent"), "{out}");
    assert!(
        out.contains("taint:             0 (G: not tainted)"),
        "{out}"
    );
    assert!(err.contains("the lpatch core is not loaded"), "{err}");
}

#[test]
fn status_with_core_and_kernel_livepatch() {
    let env = Env::new().core();
    sample(&env);
    env.patch("other", false, &[]);
    env.klp("klp_demo", true);
    env.t.write("proc/sys/kernel/tainted", "45056\n");
    let (code, out, err) = env.run0(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("loaded, version 0.1.0"), "{out}");
    assert!(
        out.contains(&format!(
            "{} (2 patches, 1 enabled)",
            env.sys("kernel/lpatch").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "present, {} (1 patch;",
            env.sys("kernel/livepatch").display()
        )),
        "{out}"
    );
    assert!(out.contains("taint:             45056 (GOEK)"), "{out}");
    assert!(out.contains("  K: kernel live patched\n"), "{out}");
    assert!(out.contains("  O: externally-built"), "{out}");
    assert!(out.contains("  E: unsigned module was loaded"), "{out}");
}

#[test]
fn status_core_on_kernel_without_livepatch() {
    let env = Env::new();
    env.t.write("sys/module/lpatch/version", "0.2.0\n");
    env.t.write("sys/kernel/livepatch/p/enabled", "1\n");
    let (code, out, _) = env.run0(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "sysfs root:        {} (1 patch, 1 enabled)",
            env.sys("kernel/livepatch").display()
        )),
        "{out}"
    );
    assert!(out.contains("kernel livepatch:  absent"), "{out}");
}

#[test]
fn status_taint_unreadable_or_garbage() {
    let env = Env::new().core();
    std::fs::remove_file(env.t.path("proc/sys/kernel/tainted")).unwrap();
    let (code, out, _) = env.run0(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("taint:             unknown (cannot read"),
        "{out}"
    );
    env.t.write("proc/sys/kernel/tainted", "lots\n");
    let (_, out, _) = env.run0(&["status"]);
    assert!(out.contains("not a number"), "{out}");
    env.t.write("proc/sys/kernel/tainted", "1\n");
    let (_, out, _) = env.run0(&["status"]);
    assert!(
        out.contains("(P)") && out.contains("P: proprietary module was loaded"),
        "{out}"
    );
}

#[test]
fn status_json() {
    let env = Env::new().core();
    sample(&env);
    env.klp("klp_demo", false);
    env.t.write("proc/sys/kernel/tainted", "32768\n");
    let (code, out, _) = env.run0(&["status", "--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["core_loaded"], true);
    assert_eq!(v["core_version"], "0.1.0");
    assert_eq!(
        v["sysfs_root"],
        env.sys("kernel/lpatch").display().to_string()
    );
    assert_eq!(v["patches"], 1);
    assert_eq!(v["patches_enabled"], 1);
    assert_eq!(v["kernel_livepatch_present"], true);
    assert_eq!(v["kernel_livepatch_patches"], 1);
    assert_eq!(v["taint"]["value"], 32768);
    assert_eq!(v["taint"]["flags"][0]["letter"], "K");
    assert_eq!(v["taint"]["flags"][0]["description"], "kernel live patched");

    let (code, out, _) = Env::new().run0(&["status", "--json"]);
    assert_eq!(code, 3);
    let v = json(&out);
    assert_eq!(v["core_loaded"], false);
    assert_eq!(v["sysfs_root"], Value::Null);
}

// ---------------------------------------------------------------- list

#[test]
fn list_empty_and_without_core() {
    let (code, out, err) = Env::new().core().run0(&["list"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "no patches\n", ""));
    let (code, out, err) = Env::new().run0(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(out, "no patches\n");
    assert!(err.contains("the lpatch core is not loaded"), "{err}");
}

#[test]
fn list_text() {
    let env = Env::new().core();
    sample(&env);
    env.patch(
        "another",
        false,
        &[(
            "vmlinux",
            "meminfo_proc_show,0",
            "0xffffffff81000000",
            "0xffffffffc0b00000",
        )],
    );
    env.klp("klp_demo", true);
    let (code, out, _) = env.run0(&["list"]);
    assert_eq!(code, 0);
    let expected = "\
another: disabled
  vmlinux
    meminfo_proc_show,0  old 0xffffffff81000000  new 0xffffffffc0b00000
livepatch_sample: enabled
  vmlinux
    cmdline_proc_show,0  old 0xffffffff81234560  new 0xffffffffc0a01000
  nfsd (module not loaded; patched when it loads)
    nfsd_open,2  old 0x0 (target not loaded)  new 0xffffffffc0a01100
klp_demo (kernel livepatch): enabled
  vmlinux (patched)
    meminfo_proc_show,1
";
    assert_eq!(out, expected);
}

#[test]
fn list_shows_loaded_target_modules_and_unreadable_addresses() {
    let env = Env::new().core();
    sample(&env);
    env.add_module("nfsd");
    // Reading old_addr fails (a directory stands in for the file, as EACCES can't be faked for root).
    env.t.write("sys/kernel/lpatch/p2/enabled", "1\n");
    env.t.mkdir("sys/kernel/lpatch/p2/vmlinux/f,0/old_addr");
    env.t
        .write("sys/kernel/lpatch/p2/vmlinux/f,0/new_addr", "0x1\n");
    let (_, out, _) = env.run0(&["list"]);
    assert!(out.contains("  nfsd (module loaded)\n"), "{out}");
    assert!(
        out.contains("    f,0  new 0x1  (old_addr unreadable: EISDIR"),
        "{out}"
    );
}

#[test]
fn list_json_round_trip() {
    let env = Env::new().core();
    sample(&env);
    env.klp("klp_demo", true);
    let (code, out, _) = env.run0(&["list", "--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["core_loaded"], true);
    let patches = v["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 2);
    let p = &patches[0];
    assert_eq!(p["name"], "livepatch_sample");
    assert_eq!(p["core"], "lpatch");
    assert_eq!(p["enabled"], true);
    assert_eq!(p["objects"][0]["name"], "vmlinux");
    assert_eq!(p["objects"][0]["loaded"], true);
    assert_eq!(p["objects"][0]["functions"][0]["name"], "cmdline_proc_show");
    assert_eq!(p["objects"][0]["functions"][0]["sympos"], 0);
    assert_eq!(
        p["objects"][0]["functions"][0]["old_addr"],
        "0xffffffff81234560"
    );
    assert_eq!(p["objects"][1]["name"], "nfsd");
    assert_eq!(p["objects"][1]["loaded"], false);
    assert!(p.get("transition").is_none());
    let k = &patches[1];
    assert_eq!(k["core"], "kernel-livepatch");
    assert_eq!(k["transition"], false);
    assert_eq!(k["objects"][0]["patched"], true);
    assert_eq!(k["objects"][0]["functions"][0]["old_addr"], Value::Null);
}

#[test]
fn garbage_in_sysfs_does_not_panic() {
    let env = Env::new().core();
    env.t
        .write_bytes("sys/kernel/lpatch/p/enabled", b"\xff\xfe\x00junk");
    env.t
        .write_bytes("sys/kernel/lpatch/p/vmlinux/,/old_addr", b"\x00\x01");
    env.t.mkdir("sys/kernel/lpatch/p/vmlinux/,,,,");
    env.t.write("sys/kernel/lpatch/stray_file", "x");
    env.t.write_bytes("proc/modules", b"\xff garbage\n\n   \n");
    env.t.write_bytes("kmsg", b"\xff\xff\n;;;\n,,,\n");
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["info", "p"],
        &["info", "p", "--json"],
        &["status"],
        &["disable", "p"],
    ] {
        let (code, _, _) = env.run0(args);
        assert!(code <= 4, "{args:?}");
    }
    let (_, out, _) = env.run0(&["list"]);
    assert!(out.contains("p: in an unknown state"), "{out}");
}

// ---------------------------------------------------------------- info

#[test]
fn info_text() {
    let env = Env::new().core();
    sample(&env);
    env.t.write(
        "sys/kernel/tracing/enabled_functions",
        "cmdline_proc_show (2) R I D\ttramp: 0xffffffffc0002000 ->lpatch_handler+0x0/0x90 [lpatch]\n\
\tdirect-->bpf_trampoline_6442493000+0x0/0xf1\n\
nfsd_open [nfsd] (1) R I   \n",
    );
    let (code, out, _) = env.run0(&["info", "livepatch_sample"]);
    assert_eq!(code, 0);
    let expected = format!(
        "\
patch:       livepatch_sample
core:        lpatch
directory:   {}
enabled:     enabled
module:      livepatch_sample: Live, refcount 1, used by no module, taints OEK
objects:     2 object(s), 2 function(s)
  vmlinux
    cmdline_proc_show (sympos 0)
      ftrace    2 users (R I D), direct-->bpf_trampoline_6442493000+0x0/0xf1
      old_addr  0xffffffff81234560
      new_addr  0xffffffffc0a01000
  nfsd (module not loaded; patched when it loads)
    nfsd_open (sympos 2)
      ftrace    1 user (R I)
      old_addr  0x0 (target not loaded)
      new_addr  0xffffffffc0a01100
ftrace lines: how many ftrace users trace the function (lpatch's own included) and the
kernel's flags (tracefs enabled_functions): R registers saved, I the ip modified (a live
patch, lpatch's or the kernel's, or a kprobe with a post handler), D a direct call (a BPF
trampoline, or register_ftrace_direct).
",
        env.sys("kernel/lpatch/livepatch_sample").display()
    );
    assert_eq!(out, expected);
}

#[test]
fn info_without_tracefs_says_so() {
    let env = Env::new().core();
    sample(&env);
    let (code, out, _) = env.run0(&["info", "livepatch_sample"]);
    assert_eq!(code, 0);
    assert!(!out.contains("      ftrace "), "{out}");
    assert!(
        out.contains("ftrace:      who else traces these functions is unknown: ")
            && out.contains("tracefs is not mounted (mount -t tracefs tracefs "),
        "{out}"
    );
    env.t.write("sys/kernel/tracing/enabled_functions", "");
    let (_, out, _) = env.run0(&["info", "livepatch_sample"]);
    assert!(
        out.contains("    cmdline_proc_show (sympos 0)\n      ftrace    no ftrace user\n"),
        "{out}"
    );
}

#[test]
fn info_kernel_livepatch_patch() {
    let env = Env::new().core();
    env.klp("klp_demo", true);
    let (code, out, _) = env.run0(&["info", "klp_demo"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("core:        the kernel's own livepatch core (kernel livepatch)"),
        "{out}"
    );
    assert!(out.contains("transition:  none"), "{out}");
    assert!(out.contains("replace:     no"), "{out}");
    assert!(out.contains("module:      not in /proc/modules"), "{out}");
    assert!(
        out.contains("  vmlinux (patched)\n    meminfo_proc_show (sympos 1)\n"),
        "{out}"
    );
    assert!(out.contains("use "), "{out}");
}

#[test]
fn info_json() {
    let env = Env::new().core();
    sample(&env);
    let (code, out, _) = env.run0(&["info", "livepatch_sample", "--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["name"], "livepatch_sample");
    assert_eq!(v["module"]["refcount"], 1);
    assert_eq!(v["module"]["taints"], "OEK");
    assert_eq!(
        v["objects"][1]["functions"][0]["new_addr"],
        "0xffffffffc0a01100"
    );
    assert!(v["ftrace_error"]
        .as_str()
        .is_some_and(|e| e.contains("tracefs is not mounted")));
    env.t.write(
        "sys/kernel/tracing/enabled_functions",
        "cmdline_proc_show (2) R I D\n\tdirect-->bpf_trampoline_1+0x0/0xf1\n",
    );
    let (_, out, _) = env.run0(&["info", "livepatch_sample", "--json"]);
    let v = json(&out);
    assert!(v.get("ftrace_error").is_none(), "{out}");
    let f = &v["ftrace"];
    assert_eq!(f[0]["object"], "vmlinux");
    assert_eq!(f[0]["function"], "cmdline_proc_show,0");
    assert_eq!(f[0]["sites"][0]["ops"], 2);
    assert_eq!(f[0]["sites"][0]["direct"], true);
    assert_eq!(
        f[0]["sites"][0]["detail"][0],
        "direct-->bpf_trampoline_1+0x0/0xf1"
    );
    assert_eq!(f[1]["function"], "nfsd_open,2");
    assert_eq!(f[1]["sites"].as_array().map(Vec::len), Some(0));
}

#[test]
fn info_unknown_patch() {
    let env = Env::new().core();
    sample(&env);
    let (code, out, err) = env.run0(&["info", "nope"]);
    assert_eq!(code, 3);
    assert_eq!(out, "");
    assert!(err.contains("no patch named nope"), "{err}");
    assert!(
        err.contains("registered patches: livepatch_sample"),
        "{err}"
    );
    let (code, _, err) = Env::new().run0(&["info", "nope"]);
    assert_eq!(code, 3);
    assert!(err.contains("the lpatch core is not loaded"), "{err}");
}

// ---------------------------------------------------------------- enable, disable

#[test]
fn enable_and_disable_write_the_attribute() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    let ops = FakeOps::new();
    let (code, out, _) = env.run(&ops, &["enable", "p"]);
    assert_eq!((code, out.as_str()), (0, "patch p enabled\n"));
    assert_eq!(env.enabled("p"), "1\n");
    let (code, out, _) = env.run(&ops, &["disable", "p"]);
    assert_eq!((code, out.as_str()), (0, "patch p disabled\n"));
    assert_eq!(env.enabled("p"), "0\n");
    assert_eq!(
        ops.calls(),
        vec!["write(p/enabled, 1)", "write(p/enabled, 0)"]
    );
}

#[test]
fn enable_when_already_enabled_writes_nothing() {
    let env = Env::new().core();
    env.patch("p", true, &[]);
    let ops = FakeOps::new();
    let (code, out, _) = env.run(&ops, &["enable", "p"]);
    assert_eq!((code, out.as_str()), (0, "patch p is already enabled\n"));
    assert!(ops.calls().is_empty());
}

#[test]
fn kernel_livepatch_patches_are_refused() {
    let env = Env::new().core();
    env.klp("klp_demo", true);
    for cmd in ["enable", "disable", "unload"] {
        let ops = FakeOps::new();
        let (code, _, err) = env.run(&ops, &[cmd, "klp_demo"]);
        assert_eq!(code, 2, "{cmd}");
        assert!(
            err.contains("belongs to the kernel's own livepatch core"),
            "{err}"
        );
        assert!(
            err.contains(&env.sys("kernel/livepatch/klp_demo").display().to_string()),
            "{err}"
        );
        assert!(ops.calls().is_empty(), "{cmd}");
    }
    assert_eq!(env.t.read("sys/kernel/livepatch/klp_demo/enabled"), "1\n");
}

#[test]
fn kernel_livepatch_refused_even_without_core() {
    let env = Env::new();
    env.klp("klp_demo", true);
    let (code, _, err) = env.run0(&["disable", "klp_demo"]);
    assert_eq!(code, 2);
    assert!(err.contains("kernel's own livepatch core"), "{err}");
}

#[test]
fn enable_unknown_patch_or_no_core() {
    let env = Env::new().core();
    let (code, _, err) = env.run0(&["enable", "nope"]);
    assert_eq!(code, 3);
    assert!(err.contains("no lpatch patch is registered"), "{err}");
    let (code, _, err) = Env::new().run0(&["disable", "nope"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("core is not loaded") && err.contains("lpatch load"),
        "{err}"
    );
}

#[test]
fn disable_ebusy_names_the_later_patch_from_the_log() {
    let env = Env::new().core();
    env.patch("fix_a", true, &[]);
    env.patch("fix_b", true, &[]);
    env.patch("fix_bb", true, &[]);
    let kmsg = env.kmsg();
    let ops = FakeOps::new().on_write(move |_, _| {
        log(
            &kmsg,
            &[
                "4,10,0,-;lpatch: cannot disable fix_a: fix_b was enabled after it",
                "6,11,0,-;usb: noise",
            ],
        );
        Some(libc::EBUSY)
    });
    let (code, _, err) = env.run(&ops, &["disable", "fix_a"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot disable patch fix_a: EBUSY"), "{err}");
    assert!(
        err.contains("disable fix_b first: lpatch disable fix_b"),
        "{err}"
    );
    assert!(
        err.contains("kernel log:\n    lpatch: cannot disable fix_a: fix_b was enabled after it\n"),
        "{err}"
    );
    assert!(!err.contains("old line") && !err.contains("usb"), "{err}");
    assert_eq!(env.enabled("fix_a"), "1\n");
}

#[test]
fn disable_ebusy_without_log_explanation() {
    let env = Env::new().core();
    env.patch("fix_a", true, &[]);
    let ops = FakeOps::new().on_write(|_, _| Some(libc::EBUSY));
    let (code, _, err) = env.run(&ops, &["disable", "fix_a"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not say which patch"), "{err}");
    // An unreadable log is said so.
    std::fs::remove_file(env.kmsg()).unwrap();
    let (code, _, err) = env.run(&ops, &["disable", "fix_a"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("(no kernel log lines: cannot read the kernel log"),
        "{err}"
    );
}

#[test]
fn enable_errors_in_words() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    let ops = FakeOps::new().on_write(|_, _| Some(libc::EACCES));
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 4);
    assert!(
        err.contains("EACCES (Permission denied)") && err.contains("needs root"),
        "{err}"
    );
    let kmsg = env.kmsg();
    let ops = FakeOps::new().on_write(move |_, _| {
        log(&kmsg, &["3,20,0,-;lpatch: p: enable refused"]);
        Some(libc::EINVAL)
    });
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the core refused to enable patch p: EINVAL"),
        "{err}"
    );
    assert!(err.contains("lpatch: p: enable refused"), "{err}");
    let ops = FakeOps::new().on_write(|_, _| Some(libc::ENOMEM));
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 1);
    assert!(err.contains("ENOMEM"), "{err}");
}

#[test]
fn enable_ebusy_names_the_owner_of_the_function() {
    let env = Env::new().core();
    env.patch(
        "p",
        false,
        &[("vmlinux", "meminfo_proc_show,1", "0x1", "0x2")],
    );
    env.patch("q", true, &[("vmlinux", "other_fn,1", "0x3", "0x4")]);
    env.klp("klp_meminfo", true);
    let ops = FakeOps::new().on_write(|_, _| Some(libc::EBUSY));
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot enable patch p: EBUSY"), "{err}");
    assert!(
        err.contains("  vmlinux: meminfo_proc_show is patched by klp_meminfo (kernel livepatch)\n"),
        "{err}"
    );
    assert!(!err.contains("by q"), "{err}");
    // Nobody else patches it: the general explanation.
    env.klp("klp_meminfo", false);
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 1);
    assert!(err.contains("another ftrace user"), "{err}");
    assert!(!err.contains("ftrace shows"), "{err}");
    // ftrace tells who holds it: a direct call (a BPF trampoline).
    env.t.write(
        "sys/kernel/tracing/enabled_functions",
        "meminfo_proc_show (1) R I D\n\tdirect-->bpf_trampoline_7+0x0/0xf1\nother_fn (1) R I\n",
    );
    let (_, _, err) = env.run(&ops, &["enable", "p"]);
    assert!(
        err.contains("ftrace shows (tracefs enabled_functions):\n    vmlinux: meminfo_proc_show: 1 user (R I D), direct-->bpf_trampoline_7+0x0/0xf1: a direct call (a BPF trampoline, or register_ftrace_direct)\n"),
        "{err}"
    );
    assert!(!err.contains("other_fn"), "{err}");
}

#[test]
fn write_accepted_but_state_unchanged() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    let path = env.sys("kernel/lpatch/p/enabled");
    // The write "succeeds" but goes nowhere: enabled then reads nothing.
    let ops = FakeOps::new().on_write(move |_, _| {
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        None
    });
    let (code, _, err) = env.run(&ops, &["enable", "p"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the kernel accepted the write, but")
            && err.contains("now reads nothing readable"),
        "{err}"
    );
}

// ---------------------------------------------------------------- load

fn ko(env: &Env, file: &str, name: &str) -> PathBuf {
    let modinfo = format!("license=GPL\0livepatch=Y\0name={name}\0vermagic=6.1.0 SMP\0");
    let elf = testelf::build(&[
        (".modinfo", modinfo.as_bytes()),
        (".gnu.linkonce.this_module", &testelf::this_module(name)),
    ]);
    env.t.write_bytes(file, &elf)
}

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[test]
fn load_success_reports_what_it_patched() {
    let env = Env::new().core();
    let file = ko(&env, "build/my-fix.ko", "livepatch_sample");
    let kmsg = env.kmsg();
    let root = env.t.root.clone();
    let ops = FakeOps::new().on_finit(move || {
        sample_at(&root);
        log(
            &kmsg,
            &[
                "6,3,0,-;lpatch: livepatch_sample: 2 functions, enabled",
                "6,4,0,-;something else",
            ],
        );
        Ok(())
    });
    let (code, out, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ops.calls(), vec!["finit_module(\"\", 0)"]);
    let expected = format!(
        "\
loaded {}: patch livepatch_sample enabled
  vmlinux: cmdline_proc_show,0
  nfsd (module not loaded; patched when it loads): nfsd_open,2
kernel log:
  lpatch: livepatch_sample: 2 functions, enabled
",
        s(&file)
    );
    assert_eq!(out, expected);
}

#[test]
fn load_failure_explains_errno_and_shows_new_log_lines() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    for (errno, code, words) in [
        (libc::EEXIST, 1, "already loaded"),
        (libc::ENOEXEC, 1, "vermagic"),
        (libc::EINVAL, 1, "rejected the patch"),
        (libc::ENOENT, 1, "unknown symbol"),
        (libc::EBUSY, 1, "already being patched"),
        (libc::EKEYREJECTED, 1, "signature"),
        (libc::EACCES, 4, "permission denied"),
        (9999, 1, "refused the module"),
    ] {
        let kmsg = env.kmsg();
        let ops = FakeOps::new().on_finit(move || {
            log(
                &kmsg,
                &[
                    "3,50,0,-;fix: Unknown symbol foo (err -2)",
                    "3,51,0,-;lpatch: fix: cannot resolve foo",
                ],
            );
            Err(errno)
        });
        let (c, out, err) = env.run(&ops, &["load", &s(&file)]);
        assert_eq!(c, code, "{errno}: {err}");
        assert_eq!(out, "");
        assert!(
            err.contains(&format!(
                "loading {} failed: {}",
                s(&file),
                crate::errno::name(errno)
            )),
            "{err}"
        );
        assert!(err.contains(words), "{errno}: {err}");
        assert!(
            err.contains(
                "    fix: Unknown symbol foo (err -2)\n    lpatch: fix: cannot resolve foo\n"
            ),
            "{err}"
        );
        assert!(!err.contains("an old line"), "{err}");
    }
}

#[test]
fn load_passes_module_parameters() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    let root = env.t.root.clone();
    let ops = FakeOps::new().on_finit(move || {
        write_patch(&root, "fix", true, &[("lpt_target", "f,1", "0x0", "0x2")]);
        Ok(())
    });
    let (code, out, err) = env.run(
        &ops,
        &[
            "load",
            &s(&file),
            "obj=lpt_target",
            "msg=two words",
            "twice",
            "empty=",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ops.calls(),
        vec![r#"finit_module("obj=lpt_target msg=\"two words\" twice empty=", 0)"#]
    );
    assert!(
        out.starts_with(&format!(
            "loaded {} obj=lpt_target msg=\"two words\" twice empty=: patch fix enabled\n",
            s(&file)
        )),
        "{out}"
    );

    // A failure names the parameters too.
    let ops = FakeOps::new().on_finit(|| Err(libc::ENOENT));
    let (code, _, err) = env.run(&ops, &["load", &s(&file), "func=nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "loading {} func=nope failed: ENOENT (No such file or directory)",
            s(&file)
        )),
        "{err}"
    );
}

#[test]
fn load_refuses_bad_module_parameters() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    for bad in ["=1", "a b=1", "x=say \"hi\"", "a/b=1", ""] {
        let ops = FakeOps::new();
        let (code, out, err) = env.run(&ops, &["load", &s(&file), bad]);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert_eq!(out, "");
        assert!(err.starts_with("error: "), "{bad:?}: {err}");
        assert!(ops.calls().is_empty(), "{bad:?}");
    }
}

#[test]
fn load_eexist_points_at_the_registered_patch() {
    let env = Env::new().core();
    env.patch("fix", true, &[]);
    let file = ko(&env, "fix.ko", "fix");
    let ops = FakeOps::new().on_finit(|| Err(libc::EEXIST));
    let (code, _, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("patch fix is registered: lpatch info fix"),
        "{err}"
    );
}

#[test]
fn load_eperm_depends_on_root() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    let mut ops = FakeOps::new().on_finit(|| Err(libc::EPERM));
    ops.euid = 1000;
    assert_eq!(env.run(&ops, &["load", &s(&file)]).0, 4);
    ops.euid = 0;
    let (code, _, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 1);
    assert!(err.contains("modules_disabled"), "{err}");
}

#[test]
fn load_checks_file_and_core_first() {
    let env = Env::new().core();
    let ops = FakeOps::new();
    let (code, _, err) = env.run(&ops, &["load", &s(&env.t.path("missing.ko"))]);
    assert_eq!(code, 3);
    assert!(err.contains("ENOENT"), "{err}");
    let (code, _, err) = env.run(&ops, &["load", &s(&env.t.path("sys"))]);
    assert_eq!(code, 2, "{err}");
    let env = Env::new();
    let file = ko(&env, "fix.ko", "fix");
    let (code, _, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 3);
    assert!(err.contains("the lpatch core is not loaded"), "{err}");
    assert!(ops.calls().is_empty());
}

#[test]
fn load_not_elf_uses_file_name_and_says_so() {
    let env = Env::new().core();
    let file = env.t.write("my-fix.ko", "this is text");
    let ops = FakeOps::new().on_finit(|| Err(libc::ENOEXEC));
    let (code, _, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 1);
    assert!(err.contains("is not an ELF file at all"), "{err}");
    assert!(
        err.contains("module name my_fix was guessed from the file name"),
        "{err}"
    );
}

#[test]
fn load_module_that_registers_no_patch() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    let (code, out, err) = env.run0(&["load", &s(&file)]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(
        err.contains("module fix loaded, but no patch named fix appeared"),
        "{err}"
    );
    assert!(err.contains("module fix stays loaded"), "{err}");
}

#[test]
fn load_module_that_registers_with_the_kernel_core() {
    let env = Env::new().core();
    let file = ko(&env, "klp_x.ko", "klp_x");
    let root = env.t.root.clone();
    let ops = FakeOps::new().on_finit(move || {
        std::fs::create_dir_all(root.join("sys/kernel/livepatch/klp_x")).unwrap();
        Ok(())
    });
    let (code, _, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("registered with the kernel's own livepatch core instead"),
        "{err}"
    );
}

#[test]
fn load_patch_that_stays_disabled() {
    let env = Env::new().core();
    let file = ko(&env, "fix.ko", "fix");
    let root = env.t.root.clone();
    let ops = FakeOps::new().on_finit(move || {
        std::fs::create_dir_all(root.join("sys/kernel/lpatch/fix/vmlinux/f,0")).unwrap();
        std::fs::write(root.join("sys/kernel/lpatch/fix/enabled"), "0\n").unwrap();
        Ok(())
    });
    let (code, out, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 1);
    assert!(out.contains("patch fix disabled"), "{out}");
    assert!(
        err.contains("registered but not enabled") && err.contains("lpatch enable fix"),
        "{err}"
    );
}

#[test]
fn load_the_core_itself() {
    let env = Env::new();
    let file = ko(&env, "lpatch.ko", "lpatch");
    let root = env.t.root.clone();
    let kmsg = env.kmsg();
    let ops = FakeOps::new().on_finit(move || {
        std::fs::create_dir_all(root.join("sys/kernel/lpatch")).unwrap();
        std::fs::create_dir_all(root.join("sys/module/lpatch")).unwrap();
        std::fs::write(root.join("sys/module/lpatch/version"), "0.1.0\n").unwrap();
        log(&kmsg, &["6,3,0,-;lpatch: core loaded"]);
        Ok(())
    });
    let (code, out, err) = env.run(&ops, &["load", &s(&file)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("lpatch core loaded, version 0.1.0; patches register in "),
        "{out}"
    );
    assert!(out.contains("  lpatch: core loaded"), "{out}");
}

// ---------------------------------------------------------------- unload

#[test]
fn unload_disables_then_deletes() {
    let env = Env::new().core();
    sample(&env);
    let root = env.t.root.clone();
    let ops = FakeOps::new().on_delete(move |name| {
        std::fs::remove_dir_all(root.join("sys/kernel/lpatch").join(name)).unwrap();
        Ok(())
    });
    let (code, out, err) = env.run(&ops, &["unload", "livepatch_sample"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "patch livepatch_sample disabled\nmodule livepatch_sample unloaded\n"
    );
    assert_eq!(
        ops.calls(),
        vec![
            "write(livepatch_sample/enabled, 0)",
            "delete_module(livepatch_sample, 0o4000)"
        ]
    );
    assert_eq!(err, "");
}

#[test]
fn unload_of_disabled_patch_skips_the_write() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    let ops = FakeOps::new();
    let (code, out, err) = env.run(&ops, &["unload", "p"]);
    assert_eq!(code, 0);
    assert_eq!(out, "module p unloaded\n");
    assert!(err.contains("is still there"), "{err}");
    assert_eq!(ops.calls(), vec!["delete_module(p, 0o4000)"]);
}

#[test]
fn unload_refused_because_held() {
    for errno in [libc::EBUSY, libc::EAGAIN, libc::EPERM] {
        let env = Env::new().core();
        sample(&env);
        let kmsg = env.kmsg();
        let ops = FakeOps::new().on_delete(move |_| {
            log(&kmsg, &["4,30,0,-;lpatch: livepatch_sample: module pinned"]);
            Err(errno)
        });
        let (code, out, err) = env.run(&ops, &["unload", "livepatch_sample"]);
        assert_eq!(code, 1, "{errno}: {err}");
        assert_eq!(out, "patch livepatch_sample disabled\n");
        assert_eq!(env.enabled("livepatch_sample"), "0\n");
        assert!(
            err.contains("the kernel refused to unload module livepatch_sample"),
            "{err}"
        );
        assert!(
            err.contains("patch livepatch_sample is disabled, but its module stays loaded"),
            "{err}"
        );
        assert!(
            err.contains("until the") && err.contains("transition of its disable has ended"),
            "{err}"
        );
        assert!(
            err.contains("module livepatch_sample: Live, refcount 1"),
            "{err}"
        );
        assert!(
            err.contains("    lpatch: livepatch_sample: module pinned"),
            "{err}"
        );
    }
}

#[test]
fn unload_refused_because_used_by_another_module() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    env.t
        .write("proc/modules", "p 16384 1 q, Live 0x0\nq 1 0 - Live 0x0\n");
    let ops = FakeOps::new().on_delete(|_| Err(libc::EAGAIN));
    let (code, _, err) = env.run(&ops, &["unload", "p"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("modules that use p: q (unload those first)"),
        "{err}"
    );
}

#[test]
fn unload_permission_and_other_errors() {
    let env = Env::new().core();
    env.patch("p", false, &[]);
    let mut ops = FakeOps::new().on_delete(|_| Err(libc::EPERM));
    ops.euid = 1000;
    let (code, _, err) = env.run(&ops, &["unload", "p"]);
    assert_eq!(code, 4);
    assert!(err.contains("needs root"), "{err}");
    let ops = FakeOps::new().on_delete(|_| Err(libc::ENOENT));
    let (code, _, err) = env.run(&ops, &["unload", "p"]);
    assert_eq!(code, 3);
    assert!(err.contains("the kernel has no module named p"), "{err}");
    let ops = FakeOps::new().on_delete(|_| Err(libc::EFAULT));
    let (code, _, err) = env.run(&ops, &["unload", "p"]);
    assert_eq!(code, 1);
    assert!(err.contains("EFAULT"), "{err}");
}

#[test]
fn unload_stops_when_disable_is_refused() {
    let env = Env::new().core();
    env.patch("a", true, &[]);
    env.patch("b", true, &[]);
    let kmsg = env.kmsg();
    let ops = FakeOps::new().on_write(move |_, _| {
        log(&kmsg, &["4,40,0,-;lpatch: a: 'b' is enabled on top of it"]);
        Some(libc::EBUSY)
    });
    let (code, _, err) = env.run(&ops, &["unload", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("disable b first"), "{err}");
    assert_eq!(ops.calls(), vec!["write(a/enabled, 0)"]);
}

#[test]
fn unload_unknown_patch() {
    let env = Env::new().core();
    let ops = FakeOps::new();
    assert_eq!(env.run(&ops, &["unload", "ghost"]).0, 3);
    assert!(ops.calls().is_empty());
}

// SPDX-License-Identifier: GPL-2.0-only
//! Shared pieces of the core's VM scenarios: where the built modules are, a guest shell
//! prelude whose helpers print `@key value` lines, and their parsing on the host.

use lpatch_vm::{Boot, Vm, VmRun};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The build directory: $LPATCH_BUILD (set by the top Makefile), else <repo>/build/current.
pub fn build_dir() -> PathBuf {
    std::env::var_os("LPATCH_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/current"))
}

/// Every .ko the build produced: the core and the samples.
pub fn all_modules() -> Vec<PathBuf> {
    let b = build_dir();
    let mut out = vec![b.join("kernel/lpatch.ko")];
    let samples = std::fs::read_dir(b.join("samples")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `make all` first)",
            b.join("samples").display()
        )
    });
    for d in samples.flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "ko") {
                out.push(f.path());
            }
        }
    }
    for m in &out {
        assert!(m.exists(), "{} missing: run `make all` first", m.display());
    }
    out
}

/// Shell helpers every scenario script starts with. Each prints one `@key value` line:
///   run KEY CMD...      → "@KEY rc=<status> <output on one line>"
///   put KEY VALUE FILE  → writes VALUE (no newline added) to FILE: "@KEY rc=<status> <error>"
///   show KEY CMD...     → "@KEY <output on one line>"
///   settle              → returns once no lpatch transition runs
pub const PRELUDE: &str = r#"
R=/sys/kernel/lpatch
T=/sys/kernel/tracing
echo 0 > /proc/sys/kernel/kptr_restrict
oneline() { tr '\n' ' ' | sed 's/ *$//'; }
run() { k=$1; shift; o=$("$@" 2>&1); rc=$?; echo "@$k rc=$rc $(echo "$o" | oneline)"; }
put() { o=$( (echo -n "$2" > "$3") 2>&1 ); rc=$?; echo "@$1 rc=$rc $(echo "$o" | oneline)"; }
show() { k=$1; shift; echo "@$k $("$@" 2>&1 | oneline)"; }
sym() { grep " $1\$" /proc/kallsyms | head -n1 | cut -d' ' -f1; }
modsym() { grep " $1	\[$2\]\$" /proc/kallsyms | head -n1 | cut -d' ' -f1; }
traced() { grep -c "^$1 " $T/enabled_functions; }
# Waits until no lpatch transition runs (enable and disable return before theirs ends).
settle() { while grep -qs 1 $R/*/transition; do usleep 2000; done; }
# What ftrace routes anywhere (with nothing patched, the core's ftrace_ops is unregistered).
patched_sites() { cat $T/enabled_functions; }
insmod lpatch.ko || { echo "@core-load failed"; exit 1; }
"#;

/// Whether the guests boot lpatch's debug kernel (`make test-debug`): lockdep, KASAN and
/// delayed kobject releases make it several times slower, so long loops run fewer rounds.
pub fn on_debug_kernel() -> bool {
    lpatch_vm::is_debug_kernel(&lpatch_vm::default_kernel_dir())
}

/// A VM with the core and every sample module in /lib/lpatch, the prelude, and `script`.
pub fn vm(boot: Boot, script: &str) -> Vm {
    let mut v = Vm::new().boot(boot).timeout(240);
    for m in all_modules() {
        v = v.ko(m);
    }
    v.script(&format!("{PRELUDE}\n{script}"))
}

/// The `@key value` lines of a run (a key seen twice keeps the last value).
pub struct Facts {
    pub map: BTreeMap<String, String>,
    pub report: String,
}

impl Facts {
    pub fn of(run: &VmRun) -> Facts {
        let mut map = BTreeMap::new();
        for l in run.output.lines() {
            if let Some(rest) = l.strip_prefix('@') {
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                map.insert(k.to_string(), v.trim().to_string());
            }
        }
        Facts {
            map,
            report: run.report(),
        }
    }

    #[track_caller]
    pub fn get(&self, key: &str) -> &str {
        self.map
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no @{key} line\n{}", self.report))
    }

    /// Asserts the value of `key` equals `want`.
    #[track_caller]
    pub fn eq(&self, key: &str, want: &str) {
        let got = self.get(key);
        assert_eq!(got, want, "@{key}\n{}", self.report);
    }

    /// Asserts the value of `key` contains every one of `parts`.
    #[track_caller]
    pub fn has(&self, key: &str, parts: &[&str]) {
        let got = self.get(key);
        for p in parts {
            assert!(
                got.contains(p),
                "@{key} = {got:?} lacks {p:?}\n{}",
                self.report
            );
        }
    }

    /// Asserts a command or write of `key` failed with the errno text `err`
    /// (e.g. "Invalid argument").
    #[track_caller]
    pub fn failed(&self, key: &str, err: &str) {
        let got = self.get(key);
        assert!(
            !got.starts_with("rc=0"),
            "@{key} should have failed: {got:?}\n{}",
            self.report
        );
        assert!(
            got.contains(err),
            "@{key} = {got:?} lacks {err:?}\n{}",
            self.report
        );
    }

    /// Asserts `insmod` of `key` failed with errno `n`: busybox's insmod exits with the
    /// errno, and words some of them its own way (ENOENT as "unknown symbol in module").
    #[track_caller]
    pub fn errno(&self, key: &str, n: i32) {
        let got = self.get(key);
        assert!(
            got.starts_with(&format!("rc={n} ")),
            "@{key} = {got:?}, wanted errno {n}\n{}",
            self.report
        );
    }

    #[track_caller]
    pub fn ok(&self, key: &str) {
        let got = self.get(key);
        assert!(
            got.starts_with("rc=0"),
            "@{key} should have succeeded: {got:?}\n{}",
            self.report
        );
    }

    /// A hex address value ("0xffff..." or "ffff...").
    #[track_caller]
    pub fn addr(&self, key: &str) -> u64 {
        let v = self.get(key);
        u64::from_str_radix(v.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("@{key} = {v:?} is not an address\n{}", self.report))
    }
}

/// Asserts the kernel log has `line` (a substring of one line).
#[track_caller]
/// How many kernel log lines of the run contain `needle`.
pub fn log_count(run: &VmRun, needle: &str) -> usize {
    run.kernel_log
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

pub fn log_has(run: &VmRun, line: &str) {
    assert!(
        log_count(run, line) > 0,
        "kernel log lacks {line:?}\n{}",
        run.report()
    );
}

/// TAINT_LIVEPATCH ('K') in a /proc/sys/kernel/tainted value.
pub fn tainted_k(v: &str) -> bool {
    v.trim()
        .parse::<u64>()
        .map(|t| t & (1 << 15) != 0)
        .unwrap_or(false)
}

/// The counting BPF fexit program (`crates/lpatch-fexit/bpf/count_exit.bpf.c`) compiled
/// with clang for the BPF target, into `<build>/bpf/`; `lpatch-fexit` loads it in the guest.
pub fn bpf_count_exit_object() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lpatch-fexit/bpf/count_exit.bpf.c");
    let dir = build_dir().join("bpf");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let out = dir.join("count_exit.o");
    let r = std::process::Command::new("clang")
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running clang (scripts/setup.sh installs it): {e}"));
    assert!(
        r.status.success(),
        "clang -target bpf {}: {}\n{}",
        src.display(),
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

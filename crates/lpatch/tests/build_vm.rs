// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch build` end to end (issue 26 slice a): a diff against Debian's fs/proc/cmdline.c
//! that changes `cmdline_proc_show`, adds a function it calls, a global it counts in, string
//! literals and `__func__`, and reads `saved_command_line`, which the kernel does not
//! export. Built on the host into a patch module for Debian's stock kernel, loaded in a
//! guest of that kernel (KASLR) with `lpatch load`, its effect read from /proc/cmdline;
//! disabled, the old text returns. Needs the builder's prepared tree (`make test` prepares
//! it) and the built core (`make all`).

use lpatch_vm::{Boot, Vm};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_dir() -> PathBuf {
    std::env::var_os("LPATCH_BUILD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/current"))
}

#[test]
fn built_from_a_diff_loads_and_works_needs_stock_kernel() {
    lpatch_vm::require_stock_kernel();
    let out_dir = std::env::temp_dir().join(format!("lpatch-build-vm-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let ko = out_dir.join("cmdline_new_code.ko");
    let patch = repo().join("crates/lpatch-build/tests/patches/cmdline_new_code.patch");
    let built = Command::new(env!("CARGO_BIN_EXE_lpatch"))
        .arg("build")
        .arg(&patch)
        .arg("-o")
        .arg(&ko)
        .arg("--core-symvers")
        .arg(build_dir().join("kernel/Module.symvers"))
        .output()
        .expect("running lpatch build");
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "lpatch build failed: {stdout}\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(
        stdout.contains("patch cmdline_new_code replaces:\n  vmlinux: cmdline_proc_show\n"),
        "{stdout}"
    );
    let script = r#"
cd /lib/lpatch
echo "@before $(cat /proc/cmdline)"
lpatch load lpatch.ko > /dev/null || echo "@core-failed"
lpatch load cmdline_new_code.ko; echo "@load-rc $?"
echo "@read1 $(cat /proc/cmdline)"
echo "@read2 $(cat /proc/cmdline)"
lpatch disable cmdline_new_code; echo "@disable-rc $?"
echo "@after $(cat /proc/cmdline)"
lpatch enable cmdline_new_code; echo "@enable-rc $?"
echo "@read3 $(cat /proc/cmdline)"
"#;
    let run = Vm::new()
        .boot(Boot::Kaslr)
        .ko(build_dir().join("kernel/lpatch.ko"))
        .ko(&ko)
        .file(
            lpatch_vm::static_binary("lpatch", "lpatch", "LPATCH_CLI"),
            "/bin/lpatch",
        )
        .script(script)
        .run()
        .unwrap();
    run.assert_ok();
    let _ = std::fs::remove_dir_all(&out_dir);
    let get = |k: &str| -> String {
        run.output
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("@{k} "))
                    .or((l == format!("@{k}")).then_some(""))
            })
            .unwrap_or_else(|| panic!("no @{k} in the output\n{}", run.report()))
            .to_string()
    };
    let before = get("before");
    assert!(!before.contains('['), "{}", run.report());
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

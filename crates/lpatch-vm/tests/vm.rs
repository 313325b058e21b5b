// SPDX-License-Identifier: GPL-2.0-only
//! VM tests: each boots the stock kernel under qemu (about 4 s in Pvh mode, 10 s in
//! Kaslr mode under TCG). Each guest has 1 vCPU, so cargo's default of two test threads
//! on this 2-core host runs two guests at once without starving either.

use lpatch_vm::{default_kernel_dir, kernel_release, linked_text_address, Boot, Vm, VmRun};
use std::path::{Path, PathBuf};

/// Prints `_text` from kallsyms as `TEXT <addr>` (kptr_restrict 0: real addresses).
const TEXT_SCRIPT: &str = "\
echo 0 > /proc/sys/kernel/kptr_restrict
echo TEXT $(grep ' _text$' /proc/kallsyms | cut -d' ' -f1)
";

fn text_address(run: &VmRun) -> u64 {
    let line = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix("TEXT "))
        .unwrap_or_else(|| panic!("no TEXT line\n{}", run.report()));
    u64::from_str_radix(line.trim(), 16)
        .unwrap_or_else(|_| panic!("bad _text {line:?}\n{}", run.report()))
}

#[test]
fn hello_pvh() {
    let dir = default_kernel_dir();
    // a host file with an unusual mode, to see it kept
    let tmp = std::env::temp_dir().join(format!("lpatch-vm-test-{}-hello.sh", std::process::id()));
    std::fs::write(&tmp, "#!/bin/sh\necho extra file runs\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let script = format!(
        "uname -r\ncat /proc/cmdline\npwd\nstat -c %a /opt/x/run.sh\n/opt/x/run.sh\n{TEXT_SCRIPT}"
    );
    let run = Vm::new()
        .boot(Boot::Pvh)
        .file(&tmp, "/opt/x/run.sh")
        .script(&script)
        .run()
        .unwrap();
    std::fs::remove_file(&tmp).unwrap();
    run.assert_ok();
    let lines: Vec<&str> = run.output.lines().collect();
    assert_eq!(lines[0], kernel_release(&dir).unwrap(), "{}", run.report());
    assert!(
        lines[1].contains("console=ttyS0") && lines[1].contains("rdinit=/init"),
        "{}",
        run.report()
    );
    assert!(!lines[1].contains("nokaslr"));
    assert_eq!(lines[2], "/lib/lpatch");
    assert_eq!(lines[3], "750");
    assert_eq!(lines[4], "extra file runs");
    // PVH skips the decompressor, so the kernel sits at its link address.
    assert_eq!(
        text_address(&run),
        linked_text_address(&dir).unwrap(),
        "{}",
        run.report()
    );
    eprintln!("hello_pvh: boot {:?}, wall {:?}", run.boot, run.wall);
}

#[test]
fn hello_kaslr() {
    let dir = default_kernel_dir();
    let linked = linked_text_address(&dir).unwrap();
    let script = format!("uname -r\ncat /proc/cmdline\n{TEXT_SCRIPT}");
    // KASLR picks one of some 500 slots, the link address among them: on a match, boot
    // once more before calling KASLR off (a false failure then has odds of ~1e-5).
    for attempt in 1..=2 {
        let run = Vm::new().boot(Boot::Kaslr).script(&script).run().unwrap();
        run.assert_ok();
        let lines: Vec<&str> = run.output.lines().collect();
        assert_eq!(lines[0], kernel_release(&dir).unwrap(), "{}", run.report());
        assert!(!lines[1].contains("nokaslr"), "{}", run.report());
        let text = text_address(&run);
        eprintln!(
            "hello_kaslr: _text {text:#x} (linked {linked:#x}), boot {:?}, wall {:?}",
            run.boot, run.wall
        );
        if text != linked {
            return;
        }
        assert!(
            attempt < 2,
            "_text at its link address twice: KASLR is off\n{}",
            run.report()
        );
    }
}

#[test]
fn exit_status_is_reported() {
    let run = Vm::new()
        .script("echo before\necho to stderr >&2\nexit 3\n")
        .run()
        .unwrap();
    run.assert_clean();
    assert_eq!(run.status, Some(3), "{}", run.report());
    assert_eq!(run.output, "before\nto stderr\n");
    let r = std::panic::catch_unwind(|| run.assert_ok());
    assert!(r.is_err(), "assert_ok must fail on status 3");
}

/// The built samples/test-warn module: `$LPATCH_TEST_WARN_KO`, else the one `make` built
/// for this kernel in `$LPATCH_BUILD` (default `build/current`); missing, the test fails.
fn test_warn_ko() -> PathBuf {
    if let Some(p) = std::env::var_os("LPATCH_TEST_WARN_KO").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let build = std::env::var_os("LPATCH_BUILD")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/current"));
    let ko = build.join("samples/test-warn/test-warn.ko");
    assert!(
        ko.is_file(),
        "{} is missing: `make all` builds it (make test does)",
        ko.display()
    );
    ko
}

/// Proves the splat check can fail: a module that WARN()s is caught.
#[test]
fn warning_is_a_splat() {
    let run = Vm::new()
        .ko(test_warn_ko())
        .script("insmod test-warn.ko && echo loaded\nrmmod test_warn && echo removed\n")
        .run()
        .unwrap();
    assert_eq!(run.status, Some(0), "{}", run.report());
    assert_eq!(run.output, "loaded\nremoved\n", "{}", run.report());
    let splats = run.splats();
    assert!(
        splats
            .iter()
            .any(|l| l.contains("WARNING:") && l.contains("test_warn_init")),
        "no WARNING splat found: {splats:#?}\n{}",
        run.report()
    );
    assert!(
        splats.iter().any(|l| l.contains("Call Trace:")),
        "{splats:#?}"
    );
    assert!(run
        .kernel_log
        .contains("lpatch test-warn: deliberate warning"));
    let r = std::panic::catch_unwind(|| run.assert_clean());
    assert!(r.is_err(), "assert_clean must fail on a WARNING");
}

/// A panic ends the guest at once (panic=-1 with -no-reboot): no status, a splat.
#[test]
fn panic_ends_the_guest() {
    let run = Vm::new()
        .script("echo crashing\necho c > /proc/sysrq-trigger\nsleep 100\n")
        .timeout(90)
        .run()
        .unwrap();
    assert!(!run.timed_out, "{}", run.report());
    assert_eq!(run.status, None, "{}", run.report());
    assert_eq!(run.output, "crashing\n");
    assert!(
        run.splats().iter().any(|l| l.contains("Kernel panic")),
        "{}",
        run.report()
    );
    assert!(std::panic::catch_unwind(|| run.assert_clean()).is_err());
}

/// A hung guest is killed at the timeout.
#[test]
fn timeout_kills_the_guest() {
    let run = Vm::new()
        .script("echo waiting\nsleep 1000\n")
        .timeout(25)
        .run()
        .unwrap();
    assert!(run.timed_out, "{}", run.report());
    assert_eq!(run.status, None);
    assert!(run.wall.as_secs() < 40, "{:?}", run.wall);
    assert!(std::panic::catch_unwind(|| run.assert_clean()).is_err());
}

// SPDX-License-Identifier: GPL-2.0-only
//! Pure functions that turn what the guest wrote on its serial ports into results:
//! the script's output and status (second port) and the kernel's complaints (first port).

/// Written by /init on the second port before the script starts. The host notes when it
/// appears (the boot time); [`split_output`] drops it.
pub const START_MARKER: &str = "LPATCH-VM-START";
/// Written by /init on the second port after the script, as `\nLPATCH-VM-EXIT <status>\n`.
/// The newline before it lets a script end its output without one and still be parsed;
/// [`split_output`] removes that one newline again.
pub const EXIT_MARKER: &str = "LPATCH-VM-EXIT";

/// Bytes from a serial port as text: invalid UTF-8 replaced, carriage returns removed
/// (the guest's tty turns every `\n` into `\r\n`).
pub fn clean_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "")
}

/// Splits the second port's text into the script's output and its exit status.
///
/// The status is taken from the last line `LPATCH-VM-EXIT <integer>`; the output is
/// everything before that line, less the newline /init put in front of it, and less the
/// start marker line. Whatever follows the marker is ignored. Without a marker the status
/// is `None` and the output is the whole text (less the start marker).
pub fn split_output(text: &str) -> (String, Option<i32>) {
    let body = text
        .strip_prefix(START_MARKER)
        .and_then(|r| r.strip_prefix('\n'))
        .unwrap_or(text);
    // Candidates: each line start holding the marker, scanned from the end.
    let mut line_starts: Vec<usize> = vec![0];
    line_starts.extend(body.match_indices('\n').map(|(i, _)| i + 1));
    for &start in line_starts.iter().rev() {
        let line = body[start..].split('\n').next().unwrap_or("");
        let Some(rest) = line.strip_prefix(EXIT_MARKER) else {
            continue;
        };
        let Some(num) = rest.strip_prefix(' ') else {
            continue;
        };
        let Ok(status) = num.trim_end().parse::<i32>() else {
            continue;
        };
        let mut out = &body[..start];
        out = out.strip_suffix('\n').unwrap_or(out);
        return (out.to_string(), Some(status));
    }
    (body.to_string(), None)
}

/// Substrings that make a kernel-log line a splat: something went wrong in the guest
/// kernel. Matched case-sensitively, anywhere in the line.
pub const SPLAT_PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "Kernel panic",
    "kernel BUG at",
    "possible circular locking dependency",
    "possible recursive locking",
    "inconsistent lock state",
    "lockdep",
    "suspicious RCU usage",
    "rcu: INFO:",
    "RCU stall",
    "detected stalls",
    "self-detected stall",
    "scheduling while atomic",
    "sleeping function called from invalid context",
    "soft lockup",
    "hard LOCKUP",
    "blocked for more than",
    "KASAN",
    "UBSAN",
    "list_add corruption",
    "list_add double add",
    "list_del corruption",
    "ODEBUG",
    "trying to register non-static key",
    "turning off the locking correctness validator",
    "DEBUG_LOCKS_WARN_ON",
    "kobject_add_internal failed",
    "is not initialized, yet kobject_put",
    "cannot create duplicate filename",
    "refcount_t:",
    "Rust panic",
    "Call Trace:",
];

/// Beginnings that make a kernel-log line a splat (after its `[ time]` prefix): SLUB's
/// debug reports (`slab_bug()`: "BUG kmalloc-64 (Not tainted): Poison overwritten",
/// "... Object already free", "... Redzone overwritten") have no colon after "BUG".
pub const SPLAT_LINE_STARTS: &[&str] = &["BUG "];

/// Lines of a clean boot that match a pattern but are no fault (the debug kernel's
/// PROVE_RCU announces itself). Each is matched against the line with its `[ time]`
/// prefix removed, exactly.
pub const BENIGN_LINES: &[&str] = &["rcu: \tRCU lockdep checking is enabled."];

/// Removes the `[    1.234567] ` printk time prefix, if any.
fn strip_time(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let stamp = &rest[..end];
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return rest[end + 1..]
                    .strip_prefix(' ')
                    .unwrap_or(&rest[end + 1..]);
            }
        }
    }
    line
}

/// Whether one kernel-log line is a splat.
pub fn is_splat(line: &str) -> bool {
    let body = strip_time(line);
    if BENIGN_LINES.iter().any(|b| body.trim_end() == *b) {
        return false;
    }
    SPLAT_PATTERNS.iter().any(|p| body.contains(p))
        || SPLAT_LINE_STARTS.iter().any(|p| body.starts_with(p))
}

/// The offending lines of a kernel log, in order.
pub fn splats(kernel_log: &str) -> Vec<String> {
    kernel_log
        .lines()
        .filter(|l| is_splat(l))
        .map(|l| l.to_string())
        .collect()
}

/// The guest time, in seconds, at which the kernel started /init (from the printk time
/// stamp of "Run /init as init process"), if the log has it.
pub fn init_time(kernel_log: &str) -> Option<f64> {
    kernel_log.lines().find_map(|l| {
        let t = l.trim_start().strip_prefix('[')?;
        let (stamp, rest) = t.split_once(']')?;
        if !rest.contains("as init process") {
            return None;
        }
        stamp.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_plain() {
        let t = "LPATCH-VM-START\nhello\nworld\n\nLPATCH-VM-EXIT 0\n";
        assert_eq!(split_output(t), ("hello\nworld\n".into(), Some(0)));
    }

    #[test]
    fn split_no_trailing_newline_in_script_output() {
        let t = "LPATCH-VM-START\nfoo\nLPATCH-VM-EXIT 7\n";
        assert_eq!(split_output(t), ("foo".into(), Some(7)));
    }

    #[test]
    fn split_empty_output() {
        assert_eq!(
            split_output("LPATCH-VM-START\n\nLPATCH-VM-EXIT 0\n"),
            ("".into(), Some(0))
        );
        assert_eq!(split_output(""), ("".into(), None));
    }

    #[test]
    fn split_marker_missing() {
        let t = "LPATCH-VM-START\npartial output\nthen the guest died";
        assert_eq!(
            split_output(t),
            ("partial output\nthen the guest died".into(), None)
        );
        // a line that only looks like the marker
        let t = "LPATCH-VM-EXIT\nLPATCH-VM-EXIT x\nLPATCH-VM-EXITS 1\n";
        assert_eq!(split_output(t), (t.into(), None));
    }

    #[test]
    fn split_junk_after_marker() {
        let t = "LPATCH-VM-START\nok\n\nLPATCH-VM-EXIT 3\n\0\0garbage\nmore";
        assert_eq!(split_output(t), ("ok\n".into(), Some(3)));
        // no newline after the marker at all
        assert_eq!(
            split_output("a\n\nLPATCH-VM-EXIT 1"),
            ("a\n".into(), Some(1))
        );
    }

    #[test]
    fn split_last_marker_wins() {
        // the script printed a marker-like line itself
        let t = "LPATCH-VM-START\nLPATCH-VM-EXIT 9\nx\n\nLPATCH-VM-EXIT 0\n";
        assert_eq!(split_output(t), ("LPATCH-VM-EXIT 9\nx\n".into(), Some(0)));
    }

    #[test]
    fn split_negative_and_large() {
        assert_eq!(split_output("\nLPATCH-VM-EXIT 255\n").1, Some(255));
        assert_eq!(split_output("\nLPATCH-VM-EXIT -1\n").1, Some(-1));
    }

    #[test]
    fn crlf_and_lossy() {
        let raw = b"LPATCH-VM-START\r\nhi\r\n\xff\xfebin\r\n\r\nLPATCH-VM-EXIT 0\r\n";
        let t = clean_text(raw);
        assert!(!t.contains('\r'));
        let (out, st) = split_output(&t);
        assert_eq!(out, "hi\n\u{fffd}\u{fffd}bin\n");
        assert_eq!(st, Some(0));
    }

    #[test]
    fn splat_lines() {
        let log = "\
[    0.000000] Linux version 6.1.0-56-amd64
[    1.000000] ------------[ cut here ]------------
[    1.000001] lpatch test-warn: deliberate warning
[    1.000002] WARNING: CPU: 0 PID: 61 at /work/main/samples/test-warn/test-warn.c:9 test_warn_init+0x15/0x1000 [test_warn]
[    1.000003] Modules linked in: test_warn(OE+)
[    1.000004] Call Trace:
[    1.000005]  <TASK>
[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    2.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    3.000000] rcu: INFO: rcu_sched self-detected stall on CPU
[    4.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]
[    5.000000] lpatch: Rust panic: index out of bounds
[    6.000000] kobject: 'foo' (00000000deadbeef): is not initialized, yet kobject_put() is being called.
[    6.000001] kobject_add_internal failed for foo with -EEXIST, don't try to register things with the same name in the same directory.
[    7.000000] refcount_t: underflow; use-after-free.
[    8.000000] list_add corruption. prev->next should be next (ffffffffc0000000), but was 0000000000000000.
[    9.000000] INFO: task insmod:70 blocked for more than 120 seconds.
[   10.000000] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
[   11.000000] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]
[   12.000000] Kernel panic - not syncing: Fatal exception
";
        let s = splats(log);
        let expect = [
            "WARNING: CPU: 0",
            "Call Trace:",
            "BUG: kernel NULL",
            "Oops: 0000",
            "rcu: INFO:",
            "soft lockup",
            "Rust panic",
            "is not initialized, yet kobject_put",
            "kobject_add_internal failed",
            "refcount_t:",
            "list_add corruption",
            "blocked for more than",
            "sleeping function",
            "general protection fault",
            "Kernel panic",
        ];
        assert_eq!(s.len(), expect.len(), "{s:#?}");
        for (line, e) in s.iter().zip(expect) {
            assert!(line.contains(e), "{line:?} should contain {e:?}");
        }
    }

    /// The reports of the debug kernel's checkers (scripts/debug-kernel.sh), as 6.1
    /// prints them: each report's key line is a splat.
    #[test]
    fn debug_kernel_reports() {
        for l in [
            // lockdep (PROVE_LOCKING, PROVE_RCU)
            "[    5.100000] WARNING: possible circular locking dependency detected",
            "[    5.100000] WARNING: possible recursive locking detected",
            "[    5.100000] WARNING: inconsistent lock state",
            "[    5.100000] WARNING: suspicious RCU usage",
            "[    5.100000] WARNING: bad unlock balance detected!",
            "[    5.100000] WARNING: held lock freed!",
            "[    5.100000] INFO: trying to register non-static key.",
            "[    5.100000] turning off the locking correctness validator.",
            "[    5.100000] DEBUG_LOCKS_WARN_ON(lock->magic != lock)",
            // KASAN
            "[    6.200000] BUG: KASAN: use-after-free in debug_uaf_init+0x6e/0x1000 [debug_uaf]",
            "[    6.200000] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
            // DEBUG_ATOMIC_SLEEP, DEBUG_PREEMPT
            "[    7.300000] BUG: sleeping function called from invalid context at kernel/time/timer.c:2076",
            "[    7.300000] BUG: scheduling while atomic: insmod/66/0x00000002",
            "[    7.300000] BUG: using smp_processor_id() in preemptible [00000000] code: sh/1",
            // DEBUG_LIST
            "[    8.400000] list_add corruption. next->prev should be prev (ffff888004c3a000), but was 0000000000000000. (next=ffff888004c3a010).",
            "[    8.400000] list_add double add: new=ffff888004c3a000, prev=ffff888004c3a000, next=ffff888004c3a010.",
            "[    8.400000] list_del corruption, ffff888004c3a000->next is LIST_POISON1 (dead000000000100)",
            // DEBUG_OBJECTS
            "[    9.500000] ODEBUG: free active (active state 0) object: 00000000c0ffee00 object type: timer_list hint: foo+0x0/0x10 [bar]",
            // SLUB_DEBUG
            "[   10.600000] BUG kmalloc-64 (Tainted: G    B      O      ): Poison overwritten",
            "[   10.600000] BUG kmalloc-128 (Not tainted): Object already free",
            // kobject and sysfs
            "[   11.700000] sysfs: cannot create duplicate filename '/kernel/lpatch/foo'",
            "[   11.700000] kobject: 'foo' (00000000deadbeef): is not initialized, yet kobject_put() is being called.",
        ] {
            assert!(is_splat(l), "{l:?}");
        }
    }

    #[test]
    fn clean_lines_are_not_splats() {
        for l in [
            "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)",
            "[    1.234567] Run /init as init process",
            "[    2.000000] test_warn: loading out-of-tree module taints kernel.",
            "[    2.000001] test_warn: module verification failed: signature and/or required key missing - tainting kernel",
            "[    3.000000] reboot: Restarting system",
            // the debug kernel's boot
            "[    0.331671] kasan: KernelAddressSanitizer initialized",
            "[    1.564237] rcu: \tRCU lockdep checking is enabled.",
            "[    1.564365] rcu: \tRCU callback double-/use-after-free debug is enabled.",
            "[    1.679059] ... MAX_LOCKDEP_SUBCLASSES:  8",
            "[    2.978060] kobject: 'acpi' (ffff888000284d00): kobject_release, parent ffff88800027d900 (delayed 500)",
            "[    0.100000] Spectre V2 : Mitigation: Retpolines",
            "",
            "no time stamp at all",
        ] {
            assert!(!is_splat(l), "{l:?}");
        }
    }

    #[test]
    fn benign_lines_are_allowed() {
        for b in BENIGN_LINES {
            assert!(!is_splat(&format!("[    0.123456] {b}")), "{b:?}");
            assert!(!is_splat(b), "{b:?}");
        }
    }

    #[test]
    fn time_prefix() {
        assert_eq!(strip_time("[    1.000000] WARNING: x"), "WARNING: x");
        assert_eq!(strip_time("[abc] WARNING: x"), "[abc] WARNING: x");
        assert_eq!(strip_time("plain"), "plain");
    }

    #[test]
    fn init_time_parsed() {
        let log = "[    0.000000] Linux\n[    3.250000] Run /init as init process\n";
        assert_eq!(init_time(log), Some(3.25));
        assert_eq!(init_time("nothing"), None);
    }
}

// SPDX-License-Identifier: GPL-2.0-only
//! `make demo`: boots Debian's stock kernel under qemu (crates/lpatch-vm), drives the
//! `lpatch` CLI through the life of two live patches in the guest, prints the transcript
//! (each command echoed as `$ cmd` before its output), checks every step's status and
//! output here on the host, and ends with a one-line verdict. Exits 0 only when every
//! step went as expected and the kernel log is clean.

use lpatch_vm::{default_kernel_dir, kernel_release, Boot, Vm, VmRun};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
Usage: lpatch-demo [--kaslr] [--kernel-log] [--build DIR] [--cli FILE]

Boots the stock kernel under qemu and shows lpatch at work: the core loaded, a patch
of a kernel function loaded, listed, disabled and enabled again, a patch of a module
that arrives later, the stacking rule, and the kernel's taint. Every step is checked;
the last line is the verdict, and the exit status is 0 only if all went as expected
and the kernel log has no warnings, oopses or the like.

Options:
  --kaslr         boot the bzImage (KASLR on); default PVH, about twice as fast
  --kernel-log    print the guest's whole kernel log after the transcript
  --build DIR     the modules: DIR/kernel/lpatch.ko, DIR/samples/<dir>/<name>.ko
                  (default $LPATCH_BUILD, else build/current of the tree)
  --cli FILE      the static lpatch binary (default $LPATCH_CLI, else
                  crates/target/x86_64-unknown-linux-gnu/release/lpatch)
  -h, --help      this text
";

/// One command of the demo and what it must do.
struct Step {
    /// A comment shown before the command (`# ...`), opening a part of the demo.
    note: Option<&'static str>,
    cmd: String,
    /// The exit status it must have.
    rc: i32,
    /// Text its output must contain.
    want: Vec<String>,
    /// Text its output must not contain.
    not: Vec<String>,
}

fn step(note: Option<&'static str>, cmd: &str, rc: i32, want: &[&str], not: &[&str]) -> Step {
    Step {
        note,
        cmd: cmd.to_string(),
        rc,
        want: want.iter().map(|s| s.to_string()).collect(),
        not: not.iter().map(|s| s.to_string()).collect(),
    }
}

const PATCHED: &str = "this has been live patched";
/// The start of the guest's own command line (lpatch-vm's first word).
const ORIGINAL: &str = "console=ttyS0";

fn demo_steps(release: &str) -> Vec<Step> {
    vec![
        step(
            Some(
                "Debian's stock kernel, booted under qemu; lpatch is a static binary in the guest.",
            ),
            "uname -r",
            0,
            &[release],
            &[],
        ),
        step(
            Some("Load the core."),
            "lpatch load lpatch.ko",
            0,
            &["lpatch core loaded, version 0.1.0; patches register in /sys/kernel/lpatch"],
            &[],
        ),
        step(
            Some("A live patch of a kernel function: cmdline_proc_show() prints /proc/cmdline."),
            "cat /proc/cmdline",
            0,
            &[ORIGINAL],
            &[PATCHED],
        ),
        step(
            None,
            "lpatch load livepatch-sample.ko",
            0,
            &[
                "patch livepatch_sample enabled",
                "vmlinux: cmdline_proc_show",
            ],
            &[],
        ),
        step(None, "cat /proc/cmdline", 0, &[PATCHED], &[ORIGINAL]),
        step(
            None,
            "lpatch list",
            0,
            &["livepatch_sample: enabled", "cmdline_proc_show,1  old 0x"],
            &[],
        ),
        step(
            Some("Disable it: the original function is back. Then enable it again."),
            "lpatch disable livepatch_sample",
            0,
            &["patch livepatch_sample disabled"],
            &[],
        ),
        step(None, "cat /proc/cmdline", 0, &[ORIGINAL], &[PATCHED]),
        step(
            None,
            "lpatch enable livepatch_sample",
            0,
            &["patch livepatch_sample enabled"],
            &[],
        ),
        step(None, "cat /proc/cmdline", 0, &[PATCHED], &[ORIGINAL]),
        step(
            Some("A patch of a module that is not loaded yet: applied when the module arrives."),
            "lpatch load lp_test_a.ko obj=lpt_target func=lpt_target_message repl=2",
            0,
            &[
                "patch lp_test_a enabled",
                "lpt_target (module not loaded; patched when it loads): lpt_target_message",
            ],
            &[],
        ),
        step(None, "insmod lpt_target.ko", 0, &[], &[]),
        step(
            None,
            "cat /proc/lpt_target",
            0,
            &["patched by lp_test_a"],
            &["original"],
        ),
        step(
            Some("Patches stack: the older patch cannot be disabled while a newer one is enabled."),
            "lpatch disable livepatch_sample",
            1,
            &["disable lp_test_a first"],
            &[],
        ),
        step(None, "cat /proc/cmdline", 0, &[PATCHED], &[]),
        step(
            Some("The kernel is now tainted K (live patched)."),
            "lpatch status",
            0,
            &[
                "lpatch core:       loaded, version 0.1.0",
                "sysfs root:        /sys/kernel/lpatch (2 patches, 2 enabled)",
                "K: kernel live patched",
            ],
            &[],
        ),
    ]
}

const BEGIN: &str = "@@@ BEGIN ";
const END: &str = "@@@ END ";

/// The guest script: each command framed by markers that carry its index and status.
fn guest_script(steps: &[Step]) -> String {
    let mut s = String::from(
        "step() { printf '@@@ BEGIN %s\\n' \"$1\"; eval \"$2\" 2>&1; \
         printf '\\n@@@ END %s %d\\n' \"$1\" $?; }\n",
    );
    for (i, st) in steps.iter().enumerate() {
        assert!(!st.cmd.contains('\''), "{}", st.cmd);
        s.push_str(&format!("step {i} '{}'\n", st.cmd));
    }
    s.push_str("true\n");
    s
}

/// What one command printed, and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ran {
    out: String,
    rc: i32,
}

/// The commands' outputs by index, from the guest's output; None for a step that did
/// not reach its end marker (the guest died, or the script stopped).
fn parse(output: &str, n: usize) -> Vec<Option<Ran>> {
    let mut ran = vec![None; n];
    let mut cur: Option<(usize, Vec<&str>)> = None;
    for line in output.lines() {
        if let Some(i) = line.strip_prefix(BEGIN).and_then(|r| r.trim().parse().ok()) {
            cur = Some((i, Vec::new()));
        } else if let Some(rest) = line.strip_prefix(END) {
            let mut f = rest.split_whitespace();
            let (Some(i), Some(rc)) = (
                f.next().and_then(|v| v.parse::<usize>().ok()),
                f.next().and_then(|v| v.parse::<i32>().ok()),
            ) else {
                continue;
            };
            if let Some((j, lines)) = cur.take() {
                if i == j && i < n {
                    let out = lines.join("\n").trim_end_matches('\n').to_string();
                    ran[i] = Some(Ran { out, rc });
                }
            }
        } else if let Some((_, lines)) = cur.as_mut() {
            lines.push(line);
        }
    }
    ran
}

/// Why a step's result is not what it must be, if it is not.
fn verify(st: &Step, ran: Option<&Ran>) -> Result<(), String> {
    let Some(r) = ran else {
        return Err("it did not run to its end".to_string());
    };
    let mut why = Vec::new();
    if r.rc != st.rc {
        why.push(format!("exit status {} instead of {}", r.rc, st.rc));
    }
    for w in &st.want {
        if !r.out.contains(w.as_str()) {
            why.push(format!("no {w:?} in its output"));
        }
    }
    for w in &st.not {
        if r.out.contains(w.as_str()) {
            why.push(format!("{w:?} in its output"));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// The transcript and the failures, (step number from 1, command, why).
fn transcript(steps: &[Step], ran: &[Option<Ran>]) -> (String, Vec<(usize, String, String)>) {
    let mut t = String::new();
    let mut failures = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        if let Some(n) = st.note {
            if i > 0 {
                t.push('\n');
            }
            t.push_str(&format!("# {n}\n"));
        }
        t.push_str(&format!("$ {}\n", st.cmd));
        let r = ran.get(i).and_then(Option::as_ref);
        if let Some(r) = r {
            if !r.out.is_empty() {
                t.push_str(&r.out);
                t.push('\n');
            }
            if r.rc != 0 {
                let note = if r.rc == st.rc { ", as expected" } else { "" };
                t.push_str(&format!("[exit status {}{note}]\n", r.rc));
            }
        }
        if let Err(why) = verify(st, r) {
            t.push_str(&format!(">>> NOT AS EXPECTED: {why}\n"));
            failures.push((i + 1, st.cmd.clone(), why));
        }
    }
    (t, failures)
}

/// The verdict line and whether all went well.
fn verdict(steps: usize, failures: &[(usize, String, String)], run: &VmRun) -> (String, bool) {
    let mut problems = Vec::new();
    if let Some((n, cmd, why)) = failures.first() {
        let more = match failures.len() {
            1 => String::new(),
            k => format!(" (and {} more)", k - 1),
        };
        problems.push(format!("step {n} `{cmd}`: {why}{more}"));
    }
    let splats = run.splats();
    if !splats.is_empty() {
        problems.push(format!(
            "the kernel log has {} splat line(s), first: {}",
            splats.len(),
            splats[0].trim()
        ));
    }
    if run.timed_out {
        problems.push(format!("the guest timed out after {:.0?}", run.wall));
    } else if run.status.is_none() {
        problems.push("the guest died before the script ended".to_string());
    }
    let time = format!("VM {:.1} s", run.wall.as_secs_f64());
    if problems.is_empty() {
        (
            format!("demo: OK: all {steps} steps as expected, kernel log clean ({time})"),
            true,
        )
    } else {
        (
            format!("demo: FAILED: {} ({time})", problems.join("; ")),
            false,
        )
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("lpatch-demo: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let mut boot = Boot::Pvh;
    let mut show_log = false;
    let mut build = env_path("LPATCH_BUILD").unwrap_or_else(|| repo().join("build/current"));
    let mut cli = env_path("LPATCH_CLI")
        .unwrap_or_else(|| repo().join("crates/target/x86_64-unknown-linux-gnu/release/lpatch"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kaslr" => boot = Boot::Kaslr,
            "--kernel-log" => show_log = true,
            "--build" | "--cli" => {
                let Some(v) = args.next() else {
                    eprint!("lpatch-demo: {a} needs a value\n\n{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--build" {
                    build = v.into();
                } else {
                    cli = v.into();
                }
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprint!("lpatch-demo: unknown argument {a:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    let modules = [
        "kernel/lpatch.ko",
        "samples/livepatch-sample/livepatch-sample.ko",
        "samples/lp-test/lp_test_a.ko",
        "samples/lpt-target/lpt_target.ko",
    ];
    let mut vm = Vm::new().boot(boot);
    for m in modules {
        let p = build.join(m);
        if !p.is_file() {
            return fail(&format!("{} is missing: run `make all`", p.display()));
        }
        vm = vm.ko(p);
    }
    if !cli.is_file() {
        return fail(&format!(
            "{} is missing: run `make all` (it builds the static CLI)",
            cli.display()
        ));
    }
    let release = match kernel_release(&default_kernel_dir()) {
        Ok(r) => r,
        Err(e) => return fail(&format!("{e} (run scripts/setup.sh)")),
    };
    let steps = demo_steps(&release);
    let mode = match boot {
        Boot::Pvh => "PVH boot",
        Boot::Kaslr => "bzImage boot, KASLR on",
    };
    println!(
        "lpatch demo: booting Debian's kernel {release} under qemu (TCG, {mode}, 1 vCPU)...\n"
    );

    let run = match vm
        .file(&cli, "/bin/lpatch")
        .script(&guest_script(&steps))
        .run()
    {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let ran = parse(&run.output, steps.len());
    let (text, failures) = transcript(&steps, &ran);
    print!("{text}");
    if show_log {
        println!(
            "\n---- kernel log ----\n{}---- end of kernel log ----",
            run.kernel_log
        );
    }
    let splats = run.splats();
    if !splats.is_empty() {
        println!("\n---- splat lines in the kernel log ----");
        for l in &splats {
            println!("{l}");
        }
    }
    if !failures.is_empty() && ran.iter().all(Option::is_none) {
        println!("\n---- guest output ----\n{}", run.output);
    }
    let (line, ok) = verdict(steps.len(), &failures, &run);
    println!("\n{line}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_framed_output() {
        let out = "@@@ BEGIN 0\nhello\nworld\n\n@@@ END 0 0\n@@@ BEGIN 1\n\n@@@ END 1 3\n@@@ BEGIN 2\npartial";
        let ran = parse(out, 4);
        assert_eq!(
            ran[0],
            Some(Ran {
                out: "hello\nworld".into(),
                rc: 0
            })
        );
        assert_eq!(
            ran[1],
            Some(Ran {
                out: String::new(),
                rc: 3
            })
        );
        assert_eq!(ran[2], None);
        assert_eq!(ran[3], None);
    }

    #[test]
    fn output_without_final_newline_is_kept_whole() {
        let ran = parse("@@@ BEGIN 0\nno newline\n@@@ END 0 0\n", 1);
        assert_eq!(ran[0].as_ref().unwrap().out, "no newline");
    }

    #[test]
    fn verify_checks_status_and_text() {
        let st = step(None, "x", 1, &["must"], &["never"]);
        let ok = Ran {
            out: "a must b".into(),
            rc: 1,
        };
        assert!(verify(&st, Some(&ok)).is_ok());
        let bad = Ran {
            out: "never".into(),
            rc: 0,
        };
        let why = verify(&st, Some(&bad)).unwrap_err();
        assert!(why.contains("exit status 0 instead of 1"), "{why}");
        assert!(why.contains("no \"must\""), "{why}");
        assert!(why.contains("\"never\" in its output"), "{why}");
        assert!(verify(&st, None).is_err());
    }

    #[test]
    fn transcript_marks_failures() {
        let steps = vec![
            step(Some("part one"), "echo hi", 0, &["hi"], &[]),
            step(None, "false", 1, &[], &[]),
            step(Some("part two"), "cat x", 0, &["x"], &[]),
        ];
        let ran = vec![
            Some(Ran {
                out: "hi".into(),
                rc: 0,
            }),
            Some(Ran {
                out: String::new(),
                rc: 1,
            }),
            Some(Ran {
                out: "y".into(),
                rc: 0,
            }),
        ];
        let (t, failures) = transcript(&steps, &ran);
        assert_eq!(
            t,
            "# part one\n$ echo hi\nhi\n$ false\n[exit status 1, as expected]\n\n# part two\n$ cat x\ny\n>>> NOT AS EXPECTED: no \"x\" in its output\n"
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, 3);
    }

    #[test]
    fn script_frames_every_step() {
        let steps = demo_steps("6.1.0-test");
        let s = guest_script(&steps);
        for i in 0..steps.len() {
            assert!(s.contains(&format!("\nstep {i} '")), "{s}");
        }
        assert!(s.ends_with("true\n"));
    }
}

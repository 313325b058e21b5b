// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-vm run ...`: boots the stock kernel under qemu with a script; see `--help`.

use lpatch_vm::{Boot, Vm};
use std::io::Read;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: lpatch-vm run [OPTIONS] --script FILE

Boots the stock kernel under qemu (TCG, no KVM) with a busybox initramfs and runs
FILE there with busybox sh, as root, in /lib/lpatch. Prints the script's output
(stdout and stderr) on stdout, then on stderr the kernel log's splat lines (warnings,
oopses, lockdep and RCU reports, ...) and a summary with the boot time.

Options:
  --script FILE        the script to run ('-' reads it from stdin)
  --ko FILE            a module, copied to /lib/lpatch/<basename> (repeatable)
  --file HOST:GUEST    a file copied to the absolute guest path GUEST, its mode kept
                       (repeatable)
  --kaslr              boot the bzImage (KASLR on); default: the vmlinux via PVH,
                       twice as fast, KASLR off
  --smp N              vCPUs (default 1; keep 1 when guests run in parallel)
  --memory MIB         guest memory (default $LPATCH_VM_MEMORY, else 1024 for a
                       KASAN kernel, else 512)
  --timeout SECS       kill the guest after SECS (default 120)
  --kernel-dir DIR     the kernel (vmlinux, bzImage); default $LPATCH_KERNEL_DIR,
                       else /var/cache/lpatch/kernel/current
  --append WORDS       extra kernel command-line words
  --qemu-arg ARG       an extra qemu argument, after the fixed ones (repeatable):
                       e.g. --qemu-arg -icount --qemu-arg shift=0,sleep=off
  --show-kernel-log    print the whole kernel log on stderr too
  -h, --help           this text

Exit status: the script's status; 124 if the guest timed out; 125 if it ended
without reporting a status (e.g. a kernel panic); 126 if the script exited 0 but
the kernel log has splats; 2 for bad arguments; 1 if the VM could not be run.

Environment: LPATCH_KERNEL_DIR, LPATCH_VM_MEMORY (see above); LPATCH_VM_KEEP=1
keeps the run's temporary directory (initramfs, serial logs).
";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("lpatch-vm: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => return usage_error("missing command"),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("run") => {}
        Some(other) => return usage_error(&format!("unknown command {other:?}")),
    }

    let mut vm = Vm::new();
    let mut script: Option<String> = None;
    let mut show_log = false;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        // --opt=value and --opt value
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let takes_value = matches!(
            name,
            "--script"
                | "--ko"
                | "--file"
                | "--smp"
                | "--memory"
                | "--timeout"
                | "--kernel-dir"
                | "--append"
                | "--qemu-arg"
        );
        let value = if takes_value {
            match inline.or_else(|| it.next().cloned()) {
                Some(v) => v,
                None => return usage_error(&format!("{name} needs a value")),
            }
        } else {
            if inline.is_some() {
                return usage_error(&format!("{name} takes no value"));
            }
            String::new()
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v:?}"))
        };
        match name {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--script" => script = Some(value),
            "--ko" => vm = vm.ko(&value),
            "--file" => match value.split_once(':') {
                Some((h, g)) if !h.is_empty() && g.starts_with('/') => vm = vm.file(h, g),
                _ => return usage_error(&format!("--file wants HOST:/GUEST/PATH, got {value:?}")),
            },
            "--kaslr" => vm = vm.boot(Boot::Kaslr),
            "--smp" => match number(&value) {
                Ok(n) if (1..=64).contains(&n) => vm = vm.smp(n as u32),
                Ok(_) => return usage_error("--smp: 1 to 64"),
                Err(e) => return usage_error(&e),
            },
            "--memory" => match number(&value) {
                Ok(n) if (64..=65536).contains(&n) => vm = vm.memory(n as u32),
                Ok(_) => return usage_error("--memory: 64 to 65536 MiB"),
                Err(e) => return usage_error(&e),
            },
            "--timeout" => match number(&value) {
                Ok(n) if n > 0 => vm = vm.timeout(n),
                Ok(_) => return usage_error("--timeout must be positive"),
                Err(e) => return usage_error(&e),
            },
            "--kernel-dir" => vm = vm.kernel_dir(&value),
            "--append" => vm = vm.cmdline(&value),
            "--qemu-arg" => vm = vm.qemu_args(&[value]),
            "--show-kernel-log" => show_log = true,
            _ => return usage_error(&format!("unknown option {a:?}")),
        }
    }

    let Some(script) = script else {
        return usage_error("--script is required");
    };
    let text = if script == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("lpatch-vm: reading the script from stdin: {e}");
            return ExitCode::from(1);
        }
        s
    } else {
        match std::fs::read_to_string(&script) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("lpatch-vm: reading {script}: {e}");
                return ExitCode::from(1);
            }
        }
    };

    let run = match vm.script(&text).run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lpatch-vm: {e}");
            return ExitCode::from(1);
        }
    };

    print!("{}", run.output);
    if !run.output.is_empty() && !run.output.ends_with('\n') {
        println!();
    }
    if show_log {
        eprintln!(
            "---- kernel log ----\n{}---- end of kernel log ----",
            run.kernel_log
        );
    }
    let splats = run.splats();
    for l in &splats {
        eprintln!("lpatch-vm: splat: {l}");
    }
    let code: u8 = if run.timed_out {
        124
    } else {
        match run.status {
            None => 125,
            Some(0) if !splats.is_empty() => 126,
            Some(s) => (s & 0xff) as u8,
        }
    };
    let boot = run
        .boot
        .map_or("?".to_string(), |b| format!("{:.1} s", b.as_secs_f64()));
    let guest = run
        .guest_init_secs()
        .map_or("?".to_string(), |s| format!("{s:.1} s"));
    let status = match (run.timed_out, run.status) {
        (true, _) => "timed out".to_string(),
        (false, None) => "no status (the guest died?)".to_string(),
        (false, Some(s)) => format!("status {s}"),
    };
    eprintln!(
        "lpatch-vm: {status}, {} splat line(s); boot {boot} (guest /init at {guest}), wall {:.1} s; exit {code}",
        splats.len(),
        run.wall.as_secs_f64()
    );
    ExitCode::from(code)
}

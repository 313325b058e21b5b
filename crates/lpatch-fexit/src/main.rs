// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-fexit <object.o> <function> <dir>`: attaches the counting fexit program of
//! `bpf/count_exit.bpf.c` (compiled to `object.o`) to a kernel function, as a monitoring
//! agent's BPF program would sit on a function lpatch patches, and keeps it attached until
//! `<dir>/stop` appears. It reports through files, for a guest shell script:
//! - `<dir>/status`: "attached", or "error: ..." (then it exits 1);
//! - `<dir>/hits`: how many times the function returned so far, rewritten every 10 ms;
//! - `<dir>/status` again: "detached" once `stop` was seen and the program is gone.
//!
//! Built static and shipped into the guest by the VM tests (Debian's kernel has the BPF JIT
//! and BTF; the debug kernel has no BPF).

use aya::maps::Array;
use aya::programs::FExit;
use aya::{Btf, Ebpf};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn write(path: &Path, text: &str) {
    // Written whole then renamed, so a reader never sees half a line.
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

fn attach(object: &str, function: &str) -> Result<Ebpf, String> {
    let mut bpf = Ebpf::load_file(object).map_err(|e| format!("loading {object}: {e}"))?;
    let btf = Btf::from_sys_fs().map_err(|e| format!("reading the kernel's BTF: {e}"))?;
    let prog: &mut FExit = bpf
        .program_mut("count_exit")
        .ok_or("no program count_exit in the object")?
        .try_into()
        .map_err(|e| format!("count_exit is not an fexit program: {e}"))?;
    prog.load(function, &btf)
        .map_err(|e| format!("loading the program for {function}: {e:?}"))?;
    prog.attach()
        .map_err(|e| format!("attaching to {function}: {e:?}"))?;
    Ok(bpf)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [object, function, dir] = args.as_slice() else {
        eprintln!("usage: lpatch-fexit <object.o> <function> <dir>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let status = dir.join("status");
    let bpf = match attach(object, function) {
        Ok(b) => b,
        Err(e) => {
            write(&status, &format!("error: {e}\n"));
            eprintln!("lpatch-fexit: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hits: Array<_, u64> = match bpf.map("hits").map(Array::try_from) {
        Some(Ok(m)) => m,
        _ => {
            write(&status, "error: no array map hits in the object\n");
            return ExitCode::FAILURE;
        }
    };
    write(&status, "attached\n");
    loop {
        let n = hits.get(&0, 0).unwrap_or(0);
        write(&dir.join("hits"), &format!("{n}\n"));
        if dir.join("stop").exists() {
            // Dropping the object detaches and unloads the program.
            drop(bpf);
            write(&status, "detached\n");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

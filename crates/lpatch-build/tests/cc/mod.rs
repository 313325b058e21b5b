// SPDX-License-Identifier: GPL-2.0-only
//! Compiling small C sources the way the builder compiles kernel units, for tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The compiler Debian 12 builds its kernel with. The tests need it: they fail
/// (never pass) without it.
pub const GCC: &str = "gcc-12";

/// Kernel-like flags, with the builder's per-function and per-object sections.
pub const FLAGS: &[&str] = &[
    "-c",
    "-O2",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-mcmodel=kernel",
    "-fno-PIE",
    "-fno-pic",
    "-mno-red-zone",
    "-mno-sse",
    "-mno-mmx",
    "-mno-sse2",
    "-fno-strict-aliasing",
    "-fno-common",
    "-fno-asynchronous-unwind-tables",
    "-fno-delete-null-pointer-checks",
    "-pg",
    "-mrecord-mcount",
    "-mfentry",
    "-mindirect-branch=thunk-extern",
    "-mindirect-branch-register",
    "-mfunction-return=thunk-extern",
    "-fno-jump-tables",
    "-fcf-protection=none",
    "-falign-jumps=1",
    "-falign-loops=1",
    "-fno-stack-protector",
    "-nostdinc",
    "-ffreestanding",
    "-std=gnu11",
];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lpatch-build-cc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `src` as `<name>.c` with [`FLAGS`] and returns the object.
pub fn compile(name: &str, src: &str) -> Vec<u8> {
    compile_with(name, src, &[])
}

/// Compiles `src` as `<name>.c` with [`FLAGS`] then `extra`.
pub fn compile_with(name: &str, src: &str, extra: &[&str]) -> Vec<u8> {
    let dir = TempDir::new();
    let c = dir.0.join(format!("{name}.c"));
    let o = dir.0.join(format!("{name}.o"));
    std::fs::write(&c, src).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
    let out = Command::new(GCC)
        .args(FLAGS)
        .args(extra)
        // Relative paths: `__FILE__` is then the same for both builds.
        .current_dir(&dir.0)
        .arg(format!("{name}.c"))
        .arg("-o")
        .arg(format!("{name}.o"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{GCC} is needed to run these tests (the kernel's compiler, Debian package gcc-12): {e}")
        });
    assert!(
        out.status.success(),
        "{GCC} failed on {name}.c:\n{}\n{src}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&o).unwrap_or_else(|e| panic!("{}: {e}", o.display()))
}

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

/// A directory of its own under the system's temporary directory, removed on drop: a small
/// source tree to compile in, as kbuild does (relative paths, so `__FILE__` and the debug
/// info name files as kbuild's builds do).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lpatch-build-cc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Writes `text` to `path` (relative), making its directories.
    pub fn write(&self, path: &str, text: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&self.0))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    /// Runs `gcc-12 FLAGS extra -o obj src` in the directory; returns the object's bytes.
    pub fn compile(&self, src: &str, obj: &str, extra: &[&str]) -> Vec<u8> {
        let out = Command::new(GCC)
            .args(FLAGS)
            .args(extra)
            .args(["-o", obj, src])
            .current_dir(&self.0)
            .output()
            .unwrap_or_else(|e| {
                panic!("{GCC} is needed to run these tests (the kernel's compiler, Debian package gcc-12): {e}")
            });
        assert!(
            out.status.success(),
            "{GCC} failed on {src}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = self.0.join(obj);
        std::fs::read(&o).unwrap_or_else(|e| panic!("{}: {e}", o.display()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `src` as `<name>.c` with [`FLAGS`] and returns the object.
#[allow(dead_code)]
pub fn compile(name: &str, src: &str) -> Vec<u8> {
    compile_with(name, src, &[])
}

/// Compiles `src` as `<name>.c` with [`FLAGS`] then `extra`.
#[allow(dead_code)]
pub fn compile_with(name: &str, src: &str, extra: &[&str]) -> Vec<u8> {
    let dir = TempDir::new();
    dir.write(&format!("{name}.c"), src);
    dir.compile(&format!("{name}.c"), &format!("{name}.o"), extra)
}

// SPDX-License-Identifier: GPL-2.0-only
//! Fake /sys, /proc and kmsg trees in temporary directories, and a fake kernel.

use crate::ops::KernelOps;
use std::cell::RefCell;
use std::ffi::CStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TempTree {
    pub root: PathBuf,
}

impl TempTree {
    pub fn new() -> TempTree {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!(
            "lpatch-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            nanos
        ));
        fs::create_dir_all(&root).unwrap();
        TempTree { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    pub fn write_bytes(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Appends kmsg records to a fake log file.
pub fn log(kmsg: &Path, lines: &[&str]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(kmsg)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

type FinitFn = Box<dyn FnMut() -> Result<(), i32>>;
type DeleteFn = Box<dyn FnMut(&str) -> Result<(), i32>>;
type WriteFn = Box<dyn FnMut(&Path, &str) -> Option<i32>>;

/// A kernel whose answers the test decides. By default every call succeeds, does nothing
/// else, and attribute writes go to the (fake) files.
pub struct FakeOps {
    pub euid: u32,
    pub finit: RefCell<FinitFn>,
    pub delete: RefCell<DeleteFn>,
    /// Returns Some(errno) to fail a write instead of performing it.
    pub write_fail: RefCell<WriteFn>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeOps {
    pub fn new() -> FakeOps {
        FakeOps {
            euid: 0,
            finit: RefCell::new(Box::new(|| Ok(()))),
            delete: RefCell::new(Box::new(|_| Ok(()))),
            write_fail: RefCell::new(Box::new(|_, _| None)),
            calls: RefCell::new(Vec::new()),
        }
    }
    pub fn on_finit(self, f: impl FnMut() -> Result<(), i32> + 'static) -> Self {
        *self.finit.borrow_mut() = Box::new(f);
        self
    }
    pub fn on_delete(self, f: impl FnMut(&str) -> Result<(), i32> + 'static) -> Self {
        *self.delete.borrow_mut() = Box::new(f);
        self
    }
    pub fn on_write(self, f: impl FnMut(&Path, &str) -> Option<i32> + 'static) -> Self {
        *self.write_fail.borrow_mut() = Box::new(f);
        self
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl KernelOps for FakeOps {
    fn finit_module(&self, _file: &File, params: &CStr, flags: i32) -> Result<(), i32> {
        self.calls.borrow_mut().push(format!(
            "finit_module({:?}, {flags})",
            params.to_string_lossy()
        ));
        (self.finit.borrow_mut())()
    }
    fn delete_module(&self, name: &CStr, flags: i32) -> Result<(), i32> {
        let name = name.to_string_lossy().into_owned();
        self.calls
            .borrow_mut()
            .push(format!("delete_module({name}, {flags:#o})"));
        (self.delete.borrow_mut())(&name)
    }
    fn euid(&self) -> u32 {
        self.euid
    }
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        let file = path.file_name().unwrap().to_string_lossy();
        let parent = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        self.calls
            .borrow_mut()
            .push(format!("write({parent}/{file}, {value})"));
        if let Some(e) = (self.write_fail.borrow_mut())(path, value) {
            return Err(io::Error::from_raw_os_error(e));
        }
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
}

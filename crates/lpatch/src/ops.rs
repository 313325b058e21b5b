// SPDX-License-Identifier: GPL-2.0-only
//! What the tool asks of the running kernel besides reading files: module load and unload
//! syscalls and sysfs attribute writes. Tests swap in a fake.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

pub trait KernelOps {
    /// finit_module(2); Err carries the errno.
    fn finit_module(&self, file: &File, params: &CStr, flags: i32) -> Result<(), i32>;
    /// delete_module(2); Err carries the errno.
    fn delete_module(&self, name: &CStr, flags: i32) -> Result<(), i32>;
    /// The effective user id, to tell "not root" from "refused although root".
    fn euid(&self) -> u32;
    /// Writes `value` to a sysfs attribute in one write(2). The kernel's answer to a store
    /// comes back as the write's error.
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
}

/// The real thing.
pub struct Real;

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

impl KernelOps for Real {
    fn finit_module(&self, file: &File, params: &CStr, flags: i32) -> Result<(), i32> {
        let fd: libc::c_int = file.as_raw_fd();
        // SAFETY: fd is open for the duration of the call and params is NUL-terminated.
        let r = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                fd,
                params.as_ptr(),
                flags as libc::c_int,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(last_errno())
        }
    }

    fn delete_module(&self, name: &CStr, flags: i32) -> Result<(), i32> {
        // SAFETY: name is NUL-terminated and outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_delete_module,
                name.as_ptr(),
                flags as libc::c_uint,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(last_errno())
        }
    }

    fn euid(&self) -> u32 {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
    }
}

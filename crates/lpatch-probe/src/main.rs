// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-probe <probe> [args]`: a system call the VM tests need to see a fix's effect
//! from user space, where the guest's busybox has no command for it. Each probe prints one
//! line, `<probe> <result>`: `0` or the errno's name. Linked statically (the guests have
//! no C library), built by `lpatch_vm::static_binary`.

use std::ffi::CString;
use std::process::ExitCode;

/// `FS_IOC_SETFLAGS` and `FS_IMMUTABLE_FL` (include/uapi/linux/fs.h).
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IMMUTABLE_FL: libc::c_long = 0x10;
/// `F_SET_RW_HINT` and `RWH_WRITE_LIFE_SHORT` (include/uapi/linux/fcntl.h).
const F_SET_RW_HINT: libc::c_int = 1024 + 12;
const RWH_WRITE_LIFE_SHORT: u64 = 2;

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::ENOTTY => "ENOTTY".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        e => format!("errno {e}"),
    }
}

fn last_errno() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Makes `path` (a new file) immutable, then asks for a write-life hint on it: what
/// fs/fcntl.c's F_SET_RW_HINT does with an inode nothing may write to.
fn rw_hint_on_immutable(path: &str) -> Result<String, String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a NUL-terminated path; the flags are plain constants.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
    if fd < 0 {
        return Err(format!("creating {path}: {}", last_errno()));
    }
    let flags: libc::c_long = FS_IMMUTABLE_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one long through the pointer, which outlives the call.
    if unsafe { libc::ioctl(fd, FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(format!("making {path} immutable: {}", last_errno()));
    }
    let hint: u64 = RWH_WRITE_LIFE_SHORT;
    // SAFETY: F_SET_RW_HINT reads one u64 through the pointer, which outlives the call.
    let rc = unsafe { libc::fcntl(fd, F_SET_RW_HINT, &hint) };
    let out = if rc == 0 {
        "0".to_string()
    } else {
        last_errno()
    };
    let none: libc::c_long = 0;
    // SAFETY: as above; clears the flag so the file can go.
    unsafe { libc::ioctl(fd, FS_IOC_SETFLAGS, &none) };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    Ok(out)
}

/// Replaces the process's saved auxiliary vector with one pair (prctl PR_SET_MM_AUXV, 16
/// bytes), then reads it back from /proc/self/auxv: what kernel/sys.c's prctl_set_auxv
/// keeps of the old vector, `only-the-pair` (the pair and AT_NULL) or `old-entries-kept`.
fn short_auxv() -> Result<String, String> {
    const AT_PAGESZ: u64 = 6;
    let pair: [u64; 2] = [AT_PAGESZ, 4096];
    // SAFETY: PR_SET_MM_AUXV reads `len` (16) bytes from the address, which is `pair`,
    // alive for the call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_AUXV as libc::c_ulong,
            pair.as_ptr() as libc::c_ulong,
            std::mem::size_of_val(&pair) as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Ok(last_errno());
    }
    let auxv = std::fs::read("/proc/self/auxv").map_err(|e| format!("/proc/self/auxv: {e}"))?;
    Ok(match auxv.len() {
        32 => "only-the-pair".into(),
        n if n > 32 => "old-entries-kept".into(),
        n => format!("{n} bytes"),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["rw-hint-on-immutable", path] => rw_hint_on_immutable(path),
        ["short-auxv"] => short_auxv(),
        _ => Err("usage: lpatch-probe rw-hint-on-immutable FILE | short-auxv".into()),
    };
    match r {
        Ok(v) => {
            println!("{} {v}", args[0]);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lpatch-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

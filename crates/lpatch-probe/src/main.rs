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
        libc::ENODEV => "ENODEV".into(),
        libc::ENXIO => "ENXIO".into(),
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

/// A name of exactly IFNAMSIZ - 1 characters, the longest a device may have.
const LONG_NAME: &[u8; 15] = b"lpatchprobedev1";

fn ifreq_named(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain data (a name and a union of integers and arrays): all zeroes
    // is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    r
}

/// Renames the device `from` to `to` (taking it down first, as a rename needs) and returns
/// its flags from before.
fn rename_device(sock: libc::c_int, from: &[u8], to: &[u8]) -> Result<libc::c_short, String> {
    let mut r = ifreq_named(from);
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of the ifreq, ours for the call.
    if unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut r) } != 0 {
        return Err(format!(
            "flags of {}: {}",
            String::from_utf8_lossy(from),
            last_errno()
        ));
    }
    // SAFETY: the kernel wrote ifru_flags.
    let flags = unsafe { r.ifr_ifru.ifru_flags };
    r.ifr_ifru.ifru_flags = flags & !(libc::IFF_UP as libc::c_short);
    // SAFETY: SIOCSIFFLAGS reads the ifreq.
    if unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &r) } != 0 {
        return Err(format!(
            "taking {} down: {}",
            String::from_utf8_lossy(from),
            last_errno()
        ));
    }
    let mut n = ifreq_named(from);
    // SAFETY: writing a plain array of the union.
    unsafe {
        for (d, s) in n.ifr_ifru.ifru_newname.iter_mut().zip(to) {
            *d = *s as libc::c_char;
        }
    }
    // SAFETY: SIOCSIFNAME reads the ifreq (old name, new name).
    if unsafe { libc::ioctl(sock, libc::SIOCSIFNAME, &n) } != 0 {
        return Err(format!(
            "renaming {}: {}",
            String::from_utf8_lossy(from),
            last_errno()
        ));
    }
    Ok(flags)
}

/// Asks for an ARP entry (SIOCGARP) on a device named by all 16 bytes of `arp_dev`, no NUL:
/// the name of an existing device of 15 characters and one byte more. net/ipv4/arp.c's
/// arp_ioctl looks that name up as given (`ENODEV`: no such device) unless it ends it at
/// the 16th byte first (then the device is found and the entry is not: `ENXIO`). The
/// loopback device carries the long name for the call and gets its name and flags back.
fn arp_long_devname() -> Result<String, String> {
    // SAFETY: plain arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if sock < 0 {
        return Err(format!("socket: {}", last_errno()));
    }
    let flags = rename_device(sock, b"lo", LONG_NAME)?;
    // SAFETY: arpreq is plain data; all zeroes is valid.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([10, 9, 8, 7]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the copy is of plain bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &addr as *const libc::sockaddr_in as *const u8,
            &mut req.arp_pa as *mut libc::sockaddr as *mut u8,
            std::mem::size_of::<libc::sockaddr_in>(),
        )
    };
    for (d, s) in req.arp_dev.iter_mut().zip(LONG_NAME.iter().chain(b"X")) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGARP reads and writes the arpreq, ours for the call.
    let rc = unsafe { libc::ioctl(sock, libc::SIOCGARP, &mut req) };
    let out = if rc == 0 {
        "0".to_string()
    } else {
        last_errno()
    };
    rename_device(sock, LONG_NAME, b"lo")?;
    let mut r = ifreq_named(b"lo");
    r.ifr_ifru.ifru_flags = flags;
    // SAFETY: SIOCSIFFLAGS reads the ifreq: lo's flags as they were.
    if unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &r) } != 0 {
        return Err(format!("restoring lo's flags: {}", last_errno()));
    }
    // SAFETY: `sock` is ours.
    unsafe { libc::close(sock) };
    Ok(out)
}

/// What a patch of getpid (lp_test's repl=5) returns: the pid with this bit set.
const GETPID_PATCHED_BIT: libc::pid_t = 1 << 30;

/// `procs` processes call getpid for `secs` seconds while the test patches and unpatches
/// it: each call must return the old value (the pid) or the new one (the pid with
/// GETPID_PATCHED_BIT), and a process's calls may turn from one to the other only as often
/// as the test changes the patch. Prints the calls of each kind, the calls that returned
/// anything else, and the most turns one process saw.
fn getpid_storm(procs: &str, secs: &str) -> Result<String, String> {
    let procs: usize = procs
        .parse()
        .map_err(|_| format!("bad process count {procs}"))?;
    let secs: u64 = secs.parse().map_err(|_| format!("bad duration {secs}"))?;
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", last_errno()));
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    for _ in 0..procs {
        // SAFETY: the child only calls getpid, write and _exit.
        match unsafe { libc::fork() } {
            -1 => return Err(format!("fork: {}", last_errno())),
            0 => {
                // SAFETY: getpid and nice have no preconditions. Niced, the callers leave
                // the test's shell (and the core's thread) the CPU when they want it. A
                // child that starts late may see the patched value first: a pid never has
                // that bit (pid_max is at most 2^22), so it is taken off.
                let pid = unsafe {
                    libc::nice(19);
                    libc::getpid()
                } & !GETPID_PATCHED_BIT;
                let (mut old, mut new, mut other, mut turns) = (0u64, 0u64, 0u64, 0u64);
                let mut last = None;
                while std::time::Instant::now() < end {
                    for _ in 0..1000 {
                        // SAFETY: as above.
                        let r = unsafe { libc::getpid() };
                        let patched = if r == pid {
                            old += 1;
                            false
                        } else if r == pid | GETPID_PATCHED_BIT {
                            new += 1;
                            true
                        } else {
                            other += 1;
                            continue;
                        };
                        turns += (last.is_some_and(|l| l != patched)) as u64;
                        last = Some(patched);
                    }
                }
                let line = format!("{old} {new} {other} {turns}\n");
                // SAFETY: a write of a short buffer (atomic on a pipe) and the child's exit.
                unsafe {
                    libc::write(fds[1], line.as_ptr().cast(), line.len());
                    libc::_exit(0);
                }
            }
            _ => {}
        }
    }
    // SAFETY: our copy of the write end; the children hold theirs until they exit.
    unsafe { libc::close(fds[1]) };
    let mut out = String::new();
    {
        use std::io::Read;
        use std::os::fd::FromRawFd;
        // SAFETY: fds[0] is the read end, owned from here on.
        let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        f.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    for _ in 0..procs {
        // SAFETY: reaps any child.
        unsafe { libc::wait(std::ptr::null_mut()) };
    }
    let (mut old, mut new, mut other, mut turns, mut seen) = (0u64, 0u64, 0u64, 0u64, 0);
    for l in out.lines() {
        let v: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
        if let [o, n, x, t] = v[..] {
            old += o;
            new += n;
            other += x;
            turns = turns.max(t);
            seen += 1;
        }
    }
    Ok(format!(
        "procs={seen} old={old} new={new} other={other} most-turns={turns}"
    ))
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
        ["arp-long-devname"] => arp_long_devname(),
        ["getpid-storm", procs, secs] => getpid_storm(procs, secs),
        _ => Err(
            "usage: lpatch-probe rw-hint-on-immutable FILE | short-auxv | arp-long-devname | getpid-storm PROCS SECS"
                .into(),
        ),
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

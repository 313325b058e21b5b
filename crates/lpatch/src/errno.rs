// SPDX-License-Identifier: GPL-2.0-only
//! Error numbers in words.

use std::io;

/// The symbolic name of an errno value ("EBUSY"), or "errno N".
pub fn name(e: i32) -> String {
    let s = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EBADMSG => "EBADMSG",
        524 => "ENOTSUPP",
        _ => return format!("errno {e}"),
    };
    s.to_string()
}

/// The C library's text for an errno value, without Rust's " (os error N)" suffix.
pub fn strerror(e: i32) -> String {
    if e == 524 {
        // Kernel-internal ENOTSUPP leaks to user space now and then; libc has no text for it.
        return "Operation is not supported".to_string();
    }
    let s = io::Error::from_raw_os_error(e).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// "EBUSY (Device or resource busy)".
pub fn describe(e: i32) -> String {
    format!("{} ({})", name(e), strerror(e))
}

/// Same as [`describe`] for an io::Error, which may carry no errno.
pub fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => describe(n),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_words() {
        assert_eq!(name(libc::EBUSY), "EBUSY");
        assert_eq!(name(12345), "errno 12345");
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(describe(libc::EEXIST), "EEXIST (File exists)");
        assert!(describe(524).starts_with("ENOTSUPP"));
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(describe_io(&e), "EACCES (Permission denied)");
        let e = io::Error::other("boom");
        assert_eq!(describe_io(&e), "boom");
    }
}

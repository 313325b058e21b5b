//! Kernel log output: `pr_info!`/`pr_err!`/`pr_warn!` format into a fixed stack buffer (no
//! allocation, so logging works when memory is short) and hand the text to printk.

use super::ffi;
use core::fmt::{self, Write};

/// printk levels as the kernel's KERN_* prefixes encode them ("\x01" + digit).
#[derive(Clone, Copy)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// A formatting sink of bounded size: what does not fit is cut and marked with "...".
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
    truncated: bool,
}

impl LineBuf {
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; 256],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        let room = (self.buf.len() - 3).saturating_sub(self.len);
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.truncated = true;
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
        }
        Ok(())
    }
}

/// Prints one line "lpatch: <text>" at the given level.
pub fn print(level: Level, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    let fmt: &[u8] = match level {
        Level::Err => b"\x013lpatch: %.*s\n\0",
        Level::Warning => b"\x014lpatch: %.*s\n\0",
        Level::Notice => b"\x015lpatch: %.*s\n\0",
        Level::Info => b"\x016lpatch: %.*s\n\0",
    };
    let bytes = line.as_bytes();
    // SAFETY: fmt is NUL-terminated and its one conversion, %.*s, takes an int length and a
    // pointer to that many readable bytes, which `bytes` provides (len ≤ 256 fits an int).
    unsafe {
        ffi::_printk(
            fmt.as_ptr() as *const core::ffi::c_char,
            bytes.len() as core::ffi::c_int,
            bytes.as_ptr(),
        );
    }
}

/// Prints one error line "lpatch: <symbol of ip>: <text>" (the kernel names the symbol).
pub fn err_at(ip: usize, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    let bytes = line.as_bytes();
    // SAFETY: the format is NUL-terminated; %ps takes a pointer it only looks up in
    // kallsyms (any value is safe), %.*s an int length and that many readable bytes.
    unsafe {
        ffi::_printk(
            c"\x013lpatch: %ps: %.*s\n".as_ptr(),
            ip as *const core::ffi::c_void,
            bytes.len() as core::ffi::c_int,
            bytes.as_ptr(),
        );
    }
}

#[macro_export]
macro_rules! pr_info {
    ($($arg:tt)*) => { $crate::kernel::print::print($crate::kernel::print::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! pr_notice {
    ($($arg:tt)*) => { $crate::kernel::print::print($crate::kernel::print::Level::Notice, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! pr_warn {
    ($($arg:tt)*) => { $crate::kernel::print::print($crate::kernel::print::Level::Warning, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! pr_err {
    ($($arg:tt)*) => { $crate::kernel::print::print($crate::kernel::print::Level::Err, format_args!($($arg)*)) };
}

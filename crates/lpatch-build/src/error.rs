// SPDX-License-Identifier: GPL-2.0-only
//! What can stop a build, each kind with the words a user needs to act on it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The diff: unreadable, empty, malformed, or not applying to the kernel's source.
    Patch(String),
    /// The target kernel: unknown version, source or config not found, a mismatch.
    Target(String),
    /// A tool or package this machine lacks, or one that is not the one the kernel used.
    Tool(String),
    /// Compiling a translation unit failed (the message holds the compiler's last lines).
    Compile(String),
    /// Comparing the two objects of a unit failed.
    Compare(String),
    /// The diff changes what a live patch cannot carry: one line per cause, each naming
    /// the file, the function or variable, and why.
    Refused(String),
    /// Reading or writing files, running commands, disk space.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Patch(m)
            | Error::Target(m)
            | Error::Tool(m)
            | Error::Compile(m)
            | Error::Compare(m)
            | Error::Refused(m)
            | Error::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// An I/O error on `what` (a path or an action), as an `Error::Io`.
pub fn io(what: impl fmt::Display, e: std::io::Error) -> Error {
    Error::Io(format!("{what}: {e}"))
}

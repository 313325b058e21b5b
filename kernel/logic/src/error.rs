//! Errors of the core: a positive errno inside Rust, a negative one at the C boundary.

use crate::fallible::AllocError;
use core::ffi::c_int;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(c_int);

impl Error {
    pub const ENOENT: Error = Error(2);
    pub const ENOEXEC: Error = Error(8);
    pub const EFAULT: Error = Error(14);
    pub const ENOMEM: Error = Error(12);
    pub const EBUSY: Error = Error(16);
    pub const EEXIST: Error = Error(17);
    pub const ENODEV: Error = Error(19);
    pub const EINVAL: Error = Error(22);

    /// A negative errno returned by a kernel function, or Ok for 0 and positive values.
    pub fn check(ret: c_int) -> Result<c_int> {
        if ret < 0 {
            Err(Error(ret.checked_neg().unwrap_or(22)))
        } else {
            Ok(ret)
        }
    }

    /// The value C callers get: -errno.
    pub fn to_errno(self) -> c_int {
        -self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            2 => "ENOENT",
            8 => "ENOEXEC",
            14 => "EFAULT",
            12 => "ENOMEM",
            16 => "EBUSY",
            17 => "EEXIST",
            19 => "ENODEV",
            22 => "EINVAL",
            _ => "error",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "-{} ({})", self.name(), self.0)
    }
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Error {
        Error::ENOMEM
    }
}

pub type Result<T = ()> = core::result::Result<T, Error>;

/// Maps a result to what C expects: 0 or -errno.
pub fn to_c(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

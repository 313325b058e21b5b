//! Fallible collections: `alloc` is built without its infallible (OOM-panicking) APIs
//! (`--cfg no_global_oom_handling`), so growing a Vec or String goes through these helpers,
//! which reserve first and fail with [`AllocError`] instead of panicking.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Allocation failed (maps to -ENOMEM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

/// Appends one element, or fails when memory is short.
pub fn try_push<T>(v: &mut Vec<T>, x: T) -> Result<(), AllocError> {
    v.try_reserve(1).map_err(|_| AllocError)?;
    v.push_within_capacity(x).map(|_| ()).map_err(|_| AllocError)
}

/// Appends a string, or fails when memory is short.
pub fn try_push_str(s: &mut String, add: &str) -> Result<(), AllocError> {
    s.try_reserve(add.len()).map_err(|_| AllocError)?;
    // SAFETY: `add` is valid UTF-8, so the string stays valid UTF-8; the capacity for
    // add.len() more bytes was reserved just above, so the copy stays inside the buffer.
    unsafe {
        let v = s.as_mut_vec();
        let len = v.len();
        core::ptr::copy_nonoverlapping(add.as_ptr(), v.as_mut_ptr().add(len), add.len());
        v.set_len(len + add.len());
    }
    Ok(())
}

/// Copies a string into the heap.
pub fn try_string(s: &str) -> Result<String, AllocError> {
    let mut out = String::new();
    try_push_str(&mut out, s)?;
    Ok(out)
}

struct TryWriter<'a> {
    out: &'a mut String,
}

impl Write for TryWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        try_push_str(self.out, s).map_err(|_| fmt::Error)
    }
}

/// Formats into a new heap string, or fails without panicking when memory is short.
pub fn try_format(args: fmt::Arguments<'_>) -> Result<String, AllocError> {
    let mut out = String::new();
    TryWriter { out: &mut out }.write_fmt(args).map_err(|_| AllocError)?;
    Ok(out)
}

/// Inserts at `index` (≤ len), or fails when memory is short.
pub fn try_insert<T>(v: &mut Vec<T>, index: usize, x: T) -> Result<(), AllocError> {
    if index > v.len() {
        return Err(AllocError);
    }
    try_push(v, x)?;
    v[index..].rotate_right(1);
    Ok(())
}

/// A heap box, or an error when memory is short.
pub fn try_box<T>(x: T) -> Result<alloc::boxed::Box<T>, AllocError> {
    alloc::boxed::Box::try_new(x).map_err(|_| AllocError)
}

//! Fallible collections: in the kernel, `alloc` is built without its infallible
//! (OOM-panicking) APIs (`--cfg no_global_oom_handling`), so growing a Vec or String goes
//! through these helpers, which reserve first and fail with [`AllocError`] instead of
//! panicking. On the host (the tests' fake kernel) the same helpers run on stable Rust.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Allocation failed (maps to -ENOMEM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

/// Appends one element into capacity reserved before: never allocates; fails (giving `x`
/// back) only when no capacity is left, which callers rule out by reserving first.
pub fn push_reserved<T>(v: &mut Vec<T>, x: T) -> Result<(), T> {
    if v.len() == v.capacity() {
        return Err(x);
    }
    #[cfg(no_global_oom_handling)]
    {
        v.push_within_capacity(x).map(|_| ())
    }
    #[cfg(not(no_global_oom_handling))]
    {
        v.push(x); // within capacity (checked above): no allocation
        Ok(())
    }
}

/// Appends one element, or fails when memory is short.
pub fn try_push<T>(v: &mut Vec<T>, x: T) -> Result<(), AllocError> {
    v.try_reserve(1).map_err(|_| AllocError)?;
    push_reserved(v, x).map_err(|_| AllocError)
}

/// Appends a string, or fails (leaving `s` as it was) when memory is short.
pub fn try_push_str(s: &mut String, add: &str) -> Result<(), AllocError> {
    s.try_reserve(add.len()).map_err(|_| AllocError)?;
    let mut bytes = core::mem::take(s).into_bytes();
    for &b in add.as_bytes() {
        // Reserved above: cannot fail.
        let _ = push_reserved(&mut bytes, b);
    }
    // Valid UTF-8 followed by valid UTF-8 is valid UTF-8: this cannot fail either.
    *s = String::from_utf8(bytes).map_err(|_| AllocError)?;
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

//! Allocation failure on demand, for the core's logic on the host: a global allocator (a
//! test binary installs it with `#[global_allocator]`) that fails the n-th allocation the
//! core makes on this thread once armed, as the kernel's fail-nth does for a task. The
//! fake kernel's own allocations (its bookkeeping, its log) are never counted: each of its
//! methods suspends the count while it runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations still to pass before the one that fails; 0: disarmed.
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    /// Whether the armed failure happened.
    static FIRED: Cell<bool> = const { Cell::new(false) };
    /// Whether every allocation after the armed one fails too.
    static STICKY: Cell<bool> = const { Cell::new(false) };
    /// Nesting depth of [`Suspended`] sections.
    static SUSPENDED: Cell<u32> = const { Cell::new(0) };
}

/// The allocator: `System`, but for the failure armed on the calling thread.
pub struct FailNth;

fn should_fail() -> bool {
    if SUSPENDED.with(Cell::get) > 0 {
        return false;
    }
    COUNTDOWN.with(|c| match c.get() {
        0 => FIRED.with(Cell::get) && STICKY.with(Cell::get),
        1 => {
            c.set(0);
            FIRED.with(|f| f.set(true));
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    })
}

// SAFETY: every call is passed on to System unchanged, or fails with a null pointer as
// GlobalAlloc allows; the counters are thread-local cells, which allocate nothing.
unsafe impl GlobalAlloc for FailNth {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System (through alloc or realloc above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Fails the `n`-th allocation (1-based) this thread makes from now, outside suspended
/// sections.
pub fn arm(n: u64) {
    FIRED.with(|f| f.set(false));
    STICKY.with(|f| f.set(false));
    COUNTDOWN.with(|c| c.set(n));
}

/// Fails the `n`-th allocation and every one after it (memory gone for good): what must
/// still succeed then — a rollback, a removal — allocates nothing.
pub fn arm_from(n: u64) {
    arm(n);
    STICKY.with(|f| f.set(true));
}

/// Disarms; whether the armed failure happened.
pub fn disarm() -> bool {
    COUNTDOWN.with(|c| c.set(0));
    STICKY.with(|f| f.set(false));
    FIRED.with(Cell::get)
}

/// While it lives, this thread's allocations are not counted (the fake kernel's own).
pub struct Suspended(());

impl Suspended {
    pub fn new() -> Suspended {
        SUSPENDED.with(|s| s.set(s.get() + 1));
        Suspended(())
    }
}

impl Default for Suspended {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Suspended {
    fn drop(&mut self) {
        SUSPENDED.with(|s| s.set(s.get() - 1));
    }
}

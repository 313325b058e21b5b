//! A pointer published to lockless readers: writers swap it under the core's lock and free
//! the old value only after a grace period; readers (the ftrace handler, preemption
//! disabled) follow it without locks.
//!
//! The grace period is RCU-sched's, enforced rather than observed: every online CPU is made
//! to schedule ([`sync_cpus`]). A reader runs with preemption disabled from before it loads
//! the pointer until it is done with the value, and a CPU schedules only outside such a
//! section, so once each CPU has scheduled after the swap no reader can hold the old value.
//! `synchronize_rcu()` is not enough: it does not wait for CPUs where RCU is not watching
//! (the idle loop between `ct_idle_enter()` and `ct_idle_exit()`, the entry code), and on
//! 6.1 functions called there — `arch_cpu_idle()`, a cpuidle driver's `enter()`,
//! `tick_check_broadcast_expired()` in `cpu_idle_poll()` — are traceable, so patchable: a
//! handler running there could read a table freed under it.

use super::sync::sync_cpus;
use alloc::boxed::Box;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

pub struct RcuPtr<T> {
    p: AtomicPtr<T>,
}

/// Proof that the caller is in a read-side section (preemption disabled).
pub struct RcuReader(());

impl RcuReader {
    /// # Safety
    /// The caller must have preemption disabled until the token and anything read through
    /// it are gone (the ftrace handler's recursion lock does this).
    pub unsafe fn new() -> RcuReader {
        RcuReader(())
    }
}

impl<T> RcuPtr<T> {
    pub const fn null() -> Self {
        RcuPtr {
            p: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The current value, for a reader.
    pub fn get<'a>(&'a self, _reader: &'a RcuReader) -> Option<&'a T> {
        let p = self.p.load(Ordering::Acquire);
        // SAFETY: a published value is freed only after a grace period that follows its
        // replacement; the reader token proves we are inside a read-side section.
        unsafe { p.as_ref() }
    }

    /// The current value, for a writer (the core's lock serialises writers).
    pub fn get_locked(&self) -> Option<&T> {
        // SAFETY: only writers free values, and they hold the core's lock, as does the caller.
        unsafe { self.p.load(Ordering::Acquire).as_ref() }
    }

    /// Publishes a new value; the old one comes back as [`Retired`], to be freed after a grace
    /// period.
    pub fn replace(&self, new: Option<Box<T>>) -> Retired<T> {
        let newp = new.map_or(ptr::null_mut(), Box::into_raw);
        let old = self.p.swap(newp, Ordering::AcqRel);
        Retired(old)
    }
}

impl<T> RcuPtr<T> {
    /// Publishes again a value retired by `replace` (undoing it); returns what it replaces.
    pub fn put_back(&self, old: Retired<T>) -> Retired<T> {
        let p = old.0;
        core::mem::forget(old);
        Retired(self.p.swap(p, Ordering::AcqRel))
    }
}

/// A value unpublished from an [`RcuPtr`]: readers may still see it until a grace period
/// has passed. Dropping it waits for that grace period, then frees it.
#[must_use]
pub struct Retired<T>(*mut T);

impl<T> Retired<T> {
    /// Frees several retired values after one shared grace period.
    pub fn free_after_grace(self) {
        drop(self)
    }
}

impl<T> Drop for Retired<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            sync_cpus();
            // SAFETY: the pointer came from Box::into_raw in `replace`; after every CPU
            // scheduled no reader can still hold it (see the module's documentation).
            drop(unsafe { Box::from_raw(self.0) });
        }
    }
}

// SAFETY: the pointee is only shared with readers through the RCU protocol above.
unsafe impl<T: Send + Sync> Sync for RcuPtr<T> {}
unsafe impl<T: Send> Send for Retired<T> {}

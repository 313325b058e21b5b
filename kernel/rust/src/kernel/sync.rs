//! The core's one lock (a kernel mutex defined in the C glue) and the state it guards.

use super::ffi;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// Data guarded by the glue's `lpatch_mutex`. There is one such mutex, so there must be only
/// one `CoreLock` (the core's state, in `crate::entry`).
pub struct CoreLock<T> {
    data: UnsafeCell<T>,
}

// SAFETY: every access to the data goes through a Guard, which holds the mutex.
unsafe impl<T: Send> Sync for CoreLock<T> {}

impl<T> CoreLock<T> {
    pub const fn new(data: T) -> Self {
        CoreLock {
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the mutex (may sleep: process context only).
    pub fn lock(&self) -> Guard<'_, T> {
        // SAFETY: the mutex is statically initialised in the glue; callers are in process
        // context (module init/exit, API calls, sysfs, the module notifier).
        unsafe { ffi::lpatch_lock() };
        Guard { lock: self }
    }
}

pub struct Guard<'a, T> {
    lock: &'a CoreLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mutex is held for the guard's lifetime.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the mutex is held for the guard's lifetime, and &mut self is unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the mutex in `lock`.
        unsafe { ffi::lpatch_unlock() };
    }
}

/// Waits until no task can still be running code it entered before the call, short of code
/// that sleeps voluntarily: every CPU schedules ([`sync_cpus`]: ftrace handlers, interrupts,
/// whatever runs with preemption disabled, idle CPUs included), then an RCU-tasks grace
/// period (a task preempted anywhere, until it switches voluntarily or runs in user mode).
pub fn synchronize_tasks() {
    // SAFETY: may sleep; called in process context only.
    unsafe { ffi::lpatch_synchronize_tasks() };
}

/// Waits until every online CPU has scheduled: every ftrace handler call (preemption
/// disabled throughout) that began before has returned, on every CPU — including the ones
/// in the idle loop or on the entry paths, where RCU is not watching and
/// `synchronize_rcu()` would not wait for them. Never allocates.
pub fn sync_cpus() {
    // SAFETY: may sleep; called in process context, with the core's lock held (the glue's
    // works have one user at a time).
    unsafe { ffi::lpatch_sync_cpus() };
}

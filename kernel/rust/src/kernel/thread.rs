//! The core's kernel thread and the handshake by which other tasks hand it a request: one
//! requester at a time (a mutex), which kicks the thread and waits for its answer.

use super::ffi;
use core::ffi::{c_int, c_long, c_void};
use lpatch_logic::error::{Error, Result};

/// A running kernel thread of the glue's (there is one): stopped when dropped.
pub struct Thread(*mut c_void);

// SAFETY: a task pointer the kernel keeps valid until kthread_stop (in drop).
unsafe impl Send for Thread {}

impl Thread {
    /// Starts the thread running `f`, which must return once [`should_stop`] says so.
    pub fn start(f: unsafe extern "C" fn(*mut c_void) -> c_int) -> Result<Thread> {
        // SAFETY: kthread_run with a function of the right type and no data.
        let t = unsafe { ffi::lpatch_thread_start(Some(f)) };
        let v = t as isize;
        if t.is_null() || (-4095..0).contains(&v) {
            return Err(Error::check(v as c_int).err().unwrap_or(Error::ENOMEM));
        }
        Ok(Thread(t))
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: the thread started in `start`; kthread_stop wakes it and waits for its
        // function to return.
        unsafe { ffi::lpatch_thread_stop(self.0) };
    }
}

/// Whether the calling (core) thread must return.
pub fn should_stop() -> bool {
    // SAFETY: reads the calling kthread's flag.
    unsafe { ffi::lpatch_thread_should_stop() }
}

/// Wakes the core's thread (a request waits, or it must stop).
pub fn kick() {
    // SAFETY: sets a flag and wakes the glue's wait queue.
    unsafe { ffi::lpatch_thread_kick() };
}

/// Sleeps in the core's thread until kicked, stopped, or `ms` milliseconds pass (None: no
/// time limit).
pub fn wait(ms: Option<u32>) {
    // SAFETY: sleeps on the glue's wait queue (process context, the core's thread).
    unsafe { ffi::lpatch_thread_wait(ms.map_or(-1, c_long::from)) };
}

/// A requester's turn: while it lives no other task hands the thread a request.
pub struct Turn(());

impl Turn {
    /// Waits for the turn (may sleep).
    pub fn take() -> Turn {
        // SAFETY: the glue's static mutex; process context.
        unsafe {
            ffi::lpatch_request_lock();
            ffi::lpatch_request_prepare();
        }
        Turn(())
    }

    /// Waits until the thread answers ([`answered`]).
    pub fn wait_answer(&self) {
        // SAFETY: the completion was prepared when the turn was taken.
        unsafe { ffi::lpatch_request_wait() };
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // SAFETY: taken in `take` by this task.
        unsafe { ffi::lpatch_request_unlock() };
    }
}

/// The thread has put its answer where the requester reads it.
pub fn answered() {
    // SAFETY: completes the glue's static completion.
    unsafe { ffi::lpatch_request_complete() };
}

/// The calling task's fault-injection countdown (fail-nth), taken off it: a request carries
/// it to the core's thread, and the answer brings back what is left ([`fail_nth_put`]).
pub fn fail_nth_take() -> u32 {
    // SAFETY: reads and clears a field of the calling task.
    unsafe { ffi::lpatch_fail_nth_take() }
}

/// Gives the calling task a fault-injection countdown.
pub fn fail_nth_put(n: u32) {
    // SAFETY: writes a field of the calling task.
    unsafe { ffi::lpatch_fail_nth_put(n) }
}

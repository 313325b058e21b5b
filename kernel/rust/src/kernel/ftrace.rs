//! The glue's single ftrace_ops (IPMODIFY, permanent): its filter, its registration, and
//! the redirection table its handler reads.

use super::ffi;
use super::rcu::RcuPtr;
use core::ffi::{c_int, c_uint, c_ulong};
use lpatch_logic::error::{Error, Result};
use lpatch_logic::seam::Table;

/// The redirection table the handler reads (published by [`super::real::Real`]).
pub static TABLE: RcuPtr<Table> = RcuPtr::null();

/// Adds call sites to the ops' filter (`reset`: replace the whole filter with them, in one
/// update). ftrace refuses an address it has no call site for (EINVAL).
pub fn filter_add(ips: &mut [usize], reset: bool) -> Result {
    let n = c_uint::try_from(ips.len()).map_err(|_| Error::EINVAL)?;
    // SAFETY: ips is a valid array of n addresses; ftrace copies what it needs.
    Error::check(unsafe { ffi::lpatch_ftrace_filter(ips.as_mut_ptr() as *mut c_ulong, n, 0, reset as c_int) })
        .map(|_| ())
}

/// The glue's ftrace_ops, registered for the core's lifetime with the glue's anchor
/// function in its filter (so the filter is never empty); unregistered on drop.
pub struct OpsReg(());

impl OpsReg {
    /// `anchor_ip`: the anchor's ftrace call site.
    pub fn register(anchor_ip: usize) -> Result<OpsReg> {
        filter_add(&mut [anchor_ip], true)?;
        // SAFETY: registers the glue's static ftrace_ops, whose filter was just set.
        Error::check(unsafe { ffi::lpatch_ftrace_register() })?;
        Ok(OpsReg(()))
    }
}

impl Drop for OpsReg {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; ftrace waits for running handlers before
        // returning, so nothing calls into the core afterwards.
        unsafe { ffi::lpatch_ftrace_unregister() };
    }
}

/// The glue's anchor function (never called).
pub fn anchor_addr() -> usize {
    ffi::lpatch_ftrace_anchor as *const () as usize
}

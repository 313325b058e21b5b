//! The glue's single ftrace_ops (IPMODIFY, PERMANENT while registered): its filter, its
//! registration, and the redirection table its handler reads.

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

/// The glue's ftrace_ops, registered: its handler runs for the call sites of its filter
/// (which the caller set, not empty). Unregistered by [`OpsReg::unregister`], or on drop.
pub struct OpsReg(());

impl OpsReg {
    pub fn register() -> Result<OpsReg> {
        // SAFETY: registers the glue's static ftrace_ops; the caller set its filter.
        Error::check(unsafe { ffi::lpatch_ftrace_register() })?;
        Ok(OpsReg(()))
    }

    /// Unregisters; on failure the ops stays registered and comes back.
    pub fn unregister(self) -> core::result::Result<(), (OpsReg, Error)> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: registered (we hold the registration); ftrace waits for running handlers
        // before returning, so nothing calls into the core afterwards.
        match Error::check(unsafe { ffi::lpatch_ftrace_unregister() }) {
            Ok(_) => Ok(()),
            Err(e) => Err((core::mem::ManuallyDrop::into_inner(this), e)),
        }
    }
}

impl Drop for OpsReg {
    fn drop(&mut self) {
        // SAFETY: as in `unregister`.
        unsafe { ffi::lpatch_ftrace_unregister() };
    }
}

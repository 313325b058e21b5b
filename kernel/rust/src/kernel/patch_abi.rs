//! The C API of lpatch.h: the reading of the author's structs into owned descriptions (the core keeps no pointer into them but the
//! patch's own address, used as its identity).

use super::ffi;
use super::modules::ModPtr;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, CStr};
use lpatch_logic::error::{Error, Result};
use lpatch_logic::fallible::{try_push, try_string};
use lpatch_logic::seam::{FuncDesc, ObjectDesc, PatchDesc};

/// An upper bound on what one patch may list, so a missing terminator fails cleanly
/// instead of walking memory until it faults.
const MAX_OBJECTS: usize = 1024;
const MAX_FUNCS: usize = 65536;
const MAX_NAME: usize = 512;

fn copy_name(p: *const c_char, what: &str) -> Result<String> {
    // SAFETY: p is non-null (checked by callers) and points to the author's string.
    let s = unsafe { CStr::from_ptr(p) };
    let bytes = s.to_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME {
        pr_err!("{} name is empty or longer than {} bytes", what, MAX_NAME);
        return Err(Error::EINVAL);
    }
    let s = core::str::from_utf8(bytes).map_err(|_| {
        pr_err!("{} name is not valid UTF-8", what);
        Error::EINVAL
    })?;
    Ok(try_string(s)?)
}

/// Reads and validates the author's patch. Every NULL the API forbids is -EINVAL, logged.
///
/// # Safety
/// `p` is NULL or points to an `lp_patch` whose arrays and strings stay valid for the call
/// (what lpatch.h asks of a patch module calling `lp_register_patch`).
pub unsafe fn read_patch(p: *const ffi::lp_patch) -> Result<PatchDesc<ModPtr>> {
    if p.is_null() {
        pr_err!("register: NULL patch");
        return Err(Error::EINVAL);
    }
    // SAFETY: p is a non-null pointer the patch module passed to us, to its lp_patch.
    let patch = unsafe { &*p };
    // SAFETY: patch.mod is the author's THIS_MODULE, alive while its init/exit runs us.
    let Some(module) = (unsafe { ModPtr::from_raw(patch.mod_) }) else {
        pr_err!("register: patch->mod is NULL (set it to THIS_MODULE)");
        return Err(Error::EINVAL);
    };
    let mut namebuf = [0u8; 64];
    let name = try_string(module.name(&mut namebuf))?;
    if patch.objs.is_null() {
        pr_err!("register: patch {}: objs is NULL", name);
        return Err(Error::EINVAL);
    }
    let mut objects = Vec::new();
    for i in 0..=MAX_OBJECTS {
        if i == MAX_OBJECTS {
            pr_err!(
                "patch {}: more than {} objects, or objs lacks its terminator",
                name,
                MAX_OBJECTS
            );
            return Err(Error::EINVAL);
        }
        // SAFETY: the array is terminated by an entry with funcs == NULL; we stop there.
        let o = unsafe { &*patch.objs.add(i) };
        if o.funcs.is_null() {
            if o.name.is_null() {
                break;
            }
            let oname = copy_name(o.name, "object")?;
            pr_err!("patch {}: object {} has funcs == NULL", name, oname);
            return Err(Error::EINVAL);
        }
        let oname = if o.name.is_null() {
            None
        } else {
            Some(copy_name(o.name, "object")?)
        };
        let mut funcs = Vec::new();
        for j in 0..=MAX_FUNCS {
            if j == MAX_FUNCS {
                pr_err!(
                    "patch {}: more than {} functions in an object, or a missing terminator",
                    name,
                    MAX_FUNCS
                );
                return Err(Error::EINVAL);
            }
            // SAFETY: terminated by an entry with old_name == NULL; we stop there.
            let f = unsafe { &*o.funcs.add(j) };
            if f.old_name.is_null() {
                break;
            }
            let old_name = copy_name(f.old_name, "function")?;
            if f.new_func.is_null() {
                pr_err!("patch {}: function {} has new_func == NULL", name, old_name);
                return Err(Error::EINVAL);
            }
            try_push(
                &mut funcs,
                FuncDesc {
                    old_name,
                    new_func: f.new_func as usize,
                    old_addr: f.old_addr as usize,
                    old_sympos: f.old_sympos as usize,
                },
            )?;
        }
        try_push(&mut objects, ObjectDesc { name: oname, funcs })?;
    }
    Ok(PatchDesc {
        key: p as usize,
        module,
        name,
        objects,
    })
}

/// Marks the kernel live-patched (TAINT_LIVEPATCH, 'K').
pub fn taint_livepatch() {
    // SAFETY: add_taint only sets a bit (lockdep stays valid).
    unsafe { ffi::add_taint(ffi::TAINT_LIVEPATCH, ffi::lockdep_ok::LOCKDEP_STILL_OK) }
}

//! Kernel modules as the core sees them: pointers compared by identity, references that
//! keep a module loaded, finding a live module by name, and the module notifier.

use super::ffi;
use super::kallsyms::Kallsyms;
use core::ffi::CStr;
use lpatch_logic::error::{Error, Result};
use lpatch_logic::seam::ModuleRef;

/// A module's identity. Only compared and used to take references; the core never reads
/// through it without holding a reference or being inside that module's notifier call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ModPtr(*mut ffi::module);

// SAFETY: a ModPtr is an identity; dereferences happen only as documented above.
unsafe impl Send for ModPtr {}

impl ModPtr {
    pub fn as_ptr(self) -> *mut ffi::module {
        self.0
    }

    /// # Safety
    /// `p` must point to a struct module that is alive for as long as the result is used
    /// to take references or read the name.
    pub unsafe fn from_raw(p: *mut ffi::module) -> Option<ModPtr> {
        (!p.is_null()).then_some(ModPtr(p))
    }

    /// The module's name (copied into `buf`; names are at most 56 bytes).
    pub fn name(self, buf: &mut [u8; 64]) -> &str {
        // SAFETY: the pointer is alive (see the type's contract); `name` is a NUL-terminated
        // char array inside struct module.
        let name = unsafe { &(*self.0).name };
        let mut n = 0;
        for (i, &c) in name.iter().enumerate() {
            if c == 0 || i >= buf.len() {
                break;
            }
            buf[i] = c as u8;
            n = i + 1;
        }
        core::str::from_utf8(&buf[..n]).unwrap_or("?")
    }

    /// Whether the module is still COMING (its init has not returned).
    pub fn is_coming(self) -> bool {
        // SAFETY: the pointer is alive (the type's contract). The loader changes `state` with
        // plain aligned stores, which C readers take with READ_ONCE; a volatile read is
        // that, and a value a moment old is as good as a fresh one here.
        let state = unsafe { core::ptr::addr_of!((*self.0).state).read_volatile() };
        state == ffi::module_state::MODULE_STATE_COMING
    }

    /// Whether `addr` is in the module's init text (its `__init` code; none once freed).
    pub fn in_init_text(self, addr: usize) -> bool {
        // SAFETY: the pointer is alive (the type's contract). The loader sets init_layout
        // before the module is formed and clears it, under module_mutex, after freeing the
        // init text; callers hold the core's lock inside a notifier call or a reference, so
        // the pair read is one the loader wrote (at worst a moment old: already empty).
        let (base, size) = unsafe {
            let l = core::ptr::addr_of!((*self.0).init_layout);
            (
                core::ptr::addr_of!((*l).base).read_volatile() as usize,
                core::ptr::addr_of!((*l).size).read_volatile() as usize,
            )
        };
        base != 0 && addr >= base && addr - base < size
    }

    /// Whether `addr..addr + len` lies inside the module's core memory (its text, read-only
    /// and writable data: one layout on x86 in 6.1).
    pub fn core_contains(self, addr: usize, len: usize) -> bool {
        // SAFETY: the pointer is alive (the type's contract); core_layout is set before the
        // module is formed and does not change while it lives.
        let (base, size) = unsafe {
            let l = core::ptr::addr_of!((*self.0).core_layout);
            ((*l).base as usize, (*l).size as usize)
        };
        base != 0 && addr >= base && len <= size && addr - base <= size - len
    }

    /// Takes a reference (fails once the module is going).
    pub fn try_get(self) -> Option<ModRef> {
        // SAFETY: the module is alive (the type's contract); try_module_get refuses a
        // module that is going.
        // `then`, not `then_some`: a ModRef built eagerly and dropped on failure would put a
        // reference never taken.
        unsafe { ffi::try_module_get(self.0) }.then(|| ModRef(self))
    }
}

/// A reference on a module: while it is held, the module cannot be unloaded (short of
/// `rmmod -f`). Dropping it puts the reference.
#[derive(Debug)]
pub struct ModRef(ModPtr);

impl ModuleRef<ModPtr> for ModRef {
    fn module(&self) -> ModPtr {
        self.0
    }

    fn forget(self) {
        core::mem::forget(self)
    }
}

impl Drop for ModRef {
    fn drop(&mut self) {
        // SAFETY: this reference was taken by try_get and keeps the module alive.
        unsafe { ffi::module_put(self.0 .0) }
    }
}

/// Finds a loaded module by name and takes a reference on it, if `accept(module, live)` —
/// `live`: its init has finished; otherwise it is COMING (unformed and going modules are
/// never found). The check runs before the reference is taken, both under preemption
/// disabled, so a module the caller does not want is never touched.
pub fn find_loaded(syms: &Kallsyms, name: &CStr, accept: impl Fn(ModPtr, bool) -> bool) -> Option<ModRef> {
    // SAFETY: find_module's result may only be used with preemption disabled (or
    // module_mutex held); we take a reference before enabling preemption again.
    unsafe {
        ffi::lpatch_preempt_disable();
        let p = syms.find_module_raw(name);
        let got = if p.is_null() {
            None
        } else {
            let state = (*p).state;
            let live = state == ffi::module_state::MODULE_STATE_LIVE;
            if (live || state == ffi::module_state::MODULE_STATE_COMING) && accept(ModPtr(p), live) {
                ModPtr(p).try_get()
            } else {
                None
            }
        };
        ffi::lpatch_preempt_enable();
        got
    }
}

/// Registration of the glue's module notifier; unregisters on drop.
pub struct NotifierReg(());

impl NotifierReg {
    pub fn register() -> Result<NotifierReg> {
        // SAFETY: registers the glue's static notifier block.
        Error::check(unsafe { ffi::lpatch_module_notifier(1) })?;
        Ok(NotifierReg(()))
    }
}

impl Drop for NotifierReg {
    fn drop(&mut self) {
        // SAFETY: it was registered in `register`.
        unsafe { ffi::lpatch_module_notifier(0) };
    }
}

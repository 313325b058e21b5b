//! sysfs directories (kobjects), and the page a show callback writes into. Directories are
//! plain kobjects (kobject_create_and_add); an attribute callback finds the record it
//! belongs to by the kobject's identity ([`SysfsDir::id`]), under the core's lock.

use super::ffi;
use core::ffi::{c_char, c_int, CStr};
use core::ptr::NonNull;
use lpatch_logic::error::{Error, Result};
use lpatch_logic::fallible::try_format;
use lpatch_logic::seam::{DirKind, SysfsDir};

/// One sysfs directory; removed (kobject_del, then kobject_put) on drop. Children must be
/// dropped before their parent, and never with the core's lock held: removal waits for running
/// show/store callbacks, which take that lock.
pub struct Dir(NonNull<ffi::kobject>);

// SAFETY: a kobject may be put from any process context.
unsafe impl Send for Dir {}

impl Dir {
    fn create(name: &str, parent: *mut ffi::kobject) -> Result<Dir> {
        let cname = try_format(format_args!("{}\0", name))?;
        // SAFETY: cname is NUL-terminated; parent is a live kobject (ours or kernel_kobj).
        let k = unsafe { ffi::kobject_create_and_add(cname.as_ptr() as *const c_char, parent) };
        NonNull::new(k).map(Dir).ok_or_else(|| {
            pr_err!("cannot create sysfs directory {}", name);
            Error::ENOMEM
        })
    }

    /// A top-level directory under /sys/kernel.
    pub fn under_kernel(name: &str) -> Result<Dir> {
        // SAFETY: kernel_kobj lives as long as the kernel.
        Self::create(name, unsafe { ffi::lpatch_kernel_kobj() })
    }

    /// A subdirectory.
    pub fn child(&self, name: &str) -> Result<Dir> {
        Self::create(name, self.0.as_ptr())
    }

    /// A subdirectory with the attribute table of `kind`.
    pub fn child_with_attrs(&self, name: &str, kind: DirKind) -> Result<Dir> {
        let d = self.child(name)?;
        // The glue's attribute tables, by index.
        let table: c_int = match kind {
            DirKind::Patch => 0,
            DirKind::Func => 1,
        };
        // SAFETY: d is a live kobject; the tables are static in the glue.
        Error::check(unsafe { ffi::lpatch_sysfs_add_attrs(d.0.as_ptr(), table) })?;
        Ok(d)
    }
}

impl SysfsDir for Dir {
    fn id(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // Out of sysfs now (kobject_del waits for running show/store callbacks), not when
        // the last reference goes: a release may come late (DEBUG_KOBJECT_RELEASE delays
        // it by seconds), and until it does a directory left in sysfs would refuse a
        // patch of the same name and keep files whose callbacks live in this module.
        // SAFETY: the kobject is live and in sysfs; kobject_create_and_add gave us the one
        // reference, dropped here.
        unsafe {
            ffi::kobject_del(self.0.as_ptr());
            ffi::kobject_put(self.0.as_ptr());
        }
    }
}

/// Whether /sys/kernel/<name> exists already (the in-kernel livepatch core's directory).
pub fn kernel_has_dir(name: &CStr) -> bool {
    // SAFETY: name is NUL-terminated; the lookup takes and drops its own reference.
    unsafe { ffi::lpatch_kernel_has_dir(name.as_ptr()) }
}

/// The page sysfs gives a show callback.
pub struct PageOut<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// The size of the page sysfs gives a show callback.
pub const PAGE: usize = 4096;

impl<'a> PageOut<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        PageOut { buf, len: 0 }
    }

    /// How much was written.
    pub fn written(&self) -> usize {
        self.len
    }
}

impl core::fmt::Write for PageOut<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

//! The kernel interface of the core's logic ([`lpatch_logic::seam::Kernel`]) over the real
//! kernel: each method is one of this layer's wrappers. Nothing here calls back into the
//! logic.

use super::ffi;
use super::ftrace::{self, OpsReg, TABLE};
use super::kallsyms::Kallsyms;
use super::modules::{find_loaded, ModPtr, ModRef};
use super::patch_abi::taint_livepatch;
use super::print::{self, Level as PrintLevel};
use super::rcu::Retired;
use super::sysfs::Dir;
use super::tasks::{self, TaskSyms};
use alloc::boxed::Box;
use core::cell::Cell;
use core::fmt;
use lpatch_logic::error::{Error, Result};
use lpatch_logic::fallible::try_format;
use lpatch_logic::seam::{Blocker, DirKind, Kernel, Level, Nudged, Ranges, Table, WalkResult};

/// The running kernel, as the core uses it: the unexported functions found through
/// kallsyms, and the glue's ftrace_ops while the core has it registered (unregistered, if
/// it still is, when this goes).
pub struct Real {
    syms: Kallsyms,
    ops: Cell<Option<OpsReg>>,
    /// The per-task patch state and task walks; None on a kernel without them.
    tasks: Option<TaskSyms>,
}

impl Real {
    /// Finds what the core needs.
    pub fn start() -> Result<Real> {
        let syms = Kallsyms::init()?;
        let tasks = TaskSyms::find(&|name| syms.lookup_quiet(name));
        if tasks.is_none() {
            pr_warn!("this kernel has no per-task patch state (CONFIG_LIVEPATCH) or lpatch cannot reach it: patches switch every task at once, without a consistency model");
        }
        Ok(Real {
            syms,
            ops: Cell::new(None),
            tasks,
        })
    }
}

impl Kernel for Real {
    type Module = ModPtr;
    type ModRef = ModRef;
    type Dir = Dir;
    type Retired = Retired<Table>;

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let level = match level {
            Level::Err => PrintLevel::Err,
            Level::Warning => PrintLevel::Warning,
            Level::Notice => PrintLevel::Notice,
            Level::Info => PrintLevel::Info,
        };
        print::print(level, args)
    }

    fn taint_livepatch(&self) {
        taint_livepatch()
    }

    fn kaslr_offset(&self) -> usize {
        self.syms.kaslr_offset
    }

    fn for_each_symbol(&self, object: Option<ModPtr>, f: &mut dyn FnMut(&[u8], usize)) {
        match object {
            None => self.syms.for_each_vmlinux_symbol(f),
            Some(m) => self.syms.for_each_module_symbol(m, f),
        }
    }

    fn ftrace_location(&self, addr: usize) -> Option<usize> {
        self.syms.ftrace_location(addr)
    }

    fn module_name<'b>(&self, m: ModPtr, buf: &'b mut [u8; 64]) -> &'b str {
        m.name(buf)
    }

    fn in_module_init(&self, m: ModPtr, addr: usize) -> bool {
        m.in_init_text(addr)
    }

    fn module_initialising(&self, m: ModPtr) -> bool {
        m.is_coming()
    }

    fn try_get(&self, m: ModPtr) -> Option<ModRef> {
        m.try_get()
    }

    fn find_loaded(&self, name: &str, accept: &dyn Fn(ModPtr, bool) -> bool) -> Result<Option<ModRef>> {
        let cname = try_format(format_args!("{}\0", name))?;
        let cstr = core::ffi::CStr::from_bytes_with_nul(cname.as_bytes()).map_err(|_| Error::EINVAL)?;
        Ok(find_loaded(&self.syms, cstr, accept))
    }

    fn filter_add(&self, ips: &mut [usize]) -> Result {
        // 6.1 negotiates sharing a call site with a direct call (a BPF trampoline) only when
        // an IPMODIFY ops registers; a filter added to one already registered skips that,
        // and the direct call would then run the original, not the replacement. Refuse
        // such a site instead, with direct calls held still until the filter is in place.
        self.syms.with_direct_calls_held(|is_direct| {
            let mut refused = false;
            for &ip in ips.iter().filter(|&&ip| is_direct(ip)) {
                print::err_at(
                    ip,
                    format_args!("called through an ftrace direct call (a BPF trampoline, or register_ftrace_direct): lpatch cannot share it while another patch is enabled"),
                );
                refused = true;
            }
            if refused {
                return Err(Error::EBUSY);
            }
            ftrace::filter_add(ips, false)
        })
    }

    fn filter_set(&self, sites: &mut [usize]) -> Result {
        // An empty filter means "every function": never hand ftrace one.
        if sites.is_empty() {
            return Err(Error::EINVAL);
        }
        ftrace::filter_add(sites, true)
    }

    fn ops_register(&self) -> Result {
        match self.ops.take() {
            Some(reg) => self.ops.set(Some(reg)),
            None => self.ops.set(Some(OpsReg::register()?)),
        }
        Ok(())
    }

    fn ops_unregister(&self) -> Result {
        match self.ops.take().map(OpsReg::unregister) {
            Some(Err((reg, e))) => {
                self.ops.set(Some(reg));
                Err(e)
            }
            _ => Ok(()),
        }
    }

    fn ftrace_off(&self) -> bool {
        !self.syms.ftrace_enabled()
    }

    fn read_mem(&self, addr: usize, buf: &mut [u8]) -> Result {
        // SAFETY: copy_from_kernel_nofault checks the source range and returns -EFAULT
        // (never faulting) where it is not readable; `buf` is ours to write.
        let ret = unsafe {
            ffi::copy_from_kernel_nofault(
                buf.as_mut_ptr().cast(),
                addr as *const core::ffi::c_void,
                buf.len() as u64,
            )
        };
        if ret != 0 {
            return Err(Error::EFAULT);
        }
        Ok(())
    }

    fn poke(&self, pmod: ModPtr, addr: usize, bytes: &[u8]) -> Result {
        if bytes.len() > 8 || !pmod.core_contains(addr, bytes.len()) {
            return Err(Error::EINVAL);
        }
        // SAFETY: the range is inside the patch module's core memory (checked just above;
        // the module is alive while its patch is registered, which is when the core pokes),
        // which only the loader (done) and the core (under its lock) write.
        unsafe { self.syms.text_poke(addr, bytes) };
        Ok(())
    }

    fn poke_sync(&self) {
        self.syms.text_poke_sync()
    }

    fn publish(&self, table: Option<Table>) -> Result<Retired<Table>> {
        let boxed = match table {
            Some(t) => Some(Box::try_new(t).map_err(|_| Error::ENOMEM)?),
            None => None,
        };
        Ok(TABLE.replace(boxed))
    }

    fn restore(&self, old: Retired<Table>) -> Retired<Table> {
        TABLE.put_back(old)
    }

    fn with_published(&self, f: &mut dyn FnMut(&Table)) {
        if let Some(t) = TABLE.get_locked() {
            f(t)
        }
    }

    fn mkdir(&self, parent: Option<&Dir>, name: &str, kind: Option<DirKind>) -> Result<Dir> {
        match (parent, kind) {
            (None, None) => Dir::under_kernel(name),
            (None, Some(_)) => Err(Error::EINVAL),
            (Some(p), None) => p.child(name),
            (Some(p), Some(kind)) => p.child_with_attrs(name, kind),
        }
    }

    fn has_task_states(&self) -> bool {
        self.tasks.is_some()
    }

    fn function_size(&self, addr: usize) -> usize {
        self.syms.function_size(addr)
    }

    fn tasks_begin(&self, initial: i32) -> Result {
        self.tasks.as_ref().ok_or(Error::EINVAL)?.begin(initial)
    }

    fn tasks_switch(&self, goal: i32, ranges: &Ranges, blocked: &mut dyn FnMut(&Blocker)) -> WalkResult {
        self.tasks
            .as_ref()
            .map_or_else(WalkResult::default, |t| t.switch(goal, ranges, blocked))
    }

    fn tasks_nudge(&self, goal: i32) -> Nudged {
        self.tasks.as_ref().map_or_else(Nudged::default, |t| t.nudge(goal))
    }

    fn now_ms(&self) -> u64 {
        tasks::now_ms()
    }

    fn describe_code<'b>(&self, addr: usize, buf: &'b mut [u8; 128]) -> &'b str {
        tasks::describe_code(addr, buf)
    }

    fn syscall_exit_switch(&self, goal: Option<i32>) -> Result {
        tasks::syscall_exit_switch(goal)
    }

    fn tasks_end(&self) {
        if let Some(t) = &self.tasks {
            t.end()
        }
    }
}

//! The entry points the C glue calls (`lpr_*`), and the core's state under its one lock.
//! Each takes the lock, calls down into the core's logic over the real kernel, and turns
//! the result into what C expects (0 or -errno). Nothing below calls back up here.

use crate::kernel::ffi;
use crate::kernel::ftrace::TABLE;
use crate::kernel::modules::{ModPtr, NotifierReg};
use crate::kernel::patch_abi::read_patch;
use crate::kernel::rcu::RcuReader;
use crate::kernel::real::Real;
use crate::kernel::sync::{synchronize_tasks, CoreLock};
use crate::kernel::sysfs::{kernel_has_dir, PageOut, PAGE};
use crate::kernel::thread::{self, Thread, Turn};
use crate::VERSION;
use core::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use lpatch_logic::core::{Core, ModuleEvent};
use lpatch_logic::error::{to_c, Error, Result};
use lpatch_logic::seam::Kernel;

/// The running core: the module notifier (first: dropped first at exit, so no
/// notification arrives during teardown), a request for the core's thread and its answer,
/// and the state.
struct Live {
    notifier: Option<NotifierReg>,
    /// Taken out and stopped, outside the lock, before the rest goes.
    thread: Option<Thread>,
    /// A request, with the requester's fault-injection countdown, and the answer, with
    /// what is left of it.
    request: Option<(Request, u32)>,
    answer: Option<(Result, u32)>,
    core: Core<Real>,
}

/// What only the core's thread does: every enable and disable (each may start a
/// transition, and a transition's claim on the per-task state — the in-kernel livepatch's
/// mutex — is held by one task from start to end).
#[derive(Clone, Copy)]
enum Request {
    Enable(usize),
    Disable(usize),
}

/// The first wait between two walks of a transition, and the longest.
const FIRST_RETRY_MS: u32 = 10;
const LAST_RETRY_MS: u32 = 1000;

/// The core's thread: carries out requests, and walks the tasks while a transition runs,
/// waiting longer between walks each time (from 10 ms up to 1 s).
unsafe extern "C" fn core_thread(_: *mut c_void) -> c_int {
    let mut wait = FIRST_RETRY_MS;
    while !thread::should_stop() {
        let request = CORE.lock().as_mut().and_then(|l| l.request.take());
        if let Some((req, fail_nth)) = request {
            thread::fail_nth_put(fail_nth);
            let r = with_core(|c| match req {
                Request::Enable(key) => c.enable(key),
                Request::Disable(key) => c.disable(key),
            });
            let left = thread::fail_nth_take();
            if let Some(l) = CORE.lock().as_mut() {
                l.answer = Some((r, left));
            }
            thread::answered();
            wait = FIRST_RETRY_MS;
        }
        let done = with_core(|c| Ok(c.try_complete_transition())).unwrap_or(true);
        if done {
            wait = FIRST_RETRY_MS;
            thread::wait(None);
        } else {
            thread::wait(Some(wait));
            wait = (wait * 2).min(LAST_RETRY_MS);
        }
    }
    // A transition whose patch went away is ended here at the latest (no patch can be
    // registered when the core unloads).
    let _ = with_core(|c| Ok(c.try_complete_transition()));
    0
}

/// Hands `req` to the core's thread and waits for its answer.
fn ask(req: Request) -> Result {
    let turn = Turn::take();
    {
        let mut guard = CORE.lock();
        let live = guard.as_mut().ok_or(Error::ENODEV)?;
        live.request = Some((req, thread::fail_nth_take()));
        live.answer = None;
    }
    thread::kick();
    turn.wait_answer();
    let (r, left) = CORE
        .lock()
        .as_mut()
        .and_then(|l| l.answer.take())
        .unwrap_or((Err(Error::ENODEV), 0));
    thread::fail_nth_put(left);
    r
}

static CORE: CoreLock<Option<Live>> = CoreLock::new(None);

/// Runs `f` on the core under the lock; whatever `f` buried is dropped after unlocking,
/// because removing a sysfs directory waits for its running callbacks, which take the lock.
/// None before init and after exit: "no core" is not an error `f` could also return.
fn with_running_core<R>(f: impl FnOnce(&mut Core<Real>) -> Result<R>) -> Option<Result<R>> {
    let mut guard = CORE.lock();
    let live = guard.as_mut()?;
    let r = f(&mut live.core);
    let mut dead = live.core.take_buried();
    drop(guard);
    // One at a time, taking the lock again for each: taking them allocates nothing.
    while let Some(p) = dead {
        if p.enabled {
            // Removed while enabled: its module is going (rmmod -f, or its init failed
            // after enabling), and its text is freed when this notifier returns. Calls
            // redirected a moment ago may still be running its replacements: wait for them.
            synchronize_tasks();
        }
        drop(p);
        dead = CORE.lock().as_mut().and_then(|l| l.core.take_buried());
    }
    Some(r)
}

/// [`with_running_core`] for calls that need a core: ENODEV without one.
fn with_core<R>(f: impl FnOnce(&mut Core<Real>) -> Result<R>) -> Result<R> {
    with_running_core(f).unwrap_or(Err(Error::ENODEV))
}

/// Starts the core: symbols and the ftrace_ops, the sysfs root, the module notifier.
fn init() -> Result {
    let k = Real::start()?;
    // Debian's kernel has the in-kernel livepatch core, which owns /sys/kernel/livepatch.
    let root_name = if kernel_has_dir(c"livepatch") {
        "lpatch"
    } else {
        "livepatch"
    };
    let root = k.mkdir(None, root_name, None)?;
    let core = Core::new(k, root);
    // Outside our lock: a module load in progress holds the notifier chain and may be
    // waiting for our lock.
    let notifier = NotifierReg::register()?;
    *CORE.lock() = Some(Live {
        notifier: Some(notifier),
        thread: None,
        request: None,
        answer: None,
        core,
    });
    match Thread::start(core_thread) {
        Ok(t) => {
            if let Some(l) = CORE.lock().as_mut() {
                l.thread = Some(t);
            }
        }
        Err(e) => {
            // Out of the lock first: the notifier's unregistration waits for a module
            // load that may be waiting for the lock.
            let live = CORE.lock().take();
            drop(live);
            return Err(e);
        }
    }
    pr_info!("sysfs root /sys/kernel/{}", root_name);
    Ok(())
}

/// Module init, called by the C glue. Returns 0 or a negative errno.
#[no_mangle]
pub extern "C" fn lpr_init() -> c_int {
    match init() {
        Ok(()) => {
            pr_info!("lpatch {} (Rust core) loaded", VERSION);
            0
        }
        Err(e) => {
            pr_err!("lpatch {} failed to start: {}", VERSION, e);
            e.to_errno()
        }
    }
}

/// Module exit, called by the C glue (no patch module can be loaded: they depend on us).
#[no_mangle]
pub extern "C" fn lpr_exit() {
    // The thread first, outside the lock (it takes the lock to finish).
    let t = CORE.lock().as_mut().and_then(|l| l.thread.take());
    drop(t);
    let live = CORE.lock().take();
    if let Some(mut live) = live {
        drop(live.notifier.take());
        if !live.core.patches.is_empty() {
            pr_err!(
                "unloading with {} patches registered (forced unload?): leaking them",
                live.core.patches.len()
            );
            core::mem::forget(core::mem::take(&mut live.core.patches));
        }
        drop(live);
    }
    pr_info!("lpatch {} unloaded", VERSION);
}

/// `lp_register_patch` from the glue.
///
/// # Safety
/// As for [`read_patch`]: the patch module's own `lp_patch`, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn lpr_register_patch(p: *const ffi::lp_patch) -> c_int {
    // SAFETY: the caller's contract is read_patch's.
    let desc = unsafe { read_patch(p) };
    to_c(desc.and_then(|d| with_core(|c| c.register(d))))
}

#[no_mangle]
pub extern "C" fn lpr_unregister_patch(p: *const ffi::lp_patch) -> c_int {
    to_c(with_core(|c| c.unregister(p as usize)))
}

#[no_mangle]
pub extern "C" fn lpr_enable_patch(p: *const ffi::lp_patch) -> c_int {
    to_c(ask(Request::Enable(p as usize)))
}

#[no_mangle]
pub extern "C" fn lpr_disable_patch(p: *const ffi::lp_patch) -> c_int {
    to_c(ask(Request::Disable(p as usize)))
}

/// Called by the glue's notifier for every module state change.
///
/// # Safety
/// `module` is NULL or the module the notifier chain was called for, allocated for the
/// whole call.
#[no_mangle]
pub unsafe extern "C" fn lpr_module_notify(action: c_ulong, module: *mut ffi::module) -> c_int {
    let event = match action as u32 {
        x if x == ffi::module_state::MODULE_STATE_COMING as u32 => ModuleEvent::Coming,
        x if x == ffi::module_state::MODULE_STATE_LIVE as u32 => ModuleEvent::Live,
        x if x == ffi::module_state::MODULE_STATE_GOING as u32 => ModuleEvent::Going,
        _ => ModuleEvent::Other,
    };
    // SAFETY: the module notifier is called with a module that stays allocated for the
    // whole call.
    let Some(m) = (unsafe { ModPtr::from_raw(module) }) else {
        return 0;
    };
    match with_running_core(|c| c.module_event(event, m)) {
        // Before init or after exit there is nothing to do for a module.
        None => 0,
        // A refusal (the core cannot patch a coming module) refuses its load: the core
        // logged module, patch and cause.
        Some(r) => to_c(r),
    }
}

/// The show callback of every attribute, from the glue.
///
/// # Safety
/// `buf` is a writable PAGE_SIZE buffer and `attr` a NUL-terminated string, both valid
/// for the call (what sysfs passes a show callback).
#[no_mangle]
pub unsafe extern "C" fn lpr_sysfs_show(kobj: *mut ffi::kobject, attr: *const c_char, buf: *mut u8) -> isize {
    // SAFETY: sysfs passes a PAGE_SIZE buffer and the attribute's static NUL-terminated name.
    let (buf, attr) = unsafe { (core::slice::from_raw_parts_mut(buf, PAGE), CStr::from_ptr(attr)) };
    let mut out = PageOut::new(buf);
    match with_core(|c| lpatch_logic::sysfs::show(c, kobj as usize, attr.to_bytes(), &mut out)) {
        Ok(()) => out.written() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The store callback of every writable attribute, from the glue.
///
/// # Safety
/// `buf` has `len` readable bytes and `attr` is a NUL-terminated string, both valid for
/// the call (what sysfs passes a store callback).
#[no_mangle]
pub unsafe extern "C" fn lpr_sysfs_store(
    kobj: *mut ffi::kobject,
    attr: *const c_char,
    buf: *const u8,
    len: usize,
) -> isize {
    // SAFETY: sysfs passes `len` readable bytes (at most a page) and the static name.
    let (input, attr) = unsafe { (core::slice::from_raw_parts(buf, len), CStr::from_ptr(attr)) };
    let asked = with_core(|c| lpatch_logic::sysfs::parse_store(c, kobj as usize, attr.to_bytes(), input));
    let done = asked.and_then(|(key, enable)| {
        ask(if enable {
            Request::Enable(key)
        } else {
            Request::Disable(key)
        })
    });
    match done {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Called by the glue's ftrace handler, in any context (NMI included), with preemption
/// disabled and recursion guarded: returns where the call at `ip` must go, or 0.
#[no_mangle]
pub extern "C" fn lpr_redirect_target(ip: c_ulong) -> c_ulong {
    // SAFETY: the glue's handler disabled preemption (ftrace_test_recursion_trylock) and
    // keeps it disabled until we return.
    let reader = unsafe { RcuReader::new() };
    TABLE
        .get(&reader)
        .map_or(0, |t| t.target(ip as usize, crate::kernel::tasks::current_state)) as c_ulong
}

/// Called by the glue's ftrace handler when ftrace's recursion guard kept it from running
/// (a patched function called from inside the tracing of another call): the original ran.
/// Whether to say so: once per redirected function. Any context, preemption disabled.
#[no_mangle]
pub extern "C" fn lpr_recursion_bypassed(ip: c_ulong) -> bool {
    // SAFETY: the glue disabled preemption around this call and keeps it disabled until
    // we return.
    let reader = unsafe { RcuReader::new() };
    TABLE.get(&reader).is_some_and(|t| t.note_bypass(ip as usize))
}

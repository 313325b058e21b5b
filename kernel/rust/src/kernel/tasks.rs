//! What a transition needs of the kernel's tasks: their per-task patch state
//! (`task_struct.patch_state`), a walk of every task under `tasklist_lock` (let go every
//! few tasks) that checks each one's reliably unwound stack, the idle tasks (not on the
//! task list), the switch at syscall exit, and the claim on that state: the in-kernel
//! livepatch's `klp_mutex`, held for the whole transition with its `klp_transition_patch`
//! NULL (so the two cores' transitions exclude each other). None of it is exported: the
//! symbols are found through kallsyms, on a CONFIG_LIVEPATCH kernel only.

use super::ffi;
use super::sync::sync_cpus;
use core::cell::Cell;
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void, CStr};
use lpatch_logic::error::{Error, Result};
use lpatch_logic::seam::{Blocked, Blocker, Nudged, Ranges, WalkResult, UNDEFINED};

type TaskCallF = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;
type TaskCallFunc = unsafe extern "C" fn(*mut c_void, TaskCallF, *mut c_void) -> c_int;
type TaskCurr = unsafe extern "C" fn(*const c_void) -> c_int;
type SaveReliable = unsafe extern "C" fn(*mut c_void, *mut c_ulong, c_uint) -> c_int;
type WakeUpState = unsafe extern "C" fn(*mut c_void, c_uint) -> c_int;

/// Stack checks between two holds of tasklist_lock (each a few µs).
const CHECKS_PER_HOLD: u32 = 8;
/// Passes of one walk: the first, and those confirming a pass that let go of the lock.
const CONFIRMING_PASSES: u32 = 3;
/// Nudges between two holds of tasklist_lock.
const NUDGES_PER_HOLD: u32 = 32;

/// Return addresses kept of one stack: deeper stacks count as unreliable (as upstream's).
const STACK_ENTRIES: usize = 100;

/// What checking one task found (task_call_func returns its callback's value).
const SWITCHED: c_int = 0;
const RUNNING: c_int = 1;
const UNRELIABLE: c_int = 2;
const IN_PATCHED_CODE: c_int = 3;

/// The kernel's symbols for the per-task state, all found or none.
pub struct TaskSyms {
    klp_mutex: usize,
    /// `struct klp_patch *klp_transition_patch`: non-NULL while the in-kernel livepatch
    /// runs a transition.
    klp_transition_patch: usize,
    tasklist_lock: usize,
    task_call_func: TaskCallFunc,
    task_curr: TaskCurr,
    save_reliable: SaveReliable,
    wake_up_state: WakeUpState,
    /// smpboot's per-CPU `idle_threads` (a per-CPU offset).
    idle_threads: usize,
    /// Whether the core holds klp_mutex (between `begin` and `end`).
    claimed: Cell<bool>,
}

// SAFETY: the Cell is touched only under the core's lock, by the transition owner.
unsafe impl Sync for TaskSyms {}
unsafe impl Send for TaskSyms {}

impl TaskSyms {
    /// Finds the symbols through `lookup`; None when the kernel lacks any (or has no
    /// per-task patch state at all).
    pub fn find(lookup: &dyn Fn(&CStr) -> Option<usize>) -> Option<TaskSyms> {
        // SAFETY: reports a compile-time property of the kernel built against.
        if !unsafe { ffi::lpatch_has_task_states() } {
            return None;
        }
        // SAFETY (the transmutes): each address is the named kernel function, whose C
        // signature in 6.1 is the one the target type spells (task_struct pointers as
        // void pointers).
        unsafe {
            Some(TaskSyms {
                klp_mutex: lookup(c"klp_mutex")?,
                klp_transition_patch: lookup(c"klp_transition_patch")?,
                tasklist_lock: lookup(c"tasklist_lock")?,
                task_call_func: core::mem::transmute::<usize, TaskCallFunc>(lookup(c"task_call_func")?),
                task_curr: core::mem::transmute::<usize, TaskCurr>(lookup(c"task_curr")?),
                save_reliable: core::mem::transmute::<usize, SaveReliable>(lookup(c"stack_trace_save_tsk_reliable")?),
                wake_up_state: core::mem::transmute::<usize, WakeUpState>(lookup(c"wake_up_state")?),
                idle_threads: lookup(c"idle_threads")?,
                claimed: Cell::new(false),
            })
        }
    }

    /// Calls `f` on every task of the task list under tasklist_lock; when `f` returns true
    /// the lock is let go for a moment before the next. Returns whether every task was seen
    /// (a walk let go after a task that exited meanwhile stops there); `longest_ns` grows
    /// to the longest hold.
    fn walk_list(&self, f: &mut dyn FnMut(*mut c_void) -> bool, longest_ns: &mut u64) -> bool {
        struct Ctx<'a> {
            f: &'a mut dyn FnMut(*mut c_void) -> bool,
        }
        unsafe extern "C" fn cb(t: *mut c_void, data: *mut c_void) -> c_int {
            // SAFETY: data is the Ctx below, alive for the walk; t a task the walk holds.
            let ctx = unsafe { &mut *(data as *mut Ctx<'_>) };
            (ctx.f)(t) as c_int
        }
        let mut ctx = Ctx { f };
        // SAFETY: tasklist_lock is the kernel's rwlock_t; the callback matches, ctx and
        // longest_ns outlive the call. The core's thread walks, in process context.
        unsafe {
            ffi::lpatch_walk_tasks(
                self.tasklist_lock as *mut c_void,
                Some(cb),
                &mut ctx as *mut Ctx<'_> as *mut c_void,
                longest_ns,
            )
        }
    }

    /// Calls `f` on each possible CPU's idle task (not on the task list), with the CPU and
    /// whether it is online.
    fn for_each_idle(&self, f: &mut dyn FnMut(*mut c_void, c_int, bool)) {
        // SAFETY: plain reads of the kernel's CPU masks and idle task pointers (idle tasks
        // live as long as the kernel).
        unsafe {
            for cpu in 0..ffi::lpatch_nr_cpu_ids() {
                if ffi::lpatch_cpu_possible(cpu) {
                    let idle = ffi::lpatch_idle_task(self.idle_threads as *mut *mut c_void, cpu);
                    if !idle.is_null() {
                        f(idle, cpu, ffi::lpatch_cpu_online(cpu));
                    }
                }
            }
        }
    }

    /// Sets every task's state, idle tasks included, under one hold of the lock (no fork
    /// can slip past: a child copies its parent's state under the lock written).
    fn set_all(&self, state: c_int) {
        let set = |t: *mut c_void| {
            // SAFETY: t is a live task (held by the walk); patch_state is a plain int.
            unsafe { ffi::lpatch_task_set_patch_state(t, state) }
        };
        let mut held = 0;
        self.walk_list(
            &mut |t| {
                set(t);
                false
            },
            &mut held,
        );
        self.for_each_idle(&mut |t, _, _| set(t));
    }

    /// Claims the per-task state: takes klp_mutex without waiting (EBUSY when the
    /// in-kernel livepatch holds it or is in a transition), then sets every task to
    /// `initial`. The caller must end with [`TaskSyms::end`], from the same task.
    pub fn begin(&self, initial: i32) -> Result {
        if self.claimed.get() {
            return Err(Error::EBUSY);
        }
        // SAFETY: klp_mutex is the in-kernel livepatch's static mutex.
        if unsafe { ffi::lpatch_mutex_trylock(self.klp_mutex as *mut c_void) } == 0 {
            return Err(Error::EBUSY);
        }
        // SAFETY: klp_transition_patch is a static pointer, written under klp_mutex (held).
        let busy = unsafe { core::ptr::read_volatile(self.klp_transition_patch as *const usize) } != 0;
        if busy {
            // SAFETY: taken just above.
            unsafe { ffi::lpatch_mutex_unlock(self.klp_mutex as *mut c_void) };
            return Err(Error::EBUSY);
        }
        self.claimed.set(true);
        self.set_all(initial);
        Ok(())
    }

    /// One walk: each task not in `goal` whose stack holds nothing in `ranges` is switched.
    /// The task list's lock is let go after every few stack checks (a walk of thousands
    /// of tasks under it once stalled big machines), so forks may slip past the walk's
    /// cursor: a walk that let go and found every task switched is confirmed by another
    /// pass (a pass with nothing left to check never lets go).
    pub fn switch(&self, goal: i32, ranges: &Ranges, blocked: &mut dyn FnMut(&Blocker)) -> WalkResult {
        let mut r = WalkResult::default();
        let mut settled = false;
        for _pass in 0..CONFIRMING_PASSES {
            let mut longest = r.longest_hold_ns;
            r = WalkResult::default();
            let mut checks = 0;
            let mut let_go = false;
            let whole = self.walk_list(
                &mut |t| {
                    // SAFETY: t is a live task held by the walk.
                    if unsafe { ffi::lpatch_task_patch_state(t) } == goal {
                        return false;
                    }
                    tally(&mut r, t, self.try_switch(t, goal, ranges), blocked);
                    checks += 1;
                    let go = checks % CHECKS_PER_HOLD == 0;
                    let_go |= go;
                    go
                },
                &mut longest,
            );
            r.longest_hold_ns = longest;
            if !whole {
                // Stopped at a task that exited while the lock was let go: the rest is
                // for the next walk.
                r.remaining += 1;
            }
            settled = r.remaining > 0 || !let_go;
            if settled {
                break;
            }
        }
        if !settled {
            // Every pass let go of the lock: not confirmed; the next walk tries again.
            r.remaining += 1;
        }
        self.for_each_idle(&mut |t, cpu, online| {
            // SAFETY: t is an idle task (they live as long as the kernel).
            if unsafe { ffi::lpatch_task_patch_state(t) } == goal {
                return;
            }
            let found = if online {
                self.try_switch_idle(t, cpu, goal, ranges)
            } else {
                // An offline CPU's idle task does not run: switched as is.
                // SAFETY: as above.
                unsafe { ffi::lpatch_task_set_patch_state(t, goal) };
                (SWITCHED, 0)
            };
            tally(&mut r, t, found, blocked);
        });
        r
    }

    /// Checks and switches one task, pinned by task_call_func: what it found, and the
    /// return address in the patch's code if that is what holds it.
    fn try_switch(&self, t: *mut c_void, goal: i32, ranges: &Ranges) -> (c_int, usize) {
        let mut ctx = Check {
            syms: self,
            goal,
            ranges,
            hit: 0,
            stack: [0; STACK_ENTRIES],
        };
        // SAFETY: t is a live task held by the caller's walk (tasklist_lock) or an idle
        // task; the callback matches task_call_f and ctx outlives the call.
        let found = unsafe { (self.task_call_func)(t, check_and_switch, &mut ctx as *mut Check<'_> as *mut c_void) };
        (found, ctx.hit)
    }

    /// An idle task: checked from a work item on its CPU, where it is not running.
    fn try_switch_idle(&self, t: *mut c_void, cpu: c_int, goal: i32, ranges: &Ranges) -> (c_int, usize) {
        // SAFETY: task_curr reads the runqueue's current task.
        if unsafe { (self.task_curr)(t) } == 0 {
            return self.try_switch(t, goal, ranges);
        }
        struct OnCpu<'a> {
            syms: &'a TaskSyms,
            t: *mut c_void,
            goal: i32,
            ranges: &'a Ranges,
            /// The return address in the patch's code, if that holds it.
            hit: Cell<usize>,
        }
        unsafe extern "C" fn on_cpu(data: *mut c_void) -> c_long {
            // SAFETY: data is the OnCpu below, alive until work_on_cpu returns; its caller
            // waits meanwhile, so one thread at a time uses `hit`.
            let o = unsafe { &*(data as *const OnCpu<'_>) };
            let (found, hit) = o.syms.try_switch(o.t, o.goal, o.ranges);
            o.hit.set(hit);
            found as c_long
        }
        let o = OnCpu {
            syms: self,
            t,
            goal,
            ranges,
            hit: Cell::new(0),
        };
        // SAFETY: work_on_cpu runs on_cpu in a worker bound to `cpu` and waits for it; o
        // outlives it. Never allocates (an on-stack work).
        let found =
            unsafe { ffi::lpatch_work_on_cpu(cpu, Some(on_cpu), &o as *const OnCpu<'_> as *mut c_void) as c_int };
        (found, o.hit.get())
    }

    /// Nudges each task of the task list not in `goal`: a kernel thread is woken (if it
    /// sleeps interruptibly), a user task sent a fake signal (TIF_NOTIFY_SIGNAL: an
    /// interruptible sleep ends and its system call restarts, through the switch at
    /// system call exit). The lock is let go every few tasks.
    pub fn nudge(&self, goal: i32) -> Nudged {
        let mut n = Nudged::default();
        let mut held = 0;
        self.walk_list(
            &mut |t| {
                // SAFETY: t is a live task held by the walk; the helpers read its flags
                // and wake it as the kernel's own livepatch does.
                unsafe {
                    if ffi::lpatch_task_patch_state(t) == goal {
                        return false;
                    }
                    if ffi::lpatch_task_is_kthread(t) {
                        ffi::lpatch_wake_kthread(t, self.wake_up_state);
                        n.kthreads += 1;
                    } else {
                        ffi::lpatch_notify_signal(t, self.wake_up_state);
                        n.user += 1;
                    }
                }
                (n.kthreads + n.user) % NUDGES_PER_HOLD as usize == 0
            },
            &mut held,
        );
        n
    }

    /// Ends the claim: waits for every handler call that may be reading states, resets
    /// every task to UNDEFINED, releases klp_mutex.
    pub fn end(&self) {
        if !self.claimed.get() {
            return;
        }
        sync_cpus();
        self.set_all(UNDEFINED);
        self.claimed.set(false);
        // SAFETY: taken in `begin` by this same task (the transition owner).
        unsafe { ffi::lpatch_mutex_unlock(self.klp_mutex as *mut c_void) };
    }
}

/// Adds what checking task `t` found (`found`, from try_switch) to a walk's result, and
/// tells `blocked` of it if it could not be switched.
fn tally(r: &mut WalkResult, t: *mut c_void, found: (c_int, usize), blocked: &mut dyn FnMut(&Blocker)) {
    let why = match found {
        (SWITCHED, _) => return,
        (RUNNING, _) => {
            r.running += 1;
            Blocked::Running
        }
        (IN_PATCHED_CODE, hit) => {
            r.in_patched_code += 1;
            Blocked::InCode(hit)
        }
        _ => {
            r.unreliable += 1;
            Blocked::Unreliable
        }
    };
    r.remaining += 1;
    let mut comm = [0u8; 16];
    // SAFETY: t is a live task held by the caller's walk (or an idle task); comm has
    // TASK_COMM_LEN bytes.
    let pid = unsafe {
        ffi::lpatch_task_comm(t, comm.as_mut_ptr());
        ffi::lpatch_task_pid(t)
    };
    blocked(&Blocker { pid, comm, why });
}

struct Check<'a> {
    syms: &'a TaskSyms,
    goal: i32,
    ranges: &'a Ranges,
    /// The first return address in the patch's code, if any.
    hit: usize,
    stack: [c_ulong; STACK_ENTRIES],
}

/// task_call_func's callback: the task cannot start or stop running meanwhile.
unsafe extern "C" fn check_and_switch(t: *mut c_void, data: *mut c_void) -> c_int {
    // SAFETY: data is the Check of try_switch, alive for the call.
    let c = unsafe { &mut *(data as *mut Check<'_>) };
    // SAFETY: task_curr and lpatch_current only read.
    if unsafe { (c.syms.task_curr)(t) != 0 && t != ffi::lpatch_current() } {
        return RUNNING;
    }
    // SAFETY: the task is pinned by task_call_func; the buffer holds STACK_ENTRIES.
    let n = unsafe { (c.syms.save_reliable)(t, c.stack.as_mut_ptr(), STACK_ENTRIES as c_uint) };
    if n < 0 {
        return UNRELIABLE;
    }
    let n = (n as usize).min(STACK_ENTRIES);
    if let Some(&a) = c.stack[..n].iter().find(|&&a| c.ranges.hit(a as usize).is_some()) {
        c.hit = a as usize;
        return IN_PATCHED_CODE;
    }
    // SAFETY: the task is pinned; patch_state is a plain int.
    unsafe { ffi::lpatch_task_set_patch_state(t, c.goal) };
    SWITCHED
}

/// Switches tasks to `goal` as they leave a syscall; None: stops, returning once no probe
/// runs.
pub fn syscall_exit_switch(goal: Option<i32>) -> Result {
    // SAFETY: registers or unregisters the glue's static probe on sys_exit.
    Error::check(unsafe { ffi::lpatch_syscall_switch(goal.unwrap_or(-1)) }).map(|_| ())
}

/// The calling task's state (the ftrace handler's question during a transition).
pub fn current_state() -> i32 {
    // SAFETY: reads current->patch_state.
    unsafe { ffi::lpatch_current_patch_state() }
}

/// The kernel's monotonic clock, in ms.
pub fn now_ms() -> u64 {
    // SAFETY: reads the clock.
    unsafe { ffi::lpatch_now_ns() / 1_000_000 }
}

/// Where code address `addr` is ("function+0x1a/0x40 [module]"), in `buf`.
pub fn describe_code(addr: usize, buf: &mut [u8; 128]) -> &str {
    // SAFETY: buf is writable for its length; the helper NUL-terminates within it.
    unsafe { ffi::lpatch_describe_code(buf.as_mut_ptr(), buf.len(), addr as c_ulong) };
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..n]).unwrap_or("?")
}

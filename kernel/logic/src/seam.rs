//! The one interface between the core's logic and the kernel. The kernel crate implements
//! it over the real kernel (kernel/rust/src/kernel/); the host tests over a fake one. The
//! logic never reaches the kernel any other way, and an implementation never calls back
//! into the logic: the C entry points sit above both and call down.

use crate::error::Result;
use core::fmt;

// What crosses the seam, besides the trait: the kernel side reads a patch module's structs
// into a PatchDesc, publishes Tables to its ftrace handler and prints log Levels. It imports
// these from here (and errors and fallible collections), nothing else of the logic.
pub use crate::code::CodeCheck;
pub use crate::log::Level;
pub use crate::model::{FuncDesc, ObjectDesc, PatchDesc};
pub use crate::redirect::Table;
pub use crate::reloc::{RelaDesc, RelaSectionDesc};
pub use crate::transition::{Blocked, Blocker, Nudged, Ranges, WalkResult, PATCHED, UNDEFINED, UNPATCHED};

/// A reference on a module: while it is held the module stays loaded (short of
/// `rmmod -f`); dropping it puts the reference.
pub trait ModuleRef<M> {
    /// The module it is held on.
    fn module(&self) -> M;
    /// Gives the reference up without putting it: for a module already going (its count
    /// no longer matters), or a patch module pinned for good.
    fn forget(self);
}

/// A sysfs directory, removed when dropped (children before their parent, and never with
/// the core's lock held: removal waits for running show/store callbacks, which take it).
pub trait SysfsDir {
    /// The identity attribute callbacks name it by.
    fn id(&self) -> usize;
}

/// Which attributes a directory gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirKind {
    /// A patch's: `enabled` (0644).
    Patch,
    /// A function's: `old_addr`, `new_addr` (0400).
    Func,
}

/// What the kernel does for the core. Every call is made under the core's one lock (in
/// process context), except where a method says otherwise.
pub trait Kernel {
    /// A module's identity: compared, named, used to take references.
    type Module: Copy + Eq + fmt::Debug;
    type ModRef: ModuleRef<Self::Module>;
    type Dir: SysfsDir;
    /// A redirection table no longer published: readers may still hold it until a grace
    /// period has passed; dropping it waits for that, then frees it.
    type Retired;

    /// One log line.
    fn log(&self, level: Level, args: fmt::Arguments<'_>);
    /// Marks the kernel live-patched (taint K).
    fn taint_livepatch(&self);

    /// How far KASLR moved vmlinux from its link-time addresses.
    fn kaslr_offset(&self) -> usize;
    /// Calls `f(name, address)` for every symbol of vmlinux (`None`) or of one module,
    /// in kallsyms order. Takes module_mutex for a module: never with it held.
    fn for_each_symbol(&self, object: Option<Self::Module>, f: &mut dyn FnMut(&[u8], usize));
    /// The ftrace call site of the function starting at `addr`, if ftrace can trace it.
    fn ftrace_location(&self, addr: usize) -> Option<usize>;

    /// The module's name (copied into `buf`; module names are at most 56 bytes).
    fn module_name<'b>(&self, m: Self::Module, buf: &'b mut [u8; 64]) -> &'b str;
    /// Whether `addr` is in the init text of a module the caller knows to be alive (its
    /// `__init` code, freed once its init returns).
    fn in_module_init(&self, m: Self::Module, addr: usize) -> bool;
    /// Whether a module the caller knows to be alive is still COMING (its init running).
    fn module_initialising(&self, m: Self::Module) -> bool;
    /// A reference on a module the caller knows to be alive; None once it is going.
    fn try_get(&self, m: Self::Module) -> Option<Self::ModRef>;
    /// The loaded module named `name`, with a reference, if `accept(module, live)` (live:
    /// its init has finished; otherwise it is COMING; modules not yet formed or going are
    /// never found). `accept` runs before the reference is taken.
    fn find_loaded(&self, name: &str, accept: &dyn Fn(Self::Module, bool) -> bool) -> Result<Option<Self::ModRef>>;

    /// Adds call sites to the core's ftrace filter (one ftrace update for the batch when the
    /// ops is registered; sites already there stay). An error leaves the filter as it was.
    fn filter_add(&self, ips: &mut [usize]) -> Result;
    /// Sets the filter to exactly `sites` (not empty: an empty filter would trace every
    /// function): one ftrace update when the ops is registered. An error (ftrace copies its
    /// filter to change it, and may run out of memory) leaves the filter as it was. Never
    /// allocates on the core's side.
    fn filter_set(&self, sites: &mut [usize]) -> Result;
    /// Registers the core's ftrace_ops with the filter set: from now on calls of those
    /// sites reach the handler (one ftrace update). EBUSY when ftrace refuses: it is
    /// switched off ([`Kernel::ftrace_off`]) or another ftrace user modifies one of them.
    fn ops_register(&self) -> Result;
    /// Unregisters it; when this returns no handler call is running (ftrace waits for
    /// them). Never allocates.
    fn ops_unregister(&self) -> Result;
    /// Whether ftrace is switched off (`sysctl kernel.ftrace_enabled=0`).
    fn ftrace_off(&self) -> bool;

    /// Reads `buf.len()` bytes at `addr` (EFAULT if they cannot be read).
    fn read_mem(&self, addr: usize, buf: &mut [u8]) -> Result;
    /// Writes `bytes` at `addr` inside patch module `pmod`'s loaded sections, read-only and
    /// text ones included, as the kernel writes code (text_poke). EINVAL, nothing written,
    /// when the range is not inside them. Callers end a batch with [`Kernel::poke_sync`].
    fn poke(&self, pmod: Self::Module, addr: usize, bytes: &[u8]) -> Result;
    /// Makes every CPU see what `poke` wrote.
    fn poke_sync(&self);

    /// Publishes `table` to the ftrace handler (None: no table); returns the one replaced.
    /// ENOMEM (nothing published) when the kernel cannot allocate its copy.
    fn publish(&self, table: Option<Table>) -> Result<Self::Retired>;
    /// Publishes again a table `publish` replaced (undoing it); returns what it replaces.
    fn restore(&self, old: Self::Retired) -> Self::Retired;
    /// Runs `f` on the table published now, if any (under the core's lock: it stays).
    fn with_published(&self, f: &mut dyn FnMut(&Table));

    /// A directory `name` under `parent` (None: the core's root, under /sys/kernel), with
    /// the attributes of `kind`, if any.
    fn mkdir(&self, parent: Option<&Self::Dir>, name: &str, kind: Option<DirKind>) -> Result<Self::Dir>;

    /// Whether the kernel has a per-task patch state and what a transition needs to walk
    /// tasks (CONFIG_LIVEPATCH, the symbols found). Without it a patch switches every task
    /// at once, as the seed's core did.
    fn has_task_states(&self) -> bool;
    /// The size of the function starting at `addr` (0 if the kernel does not know it).
    fn function_size(&self, addr: usize) -> usize;
    /// Starts a transition: claims the per-task state for the core (EBUSY, nothing changed,
    /// while the in-kernel livepatch holds it or runs a transition of its own) and sets
    /// every task's state, idle tasks included, to `initial`. Never allocates.
    fn tasks_begin(&self, initial: i32) -> Result;
    /// One walk: switches to state `goal` each task not in it whose stack, reliably
    /// unwound, holds no address in `ranges` (a task running on another CPU, or whose
    /// stack cannot be unwound reliably, is not switched), and calls `blocked` for each
    /// task it could not switch (under the task list's lock: it must not sleep or take
    /// locks). Holds the task list locked only a few stack checks at a time, and reports
    /// the longest hold. Never allocates.
    fn tasks_switch(&self, goal: i32, ranges: &Ranges, blocked: &mut dyn FnMut(&Blocker)) -> WalkResult;
    /// Nudges each task not in state `goal`: wakes kernel threads sleeping interruptibly,
    /// sends user tasks a fake signal. Never allocates.
    fn tasks_nudge(&self, goal: i32) -> Nudged;
    /// The kernel's monotonic clock, in ms.
    fn now_ms(&self) -> u64;
    /// Where code address `addr` is, for a log line ("function+0x1a/0x40 [module]"),
    /// copied into `buf` (cut short if longer).
    fn describe_code<'b>(&self, addr: usize, buf: &'b mut [u8; 128]) -> &'b str;
    /// Switches each task to `goal` as it leaves a system call (None: stops doing so,
    /// once no task can be doing it). When it already switches to another goal (a
    /// reversal), it returns once no task can still be switched to the old one. An error
    /// leaves the walks to switch tasks.
    fn syscall_exit_switch(&self, goal: Option<i32>) -> Result;
    /// Ends a transition: waits for handler calls that may read task states, resets every
    /// task's state to UNDEFINED and releases the claim. Never allocates.
    fn tasks_end(&self);
}

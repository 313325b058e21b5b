//! A fake kernel behind the core's kernel interface ([`lpatch_logic::seam::Kernel`]), so
//! the core's logic runs under `cargo test` on the host: a kallsyms table (same-named
//! statics, modules), an ftrace filter with 6.1's rules that can be told to fail, modules
//! with states and reference counts, sysfs directories, the taint, the published
//! redirection table and the log. It checks as it goes (an unbalanced module put, a
//! directory removed before its children) and [`Fake::check_invariants`] checks the end
//! state of a test against the core's.
//!
//! One [`Fake`] is one machine; clones share it (the core owns one, the test keeps
//! another to stage events and look inside).

pub mod fail_nth;

use fail_nth::Suspended;
use lpatch_logic::core::Core;
use lpatch_logic::error::{Error, Result};
use lpatch_logic::log::Level;
use lpatch_logic::model::{FuncDesc, ObjectDesc, PatchDesc};
use lpatch_logic::redirect::Table;
use lpatch_logic::reloc::{RelaDesc, RelaSectionDesc, SHF_ALLOC, SHN_LIVEPATCH};
use lpatch_logic::seam::{DirKind, Kernel, ModuleRef, SysfsDir};
use lpatch_logic::transition::{Blocked, Blocker, Nudged, Ranges, WalkResult, UNDEFINED};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

/// A module's identity on the fake machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModId(pub u32);

/// The life of a module, as the module loader has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModState {
    Coming,
    Live,
    Going,
}

#[derive(Debug)]
struct Module {
    name: String,
    state: ModState,
    refs: i64,
    /// References given up without a put (ModuleRef::forget): a pinned patch module's,
    /// or one on a module already going.
    forgotten: i64,
}

#[derive(Debug, Clone)]
struct Symbol {
    name: String,
    addr: usize,
    module: Option<ModId>,
    traceable: bool,
    /// In its module's init text (listed only while the module is COMING).
    init: bool,
}

#[derive(Debug)]
struct DirNode {
    parent: Option<usize>,
    name: String,
    kind: Option<DirKind>,
}

#[derive(Default)]
struct State {
    log: Vec<(Level, String)>,
    taints: u32,
    kaslr_offset: usize,
    symbols: Vec<Symbol>,
    modules: BTreeMap<ModId, Module>,
    next_mod: u32,
    next_addr: usize,
    filter: BTreeSet<usize>,
    /// Whether the core's ftrace_ops is registered (its filter traced).
    registered: bool,
    /// sysctl kernel.ftrace_enabled=0: registering fails with EBUSY.
    ftrace_off: bool,
    /// The next ops_unregister fails with this.
    fail_unregister: Option<Error>,
    /// Call sites another ftrace user modifies (IPMODIFY): adding one fails with EBUSY.
    owned_elsewhere: BTreeSet<usize>,
    /// The next filter_add or ops_register (whichever adds call sites to what is traced)
    /// fails with this.
    fail_add: Option<Error>,
    /// The next try_get fails (try_module_get refusing).
    fail_get: bool,
    /// The next filter_set fails with this (ftrace out of memory copying its filter).
    fail_set: Option<Error>,
    filter_updates: u32,
    published: Option<Table>,
    dirs: BTreeMap<usize, DirNode>,
    next_dir: usize,
    /// Kernel memory as relocations write it (unset bytes read as 0).
    mem: BTreeMap<usize, u8>,
    /// Writes through `poke`, and `poke_sync` calls.
    pokes: u32,
    syncs: u32,
    /// The poke after this many more fails (EINVAL, as for a range outside the module).
    fail_poke_in: Option<u32>,
    /// What the fake saw go wrong (an unbalanced put, a directory removed before its
    /// children): every test asserts it stays empty.
    violations: Vec<String>,
    /// The machine's tasks (idle tasks among them), for transitions.
    tasks: Vec<Task>,
    /// The kernel has no per-task patch state (no CONFIG_LIVEPATCH).
    no_task_states: bool,
    /// Whether the core has claimed the per-task state (tasks_begin..tasks_end).
    claimed: bool,
    /// The in-kernel livepatch holds the per-task state: tasks_begin fails with EBUSY.
    klp_busy: bool,
    /// The state tasks switch to at system call exit, while the core asks for it.
    syscall_switch: Option<i32>,
    /// Registering the system call exit switch fails with this.
    fail_syscall_switch: Option<Error>,
    /// Walks made (tasks_switch calls), and registrations of the system call exit switch.
    walks: u32,
    syscall_switches: u32,
    /// The monotonic clock, ms.
    clock_ms: u64,
}

/// A task of the fake machine: its per-task patch state and what a walk would find.
#[derive(Debug, Clone)]
struct Task {
    state: i32,
    /// Return addresses on its stack.
    stack: Vec<usize>,
    /// Running on another CPU: a walk cannot look at its stack.
    running: bool,
    /// Its stack cannot be unwound reliably.
    unreliable: bool,
    /// A kernel thread (woken by a nudge) rather than a user task (sent a fake signal).
    kthread: bool,
    comm: String,
    /// Nudges it got.
    nudges: u32,
}

/// A task's identity on the fake machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskId(pub usize);

/// The size the fake gives every function of its symbol table (they are 0x100 apart); a
/// replacement (not in the table) is 0x10.
pub const FUNC_SIZE: usize = 0x100;

impl State {
    /// Whether `ip` is the ftrace call site of a traceable function ftrace knows now.
    fn is_call_site(&self, ip: usize) -> bool {
        self.symbols
            .iter()
            .any(|y| y.traceable && call_site(y.addr) == ip)
    }
}

/// The fake machine. Clones share it.
#[derive(Clone)]
pub struct Fake(Rc<RefCell<State>>);

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

/// The ftrace call site of a function at `addr` (after its 4-byte endbr64, as on x86-64).
pub fn call_site(addr: usize) -> usize {
    addr + 4
}

impl Fake {
    pub fn new() -> Fake {
        Fake(Rc::new(RefCell::new(State {
            next_addr: 0xffff_ffff_8100_0000,
            next_mod: 1,
            next_dir: 1,
            ..State::default()
        })))
    }

    /// A core over this machine, with its sysfs root made.
    pub fn core(&self) -> Core<Fake> {
        let root = self.mkdir(None, "lpatch", None).expect("root directory");
        Core::new(self.clone(), root)
    }

    fn add_symbol(&self, name: &str, module: Option<ModId>, traceable: bool) -> usize {
        let mut s = self.0.borrow_mut();
        let addr = s.next_addr;
        s.next_addr += 0x100;
        s.symbols.push(Symbol {
            name: name.to_string(),
            addr,
            module,
            traceable,
            init: false,
        });
        addr
    }

    /// An `__init` function of a COMING module: traceable, and gone (its text freed, its
    /// symbol no longer listed) once the module is LIVE.
    pub fn init_fn(&self, m: ModId, name: &str) -> usize {
        let addr = self.add_symbol(name, Some(m), true);
        let mut s = self.0.borrow_mut();
        if let Some(y) = s.symbols.iter_mut().find(|y| y.addr == addr) {
            y.init = true;
        }
        addr
    }

    /// A traceable vmlinux function; its address.
    pub fn vmlinux_fn(&self, name: &str) -> usize {
        self.add_symbol(name, None, true)
    }

    /// A second name for the function at `of` (an alias, or functions GCC folded into one),
    /// in the same object; its address (`of`).
    pub fn alias(&self, name: &str, of: usize) -> usize {
        let mut s = self.0.borrow_mut();
        let target = s
            .symbols
            .iter()
            .find(|y| y.addr == of)
            .expect("alias of a known symbol");
        let (module, traceable) = (target.module, target.traceable);
        s.symbols.push(Symbol {
            name: name.to_string(),
            addr: of,
            module,
            traceable,
            init: false,
        });
        of
    }

    /// A symbol of module `m` that is not a traceable function (a variable, a notrace
    /// helper); its address.
    pub fn module_data(&self, m: ModId, name: &str) -> usize {
        self.add_symbol(name, Some(m), false)
    }

    /// `n` bytes of memory at `addr`.
    pub fn mem(&self, addr: usize, n: usize) -> Vec<u8> {
        let s = self.0.borrow();
        (addr..addr + n)
            .map(|a| s.mem.get(&a).copied().unwrap_or(0))
            .collect()
    }

    /// Sets memory at `addr`.
    pub fn set_mem(&self, addr: usize, bytes: &[u8]) {
        let mut s = self.0.borrow_mut();
        for (i, &b) in bytes.iter().enumerate() {
            s.mem.insert(addr + i, b);
        }
    }

    /// Writes done through `poke`, and `poke_sync` calls.
    pub fn pokes(&self) -> (u32, u32) {
        let s = self.0.borrow();
        (s.pokes, s.syncs)
    }

    /// The poke after `n` more succeed fails.
    pub fn fail_poke_after(&self, n: u32) {
        self.0.borrow_mut().fail_poke_in = Some(n);
    }

    /// A vmlinux function ftrace cannot trace (notrace, or not a function start).
    pub fn vmlinux_untraceable(&self, name: &str) -> usize {
        self.add_symbol(name, None, false)
    }

    /// A module in state COMING with the given traceable functions (their addresses in
    /// order): as the loader has it when it calls the notifiers.
    pub fn module_coming(&self, name: &str, funcs: &[&str]) -> (ModId, Vec<usize>) {
        let id = {
            let mut s = self.0.borrow_mut();
            let id = ModId(s.next_mod);
            s.next_mod += 1;
            s.modules.insert(
                id,
                Module {
                    name: name.to_string(),
                    state: ModState::Coming,
                    refs: 0,
                    forgotten: 0,
                },
            );
            id
        };
        let addrs = funcs
            .iter()
            .map(|f| self.add_symbol(f, Some(id), true))
            .collect();
        (id, addrs)
    }

    /// A module COMING whose functions start at `at`: where a freed module's were, as the
    /// allocator may place the next one.
    pub fn module_coming_at(&self, at: usize, name: &str, funcs: &[&str]) -> (ModId, Vec<usize>) {
        let next = std::mem::replace(&mut self.0.borrow_mut().next_addr, at);
        let r = self.module_coming(name, funcs);
        let mut s = self.0.borrow_mut();
        s.next_addr = s.next_addr.max(next);
        r
    }

    /// The addresses of every symbol named `name`, in kallsyms order.
    pub fn symbol_addrs(&self, name: &str) -> Vec<usize> {
        self.0
            .borrow()
            .symbols
            .iter()
            .filter(|y| y.name == name)
            .map(|y| y.addr)
            .collect()
    }

    /// A module's new state. Going LIVE frees its init text (its `__init` symbols).
    pub fn set_state(&self, m: ModId, state: ModState) {
        let mut s = self.0.borrow_mut();
        s.modules.get_mut(&m).expect("module").state = state;
        if state == ModState::Live {
            s.symbols.retain(|y| !(y.init && y.module == Some(m)));
        }
    }

    /// A module's load done: COMING, then LIVE.
    pub fn module_live(&self, name: &str, funcs: &[&str]) -> (ModId, Vec<usize>) {
        let r = self.module_coming(name, funcs);
        self.set_state(r.0, ModState::Live);
        r
    }

    /// The module is gone (after its GOING notification): its symbols with it.
    pub fn module_freed(&self, m: ModId) {
        let mut s = self.0.borrow_mut();
        s.modules.remove(&m);
        s.symbols.retain(|y| y.module != Some(m));
    }

    pub fn refs(&self, m: ModId) -> i64 {
        self.0.borrow().modules.get(&m).map_or(0, |x| x.refs)
    }

    pub fn set_kaslr_offset(&self, off: usize) {
        let mut s = self.0.borrow_mut();
        let old = s.kaslr_offset;
        for y in s.symbols.iter_mut().filter(|y| y.module.is_none()) {
            y.addr = y.addr - old + off;
        }
        s.kaslr_offset = off;
    }

    /// Another ftrace user (a kprobe with a post handler, the in-kernel livepatch) owns the
    /// call site of the function at `addr`.
    pub fn owned_elsewhere(&self, addr: usize) {
        self.0.borrow_mut().owned_elsewhere.insert(call_site(addr));
    }

    pub fn fail_next_try_get(&self) {
        self.0.borrow_mut().fail_get = true;
    }

    pub fn fail_next_filter_add(&self, e: Error) {
        self.0.borrow_mut().fail_add = Some(e);
    }

    pub fn fail_next_filter_set(&self, e: Error) {
        self.0.borrow_mut().fail_set = Some(e);
    }

    /// The call sites the core's ftrace_ops traces now: its filter while it is registered,
    /// nothing otherwise.
    pub fn filter(&self) -> BTreeSet<usize> {
        let s = self.0.borrow();
        if s.registered {
            s.filter.clone()
        } else {
            BTreeSet::new()
        }
    }

    /// Whether a redirection table is published to the handler.
    pub fn table_published(&self) -> bool {
        self.0.borrow().published.is_some()
    }

    /// Whether the core's ftrace_ops is registered.
    pub fn ops_registered(&self) -> bool {
        self.0.borrow().registered
    }

    /// `sysctl kernel.ftrace_enabled=0` (true) or 1: refused (false returned) while the
    /// core's ops is registered, as ftrace refuses it while a permanent ops is.
    pub fn set_ftrace_off(&self, off: bool) -> bool {
        let mut s = self.0.borrow_mut();
        if off && s.registered {
            return false;
        }
        s.ftrace_off = off;
        true
    }

    pub fn fail_next_unregister(&self, e: Error) {
        self.0.borrow_mut().fail_unregister = Some(e);
    }

    /// How many ftrace updates (changes of what is traced) succeeded.
    pub fn filter_updates(&self) -> u32 {
        self.0.borrow().filter_updates
    }

    /// Where a call of the function at `addr` goes now (what the ftrace handler would do):
    /// its replacement, or `addr` itself.
    pub fn call(&self, addr: usize) -> usize {
        let s = self.0.borrow();
        let ip = call_site(addr);
        if !s.registered || !s.filter.contains(&ip) {
            return addr;
        }
        // A task outside the machine's list: no state (as after a transition).
        match s
            .published
            .as_ref()
            .map_or(0, |t| t.target(ip, || UNDEFINED))
        {
            0 => addr,
            t => t,
        }
    }

    pub fn tainted(&self) -> bool {
        self.0.borrow().taints > 0
    }

    /// Every log line so far, "level: text".
    pub fn log(&self) -> Vec<String> {
        self.0
            .borrow()
            .log
            .iter()
            .map(|(l, t)| format!("{l:?}: {t}"))
            .collect()
    }

    /// Whether some log line holds every one of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.0
            .borrow()
            .log
            .iter()
            .any(|(_, t)| parts.iter().all(|p| t.contains(p)))
    }

    pub fn clear_log(&self) {
        self.0.borrow_mut().log.clear();
    }

    /// The sysfs paths that exist now (below the root), sorted.
    pub fn dirs(&self) -> Vec<String> {
        let ids: Vec<usize> = self.0.borrow().dirs.keys().copied().collect();
        let mut v: Vec<String> = ids.into_iter().map(|id| self.path_of(id)).collect();
        v.sort();
        v
    }

    /// The id of the directory at `path` (as [`Fake::dirs`] spells it).
    pub fn dir_id(&self, path: &str) -> Option<usize> {
        let ids: Vec<usize> = self.0.borrow().dirs.keys().copied().collect();
        ids.into_iter().find(|&id| self.path_of(id) == path)
    }

    /// Which attributes the directory at `path` has (None: a plain directory).
    pub fn dir_kind(&self, path: &str) -> Option<DirKind> {
        let id = self.dir_id(path)?;
        self.0.borrow().dirs.get(&id).and_then(|d| d.kind)
    }

    fn path_of(&self, mut id: usize) -> String {
        let s = self.0.borrow();
        let mut parts = Vec::new();
        while let Some(d) = s.dirs.get(&id) {
            parts.push(d.name.clone());
            match d.parent {
                Some(p) => id = p,
                None => break,
            }
        }
        parts.reverse();
        parts.join("/")
    }

    /// A task sleeping with these return addresses on its stack (state UNDEFINED, or the
    /// transition's initial state if one runs: as if it existed when the transition began).
    pub fn add_task(&self, stack: &[usize]) -> TaskId {
        let mut s = self.0.borrow_mut();
        let state = s.tasks.first().map_or(UNDEFINED, |t| t.state);
        let comm = format!("task{}", s.tasks.len());
        s.tasks.push(Task {
            state,
            stack: stack.to_vec(),
            running: false,
            unreliable: false,
            kthread: false,
            comm,
            nudges: 0,
        });
        TaskId(s.tasks.len() - 1)
    }

    /// A task's pid on the fake machine.
    pub fn pid(&self, t: TaskId) -> i32 {
        t.0 as i32 + 100
    }

    /// Makes `t` a kernel thread named `comm`.
    pub fn set_kthread(&self, t: TaskId, comm: &str) {
        let mut s = self.0.borrow_mut();
        s.tasks[t.0].kthread = true;
        s.tasks[t.0].comm = comm.into();
    }

    /// The nudges (wake-ups or fake signals) task `t` got.
    pub fn nudges(&self, t: TaskId) -> u32 {
        self.0.borrow().tasks[t.0].nudges
    }

    /// Moves the fake's monotonic clock on.
    pub fn advance_ms(&self, ms: u64) {
        self.0.borrow_mut().clock_ms += ms;
    }

    /// A child of `parent`: its state is the parent's (copy_process copies it).
    pub fn fork(&self, parent: TaskId) -> TaskId {
        let mut s = self.0.borrow_mut();
        let mut t = s.tasks[parent.0].clone();
        t.stack.clear();
        t.running = false;
        t.nudges = 0;
        s.tasks.push(t);
        TaskId(s.tasks.len() - 1)
    }

    pub fn set_stack(&self, t: TaskId, stack: &[usize]) {
        self.0.borrow_mut().tasks[t.0].stack = stack.to_vec();
    }

    pub fn set_running(&self, t: TaskId, running: bool) {
        self.0.borrow_mut().tasks[t.0].running = running;
    }

    pub fn set_unreliable(&self, t: TaskId, unreliable: bool) {
        self.0.borrow_mut().tasks[t.0].unreliable = unreliable;
    }

    pub fn task_state(&self, t: TaskId) -> i32 {
        self.0.borrow().tasks[t.0].state
    }

    /// Task `t` returns from a system call: switched if the core asks for that now.
    pub fn syscall_exit(&self, t: TaskId) {
        let mut s = self.0.borrow_mut();
        if let Some(goal) = s.syscall_switch {
            s.tasks[t.0].state = goal;
        }
    }

    /// The kernel has no per-task patch state: patches switch every task at once.
    pub fn set_no_task_states(&self) {
        self.0.borrow_mut().no_task_states = true;
    }

    /// The in-kernel livepatch holds the per-task state (its transition runs).
    pub fn set_klp_busy(&self, busy: bool) {
        self.0.borrow_mut().klp_busy = busy;
    }

    pub fn fail_next_syscall_switch(&self, e: Error) {
        self.0.borrow_mut().fail_syscall_switch = Some(e);
    }

    /// Whether tasks are switched at system call exit now.
    pub fn syscall_switching(&self) -> Option<i32> {
        self.0.borrow().syscall_switch
    }

    /// Walks made so far.
    pub fn walks(&self) -> u32 {
        self.0.borrow().walks
    }

    /// How many times the system call exit switch was turned on.
    pub fn syscall_switches(&self) -> u32 {
        self.0.borrow().syscall_switches
    }

    /// Where a call of the function at `addr` by task `t` goes now: its state decides
    /// during a transition.
    pub fn call_as(&self, t: TaskId, addr: usize) -> usize {
        let s = self.0.borrow();
        let ip = call_site(addr);
        if !s.registered || !s.filter.contains(&ip) {
            return addr;
        }
        let state = s.tasks[t.0].state;
        match s.published.as_ref().map_or(0, |tb| tb.target(ip, || state)) {
            0 => addr,
            x => x,
        }
    }

    /// What the fake saw go wrong.
    pub fn violations(&self) -> Vec<String> {
        self.0.borrow().violations.clone()
    }

    /// The end-of-test checks, against the core's own records: no violation seen; the
    /// filter holds exactly the call sites the core redirects; every module reference held
    /// is one the core accounts for (`held`: the modules the test expects referenced, with
    /// their counts).
    #[track_caller]
    pub fn check_invariants(&self, core: &Core<Fake>, held: &[(ModId, i64)]) {
        assert_eq!(self.violations(), Vec::<String>::new(), "violations");
        if core.transition().is_none() {
            let s = self.0.borrow();
            assert!(
                !s.claimed,
                "the per-task state is still claimed after the transition"
            );
            assert_eq!(s.syscall_switch, None, "system call exit switch left on");
            assert!(
                s.tasks.iter().all(|t| t.state == UNDEFINED),
                "task states not reset after the transition"
            );
        }
        let redirected: BTreeSet<usize> = core.redirected_ips().collect();
        assert_eq!(
            self.filter(),
            redirected,
            "ftrace filter vs the core's records"
        );
        let s = self.0.borrow();
        for (id, m) in &s.modules {
            let want = held.iter().find(|(h, _)| h == id).map_or(0, |&(_, n)| n);
            assert_eq!(m.refs, want, "references on module {} ({id:?})", m.name);
        }
        // The core's own account: a reference for each object it holds one for; the rest
        // must be references it gave up on purpose (a patch module pinned for good).
        let mut accounted: BTreeMap<ModId, i64> = BTreeMap::new();
        for p in &core.patches {
            if let Some(r) = &p.pin {
                *accounted.entry(r.module()).or_default() += 1;
            }
            for o in &p.objects {
                if let Some(r) = &o.held {
                    *accounted.entry(r.module()).or_default() += 1;
                }
            }
        }
        for (id, m) in &s.modules {
            assert_eq!(
                m.refs - m.forgotten,
                accounted.get(id).copied().unwrap_or(0),
                "references on module {} the core does not account for ({} given up)",
                m.name,
                m.forgotten
            );
        }
    }
}

/// A reference the fake counts.
pub struct FakeRef {
    fake: Fake,
    m: ModId,
}

impl fmt::Debug for FakeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeRef({:?})", self.m)
    }
}

impl ModuleRef<ModId> for FakeRef {
    fn module(&self) -> ModId {
        self.m
    }

    fn forget(self) {
        let _s = Suspended::new();
        if let Some(m) = self.fake.0.borrow_mut().modules.get_mut(&self.m) {
            m.forgotten += 1;
        }
        std::mem::forget(self)
    }
}

impl Drop for FakeRef {
    fn drop(&mut self) {
        let _s = Suspended::new();
        let mut s = self.fake.0.borrow_mut();
        match s.modules.get_mut(&self.m) {
            Some(m) if m.refs > 0 => m.refs -= 1,
            Some(m) => {
                let msg = format!("module_put of {} with no reference held", m.name);
                s.violations.push(msg);
            }
            None => {
                let msg = format!("module_put of freed module {:?}", self.m);
                s.violations.push(msg);
            }
        }
    }
}

/// A fake sysfs directory; removed when dropped.
pub struct FakeDir {
    fake: Fake,
    id: usize,
}

impl SysfsDir for FakeDir {
    fn id(&self) -> usize {
        self.id
    }
}

impl Drop for FakeDir {
    fn drop(&mut self) {
        let _s = Suspended::new();
        let mut s = self.fake.0.borrow_mut();
        if s.dirs.values().any(|d| d.parent == Some(self.id)) {
            let msg = format!("directory {} removed before its children", self.id);
            s.violations.push(msg);
        }
        s.dirs.remove(&self.id);
    }
}

impl Kernel for Fake {
    type Module = ModId;
    type ModRef = FakeRef;
    type Dir = FakeDir;
    type Retired = Option<Table>;

    fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        let _s = Suspended::new();
        self.0.borrow_mut().log.push((level, args.to_string()));
    }

    fn taint_livepatch(&self) {
        let _s = Suspended::new();
        self.0.borrow_mut().taints += 1;
    }

    fn kaslr_offset(&self) -> usize {
        let _s = Suspended::new();
        self.0.borrow().kaslr_offset
    }

    fn for_each_symbol(&self, object: Option<ModId>, f: &mut dyn FnMut(&[u8], usize)) {
        let s = Suspended::new();
        let syms: Vec<Symbol> = self
            .0
            .borrow()
            .symbols
            .iter()
            .filter(|y| y.module == object)
            .cloned()
            .collect();
        // The core's callback runs as it would in the kernel: its allocations count.
        drop(s);
        for y in &syms {
            f(y.name.as_bytes(), y.addr);
        }
        let _s = Suspended::new();
        drop(syms);
    }

    fn ftrace_location(&self, addr: usize) -> Option<usize> {
        let _s = Suspended::new();
        let s = self.0.borrow();
        s.symbols
            .iter()
            .find(|y| y.addr == addr && y.traceable)
            .map(|y| call_site(y.addr))
    }

    fn module_name<'b>(&self, m: ModId, buf: &'b mut [u8; 64]) -> &'b str {
        let _s = Suspended::new();
        let s = self.0.borrow();
        let name = s
            .modules
            .get(&m)
            .map_or("?", |x| x.name.as_str())
            .as_bytes();
        let n = name.len().min(buf.len());
        buf[..n].copy_from_slice(&name[..n]);
        std::str::from_utf8(&buf[..n]).unwrap_or("?")
    }

    fn in_module_init(&self, m: ModId, addr: usize) -> bool {
        let _s = Suspended::new();
        self.0
            .borrow()
            .symbols
            .iter()
            .any(|y| y.init && y.module == Some(m) && y.addr == addr)
    }

    fn module_initialising(&self, m: ModId) -> bool {
        let _s = Suspended::new();
        self.0
            .borrow()
            .modules
            .get(&m)
            .is_some_and(|x| x.state == ModState::Coming)
    }

    fn try_get(&self, m: ModId) -> Option<FakeRef> {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if std::mem::take(&mut s.fail_get) {
            return None;
        }
        let x = s.modules.get_mut(&m)?;
        if x.state == ModState::Going {
            return None;
        }
        x.refs += 1;
        Some(FakeRef {
            fake: self.clone(),
            m,
        })
    }

    fn find_loaded(
        &self,
        name: &str,
        accept: &dyn Fn(ModId, bool) -> bool,
    ) -> Result<Option<FakeRef>> {
        let _s = Suspended::new();
        let found = {
            let s = self.0.borrow();
            s.modules
                .iter()
                .find(|(_, x)| x.name == name && x.state != ModState::Going)
                .map(|(&id, x)| (id, x.state == ModState::Live))
        };
        Ok(match found {
            Some((id, live)) if accept(id, live) => self.try_get(id),
            _ => None,
        })
    }

    fn filter_add(&self, ips: &mut [usize]) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if let Some(e) = s.fail_add.take() {
            return Err(e);
        }
        // 6.1: each ip must be a call site; an IPMODIFY ops may not share one with another.
        for ip in ips.iter() {
            if !s.is_call_site(*ip) {
                return Err(Error::EINVAL);
            }
            if s.owned_elsewhere.contains(ip) {
                return Err(Error::EBUSY);
            }
        }
        s.filter.extend(ips.iter().copied());
        if s.registered {
            s.filter_updates += 1;
        }
        Ok(())
    }

    fn filter_set(&self, sites: &mut [usize]) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if let Some(e) = s.fail_set.take() {
            return Err(e);
        }
        // An empty filter traces every function.
        if sites.is_empty() {
            s.violations.push("filter_set with no call site".into());
            return Err(Error::EINVAL);
        }
        // 6.1: each ip must be a call site ftrace knows (a freed module's are gone).
        if let Some(ip) = sites.iter().find(|&&ip| !s.is_call_site(ip)) {
            s.violations
                .push(format!("filter_set with {ip:#x}, which is no call site"));
            return Err(Error::EINVAL);
        }
        s.filter = sites.iter().copied().collect();
        if s.registered {
            s.filter_updates += 1;
        }
        Ok(())
    }

    fn ops_register(&self) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if s.registered {
            s.violations.push("ops_register while registered".into());
            return Err(Error::EBUSY);
        }
        if let Some(e) = s.fail_add.take() {
            return Err(e);
        }
        if s.ftrace_off {
            return Err(Error::EBUSY);
        }
        if s.filter.is_empty() {
            s.violations
                .push("ops_register with an empty filter".into());
        }
        if s.filter.iter().any(|ip| s.owned_elsewhere.contains(ip)) {
            return Err(Error::EBUSY);
        }
        s.registered = true;
        s.filter_updates += 1;
        Ok(())
    }

    fn ops_unregister(&self) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if let Some(e) = s.fail_unregister.take() {
            return Err(e);
        }
        if !s.registered {
            s.violations
                .push("ops_unregister while not registered".into());
        }
        s.registered = false;
        s.filter_updates += 1;
        Ok(())
    }

    fn ftrace_off(&self) -> bool {
        let _s = Suspended::new();
        self.0.borrow().ftrace_off
    }

    fn publish(&self, table: Option<Table>) -> Result<Option<Table>> {
        let _s = Suspended::new();
        Ok(std::mem::replace(&mut self.0.borrow_mut().published, table))
    }

    fn restore(&self, old: Option<Table>) -> Option<Table> {
        let _s = Suspended::new();
        std::mem::replace(&mut self.0.borrow_mut().published, old)
    }

    fn with_published(&self, f: &mut dyn FnMut(&Table)) {
        let _s = Suspended::new();
        if let Some(t) = self.0.borrow().published.as_ref() {
            f(t)
        }
    }

    fn read_mem(&self, addr: usize, buf: &mut [u8]) -> Result {
        let _s = Suspended::new();
        let s = self.0.borrow();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = s.mem.get(&(addr + i)).copied().unwrap_or(0);
        }
        Ok(())
    }

    fn poke(&self, _pmod: ModId, addr: usize, bytes: &[u8]) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        match s.fail_poke_in {
            Some(0) => {
                s.fail_poke_in = None;
                return Err(Error::EINVAL);
            }
            Some(n) => s.fail_poke_in = Some(n - 1),
            None => {}
        }
        for (i, &b) in bytes.iter().enumerate() {
            s.mem.insert(addr + i, b);
        }
        s.pokes += 1;
        Ok(())
    }

    fn poke_sync(&self) {
        let _s = Suspended::new();
        self.0.borrow_mut().syncs += 1;
    }

    fn mkdir(
        &self,
        parent: Option<&FakeDir>,
        name: &str,
        kind: Option<DirKind>,
    ) -> Result<FakeDir> {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        let parent = parent.map(|p| p.id);
        if s.dirs
            .values()
            .any(|d| d.parent == parent && d.name == name)
        {
            // sysfs: "cannot create duplicate filename"
            return Err(Error::EEXIST);
        }
        let id = s.next_dir;
        s.next_dir += 1;
        s.dirs.insert(
            id,
            DirNode {
                parent,
                name: name.to_string(),
                kind,
            },
        );
        Ok(FakeDir {
            fake: self.clone(),
            id,
        })
    }

    fn has_task_states(&self) -> bool {
        let _s = Suspended::new();
        !self.0.borrow().no_task_states
    }

    fn function_size(&self, addr: usize) -> usize {
        let _s = Suspended::new();
        // Old functions are the fake's symbols; replacements (patch_desc's, 0x10 apart)
        // are not.
        if self.0.borrow().symbols.iter().any(|y| y.addr == addr) {
            FUNC_SIZE
        } else {
            0x10
        }
    }

    fn tasks_begin(&self, initial: i32) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if s.klp_busy {
            return Err(Error::EBUSY);
        }
        if s.claimed {
            s.violations
                .push("tasks_begin with the per-task state already claimed".into());
            return Err(Error::EBUSY);
        }
        s.claimed = true;
        for t in &mut s.tasks {
            t.state = initial;
        }
        Ok(())
    }

    fn tasks_switch(
        &self,
        goal: i32,
        ranges: &Ranges,
        blocked: &mut dyn FnMut(&Blocker),
    ) -> WalkResult {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if !s.claimed {
            s.violations.push("tasks_switch without a claim".into());
        }
        s.walks += 1;
        let mut r = WalkResult::default();
        for (n, t) in s.tasks.iter_mut().enumerate() {
            if t.state == goal {
                continue;
            }
            let why = if t.running {
                r.running += 1;
                Blocked::Running
            } else if t.unreliable {
                r.unreliable += 1;
                Blocked::Unreliable
            } else if let Some(&a) = t.stack.iter().find(|&&a| ranges.hit(a).is_some()) {
                r.in_patched_code += 1;
                Blocked::InCode(a)
            } else {
                t.state = goal;
                continue;
            };
            r.remaining += 1;
            let mut comm = [0u8; 16];
            let len = t.comm.len().min(15);
            comm[..len].copy_from_slice(&t.comm.as_bytes()[..len]);
            blocked(&Blocker {
                pid: n as i32 + 100,
                comm,
                why,
            });
        }
        r
    }

    fn tasks_nudge(&self, goal: i32) -> Nudged {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        let mut n = Nudged::default();
        for t in s.tasks.iter_mut().filter(|t| t.state != goal) {
            t.nudges += 1;
            if t.kthread {
                n.kthreads += 1;
            } else {
                n.user += 1;
            }
        }
        n
    }

    fn now_ms(&self) -> u64 {
        let _s = Suspended::new();
        self.0.borrow().clock_ms
    }

    fn describe_code<'b>(&self, addr: usize, buf: &'b mut [u8; 128]) -> &'b str {
        let _s = Suspended::new();
        let s = self.0.borrow();
        let text = match s
            .symbols
            .iter()
            .find(|y| y.addr <= addr && addr < y.addr + FUNC_SIZE)
        {
            Some(y) => format!("{}+{:#x}/{:#x}", y.name, addr - y.addr, FUNC_SIZE),
            None => format!("{addr:#x}"),
        };
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        std::str::from_utf8(&buf[..n]).unwrap_or("?")
    }

    fn syscall_exit_switch(&self, goal: Option<i32>) -> Result {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if goal.is_some() {
            if let Some(e) = s.fail_syscall_switch.take() {
                return Err(e);
            }
        }
        s.syscall_switch = goal;
        s.syscall_switches += goal.is_some() as u32;
        Ok(())
    }

    fn tasks_end(&self) {
        let _s = Suspended::new();
        let mut s = self.0.borrow_mut();
        if !s.claimed {
            s.violations.push("tasks_end without a claim".into());
        }
        if s.syscall_switch.is_some() {
            s.violations
                .push("tasks_end with the system call exit switch on".into());
        }
        s.claimed = false;
        for t in &mut s.tasks {
            t.state = UNDEFINED;
        }
    }
}

/// A function of a test patch: (name, old_sympos, old_addr).
pub type FuncSpec<'a> = (&'a str, usize, usize);
/// An object of a test patch: (module name, None for vmlinux; its functions).
pub type ObjectSpec<'a> = (Option<&'a str>, &'a [FuncSpec<'a>]);

/// A patch description for the tests: `objects` as (object name or None for vmlinux,
/// [(function, sympos, old_addr)]), replacements at made-up addresses.
pub fn patch_desc(
    key: usize,
    module: ModId,
    name: &str,
    objects: &[ObjectSpec<'_>],
) -> PatchDesc<ModId> {
    let mut next_new = 0xffff_ffff_c000_0000 + key * 0x1000;
    PatchDesc {
        key,
        module,
        name: name.to_string(),
        objects: objects
            .iter()
            .map(|(o, funcs)| ObjectDesc {
                name: o.map(str::to_string),
                funcs: funcs
                    .iter()
                    .map(|&(f, sympos, old_addr)| {
                        next_new += 0x10;
                        FuncDesc {
                            old_name: f.to_string(),
                            new_func: next_new,
                            old_addr,
                            old_sympos: sympos,
                            old_code: None,
                        }
                    })
                    .collect(),
            })
            .collect(),
        relocs: Vec::new(),
    }
}

/// One relocation of a test patch: (offset in the target section, ELF type, addend,
/// symbol name as the patch module's symtab has it).
pub type RelaSpec<'a> = (u64, u32, i64, &'a str);

/// A relocation section of a patch module, its target section `target` loaded at `addr`
/// (`size` bytes, allocated), every symbol marked SHN_LIVEPATCH.
pub fn rela_section(
    name: &str,
    target: &str,
    addr: usize,
    size: usize,
    relas: &[RelaSpec<'_>],
) -> RelaSectionDesc {
    RelaSectionDesc {
        name: name.to_string(),
        target_name: target.to_string(),
        target_addr: addr,
        target_size: size,
        target_flags: SHF_ALLOC,
        relas: relas
            .iter()
            .map(|&(offset, kind, addend, sym)| RelaDesc {
                offset,
                kind,
                addend,
                sym_name: sym.to_string(),
                sym_shndx: SHN_LIVEPATCH,
            })
            .collect(),
    }
}

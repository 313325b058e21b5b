//! The core's state machine: registered patches, the stack of enabled ones, and every state
//! change — register, enable, disable, unregister, a module coming or going. The caller
//! (the kernel crate's entry points, or a host test) holds the one lock around every call
//! and drops what [`Core::take_buried`] returns after releasing it. Each step of enable is
//! undone on failure, so nothing is left half-applied.
//!
//! Register and enable (and a module coming) allocate what they need, and are refused
//! whole when they cannot. Every removal — disable, unregister, a module going, the
//! rollback of a failed enable or module load — allocates nothing: what it needs was
//! reserved by the register or enable before it.

use crate::error::{Error, Result};
use crate::fallible::{push_reserved, try_format, try_push};
use crate::log::Count;
use crate::model::{Object, Patch, PatchDesc};
use crate::redirect::{PatchId, Redirector};
use crate::reloc;
use crate::resolve::{resolve, Target};
use crate::seam::{DirKind, Kernel, ModuleRef, SysfsDir};
use crate::transition::{Blocked, Blocker, Goal, Ranges, Transition, WalkResult, STALL_REPORT_MS};
use alloc::vec::Vec;

/// Tasks a stalled transition names, at most, each time.
const SHOWN_BLOCKERS: usize = 8;

/// What the module notifier reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleEvent {
    Coming,
    /// Its init has returned.
    Live,
    Going,
    Other,
}

pub struct Core<K: Kernel> {
    /// Registered patches, in registration order.
    pub patches: Vec<Patch<K>>,
    /// Enabled patches, oldest first: only the last may be disabled.
    stack: Vec<PatchId>,
    next_id: PatchId,
    redirect: Redirector,
    /// The transition running, if any (one at a time).
    transition: Option<Transition>,
    tainted: bool,
    /// Modules whose COMING notification we have handled and whose GOING has not come.
    /// A module still COMING is patched only once it is here: before our notifier runs,
    /// ftrace may not have enabled its call sites yet (it warns if a filter already holds
    /// them), and the notifier will patch it anyway.
    arrived: Vec<K::Module>,
    /// Patches removed under the lock, to be dropped (sysfs directories removed) after it.
    /// Its spare capacity always covers every registered patch (reserved by register), so
    /// burying one never allocates.
    graveyard: Vec<Patch<K>>,
    /// /sys/kernel/lpatch (or /sys/kernel/livepatch); dropped after every patch directory.
    root: K::Dir,
    /// Last: whatever the kernel keeps for the core's lifetime (its ftrace_ops) goes after
    /// everything above.
    pub k: K,
}

impl<K: Kernel> Core<K> {
    /// A core with no patches, its sysfs root `root` (made by `k`).
    pub fn new(k: K, root: K::Dir) -> Self {
        Core {
            patches: Vec::new(),
            stack: Vec::new(),
            next_id: 1,
            redirect: Redirector::new(),
            transition: None,
            tainted: false,
            arrived: Vec::new(),
            graveyard: Vec::new(),
            root,
            k,
        }
    }

    /// A patch removed by the last calls, for the caller to drop once it has released the
    /// lock (removing a sysfs directory waits for its running callbacks, which take it);
    /// the caller takes the lock again for the next, until None. One at a time, so the
    /// graveyard keeps its capacity: taking allocates nothing either. A patch taken still
    /// `enabled` was removed with its module going away: nothing is redirected to its
    /// replacements any more, but calls redirected a moment before may still be running
    /// them, and the caller waits for those before the module's text is freed.
    pub fn take_buried(&mut self) -> Option<Patch<K>> {
        self.graveyard.pop()
    }

    /// The patch whose transition is running, and its goal.
    pub fn transition(&self) -> Option<(PatchId, Goal)> {
        self.transition.as_ref().map(|t| (t.patch, t.goal))
    }

    /// Whether patch `i` is enabled, or being enabled (a transition towards it running).
    pub fn enabled_or_enabling(&self, i: usize) -> bool {
        let p = &self.patches[i];
        match self.transition() {
            Some((id, goal)) if id == p.id => goal == Goal::Patched,
            _ => p.enabled,
        }
    }

    /// The call sites redirected now (each exactly once, in order).
    pub fn redirected_ips(&self) -> impl Iterator<Item = usize> + '_ {
        self.redirect.ips()
    }

    pub fn unregister(&mut self, key: usize) -> Result {
        let i = self.index_of_key(key, "unregister")?;
        if self.patches[i].enabled {
            log_err!(
                self.k,
                "cannot unregister patch {}: it is enabled (disable it first)",
                self.patches[i].name
            );
            return Err(Error::EBUSY);
        }
        let mut p = self.patches.remove(i);
        reloc::clear_patch(&self.k, &mut p);
        log_info!(self.k, "unregistered patch {}", p.name);
        self.bury(p);
        Ok(())
    }

    pub fn enable(&mut self, key: usize) -> Result {
        let i = self.index_of_key(key, "enable")?;
        self.enable_at(i)
    }

    pub fn disable(&mut self, key: usize) -> Result {
        let i = self.index_of_key(key, "disable")?;
        self.disable_at(i)
    }

    /// A module changed state (the module notifier).
    pub fn module_event(&mut self, event: ModuleEvent, m: K::Module) -> Result {
        match event {
            ModuleEvent::Coming => self.coming(m),
            ModuleEvent::Live => {
                self.live(m);
                Ok(())
            }
            ModuleEvent::Going => {
                self.going(m);
                Ok(())
            }
            ModuleEvent::Other => Ok(()),
        }
    }
}

/// (call site, replacement) of an object's functions.
fn entries_of<K: Kernel>(obj: &Object<K>, out: &mut Vec<(usize, usize)>) -> Result {
    out.try_reserve(obj.funcs.len()).map_err(|_| Error::ENOMEM)?;
    for f in &obj.funcs {
        let _ = push_reserved(out, (f.ip, f.new_func));
    }
    Ok(())
}

impl<K: Kernel> Core<K> {
    /// Moves a patch no longer registered to the graveyard (never allocates: register
    /// reserved its place).
    fn bury(&mut self, p: Patch<K>) {
        if let Err(p) = push_reserved(&mut self.graveyard, p) {
            // Cannot happen (register reserved a place for every patch). Dropping it here
            // would remove sysfs directories under the lock: it is leaked instead.
            log_err!(
                self.k,
                "no room reserved to remove patch {}: its records and sysfs directories leak",
                p.name
            );
            core::mem::forget(p);
        }
    }

    fn index_of_key(&self, key: usize, what: &str) -> Result<usize> {
        self.patches.iter().position(|p| p.key == key).ok_or_else(|| {
            log_err!(self.k, "{}: patch {:#x} is not registered", what, key);
            Error::EINVAL
        })
    }

    fn index_of_id(&self, id: PatchId) -> Option<usize> {
        self.patches.iter().position(|p| p.id == id)
    }

    /// The patch whose sysfs directory is `dir`.
    pub fn patch_by_dir(&self, dir: usize) -> Option<usize> {
        self.patches
            .iter()
            .position(|p| p.dir.as_ref().map(SysfsDir::id) == Some(dir))
    }

    fn validate(&self, desc: &PatchDesc<K::Module>) -> Result {
        let name = &desc.name;
        if desc.objects.iter().all(|o| o.funcs.is_empty()) {
            log_err!(self.k, "patch {}: no functions to patch", name);
            return Err(Error::EINVAL);
        }
        for (i, o) in desc.objects.iter().enumerate() {
            let oname = o.name.as_deref().unwrap_or("vmlinux");
            if desc.objects[..i].iter().any(|p| p.name == o.name) {
                log_err!(self.k, "patch {}: object {} is listed twice", name, oname);
                return Err(Error::EINVAL);
            }
            if let Some(f) = o.funcs.iter().find(|f| o.name.is_some() && f.old_addr != 0) {
                log_err!(
                    self.k,
                    "patch {}: function {} in module {}: old_addr is for vmlinux only",
                    name,
                    f.old_name,
                    oname
                );
                return Err(Error::EINVAL);
            }
            // Sorted by (name, sympos), a function listed twice sits next to its twin: this
            // stays O(n log n) for patches of thousands of functions.
            let mut keys: Vec<(&str, usize)> = Vec::new();
            keys.try_reserve_exact(o.funcs.len()).map_err(|_| Error::ENOMEM)?;
            for f in &o.funcs {
                let _ = push_reserved(&mut keys, (f.old_name.as_str(), f.old_sympos.max(1)));
            }
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                log_err!(
                    self.k,
                    "patch {}: function {} is listed twice in {}",
                    name,
                    w[0].0,
                    oname
                );
                return Err(Error::EINVAL);
            }
        }
        Ok(())
    }

    pub fn register(&mut self, mut desc: PatchDesc<K::Module>) -> Result {
        if let Some(p) = self.patches.iter().find(|p| p.key == desc.key || p.name == desc.name) {
            log_err!(self.k, "patch {} is already registered", p.name);
            return Err(Error::EEXIST);
        }
        self.validate(&desc)?;
        self.patches.try_reserve(1).map_err(|_| Error::ENOMEM)?;
        // A place in the graveyard for each patch there will be, this one included.
        self.graveyard
            .try_reserve(self.patches.len() + 1)
            .map_err(|_| Error::ENOMEM)?;
        let id = self.next_id;
        self.next_id += 1;
        let sections = core::mem::take(&mut desc.relocs);
        let mut p = Patch::from_desc(id, desc)?;
        reloc::assign(&self.k, &p.name, &sections, &mut p.objects)?;
        drop(sections);
        for oi in 0..p.objects.len() {
            if let Err(e) = self.resolve_if_loaded(&p.name, p.module, &mut p.objects[oi]) {
                reloc::clear_patch(&self.k, &mut p);
                return Err(e);
            }
        }
        if let Err(e) = self.make_dirs(&mut p) {
            reloc::clear_patch(&self.k, &mut p);
            self.bury(p);
            return Err(e);
        }
        log_info!(
            self.k,
            "registered patch {}: {} in {}",
            p.name,
            Count(p.func_count(), "function"),
            Count(p.objects.len(), "object")
        );
        let _ = push_reserved(&mut self.patches, p);
        Ok(())
    }

    /// Resolves an object's functions if the object is loaded (vmlinux always is), and
    /// applies the patch module's (`pmod`'s) relocations against a loaded module.
    fn resolve_if_loaded(&self, patch: &str, pmod: K::Module, obj: &mut Object<K>) -> Result {
        match &obj.name {
            None => resolve(&self.k, patch, obj, Target::Vmlinux),
            Some(name) => match self.patchable_module(name)? {
                Some(r) => {
                    resolve(&self.k, patch, obj, Target::Module(r.module()))?;
                    reloc::apply(&self.k, patch, pmod, obj, r.module())
                }
                None => {
                    obj.clear_addresses();
                    Ok(())
                }
            },
        }
    }

    /// The module named `name`, if it is loaded far enough to be patched (see `arrived`),
    /// with a reference.
    fn patchable_module(&self, name: &str) -> Result<Option<K::ModRef>> {
        self.k.find_loaded(name, &|m, live| live || self.arrived.contains(&m))
    }

    /// The patch's sysfs directories. Each is stored in the records as soon as it exists,
    /// also when a later one fails: dropping the records then removes children before
    /// their parents (fields drop in order: functions, then object; objects, then patch).
    fn make_dirs(&self, p: &mut Patch<K>) -> Result {
        let pdir = self.k.mkdir(Some(&self.root), &p.name, Some(DirKind::Patch))?;
        let r = self.make_object_dirs(&pdir, &mut p.objects);
        p.dir = Some(pdir);
        r
    }

    fn make_object_dirs(&self, pdir: &K::Dir, objects: &mut [Object<K>]) -> Result {
        for obj in objects {
            let odir = self.k.mkdir(Some(pdir), obj.display_name(), None)?;
            let r = self.make_func_dirs(&odir, obj);
            obj.dir = Some(odir);
            r?;
        }
        Ok(())
    }

    fn make_func_dirs(&self, odir: &K::Dir, obj: &mut Object<K>) -> Result {
        for f in &mut obj.funcs {
            let fname = try_format(format_args!("{},{}", f.name, f.dir_sympos()))?;
            f.dir = Some(self.k.mkdir(Some(odir), &fname, Some(DirKind::Func))?);
        }
        Ok(())
    }

    /// Refuses a state change while a transition runs (EBUSY, with a log line).
    fn refuse_during_transition(&self, i: usize, what: &str) -> Result {
        let Some(t) = &self.transition else { return Ok(()) };
        let other = self.index_of_id(t.patch).map_or("?", |j| self.patches[j].name.as_str());
        log_err!(
            self.k,
            "cannot {} patch {}: patch {} is in a transition to {}; wait for it to end, or reverse it (write {} to its enabled)",
            what,
            self.patches[i].name,
            other,
            t.goal.word(),
            t.goal.reversing_value()
        );
        Err(Error::EBUSY)
    }

    pub fn enable_at(&mut self, i: usize) -> Result {
        if self.reverses(i, Goal::Patched) {
            return self.reverse_transition(Goal::Patched);
        }
        self.refuse_during_transition(i, "enable")?;
        let p = &self.patches[i];
        if p.enabled {
            log_err!(self.k, "patch {} is already enabled", p.name);
            return Err(Error::EINVAL);
        }
        self.stack.try_reserve(1).map_err(|_| Error::ENOMEM)?;
        // Pin the patch module first: once its code runs in place of the old, it must stay
        // until a disable's transition has taken every task off it.
        let pin = if p.pinned || p.pin.is_some() {
            None
        } else {
            Some(self.k.try_get(p.module).ok_or_else(|| {
                log_err!(self.k, "patch {}: its module is going away", p.name);
                Error::ENODEV
            })?)
        };
        let per_task = self.k.has_task_states();
        let r = self.take_targets_and_redirect(i, per_task);
        let p = &mut self.patches[i];
        if let Err(e) = r {
            for obj in &mut p.objects {
                obj.held = None;
            }
            log_err!(self.k, "patch {} not enabled ({}); nothing of it is applied", p.name, e);
            return Err(e);
        }
        for obj in &mut p.objects {
            obj.redirected = obj.is_vmlinux() || obj.held.is_some();
        }
        p.enabled = true;
        if let Some(pin) = pin {
            if per_task {
                p.pin = Some(pin);
            } else {
                pin.forget();
                p.pinned = true;
            }
        }
        let _ = push_reserved(&mut self.stack, p.id);
        log_info!(
            self.k,
            "enabled patch {} ({})",
            p.name,
            Count(p.func_count(), "function")
        );
        if !self.tainted {
            self.k.taint_livepatch();
            self.tainted = true;
        }
        if per_task {
            let id = p.id;
            self.start_transition(id, Goal::Patched);
        }
        Ok(())
    }

    /// Whether asking patch `i` for `goal` reverses the transition running: one of that
    /// patch going the other way.
    fn reverses(&self, i: usize, goal: Goal) -> bool {
        self.transition
            .as_ref()
            .is_some_and(|t| t.patch == self.patches[i].id && t.goal != goal)
    }

    /// Turns the transition running towards `goal`: the tasks it switched already are the
    /// ones to switch back, the others are there. Nothing else changes (each call site
    /// still chooses by the task's state), so this allocates nothing and cannot fail.
    fn reverse_transition(&mut self, goal: Goal) -> Result {
        let Some(t) = &mut self.transition else { return Ok(()) };
        t.goal = goal;
        let (id, exit_switch) = (t.patch, t.exit_switch);
        let name = self.index_of_id(id).map_or("?", |i| self.patches[i].name.as_str());
        log_info!(self.k, "patch {}: transition reversed, to {} now", name, goal.word());
        // The switch at system call exit must not set the old goal once the walks look
        // for the new one: retargeted (waiting for probes running), or stopped.
        if exit_switch {
            if let Err(e) = self.k.syscall_exit_switch(Some(goal.state())) {
                log_warn!(
                    self.k,
                    "transition of patch {}: tasks cannot be switched at system call exit any more ({}); walks switch them",
                    name,
                    e
                );
                let _ = self.k.syscall_exit_switch(None);
                if let Some(t) = &mut self.transition {
                    t.exit_switch = false;
                }
            }
        }
        self.try_complete_transition();
        Ok(())
    }

    /// A first walk switches every task it can at once (in an idle system, all: the
    /// transition ends before this returns); if some are left, tasks switch as they leave
    /// a system call from then on (which costs every system call a little while it lasts).
    fn start_transition(&mut self, id: PatchId, goal: Goal) {
        let now = self.k.now_ms();
        self.transition = Some(Transition {
            patch: id,
            goal,
            attempts: 0,
            longest_hold_ns: 0,
            started_ms: now,
            next_report_ms: now + STALL_REPORT_MS,
            exit_switch: false,
        });
        if self.try_complete_transition() {
            return;
        }
        match self.k.syscall_exit_switch(Some(goal.state())) {
            Ok(()) => {
                if let Some(t) = &mut self.transition {
                    t.exit_switch = true;
                }
            }
            Err(e) => log_warn!(
                self.k,
                "transition of patch {}: tasks cannot be switched at system call exit ({}); walks switch them",
                self.index_of_id(id).map_or("?", |i| self.patches[i].name.as_str()),
                e
            ),
        }
    }

    /// One walk of the tasks; ends the transition when every task has reached its goal.
    /// Returns whether no transition runs any more. Never allocates.
    pub fn try_complete_transition(&mut self) -> bool {
        let Some(t) = &mut self.transition else { return true };
        t.attempts += 1;
        let (id, goal, next_report) = (t.patch, t.goal, t.next_report_ms);
        let Some(i) = self.index_of_id(id) else {
            // Its patch module went away mid-transition (forced): ended here, by the task
            // that owns transitions.
            self.end_transition();
            return true;
        };
        let now = self.k.now_ms();
        let report = now >= next_report;
        let mut shown = [None; SHOWN_BLOCKERS];
        let mut seen = 0;
        let walk = self.k.tasks_switch(goal.state(), &self.patches[i].ranges, &mut |b| {
            if report && seen < SHOWN_BLOCKERS {
                shown[seen] = Some(*b);
                seen += 1;
            }
        });
        let Some(t) = &mut self.transition else { return true };
        t.longest_hold_ns = t.longest_hold_ns.max(walk.longest_hold_ns);
        let (attempts, held_us) = (t.attempts, t.longest_hold_ns / 1000);
        if walk.remaining > 0 {
            if report {
                t.next_report_ms = now + STALL_REPORT_MS;
                let secs = (now - t.started_ms) / 1000;
                self.report_stall(i, goal, secs, &walk, &shown[..seen]);
            }
            return false;
        }
        match goal {
            Goal::Patched => {
                let p = &self.patches[i];
                let ips = p.redirected_ips();
                self.redirect.set_transition(&self.k, id, ips, false);
            }
            Goal::Unpatched => {
                // Every task is off the patch: each call site's target becomes what is
                // below it, over the transition's marker.
                self.unredirect(i);
            }
        }
        self.end_transition();
        log_info!(
            self.k,
            "patch {}: transition to {} complete ({}; the task list locked {} us at most at a time)",
            self.patches[i].name,
            goal.word(),
            Count(attempts as usize, "walk"),
            held_us
        );
        true
    }

    /// A transition has not ended after `secs`: names the tasks it waits for (the first
    /// few, `shown`), then nudges every task not yet switched, as the in-kernel livepatch
    /// does. Never allocates.
    fn report_stall(&self, i: usize, goal: Goal, secs: u64, walk: &WalkResult, shown: &[Option<Blocker>]) {
        let name = &self.patches[i].name;
        log_warn!(
            self.k,
            "patch {}: transition to {} not complete after {} s: {} not switched ({} in the patch's code, {} running, {} with an unreliable stack); the in-kernel livepatch and module loads wait meanwhile; write {} to its enabled to reverse it",
            name,
            goal.word(),
            secs,
            Count(walk.remaining, "task"),
            walk.in_patched_code,
            walk.running,
            walk.unreliable,
            goal.reversing_value()
        );
        for b in shown.iter().flatten() {
            let mut buf = [0u8; 128];
            match b.why {
                Blocked::InCode(addr) => log_warn!(
                    self.k,
                    "patch {}: pid {} ({}) is in {}",
                    name,
                    b.pid,
                    b.comm(),
                    self.k.describe_code(addr, &mut buf)
                ),
                Blocked::Running => {
                    log_warn!(self.k, "patch {}: pid {} ({}) is running", name, b.pid, b.comm())
                }
                Blocked::Unreliable => log_warn!(
                    self.k,
                    "patch {}: pid {} ({}) has an unreliable stack",
                    name,
                    b.pid,
                    b.comm()
                ),
            }
        }
        if walk.remaining > shown.len() {
            log_warn!(
                self.k,
                "patch {}: ... and {} not named here",
                name,
                Count(walk.remaining - shown.len(), "task")
            );
        }
        let n = self.k.tasks_nudge(goal.state());
        if n.kthreads + n.user > 0 {
            log_info!(
                self.k,
                "patch {}: woke {} and sent {} a fake signal",
                name,
                Count(n.kthreads, "kernel thread"),
                Count(n.user, "user task")
            );
        }
    }

    /// Stops switching at system call exit and gives the per-task state back.
    fn end_transition(&mut self) {
        let Some(t) = self.transition.take() else { return };
        if t.exit_switch {
            let _ = self.k.syscall_exit_switch(None);
        }
        self.k.tasks_end();
    }

    /// Redirects the call sites of patch `i` being enabled (`entries`); an EBUSY from
    /// ftrace is explained in the log.
    fn redirect_new(&mut self, i: usize, entries: &[(usize, usize)], transition: bool) -> Result {
        let p = &self.patches[i];
        let r = self.redirect.add(&self.k, p.id, entries, transition);
        if r == Err(Error::EBUSY) && self.k.ftrace_off() {
            log_err!(
                self.k,
                "patch {}: ftrace is switched off (sysctl kernel.ftrace_enabled=0): no call can be redirected until it is 1 again",
                p.name
            );
        } else if r == Err(Error::EBUSY) {
            log_err!(
                self.k,
                "patch {}: a function of it ({}) is already modified by another ftrace user (the in-kernel livepatch core, a kprobe with a post handler, or an ftrace direct call)",
                p.name,
                FuncNames(p)
            );
        }
        r
    }

    /// The code a transition of patch `i` checks stacks against: each function's old
    /// code (`olds`: address and object), what the call site runs now (an older patch's
    /// replacement) and the patch's replacement.
    fn ranges_of(&self, i: usize, entries: &[(usize, usize)], olds: &[(usize, Option<K::Module>)]) -> Result<Ranges> {
        let mut r = Ranges::with_capacity(entries.len() * 3)?;
        let mut sizer = Sizer::<K> { tables: Vec::new() };
        let pmod = Some(self.patches[i].module);
        for (&(ip, new), &(addr, object)) in entries.iter().zip(olds) {
            r.add(addr, sizer.size(&self.k, addr, object)?);
            r.add(new, sizer.size(&self.k, new, pmod)?);
            if let Some((older, now)) = self.redirect.top_of(ip) {
                let m = self.index_of_id(older).map(|j| self.patches[j].module);
                r.add(now, sizer.size(&self.k, now, m)?);
            }
        }
        r.seal();
        Ok(r)
    }

    /// Takes a reference on each loaded target module (resolving it anew if it changed)
    /// and redirects every function of loaded objects in one batch.
    fn take_targets_and_redirect(&mut self, i: usize, per_task: bool) -> Result {
        let mut entries = Vec::new();
        let mut olds: Vec<(usize, Option<K::Module>)> = Vec::new();
        for oi in 0..self.patches[i].objects.len() {
            let found = match &self.patches[i].objects[oi].name {
                None => None,
                Some(name) => match self.patchable_module(name)? {
                    Some(r) => Some(r),
                    None => {
                        self.patches[i].objects[oi].clear_addresses();
                        continue;
                    }
                },
            };
            let p = &mut self.patches[i];
            let obj = &mut p.objects[oi];
            match found {
                None => {
                    if !obj.resolved() {
                        resolve(&self.k, &p.name, obj, Target::Vmlinux)?;
                    }
                }
                Some(r) => {
                    if obj.module != Some(r.module()) || !obj.resolved() {
                        resolve(&self.k, &p.name, obj, Target::Module(r.module()))?;
                    }
                    // Applied when the module came (a no-op then), unless it arrived
                    // before the core could refuse its load.
                    reloc::apply(&self.k, &p.name, p.module, obj, r.module())?;
                    obj.held = Some(r);
                }
            }
            entries_of(obj, &mut entries)?;
            olds.try_reserve(obj.funcs.len()).map_err(|_| Error::ENOMEM)?;
            for f in &obj.funcs {
                let _ = push_reserved(&mut olds, (f.addr, obj.module));
            }
        }
        if !per_task {
            return self.redirect_new(i, &entries, false);
        }
        self.patches[i].ranges = self.ranges_of(i, &entries, &olds)?;
        // Every task's state first, then the transition's targets: a task sees the new
        // code only once switched.
        if let Err(e) = self.k.tasks_begin(Goal::Patched.initial()) {
            log_err!(
                self.k,
                "patch {}: the per-task patch state is in use ({}): the in-kernel livepatch is in a transition; try again when it ends",
                self.patches[i].name,
                e
            );
            return Err(e);
        }
        let r = self.redirect_new(i, &entries, true);
        if r.is_err() {
            self.k.tasks_end();
        }
        r
    }

    pub fn disable_at(&mut self, i: usize) -> Result {
        if self.reverses(i, Goal::Unpatched) {
            return self.reverse_transition(Goal::Unpatched);
        }
        self.refuse_during_transition(i, "disable")?;
        let p = &self.patches[i];
        if !p.enabled {
            log_err!(self.k, "patch {} is not enabled", p.name);
            return Err(Error::EINVAL);
        }
        if let Some(&top) = self.stack.last() {
            if top != p.id {
                let later = self.index_of_id(top).map_or("?", |j| self.patches[j].name.as_str());
                log_err!(
                    self.k,
                    "cannot disable patch {}: patch {} was enabled after it; disable {} first",
                    p.name,
                    later,
                    later
                );
                return Err(Error::EBUSY);
            }
        }
        if !self.k.has_task_states() {
            self.unredirect(i);
            return Ok(());
        }
        if let Err(e) = self.k.tasks_begin(Goal::Unpatched.initial()) {
            log_err!(
                self.k,
                "cannot disable patch {}: the per-task patch state is in use ({}): the in-kernel livepatch is in a transition; try again when it ends",
                p.name,
                e
            );
            return Err(e);
        }
        let id = p.id;
        let ips = p.redirected_ips();
        self.redirect.set_transition(&self.k, id, ips, true);
        self.start_transition(id, Goal::Unpatched);
        Ok(())
    }

    /// Stops redirecting patch `i` (every task is off it) and drops its references: the
    /// end of a disable. Never allocates.
    fn unredirect(&mut self, i: usize) {
        let p = &self.patches[i];
        let ips = p.redirected_ips();
        self.redirect.remove(&self.k, p.id, ips);
        let p = &mut self.patches[i];
        for obj in &mut p.objects {
            obj.redirected = false;
            obj.held = None;
        }
        p.enabled = false;
        // No task is in its code any more: its module may go.
        drop(p.pin.take());
        let id = p.id;
        self.stack.retain(|&s| s != id);
        log_info!(self.k, "disabled patch {}", p.name);
    }

    /// A module is about to run its init: every enabled patch of it is applied first, in
    /// the order the patches were enabled; if one cannot be, the load is refused.
    fn coming(&mut self, m: K::Module) -> Result {
        let mut buf = [0u8; 64];
        let name = self.k.module_name(m, &mut buf);
        if try_push(&mut self.arrived, m).is_err() {
            log_err!(self.k, "out of memory tracking module {}: refusing its load", name);
            return Err(Error::ENOMEM);
        }
        let r = self.apply_to_coming(m, name);
        if r.is_err() {
            // Its load fails: no GOING notification will follow for us.
            self.arrived.retain(|&a| a != m);
        }
        r
    }

    /// A module's init has returned. One whose COMING the core never saw — its load had
    /// begun before the core's notifier was registered — is caught up now: its enabled
    /// patches are applied. Its load can no longer be refused, so a failure is logged.
    fn live(&mut self, m: K::Module) {
        if self.arrived.contains(&m) {
            return;
        }
        let mut buf = [0u8; 64];
        let name = self.k.module_name(m, &mut buf);
        if try_push(&mut self.arrived, m).is_err() {
            log_err!(
                self.k,
                "out of memory tracking module {}: its patches are not applied to it",
                name
            );
            return;
        }
        if let Err(e) = self.apply_to_coming(m, name) {
            self.arrived.retain(|&a| a != m);
            log_err!(
                self.k,
                "module {} loaded while the core started and cannot be patched ({}): its enabled patches do not apply to it",
                name,
                e
            );
        }
    }

    fn apply_to_coming(&mut self, m: K::Module, name: &str) -> Result {
        if !self
            .patches
            .iter()
            .any(|p| p.objects.iter().any(|o| o.name.as_deref() == Some(name)))
        {
            return Ok(());
        }
        // Every registered patch's relocations against it first (enabled or not: an enable
        // later needs them), before any of its functions is redirected to code using them.
        for i in 0..self.patches.len() {
            let p = &mut self.patches[i];
            let Some(obj) = p.objects.iter_mut().find(|o| o.name.as_deref() == Some(name)) else {
                continue;
            };
            if let Err(e) = reloc::apply(&self.k, &p.name, p.module, obj, m) {
                log_err!(
                    self.k,
                    "refusing to load module {}: patch {} cannot relocate against it ({})",
                    name,
                    p.name,
                    e
                );
                self.clear_relocs_for(m);
                return Err(e);
            }
        }
        let mut done: Vec<(usize, usize)> = Vec::new();
        if done.try_reserve(self.patches.len()).is_err() {
            self.clear_relocs_for(m);
            log_err!(
                self.k,
                "out of memory patching module {} as it loads: refusing its load",
                name
            );
            return Err(Error::ENOMEM);
        }
        for s in 0..self.stack.len() {
            let Some(i) = self.index_of_id(self.stack[s]) else {
                continue;
            };
            let Some(oi) = self.patches[i]
                .objects
                .iter()
                .position(|o| o.name.as_deref() == Some(name))
            else {
                continue;
            };
            if let Err(e) = self.patch_coming(i, oi, m) {
                log_err!(
                    self.k,
                    "refusing to load module {}: patch {} cannot patch it ({})",
                    name,
                    self.patches[i].name,
                    e
                );
                for &(i, oi) in done.iter().rev() {
                    self.unpatch_object(i, oi, false);
                }
                self.clear_relocs_for(m);
                return Err(e);
            }
            let _ = push_reserved(&mut done, (i, oi));
        }
        // Disabled patches: addresses only, for sysfs and a later enable.
        for p in self.patches.iter_mut().filter(|p| !p.enabled) {
            if let Some(obj) = p.objects.iter_mut().find(|o| o.name.as_deref() == Some(name)) {
                if resolve(&self.k, &p.name, obj, Target::Module(m)).is_err() {
                    log_warn!(
                        self.k,
                        "patch {} (disabled) cannot patch module {}; enabling it will fail",
                        p.name,
                        name
                    );
                    obj.clear_addresses();
                }
            }
        }
        Ok(())
    }

    fn patch_coming(&mut self, i: usize, oi: usize, m: K::Module) -> Result {
        let p = &mut self.patches[i];
        let obj = &mut p.objects[oi];
        if obj.redirected && obj.module == Some(m) {
            // Caught up at LIVE, but an enable between the module turning live and that
            // notification already patched it.
            return Ok(());
        }
        let r = self.k.try_get(m).ok_or(Error::ENODEV)?;
        resolve(&self.k, &p.name, obj, Target::Module(m))?;
        let mut entries = Vec::new();
        entries_of(obj, &mut entries)?;
        // In the patch's transition, its new functions are switched per task as well.
        let in_transition = self.transition.as_ref().is_some_and(|t| t.patch == p.id);
        self.redirect.add(&self.k, p.id, &entries, in_transition)?;
        obj.held = Some(r);
        obj.redirected = true;
        log_info!(
            self.k,
            "patch {}: patched module {} as it loads ({})",
            p.name,
            obj.display_name(),
            Count(obj.funcs.len(), "function")
        );
        Ok(())
    }

    /// Stops redirecting one object of a patch and drops its module reference (forgotten,
    /// not put, when the module is going: its count no longer matters).
    fn unpatch_object(&mut self, i: usize, oi: usize, going: bool) {
        let p = &mut self.patches[i];
        let obj = &mut p.objects[oi];
        if obj.redirected {
            self.redirect.remove(&self.k, p.id, obj.funcs.iter().map(|f| f.ip));
            obj.redirected = false;
        }
        if let Some(r) = obj.held.take() {
            if going {
                r.forget();
            } else {
                drop(r);
            }
        }
        obj.clear_addresses();
    }

    /// Clears every patch's relocations against module `m` (never allocates).
    fn clear_relocs_for(&mut self, m: K::Module) {
        for p in &mut self.patches {
            for obj in &mut p.objects {
                if obj.relocs.applied == Some(m) {
                    reloc::clear(&self.k, &p.name, p.module, obj);
                }
            }
        }
    }

    /// A module is going (rmmod, rmmod -f, or its init failed): no redirection into or out
    /// of it may survive, and nothing of it may be touched afterwards.
    fn going(&mut self, m: K::Module) {
        self.arrived.retain(|&a| a != m);
        // A patch module going away with its patch enabled (only by force or failed init).
        while let Some(i) = self.patches.iter().position(|p| p.module == m) {
            if self.patches[i].enabled {
                log_warn!(
                    self.k,
                    "patch module {} is going away with its patch enabled: removing the patch",
                    self.patches[i].name
                );
                // Its targets stay (unless one is this very module): their references are
                // put, not forgotten, or they could never be unloaded again.
                for oi in 0..self.patches[i].objects.len() {
                    let target_going = self.patches[i].objects[oi].module == Some(m);
                    self.unpatch_object(i, oi, target_going);
                }
                if let Some(pin) = self.patches[i].pin.take() {
                    pin.forget();
                }
                let id = self.patches[i].id;
                self.stack.retain(|&s| s != id);
                if self.transition.as_ref().is_some_and(|t| t.patch == id) {
                    // Its end (the claim given back) is the owner's: the next walk.
                    log_warn!(
                        self.k,
                        "patch module {} is going away in its transition: the transition ends at the next walk",
                        self.patches[i].name
                    );
                }
            }
            let p = self.patches.remove(i);
            self.bury(p);
        }
        for i in 0..self.patches.len() {
            for oi in 0..self.patches[i].objects.len() {
                if self.patches[i].objects[oi].module == Some(m) {
                    self.unpatch_object(i, oi, true);
                }
            }
        }
        // After the redirections: nothing calls the replacements using these any more.
        self.clear_relocs_for(m);
    }
}

/// Sizes functions for a transition's ranges: vmlinux's as the kernel gives them (a binary
/// search each), a module's by where its next symbol starts (one walk of the module's
/// symbols for all of them, where the kernel's answer costs a walk each: a patch of 10,000
/// functions would pay 10,000 walks of 10,000 symbols). A module function with a symbol
/// inside it (assembly) would be cut short there; C functions have none.
struct Sizer<K: Kernel> {
    tables: Vec<(K::Module, Vec<usize>)>,
}

impl<K: Kernel> Sizer<K> {
    fn size(&mut self, k: &K, addr: usize, module: Option<K::Module>) -> Result<usize> {
        let Some(m) = module else {
            return Ok(k.function_size(addr));
        };
        let t = match self.tables.iter().position(|(x, _)| *x == m) {
            Some(t) => t,
            None => {
                let mut starts: Vec<usize> = Vec::new();
                let mut failed = false;
                k.for_each_symbol(Some(m), &mut |_, a| {
                    failed |= try_push(&mut starts, a).is_err();
                });
                if failed {
                    return Err(Error::ENOMEM);
                }
                starts.sort_unstable();
                try_push(&mut self.tables, (m, starts))?;
                self.tables.len() - 1
            }
        };
        let starts = &self.tables[t].1;
        Ok(match starts.get(starts.partition_point(|&a| a <= addr)) {
            Some(&next) => next - addr,
            None => k.function_size(addr),
        })
    }
}

/// The first few function names of a patch, for a log line.
struct FuncNames<'a, K: Kernel>(&'a Patch<K>);

impl<K: Kernel> core::fmt::Display for FuncNames<'_, K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const SHOWN: usize = 4;
        let all = self
            .0
            .objects
            .iter()
            .flat_map(|o| o.funcs.iter().map(move |fn_| (o, fn_)));
        for (i, (o, func)) in all.enumerate() {
            if i == SHOWN {
                return write!(f, ", ... {} in all", self.0.func_count());
            }
            write!(
                f,
                "{}{}:{}",
                if i == 0 { "" } else { ", " },
                o.display_name(),
                func.name
            )?;
        }
        Ok(())
    }
}

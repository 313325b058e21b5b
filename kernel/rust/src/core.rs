//! The core's state machine: registered patches, the stack of enabled ones, and every state
//! change — register, enable, disable, unregister, a module coming or going — under the
//! one lock. Each step of enable is undone on failure, so nothing is left half-applied.

use crate::error::{Error, Result};
use crate::kernel::ftrace;
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::modules::{find_loaded, ModPtr, ModRef, ModuleEvent, NotifierReg};
use crate::kernel::patch_abi::{taint_livepatch, PatchDesc};
use crate::kernel::str::{try_format, try_push};
use crate::kernel::sync::CoreLock;
use crate::kernel::sysfs::{Dir, DirKind, KobjId};
use crate::model::{Object, Patch};
use crate::redirect::{PatchId, Redirector};
use crate::resolve::{resolve, Target};
use alloc::vec::Vec;

pub struct Core {
    /// First field: dropped first at exit, so no notifier call can arrive during teardown.
    notifier: Option<NotifierReg>,
    syms: Kallsyms,
    /// Registered patches, in registration order.
    pub patches: Vec<Patch>,
    /// Enabled patches, oldest first: only the last may be disabled.
    stack: Vec<PatchId>,
    next_id: PatchId,
    redirect: Redirector,
    tainted: bool,
    /// Modules whose COMING notification we have handled and whose GOING has not come.
    /// A module still COMING is patched only once it is here: before our notifier runs,
    /// ftrace may not have enabled its call sites yet (it warns if a filter already holds
    /// them), and the notifier will patch it anyway.
    arrived: Vec<ModPtr>,
    /// Patches removed under the lock, dropped (sysfs directories removed) after it.
    graveyard: Vec<Patch>,
    /// /sys/kernel/lpatch (or /sys/kernel/livepatch); dropped after every patch directory.
    root: Dir,
}

static CORE: CoreLock<Option<Core>> = CoreLock::new(None);

/// Runs `f` on the core under the lock; whatever `f` buried is dropped after unlocking,
/// because removing a sysfs directory waits for its running callbacks, which take the lock.
pub fn with_core<R>(f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
    let mut guard = CORE.lock();
    let Some(core) = guard.as_mut() else {
        return Err(Error::ENODEV);
    };
    let r = f(core);
    let dead = core::mem::take(&mut core.graveyard);
    drop(guard);
    drop(dead);
    r
}

/// Starts the core: symbols, the sysfs root, the module notifier.
pub fn init() -> Result {
    let syms = Kallsyms::init()?;
    // Debian's kernel has the in-kernel livepatch core, which owns /sys/kernel/livepatch.
    let root_name = if crate::kernel::sysfs::kernel_has_dir(c"livepatch") {
        "lpatch"
    } else {
        "livepatch"
    };
    let root = Dir::under_kernel(root_name)?;
    let anchor = syms.ftrace_location(ftrace::anchor_addr()).ok_or_else(|| {
        pr_err!("the glue's anchor function is not traceable: is this kernel built with ftrace?");
        Error::ENODEV
    })?;
    let redirect = Redirector::new(ftrace::OpsReg::register(anchor)?);
    // Outside our lock: a module load in progress holds the notifier chain and may be
    // waiting for our lock.
    let notifier = NotifierReg::register()?;
    let core = Core {
        notifier: Some(notifier),
        syms,
        patches: Vec::new(),
        stack: Vec::new(),
        next_id: 1,
        redirect,
        tainted: false,
        arrived: Vec::new(),
        graveyard: Vec::new(),
        root,
    };
    *CORE.lock() = Some(core);
    pr_info!("sysfs root /sys/kernel/{}", root_name);
    Ok(())
}

/// Stops the core (module exit: no patch module can be loaded, they depend on us).
pub fn exit() {
    let core = CORE.lock().take();
    if let Some(mut core) = core {
        drop(core.notifier.take());
        if !core.patches.is_empty() {
            pr_err!(
                "unloading with {} patches registered (forced unload?): leaking them",
                core.patches.len()
            );
            core::mem::forget(core::mem::take(&mut core.patches));
        }
        drop(core);
    }
}

pub fn register(desc: PatchDesc) -> Result {
    with_core(|c| c.register(desc))
}

pub fn unregister(key: usize) -> Result {
    with_core(|c| {
        let i = c.index_of_key(key, "unregister")?;
        if c.patches[i].enabled {
            pr_err!(
                "cannot unregister patch {}: it is enabled (disable it first)",
                c.patches[i].name
            );
            return Err(Error::EBUSY);
        }
        let p = c.patches.remove(i);
        pr_info!("unregistered patch {}", p.name);
        c.bury(p);
        Ok(())
    })
}

pub fn enable(key: usize) -> Result {
    with_core(|c| {
        let i = c.index_of_key(key, "enable")?;
        c.enable_at(i)
    })
}

pub fn disable(key: usize) -> Result {
    with_core(|c| {
        let i = c.index_of_key(key, "disable")?;
        c.disable_at(i)
    })
}

pub fn module_event(event: ModuleEvent, m: ModPtr) -> Result {
    let r = with_core(|c| match event {
        ModuleEvent::Coming => c.coming(m),
        ModuleEvent::Going => {
            c.going(m);
            Ok(())
        }
        ModuleEvent::Other => Ok(()),
    });
    // Before init or after exit there is nothing to do for a module.
    if r == Err(Error::ENODEV) {
        return Ok(());
    }
    r
}

/// The call sites of an object's functions.
fn ips_of(obj: &Object) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    v.try_reserve_exact(obj.funcs.len()).map_err(|_| Error::ENOMEM)?;
    for f in &obj.funcs {
        let _ = v.push_within_capacity(f.ip);
    }
    Ok(v)
}

/// (call site, replacement) of an object's functions.
fn entries_of(obj: &Object, out: &mut Vec<(usize, usize)>) -> Result {
    out.try_reserve(obj.funcs.len()).map_err(|_| Error::ENOMEM)?;
    for f in &obj.funcs {
        let _ = out.push_within_capacity((f.ip, f.new_func));
    }
    Ok(())
}

impl Core {
    fn bury(&mut self, p: Patch) {
        if try_push(&mut self.graveyard, p).is_err() {
            pr_err!("out of memory removing a patch: its records and sysfs directories leak");
        }
    }

    fn index_of_key(&self, key: usize, what: &str) -> Result<usize> {
        self.patches.iter().position(|p| p.key == key).ok_or_else(|| {
            pr_err!("{}: patch {:#x} is not registered", what, key);
            Error::EINVAL
        })
    }

    fn index_of_id(&self, id: PatchId) -> Option<usize> {
        self.patches.iter().position(|p| p.id == id)
    }

    /// The patch whose sysfs directory is `k`.
    pub fn patch_by_dir(&mut self, k: KobjId) -> Option<usize> {
        self.patches.iter().position(|p| p.dir.as_ref().map(Dir::id) == Some(k))
    }

    fn validate(desc: &PatchDesc) -> Result {
        let name = &desc.name;
        if desc.objects.iter().all(|o| o.funcs.is_empty()) {
            pr_err!("patch {}: no functions to patch", name);
            return Err(Error::EINVAL);
        }
        for (i, o) in desc.objects.iter().enumerate() {
            let oname = o.name.as_deref().unwrap_or("vmlinux");
            if desc.objects[..i].iter().any(|p| p.name == o.name) {
                pr_err!("patch {}: object {} is listed twice", name, oname);
                return Err(Error::EINVAL);
            }
            if let Some(f) = o.funcs.iter().find(|f| o.name.is_some() && f.old_addr != 0) {
                pr_err!(
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
                let _ = keys.push_within_capacity((f.old_name.as_str(), f.old_sympos.max(1)));
            }
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                pr_err!("patch {}: function {} is listed twice in {}", name, w[0].0, oname);
                return Err(Error::EINVAL);
            }
        }
        Ok(())
    }

    fn register(&mut self, desc: PatchDesc) -> Result {
        if let Some(p) = self.patches.iter().find(|p| p.key == desc.key || p.name == desc.name) {
            pr_err!("patch {} is already registered", p.name);
            return Err(Error::EEXIST);
        }
        Self::validate(&desc)?;
        self.patches.try_reserve(1).map_err(|_| Error::ENOMEM)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Patch::from_desc(id, desc)?;
        for obj in &mut p.objects {
            self.resolve_if_loaded(&p.name, obj)?;
        }
        if let Err(e) = self.make_dirs(&mut p) {
            self.bury(p);
            return Err(e);
        }
        pr_info!(
            "registered patch {}: {} in {}",
            p.name,
            Count(p.func_count(), "function"),
            Count(p.objects.len(), "object")
        );
        let _ = self.patches.push_within_capacity(p);
        Ok(())
    }

    /// Resolves an object's functions if the object is loaded (vmlinux always is).
    fn resolve_if_loaded(&self, patch: &str, obj: &mut Object) -> Result {
        match &obj.name {
            None => resolve(&self.syms, patch, obj, Target::Vmlinux),
            Some(name) => match self.patchable_module(name)? {
                Some(r) => resolve(&self.syms, patch, obj, Target::Module(r.ptr())),
                None => {
                    obj.clear_addresses();
                    Ok(())
                }
            },
        }
    }

    /// The module named `name`, if it is loaded far enough to be patched (see `arrived`),
    /// with a reference.
    fn patchable_module(&self, name: &str) -> Result<Option<ModRef>> {
        let cname = try_format(format_args!("{}\0", name))?;
        let cstr = core::ffi::CStr::from_bytes_with_nul(cname.as_bytes()).map_err(|_| Error::EINVAL)?;
        Ok(find_loaded(&self.syms, cstr, |m, live| {
            live || self.arrived.contains(&m)
        }))
    }

    fn make_dirs(&self, p: &mut Patch) -> Result {
        let pdir = self.root.child_with_attrs(&p.name, DirKind::Patch)?;
        for obj in &mut p.objects {
            let odir = pdir.child(obj.display_name())?;
            for f in &mut obj.funcs {
                let fname = try_format(format_args!("{},{}", f.name, f.dir_sympos()))?;
                f.dir = Some(odir.child_with_attrs(&fname, DirKind::Func)?);
            }
            obj.dir = Some(odir);
        }
        p.dir = Some(pdir);
        Ok(())
    }

    pub fn enable_at(&mut self, i: usize) -> Result {
        let p = &self.patches[i];
        if p.enabled {
            pr_err!("patch {} is already enabled", p.name);
            return Err(Error::EINVAL);
        }
        self.stack.try_reserve(1).map_err(|_| Error::ENOMEM)?;
        // Pin the patch module first: once its code runs in place of the old, it must stay.
        let pin = if p.pinned {
            None
        } else {
            Some(p.module.try_get().ok_or_else(|| {
                pr_err!("patch {}: its module is going away", p.name);
                Error::ENODEV
            })?)
        };
        let r = self.take_targets_and_redirect(i);
        let p = &mut self.patches[i];
        if let Err(e) = r {
            for obj in &mut p.objects {
                obj.held = None;
            }
            if e == Error::EBUSY {
                pr_err!(
                    "patch {}: a function of it ({}) is already modified by another ftrace user (the in-kernel livepatch core, or a kprobe with a post handler)",
                    p.name,
                    FuncNames(p)
                );
            }
            pr_err!("patch {} not enabled ({}); nothing of it is applied", p.name, e);
            return Err(e);
        }
        for obj in &mut p.objects {
            obj.redirected = obj.is_vmlinux() || obj.held.is_some();
        }
        p.enabled = true;
        if let Some(pin) = pin {
            pin.forget();
            p.pinned = true;
        }
        let _ = self.stack.push_within_capacity(p.id);
        pr_info!("enabled patch {} ({})", p.name, Count(p.func_count(), "function"));
        if !self.tainted {
            taint_livepatch();
            self.tainted = true;
        }
        Ok(())
    }

    /// Takes a reference on each loaded target module (resolving it anew if it changed)
    /// and redirects every function of loaded objects in one batch.
    fn take_targets_and_redirect(&mut self, i: usize) -> Result {
        let mut entries = Vec::new();
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
                        resolve(&self.syms, &p.name, obj, Target::Vmlinux)?;
                    }
                }
                Some(r) => {
                    if obj.module != Some(r.ptr()) || !obj.resolved() {
                        resolve(&self.syms, &p.name, obj, Target::Module(r.ptr()))?;
                    }
                    obj.held = Some(r);
                }
            }
            entries_of(obj, &mut entries)?;
        }
        let id = self.patches[i].id;
        self.redirect.add(id, &entries)
    }

    pub fn disable_at(&mut self, i: usize) -> Result {
        let p = &self.patches[i];
        if !p.enabled {
            pr_err!("patch {} is not enabled", p.name);
            return Err(Error::EINVAL);
        }
        if let Some(&top) = self.stack.last() {
            if top != p.id {
                let later = self.index_of_id(top).map_or("?", |j| self.patches[j].name.as_str());
                pr_err!(
                    "cannot disable patch {}: patch {} was enabled after it; disable {} first",
                    p.name,
                    later,
                    later
                );
                return Err(Error::EBUSY);
            }
        }
        let mut ips = Vec::new();
        for obj in p.objects.iter().filter(|o| o.redirected) {
            ips.try_reserve(obj.funcs.len()).map_err(|_| Error::ENOMEM)?;
            for f in &obj.funcs {
                let _ = ips.push_within_capacity(f.ip);
            }
        }
        self.redirect.remove(p.id, &ips);
        let p = &mut self.patches[i];
        for obj in &mut p.objects {
            obj.redirected = false;
            obj.held = None;
        }
        p.enabled = false;
        self.stack.pop();
        pr_info!("disabled patch {}", p.name);
        Ok(())
    }

    /// A module is about to run its init: every enabled patch of it is applied first, in
    /// the order the patches were enabled; if one cannot be, the load is refused.
    fn coming(&mut self, m: ModPtr) -> Result {
        let mut buf = [0u8; 64];
        let name = m.name(&mut buf);
        if try_push(&mut self.arrived, m).is_err() {
            pr_err!("out of memory tracking module {}: refusing its load", name);
            return Err(Error::ENOMEM);
        }
        let r = self.apply_to_coming(m, name);
        if r.is_err() {
            // Its load fails: no GOING notification will follow for us.
            self.arrived.retain(|&a| a != m);
        }
        r
    }

    fn apply_to_coming(&mut self, m: ModPtr, name: &str) -> Result {
        if !self
            .patches
            .iter()
            .any(|p| p.objects.iter().any(|o| o.name.as_deref() == Some(name)))
        {
            return Ok(());
        }
        let mut done: Vec<(usize, usize)> = Vec::new();
        done.try_reserve(self.patches.len()).map_err(|_| Error::ENOMEM)?;
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
                pr_err!(
                    "refusing to load module {}: patch {} cannot patch it ({})",
                    name,
                    self.patches[i].name,
                    e
                );
                for &(i, oi) in done.iter().rev() {
                    self.unpatch_object(i, oi, false);
                }
                return Err(e);
            }
            let _ = done.push_within_capacity((i, oi));
        }
        // Disabled patches: addresses only, for sysfs and a later enable.
        for p in self.patches.iter_mut().filter(|p| !p.enabled) {
            if let Some(obj) = p.objects.iter_mut().find(|o| o.name.as_deref() == Some(name)) {
                if resolve(&self.syms, &p.name, obj, Target::Module(m)).is_err() {
                    pr_warn!(
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

    fn patch_coming(&mut self, i: usize, oi: usize, m: ModPtr) -> Result {
        let syms = &self.syms;
        let p = &mut self.patches[i];
        let obj = &mut p.objects[oi];
        let r = m.try_get().ok_or(Error::ENODEV)?;
        resolve(syms, &p.name, obj, Target::Module(m))?;
        let mut entries = Vec::new();
        entries_of(obj, &mut entries)?;
        self.redirect.add(p.id, &entries)?;
        obj.held = Some(r);
        obj.redirected = true;
        pr_info!(
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
            match ips_of(obj) {
                Ok(ips) => self.redirect.remove(p.id, &ips),
                Err(_) => pr_err!("out of memory unpatching {}", obj.display_name()),
            }
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

    /// A module is going (rmmod, rmmod -f, or its init failed): no redirection into or out
    /// of it may survive, and nothing of it may be touched afterwards.
    fn going(&mut self, m: ModPtr) {
        self.arrived.retain(|&a| a != m);
        // A patch module going away with its patch enabled (only by force or failed init).
        while let Some(i) = self.patches.iter().position(|p| p.module == m) {
            if self.patches[i].enabled {
                pr_warn!(
                    "patch module {} is going away with its patch enabled: removing the patch",
                    self.patches[i].name
                );
                for oi in 0..self.patches[i].objects.len() {
                    self.unpatch_object(i, oi, true);
                }
                let id = self.patches[i].id;
                self.stack.retain(|&s| s != id);
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
    }
}

/// "1 function", "2 functions".
struct Count(usize, &'static str);

impl core::fmt::Display for Count {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}{}", self.0, self.1, if self.0 == 1 { "" } else { "s" })
    }
}

/// The first few function names of a patch, for a log line.
struct FuncNames<'a>(&'a Patch);

impl core::fmt::Display for FuncNames<'_> {
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

//! A patch as its module describes it (read from the author's structs by the kernel crate;
//! a second front — klp-compatible structs, patches in Rust — can produce the same), and the
//! core's own records of registered patches, apart from the author's structs.

use crate::fallible::{push_reserved, AllocError};
use crate::redirect::PatchId;
use crate::reloc::{RelaSectionDesc, Relocs};
use crate::seam::Kernel;
use alloc::string::String;
use alloc::vec::Vec;

/// A patch as registered: owned copies of what the author's structs say.
pub struct PatchDesc<M> {
    /// The address of the author's patch struct: the patch's identity in API calls.
    pub key: usize,
    /// The patch module.
    pub module: M,
    pub name: String,
    pub objects: Vec<ObjectDesc>,
    /// The patch module's relocation sections (`.klp.rela.*`), from the ELF headers the
    /// loader keeps for a module tagged `MODULE_INFO(livepatch, "Y")`; empty otherwise.
    pub relocs: Vec<RelaSectionDesc>,
}

/// Where patched functions live.
pub struct ObjectDesc {
    /// None = vmlinux.
    pub name: Option<String>,
    pub funcs: Vec<FuncDesc>,
}

pub struct FuncDesc {
    pub old_name: String,
    pub new_func: usize,
    pub old_addr: usize,
    pub old_sympos: usize,
    /// The code the patch was built against, when its module says.
    pub old_code: Option<crate::code::CodeCheck>,
}

pub struct Func<K: Kernel> {
    pub name: String,
    pub new_func: usize,
    /// Link-time address the author gave (vmlinux only), or 0.
    pub old_addr_hint: usize,
    /// Which same-named symbol, 1-based; 0 = must be unique.
    pub sympos: usize,
    /// The code the patch was built against, checked when the function is resolved.
    pub old_code: Option<crate::code::CodeCheck>,
    /// The resolved runtime address, 0 while its object is not loaded.
    pub addr: usize,
    /// Its ftrace call site (the redirection key), 0 while unresolved.
    pub ip: usize,
    pub dir: Option<K::Dir>,
}

impl<K: Kernel> Func<K> {
    /// The sympos in the directory name: the given one, or 1 when it had to be unique.
    pub fn dir_sympos(&self) -> usize {
        self.sympos.max(1)
    }
}

pub struct Object<K: Kernel> {
    /// None = vmlinux.
    pub name: Option<String>,
    pub funcs: Vec<Func<K>>,
    /// The loaded module the addresses were resolved against (modules only).
    pub module: Option<K::Module>,
    /// The reference held on that module while the patch is enabled.
    pub held: Option<K::ModRef>,
    /// Whether the functions are redirected now.
    pub redirected: bool,
    pub dir: Option<K::Dir>,
    /// The patch module's relocations against this module's symbols.
    pub relocs: Relocs<K::Module>,
}

impl<K: Kernel> Object<K> {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("vmlinux")
    }

    pub fn is_vmlinux(&self) -> bool {
        self.name.is_none()
    }

    /// Whether the functions carry addresses of a loaded object.
    pub fn resolved(&self) -> bool {
        self.funcs.iter().all(|f| f.ip != 0)
    }

    pub fn clear_addresses(&mut self) {
        self.module = None;
        for f in &mut self.funcs {
            f.addr = 0;
            f.ip = 0;
        }
    }
}

pub struct Patch<K: Kernel> {
    pub id: PatchId,
    /// The address of the author's struct lp_patch.
    pub key: usize,
    pub name: String,
    pub module: K::Module,
    /// Children first: they are dropped (their directories removed) before `dir`.
    pub objects: Vec<Object<K>>,
    pub enabled: bool,
    /// A reference on the patch module while its code may run: taken by enable, dropped
    /// when a disable's transition ends (no task can be in the code then), so the module
    /// can be unloaded.
    pub pin: Option<K::ModRef>,
    /// Pinned for good: without per-task states nothing proves that no task is in its code
    /// after a disable (the reference was given up, never to be put).
    pub pinned: bool,
    /// The code its transitions check stacks against (old and new functions), computed
    /// when it is enabled, so disabling allocates nothing.
    pub ranges: crate::transition::Ranges,
    pub dir: Option<K::Dir>,
}

impl<K: Kernel> Patch<K> {
    pub fn from_desc(id: PatchId, d: PatchDesc<K::Module>) -> Result<Patch<K>, AllocError> {
        let mut objects = Vec::new();
        objects.try_reserve_exact(d.objects.len()).map_err(|_| AllocError)?;
        for ObjectDesc { name, funcs: fdescs } in d.objects {
            let mut funcs = Vec::new();
            funcs.try_reserve_exact(fdescs.len()).map_err(|_| AllocError)?;
            for FuncDesc {
                old_name,
                new_func,
                old_addr,
                old_sympos,
                old_code,
            } in fdescs
            {
                let f = Func {
                    name: old_name,
                    new_func,
                    old_addr_hint: old_addr,
                    sympos: old_sympos,
                    old_code,
                    addr: 0,
                    ip: 0,
                    dir: None,
                };
                let _ = push_reserved(&mut funcs, f);
            }
            let o = Object {
                name,
                funcs,
                module: None,
                held: None,
                redirected: false,
                dir: None,
                relocs: Relocs::default(),
            };
            let _ = push_reserved(&mut objects, o);
        }
        Ok(Patch {
            id,
            key: d.key,
            name: d.name,
            module: d.module,
            objects,
            enabled: false,
            pin: None,
            pinned: false,
            ranges: crate::transition::Ranges::default(),
            dir: None,
        })
    }

    /// The call sites of its functions redirected now.
    pub fn redirected_ips(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.objects
            .iter()
            .filter(|o| o.redirected)
            .flat_map(|o| o.funcs.iter().map(|f| f.ip))
    }

    pub fn func_count(&self) -> usize {
        self.objects.iter().map(|o| o.funcs.len()).sum()
    }
}

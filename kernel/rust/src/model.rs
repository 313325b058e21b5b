//! The core's own records of registered patches, apart from the author's structs (a second
//! front — klp-compatible structs, patches in Rust — can feed the same records).

use crate::kernel::modules::{ModPtr, ModRef};
use crate::kernel::patch_abi::{FuncDesc, ObjectDesc, PatchDesc};
use crate::kernel::str::AllocError;
use crate::kernel::sysfs::Dir;
use crate::redirect::PatchId;
use alloc::string::String;
use alloc::vec::Vec;

pub struct Func {
    pub name: String,
    pub new_func: usize,
    /// Link-time address the author gave (vmlinux only), or 0.
    pub old_addr_hint: usize,
    /// Which same-named symbol, 1-based; 0 = must be unique.
    pub sympos: usize,
    /// The resolved runtime address, 0 while its object is not loaded.
    pub addr: usize,
    /// Its ftrace call site (the redirection key), 0 while unresolved.
    pub ip: usize,
    pub dir: Option<Dir>,
}

impl Func {
    /// The sympos in the directory name: the given one, or 1 when it had to be unique.
    pub fn dir_sympos(&self) -> usize {
        self.sympos.max(1)
    }
}

pub struct Object {
    /// None = vmlinux.
    pub name: Option<String>,
    pub funcs: Vec<Func>,
    /// The loaded module the addresses were resolved against (modules only).
    pub module: Option<ModPtr>,
    /// The reference held on that module while the patch is enabled.
    pub held: Option<ModRef>,
    /// Whether the functions are redirected now.
    pub redirected: bool,
    pub dir: Option<Dir>,
}

impl Object {
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

pub struct Patch {
    pub id: PatchId,
    /// The address of the author's struct lp_patch.
    pub key: usize,
    pub name: String,
    pub module: ModPtr,
    /// Children first: they are dropped (their directories removed) before `dir`.
    pub objects: Vec<Object>,
    pub enabled: bool,
    /// Once enabled, the patch module stays pinned (no consistency model yet).
    pub pinned: bool,
    pub dir: Option<Dir>,
}

impl Patch {
    pub fn from_desc(id: PatchId, d: PatchDesc) -> Result<Patch, AllocError> {
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
            } in fdescs
            {
                let f = Func {
                    name: old_name,
                    new_func,
                    old_addr_hint: old_addr,
                    sympos: old_sympos,
                    addr: 0,
                    ip: 0,
                    dir: None,
                };
                let _ = funcs.push_within_capacity(f);
            }
            let o = Object {
                name,
                funcs,
                module: None,
                held: None,
                redirected: false,
                dir: None,
            };
            let _ = objects.push_within_capacity(o);
        }
        Ok(Patch {
            id,
            key: d.key,
            name: d.name,
            module: d.module,
            objects,
            enabled: false,
            pinned: false,
            dir: None,
        })
    }

    pub fn func_count(&self) -> usize {
        self.objects.iter().map(|o| o.funcs.len()).sum()
    }
}

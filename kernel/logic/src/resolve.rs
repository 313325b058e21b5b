//! Finding each old function: by kallsyms, within its own object only (vmlinux, or the one
//! module), honouring old_sympos and old_addr, then its ftrace call site.
//! One kallsyms walk per object serves all of its functions.

use crate::error::{Error, Result};
use crate::fallible::push_reserved;
use crate::model::Object;
use crate::seam::Kernel;
use alloc::vec::Vec;

/// What a patched object is, now.
#[derive(Clone, Copy)]
pub enum Target<M> {
    Vmlinux,
    Module(M),
}

#[derive(Clone, Copy, Default)]
struct Matches {
    count: usize,
    /// The old_sympos-th match (or the first, for old_sympos 0).
    picked: usize,
    /// old_addr given and a symbol of this name sits there.
    hint_found: bool,
}

/// Calls `hit(i, address)` for every symbol of `target` named `names[i]`, in kallsyms order
/// (so the n-th call for one `i` is sympos n). One kallsyms walk for all the names; `names`
/// may repeat a name. Old functions and relocation symbols both resolve through it.
pub fn walk_named<K: Kernel>(
    k: &K,
    target: Target<K::Module>,
    names: &[&[u8]],
    hit: &mut dyn FnMut(usize, usize),
) -> Result {
    // Indices sorted by name, to look each kallsyms name up in O(log n).
    let mut by_name: Vec<usize> = Vec::new();
    by_name.try_reserve_exact(names.len()).map_err(|_| Error::ENOMEM)?;
    for i in 0..names.len() {
        let _ = push_reserved(&mut by_name, i);
    }
    by_name.sort_unstable_by(|&a, &b| names[a].cmp(names[b]));
    let mut visit = |name: &[u8], addr: usize| {
        let start = by_name.partition_point(|&i| names[i] < name);
        for &i in by_name[start..].iter().take_while(|&&i| names[i] == name) {
            hit(i, addr);
        }
    };
    k.for_each_symbol(
        match target {
            Target::Vmlinux => None,
            Target::Module(m) => Some(m),
        },
        &mut visit,
    );
    Ok(())
}

/// Resolves every function of `obj` against `target`. All or nothing: on error the object's
/// addresses are unchanged and the log names the function and the cause.
pub fn resolve<K: Kernel>(k: &K, patch: &str, obj: &mut Object<K>, target: Target<K::Module>) -> Result {
    let n = obj.funcs.len();
    let mut names: Vec<&[u8]> = Vec::new();
    names.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
    let mut found: Vec<Matches> = Vec::new();
    found.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
    for f in &obj.funcs {
        let _ = push_reserved(&mut names, f.name.as_bytes());
        let _ = push_reserved(&mut found, Matches::default());
    }
    let funcs = &obj.funcs;
    let offset = match target {
        Target::Vmlinux => k.kaslr_offset(),
        Target::Module(_) => 0,
    };
    walk_named(k, target, &names, &mut |i, addr| {
        let f = &funcs[i];
        let m = &mut found[i];
        m.count += 1;
        if m.count == f.sympos.max(1) {
            m.picked = addr;
        }
        if f.old_addr_hint != 0 && f.old_addr_hint.wrapping_add(offset) == addr {
            m.hint_found = true;
        }
    })?;

    let object = obj.display_name();
    let mut resolved: Vec<(usize, usize)> = Vec::new();
    resolved.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
    for (f, m) in funcs.iter().zip(found.iter()) {
        let addr = if f.old_addr_hint != 0 {
            if !m.hint_found {
                log_err!(
                    k,
                    "patch {}: old_addr {:#x} of {} (at {:#x} with the KASLR offset {:#x}) is not that function in {}",
                    patch,
                    f.old_addr_hint,
                    f.name,
                    f.old_addr_hint.wrapping_add(offset),
                    offset,
                    object
                );
                return Err(Error::EINVAL);
            }
            f.old_addr_hint.wrapping_add(offset)
        } else if m.count == 0 {
            log_err!(k, "patch {}: function {} not found in {}", patch, f.name, object);
            return Err(Error::ENOENT);
        } else if f.sympos == 0 && m.count > 1 {
            log_err!(
                k,
                "patch {}: function {} is ambiguous in {}: {} symbols have that name; set old_sympos",
                patch,
                f.name,
                object,
                m.count
            );
            return Err(Error::EINVAL);
        } else if f.sympos > m.count {
            log_err!(
                k,
                "patch {}: function {} has old_sympos {} but {} has only {} symbol(s) of that name",
                patch,
                f.name,
                f.sympos,
                object,
                m.count
            );
            return Err(Error::ENOENT);
        } else {
            m.picked
        };
        if let Target::Module(m) = target {
            if k.in_module_init(m, addr) {
                // Its text is freed once the module's init returns: a call site left in
                // the filter then would redirect whatever is placed there next.
                log_err!(
                    k,
                    "patch {}: function {} ({:#x}) in {} is __init code, freed once the module's init returns: it cannot be patched",
                    patch,
                    f.name,
                    addr,
                    object
                );
                return Err(Error::EINVAL);
            }
        }
        let Some(ip) = k.ftrace_location(addr) else {
            log_err!(
                k,
                "patch {}: function {} ({:#x}) in {} is not traceable by ftrace",
                patch,
                f.name,
                addr,
                object
            );
            return Err(Error::EINVAL);
        };
        if let Some(c) = &f.old_code {
            check_code(k, patch, &f.name, object, addr, c)?;
        }
        let _ = push_reserved(&mut resolved, (addr, ip));
    }
    // Two names for one address (an alias, an init_module, functions GCC folded into one):
    // one record per address, so each function is named once.
    drop(names);
    let mut by_name: Vec<usize> = Vec::new();
    by_name.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
    for i in 0..n {
        let _ = push_reserved(&mut by_name, i);
    }
    by_name.sort_unstable_by_key(|&i| resolved[i].0);
    for w in by_name.windows(2) {
        let (a, b) = (w[0], w[1]);
        if resolved[a].0 == resolved[b].0 {
            let (first, second) = if a < b { (a, b) } else { (b, a) };
            log_err!(
                k,
                "patch {}: functions {} and {} are one function in {} (both at {:#x}): name it once",
                patch,
                funcs[first].name,
                funcs[second].name,
                object,
                resolved[a].0
            );
            return Err(Error::EINVAL);
        }
    }
    for (f, (addr, ip)) in obj.funcs.iter_mut().zip(resolved) {
        f.addr = addr;
        f.ip = ip;
    }
    obj.module = match target {
        Target::Vmlinux => None,
        Target::Module(m) => Some(m),
    };
    Ok(())
}

/// Refuses a function whose code in the running kernel is not the code the patch was built
/// against (ENOEXEC, as the loader answers a module built for another kernel).
fn check_code<K: Kernel>(
    k: &K,
    patch: &str,
    name: &str,
    object: &str,
    addr: usize,
    c: &crate::code::CodeCheck,
) -> Result {
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(c.size).map_err(|_| Error::ENOMEM)?;
    for _ in 0..c.size {
        let _ = push_reserved(&mut buf, 0);
    }
    if k.read_mem(addr, &mut buf).is_err() {
        log_err!(
            k,
            "patch {}: function {} in {}: its {} bytes of code at {:#x} cannot be read",
            patch,
            name,
            object,
            c.size,
            addr
        );
        return Err(Error::EFAULT);
    }
    let got = crate::code::masked_hash(&buf, &c.masks);
    if got != c.hash {
        log_err!(
            k,
            "patch {}: function {} in {}: the running kernel's code differs from the code the patch was built against (hash {:#018x}, expected {:#018x}): a patch for another kernel or another version of its source",
            patch,
            name,
            object,
            got,
            c.hash
        );
        return Err(Error::ENOEXEC);
    }
    Ok(())
}

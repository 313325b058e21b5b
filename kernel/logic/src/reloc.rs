//! A patch module's relocations against a module object's symbols: sections
//! `.klp.rela.<module>.<section>` naming symbols `.klp.sym.<module>.<name>,<sympos>` (the
//! in-kernel livepatch's format). Checked when the patch registers; applied when the target
//! module is there (at register, or as it comes: before its init and before any
//! redirection of it), all or nothing; cleared when it goes, so its next load applies them
//! again. Sections for vmlinux are the module loader's, applied when the patch module
//! loaded: the core leaves them alone. docs/relocations.md has the kernel's side of this.

use crate::error::{Error, Result};
use crate::fallible::{push_reserved, try_push};
use crate::model::{Object, Patch};
use crate::resolve::{walk_named, Target};
use crate::seam::Kernel;
use alloc::string::String;
use alloc::vec::Vec;

/// `sh_flags`: the section is in memory once the module is loaded.
pub const SHF_ALLOC: u64 = 0x2;
/// `st_shndx` of a symbol the livepatch core resolves (include/uapi/linux/elf.h).
pub const SHN_LIVEPATCH: u16 = 0xff20;
const SECTION_PREFIX: &str = ".klp.rela.";
const SYMBOL_PREFIX: &str = ".klp.sym.";

/// One relocation section of a patch module (flagged SHF_RELA_LIVEPATCH), as its ELF
/// headers describe it: what the kernel crate reads, checked here.
pub struct RelaSectionDesc {
    pub name: String,
    /// The section it relocates: its name, address once loaded, size and flags.
    pub target_name: String,
    pub target_addr: usize,
    pub target_size: usize,
    pub target_flags: u64,
    pub relas: Vec<RelaDesc>,
}

/// One entry (an Elf64_Rela with its symbol's name and section index).
pub struct RelaDesc {
    pub offset: u64,
    pub kind: u32,
    pub addend: i64,
    pub sym_name: String,
    pub sym_shndx: u16,
}

/// The x86-64 relocation types the kernel's own module relocator writes
/// (arch/x86/kernel/module.c); R_X86_64_NONE is dropped when parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Abs64,
    Abs32,
    Abs32S,
    Pc32,
    Pc64,
}

impl Kind {
    /// Some(None) for R_X86_64_NONE; None for a type the core does not know.
    fn from_elf(t: u32) -> Option<Option<Kind>> {
        Some(match t {
            0 => None,
            1 => Some(Kind::Abs64),
            2 | 4 => Some(Kind::Pc32), // R_X86_64_PC32, R_X86_64_PLT32
            10 => Some(Kind::Abs32),
            11 => Some(Kind::Abs32S),
            24 => Some(Kind::Pc64),
            _ => return None,
        })
    }

    /// Bytes written.
    pub fn size(self) -> usize {
        match self {
            Kind::Abs64 | Kind::Pc64 => 8,
            Kind::Abs32 | Kind::Abs32S | Kind::Pc32 => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Abs64 => "R_X86_64_64",
            Kind::Abs32 => "R_X86_64_32",
            Kind::Abs32S => "R_X86_64_32S",
            Kind::Pc32 => "R_X86_64_PC32",
            Kind::Pc64 => "R_X86_64_PC64",
        }
    }

    /// The little-endian bytes for symbol value `s`, addend `a` at `loc` (the first
    /// `size()` of them count); None when the value does not fit the field.
    fn encode(self, s: usize, a: i64, loc: usize) -> Option<[u8; 8]> {
        let v = (s as u64).wrapping_add(a as u64);
        let v = match self {
            Kind::Abs64 => v,
            Kind::Pc64 => v.wrapping_sub(loc as u64),
            Kind::Abs32 => u64::from(u32::try_from(v).ok()?),
            Kind::Abs32S => i64::from(i32::try_from(v as i64).ok()?) as u64,
            Kind::Pc32 => i64::from(i32::try_from(v.wrapping_sub(loc as u64) as i64).ok()?) as u64,
        };
        Some(v.to_le_bytes())
    }
}

/// A symbol of the target module a relocation needs.
pub struct RelocSym {
    pub name: String,
    /// 0: the name must be unique in the module; else the 1-based position among
    /// same-named symbols, in kallsyms order.
    pub sympos: usize,
}

/// One relocation: where it writes (in the patch module), how, and what.
pub struct Reloc {
    pub loc: usize,
    pub kind: Kind,
    pub addend: i64,
    /// Index into [`Relocs::syms`].
    pub sym: usize,
}

/// An object's relocations, and the module they are applied to now.
pub struct Relocs<M> {
    pub syms: Vec<RelocSym>,
    pub list: Vec<Reloc>,
    pub applied: Option<M>,
}

impl<M> Default for Relocs<M> {
    fn default() -> Self {
        Relocs {
            syms: Vec::new(),
            list: Vec::new(),
            applied: None,
        }
    }
}

/// `.klp.sym.<object>.<name>,<sympos>` → (object, name, sympos).
fn parse_symbol(s: &str) -> Option<(&str, &str, usize)> {
    let rest = s.strip_prefix(SYMBOL_PREFIX)?;
    let (object, rest) = rest.split_once('.')?;
    let (name, pos) = rest.split_once(',')?;
    if object.is_empty() || name.is_empty() || pos.is_empty() || !pos.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((object, name, pos.parse().ok()?))
}

/// Checks the patch module's relocation sections and gives each module object its own.
/// Sections for vmlinux are skipped (the loader applied them). All or nothing: on error
/// the log names the section (and entry) and why, and no object has changed.
pub fn assign<K: Kernel>(k: &K, patch: &str, sections: &[RelaSectionDesc], objects: &mut [Object<K>]) -> Result {
    let mut per_object: Vec<Relocs<K::Module>> = Vec::new();
    per_object.try_reserve_exact(objects.len()).map_err(|_| Error::ENOMEM)?;
    for _ in 0..objects.len() {
        let _ = push_reserved(&mut per_object, Relocs::default());
    }
    for sec in sections {
        let bad = |why: core::fmt::Arguments<'_>| {
            log_err!(k, "patch {}: relocation section {}: {}", patch, sec.name, why);
            Err(Error::EINVAL)
        };
        let Some(object) = sec
            .name
            .strip_prefix(SECTION_PREFIX)
            .and_then(|r| r.split_once('.'))
            .map(|(o, _)| o)
            .filter(|o| !o.is_empty())
        else {
            return bad(format_args!("the name is not {}<object>.<section>", SECTION_PREFIX));
        };
        if object == "vmlinux" {
            continue;
        }
        let Some(oi) = objects.iter().position(|o| o.name.as_deref() == Some(object)) else {
            return bad(format_args!(
                "it is for module {}, which the patch does not list",
                object
            ));
        };
        if sec.target_flags & SHF_ALLOC == 0
            || sec.target_name.starts_with(".init")
            || sec.target_name.starts_with(".exit")
        {
            return bad(format_args!(
                "it relocates section {}, which the core will not write (init, exit or not loaded: gone or never there when module {} loads)",
                sec.target_name, object
            ));
        }
        let relocs = &mut per_object[oi];
        for (n, r) in sec.relas.iter().enumerate() {
            let Some(kind) = Kind::from_elf(r.kind) else {
                return bad(format_args!("entry {}: unknown relocation type {}", n, r.kind));
            };
            let Some(kind) = kind else {
                continue;
            };
            let inside = usize::try_from(r.offset)
                .ok()
                .and_then(|o| o.checked_add(kind.size()))
                .is_some_and(|end| end <= sec.target_size);
            if !inside {
                return bad(format_args!(
                    "entry {}: offset {:#x} is outside section {} ({:#x} bytes)",
                    n, r.offset, sec.target_name, sec.target_size
                ));
            }
            if r.sym_shndx != SHN_LIVEPATCH {
                return bad(format_args!(
                    "entry {}: symbol {} is not a livepatch symbol (section index {:#x}, not SHN_LIVEPATCH)",
                    n, r.sym_name, r.sym_shndx
                ));
            }
            let Some((sym_object, name, sympos)) = parse_symbol(&r.sym_name) else {
                return bad(format_args!(
                    "entry {}: symbol {} is not {}<object>.<name>,<sympos>",
                    n, r.sym_name, SYMBOL_PREFIX
                ));
            };
            if sym_object != object {
                return bad(format_args!(
                    "entry {}: symbol {} is of object {}, in a section of module {}",
                    n, r.sym_name, sym_object, object
                ));
            }
            let sym = match relocs.syms.iter().position(|s| s.name == name && s.sympos == sympos) {
                Some(i) => i,
                None => {
                    let name = crate::fallible::try_string(name)?;
                    try_push(&mut relocs.syms, RelocSym { name, sympos })?;
                    relocs.syms.len() - 1
                }
            };
            try_push(
                &mut relocs.list,
                Reloc {
                    loc: sec.target_addr.wrapping_add(r.offset as usize),
                    kind,
                    addend: r.addend,
                    sym,
                },
            )?;
        }
    }
    // Two entries writing the same bytes: the second would find the first's value.
    for (obj, relocs) in objects.iter().zip(per_object.iter_mut()) {
        relocs.list.sort_unstable_by_key(|r| r.loc);
        if let Some(w) = relocs
            .list
            .windows(2)
            .find(|w| w[0].loc.wrapping_add(w[0].kind.size()) > w[1].loc)
        {
            log_err!(
                k,
                "patch {}: relocations against {}: two relocations write the bytes at {:#x}",
                patch,
                obj.display_name(),
                w[1].loc
            );
            return Err(Error::EINVAL);
        }
    }
    for (obj, relocs) in objects.iter_mut().zip(per_object) {
        obj.relocs = relocs;
    }
    Ok(())
}

/// Applies an object's relocations for module `m`, writing into patch module `pmod`. All or
/// nothing: every symbol is resolved and every value computed, and every target checked to
/// be unwritten, before the first byte is written. The log names what failed.
pub fn apply<K: Kernel>(k: &K, patch: &str, pmod: K::Module, obj: &mut Object<K>, m: K::Module) -> Result {
    if obj.relocs.list.is_empty() || obj.relocs.applied == Some(m) {
        return Ok(());
    }
    clear(k, patch, pmod, obj);
    let object = obj.display_name();
    let syms = &obj.relocs.syms;
    let mut names: Vec<&[u8]> = Vec::new();
    names.try_reserve_exact(syms.len()).map_err(|_| Error::ENOMEM)?;
    // (count, picked address) per symbol.
    let mut found: Vec<(usize, usize)> = Vec::new();
    found.try_reserve_exact(syms.len()).map_err(|_| Error::ENOMEM)?;
    for s in syms {
        let _ = push_reserved(&mut names, s.name.as_bytes());
        let _ = push_reserved(&mut found, (0, 0));
    }
    walk_named(k, Target::Module(m), &names, &mut |i, addr| {
        let f = &mut found[i];
        f.0 += 1;
        if f.0 == syms[i].sympos.max(1) {
            f.1 = addr;
        }
    })?;
    for (s, &(count, addr)) in syms.iter().zip(found.iter()) {
        let err = if count == 0 {
            log_err!(
                k,
                "patch {}: relocation symbol {} (sympos {}) not found in {}",
                patch,
                s.name,
                s.sympos,
                object
            );
            Error::ENOENT
        } else if s.sympos == 0 && count > 1 {
            log_err!(
                k,
                "patch {}: relocation symbol {} (sympos 0) is ambiguous in {}: {} symbols have that name; give its sympos",
                patch,
                s.name,
                object,
                count
            );
            Error::EINVAL
        } else if s.sympos > count {
            log_err!(
                k,
                "patch {}: relocation symbol {} (sympos {}) not found in {}: it has only {} symbol(s) of that name",
                patch,
                s.name,
                s.sympos,
                object,
                count
            );
            Error::ENOENT
        } else if k.in_module_init(m, addr) {
            log_err!(
                k,
                "patch {}: relocation symbol {} (sympos {}) in {} is __init, freed once the module's init returns",
                patch,
                s.name,
                s.sympos,
                object
            );
            Error::EINVAL
        } else {
            continue;
        };
        return Err(err);
    }
    let mut values: Vec<[u8; 8]> = Vec::new();
    values
        .try_reserve_exact(obj.relocs.list.len())
        .map_err(|_| Error::ENOMEM)?;
    for r in &obj.relocs.list {
        let s = &syms[r.sym];
        let Some(v) = r.kind.encode(found[r.sym].1, r.addend, r.loc) else {
            log_err!(
                k,
                "patch {}: relocation {} at {:#x} to {} (sympos {}) in {}: the value does not fit",
                patch,
                r.kind.name(),
                r.loc,
                s.name,
                s.sympos,
                object
            );
            return Err(Error::EINVAL);
        };
        let mut now = [0u8; 8];
        let size = r.kind.size();
        if let Err(e) = k.read_mem(r.loc, &mut now[..size]) {
            log_err!(
                k,
                "patch {}: relocation target {:#x} (for {} in {}) cannot be read",
                patch,
                r.loc,
                s.name,
                object
            );
            return Err(e);
        }
        if now[..size].iter().any(|&b| b != 0) {
            log_err!(
                k,
                "patch {}: relocation target {:#x} (for {} in {}) already holds a value: refusing to write it twice",
                patch,
                r.loc,
                s.name,
                object
            );
            return Err(Error::EINVAL);
        }
        let _ = push_reserved(&mut values, v);
    }
    for (n, (r, v)) in obj.relocs.list.iter().zip(values.iter()).enumerate() {
        if let Err(e) = k.poke(pmod, r.loc, &v[..r.kind.size()]) {
            log_err!(
                k,
                "patch {}: cannot write relocation target {:#x} (for {} in {}): undoing",
                patch,
                r.loc,
                syms[r.sym].name,
                object
            );
            zero(k, pmod, &obj.relocs.list[..n]);
            return Err(e);
        }
    }
    k.poke_sync();
    log_info!(
        k,
        "patch {}: applied {} to {}",
        patch,
        crate::log::Count(obj.relocs.list.len(), "relocation"),
        object
    );
    obj.relocs.applied = Some(m);
    Ok(())
}

fn zero<K: Kernel>(k: &K, pmod: K::Module, list: &[Reloc]) {
    for r in list {
        // Cannot fail for a target apply wrote: its range was checked then.
        let _ = k.poke(pmod, r.loc, &[0u8; 8][..r.kind.size()]);
    }
    k.poke_sync();
}

/// Zeroes what [`apply`] wrote, so the next load of the module can be relocated again (the
/// values point into the module going away). Never allocates.
pub fn clear<K: Kernel>(k: &K, patch: &str, pmod: K::Module, obj: &mut Object<K>) {
    if obj.relocs.applied.take().is_some() {
        zero(k, pmod, &obj.relocs.list);
        log_info!(k, "patch {}: cleared its relocations to {}", patch, obj.display_name());
    }
}

/// Clears every object's relocations of a patch leaving the records (unregistered, or
/// refused at register after some were applied). Never allocates.
pub fn clear_patch<K: Kernel>(k: &K, p: &mut Patch<K>) {
    for obj in &mut p.objects {
        clear(k, &p.name, p.module, obj);
    }
}

//! The C API of lpatch.h: the reading of the author's structs into owned descriptions (the core keeps no pointer into them but the
//! patch's own address, used as its identity).

use super::ffi;
use super::modules::ModPtr;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, CStr};
use lpatch_logic::error::{Error, Result};
use lpatch_logic::fallible::{try_push, try_string};
use lpatch_logic::seam::{FuncDesc, ObjectDesc, PatchDesc, RelaDesc, RelaSectionDesc};

/// An upper bound on what one patch may list, so a missing terminator fails cleanly
/// instead of walking memory until it faults.
const MAX_OBJECTS: usize = 1024;
const MAX_FUNCS: usize = 65536;
const MAX_NAME: usize = 512;

fn copy_name(p: *const c_char, what: &str) -> Result<String> {
    // SAFETY: p is non-null (checked by callers) and points to the author's string.
    let s = unsafe { CStr::from_ptr(p) };
    let bytes = s.to_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME {
        pr_err!("{} name is empty or longer than {} bytes", what, MAX_NAME);
        return Err(Error::EINVAL);
    }
    let s = core::str::from_utf8(bytes).map_err(|_| {
        pr_err!("{} name is not valid UTF-8", what);
        Error::EINVAL
    })?;
    Ok(try_string(s)?)
}

/// Reads and validates the author's patch. Every NULL the API forbids is -EINVAL, logged.
///
/// # Safety
/// `p` is NULL or points to an `lp_patch` whose arrays and strings stay valid for the call
/// (what lpatch.h asks of a patch module calling `lp_register_patch`).
pub unsafe fn read_patch(p: *const ffi::lp_patch) -> Result<PatchDesc<ModPtr>> {
    if p.is_null() {
        pr_err!("register: NULL patch");
        return Err(Error::EINVAL);
    }
    // SAFETY: p is a non-null pointer the patch module passed to us, to its lp_patch.
    let patch = unsafe { &*p };
    // SAFETY: patch.mod is the author's THIS_MODULE, alive while its init/exit runs us.
    let Some(module) = (unsafe { ModPtr::from_raw(patch.mod_) }) else {
        pr_err!("register: patch->mod is NULL (set it to THIS_MODULE)");
        return Err(Error::EINVAL);
    };
    let mut namebuf = [0u8; 64];
    let name = try_string(module.name(&mut namebuf))?;
    if patch.objs.is_null() {
        pr_err!("register: patch {}: objs is NULL", name);
        return Err(Error::EINVAL);
    }
    let mut objects = Vec::new();
    for i in 0..=MAX_OBJECTS {
        if i == MAX_OBJECTS {
            pr_err!(
                "patch {}: more than {} objects, or objs lacks its terminator",
                name,
                MAX_OBJECTS
            );
            return Err(Error::EINVAL);
        }
        // SAFETY: the array is terminated by an entry with funcs == NULL; we stop there.
        let o = unsafe { &*patch.objs.add(i) };
        if o.funcs.is_null() {
            if o.name.is_null() {
                break;
            }
            let oname = copy_name(o.name, "object")?;
            pr_err!("patch {}: object {} has funcs == NULL", name, oname);
            return Err(Error::EINVAL);
        }
        let oname = if o.name.is_null() {
            None
        } else {
            Some(copy_name(o.name, "object")?)
        };
        let mut funcs = Vec::new();
        for j in 0..=MAX_FUNCS {
            if j == MAX_FUNCS {
                pr_err!(
                    "patch {}: more than {} functions in an object, or a missing terminator",
                    name,
                    MAX_FUNCS
                );
                return Err(Error::EINVAL);
            }
            // SAFETY: terminated by an entry with old_name == NULL; we stop there.
            let f = unsafe { &*o.funcs.add(j) };
            if f.old_name.is_null() {
                break;
            }
            let old_name = copy_name(f.old_name, "function")?;
            if f.new_func.is_null() {
                pr_err!("patch {}: function {} has new_func == NULL", name, old_name);
                return Err(Error::EINVAL);
            }
            // SAFETY: old_code is NULL or points to the module's struct lp_code, as
            // lpatch.h asks.
            let old_code = unsafe { read_code(f.old_code, &name, &old_name) }?;
            try_push(
                &mut funcs,
                FuncDesc {
                    old_name,
                    new_func: f.new_func as usize,
                    old_addr: f.old_addr as usize,
                    old_sympos: f.old_sympos as usize,
                    old_code,
                },
            )?;
        }
        try_push(&mut objects, ObjectDesc { name: oname, funcs })?;
    }
    let relocs = read_relocs(module, &name)?;
    Ok(PatchDesc {
        key: p as usize,
        module,
        name,
        objects,
        relocs,
    })
}

/// Bounds of a struct lp_code: no function is a megabyte long, and a mask per byte of
/// a 64 kB function is more than any has.
const MAX_CODE_SIZE: usize = 1 << 20;
const MAX_MASKS: usize = 1 << 16;

/// A function's struct lp_code, copied; None for NULL.
///
/// # Safety
/// `c` is NULL or points to a struct lp_code whose `masks` holds `nr_masks` pairs, all
/// staying valid for the call.
unsafe fn read_code(c: *const ffi::lp_code, patch: &str, func: &str) -> Result<Option<lpatch_logic::seam::CodeCheck>> {
    if c.is_null() {
        return Ok(None);
    }
    // SAFETY: as the caller guarantees.
    let c = unsafe { &*c };
    let (size, n) = (c.size as usize, c.nr_masks as usize);
    if size == 0 || size > MAX_CODE_SIZE || n > MAX_MASKS || (n > 0 && c.masks.is_null()) {
        pr_err!(
            "patch {}: function {}: old_code has size {} and {} masks (at most {} bytes and {} masks, masks not NULL)",
            patch,
            func,
            size,
            n,
            MAX_CODE_SIZE,
            MAX_MASKS
        );
        return Err(Error::EINVAL);
    }
    let mut masks = Vec::new();
    masks.try_reserve_exact(n).map_err(|_| Error::ENOMEM)?;
    for i in 0..n {
        // SAFETY: masks holds nr_masks pairs, as the caller guarantees.
        let (off, len) = unsafe { (*c.masks.add(2 * i), *c.masks.add(2 * i + 1)) };
        try_push(&mut masks, (off, len))?;
    }
    Ok(Some(lpatch_logic::seam::CodeCheck {
        size,
        hash: c.hash,
        masks,
    }))
}

/// `sh_flags` of a relocation section in the livepatch format.
const SHF_RELA_LIVEPATCH: u64 = 0x0010_0000;
const SHF_ALLOC: u64 = 0x2;
const SHT_RELA: u32 = 4;

/// A NUL-terminated string of a module's ELF tables, copied (a name longer than MAX_NAME
/// is refused: the loader's names are far shorter).
///
/// # Safety
/// `p` points to a NUL-terminated string that stays valid for the call.
unsafe fn elf_string(p: *const c_char, what: &str) -> Result<String> {
    // SAFETY: as the caller guarantees.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    match core::str::from_utf8(bytes) {
        Ok(s) if bytes.len() <= MAX_NAME => Ok(try_string(s)?),
        _ => {
            pr_err!("{} name is not UTF-8 of at most {} bytes", what, MAX_NAME);
            Err(Error::EINVAL)
        }
    }
}

/// The patch module's relocation sections (flagged SHF_RELA_LIVEPATCH), read from the ELF
/// headers the loader kept for it; none when it kept none (a module not tagged
/// `MODULE_INFO(livepatch, "Y")`). The logic checks what they say (lpatch_logic::reloc).
fn read_relocs(module: ModPtr, patch: &str) -> Result<Vec<RelaSectionDesc>> {
    let mut sechdrs: *const ffi::Elf64_Shdr = core::ptr::null();
    let mut secstrings: *const c_char = core::ptr::null();
    let mut symtab: *const ffi::Elf64_Sym = core::ptr::null();
    let mut nsyms: core::ffi::c_uint = 0;
    let mut strtab: *const c_char = core::ptr::null();
    // SAFETY: the module is the patch module registering (alive while it calls us); the
    // helper only reads its klp_info and core_kallsyms.
    let shnum = unsafe {
        ffi::lpatch_module_elf(
            module.as_ptr().cast(),
            &mut sechdrs,
            &mut secstrings,
            &mut symtab,
            &mut nsyms,
            &mut strtab,
        )
    } as usize;
    let mut out = Vec::new();
    if shnum == 0 || sechdrs.is_null() || secstrings.is_null() || symtab.is_null() || strtab.is_null() {
        return Ok(out);
    }
    // SAFETY: klp_info's section headers: shnum entries, alive with the module.
    let shdrs = unsafe { core::slice::from_raw_parts(sechdrs, shnum) };
    // SAFETY: core_kallsyms.symtab: num_symtab entries, alive with the module.
    let syms = unsafe { core::slice::from_raw_parts(symtab, nsyms as usize) };
    for sh in shdrs {
        if sh.sh_flags & SHF_RELA_LIVEPATCH == 0 {
            continue;
        }
        // SAFETY: sh_name is an offset into the section name table, whose strings the
        // loader checked to be NUL-terminated (elf_validity_check).
        let name = unsafe { elf_string(secstrings.add(sh.sh_name as usize), "section")? };
        if sh.sh_flags & SHF_ALLOC == 0 && name.starts_with(".klp.rela.vmlinux.") {
            // The loader applied it from the file; nothing of it is in memory now.
            continue;
        }
        let target = shdrs.get(sh.sh_info as usize).filter(|_| sh.sh_info != 0);
        let Some(target) = target.filter(|_| sh.sh_type == SHT_RELA && sh.sh_flags & SHF_ALLOC != 0) else {
            pr_err!(
                "patch {}: relocation section {} is not an allocated SHT_RELA section of a valid target section",
                patch,
                name
            );
            return Err(Error::EINVAL);
        };
        // SAFETY: as above.
        let target_name = unsafe { elf_string(secstrings.add(target.sh_name as usize), "section")? };
        let count = sh.sh_size as usize / core::mem::size_of::<ffi::Elf64_Rela>();
        // SAFETY: an allocated section: the loader placed its sh_size bytes at sh_addr in
        // the module's memory, where they stay while it lives.
        let relas = unsafe { core::slice::from_raw_parts(sh.sh_addr as *const ffi::Elf64_Rela, count) };
        let mut descs = Vec::new();
        for r in relas {
            let Some(sym) = syms.get((r.r_info >> 32) as usize) else {
                pr_err!(
                    "patch {}: relocation section {}: a symbol index is out of range",
                    patch,
                    name
                );
                return Err(Error::EINVAL);
            };
            // SAFETY: st_name is an offset into core_kallsyms.strtab, which the loader
            // built of NUL-terminated copies.
            let sym_name = unsafe { elf_string(strtab.add(sym.st_name as usize), "symbol")? };
            try_push(
                &mut descs,
                RelaDesc {
                    offset: r.r_offset,
                    kind: r.r_info as u32,
                    addend: r.r_addend,
                    sym_name,
                    sym_shndx: sym.st_shndx,
                },
            )?;
        }
        try_push(
            &mut out,
            RelaSectionDesc {
                name,
                target_name,
                target_addr: target.sh_addr as usize,
                target_size: target.sh_size as usize,
                target_flags: target.sh_flags,
                relas: descs,
            },
        )?;
    }
    Ok(out)
}

/// Marks the kernel live-patched (TAINT_LIVEPATCH, 'K').
pub fn taint_livepatch() {
    // SAFETY: add_taint only sets a bit (lockdep stays valid).
    unsafe { ffi::add_taint(ffi::TAINT_LIVEPATCH, ffi::lockdep_ok::LOCKDEP_STILL_OK) }
}

// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch klp-convert MODULE.ko [-o OUT]`: turns a patch module's named references to
//! symbols the kernel does not export into the in-kernel livepatch's relocation format
//! (Documentation/livepatch/module-elf-format.rst), so that the module loader (vmlinux
//! symbols) and the lpatch core (module symbols) resolve them at load.
//!
//! The author names each such symbol with `LPATCH_SYM(object, symbol, sympos)`, which
//! appends the record `"<object> <symbol> <sympos>"` (NUL-terminated) to the non-alloc
//! section `.comment.lpatch.syms`. On the linked module, each annotated symbol that is still
//! undefined is renamed `.klp.sym.<object>.<symbol>,<sympos>` in `SHN_LIVEPATCH`, and every
//! relocation against it moves from `.rela<X>` to `.klp.rela.<object>.<X>`.

use crate::app::{Ctx, Exit, Failure, Outcome};
use object::build::elf::{Builder, Relocation, SectionData, SectionId, SymbolId};
use object::build::Id as _;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;
use std::collections::HashMap;
use std::path::Path;

/// The section the LPATCH_SYM records are in (build input only: removed from the output);
/// `lpatch build` writes the same records.
pub use lpatch_build::extract::RECORDS_SECTION;
/// `st_shndx` of a livepatch symbol (include/uapi/linux/elf.h).
pub const SHN_LIVEPATCH: u16 = 0xff20;
/// `sh_flags` bit of a livepatch relocation section (include/uapi/linux/elf.h).
pub const SHF_RELA_LIVEPATCH: u64 = 0x0010_0000;
/// The kernel parses `.klp.sym.%55[^.].%511[^,],%lu` (kernel/livepatch/core.c).
const MAX_OBJECT_LEN: usize = 55;
const MAX_SYMBOL_LEN: usize = 511;

/// Sections the kernel processes when it loads the patch module itself (module_finalize and
/// friends), before a module object's relocations could have been applied. kpatch refuses
/// the same.
const SPECIAL_SECTIONS: &[&str] = &[
    "__jump_table",
    ".altinstructions",
    ".altinstr_replacement",
    "__bug_table",
    "__ex_table",
    ".parainstructions",
    ".static_call_sites",
    ".retpoline_sites",
    ".return_sites",
    ".orc_unwind_ip",
    ".orc_unwind",
    "__mcount_loc",
    ".smp_locks",
    ".ibt_endbr_seal",
];

/// One `LPATCH_SYM(object, symbol, sympos)` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub object: String,
    pub symbol: String,
    pub sympos: u64,
}

/// How a livepatch relocation names a symbol: `.klp.sym.<object>.<symbol>,<sympos>`.
pub fn klp_sym_name(object: &str, symbol: &str, sympos: u64) -> String {
    format!(".klp.sym.{object}.{symbol},{sympos}")
}

impl Record {
    /// The name the symbol gets.
    pub fn klp_name(&self) -> String {
        klp_sym_name(&self.object, &self.symbol, self.sympos)
    }

    fn is_vmlinux(&self) -> bool {
        self.object == "vmlinux"
    }

    /// The record as it is written in the section.
    fn text(&self) -> String {
        format!("{} {} {}", self.object, self.symbol, self.sympos)
    }
}

/// Parses one record, `"<object> <symbol> <sympos>"`; Err says what is wrong with it.
pub fn parse_record(text: &str) -> Result<Record, String> {
    let fields: Vec<&str> = text.split(' ').collect();
    let [object, symbol, sympos] = fields[..] else {
        return Err(
            "expected \"<object> <symbol> <sympos>\": three fields separated by single spaces"
                .into(),
        );
    };
    if object.is_empty() {
        return Err("the object name is empty".into());
    }
    if symbol.is_empty() {
        return Err("the symbol name is empty".into());
    }
    if object.len() > MAX_OBJECT_LEN {
        return Err(format!(
            "the object name is longer than {MAX_OBJECT_LEN} bytes (the kernel reads \
             .klp.sym.%55[^.].%511[^,],%lu)"
        ));
    }
    if object.contains('.') {
        return Err("the object name contains '.' (the kernel reads .klp.sym.%55[^.]...)".into());
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err(format!(
            "the symbol name is longer than {MAX_SYMBOL_LEN} bytes (the kernel reads \
             .klp.sym.%55[^.].%511[^,],%lu)"
        ));
    }
    if symbol.contains(',') {
        return Err("the symbol name contains ',' (the kernel reads ...%511[^,],%lu)".into());
    }
    if sympos.is_empty() || !sympos.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("sympos \"{sympos}\" is not a decimal number"));
    }
    let sympos = sympos
        .parse::<u64>()
        .map_err(|_| format!("sympos {sympos} is too large"))?;
    Ok(Record {
        object: object.to_string(),
        symbol: symbol.to_string(),
        sympos,
    })
}

/// Parses the contents of `.comment.lpatch.syms` (every copy of it, concatenated): the records, one
/// per symbol, in the order they first appear. Identical duplicates are merged; Err lists
/// every malformed record and every symbol whose records disagree.
pub fn parse_records(data: &[u8]) -> Result<Vec<Record>, Vec<String>> {
    let mut records: Vec<Record> = Vec::new();
    let mut problems = Vec::new();
    for raw in data.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(raw);
        match parse_record(&text) {
            Ok(r) => match records.iter().find(|o| o.symbol == r.symbol) {
                Some(o) if *o == r => {}
                Some(o) => problems.push(format!(
                    "LPATCH_SYM records disagree about {}: \"{}\" and \"{}\"",
                    r.symbol,
                    o.text(),
                    r.text()
                )),
                None => records.push(r),
            },
            Err(why) => problems.push(format!(
                "malformed LPATCH_SYM record \"{}\": {why}",
                text.escape_debug()
            )),
        }
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

/// What one object's converted symbols are, with their relocation counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub object: String,
    /// (symbol, sympos, relocations moved)
    pub symbols: Vec<(String, u64, usize)>,
}

impl ObjectSummary {
    /// `vmlinux: foo,0 (2 relocations), bar,0 (1 relocation)`
    pub fn line(&self) -> String {
        let syms: Vec<String> = self
            .symbols
            .iter()
            .map(|(name, pos, n)| {
                let s = if *n == 1 { "" } else { "s" };
                format!("{name},{pos} ({n} relocation{s})")
            })
            .collect();
        format!("{}: {}", self.object, syms.join(", "))
    }
}

#[derive(Debug)]
pub enum Conversion {
    /// The module has no `.comment.lpatch.syms` section.
    NoRecords,
    /// Records, but no undefined symbol left that one names.
    NothingLeft {
        /// Records whose symbol is already in the livepatch form.
        already: Vec<Record>,
        warnings: Vec<String>,
    },
    /// The converted module.
    Converted {
        elf: Vec<u8>,
        objects: Vec<ObjectSummary>,
        warnings: Vec<String>,
    },
}

fn bad_input(message: impl Into<String>) -> Failure {
    Failure::new(Exit::Usage, message)
}

/// One failure from a list of problems: the first line is the message, every other line a
/// detail.
fn problems_failure(problems: &[String]) -> Failure {
    let mut lines = problems.iter().flat_map(|p| p.lines().map(str::to_string));
    let mut f = bad_input(lines.next().unwrap_or_default());
    f.details.extend(lines);
    f
}

/// Checks that `data` is an x86-64 ELF64 little-endian relocatable object with RELA
/// relocations only, and returns the contents of its `.comment.lpatch.syms` sections (None: no such
/// section).
fn check_and_read_records(data: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    match object::FileKind::parse(data) {
        Ok(object::FileKind::Elf64) => {}
        Ok(object::FileKind::Elf32) => {
            return Err(bad_input(
                "a 32-bit ELF file: only x86-64 kernel modules (ELF64) are supported",
            ))
        }
        _ => return Err(bad_input("not an ELF file (a kernel module .ko is one)")),
    }
    let header = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|e| bad_input(format!("not a valid ELF file: {e}")))?;
    if !header.is_little_endian() {
        return Err(bad_input(
            "a big-endian ELF file: only x86-64 kernel modules are supported",
        ));
    }
    let endian = Endianness::Little;
    if header.e_type(endian) != elf::ET_REL {
        return Err(bad_input(format!(
            "not a relocatable object (ELF type {}, not ET_REL): a kernel module .ko is one",
            header.e_type(endian)
        )));
    }
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(bad_input(format!(
            "ELF machine {} is not x86-64 (62): only x86-64 kernel modules are supported",
            header.e_machine(endian)
        )));
    }
    let sections = header
        .sections(endian, data)
        .map_err(|e| bad_input(format!("cannot read the section headers: {e}")))?;
    let mut found: Option<Vec<u8>> = None;
    for s in sections.iter() {
        let name = sections.section_name(endian, s).unwrap_or_default();
        if s.sh_type(endian) == elf::SHT_REL {
            return Err(bad_input(format!(
                "section {} is SHT_REL: only SHT_RELA relocations (x86-64) are supported",
                String::from_utf8_lossy(name)
            )));
        }
        if name == RECORDS_SECTION.as_bytes() {
            let bytes = s
                .data(endian, data)
                .map_err(|e| bad_input(format!("cannot read {RECORDS_SECTION}: {e}")))?;
            let all = found.get_or_insert_with(Vec::new);
            all.extend_from_slice(bytes);
            all.push(0);
        }
    }
    Ok(found)
}

/// object's ELF builder reads a relocation section flagged SHF_ALLOC as dynamic
/// relocations, which may not name symbols of .symtab; livepatch relocation sections are
/// SHF_ALLOC. Clears the flag in the (copied) section headers of such sections so that they
/// read as ordinary relocations, and returns their builder ids' indices (section index - 1)
/// so that the flag can be put back.
fn hide_alloc_rela(buf: &mut [u8]) -> Result<Vec<usize>, Failure> {
    let endian = Endianness::Little;
    let header = elf::FileHeader64::<Endianness>::parse(&*buf)
        .map_err(|e| bad_input(format!("not a valid ELF file: {e}")))?;
    let shoff = header.e_shoff(endian) as usize;
    let shentsize = usize::from(header.e_shentsize(endian));
    let headers = header
        .section_headers(endian, &*buf)
        .map_err(|e| bad_input(format!("cannot read the section headers: {e}")))?;
    let alloc_rela: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.sh_type(endian) == elf::SHT_RELA
                && s.sh_flags(endian) & u64::from(elf::SHF_ALLOC) != 0
        })
        .map(|(i, _)| i)
        .collect();
    // Elf64_Shdr: sh_name (4), sh_type (4), then sh_flags (8).
    for &i in &alloc_rela {
        let at = shoff + i * shentsize + 8;
        let field: &mut [u8; 8] = (&mut buf[at..at + 8]).try_into().expect("8 bytes");
        let flags = u64::from_le_bytes(*field) & !u64::from(elf::SHF_ALLOC);
        *field = flags.to_le_bytes();
    }
    Ok(alloc_rela.into_iter().map(|i| i - 1).collect())
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Why a relocation against a module object's symbol cannot go into this target section;
/// None if it can.
fn refusal(target: &object::build::elf::Section) -> Option<&'static str> {
    let name = target.name.as_slice();
    if !target.is_alloc() {
        Some("the section is not loaded (not SHF_ALLOC)")
    } else if name.starts_with(b".init") || name.starts_with(b".exit") {
        Some(
            "lpatch applies a module object's relocations when that module loads, long after \
             the patch module's init code is freed: .init and .exit sections cannot take them",
        )
    } else if SPECIAL_SECTIONS.iter().any(|s| s.as_bytes() == name) {
        Some(
            "the kernel processes this section when it loads the patch module, before a \
             module object's relocations can be applied",
        )
    } else {
        None
    }
}

fn has_livepatch_tag(b: &Builder) -> bool {
    b.sections
        .iter()
        .filter(|s| s.name.as_slice() == b".modinfo")
        .any(|s| match &s.data {
            SectionData::Data(d) => d.split(|&c| c == 0).any(|e| e == b"livepatch=Y"),
            _ => false,
        })
}

/// Converts the module in `data` (the bytes of a linked .ko).
pub fn convert(data: &[u8]) -> Result<Conversion, Failure> {
    let Some(raw) = check_and_read_records(data)? else {
        return Ok(Conversion::NoRecords);
    };
    let records = parse_records(&raw).map_err(|p| problems_failure(&p))?;

    let mut buf = data.to_vec();
    let alloc_rela = hide_alloc_rela(&mut buf)?;
    let mut b = Builder::read(&*buf)
        .map_err(|e| bad_input(format!("cannot read the module's ELF structure: {e}")))?;
    let ids: Vec<SectionId> = b.sections.iter().map(|s| s.id()).collect();
    for s in b.sections.iter_mut() {
        if alloc_rela.contains(&s.id().index()) {
            s.sh_flags |= u64::from(elf::SHF_ALLOC);
        }
        // A relocation section without SHF_INFO_LINK keeps a raw sh_info: make it a link
        // so that it follows the sections' new indices.
        if matches!(s.data, SectionData::Relocation(_))
            && s.sh_info_section.is_none()
            && s.sh_info != 0
        {
            s.sh_info_section = ids.get(s.sh_info as usize - 1).copied();
        }
    }

    // Which symbols to convert, for which record.
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut already: Vec<Record> = Vec::new();
    let mut to_convert: Vec<(SymbolId, usize)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let named = || {
            b.symbols
                .iter()
                .filter(|s| s.name.as_slice() == r.symbol.as_bytes())
        };
        let undefined: Vec<SymbolId> = named()
            .filter(|s| s.section.is_none() && s.st_shndx == elf::SHN_UNDEF)
            .map(|s| s.id())
            .collect();
        if !undefined.is_empty() {
            to_convert.extend(undefined.into_iter().map(|id| (id, i)));
        } else if named().any(|s| !matches!(s.st_type(), elf::STT_FILE | elf::STT_SECTION)) {
            problems.push(format!(
                "{} (LPATCH_SYM record \"{}\") is defined in this module; LPATCH_SYM is for \
                 symbols of the patched kernel",
                r.symbol,
                r.text()
            ));
        } else if b
            .symbols
            .iter()
            .any(|s| s.st_shndx == SHN_LIVEPATCH && s.name.as_slice() == r.klp_name().as_bytes())
        {
            already.push(r.clone());
        } else {
            warnings.push(format!(
                "{} is annotated (LPATCH_SYM record \"{}\") but this module does not refer to it",
                r.symbol,
                r.text()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems_failure(&problems));
    }
    if to_convert.is_empty() {
        return Ok(Conversion::NothingLeft { already, warnings });
    }

    let mut module_objects: Vec<&str> = Vec::new();
    for &(_, i) in &to_convert {
        let r = &records[i];
        if !r.is_vmlinux() && !module_objects.contains(&r.object.as_str()) {
            module_objects.push(&r.object);
        }
    }
    if !module_objects.is_empty() && !has_livepatch_tag(&b) {
        problems.push(format!(
            "this module refers to symbols of module {} but is not tagged as a livepatch \
             module: add MODULE_INFO(livepatch, \"Y\"); to its source\n\
             the kernel keeps the ELF information (section headers, symbols) that lpatch needs \
             to apply a module's relocations\nonly for modules so tagged \
             (kernel/module/livepatch.c, copy_module_elf)",
            module_objects.join(", ")
        ));
    }

    // The relocations to move, per (object, target section), in order.
    let record_of: HashMap<usize, usize> =
        to_convert.iter().map(|&(id, i)| (id.index(), i)).collect();
    let mut counts = vec![0usize; records.len()];
    let mut moves: Vec<(String, SectionId, Vec<Relocation>)> = Vec::new();
    for s in b.sections.iter() {
        let SectionData::Relocation(rels) = &s.data else {
            continue;
        };
        if s.sh_flags & SHF_RELA_LIVEPATCH != 0 {
            continue;
        }
        for rel in rels {
            let Some(&i) = rel.symbol.and_then(|id| record_of.get(&id.index())) else {
                continue;
            };
            let r = &records[i];
            let Some(target) = s.sh_info_section else {
                problems.push(format!(
                    "relocation section {} refers to {} but names no target section",
                    name_of(&s.name),
                    r.symbol
                ));
                continue;
            };
            let t = b.sections.get(target);
            if !r.is_vmlinux() {
                if let Some(why) = refusal(t) {
                    let msg = format!(
                        "cannot convert the relocation in {} against {} (of module {}): {why}",
                        name_of(&t.name),
                        r.symbol,
                        r.object
                    );
                    if !problems.contains(&msg) {
                        problems.push(msg);
                    }
                    continue;
                }
            }
            counts[i] += 1;
            match moves
                .iter_mut()
                .find(|(o, tid, _)| *o == r.object && *tid == target)
            {
                Some((_, _, v)) => v.push(*rel),
                None => moves.push((r.object.clone(), target, vec![*rel])),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems_failure(&problems));
    }

    // Rename the symbols.
    for &(id, i) in &to_convert {
        let s = b.symbols.get_mut(id);
        s.name = records[i].klp_name().into_bytes().into();
        s.section = None;
        s.st_shndx = SHN_LIVEPATCH;
        s.st_value = 0;
        let kind = s.st_type();
        s.set_st_info(elf::STB_GLOBAL, kind);
    }
    // Take their relocations out of the ordinary sections; a section left empty goes.
    for s in b.sections.iter_mut() {
        if s.sh_flags & SHF_RELA_LIVEPATCH != 0 {
            continue;
        }
        if let SectionData::Relocation(rels) = &mut s.data {
            let before = rels.len();
            rels.retain(|r| {
                r.symbol
                    .is_none_or(|id| !record_of.contains_key(&id.index()))
            });
            if before != 0 && rels.is_empty() {
                s.delete = true;
            }
        }
    }
    // And into the livepatch sections.
    let symtab = b
        .sections
        .iter()
        .find(|s| matches!(s.data, SectionData::Symbol))
        .map(|s| s.id());
    for (object, target, rels) in moves {
        let name = format!(
            ".klp.rela.{object}.{}",
            name_of(&b.sections.get(target).name)
        );
        let existing = b.sections.iter_mut().find(|s| {
            s.name.as_slice() == name.as_bytes()
                && s.sh_flags & SHF_RELA_LIVEPATCH != 0
                && s.sh_info_section == Some(target)
        });
        if let Some(SectionData::Relocation(v)) = existing.map(|s| &mut s.data) {
            v.extend(rels);
            continue;
        }
        let s = b.sections.add();
        s.name = name.into_bytes().into();
        s.sh_type = elf::SHT_RELA;
        s.sh_flags = u64::from(elf::SHF_ALLOC | elf::SHF_INFO_LINK) | SHF_RELA_LIVEPATCH;
        s.sh_link_section = symtab;
        s.sh_info_section = Some(target);
        s.sh_entsize = 24;
        s.sh_addralign = 8;
        s.data = SectionData::Relocation(rels);
    }
    // The records are build input only.
    let mut gone: Vec<SectionId> = Vec::new();
    for s in b.sections.iter_mut() {
        if s.name.as_slice() == RECORDS_SECTION.as_bytes() {
            s.delete = true;
            gone.push(s.id());
        }
    }
    for s in b.sections.iter_mut() {
        if s.sh_info_section.is_some_and(|t| gone.contains(&t)) {
            s.delete = true;
        }
    }

    let mut objects: Vec<ObjectSummary> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    for &(_, i) in &to_convert {
        if seen.contains(&i) {
            continue;
        }
        seen.push(i);
        let r = &records[i];
        let entry = (r.symbol.clone(), r.sympos, counts[i]);
        match objects.iter_mut().find(|o| o.object == r.object) {
            Some(o) => o.symbols.push(entry),
            None => objects.push(ObjectSummary {
                object: r.object.clone(),
                symbols: vec![entry],
            }),
        }
    }

    let mut elf = Vec::new();
    b.write(&mut elf).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("cannot write the converted module: {e}"),
        )
    })?;
    Ok(Conversion::Converted {
        elf,
        objects,
        warnings,
    })
}

/// Writes `bytes` to `dest` through a temporary file in the same directory and a rename,
/// with the permissions `like` has.
fn write_file(dest: &Path, bytes: &[u8], like: &Path) -> Outcome {
    let fail = |what: &str, e: std::io::Error| {
        Failure::new(
            Exit::Failed,
            format!("cannot {what} {}: {e}", dest.display()),
        )
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = dest
        .file_name()
        .ok_or_else(|| Failure::new(Exit::Usage, format!("{} is not a file", dest.display())))?;
    let tmp = dir.join(format!(
        ".{}.klp-convert.{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes)
        .map_err(|e| fail("write", e))
        .and_then(|()| match std::fs::metadata(like) {
            Ok(m) => std::fs::set_permissions(&tmp, m.permissions())
                .map_err(|e| fail("set the permissions of", e)),
            Err(_) => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, dest).map_err(|e| fail("replace", e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn klp_convert(ctx: &mut Ctx, module: &Path, output: Option<&Path>) -> Outcome {
    let data = std::fs::read(module).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            Exit::NotFound
        } else {
            Exit::Failed
        };
        Failure::new(code, format!("cannot read {}: {e}", module.display()))
    })?;
    let result = convert(&data).map_err(|mut f| {
        f.message = format!("{}: {}", module.display(), f.message);
        f
    })?;
    let (elf, objects, warnings, note) = match result {
        Conversion::NoRecords => (
            None,
            Vec::new(),
            Vec::new(),
            format!(
                "{}: no {RECORDS_SECTION} section (no LPATCH_SYM): nothing to convert",
                module.display()
            ),
        ),
        Conversion::NothingLeft { already, warnings } => {
            let mut note = format!(
                "{}: nothing left to convert: no undefined symbol is named by a LPATCH_SYM record",
                module.display()
            );
            if !already.is_empty() {
                let names: Vec<String> = already
                    .iter()
                    .map(|r| format!("{} {},{}", r.object, r.symbol, r.sympos))
                    .collect();
                note.push_str(&format!(" (already converted: {})", names.join(", ")));
            }
            (None, Vec::new(), warnings, note)
        }
        Conversion::Converted {
            elf,
            objects,
            warnings,
        } => (Some(elf), objects, warnings, String::new()),
    };
    for w in &warnings {
        let _ = writeln!(ctx.err, "warning: {w}");
    }
    let Some(elf) = elf else {
        ctx.say(&format!("{note}\n"));
        // With -o, OUT is the module as it is, so that a build can rely on it.
        if let Some(out) = output {
            write_file(out, &data, module)?;
            ctx.say(&format!("copied it unchanged to {}\n", out.display()));
        }
        return Ok(());
    };
    let dest = output.unwrap_or(module);
    write_file(dest, &elf, module)?;
    let mut text = String::new();
    for o in &objects {
        text.push_str(&o.line());
        text.push('\n');
    }
    text.push_str(&format!("wrote {}\n", dest.display()));
    ctx.say(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeOps, TempTree};
    use object::read::elf::{Rela as _, Sym as _};
    use object::LittleEndian as LE;
    use std::path::PathBuf;
    use std::process::Command;

    /// The header authors include: its LPATCH_SYM is what these tests convert.
    const MACRO: &str = "#include <lpatch.h>";
    const TAG: &str =
        r#"static const char m[] __attribute__((section(".modinfo"), used)) = "livepatch=Y";"#;

    /// Compiles `src` (after the LPATCH_SYM macro) as the kernel compiles a module's
    /// objects; the result stands for a linked .ko. Without gcc the test fails.
    fn compile(t: &TempTree, name: &str, src: &str) -> PathBuf {
        let c = t.write(&format!("{name}.c"), &format!("{MACRO}\n{src}\n"));
        let ko = t.path(&format!("{name}.ko"));
        let out = Command::new("gcc")
            .args(["-c", "-O2", "-fno-pic", "-mcmodel=kernel"])
            .arg(concat!(
                "-I",
                env!("CARGO_MANIFEST_DIR"),
                "/../../kernel/include"
            ))
            .arg("-o")
            .arg(&ko)
            .arg(&c)
            .output()
            .unwrap_or_else(|e| panic!("these tests need gcc to compile their modules: {e}"));
        assert!(
            out.status.success(),
            "gcc failed on {name}.c:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ko
    }

    fn run(args: &[&str]) -> (i32, String, String) {
        let ops = FakeOps::new();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let argv = std::iter::once("lpatch")
            .chain(["klp-convert"])
            .chain(args.iter().copied());
        let code = crate::cli::run(argv, &ops, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Rel {
        offset: u64,
        symbol: String,
        kind: u32,
        addend: i64,
    }

    #[derive(Debug)]
    struct Sec {
        index: usize,
        name: String,
        sh_type: u32,
        flags: u64,
        link: u32,
        info: u32,
        entsize: u64,
        align: u64,
        data: Vec<u8>,
        rels: Vec<Rel>,
    }

    #[derive(Debug)]
    struct Sym {
        name: String,
        shndx: u16,
        bind: u8,
        value: u64,
    }

    /// The sections and symbols of an ELF file, read back with object's reader.
    struct View {
        secs: Vec<Sec>,
        syms: Vec<Sym>,
        symtab: usize,
    }

    impl View {
        fn read(path: &Path) -> View {
            let data = std::fs::read(path).unwrap();
            let h = elf::FileHeader64::<LE>::parse(&*data).unwrap();
            let sections = h.sections(LE, &*data).unwrap();
            let table = sections.symbols(LE, &*data, elf::SHT_SYMTAB).unwrap();
            let sym_name = |i: usize| {
                let sym = table.symbol(object::SymbolIndex(i)).unwrap();
                name_of(table.symbol_name(LE, sym).unwrap())
            };
            let syms = table
                .iter()
                .map(|sym| Sym {
                    name: name_of(table.symbol_name(LE, sym).unwrap()),
                    shndx: sym.st_shndx(LE),
                    bind: sym.st_bind(),
                    value: sym.st_value(LE),
                })
                .collect();
            let secs = sections
                .enumerate()
                .map(|(i, sh)| Sec {
                    index: i.0,
                    name: name_of(sections.section_name(LE, sh).unwrap()),
                    sh_type: sh.sh_type(LE),
                    flags: sh.sh_flags(LE),
                    link: sh.sh_link(LE),
                    info: sh.sh_info(LE),
                    entsize: sh.sh_entsize(LE),
                    align: sh.sh_addralign(LE),
                    data: sh.data(LE, &*data).unwrap_or_default().to_vec(),
                    rels: match sh.rela(LE, &*data).unwrap() {
                        Some((rels, _)) => rels
                            .iter()
                            .map(|r| Rel {
                                offset: r.r_offset(LE),
                                symbol: sym_name(r.r_sym(LE, false) as usize),
                                kind: r.r_type(LE, false),
                                addend: r.r_addend(LE),
                            })
                            .collect(),
                        None => Vec::new(),
                    },
                })
                .collect();
            View {
                secs,
                syms,
                symtab: table.section().0,
            }
        }

        fn sec(&self, name: &str) -> &Sec {
            self.secs
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no section {name}: {:?}", self.names()))
        }

        fn has(&self, name: &str) -> bool {
            self.secs.iter().any(|s| s.name == name)
        }

        fn names(&self) -> Vec<&str> {
            self.secs.iter().map(|s| s.name.as_str()).collect()
        }

        fn sym(&self, name: &str) -> Option<&Sym> {
            self.syms.iter().find(|s| s.name == name)
        }
    }

    const PATCH: &str = r#"
extern int sysctl_random_min_urandom_seed;
LPATCH_SYM(vmlinux, sysctl_random_min_urandom_seed, 0);
extern int lpt_helper(int);
LPATCH_SYM(lpt_target, lpt_helper, 0);
extern int dup_helper(int);
LPATCH_SYM(vmlinux, dup_helper, 2);
LPATCH_SYM(vmlinux, sysctl_random_min_urandom_seed, 0);
extern int printk(const char *, ...);
int lpt_patched(int x)
{
	sysctl_random_min_urandom_seed = x;
	printk("lpt %d\n", lpt_helper(x) + dup_helper(x));
	return sysctl_random_min_urandom_seed;
}
int *lpt_seed = &sysctl_random_min_urandom_seed;
"#;

    fn klp_flags() -> u64 {
        u64::from(elf::SHF_ALLOC | elf::SHF_INFO_LINK) | SHF_RELA_LIVEPATCH
    }

    #[test]
    fn converts_vmlinux_and_module_symbols_in_place() {
        let t = TempTree::new();
        let ko = compile(&t, "patch", &format!("{PATCH}\n{TAG}"));
        let before = View::read(&ko);
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(err, "");
        assert_eq!(
            out,
            format!(
                "vmlinux: sysctl_random_min_urandom_seed,0 (3 relocations), dup_helper,2 (1 relocation)\n\
                 lpt_target: lpt_helper,0 (1 relocation)\n\
                 wrote {}\n",
                ko.display()
            )
        );
        let v = View::read(&ko);

        // The symbols.
        for (old, new) in [
            (
                "sysctl_random_min_urandom_seed",
                ".klp.sym.vmlinux.sysctl_random_min_urandom_seed,0",
            ),
            ("dup_helper", ".klp.sym.vmlinux.dup_helper,2"),
            ("lpt_helper", ".klp.sym.lpt_target.lpt_helper,0"),
        ] {
            assert!(v.sym(old).is_none(), "{old} is still there");
            let sym = v.sym(new).unwrap_or_else(|| panic!("no {new}"));
            assert_eq!(sym.shndx, SHN_LIVEPATCH, "{new}");
            assert_eq!(sym.bind, elf::STB_GLOBAL, "{new}");
            assert_eq!(sym.value, 0, "{new}");
        }
        assert_eq!(v.sym("printk").unwrap().shndx, elf::SHN_UNDEF);

        // The livepatch sections.
        let text = v.sec(".text").index as u32;
        let data = v.sec(".data").index as u32;
        let seed = ".klp.sym.vmlinux.sysctl_random_min_urandom_seed,0";
        let klp_text = v.sec(".klp.rela.vmlinux..text");
        let klp_data = v.sec(".klp.rela.vmlinux..data");
        let klp_mod = v.sec(".klp.rela.lpt_target..text");
        for (sec, target) in [(klp_text, text), (klp_data, data), (klp_mod, text)] {
            assert_eq!(sec.sh_type, elf::SHT_RELA, "{}", sec.name);
            assert_eq!(sec.flags, klp_flags(), "{}", sec.name);
            assert_eq!(sec.link as usize, v.symtab, "{}", sec.name);
            assert_eq!(sec.info, target, "{}", sec.name);
            assert_eq!(sec.entsize, 24, "{}", sec.name);
            assert_eq!(sec.align, 8, "{}", sec.name);
        }
        // Same relocations, same order, only the symbol's name changed.
        let rename = |r: &Rel| Rel {
            symbol: match r.symbol.as_str() {
                "sysctl_random_min_urandom_seed" => seed.to_string(),
                "dup_helper" => ".klp.sym.vmlinux.dup_helper,2".to_string(),
                "lpt_helper" => ".klp.sym.lpt_target.lpt_helper,0".to_string(),
                o => o.to_string(),
            },
            ..r.clone()
        };
        let old_text: Vec<Rel> = before.sec(".rela.text").rels.iter().map(rename).collect();
        let vmlinux_text: Vec<Rel> = old_text
            .iter()
            .filter(|r| r.symbol.starts_with(".klp.sym.vmlinux."))
            .cloned()
            .collect();
        assert_eq!(klp_text.rels, vmlinux_text);
        assert_eq!(klp_text.rels.iter().filter(|r| r.symbol == seed).count(), 2);
        let module_text: Vec<Rel> = old_text
            .iter()
            .filter(|r| r.symbol.starts_with(".klp.sym.lpt_target."))
            .cloned()
            .collect();
        assert_eq!(klp_mod.rels, module_text);
        assert_eq!(klp_mod.rels.len(), 1);
        assert_eq!(
            klp_data.rels,
            before
                .sec(".rela.data")
                .rels
                .iter()
                .map(rename)
                .collect::<Vec<_>>()
        );
        assert_eq!(klp_data.rels.len(), 1);

        // The other relocations stay, in order.
        let rest: Vec<Rel> = old_text
            .iter()
            .filter(|r| !r.symbol.starts_with(".klp.sym."))
            .cloned()
            .collect();
        assert!(rest.iter().any(|r| r.symbol == "printk"), "{rest:?}");
        assert_eq!(v.sec(".rela.text").rels, rest);
        assert_eq!(v.sec(".rela.text").flags, before.sec(".rela.text").flags);
        assert_eq!(v.sec(".rela.text").info, text);
        // .rela.data held only the one relocation: it is gone.
        assert!(!v.has(".rela.data"), "{:?}", v.names());
        if before.has(".rela.eh_frame") {
            assert_eq!(
                v.sec(".rela.eh_frame").rels,
                before.sec(".rela.eh_frame").rels
            );
        }
        // Contents unchanged, records gone.
        assert_eq!(v.sec(".text").data, before.sec(".text").data);
        assert_eq!(v.sec(".modinfo").data, before.sec(".modinfo").data);
        assert!(before.has(RECORDS_SECTION));
        assert!(!v.has(RECORDS_SECTION), "{:?}", v.names());

        // Again: nothing to do, nothing written.
        let bytes = std::fs::read(&ko).unwrap();
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("nothing to convert"), "{out}");
        assert_eq!(std::fs::read(&ko).unwrap(), bytes);
    }

    /// Writes `to`: `from` edited by `f` with object's builder, which reads the livepatch
    /// sections as convert does (see hide_alloc_rela).
    fn edit(from: &Path, to: &Path, f: impl FnOnce(&mut Builder)) -> PathBuf {
        let mut data = std::fs::read(from).unwrap();
        let hidden = hide_alloc_rela(&mut data).unwrap();
        let mut b = Builder::read(&*data).unwrap();
        for sec in b.sections.iter_mut() {
            if hidden.contains(&sec.id().index()) {
                sec.sh_flags |= u64::from(elf::SHF_ALLOC);
            }
        }
        f(&mut b);
        let mut out = Vec::new();
        b.write(&mut out).unwrap();
        std::fs::write(to, out).unwrap();
        to.to_path_buf()
    }

    fn add_records(b: &mut Builder, records: Vec<u8>) {
        let sec = b.sections.add();
        sec.name = RECORDS_SECTION.as_bytes().to_vec().into();
        sec.sh_type = elf::SHT_PROGBITS;
        sec.sh_addralign = 1;
        sec.data = SectionData::Data(records.into());
    }

    #[test]
    fn records_left_in_a_converted_module_change_nothing() {
        // A converted module that still carries its records (as another tool might leave
        // it): its livepatch sections (SHF_ALLOC relocations) must read back, and nothing
        // is left to convert.
        let t = TempTree::new();
        let ko = compile(&t, "patch", &format!("{PATCH}\n{TAG}"));
        let records = View::read(&ko).sec(RECORDS_SECTION).data.clone();
        let out_ko = t.path("out.ko");
        let (code, out, err) = run(&[s(&ko), "-o", s(&out_ko)]);
        assert_eq!(code, 0, "{out}{err}");
        let again = edit(&out_ko, &t.path("again.ko"), |b| add_records(b, records));
        assert!(View::read(&again).has(RECORDS_SECTION));
        let bytes = std::fs::read(&again).unwrap();
        let (code, out, err) = run(&[s(&again)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("nothing left to convert"), "{out}");
        assert!(
            out.contains("already converted: vmlinux sysctl_random_min_urandom_seed,0"),
            "{out}"
        );
        assert_eq!(std::fs::read(&again).unwrap(), bytes, "rewritten");
    }

    #[test]
    fn new_relocations_join_an_existing_livepatch_section() {
        let t = TempTree::new();
        let ko = compile(&t, "patch", &format!("{PATCH}\n{TAG}"));
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        // One more reference, to a symbol not converted yet, in .text.
        let more = edit(&ko, &t.path("more.ko"), |b| {
            let sym = b.symbols.add();
            sym.name = b"lpt_more".to_vec().into();
            sym.set_st_info(elf::STB_GLOBAL, elf::STT_NOTYPE);
            let id = sym.id();
            let rela_text = b
                .sections
                .iter_mut()
                .find(|s| s.name.as_slice() == b".rela.text")
                .unwrap();
            let SectionData::Relocation(rels) = &mut rela_text.data else {
                panic!("{rela_text:?}");
            };
            rels.push(Relocation {
                r_offset: 1,
                symbol: Some(id),
                r_type: elf::R_X86_64_PC32,
                r_addend: -4,
            });
            add_records(b, b"vmlinux lpt_more 0\0".to_vec());
        });
        let before = View::read(&more);
        let (code, out, err) = run(&[s(&more)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.starts_with("vmlinux: lpt_more,0 (1 relocation)\n"),
            "{out}"
        );
        let v = View::read(&more);
        let klp: Vec<&Sec> = v
            .secs
            .iter()
            .filter(|s| s.name == ".klp.rela.vmlinux..text")
            .collect();
        assert_eq!(klp.len(), 1, "{:?}", v.names());
        let mut want = before.sec(".klp.rela.vmlinux..text").rels.clone();
        want.push(Rel {
            offset: 1,
            symbol: ".klp.sym.vmlinux.lpt_more,0".into(),
            kind: elf::R_X86_64_PC32,
            addend: -4,
        });
        assert_eq!(klp[0].rels, want);
        assert_eq!(klp[0].flags, klp_flags());
        assert_eq!(
            v.sec(".klp.rela.lpt_target..text").rels,
            before.sec(".klp.rela.lpt_target..text").rels
        );
    }

    #[test]
    fn output_goes_to_o_and_the_input_stays() {
        let t = TempTree::new();
        let ko = compile(&t, "patch", &format!("{PATCH}\n{TAG}"));
        let bytes = std::fs::read(&ko).unwrap();
        let (code, out, err) = run(&[s(&ko), "-o", s(&t.path("converted.ko"))]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.ends_with(&format!("wrote {}\n", t.path("converted.ko").display())));
        assert_eq!(std::fs::read(&ko).unwrap(), bytes);
        assert!(View::read(&t.path("converted.ko")).has(".klp.rela.vmlinux..text"));
    }

    #[test]
    fn vmlinux_only_needs_no_tag_and_may_go_into_special_sections() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "vml",
            r#"
extern int vml_seed;
LPATCH_SYM(vmlinux, vml_seed, 0);
__attribute__((section(".init.text"))) int vml_init(void) { return vml_seed; }
void *vml_bug[] __attribute__((section("__bug_table"), used)) = { &vml_seed };
"#,
        );
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.starts_with("vmlinux: vml_seed,0 (2 relocations)\n"),
            "{out}"
        );
        let v = View::read(&ko);
        assert_eq!(v.sec(".klp.rela.vmlinux..init.text").rels.len(), 1);
        assert_eq!(v.sec(".klp.rela.vmlinux.__bug_table").rels.len(), 1);
    }

    #[test]
    fn no_records_is_nothing_to_convert() {
        let t = TempTree::new();
        let ko = compile(&t, "plain", "int plain(int x) { return x + 1; }");
        let bytes = std::fs::read(&ko).unwrap();
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            out,
            format!(
                "{}: no .comment.lpatch.syms section (no LPATCH_SYM): nothing to convert\n",
                ko.display()
            )
        );
        assert_eq!(std::fs::read(&ko).unwrap(), bytes);
        // With -o, OUT is the module as it is.
        let out_ko = t.path("out.ko");
        let (code, out, err) = run(&[s(&ko), "-o", s(&out_ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(std::fs::read(&out_ko).unwrap(), bytes);
    }

    #[test]
    fn an_unreferenced_record_is_a_warning() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "unref",
            r#"
extern int used_sym, unused_sym;
LPATCH_SYM(vmlinux, used_sym, 0);
LPATCH_SYM(vmlinux, unused_sym, 1);
int unref(void) { return used_sym; }
"#,
        );
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            err,
            "warning: unused_sym is annotated (LPATCH_SYM record \"vmlinux unused_sym 1\") but \
             this module does not refer to it\n"
        );
        assert!(
            out.starts_with("vmlinux: used_sym,0 (1 relocation)\n"),
            "{out}"
        );
        // Only unreferenced records: nothing left, nothing written.
        let ko = compile(
            &t,
            "none",
            "extern int unused_sym;\nLPATCH_SYM(vmlinux, unused_sym, 0);\nint none(void) { return 0; }",
        );
        let bytes = std::fs::read(&ko).unwrap();
        let (code, out, err) = run(&[s(&ko)]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(err.starts_with("warning: unused_sym is annotated"), "{err}");
        assert!(out.contains("nothing left to convert"), "{out}");
        assert_eq!(std::fs::read(&ko).unwrap(), bytes);
    }

    fn fails(ko: &Path, code: i32) -> String {
        let bytes = std::fs::read(ko).ok();
        let (c, out, err) = run(&[s(ko)]);
        assert_eq!(c, code, "{out}{err}");
        assert_eq!(out, "");
        assert_eq!(std::fs::read(ko).ok(), bytes, "changed on failure");
        err
    }

    #[test]
    fn a_symbol_defined_in_the_module_is_refused() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "def",
            "int lpt_local = 1;\nLPATCH_SYM(vmlinux, lpt_local, 0);\nint def(void) { return lpt_local; }",
        );
        let err = fails(&ko, 2);
        assert!(
            err.contains("lpt_local (LPATCH_SYM record \"vmlinux lpt_local 0\") is defined in this module; LPATCH_SYM is for symbols of the patched kernel"),
            "{err}"
        );
        assert!(
            err.starts_with(&format!("error: {}: ", ko.display())),
            "{err}"
        );
    }

    #[test]
    fn records_that_disagree_are_refused() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "dis",
            "extern int lpt_x;\nLPATCH_SYM(vmlinux, lpt_x, 0);\nLPATCH_SYM(lpt_target, lpt_x, 0);\n\
             LPATCH_SYM(vmlinux, lpt_x, 2);\nint dis(void) { return lpt_x; }",
        );
        let err = fails(&ko, 2);
        assert!(
            err.contains(
                "LPATCH_SYM records disagree about lpt_x: \"vmlinux lpt_x 0\" and \"lpt_target lpt_x 0\""
            ),
            "{err}"
        );
        assert!(
            err.contains("\"vmlinux lpt_x 0\" and \"vmlinux lpt_x 2\""),
            "{err}"
        );
    }

    #[test]
    fn malformed_records_are_refused() {
        let t = TempTree::new();
        let long_object = "o".repeat(56);
        let ko = compile(
            &t,
            "bad",
            &format!(
                "extern int lpt_y;\nLPATCH_SYM(vmlinux, lpt_y, x1);\nLPATCH_SYM({long_object}, lpt_y2, 0);\n\
                 asm(\".pushsection .comment.lpatch.syms,\\\"\\\",@progbits\\n.asciz \\\"vmlinux  lpt_z 0\\\"\\n.popsection\");\n\
                 int bad(void) {{ return lpt_y; }}"
            ),
        );
        let err = fails(&ko, 2);
        assert!(
            err.contains("malformed LPATCH_SYM record \"vmlinux lpt_y x1\": sympos \"x1\" is not a decimal number"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "malformed LPATCH_SYM record \"{long_object} lpt_y2 0\": the object name is longer than 55 bytes"
            )),
            "{err}"
        );
        assert!(
            err.contains("malformed LPATCH_SYM record \"vmlinux  lpt_z 0\": expected"),
            "{err}"
        );
    }

    #[test]
    fn the_help_tells_the_whole_flow() {
        let (code, out, _) = run(&["--help"]);
        assert_eq!(code, 0);
        for needle in [
            "LPATCH_SYM(vmlinux, foo, 0)",
            "MODULE_INFO(livepatch, \"Y\")",
            "KBUILD_MODPOST_WARN=1",
            "lpatch klp-convert on the linked .ko",
            "-o, --output <OUT>",
        ] {
            assert!(out.contains(needle), "{needle}: {out}");
        }
    }

    #[test]
    fn record_parsing() {
        let ok = parse_record("vmlinux foo.constprop.0 3").unwrap();
        assert_eq!(ok.klp_name(), ".klp.sym.vmlinux.foo.constprop.0,3");
        let o55 = "o".repeat(55);
        assert!(parse_record(&format!("{o55} f 0")).is_ok());
        assert!(parse_record(&format!("vmlinux {} 0", "s".repeat(511))).is_ok());
        for (text, why) in [
            ("vmlinux foo", "three fields"),
            ("vmlinux foo 0 1", "three fields"),
            ("vmlinux foo 0 ", "three fields"),
            (" foo 0", "object name is empty"),
            ("vmlinux  0", "symbol name is empty"),
            ("vmlinux foo ", "not a decimal number"),
            ("vmlinux foo -1", "not a decimal number"),
            ("vmlinux foo +1", "not a decimal number"),
            ("vmlinux foo 99999999999999999999", "too large"),
            ("vmlinux foo x", "not a decimal number"),
            ("lpt.target foo 0", "contains '.'"),
            ("vmlinux foo,bar 0", "contains ','"),
        ] {
            let e = parse_record(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let e = parse_record(&format!("{}o f 0", o55)).unwrap_err();
        assert!(e.contains("longer than 55 bytes"), "{e}");
        let e = parse_record(&format!("vmlinux {} 0", "s".repeat(512))).unwrap_err();
        assert!(e.contains("longer than 511 bytes"), "{e}");

        let recs = parse_records(b"vmlinux a 0\0vmlinux a 0\0\0m b 1\0").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].klp_name(), ".klp.sym.m.b,1");
        let e = parse_records(b"vmlinux a 0\0m a 0\0vmlinux b\0").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn a_module_object_needs_the_livepatch_tag() {
        let t = TempTree::new();
        let ko = compile(&t, "untagged", PATCH);
        let err = fails(&ko, 2);
        assert!(
            err.contains("refers to symbols of module lpt_target but is not tagged as a livepatch module: add MODULE_INFO(livepatch, \"Y\"); to its source"),
            "{err}"
        );
        assert!(err.contains("copy_module_elf"), "{err}");
    }

    #[test]
    fn module_relocations_into_init_exit_special_or_unloaded_sections_are_refused() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "places",
            &format!(
                r#"
extern int lpt_helper(int);
LPATCH_SYM(lpt_target, lpt_helper, 0);
{TAG}
int ok(int x) {{ return lpt_helper(x); }}
__attribute__((section(".init.text"))) int in_init(void) {{ return lpt_helper(1); }}
__attribute__((section(".exit.text"))) int in_exit(void) {{ return lpt_helper(2); }}
void *in_jump[] __attribute__((section("__jump_table"), used)) = {{ (void *)lpt_helper }};
void *in_alt[] __attribute__((section(".altinstructions"), used)) = {{ (void *)lpt_helper }};
asm(".pushsection .lpt_notes,\"\",@progbits\n.quad lpt_helper\n.popsection");
"#
            ),
        );
        let err = fails(&ko, 2);
        for (section, why) in [
            (".init.text", "init code is freed"),
            (".exit.text", "init code is freed"),
            ("__jump_table", "when it loads the patch module"),
            (".altinstructions", "when it loads the patch module"),
            (".lpt_notes", "not SHF_ALLOC"),
        ] {
            assert!(
                err.contains(&format!(
                    "cannot convert the relocation in {section} against lpt_helper (of module lpt_target): "
                )),
                "{section}: {err}"
            );
            let line = err
                .lines()
                .find(|l| l.contains(&format!("in {section} ")))
                .unwrap();
            assert!(line.contains(why), "{line}");
        }
        assert!(!err.contains("in .text "), "{err}");
    }

    #[test]
    fn anything_but_an_x86_64_elf64_relocatable_is_refused() {
        let t = TempTree::new();
        let ko = compile(
            &t,
            "hdr",
            "extern int a;\nLPATCH_SYM(vmlinux, a, 0);\nint f(void) { return a; }",
        );
        let good = std::fs::read(&ko).unwrap();
        let variant = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            t.write_bytes(name, &b)
        };
        let text = t.write("text.ko", "not an ELF file\n");
        assert!(fails(&text, 2).contains("not an ELF file"));
        let class32 = variant("c32.ko", &|b| b[4] = 1);
        assert!(fails(&class32, 2).contains("32-bit"));
        let big = variant("be.ko", &|b| b[5] = 2);
        assert!(fails(&big, 2).contains("big-endian"));
        let exec = variant("exec.ko", &|b| b[16] = 2);
        assert!(fails(&exec, 2).contains("not a relocatable object"));
        let arm = variant("arm.ko", &|b| b[18] = 183);
        assert!(fails(&arm, 2).contains("not x86-64"));
        // A .rela section turned into SHT_REL.
        let v = View::read(&ko);
        let rela = v.sec(".rela.text").index;
        let rel = variant("rel.ko", &|b| {
            let h = elf::FileHeader64::<LE>::parse(&**b).unwrap();
            let at = h.e_shoff(LE) as usize + rela * usize::from(h.e_shentsize(LE)) + 4;
            b[at..at + 4].copy_from_slice(&elf::SHT_REL.to_le_bytes());
        });
        assert!(fails(&rel, 2).contains("section .rela.text is SHT_REL"));
        assert!(fails(&t.path("missing.ko"), 3).contains("cannot read"));
    }
}

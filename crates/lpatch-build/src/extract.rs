// SPDX-License-Identifier: GPL-2.0-only
//! From one patched unit's object to the object a patch module carries: the sections of
//! the functions the patch replaces or adds and of the data it adds, with what they need
//! that belongs to no one else (string literals, `__func__`, constants); every other
//! symbol they reference stays the running kernel's. Compiled with per-function and
//! per-object sections, so each function and variable is a section of its own.
//!
//! References to what is not copied become named, undefined symbols: a global the kernel
//! exports resolves as for any module; anything else (a static function or variable of
//! the file, a global the kernel does not export) gets an `LPATCH_SYM`-style record, so
//! that `lpatch klp-convert` turns it into a livepatch relocation the loader (vmlinux) or
//! the core (a module) resolves at load. Each copied function is renamed
//! `__lpatch_new.<name>` and made global, for the patch description to name it.
//!
//! Tables the kernel reads about code (ftrace call sites, ORC unwind data, return and
//! retpoline thunk sites, lock prefixes, bug entries, jump labels, alternatives, the
//! exception table, paravirt sites, static call sites) keep the entries of the copied code,
//! and what those entries reference comes along like what the code references (a bug
//! entry's file name, an alternative's replacement). An entry that needs a module object's
//! symbol is refused: the loader reads these tables before the core resolves such symbols.
//! Tracepoint definitions (`__tracepoints_ptrs`) are refused by name.

use object::build::elf::{Builder, Relocation, SectionData, SectionId, SymbolId};
use object::build::Id as _;
use object::elf;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The non-alloc section `LPATCH_SYM` records go in (`lpatch klp-convert` reads it).
pub const RECORDS_SECTION: &str = ".comment.lpatch.syms";
/// The prefix of a copied function's symbol.
pub const NEW_PREFIX: &str = "__lpatch_new.";

/// A table about code whose entries are carried for the copied code: its name, its entry
/// size, and a parallel table without relocations with its entry size. Each entry's first
/// relocation names the code it is about.
type Table = (&'static str, u64, Option<(&'static str, u64)>);

const CARRIED_TABLES: &[Table] = &[
    ("__mcount_loc", 8, None),
    (".return_sites", 4, None),
    (".retpoline_sites", 4, None),
    (".orc_unwind_ip", 4, Some((".orc_unwind", 6))),
    // LOCK prefixes, which the kernel turns into NOPs were it to run on one CPU.
    (".smp_locks", 4, None),
    // struct bug_entry (relative address and file, line, flags): WARN and BUG.
    ("__bug_table", 12, None),
    // struct jump_entry (code, target, key): static keys and jump labels.
    ("__jump_table", 16, None),
    // struct alt_instr (instruction, replacement, cpuid, lengths); the replacements are
    // in .altinstr_replacement, which comes along as data no one names.
    (".altinstructions", 12, None),
    // struct exception_table_entry (instruction, fixup, handler data): user access.
    ("__ex_table", 12, None),
    // struct paravirt_patch_site (instruction pointer, type, length), 8-byte aligned.
    (".parainstructions", 16, None),
    // struct static_call_site (call, key).
    (".static_call_sites", 8, None),
];

/// Tables in which an entry about the copied code is refused: a tracepoint the patch would
/// define a second time.
const REFUSED_TABLES: &[&str] = &["__tracepoints_ptrs"];

/// What to copy out of a unit.
pub struct Request<'a> {
    /// Functions the patch replaces, and functions it adds.
    pub functions: &'a [String],
    /// Data the patch adds.
    pub data: &'a [String],
    /// What the kernel exports (Module.symvers): referenced by name as any module does;
    /// anything else not copied is referenced by record.
    pub exported: &'a HashSet<String>,
    /// For a symbol referenced by record, its name here and whether it is a static of the
    /// unit: where the kernel has it ([`Located`]).
    pub locate: &'a Locate<'a>,
}

/// See [`Request::locate`].
pub type Locate<'a> = dyn Fn(&str, bool) -> Result<Located, String> + 'a;

/// Where the running kernel has a symbol a record names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Located {
    /// "vmlinux" or the module that defines it.
    pub object: String,
    /// The kernel's name for it (a renumbered static local has another number in the
    /// patched object).
    pub name: String,
    /// Its position among the object's symbols of that name; 0 when the name is unique.
    pub sympos: u64,
}

/// The extracted object, and what it references outside itself.
pub struct Extracted {
    pub bytes: Vec<u8>,
    /// Each copied function: its name and its symbol in `bytes`.
    pub functions: Vec<(String, String)>,
    /// Symbols named by record, sorted.
    pub records: Vec<Located>,
}

fn name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Copies what `req` names out of `object` (the patched unit).
pub fn extract(object: &[u8], req: &Request<'_>) -> Result<Extracted, String> {
    let mut b = Builder::read(object).map_err(|e| format!("reading the object: {e}"))?;
    if b.header.e_type != elf::ET_REL {
        return Err("not a relocatable object".into());
    }
    // The named function and data symbols, and the sections they live in.
    let mut by_name: HashMap<String, SymbolId> = HashMap::new();
    for s in &b.symbols {
        let t = s.st_type();
        if s.section.is_some() && (t == elf::STT_FUNC || t == elf::STT_OBJECT) {
            by_name.entry(name(&s.name)).or_insert(s.id());
        }
    }
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    let mut copied_functions: Vec<SymbolId> = Vec::new();
    for f in req.functions {
        let id = by_name
            .get(f.as_str())
            .ok_or_else(|| format!("{f}: no such function in the patched object"))?;
        copied_functions.push(*id);
        let sec = b.symbols.get(*id).section.expect("defined");
        keep.insert(sec.index());
        // Its cold part goes with it.
        if let Some(cold) = by_name.get(&format!("{f}.cold")) {
            keep.insert(b.symbols.get(*cold).section.expect("defined").index());
        }
    }
    for d in req.data {
        let id = by_name
            .get(d.as_str())
            .ok_or_else(|| format!("{d}: no such variable in the patched object"))?;
        keep.insert(b.symbols.get(*id).section.expect("defined").index());
    }
    // Which functions and variables each section holds: a reference into a dropped section
    // means one of them; a section holding none belongs to nobody by name.
    let mut section_owner: HashMap<usize, Vec<(u64, u64, SymbolId)>> = HashMap::new();
    for s in &b.symbols {
        let t = s.st_type();
        if let (Some(sec), true) = (s.section, t == elf::STT_FUNC || t == elf::STT_OBJECT) {
            section_owner
                .entry(sec.index())
                .or_default()
                .push((s.st_value, s.st_size, s.id()));
        }
    }
    let rela_of: BTreeMap<usize, SectionId> = b
        .sections
        .iter()
        .filter(|s| matches!(s.data, SectionData::Relocation(_)))
        .filter_map(|s| s.sh_info_section.map(|t| (t.index(), s.id())))
        .collect();
    // Read-only data no global names (string literals, `__func__`, constant tables of the
    // file) is copied with the code that reads it: the same bytes, so a copy is as good.
    let global_in: HashSet<usize> = b
        .symbols
        .iter()
        .filter(|s| s.st_bind() != elf::STB_LOCAL)
        .filter_map(|s| s.section.map(|x| x.index()))
        .collect();
    let copyable = |sec: &object::build::elf::Section<'_>| {
        sec.is_alloc()
            && sec.sh_flags & u64::from(elf::SHF_WRITE | elf::SHF_EXECINSTR) == 0
            && !global_in.contains(&sec.id().index())
    };
    // Each table about code keeps the entries about the copied code; what those entries
    // reference (a bug entry's file name, an alternative's replacement) comes along below.
    carry_tables(&mut b, &keep, &rela_of)?;
    let carried: HashSet<usize> = b
        .sections
        .iter()
        .filter(|s| is_carried(&name(&s.name)))
        .map(|s| s.id().index())
        .collect();
    // Sections that belong to nobody by name (string literals, __func__, constants) come
    // along when copied code or a carried entry references them, transitively.
    let mut work: Vec<usize> = keep.iter().chain(&carried).copied().collect();
    while let Some(sec) = work.pop() {
        let Some(rela) = rela_of.get(&sec) else {
            continue;
        };
        let SectionData::Relocation(relocs) = &b.sections.get(*rela).data else {
            continue;
        };
        for r in relocs {
            let Some(sym) = r.symbol else { continue };
            let s = b.symbols.get(sym);
            let Some(target) = s.section else { continue };
            let t = target.index();
            let ts = b.sections.get(target);
            let anonymous = s.st_type() == elf::STT_SECTION && !section_owner.contains_key(&t);
            if (anonymous && ts.is_alloc() || copyable(ts)) && !keep.contains(&t) {
                keep.insert(t);
                work.push(t);
            }
        }
    }
    // Refuse what this slice cannot carry; note the tables it does.
    for s in &b.sections {
        let n = name(&s.name);
        let about_kept = |b: &Builder<'_>| -> bool {
            rela_of.get(&s.id().index()).is_some_and(|rela| {
                let SectionData::Relocation(rs) = &b.sections.get(*rela).data else {
                    return false;
                };
                rs.iter().any(|r| {
                    r.symbol
                        .and_then(|x| b.symbols.get(x).section)
                        .is_some_and(|t| keep.contains(&t.index()))
                })
            })
        };
        if REFUSED_TABLES.contains(&n.as_str()) && about_kept(&b) {
            return Err(format!(
                "{n}: the copied code has entries in this table, which lpatch build does not carry"
            ));
        }
    }
    // Local symbols that name what is not copied: every relocation against them, or
    // against their section, becomes a reference by name.
    let mut external: HashMap<String, SymbolId> = HashMap::new();
    let mut records: BTreeSet<Located> = BTreeSet::new();
    let record = |records: &mut BTreeSet<Located>, n: &str, local: bool| {
        let at = (req.locate)(n, local)?;
        let name = at.name.clone();
        records.insert(at);
        Ok::<String, String>(name)
    };
    let mut new_relocs: Vec<(SectionId, Vec<Relocation>)> = Vec::new();
    for (&sec, &rela) in &rela_of {
        if !keep.contains(&sec) && !carried.contains(&sec) {
            continue;
        }
        let relocs = match &b.sections.get(rela).data {
            SectionData::Relocation(r) => r.clone(),
            _ => continue,
        };
        let mut out = Vec::with_capacity(relocs.len());
        for r in &relocs {
            let mut r2 = *r;
            if let Some(sym) = r.symbol {
                let s = b.symbols.get(sym);
                match s.section {
                    Some(t) if keep.contains(&t.index()) => {}
                    Some(t) => {
                        // Into a dropped section: by the named symbol there.
                        let (target, addend) = if s.st_type() == elf::STT_SECTION {
                            let owners = section_owner
                                .get(&t.index())
                                .map(Vec::as_slice)
                                .unwrap_or_default();
                            let off = r.r_addend;
                            // The variable or function whose bytes the reference
                            // points into (a PC-relative addend is 4 to 8 short of it).
                            let pick = owners
                                .iter()
                                .filter(|(v, _, _)| *v as i64 <= off.max(0) + 8)
                                .max_by_key(|(v, _, _)| *v)
                                .or(owners.first())
                                .copied();
                            let Some((v, _, id)) = pick else {
                                return Err(format!(
                                    "a reference into section {} names no function or variable",
                                    name(&b.sections.get(t).name)
                                ));
                            };
                            (id, off - v as i64)
                        } else {
                            (sym, r.r_addend)
                        };
                        let ts = b.symbols.get(target);
                        let tname = name(&ts.name);
                        if ts.st_bind() == elf::STB_LOCAL {
                            // A static of the file: a symbol of its own, named by record
                            // with the kernel's name.
                            let kernel = record(&mut records, &tname, true)?;
                            r2.symbol = Some(external_symbol(&mut b, &mut external, &kernel));
                        } else {
                            // A global defined in the unit: made undefined below.
                            r2.symbol = Some(target);
                        }
                        r2.r_addend = addend;
                    }
                    None => {
                        // Defined elsewhere in the kernel: by record unless exported.
                        let n = name(&s.name);
                        if !n.is_empty() && !req.exported.contains(&n) {
                            record(&mut records, &n, false)?;
                        }
                    }
                }
            }
            out.push(r2);
        }
        new_relocs.push((rela, out));
    }
    for (rela, relocs) in new_relocs {
        b.sections.get_mut(rela).data = SectionData::Relocation(relocs);
    }
    // Globals defined in dropped sections: the kernel's, referenced by name; by record
    // unless the kernel exports them. Only those the kept code references: a module's
    // `init_module` alias, say, is nothing the patch uses.
    let used_by_kept: HashSet<usize> = rela_of
        .iter()
        .filter(|(sec, _)| keep.contains(sec))
        .filter_map(|(_, rela)| match &b.sections.get(*rela).data {
            SectionData::Relocation(rs) => Some(rs),
            _ => None,
        })
        .flatten()
        .filter_map(|r| r.symbol.map(|x| x.index()))
        .collect();
    let dropped_globals: Vec<(SymbolId, String)> = b
        .symbols
        .iter()
        .filter(|s| s.st_bind() != elf::STB_LOCAL)
        .filter(|s| s.section.is_some_and(|t| !keep.contains(&t.index())))
        .map(|s| (s.id(), name(&s.name)))
        .collect();
    for (id, n) in dropped_globals {
        let s = b.symbols.get_mut(id);
        s.section = None;
        s.st_shndx = elf::SHN_UNDEF;
        s.st_value = 0;
        s.st_size = 0;
        if !req.exported.contains(&n) && used_by_kept.contains(&id.index()) {
            record(&mut records, &n, false)?;
        }
    }
    // A table the loader reads as the patch module loads (and the alternatives' code) can
    // name vmlinux's symbols, whose livepatch relocations the loader applies first; a
    // module object's are applied by the core only when that module comes, too late.
    // kpatch refuses the same.
    let in_module: HashMap<&str, &str> = records
        .iter()
        .filter(|r| r.object != "vmlinux")
        .map(|r| (r.name.as_str(), r.object.as_str()))
        .collect();
    for (&sec, &rela) in &rela_of {
        let Some(target) = b.sections.get(rela).sh_info_section else {
            continue;
        };
        let table = name(&b.sections.get(target).name);
        if !(carried.contains(&sec) || keep.contains(&sec) && table.starts_with(".altinstr")) {
            continue;
        }
        let SectionData::Relocation(rs) = &b.sections.get(rela).data else {
            continue;
        };
        for r in rs {
            let Some(x) = r.symbol else { continue };
            let n = name(&b.symbols.get(x).name);
            if let Some(m) = in_module.get(n.as_str()) {
                return Err(format!(
                    "{table}: an entry about the copied code needs {n} of module {m}, which is resolved only when {m} loads, after the kernel has read this table: lpatch build cannot carry it"
                ));
            }
        }
    }
    // Drop what is not kept: sections (and their relocations), symbols in them.
    for s in b.sections.iter_mut() {
        let i = s.id().index();
        let keep_it = match &s.data {
            SectionData::Relocation(_) => s
                .sh_info_section
                .is_some_and(|t| keep.contains(&t.index()) || carried.contains(&t.index())),
            _ => {
                keep.contains(&i)
                    || carried.contains(&i)
                    || s.sh_type == elf::SHT_SYMTAB
                    || s.sh_type == elf::SHT_STRTAB
                    || name(&s.name) == ".note.GNU-stack"
            }
        };
        if !keep_it {
            s.delete = true;
        }
    }
    let deleted: HashSet<usize> = b
        .sections
        .iter()
        .filter(|s| s.delete)
        .map(|s| s.id().index())
        .collect();
    for s in b.symbols.iter_mut() {
        if s.section.is_some_and(|t| deleted.contains(&t.index())) {
            s.delete = true;
        }
    }
    // Undefined symbols nothing kept references (the dropped code's): the loader would
    // still look each up, and one the kernel does not export would fail the load.
    let referenced: HashSet<usize> = b
        .sections
        .iter()
        .filter(|s| !s.delete)
        .filter_map(|s| match &s.data {
            SectionData::Relocation(rs) => Some(rs),
            _ => None,
        })
        .flatten()
        .filter_map(|r| r.symbol.map(|x| x.index()))
        .collect();
    for s in b.symbols.iter_mut() {
        if s.section.is_none()
            && s.st_shndx == elf::SHN_UNDEF
            && !s.name.is_empty()
            && !referenced.contains(&s.id().index())
        {
            s.delete = true;
        }
    }
    // The copied functions: global, under a name of their own.
    let mut functions = Vec::new();
    for (id, f) in copied_functions.iter().zip(req.functions) {
        let s = b.symbols.get_mut(*id);
        let new_name = format!("{NEW_PREFIX}{f}");
        s.name = new_name.clone().into_bytes().into();
        let t = s.st_type();
        s.set_st_info(elf::STB_GLOBAL, t);
        s.st_other = elf::STV_DEFAULT;
        functions.push((f.clone(), new_name));
    }
    // The records, for klp-convert.
    let text: Vec<u8> = records
        .iter()
        .flat_map(|r| format!("{} {} {}\0", r.object, r.name, r.sympos).into_bytes())
        .collect();
    if !text.is_empty() {
        let sec = b.sections.add();
        sec.name = RECORDS_SECTION.as_bytes().to_vec().into();
        sec.sh_type = elf::SHT_PROGBITS;
        sec.sh_flags = 0;
        sec.sh_addralign = 1;
        sec.data = SectionData::Data(text.into());
    }
    b.delete_orphans();
    let mut out = Vec::new();
    b.write(&mut out)
        .map_err(|e| format!("writing the extracted object: {e}"))?;
    Ok(Extracted {
        bytes: out,
        functions,
        records: records.into_iter().collect(),
    })
}

fn is_carried(n: &str) -> bool {
    CARRIED_TABLES
        .iter()
        .any(|(t, _, par)| *t == n || par.is_some_and(|(p, _)| p == n))
}

/// An undefined symbol `n` standing for a static of the kernel (one per name).
fn external_symbol(
    b: &mut Builder<'_>,
    cache: &mut HashMap<String, SymbolId>,
    n: &str,
) -> SymbolId {
    if let Some(id) = cache.get(n) {
        return *id;
    }
    let s = b.symbols.add();
    s.name = n.as_bytes().to_vec().into();
    s.section = None;
    s.st_shndx = elf::SHN_UNDEF;
    s.set_st_info(elf::STB_GLOBAL, elf::STT_NOTYPE);
    let id = s.id();
    cache.insert(n.to_string(), id);
    id
}

/// Keeps, in each carried table, the entries whose first relocation is about copied code
/// (and the same entries of its parallel table).
fn carry_tables(
    b: &mut Builder<'_>,
    keep: &BTreeSet<usize>,
    rela_of: &BTreeMap<usize, SectionId>,
) -> Result<(), String> {
    for (table, size, parallel) in CARRIED_TABLES {
        let Some(tid) = b
            .sections
            .iter()
            .find(|s| name(&s.name) == *table)
            .map(|s| s.id())
        else {
            continue;
        };
        let Some(&rela) = rela_of.get(&tid.index()) else {
            continue;
        };
        let SectionData::Relocation(relocs) = &b.sections.get(rela).data else {
            continue;
        };
        let about = |r: &Relocation| {
            r.symbol
                .and_then(|x| b.symbols.get(x).section)
                .is_some_and(|t| keep.contains(&t.index()))
        };
        let kept_entries: Vec<u64> = relocs
            .iter()
            .filter(|r| r.r_offset % size == 0 && about(r))
            .map(|r| r.r_offset / size)
            .collect();
        let new_relocs: Vec<Relocation> = relocs
            .iter()
            .filter_map(|r| {
                let e = r.r_offset / size;
                kept_entries.iter().position(|k| *k == e).map(|i| {
                    let mut r2 = *r;
                    r2.r_offset = i as u64 * size + r.r_offset % size;
                    r2
                })
            })
            .collect();
        let data = section_bytes(b, tid, table)?;
        let new_data = pick_entries(&data, *size, &kept_entries);
        b.sections.get_mut(tid).data = SectionData::Data(new_data.into());
        b.sections.get_mut(rela).data = SectionData::Relocation(new_relocs);
        if let Some((p, psize)) = parallel {
            if let Some(pid) = b
                .sections
                .iter()
                .find(|s| name(&s.name) == *p)
                .map(|s| s.id())
            {
                let pdata = section_bytes(b, pid, p)?;
                let picked = pick_entries(&pdata, *psize, &kept_entries);
                b.sections.get_mut(pid).data = SectionData::Data(picked.into());
            }
        }
    }
    Ok(())
}

fn section_bytes(b: &Builder<'_>, id: SectionId, n: &str) -> Result<Vec<u8>, String> {
    match &b.sections.get(id).data {
        SectionData::Data(d) => Ok(d.to_vec()),
        _ => Err(format!("{n}: not a section with data")),
    }
}

/// The bytes of `entries`, each `size` long; an entry cut short by the end of the section
/// (the last of an aligned table has no padding after it) is padded with zeros.
fn pick_entries(data: &[u8], size: u64, entries: &[u64]) -> Vec<u8> {
    let size = size as usize;
    let mut out = Vec::with_capacity(entries.len() * size);
    for e in entries {
        let start = (*e as usize * size).min(data.len());
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        out.resize(out.len() + size - (end - start), 0);
    }
    out
}

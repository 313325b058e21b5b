// SPDX-License-Identifier: GPL-2.0-only
//! Comparing the two builds of one translation unit.
//!
//! `lpatch build` compiles each touched file twice, before and after the
//! diff, with `-ffunction-sections -fdata-sections`, and hands the two x86-64
//! ELF relocatable objects to [`compare`], which says which functions
//! changed, which functions and data objects are new, and which compiler
//! clones (`foo.isra.0`, `foo.constprop.0`, `foo.part.0`, `foo.cold`...)
//! changed or appeared.
//!
//! # How two functions are compared
//!
//! A function is an `STT_FUNC` symbol, local or global, defined in an
//! executable section. Its code is the whole section when it is the only
//! function there (the `-ffunction-sections` case: `.text.<name>`,
//! `.text.unlikely.<name>`, ...) and its `[value, value + size)` range
//! otherwise. Functions are identified by their symbol name, never by the
//! section name.
//!
//! Two versions of a function are the same when
//! * their code has the same length and the same bytes once every relocated
//!   field is masked out (the field's size comes from the relocation type),
//! * and their relocation lists are the same: same offsets, same types and
//!   the same *normalized target* ([`Target`]):
//!   - a named symbol is its name plus the addend, where GCC's numbered
//!     static locals (`__key.12`, `descr.3`, `__func__.5`...) and compiler
//!     clones, whose numbers shift when something else in the file changes,
//!     are first paired between the two objects (see below) and named by
//!     their `after` name; a read-only data object (`.rodata`) also carries a
//!     digest of its contents, so a function whose constant table changed is
//!     changed;
//!   - a section symbol of a mergeable string section (`.rodata.str1.1`...)
//!     plus addend is the string it points into (the position is the addend,
//!     plus 4 for PC-relative types, whose addend carries the usual `-4`), so
//!     adding a string elsewhere does not move every other reference;
//!   - a section symbol of another mergeable section is the constant it
//!     points at;
//!   - a section symbol of any other section is the symbol defined at the
//!     position it points at (name and delta), else the section's only
//!     symbol (`.rodata.offsets.1-0x1` reaches `offsets.1` from before its
//!     start), else the section's name and the addend (sections are per
//!     symbol: `.bss.foo`, `.rodata.bar.3`...; numbered ones are paired like
//!     static locals, read-only ones carry a digest of their contents).
//!
//! # Pairing renumbered symbols
//!
//! Clones are paired by full name first, then by base name and clone kinds
//! with the numbers ignored (in number order). Numbered static locals are
//! paired through the functions present in both objects that reference them:
//! when such a function has as many relocations before and after, the static
//! locals at the same positions of its two lists are paired; then, for the
//! other common functions, the still unpaired ones of the same base name in
//! order of first reference; then the ones no function references, by base
//! name in symbol order. What is left unpaired in `after` is new data.
//!
//! # Line numbers ([`compare`] rule 5)
//!
//! Inserting lines above a function changes the `__LINE__` it passes to
//! `__might_sleep()`, `__might_resched()`, `__might_fault()`,
//! `warn_slowpath_fmt()`, ... That alone is no change. The rule, chosen to be
//! sound rather than clever: when two versions have the same length and the
//! same normalized relocations but some bytes differ, they are still the same
//! if every differing byte lies in the 32-bit immediate of a
//! `mov $imm32, %esi` (`be imm32`; `%esi` carries the second argument, which
//! is the line in all of [`LINE_FUNCTIONS`]) such that
//! * both values are plausible line numbers (1 to 1 000 000),
//! * the instructions from the end of that `mov` to a `call`/`jmp`
//!   (`e8`/`e9` with a PC-relative relocation to one of [`LINE_FUNCTIONS`]) decode
//!   (in both versions) as a run of simple argument set-up instructions
//!   (`mov`, `lea`, `xor`, `movzx`, ALU with a register or memory operand,
//!   no branch, no call) of which none writes `%esi`/`%rsi`.
//!
//! So a real change of an immediate elsewhere, or of the line-number register
//! being computed rather than loaded, stays a change. `__warn_printk()` is not
//! in the list: its second argument is a format argument, not a line. `WARN()`
//! and `BUG()` put their line in `__bug_table`, a different section, and
//! relocation sections other than the function's own are not part of a
//! function: their line shifts are no change by construction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym as _};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, RelocationTarget};
use serde::Serialize;

/// Functions whose second argument is a `__LINE__` (see the module doc).
pub const LINE_FUNCTIONS: &[&str] = &[
    "__might_sleep",
    "___might_sleep",
    "__might_resched",
    "__might_fault",
    "warn_slowpath_fmt",
    "lockdep_rcu_suspicious",
];

/// What changed between the two builds of one translation unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectDiff {
    /// Functions present in both objects whose code or relocations differ,
    /// plus the functions whose `.cold` part changed.
    pub changed: Vec<String>,
    /// Functions only in `after` (clones are in `clones`).
    pub new_functions: Vec<String>,
    /// Data objects (`STT_OBJECT` in an allocated section) only in `after`.
    pub new_data: Vec<String>,
    /// Compiler clones that changed or appeared.
    pub clones: Vec<CloneChange>,
    /// Functions only in `before` (not clones). Informational.
    pub removed_functions: Vec<String>,
    /// Data objects in both whose initial value (bytes, or what their pointers point at)
    /// or kind (zero-initialised or not, writable or not) differs.
    pub changed_data: Vec<String>,
    /// Changed functions (and changed clones) whose running version ftrace cannot redirect:
    /// no `__fentry__` call (`notrace`, or built without it).
    pub untraced: Vec<String>,
    /// Changed functions in `.init*` or `.exit*` sections: `(function, section)`.
    pub init_exit: Vec<(String, String)>,
    /// Sections of `after` that hold entries about a changed function, or that it refers
    /// to, and that lpatch does not know how to carry: `(section, function)`.
    pub unknown_sections: Vec<(String, String)>,
    /// Renumbered symbols (static locals, clones): their name in `after` → their name in
    /// `before`, which is the running kernel's (a patch names the kernel's symbol).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel_names: BTreeMap<String, String>,
}

impl ObjectDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
            && self.new_functions.is_empty()
            && self.new_data.is_empty()
            && self.clones.is_empty()
    }
}

/// A compiler clone that changed or appeared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CloneChange {
    /// The clone's name in `after`, e.g. `tcp_foo.isra.0`.
    pub clone: String,
    /// The function it was made from, e.g. `tcp_foo`.
    pub original: String,
    /// The clone has no counterpart in `before`.
    pub new: bool,
}

/// Which of the two objects an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Before,
    After,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Before => "before",
            Which::After => "after",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareError {
    /// Not ELF at all, or not a 64-bit little-endian x86-64 `ET_REL` file.
    NotX86_64Relocatable(Which),
    /// Functions exist but all of them are in `.text`.
    NoFunctionSections(Which),
    /// The ELF file is damaged (a section, symbol or relocation can't be read).
    Malformed(Which, String),
}

impl fmt::Display for CompareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompareError::NotX86_64Relocatable(w) => {
                write!(f, "{w}: not an x86-64 ELF relocatable object")
            }
            CompareError::NoFunctionSections(w) => write!(
                f,
                "{w}: no per-function sections: compile with -ffunction-sections"
            ),
            CompareError::Malformed(w, why) => write!(f, "{w}: malformed ELF object: {why}"),
        }
    }
}

impl std::error::Error for CompareError {}

/// Compares two builds of one translation unit. See the module doc.
pub fn compare(before: &[u8], after: &[u8]) -> Result<ObjectDiff, CompareError> {
    let before = Obj::parse(before, Which::Before)?;
    let after = Obj::parse(after, Which::After)?;
    Ok(Comparison::new(&before, &after).run())
}

// ---------------------------------------------------------------------------
// Names

/// The kinds of GCC clone suffixes.
const CLONE_KINDS: &[&str] = &[
    "isra",
    "constprop",
    "part",
    "cold",
    "lto_priv",
    "localalias",
];

/// A function name split into base and clone suffixes: `foo.constprop.0.isra.1`
/// is `foo` with `[("constprop", Some(0)), ("isra", Some(1))]`. Names whose
/// suffixes are not all clone kinds (with optional numbers) are plain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CloneName<'a> {
    base: &'a str,
    suffixes: Vec<(&'a str, Option<u64>)>,
}

impl<'a> CloneName<'a> {
    fn parse(name: &'a str) -> Option<Self> {
        let mut parts = name.split('.');
        let base = parts.next()?;
        if base.is_empty() {
            return None;
        }
        let mut suffixes: Vec<(&str, Option<u64>)> = Vec::new();
        for part in parts {
            if CLONE_KINDS.contains(&part) {
                suffixes.push((part, None));
            } else if let (Ok(n), Some(last)) = (part.parse::<u64>(), suffixes.last_mut()) {
                if last.1.is_some() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                last.1 = Some(n);
            } else {
                return None;
            }
        }
        if suffixes.is_empty() {
            None
        } else {
            Some(CloneName { base, suffixes })
        }
    }

    fn kinds(&self) -> Vec<&'a str> {
        self.suffixes.iter().map(|s| s.0).collect()
    }

    fn numbers(&self) -> Vec<Option<u64>> {
        self.suffixes.iter().map(|s| s.1).collect()
    }

    fn is_alias(&self) -> bool {
        self.suffixes.iter().any(|s| s.0 == "localalias")
    }

    /// `foo.part.0` for `foo.part.0.cold.1`, `foo` for `foo.cold`: the
    /// function a `.cold` part belongs to.
    fn cold_parent(name: &str) -> Option<String> {
        let parsed = CloneName::parse(name)?;
        let (last, rest) = parsed.suffixes.split_last()?;
        if last.0 != "cold" {
            return None;
        }
        let mut parent = parsed.base.to_string();
        for (kind, n) in rest {
            parent.push('.');
            parent.push_str(kind);
            if let Some(n) = n {
                parent.push_str(&format!(".{n}"));
            }
        }
        Some(parent)
    }
}

type CloneGroups<'n> = BTreeMap<(&'n str, Vec<&'n str>), Vec<(Vec<Option<u64>>, String)>>;

/// Clone names grouped by base name and kinds, each group in number order.
fn clone_groups<'n>(names: &'n [String], skip: &dyn Fn(&str) -> bool) -> CloneGroups<'n> {
    let mut groups: CloneGroups<'n> = BTreeMap::new();
    for n in names.iter().filter(|n| !skip(n)) {
        if let Some(c) = CloneName::parse(n) {
            groups
                .entry((c.base, c.kinds()))
                .or_default()
                .push((c.numbers(), n.clone()));
        }
    }
    for list in groups.values_mut() {
        list.sort();
    }
    groups
}

/// The name without `.localalias` suffixes: the symbol it is an alias of.
fn strip_localalias(name: &str) -> String {
    match CloneName::parse(name) {
        Some(c) if c.is_alias() => {
            let mut out = c.base.to_string();
            for (kind, n) in c.suffixes.iter().filter(|s| s.0 != "localalias") {
                out.push('.');
                out.push_str(kind);
                if let Some(n) = n {
                    out.push_str(&format!(".{n}"));
                }
            }
            out
        }
        _ => name.to_string(),
    }
}

/// The base of a name GCC or the kernel numbers by position in the file:
/// `__key.12` → `__key`, `__func__.5` → `__func__`,
/// `__UNIQUE_ID_ddebug123.4` → `__UNIQUE_ID_ddebug`. `None` for other names.
fn numbered_base(name: &str) -> Option<&str> {
    let mut base = name;
    let mut numbered = false;
    if let Some((stem, n)) = name.rsplit_once('.') {
        if !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            base = stem;
            numbered = true;
        }
    }
    if base.starts_with("__UNIQUE_ID_") {
        let trimmed = base.trim_end_matches(|c: char| c.is_ascii_digit());
        if trimmed.len() > "__UNIQUE_ID_".len() {
            base = trimmed;
            numbered = true;
        }
    }
    numbered.then_some(base)
}

// ---------------------------------------------------------------------------
// Reading the objects

struct Section<'d> {
    name: String,
    sh_type: u32,
    flags: u64,
    entsize: u64,
    size: u64,
    /// Empty for `SHT_NOBITS`.
    data: &'d [u8],
    /// Relocations applying to this section, by offset.
    relocs: Vec<Reloc>,
}

impl Section<'_> {
    fn alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }
    fn exec(&self) -> bool {
        self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
    fn writable(&self) -> bool {
        self.flags & u64::from(elf::SHF_WRITE) != 0
    }
    fn merge(&self) -> bool {
        self.flags & u64::from(elf::SHF_MERGE) != 0
    }
    fn strings(&self) -> bool {
        self.flags & u64::from(elf::SHF_STRINGS) != 0
    }
}

#[derive(Debug, Clone)]
struct Symbol {
    name: String,
    st_type: u8,
    local: bool,
    /// Index of the defining section, `None` if undefined, absolute or common.
    section: Option<usize>,
    value: u64,
    size: u64,
}

#[derive(Debug, Clone, Copy)]
struct Reloc {
    offset: u64,
    r_type: u32,
    sym: Option<usize>,
    addend: i64,
}

/// Size in bytes of the field an x86-64 relocation patches.
fn reloc_size(r_type: u32) -> u64 {
    match r_type {
        elf::R_X86_64_64
        | elf::R_X86_64_PC64
        | elf::R_X86_64_GOTOFF64
        | elf::R_X86_64_GOTPC64
        | elf::R_X86_64_GOT64
        | elf::R_X86_64_GOTPCREL64
        | elf::R_X86_64_GOTPLT64
        | elf::R_X86_64_PLTOFF64
        | elf::R_X86_64_SIZE64
        | elf::R_X86_64_DTPMOD64
        | elf::R_X86_64_DTPOFF64
        | elf::R_X86_64_TPOFF64 => 8,
        elf::R_X86_64_16 | elf::R_X86_64_PC16 => 2,
        elf::R_X86_64_8 | elf::R_X86_64_PC8 => 1,
        elf::R_X86_64_NONE => 0,
        _ => 4,
    }
}

/// PC-relative types: their addend is biased by the distance from the field
/// to the end of the instruction (usually 4).
fn pc_relative(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_PC32
            | elf::R_X86_64_PLT32
            | elf::R_X86_64_PC64
            | elf::R_X86_64_PC16
            | elf::R_X86_64_PC8
            | elf::R_X86_64_GOTPCREL
            | elf::R_X86_64_GOTPCRELX
            | elf::R_X86_64_REX_GOTPCRELX
    )
}

struct Obj<'d> {
    sections: Vec<Option<Section<'d>>>,
    symbols: Vec<Option<Symbol>>,
    /// Per section: the named symbols defined in it, by value.
    by_section: HashMap<usize, Vec<usize>>,
}

impl<'d> Obj<'d> {
    fn parse(data: &'d [u8], which: Which) -> Result<Self, CompareError> {
        let not_rel = CompareError::NotX86_64Relocatable(which);
        let bad = |e: object::Error| CompareError::Malformed(which, e.to_string());
        let file = ElfFile64::<Endianness>::parse(data).map_err(|_| not_rel.clone())?;
        let endian = file.endian();
        let header = file.elf_header();
        if endian != Endianness::Little
            || header.e_machine(endian) != elf::EM_X86_64
            || header.e_type(endian) != elf::ET_REL
        {
            return Err(not_rel);
        }

        let mut sections: Vec<Option<Section<'d>>> = Vec::new();
        for section in file.sections() {
            let index = section.index().0;
            let sh = section.elf_section_header();
            let sh_type = sh.sh_type(endian);
            let data = if sh_type == elf::SHT_NOBITS {
                &[][..]
            } else {
                section.data().map_err(bad)?
            };
            let mut relocs = Vec::new();
            for (offset, r) in section.relocations() {
                let r_type = match r.flags() {
                    object::RelocationFlags::Elf { r_type } => r_type,
                    _ => 0,
                };
                let sym = match r.target() {
                    RelocationTarget::Symbol(s) => Some(s.0),
                    _ => None,
                };
                relocs.push(Reloc {
                    offset,
                    r_type,
                    sym,
                    addend: r.addend(),
                });
            }
            relocs.sort_by_key(|r| r.offset);
            if sections.len() <= index {
                sections.resize_with(index + 1, || None);
            }
            sections[index] = Some(Section {
                name: section.name().map_err(bad)?.to_string(),
                sh_type,
                flags: sh.sh_flags(endian),
                entsize: sh.sh_entsize(endian),
                size: sh.sh_size(endian),
                data,
                relocs,
            });
        }

        let mut symbols: Vec<Option<Symbol>> = Vec::new();
        for symbol in file.symbols() {
            let index = symbol.index().0;
            let st = symbol.elf_symbol();
            let section = match symbol.section() {
                object::SymbolSection::Section(s) => Some(s.0),
                _ => None,
            };
            if symbols.len() <= index {
                symbols.resize_with(index + 1, || None);
            }
            symbols[index] = Some(Symbol {
                name: symbol.name().map_err(bad)?.to_string(),
                st_type: st.st_type(),
                local: st.st_bind() == elf::STB_LOCAL,
                section: section.filter(|&s| sections.get(s).is_some_and(Option::is_some)),
                value: st.st_value(endian),
                size: st.st_size(endian),
            });
        }

        let mut by_section: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, s) in symbols.iter().enumerate() {
            let Some(s) = s else { continue };
            if matches!(s.st_type, elf::STT_SECTION | elf::STT_FILE) || s.name.is_empty() {
                continue;
            }
            if let Some(sec) = s.section {
                by_section.entry(sec).or_default().push(i);
            }
        }
        for list in by_section.values_mut() {
            list.sort_by_key(|&i| (symbols[i].as_ref().map_or(0, |s| s.value), i));
        }

        let obj = Obj {
            sections,
            symbols,
            by_section,
        };
        let funcs: Vec<&Symbol> = obj.function_symbols().map(|(_, s)| s).collect();
        if !funcs.is_empty()
            && funcs.iter().all(|f| {
                f.section
                    .and_then(|s| obj.section(s))
                    .map(|s| s.name.as_str())
                    == Some(".text")
            })
        {
            return Err(CompareError::NoFunctionSections(which));
        }
        Ok(obj)
    }

    fn section(&self, index: usize) -> Option<&Section<'d>> {
        self.sections.get(index).and_then(Option::as_ref)
    }

    fn symbol(&self, index: usize) -> Option<&Symbol> {
        self.symbols.get(index).and_then(Option::as_ref)
    }

    /// Defined `STT_FUNC` symbols in executable sections, `.localalias`
    /// aliases left out.
    fn function_symbols(&self) -> impl Iterator<Item = (usize, &Symbol)> {
        self.symbols.iter().enumerate().filter_map(move |(i, s)| {
            let s = s.as_ref()?;
            let sec = self.section(s.section?)?;
            let alias = CloneName::parse(&s.name).is_some_and(|c| c.is_alias());
            (s.st_type == elf::STT_FUNC && sec.exec() && !s.name.is_empty() && !alias)
                .then_some((i, s))
        })
    }

    /// Named data objects (`STT_OBJECT` in an allocated section), with their sections.
    fn data_objects(&self) -> impl Iterator<Item = (usize, &Symbol, &Section<'d>)> {
        self.symbols.iter().enumerate().filter_map(move |(i, s)| {
            let s = s.as_ref()?;
            let sec = self.section(s.section?)?;
            (s.st_type == elf::STT_OBJECT && sec.alloc() && !s.name.is_empty())
                .then_some((i, s, sec))
        })
    }

    /// The code range of a function symbol: its whole section if it is the
    /// only function there, else its own range.
    fn function_range(&self, sym: &Symbol) -> Option<(usize, u64, u64)> {
        let sec_index = sym.section?;
        let sec = self.section(sec_index)?;
        let others = self.by_section.get(&sec_index).map_or(0, |list| {
            list.iter()
                .filter_map(|&i| self.symbol(i))
                .filter(|s| s.st_type == elf::STT_FUNC && s.value != sym.value)
                .count()
        });
        if others == 0 {
            Some((sec_index, 0, sec.size))
        } else {
            let start = sym.value.min(sec.size);
            let end = sym.value.saturating_add(sym.size).min(sec.size);
            Some((sec_index, start, end.max(start)))
        }
    }

    /// Where a relocation points, before naming.
    fn resolve(&self, r: &Reloc) -> Resolved {
        let Some(sym_index) = r.sym else {
            return Resolved::Absolute(r.addend);
        };
        let Some(sym) = self.symbol(sym_index) else {
            return Resolved::Absolute(r.addend);
        };
        if sym.st_type != elf::STT_SECTION {
            return Resolved::Symbol(sym_index, r.addend);
        }
        let Some(sec_index) = sym.section else {
            return Resolved::Absolute(r.addend);
        };
        let Some(sec) = self.section(sec_index) else {
            return Resolved::Absolute(r.addend);
        };
        let bias = if pc_relative(r.r_type) {
            reloc_size(r.r_type).min(4) as i64
        } else {
            0
        };
        let pos = i128::from(r.addend) + i128::from(bias) + i128::from(sym.value);
        let in_section = |p: i128| p >= 0 && p < i128::from(sec.size);
        if in_section(pos) && sec.merge() && !sec.data.is_empty() {
            let pos = pos as usize;
            let unit = (sec.entsize.max(1) as usize).min(16);
            if sec.strings() {
                let (start, content) = string_at(sec.data, pos, unit);
                return Resolved::String(content, i128::from(r.addend) - start as i128);
            }
            let start = pos - pos % unit;
            let end = (start + unit).min(sec.data.len());
            return Resolved::Constant(
                sec.data[start..end].to_vec(),
                i128::from(r.addend) - start as i128,
            );
        }
        let target = if in_section(pos) {
            self.symbol_at(sec_index, pos as u64)
        } else {
            None
        };
        // A string with no symbol in a read-only section that is not mergeable (KASAN puts
        // string literals in plain `.rodata`, with redzones between them): its content, so
        // a string changed elsewhere in the section does not move this reference.
        if target.is_none() && in_section(pos) && sec.alloc() && !sec.writable() && !sec.exec() {
            if let Some((start, content)) = c_string_at(sec.data, pos as usize) {
                return Resolved::String(content, i128::from(r.addend) - start as i128);
            }
        }
        // Out of every symbol (`.rodata.offsets.1-0x1`: an array indexed
        // from 1): the section's only symbol, if it has one.
        let target = target.or_else(|| match self.by_section.get(&sec_index)?.as_slice() {
            [only] => Some(*only),
            _ => None,
        });
        if let Some(target) = target {
            let value = self.symbol(target).map_or(0, |s| s.value);
            return Resolved::Symbol(target, r.addend.wrapping_sub(value as i64));
        }
        Resolved::Section(sec_index, r.addend)
    }

    /// The named symbol defined at `pos` in a section, else the one whose
    /// range contains it.
    fn symbol_at(&self, sec: usize, pos: u64) -> Option<usize> {
        let list = self.by_section.get(&sec)?;
        let rank = |i: usize| {
            let s = self.symbol(i).expect("listed symbols exist");
            let kind = match s.st_type {
                elf::STT_FUNC | elf::STT_OBJECT => 0,
                _ => 1,
            };
            let alias = CloneName::parse(&s.name).is_some_and(|c| c.is_alias());
            (kind, alias, s.local, i)
        };
        let at = list
            .iter()
            .copied()
            .filter(|&i| self.symbol(i).is_some_and(|s| s.value == pos))
            .min_by_key(|&i| rank(i));
        at.or_else(|| {
            list.iter()
                .copied()
                .filter(|&i| {
                    self.symbol(i)
                        .is_some_and(|s| s.value < pos && pos < s.value.saturating_add(s.size))
                })
                .min_by_key(|&i| rank(i))
        })
    }
}

/// The C string that starts at `pos`, or contains it, when the bytes there are one: printable
/// text (tabs and newlines allowed) up to a NUL, after a NUL or the section's start.
fn c_string_at(data: &[u8], pos: usize) -> Option<(usize, Vec<u8>)> {
    let text = |b: u8| b.is_ascii_graphic() || b == b' ' || b == b'\t' || b == b'\n';
    if pos >= data.len() {
        return None;
    }
    let mut start = pos;
    while start > 0 && text(data[start - 1]) {
        start -= 1;
    }
    if start > 0 && data[start - 1] != 0 {
        return None;
    }
    let end = start + data[start..].iter().position(|&b| b == 0)?;
    if end <= start || !data[start..end].iter().all(|&b| text(b)) || pos > end {
        return None;
    }
    Some((start, data[start..end].to_vec()))
}

/// The NUL-terminated string (of `unit`-byte characters) containing `pos`:
/// its start and its bytes.
fn string_at(data: &[u8], pos: usize, unit: usize) -> (usize, Vec<u8>) {
    let is_nul = |at: usize| {
        data[at..(at + unit).min(data.len())]
            .iter()
            .all(|&b| b == 0)
    };
    let mut start = pos - pos % unit;
    while start >= unit && !is_nul(start - unit) {
        start -= unit;
    }
    let mut end = start;
    while end < data.len() && !is_nul(end) {
        end += unit;
    }
    let end = end.min(data.len());
    (start, data[start..end].to_vec())
}

/// A relocation target before naming.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// A symbol plus delta from its start.
    Symbol(usize, i64),
    /// Contents of a string plus the addend's delta from its start.
    String(Vec<u8>, i128),
    /// Contents of a mergeable constant plus delta.
    Constant(Vec<u8>, i128),
    /// A section with no symbol at the target, and the addend.
    Section(usize, i64),
    /// No symbol.
    Absolute(i64),
}

// ---------------------------------------------------------------------------
// The comparison

/// A symbol or a section (for targets with no symbol, like the
/// `.rodata.offsets.67` of an anonymous static const local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Entity {
    Sym(usize),
    Sec(usize),
}

/// A function's code, masked, with its normalized relocations.
#[derive(Debug, PartialEq, Eq)]
struct Body {
    bytes: Vec<u8>,
    /// Offsets, for the line-number rule: where relocated fields are.
    relocs: Vec<(u64, u32, String)>,
}

struct Function {
    sym: usize,
    name: String,
    section: usize,
    start: u64,
    end: u64,
}

struct Comparison<'a, 'd> {
    before: &'a Obj<'d>,
    after: &'a Obj<'d>,
    before_funcs: BTreeMap<String, Function>,
    after_funcs: BTreeMap<String, Function>,
    /// Before symbol index → the name it goes by (its `after` counterpart's
    /// name for paired clones and static locals).
    before_names: HashMap<usize, String>,
    /// Before section index → the name of its `after` counterpart, for
    /// numbered per-object sections with no symbol.
    before_section_names: HashMap<usize, String>,
    /// Numbered static locals of `after` that got paired.
    paired_after: HashSet<Entity>,
    /// Before clone name → after clone name.
    clone_pairs: BTreeMap<String, String>,
}

impl<'a, 'd> Comparison<'a, 'd> {
    fn new(before: &'a Obj<'d>, after: &'a Obj<'d>) -> Self {
        let functions = |obj: &Obj<'_>| {
            let mut map = BTreeMap::new();
            for (sym, s) in obj.function_symbols() {
                if let Some((section, start, end)) = obj.function_range(s) {
                    map.entry(s.name.clone()).or_insert(Function {
                        sym,
                        name: s.name.clone(),
                        section,
                        start,
                        end,
                    });
                }
            }
            map
        };
        let mut cmp = Comparison {
            before,
            after,
            before_funcs: functions(before),
            after_funcs: functions(after),
            before_names: HashMap::new(),
            before_section_names: HashMap::new(),
            paired_after: HashSet::new(),
            clone_pairs: BTreeMap::new(),
        };
        cmp.pair_clones();
        cmp.pair_static_locals();
        cmp
    }

    fn pair_clones(&mut self) {
        let clones = |funcs: &BTreeMap<String, Function>| -> Vec<String> {
            funcs
                .keys()
                .filter(|n| CloneName::parse(n).is_some())
                .cloned()
                .collect()
        };
        let before = clones(&self.before_funcs);
        let after = clones(&self.after_funcs);
        let mut pairs = BTreeMap::new();
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for name in &before {
            if self.after_funcs.contains_key(name) {
                pairs.insert(name.clone(), name.clone());
                taken.insert(name.clone());
            }
        }
        let before_groups = clone_groups(&before, &|n| pairs.contains_key(n));
        let after_groups = clone_groups(&after, &|n| taken.contains(n));
        let mut more = Vec::new();
        for (key, b_list) in &before_groups {
            if let Some(a_list) = after_groups.get(key) {
                for ((_, b), (_, a)) in b_list.iter().zip(a_list) {
                    more.push((b.clone(), a.clone()));
                }
            }
        }
        pairs.extend(more);
        for (b, a) in &pairs {
            if let Some(f) = self.before_funcs.get(b) {
                self.before_names.insert(f.sym, a.clone());
            }
        }
        self.clone_pairs = pairs;
    }

    /// Is this symbol a numbered static local (see [`numbered_base`])?
    fn numbered_local(obj: &Obj<'_>, index: usize) -> Option<String> {
        let s = obj.symbol(index)?;
        if !s.local
            || s.section.is_none()
            || !matches!(s.st_type, elf::STT_OBJECT | elf::STT_NOTYPE)
        {
            return None;
        }
        numbered_base(&s.name).map(str::to_string)
    }

    /// Is this target a numbered static local, with or without a symbol
    /// (`.rodata.offsets.67`)? Its entity and base name.
    fn numbered_target(obj: &Obj<'_>, r: &Resolved) -> Option<(Entity, String)> {
        match *r {
            Resolved::Symbol(i, _) => Self::numbered_local(obj, i).map(|b| (Entity::Sym(i), b)),
            Resolved::Section(i, _) => {
                let sec = obj.section(i)?;
                if sec.exec() || !sec.alloc() {
                    return None;
                }
                numbered_base(&sec.name).map(|b| (Entity::Sec(i), b.to_string()))
            }
            _ => None,
        }
    }

    /// The common functions as (before, after) pairs, clones paired.
    fn common_functions(&self) -> Vec<(&Function, &Function)> {
        let mut out = Vec::new();
        for (name, b) in &self.before_funcs {
            let after_name = self.clone_pairs.get(name).unwrap_or(name);
            if let Some(a) = self.after_funcs.get(after_name) {
                out.push((b, a));
            }
        }
        out
    }

    fn resolved_relocs(obj: &Obj<'_>, f: &Function) -> Vec<Resolved> {
        obj.section(f.section).map_or_else(Vec::new, |sec| {
            sec.relocs
                .iter()
                .filter(|r| r.offset >= f.start && r.offset < f.end)
                .map(|r| obj.resolve(r))
                .collect()
        })
    }

    fn pair_static_locals(&mut self) {
        let mut pairs: HashMap<Entity, Entity> = HashMap::new();
        let mut paired_after: HashSet<Entity> = HashSet::new();
        let mut try_pair = |b: Entity, a: Entity, pairs: &mut HashMap<Entity, Entity>| {
            if !pairs.contains_key(&b) && !paired_after.contains(&a) {
                pairs.insert(b, a);
                paired_after.insert(a);
            }
        };
        let common: Vec<(Vec<Resolved>, Vec<Resolved>)> = self
            .common_functions()
            .into_iter()
            .map(|(b, a)| {
                (
                    Self::resolved_relocs(self.before, b),
                    Self::resolved_relocs(self.after, a),
                )
            })
            .collect();
        let local = Self::numbered_target;
        // 1. Same positions in relocation lists of the same length.
        for (rb, ra) in &common {
            if rb.len() != ra.len() {
                continue;
            }
            for (b, a) in rb.iter().zip(ra) {
                if let (Some((bi, bb)), Some((ai, ab))) =
                    (local(self.before, b), local(self.after, a))
                {
                    if bb == ab
                        && matches!(
                            (bi, ai),
                            (Entity::Sym(_), Entity::Sym(_)) | (Entity::Sec(_), Entity::Sec(_))
                        )
                    {
                        try_pair(bi, ai, &mut pairs);
                    }
                }
            }
        }
        // 2. Other common functions: by base name in order of first reference.
        let firsts = |obj: &Obj<'_>, list: &[Resolved]| {
            let mut seen = Vec::new();
            for r in list {
                if let Some(l) = local(obj, r) {
                    if !seen.contains(&l) {
                        seen.push(l);
                    }
                }
            }
            seen
        };
        for (rb, ra) in &common {
            let fb = firsts(self.before, rb);
            let fa = firsts(self.after, ra);
            let bases: BTreeSet<&String> = fb.iter().map(|l| &l.1).collect();
            for base in bases {
                let unpaired_b = fb
                    .iter()
                    .filter(|l| &l.1 == base && !pairs.contains_key(&l.0));
                let unpaired_a: Vec<_> = fa
                    .iter()
                    .filter(|l| &l.1 == base && !pairs.values().any(|&v| v == l.0))
                    .collect();
                let todo: Vec<(Entity, Entity)> = unpaired_b
                    .zip(unpaired_a)
                    .map(|(b, a)| (b.0, a.0))
                    .collect();
                for (b, a) in todo {
                    try_pair(b, a, &mut pairs);
                }
            }
        }
        // 3. Numbered locals no function references: by base, in symbol order.
        let referenced = |obj: &Obj<'_>, funcs: &BTreeMap<String, Function>| {
            let mut set = HashSet::new();
            for f in funcs.values() {
                for r in Self::resolved_relocs(obj, f) {
                    if let Resolved::Symbol(i, _) = r {
                        set.insert(i);
                    }
                }
            }
            set
        };
        let ref_b = referenced(self.before, &self.before_funcs);
        let ref_a = referenced(self.after, &self.after_funcs);
        let unreferenced = |obj: &Obj<'_>, refs: &HashSet<usize>| {
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for i in 0..obj.symbols.len() {
                if refs.contains(&i) {
                    continue;
                }
                if let Some(base) = Self::numbered_local(obj, i) {
                    groups.entry(base).or_default().push(i);
                }
            }
            groups
        };
        let ub = unreferenced(self.before, &ref_b);
        let ua = unreferenced(self.after, &ref_a);
        for (base, list_b) in &ub {
            if let Some(list_a) = ua.get(base) {
                for (&b, &a) in list_b.iter().zip(list_a) {
                    try_pair(Entity::Sym(b), Entity::Sym(a), &mut pairs);
                }
            }
        }

        for (b, a) in pairs {
            match (b, a) {
                (Entity::Sym(b), Entity::Sym(a)) => {
                    if let Some(s) = self.after.symbol(a) {
                        self.before_names.insert(b, s.name.clone());
                    }
                }
                (Entity::Sec(b), Entity::Sec(a)) => {
                    if let Some(s) = self.after.section(a) {
                        self.before_section_names.insert(b, s.name.clone());
                    }
                }
                _ => continue,
            }
            self.paired_after.insert(a);
        }
    }

    /// The name a symbol goes by in the comparison.
    fn symbol_name(&self, before: bool, index: usize) -> String {
        let obj = if before { self.before } else { self.after };
        let Some(s) = obj.symbol(index) else {
            return format!("<symbol {index}>");
        };
        if before {
            if let Some(n) = self.before_names.get(&index) {
                return n.clone();
            }
            if Self::numbered_local(obj, index).is_some()
                || (s.st_type == elf::STT_FUNC
                    && CloneName::parse(&s.name).is_some_and(|c| !c.is_alias()))
            {
                // A renumbered symbol with no counterpart: never equal to an
                // `after` name.
                return format!("{} (before only)", s.name);
            }
        } else if let Some(base) = Self::numbered_local(obj, index) {
            if !self.paired_after.contains(&Entity::Sym(index)) {
                return format!("{} (new {base})", s.name);
            }
        }
        strip_localalias(&s.name)
    }

    /// The name a section with no symbol at a target goes by.
    fn section_name(&self, before: bool, index: usize) -> String {
        let obj = if before { self.before } else { self.after };
        let Some(sec) = obj.section(index) else {
            return format!("<section {index}>");
        };
        let numbered = Self::numbered_target(obj, &Resolved::Section(index, 0)).is_some();
        if before {
            if let Some(n) = self.before_section_names.get(&index) {
                return n.clone();
            }
            if numbered {
                return format!("{} (before only)", sec.name);
            }
        } else if numbered && !self.paired_after.contains(&Entity::Sec(index)) {
            return format!("{} (new)", sec.name);
        }
        sec.name.clone()
    }

    /// Normalized name of a relocation target. `depth` > 0 leaves out the
    /// contents of read-only objects.
    fn target(&self, before: bool, r: &Resolved, depth: u32) -> String {
        match r {
            Resolved::Symbol(i, delta) => {
                let mut name = format!("{}{delta:+}", self.symbol_name(before, *i));
                if depth == 0 {
                    if let Some(digest) = self.object_digest(before, *i) {
                        name.push_str(&format!(" [{digest:016x}]"));
                    }
                }
                name
            }
            Resolved::String(s, delta) => format!("str \"{}\"{delta:+}", s.escape_ascii()),
            Resolved::Constant(c, delta) => {
                let hex: String = c.iter().map(|b| format!("{b:02x}")).collect();
                format!("const {hex}{delta:+}")
            }
            Resolved::Section(i, addend) => {
                let mut name = format!("{}{addend:+}", self.section_name(before, *i));
                if depth == 0 {
                    let obj = if before { self.before } else { self.after };
                    if let Some(size) = obj.section(*i).map(|s| s.size) {
                        if let Some(digest) = self.rodata_digest(before, *i, 0, size) {
                            name.push_str(&format!(" [{digest:016x}]"));
                        }
                    }
                }
                name
            }
            Resolved::Absolute(addend) => format!("*ABS*{addend:+}"),
        }
    }

    /// For a data object in a read-only allocated section: a digest of its
    /// bytes and relocations.
    fn object_digest(&self, before: bool, index: usize) -> Option<u64> {
        let obj = if before { self.before } else { self.after };
        let s = obj.symbol(index)?;
        if s.st_type != elf::STT_OBJECT {
            return None;
        }
        self.rodata_digest(before, s.section?, s.value, s.value.saturating_add(s.size))
    }

    /// For a range of a read-only allocated data section: a digest of its
    /// bytes and relocations.
    fn rodata_digest(&self, before: bool, section: usize, start: u64, end: u64) -> Option<u64> {
        let obj = if before { self.before } else { self.after };
        let sec = obj.section(section)?;
        if !sec.alloc() || sec.writable() || sec.exec() || sec.sh_type == elf::SHT_NOBITS {
            return None;
        }
        let f = Function {
            sym: 0,
            name: String::new(),
            section,
            start: start.min(sec.size),
            end: end.min(sec.size),
        };
        let body = self.body(before, &f, 1);
        let mut h = Fnv::new();
        h.write(&body.bytes);
        for (off, ty, t) in &body.relocs {
            h.write(&off.to_le_bytes());
            h.write(&ty.to_le_bytes());
            h.write(t.as_bytes());
            h.write(&[0]);
        }
        Some(h.0)
    }

    fn body(&self, before: bool, f: &Function, depth: u32) -> Body {
        let obj = if before { self.before } else { self.after };
        let Some(sec) = obj.section(f.section) else {
            return Body {
                bytes: Vec::new(),
                relocs: Vec::new(),
            };
        };
        let (start, end) = (f.start as usize, f.end as usize);
        let mut bytes = sec
            .data
            .get(start..end.min(sec.data.len()))
            .unwrap_or(&[])
            .to_vec();
        let mut relocs = Vec::new();
        for r in sec
            .relocs
            .iter()
            .filter(|r| r.offset >= f.start && r.offset < f.end)
        {
            let at = (r.offset - f.start) as usize;
            let len = reloc_size(r.r_type) as usize;
            for b in bytes.iter_mut().skip(at).take(len) {
                *b = 0;
            }
            let target = self.target(before, &obj.resolve(r), depth);
            relocs.push((r.offset - f.start, r.r_type, target));
        }
        Body { bytes, relocs }
    }

    /// Do the two versions of a function differ?
    fn differs(&self, b: &Function, a: &Function) -> bool {
        let bb = self.body(true, b, 0);
        let ab = self.body(false, a, 0);
        if bb == ab {
            return false;
        }
        if bb.bytes.len() != ab.bytes.len() || bb.relocs != ab.relocs {
            return true;
        }
        !only_line_numbers(&bb, &ab)
    }

    fn run(&self) -> ObjectDiff {
        let mut diff = ObjectDiff::default();
        for (&b, after_name) in &self.before_names {
            if let Some(s) = self.before.symbol(b) {
                if &s.name != after_name {
                    diff.kernel_names.insert(after_name.clone(), s.name.clone());
                }
            }
        }
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let mut clones: BTreeMap<String, CloneChange> = BTreeMap::new();

        for (b, a) in self.common_functions() {
            if !self.differs(b, a) {
                continue;
            }
            match CloneName::parse(&a.name) {
                Some(c) => {
                    clones.insert(
                        a.name.clone(),
                        CloneChange {
                            clone: a.name.clone(),
                            original: c.base.to_string(),
                            new: false,
                        },
                    );
                }
                None => {
                    changed.insert(a.name.clone());
                }
            }
        }
        let paired_after: HashSet<&String> = self.clone_pairs.values().collect();
        for (name, _) in self.after_funcs.iter() {
            if self.before_funcs.contains_key(name) && CloneName::parse(name).is_none() {
                continue;
            }
            match CloneName::parse(name) {
                Some(c) if !paired_after.contains(name) => {
                    clones.insert(
                        name.clone(),
                        CloneChange {
                            clone: name.clone(),
                            original: c.base.to_string(),
                            new: true,
                        },
                    );
                }
                Some(_) => {}
                None => diff.new_functions.push(name.clone()),
            }
        }
        for name in self.before_funcs.keys() {
            if CloneName::parse(name).is_none() && !self.after_funcs.contains_key(name) {
                diff.removed_functions.push(name.clone());
            }
        }

        // A changed `.cold` part changes the function it belongs to.
        let colds: Vec<String> = clones.keys().cloned().collect();
        for cold in colds {
            let Some(parent) = CloneName::cold_parent(&cold) else {
                continue;
            };
            if !self.after_funcs.contains_key(&parent) {
                continue;
            }
            match CloneName::parse(&parent) {
                Some(c) => {
                    let new = !paired_after.contains(&parent);
                    clones.entry(parent.clone()).or_insert(CloneChange {
                        clone: parent.clone(),
                        original: c.base.to_string(),
                        new,
                    });
                }
                None => {
                    if self.before_funcs.contains_key(&parent) {
                        changed.insert(parent);
                    }
                }
            }
        }

        diff.new_data = self.new_data();
        diff.changed_data = self.changed_data();
        let mut touched: Vec<(&Function, &Function)> = self
            .common_functions()
            .into_iter()
            .filter(|(_, a)| {
                changed.contains(&a.name) || clones.get(&a.name).is_some_and(|c| !c.new)
            })
            .collect();
        touched.sort_by(|x, y| x.1.name.cmp(&y.1.name));
        for (b, a) in &touched {
            // A `.cold` part is no entry point: it goes with its function, never redirected.
            let cold = CloneName::cold_parent(&a.name).is_some();
            if !cold && !self.calls_fentry(b) {
                diff.untraced.push(a.name.clone());
            }
            for (obj, f) in [(self.before, b), (self.after, a)] {
                if let Some(sec) = obj.section(f.section) {
                    if sec.name.starts_with(".init") || sec.name.starts_with(".exit") {
                        diff.init_exit.push((a.name.clone(), sec.name.clone()));
                        break;
                    }
                }
            }
            for sec in self.sections_about(a) {
                if !known_section(&sec) {
                    diff.unknown_sections.push((sec, a.name.clone()));
                }
            }
        }
        diff.unknown_sections.sort();
        diff.unknown_sections.dedup();
        diff.changed = changed.into_iter().collect();
        diff.clones = clones.into_values().collect();
        diff.new_functions.sort();
        diff.removed_functions.sort();
        diff
    }

    /// Whether the function (in `before`) calls `__fentry__`, which is what ftrace patches.
    fn calls_fentry(&self, f: &Function) -> bool {
        Self::resolved_relocs(self.before, f).iter().any(|r| {
            matches!(r, Resolved::Symbol(i, _)
                if self.before.symbol(*i).is_some_and(|s| s.name == "__fentry__"))
        })
    }

    /// The sections of `after` with relocations into the function's code (entries about
    /// it: bug table, jump table, exception table...), and those its own relocations
    /// point into.
    fn sections_about(&self, f: &Function) -> BTreeSet<String> {
        let obj = self.after;
        let mut out = BTreeSet::new();
        let in_f = |sec: usize, pos: i128| {
            sec == f.section && pos >= i128::from(f.start) && pos < i128::from(f.end)
        };
        for sec in obj.sections.iter().flatten() {
            if sec.relocs.is_empty() || sec.name.starts_with(".debug") {
                continue;
            }
            let about = sec.relocs.iter().any(|r| match obj.resolve(r) {
                Resolved::Symbol(i, d) => obj.symbol(i).is_some_and(|s| {
                    s.section
                        .is_some_and(|x| in_f(x, i128::from(s.value) + i128::from(d)))
                }),
                Resolved::Section(x, a) => {
                    in_f(x, i128::from(a) + if pc_relative(r.r_type) { 4 } else { 0 })
                }
                _ => false,
            });
            if about && !std::ptr::eq(sec, obj.section(f.section).unwrap_or(sec)) {
                out.insert(sec.name.clone());
            }
        }
        if let Some(own) = obj.section(f.section) {
            for r in own
                .relocs
                .iter()
                .filter(|r| r.offset >= f.start && r.offset < f.end)
            {
                let target = match obj.resolve(r) {
                    Resolved::Symbol(i, _) => obj.symbol(i).and_then(|s| s.section),
                    Resolved::Section(x, _) => Some(x),
                    _ => None,
                };
                if let Some(sec) = target.and_then(|x| obj.section(x)) {
                    out.insert(sec.name.clone());
                }
            }
        }
        out
    }

    /// A data object's initial value as the module would carry it: its section's kind,
    /// its size, and its bytes and relocations normalized as a function's.
    fn data_value(&self, before: bool, index: usize) -> Option<(bool, bool, u64, Body)> {
        let obj = if before { self.before } else { self.after };
        let s = obj.symbol(index)?;
        let sec = obj.section(s.section?)?;
        let f = Function {
            sym: index,
            name: String::new(),
            section: s.section?,
            start: s.value.min(sec.size),
            end: s.value.saturating_add(s.size).min(sec.size),
        };
        Some((
            sec.sh_type == elf::SHT_NOBITS,
            sec.writable(),
            s.size,
            self.body(before, &f, 1),
        ))
    }

    fn changed_data(&self) -> Vec<String> {
        // Ordinary C variables: what `-fdata-sections` puts in `.data.<name>`,
        // `.rodata.<name>`, `.bss.<name>` (and `.data..percpu`, `.data..read_mostly`, ...).
        // Tables the kernel builds for itself (`__dyndbg`, `__bug_table`...) are not data a
        // fix changes the value of.
        let variables = |obj: &Obj<'_>| -> Vec<(usize, String)> {
            obj.data_objects()
                .filter(|(_, _, sec)| {
                    !sec.exec()
                        && [".data", ".rodata", ".bss", ".tdata", ".tbss"]
                            .iter()
                            .any(|p| sec.name.starts_with(p))
                })
                .map(|(i, s, _)| (i, s.name.clone()))
                .collect()
        };
        let before = variables(self.before);
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for &(i, ref name) in &before {
            let key = self
                .before_names
                .get(&i)
                .cloned()
                .unwrap_or_else(|| name.clone());
            by_name.entry(key).or_insert(i);
        }
        let mut out = Vec::new();
        for (i, name) in variables(self.after) {
            let Some(&b) = by_name.get(&name) else {
                continue;
            };
            if Self::numbered_local(self.after, i).is_some()
                && !self.paired_after.contains(&Entity::Sym(i))
            {
                continue;
            }
            if self.data_value(true, b) != self.data_value(false, i) {
                out.push(name);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn new_data(&self) -> Vec<String> {
        let data_objects = |obj: &Obj<'_>| -> Vec<(usize, String)> {
            obj.data_objects()
                .map(|(i, s, _)| (i, s.name.clone()))
                .collect()
        };
        let before_names: HashSet<String> = data_objects(self.before)
            .into_iter()
            .filter(|(i, _)| Self::numbered_local(self.before, *i).is_none())
            .map(|(_, n)| n)
            .collect();
        let mut out: Vec<String> = data_objects(self.after)
            .into_iter()
            .filter(|(i, name)| {
                if Self::numbered_local(self.after, *i).is_some() {
                    !self.paired_after.contains(&Entity::Sym(*i))
                } else {
                    !before_names.contains(name)
                }
            })
            .map(|(_, n)| n)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Sections whose role lpatch build knows: code, data, the kernel's tables about code and
/// data (which a patch module carries for its copied code, or which stay the kernel's),
/// and what the toolchain adds. Anything else about a changed function is refused by
/// name: a module might not carry it correctly.
const KNOWN_SECTIONS: &[&str] = &[
    ".text",
    ".data",
    ".rodata",
    ".bss",
    ".tdata",
    ".tbss",
    ".init.",
    ".exit.",
    ".ref.text",
    ".noinstr.text",
    ".entry.text",
    ".cpuidle.text",
    ".kprobes.text",
    ".sched.text",
    ".spinlock.text",
    ".lock.text",
    ".irqentry.text",
    ".softirqentry.text",
    ".meminit.",
    ".head.text",
    "__bug_table",
    "__jump_table",
    ".altinstructions",
    ".altinstr_replacement",
    ".altinstr_aux",
    "__ex_table",
    ".parainstructions",
    ".static_call_sites",
    ".static_call.text",
    ".retpoline_sites",
    ".return_sites",
    ".call_sites",
    ".ibt_endbr_seal",
    ".orc_unwind",
    ".orc_unwind_ip",
    "__mcount_loc",
    "__patchable_function_entries",
    ".smp_locks",
    "__dyndbg",
    "__tracepoints",
    "__tracepoint_str",
    "_ftrace_events",
    "_ftrace_eval_map",
    "__ksymtab",
    "__kcrctab",
    "__kstrtab",
    "___ksymtab",
    "__param",
    ".modinfo",
    ".init_array",
    "_kprobe_blacklist",
    "__syscalls_metadata",
    ".printk_index",
    "__bpf_raw_tp_map",
    ".discard.",
    ".comment",
    ".note",
    ".rela",
    ".symtab",
    ".strtab",
    ".shstrtab",
    ".group",
    "__ex_table",
    ".fixup",
    ".static_call_tramp_key",
    "__ftr_fixup",
    ".export_symbol",
    ".initcall",
    "__initcall",
    ".con_initcall",
    "__lsm_info",
    "__early_lsm_info",
];

fn known_section(name: &str) -> bool {
    KNOWN_SECTIONS
        .iter()
        .any(|k| name == k.trim_end_matches('.') || name.starts_with(k))
}

// ---------------------------------------------------------------------------
// Line numbers

/// Are the only differences between two bodies of the same length with the
/// same relocations line-number immediates? See the module doc.
fn only_line_numbers(before: &Body, after: &Body) -> bool {
    let differing: Vec<usize> = (0..after.bytes.len())
        .filter(|&i| before.bytes[i] != after.bytes[i])
        .collect();
    if differing.is_empty() {
        return true;
    }
    // Relocated fields: an immediate must not overlap them.
    let fields: Vec<(usize, usize)> = after
        .relocs
        .iter()
        .map(|(off, ty, _)| (*off as usize, *off as usize + reloc_size(*ty) as usize))
        .collect();
    let overlaps_field = |s: usize, e: usize| fields.iter().any(|&(fs, fe)| s < fe && fs < e);
    let mut line_immediates: Vec<(usize, usize)> = Vec::new();
    for (off, ty, target) in &after.relocs {
        let off = *off as usize;
        if !matches!(*ty, elf::R_X86_64_PLT32 | elf::R_X86_64_PC32) || off == 0 {
            continue;
        }
        let name = target.split(['+', '-']).next().unwrap_or("");
        if !LINE_FUNCTIONS.contains(&name) {
            continue;
        }
        let call = off - 1;
        if call >= after.bytes.len()
            || !matches!(after.bytes[call], 0xe8 | 0xe9)
            || before.bytes[call] != after.bytes[call]
        {
            continue;
        }
        for mov in call.saturating_sub(64)..call.saturating_sub(4) {
            if mov + 5 > call || overlaps_field(mov, mov + 5) {
                continue;
            }
            let ok = |bytes: &[u8]| {
                bytes[mov] == 0xbe
                    && plausible_line(&bytes[mov + 1..mov + 5])
                    && setup_run(bytes, mov + 5, call)
            };
            if ok(&before.bytes) && ok(&after.bytes) {
                line_immediates.push((mov + 1, mov + 5));
            }
        }
    }
    differing
        .iter()
        .all(|&i| line_immediates.iter().any(|&(s, e)| s <= i && i < e))
}

fn plausible_line(imm: &[u8]) -> bool {
    let v = u32::from_le_bytes([imm[0], imm[1], imm[2], imm[3]]);
    (1..=1_000_000).contains(&v)
}

/// Do `bytes[from..to]` decode as simple argument set-up instructions, none of
/// which writes `%esi`/`%rsi`?
fn setup_run(bytes: &[u8], from: usize, to: usize) -> bool {
    let mut pos = from;
    while pos < to {
        match decode_setup(&bytes[..to], pos) {
            Some((len, dest)) if len > 0 && dest != Some(6) => pos += len,
            _ => return false,
        }
    }
    pos == to
}

/// Length of a ModRM operand (ModRM, SIB, displacement) at `at`.
fn modrm_len(bytes: &[u8], at: usize) -> Option<usize> {
    let m = *bytes.get(at)?;
    let (md, rm) = (m >> 6, m & 7);
    let mut len = 1;
    if md != 3 && rm == 4 {
        let sib = *bytes.get(at + 1)?;
        len += 1;
        if md == 0 && sib & 7 == 5 {
            len += 4;
        }
    }
    match md {
        0 if rm == 5 => len += 4,
        1 => len += 1,
        2 => len += 4,
        _ => {}
    }
    Some(len)
}

/// Decodes one instruction of the small set that sets up call arguments:
/// its length and the register it writes (number with REX extension).
fn decode_setup(bytes: &[u8], pos: usize) -> Option<(usize, Option<u8>)> {
    let mut i = pos;
    let mut rex = 0u8;
    if *bytes.get(i)? & 0xf0 == 0x40 {
        rex = bytes[i];
        i += 1;
    }
    let (w, r, b) = (rex & 8 != 0, (rex >> 2) & 1, rex & 1);
    let op = *bytes.get(i)?;
    i += 1;
    let reg_of = |m: u8| ((m >> 3) & 7) | (r << 3);
    let rm_of = |m: u8| (m & 7) | (b << 3);
    let (len, dest) = match op {
        // mov $imm, %reg
        0xb8..=0xbf => {
            let imm = if w { 8 } else { 4 };
            (i + imm - pos, Some((op - 0xb8) | (b << 3)))
        }
        // r/m ← reg: mov, add, or, adc, sbb, and, sub, xor
        0x89 | 0x01 | 0x09 | 0x11 | 0x19 | 0x21 | 0x29 | 0x31 | 0x88 => {
            let m = *bytes.get(i)?;
            let l = modrm_len(bytes, i)?;
            (i + l - pos, (m >> 6 == 3).then(|| rm_of(m)))
        }
        // reg ← r/m: mov, lea, add, or, adc, sbb, and, sub, xor, movsxd, mov8
        0x8b | 0x8d | 0x03 | 0x0b | 0x13 | 0x1b | 0x23 | 0x2b | 0x33 | 0x63 | 0x8a => {
            let m = *bytes.get(i)?;
            let l = modrm_len(bytes, i)?;
            (i + l - pos, Some(reg_of(m)))
        }
        // test, cmp: no register written
        0x85 | 0x84 | 0x39 | 0x3b | 0x38 | 0x3a => {
            let l = modrm_len(bytes, i)?;
            (i + l - pos, None)
        }
        // mov $imm32, r/m
        0xc7 => {
            let m = *bytes.get(i)?;
            if (m >> 3) & 7 != 0 {
                return None;
            }
            let l = modrm_len(bytes, i)?;
            (i + l + 4 - pos, (m >> 6 == 3).then(|| rm_of(m)))
        }
        // ALU $imm8 / $imm32, r/m
        0x83 | 0x81 => {
            let m = *bytes.get(i)?;
            let l = modrm_len(bytes, i)?;
            let imm = if op == 0x83 { 1 } else { 4 };
            let writes = m >> 6 == 3 && (m >> 3) & 7 != 7;
            (i + l + imm - pos, writes.then(|| rm_of(m)))
        }
        // movzx, movsx
        0x0f => {
            let op2 = *bytes.get(i)?;
            if !matches!(op2, 0xb6 | 0xb7 | 0xbe | 0xbf) {
                return None;
            }
            let m = *bytes.get(i + 1)?;
            let l = modrm_len(bytes, i + 1)?;
            (i + 1 + l - pos, Some(reg_of(m)))
        }
        _ => return None,
    };
    (pos + len <= bytes.len()).then_some((len, dest))
}

/// FNV-1a, 64-bit: a digest that is the same in every run.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_names() {
        let c = CloneName::parse("foo.constprop.0.isra.1").unwrap();
        assert_eq!(c.base, "foo");
        assert_eq!(c.kinds(), vec!["constprop", "isra"]);
        assert_eq!(c.numbers(), vec![Some(0), Some(1)]);
        assert_eq!(CloneName::parse("foo.cold").unwrap().kinds(), vec!["cold"]);
        assert!(CloneName::parse("foo").is_none());
        assert!(CloneName::parse("__key.12").is_none());
        assert!(CloneName::parse("foo.isra.0.0").is_none());
        assert!(CloneName::parse("foo.bar").is_none());
        assert_eq!(CloneName::cold_parent("foo.cold").as_deref(), Some("foo"));
        assert_eq!(
            CloneName::cold_parent("foo.part.0.cold.3").as_deref(),
            Some("foo.part.0")
        );
        assert_eq!(CloneName::cold_parent("foo.part.0"), None);
        assert_eq!(strip_localalias("foo.localalias"), "foo");
        assert_eq!(strip_localalias("foo.isra.0.localalias"), "foo.isra.0");
    }

    #[test]
    fn renumbered_clones_pair_in_number_order() {
        let names: Vec<String> = [
            "f.isra.3",
            "f.isra.1",
            "f.constprop.0.isra.0",
            "g.part.0",
            "h",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        let groups = clone_groups(&names, &|n| n == "g.part.0");
        let isra: Vec<&str> = groups[&("f", vec!["isra"])]
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(isra, ["f.isra.1", "f.isra.3"]);
        assert!(groups.contains_key(&("f", vec!["constprop", "isra"])));
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered_base("__key.12"), Some("__key"));
        assert_eq!(numbered_base("__func__.5"), Some("__func__"));
        assert_eq!(
            numbered_base("__UNIQUE_ID_ddebug123.4"),
            Some("__UNIQUE_ID_ddebug")
        );
        assert_eq!(
            numbered_base("__UNIQUE_ID_ddebug123"),
            Some("__UNIQUE_ID_ddebug")
        );
        assert_eq!(numbered_base("counter"), None);
        assert_eq!(numbered_base("x86_64"), None);
    }

    #[test]
    fn reloc_sizes() {
        assert_eq!(reloc_size(elf::R_X86_64_PC32), 4);
        assert_eq!(reloc_size(elf::R_X86_64_PLT32), 4);
        assert_eq!(reloc_size(elf::R_X86_64_32S), 4);
        assert_eq!(reloc_size(elf::R_X86_64_64), 8);
    }

    #[test]
    fn strings() {
        let data = b"abc\0hello\0\0x\0";
        assert_eq!(string_at(data, 4, 1), (4, b"hello".to_vec()));
        assert_eq!(string_at(data, 6, 1), (4, b"hello".to_vec()));
        assert_eq!(string_at(data, 0, 1), (0, b"abc".to_vec()));
        assert_eq!(string_at(data, 10, 1), (10, Vec::new()));
    }

    fn body(bytes: &[u8], relocs: &[(u64, &str)]) -> Body {
        Body {
            bytes: bytes.to_vec(),
            relocs: relocs
                .iter()
                .map(|(o, t)| (*o, elf::R_X86_64_PLT32, t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn line_immediates() {
        // mov $0x7,%esi; mov %edi,%ebx; mov $0,%rdi; call __might_sleep
        let code = |line: u8| {
            vec![
                0xbe, line, 0, 0, 0, 0x89, 0xfb, 0x48, 0xc7, 0xc7, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0,
            ]
        };
        let relocs = [(10, "file"), (15, "__might_sleep-4")];
        let b = body(&code(7), &relocs);
        let a = body(&code(9), &relocs);
        assert!(only_line_numbers(&b, &a));
        // The same to a function that takes no line.
        let relocs = [(10, "file"), (15, "printk-4")];
        assert!(!only_line_numbers(
            &body(&code(7), &relocs),
            &body(&code(9), &relocs)
        ));
        // %esi written again in between: not the argument.
        let mut c7 = code(7);
        let mut c9 = code(9);
        c7[6] = 0xfe; // mov %edi,%esi
        c9[6] = 0xfe;
        let relocs = [(10, "file"), (15, "__might_sleep-4")];
        assert!(!only_line_numbers(&body(&c7, &relocs), &body(&c9, &relocs)));
    }

    #[test]
    fn garbage() {
        assert!(matches!(
            compare(b"not an object", b"\x7fELF"),
            Err(CompareError::NotX86_64Relocatable(Which::Before))
        ));
    }
}

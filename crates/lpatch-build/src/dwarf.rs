// SPDX-License-Identifier: GPL-2.0-only
//! Why did a function change? Reading the DWARF of one compiled unit.
//!
//! `lpatch build` compares the objects of a translation unit compiled before
//! and after a source diff and gets a list of changed functions. This module
//! explains each of them from the *after* object's debug info:
//!
//! * [`read_unit`] lists the functions the unit declares (out-of-line ones and
//!   inline-only bodies, with their declaring file and line) and, for every
//!   out-of-line function, the functions inlined into it (transitively);
//! * [`touched_functions`] maps the diff's changed lines to the functions
//!   whose source they are in (the function declared in that file with the
//!   greatest `decl_line` at or before the line);
//! * [`reason_for`] says whether a changed function's own code changed, or an
//!   inlined callee's, or neither could be shown.
//!
//! Relocatable objects (`.o`, `.ko`) are handled by laying their allocated
//! sections out at distinct synthetic addresses and applying the
//! `.rela.debug_*` relocations to the DWARF sections before parsing them. A
//! subprogram's `DW_AT_low_pc` then lands in the section its relocation names
//! (`.text.foo`, `.text.foo.isra.0`, …), and ELF symbols are placed in the same
//! address space, so a compiler clone such as `foo.isra.0` maps to the DWARF
//! subprogram whose code it is.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, SectionId, UnitOffset};
use object::{
    Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationFlags, RelocationKind,
    RelocationTarget, SectionFlags, SectionIndex, SymbolKind,
};
use serde::Serialize;

/// A function or inline body as the debug info of one compiled unit declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SourceFunction {
    /// The function's source name (clones are named after their origin).
    pub name: String,
    /// The declaring file as DWARF names it, relative to the compilation
    /// directory (or the tree root given to [`read_unit_in`]) when inside it,
    /// else absolute.
    pub file: String,
    /// `DW_AT_decl_line`.
    pub decl_line: u64,
    /// Has code of its own (`DW_AT_low_pc` / `DW_AT_ranges`), i.e. a symbol.
    pub out_of_line: bool,
}

/// What one out-of-line function took its code from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionOrigin {
    /// Source name (for a clone, the name of the function it was cloned from).
    pub name: String,
    /// Declaring file, normalized as in [`SourceFunction::file`].
    pub file: String,
    /// `DW_AT_decl_line`.
    pub decl_line: u64,
    /// Every function inlined into it, transitively (nested
    /// `DW_TAG_inlined_subroutine`), by the abstract origin's name, with the
    /// origin's file and decl_line. Sorted, without duplicates.
    pub inlined: Vec<SourceFunction>,
    /// The ELF function symbols whose address lies in this function's code
    /// (e.g. `foo`, `foo.cold`, or `foo.isra.0` for a clone). Sorted.
    pub symbols: Vec<String>,
}

/// The functions of one compiled unit, from its debug info.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitInfo {
    /// Every `DW_TAG_subprogram` with a name and decl_file/decl_line, concrete
    /// and abstract (inline-only); declarations without a body
    /// (`DW_AT_declaration`) are skipped. One entry per (file, name,
    /// decl_line), `out_of_line` set if any instance has code. Sorted by file,
    /// then decl_line, then name.
    pub functions: Vec<SourceFunction>,
    /// One entry per out-of-line function instance (a function and its clones
    /// are separate entries with the same name).
    pub origins: Vec<FunctionOrigin>,
}

/// Reading an object's debug info failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DwarfError {
    /// The bytes are not an object file `object` can read.
    NotAnObject(String),
    /// The object has no `.debug_info`.
    NoDebugInfo,
    /// A debug section could not be read (e.g. compressed).
    Section { section: String, message: String },
    /// A relocation against a debug section could not be applied.
    Relocation { section: String, message: String },
    /// The DWARF itself is malformed or unsupported.
    Dwarf(String),
}

impl fmt::Display for DwarfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DwarfError::NotAnObject(m) => write!(f, "not an object file: {m}"),
            DwarfError::NoDebugInfo => write!(f, "no debug info (compile with -g)"),
            DwarfError::Section { section, message } => {
                write!(f, "cannot read section {section}: {message}")
            }
            DwarfError::Relocation { section, message } => {
                write!(f, "cannot relocate section {section}: {message}")
            }
            DwarfError::Dwarf(m) => write!(f, "bad DWARF: {m}"),
        }
    }
}

impl std::error::Error for DwarfError {}

impl From<gimli::Error> for DwarfError {
    fn from(e: gimli::Error) -> Self {
        DwarfError::Dwarf(e.to_string())
    }
}

/// The functions whose source a diff touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Touched {
    /// (file, function name) pairs.
    pub functions: BTreeSet<(String, String)>,
    /// Changed lines before any function of their file (or in a file that
    /// declares no function in this unit): a declaration or macro at file
    /// scope changed. Sorted, without duplicates.
    pub file_scope: Vec<(String, u64)>,
}

/// The reason for one changed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Reason {
    /// The diff touched the function's own body.
    ChangedCode,
    /// The diff touched functions that were inlined into it (sorted names).
    InlinedCalleeChanged { callees: Vec<String> },
    /// Neither: e.g. a file-scope change (macro, type, global) or a change
    /// that only moved code around.
    Unattributed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ChangedCode => write!(f, "changed code"),
            Reason::InlinedCalleeChanged { callees } => {
                write!(f, "inlined callee changed: {}", callees.join(", "))
            }
            Reason::Unattributed => write!(f, "unattributed"),
        }
    }
}

/// Reads the functions of an object's debug info; paths are made relative to
/// each unit's compilation directory.
pub fn read_unit(obj: &[u8]) -> Result<UnitInfo, DwarfError> {
    read_unit_in(obj, None)
}

/// As [`read_unit`], but paths inside `tree_root` (an absolute directory) are
/// made relative to it rather than to the compilation directory.
pub fn read_unit_in(obj: &[u8], tree_root: Option<&str>) -> Result<UnitInfo, DwarfError> {
    let file = object::File::parse(obj).map_err(|e| DwarfError::NotAnObject(e.to_string()))?;
    match file.section_by_name(".debug_info") {
        Some(s) if s.size() > 0 => {}
        _ => return Err(DwarfError::NoDebugInfo),
    }
    let layout = Layout::new(&file);
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| load_section(&file, &layout, id))?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));

    let mut units = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let unit = dwarf.unit(header)?;
        let files = file_table(&dwarf, &unit, tree_root)?;
        units.push(LoadedUnit { unit, files });
    }
    if units.is_empty() {
        return Err(DwarfError::NoDebugInfo);
    }

    let mut walker = Walker {
        dwarf: &dwarf,
        units: &units,
        functions: BTreeMap::new(),
        origins: Vec::new(),
    };
    for (index, loaded) in units.iter().enumerate() {
        let mut tree = loaded.unit.entries_tree(None)?;
        let root = tree.root()?;
        walker.walk(index, root, None)?;
    }
    let Walker {
        functions,
        mut origins,
        ..
    } = walker;

    // Map the ELF function symbols to the out-of-line instances by address.
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if name.is_empty() {
            continue;
        }
        let address = layout.symbol_address(&symbol);
        for origin in origins.iter_mut() {
            if origin
                .ranges
                .iter()
                .any(|&(begin, end)| begin <= address && (address < end || begin == end))
            {
                origin.symbols.insert(name.to_string());
            }
        }
    }

    let out_of_line: BTreeSet<(String, String, u64)> = functions
        .iter()
        .filter(|(_, &ool)| ool)
        .map(|(k, _)| k.clone())
        .collect();
    let mut functions: Vec<SourceFunction> = functions
        .into_iter()
        .map(|((file, name, decl_line), out_of_line)| SourceFunction {
            name,
            file,
            decl_line,
            out_of_line,
        })
        .collect();
    functions.sort_by(|a, b| (&a.file, a.decl_line, &a.name).cmp(&(&b.file, b.decl_line, &b.name)));
    let origins = origins
        .into_iter()
        .map(|o| FunctionOrigin {
            name: o.name,
            file: o.file,
            decl_line: o.decl_line,
            inlined: o
                .inlined
                .into_iter()
                .map(|(file, name, decl_line)| SourceFunction {
                    out_of_line: out_of_line.contains(&(file.clone(), name.clone(), decl_line)),
                    name,
                    file,
                    decl_line,
                })
                .collect(),
            symbols: o.symbols.into_iter().collect(),
        })
        .collect();
    Ok(UnitInfo { functions, origins })
}

/// Maps each changed line (file relative to the tree root, line in the after
/// version) to the function declared in that file with the greatest
/// `decl_line <= line`; lines before every function of their file, or in a
/// file declaring no function in this unit, are file scope.
pub fn touched_functions(unit: &UnitInfo, changed_lines: &[(String, u64)]) -> Touched {
    let mut by_file: HashMap<&str, Vec<&SourceFunction>> = HashMap::new();
    for f in &unit.functions {
        by_file.entry(f.file.as_str()).or_default().push(f);
    }
    let mut touched = Touched::default();
    let mut file_scope = BTreeSet::new();
    for (file, line) in changed_lines {
        let file = clean_path(file);
        let best = by_file.get(file.as_str()).and_then(|fs| {
            fs.iter()
                .filter(|f| f.decl_line <= *line)
                .map(|f| f.decl_line)
                .max()
        });
        match best {
            Some(best) => {
                for f in &by_file[file.as_str()] {
                    if f.decl_line == best {
                        touched.functions.insert((f.file.clone(), f.name.clone()));
                    }
                }
            }
            None => {
                file_scope.insert((file, *line));
            }
        }
    }
    touched.file_scope = file_scope.into_iter().collect();
    touched
}

/// Why `function` (an ELF symbol name: `foo`, `foo.isra.0`, `foo.cold`, …)
/// changed: its own source was touched → [`Reason::ChangedCode`]; else some
/// function inlined into it was → [`Reason::InlinedCalleeChanged`]; else
/// [`Reason::Unattributed`].
///
/// The symbol is mapped to its DWARF subprogram(s) by address (see
/// [`FunctionOrigin::symbols`]), else by name, else by its name with the
/// compiler's clone suffix (from the first `.`) stripped.
pub fn reason_for(unit: &UnitInfo, touched: &Touched, function: &str) -> Reason {
    let mut origins: Vec<&FunctionOrigin> = unit
        .origins
        .iter()
        .filter(|o| o.symbols.iter().any(|s| s == function))
        .collect();
    let base = base_name(function);
    if origins.is_empty() {
        origins = unit.origins.iter().filter(|o| o.name == function).collect();
    }
    if origins.is_empty() {
        origins = unit.origins.iter().filter(|o| o.name == base).collect();
    }
    if origins.is_empty() {
        // No debug info for it: go by name alone.
        return if touched
            .functions
            .iter()
            .any(|(_, n)| n == function || n == base)
        {
            Reason::ChangedCode
        } else {
            Reason::Unattributed
        };
    }
    if origins.iter().any(|o| {
        touched
            .functions
            .contains(&(o.file.clone(), o.name.clone()))
    }) {
        return Reason::ChangedCode;
    }
    let callees: BTreeSet<String> = origins
        .iter()
        .flat_map(|o| o.inlined.iter())
        .filter(|i| {
            touched
                .functions
                .contains(&(i.file.clone(), i.name.clone()))
        })
        .map(|i| i.name.clone())
        .collect();
    if callees.is_empty() {
        Reason::Unattributed
    } else {
        Reason::InlinedCalleeChanged {
            callees: callees.into_iter().collect(),
        }
    }
}

/// `foo.isra.0` → `foo`; `foo` → `foo`. (C identifiers contain no `.`.)
fn base_name(symbol: &str) -> &str {
    match symbol.find('.') {
        Some(0) | None => symbol,
        Some(i) => &symbol[..i],
    }
}

// ---------------------------------------------------------------------------
// Loading and relocating the DWARF sections.

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

const SHF_ALLOC: u64 = 0x2;

/// Synthetic addresses of a relocatable object's allocated sections (all at
/// address 0 in the file), so that code in different sections gets distinct
/// addresses. For linked objects every base is 0 (real addresses are used).
struct Layout {
    relocatable: bool,
    bases: HashMap<SectionIndex, u64>,
}

impl Layout {
    fn new(file: &object::File<'_>) -> Self {
        let relocatable = file.kind() == ObjectKind::Relocatable;
        let mut bases = HashMap::new();
        if relocatable {
            let mut next: u64 = 0x1000;
            for section in file.sections() {
                let alloc = match section.flags() {
                    SectionFlags::Elf { sh_flags } => sh_flags & SHF_ALLOC != 0,
                    _ => !matches!(
                        section.kind(),
                        object::SectionKind::Debug
                            | object::SectionKind::Metadata
                            | object::SectionKind::Other
                    ),
                };
                if !alloc {
                    continue;
                }
                let align = section.align().max(1);
                next = next.div_ceil(align) * align;
                bases.insert(section.index(), next);
                next += section.size().max(1);
            }
        }
        Layout { relocatable, bases }
    }

    fn section_base(&self, index: Option<SectionIndex>) -> u64 {
        index.and_then(|i| self.bases.get(&i).copied()).unwrap_or(0)
    }

    fn symbol_address(&self, symbol: &object::Symbol<'_, '_>) -> u64 {
        self.section_base(symbol.section_index())
            .wrapping_add(symbol.address())
    }
}

fn load_section<'d>(
    file: &object::File<'d>,
    layout: &Layout,
    id: SectionId,
) -> Result<Cow<'d, [u8]>, DwarfError> {
    let Some(section) = file.section_by_name(id.name()) else {
        return Ok(Cow::Borrowed(&[]));
    };
    let section_err = |message: String| DwarfError::Section {
        section: id.name().to_string(),
        message,
    };
    let data = section
        .uncompressed_data()
        .map_err(|e| section_err(e.to_string()))?;
    if !layout.relocatable {
        return Ok(data);
    }
    let mut relocations = section.relocations().peekable();
    if relocations.peek().is_none() {
        return Ok(data);
    }
    let mut data = data.into_owned();
    let little = file.is_little_endian();
    let reloc_err = |message: String| DwarfError::Relocation {
        section: id.name().to_string(),
        message,
    };
    let section_base = layout.section_base(Some(section.index()));
    for (offset, relocation) in relocations {
        // R_*_NONE is type 0 on every ELF machine.
        if relocation.flags() == (RelocationFlags::Elf { r_type: 0 }) {
            continue;
        }
        let target = match relocation.target() {
            RelocationTarget::Symbol(index) => {
                let symbol = file
                    .symbol_by_index(index)
                    .map_err(|e| reloc_err(e.to_string()))?;
                layout.symbol_address(&symbol)
            }
            RelocationTarget::Section(index) => layout.section_base(Some(index)),
            RelocationTarget::Absolute => 0,
            _ => return Err(reloc_err(format!("unsupported target at {offset:#x}"))),
        };
        let size = match relocation.size() {
            8 => 1,
            16 => 2,
            32 => 4,
            64 => 8,
            bits => return Err(reloc_err(format!("unsupported size {bits} at {offset:#x}"))),
        };
        let start = usize::try_from(offset).map_err(|e| reloc_err(e.to_string()))?;
        let end = start
            .checked_add(size)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| reloc_err(format!("relocation at {offset:#x} out of bounds")))?;
        let place = &mut data[start..end];
        let implicit = if relocation.has_implicit_addend() {
            read_uint(place, little)
        } else {
            0
        };
        let addend = (relocation.addend() as u64).wrapping_add(implicit);
        let value = match relocation.kind() {
            RelocationKind::Absolute => target.wrapping_add(addend),
            RelocationKind::Relative => target
                .wrapping_add(addend)
                .wrapping_sub(section_base.wrapping_add(offset)),
            kind => {
                return Err(reloc_err(format!(
                    "unsupported kind {kind:?} at {offset:#x}"
                )))
            }
        };
        write_uint(place, value, little);
    }
    Ok(Cow::Owned(data))
}

fn read_uint(place: &[u8], little: bool) -> u64 {
    let mut value = 0u64;
    if little {
        for &b in place.iter().rev() {
            value = (value << 8) | u64::from(b);
        }
    } else {
        for &b in place {
            value = (value << 8) | u64::from(b);
        }
    }
    value
}

fn write_uint(place: &mut [u8], value: u64, little: bool) {
    let n = place.len();
    for (i, b) in place.iter_mut().enumerate() {
        let shift = if little { i } else { n - 1 - i } * 8;
        *b = (value >> shift) as u8;
    }
}

// ---------------------------------------------------------------------------
// Walking the DIEs.

struct LoadedUnit<'a> {
    unit: gimli::Unit<Reader<'a>>,
    /// Normalized file names by DWARF file index.
    files: Vec<Option<String>>,
}

/// An out-of-line instance being collected.
struct Origin {
    name: String,
    file: String,
    decl_line: u64,
    ranges: Vec<(u64, u64)>,
    inlined: BTreeSet<(String, String, u64)>,
    symbols: BTreeSet<String>,
}

struct Walker<'w, 'a> {
    dwarf: &'w gimli::Dwarf<Reader<'a>>,
    units: &'w [LoadedUnit<'a>],
    /// (file, name, decl_line) → out of line.
    functions: BTreeMap<(String, String, u64), bool>,
    origins: Vec<Origin>,
}

/// A DIE's name and declaration, resolved through abstract origins and
/// specifications.
#[derive(Default)]
struct Decl {
    name: Option<String>,
    file: Option<String>,
    line: Option<u64>,
}

impl Decl {
    fn complete(&self) -> Option<(String, String, u64)> {
        Some((self.file.clone()?, self.name.clone()?, self.line?))
    }
}

impl<'a> Walker<'_, 'a> {
    fn walk(
        &mut self,
        unit_index: usize,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
        current: Option<usize>,
    ) -> Result<(), DwarfError> {
        let entry = node.entry();
        let mut current = current;
        match entry.tag() {
            gimli::DW_TAG_subprogram => {
                let declaration = matches!(
                    entry.attr_value(gimli::DW_AT_declaration)?,
                    Some(AttributeValue::Flag(true))
                );
                if !declaration {
                    let decl = self.decl(unit_index, entry.offset())?;
                    let unit = &self.units[unit_index].unit;
                    let mut ranges = Vec::new();
                    let mut iter = self.dwarf.die_ranges(unit, entry)?;
                    while let Some(r) = iter.next()? {
                        ranges.push((r.begin, r.end));
                    }
                    let has_code = entry.attr(gimli::DW_AT_low_pc)?.is_some()
                        || entry.attr(gimli::DW_AT_ranges)?.is_some();
                    if let Some(key) = decl.complete() {
                        *self.functions.entry(key).or_insert(false) |= has_code;
                    }
                    if has_code {
                        self.origins.push(Origin {
                            name: decl.name.unwrap_or_default(),
                            file: decl.file.unwrap_or_default(),
                            decl_line: decl.line.unwrap_or(0),
                            ranges,
                            inlined: BTreeSet::new(),
                            symbols: BTreeSet::new(),
                        });
                        current = Some(self.origins.len() - 1);
                    }
                }
            }
            gimli::DW_TAG_inlined_subroutine => {
                if let Some(index) = current {
                    let decl = self.decl(unit_index, entry.offset())?;
                    if let Some(key) = decl.complete() {
                        self.origins[index].inlined.insert(key);
                    }
                }
            }
            _ => {}
        }
        let mut children = node.children();
        while let Some(child) = children.next()? {
            self.walk(unit_index, child, current)?;
        }
        Ok(())
    }

    /// Name, decl_file and decl_line of a DIE, each taken from the first DIE
    /// that has it along the DW_AT_abstract_origin / DW_AT_specification chain.
    fn decl(&self, unit_index: usize, offset: UnitOffset) -> Result<Decl, DwarfError> {
        let mut decl = Decl::default();
        let mut at = Some((unit_index, offset));
        let mut hops = 0;
        while let Some((ui, off)) = at.take() {
            hops += 1;
            if hops > 32 {
                break;
            }
            let loaded = &self.units[ui];
            let entry = loaded.unit.entry(off)?;
            if decl.name.is_none() {
                if let Some(v) = entry.attr_value(gimli::DW_AT_name)? {
                    let s = self.dwarf.attr_string(&loaded.unit, v)?;
                    decl.name = Some(s.to_string_lossy().into_owned());
                }
            }
            if decl.file.is_none() {
                if let Some(AttributeValue::FileIndex(i)) =
                    entry.attr_value(gimli::DW_AT_decl_file)?
                {
                    decl.file = loaded.files.get(i as usize).cloned().flatten();
                } else if let Some(i) = entry
                    .attr(gimli::DW_AT_decl_file)?
                    .and_then(|a| a.udata_value())
                {
                    decl.file = loaded.files.get(i as usize).cloned().flatten();
                }
            }
            if decl.line.is_none() {
                decl.line = entry
                    .attr(gimli::DW_AT_decl_line)?
                    .and_then(|a| a.udata_value());
            }
            if decl.name.is_some() && decl.file.is_some() && decl.line.is_some() {
                break;
            }
            for attr in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
                if let Some(v) = entry.attr_value(attr)? {
                    at = self.resolve_ref(ui, v);
                    if at.is_some() {
                        break;
                    }
                }
            }
        }
        Ok(decl)
    }

    fn resolve_ref(
        &self,
        unit_index: usize,
        value: AttributeValue<Reader<'a>>,
    ) -> Option<(usize, UnitOffset)> {
        match value {
            AttributeValue::UnitRef(off) => Some((unit_index, off)),
            AttributeValue::DebugInfoRef(off) => self
                .units
                .iter()
                .enumerate()
                .find_map(|(i, u)| off.to_unit_offset(&u.unit.header).map(|uo| (i, uo))),
            _ => None,
        }
    }
}

/// The unit's line-program file table, normalized.
fn file_table<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &gimli::Unit<Reader<'a>>,
    tree_root: Option<&str>,
) -> Result<Vec<Option<String>>, DwarfError> {
    let Some(program) = &unit.line_program else {
        return Ok(Vec::new());
    };
    let header = program.header();
    let comp_dir = unit.comp_dir.map(|d| d.to_string_lossy().into_owned());
    // DWARF 5 indexes files from 0, earlier versions from 1.
    let count = header.file_names().len() as u64 + 1;
    let mut files = Vec::with_capacity(count as usize);
    for index in 0..count {
        let Some(entry) = header.file(index) else {
            files.push(None);
            continue;
        };
        let name = dwarf
            .attr_string(unit, entry.path_name())?
            .to_string_lossy()
            .into_owned();
        let dir = match entry.directory(header) {
            Some(d) => Some(dwarf.attr_string(unit, d)?.to_string_lossy().into_owned()),
            None => None,
        };
        files.push(Some(normalize(
            &name,
            dir.as_deref(),
            comp_dir.as_deref(),
            tree_root,
        )));
    }
    Ok(files)
}

/// Joins `name` onto `dir` and `comp_dir` as needed and makes the result
/// relative to `tree_root` or else `comp_dir` when inside it.
fn normalize(
    name: &str,
    dir: Option<&str>,
    comp_dir: Option<&str>,
    tree_root: Option<&str>,
) -> String {
    let mut path = name.to_string();
    if !path.starts_with('/') {
        if let Some(dir) = dir.filter(|d| !d.is_empty()) {
            path = format!("{dir}/{path}");
        }
    }
    if !path.starts_with('/') {
        if let Some(comp) = comp_dir.filter(|d| !d.is_empty()) {
            path = format!("{comp}/{path}");
        }
    }
    let path = clean_path(&path);
    for root in [tree_root, comp_dir].into_iter().flatten() {
        let root = clean_path(root);
        if !root.starts_with('/') {
            continue;
        }
        if let Some(rest) = path.strip_prefix(root.as_str()) {
            if root == "/" {
                return rest.to_string();
            }
            if let Some(rest) = rest.strip_prefix('/') {
                return rest.to_string();
            }
        }
    }
    path
}

/// Lexically removes `.` components, empty components and `x/..` pairs.
fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path("./fs/proc/../x.c"), "fs/x.c");
        assert_eq!(clean_path("/a/./b//c"), "/a/b/c");
        assert_eq!(
            normalize("cmdline.c", Some("fs/proc"), Some("/src/linux"), None),
            "fs/proc/cmdline.c"
        );
        assert_eq!(
            normalize(
                "seq_file.h",
                Some("./include/linux"),
                Some("/src/linux"),
                None
            ),
            "include/linux/seq_file.h"
        );
        assert_eq!(
            normalize("stddef.h", Some("/usr/lib/gcc/x"), Some("/src/linux"), None),
            "/usr/lib/gcc/x/stddef.h"
        );
        assert_eq!(
            normalize(
                "../linux/fs/a.c",
                None,
                Some("/src/build"),
                Some("/src/linux")
            ),
            "fs/a.c"
        );
        assert_eq!(base_name("foo.isra.0"), "foo");
        assert_eq!(base_name("foo"), "foo");
    }
}

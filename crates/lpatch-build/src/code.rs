// SPDX-License-Identifier: GPL-2.0-only
//! What a patch module records of each function it replaces (`struct lp_code` in
//! lpatch.h): the function's bytes as compiled from the source *before* the diff, hashed
//! with the core's own `masked_hash`, with masks over every byte the running kernel may
//! hold differently: fields the linker fills in (each relocation), and the places the
//! kernel rewrites after boot, which its tables list (arch/x86/kernel/alternative.c,
//! ftrace, jump labels, static calls, paravirt): the ftrace call site, return-thunk and
//! retpoline sites, alternatives, paravirt calls, jump labels, static calls, lock prefixes.
//! The core recomputes the hash over the running code and refuses a patch built for other
//! code (builder-facts: the compiled code equals the running kernel's outside these).

use lpatch_logic::code::masked_hash;
use object::elf;
use object::read::elf::ElfFile64;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

/// What the patch description says of one old function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub size: u64,
    pub hash: u64,
    pub masks: Vec<(u32, u32)>,
}

/// A table the kernel patches code from: its name, entry size, and the width of the
/// rewritten site (or where in the entry its length byte is).
enum Width {
    Fixed(u32),
    LengthByteAt(usize),
}

const TABLES: &[(&str, u64, Width)] = &[
    ("__mcount_loc", 8, Width::Fixed(5)),
    (".return_sites", 4, Width::Fixed(5)),
    // A retpoline site may be a 6-byte conditional jump.
    (".retpoline_sites", 4, Width::Fixed(6)),
    (".static_call_sites", 8, Width::Fixed(5)),
    ("__jump_table", 16, Width::Fixed(5)),
    (".smp_locks", 4, Width::Fixed(1)),
    (".altinstructions", 12, Width::LengthByteAt(10)),
    (".parainstructions", 16, Width::LengthByteAt(9)),
];

fn width_of(flags: RelocationFlags) -> u32 {
    match flags {
        RelocationFlags::Elf { r_type } => match r_type {
            elf::R_X86_64_64 => 8,
            elf::R_X86_64_PC32
            | elf::R_X86_64_PLT32
            | elf::R_X86_64_32
            | elf::R_X86_64_32S
            | elf::R_X86_64_GOTPCREL => 4,
            _ => 8,
        },
        _ => 8,
    }
}

/// The code record of `function`, a function defined in `object` (the unit compiled
/// before the diff).
pub fn of_function(object: &[u8], function: &str) -> Result<Code, String> {
    let file = ElfFile64::<object::Endianness>::parse(object)
        .map_err(|e| format!("reading the object: {e}"))?;
    let sym = file
        .symbols()
        .find(|s| {
            s.name() == Ok(function) && s.kind() == object::SymbolKind::Text && !s.is_undefined()
        })
        .ok_or_else(|| format!("{function}: no such function in the unchanged object"))?;
    let sec_index = sym
        .section_index()
        .ok_or_else(|| format!("{function}: not in a section"))?;
    let section = file
        .section_by_index(sec_index)
        .map_err(|e| e.to_string())?;
    let (start, size) = (sym.address(), sym.size());
    if size == 0 {
        return Err(format!("{function}: its symbol has no size"));
    }
    let data = section.data().map_err(|e| e.to_string())?;
    let bytes = data
        .get(start as usize..(start + size) as usize)
        .ok_or_else(|| format!("{function}: its bytes are outside its section"))?;
    let mut masks: Vec<(u32, u32)> = Vec::new();
    let in_fn = |off: u64| off >= start && off < start + size;
    // Fields the linker fills in; the ftrace call site, which ftrace turns into a nop.
    for (off, r) in section.relocations() {
        if !in_fn(off) {
            continue;
        }
        masks.push(((off - start) as u32, width_of(r.flags())));
        if let RelocationTarget::Symbol(i) = r.target() {
            if file.symbol_by_index(i).and_then(|s| s.name()) == Ok("__fentry__") && off > start {
                masks.push(((off - 1 - start) as u32, 5));
            }
        }
    }
    // Sites the kernel's tables name.
    let section_symbol_offset = |i| -> Option<u64> {
        let s = file.symbol_by_index(i).ok()?;
        (s.section_index() == Some(sec_index)).then_some(s.address())
    };
    for (name, entry, width) in TABLES {
        let Some(table) = file.section_by_name(name) else {
            continue;
        };
        let tdata = table.data().unwrap_or_default();
        for (off, r) in table.relocations() {
            if off % entry != 0 {
                continue;
            }
            let RelocationTarget::Symbol(i) = r.target() else {
                continue;
            };
            let Some(base) = section_symbol_offset(i) else {
                continue;
            };
            let site = base.wrapping_add(r.addend() as u64);
            if !in_fn(site) {
                continue;
            }
            let len = match width {
                Width::Fixed(w) => *w,
                Width::LengthByteAt(at) => tdata
                    .get(off as usize + at)
                    .map(|b| u32::from(*b))
                    .unwrap_or(u32::MAX),
            };
            masks.push(((site - start) as u32, len));
        }
    }
    masks.sort_unstable();
    masks.dedup();
    Ok(Code {
        size,
        hash: masked_hash(bytes, &masks),
        masks,
    })
}

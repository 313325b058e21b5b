// SPDX-License-Identifier: GPL-2.0-only
//! Section sizes of a .ko (a little-endian ELF64 relocatable), summed as `size` does.

use std::path::Path;

/// Bytes of a module's loaded sections, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Allocated and executable.
    pub text: u64,
    /// Allocated, read-only, not executable (.rodata, tables, __ksymtab, ...).
    pub rodata: u64,
    /// Allocated, writable, with contents.
    pub data: u64,
    /// Allocated, no contents (.bss).
    pub bss: u64,
}

const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SHT_NOBITS: u32 = 8;

pub fn section_sizes(path: &Path) -> Result<Sizes, String> {
    let b = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let bad = || format!("{}: not a little-endian ELF64 file", path.display());
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let shoff = u64_at(0x28) as usize;
    let shentsize = u16_at(0x3a);
    let shnum = u16_at(0x3c);
    if shentsize < 64
        || shoff
            .checked_add(shnum * shentsize)
            .is_none_or(|e| e > b.len())
    {
        return Err(bad());
    }
    let mut s = Sizes::default();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let ty = u32_at(h + 4);
        let flags = u64_at(h + 8);
        let size = u64_at(h + 0x20);
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        if flags & SHF_EXECINSTR != 0 {
            s.text += size;
        } else if ty == SHT_NOBITS {
            s.bss += size;
        } else if flags & SHF_WRITE != 0 {
            s.data += size;
        } else {
            s.rodata += size;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_elf() {
        let p = std::env::temp_dir().join(format!("lpatch-bench-notelf-{}", std::process::id()));
        std::fs::write(&p, b"hello").unwrap();
        assert!(super::section_sizes(&p).is_err());
        std::fs::remove_file(&p).unwrap();
    }
}

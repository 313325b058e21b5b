// SPDX-License-Identifier: GPL-2.0-only
//! The name a kernel module file will have once loaded, read from its ELF sections.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// `name=` in the .modinfo section (modpost writes it).
    Modinfo,
    /// `struct module.name` in .gnu.linkonce.this_module.
    ThisModule,
    /// The file name without ".ko", '-' turned into '_' as kbuild does.
    FileName,
}

/// Offset of `name` in `struct module` on 64-bit kernels: after `enum module_state state`
/// (4 bytes, padded to 8) and `struct list_head list` (16 bytes).
const THIS_MODULE_NAME_OFFSET: usize = 24;
/// MODULE_NAME_LEN on 64-bit kernels.
const MODULE_NAME_LEN: usize = 56;

pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

fn get<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    get::<2>(b, off).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    get::<4>(b, off).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], off: usize) -> Option<usize> {
    get::<8>(b, off)
        .map(u64::from_le_bytes)
        .and_then(|v| usize::try_from(v).ok())
}

fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// The contents of the section called `wanted` in a little-endian ELF64 file.
pub fn section<'a>(b: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    if !is_elf(b) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return None;
    }
    let shoff = u64_at(b, 0x28)?;
    let shentsize = usize::from(u16_at(b, 0x3a)?);
    let shnum = usize::from(u16_at(b, 0x3c)?);
    let shstrndx = usize::from(u16_at(b, 0x3e)?);
    if shentsize < 0x40 || shstrndx >= shnum {
        return None;
    }
    let header = |i: usize| -> Option<(usize, usize, usize)> {
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = usize::try_from(u32_at(b, base)?).ok()?;
        Some((name, u64_at(b, base + 0x18)?, u64_at(b, base + 0x20)?))
    };
    let data = |off: usize, size: usize| b.get(off..off.checked_add(size)?);
    let (_, str_off, str_size) = header(shstrndx)?;
    let strtab = data(str_off, str_size)?;
    (0..shnum).find_map(|i| {
        let (name, off, size) = header(i)?;
        (cstr(strtab.get(name..)?) == wanted.as_bytes())
            .then(|| data(off, size))
            .flatten()
    })
}

/// A plausible module name: what kbuild makes of a file name.
pub fn valid_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < MODULE_NAME_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn normalise(s: &str) -> String {
    s.replace('-', "_")
}

/// The module name from the ELF contents alone.
pub fn name_from_elf(bytes: &[u8]) -> Option<(String, NameSource)> {
    if let Some(info) = section(bytes, ".modinfo") {
        for entry in info.split(|&c| c == 0) {
            if let Some(v) = entry.strip_prefix(b"name=") {
                if let Ok(v) = std::str::from_utf8(v) {
                    if valid_module_name(v) {
                        return Some((normalise(v), NameSource::Modinfo));
                    }
                }
            }
        }
    }
    let this = section(bytes, ".gnu.linkonce.this_module")?;
    let field = this.get(THIS_MODULE_NAME_OFFSET..)?;
    let field = &field[..field.len().min(MODULE_NAME_LEN)];
    let v = std::str::from_utf8(cstr(field)).ok()?;
    valid_module_name(v).then(|| (normalise(v), NameSource::ThisModule))
}

/// The module name of `path` whose contents are `bytes`: from the ELF sections, else from
/// the file name.
pub fn module_name(path: &Path, bytes: &[u8]) -> (String, NameSource) {
    if let Some(found) = name_from_elf(bytes) {
        return found;
    }
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(".ko").unwrap_or(&file);
    (normalise(stem), NameSource::FileName)
}

#[cfg(test)]
pub mod testelf {
    //! Builds minimal ELF64 files with chosen sections.

    pub fn build(sections: &[(&str, &[u8])]) -> Vec<u8> {
        // Layout: ELF header (64) | section data | shstrtab | section headers.
        let mut shstrtab = vec![0u8];
        let mut names = Vec::new();
        for (name, _) in sections {
            names.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
        }
        let shstr_name = shstrtab.len() as u32;
        shstrtab.extend_from_slice(b".shstrtab\0");

        let mut out = vec![0u8; 64];
        let mut offsets = Vec::new();
        for (_, data) in sections {
            offsets.push(out.len() as u64);
            out.extend_from_slice(data);
        }
        let shstr_off = out.len() as u64;
        out.extend_from_slice(&shstrtab);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        let shnum = sections.len() as u16 + 2; // null section, the sections, .shstrtab
        let mut sh = |name: u32, ty: u32, off: u64, size: u64| {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0);
        for (i, (_, data)) in sections.iter().enumerate() {
            sh(names[i], 1, offsets[i], data.len() as u64);
        }
        sh(shstr_name, 3, shstr_off, shstrtab.len() as u64);

        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little endian
        out[6] = 1;
        out[0x10..0x12].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        out[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
        out
    }

    /// A .gnu.linkonce.this_module section naming `name`.
    pub fn this_module(name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 24 + 56 + 64];
        v[24..24 + name.len()].copy_from_slice(name.as_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testelf::*;
    use super::*;

    #[test]
    fn name_from_modinfo() {
        let elf = build(&[
            (".text", b"\x90\x90"),
            (
                ".modinfo",
                b"license=GPL\0vermagic=6.1.0 SMP\0name=livepatch_sample\0",
            ),
            (".gnu.linkonce.this_module", &this_module("other")),
        ]);
        assert_eq!(section(&elf, ".text"), Some(&b"\x90\x90"[..]));
        assert_eq!(
            name_from_elf(&elf),
            Some(("livepatch_sample".into(), NameSource::Modinfo))
        );
    }

    #[test]
    fn name_from_this_module() {
        let elf = build(&[
            (".modinfo", b"license=GPL\0"),
            (".gnu.linkonce.this_module", &this_module("lp_fix")),
        ]);
        assert_eq!(
            name_from_elf(&elf),
            Some(("lp_fix".into(), NameSource::ThisModule))
        );
    }

    #[test]
    fn name_from_file() {
        let (n, src) = module_name(Path::new("/x/my-fix.ko"), b"not elf");
        assert_eq!((n.as_str(), src), ("my_fix", NameSource::FileName));
        let elf = build(&[(".modinfo", b"name=../../etc\0")]);
        let (n, src) = module_name(Path::new("fix-2.ko"), &elf);
        assert_eq!((n.as_str(), src), ("fix_2", NameSource::FileName));
    }

    #[test]
    fn malformed_input_never_panics() {
        let good = build(&[
            (".modinfo", b"name=abc\0"),
            (".gnu.linkonce.this_module", &this_module("abc")),
        ]);
        for len in 0..good.len() {
            let _ = name_from_elf(&good[..len]);
        }
        // Flip every byte of the headers to extreme values.
        for i in 0..good.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = name_from_elf(&b);
            }
        }
        let mut seed = 0x1234_5678_u64;
        for _ in 0..2000 {
            let mut b = b"\x7fELF\x02\x01".to_vec();
            for _ in 0..200 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b.push((seed >> 33) as u8);
            }
            let _ = name_from_elf(&b);
        }
    }
}

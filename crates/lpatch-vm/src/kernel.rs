// SPDX-License-Identifier: GPL-2.0-only
//! Facts about the kernel directory the guest boots from (`vmlinux`, `bzImage`,
//! `config`, and `version` or `System.map` when present).

use crate::Error;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Default location of the unpacked stock kernel (written by scripts/setup.sh).
pub const DEFAULT_KERNEL_DIR: &str = "/var/cache/lpatch/kernel/current";

/// `$LPATCH_KERNEL_DIR`, else [`DEFAULT_KERNEL_DIR`].
pub fn default_kernel_dir() -> PathBuf {
    match std::env::var_os("LPATCH_KERNEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_KERNEL_DIR),
    }
}

/// The kernel release (`uname -r`) of the kernel in `dir`: its `version` file, else the
/// version string in the bzImage's setup header, else the directory's own name.
pub fn kernel_release(dir: &Path) -> Result<String, Error> {
    if let Ok(v) = std::fs::read_to_string(dir.join("version")) {
        let v = v.trim();
        if !v.is_empty() {
            return Ok(v.to_string());
        }
    }
    if let Some(v) = bzimage_release(&dir.join("bzImage")) {
        return Ok(v);
    }
    let canon = dir
        .canonicalize()
        .map_err(|e| Error::io(format!("kernel dir {}", dir.display()), e))?;
    canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Kernel(format!(
                "cannot tell the kernel release of {}",
                dir.display()
            ))
        })
}

/// The release from a bzImage: the boot protocol's `kernel_version` field (at 0x20e)
/// points, less 0x200, to "6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...".
fn bzimage_release(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut hdr = [0u8; 0x210];
    f.read_exact(&mut hdr).ok()?;
    if &hdr[0x202..0x206] != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([hdr[0x20e], hdr[0x20f]]) as u64;
    f.seek(SeekFrom::Start(ptr + 0x200)).ok()?;
    let mut s = [0u8; 128];
    f.read_exact(&mut s).ok()?;
    let s = String::from_utf8_lossy(&s);
    let v = s.split([' ', '\0']).next()?.to_string();
    (!v.is_empty()).then_some(v)
}

/// The value of a kernel config option (`CONFIG_KASAN`, ...) in the `config` file of
/// the kernel directory: `Some("y")`, `Some("\"-lpatch-debug\"")`; None when the option
/// is not set or the directory has no `config`.
pub fn config_value(kernel_dir: &Path, option: &str) -> Option<String> {
    let text = std::fs::read_to_string(kernel_dir.join("config")).ok()?;
    config_lookup(&text, option)
}

/// Whether a bool/tristate kernel config option is built in (`=y`), e.g. `CONFIG_KASAN`.
pub fn config_on(kernel_dir: &Path, option: &str) -> bool {
    config_value(kernel_dir, option).as_deref() == Some("y")
}

fn config_lookup(config: &str, option: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k == option).then(|| v.to_string())
    })
}

/// Whether the kernel in `kernel_dir` is lpatch's debug kernel (scripts/debug-kernel.sh),
/// i.e. its config has lockdep and KASAN: the checkers that tests of the debug flavour
/// rely on. Debian's stock kernel has neither.
pub fn is_debug_kernel(kernel_dir: &Path) -> bool {
    config_on(kernel_dir, "CONFIG_PROVE_LOCKING") && config_on(kernel_dir, "CONFIG_KASAN")
}

/// The guests' kernel for a test marked `needs_debug_kernel` (README, "Tests": `make
/// test-debug` selects those, `make test` skips them): panics, failing the test, when the
/// kernel directory ([`default_kernel_dir`]) is not lpatch's debug kernel. A test selected
/// where it cannot run fails; it never passes by returning early.
#[track_caller]
pub fn require_debug_kernel() -> PathBuf {
    let dir = default_kernel_dir();
    assert!(
        is_debug_kernel(&dir),
        "this test needs the debug kernel (`make test-debug` runs it; `make test` skips every \
         test named needs_debug_kernel): {} is not one",
        dir.display()
    );
    dir
}

/// The same for a test marked `needs_stock_kernel` (one that only means something on
/// Debian's kernel): panics when the guests boot the debug kernel.
#[track_caller]
pub fn require_stock_kernel() -> PathBuf {
    let dir = default_kernel_dir();
    assert!(
        !is_debug_kernel(&dir),
        "this test needs Debian's stock kernel (`make test` runs it; `make test-debug` skips \
         every test named needs_stock_kernel): {} is the debug kernel",
        dir.display()
    );
    dir
}

/// The guest CPU for the kernel in `kernel_dir`: qemu's `max`, without 5-level paging
/// for a KASAN kernel. 6.1's identify_cpu() clears boot_cpu_data's feature bits with
/// interrupts on; an interrupt in that window sees pgtable_l5_enabled() false, and
/// KASAN then takes the 5-level direct map for wild addresses ("BUG: KASAN:
/// wild-memory-access in do_raw_spin_lock" under handle_edge_irq, seen in KASLR boots,
/// which get 5-level paging when the CPU has it; PVH boots never do). A kernel bug, not
/// ours, and not one the suite is there to find.
pub fn cpu_model(kernel_dir: &Path) -> &'static str {
    if config_on(kernel_dir, "CONFIG_KASAN") {
        "max,la57=off"
    } else {
        "max"
    }
}

/// Guest memory a kernel needs by default: `$LPATCH_VM_MEMORY` (MiB) when set, else
/// 1024 MiB for a KASAN kernel (its shadow takes an eighth of memory, and quarantine
/// and SLUB debugging more), else 512 MiB.
pub fn default_memory_mb(kernel_dir: &Path) -> u32 {
    if let Some(mb) = std::env::var("LPATCH_VM_MEMORY")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return mb;
    }
    if config_on(kernel_dir, "CONFIG_KASAN") {
        1024
    } else {
        512
    }
}

/// The tree to build modules against: the kernel directory itself when it is a kernel
/// build tree (the debug kernel's cache directory is its `make O=` tree), else Debian's
/// headers, `/usr/src/linux-headers-<release>`.
pub fn headers_dir(kernel_dir: &Path) -> Result<PathBuf, Error> {
    if kernel_dir.join("Makefile").is_file() && kernel_dir.join("Module.symvers").is_file() {
        return Ok(kernel_dir.to_path_buf());
    }
    let rel = kernel_release(kernel_dir)?;
    let h = PathBuf::from(format!("/usr/src/linux-headers-{rel}"));
    if h.join("Makefile").is_file() {
        Ok(h)
    } else {
        Err(Error::Kernel(format!(
            "no kernel headers at {} (run scripts/setup.sh)",
            h.display()
        )))
    }
}

/// The link-time address of `_text`, i.e. where it is when KASLR is off. From a real
/// `System.map` when the directory has one (Debian's image ships only a placeholder),
/// else from the vmlinux ELF, where `_text` is the start of the `.text` section.
pub fn linked_text_address(kernel_dir: &Path) -> Result<u64, Error> {
    if let Ok(map) = std::fs::read_to_string(kernel_dir.join("System.map")) {
        for l in map.lines() {
            let mut w = l.split_whitespace();
            if let (Some(a), Some(_), Some("_text")) = (w.next(), w.next(), w.next()) {
                if let Ok(a) = u64::from_str_radix(a, 16) {
                    return Ok(a);
                }
            }
        }
    }
    let path = kernel_dir.join("vmlinux");
    elf_section_address(&path, ".text")
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .ok_or_else(|| Error::Kernel(format!("no .text section in {}", path.display())))
}

/// The address of a section of a little-endian ELF64 file, reading only its headers.
fn elf_section_address(path: &Path, want: &str) -> std::io::Result<Option<u64>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut f = File::open(path)?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let u16at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let shoff = u64at(&eh, 0x28);
    let shentsize = u16at(&eh, 0x3a);
    let shnum = u16at(&eh, 0x3c);
    let shstrndx = u16at(&eh, 0x3e);
    if shentsize < 64 || shnum == 0 || shstrndx >= shnum {
        return Err(bad("no usable section headers"));
    }
    let mut sh = vec![0u8; (shentsize * shnum) as usize];
    f.seek(SeekFrom::Start(shoff))?;
    f.read_exact(&mut sh)?;
    let sec = |i: u64| &sh[(i * shentsize) as usize..((i + 1) * shentsize) as usize];
    let strtab = sec(shstrndx);
    let mut names = vec![0u8; u64at(strtab, 0x20) as usize];
    f.seek(SeekFrom::Start(u64at(strtab, 0x18)))?;
    f.read_exact(&mut names)?;
    for i in 0..shnum {
        let s = sec(i);
        let off = u32at(s, 0) as usize;
        let name = names
            .get(off..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .unwrap_or(&[]);
        if name == want.as_bytes() {
            return Ok(Some(u64at(s, 0x10)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached kernel (scripts/setup.sh puts it there; `make test` runs set-up first).
    #[test]
    fn facts_of_the_cached_kernel() {
        let dir = default_kernel_dir();
        assert!(
            dir.join("vmlinux").is_file(),
            "no kernel at {}: run scripts/setup.sh (make test does)",
            dir.display()
        );
        let rel = kernel_release(&dir).unwrap();
        assert!(rel.starts_with(|c: char| c.is_ascii_digit()), "{rel}");
        assert_eq!(
            bzimage_release(&dir.join("bzImage")).as_deref(),
            Some(rel.as_str())
        );
        let text = linked_text_address(&dir).unwrap();
        // x86-64: in the kernel's top 2 GiB, aligned to CONFIG_PHYSICAL_ALIGN (2 MiB)
        assert!(
            text >= 0xffff_ffff_8000_0000 && text.is_multiple_of(0x20_0000),
            "{text:#x}"
        );
    }

    #[test]
    fn config_options() {
        let cfg = "# comment\nCONFIG_KASAN=y\n# CONFIG_PROVE_LOCKING is not set\n\
                   CONFIG_LOCALVERSION=\"-lpatch-debug\"\nCONFIG_KASAN_INLINE=y\n";
        assert_eq!(config_lookup(cfg, "CONFIG_KASAN").as_deref(), Some("y"));
        assert_eq!(
            config_lookup(cfg, "CONFIG_LOCALVERSION").as_deref(),
            Some("\"-lpatch-debug\"")
        );
        assert_eq!(config_lookup(cfg, "CONFIG_PROVE_LOCKING"), None);
        assert_eq!(config_lookup(cfg, "CONFIG_KASA"), None);

        let dir = std::env::temp_dir().join(format!("lpatch-vm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_debug_kernel(&dir)); // no config at all
        std::fs::write(dir.join("config"), cfg).unwrap();
        assert!(!is_debug_kernel(&dir));
        std::fs::write(
            dir.join("config"),
            "CONFIG_PROVE_LOCKING=y\nCONFIG_KASAN=y\n",
        )
        .unwrap();
        assert!(is_debug_kernel(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn not_elf() {
        let p = std::env::temp_dir().join(format!("lpatch-vm-notelf-{}", std::process::id()));
        std::fs::write(&p, [0u8; 100]).unwrap();
        assert!(elf_section_address(&p, ".text").is_err());
        std::fs::remove_file(&p).unwrap();
    }
}

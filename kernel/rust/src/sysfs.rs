//! What the sysfs attributes show and accept. The directory layout:
//!   <root>/<patch>/enabled                              0644  "0" or "1"
//!   <root>/<patch>/<object>/<function>,<sympos>/old_addr  0400  runtime address, 0 if not loaded
//!   <root>/<patch>/<object>/<function>,<sympos>/new_addr  0400  the replacement's address

use crate::core::with_core;
use crate::error::{Error, Result};
use crate::kernel::sysfs::{KobjId, PageOut};
use core::fmt::Write;

/// `enabled` takes exactly "0" or "1", with one optional trailing newline. Stricter than
/// kstrtobool on purpose: "1xyz", "yes" or "2" are mistakes, not requests.
pub fn parse_enabled(input: &[u8]) -> Option<bool> {
    match input {
        b"0" | b"0\n" => Some(false),
        b"1" | b"1\n" => Some(true),
        _ => None,
    }
}

pub fn show(k: KobjId, attr: &[u8], out: &mut PageOut<'_>) -> Result {
    with_core(|c| {
        let r = if let Some(i) = c.patch_by_dir(k) {
            match attr {
                b"enabled" => writeln!(out, "{}", c.patches[i].enabled as u8),
                _ => return Err(Error::EINVAL),
            }
        } else {
            let f = c
                .patches
                .iter()
                .flat_map(|p| p.objects.iter())
                .flat_map(|o| o.funcs.iter())
                .find(|f| f.dir.as_ref().map(|d| d.id()) == Some(k))
                .ok_or(Error::ENODEV)?;
            match attr {
                b"old_addr" => writeln!(out, "{:#x}", f.addr),
                b"new_addr" => writeln!(out, "{:#x}", f.new_func),
                _ => return Err(Error::EINVAL),
            }
        };
        r.map_err(|_| Error::EINVAL)
    })
}

pub fn store(k: KobjId, attr: &[u8], input: &[u8]) -> Result {
    if attr != b"enabled" {
        return Err(Error::EINVAL);
    }
    with_core(|c| {
        let i = c.patch_by_dir(k).ok_or(Error::ENODEV)?;
        let Some(want) = parse_enabled(input) else {
            pr_err!(
                "patch {}: enabled: invalid value ({} bytes); write 0 or 1",
                c.patches[i].name,
                input.len()
            );
            return Err(Error::EINVAL);
        };
        if want {
            c.enable_at(i)
        } else {
            c.disable_at(i)
        }
    })
}

//! What the sysfs attributes show and accept. The directory layout:
//!   <root>/<patch>/enabled                              0644  "0" or "1" (where a transition goes)
//!   <root>/<patch>/transition                           0444  "1" while its transition runs
//!   <root>/<patch>/<object>/<function>,<sympos>/old_addr  0400  runtime address, 0 if not loaded
//!   <root>/<patch>/<object>/<function>,<sympos>/new_addr  0400  the replacement's address

use crate::core::Core;
use crate::error::{Error, Result};
use crate::seam::{Kernel, SysfsDir};
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

/// What attribute `attr` of directory `dir` reads: written to `out` (a page).
pub fn show<K: Kernel>(c: &Core<K>, dir: usize, attr: &[u8], out: &mut dyn Write) -> Result {
    let r = if let Some(i) = c.patch_by_dir(dir) {
        match attr {
            b"enabled" => writeln!(out, "{}", c.enabled_or_enabling(i) as u8),
            b"transition" => writeln!(
                out,
                "{}",
                c.transition().is_some_and(|(id, _)| id == c.patches[i].id) as u8
            ),
            _ => return Err(Error::EINVAL),
        }
    } else {
        let f = c
            .patches
            .iter()
            .flat_map(|p| p.objects.iter())
            .flat_map(|o| o.funcs.iter())
            .find(|f| f.dir.as_ref().map(SysfsDir::id) == Some(dir))
            .ok_or(Error::ENODEV)?;
        match attr {
            b"old_addr" => writeln!(out, "{:#x}", f.addr),
            b"new_addr" => writeln!(out, "{:#x}", f.new_func),
            _ => return Err(Error::EINVAL),
        }
    };
    r.map_err(|_| Error::EINVAL)
}

/// A write of `input` to attribute `attr` of directory `dir`.
pub fn store<K: Kernel>(c: &mut Core<K>, dir: usize, attr: &[u8], input: &[u8]) -> Result {
    let (key, want) = parse_store(c, dir, attr, input)?;
    if want {
        c.enable(key)
    } else {
        c.disable(key)
    }
}

/// What a write asks for, checked (a refusal is logged): the patch (by key) and whether to
/// enable it. [`store`] carries it out; the kernel hands it to the task that owns
/// transitions.
pub fn parse_store<K: Kernel>(c: &Core<K>, dir: usize, attr: &[u8], input: &[u8]) -> Result<(usize, bool)> {
    if attr != b"enabled" {
        return Err(Error::EINVAL);
    }
    let i = c.patch_by_dir(dir).ok_or(Error::ENODEV)?;
    // The patch module's init owns its patch until it returns: a write in that window
    // would make the patch live behind it (its own lp_enable_patch would then fail, its
    // init with it, and the module be freed while its code runs).
    if c.k.module_initialising(c.patches[i].module) {
        log_err!(
            c.k,
            "patch {}: its module is still initialising; its init enables the patch",
            c.patches[i].name
        );
        return Err(Error::EBUSY);
    }
    let Some(want) = parse_enabled(input) else {
        log_err!(
            c.k,
            "patch {}: enabled: invalid value ({} bytes); write 0 or 1",
            c.patches[i].name,
            input.len()
        );
        return Err(Error::EINVAL);
    };
    Ok((c.patches[i].key, want))
}

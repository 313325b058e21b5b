// SPDX-License-Identifier: GPL-2.0-only
//! A module built out of the kernel's tree (a vendor's or one's own) as what the diff
//! patches, as kpatch-build's `--oot-module` and `--oot-module-src` do: the diff's paths are
//! relative to the module's source directory. The build copies that directory into its
//! state (the user's directory is never written), compiles the diff's units there with
//! kbuild's `M=` against the prepared tree before and after the diff, and takes the
//! module's name and symbol table (the positions of its statics) from the `.ko` that runs.

use crate::error::{io, Error, Result};
use crate::image_modules;
use crate::tree::Tree;
use crate::unit::Unit;
use std::path::{Path, PathBuf};

/// What the user names.
#[derive(Debug, Clone)]
pub struct External {
    /// The module as it runs (or will run): its name, vermagic and symbol table.
    pub ko: PathBuf,
    /// The source it was built from, as the diff's paths start.
    pub src: PathBuf,
}

/// The copy a build compiles in.
pub struct Copy {
    /// The copied source directory, kbuild's `M=` for this build.
    pub dir: PathBuf,
    /// The module's name (`.modinfo`'s `name=`).
    pub name: String,
}

/// Files of an earlier build in the user's directory, left out of the copy: the build makes
/// its own.
fn is_artefact(name: &str) -> bool {
    let suffixes = [
        ".o", ".ko", ".mod", ".mod.c", ".cmd", ".a", ".order", ".symvers",
    ];
    suffixes.iter().any(|s| name.ends_with(s)) || name == ".tmp_versions"
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io(to.display(), e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from.display(), e))? {
        let entry = entry.map_err(|e| io(from.display(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_artefact(&name) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| io(entry.path().display(), e))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))
                .map_err(|e| io(entry.path().display(), e))?;
        }
    }
    Ok(())
}

/// Checks the `.ko` against the tree's kernel, copies the source into the tree's state
/// and tells the tree where the module's symbol table is.
pub fn prepare(e: &External, tree: &mut Tree) -> Result<Copy> {
    let ko = std::fs::read(&e.ko).map_err(|err| io(e.ko.display(), err))?;
    let name = image_modules::modinfo(&ko, "name")
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Patch(format!(
                "{}: not a kernel module (no name in its .modinfo)",
                e.ko.display()
            ))
        })?;
    let vermagic = image_modules::modinfo(&ko, "vermagic")
        .into_iter()
        .next()
        .unwrap_or_default();
    let built_for = vermagic.split_whitespace().next().unwrap_or("");
    if built_for != tree.kver {
        return Err(Error::Target(format!(
            "{}: built for kernel {:?} (its vermagic), but the patch is built for {}: give the module built for that kernel",
            e.ko.display(),
            built_for,
            tree.kver
        )));
    }
    if !e.src.is_dir() {
        return Err(Error::Patch(format!(
            "{}: no such directory (the module's source, which the diff's paths start from)",
            e.src.display()
        )));
    }
    let dir = tree.state_dir().join("external").join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&e.src, &dir)?;
    let ko_path = std::fs::canonicalize(&e.ko).map_err(|err| io(e.ko.display(), err))?;
    tree.set_external_module(&name, &ko_path);
    Ok(Copy { dir, name })
}

impl Copy {
    /// Units a header change reaches: the module's `.c` files naming a function or macro
    /// the change reaches (through the module's own headers), beside the diff's own units.
    pub fn header_units(
        &self,
        names: &std::collections::BTreeSet<String>,
        own: &[Unit],
    ) -> Result<Vec<Unit>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let reach = crate::headers::closure(&self.dir, names)?;
        Ok(crate::headers::units_naming(&self.dir, &reach)?
            .iter()
            .filter_map(|s| Unit::of_source(s))
            .filter(|u| !own.contains(u))
            .collect())
    }

    /// Whether the unit (compiled) belongs to this module: kbuild's record of its
    /// compilation names the module. A `.c` file of the directory the module does not link
    /// is compiled as a module of its own.
    pub fn check_unit(&self, u: &Unit) -> Result<()> {
        let into = u.linked_into(&self.dir)?;
        if into != self.name {
            let how = if into == "vmlinux" {
                "its Kbuild does not link it into the module".to_string()
            } else {
                format!("kbuild compiles it for module {into}")
            };
            return Err(Error::Patch(format!(
                "{}: not a file of module {} ({how}): the diff may change only the module's own files",
                u.source, self.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_previous_build_is_not_copied() {
        for a in [
            "x.o",
            "x.ko",
            ".x.o.cmd",
            "x.mod.c",
            "x.mod",
            "modules.order",
            "Module.symvers",
        ] {
            assert!(is_artefact(a), "{a}");
        }
        for s in ["x.c", "x.h", "Kbuild", "Makefile", "x.S"] {
            assert!(!is_artefact(s), "{s}");
        }
    }
}

// SPDX-License-Identifier: GPL-2.0-only
//! Debian's own modules, taken out of the image package `linux-image-<kver>`: a patch for a
//! module names that module's functions and statics by their position in its symbol table,
//! and what the module uses may be defined by a module it depends on (its `depends=`). The
//! builder keeps the `.ko` files it needed in `<cache>/builder/<kver>/modules/`, the module
//! with everything it depends on, so a guest can load them too.

use crate::error::{io, Error, Result};
use crate::run;
use object::{Object, ObjectSection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the modules of one kernel are kept.
pub fn dir(kernel_dir: &Path) -> PathBuf {
    kernel_dir.join("modules")
}

/// A module's name from its file's (`snd-pcm.ko` is `snd_pcm`).
fn name_of_file(file: &str) -> Option<String> {
    let stem = file.rsplit('/').next()?.strip_suffix(".ko")?;
    Some(stem.replace('-', "_"))
}

/// The values of `key` in a `.ko`'s `.modinfo` (`name`, `vermagic`, `depends`).
pub fn modinfo(ko: &[u8], key: &str) -> Vec<String> {
    let Ok(file) = object::File::parse(ko) else {
        return Vec::new();
    };
    let Some(data) = file.section_by_name(".modinfo").and_then(|s| s.data().ok()) else {
        return Vec::new();
    };
    let prefix = format!("{key}=");
    data.split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The modules a `.ko` depends on (`.modinfo`'s `depends=`).
pub fn depends(ko: &[u8]) -> Vec<String> {
    modinfo(ko, "depends")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .filter(|n| !n.is_empty())
                .map(|n| n.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `name` and every module it depends on, in that order (each once): their `.ko` files in
/// [`dir`], taken out of `linux-image-<kver>` the first time one is missing.
pub fn fetch(kernel_dir: &Path, kver: &str, name: &str) -> Result<Vec<(String, PathBuf)>> {
    let dir = dir(kernel_dir);
    std::fs::create_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
    let path_of = |n: &str| dir.join(format!("{n}.ko"));
    let mut package: Option<Package> = None;
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if out.iter().any(|(m, _)| *m == n) {
            continue;
        }
        let path = path_of(&n);
        if !path.is_file() {
            if package.is_none() {
                package = Some(Package::download(kernel_dir, kver)?);
            }
            package.as_ref().expect("downloaded").extract(&n, &path)?;
        }
        let data = std::fs::read(&path).map_err(|e| io(path.display(), e))?;
        // Depth first, in the order given: the module first, then what it needs.
        let mut deps = depends(&data);
        deps.reverse();
        todo.extend(deps);
        out.push((n, path));
    }
    Ok(out)
}

/// The image package, downloaded into a work directory that goes with it.
struct Package {
    work: PathBuf,
    /// Module name → path inside the package.
    modules: BTreeMap<String, String>,
}

impl Package {
    fn download(kernel_dir: &Path, kver: &str) -> Result<Self> {
        run::need_space(kernel_dir, 200, "the kernel's image package (its modules)")?;
        let work = kernel_dir.join(".modules-work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| io(work.display(), e))?;
        let mut package = Package {
            work,
            modules: BTreeMap::new(),
        };
        run::checked(
            Command::new("apt-get")
                .args(["download", "-qq", &format!("linux-image-{kver}")])
                .current_dir(&package.work),
            "apt",
            &format!("downloading linux-image-{kver} (its modules)"),
        )?;
        let listing = run::pipeline(
            "dpkg-deb --fsys-tarfile linux-image-*.deb | tar -t",
            &package.work,
            &format!("listing the modules of linux-image-{kver}"),
        )?;
        package.modules = listing
            .stdout
            .lines()
            .filter_map(|p| name_of_file(p).map(|n| (n, p.to_string())))
            .collect();
        Ok(package)
    }

    fn extract(&self, name: &str, to: &Path) -> Result<()> {
        let inside = self.modules.get(name).ok_or_else(|| {
            Error::Target(format!(
                "the kernel's image package has no module {name} (is it built into vmlinux, or a module of another package?)"
            ))
        })?;
        run::pipeline(
            &format!(
                "dpkg-deb --fsys-tarfile linux-image-*.deb | tar -xO {} > module.ko",
                run::sh_quote(inside)
            ),
            &self.work,
            &format!("taking {name}.ko out of the image package"),
        )?;
        std::fs::rename(self.work.join("module.ko"), to).map_err(|e| io(to.display(), e))
    }
}

impl Drop for Package {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_module_files() {
        assert_eq!(
            name_of_file("./lib/modules/6.1.0-57-amd64/kernel/drivers/block/zram/zram.ko")
                .as_deref(),
            Some("zram")
        );
        assert_eq!(name_of_file("x/snd-pcm.ko").as_deref(), Some("snd_pcm"));
        assert_eq!(name_of_file("x/zram.ko.xz"), None);
        assert_eq!(name_of_file("./boot/config"), None);
    }
}

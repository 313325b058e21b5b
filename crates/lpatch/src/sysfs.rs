// SPDX-License-Identifier: GPL-2.0-only
//! Reading the sysfs trees of the lpatch core and of the kernel's own livepatch core.
//!
//! Ours: `<root>/<patch>/enabled`, `<root>/<patch>/<object>/<func>,<sympos>/{old_addr,new_addr}`.
//! The kernel's (/sys/kernel/livepatch): `<patch>/{enabled,transition,replace,force}`,
//! `<patch>/<object>/patched`, `<patch>/<object>/<func>,<sympos>/` (empty).

use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where things are, given the --sysfs-root prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    /// /sys/module/lpatch exists.
    pub core_loaded: bool,
    /// /sys/module/lpatch/version.
    pub core_version: Option<String>,
    /// The directory the lpatch core registers its patches in, if any.
    pub ours: Option<PathBuf>,
    /// The kernel's livepatch core directory, when present and not ours.
    pub kernel_livepatch: Option<PathBuf>,
}

pub fn read_trim(path: &Path) -> io::Result<String> {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

fn read_bool(path: &Path) -> Option<bool> {
    match read_trim(path).ok()?.as_str() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Whether a livepatch-style directory belongs to the kernel's livepatch core: its patch
/// directories have a `transition` attribute, which the lpatch core never creates.
fn has_kernel_patches(dir: &Path) -> bool {
    subdirs(dir).iter().any(|p| p.join("transition").exists())
}

/// The one rule that tells which sysfs directory belongs to the lpatch core:
///
/// * /sys/kernel/lpatch, when it exists, is ours; then /sys/kernel/livepatch, if present,
///   is the in-kernel livepatch core's (the core picks /sys/kernel/lpatch exactly because
///   the kernel has its own livepatch core, as Debian's CONFIG_LIVEPATCH=y kernels do).
/// * Otherwise /sys/kernel/livepatch is ours while the core is loaded: on a kernel without
///   an in-kernel livepatch core, the core registers there. There is no cheap way to tell a
///   kernel's CONFIG_LIVEPATCH from sysfs alone, so the only extra check is that no patch
///   directory under it carries the in-kernel core's `transition` attribute.
/// * Otherwise /sys/kernel/livepatch, if present, is the kernel's, and we have no root.
pub fn choose_roots(
    core_loaded: bool,
    lpatch: PathBuf,
    livepatch: PathBuf,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let livepatch = livepatch.is_dir().then_some(livepatch);
    if lpatch.is_dir() {
        return (Some(lpatch), livepatch);
    }
    match livepatch {
        Some(lp) if core_loaded && !has_kernel_patches(&lp) => (Some(lp), None),
        other => (None, other),
    }
}

pub fn detect(sys: &Path) -> Layout {
    let module = sys.join("module/lpatch");
    let core_loaded = module.is_dir();
    let core_version = read_trim(&module.join("version"))
        .ok()
        .filter(|v| !v.is_empty());
    let (ours, kernel_livepatch) = choose_roots(
        core_loaded,
        sys.join("kernel/lpatch"),
        sys.join("kernel/livepatch"),
    );
    Layout {
        core_loaded,
        core_version,
        ours,
        kernel_livepatch,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoreKind {
    /// Registered with the lpatch core.
    Lpatch,
    /// Registered with the kernel's own livepatch core.
    KernelLivepatch,
}

#[derive(Debug, Clone, Serialize)]
pub struct Function {
    pub name: String,
    /// The `,N` of the directory name; None when absent or not a number.
    pub sympos: Option<u64>,
    /// The sysfs directory name, "<func>,<sympos>".
    pub dir: String,
    /// As the core prints it ("0xffffffff81234560"); None when unreadable or absent.
    pub old_addr: Option<String>,
    pub new_addr: Option<String>,
    /// Why the addresses could not be read (usually: only root may).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr_error: Option<String>,
}

impl Function {
    /// old_addr reads 0x0 while the target module is not loaded.
    pub fn target_unresolved(&self) -> bool {
        self.old_addr.as_deref().is_some_and(|a| {
            u64::from_str_radix(a.trim_start_matches("0x"), 16).is_ok_and(|v| v == 0)
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Object {
    /// "vmlinux" or a module name.
    pub name: String,
    /// Whether the target is in memory: always for vmlinux, /proc/modules for modules;
    /// None when /proc/modules is unreadable.
    pub loaded: Option<bool>,
    /// The in-kernel core's `patched` attribute; absent for lpatch patches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched: Option<bool>,
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Patch {
    pub name: String,
    pub core: CoreKind,
    pub path: String,
    /// None when `enabled` is missing or unreadable.
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<bool>,
    pub objects: Vec<Object>,
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        // metadata() follows symlinks; sysfs may link objects elsewhere.
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads one address attribute: Ok(None) when the file does not exist.
fn read_addr(path: &Path) -> Result<Option<String>, String> {
    match read_trim(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::errno::describe_io(&e)),
    }
}

fn read_function(dir: &Path, kind: CoreKind) -> Function {
    let dirname = file_name(dir);
    let (name, sympos) = match dirname.rsplit_once(',') {
        Some((n, s)) => (n.to_string(), s.parse().ok()),
        None => (dirname.clone(), None),
    };
    let mut f = Function {
        name,
        sympos,
        dir: dirname,
        old_addr: None,
        new_addr: None,
        addr_error: None,
    };
    if kind == CoreKind::Lpatch {
        for (attr, slot) in [("old_addr", &mut f.old_addr), ("new_addr", &mut f.new_addr)] {
            match read_addr(&dir.join(attr)) {
                Ok(Some(v)) => *slot = Some(v),
                Ok(None) => f.addr_error = Some(format!("{attr} is missing")),
                Err(e) => f.addr_error = Some(format!("{attr} unreadable: {e}")),
            }
        }
    }
    f
}

fn read_object(dir: &Path, kind: CoreKind, loaded_modules: Option<&HashSet<String>>) -> Object {
    let name = file_name(dir);
    let loaded = if name == "vmlinux" {
        Some(true)
    } else {
        loaded_modules.map(|m| m.contains(&name))
    };
    let patched = match kind {
        CoreKind::KernelLivepatch => read_bool(&dir.join("patched")),
        CoreKind::Lpatch => None,
    };
    let mut functions: Vec<Function> = subdirs(dir)
        .iter()
        .map(|d| read_function(d, kind))
        .collect();
    functions.sort_by(|a, b| (&a.name, a.sympos).cmp(&(&b.name, b.sympos)));
    Object {
        name,
        loaded,
        patched,
        functions,
    }
}

pub fn read_patch(dir: &Path, kind: CoreKind, loaded_modules: Option<&HashSet<String>>) -> Patch {
    let mut objects: Vec<Object> = subdirs(dir)
        .iter()
        .map(|d| read_object(d, kind, loaded_modules))
        .collect();
    // vmlinux first, then modules by name.
    objects.sort_by(|a, b| (a.name != "vmlinux", &a.name).cmp(&(b.name != "vmlinux", &b.name)));
    let (transition, replace) = match kind {
        CoreKind::KernelLivepatch => (
            read_bool(&dir.join("transition")),
            read_bool(&dir.join("replace")),
        ),
        CoreKind::Lpatch => (None, None),
    };
    Patch {
        name: file_name(dir),
        core: kind,
        path: dir.display().to_string(),
        enabled: read_bool(&dir.join("enabled")),
        transition,
        replace,
        objects,
    }
}

/// Every patch under `root`, sorted by name.
pub fn read_patches(
    root: &Path,
    kind: CoreKind,
    loaded_modules: Option<&HashSet<String>>,
) -> Vec<Patch> {
    subdirs(root)
        .iter()
        .map(|d| read_patch(d, kind, loaded_modules))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempTree;

    #[test]
    fn roots() {
        let t = TempTree::new();
        let sys = t.path("sys");
        // Nothing at all.
        let l = detect(&sys);
        assert!(!l.core_loaded && l.ours.is_none() && l.kernel_livepatch.is_none());
        // Kernel livepatch only, core not loaded: the kernel's.
        t.mkdir("sys/kernel/livepatch/klp_a");
        t.write("sys/kernel/livepatch/klp_a/transition", "0\n");
        let l = detect(&sys);
        assert_eq!(l.ours, None);
        assert_eq!(l.kernel_livepatch, Some(sys.join("kernel/livepatch")));
        // Core loaded but the only patches there carry `transition`: still the kernel's.
        t.write("sys/module/lpatch/version", "0.1.0\n");
        let l = detect(&sys);
        assert!(l.core_loaded);
        assert_eq!(l.core_version.as_deref(), Some("0.1.0"));
        assert_eq!(l.ours, None);
        // Our own root appears: both.
        t.mkdir("sys/kernel/lpatch");
        let l = detect(&sys);
        assert_eq!(l.ours, Some(sys.join("kernel/lpatch")));
        assert_eq!(l.kernel_livepatch, Some(sys.join("kernel/livepatch")));
    }

    #[test]
    fn livepatch_dir_is_ours_without_in_kernel_core() {
        let t = TempTree::new();
        t.mkdir("sys/module/lpatch");
        t.write("sys/kernel/livepatch/p/enabled", "1\n");
        let l = detect(&t.path("sys"));
        assert_eq!(l.ours, Some(t.path("sys/kernel/livepatch")));
        assert_eq!(l.kernel_livepatch, None);
        assert_eq!(l.core_version, None);
    }

    #[test]
    fn reads_patch() {
        let t = TempTree::new();
        t.write("p/enabled", "1\n");
        t.write(
            "p/vmlinux/cmdline_proc_show,0/old_addr",
            "0xffffffff81234560\n",
        );
        t.write(
            "p/vmlinux/cmdline_proc_show,0/new_addr",
            "0xffffffffc0a01000\n",
        );
        t.write("p/nfsd/nfsd_open,2/old_addr", "0x0\n");
        t.write("p/nfsd/nfsd_open,2/new_addr", "0xffffffffc0a01100\n");
        t.mkdir("p/aaa/weird_no_pos");
        let loaded: HashSet<String> = ["other".to_string()].into();
        let p = read_patch(&t.path("p"), CoreKind::Lpatch, Some(&loaded));
        assert_eq!(p.enabled, Some(true));
        let names: Vec<&str> = p.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["vmlinux", "aaa", "nfsd"]);
        let f = &p.objects[0].functions[0];
        assert_eq!((f.name.as_str(), f.sympos), ("cmdline_proc_show", Some(0)));
        assert_eq!(f.old_addr.as_deref(), Some("0xffffffff81234560"));
        assert!(!f.target_unresolved());
        assert_eq!(p.objects[2].loaded, Some(false));
        assert!(p.objects[2].functions[0].target_unresolved());
        let w = &p.objects[1].functions[0];
        assert_eq!((w.name.as_str(), w.sympos), ("weird_no_pos", None));
        assert!(w.addr_error.as_deref().unwrap().contains("missing"));
    }

    #[test]
    fn unreadable_address_is_explained() {
        let t = TempTree::new();
        t.write("p/enabled", "garbage");
        // A directory where a file should be: reading it fails with EISDIR.
        t.mkdir("p/vmlinux/f,0/old_addr");
        t.write("p/vmlinux/f,0/new_addr", "0x1\n");
        let p = read_patch(&t.path("p"), CoreKind::Lpatch, None);
        assert_eq!(p.enabled, None);
        let f = &p.objects[0].functions[0];
        assert_eq!(f.old_addr, None);
        assert!(
            f.addr_error.as_deref().unwrap().contains("EISDIR"),
            "{:?}",
            f.addr_error
        );
    }

    #[test]
    fn reads_kernel_livepatch() {
        let t = TempTree::new();
        t.write("lp/k/enabled", "1\n");
        t.write("lp/k/transition", "0\n");
        t.write("lp/k/replace", "1\n");
        t.write("lp/k/vmlinux/patched", "1\n");
        t.mkdir("lp/k/vmlinux/meminfo_proc_show,1");
        let ps = read_patches(&t.path("lp"), CoreKind::KernelLivepatch, None);
        assert_eq!(ps.len(), 1);
        let p = &ps[0];
        assert_eq!((p.transition, p.replace), (Some(false), Some(true)));
        assert_eq!(p.objects[0].patched, Some(true));
        let f = &p.objects[0].functions[0];
        assert_eq!(f.sympos, Some(1));
        assert!(f.old_addr.is_none() && f.addr_error.is_none());
    }
}

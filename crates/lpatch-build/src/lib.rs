// SPDX-License-Identifier: GPL-2.0-only
//! lpatch's patch builder: from a unified diff against a Debian kernel's source to exactly
//! what a live patch must replace and add. It resolves the kernel and its exact inputs
//! (`target`), keeps a prepared tree of that source (`tree`), compiles only the units the diff
//! touches before and after it (`apply`, `unit`), compares the two objects of each unit
//! (`compare`) and says why each function changed from the debug info (`dwarf`), giving a
//! `report`. A library behind the CLI's thin `lpatch build` verb, so a build server can run it.

pub mod apply;
pub mod built;
pub mod compare;
pub mod diff;
pub mod dwarf;
pub mod error;
pub mod progress;
pub mod report;
pub mod run;
pub mod target;
pub mod tree;
pub mod unit;

use error::{io, Error, Result};
use progress::Progress;
use report::{Added, ObjectReport, Reason, Replaced, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use unit::Unit;

/// What to build, and where.
pub struct Options {
    /// The unified diff.
    pub patch: PathBuf,
    pub target: target::Request,
    /// Parallel jobs for make.
    pub jobs: usize,
    /// The cache root (`/var/cache/lpatch`): set-up's kernels, the builder's trees.
    pub cache: PathBuf,
    pub progress: Progress,
}

/// The default cache root, as the Makefile and set-up use it.
pub fn default_cache() -> PathBuf {
    std::env::var_os("LPATCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/lpatch"))
}

/// The units of the diff's files, refusing what a live patch cannot carry.
fn units_of(files: &[diff::FileChange]) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    for f in files {
        if f.path.ends_with(".h") {
            return Err(Error::Patch(format!(
                "{}: changes to headers are not handled yet; change the .c files that use it",
                f.path
            )));
        }
        let Some(u) = Unit::of_source(&f.path) else {
            return Err(Error::Patch(format!(
                "{}: lpatch build takes changes to C sources (.c) only; a change to a Makefile, Kconfig or other file cannot be live patched",
                f.path
            )));
        };
        match f.kind {
            diff::Kind::Modified => units.push(u),
            diff::Kind::Added => {
                return Err(Error::Patch(format!(
                    "{}: the diff adds this file, and a new file needs a Makefile change, which a live patch cannot make",
                    f.path
                )))
            }
            diff::Kind::Removed => {
                return Err(Error::Patch(format!("{}: the diff removes this file; a live patch cannot", f.path)))
            }
        }
    }
    Ok(units)
}

/// Copies the compiled objects out of the tree into `dir`, keyed by object path.
fn keep_objects(root: &Path, units: &[Unit], dir: &Path) -> Result<()> {
    for u in units {
        let dst = dir.join(&u.object);
        std::fs::create_dir_all(dst.parent().unwrap_or(dir)).map_err(|e| io(dst.display(), e))?;
        std::fs::copy(root.join(&u.object), &dst)
            .map_err(|e| io(format!("keeping {}", u.object), e))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io(path.display(), e))
}

/// Resolves the kernel and prepares (or checks) its cached tree; returns the tree's root.
/// What `lpatch build --prepare-only` and `make test` run so later builds start at once.
pub fn prepare(
    target: &target::Request,
    cache: &Path,
    jobs: usize,
    progress: &Progress,
) -> Result<PathBuf> {
    let target = target::resolve(target, cache)?;
    let tree = tree::open(&target, cache, jobs, progress)?;
    Ok(tree.root.clone())
}

/// Compiles and compares; stops before the module would be made (`--dry-run`).
pub fn dry_run(o: &Options) -> Result<Report> {
    let text =
        std::fs::read(&o.patch).map_err(|e| Error::Patch(format!("{}: {e}", o.patch.display())))?;
    let text = String::from_utf8_lossy(&text);
    let files =
        diff::parse(&text).map_err(|e| Error::Patch(format!("{}: {e}", o.patch.display())))?;
    let units = units_of(&files)?;
    let patch = std::fs::canonicalize(&o.patch).map_err(|e| io(o.patch.display(), e))?;

    let target = target::resolve(&o.target, &o.cache)?;
    let source = format!("{} {}", target.source_package, target.package_version);
    let tree = tree::open(&target, &o.cache, o.jobs, &o.progress)?;
    apply::check(&tree.root, &patch, &source)?;
    let modular: Vec<bool> = units
        .iter()
        .map(|u| {
            built::check(
                &tree.root,
                tree.state_dir(),
                &u.source,
                &u.object,
                &target.kver,
            )
        })
        .collect::<Result<_>>()?;

    let objects = tree.state_dir().join("objects");
    let _ = std::fs::remove_dir_all(&objects);
    let (before_dir, after_dir) = (objects.join("before"), objects.join("after"));
    let objs: Vec<String> = units.iter().map(|u| u.object.clone()).collect();

    let step = o.progress.step(&format!(
        "compiling {} unit(s) before the diff",
        units.len()
    ));
    tree.compile(&objs, "the unchanged source")?;
    keep_objects(&tree.root, &units, &before_dir)?;
    let linked: Vec<String> = units
        .iter()
        .map(|u| u.linked_into(&tree.root))
        .collect::<Result<_>>()?;
    for ((u, into), module) in units.iter().zip(&linked).zip(&modular) {
        if (into != "vmlinux") != *module {
            return Err(Error::Compile(format!(
                "{}: kbuild's lists say {}, its compile command says {into}",
                u.source,
                if *module { "a module" } else { "vmlinux" }
            )));
        }
    }
    step.done();

    let step = o
        .progress
        .step(&format!("compiling {} unit(s) after the diff", units.len()));
    let mut applied = apply::apply(&tree.root, tree.state_dir(), &patch, &files)?;
    let mut changed_lines = Vec::new();
    for f in &files {
        for l in applied.changed_lines(&f.path)? {
            changed_lines.push((f.path.clone(), l));
        }
    }
    let compiled = tree.compile(&objs, "the source with the diff applied");
    let kept = compiled.and_then(|_| keep_objects(&tree.root, &units, &after_dir));
    applied.restore()?;
    kept?;
    step.done();

    let step = o.progress.step("comparing the objects");
    let mut by_object: BTreeMap<String, ObjectReport> = BTreeMap::new();
    for (u, into) in units.iter().zip(&linked) {
        let before = read(&before_dir.join(&u.object))?;
        let after = read(&after_dir.join(&u.object))?;
        let d = compare::compare(&before, &after)
            .map_err(|e| Error::Compare(format!("{}: {e}", u.object)))?;
        let info =
            dwarf::read_unit(&after).map_err(|e| Error::Compare(format!("{}: {e}", u.object)))?;
        let touched = dwarf::touched_functions(&info, &changed_lines);
        let why = |name: &str| match dwarf::reason_for(&info, &touched, name) {
            dwarf::Reason::ChangedCode => Reason::ChangedCode,
            dwarf::Reason::InlinedCalleeChanged { callees } => {
                Reason::InlinedCalleeChanged { callees }
            }
            dwarf::Reason::Unattributed => Reason::CodeChangedOtherwise,
        };
        let entry = by_object
            .entry(into.clone())
            .or_insert_with(|| ObjectReport {
                name: into.clone(),
                units: Vec::new(),
                replace: Vec::new(),
                new_functions: Vec::new(),
                new_data: Vec::new(),
            });
        entry.units.push(u.source.clone());
        for f in &d.changed {
            entry.replace.push(Replaced {
                function: f.clone(),
                unit: u.source.clone(),
                reason: why(f),
            });
        }
        for f in &d.new_functions {
            entry.new_functions.push(Added {
                name: f.clone(),
                unit: u.source.clone(),
            });
        }
        for v in &d.new_data {
            entry.new_data.push(Added {
                name: v.clone(),
                unit: u.source.clone(),
            });
        }
    }
    step.done();
    // vmlinux first, then modules by name.
    let mut objects: Vec<ObjectReport> = by_object.into_values().collect();
    objects.sort_by_key(|r| (r.name != "vmlinux", r.name.clone()));
    for r in &mut objects {
        r.replace.sort_by(|a, b| a.function.cmp(&b.function));
    }
    if objects
        .iter()
        .all(|r| r.replace.is_empty() && r.new_functions.is_empty() && r.new_data.is_empty())
    {
        return Err(Error::Patch(format!(
            "{}: the diff changes no function's code in {} (a comment, a blank line, or code this config does not build?)",
            o.patch.display(),
            target.kver
        )));
    }
    Ok(Report {
        kernel: target.kver,
        source,
        objects,
    })
}

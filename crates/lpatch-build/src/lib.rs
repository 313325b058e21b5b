// SPDX-License-Identifier: GPL-2.0-only
//! lpatch's patch builder: from a unified diff against a Debian kernel's source to exactly
//! what a live patch must replace and add. It resolves the kernel and its exact inputs
//! (`target`), keeps a prepared tree of that source (`tree`), compiles only the units the diff
//! touches before and after it (`apply`, `unit`), compares the two objects of each unit
//! (`compare`) and says why each function changed from the debug info (`dwarf`), giving a
//! `report`. A library behind the CLI's thin `lpatch build` verb, so a build server can run it.

pub mod apply;
pub mod built;
pub mod code;
pub mod compare;
pub mod diff;
pub mod dwarf;
pub mod error;
pub mod external;
pub mod extract;
pub mod headers;
pub mod image_modules;
pub mod kernel_symbols;
pub mod module;
pub mod progress;
pub mod refuse;
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
    /// An out-of-tree module the diff patches (its paths relative to the module's source),
    /// rather than the kernel's source.
    pub external: Option<external::External>,
}

/// The default cache root, as the Makefile and set-up use it.
pub fn default_cache() -> PathBuf {
    std::env::var_os("LPATCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/lpatch"))
}

/// The diff's files split into the units it changes directly and the headers it changes,
/// refusing what a live patch cannot carry.
fn units_of(files: &[diff::FileChange]) -> Result<(Vec<Unit>, Vec<String>)> {
    let mut units = Vec::new();
    let mut headers = Vec::new();
    for f in files {
        let is_header = f.path.ends_with(".h");
        let unit = Unit::of_source(&f.path);
        if !is_header && unit.is_none() {
            return Err(Error::Patch(format!(
                "{}: lpatch build takes changes to C sources and headers (.c, .h) only; a change to a Makefile, Kconfig or other file cannot be live patched",
                f.path
            )));
        }
        match (f.kind, unit) {
            (diff::Kind::Removed, _) => {
                return Err(Error::Patch(format!(
                    "{}: the diff removes this file; a live patch cannot",
                    f.path
                )))
            }
            (diff::Kind::Added, Some(_)) => {
                return Err(Error::Patch(format!(
                    "{}: the diff adds this file, and a new file needs a Makefile change, which a live patch cannot make",
                    f.path
                )))
            }
            (_, Some(u)) => units.push(u),
            (_, None) => headers.push(f.path.clone()),
        }
    }
    Ok((units, headers))
}

/// The units to compile for the diff's own `.c` files: each one kbuild builds, and for one
/// it does not build on its own, the built units of its directory that `#include` it
/// (kernel/locking/rtmutex.c is compiled inside rtmutex_api.c, kernel/sched/rt.c inside
/// build_policy.c). A file neither built nor included by a built unit stays, for
/// `Kbuild::check` to refuse by name.
fn with_includers(src: &Path, kbuild: &built::Kbuild<'_>, units: Vec<Unit>) -> Result<Vec<Unit>> {
    let mut out: Vec<Unit> = Vec::new();
    for u in units {
        let mut found = Vec::new();
        if kbuild.built_as(&u.object)?.is_err() {
            let path = Path::new(&u.source);
            let (dir, name) = (
                path.parent().unwrap_or(Path::new("")),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let include = format!("#include \"{name}\"");
            let entries = std::fs::read_dir(src.join(dir)).map_err(|e| io(dir.display(), e))?;
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".c") && *n != name)
                .collect();
            names.sort();
            for n in names {
                let text = std::fs::read_to_string(src.join(dir).join(&n)).unwrap_or_default();
                if !text.lines().any(|l| l.trim_start() == include) {
                    continue;
                }
                let rel = dir.join(&n).to_string_lossy().into_owned();
                if let Some(includer) = Unit::of_source(&rel) {
                    if kbuild.built_as(&includer.object)?.is_ok() {
                        found.push(includer);
                    }
                }
            }
        }
        if found.is_empty() {
            found.push(u);
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Copies the compiled objects out of the tree into `dir`, keyed by object path, with their
/// `.cmd` files (which hold the exported symbols' CRCs).
fn keep_objects(root: &Path, units: &[Unit], dir: &Path) -> Result<()> {
    for u in units {
        for f in [u.object.clone(), unit::cmd_file_of(&u.object)] {
            let dst = dir.join(&f);
            std::fs::create_dir_all(dst.parent().unwrap_or(dir))
                .map_err(|e| io(dst.display(), e))?;
            std::fs::copy(root.join(&f), &dst).map_err(|e| io(format!("keeping {f}"), e))?;
        }
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
    Ok(open_tree(target, cache, jobs, progress)?.root.clone())
}

/// The tree a build compiles in: the builder's prepared tree of a Debian kernel, or the
/// user's own.
fn open_tree(
    req: &target::Request,
    cache: &Path,
    jobs: usize,
    progress: &Progress,
) -> Result<tree::Tree> {
    if let target::Request::Tree(dir) = req {
        return tree::open_user(dir, cache, jobs);
    }
    let target = target::resolve(req, cache)?;
    tree::open(&target, cache, jobs, progress)
}

/// What applying the diff tells before anything is compiled: the lines it changed in each
/// file (as applied: offsets included) and the functions and macros of each header it
/// changed.
struct Changes {
    lines: Vec<(String, u64)>,
    header_names: std::collections::BTreeSet<String>,
}

fn changes(
    src: &Path,
    state: &Path,
    patch: &Path,
    files: &[diff::FileChange],
    headers: &[String],
) -> Result<Changes> {
    let mut applied = apply::apply(src, state, patch, files)?;
    let mut lines = Vec::new();
    let mut header_names = std::collections::BTreeSet::new();
    let mut result = Ok(());
    for f in files {
        match applied.changed_lines(&f.path) {
            Ok(ls) => {
                if headers.contains(&f.path) {
                    let text = std::fs::read_to_string(src.join(&f.path)).unwrap_or_default();
                    match headers::changed_names(&f.path, &text, &ls) {
                        Ok(n) => header_names.extend(n),
                        Err(e) => result = result.and(Err(e)),
                    }
                }
                lines.extend(ls.into_iter().map(|l| (f.path.clone(), l)));
            }
            Err(e) => result = result.and(Err(e)),
        }
    }
    applied.restore()?;
    result?;
    Ok(Changes {
        lines,
        header_names,
    })
}

/// The units a header change reaches that this config builds, beside the diff's own units.
/// Each with whether it is built into a module.
fn header_units(
    tree: &tree::Tree,
    kbuild: &built::Kbuild<'_>,
    names: &std::collections::BTreeSet<String>,
    own: &[Unit],
) -> Result<Vec<(Unit, bool)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let reach = headers::closure(&tree.src, names)?;
    let mut out = Vec::new();
    for src in headers::units_naming(&tree.src, &reach)? {
        let Some(u) = Unit::of_source(&src) else {
            continue;
        };
        if own.contains(&u) {
            continue;
        }
        if let Ok(module) = kbuild.built_as(&u.object)? {
            out.push((u, module));
        }
    }
    if out.len() + own.len() > headers::MAX_UNITS {
        return Err(Error::Patch(format!(
            "the header change reaches {} translation units this kernel builds (through {}): more than the {} lpatch build compiles one by one",
            out.len() + own.len(),
            reach.iter().cloned().collect::<Vec<_>>().join(", "),
            headers::MAX_UNITS
        )));
    }
    Ok(out)
}

/// Compiles and compares; stops before the module would be made (`--dry-run`). What a
/// live patch cannot carry fails it, naming each cause ([`Error::Refused`]).
pub fn dry_run(o: &Options) -> Result<Report> {
    let r = compare_diff(o)?;
    refuse(o, &r)?;
    Ok(r)
}

/// Fails with what the report says a live patch cannot carry, if anything.
fn refuse(o: &Options, r: &Report) -> Result<()> {
    if r.refused.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{}: a live patch cannot carry what this diff changes:\n  {}",
        o.patch.display(),
        r.refused.join("\n  ")
    )))
}

/// Compiles, compares and makes the patch module (not yet converted: see
/// [`module::make`]). What a live patch cannot carry fails it, as in [`dry_run`].
pub fn build(o: &Options, spec: &module::Spec) -> Result<(Report, module::Made)> {
    let (r, tree) = compare_in(o)?;
    refuse(o, &r)?;
    let step = o.progress.step("making the patch module");
    let objects = tree.state_dir().join("objects");
    let made = module::make(
        &tree,
        &r,
        &objects.join("before"),
        &objects.join("after"),
        spec,
    )?;
    step.done();
    Ok((r, made))
}

/// Compiles and compares: the whole report, with what a live patch cannot carry listed in
/// [`Report::refused`] rather than failing.
pub fn compare_diff(o: &Options) -> Result<Report> {
    compare_in(o).map(|(r, _)| r)
}

fn compare_in(o: &Options) -> Result<(Report, tree::Tree)> {
    let text =
        std::fs::read(&o.patch).map_err(|e| Error::Patch(format!("{}: {e}", o.patch.display())))?;
    let text = String::from_utf8_lossy(&text);
    let files =
        diff::parse(&text).map_err(|e| Error::Patch(format!("{}: {e}", o.patch.display())))?;
    let (units, headers) = units_of(&files)?;
    let patch = std::fs::canonicalize(&o.patch).map_err(|e| io(o.patch.display(), e))?;
    let mut modular_expected: Option<Vec<bool>> = None;

    let mut tree = open_tree(&o.target, &o.cache, o.jobs, &o.progress)?;
    let ext = match &o.external {
        Some(e) => Some(external::prepare(e, &mut tree)?),
        None => None,
    };
    // Where the diff applies and the objects are: the kernel's tree, or the copy of the
    // out-of-tree module's source.
    let (src, root, source) = match &ext {
        Some(c) => (
            c.dir.clone(),
            c.dir.clone(),
            format!("module {}'s source", c.name),
        ),
        None => (tree.src.clone(), tree.root.clone(), tree.source.clone()),
    };
    apply::check(&src, &patch, &source)?;
    let step = o.progress.step("finding what the diff changes");
    let changed = changes(&src, tree.state_dir(), &patch, &files, &headers)?;
    let (mut units, own_units) = match &ext {
        Some(c) => {
            let n = units.len();
            let more = c.header_units(&changed.header_names, &units)?;
            (units.into_iter().chain(more).collect::<Vec<_>>(), n)
        }
        None => {
            let kbuild = built::Kbuild::new(&tree)?;
            let mut units = with_includers(&tree.src, &kbuild, units)?;
            let mut modular: Vec<bool> = units
                .iter()
                .map(|u| kbuild.check(&u.source, &u.object))
                .collect::<Result<_>>()?;
            let n = units.len();
            for (u, module) in header_units(&tree, &kbuild, &changed.header_names, &units)? {
                units.push(u);
                modular.push(module);
            }
            // kbuild's lists and its compile command must agree on where each unit goes.
            modular_expected = Some(modular);
            (units, n)
        }
    };
    step.done();
    if units.is_empty() {
        return Err(Error::Patch(format!(
            "{}: the diff changes no function or macro that a unit of {} uses",
            o.patch.display(),
            tree.kver
        )));
    }

    let objects = tree.state_dir().join("objects");
    let _ = std::fs::remove_dir_all(&objects);
    let (before_dir, after_dir) = (objects.join("before"), objects.join("after"));
    let objs: Vec<String> = units.iter().map(|u| u.object.clone()).collect();
    tree.save_objects(&objs)?;
    let m_dir = ext.as_ref().map(|c| c.dir.as_path());

    let step = o.progress.step(&format!(
        "compiling {} unit(s) before the diff",
        units.len()
    ));
    tree.compile_in(m_dir, &objs, "the unchanged source")?;
    if let Some(c) = &ext {
        // The diff's own files must be the module's; a header's other includers that are
        // not (a test program of the directory) are left out.
        for u in &units[..own_units] {
            c.check_unit(u)?;
        }
        let mut i = 0;
        units.retain(|u| {
            i += 1;
            i <= own_units || c.check_unit(u).is_ok()
        });
    }
    let objs: Vec<String> = units.iter().map(|u| u.object.clone()).collect();
    keep_objects(&root, &units, &before_dir)?;
    let linked: Vec<String> = units
        .iter()
        .map(|u| u.linked_into(&root))
        .collect::<Result<_>>()?;
    if let Some(modular) = &modular_expected {
        for ((u, into), module) in units.iter().zip(&linked).zip(modular) {
            if (into != "vmlinux") != *module {
                return Err(Error::Compile(format!(
                    "{}: kbuild's lists say {}, its compile command says {into}",
                    u.source,
                    if *module { "a module" } else { "vmlinux" }
                )));
            }
        }
    }
    step.done();

    let step = o
        .progress
        .step(&format!("compiling {} unit(s) after the diff", units.len()));
    let mut applied = apply::apply(&src, tree.state_dir(), &patch, &files)?;
    let compiled = tree.compile_in(m_dir, &objs, "the source with the diff applied");
    let kept = compiled.and_then(|_| keep_objects(&root, &units, &after_dir));
    applied.restore()?;
    kept?;
    step.done();

    let step = o
        .progress
        .step(&format!("comparing {} pair(s) of objects", units.len()));
    let mut by_object: BTreeMap<String, ObjectReport> = BTreeMap::new();
    let mut refusals = Vec::new();
    for (u, into) in units.iter().zip(&linked) {
        let before = read(&before_dir.join(&u.object))?;
        let after = read(&after_dir.join(&u.object))?;
        let d = compare::compare(&before, &after)
            .map_err(|e| Error::Compare(format!("{}: {e}", u.object)))?;
        refusals.extend(refuse::of_diff(&u.source, &d));
        let cmd = unit::cmd_file_of(&u.object);
        let text = |dir: &Path| {
            String::from_utf8_lossy(&read(&dir.join(&cmd)).unwrap_or_default()).into_owned()
        };
        refusals.extend(refuse::of_crcs(
            &u.source,
            &text(&before_dir),
            &text(&after_dir),
        ));
        if d.changed.is_empty()
            && d.new_functions.is_empty()
            && d.new_data.is_empty()
            && d.clones.is_empty()
        {
            continue;
        }
        let info = dwarf::read_unit_in(&after, Some(&src.to_string_lossy()))
            .map_err(|e| Error::Compare(format!("{}: {e}", u.object)))?;
        let touched = dwarf::touched_functions(&info, &changed.lines);
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
                kernel_names: Vec::new(),
            });
        entry.units.push(u.source.clone());
        entry
            .kernel_names
            .push((u.source.clone(), d.kernel_names.clone()));
        let mut replace: Vec<String> = d.changed.clone();
        // A changed clone is replaced as itself (its callers call it by that name, the
        // running kernel's, which a renumbering in `after` does not change); its `.cold`
        // part goes with the function it belongs to, which is in `changed`.
        for c in &d.clones {
            let kernel = d.kernel_names.get(&c.clone).unwrap_or(&c.clone);
            if !c.new && !c.clone.contains(".cold") && !replace.contains(kernel) {
                replace.push(kernel.clone());
            }
        }
        for f in &replace {
            entry.replace.push(Replaced {
                function: f.clone(),
                unit: u.source.clone(),
                reason: why(f),
            });
        }
        // A new clone is a new function its changed callers call.
        let new_clones = d
            .clones
            .iter()
            .filter(|c| c.new && !c.clone.contains(".cold"))
            .map(|c| &c.clone);
        for f in d.new_functions.iter().chain(new_clones) {
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
        r.units.sort();
    }
    if refusals.is_empty()
        && objects
            .iter()
            .all(|r| r.replace.is_empty() && r.new_functions.is_empty() && r.new_data.is_empty())
    {
        return Err(Error::Patch(format!(
            "{}: no functional change: the diff changes no function's code in {} ({} unit(s) compared: a comment, a blank line that only moves line numbers, or code this config does not build?)",
            o.patch.display(),
            tree.kver,
            units.len()
        )));
    }
    let report = Report {
        kernel: tree.kver.clone(),
        source,
        compared: units.iter().map(|u| u.source.clone()).collect(),
        objects,
        refused: refusals,
    };
    Ok((report, tree))
}

// SPDX-License-Identifier: GPL-2.0-only
//! The prepared kernel tree a build compiles in: Debian's exact source unpacked once, the
//! image's config, `prepare` and `modules_prepare` run (never a whole kernel build), cached
//! per kernel release in `<cache>/builder/<kver>/tree` and reused by every later build.
//! One build at a time per tree: `<cache>/builder/<kver>/lock` is held for the whole build.

use crate::error::{io, Error, Result};
use crate::progress::Progress;
use crate::run;
use crate::target::Target;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags every compilation of a build uses, so each function and each data object sits in a
/// section of its own (the comparison works section by section).
pub const KCFLAGS: &str = "-ffunction-sections -fdata-sections";

/// Free disk the preparation needs (MiB): the unpacked and prepared tree (1.5 GB measured)
/// and, when the source must be downloaded, its package (143 MB).
const TREE_MIB: u64 = 1700;
const SOURCE_DEB_MIB: u64 = 160;

/// The builder's cache directory for one kernel release.
pub fn kernel_dir(cache: &Path, kver: &str) -> PathBuf {
    cache.join("builder").join(kver)
}

/// A prepared tree, locked for this build.
pub struct Tree {
    pub root: PathBuf,
    pub target: Target,
    pub jobs: usize,
    dir: PathBuf,
    _lock: File,
}

fn lock(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir.display(), e))?;
    let path = dir.join("lock");
    let f = File::create(&path).map_err(|e| io(path.display(), e))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io(format!("locking {}", path.display()), e.into()))?;
    Ok(f)
}

/// What the completion marker records: a tree is reused only for the same inputs.
fn marker_text(t: &Target) -> String {
    format!(
        "{} {}\n{}\n",
        t.source_package, t.package_version, t.cc_version
    )
}

/// `make` in the tree with the compiler and release the target fixes.
pub fn make(root: &Path, t: &Target, jobs: usize) -> Command {
    let mut c = Command::new("make");
    c.current_dir(root)
        .arg(format!("-j{jobs}"))
        .arg(format!("CC={}", t.cc));
    c.arg(format!("KERNELRELEASE={}", t.kver))
        .arg(format!("KCFLAGS={KCFLAGS}"));
    c
}

/// The source tarball of the exact version: the installed package's when it is that version,
/// else the package downloaded into `dir`. Returns a shell command printing the tarball.
fn source_stream(t: &Target, dir: &Path, progress: &Progress) -> Result<String> {
    let installed = run::capture(
        Command::new("dpkg-query").args(["-W", "-f=${Version}", &t.source_package]),
        "dpkg",
    )?;
    let tarball = format!("/usr/src/{}.tar.xz", t.source_package);
    if installed.ok && installed.stdout.trim() == t.package_version && Path::new(&tarball).is_file()
    {
        return Ok(format!("cat {}", run::sh_quote(&tarball)));
    }
    run::need_space(
        dir,
        TREE_MIB + SOURCE_DEB_MIB,
        &format!("downloading and unpacking {}", t.source_package),
    )?;
    let step = progress.step(&format!(
        "downloading {} {}",
        t.source_package, t.package_version
    ));
    let want = format!("{}={}", t.source_package, t.package_version);
    let got = run::capture(
        Command::new("apt-get")
            .args(["download", "-qq", &want])
            .current_dir(dir),
        "apt",
    )?;
    if !got.ok {
        let offered = run::capture(
            Command::new("apt-cache").args(["madison", &t.source_package]),
            "apt",
        )?;
        let versions: Vec<&str> = offered
            .stdout
            .lines()
            .filter_map(|l| l.split('|').nth(1))
            .map(str::trim)
            .collect();
        return Err(Error::Target(format!(
            "the kernel {} was built from linux {}, but apt offers {} only at {}: the exact source is not available",
            t.kver,
            t.package_version,
            t.source_package,
            if versions.is_empty() { "no version".to_string() } else { versions.join(", ") }
        )));
    }
    step.done();
    Ok(format!(
        "dpkg-deb --fsys-tarfile {}_*.deb | tar -xO ./usr/src/{}.tar.xz",
        run::sh_quote(&t.source_package),
        t.source_package
    ))
}

/// Checks that olddefconfig kept every option of the image's config (it silently drops
/// what this machine cannot provide, e.g. the BTF options without pahole).
fn check_config(image: &str, prepared: &str, t: &Target) -> Result<()> {
    let have: std::collections::HashSet<&str> = prepared.lines().collect();
    let lost: Vec<&str> = image
        .lines()
        .filter(|l| l.starts_with("CONFIG_") && !l.starts_with("CONFIG_BUILD_SALT="))
        .filter(|l| !have.contains(l))
        .collect();
    if !lost.is_empty() {
        return Err(Error::Tool(format!(
            "preparing the tree for {} changed the image's config ({} lines, first: {}); a tool it needs is missing \
             (pahole from the dwarves package keeps the BTF options)",
            t.kver,
            lost.len(),
            lost.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

fn prepare(t: &Target, dir: &Path, root: &Path, jobs: usize, progress: &Progress) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(|e| io(format!("removing {}", root.display()), e))?;
    }
    run::need_space(dir, TREE_MIB, &format!("the prepared tree of {}", t.kver))?;
    let stream = source_stream(t, dir, progress)?;
    std::fs::create_dir_all(root).map_err(|e| io(root.display(), e))?;
    let step = progress.step(&format!(
        "unpacking {} {}",
        t.source_package, t.package_version
    ));
    run::pipeline(
        &format!(
            "{stream} | tar -xJ --strip-components=1 -C {}",
            run::sh_quote(&root.to_string_lossy())
        ),
        dir,
        &format!("unpacking {}", t.source_package),
    )?;
    let _ = std::fs::remove_file(dir.join(format!(
        "{}_{}_all.deb",
        t.source_package, t.package_version
    )));
    for f in std::fs::read_dir(dir)
        .map_err(|e| io(dir.display(), e))?
        .flatten()
    {
        if f.file_name().to_string_lossy().ends_with(".deb") {
            let _ = std::fs::remove_file(f.path());
        }
    }
    step.done();

    let step = progress.step(&format!("preparing the tree for {}", t.kver));
    let image = std::fs::read_to_string(&t.config).map_err(|e| io(t.config.display(), e))?;
    // BUILD_SALT only feeds the .note.Linux note; the headers' config sets it to the release.
    let config = format!("{image}CONFIG_BUILD_SALT=\"{}\"\n", t.kver);
    std::fs::write(root.join(".config"), config)
        .map_err(|e| io(root.join(".config").display(), e))?;
    run::checked(
        make(root, t, jobs).arg("olddefconfig"),
        "make",
        "make olddefconfig",
    )?;
    let prepared =
        std::fs::read_to_string(root.join(".config")).map_err(|e| io("the prepared .config", e))?;
    check_config(&image, &prepared, t)?;
    run::checked(
        make(root, t, jobs).args(["prepare", "modules_prepare"]),
        "make",
        "make prepare modules_prepare",
    )?;
    // The headers' symbol versions, for linking patch modules against this tree later.
    let symvers = PathBuf::from(format!("/usr/src/linux-headers-{}/Module.symvers", t.kver));
    if symvers.is_file() {
        std::fs::copy(&symvers, root.join("Module.symvers"))
            .map_err(|e| io(symvers.display(), e))?;
    }
    step.done();
    Ok(())
}

/// Locks and returns the prepared tree of `t`, preparing it first when there is none (or
/// one for other inputs, or one an interrupted build left changed).
pub fn open(t: &Target, cache: &Path, jobs: usize, progress: &Progress) -> Result<Tree> {
    let dir = kernel_dir(cache, &t.kver);
    let lock = lock(&dir)?;
    let root = dir.join("tree");
    let marker = dir.join("tree.complete");
    // A build stopped while its diff was applied: put the original files back.
    if let Err(e) = crate::apply::recover(&dir, &root) {
        progress.note(&format!(
            "the tree was left changed by an interrupted build ({e}); preparing it again"
        ));
        let _ = std::fs::remove_file(&marker);
    }
    let fresh = std::fs::read_to_string(&marker)
        .map(|m| m == marker_text(t))
        .unwrap_or(false);
    if !fresh {
        let _ = std::fs::remove_file(&marker);
        prepare(t, &dir, &root, jobs, progress)?;
        std::fs::write(&marker, marker_text(t)).map_err(|e| io(marker.display(), e))?;
    }
    Ok(Tree {
        root,
        target: t.clone(),
        jobs,
        dir,
        _lock: lock,
    })
}

impl Tree {
    /// Where a build keeps its applied-diff state and its objects.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Compiles `objects` (paths of `.o` files relative to the root), removing any old copy
    /// first so each is built from the source as it is now.
    pub fn compile(&self, objects: &[String], what: &str) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        for o in objects {
            let _ = std::fs::remove_file(self.root.join(o));
        }
        let out = run::capture(
            make(&self.root, &self.target, self.jobs).args(objects),
            "make",
        )?;
        if !out.ok {
            return Err(Error::Compile(format!(
                "compiling {what} failed:\n{}",
                out.tail(30)
            )));
        }
        Ok(())
    }
}

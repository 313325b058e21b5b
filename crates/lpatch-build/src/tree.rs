// SPDX-License-Identifier: GPL-2.0-only
//! The prepared kernel tree a build compiles in: Debian's exact source unpacked once, the
//! image's config, `prepare` and `modules_prepare` run (never a whole kernel build), cached
//! per kernel release in `<cache>/builder/<kver>/tree` and reused by every later build.
//! Or a tree the user built (`--kernel-tree DIR`, in-tree or `O=`; the debug kernel is one),
//! used as it is: its objects the build overwrites are put back afterwards.
//! One build at a time per tree: a lock in the builder's cache is held for the whole build.

use crate::error::{io, Error, Result};
use crate::kernel_symbols::{KernelSymbols, Order};
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
    /// Where kbuild writes (the `O=` directory, or the source tree itself): `.config`,
    /// objects and their `.cmd` files.
    pub root: PathBuf,
    /// The sources the diff applies to.
    pub src: PathBuf,
    /// The kernel release.
    pub kver: String,
    /// What the diff is checked against, for messages (`linux-source-6.1 6.1.192-3`).
    pub source: String,
    pub jobs: usize,
    cc: String,
    /// KERNELRELEASE to force (the Debian trees: the image's release).
    release: Option<String>,
    /// KCFLAGS for the compilations: [`KCFLAGS`], and `-g` for a tree whose config has no
    /// debug info (the reasons come from it; GCC's rule is that -g never changes the code).
    kcflags: String,
    dir: PathBuf,
    /// A user's tree: the objects a build overwrites are saved first and put back on drop.
    user: bool,
    saved: Vec<String>,
    absent: Vec<String>,
    /// An out-of-tree module the build patches, by name, with its running `.ko`.
    external: Option<(String, PathBuf)>,
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
/// The version of the preparation itself: a tree prepared by an older builder is prepared
/// again (2: the tree records the image's release in include/config/kernel.release).
const PREPARATION: u32 = 2;

fn marker_text(t: &Target) -> String {
    format!(
        "{} {}\n{}\npreparation {PREPARATION}\n",
        t.source_package, t.package_version, t.cc_version
    )
}

/// `make` in `root` with the compiler and release given.
fn make_in(root: &Path, cc: &str, release: Option<&str>, jobs: usize, kcflags: &str) -> Command {
    let mut c = Command::new("make");
    c.current_dir(root)
        .arg(format!("-j{jobs}"))
        .arg(format!("CC={cc}"));
    if let Some(r) = release {
        c.arg(format!("KERNELRELEASE={r}"));
    }
    c.arg(format!("KCFLAGS={kcflags}"));
    c
}

/// Headers a patch may include that are not the kernel's: `kpatch-syscall.h`, for patches
/// written to kpatch-build's conventions (its macro names, lpatch's definitions).
const PATCH_HEADERS: &[(&str, &str)] = &[(
    "kpatch-syscall.h",
    include_str!("../include/kpatch-syscall.h"),
)];

/// `kcflags` with the directory of [`PATCH_HEADERS`], written into `state`, searched last
/// (an include path changes no code).
fn with_patch_headers(kcflags: &str, state: &Path) -> Result<String> {
    let dir = state.join("include");
    std::fs::create_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
    for (name, text) in PATCH_HEADERS {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| io(p.display(), e))?;
    }
    Ok(format!("{kcflags} -idirafter {}", dir.display()))
}

fn make(root: &Path, t: &Target, jobs: usize) -> Command {
    make_in(root, &t.cc, Some(&t.kver), jobs, KCFLAGS)
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
    // kbuild records the sources' own release (6.1.192); the tree is the image's.
    let rel = root.join("include/config/kernel.release");
    std::fs::write(&rel, format!("{}\n", t.kver)).map_err(|e| io(rel.display(), e))?;
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
        src: root.clone(),
        root,
        kver: t.kver.clone(),
        source: format!("{} {}", t.source_package, t.package_version),
        jobs,
        cc: t.cc.clone(),
        release: Some(t.kver.clone()),
        kcflags: with_patch_headers(KCFLAGS, &dir)?,
        dir,
        user: false,
        saved: Vec::new(),
        absent: Vec::new(),
        external: None,
        _lock: lock,
    })
}

/// The builder's state directory for a user's tree, named after its path; the builder's own
/// trees (`<cache>/builder/<kver>/tree`) keep theirs, so both ways in share one lock.
fn user_dir(cache: &Path, root: &Path) -> PathBuf {
    let builder =
        std::fs::canonicalize(cache.join("builder")).unwrap_or_else(|_| cache.join("builder"));
    if let Some(parent) = root.parent() {
        if root.file_name().is_some_and(|n| n == "tree")
            && parent.parent() == Some(builder.as_path())
        {
            return parent.to_path_buf();
        }
    }
    let name: String = root
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    cache.join("builder").join(format!("tree{name}"))
}

/// Locks and returns a tree the user built (`--kernel-tree`), as it is: its `.config` and
/// prepared headers must be there, and the compiler its config names.
pub fn open_user(dir: &Path, cache: &Path, jobs: usize) -> Result<Tree> {
    let root = std::fs::canonicalize(dir)
        .map_err(|e| Error::Target(format!("no kernel tree at {}: {e}", dir.display())))?;
    let need = |f: &str, what: &str| -> Result<()> {
        if root.join(f).exists() {
            return Ok(());
        }
        Err(Error::Target(format!(
            "{} is not a prepared kernel tree: it has no {f} ({what}; run make prepare modules_prepare there)",
            root.display()
        )))
    };
    need(".config", "the config")?;
    need("include/config/kernel.release", "the release")?;
    need("include/generated/autoconf.h", "the generated headers")?;
    need("scripts/basic/fixdep", "kbuild's tools")?;
    // An O= tree points at its sources through `source`.
    let src = std::fs::canonicalize(root.join("source")).unwrap_or_else(|_| root.clone());
    if !src.join("scripts/Makefile.build").is_file() {
        return Err(Error::Target(format!(
            "no kernel source at {}",
            src.display()
        )));
    }
    let kver = std::fs::read_to_string(root.join("include/config/kernel.release"))
        .map_err(|e| io("include/config/kernel.release", e))?
        .trim()
        .to_string();
    let (cc, _) = crate::target::compiler_of(&root.join(".config"))?;
    let config = std::fs::read_to_string(root.join(".config"))
        .map_err(|e| io(root.join(".config").display(), e))?;
    let kcflags = match lpatch_kbuild::config::KConfig::parse(&config).is_y("DEBUG_INFO") {
        true => KCFLAGS.to_string(),
        false => format!("{KCFLAGS} -g"),
    };
    let state = user_dir(cache, &root);
    let lock = lock(&state)?;
    let kcflags = with_patch_headers(&kcflags, &state)?;
    crate::apply::recover(&state, &src)?;
    Ok(Tree {
        source: format!("the kernel tree at {}", root.display()),
        root,
        src,
        kver: kver.clone(),
        jobs,
        cc,
        // The release the tree records, passed on so make does not recompute it (the builder's
        // own trees record Debian's, which their sources' version would not give).
        release: Some(kver.clone()),
        kcflags,
        dir: state,
        user: true,
        saved: Vec::new(),
        absent: Vec::new(),
        external: None,
        _lock: lock,
    })
}

impl Tree {
    /// `make` in the tree with its compiler, release and flags.
    fn make(&self) -> Command {
        make_in(
            &self.root,
            &self.cc,
            self.release.as_deref(),
            self.jobs,
            &self.kcflags,
        )
    }

    /// Where a build keeps its applied-diff state and its objects.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// The kernel's exports with their CRCs (`Module.symvers` at the tree's root), which a
    /// patch module links against. A Debian tree takes them from the kernel's headers: the
    /// installed `linux-headers-<kver>`, else that package downloaded (once).
    pub fn module_symvers(&self) -> Result<PathBuf> {
        let here = self.root.join("Module.symvers");
        if here.is_file() || self.user {
            return Ok(here);
        }
        let installed = PathBuf::from(format!(
            "/usr/src/linux-headers-{}/Module.symvers",
            self.kver
        ));
        if installed.is_file() {
            std::fs::copy(&installed, &here).map_err(|e| io(installed.display(), e))?;
            return Ok(here);
        }
        let work = self.dir.join(".headers");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| io(work.display(), e))?;
        let got = run::checked(
            Command::new("apt-get")
                .args(["download", "-qq", &format!("linux-headers-{}", self.kver)])
                .current_dir(&work),
            "apt",
            &format!("downloading linux-headers-{} (the kernel's Module.symvers)", self.kver),
        )
        .and_then(|_| {
            run::pipeline(
                &format!(
                    "dpkg-deb --fsys-tarfile linux-headers-*.deb | tar -xO ./usr/src/linux-headers-{}/Module.symvers > Module.symvers",
                    self.kver
                ),
                &work,
                "taking Module.symvers out of the headers package",
            )
        })
        .and_then(|_| {
            std::fs::rename(work.join("Module.symvers"), &here).map_err(|e| io(here.display(), e))
        });
        let _ = std::fs::remove_dir_all(&work);
        got.map(|_| here)
    }

    /// The kernel's symbol table, for the positions of names it has more than once:
    /// Debian's from its debug image (fetched once per kernel), a user's tree's from its
    /// `vmlinux`; `None` for a user's tree without one (the core then refuses an
    /// ambiguous name at load, naming it).
    pub fn kernel_symbols(&self) -> Result<Option<KernelSymbols>> {
        if !self.user {
            return KernelSymbols::of_debian(&self.dir, &self.kver).map(Some);
        }
        let vmlinux = self.root.join("vmlinux");
        if !vmlinux.is_file() {
            return Ok(None);
        }
        let data = std::fs::read(&vmlinux).map_err(|e| io(vmlinux.display(), e))?;
        KernelSymbols::parse(&KernelSymbols::list_of_elf(&data, Order::Address)?).map(Some)
    }

    /// A module's symbol table and those of the modules it depends on, in that order, by
    /// module name: Debian's from the image package (kept in the builder's cache), a user's
    /// tree's from the `.ko` files kbuild made there (`modules.order`); empty when the
    /// module's `.ko` is not there.
    pub fn module_symbols(&self, module: &str) -> Result<Vec<(String, KernelSymbols)>> {
        let files = if let Some((name, ko)) = self.external.as_ref().filter(|(n, _)| n == module) {
            self.external_module_files(name, ko)?
        } else if !self.user {
            crate::image_modules::fetch(&self.dir, &self.kver, module)?
        } else {
            self.user_module_files(module)
        };
        files
            .into_iter()
            .map(|(name, path)| {
                let data = std::fs::read(&path).map_err(|e| io(path.display(), e))?;
                let list = KernelSymbols::list_of_elf(&data, Order::Table)?;
                Ok((name, KernelSymbols::parse(&list)?))
            })
            .collect()
    }

    /// Names an out-of-tree module the build patches (its name, its running `.ko`), whose
    /// symbol table [`Tree::module_symbols`] then reads from that file.
    pub fn set_external_module(&mut self, name: &str, ko: &Path) {
        self.external = Some((name.to_string(), ko.to_path_buf()));
    }

    /// An out-of-tree module's `.ko` and those of the kernel's modules it depends on.
    fn external_module_files(&self, name: &str, ko: &Path) -> Result<Vec<(String, PathBuf)>> {
        let data = std::fs::read(ko).map_err(|e| io(ko.display(), e))?;
        let mut out = vec![(name.to_string(), ko.to_path_buf())];
        for dep in crate::image_modules::depends(&data) {
            let files = if self.user {
                self.user_module_files(&dep)
            } else {
                crate::image_modules::fetch(&self.dir, &self.kver, &dep)?
            };
            for f in files {
                if !out.iter().any(|(m, _)| *m == f.0) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// A user's tree's `.ko` of `module` and its dependencies, where kbuild made them.
    fn user_module_files(&self, module: &str) -> Vec<(String, PathBuf)> {
        let order = std::fs::read_to_string(self.root.join("modules.order")).unwrap_or_default();
        let path_of = |n: &str| {
            order
                .lines()
                .map(|l| l.trim().trim_end_matches(".o").trim_end_matches(".ko"))
                .find(|l| l.rsplit('/').next().map(|f| f.replace('-', "_")).as_deref() == Some(n))
                .map(|l| self.root.join(format!("{l}.ko")))
                .filter(|p| p.is_file())
        };
        let mut out: Vec<(String, PathBuf)> = Vec::new();
        let mut todo = vec![module.to_string()];
        while let Some(n) = todo.pop() {
            if out.iter().any(|(m, _)| *m == n) {
                continue;
            }
            let Some(p) = path_of(&n) else { continue };
            let mut deps = std::fs::read(&p)
                .map(|d| crate::image_modules::depends(&d))
                .unwrap_or_default();
            deps.reverse();
            todo.extend(deps);
            out.push((n, p));
        }
        out
    }

    /// Compiles `objects` (paths of `.o` files relative to the root), removing any old copy
    /// first so each is built from the source as it is now.
    pub fn compile(&self, objects: &[String], what: &str) -> Result<()> {
        self.compile_in(None, objects, what)
    }

    /// Compiles `objects`, as [`Tree::compile`]; in an external module's directory
    /// (kbuild's `M=`, the objects relative to it) when `external` is given.
    pub fn compile_in(
        &self,
        external: Option<&Path>,
        objects: &[String],
        what: &str,
    ) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let base = external.unwrap_or(&self.root);
        for o in objects {
            let _ = std::fs::remove_file(base.join(o));
        }
        let mut make = self.make();
        if let Some(dir) = external {
            make.arg(format!("M={}", dir.display()));
        }
        let out = run::capture(make.args(objects), "make")?;
        if !out.ok {
            return Err(Error::Compile(format!(
                "compiling {what} failed:\n{}",
                out.tail(30)
            )));
        }
        Ok(())
    }

    /// Builds the external module in `dir` (kbuild's M=) against this tree, with the
    /// core's exports (`core_symvers`); modpost only warns about symbols the kernel does
    /// not export, which become livepatch relocations afterwards.
    pub fn make_module(&self, dir: &Path, core_symvers: &Path) -> Result<()> {
        let out = run::capture(
            self.make()
                .arg(format!("M={}", dir.display()))
                .arg("KBUILD_MODPOST_WARN=1")
                .arg(format!("KBUILD_EXTRA_SYMBOLS={}", core_symvers.display()))
                .arg("modules"),
            "make",
        )?;
        if !out.ok {
            return Err(Error::Compile(format!(
                "building the patch module failed:\n{}",
                out.tail(30)
            )));
        }
        Ok(())
    }

    /// In a user's tree, saves the objects (and their `.cmd` files) the build will overwrite,
    /// to put them back when the tree is dropped (and removes those it adds). Nothing to do in the builder's own trees.
    pub fn save_objects(&mut self, objects: &[String]) -> Result<()> {
        if !self.user {
            return Ok(());
        }
        let keep = self.dir.join("saved");
        for o in objects {
            for f in [o.clone(), crate::unit::cmd_file_of(o)] {
                let from = self.root.join(&f);
                if self.saved.contains(&f) || self.absent.contains(&f) {
                    continue;
                }
                if !from.exists() {
                    // Not there before the build: removed again after it.
                    self.absent.push(f);
                    continue;
                }
                let to = keep.join(&f);
                std::fs::create_dir_all(to.parent().unwrap_or(&keep))
                    .map_err(|e| io(to.display(), e))?;
                std::fs::copy(&from, &to)
                    .map_err(|e| io(format!("saving {}", from.display()), e))?;
                self.saved.push(f);
            }
        }
        Ok(())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let keep = self.dir.join("saved");
        for f in &self.saved {
            if let Err(e) = std::fs::copy(keep.join(f), self.root.join(f)) {
                eprintln!(
                    "lpatch build: putting back {} in {} failed: {e}",
                    f,
                    self.root.display()
                );
            }
        }
        for f in &self.absent {
            let _ = std::fs::remove_file(self.root.join(f));
        }
        let _ = std::fs::remove_dir_all(&keep);
    }
}

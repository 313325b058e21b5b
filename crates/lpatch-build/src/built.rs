// SPDX-License-Identifier: GPL-2.0-only
//! Whether the kernel's config builds a translation unit at all. kbuild compiles any file it
//! is asked for by name (`make fs/ext2/super.o` works with EXT2_FS off), so a successful
//! compile proves nothing: the unit counts as built only if every directory on its path is
//! listed by its parent's Makefile and the object by its own directory's, as kbuild
//! evaluates them under this `.config`. The lists come from kbuild itself: its
//! `scripts/Makefile.build` is read for one directory with a tiny makefile after it that
//! prints `real-obj-y`, `real-obj-m` and `subdir-ym` (about 30 ms a directory).

use crate::error::{io, Error, Result};
use crate::run;
use crate::tree::Tree;
use lpatch_kbuild::config::KConfig;
use std::path::Path;
use std::process::Command;

/// kbuild's lists for one directory.
#[derive(Debug, Default)]
struct Lists {
    y: Vec<String>,
    m: Vec<String>,
    sub: Vec<String>,
}

const PRINT_MK: &str = "$(lastword $(MAKEFILE_LIST)): ;\nlpatch-lists: ; @:\n\
$(info LPATCH-Y $(real-obj-y))\n$(info LPATCH-M $(real-obj-m))\n$(info LPATCH-SUB $(subdir-ym))\n";

fn read_lists(tree: &Tree, mk: &Path, dir: &str) -> Result<Lists> {
    let src = tree.src.to_string_lossy();
    let out = run::checked(
        Command::new("make")
            .current_dir(&tree.root)
            .args(["-s", "-f", &format!("{src}/scripts/Makefile.build"), "-f"])
            .arg(mk)
            .args([
                &format!("obj={dir}"),
                &format!("srctree={src}"),
                "objtree=.",
                "SRCARCH=x86",
                "lpatch-lists",
            ]),
        "make",
        &format!("reading kbuild's lists of {dir}/"),
    )?;
    let mut l = Lists::default();
    for line in out.stdout.lines() {
        let words = |rest: &str| {
            rest.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        if let Some(r) = line.strip_prefix("LPATCH-Y") {
            l.y = words(r);
        } else if let Some(r) = line.strip_prefix("LPATCH-M") {
            l.m = words(r);
        } else if let Some(r) = line.strip_prefix("LPATCH-SUB") {
            l.sub = words(r);
        }
    }
    Ok(l)
}

/// Whether `parent`'s lists name the directory `child` (in subdir-ym).
fn lists_dir(l: &Lists, child: &str) -> bool {
    l.sub.iter().any(|s| s == child)
}

/// Whether a makefile's own lines add the directory `child` under this config:
/// `obj-y += fs/`, `obj-$(CONFIG_NET) += net/`, `libs-y += arch/x86/lib/`. The top-level
/// Kbuild and arch/x86's Makefile name directories this way, and kbuild's lists cannot be read
/// for the top level (Makefile.build with obj=. tries to remake every .cmd file it includes).
fn makefile_adds(text: &str, child: &str, config: &KConfig) -> bool {
    text.lines().any(|l| {
        let Some((lhs, rhs)) = l.split_once("+=") else {
            return false;
        };
        if rhs
            .trim()
            .replace("$(SRCARCH)", "x86")
            .trim_end_matches('/')
            != child
        {
            return false;
        }
        let Some((_, cond)) = lhs.trim().split_once('-') else {
            return false;
        };
        match cond
            .strip_prefix("$(CONFIG_")
            .and_then(|c| c.strip_suffix(')'))
        {
            Some(opt) => config.get(opt).is_some(),
            None => cond == "y",
        }
    })
}

fn read_text(root: &Path, file: &str) -> Result<String> {
    std::fs::read_to_string(root.join(file)).map_err(|e| io(root.join(file).display(), e))
}

/// What one build asks of kbuild: the tree's config, the makefiles read directly, and each
/// directory's lists, read once and kept (a header change asks about many units, which share
/// their directories).
pub struct Kbuild<'t> {
    tree: &'t Tree,
    config: KConfig,
    top: String,
    arch: String,
    mk: std::path::PathBuf,
    lists: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<Lists>>>,
}

impl<'t> Kbuild<'t> {
    pub fn new(tree: &'t Tree) -> Result<Kbuild<'t>> {
        let mk = tree.state_dir().join("print-lists.mk");
        std::fs::write(&mk, PRINT_MK).map_err(|e| io(mk.display(), e))?;
        Ok(Kbuild {
            tree,
            config: KConfig::parse(&read_text(&tree.root, ".config")?),
            top: read_text(&tree.src, "Kbuild")?,
            arch: read_text(&tree.src, "arch/x86/Makefile")?,
            mk,
            lists: Default::default(),
        })
    }

    fn lists(&self, dir: &str) -> Result<std::rc::Rc<Lists>> {
        if let Some(l) = self.lists.borrow().get(dir) {
            return Ok(l.clone());
        }
        let l = std::rc::Rc::new(read_lists(self.tree, &self.mk, dir)?);
        self.lists.borrow_mut().insert(dir.to_string(), l.clone());
        Ok(l)
    }

    /// How the config builds `object`: Ok(true) into a module, Ok(false) into vmlinux,
    /// Err(why) not at all, naming the makefile that leaves it out.
    pub fn built_as(&self, object: &str) -> Result<std::result::Result<bool, String>> {
        let dir = Path::new(object)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.is_empty() {
            return Ok(Err("it is not in a kbuild directory".into()));
        }
        // The top-level Kbuild adds arch/x86/ as one directory.
        let top = if dir == "arch/x86" || dir.starts_with("arch/x86/") {
            "arch/x86".to_string()
        } else {
            dir.split('/').next().unwrap_or_default().to_string()
        };
        if !makefile_adds(&self.top, &top, &self.config) {
            return Ok(Err(format!(
                "Kbuild does not build {top}/ under this config"
            )));
        }
        let mut parent = top.clone();
        let rest = dir.strip_prefix(&top).unwrap_or("").trim_start_matches('/');
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            let child = format!("{parent}/{part}");
            let listed = lists_dir(&*self.lists(&parent)?, &child)
                || (parent == "arch/x86" && makefile_adds(&self.arch, &child, &self.config));
            if !listed {
                return Ok(Err(format!(
                    "{parent}/Makefile does not build {child}/ under this config"
                )));
            }
            parent = child;
        }
        let l = self.lists(&dir)?;
        if l.m.iter().any(|o| o == object) {
            return Ok(Ok(true));
        }
        if l.y.iter().any(|o| o == object) {
            return Ok(Ok(false));
        }
        Ok(Err(format!(
            "{dir}/Makefile does not build {} under this config",
            Path::new(object).display()
        )))
    }

    /// Refuses a unit the config does not build, naming the Makefile that leaves it out;
    /// else whether it is built into a module.
    pub fn check(&self, source: &str, object: &str) -> Result<bool> {
        match self.built_as(object)? {
            Ok(module) => Ok(module),
            Err(why) => Err(Error::Patch(format!(
                "{source} is not built in {}'s config ({why}): nothing of it runs there to patch",
                self.tree.kver
            ))),
        }
    }
}

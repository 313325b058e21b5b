// SPDX-License-Identifier: GPL-2.0-only
//! Applying the diff to the prepared tree for the "after" compilation, and putting the tree
//! back exactly as it was. The original of every file the diff touches is saved before the
//! diff is applied (`<builder dir>/applied/`); the list written last marks the tree as
//! changed, so a build that was killed midway is undone by the next one (`recover`).
//! Hunks must apply exactly, neither at an offset nor with fuzz: a fix whose context or
//! line numbers differ from this kernel's source was made against another version, and is
//! refused (naming the version checked against) rather than guessed into place.

use crate::diff::{self, FileChange, Kind};
use crate::error::{io, Error, Result};
use crate::run;
use std::path::{Path, PathBuf};
use std::process::Command;

fn patch_cmd(root: &Path, patch: &Path) -> Command {
    let mut c = Command::new("patch");
    c.current_dir(root).args([
        "-p1",
        "--batch",
        "--forward",
        "--fuzz=0",
        "--no-backup-if-mismatch",
        "-i",
    ]);
    c.arg(patch);
    c
}

/// The tree with the diff applied; dropping it restores the originals.
pub struct Applied {
    root: PathBuf,
    state: PathBuf,
    /// (path, whether it existed before the diff)
    files: Vec<(String, bool)>,
    restored: bool,
}

fn saved(state: &Path) -> PathBuf {
    state.join("files")
}

/// Checks that `patch` applies to the tree, without changing it.
pub fn check(root: &Path, patch: &Path, source: &str) -> Result<()> {
    let out = run::capture(patch_cmd(root, patch).arg("--dry-run"), "patch")?;
    if !out.ok {
        let lines: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).collect();
        return Err(Error::Patch(format!(
            "{} does not apply to {source}:\n  {}",
            patch.display(),
            lines.join("\n  ")
        )));
    }
    // patch(1) says "Hunk #2 succeeded at 1234 (offset 12 lines)." when a hunk's context sits
    // elsewhere than the diff says: the diff was made against another version of the file.
    let moved: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("(offset "))
        .collect();
    if !moved.is_empty() {
        return Err(Error::Patch(format!(
            "{} was made against another version of the source than {source}: it applies only with its hunks moved:\n  {}\nlpatch build compiles the diff against {source} exactly: make the diff against that source",
            patch.display(),
            moved.join("\n  ")
        )));
    }
    Ok(())
}

/// Applies `patch` (already checked) to the tree, saving the originals of `files` first.
pub fn apply(root: &Path, dir: &Path, patch: &Path, files: &[FileChange]) -> Result<Applied> {
    let state = dir.join("applied");
    let _ = std::fs::remove_dir_all(&state);
    let mut list = String::new();
    let mut entries = Vec::new();
    for f in files {
        let src = root.join(&f.path);
        let existed = src.exists();
        if existed {
            let dst = saved(&state).join(&f.path);
            std::fs::create_dir_all(dst.parent().unwrap_or(&state))
                .map_err(|e| io(dst.display(), e))?;
            std::fs::copy(&src, &dst).map_err(|e| io(format!("saving {}", src.display()), e))?;
        } else if f.kind != Kind::Added {
            return Err(Error::Patch(format!(
                "the diff changes {}, which this kernel's source does not have",
                f.path
            )));
        }
        list.push_str(if existed { "E " } else { "N " });
        list.push_str(&f.path);
        list.push('\n');
        entries.push((f.path.clone(), existed));
    }
    let tmp = state.join("list.new");
    std::fs::write(&tmp, list).map_err(|e| io(tmp.display(), e))?;
    std::fs::rename(&tmp, state.join("list")).map_err(|e| io(state.display(), e))?;
    let mut applied = Applied {
        root: root.to_path_buf(),
        state,
        files: entries,
        restored: false,
    };
    let out = run::capture(&mut patch_cmd(root, patch), "patch")?;
    if !out.ok {
        applied.restore()?;
        return Err(Error::Patch(format!(
            "{} did not apply:\n{}",
            patch.display(),
            out.tail(10)
        )));
    }
    Ok(applied)
}

fn restore_from(root: &Path, state: &Path, list: &str) -> Result<()> {
    for line in list.lines() {
        let (tag, path) = line.split_at(2.min(line.len()));
        let dst = root.join(path);
        match tag {
            // fs::copy writes the file anew: its time is now, so make rebuilds what uses it.
            "E " => std::fs::copy(saved(state).join(path), &dst).map(|_| ()),
            "N " => match std::fs::remove_file(&dst) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            },
            _ => {
                return Err(Error::Io(format!(
                    "{}: unreadable list of saved files",
                    state.display()
                )))
            }
        }
        .map_err(|e| io(format!("restoring {}", dst.display()), e))?;
    }
    std::fs::remove_dir_all(state).map_err(|e| io(state.display(), e))
}

/// Undoes the diff an interrupted build left applied, if any.
pub fn recover(dir: &Path, root: &Path) -> Result<()> {
    let state = dir.join("applied");
    match std::fs::read_to_string(state.join("list")) {
        Ok(list) => restore_from(root, &state, &list),
        Err(_) => {
            // Saved copies without a list: the diff was never applied.
            let _ = std::fs::remove_dir_all(&state);
            Ok(())
        }
    }
}

impl Applied {
    /// The lines of `path` (as it is now) the diff changed, as applied: offsets included.
    pub fn changed_lines(&self, path: &str) -> Result<Vec<u64>> {
        let Some(&(_, existed)) = self.files.iter().find(|(p, _)| p == path) else {
            return Ok(Vec::new());
        };
        let before = if existed {
            saved(&self.state).join(path)
        } else {
            PathBuf::from("/dev/null")
        };
        let out = run::capture(
            Command::new("diff")
                .args([
                    "-U0",
                    "--label",
                    &format!("a/{path}"),
                    "--label",
                    &format!("b/{path}"),
                ])
                .arg(&before)
                .arg(self.root.join(path)),
            "diffutils",
        )?;
        if out.stdout.is_empty() {
            return Ok(Vec::new());
        }
        Ok(diff::parse(&out.stdout)?
            .into_iter()
            .flat_map(|f| f.changed_lines)
            .collect())
    }

    /// Puts every file back as it was before the diff.
    pub fn restore(&mut self) -> Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        let list = std::fs::read_to_string(self.state.join("list"))
            .map_err(|e| io(self.state.display(), e))?;
        restore_from(&self.root, &self.state, &list)
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            // The next build's recover() retries from the saved list.
            eprintln!("lpatch build: restoring the tree failed: {e}");
        }
    }
}

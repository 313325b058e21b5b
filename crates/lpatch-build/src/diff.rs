// SPDX-License-Identifier: GPL-2.0-only
//! The fix as a unified diff: which files it touches and which lines of each it changes.
//! Parsing is the `unidiff` crate's; paths are stripped of their first component, as
//! `patch -p1` does (git's `a/` and `b/`, or `diff -Nupr`'s directory names).

use crate::error::{Error, Result};

/// One file of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The path inside the kernel tree (`fs/proc/cmdline.c`).
    pub path: String,
    pub kind: Kind,
    /// Lines of the file after the diff that it added or changed, and for removed lines
    /// the line of the after file where they were; ascending, no repeats.
    pub changed_lines: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Modified,
    Added,
    Removed,
}

/// Strips the first path component (`patch -p1`); `/dev/null` stays as it is.
fn strip1(p: &str) -> Option<String> {
    if p == "/dev/null" {
        return None;
    }
    let p = p.trim();
    let (_, rest) = p.split_once('/')?;
    let rest = rest.trim_start_matches('/');
    (!rest.is_empty()).then(|| rest.to_string())
}

/// A path the diff may name: relative, inside the tree, no `..`.
fn safe_path(p: &str) -> bool {
    !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != ".." && c != ".")
}

/// Parses `text`, a unified diff of one or more files.
pub fn parse(text: &str) -> Result<Vec<FileChange>> {
    let mut set = unidiff::PatchSet::new();
    set.parse(text)
        .map_err(|e| Error::Patch(format!("not a unified diff: {e}")))?;
    let mut files = Vec::new();
    for f in set.files() {
        let src = strip1(&f.source_file);
        let dst = strip1(&f.target_file);
        let (path, kind) = match (src, dst) {
            (Some(s), Some(d)) if s == d => (d, Kind::Modified),
            (Some(s), Some(d)) => {
                return Err(Error::Patch(format!(
                    "the diff renames {s} to {d}: lpatch build takes changes of files in place"
                )))
            }
            (None, Some(d)) => (d, Kind::Added),
            (Some(s), None) => (s, Kind::Removed),
            (None, None) => {
                return Err(Error::Patch(
                    "a file of the diff is /dev/null on both sides".into(),
                ))
            }
        };
        if !safe_path(&path) {
            return Err(Error::Patch(format!(
                "the diff names {path}, a path outside the kernel tree"
            )));
        }
        if f.hunks().is_empty() {
            return Err(Error::Patch(format!("the diff of {path} has no hunks")));
        }
        let mut lines = Vec::new();
        for h in f.hunks() {
            // Where the next line of the after file is: removed lines are marked there.
            let mut at = h.target_start as u64;
            for l in h.lines() {
                if l.is_added() {
                    let n = l.target_line_no.map(|n| n as u64).unwrap_or(at);
                    lines.push(n);
                    at = n + 1;
                } else if l.is_removed() {
                    lines.push(at.max(1));
                } else if let Some(n) = l.target_line_no {
                    at = n as u64 + 1;
                }
            }
        }
        lines.sort_unstable();
        lines.dedup();
        if files.iter().any(|x: &FileChange| x.path == path) {
            return Err(Error::Patch(format!("the diff names {path} twice")));
        }
        files.push(FileChange {
            path,
            kind,
            changed_lines: lines,
        });
    }
    if files.is_empty() {
        return Err(Error::Patch(
            "the diff changes no file (is it a unified diff?)".into(),
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c
index 1111111..2222222 100644
--- a/fs/proc/cmdline.c
+++ b/fs/proc/cmdline.c
@@ -6,7 +6,8 @@
 static int cmdline_proc_show(struct seq_file *m, void *v)
 {
-\tseq_puts(m, saved_command_line);
+\tseq_puts(m, \"x\");
+\tseq_puts(m, saved_command_line);
 \tseq_putc(m, '\\n');
 \treturn 0;
 }
diff --git a/include/linux/x.h b/include/linux/x.h
--- a/include/linux/x.h
+++ b/include/linux/x.h
@@ -1,3 +1,2 @@
 a
-b
 c
";

    #[test]
    fn git_diff_gives_paths_and_after_lines() {
        let f = parse(GIT).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].path, "fs/proc/cmdline.c");
        assert_eq!(f[0].kind, Kind::Modified);
        assert_eq!(f[0].changed_lines, vec![8, 9]);
        assert_eq!(f[1].path, "include/linux/x.h");
        // The removed "b" sat where "c" (after line 2) now is.
        assert_eq!(f[1].changed_lines, vec![2]);
    }

    #[test]
    fn diff_nupr_style_and_new_files() {
        let t = "diff -Nupr old/kernel/a.c new/kernel/a.c
--- old/kernel/a.c\t2026-01-01 00:00:00.000000000 +0000
+++ new/kernel/a.c\t2026-01-02 00:00:00.000000000 +0000
@@ -1 +1 @@
-x
+y
--- /dev/null
+++ new/kernel/b.c
@@ -0,0 +1,2 @@
+int b;
+int c;
";
        let f = parse(t).unwrap();
        assert_eq!(f[0].path, "kernel/a.c");
        assert_eq!(f[0].changed_lines, vec![1]);
        assert_eq!(f[1].path, "kernel/b.c");
        assert_eq!(f[1].kind, Kind::Added);
        assert_eq!(f[1].changed_lines, vec![1, 2]);
    }

    #[test]
    fn refuses_empty_renames_and_escapes() {
        assert!(matches!(parse("hello\n"), Err(Error::Patch(_))));
        assert!(matches!(parse(""), Err(Error::Patch(_))));
        let rename = "--- a/x.c\n+++ b/y.c\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(rename)
            .unwrap_err()
            .to_string()
            .contains("renames x.c to y.c"));
        let escape = "--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(parse(escape)
            .unwrap_err()
            .to_string()
            .contains("outside the kernel tree"));
    }
}

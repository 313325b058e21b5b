// SPDX-License-Identifier: GPL-2.0-only
//! Which translation units a change to a header reaches. The prepared tree has no dependency
//! files, so this is a scan of the source: the functions and macros of the header the diff
//! changes, then every header function or macro whose body names one of them (to a fixed
//! point), then every `.c` file that names any of those. The scan over-approximates (a unit
//! that names a function without using its code is compiled for nothing: the comparison
//! then finds no change there); it would miss a unit that reaches the code only through a
//! name made by token pasting. A change to a type, a declaration or a variable in a header is
//! refused: it changes data layout or linkage, not code a live patch can replace.

use crate::error::{io, Error, Result};
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// At most this many names in the closure, and this many units to compile: a change that
/// reaches more is refused as too wide to build one file at a time.
pub const MAX_NAMES: usize = 64;
pub const MAX_UNITS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefKind {
    Function,
    Macro,
    /// struct, union, enum or a typedef'd body.
    Type,
}

/// A definition in a C file, by its (1-based, inclusive) line range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Def {
    name: String,
    kind: DefKind,
    first: u64,
    last: u64,
}

/// Blanks out comments and string and character literals, keeping line breaks, so braces
/// and names inside them do not count.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..]
                .find("*/")
                .map(|p| i + 2 + p + 2)
                .unwrap_or(b.len());
            out.extend(
                b[i..end]
                    .iter()
                    .map(|&x| if x == b'\n' { b'\n' } else { b' ' }),
            );
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'"' || c == b'\'' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != c && b[i] != b'\n' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
            }
            if i < b.len() && b[i] == c {
                out.push(b' ');
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn ident_re() -> Regex {
    Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("a valid pattern")
}

/// The function, macro and type definitions of a C file. A rough reader of the shapes the
/// kernel's headers use: `#define NAME` with its continuation lines; at brace depth 0, a
/// head up to `{` with a `(` in it is a function named by the identifier before its first
/// `(`, without one it is a type; a head ending in `;` is a declaration.
fn definitions(text: &str) -> Vec<Def> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let ident = ident_re();
    let mut defs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('#') {
            let first = i;
            while lines[i].trim_end().ends_with('\\') && i + 1 < lines.len() {
                i += 1;
            }
            let rest = rest.trim_start();
            if let Some(d) = rest.strip_prefix("define") {
                if let Some(m) = ident.find(d) {
                    defs.push(Def {
                        name: m.as_str().to_string(),
                        kind: DefKind::Macro,
                        first: first as u64 + 1,
                        last: i as u64 + 1,
                    });
                }
            }
            i += 1;
            continue;
        }
        if t.is_empty() {
            i += 1;
            continue;
        }
        // A head at depth 0: up to '{' or ';'.
        let first = i;
        let mut head = String::new();
        let mut j = i;
        let mut open = None;
        'head: while j < lines.len() {
            if lines[j].trim_start().starts_with('#') {
                break;
            }
            for (k, ch) in lines[j].char_indices() {
                match ch {
                    '{' => {
                        head.push_str(&lines[j][..k]);
                        open = Some(j);
                        break 'head;
                    }
                    ';' => break 'head,
                    _ => {}
                }
            }
            head.push_str(lines[j]);
            head.push('\n');
            j += 1;
        }
        let Some(open_line) = open else {
            i = j.max(i) + 1;
            continue;
        };
        // The body: to the matching '}'.
        let mut depth = 0i32;
        let mut end = open_line;
        'body: for (n, l) in lines.iter().enumerate().skip(open_line) {
            let from = if n == open_line {
                l.find('{').unwrap_or(0)
            } else {
                0
            };
            for ch in l[from..].chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = n;
                            break 'body;
                        }
                    }
                    _ => {}
                }
            }
            end = n;
        }
        let (kind, name) = match head.find('(') {
            Some(p) => (
                DefKind::Function,
                ident
                    .find_iter(&head[..p])
                    .last()
                    .map(|m| m.as_str().to_string()),
            ),
            None => (
                DefKind::Type,
                ident
                    .find_iter(&head)
                    .last()
                    .map(|m| m.as_str().to_string()),
            ),
        };
        if let Some(name) = name {
            defs.push(Def {
                name,
                kind,
                first: first as u64 + 1,
                last: end as u64 + 1,
            });
        }
        i = end + 1;
    }
    defs
}

/// Whether line `n` of `text` holds only blanks or comment.
fn blank_or_comment(code: &[&str], n: u64) -> bool {
    code.get(n as usize - 1)
        .map(|l| l.trim().is_empty())
        .unwrap_or(true)
}

/// The functions and macros of `header` (its text after the diff) that the changed lines
/// fall in; a change outside them (a type, a declaration) is refused.
pub fn changed_names(path: &str, text: &str, lines: &[u64]) -> Result<BTreeSet<String>> {
    let defs = definitions(text);
    let code = code_only(text);
    let code: Vec<&str> = code.lines().collect();
    let mut names = BTreeSet::new();
    for &l in lines {
        match defs.iter().find(|d| d.first <= l && l <= d.last) {
            Some(d) if d.kind != DefKind::Type => {
                names.insert(d.name.clone());
            }
            Some(d) => {
                return Err(Error::Patch(format!(
                    "{path}:{l} changes the type {}: a live patch replaces code, it cannot change a data layout",
                    d.name
                )))
            }
            None if blank_or_comment(&code, l) => {}
            None => {
                return Err(Error::Patch(format!(
                    "{path}:{l} changes a declaration outside any function or macro: a live patch replaces code only"
                )))
            }
        }
    }
    Ok(names)
}

fn words_re(names: &BTreeSet<String>) -> Regex {
    let alt: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    Regex::new(&format!(r"\b(?:{})\b", alt.join("|"))).expect("escaped names make a valid pattern")
}

/// Every `.c` or `.h` file of the tree (outside tools/, scripts/, Documentation/, samples/
/// and usr/, which are not kernel code), relative to the root.
fn sources(root: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    const SKIP: [&str; 6] = [
        "tools",
        "scripts",
        "Documentation",
        "samples",
        "usr",
        ".git",
    ];
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in std::fs::read_dir(&dir)
            .map_err(|e| io(dir.display(), e))?
            .flatten()
        {
            let name = e.file_name();
            let r = rel.join(&name);
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !(rel.as_os_str().is_empty() && SKIP.iter().any(|s| name == *s)) {
                    stack.push(r);
                }
            } else if ft.is_file() && r.extension().is_some_and(|x| x == ext) {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files among `files` whose text names any of `names`, read on two threads.
fn naming(root: &Path, files: &[PathBuf], names: &BTreeSet<String>) -> Vec<PathBuf> {
    let re = words_re(names);
    let half = files.len().div_ceil(2);
    std::thread::scope(|s| {
        let parts: Vec<_> = files
            .chunks(half.max(1))
            .map(|chunk| {
                let re = &re;
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter(|f| {
                            std::fs::read(root.join(f))
                                .is_ok_and(|b| re.is_match(&String::from_utf8_lossy(&b)))
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

/// The names a change reaches: `changed`, then every header function or macro whose body
/// names one already in the set, to a fixed point.
pub fn closure(root: &Path, changed: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let headers = sources(root, "h")?;
    let mut all = changed.clone();
    let mut fresh = changed.clone();
    while !fresh.is_empty() {
        let re = words_re(&fresh);
        let mut next = BTreeSet::new();
        for h in naming(root, &headers, &fresh) {
            let text = std::fs::read_to_string(root.join(&h)).unwrap_or_default();
            let code = code_only(&text);
            let code_lines: Vec<&str> = code.lines().collect();
            for d in definitions(&text) {
                if d.kind == DefKind::Type || all.contains(&d.name) {
                    continue;
                }
                let body = code_lines
                    [(d.first - 1) as usize..(d.last as usize).min(code_lines.len())]
                    .join("\n");
                if re.is_match(&body) {
                    next.insert(d.name);
                }
            }
        }
        all.extend(next.iter().cloned());
        if all.len() > MAX_NAMES {
            return Err(Error::Patch(format!(
                "the header change reaches more than {MAX_NAMES} functions and macros through other headers (from {}): too wide to build unit by unit",
                changed.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        fresh = next;
    }
    Ok(all)
}

/// The `.c` files naming any of `names`.
pub fn units_naming(root: &Path, names: &BTreeSet<String>) -> Result<Vec<String>> {
    let files = sources(root, "c")?;
    Ok(naming(root, &files, names)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = r#"/* SPDX */
#ifndef X_H
#define X_H
#include <linux/types.h>

struct seq_file {
	char *buf;	/* { not a brace */
	size_t size;
};

#define SEQ_MAX(a, b) \
	((a) > (b) ? (a) : (b))

static inline bool seq_has_overflowed(struct seq_file *m)
{
	return m->size == 0; /* "}" */
}

extern int seq_open(struct file *, const struct seq_operations *);

static __always_inline
int seq_twice(struct seq_file *m)
{
	if (m) {
		return seq_has_overflowed(m) ? 2 : 0;
	}
	return 1;
}
#endif
"#;

    #[test]
    fn definitions_of_a_header() {
        let d = definitions(H);
        let got: Vec<(&str, DefKind, u64, u64)> = d
            .iter()
            .map(|d| (d.name.as_str(), d.kind, d.first, d.last))
            .collect();
        assert_eq!(
            got,
            vec![
                ("X_H", DefKind::Macro, 3, 3),
                ("seq_file", DefKind::Type, 6, 9),
                ("SEQ_MAX", DefKind::Macro, 11, 12),
                ("seq_has_overflowed", DefKind::Function, 14, 17),
                ("seq_twice", DefKind::Function, 21, 28),
            ]
        );
    }

    #[test]
    fn changed_lines_to_names_and_refusals() {
        let n = changed_names("x.h", H, &[16, 12, 26]).unwrap();
        assert_eq!(
            n.into_iter().collect::<Vec<_>>(),
            vec!["SEQ_MAX", "seq_has_overflowed", "seq_twice"]
        );
        assert!(
            changed_names("x.h", H, &[1, 5]).unwrap().is_empty(),
            "comment and blank lines change nothing"
        );
        let e = changed_names("x.h", H, &[8]).unwrap_err().to_string();
        assert!(e.contains("x.h:8 changes the type seq_file"), "{e}");
        let e = changed_names("x.h", H, &[19]).unwrap_err().to_string();
        assert!(e.contains("x.h:19 changes a declaration"), "{e}");
    }

    #[test]
    fn comments_and_strings_are_blanked_lines_kept() {
        let c = code_only("a /* { */ b\n\"}\" '{' // }\nc");
        assert_eq!(c.lines().count(), 3);
        assert!(!c.contains('{') && !c.contains('}'));
        assert!(c.starts_with("a ") && c.ends_with('c'));
    }
}

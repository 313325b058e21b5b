// SPDX-License-Identifier: GPL-2.0-only
//! What a live patch cannot carry, found in the comparison of a unit's two builds: each a
//! line naming the file, the function or variable, and why. The build stops on any of them,
//! `--dry-run` included, after every unit has been compared, so one run names them all.

use crate::compare::ObjectDiff;
use std::collections::BTreeMap;

/// The refusals the comparison of `source`'s two objects gives.
pub fn of_diff(source: &str, d: &ObjectDiff) -> Vec<String> {
    let mut out = Vec::new();
    for v in &d.changed_data {
        out.push(format!(
            "{source}: {v}: the diff changes the initial value of this existing variable; the running kernel's copy would keep the old one (a live patch replaces code, not data in place): set it from code, or use a new variable"
        ));
    }
    for (f, sec) in &d.init_exit {
        out.push(format!(
            "{source}: {f}: the diff changes {sec} code (__init or __exit), which the running kernel has already run and freed, or never runs while it is up: a live patch cannot replace it"
        ));
    }
    for f in &d.untraced {
        out.push(format!(
            "{source}: {f}: the running kernel's {f} makes no __fentry__ call (notrace, or built without ftrace): ftrace cannot redirect it, so the core cannot replace it"
        ));
    }
    for (sec, f) in &d.unknown_sections {
        out.push(format!(
            "{source}: {f}: section {sec} holds entries about this function or data it uses, and lpatch build does not know how to carry that section in a patch module"
        ));
    }
    out
}

/// The symbol versions genksyms recorded in a unit's `.cmd` file (`#SYMVER name 0xcrc`,
/// written by kbuild with CONFIG_MODVERSIONS for a unit that exports symbols).
pub fn symvers(cmd: &str) -> BTreeMap<String, String> {
    cmd.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#SYMVER ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// Exported symbols of `source` whose CRC the diff changes.
pub fn of_crcs(source: &str, before: &str, after: &str) -> Vec<String> {
    let (b, a) = (symvers(before), symvers(after));
    b.iter()
        .filter_map(|(sym, old)| {
            let new = a.get(sym)?;
            (new != old).then(|| {
                format!(
                    "{source}: {sym}: the diff changes this exported symbol's CRC ({old} -> {new}: a type in its prototype, or one those reach, changed): modules built against the running kernel would no longer match it"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symver_lines_and_changed_crcs() {
        let before = "cmd_x := gcc ...\n#SYMVER seq_open 0x1a2b3c4d\n#SYMVER seq_read 0x00000001\n";
        let after = "cmd_x := gcc ...\n#SYMVER seq_open 0x1a2b3c4d\n#SYMVER seq_read 0x00000002\n";
        assert_eq!(symvers(before).len(), 2);
        let r = of_crcs("fs/seq_file.c", before, after);
        assert_eq!(r.len(), 1);
        assert!(r[0].starts_with("fs/seq_file.c: seq_read: the diff changes this exported symbol's CRC (0x00000001 -> 0x00000002"), "{}", r[0]);
        assert!(of_crcs("x.c", before, before).is_empty());
        assert!(of_crcs("x.c", "", after).is_empty());
    }

    #[test]
    fn every_fact_gives_a_line_naming_file_and_function() {
        let d = ObjectDiff {
            changed_data: vec!["limit".into()],
            init_exit: vec![("setup".into(), ".init.text".into())],
            untraced: vec!["fast".into()],
            unknown_sections: vec![("__weird".into(), "f".into())],
            ..ObjectDiff::default()
        };
        let r = of_diff("a/b.c", &d);
        assert_eq!(r.len(), 4);
        assert!(r[0].starts_with("a/b.c: limit: the diff changes the initial value"));
        assert!(r[1].starts_with("a/b.c: setup: the diff changes .init.text code"));
        assert!(r[2].starts_with("a/b.c: fast: the running kernel's fast makes no __fentry__ call"));
        assert!(r[3].starts_with("a/b.c: f: section __weird"));
    }
}

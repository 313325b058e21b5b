// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch syms NAME [OBJECT]`: the candidates for a symbol in the running kernel, from
//! /proc/kallsyms, with what a patch needs to name one — its object (vmlinux or a module),
//! its sympos (1-based among same-named symbols of that object, in kallsyms order, as the
//! core and the kernel's livepatch count them), its type and address.

use crate::app::{Ctx, Exit, Failure, Outcome};
use serde::Serialize;
use std::fmt::Write as _;

/// One symbol of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub object: String,
    pub name: String,
    /// 1-based among the symbols of this name in this object.
    pub sympos: usize,
    /// How many symbols of this name the object has (1: sympos 0 names it too).
    pub count: usize,
    /// kallsyms' type letter: t/T text, d/D data, b/B bss, r/R read-only data. Lower case:
    /// local — a static in vmlinux; in a module, any symbol the module does not export.
    pub kind: char,
    /// 0 when kallsyms hides addresses (not root, or kptr_restrict).
    pub address: u64,
    /// How a relocation names it: `.klp.sym.<object>.<name>,<sympos>` (0 when unique).
    pub klp_name: String,
}

/// The symbols named `name` in kallsyms text `text`, in `object` if given, with their
/// positions. Lines that do not parse are skipped.
pub fn candidates(text: &str, name: &str, object: Option<&str>) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(kind), Some(sym)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if sym != name {
            continue;
        }
        let obj = f
            .next()
            .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
            .unwrap_or("vmlinux");
        if object.is_some_and(|o| o != obj) {
            continue;
        }
        let (Ok(address), Some(kind)) = (u64::from_str_radix(addr, 16), kind.chars().next()) else {
            continue;
        };
        let sympos = found.iter().filter(|c| c.object == obj).count() + 1;
        found.push(Candidate {
            object: obj.to_string(),
            name: name.to_string(),
            sympos,
            count: 0,
            kind,
            address,
            klp_name: String::new(),
        });
    }
    let counts: Vec<usize> = found
        .iter()
        .map(|c| found.iter().filter(|d| d.object == c.object).count())
        .collect();
    for (c, n) in found.iter_mut().zip(counts) {
        c.count = n;
        let pos = if n == 1 { 0 } else { c.sympos };
        c.klp_name = crate::klp_convert::klp_sym_name(&c.object, &c.name, pos as u64);
    }
    found
}

fn kind_words(kind: char) -> &'static str {
    match kind.to_ascii_lowercase() {
        't' => "function",
        'd' => "data",
        'b' => "bss",
        'r' => "read-only data",
        'w' | 'v' => "weak",
        _ => "other",
    }
}

/// The text table.
pub fn render(found: &[Candidate]) -> String {
    let mut s = String::new();
    let hidden = found.iter().all(|c| c.address == 0);
    for c in found {
        let scope = if c.kind.is_ascii_lowercase() {
            "local "
        } else {
            ""
        };
        let addr = if hidden {
            "-".to_string()
        } else {
            format!("{:#x}", c.address)
        };
        let _ = writeln!(
            s,
            "{:<12} {},{}  {}{} ({})  {}  {}",
            c.object,
            c.name,
            c.sympos,
            scope,
            kind_words(c.kind),
            c.kind,
            addr,
            c.klp_name
        );
    }
    for obj in objects_with_several(found) {
        let _ = writeln!(
            s,
            "{} has several symbols named {}: name one by its sympos",
            obj, found[0].name
        );
    }
    if hidden && !found.is_empty() {
        s.push_str("addresses are hidden by the kernel (run as root to see them)\n");
    }
    s
}

fn objects_with_several(found: &[Candidate]) -> Vec<&str> {
    let mut v: Vec<&str> = found
        .iter()
        .filter(|c| c.count > 1 && c.sympos == 1)
        .map(|c| c.object.as_str())
        .collect();
    v.dedup();
    v
}

pub fn syms(ctx: &mut Ctx, name: &str, object: Option<&str>, json: bool) -> Outcome {
    let path = ctx.proc_root.join("kallsyms");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::new(
            Exit::NotFound,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let found = candidates(&text, name, object);
    if found.is_empty() {
        let place = object.map_or("the running kernel".to_string(), |o| {
            if o == "vmlinux" {
                "vmlinux".to_string()
            } else {
                format!("module {o} (is it loaded?)")
            }
        });
        return Err(Failure::new(
            Exit::NotFound,
            format!("no symbol named {name} in {place}"),
        ));
    }
    if json {
        ctx.json(&found);
    } else {
        ctx.say(&render(&found));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _text
ffffffff81234560 t dup_helper
ffffffff81234600 T cmdline_proc_show
ffffffff81300000 t dup_helper
ffffffff81400000 d dup_helper
ffffffff81500000 b counter
ffffffffc0200000 t dup_helper\t[lpt_target]
ffffffffc0200100 t lpt_target_message\t[lpt_target]
garbage
";

    #[test]
    fn positions_count_per_object_in_kallsyms_order() {
        let c = candidates(KALLSYMS, "dup_helper", None);
        let got: Vec<(&str, usize, usize, char)> = c
            .iter()
            .map(|c| (c.object.as_str(), c.sympos, c.count, c.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("vmlinux", 1, 3, 't'),
                ("vmlinux", 2, 3, 't'),
                ("vmlinux", 3, 3, 'd'),
                ("lpt_target", 1, 1, 't')
            ]
        );
        assert_eq!(c[1].klp_name, ".klp.sym.vmlinux.dup_helper,2");
        assert_eq!(c[3].klp_name, ".klp.sym.lpt_target.dup_helper,0");
        assert_eq!(c[1].address, 0xffffffff81300000);
    }

    #[test]
    fn object_filter_and_unique_names() {
        let c = candidates(KALLSYMS, "dup_helper", Some("lpt_target"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].sympos, 1);
        let c = candidates(KALLSYMS, "cmdline_proc_show", Some("vmlinux"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].klp_name, ".klp.sym.vmlinux.cmdline_proc_show,0");
        assert!(candidates(KALLSYMS, "cmdline_proc_show", Some("lpt_target")).is_empty());
        assert!(candidates(KALLSYMS, "no_such", None).is_empty());
    }

    #[test]
    fn the_table_says_local_ambiguous_and_hidden_addresses() {
        let t = render(&candidates(KALLSYMS, "dup_helper", None));
        assert!(t.contains("vmlinux      dup_helper,2  local function (t)  0xffffffff81300000  .klp.sym.vmlinux.dup_helper,2"), "{t}");
        assert!(t.contains("local data (d)"), "{t}");
        assert!(
            t.contains("vmlinux has several symbols named dup_helper: name one by its sympos"),
            "{t}"
        );
        assert!(!t.contains("lpt_target has several"), "{t}");
        let hidden: String = KALLSYMS
            .lines()
            .map(|l| format!("{}\n", l.replacen(|c: char| c.is_ascii_hexdigit(), "0", 16)))
            .collect();
        let t = render(&candidates(&hidden, "counter", None));
        assert!(
            t.contains("local bss (b)  -  .klp.sym.vmlinux.counter,0"),
            "{t}"
        );
        assert!(t.contains("addresses are hidden"), "{t}");
    }
}

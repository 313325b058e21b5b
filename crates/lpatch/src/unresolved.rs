// SPDX-License-Identifier: GPL-2.0-only
//! Why a patch module's load failed over a symbol, in words: the kernel log lines of the
//! loader (an unknown symbol), of the in-kernel livepatch code resolving a module's vmlinux
//! relocations as it loads, and of the lpatch core resolving a module's relocations, turned
//! into what to do about them.

/// The symbol named between the first pair of `'` in `s`.
fn quoted(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once('\'')?;
    rest.split_once('\'').map(|(name, _)| name)
}

/// "in object 'O'" of klp's lines; vmlinux when it printed `(null)` (its name for vmlinux).
fn object_of(s: &str) -> &str {
    s.split_once("in object '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(o, _)| o)
        .filter(|o| *o != "(null)")
        .unwrap_or("vmlinux")
}

/// One explanation per kernel log line about an unresolved symbol of this load (`module`
/// is the module being loaded).
pub fn explain(lines: &[String], module: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("livepatch: ") {
            if rest.starts_with("symbol '") && rest.ends_with("not found in symbol table") {
                if let Some(sym) = quoted(rest) {
                    out.push(format!(
                        "the kernel has no symbol {sym}: the module refers to it through a relocation to vmlinux (LPATCH_SYM), so it was built for another kernel or names it wrongly (lpatch syms {sym} lists what this kernel has)"
                    ));
                }
            } else if rest.starts_with("unresolvable ambiguity for symbol '") {
                if let Some(sym) = quoted(rest) {
                    let obj = object_of(rest);
                    out.push(format!(
                        "{sym} is not unique in {obj} and the module's relocation gives no sympos: pick one with lpatch syms {sym} {obj} and name it in LPATCH_SYM"
                    ));
                }
            } else if rest.starts_with("symbol position ") {
                if let (Some(sym), Some(pos)) = (quoted(rest), rest.split_whitespace().nth(2)) {
                    let obj = object_of(rest);
                    out.push(format!(
                        "{obj} has fewer than {pos} symbols named {sym}: the sympos the module's relocation gives does not exist here (lpatch syms {sym} {obj})"
                    ));
                }
            } else if rest.contains("is not marked as a livepatch symbol")
                || rest.contains("has an incorrectly formatted name")
                || rest.starts_with("invalid access to vmlinux symbol")
            {
                out.push(
                    "the module's livepatch relocations are malformed: rebuild it and convert it with lpatch klp-convert".into(),
                );
            }
        } else if let Some(rest) = l
            .strip_prefix(module)
            .and_then(|r| r.strip_prefix(": Unknown symbol "))
        {
            let sym = rest.split_whitespace().next().unwrap_or(rest);
            out.push(format!(
                "{sym} is exported by neither the kernel nor a loaded module: a module's export needs that module loaded first; a static or unexported symbol needs LPATCH_SYM and lpatch klp-convert (see lpatch klp-convert --help)"
            ));
        } else if let Some(rest) = l.strip_prefix("lpatch: patch ") {
            let Some((_, what)) = rest.split_once(": relocation symbol ") else {
                if rest.contains(": relocation section ") {
                    out.push(
                        "the module's livepatch relocations are malformed (the line above says how): rebuild it and convert it with lpatch klp-convert".into(),
                    );
                }
                continue;
            };
            // "<sym> (sympos <n>) not found in <obj>[: ...]" or "... is ambiguous in <obj>: ..."
            let mut words = what.split_whitespace();
            let (Some(sym), Some(_), Some(pos)) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let pos = pos.trim_end_matches(')');
            let obj = what
                .split_once(" in ")
                .map(|(_, o)| o.split([':', ' ']).next().unwrap_or(o))
                .unwrap_or("?");
            if what.contains("is ambiguous") {
                out.push(format!(
                    "{sym} is not unique in module {obj} and the module's relocation gives no sympos: pick one with lpatch syms {sym} {obj} and name it in LPATCH_SYM"
                ));
            } else if what.contains("not found") {
                out.push(format!(
                    "module {obj} has no symbol {sym} at sympos {pos}: the patch was built for another version of {obj}, or names it wrongly (lpatch syms {sym} {obj})"
                ));
            } else if what.contains("__init") {
                out.push(format!(
                    "{sym} is __init code or data of module {obj}, gone once its init has run: a patch cannot refer to it"
                ));
            }
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> String {
        let got = explain(&[line.to_string()], "lp_x");
        assert_eq!(got.len(), 1, "{line}: {got:?}");
        got.into_iter().next().unwrap()
    }

    #[test]
    fn the_loaders_and_klps_lines() {
        let e = one("livepatch: symbol 'lpt_nope' not found in symbol table");
        assert!(
            e.contains("no symbol lpt_nope") && e.contains("lpatch syms lpt_nope"),
            "{e}"
        );
        let e = one("livepatch: unresolvable ambiguity for symbol 'state' in object '(null)'");
        assert!(
            e.contains("state is not unique in vmlinux") && e.contains("lpatch syms state vmlinux"),
            "{e}"
        );
        let e =
            one("livepatch: symbol position 3 for symbol 'state' in object 'vmlinux' not found");
        assert!(e.contains("fewer than 3 symbols named state"), "{e}");
        let e = one("livepatch: symbol .klp.sym.vmlinux.x is not marked as a livepatch symbol");
        assert!(e.contains("malformed"), "{e}");
        let e = one("lp_x: Unknown symbol proc_do_rointvec (err -2)");
        assert!(
            e.starts_with("proc_do_rointvec is exported by neither") && e.contains("LPATCH_SYM"),
            "{e}"
        );
    }

    #[test]
    fn the_cores_lines() {
        let e = one(
            "lpatch: patch lp_x: relocation symbol lpt_gone (sympos 0) not found in lpt_target",
        );
        assert!(
            e.contains("module lpt_target has no symbol lpt_gone at sympos 0"),
            "{e}"
        );
        assert!(e.contains("lpatch syms lpt_gone lpt_target"), "{e}");
        let e = one("lpatch: patch lp_x: relocation symbol lpt_twin (sympos 0) is ambiguous in lpt_target: 2 symbols have that name; give its sympos");
        assert!(
            e.contains("lpt_twin is not unique in module lpt_target"),
            "{e}"
        );
        let e = one("lpatch: patch lp_x: relocation symbol s (sympos 4) not found in m: it has only 2 symbol(s) of that name");
        assert!(e.contains("module m has no symbol s at sympos 4"), "{e}");
        let e = one("lpatch: patch lp_x: relocation section .klp.rela.m..text: entry 0: unknown relocation type 42");
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn other_lines_explain_nothing() {
        let lines = [
            "lpatch: registered patch lp_x: 1 function in 1 object".to_string(),
            "other: Unknown symbol x (err -2)".to_string(),
            "livepatch: enabling patch 'p'".to_string(),
        ];
        assert!(explain(&lines, "lp_x").is_empty());
    }
}

// SPDX-License-Identifier: GPL-2.0-only
//! Text output.

use crate::app::Snapshot;
use crate::ftrace_users::{self, Site};
use crate::procmods::Module;
use crate::sysfs::{CoreKind, Function, Object, Patch};
use crate::taint::Taint;
use std::fmt::Write;
use std::path::Path;

pub fn tristate(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "1",
        Some(false) => "0",
        None => "nothing readable",
    }
}

pub fn enabled_word(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "in an unknown state (enabled unreadable)",
    }
}

/// Kernel log lines gathered during an operation, as detail lines.
pub fn log_block(lines: &[String], error: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    if !lines.is_empty() {
        v.push("kernel log:".to_string());
        v.extend(lines.iter().map(|l| format!("  {l}")));
    }
    if let Some(e) = error {
        v.push(format!("(no kernel log lines: {e})"));
    }
    v
}

fn patches(n: usize) -> String {
    if n == 1 {
        "1 patch".to_string()
    } else {
        format!("{n} patches")
    }
}

pub fn status(snap: &Snapshot, sys: &Path, taint: &Result<Taint, String>) -> String {
    let l = &snap.layout;
    let mut s = String::new();
    if l.core_loaded {
        let _ = writeln!(
            s,
            "lpatch core:       loaded, version {}",
            l.core_version.as_deref().unwrap_or("unknown")
        );
    } else {
        let _ = writeln!(
            s,
            "lpatch core:       not loaded (no {})",
            sys.join("module/lpatch").display()
        );
    }
    match &l.ours {
        Some(root) => {
            let enabled = snap.ours.iter().filter(|p| p.enabled == Some(true)).count();
            let _ = writeln!(
                s,
                "sysfs root:        {} ({}, {enabled} enabled)",
                root.display(),
                patches(snap.ours.len())
            );
        }
        None => {
            let _ = writeln!(s, "sysfs root:        none");
        }
    }
    match &l.kernel_livepatch {
        Some(k) => {
            let _ = writeln!(
                s,
                "kernel livepatch:  present, {} ({}; the kernel's own core, separate from lpatch)",
                k.display(),
                patches(snap.kernel.len())
            );
        }
        None => {
            let _ = writeln!(s, "kernel livepatch:  absent");
        }
    }
    match taint {
        Ok(t) if t.flags.is_empty() => {
            let _ = writeln!(s, "taint:             0 (G: not tainted)");
        }
        Ok(t) => {
            let _ = writeln!(s, "taint:             {} ({})", t.value, t.letters);
            for f in &t.flags {
                let _ = writeln!(s, "  {}", f.line());
            }
        }
        Err(e) => {
            let _ = writeln!(s, "taint:             unknown ({e})");
        }
    }
    s
}

fn object_note(o: &Object, kind: CoreKind) -> String {
    let mut notes = Vec::new();
    if o.name != "vmlinux" {
        match o.loaded {
            Some(true) => notes.push("module loaded"),
            Some(false) if kind == CoreKind::Lpatch => {
                notes.push("module not loaded; patched when it loads")
            }
            Some(false) => notes.push("module not loaded"),
            None => {}
        }
    }
    match o.patched {
        Some(true) => notes.push("patched"),
        Some(false) => notes.push("not patched"),
        None => {}
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    }
}

fn addr_hint(err: &str) -> String {
    if err.contains("EACCES") || err.contains("EPERM") {
        format!("{err}; only root may read addresses")
    } else {
        err.to_string()
    }
}

fn function_line(f: &Function, kind: CoreKind) -> String {
    let mut s = f.dir.clone();
    if kind == CoreKind::Lpatch {
        if let Some(old) = &f.old_addr {
            let _ = write!(s, "  old {old}");
            if f.target_unresolved() {
                s.push_str(" (target not loaded)");
            }
        }
        if let Some(new) = &f.new_addr {
            let _ = write!(s, "  new {new}");
        }
        if let Some(e) = &f.addr_error {
            let _ = write!(s, "  ({})", addr_hint(e));
        }
    }
    s
}

fn patch_header(p: &Patch) -> String {
    let mark = match p.core {
        CoreKind::Lpatch => "",
        CoreKind::KernelLivepatch => " (kernel livepatch)",
    };
    format!("{}{mark}: {}", p.name, enabled_word(p.enabled))
}

pub fn list(patches: &[&Patch]) -> String {
    if patches.is_empty() {
        return "no patches\n".to_string();
    }
    let mut s = String::new();
    for p in patches {
        let _ = writeln!(s, "{}", patch_header(p));
        if p.objects.is_empty() {
            let _ = writeln!(s, "  (no objects)");
        }
        for o in &p.objects {
            let _ = writeln!(s, "  {}{}", o.name, object_note(o, p.core));
            for f in &o.functions {
                let _ = writeln!(s, "    {}", function_line(f, p.core));
            }
        }
    }
    s
}

pub fn module_summary(m: &Module) -> String {
    let mut parts = vec![if m.state.is_empty() {
        "state unknown".to_string()
    } else {
        m.state.clone()
    }];
    parts.push(match m.refcount {
        Some(n) => format!("refcount {n}"),
        None => "refcount unknown".to_string(),
    });
    parts.push(if m.used_by.is_empty() {
        "used by no module".to_string()
    } else {
        format!("used by {}", m.used_by.join(", "))
    });
    if let Some(t) = &m.taints {
        parts.push(format!("taints {t}"));
    }
    parts.join(", ")
}

/// `ftrace`: tracefs's enabled_functions, or why it could not be read.
pub fn info(
    p: &Patch,
    module: Option<&Module>,
    modules_error: Option<&str>,
    ftrace: &Result<Vec<Site>, String>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "patch:       {}", p.name);
    let _ = writeln!(
        s,
        "core:        {}",
        match p.core {
            CoreKind::Lpatch => "lpatch",
            CoreKind::KernelLivepatch =>
                "the kernel's own livepatch core (kernel livepatch); lpatch only shows it",
        }
    );
    let _ = writeln!(s, "directory:   {}", p.path);
    let _ = writeln!(s, "enabled:     {}", enabled_word(p.enabled));
    if let Some(t) = p.transition {
        let _ = writeln!(s, "transition:  {}", if t { "in progress" } else { "none" });
    }
    if let Some(r) = p.replace {
        let _ = writeln!(
            s,
            "replace:     {}",
            if r { "yes (atomic replace)" } else { "no" }
        );
    }
    match (module, modules_error) {
        (Some(m), _) => {
            let _ = writeln!(s, "module:      {}: {}", m.name, module_summary(m));
        }
        (None, Some(e)) => {
            let _ = writeln!(s, "module:      unknown ({e})");
        }
        (None, None) => {
            let _ = writeln!(s, "module:      not in /proc/modules");
        }
    }
    let nfuncs: usize = p.objects.iter().map(|o| o.functions.len()).sum();
    let _ = writeln!(
        s,
        "objects:     {} object(s), {nfuncs} function(s)",
        p.objects.len()
    );
    for o in &p.objects {
        let _ = writeln!(s, "  {}{}", o.name, object_note(o, p.core));
        for f in &o.functions {
            match f.sympos {
                Some(pos) => {
                    let _ = writeln!(s, "    {} (sympos {pos})", f.name);
                }
                None => {
                    let _ = writeln!(s, "    {}", f.dir);
                }
            }
            if let Ok(sites) = ftrace {
                let _ = writeln!(
                    s,
                    "      ftrace    {}",
                    ftrace_line(&ftrace_users::of_function(sites, &f.name, &o.name))
                );
            }
            if p.core == CoreKind::Lpatch {
                if let Some(old) = &f.old_addr {
                    let note = if f.target_unresolved() {
                        " (target not loaded)"
                    } else {
                        ""
                    };
                    let _ = writeln!(s, "      old_addr  {old}{note}");
                }
                if let Some(new) = &f.new_addr {
                    let _ = writeln!(s, "      new_addr  {new}");
                }
                if let Some(e) = &f.addr_error {
                    let _ = writeln!(s, "      addresses: {}", addr_hint(e));
                }
            }
        }
    }
    match ftrace {
        Ok(_) if nfuncs > 0 => s.push_str(FTRACE_LEGEND),
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(
                s,
                "ftrace:      who else traces these functions is unknown: {e}"
            );
        }
    }
    if p.core == CoreKind::KernelLivepatch {
        let _ = writeln!(s, "To change it, use {} directly.", p.path);
    }
    s
}

const FTRACE_LEGEND: &str = "\
ftrace lines: how many ftrace users trace the function (lpatch's own included) and the
kernel's flags (tracefs enabled_functions): R registers saved, I the ip modified (a live
patch, lpatch's or the kernel's, or a kprobe with a post handler), D a direct call (a BPF
trampoline, or register_ftrace_direct).
";

/// What ftrace says of one function (its `ftrace_users::of_function` sites): its users and
/// flags, the target of a direct call.
pub(crate) fn ftrace_line(found: &[&Site]) -> String {
    if found.is_empty() {
        return "no ftrace user".to_string();
    }
    let parts: Vec<String> = found
        .iter()
        .map(|site| {
            let flags = site.flags();
            let mut t = format!(
                "{} user{}{}",
                site.ops,
                if site.ops == 1 { "" } else { "s" },
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" ({flags})")
                }
            );
            for d in site.detail.iter().filter(|d| d.starts_with("direct-->")) {
                let _ = write!(t, ", {d}");
            }
            t
        })
        .collect();
    let mut line = parts.join("; ");
    if found.len() > 1 {
        let _ = write!(
            line,
            " ({} functions carry this name; ftrace does not tell them apart)",
            found.len()
        );
    }
    line
}

/// "  vmlinux: f1, f2" lines: what a freshly loaded patch patches.
pub fn patched_summary(p: &Patch) -> String {
    let mut s = String::new();
    if p.objects.is_empty() {
        s.push_str("  (it patches no object)\n");
    }
    for o in &p.objects {
        let funcs: Vec<&str> = o.functions.iter().map(|f| f.dir.as_str()).collect();
        let _ = writeln!(
            s,
            "  {}{}: {}",
            o.name,
            object_note(o, p.core),
            funcs.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(patches(0), "0 patches");
        assert_eq!(patches(1), "1 patch");
        assert_eq!(patches(2), "2 patches");
    }

    #[test]
    fn log_blocks() {
        assert!(log_block(&[], None).is_empty());
        let v = log_block(&["lpatch: x".into()], Some("cannot read"));
        assert_eq!(
            v,
            vec![
                "kernel log:",
                "  lpatch: x",
                "(no kernel log lines: cannot read)"
            ]
        );
    }
}

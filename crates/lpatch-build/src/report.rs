// SPDX-License-Identifier: GPL-2.0-only
//! What a build found, per object (vmlinux or a module): the functions a patch replaces,
//! each with why, and the functions and data it adds. Printed as text or as JSON.

use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The kernel release the patch is for.
    pub kernel: String,
    /// The exact source it was compared against (`linux-source-6.1 6.1.192-3`).
    pub source: String,
    /// Every unit compiled and compared (the diff's own, and those a header change reaches).
    pub compared: Vec<String>,
    /// The objects with changes, vmlinux first, then modules by name.
    pub objects: Vec<ObjectReport>,
    /// What a live patch cannot carry (`refuse`), one line each: when not empty, no patch
    /// is built and `dry_run` fails with these.
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectReport {
    /// "vmlinux" or the module's name.
    pub name: String,
    /// The translation units of this object whose code changed.
    pub units: Vec<String>,
    pub replace: Vec<Replaced>,
    pub new_functions: Vec<Added>,
    pub new_data: Vec<Added>,
    /// Per unit, the running kernel's names for what the patched object names otherwise
    /// (a renumbered static local or clone: patched name -> kernel name), from the
    /// comparison, for making the module. Not part of what the report shows.
    #[serde(skip)]
    pub kernel_names: Vec<(String, std::collections::BTreeMap<String, String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    pub function: String,
    pub unit: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Added {
    pub name: String,
    pub unit: String,
}

/// Why a function is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The diff changed its own body.
    ChangedCode,
    /// Its code changed because a function inlined into it changed.
    InlinedCalleeChanged { callees: Vec<String> },
    /// A compiler clone of it (`.isra`, `.constprop`, `.part`, `.cold`) changed.
    CloneChanged { clones: Vec<String> },
    /// Its compiled code changed although the diff touched neither its body nor anything
    /// inlined into it (a changed macro, type, constant or declaration it uses).
    CodeChangedOtherwise,
}

impl Reason {
    pub fn words(&self) -> String {
        match self {
            Reason::ChangedCode => "changed code".to_string(),
            Reason::InlinedCalleeChanged { callees } => {
                format!("inlined callee changed: {}", callees.join(", "))
            }
            Reason::CloneChanged { clones } => {
                format!("compiler clone changed: {}", clones.join(", "))
            }
            Reason::CodeChangedOtherwise => {
                "compiled code changed (a macro, type or declaration it uses)".to_string()
            }
        }
    }
}

impl Report {
    /// The `--dry-run` text: per object, what the patch would replace and add, from which
    /// unit, and why.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "kernel {} ({}), {} unit(s) compared",
            self.kernel,
            self.source,
            self.compared.len()
        );
        for o in &self.objects {
            let _ = writeln!(s, "{}", o.name);
            let added = o.new_functions.iter().chain(&o.new_data);
            let width = o
                .replace
                .iter()
                .map(|r| r.function.len())
                .chain(added.clone().map(|a| a.name.len()))
                .max();
            let uwidth = o
                .replace
                .iter()
                .map(|r| r.unit.len())
                .chain(added.map(|a| a.unit.len()))
                .max();
            let (w, uw) = (width.unwrap_or(0), uwidth.unwrap_or(0));
            for r in &o.replace {
                let _ = writeln!(
                    s,
                    "  replace       {:w$}  {:uw$}  {}",
                    r.function,
                    r.unit,
                    r.reason.words()
                );
            }
            for a in &o.new_functions {
                let _ = writeln!(s, "  new function  {:w$}  {:uw$}  new", a.name, a.unit);
            }
            for a in &o.new_data {
                let _ = writeln!(s, "  new data      {:w$}  {:uw$}  new", a.name, a.unit);
            }
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

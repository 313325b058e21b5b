// SPDX-License-Identifier: GPL-2.0-only
//! /proc/modules: "name size refcount holders state address [taints]", e.g.
//! "livepatch_sample 16384 1 - Live 0xffffffffc0a00000 (OEK)".

use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub name: String,
    pub size: Option<u64>,
    /// None when the kernel prints "-" (built without module unloading).
    pub refcount: Option<i64>,
    /// Modules that use this one.
    pub used_by: Vec<String>,
    /// Live, Loading or Unloading.
    pub state: String,
    /// The module's taint letters, e.g. "OEK".
    pub taints: Option<String>,
}

pub fn parse_line(line: &str) -> Option<Module> {
    let mut f = line.split_whitespace();
    let name = f.next()?.to_string();
    let size = f.next().and_then(|s| s.parse().ok());
    let refcount = f.next().and_then(|s| s.parse().ok());
    let used_by = match f.next() {
        Some("-") | None => Vec::new(),
        Some(s) => s
            .split(',')
            .filter(|s| !s.is_empty() && *s != "[permanent]")
            .map(String::from)
            .collect(),
    };
    let state = f.next().unwrap_or("").to_string();
    let _addr = f.next();
    let taints = f
        .next()
        .map(|s| s.trim_matches(['(', ')']).to_string())
        .filter(|s| !s.is_empty());
    Some(Module {
        name,
        size,
        refcount,
        used_by,
        state,
        taints,
    })
}

pub fn parse(text: &str) -> Vec<Module> {
    text.lines().filter_map(parse_line).collect()
}

/// The modules listed in `<proc>/modules`, or why they cannot be read.
pub fn read(proc_root: &Path) -> Result<Vec<Module>, String> {
    let path = proc_root.join("modules");
    std::fs::read(&path)
        .map(|b| parse(&String::from_utf8_lossy(&b)))
        .map_err(|e| {
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::errno::describe_io(&e)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let m = parse(
            "livepatch_sample 16384 1 - Live 0xffffffffc0a00000 (OEK)\n\
             lpatch 40960 2 livepatch_sample,other, Live 0x0000000000000000 (OE)\n\
             ext4 1 - - Live 0x0\n\
             \n\
             weird\n",
        );
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].refcount, Some(1));
        assert_eq!(m[0].taints.as_deref(), Some("OEK"));
        assert!(m[0].used_by.is_empty());
        assert_eq!(m[1].used_by, vec!["livepatch_sample", "other"]);
        assert_eq!(m[2].refcount, None);
        assert_eq!(m[2].taints, None);
        assert_eq!(m[3].name, "weird");
        assert_eq!(m[3].state, "");
    }
}

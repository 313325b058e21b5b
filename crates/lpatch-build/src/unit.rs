// SPDX-License-Identifier: GPL-2.0-only
//! A translation unit the diff touches, and the object it is linked into: vmlinux, or the
//! module kbuild compiled it for. kbuild's own record of the compilation (the `.<obj>.cmd`
//! file) says which: `-DMODULE` and `-DKBUILD_MODNAME` mark a module's unit.

use crate::error::{io, Error, Result};
use lpatch_kbuild::cmdfile;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The source file (`fs/proc/cmdline.c`).
    pub source: String,
    /// Its object (`fs/proc/cmdline.o`).
    pub object: String,
}

impl Unit {
    /// The unit of a `.c` file; None for other files.
    pub fn of_source(path: &str) -> Option<Unit> {
        let stem = path.strip_suffix(".c")?;
        Some(Unit {
            source: path.to_string(),
            object: format!("{stem}.o"),
        })
    }

    /// "vmlinux", or the name of the module the unit was compiled into, from kbuild's record.
    pub fn linked_into(&self, root: &Path) -> Result<String> {
        let path = root.join(cmd_file_of(&self.object));
        let text = std::fs::read_to_string(&path).map_err(|e| io(path.display(), e))?;
        let line = cmdfile::command_line(&text).ok_or_else(|| {
            Error::Compile(format!("{}: no compile command recorded", path.display()))
        })?;
        Ok(linked_into_from_command(line))
    }
}

/// The `.cmd` file kbuild writes beside an object (`fs/proc/.cmdline.o.cmd`), relative to
/// the tree as the object is.
pub fn cmd_file_of(object: &str) -> String {
    match object.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.cmd"),
        None => format!(".{object}.cmd"),
    }
}

/// The object a compile command builds for: the module named by `-DKBUILD_MODNAME` when
/// `-DMODULE` is given, else vmlinux.
pub fn linked_into_from_command(line: &str) -> String {
    let words = cmdfile::shell_words(line);
    if !words.iter().any(|w| w == "-DMODULE") {
        return "vmlinux".to_string();
    }
    words
        .iter()
        .find_map(|w| w.strip_prefix("-DKBUILD_MODNAME="))
        .map(|n| n.trim_matches('"').to_string())
        .unwrap_or_else(|| "vmlinux".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_or_vmlinux_from_the_command() {
        let m = r#"gcc-12 -Wp,-MMD -DMODULE -DKBUILD_BASENAME='"nls_utf8"' -DKBUILD_MODNAME='"nls_utf8"' -D__KBUILD_MODNAME=kmod_nls_utf8 -c -o fs/nls/nls_utf8.o fs/nls/nls_utf8.c"#;
        assert_eq!(linked_into_from_command(m), "nls_utf8");
        let v = r#"gcc-12 -DKBUILD_MODFILE='"fs/proc/proc"' -DKBUILD_BASENAME='"cmdline"' -DKBUILD_MODNAME='"proc"' -c -o fs/proc/cmdline.o fs/proc/cmdline.c"#;
        assert_eq!(linked_into_from_command(v), "vmlinux");
        assert_eq!(
            Unit::of_source("fs/proc/cmdline.c").unwrap().object,
            "fs/proc/cmdline.o"
        );
        assert_eq!(Unit::of_source("include/linux/x.h"), None);
        assert_eq!(cmd_file_of("fs/proc/cmdline.o"), "fs/proc/.cmdline.o.cmd");
        assert_eq!(cmd_file_of("x.o"), ".x.o.cmd");
    }
}

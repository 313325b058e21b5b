// SPDX-License-Identifier: GPL-2.0-only
//! What the CLI's VM tests share: where the repository and the built modules are, and
//! the static CLI shipped into the guest. Each test file uses what it needs of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The build directory: $LPATCH_BUILD (the top Makefile exports it), else
/// <repo>/build/current.
pub fn build_dir() -> PathBuf {
    std::env::var_os("LPATCH_BUILD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build/current"))
}

/// The static binary, built once per test process unless `$LPATCH_CLI` names one.
pub fn cli() -> PathBuf {
    lpatch_vm::static_binary("lpatch", "lpatch", "LPATCH_CLI")
}

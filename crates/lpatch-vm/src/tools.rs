// SPDX-License-Identifier: GPL-2.0-only
//! Host programs shipped into the guest: a workspace binary built static (the guest has
//! no libc but busybox's), once per test process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The target given explicitly, so that crt-static stays away from build scripts and
/// proc-macros.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The static binary `bin` of the workspace package `package`, built with the cargo that
/// runs the tests (`$CARGO`); `$<ENV_OVERRIDE>` names a ready one instead (LPATCH_CLI for
/// the CLI, as the top Makefile sets it). Panics with cargo's error when the build fails.
pub fn static_binary(package: &str, bin: &str, env_override: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    if let Some(p) = std::env::var_os(env_override).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_override}={} does not exist", p.display());
        return p;
    }
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get_or_insert_with(HashMap::new).get(package) {
        return p.clone();
    }
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "-p",
            package,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(&crates)
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "building the static {package}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crates.join("target"));
    let path = target_dir.join(TARGET).join("release").join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    built
        .get_or_insert_with(HashMap::new)
        .insert(package.to_string(), path.clone());
    path
}

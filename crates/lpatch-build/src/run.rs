// SPDX-License-Identifier: GPL-2.0-only
//! Running the external tools a build needs (make, patch, tar, apt), with their output kept
//! for the error message when they fail.

use crate::error::{Error, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// What a finished command printed.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for an error message: at most the last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.stdout.lines().chain(self.stderr.lines()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs `cmd`, capturing its output. Failing to start it at all (the tool is missing) is an
/// `Error::Tool` naming the package that provides it.
pub fn capture(cmd: &mut Command, package: &str) -> Result<Output> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        Error::Tool(format!(
            "cannot run {prog} ({e}): install the Debian package {package}"
        ))
    })?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cmd` and requires it to succeed; `what` says what it was doing, for the error.
pub fn checked(cmd: &mut Command, package: &str, what: &str) -> Result<Output> {
    let out = capture(cmd, package)?;
    if !out.ok {
        return Err(Error::Io(format!("{what} failed:\n{}", out.tail(25))));
    }
    Ok(out)
}

/// A shell pipeline (for tar | xz streams), run with `bash -o pipefail`.
pub fn pipeline(script: &str, dir: &Path, what: &str) -> Result<Output> {
    checked(
        Command::new("bash")
            .args(["-o", "pipefail", "-c", script])
            .current_dir(dir),
        "bash",
        what,
    )
}

/// Quotes `s` for a shell command line.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Free space in MiB of the file system holding `dir`.
pub fn free_mib(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(|e| crate::error::io(dir.display(), e.into()))?;
    Ok(st.f_bavail * st.f_frsize / (1024 * 1024))
}

/// Stops with a clear message when `dir` has less than `mib` MiB free for `what`.
pub fn need_space(dir: &Path, mib: u64, what: &str) -> Result<()> {
    let free = free_mib(dir)?;
    if free < mib {
        return Err(Error::Io(format!(
            "not enough free disk for {what}: it needs {mib} MiB in {}, which has {free} MiB (short by {} MiB)",
            dir.display(),
            mib - free
        )));
    }
    Ok(())
}

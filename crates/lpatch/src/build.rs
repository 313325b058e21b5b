// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch build`: the thin verb over the lpatch-build library.

use crate::app::{Ctx, Exit, Failure, Outcome};
use clap::Args;
use lpatch_build::error::Error;
use lpatch_build::target::Request;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The fix: a unified diff against the kernel's source
    #[arg(required_unless_present = "prepare_only")]
    pub patch: Option<PathBuf>,
    /// The patch module to write
    #[arg(short = 'o', long = "output", value_name = "OUT.ko")]
    pub output: Option<PathBuf>,
    /// The patch's name (default: from the diff's file name)
    #[arg(long)]
    pub name: Option<String>,
    /// A Debian kernel other than the one set-up targets, by release (6.1.0-57-amd64)
    #[arg(long, value_name = "KVER", conflicts_with = "kernel_tree")]
    pub kernel: Option<String>,
    /// A kernel tree you built (its .config and objects there)
    #[arg(long, value_name = "DIR")]
    pub kernel_tree: Option<PathBuf>,
    /// Parallel compile jobs (default: the number of CPUs)
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Stop after the comparison: print what the patch would replace and add
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Only prepare (or check) the cached tree of the kernel, and print where it is
    #[arg(long, conflicts_with = "patch")]
    pub prepare_only: bool,
    /// The cache root (set-up's kernels and the builder's trees)
    #[arg(
        long,
        value_name = "DIR",
        env = "LPATCH_CACHE",
        default_value = "/var/cache/lpatch"
    )]
    pub cache: PathBuf,
}

fn failure(e: &Error) -> Failure {
    let code = match e {
        Error::Target(_) => Exit::NotFound,
        _ => Exit::Failed,
    };
    let mut lines = e
        .to_string()
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let first = if lines.is_empty() {
        String::new()
    } else {
        lines.remove(0)
    };
    let mut f = Failure::new(code, format!("lpatch build: {first}"));
    f.details = lines;
    f
}

pub fn build(ctx: &mut Ctx, a: &BuildArgs) -> Outcome {
    let jobs = a
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let target = match (&a.kernel, &a.kernel_tree) {
        (_, Some(dir)) => Request::Tree(dir.clone()),
        (Some(k), None) => Request::Debian(k.clone()),
        (None, None) => Request::Default,
    };
    let progress = lpatch_build::progress::Progress::auto();
    let write = |ctx: &mut Ctx, text: String| {
        ctx.out
            .write_all(text.as_bytes())
            .map_err(|e| Failure::new(Exit::Failed, format!("writing the report: {e}")))
    };
    let Some(patch) = &a.patch else {
        let root =
            lpatch_build::prepare(&target, &a.cache, jobs, &progress).map_err(|e| failure(&e))?;
        return write(ctx, format!("prepared tree: {}\n", root.display()));
    };
    if !a.dry_run {
        return Err(Failure::new(
            Exit::Usage,
            "lpatch build: making the patch module is not available yet; --dry-run lists what it would contain",
        ));
    }
    let opts = lpatch_build::Options {
        patch: patch.clone(),
        target,
        jobs,
        cache: a.cache.clone(),
        progress,
    };
    let report = lpatch_build::dry_run(&opts).map_err(|e| failure(&e))?;
    write(
        ctx,
        if a.json {
            report.json() + "\n"
        } else {
            report.text()
        },
    )
}

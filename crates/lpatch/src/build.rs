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
    /// An out-of-tree module the diff patches, as it runs (the diff's paths are then
    /// relative to its source, --oot-module-src)
    #[arg(long, value_name = "KO", requires = "oot_module_src")]
    pub oot_module: Option<PathBuf>,
    /// The source directory the out-of-tree module was built from (copied; never written)
    #[arg(long, value_name = "DIR", requires = "oot_module")]
    pub oot_module_src: Option<PathBuf>,
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
    /// The lpatch core's Module.symvers (its exports and their CRCs; `make all` writes it
    /// beside lpatch.ko)
    #[arg(
        long,
        value_name = "FILE",
        env = "LPATCH_CORE_SYMVERS",
        default_value = "build/current/kernel/Module.symvers"
    )]
    pub core_symvers: PathBuf,
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
    let opts = lpatch_build::Options {
        patch: patch.clone(),
        target,
        jobs,
        cache: a.cache.clone(),
        progress,
        external: a
            .oot_module
            .clone()
            .zip(a.oot_module_src.clone())
            .map(|(ko, src)| lpatch_build::external::External { ko, src }),
    };
    if !a.dry_run {
        return make_module(ctx, a, patch, &opts);
    }
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

/// Builds the patch module, turns its references to what the kernel does not export into
/// livepatch relocations, and writes it.
fn make_module(
    ctx: &mut Ctx,
    a: &BuildArgs,
    patch: &std::path::Path,
    opts: &lpatch_build::Options,
) -> Outcome {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => patch
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let name = lpatch_build::module::name_from(&name)
        .map_err(|e| Failure::new(Exit::Usage, format!("lpatch build: {e}")))?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.ko")));
    let spec = lpatch_build::module::Spec {
        name: name.clone(),
        core_symvers: a.core_symvers.clone(),
    };
    let (_, made) = lpatch_build::build(opts, &spec).map_err(|e| failure(&e))?;
    let linked = std::fs::read(&made.ko).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("lpatch build: reading {}: {e}", made.ko.display()),
        )
    })?;
    let bytes = match crate::klp_convert::convert(&linked).map_err(|mut f| {
        f.message = format!(
            "lpatch build: converting the module's references: {}",
            f.message
        );
        f
    })? {
        crate::klp_convert::Conversion::Converted { elf, .. } => elf,
        _ => linked,
    };
    std::fs::write(&out, &bytes).map_err(|e| {
        Failure::new(
            Exit::Failed,
            format!("lpatch build: writing {}: {e}", out.display()),
        )
    })?;
    let mut text = format!("patch {name} replaces:\n");
    for (object, funcs) in &made.replaces {
        text.push_str(&format!("  {object}: {}\n", funcs.join(", ")));
    }
    text.push_str(&format!("wrote {}\n", out.display()));
    ctx.say(&text);
    Ok(())
}

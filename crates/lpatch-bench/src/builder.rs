// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch build`'s speed on this host (issue 23), beside the guests' figures:
//! - a one-file vmlinux fix, end to end through `--dry-run` (apply, compile before and
//!   after, compare, report), on the warm cache: goal at most 15 s on 2 cores;
//! - a first preparation from nothing, in a cache of its own that is removed afterwards:
//!   the source and image packages downloaded, the source unpacked, the tree prepared; goal
//!   at most 3 minutes, with the disk it takes;
//! - P6 (issue 26): the same fix from diff to loadable module, `lpatch build fix.patch -o
//!   fix.ko` as a user runs it (the static CLI), on the warm cache: goal at most 30 s; beside
//!   it, what that step costs by hand, kbuild of a hand-written patch module of the same
//!   function (samples/klp-cmdline) against the kernel's headers.
//!
//! Wall-clock seconds, not guest instructions: this runs on the host, with nothing else of
//! the benchmark running.

use crate::Env;
use lpatch_build::target::Request;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Runs of the warm one-file fix.
const RUNS: usize = 3;
/// The goals, in seconds.
pub const ONE_FILE_GOAL: f64 = 15.0;
pub const FIRST_PREP_GOAL: f64 = 180.0;
pub const MODULE_GOAL: f64 = 30.0;

pub struct Figures {
    pub kernel: String,
    /// Each warm run's wall time.
    pub one_file: Vec<f64>,
    /// The kernel prepared from nothing, its wall time and the disk its cache took (MiB).
    pub first_prep: Option<(String, f64, u64)>,
    /// P6: each run of `lpatch build` to a module, and each kbuild of the hand-written one.
    pub module: Vec<f64>,
    pub by_hand: Vec<f64>,
}

/// The one-file fix: a line added to cmdline_proc_show, as a diff of the tree's own file.
fn one_file_fix(tree: &Path, dir: &Path) -> Result<PathBuf, String> {
    let path = "fs/proc/cmdline.c";
    let orig = std::fs::read_to_string(tree.join(path)).map_err(|e| format!("{path}: {e}"))?;
    let old = "\tseq_putc(m, '\\n');\n";
    if orig.matches(old).count() != 1 {
        return Err(format!("{path} is not the file this benchmark expects"));
    }
    let changed = orig.replacen(old, "\tseq_putc(m, ' ');\n\tseq_putc(m, '\\n');\n", 1);
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, &orig).map_err(|e| e.to_string())?;
    std::fs::write(&b, &changed).map_err(|e| e.to_string())?;
    let out = Command::new("diff")
        .args([
            "-u",
            "--label",
            &format!("a/{path}"),
            "--label",
            &format!("b/{path}"),
        ])
        .arg(&a)
        .arg(&b)
        .output()
        .map_err(|e| format!("diff: {e}"))?;
    let p = dir.join("cmdline.patch");
    std::fs::write(&p, out.stdout).map_err(|e| e.to_string())?;
    Ok(p)
}

fn options(patch: &Path, target: Request, cache: &Path) -> lpatch_build::Options {
    lpatch_build::Options {
        patch: patch.to_path_buf(),
        target,
        jobs: 2,
        cache: cache.to_path_buf(),
        progress: lpatch_build::progress::Progress::hidden(),
        external: None,
    }
}

/// Disk used under `dir`, in MiB (du's count of blocks, as `df` sees it).
fn disk_mib(dir: &Path) -> Result<u64, String> {
    let out = Command::new("du")
        .arg("-sm")
        .arg(dir)
        .output()
        .map_err(|e| format!("du: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("du -sm {}: no figure", dir.display()))
}

/// Times `lpatch build` of `patch` to a module, [`RUNS`] times, and kbuild of the
/// hand-written module of the same change as many times (each in a fresh copy).
fn module_runs(env: &Env, patch: &Path, work: &Path) -> Result<(Vec<f64>, Vec<f64>), String> {
    let cli = lpatch_vm::static_binary("lpatch", "lpatch", "LPATCH_CLI");
    let ko = work.join("cmdline_fix.ko");
    let mut module = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_file(&ko);
        let t = Instant::now();
        let out = Command::new(&cli)
            .arg("build")
            .arg(patch)
            .arg("-o")
            .arg(&ko)
            .arg("--core-symvers")
            .arg(env.build.join("kernel/Module.symvers"))
            .output()
            .map_err(|e| format!("running {}: {e}", cli.display()))?;
        module.push(t.elapsed().as_secs_f64());
        if !out.status.success() || !ko.is_file() {
            return Err(format!(
                "lpatch build of the one-file fix failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let sample = env.root.join("samples/klp-cmdline");
    let mut by_hand = Vec::new();
    for i in 0..RUNS {
        let dir = work.join(format!("by-hand-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for f in ["Kbuild", "klp_cmdline.c"] {
            std::fs::copy(sample.join(f), dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        }
        let t = Instant::now();
        crate::kbuild(env, &dir)?;
        by_hand.push(t.elapsed().as_secs_f64());
    }
    Ok((module, by_hand))
}

/// Measures them all. `first` names the kernel to prepare from nothing (None: skip it).
pub fn measure(env: &Env, first: Option<&str>) -> Result<Figures, String> {
    let cache = lpatch_build::default_cache();
    let hidden = lpatch_build::progress::Progress::hidden();
    // The warm cache: the tree make prepared (a no-op check when it is there).
    let tree =
        lpatch_build::prepare(&Request::Default, &cache, 2, &hidden).map_err(|e| e.to_string())?;
    let kernel = lpatch_build::target::resolve(&Request::Default, &cache)
        .map_err(|e| e.to_string())?
        .kver;
    let work = std::env::temp_dir().join(format!("lpatch-bench-build-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let patch = one_file_fix(&tree, &work)?;
    let mut one_file = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = lpatch_build::dry_run(&options(&patch, Request::Default, &cache))
            .map_err(|e| e.to_string())?;
        one_file.push(t.elapsed().as_secs_f64());
        if !r.text().contains("cmdline_proc_show") {
            return Err(format!(
                "the one-file fix did not replace cmdline_proc_show:\n{}",
                r.text()
            ));
        }
    }
    let (module, by_hand) = module_runs(env, &patch, &work)?;
    let _ = std::fs::remove_dir_all(&work);

    let first_prep = match first {
        None => None,
        Some(kver) => {
            // On the cache's file system, so its disk figure is what a real cache takes.
            let fresh = cache.join(format!("bench-first-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&fresh);
            std::fs::create_dir_all(&fresh).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let r = lpatch_build::prepare(&Request::Debian(kver.to_string()), &fresh, 2, &hidden);
            let secs = t.elapsed().as_secs_f64();
            let mib = disk_mib(&fresh);
            let _ = std::fs::remove_dir_all(&fresh);
            r.map_err(|e| format!("preparing {kver} from nothing: {e}"))?;
            Some((kver.to_string(), secs, mib?))
        }
    };
    Ok(Figures {
        kernel,
        one_file,
        first_prep,
        module,
        by_hand,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

pub fn table(f: &Figures) -> String {
    let mut out = String::from("\nlpatch build, on this host (2 jobs), wall-clock:\n");
    let runs: Vec<String> = f.one_file.iter().map(|s| format!("{s:.1}")).collect();
    let m = median(&f.one_file);
    out.push_str(&format!(
        "  one-file vmlinux fix through --dry-run, warm cache ({}): {m:.1} s median of {} s  (goal <= {ONE_FILE_GOAL} s: {})\n",
        f.kernel,
        runs.join(", "),
        if m <= ONE_FILE_GOAL { "met" } else { "MISSED" }
    ));
    let secs = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (m6, h6) = (median(&f.module), median(&f.by_hand));
    out.push_str(&format!(
        "  P6 the same fix, diff to loadable module (lpatch build -o), warm cache: {m6:.1} s median of {} s  (goal <= {MODULE_GOAL} s: {})\n",
        secs(&f.module),
        if m6 <= MODULE_GOAL { "met" } else { "MISSED" }
    ));
    out.push_str(&format!(
        "     by hand, kbuild of a hand-written patch module of it (samples/klp-cmdline): {h6:.1} s median of {} s; lpatch build / by hand {:.1}x\n",
        secs(&f.by_hand),
        m6 / h6
    ));
    if let Some((k, secs, mib)) = &f.first_prep {
        out.push_str(&format!(
            "  first preparation of {k} from nothing (downloads, unpack, prepare): {secs:.0} s, {mib} MiB on disk  (goal <= {FIRST_PREP_GOAL} s: {})\n",
            if *secs <= FIRST_PREP_GOAL { "met" } else { "MISSED" }
        ));
    }
    out
}

pub fn json(f: &Figures) -> Value {
    json!({
        "kernel": f.kernel,
        "one_file_dry_run_secs": f.one_file,
        "one_file_dry_run_median_secs": median(&f.one_file),
        "one_file_goal_secs": ONE_FILE_GOAL,
        "p6_module_secs": f.module,
        "p6_module_median_secs": median(&f.module),
        "p6_module_goal_secs": MODULE_GOAL,
        "p6_by_hand_kbuild_secs": f.by_hand,
        "p6_by_hand_kbuild_median_secs": median(&f.by_hand),
        "first_preparation": f.first_prep.as_ref().map(|(k, s, m)| json!({
            "kernel": k, "secs": s, "disk_mib": m, "goal_secs": FIRST_PREP_GOAL,
        })),
    })
}

// SPDX-License-Identifier: GPL-2.0-only
//! lpatch-bench: lpatch against the in-kernel livepatch (klp), measured in qemu guests
//! under TCG with `-icount shift=0,sleep=off`, so guest time follows the executed
//! instruction count and figures repeat from run to run.
//!
//! - P1 per-call cost: bench_f (samples/bench-target) called in a loop, unpatched, its
//!   replacement called directly, patched by lpatch, by klp, and by one raw ftrace_ops
//!   (a control).
//! - P2 enable and disable time of patches of N functions of a generated target module
//!   (see [`gen`]), every function checked; a load-only control and a raw single-ops
//!   control. `make bench` measures N = 1, 100, 1000 for lpatch, klp and the controls, and
//!   N = 10,000 for lpatch and the raw control only: klp would take about 1.5 min to enable
//!   and 21 min to disable 10,000 functions in the guest, so it runs there only in the
//!   one-off [`Config::klp_at`] (`lpatch-bench --klp-at 10000`), whose figures README keeps.
//! - P3 memory: lpatch.ko's sections, and MemAvailable, VmallocUsed and Slab deltas.
//!
//! [`prepare`] builds the modules, [`run`] boots the guests ([`plan`]) and checks and
//! gathers their figures ([`results`]), [`report`] prints them and makes the JSON.

pub mod builder;
pub mod cli;
pub mod elf;
pub mod gen;
pub mod plan;
pub mod report;
pub mod results;

use lpatch_vm::Vm;
use plan::Core;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use results::Figures;

/// qemu arguments of every benchmark guest: guest time = executed instructions (1 ns each).
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// The hand-written modules (samples/<dir>), built like the top Makefile's `samples`.
pub const SAMPLES: [(&str, &str); 3] = [
    ("bench-target", "bench_target.ko"),
    ("bench-lp", "bench_lp.ko"),
    ("bench-klp", "bench_klp.ko"),
];

/// Where things are.
#[derive(Debug, Clone)]
pub struct Env {
    /// The repository.
    pub root: PathBuf,
    /// The build directory of the current kernel: `$LPATCH_BUILD`, else build/current.
    pub build: PathBuf,
    /// The kernel the guests boot.
    pub kernel_dir: PathBuf,
    /// Its headers, to build modules against.
    pub kdir: PathBuf,
}

impl Env {
    pub fn detect() -> Result<Env, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let build = match std::env::var_os("LPATCH_BUILD") {
            Some(b) if !b.is_empty() => PathBuf::from(b),
            _ => root.join("build/current"),
        };
        let kernel_dir = lpatch_vm::default_kernel_dir();
        let kdir = lpatch_vm::headers_dir(&kernel_dir).map_err(|e| e.to_string())?;
        Ok(Env {
            root,
            build,
            kernel_dir,
            kdir,
        })
    }

    pub fn lpatch_ko(&self) -> PathBuf {
        self.build.join("kernel/lpatch.ko")
    }
}

/// Runs kbuild's `modules` in `dir`, with lpatch's symbols and header.
fn kbuild(env: &Env, dir: &Path) -> Result<(), String> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new("make")
        // not a make of ours: no jobserver or variables inherited from `make bench`
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .arg(format!("-j{jobs}"))
        .arg("-s")
        .arg("-C")
        .arg(&env.kdir)
        .arg(format!("M={}", dir.display()))
        .arg(format!(
            "KBUILD_EXTRA_SYMBOLS={}",
            env.build.join("kernel/Module.symvers").display()
        ))
        .arg(format!(
            "KCFLAGS=-I{}",
            env.root.join("kernel/include").display()
        ))
        .arg("modules")
        .output()
        .map_err(|e| format!("running make: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the modules in {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Whether every module in `kos` is newer than the sources in `dir`, lpatch's
/// Module.symvers and its header: then kbuild (2-3 s even with nothing to do) is skipped.
fn up_to_date(env: &Env, dir: &Path, kos: &[String]) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut inputs = vec![
        env.build.join("kernel/Module.symvers"),
        env.root.join("kernel/include/lpatch.h"),
    ];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "Kbuild" || n.ends_with(".c") || n.ends_with(".h") {
                inputs.push(e.path());
            }
        }
    }
    let Some(newest) = inputs
        .iter()
        .map(|p| mtime(p))
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max())
    else {
        return false;
    };
    kos.iter()
        .all(|k| mtime(&dir.join(k)).is_some_and(|t| t > newest))
}

/// Copies `from`'s Kbuild and C files into `to`, leaving unchanged ones alone.
fn stage(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let rd = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "Kbuild" || name.ends_with(".c") || name.ends_with(".h") {
            let data =
                std::fs::read(e.path()).map_err(|er| format!("{}: {er}", e.path().display()))?;
            let dst = to.join(&name);
            if std::fs::read(&dst).ok().as_deref() != Some(&data[..]) {
                std::fs::write(&dst, &data).map_err(|er| format!("{}: {er}", dst.display()))?;
            }
        }
    }
    Ok(())
}

/// The modules a run needs, by file name.
#[derive(Debug, Clone)]
pub struct Modules {
    pub paths: Vec<(String, PathBuf)>,
}

impl Modules {
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.paths
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }
}

/// Builds the bench samples and the generated modules of `patches` ((core, size) pairs:
/// [`Config::patches`]) with their targets (sources in `<build>/bench/<gen_name>`).
/// lpatch.ko must be built already (`make all`); it is copied into that directory first,
/// so every guest of a run boots the same core even if lpatch.ko is rebuilt meanwhile.
pub fn prepare(env: &Env, gen_name: &str, patches: &[(Core, usize)]) -> Result<Modules, String> {
    let ko = env.lpatch_ko();
    if !ko.is_file() || !env.build.join("kernel/Module.symvers").is_file() {
        return Err(format!(
            "{} or its Module.symvers is missing: run `make all` first",
            ko.display()
        ));
    }
    let gen_dir = env.build.join("bench").join(gen_name);
    std::fs::create_dir_all(&gen_dir).map_err(|e| format!("{}: {e}", gen_dir.display()))?;
    let snapshot = gen_dir.join("lpatch.ko");
    std::fs::copy(&ko, &snapshot).map_err(|e| format!("copying {}: {e}", ko.display()))?;
    let mut paths = vec![("lpatch.ko".to_string(), snapshot)];
    for (dir, name) in SAMPLES {
        let out = env.build.join("samples").join(dir);
        stage(&env.root.join("samples").join(dir), &out)?;
        if !up_to_date(env, &out, &[name.to_string()]) {
            kbuild(env, &out)?;
        }
        paths.push((name.to_string(), out.join(name)));
    }
    if let Some(&(_, bad)) = patches.iter().find(|(_, n)| gen::target_for(*n).is_none()) {
        return Err(format!("patch size {bad} out of 1..={}", gen::MAX_SIZE));
    }
    gen::write_sources(&gen_dir, patches).map_err(|e| format!("{}: {e}", gen_dir.display()))?;
    let names = gen::modules(patches);
    let kos: Vec<String> = names.iter().map(|n| format!("{n}.ko")).collect();
    if !up_to_date(env, &gen_dir, &kos) {
        kbuild(env, &gen_dir)?;
    }
    for n in names {
        paths.push((format!("{n}.ko"), gen_dir.join(format!("{n}.ko"))));
    }
    for (n, p) in &paths {
        if !p.is_file() {
            return Err(format!("{n}: {} was not built", p.display()));
        }
    }
    Ok(Modules { paths })
}

/// Wall-clock floor of every guest of the one-off klp run ([`Config::klp_at`]): klp's
/// disable of 10,000 functions alone takes about 21 minutes of guest time.
pub const KLP_AT_TIMEOUT: u64 = 3 * 3600;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Patch sizes, ascending (1..=[`gen::MAX_SIZE`]).
    pub sizes: Vec<usize>,
    /// Repetitions: P1 runs per boot, P2 boots per (core, size) up to
    /// [`gen::TARGET_FUNCS`].
    pub reps: usize,
    /// P2 boots per (core, size) above [`gen::TARGET_FUNCS`] (the big target's sizes).
    pub big_reps: usize,
    /// klp runs at the sizes up to this one only (the others' klp column reads "-").
    pub klp_max: usize,
    /// Whether to measure P1 (per-call cost).
    pub p1: bool,
    /// P1 calls per run.
    pub calls: u64,
    /// Guests at once (each has 1 vCPU).
    pub jobs: usize,
    /// One boot per core (and target) for everything (the quick variant), instead of
    /// fresh boots.
    pub combine: bool,
    /// Name of the generated-sources directory under `<build>/bench/`.
    pub gen_name: String,
    /// Progress lines on stderr.
    pub verbose: bool,
    /// Also time `lpatch build` on the host (builder::measure), preparing this kernel's
    /// tree from nothing for the first-preparation figure.
    pub builder: Option<String>,
    /// Wall-clock floor of every guest's timeout, seconds (0: by the work, plan::timeout).
    pub min_timeout: u64,
    /// klp_wait's sleep between two reads of a klp transition, microseconds.
    pub klp_poll_us: u32,
}

impl Config {
    /// `make bench`: sizes 1, 100, 1000 (5 repetitions, klp included) and 10,000 (3
    /// repetitions, lpatch and the raw control only); 1,000,000 calls.
    pub fn full() -> Config {
        Config {
            sizes: vec![1, 100, 1000, 10_000],
            reps: 5,
            big_reps: 3,
            klp_max: gen::TARGET_FUNCS,
            p1: true,
            calls: 1_000_000,
            jobs: 2,
            combine: false,
            gen_name: "gen".into(),
            verbose: true,
            builder: Some(
                std::env::var("CORPUS_KERNEL").unwrap_or_else(|_| "6.1.0-50-amd64".into()),
            ),
            min_timeout: 0,
            klp_poll_us: 500,
        }
    }

    /// The quick variant `make test` runs: sizes 1 and 100, once, 10,000 calls, two boots.
    pub fn quick() -> Config {
        Config {
            sizes: vec![1, 100],
            reps: 1,
            big_reps: 1,
            calls: 10_000,
            combine: true,
            gen_name: "gen-quick".into(),
            builder: None,
            ..Config::full()
        }
    }

    /// The one-off klp measurement at `n` functions (`lpatch-bench --klp-at N`), never
    /// part of `make bench` or `make test`: klp, lpatch and the raw control at `n` alone,
    /// one boot each, no P1, no build timing; every guest may run [`KLP_AT_TIMEOUT`], and
    /// klp's transitions are polled every 20 ms (their minutes make 0.5 ms polls cost
    /// wall time, not precision).
    pub fn klp_at(n: usize) -> Config {
        Config {
            sizes: vec![n],
            reps: 1,
            big_reps: 1,
            klp_max: n,
            p1: false,
            builder: None,
            min_timeout: KLP_AT_TIMEOUT,
            klp_poll_us: 20_000,
            ..Config::full()
        }
    }

    /// Whether klp is measured at size `n`.
    pub fn klp_measured(&self, n: usize) -> bool {
        n <= self.klp_max
    }

    /// P2 boots per core at size `n`.
    pub fn reps_at(&self, n: usize) -> usize {
        if n > gen::TARGET_FUNCS {
            self.big_reps
        } else {
            self.reps
        }
    }

    /// The generated patch modules the run needs: (core, size).
    pub fn patches(&self) -> Vec<(Core, usize)> {
        let mut v = Vec::new();
        for &n in &self.sizes {
            v.push((Core::Lpatch, n));
            if self.klp_measured(n) {
                v.push((Core::Klp, n));
            }
            v.push((Core::Raw, n));
        }
        v
    }
}

/// Boots the guests (`cfg.jobs` at once), checks each one's output and gathers the figures.
/// The first failing guest ends the run with its whole report (script output, kernel log).
pub fn run(env: &Env, cfg: &Config, modules: &Modules) -> Result<Figures, String> {
    let mut boots = plan::boots(cfg);
    // the longest first, so the last guests running are short ones
    boots.sort_by_key(|b| std::cmp::Reverse(b.timeout));
    let total = boots.len();
    let queue = Mutex::new(boots.into_iter().enumerate().collect::<VecDeque<_>>());
    let figures = Mutex::new(Figures::default());
    let error: Mutex<Option<String>> = Mutex::new(None);
    let done = Mutex::new(0usize);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| loop {
                if error.lock().unwrap().is_some() {
                    return;
                }
                let Some((_, boot)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let r = run_boot(env, cfg, modules, &boot).and_then(|out| {
                    results::gather(
                        &boot,
                        &out,
                        cfg.calls,
                        cfg.reps,
                        &mut figures.lock().unwrap(),
                    )
                    .map_err(|e| format!("{e}\n---- guest output ----\n{out}"))
                });
                let mut d = done.lock().unwrap();
                *d += 1;
                if cfg.verbose {
                    eprintln!(
                        "lpatch-bench: [{}/{total}] {} {} ({:.0?} since start)",
                        *d,
                        boot.name,
                        match &r {
                            Ok(up) => format!("ok, guest time {up:.1} s"),
                            Err(_) => "FAILED".into(),
                        },
                        Duration::from_secs(start.elapsed().as_secs())
                    );
                }
                if let Err(e) = r {
                    error
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("{}: {e}", boot.name));
                    return;
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(figures.into_inner().unwrap())
}

/// One guest: its script's output, or why it failed (with the whole VM report).
fn run_boot(
    env: &Env,
    cfg: &Config,
    modules: &Modules,
    boot: &plan::Boot,
) -> Result<String, String> {
    let mut vm = Vm::new()
        .kernel_dir(&env.kernel_dir)
        .smp(1)
        .qemu_args(&ICOUNT)
        .timeout(boot.timeout)
        .script(&boot.script(cfg.reps, cfg.calls));
    for m in boot.modules() {
        let p = modules
            .get(&m)
            .ok_or_else(|| format!("module {m} was not prepared"))?;
        vm = vm.ko(p);
    }
    let run = vm.run().map_err(|e| format!("the VM could not run: {e}"))?;
    // Every guest's output and kernel log stay for auditing the figures.
    let logs = env.build.join("bench").join(&cfg.gen_name).join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let _ = std::fs::write(logs.join(format!("{}.out", boot.name)), &run.output);
    let _ = std::fs::write(logs.join(format!("{}.kernel", boot.name)), &run.kernel_log);
    let problems = run.problems();
    if !problems.is_empty() || run.status != Some(0) {
        return Err(format!(
            "guest failed ({}; status {:?})\n{}",
            problems.join("; "),
            run.status,
            run.report()
        ));
    }
    Ok(run.output)
}

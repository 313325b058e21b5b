// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-bench`: builds the benchmark modules, runs them in qemu guests under -icount,
//! prints a table and writes the figures as JSON. See `--help`.

use lpatch_bench::{elf, prepare, report, run, Config, Env, ICOUNT};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
Usage: lpatch-bench [OPTIONS]

Builds the benchmark modules (samples/bench-* and generated ones under build/), boots
Debian's kernel in qemu TCG with -icount shift=0,sleep=off (guest time = executed
instructions) and measures lpatch against the in-kernel livepatch (klp):
  P1 per-call cost of a redirected function,
  P2 enable and disable time of patches of N functions (every function verified),
  P3 memory.
Then times `lpatch build` on the host: a one-file vmlinux fix through --dry-run on the
warm cache, and a first preparation of $CORPUS_KERNEL's tree (default 6.1.0-50-amd64)
from nothing, with its disk use (a temporary cache, removed afterwards).
Prints a table and writes the same figures as JSON. Needs `make all` done first.

Options:
  --sizes LIST    patch sizes, comma-separated, each 1..1000 (default 1,100,1000)
  --reps N        repetitions: P1 runs per boot, P2 boots per core and size (default 5)
  --calls N       calls per P1 run (default 1000000)
  --jobs N        guests at once, 1 vCPU each (default 2)
  --json PATH     where to write the JSON (default build/bench.json)
  --quick         the variant `make test` runs: sizes 1,100, 1 rep, 10000 calls, one
                  boot per core, no lpatch build timing (figures not for comparison)
  --no-build      skip the lpatch build timing
  --build-only    only the lpatch build timing (no guests)
  -h, --help      this text
";

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpatch-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), String> {
    let mut cfg = Config::full();
    let mut json_path = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mut quick = false;
    let mut no_build = false;
    let mut build_only = false;
    let mut overrides: Vec<(String, String)> = Vec::new();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--quick" => quick = true,
            "--no-build" => no_build = true,
            "--build-only" => build_only = true,
            "--sizes" | "--reps" | "--calls" | "--jobs" | "--json" => {
                let v = inline
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))?;
                overrides.push((name, v));
            }
            _ => return Err(format!("unknown option {a:?}\n\n{USAGE}")),
        }
    }
    if quick {
        cfg = Config::quick();
    }
    if no_build {
        cfg.builder = None;
    }
    let count = |n: &str, v: &str| -> Result<u64, String> {
        v.parse::<u64>()
            .ok()
            .filter(|&x| x > 0)
            .ok_or_else(|| format!("{n}: not a positive number: {v:?}"))
    };
    for (n, v) in overrides {
        match n.as_str() {
            "--sizes" => {
                cfg.sizes = v
                    .split(',')
                    .map(|s| count(&n, s.trim()).map(|x| x as usize))
                    .collect::<Result<_, _>>()?;
                if let Some(bad) = cfg
                    .sizes
                    .iter()
                    .find(|&&s| s > lpatch_bench::gen::TARGET_FUNCS)
                {
                    return Err(format!(
                        "--sizes: {bad} is over {}",
                        lpatch_bench::gen::TARGET_FUNCS
                    ));
                }
                cfg.sizes.sort_unstable();
                cfg.sizes.dedup();
            }
            "--reps" => cfg.reps = count(&n, &v)? as usize,
            "--calls" => cfg.calls = count(&n, &v)?,
            "--jobs" => cfg.jobs = count(&n, &v)? as usize,
            "--json" => json_path = Some(std::path::PathBuf::from(v)),
            _ => unreachable!(),
        }
    }

    if build_only {
        let kver = cfg
            .builder
            .clone()
            .unwrap_or_else(|| "6.1.0-50-amd64".into());
        let b = lpatch_bench::builder::measure(Some(&kver))?;
        print!("{}", lpatch_bench::builder::table(&b));
        return Ok(());
    }
    let env = Env::detect()?;
    let json_path = json_path.unwrap_or_else(|| env.root.join("build/bench.json"));
    eprintln!("lpatch-bench: building the modules");
    let t = Instant::now();
    let modules = prepare(&env, &cfg.gen_name, &cfg.sizes)?;
    eprintln!(
        "lpatch-bench: modules ready ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let boots = lpatch_bench::plan::boots(&cfg.sizes, cfg.reps, cfg.combine).len();
    eprintln!("lpatch-bench: {boots} guest boots, {} at a time", cfg.jobs);
    let start = Instant::now();
    let figures = run(&env, &cfg, &modules)?;
    let meta = report::Meta {
        date: report::today(),
        kernel: lpatch_vm::kernel_release(&env.kernel_dir).map_err(|e| e.to_string())?,
        qemu_args: ICOUNT.join(" "),
        sizes: cfg.sizes.clone(),
        reps: cfg.reps,
        calls: cfg.calls,
        boots,
        wall_secs: start.elapsed().as_secs_f64(),
        lpatch_ko: elf::section_sizes(modules.get("lpatch.ko").unwrap())?,
        fresh_boots: !cfg.combine,
    };
    print!("{}", report::table(&figures, &meta));
    let mut value = report::json(&figures, &meta);
    if let Some(kver) = &cfg.builder {
        eprintln!("lpatch-bench: timing lpatch build on the host");
        let b = lpatch_bench::builder::measure(Some(kver))?;
        print!("{}", lpatch_bench::builder::table(&b));
        value["lpatch_build"] = lpatch_bench::builder::json(&b);
    }
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    if let Some(d) = json_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    std::fs::write(&json_path, text + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!("JSON: {}", json_path.display());
    Ok(())
}

// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-bench`: builds the benchmark modules, runs them in qemu guests under -icount,
//! prints a table and writes the figures as JSON. See `--help`.

use lpatch_bench::{cli, elf, prepare, report, run, Env};
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
N = 1, 100, 1000: lpatch, klp and one raw ftrace_ops (the control), 5 boots each;
N = 10000: lpatch and the raw control only, 3 boots each (klp there takes minutes per
run: --klp-at measures it once). Sizes up to 1000 patch a target of 1000 functions,
larger ones a target of 10000.
Then times `lpatch build` on the host: a one-file vmlinux fix through --dry-run on the
warm cache; the same fix from diff to loadable module (P6), beside kbuild of a
hand-written patch module of it; and a first preparation of $CORPUS_KERNEL's tree
(default 6.1.0-50-amd64) from nothing, with its disk use (a temporary cache, removed
afterwards).
Prints a table and writes the same figures as JSON. Needs `make all` done first.

Options:
  --sizes LIST    patch sizes, comma-separated, each 1..10000 (default 1,100,1000,10000);
                  klp runs at the sizes up to 1000 only
  --reps N        repetitions: P1 runs per boot, P2 boots per core at sizes up to 1000
                  (default 5)
  --big-reps N    P2 boots per core at sizes above 1000 (default 3, or --reps if fewer)
  --calls N       calls per P1 run (default 1000000)
  --jobs N        guests at once, 1 vCPU each (default 2)
  --json PATH     where to write the JSON (default build/bench.json; with --klp-at,
                  build/bench-klp-N.json)
  --timeout SECS  wall-clock floor of every guest's timeout (default: by its work)
  --quick         the variant `make test` runs: sizes 1,100, 1 rep, 10000 calls, one
                  boot per core, no lpatch build timing (figures not for comparison)
  --klp-at N      the one-off klp measurement, part of neither make bench nor make test:
                  klp's enable and disable of N functions (1..10000), beside lpatch and
                  the raw control at N, one boot each (--big-reps / --reps for more), no
                  P1 and no lpatch build timing. Guests may run 3 hours (--timeout) and
                  klp's transition is polled every 20 ms. At N = 10000 expect about
                  1.5 min of guest time to enable and 21 min to disable: run it once on an
                  idle host and record the figures, with the date, in README:
                    cd crates && cargo run --release -p lpatch-bench -- --klp-at 10000
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = cli::parse(&args).map_err(|e| format!("{e}\n\n{USAGE}"))?;
    if a.help {
        print!("{USAGE}");
        return Ok(());
    }
    let cfg = &a.cfg;
    if a.build_only {
        let kver = cfg
            .builder
            .clone()
            .unwrap_or_else(|| "6.1.0-50-amd64".into());
        let env = Env::detect()?;
        let b = lpatch_bench::builder::measure(&env, Some(&kver))?;
        print!("{}", lpatch_bench::builder::table(&b));
        return Ok(());
    }
    let env = Env::detect()?;
    let json_path = a.json_path(&env.root);
    eprintln!("lpatch-bench: building the modules");
    let t = Instant::now();
    let modules = prepare(&env, &cfg.gen_name, &cfg.patches())?;
    eprintln!(
        "lpatch-bench: modules ready ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let boots = lpatch_bench::plan::boots(cfg).len();
    eprintln!("lpatch-bench: {boots} guest boots, {} at a time", cfg.jobs);
    let start = Instant::now();
    let figures = run(&env, cfg, &modules)?;
    let meta = report::Meta::of(
        cfg,
        lpatch_vm::kernel_release(&env.kernel_dir).map_err(|e| e.to_string())?,
        start.elapsed().as_secs_f64(),
        elf::section_sizes(modules.get("lpatch.ko").unwrap())?,
    );
    print!("{}", report::table(&figures, &meta));
    let mut value = report::json(&figures, &meta);
    if let Some(kver) = &cfg.builder {
        eprintln!("lpatch-bench: timing lpatch build on the host");
        let b = lpatch_bench::builder::measure(&env, Some(kver))?;
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

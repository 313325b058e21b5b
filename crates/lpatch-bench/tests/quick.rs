// SPDX-License-Identifier: GPL-2.0-only
//! The quick variant of `make bench`, so the benchmark cannot rot: sizes 1 and 100, one
//! repetition, 10,000 calls, one boot per core (two guests at once, 1 vCPU each, about
//! 40 s). It checks that every measured function really was redirected (and restored)
//! and that every figure was produced; the figures are printed, not asserted.
//! Needs `make all` (lpatch.ko); builds the bench modules itself.

use lpatch_bench::plan::Core;
use lpatch_bench::results::{MemKind, Phase};
use lpatch_bench::{elf, prepare, report, run, Config, Env};

#[test]
fn quick_bench() {
    let env = Env::detect().unwrap();
    let cfg = Config::quick();
    let modules = prepare(&env, &cfg.gen_name, &cfg.patches()).unwrap_or_else(|e| panic!("{e}"));
    let start = std::time::Instant::now();
    let fig = run(&env, &cfg, &modules).unwrap_or_else(|e| panic!("{e}"));

    for label in ["unpatched", "direct", "raw", "lpatch", "klp"] {
        let v = fig
            .p1
            .get(label)
            .unwrap_or_else(|| panic!("no P1 figure for {label}"));
        // unpatched and direct are measured in both P1 guests
        let want = if matches!(label, "unpatched" | "direct") {
            2 * cfg.reps
        } else {
            cfg.reps
        };
        assert_eq!(v.len(), want, "P1 {label}");
        assert!(v.iter().all(|&ns| ns > 0.0), "P1 {label}: {v:?}");
    }
    let mut redirected = 0;
    for &n in &cfg.sizes {
        for core in [Core::Lpatch, Core::Klp, Core::Raw] {
            let mut phases = vec![Phase::Enable, Phase::Disable];
            if core != Core::Raw {
                phases.push(Phase::LoadOnly);
            }
            for ph in phases {
                let v = fig
                    .p2
                    .get(&(core, n, ph))
                    .unwrap_or_else(|| panic!("no P2 {core:?} {n} {ph:?}"));
                assert_eq!(v.len(), cfg.reps);
                assert!(
                    v.iter().all(|&ms| ms > 0.0),
                    "P2 {core:?} {n} {ph:?}: {v:?}"
                );
            }
            assert!(
                fig.mem.contains_key(&(core, n, MemKind::Enable)),
                "no P3 {core:?} {n}"
            );
            redirected += n;
        }
    }
    // results::gather checked each patch's functions one by one, in the guest.
    assert_eq!(fig.verified_redirected, redirected);
    assert_eq!(fig.verified_restored, redirected);

    let meta = report::Meta::of(
        &cfg,
        lpatch_vm::kernel_release(&env.kernel_dir).unwrap(),
        start.elapsed().as_secs_f64(),
        elf::section_sizes(modules.get("lpatch.ko").unwrap()).unwrap(),
    );
    let json = report::json(&fig, &meta);
    assert!(json["p1"]["ns_per_call"]["lpatch"]["median"].is_f64());
    eprint!("{}", report::table(&fig, &meta));
}

// SPDX-License-Identifier: GPL-2.0-only
//! `lpatch-bench`'s command line (its usage text is in main.rs), parsed into a [`Config`].

use crate::{gen, Config};
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Args {
    pub cfg: Config,
    /// `--json PATH`.
    pub json: Option<PathBuf>,
    /// `--klp-at N`: the one-off klp measurement at N ([`Config::klp_at`]).
    pub klp_at: Option<usize>,
    pub build_only: bool,
    pub help: bool,
}

impl Args {
    /// Where the JSON goes, under the repository `root` unless `--json` said: build/bench.json,
    /// or build/bench-klp-N.json for the one-off klp run (which must not overwrite
    /// `make bench`'s).
    pub fn json_path(&self, root: &std::path::Path) -> PathBuf {
        match (&self.json, self.klp_at) {
            (Some(p), _) => p.clone(),
            (None, Some(n)) => root.join(format!("build/bench-klp-{n}.json")),
            (None, None) => root.join("build/bench.json"),
        }
    }
}

fn count(n: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|&x| x > 0)
        .ok_or_else(|| format!("{n}: not a positive number: {v:?}"))
}

fn size(n: &str, v: &str) -> Result<usize, String> {
    let x = count(n, v)? as usize;
    if x > gen::MAX_SIZE {
        return Err(format!("{n}: {x} is over {}", gen::MAX_SIZE));
    }
    Ok(x)
}

/// Parses the arguments (without the program name). An error names the bad argument.
pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    let mut quick = false;
    let mut no_build = false;
    let mut build_only = false;
    let mut klp_at: Option<String> = None;
    let mut overrides: Vec<(String, String)> = Vec::new();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => {
                return Ok(Args {
                    cfg: Config::full(),
                    json: None,
                    klp_at: None,
                    build_only: false,
                    help: true,
                })
            }
            "--quick" => quick = true,
            "--no-build" => no_build = true,
            "--build-only" => build_only = true,
            "--sizes" | "--reps" | "--big-reps" | "--calls" | "--jobs" | "--json" | "--timeout"
            | "--klp-at" => {
                let v = inline
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))?;
                if name == "--klp-at" {
                    klp_at = Some(v);
                } else {
                    overrides.push((name, v));
                }
            }
            _ => return Err(format!("unknown option {a:?}")),
        }
    }
    let klp_at = klp_at.map(|v| size("--klp-at", &v)).transpose()?;
    let mut cfg = match (klp_at, quick) {
        (Some(_), true) => return Err("--klp-at and --quick do not go together".into()),
        (Some(_), false) if build_only => {
            return Err("--klp-at and --build-only do not go together".into())
        }
        (Some(n), false) => {
            if overrides.iter().any(|(o, _)| o == "--sizes") {
                return Err("--klp-at measures its one size: no --sizes with it".into());
            }
            Config::klp_at(n)
        }
        (None, true) => Config::quick(),
        (None, false) => Config::full(),
    };
    if no_build {
        cfg.builder = None;
    }
    let mut json = None;
    let mut big_reps = None;
    for (n, v) in overrides {
        match n.as_str() {
            "--sizes" => {
                cfg.sizes = v
                    .split(',')
                    .map(|s| size(&n, s))
                    .collect::<Result<_, _>>()?;
                cfg.sizes.sort_unstable();
                cfg.sizes.dedup();
            }
            "--reps" => cfg.reps = count(&n, &v)? as usize,
            "--big-reps" => big_reps = Some(count(&n, &v)? as usize),
            "--calls" => cfg.calls = count(&n, &v)?,
            "--jobs" => cfg.jobs = count(&n, &v)? as usize,
            "--timeout" => cfg.min_timeout = count(&n, &v)?,
            "--json" => json = Some(PathBuf::from(v)),
            _ => unreachable!(),
        }
    }
    // Fewer repetitions asked for: the big sizes get no more than the others.
    cfg.big_reps = big_reps.unwrap_or(cfg.big_reps.min(cfg.reps));
    Ok(Args {
        cfg,
        json,
        klp_at,
        build_only,
        help: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, Core};

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_are_make_bench() {
        let a = p(&[]).unwrap();
        assert_eq!(a.cfg.sizes, [1, 100, 1000, 10_000]);
        assert_eq!((a.cfg.reps, a.cfg.big_reps, a.cfg.klp_max), (5, 3, 1000));
        assert!(a.cfg.p1 && a.cfg.builder.is_some() && a.klp_at.is_none());
        let root = std::path::Path::new("/r");
        assert_eq!(a.json_path(root), root.join("build/bench.json"));
        // make bench's own arguments
        let a = p(&["--json", "/x/bench.json"]).unwrap();
        assert_eq!(a.json_path(root), PathBuf::from("/x/bench.json"));
        assert!(!a.cfg.klp_measured(10_000));
    }

    #[test]
    fn klp_at_is_a_run_of_its_own() {
        let a = p(&["--klp-at", "10000"]).unwrap();
        assert_eq!(a.klp_at, Some(10_000));
        assert_eq!(a.cfg.sizes, [10_000]);
        assert!(a.cfg.klp_measured(10_000) && !a.cfg.p1 && a.cfg.builder.is_none());
        assert_eq!(a.cfg.big_reps, 1);
        assert_eq!(a.cfg.min_timeout, crate::KLP_AT_TIMEOUT);
        assert_eq!(
            a.json_path(std::path::Path::new("/r")),
            PathBuf::from("/r/build/bench-klp-10000.json")
        );
        assert!(a.cfg.patches().contains(&(Core::Klp, 10_000)));
        assert_eq!(plan::boots(&a.cfg).len(), 2);
        let a = p(&["--klp-at=10000", "--big-reps", "2", "--timeout", "20000"]).unwrap();
        assert_eq!((a.cfg.big_reps, a.cfg.min_timeout), (2, 20_000));
        assert_eq!(plan::boots(&a.cfg).len(), 4);
        for bad in [
            &["--klp-at", "10001"][..],
            &["--klp-at", "0"],
            &["--klp-at"],
            &["--klp-at", "1000", "--quick"],
            &["--klp-at", "1000", "--sizes", "1"],
            &["--klp-at", "1000", "--build-only"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_and_reps() {
        let a = p(&["--sizes", "10000, 1,1"]).unwrap();
        assert_eq!(a.cfg.sizes, [1, 10_000]);
        assert!(p(&["--sizes", "10001"]).is_err());
        // fewer reps: the big sizes follow; --big-reps decides alone
        assert_eq!(p(&["--reps", "2"]).unwrap().cfg.big_reps, 2);
        assert_eq!(p(&["--reps", "9"]).unwrap().cfg.big_reps, 3);
        assert_eq!(
            p(&["--reps", "1", "--big-reps", "4"]).unwrap().cfg.big_reps,
            4
        );
        let q = p(&["--quick"]).unwrap();
        assert_eq!(q.cfg.sizes, [1, 100]);
        assert!(q.cfg.combine);
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--help", "--bogus"]).unwrap().help);
    }
}

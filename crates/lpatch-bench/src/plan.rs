// SPDX-License-Identifier: GPL-2.0-only
//! What each guest boot does: a list of steps, turned into one busybox sh script whose
//! `BENCH ...` lines the host parses ([`crate::results`]).
//!
//! Timing is guest-side: `read t < /proc/lpb_clock` (a shell builtin reading the target
//! module's ktime_get_ns, no fork) before the action, and `/proc/lpb_probe` after it, which
//! calls the first patched function and then reads the clock. Under -icount both follow
//! the executed instructions.

use crate::gen::{patch_module, target_for, Target};
use crate::Config;

/// Who redirects the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Core {
    Lpatch,
    Klp,
    /// The control: one ftrace_ops set up by hand.
    Raw,
}

impl Core {
    pub fn name(self) -> &'static str {
        match self {
            Core::Lpatch => "lpatch",
            Core::Klp => "klp",
            Core::Raw => "raw",
        }
    }
    pub fn from_name(s: &str) -> Option<Core> {
        match s {
            "lpatch" => Some(Core::Lpatch),
            "klp" => Some(Core::Klp),
            "raw" => Some(Core::Raw),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Per-call cost: unpatched, direct (and the raw-ops control for lpatch), then patched
    /// by the core (Lpatch or Klp), `reps` runs of `calls` calls each; the patch is
    /// disabled at the end, so later steps find ftrace as it was.
    P1(Core),
    /// Enable and disable time and memory of a patch of N functions. For lpatch and klp,
    /// first the load-only control (the same module with load_only=1, then rmmod).
    P2(Core, usize),
}

/// One guest boot.
#[derive(Debug, Clone)]
pub struct Boot {
    pub name: String,
    pub steps: Vec<Step>,
    /// Wall-clock limit, seconds.
    pub timeout: u64,
    /// How long klp_wait sleeps between two reads of a klp transition, microseconds.
    pub klp_poll_us: u32,
}

impl Boot {
    /// The modules the guest needs (file names, as built).
    pub fn modules(&self) -> Vec<String> {
        let mut m: Vec<String> = Vec::new();
        let mut add = |s: String| {
            if !m.contains(&s) {
                m.push(s);
            }
        };
        let lp = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::P1(Core::Lpatch) | Step::P2(Core::Lpatch, _)));
        if lp {
            add("lpatch.ko".into());
        }
        for s in &self.steps {
            match *s {
                Step::P1(c) => {
                    add("bench_target.ko".into());
                    add(if c == Core::Klp {
                        "bench_klp.ko"
                    } else {
                        "bench_lp.ko"
                    }
                    .into());
                }
                Step::P2(c, n) => {
                    add(format!("{}.ko", target(n).module));
                    add(format!("{}.ko", patch_module(c, n)));
                }
            }
        }
        m
    }

    /// The guest script. A boot's P2 steps all patch one target ([`boots`] groups them so):
    /// the targets' proc files share names.
    pub fn script(&self, reps: usize, calls: u64) -> String {
        let mut s = String::from(PRELUDE);
        s.push_str(&format!("POLL_US={}\n", self.klp_poll_us));
        if self.modules().iter().any(|m| m == "lpatch.ko") {
            s.push_str("insmod lpatch.ko || fail insmod lpatch\n");
        }
        let mut p1_target = false;
        let mut p2_target: Option<Target> = None;
        for step in &self.steps {
            match *step {
                Step::P1(c) => {
                    if !std::mem::replace(&mut p1_target, true) {
                        s.push_str("insmod bench_target.ko || fail insmod bench_target\n");
                    }
                    s.push_str(&format!("p1_{} {reps} {calls}\n", c.name()));
                }
                Step::P2(c, n) => {
                    let t = target(n);
                    match p2_target {
                        None => {
                            let m = t.module;
                            s.push_str(&format!("insmod {m}.ko || fail insmod {m}\n"));
                            p2_target = Some(t);
                        }
                        Some(loaded) => assert_eq!(
                            loaded, t,
                            "boot {}: P2 steps of two targets in one boot",
                            self.name
                        ),
                    }
                    s.push_str(&format!("p2_{} {n}\n", c.name()));
                }
            }
        }
        s.push_str("read up idle < /proc/uptime; echo \"BENCH done $up\"\n");
        s
    }
}

/// Shell functions the steps call. Every measured action is bracketed by builtins only
/// (read, echo, test): no fork between the two clock reads other than insmod/rmmod.
const PRELUDE: &str = r#"set -u
fail() { echo "BENCH fail $*"; dmesg | tail -20; exit 1; }
mem() {
	# stat_refresh folds the per-cpu counter deltas into the global figures /proc/meminfo shows
	sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/stat_refresh
	echo "BENCH mem $1 $(awk '/^(MemAvailable|Slab|VmallocUsed):/ { sub(":", "", $1); printf "%s=%s ", $1, $2 }' /proc/meminfo)vmallocinfo_kb=$(awk '{ s += $2 } END { printf "%d", s / 1024 }' /proc/vmallocinfo) pcp_kb=$(awk '$1 == "count:" { s += $2 } END { print s * 4 }' /proc/zoneinfo)"
}
# klp_wait <patch>: until its transition reads 0 (or the patch is gone); polls counts the
# reads that found it still in transition (each then sleeps $POLL_US microseconds: 500 in
# make bench, longer in the one-off --klp-at runs, whose transitions last minutes).
klp_wait() {
	polls=0
	while read tr < /sys/kernel/livepatch/$1/transition && [ "$tr" = 1 ]; do
		polls=$((polls + 1)); usleep $POLL_US
	done
}
check() { read cp cq cb < /proc/lpb_check; echo "BENCH check $1 $2 $3 $cp $cq $cb"; }

# p1 <label> <mode> <reps> <calls>
p1() {
	i=0
	while [ $i -lt $3 ]; do
		echo "$2 $4" > /proc/bench_target || fail p1 $1
		read md n ns v < /proc/bench_target
		echo "BENCH p1 $1 $n $ns $v"
		i=$((i + 1))
	done
}
p1_lpatch() {
	p1 unpatched f $1 $2
	p1 direct direct $1 $2
	echo "rawops 1" > /proc/bench_target || fail rawops on
	p1 raw f $1 $2
	echo "rawops 0" > /proc/bench_target || fail rawops off
	insmod bench_lp.ko || fail insmod bench_lp
	p1 lpatch f $1 $2
	echo 0 > /sys/kernel/lpatch/bench_lp/enabled || fail disable bench_lp
	p1 unpatched_after f 1 $2
}
p1_klp() {
	p1 unpatched f $1 $2
	p1 direct direct $1 $2
	insmod bench_klp.ko || fail insmod bench_klp
	klp_wait bench_klp
	p1 klp f $1 $2
	echo 0 > /sys/kernel/livepatch/bench_klp/enabled || fail disable bench_klp
	klp_wait bench_klp
	p1 unpatched_after f 1 $2
}

# The load-only control: <core> <n> <module>
load_only() {
	mem $1.$2.before_load
	read t0 < /proc/lpb_clock; insmod $3.ko load_only=1 || fail insmod $3 load_only; read pn pv < /proc/lpb_probe
	echo "BENCH p2 $1 $2 load_only $t0 $pn $pv 0"
	mem $1.$2.loaded
	rmmod $3 || fail rmmod $3
}
p2_lpatch() {
	m=lpb_lp_$1
	load_only lpatch $1 $m
	mem lpatch.$1.pre
	read t0 < /proc/lpb_clock; insmod $m.ko || fail insmod $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 lpatch $1 enable $t0 $pn $pv 0"
	check lpatch $1 enabled
	mem lpatch.$1.post
	read t0 < /proc/lpb_clock; echo 0 > /sys/kernel/lpatch/$m/enabled || fail disable $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 lpatch $1 disable $t0 $pn $pv 0"
	check lpatch $1 disabled
}
p2_klp() {
	m=lpb_klp_$1
	load_only klp $1 $m
	mem klp.$1.pre
	read t0 < /proc/lpb_clock; insmod $m.ko || fail insmod $m; klp_wait $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 klp $1 enable $t0 $pn $pv $polls"
	check klp $1 enabled
	mem klp.$1.post
	read t0 < /proc/lpb_clock; echo 0 > /sys/kernel/livepatch/$m/enabled || fail disable $m; klp_wait $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 klp $1 disable $t0 $pn $pv $polls"
	check klp $1 disabled
}
p2_raw() {
	m=lpb_raw_$1
	mem raw.$1.pre
	read t0 < /proc/lpb_clock; insmod $m.ko || fail insmod $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 raw $1 enable $t0 $pn $pv 0"
	check raw $1 enabled
	mem raw.$1.post
	read t0 < /proc/lpb_clock; rmmod $m || fail rmmod $m; read pn pv < /proc/lpb_probe
	echo "BENCH p2 raw $1 disable $t0 $pn $pv 0"
	check raw $1 disabled
}
"#;

fn target(n: usize) -> Target {
    target_for(n).unwrap_or_else(|| panic!("patch size {n} has no target"))
}

/// Wall-clock limit of a boot, seconds: boot, plus klp's ~9.6 ms of guest time per
/// function enabled (about 8 s of wall per guest second of work under TCG -icount), plus
/// 10 ms per function of the other P2 steps; at least `min`.
pub fn timeout(steps: &[Step], min: u64) -> u64 {
    let mut t = 180u64;
    for s in steps {
        if let Step::P2(c, n) = *s {
            let n = n as u64;
            t += if c == Core::Klp {
                n * 9 / 50 * 2
            } else {
                n / 100
            };
        }
    }
    t.max(min)
}

/// The boots of a run. `cfg.combine`: one boot per core and target holding every step
/// (the quick variant: later steps then find the disabled patch modules of earlier ones
/// still loaded); otherwise a fresh boot for every P2 step and repetition, so that every
/// measurement starts from the same machine (and lpatch and klp cannot hold one function
/// at once). klp runs at the sizes [`Config::klp_measured`] allows only, P1 only if `cfg.p1`.
pub fn boots(cfg: &Config) -> Vec<Boot> {
    let boot = |name: String, steps: Vec<Step>| Boot {
        name,
        timeout: timeout(&steps, cfg.min_timeout),
        steps,
        klp_poll_us: cfg.klp_poll_us,
    };
    let p2 = |core: Core, n: usize| -> Vec<Step> {
        match core {
            // raw after lpatch, in the same boot
            Core::Lpatch => vec![Step::P2(Core::Lpatch, n), Step::P2(Core::Raw, n)],
            Core::Klp if cfg.klp_measured(n) => vec![Step::P2(Core::Klp, n)],
            _ => Vec::new(),
        }
    };
    let mut v = Vec::new();
    if cfg.combine {
        let mut targets: Vec<Target> = cfg.sizes.iter().map(|&n| target(n)).collect();
        targets.sort_by_key(|t| t.funcs);
        targets.dedup();
        for core in [Core::Lpatch, Core::Klp] {
            for (i, t) in targets.iter().enumerate() {
                let mut steps = Vec::new();
                if cfg.p1 && i == 0 {
                    steps.push(Step::P1(core));
                }
                for &n in cfg.sizes.iter().filter(|&&n| target(n) == *t) {
                    steps.extend(p2(core, n));
                }
                if steps.is_empty() {
                    continue;
                }
                let name = if i == 0 {
                    format!("{}-all", core.name())
                } else {
                    format!("{}-all-{}", core.name(), t.module)
                };
                v.push(boot(name, steps));
            }
        }
    } else {
        if cfg.p1 {
            for core in [Core::Lpatch, Core::Klp] {
                v.push(boot(format!("p1-{}", core.name()), vec![Step::P1(core)]));
            }
        }
        for &n in &cfg.sizes {
            for r in 1..=cfg.reps_at(n) {
                for core in [Core::Lpatch, Core::Klp] {
                    let steps = p2(core, n);
                    if !steps.is_empty() {
                        v.push(boot(format!("p2-{}-{n}-rep{r}", core.name()), steps));
                    }
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(sizes: &[usize], reps: usize, combine: bool) -> Config {
        Config {
            sizes: sizes.to_vec(),
            reps,
            big_reps: reps,
            combine,
            ..Config::full()
        }
    }

    #[test]
    fn plan_and_script() {
        let b = boots(&cfg(&[1, 100], 2, false));
        assert_eq!(b.len(), 2 + 2 * 2 * 2);
        let lp = b.iter().find(|b| b.name == "p2-lpatch-100-rep2").unwrap();
        assert_eq!(
            lp.modules(),
            [
                "lpatch.ko",
                "lpb_target.ko",
                "lpb_lp_100.ko",
                "lpb_raw_100.ko"
            ]
        );
        let s = lp.script(3, 1000);
        assert!(s.contains("insmod lpatch.ko") && s.contains("p2_lpatch 100\np2_raw 100\n"));
        assert!(s.contains("insmod lpb_target.ko ") && s.contains("POLL_US=500\n"));
        let klp = b.iter().find(|b| b.name == "p1-klp").unwrap();
        assert!(!klp.modules().contains(&"lpatch.ko".to_string()));
        assert!(klp.script(3, 1000).contains("p1_klp 3 1000\n"));
        let q = boots(&Config::quick());
        assert_eq!(q.len(), 2);
        assert_eq!(
            q[0].script(1, 10).matches("insmod lpb_target.ko").count(),
            1
        );
        assert_eq!(q.iter().map(|b| b.timeout).collect::<Vec<_>>(), [182, 216]);
    }

    #[test]
    fn full_run_measures_10000_without_klp() {
        let c = Config::full();
        assert_eq!(c.sizes, [1, 100, 1000, 10_000]);
        let b = boots(&c);
        let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
        // P1, then 5 boots per core at 1, 100 and 1000, and 3 of lpatch (with raw) at 10,000
        assert_eq!(b.len(), 2 + 3 * 5 * 2 + 3);
        assert!(
            names.contains(&"p2-lpatch-10000-rep3") && !names.contains(&"p2-lpatch-10000-rep4")
        );
        assert!(!names.iter().any(|n| n.starts_with("p2-klp-10000")));
        assert!(b
            .iter()
            .all(|b| !b.modules().contains(&"lpb_klp_10000.ko".to_string())));
        let big = b.iter().find(|b| b.name == "p2-lpatch-10000-rep1").unwrap();
        assert_eq!(
            big.modules(),
            [
                "lpatch.ko",
                "lpb_target_big.ko",
                "lpb_lp_10000.ko",
                "lpb_raw_10000.ko"
            ]
        );
        let s = big.script(5, 1);
        assert!(s.contains("insmod lpb_target_big.ko ") && !s.contains("insmod lpb_target.ko"));
        assert_eq!(big.timeout, 180 + 200);
        // the 1000 boots load the 1,000-function target, as before
        let small = b.iter().find(|b| b.name == "p2-klp-1000-rep5").unwrap();
        assert_eq!(small.modules(), ["lpb_target.ko", "lpb_klp_1000.ko"]);
        assert_eq!(small.timeout, 180 + 360);
        // the modules prepare builds: no klp at 10,000
        let p = c.patches();
        assert!(p.contains(&(Core::Lpatch, 10_000)) && p.contains(&(Core::Raw, 10_000)));
        assert!(!p.contains(&(Core::Klp, 10_000)) && p.contains(&(Core::Klp, 1000)));
    }

    #[test]
    fn one_off_klp_at_10000() {
        let c = Config::klp_at(10_000);
        let b = boots(&c);
        let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["p2-lpatch-10000-rep1", "p2-klp-10000-rep1"]);
        let klp = &b[1];
        assert_eq!(klp.modules(), ["lpb_target_big.ko", "lpb_klp_10000.ko"]);
        // klp's 10,000 functions: an hour by the formula, three by the floor
        assert_eq!(timeout(&klp.steps, 0), 180 + 3600);
        assert_eq!(klp.timeout, crate::KLP_AT_TIMEOUT);
        assert!(klp.timeout >= 3 * 3600);
        assert!(klp.script(1, 1).contains("POLL_US=20000\n"));
        assert!(c.patches().contains(&(Core::Klp, 10_000)));
    }

    #[test]
    fn combined_boots_keep_one_target_each() {
        let b = boots(&cfg(&[1, 100, 10_000], 1, true));
        let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
        // no klp at 10,000: its boot of the big target would be empty
        assert_eq!(
            names,
            ["lpatch-all", "lpatch-all-lpb_target_big", "klp-all"]
        );
        for boot in &b {
            // script() asserts one target per boot
            let s = boot.script(1, 1);
            let loads = s.lines().filter(|l| l.starts_with("insmod lpb_target"));
            assert_eq!(loads.count(), 1, "{}", boot.name);
        }
        assert!(!b[1].steps.iter().any(|s| matches!(s, Step::P1(_))));
    }
}

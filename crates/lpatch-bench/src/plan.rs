// SPDX-License-Identifier: GPL-2.0-only
//! What each guest boot does: a list of steps, turned into one busybox sh script whose
//! `BENCH ...` lines the host parses ([`crate::results`]).
//!
//! Timing is guest-side: `read t < /proc/lpb_clock` (a shell builtin reading the target
//! module's ktime_get_ns, no fork) before the action, and `/proc/lpb_probe` after it, which
//! calls the first patched function and then reads the clock. Under -icount both follow
//! the executed instructions.

use crate::gen::{klp_module, lp_module, raw_module, TARGET_MODULE};

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
                    add(format!("{TARGET_MODULE}.ko"));
                    add(format!(
                        "{}.ko",
                        match c {
                            Core::Lpatch => lp_module(n),
                            Core::Klp => klp_module(n),
                            Core::Raw => raw_module(n),
                        }
                    ));
                }
            }
        }
        m
    }

    /// The guest script.
    pub fn script(&self, reps: usize, calls: u64) -> String {
        let mut s = String::from(PRELUDE);
        if self.modules().iter().any(|m| m == "lpatch.ko") {
            s.push_str("insmod lpatch.ko || fail insmod lpatch\n");
        }
        let mut target_loaded = [false, false];
        for step in &self.steps {
            match *step {
                Step::P1(c) => {
                    if !std::mem::replace(&mut target_loaded[0], true) {
                        s.push_str("insmod bench_target.ko || fail insmod bench_target\n");
                    }
                    s.push_str(&format!("p1_{} {reps} {calls}\n", c.name()));
                }
                Step::P2(c, n) => {
                    if !std::mem::replace(&mut target_loaded[1], true) {
                        s.push_str(&format!(
                            "insmod {TARGET_MODULE}.ko || fail insmod {TARGET_MODULE}\n"
                        ));
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
# reads that found it still in transition (each then sleeps 0.5 ms).
klp_wait() {
	polls=0
	while read tr < /sys/kernel/livepatch/$1/transition && [ "$tr" = 1 ]; do
		polls=$((polls + 1)); usleep 500
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

/// The boots of a run. `combine`: one boot per core holding every step (the quick
/// variant: later steps then find the pinned, disabled patch modules of earlier ones);
/// otherwise a fresh boot for every P2 step and repetition, since lpatch's pinned patch
/// modules cannot be unloaded and lpatch and klp cannot hold one function at once.
pub fn boots(sizes: &[usize], reps: usize, combine: bool) -> Vec<Boot> {
    let timeout = |steps: &[Step]| -> u64 {
        // Wall seconds under TCG -icount (about 8 s of wall per guest second of work):
        // boot, plus klp's ~9.6 ms of guest time per function enabled.
        let klp_funcs: usize = steps
            .iter()
            .map(|s| match s {
                Step::P2(Core::Klp, n) => *n,
                _ => 0,
            })
            .sum();
        180 + (klp_funcs as u64) * 9 / 50 * 2
    };
    let mut v = Vec::new();
    if combine {
        for core in [Core::Lpatch, Core::Klp] {
            let mut steps = vec![Step::P1(core)];
            for &n in sizes {
                steps.push(Step::P2(core, n));
                if core == Core::Lpatch {
                    steps.push(Step::P2(Core::Raw, n));
                }
            }
            let t = timeout(&steps);
            v.push(Boot {
                name: format!("{}-all", core.name()),
                steps,
                timeout: t,
            });
        }
    } else {
        for core in [Core::Lpatch, Core::Klp] {
            let steps = vec![Step::P1(core)];
            v.push(Boot {
                name: format!("p1-{}", core.name()),
                timeout: timeout(&steps),
                steps,
            });
        }
        for &n in sizes {
            for r in 1..=reps {
                for core in [Core::Lpatch, Core::Klp] {
                    let mut steps = vec![Step::P2(core, n)];
                    if core == Core::Lpatch {
                        // raw after lpatch: its module unloads; lpatch's stays pinned
                        steps.push(Step::P2(Core::Raw, n));
                    }
                    v.push(Boot {
                        name: format!("p2-{}-{n}-rep{r}", core.name()),
                        timeout: timeout(&steps),
                        steps,
                    });
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_script() {
        let b = boots(&[1, 100], 2, false);
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
        let klp = b.iter().find(|b| b.name == "p1-klp").unwrap();
        assert!(!klp.modules().contains(&"lpatch.ko".to_string()));
        assert!(klp.script(3, 1000).contains("p1_klp 3 1000\n"));
        let q = boots(&[1, 100], 1, true);
        assert_eq!(q.len(), 2);
        assert_eq!(
            q[0].script(1, 10).matches("insmod lpb_target.ko").count(),
            1
        );
    }
}

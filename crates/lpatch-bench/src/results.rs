// SPDX-License-Identifier: GPL-2.0-only
//! Parsing the guests' `BENCH` lines, checking them (every measured function really was
//! redirected, every expected figure was produced) and gathering the figures.

use crate::gen::PATCH_DELTA;
use crate::plan::{Boot, Core, Step};
use std::collections::BTreeMap;

/// Median and spread of some samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Stat {
    pub fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            samples: samples.to_vec(),
        })
    }
}

/// A P2 phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    LoadOnly,
    Enable,
    Disable,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::LoadOnly => "load_only",
            Phase::Enable => "enable",
            Phase::Disable => "disable",
        }
    }
    fn from_name(s: &str) -> Option<Phase> {
        match s {
            "load_only" => Some(Phase::LoadOnly),
            "enable" => Some(Phase::Enable),
            "disable" => Some(Phase::Disable),
            _ => None,
        }
    }
}

/// Memory changes over one action, in kB: the drop of MemAvailable and the growth of
/// VmallocUsed, the /proc/vmallocinfo sum, and Slab.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemDelta {
    pub available_drop: f64,
    pub vmalloc_used: f64,
    pub vmallocinfo: f64,
    pub slab: f64,
}

/// Which memory delta: the load-only control (module loaded, nothing registered) or the
/// enable (module loaded and patch enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemKind {
    Load,
    Enable,
}

/// Every figure of a run, samples gathered over all boots.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// P1: label (unpatched, direct, raw, lpatch, klp) -> ns per call.
    pub p1: BTreeMap<String, Vec<f64>>,
    /// P2: (core, size, phase) -> ms.
    pub p2: BTreeMap<(Core, usize, Phase), Vec<f64>>,
    /// P2: klp's transition polls that found it unfinished, per enable/disable.
    pub klp_polls: Vec<u64>,
    /// P3: (core, size, kind) -> deltas.
    pub mem: BTreeMap<(Core, usize, MemKind), Vec<MemDelta>>,
    /// Functions checked redirected after an enable, and checked back after a disable.
    pub verified_redirected: usize,
    pub verified_restored: usize,
}

fn num<T: std::str::FromStr>(w: Option<&&str>, line: &str) -> Result<T, String> {
    w.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed line: {line:?}"))
}

type Mem = BTreeMap<String, f64>;

/// Checks one boot's output against its steps and adds its figures to `fig`. Returns the
/// guest's uptime at the script's end, in seconds.
pub fn gather(
    boot: &Boot,
    output: &str,
    calls: u64,
    reps: usize,
    fig: &mut Figures,
) -> Result<f64, String> {
    let mut p1: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut p2: BTreeMap<(Core, usize, Phase), f64> = BTreeMap::new();
    let mut checks: BTreeMap<(Core, usize, String), (usize, usize, usize)> = BTreeMap::new();
    let mut mems: BTreeMap<String, Mem> = BTreeMap::new();
    let mut polls = Vec::new();
    let mut done = None;
    for line in output.lines() {
        let Some(rest) = line.trim_end().strip_prefix("BENCH ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        match w.first().copied() {
            Some("fail") => return Err(format!("the guest script failed: {line}")),
            Some("done") => done = Some(num::<f64>(w.get(1), line)?),
            Some("p1") => {
                let label = w
                    .get(1)
                    .ok_or_else(|| format!("malformed line: {line:?}"))?
                    .to_string();
                let n: u64 = num(w.get(2), line)?;
                let ns: u64 = num(w.get(3), line)?;
                let v: i64 = num(w.get(4), line)?;
                let want = if label.starts_with("unpatched") { 1 } else { 2 };
                if v != want {
                    return Err(format!(
                        "P1 {label}: bench_f(0) returned {v}, expected {want} ({})",
                        if want == 2 {
                            "not redirected"
                        } else {
                            "still redirected"
                        }
                    ));
                }
                if n != calls || ns == 0 {
                    return Err(format!("P1 {label}: bad run {line:?}"));
                }
                p1.entry(label).or_default().push(ns as f64 / n as f64);
            }
            Some("p2") => {
                let core = w
                    .get(1)
                    .and_then(|s| Core::from_name(s))
                    .ok_or_else(|| format!("malformed line: {line:?}"))?;
                let n: usize = num(w.get(2), line)?;
                let phase = w
                    .get(3)
                    .and_then(|s| Phase::from_name(s))
                    .ok_or_else(|| format!("malformed line: {line:?}"))?;
                let t0: u64 = num(w.get(4), line)?;
                let t1: u64 = num(w.get(5), line)?;
                let v: i64 = num(w.get(6), line)?;
                let pl: u64 = num(w.get(7), line)?;
                let want = if phase == Phase::Enable {
                    PATCH_DELTA
                } else {
                    0
                };
                if v != want {
                    return Err(format!(
                        "P2 {} {n} {}: the probe call returned {v}, expected {want}",
                        core.name(),
                        phase.name()
                    ));
                }
                if t1 <= t0 {
                    return Err(format!("P2: clock did not advance: {line:?}"));
                }
                if core == Core::Klp && phase != Phase::LoadOnly {
                    polls.push(pl);
                }
                p2.insert((core, n, phase), (t1 - t0) as f64 / 1e6);
            }
            Some("check") => {
                let core = w
                    .get(1)
                    .and_then(|s| Core::from_name(s))
                    .ok_or_else(|| format!("malformed line: {line:?}"))?;
                let n: usize = num(w.get(2), line)?;
                let state = w
                    .get(3)
                    .ok_or_else(|| format!("malformed line: {line:?}"))?
                    .to_string();
                let c = (
                    num(w.get(4), line)?,
                    num(w.get(5), line)?,
                    num(w.get(6), line)?,
                );
                checks.insert((core, n, state), c);
            }
            Some("mem") => {
                let label = w
                    .get(1)
                    .ok_or_else(|| format!("malformed line: {line:?}"))?
                    .to_string();
                let mut m = Mem::new();
                for kv in &w[2..] {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| format!("malformed line: {line:?}"))?;
                    m.insert(
                        k.to_string(),
                        v.parse().map_err(|_| format!("malformed line: {line:?}"))?,
                    );
                }
                mems.insert(label, m);
            }
            _ => {}
        }
    }
    let Some(uptime) = done else {
        return Err("the guest script did not finish (no BENCH done)".into());
    };

    // Every step's figures, and its checks.
    for step in &boot.steps {
        match *step {
            Step::P1(core) => {
                let mut labels = vec!["unpatched", "direct", core.name()];
                if core == Core::Lpatch {
                    labels.push("raw");
                }
                for l in labels {
                    let got = p1.get(l).map_or(0, Vec::len);
                    if got != reps {
                        return Err(format!("P1 {l}: {got} runs reported, expected {reps}"));
                    }
                }
                if p1.get("unpatched_after").map_or(0, Vec::len) != 1 {
                    return Err(format!(
                        "P1 {}: no run after disabling the patch",
                        core.name()
                    ));
                }
            }
            Step::P2(core, n) => {
                let mut phases = vec![Phase::Enable, Phase::Disable];
                if core != Core::Raw {
                    phases.push(Phase::LoadOnly);
                }
                for ph in phases {
                    let ms = p2.get(&(core, n, ph)).ok_or_else(|| {
                        format!("P2 {} {n}: no {} figure", core.name(), ph.name())
                    })?;
                    fig.p2.entry((core, n, ph)).or_default().push(*ms);
                }
                let get = |st: &str| {
                    checks
                        .get(&(core, n, st.to_string()))
                        .copied()
                        .ok_or_else(|| format!("P2 {} {n}: no check after {st}", core.name()))
                };
                let (p, lead, wrong) = get("enabled")?;
                if p != n || lead != n || wrong != 0 {
                    return Err(format!(
                        "P2 {} {n}: after enabling, {p} functions return the patched value \
                         ({lead} leading, {wrong} wrong values); expected exactly the first {n}",
                        core.name()
                    ));
                }
                let (p, _, wrong) = get("disabled")?;
                if p != 0 || wrong != 0 {
                    return Err(format!(
                        "P2 {} {n}: after disabling, {p} functions still return the patched value, {wrong} wrong",
                        core.name()
                    ));
                }
                fig.verified_redirected += n;
                fig.verified_restored += n;
                let delta = |a: &str, b: &str| -> Result<MemDelta, String> {
                    let c = core.name();
                    let before = mems
                        .get(&format!("{c}.{n}.{a}"))
                        .ok_or_else(|| format!("no memory figures {c}.{n}.{a}"))?;
                    let after = mems
                        .get(&format!("{c}.{n}.{b}"))
                        .ok_or_else(|| format!("no memory figures {c}.{n}.{b}"))?;
                    let g = |m: &Mem, k: &str| {
                        m.get(k)
                            .copied()
                            .ok_or_else(|| format!("no {k} in memory figures"))
                    };
                    // Pages on the per-cpu free lists are not in MemAvailable: count them
                    // back, or an allocation served from those lists shows no drop.
                    let avail = |m: &Mem| -> Result<f64, String> {
                        Ok(g(m, "MemAvailable")? + g(m, "pcp_kb")?)
                    };
                    Ok(MemDelta {
                        available_drop: avail(before)? - avail(after)?,
                        vmalloc_used: g(after, "VmallocUsed")? - g(before, "VmallocUsed")?,
                        vmallocinfo: g(after, "vmallocinfo_kb")? - g(before, "vmallocinfo_kb")?,
                        slab: g(after, "Slab")? - g(before, "Slab")?,
                    })
                };
                fig.mem
                    .entry((core, n, MemKind::Enable))
                    .or_default()
                    .push(delta("pre", "post")?);
                if core != Core::Raw {
                    fig.mem
                        .entry((core, n, MemKind::Load))
                        .or_default()
                        .push(delta("before_load", "loaded")?);
                }
            }
        }
    }
    for (l, v) in p1 {
        if l != "unpatched_after" {
            fig.p1.entry(l).or_default().extend(v);
        }
    }
    fig.klp_polls.extend(polls);
    Ok(uptime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert_eq!(Stat::of(&[5.0]).unwrap().median, 5.0);
        assert!(Stat::of(&[]).is_none());
    }

    fn lp_boot() -> Boot {
        Boot {
            name: "t".into(),
            steps: vec![Step::P2(Core::Lpatch, 2)],
            timeout: 1,
            klp_poll_us: 500,
        }
    }

    const MEM: &str = "MemAvailable=1000 Slab=10 VmallocUsed=5 vmallocinfo_kb=7 pcp_kb=20";
    const MEM2: &str = "MemAvailable=900 Slab=30 VmallocUsed=45 vmallocinfo_kb=57 pcp_kb=40";

    fn lp_output(patched_after_enable: usize) -> String {
        format!(
            "BENCH mem lpatch.2.before_load {MEM}\n\
             BENCH p2 lpatch 2 load_only 1000 2000 0 0\n\
             BENCH mem lpatch.2.loaded {MEM2}\n\
             BENCH mem lpatch.2.pre {MEM}\n\
             BENCH p2 lpatch 2 enable 5000000 15000000 100000 0\n\
             BENCH check lpatch 2 enabled {patched_after_enable} {patched_after_enable} 0\n\
             BENCH mem lpatch.2.post {MEM2}\n\
             BENCH p2 lpatch 2 disable 20000000 21000000 0 0\n\
             BENCH check lpatch 2 disabled 0 0 0\n\
             BENCH done 12.5\n"
        )
    }

    #[test]
    fn gathers_and_verifies() {
        let mut f = Figures::default();
        assert_eq!(
            gather(&lp_boot(), &lp_output(2), 10, 1, &mut f).unwrap(),
            12.5
        );
        assert_eq!(f.p2[&(Core::Lpatch, 2, Phase::Enable)], vec![10.0]);
        assert_eq!(f.p2[&(Core::Lpatch, 2, Phase::LoadOnly)], vec![0.001]);
        let m = f.mem[&(Core::Lpatch, 2, MemKind::Enable)][0];
        assert_eq!(
            (m.available_drop, m.vmalloc_used, m.vmallocinfo, m.slab),
            (80.0, 40.0, 50.0, 20.0)
        );
        assert_eq!(f.verified_redirected, 2);
        let mut f = Figures::default();
        let e = gather(&lp_boot(), &lp_output(1), 10, 1, &mut f).unwrap_err();
        assert!(e.contains("expected exactly the first 2"), "{e}");
        let e = gather(
            &lp_boot(),
            &lp_output(2).replace(" 15000000 100000 ", " 15000000 0 "),
            10,
            1,
            &mut f,
        )
        .unwrap_err();
        assert!(e.contains("probe call returned 0"), "{e}");
        let e = gather(
            &lp_boot(),
            &lp_output(2).replace("BENCH done 12.5\n", ""),
            10,
            1,
            &mut f,
        )
        .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }
}

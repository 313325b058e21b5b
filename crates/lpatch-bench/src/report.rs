// SPDX-License-Identifier: GPL-2.0-only
//! The figures as a table (for people) and as JSON (build/bench.json).

use crate::elf::Sizes;
use crate::plan::{self, Core};
use crate::results::{Figures, MemDelta, MemKind, Phase, Stat};
use crate::{gen, Config, ICOUNT};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// What the run was.
#[derive(Debug, Clone)]
pub struct Meta {
    /// UTC, YYYY-MM-DD.
    pub date: String,
    pub kernel: String,
    pub qemu_args: String,
    pub sizes: Vec<usize>,
    pub reps: usize,
    pub calls: u64,
    pub boots: usize,
    pub wall_secs: f64,
    pub lpatch_ko: Sizes,
    /// Fresh boot per P2 run (false: the quick variant's combined boots).
    pub fresh_boots: bool,
    /// P2 boots per core, by size (the same order as `sizes`).
    pub p2_reps: Vec<usize>,
    /// The sizes at which klp was measured (the others' klp figures read "-").
    pub klp_sizes: Vec<usize>,
    /// klp_wait's sleep between polls, microseconds.
    pub klp_poll_us: u32,
}

impl Meta {
    /// What a run of `cfg` was, today.
    pub fn of(cfg: &Config, kernel: String, wall_secs: f64, lpatch_ko: Sizes) -> Meta {
        Meta {
            date: today(),
            kernel,
            qemu_args: ICOUNT.join(" "),
            sizes: cfg.sizes.clone(),
            reps: cfg.reps,
            calls: cfg.calls,
            boots: plan::boots(cfg).len(),
            wall_secs,
            lpatch_ko,
            fresh_boots: !cfg.combine,
            p2_reps: cfg.sizes.iter().map(|&n| cfg.reps_at(n)).collect(),
            klp_sizes: cfg
                .sizes
                .iter()
                .copied()
                .filter(|&n| cfg.klp_measured(n))
                .collect(),
            klp_poll_us: cfg.klp_poll_us,
        }
    }

    /// The sizes at which klp was not measured.
    fn klp_skipped(&self) -> Vec<usize> {
        self.sizes
            .iter()
            .copied()
            .filter(|n| !self.klp_sizes.contains(n))
            .collect()
    }
}

pub const NOTE: &str = "Instruction-path figures: the guest runs under qemu TCG with -icount \
shift=0,sleep=off, so guest time follows the executed instruction count (1 ns per instruction; \
idle waits cost no wall time). A retpoline, a return thunk, a cache or TLB miss counts as one \
instruction each: these are not hardware nanoseconds, and they repeat from run to run.";

/// Today's date (UTC) from the system clock.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn prec(x: f64) -> usize {
    let a = x.abs();
    if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    }
}

fn fmt_num(x: f64) -> String {
    let p = prec(x);
    let s = format!("{x:.p$}");
    if p == 0 {
        // thousands separators
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        s
    }
}

/// "median [min-max]"; just the value when all samples agree to the shown precision.
fn fmt_stat(s: Option<&Stat>) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let (m, lo, hi) = (fmt_num(s.median), fmt_num(s.min), fmt_num(s.max));
            if s.samples.len() == 1 || (lo == m && hi == m) {
                m
            } else {
                format!("{m} [{lo}-{hi}]")
            }
        }
    }
}

fn ratio(a: Option<&Stat>, b: Option<&Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median != 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r.abs() < 0.01 => format!("{r:.4}"),
        Some(r) => format!("{r:.2}"),
    }
}

fn stat_json(s: Option<&Stat>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({ "median": s.median, "min": s.min, "max": s.max, "samples": s.samples }),
    }
}

/// Summaries of one set of figures, derived once for the table and the JSON.
struct View<'a> {
    f: &'a Figures,
}

impl View<'_> {
    fn p1(&self, label: &str) -> Option<Stat> {
        self.f.p1.get(label).and_then(|v| Stat::of(v))
    }
    fn p2(&self, c: Core, n: usize, ph: Phase) -> Option<Stat> {
        self.f.p2.get(&(c, n, ph)).and_then(|v| Stat::of(v))
    }
    fn mem(&self, c: Core, n: usize, k: MemKind, field: fn(&MemDelta) -> f64) -> Option<Stat> {
        self.f
            .mem
            .get(&(c, n, k))
            .and_then(|v| Stat::of(&v.iter().map(field).collect::<Vec<_>>()))
    }
}

/// (table heading, JSON key, the field)
type MemField = (&'static str, &'static str, fn(&MemDelta) -> f64);

const MEM_FIELDS: [MemField; 4] = [
    ("MemAvailable drop", "mem_available_drop_kb", |m| {
        m.available_drop
    }),
    ("VmallocUsed", "vmalloc_used_kb", |m| m.vmalloc_used),
    ("vmallocinfo sum", "vmallocinfo_kb", |m| m.vmallocinfo),
    ("Slab", "slab_kb", |m| m.slab),
];

fn table_rows(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        out.push_str("  ");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i == 0 {
                let _ = write!(out, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{c}", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(
        out,
        &header.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    for r in rows {
        line(out, r);
    }
}

/// A target: (what, value, met). The raw-ops ratio of enable at every size from 1,000
/// up (the largest only, when all are smaller); the klp ratios at the largest size klp
/// was measured at.
fn targets(v: &View, m: &Meta) -> Vec<(String, String, Option<bool>)> {
    let mut t = Vec::new();
    if !v.f.p1.is_empty() {
        let gap = match (v.p1("lpatch"), v.p1("direct")) {
            (Some(a), Some(b)) => Some(a.median - b.median),
            _ => None,
        };
        t.push((
            "P1 lpatch per call <= direct + 5 instructions".into(),
            gap.map_or("-".into(), |g| format!("+{g:.1}")),
            gap.map(|g| g <= 5.0),
        ));
    }
    let big = m.sizes.iter().copied().max().unwrap_or(0);
    let mut raw_sizes: Vec<usize> = m
        .sizes
        .iter()
        .copied()
        .filter(|&n| n >= gen::TARGET_FUNCS)
        .collect();
    if raw_sizes.is_empty() {
        raw_sizes.push(big);
    }
    let en = |c, n| v.p2(c, n, Phase::Enable);
    for n in raw_sizes {
        let r = ratio(en(Core::Lpatch, n).as_ref(), en(Core::Raw, n).as_ref());
        t.push((
            format!("P2 enable {n}: lpatch <= 1.3 x one raw ftrace_ops"),
            fmt_ratio(r),
            r.map(|r| r <= 1.3),
        ));
    }
    let kbig = m.klp_sizes.iter().copied().max().unwrap_or(big);
    let r = ratio(
        en(Core::Lpatch, kbig).as_ref(),
        en(Core::Klp, kbig).as_ref(),
    );
    t.push((
        format!("P2 enable {kbig}: lpatch/klp <= 0.01"),
        fmt_ratio(r),
        r.map(|r| r <= 0.01),
    ));
    let dis = |c| v.p2(c, kbig, Phase::Disable);
    let r = ratio(dis(Core::Lpatch).as_ref(), dis(Core::Klp).as_ref());
    t.push((
        format!("P2 disable {kbig}: lpatch/klp <= 0.01"),
        fmt_ratio(r),
        r.map(|r| r <= 0.01),
    ));
    for (name, _, f) in MEM_FIELDS
        .iter()
        .filter(|(n, _, _)| *n == "MemAvailable drop")
    {
        let r = ratio(
            v.mem(Core::Lpatch, kbig, MemKind::Enable, *f).as_ref(),
            v.mem(Core::Klp, kbig, MemKind::Enable, *f).as_ref(),
        );
        t.push((
            format!("P3 {kbig} functions: lpatch/klp {name} <= 0.1"),
            fmt_ratio(r),
            r.map(|r| r <= 0.1),
        ));
    }
    t
}

/// Why klp's figures at some sizes read "-", if they do.
fn klp_note(m: &Meta) -> Option<String> {
    let skipped = m.klp_skipped();
    if skipped.is_empty() {
        return None;
    }
    let list: Vec<String> = skipped.iter().map(|n| fmt_num(*n as f64)).collect();
    Some(format!(
        "  klp at {}: not measured in this run (minutes per enable and disable): its klp figures here and below read -; `lpatch-bench --klp-at N` measures them once (figures in README)",
        list.join(", ")
    ))
}

pub fn table(f: &Figures, m: &Meta) -> String {
    let v = View { f };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "lpatch-bench {}: kernel {} in qemu TCG {}, 1 vCPU; {} boots, {:.0} s wall",
        m.date, m.kernel, m.qemu_args, m.boots, m.wall_secs
    );
    for l in textwrap(NOTE, 92) {
        let _ = writeln!(s, "{l}");
    }
    let other_reps: Vec<String> = m
        .sizes
        .iter()
        .zip(&m.p2_reps)
        .filter(|(_, &r)| r != m.reps)
        .map(|(n, r)| format!("{r} at N = {}", fmt_num(*n as f64)))
        .collect();
    let _ = writeln!(
        s,
        "Each figure: median [min-max] of {} run(s){}{}.\n",
        m.reps,
        if other_reps.is_empty() {
            String::new()
        } else {
            format!(" ({})", other_reps.join(", "))
        },
        if m.fresh_boots {
            "; P2 and P3: a fresh boot per run"
        } else {
            "; QUICK VARIANT: one boot per core, not for comparison"
        }
    );

    if !f.p1.is_empty() {
        p1_table(&mut s, &v, m);
    }
    p2_p3_tables(&mut s, &v, m);

    let k = m.lpatch_ko;
    let _ = writeln!(
        s,
        "  lpatch.ko sections, bytes: text {}, rodata {}, data {}, bss {}\n",
        k.text, k.rodata, k.data, k.bss
    );

    let _ = writeln!(s, "Targets (reported, not enforced):");
    for (what, val, met) in targets(&v, m) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let _ = writeln!(s, "  {what}: {val}  {verdict}");
    }
    let _ = writeln!(
        s,
        "Verified: {} redirected function(s) after enables, {} back to the original after disables.",
        f.verified_redirected, f.verified_restored
    );
    s
}

fn p1_table(s: &mut String, v: &View, m: &Meta) {
    let _ = writeln!(s, "P1 per-call cost: bench_f called {} times through a volatile function pointer (loop included)", fmt_num(m.calls as f64));
    let direct = v.p1("direct");
    let rows: Vec<Vec<String>> = [
        ("unpatched", "unpatched"),
        ("its replacement called directly (the floor)", "direct"),
        (
            "one raw ftrace_ops, handler only sets the ip (control)",
            "raw",
        ),
        ("lpatch", "lpatch"),
        ("klp", "klp"),
    ]
    .iter()
    .map(|(what, l)| {
        let st = v.p1(l);
        let over = match (&st, &direct) {
            (Some(a), Some(d)) => format!("{:+.1}", a.median - d.median),
            _ => "-".into(),
        };
        vec![what.to_string(), fmt_stat(st.as_ref()), over]
    })
    .collect();
    table_rows(s, &["how the call runs", "ns/call", "over direct"], &rows);
    let _ = writeln!(
        s,
        "  lpatch/klp {}   lpatch/direct {}\n",
        fmt_ratio(ratio(v.p1("lpatch").as_ref(), v.p1("klp").as_ref())),
        fmt_ratio(ratio(v.p1("lpatch").as_ref(), direct.as_ref()))
    );
}

fn p2_p3_tables(s: &mut String, v: &View, m: &Meta) {
    let note = klp_note(m);
    let _ = writeln!(s, "P2 enable, ms: insmod start -> a call shows the new code (klp: transition over); all N checked redirected");
    let rows: Vec<Vec<String>> = m
        .sizes
        .iter()
        .map(|&n| {
            let g = |c, ph| v.p2(c, n, ph);
            vec![
                n.to_string(),
                fmt_stat(g(Core::Lpatch, Phase::Enable).as_ref()),
                fmt_stat(g(Core::Klp, Phase::Enable).as_ref()),
                fmt_stat(g(Core::Raw, Phase::Enable).as_ref()),
                fmt_stat(g(Core::Lpatch, Phase::LoadOnly).as_ref()),
                fmt_stat(g(Core::Klp, Phase::LoadOnly).as_ref()),
                fmt_ratio(ratio(
                    g(Core::Lpatch, Phase::Enable).as_ref(),
                    g(Core::Klp, Phase::Enable).as_ref(),
                )),
                fmt_ratio(ratio(
                    g(Core::Lpatch, Phase::Enable).as_ref(),
                    g(Core::Raw, Phase::Enable).as_ref(),
                )),
            ]
        })
        .collect();
    table_rows(
        s,
        &[
            "N",
            "lpatch",
            "klp",
            "raw ops (control)",
            "load only, lp module",
            "load only, klp module",
            "lpatch/klp",
            "lpatch/raw",
        ],
        &rows,
    );
    if let Some(l) = &note {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "P2 disable, ms: echo 0 > enabled -> a call shows the old code (klp: transition over; raw: rmmod); all N checked");
    let rows: Vec<Vec<String>> = m
        .sizes
        .iter()
        .map(|&n| {
            let g = |c| v.p2(c, n, Phase::Disable);
            vec![
                n.to_string(),
                fmt_stat(g(Core::Lpatch).as_ref()),
                fmt_stat(g(Core::Klp).as_ref()),
                fmt_stat(g(Core::Raw).as_ref()),
                fmt_ratio(ratio(g(Core::Lpatch).as_ref(), g(Core::Klp).as_ref())),
                fmt_ratio(ratio(g(Core::Lpatch).as_ref(), g(Core::Raw).as_ref())),
            ]
        })
        .collect();
    table_rows(
        s,
        &[
            "N",
            "lpatch",
            "klp",
            "raw ops rmmod (control)",
            "lpatch/klp",
            "lpatch/raw",
        ],
        &rows,
    );
    if let Some(max) = v.f.klp_polls.iter().max() {
        let _ = writeln!(
            s,
            "  klp transition polls that found it unfinished ({} ms sleep each): max {max}",
            fmt_num(f64::from(m.klp_poll_us) / 1000.0)
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "P3 memory, kB: growth over insmod + enable, the patch module included (MemAvailable: its drop)");
    for &n in &m.sizes {
        let ratio_row = |what: &str, over: Core| {
            let mut r = vec![what.to_string()];
            r.extend(MEM_FIELDS.iter().map(|(_, _, fld)| {
                fmt_ratio(ratio(
                    v.mem(Core::Lpatch, n, MemKind::Enable, *fld).as_ref(),
                    v.mem(over, n, MemKind::Enable, *fld).as_ref(),
                ))
            }));
            r
        };
        let rows: Vec<Vec<String>> = [
            ("lpatch", Core::Lpatch, MemKind::Enable),
            ("klp", Core::Klp, MemKind::Enable),
            (
                "raw ops (control, after lpatch's run)",
                Core::Raw,
                MemKind::Enable,
            ),
            ("lp module, load only", Core::Lpatch, MemKind::Load),
            ("klp module, load only", Core::Klp, MemKind::Load),
        ]
        .iter()
        .map(|(what, c, k)| {
            let mut r = vec![what.to_string()];
            r.extend(
                MEM_FIELDS
                    .iter()
                    .map(|(_, _, fld)| fmt_stat(v.mem(*c, n, *k, *fld).as_ref())),
            );
            r
        })
        .chain([
            ratio_row("lpatch/klp", Core::Klp),
            ratio_row("lpatch/raw", Core::Raw),
        ])
        .collect();
        let first = format!("N = {n}");
        let mut header = vec![first.as_str()];
        header.extend(MEM_FIELDS.iter().map(|(h, _, _)| *h));
        table_rows(s, &header, &rows);
    }
}

fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in text.split_whitespace() {
        let l = lines.last_mut().unwrap();
        if !l.is_empty() && l.len() + 1 + w.len() > width {
            lines.push(w.to_string());
        } else {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(w);
        }
    }
    lines
}

pub fn json(f: &Figures, m: &Meta) -> Value {
    let v = View { f };
    let p1: serde_json::Map<String, Value> = ["unpatched", "direct", "raw", "lpatch", "klp"]
        .iter()
        .map(|l| (l.to_string(), stat_json(v.p1(l).as_ref())))
        .collect();
    let mut p2 = serde_json::Map::new();
    let mut p3 = serde_json::Map::new();
    for (&n, &reps) in m.sizes.iter().zip(&m.p2_reps) {
        let mut e = serde_json::Map::new();
        e.insert("reps".into(), json!(reps));
        e.insert("klp_measured".into(), json!(m.klp_sizes.contains(&n)));
        for (c, ph, key) in [
            (Core::Lpatch, Phase::Enable, "lpatch_enable"),
            (Core::Klp, Phase::Enable, "klp_enable"),
            (Core::Raw, Phase::Enable, "raw_ops_enable"),
            (Core::Lpatch, Phase::LoadOnly, "lpatch_load_only"),
            (Core::Klp, Phase::LoadOnly, "klp_load_only"),
            (Core::Lpatch, Phase::Disable, "lpatch_disable"),
            (Core::Klp, Phase::Disable, "klp_disable"),
            (Core::Raw, Phase::Disable, "raw_ops_rmmod"),
        ] {
            e.insert(format!("{key}_ms"), stat_json(v.p2(c, n, ph).as_ref()));
        }
        let g = |c, ph| v.p2(c, n, ph);
        e.insert(
            "ratios".into(),
            json!({
                "enable_lpatch_over_klp": ratio(g(Core::Lpatch, Phase::Enable).as_ref(), g(Core::Klp, Phase::Enable).as_ref()),
                "enable_lpatch_over_raw_ops": ratio(g(Core::Lpatch, Phase::Enable).as_ref(), g(Core::Raw, Phase::Enable).as_ref()),
                "disable_lpatch_over_klp": ratio(g(Core::Lpatch, Phase::Disable).as_ref(), g(Core::Klp, Phase::Disable).as_ref()),
                "disable_lpatch_over_raw_ops_rmmod": ratio(g(Core::Lpatch, Phase::Disable).as_ref(), g(Core::Raw, Phase::Disable).as_ref()),
            }),
        );
        p2.insert(n.to_string(), Value::Object(e));

        let mut mm = serde_json::Map::new();
        for (c, k, key) in [
            (Core::Lpatch, MemKind::Enable, "lpatch"),
            (Core::Klp, MemKind::Enable, "klp"),
            (Core::Raw, MemKind::Enable, "raw_ops"),
            (Core::Lpatch, MemKind::Load, "lpatch_module_load_only"),
            (Core::Klp, MemKind::Load, "klp_module_load_only"),
        ] {
            let o: serde_json::Map<String, Value> = MEM_FIELDS
                .iter()
                .map(|(_, jk, fld)| (jk.to_string(), stat_json(v.mem(c, n, k, *fld).as_ref())))
                .collect();
            mm.insert(key.into(), Value::Object(o));
        }
        for (over, key) in [
            (Core::Klp, "lpatch_over_klp"),
            (Core::Raw, "lpatch_over_raw_ops"),
        ] {
            let r: serde_json::Map<String, Value> = MEM_FIELDS
                .iter()
                .map(|(_, jk, fld)| {
                    (
                        jk.to_string(),
                        json!(ratio(
                            v.mem(Core::Lpatch, n, MemKind::Enable, *fld).as_ref(),
                            v.mem(over, n, MemKind::Enable, *fld).as_ref()
                        )),
                    )
                })
                .collect();
            mm.insert(key.into(), Value::Object(r));
        }
        p3.insert(n.to_string(), Value::Object(mm));
    }
    let k = m.lpatch_ko;
    json!({
        "date": m.date,
        "kernel": m.kernel,
        "qemu_args": m.qemu_args,
        "note": NOTE,
        "units": { "p1": "ns per call (guest time under -icount: instructions)", "p2": "ms", "p3": "kB" },
        "sizes": m.sizes,
        "klp_sizes": m.klp_sizes,
        "klp_not_measured": m.klp_skipped(),
        "reps": m.reps,
        "calls": m.calls,
        "boots": m.boots,
        "fresh_boots": m.fresh_boots,
        "wall_secs": m.wall_secs,
        "p1": {
            "ns_per_call": p1,
            "lpatch_over_klp": ratio(v.p1("lpatch").as_ref(), v.p1("klp").as_ref()),
            "lpatch_over_direct": ratio(v.p1("lpatch").as_ref(), v.p1("direct").as_ref()),
            "lpatch_minus_direct": match (v.p1("lpatch"), v.p1("direct")) {
                (Some(a), Some(b)) => json!(a.median - b.median),
                _ => Value::Null,
            },
        },
        "p2": p2,
        "p3": {
            "lpatch_ko_bytes": { "text": k.text, "rodata": k.rodata, "data": k.data, "bss": k.bss },
            "by_size": p3,
        },
        "klp_transition_polls_max": f.klp_polls.iter().max(),
        "klp_transition_poll_us": m.klp_poll_us,
        "verified_redirected": f.verified_redirected,
        "verified_restored": f.verified_restored,
        "targets": targets(&v, m).into_iter().map(|(w, val, met)| json!({ "target": w, "value": val, "met": met })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(9570.4), "9,570");
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(47.61), "47.61");
        assert_eq!(fmt_num(0.4), "0.400");
        assert_eq!(fmt_num(-1500.0), "-1,500");
        assert_eq!(
            fmt_stat(Stat::of(&[2.0, 1.0, 3.0]).as_ref()),
            "2.00 [1.00-3.00]"
        );
        assert_eq!(fmt_stat(Stat::of(&[12.0101, 12.0102]).as_ref()), "12.01");
    }

    /// A run of sizes 1000 and 10,000, klp at 1000 only, figures made up.
    fn run_1000_10000() -> (Figures, Meta) {
        let cfg = Config {
            sizes: vec![1000, 10_000],
            ..Config::full()
        };
        let mut f = Figures::default();
        let mut p2 = |c, n, ph, v: &[f64]| {
            f.p2.insert((c, n, ph), v.to_vec());
        };
        for (c, en, dis) in [
            (Core::Lpatch, 61.0, 18.0),
            (Core::Raw, 47.0, 20.0),
            (Core::Klp, 9614.0, 127_935.0),
        ] {
            p2(c, 1000, Phase::Enable, &[en; 5]);
            p2(c, 1000, Phase::Disable, &[dis; 5]);
        }
        p2(Core::Lpatch, 10_000, Phase::Enable, &[600.0, 590.0, 610.0]);
        p2(Core::Raw, 10_000, Phase::Enable, &[500.0, 500.0, 500.0]);
        p2(Core::Lpatch, 10_000, Phase::Disable, &[150.0; 3]);
        p2(Core::Raw, 10_000, Phase::Disable, &[100.0; 3]);
        p2(Core::Lpatch, 10_000, Phase::LoadOnly, &[40.0; 3]);
        let mem = |kb: f64| MemDelta {
            available_drop: kb,
            vmalloc_used: kb / 4.0,
            vmallocinfo: kb / 4.0,
            slab: kb / 2.0,
        };
        f.mem.insert(
            (Core::Lpatch, 10_000, MemKind::Enable),
            vec![mem(9600.0); 3],
        );
        f.mem
            .insert((Core::Raw, 10_000, MemKind::Enable), vec![mem(4800.0); 3]);
        f.mem
            .insert((Core::Lpatch, 1000, MemKind::Enable), vec![mem(960.0); 5]);
        f.mem
            .insert((Core::Klp, 1000, MemKind::Enable), vec![mem(4900.0); 5]);
        let m = Meta::of(&cfg, "6.1.0-test".into(), 100.0, Sizes::default());
        (f, m)
    }

    #[test]
    fn the_10000_row_has_raw_ratios_and_no_klp() {
        let (f, m) = run_1000_10000();
        assert_eq!(m.p2_reps, [5, 3]);
        assert_eq!(m.klp_sizes, [1000]);
        let t = table(&f, &m);
        // no P1 figures: no P1 table
        assert!(!t.contains("P1 per-call cost"), "{t}");
        assert!(
            t.contains("median [min-max] of 5 run(s) (3 at N = 10,000)"),
            "{t}"
        );
        let row = |heading: &str| -> Vec<String> {
            let at = t.find(heading).unwrap();
            t[at..]
                .lines()
                .find(|l| l.trim_start().starts_with("10000 "))
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        // N lpatch klp raw load-only(lp) load-only(klp) lpatch/klp lpatch/raw
        assert_eq!(
            row("P2 enable"),
            [
                "10000",
                "600.0",
                "[590.0-610.0]",
                "-",
                "500.0",
                "40.00",
                "-",
                "-",
                "1.20"
            ]
        );
        // N lpatch klp raw lpatch/klp lpatch/raw
        assert_eq!(
            row("P2 disable"),
            ["10000", "150.0", "-", "100.0", "-", "1.50"]
        );
        assert!(t.contains("klp at 10,000: not measured in this run"), "{t}");
        assert!(t.contains("lpatch-bench --klp-at N"), "{t}");
        let p3 = &t[t.find("N = 10000").unwrap()..];
        let ratio_line = p3.lines().find(|l| l.contains("lpatch/raw")).unwrap();
        assert!(
            ratio_line.split_whitespace().any(|c| c == "2.00"),
            "{ratio_line}"
        );
        let klp_line = p3
            .lines()
            .find(|l| l.trim_start().starts_with("klp "))
            .unwrap();
        assert!(
            klp_line.split_whitespace().skip(1).all(|c| c == "-"),
            "{klp_line}"
        );
        // the raw target at both sizes, the klp ones at 1000
        assert!(t.contains("P2 enable 1000: lpatch <= 1.3 x one raw ftrace_ops: 1.30  met"));
        assert!(t.contains("P2 enable 10000: lpatch <= 1.3 x one raw ftrace_ops: 1.20  met"));
        assert!(
            t.contains("P2 enable 1000: lpatch/klp <= 0.01: 0.0063  met"),
            "{t}"
        );
        assert!(t.contains("P3 1000 functions: lpatch/klp MemAvailable drop <= 0.1: 0.20  MISSED"));
        assert!(!t.contains("lpatch/klp <= 0.01: -"), "{t}");
    }

    #[test]
    fn json_keeps_every_sample_and_says_what_klp_skipped() {
        let (f, m) = run_1000_10000();
        let j = json(&f, &m);
        assert_eq!(j["sizes"], json!([1000, 10_000]));
        assert_eq!(j["klp_not_measured"], json!([10_000]));
        let big = &j["p2"]["10000"];
        assert_eq!(big["reps"], json!(3));
        assert_eq!(big["klp_measured"], json!(false));
        assert_eq!(
            big["lpatch_enable_ms"]["samples"],
            json!([600.0, 590.0, 610.0])
        );
        assert_eq!(big["lpatch_enable_ms"]["median"], json!(600.0));
        assert!(big["klp_enable_ms"].is_null() && big["klp_disable_ms"].is_null());
        assert_eq!(big["ratios"]["enable_lpatch_over_raw_ops"], json!(1.2));
        assert_eq!(
            big["ratios"]["disable_lpatch_over_raw_ops_rmmod"],
            json!(1.5)
        );
        assert!(big["ratios"]["enable_lpatch_over_klp"].is_null());
        let p3 = &j["p3"]["by_size"]["10000"];
        assert_eq!(
            p3["lpatch_over_raw_ops"]["mem_available_drop_kb"],
            json!(2.0)
        );
        assert_eq!(
            p3["lpatch"]["slab_kb"]["samples"].as_array().unwrap().len(),
            3
        );
        assert_eq!(j["p2"]["1000"]["reps"], json!(5));
        assert_eq!(j["p2"]["1000"]["klp_measured"], json!(true));
        let targets: Vec<&str> = j["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap())
            .collect();
        assert!(targets.contains(&"P2 enable 10000: lpatch <= 1.3 x one raw ftrace_ops"));
        assert!(targets.contains(&"P2 disable 1000: lpatch/klp <= 0.01"));
    }

    #[test]
    fn date_is_a_date() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}

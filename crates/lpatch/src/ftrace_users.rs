// SPDX-License-Identifier: GPL-2.0-only
//! Who holds a function in ftrace, as the kernel tells it: tracefs's `enabled_functions`,
//! one entry per call site some ftrace_ops traces (kernel/trace/ftrace.c, `t_show` with
//! FTRACE_ITER_ENABLED):
//!
//! ```text
//! cmdline_proc_show (2) R I D<TAB>tramp: ... ->lpatch_handler+0x0/0x40 [lpatch]
//! <TAB>direct-->bpf_trampoline_6442493000+0x0/0xf1
//! ```
//!
//! The function ("name" or "name [module]"), how many ops trace it, then three flags, each
//! a letter or blank: R (the ops want the registers saved), I (one of them modifies the
//! ip: a live patch, lpatch's or klp's, or a kprobe with a post handler), D (a direct call:
//! a BPF trampoline or register_ftrace_direct); what follows, and continuation lines that
//! start with a tab, say what the call site calls.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// One call site of `enabled_functions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// The function as ftrace prints it: "name" or "name [module]".
    pub function: String,
    /// How many ftrace_ops trace the site, lpatch's own included.
    pub ops: u64,
    /// R: registers are saved for the ops.
    pub regs: bool,
    /// I: an ops modifies the ip (a live patch, or a kprobe with a post handler).
    pub ipmodify: bool,
    /// D: a direct call (a BPF trampoline, or register_ftrace_direct).
    pub direct: bool,
    /// The rest of the entry (trampolines, handlers, the direct call's target), one item
    /// per tab-separated part.
    pub detail: Vec<String>,
}

impl Site {
    /// The flags as the kernel shows them, blanks left out ("R I D", "" for none).
    pub fn flags(&self) -> String {
        [(self.regs, "R"), (self.ipmodify, "I"), (self.direct, "D")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, l)| *l)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Where tracefs may be, under the directory that plays /sys.
fn candidates(sys: &Path) -> [PathBuf; 2] {
    [
        sys.join("kernel/tracing/enabled_functions"),
        sys.join("kernel/debug/tracing/enabled_functions"),
    ]
}

/// Reads and parses `enabled_functions`; the error says why it could not be read.
pub fn read(sys: &Path) -> Result<Vec<Site>, String> {
    let paths = candidates(sys);
    let mut first_error = None;
    for p in &paths {
        match std::fs::read_to_string(p) {
            Ok(text) => return Ok(parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(format!("{}: {e}", p.display()));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        format!(
            "{} is absent: tracefs is not mounted (mount -t tracefs tracefs {})",
            paths[0].display(),
            paths[0]
                .parent()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default()
        )
    }))
}

/// Parses the text of `enabled_functions`. Lines it cannot read are skipped, so a kernel
/// that adds a column still shows the rest.
pub fn parse(text: &str) -> Vec<Site> {
    let mut sites: Vec<Site> = Vec::new();
    for line in text.lines() {
        if let Some(more) = line.strip_prefix('\t') {
            if let Some(last) = sites.last_mut() {
                last.detail.push(more.trim().to_string());
            }
            continue;
        }
        if let Some(site) = parse_entry(line) {
            sites.push(site);
        }
    }
    sites
}

fn parse_entry(line: &str) -> Option<Site> {
    let (head, rest) = match line.split_once('\t') {
        Some((h, r)) => (h, Some(r)),
        None => (line, None),
    };
    // The count is the last " (<digits>)" of the head; a function name has no parentheses.
    let open = head.rfind(" (")?;
    let function = head[..open].trim().to_string();
    let after = &head[open + 2..];
    let close = after.find(')')?;
    let ops = after[..close].parse().ok()?;
    let flags = &after[close + 1..];
    let has = |l: char| {
        flags
            .split_whitespace()
            .any(|f| f.len() == 1 && f.starts_with(l))
    };
    let mut detail: Vec<String> = Vec::new();
    if let Some(r) = rest {
        detail.extend(
            r.split('\t')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    if function.is_empty() {
        return None;
    }
    Some(Site {
        function,
        ops,
        regs: has('R'),
        ipmodify: has('I'),
        direct: has('D'),
        detail,
    })
}

/// The sites of one function: `name` in `object` ("vmlinux" or a module's name).
pub fn of_function<'a>(sites: &'a [Site], name: &str, object: &str) -> Vec<&'a Site> {
    let want = if object == "vmlinux" {
        name.to_string()
    } else {
        format!("{name} [{object}]")
    };
    sites.iter().filter(|s| s.function == want).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "cmdline_proc_show (2) R I D\ttramp: 0xffffffffc0002000 (lpatch_handler+0x0/0x90 [lpatch]) ->lpatch_handler+0x0/0x90 [lpatch]\n\
\tdirect-->bpf_trampoline_6442493000+0x0/0xf1\n\
version_proc_show (1) R I   \ttramp: 0xffffffffc0002000 ->lpatch_handler+0x0/0x90 [lpatch]\n\
lpt_target_fn [lpt_target] (1)      \n\
schedule (1)      ->ftrace_graph_caller+0x0/0x20\n";

    #[test]
    fn parses_flags_counts_and_continuations() {
        let s = parse(SAMPLE);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].function, "cmdline_proc_show");
        assert_eq!(s[0].ops, 2);
        assert!(s[0].regs && s[0].ipmodify && s[0].direct);
        assert_eq!(s[0].flags(), "R I D");
        assert_eq!(s[0].detail.len(), 2);
        assert_eq!(
            s[0].detail[1],
            "direct-->bpf_trampoline_6442493000+0x0/0xf1"
        );
        assert_eq!(s[1].flags(), "R I");
        assert!(!s[1].direct);
        assert_eq!(s[2].function, "lpt_target_fn [lpt_target]");
        assert_eq!(s[2].flags(), "");
        assert!(s[2].detail.is_empty());
        assert_eq!(s[3].function, "schedule");
        assert_eq!(s[3].ops, 1);
    }

    #[test]
    fn finds_a_function_by_object() {
        let s = parse(SAMPLE);
        assert_eq!(of_function(&s, "cmdline_proc_show", "vmlinux").len(), 1);
        assert_eq!(of_function(&s, "lpt_target_fn", "lpt_target").len(), 1);
        assert!(of_function(&s, "lpt_target_fn", "vmlinux").is_empty());
        assert!(of_function(&s, "nothing", "vmlinux").is_empty());
    }

    #[test]
    fn skips_what_it_cannot_read() {
        let s = parse("garbage\n\tstray continuation\nf (x) R\n(3) R\ng (1) R I\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].function, "g");
        assert!(parse("").is_empty());
    }

    #[test]
    fn read_says_when_tracefs_is_absent() {
        let t = crate::testutil::TempTree::new();
        t.mkdir("kernel/debug/tracing");
        let e = read(&t.root).unwrap_err();
        assert!(e.contains("tracefs is not mounted"), "{e}");
        t.write("kernel/debug/tracing/enabled_functions", SAMPLE);
        assert_eq!(read(&t.root).unwrap().len(), 4);
    }
}

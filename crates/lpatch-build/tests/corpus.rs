// SPDX-License-Identifier: GPL-2.0-only
//! A corpus of real fixes (issue 23): what Debian's 6.1 changed between 6.1.176-1 (kernel
//! 6.1.0-50-amd64) and the security update 6.1.192-3, one fix per file in tests/corpus/, each
//! saying where it came from. Built with `--dry-run` for the older kernel, the one its users
//! would live-patch, each gives the exact list a user would check, or the exact refusal.
//! Among them: fixes in modules (sch_plug, xt_cluster, ocfs2), one touching two files (rtmutex,
//! one of them compiled inside the other), a static inline in a header (ocfs2), syscalls
//! (fspick, fcntl, prctl) and fixes that only add a check (fcntl, fspick, xt_cluster).
//!
//! Named needs_stock_kernel: `make test` prepares the older kernel's tree ($(CORPUS_KERNEL),
//! `lpatch build --prepare-only --kernel ...`) before the suite; a run without it prepares
//! it here.

use lpatch_build::error::Error;
use lpatch_build::report::{Reason, Report};
use lpatch_build::target::Request;
use std::path::PathBuf;

fn kernel() -> String {
    std::env::var("CORPUS_KERNEL").unwrap_or_else(|_| "6.1.0-50-amd64".into())
}

fn dry_run(name: &str) -> Result<Report, Error> {
    let patch = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(format!("{name}.patch"));
    lpatch_build::dry_run(&lpatch_build::Options {
        patch,
        target: Request::Debian(kernel()),
        jobs: 2,
        cache: lpatch_build::default_cache(),
        progress: lpatch_build::progress::Progress::hidden(),
        external: None,
    })
}

/// One line per replaced or added function: "object replace|new function unit reason".
fn lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for o in &r.objects {
        for f in &o.replace {
            let why = match &f.reason {
                Reason::ChangedCode => "changed".to_string(),
                Reason::InlinedCalleeChanged { callees } => {
                    format!("inlined {}", callees.join(","))
                }
                Reason::CloneChanged { clones } => format!("clone {}", clones.join(",")),
                Reason::CodeChangedOtherwise => "otherwise".to_string(),
            };
            out.push(format!(
                "{} replace {} {} {why}",
                o.name, f.function, f.unit
            ));
        }
        for f in &o.new_functions {
            out.push(format!("{} new {} {}", o.name, f.name, f.unit));
        }
        for d in &o.new_data {
            out.push(format!("{} data {} {}", o.name, d.name, d.unit));
        }
    }
    out
}

enum Expect {
    Lists(&'static [&'static str]),
    Refused(&'static str),
}

const CORPUS: &[(&str, Expect)] = &[
    (
        "arp_devname",
        Expect::Lists(&["vmlinux replace arp_ioctl net/ipv4/arp.c changed"]),
    ),
    (
        "fcntl_rw_hint",
        Expect::Lists(&["vmlinux replace do_fcntl fs/fcntl.c inlined fcntl_rw_hint"]),
    ),
    (
        // The syscall's wrappers are replaced; its body, inlined into them before, becomes a
        // function of its own after.
        "fspick_nouser",
        Expect::Lists(&[
            "vmlinux replace __ia32_sys_fspick fs/fsopen.c changed",
            "vmlinux replace __x64_sys_fspick fs/fsopen.c changed",
            "vmlinux new __do_sys_fspick fs/fsopen.c",
        ]),
    ),
    ("getitimer_leak", Expect::Refused("no functional change")),
    (
        "nilfs2_bop_delete",
        Expect::Refused("fs/nilfs2/bmap.h:53 changes the type nilfs_bmap_operations"),
    ),
    (
        "ocfs2_checkpoint",
        Expect::Lists(&[
            "ocfs2 replace ocfs2_clear_inode fs/ocfs2/inode.c inlined ocfs2_checkpoint_inode",
        ]),
    ),
    (
        "prctl_auxv",
        Expect::Lists(&["vmlinux replace prctl_set_auxv kernel/sys.c changed"]),
    ),
    (
        "rtmutex_proxy",
        Expect::Lists(&[
            "vmlinux replace remove_waiter kernel/locking/rtmutex_api.c changed",
            "vmlinux replace rt_mutex_adjust_pi kernel/locking/rtmutex_api.c otherwise",
            "vmlinux replace rt_mutex_cleanup_proxy_lock kernel/locking/rtmutex_api.c otherwise",
            "vmlinux replace rt_mutex_start_proxy_lock kernel/locking/rtmutex_api.c changed",
            "vmlinux replace rt_mutex_wait_proxy_lock kernel/locking/rtmutex_api.c otherwise",
        ]),
    ),
    (
        "sch_plug_overflow",
        Expect::Lists(&["sch_plug replace plug_enqueue net/sched/sch_plug.c changed"]),
    ),
    (
        "xt_cluster_template",
        Expect::Lists(&["xt_cluster replace xt_cluster_mt net/netfilter/xt_cluster.c changed"]),
    ),
];

#[test]
fn needs_stock_kernel_real_fixes_give_their_exact_lists_or_refusals() {
    lpatch_vm::require_stock_kernel();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".patch")
                .map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let listed: Vec<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every fix in tests/corpus/ has its expectation here"
    );
    let mut failures = Vec::new();
    for (name, expect) in CORPUS {
        let got = dry_run(name);
        match (expect, &got) {
            (Expect::Lists(want), Ok(r)) => {
                let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                let mut have = lines(r);
                want.sort();
                have.sort();
                if want != have {
                    failures.push(format!(
                        "{name}: wanted {want:#?}\ngot {have:#?}\n{}",
                        r.text()
                    ));
                }
                assert!(
                    r.source.contains("6.1.176-1"),
                    "{name}: built against {}",
                    r.source
                );
            }
            (Expect::Refused(words), Err(e)) if e.to_string().contains(words) => {}
            _ => failures.push(format!(
                "{name}: wanted {}, got {:?}",
                match expect {
                    Expect::Lists(_) => "a list".to_string(),
                    Expect::Refused(w) => format!("a refusal saying {w:?}"),
                },
                got.map(|r| r.text())
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

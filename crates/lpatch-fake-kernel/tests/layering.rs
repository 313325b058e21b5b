// SPDX-License-Identifier: GPL-2.0-only
//! The layering the kernel crate promises (kernel/rust/src/lib.rs): its kernel layer
//! (src/kernel/) never calls up — not into the entry points, and of the logic crate it
//! uses only what crosses the seam (the interface, errors, fallible collections) — and
//! the logic crate has no `unsafe` at all.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            v.push((p, text));
        }
    }
    v
}

fn kernel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel")
}

#[test]
fn kernel_layer_imports_only_the_seam() {
    let allowed = [
        "lpatch_logic::seam",
        "lpatch_logic::error",
        "lpatch_logic::fallible",
    ];
    let files = sources(&kernel_dir().join("rust/src/kernel"));
    assert!(files.len() >= 10, "kernel layer sources not found");
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            assert!(
                !code.contains("crate::entry"),
                "{}:{}: calls up into the entry points",
                path.display(),
                n + 1
            );
            for (i, _) in code.match_indices("lpatch_logic::") {
                assert!(
                    allowed.iter().any(|a| code[i..].starts_with(a)),
                    "{}:{}: uses the logic beyond the seam: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn logic_crate_forbids_unsafe() {
    let files = sources(&kernel_dir().join("logic/src"));
    let lib = files
        .iter()
        .find(|(p, _)| p.ends_with("lib.rs"))
        .expect("logic/src/lib.rs");
    assert!(lib.1.contains("#![forbid(unsafe_code)]"));
}

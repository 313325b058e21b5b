// SPDX-License-Identifier: GPL-2.0-only
//! Tests of `lpatch_build::dwarf` against small units compiled by gcc-12 with
//! kernel-like flags, the way kbuild runs it (relative paths, tree root as the
//! current directory).

mod cc;

use std::path::PathBuf;

use lpatch_build::dwarf::{
    read_unit, reason_for, touched_functions, DwarfError, Reason, SourceFunction, UnitInfo,
};
use object::{Object, ObjectSymbol};

const HELPER_H: &str = "\
#ifndef HELPER_H
#define HELPER_H
static inline int inner(int x)
{
\treturn x * 3 + 1;
}

static inline int helper(int x)
{
\treturn inner(x) + 7;
}
#endif
";

const X_C: &str = "\
/* a test unit */
int global_counter;
#include \"helper.h\"

int f(int a)
{
\treturn a * 5 + global_counter;
}

int uses_helper(int a)
{
\treturn helper(a) + 2;
}

int unrelated(int a)
{
\treturn a - 9;
}

static __attribute__((noinline)) int g(int unused, int x)
{
\treturn helper(x) * x + global_counter;
}

int call_g1(int x)
{
\treturn g(1, x) + 1;
}

int call_g2(int x)
{
\treturn g(2, x + 1) + 2;
}
";

/// 1-based line of the first line of `src` containing `needle`.
fn line_of(src: &str, needle: &str) -> u64 {
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in source")) as u64
        + 1
}

/// A small tree with `include/helper.h` and `fs/x.c`, compiled as kbuild does.
struct Tree(cc::TempDir);

impl Tree {
    fn new(_tag: &str) -> Tree {
        let dir = cc::TempDir::new();
        dir.write("include/helper.h", HELPER_H);
        dir.write("fs/x.c", X_C);
        Tree(dir)
    }

    /// The kernel flags with DWARF 5 (Debian's config) and `-Iinclude`, then `extra`.
    fn compile(&self, src: &str, obj: &str, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["-gdwarf-5", "-Iinclude"];
        args.extend_from_slice(extra);
        self.0.compile(src, obj, &args)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0 .0.join(p)
    }
}

fn compiled(tag: &str) -> (Tree, Vec<u8>, UnitInfo) {
    let tree = Tree::new(tag);
    let obj = tree.compile("fs/x.c", "fs/x.o", &[]);
    let unit = read_unit(&obj).unwrap_or_else(|e| panic!("read_unit: {e}"));
    (tree, obj, unit)
}

fn sf(name: &str, file: &str, decl_line: u64, out_of_line: bool) -> SourceFunction {
    SourceFunction {
        name: name.into(),
        file: file.into(),
        decl_line,
        out_of_line,
    }
}

/// The ELF function symbols of `obj` that are compiler clones of `base`.
fn clones_of(obj: &[u8], base: &str) -> Vec<String> {
    let file = object::File::parse(obj).unwrap();
    let prefix = format!("{base}.");
    file.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text)
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

fn origin<'a>(unit: &'a UnitInfo, name: &str) -> &'a lpatch_build::dwarf::FunctionOrigin {
    let found: Vec<_> = unit.origins.iter().filter(|o| o.name == name).collect();
    assert_eq!(found.len(), 1, "origins named {name}: {:#?}", unit.origins);
    found[0]
}

#[test]
fn read_unit_lists_functions_with_files_and_lines() {
    let (_tree, _obj, unit) = compiled("list");
    let x = "fs/x.c";
    let h = "include/helper.h";
    let mut expected = vec![
        sf("f", x, line_of(X_C, "int f(int a)"), true),
        sf("uses_helper", x, line_of(X_C, "int uses_helper("), true),
        sf("unrelated", x, line_of(X_C, "int unrelated("), true),
        sf("g", x, line_of(X_C, "int g(int unused"), true),
        sf("call_g1", x, line_of(X_C, "int call_g1("), true),
        sf("call_g2", x, line_of(X_C, "int call_g2("), true),
        sf("inner", h, line_of(HELPER_H, "int inner("), false),
        sf("helper", h, line_of(HELPER_H, "int helper("), false),
    ];
    expected.sort_by(|a, b| (&a.file, a.decl_line, &a.name).cmp(&(&b.file, b.decl_line, &b.name)));
    assert_eq!(unit.functions, expected);
    assert_eq!(line_of(X_C, "int f(int a)"), 5);
    assert_eq!(line_of(HELPER_H, "int helper("), 8);

    // One origin per out-of-line function, each with its symbol.
    let mut names: Vec<_> = unit.origins.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["call_g1", "call_g2", "f", "g", "unrelated", "uses_helper"]
    );
    for name in ["f", "uses_helper", "unrelated", "call_g1", "call_g2"] {
        let o = origin(&unit, name);
        assert_eq!(o.symbols, [name.to_string()], "{o:#?}");
        assert_eq!(o.file, x);
    }
    // The JSON form works.
    let json = serde_json::to_string(&unit).unwrap();
    assert!(json.contains("\"include/helper.h\""), "{json}");
}

#[test]
fn inlined_callees_are_listed_transitively() {
    let (_tree, _obj, unit) = compiled("inline");
    let h = "include/helper.h";
    let expected = vec![
        sf("inner", h, line_of(HELPER_H, "int inner("), false),
        sf("helper", h, line_of(HELPER_H, "int helper("), false),
    ];
    let mut got = origin(&unit, "uses_helper").inlined.clone();
    got.sort_by_key(|s| s.decl_line);
    assert_eq!(got, expected);
    assert!(origin(&unit, "f").inlined.is_empty());
    assert!(origin(&unit, "unrelated").inlined.is_empty());
    // g (a clone) took helper and, through it, inner.
    let mut got = origin(&unit, "g").inlined.clone();
    got.sort_by_key(|s| s.decl_line);
    assert_eq!(got, expected);
}

#[test]
fn touched_functions_maps_lines_to_functions() {
    let (_tree, _obj, unit) = compiled("touched");
    let changed = vec![
        ("fs/x.c".to_string(), line_of(X_C, "return a * 5")),
        (
            "include/helper.h".to_string(),
            line_of(HELPER_H, "return inner(x)"),
        ),
        ("./fs/x.c".to_string(), line_of(X_C, "int global_counter;")),
        ("include/helper.h".to_string(), 1),
        ("fs/other.c".to_string(), 3),
    ];
    let touched = touched_functions(&unit, &changed);
    let want: std::collections::BTreeSet<(String, String)> = [
        ("fs/x.c".to_string(), "f".to_string()),
        ("include/helper.h".to_string(), "helper".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(touched.functions, want);
    assert_eq!(
        touched.file_scope,
        vec![
            ("fs/other.c".to_string(), 3),
            ("fs/x.c".to_string(), 2),
            ("include/helper.h".to_string(), 1),
        ]
    );
}

#[test]
fn reason_for_changed_inlined_and_unrelated() {
    let (_tree, _obj, unit) = compiled("reason");
    let touched = touched_functions(
        &unit,
        &[
            ("fs/x.c".to_string(), line_of(X_C, "return a * 5")),
            (
                "include/helper.h".to_string(),
                line_of(HELPER_H, "return inner(x)"),
            ),
        ],
    );
    assert_eq!(reason_for(&unit, &touched, "f"), Reason::ChangedCode);
    assert_eq!(
        reason_for(&unit, &touched, "uses_helper"),
        Reason::InlinedCalleeChanged {
            callees: vec!["helper".to_string()]
        }
    );
    assert_eq!(
        reason_for(&unit, &touched, "unrelated"),
        Reason::Unattributed
    );
    assert_eq!(reason_for(&unit, &touched, "call_g1"), Reason::Unattributed);
    assert_eq!(
        reason_for(&unit, &touched, "uses_helper").to_string(),
        "inlined callee changed: helper"
    );

    // Touching the nested inline reaches every function it was inlined into.
    let touched = touched_functions(
        &unit,
        &[(
            "include/helper.h".to_string(),
            line_of(HELPER_H, "return x * 3"),
        )],
    );
    assert_eq!(
        reason_for(&unit, &touched, "uses_helper"),
        Reason::InlinedCalleeChanged {
            callees: vec!["inner".to_string()]
        }
    );
    assert_eq!(reason_for(&unit, &touched, "f"), Reason::Unattributed);
}

#[test]
fn clone_resolves_to_its_origin() {
    let (_tree, obj, unit) = compiled("clone");
    let clones = clones_of(&obj, "g");
    assert!(
        !clones.is_empty(),
        "gcc made no clone of g (g.isra.N / g.constprop.N) in the ELF symbols"
    );
    let g = origin(&unit, "g");
    for clone in &clones {
        assert!(
            clone.contains(".isra.") || clone.contains(".constprop."),
            "{clone}"
        );
        // Mapped by address, not only by name.
        assert!(g.symbols.contains(clone), "{clone} not in {g:#?}");
    }
    let clone = &clones[0];

    let body = touched_functions(
        &unit,
        &[("fs/x.c".to_string(), line_of(X_C, "return helper(x) * x"))],
    );
    assert_eq!(reason_for(&unit, &body, clone), Reason::ChangedCode);
    assert_eq!(reason_for(&unit, &body, "call_g1"), Reason::Unattributed);

    let callee = touched_functions(
        &unit,
        &[(
            "include/helper.h".to_string(),
            line_of(HELPER_H, "return inner(x)"),
        )],
    );
    let want = Reason::InlinedCalleeChanged {
        callees: vec!["helper".to_string()],
    };
    assert_eq!(reason_for(&unit, &callee, clone), want);
    // The suffix-stripping fallback gives the same for other clone names.
    assert_eq!(reason_for(&unit, &callee, "g.part.0"), want);
    assert_eq!(reason_for(&unit, &body, "g.cold"), Reason::ChangedCode);
}

#[test]
fn garbage_and_objects_without_debug_info_are_errors() {
    for bytes in [
        &b""[..],
        &b"garbage, not an ELF file at all"[..],
        &b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x01\0>\0"[..],
    ] {
        assert!(read_unit(bytes).is_err());
    }
    // A real object's DWARF cut short must not panic either.
    let (tree, obj, _unit) = compiled("errors");
    for cut in [obj.len() / 2, obj.len() - 1] {
        let _ = read_unit(&obj[..cut]);
    }
    // Corrupt the .debug_info contents.
    let file = object::File::parse(&*obj).unwrap();
    let (start, len) = {
        use object::ObjectSection;
        file.section_by_name(".debug_info")
            .unwrap()
            .file_range()
            .unwrap()
    };
    for fill in [0x00u8, 0xff, 0x5a] {
        let mut bad = obj.clone();
        for b in &mut bad[start as usize..(start + len) as usize] {
            *b = fill;
        }
        let _ = read_unit(&bad);
    }

    let nodebug = tree.compile("fs/x.c", "fs/nodebug.o", &["-g0"]);
    let err = read_unit(&nodebug).unwrap_err();
    assert_eq!(err, DwarfError::NoDebugInfo);
    assert_eq!(err.to_string(), "no debug info (compile with -g)");
    assert!(tree.path("fs/nodebug.o").exists());
}

const COLD_C: &str = "\
extern void __attribute__((cold)) report(int);
extern int work(int);
int hot(int a)
{
\tif (__builtin_expect(a > 100, 0)) {
\t\treport(a);
\t\treport(work(a + 1));
\t\treturn work(a) - 1;
\t}
\treturn a + 1;
}
";

#[test]
fn cold_part_maps_to_its_function() {
    let tree = Tree::new("cold");
    std::fs::write(tree.path("fs/c.c"), COLD_C).unwrap();
    let obj = tree.compile("fs/c.c", "fs/c.o", &[]);
    let unit = read_unit(&obj).unwrap();
    let cold = clones_of(&obj, "hot");
    assert_eq!(cold, ["hot.cold"], "gcc made no hot.cold");
    let hot = origin(&unit, "hot");
    assert_eq!(hot.symbols, ["hot", "hot.cold"]);
    let touched = touched_functions(
        &unit,
        &[("fs/c.c".to_string(), line_of(COLD_C, "report(a);"))],
    );
    assert_eq!(reason_for(&unit, &touched, "hot.cold"), Reason::ChangedCode);
    assert_eq!(
        touched.functions.iter().collect::<Vec<_>>(),
        [&("fs/c.c".to_string(), "hot".to_string())]
    );
}
